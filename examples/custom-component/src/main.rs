//! `custom-component CONFIG_PATH`: runs a River config with the `example.ticker` component until Ctrl-C.
#![forbid(unsafe_code)]

use flow::{Controller, ControllerOptions, Sources};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: custom-component CONFIG_PATH");
        return ExitCode::from(2);
    };
    let sources = match Sources::read(path.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let controller = Controller::new(custom_component::registry(), ControllerOptions::default());
    match controller.load(sources).await {
        Ok(report) if report.diagnostics.is_empty() => {}
        Ok(report) => {
            eprintln!("{}", report.diagnostics);
            return ExitCode::FAILURE;
        }
        Err(diags) => {
            eprintln!("{diags}");
            return ExitCode::FAILURE;
        }
    }
    for c in controller.components() {
        println!("running {} ({})", c.id, c.health.state.as_str());
    }
    let _ = tokio::signal::ctrl_c().await;
    controller.shutdown().await;
    ExitCode::SUCCESS
}
