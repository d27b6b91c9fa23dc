//! `rill fmt`: print River files in the canonical layout, rewrite them (`-w`) or list those that differ
//! (`--test`).

use crate::input::{self, Input, InputError};
use crate::{output, ExitCode, FmtArgs};
use river::render::Colour;
use std::io::{self, Write};

/// Runs `rill fmt`.
pub fn run(args: &FmtArgs, colour: Colour) -> ExitCode {
    let inputs = Input::from_args(&args.files);
    if args.write && inputs.contains(&Input::Stdin) {
        output::error(&InputError::WriteStdin);
        return ExitCode::Failure;
    }
    let mut code = ExitCode::Success;
    for input in &inputs {
        match format_one(input, args, colour) {
            Ok(c) => code = code.max(c),
            Err(InputError::Stdout(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                // The reader went away (`rill fmt f | head`): stop quietly.
                return code.max(ExitCode::Failure);
            }
            Err(e) => {
                output::error(&e);
                code = ExitCode::Failure;
            }
        }
    }
    code
}

fn format_one(input: &Input, args: &FmtArgs, colour: Colour) -> Result<ExitCode, InputError> {
    let loaded = input.read()?;
    if let Some(d) = loaded.encoding_error {
        output::diagnostics(&loaded.file, &river::Diagnostics(vec![d]), colour);
        return Ok(ExitCode::Problems);
    }
    let src = loaded.file.text();
    let formatted = match river::format::format_source(src) {
        Ok(f) => f,
        Err(diags) => {
            output::diagnostics(&loaded.file, &diags, colour);
            return Ok(ExitCode::Problems);
        }
    };
    let changed = formatted != src;
    let mut stdout = io::stdout().lock();
    if args.test {
        if changed {
            writeln!(stdout, "{}", input.name()).map_err(InputError::Stdout)?;
            return Ok(ExitCode::Problems);
        }
    } else if args.write {
        if let (true, Input::File(path)) = (changed, input) {
            input::write_atomically(path, &formatted).map_err(|source| InputError::Write {
                name: input.name(),
                source,
            })?;
        }
    } else {
        stdout
            .write_all(formatted.as_bytes())
            .map_err(InputError::Stdout)?;
        stdout.flush().map_err(InputError::Stdout)?;
    }
    Ok(ExitCode::Success)
}
