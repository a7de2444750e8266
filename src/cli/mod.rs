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

use args::Command;
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
    let cli = Cli::parse();
    let jobs = match &cli.command {
        Command::Run { jobs, .. } => *jobs,
        _ => 1,
    };
    // SAFETY: parsing the arguments starts no thread; no other thread exists yet.
    let prepared = unsafe { crate::nn::runtime::prepare_process(jobs) };
    init_logging(cli.verbose);
    tracing::debug!(?prepared, "threads and malloc for candle (nn::runtime)");
    install_panic_message();
    match std::panic::catch_unwind(|| commands::dispatch(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
        // The hook has printed the message.
        Err(_) => ExitCode::from(CliError::Internal(String::new()).exit_code()),
    }
}

/// A panic is a bug: say so in one message (where, and what), not with a backtrace,
/// unless RUST_BACKTRACE asks for one; the process then exits with code 70. One panic is
/// not a bug: `println!` into a closed pipe (`cgloop show ... | head`), after which the
/// process ends quietly with 141, as a program killed by SIGPIPE does.
fn install_panic_message() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if crate::artifact::parquet_io::decoding_guarded() {
            return; // a corrupt file, reported as an error by the decoder
        }
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        if what.starts_with("failed printing to stdout") && what.contains("Broken pipe") {
            std::process::exit(141);
        }
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            default(info);
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "internal error{at}: {what}\n\
             This is a bug in cgloop: please report it with the command that caused it \
             (RUST_BACKTRACE=1 adds a backtrace)."
        );
    }));
}
