//! The `semantos` binary: parse arguments, run, map errors to exit codes
//! (the table is `semantos::cli::exit`).

use semantos::cli::{self, CliError, exit};
use std::io::Write;

fn main() {
    // A usage error (a flag unknown to the command, or one its mode does not use) exits 2 here.
    let args = cli::args::parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`semantos kb list | head`) is not an error.
            if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) {
                exit::OK
            } else {
                // A backup the transaction refuses (apply::Refused) is invalid input, as a rejected plan is.
                let refused = e.chain().any(|c| c.is::<semantos::apply::Refused>());
                let code = e.downcast_ref::<CliError>().map(|c| c.code).unwrap_or(if refused { exit::INVALID } else { exit::FAILED });
                let _ = writeln!(std::io::stderr(), "semantos: error: {e:#}");
                code
            }
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
