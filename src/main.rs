//! The `semantos` binary: parse arguments, run, map errors to exit codes.

use clap::Parser;
use semantos::cli::{self, CliError};
use std::io::Write;

fn main() {
    let args = cli::Cli::parse();
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`semantos kb list | head`) is not an error.
            if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) {
                0
            } else {
                let refused = e.chain().any(|c| c.is::<semantos::apply::Refused>());
                let code = e.downcast_ref::<CliError>().map(|c| c.code).unwrap_or(if refused { cli::EXIT_INVALID } else { cli::EXIT_FAILED });
                let _ = writeln!(std::io::stderr(), "semantos: error: {e:#}");
                code
            }
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
