//! The `rill` command.
//!
//! Subcommands: `run` (the agent process: run a config, serve the HTTP API and UI), `fmt` (print River
//! files in canonical layout), `validate` (check River files without running them).
//!
//! Exit codes (see [`ExitCode`]):
//! - 0: success;
//! - 1: the input has problems: diagnostics with errors, or `fmt --test` found files that would change;
//! - 2: the command could not do its job: bad arguments, unreadable input, a file that could not be written.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod components;
mod fmt;
mod input;
mod output;
mod run;
mod validate;

// jemalloc, with heap profiling switched on at build time (`.cargo/config.toml`), so `/debug/pprof/heap`
// can serve the process's own heap.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process;

/// Rill: a runtime for continuous profiling pipelines configured in River.
#[derive(Debug, Parser)]
#[command(name = "rill", version, about, propagate_version = true)]
struct Cli {
    /// When to colour diagnostics: `auto` colours them on a terminal unless `NO_COLOR` is set.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,

    #[command(subcommand)]
    command: Command,
}

/// The `--color` choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    /// Colour when writing to a terminal and `NO_COLOR` is unset or empty.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The subcommands, dispatched in [`main`].
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a config: keep its components running, serve the HTTP API and UI, reload on SIGHUP.
    Run(run::RunArgs),
    /// Format River files in canonical layout (to standard output unless --write or --test).
    Fmt(FmtArgs),
    /// Check River files for syntax and expression errors without running them.
    Validate(ValidateArgs),
}

/// Arguments of `rill fmt`.
#[derive(Debug, clap::Args)]
struct FmtArgs {
    /// Rewrite the files in place (only those whose formatting changes).
    #[arg(short = 'w', long, conflicts_with = "test")]
    write: bool,
    /// Print nothing but the names of files that are not formatted; exit 1 if there are any.
    #[arg(long)]
    test: bool,
    /// Files to format; `-` or none reads standard input.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Arguments of `rill validate`.
#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// Files to check; `-` or none reads standard input.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// How a command ended, in order of severity; the process exits with the worst outcome seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// Everything was fine.
    Success = 0,
    /// The input has problems (errors found, or `fmt --test` found unformatted files).
    Problems = 1,
    /// The command failed: bad usage or an I/O error.
    Failure = 2,
}

fn main() {
    let cli = Cli::parse();
    let colour = output::stderr_colour(cli.color);
    let code = match cli.command {
        Command::Run(args) => run::run(args, colour),
        Command::Fmt(args) => fmt::run(&args, colour),
        Command::Validate(args) => validate::run(&args, colour),
    };
    process::exit(code as i32);
}
