//! The `cgloop` command line: argument parsing, logging, and the exit codes.
//!
//! Exit codes: 0 success; 1 a node failed (its dependents were skipped); 2 a user
//! error (invalid workflow, bad arguments, missing file, unknown node); 3 the store
//! failed verification; 70 an internal error (a bug, or the file system failing).

mod args;
mod commands;
mod energy;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

pub use args::Cli;

/// An error with the exit code it deserves.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's input is wrong: they can fix it.
    #[error("{0}")]
    User(String),
    /// A node failed; the report says which.
    #[error("{0}")]
    NodeFailed(String),
    /// The store holds corrupt data.
    #[error("{0}")]
    Integrity(String),
    /// Something that should not happen.
    #[error("{0}")]
    Internal(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NodeFailed(_) => 1,
            CliError::User(_) => 2,
            CliError::Integrity(_) => 3,
            CliError::Internal(_) => 70,
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "cgloop=info",
        _ => "cgloop=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::exec::progress::LogWriter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // SAFETY: first thing in the process; no other thread exists yet.
    let prepared = unsafe { crate::nn::runtime::prepare_process() };
    let cli = Cli::parse();
    init_logging(cli.verbose);
    tracing::debug!(?prepared, "threads and malloc for candle (nn::runtime)");
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
