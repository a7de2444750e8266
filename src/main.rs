//! The `cgloop` binary: everything lives in the library; see `cgloop --help`.

fn main() -> std::process::ExitCode {
    cgloop::cli::main()
}
