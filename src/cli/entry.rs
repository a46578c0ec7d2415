//! What every executable does around its command: the log setup (`RUST_LOG`, `-v`, `--quiet`),
//! colour and progress, and the mapping of an error to its exit code and message (the table is
//! `cli::exit`). Shared by `semantos` and `semantos-agent`, so both speak and exit alike.

use super::exit;
use super::output::ErrorDoc;
use super::style::{self, OutputStyle};
use super::CliError;
use std::io::{IsTerminal, Write};

/// Sets up log lines on stderr, colour and progress for `s`; `json`: the command prints JSON.
/// `name` prefixes the warning about a bad `RUST_LOG`.
pub fn init(name: &str, s: &OutputStyle, json: bool) {
    init_tracing(name, s);
    let colour = style::colour_wanted(s.color, std::env::var_os("NO_COLOR").as_deref(), std::io::stdout().is_terminal());
    style::set(colour, style::progress_mode(s.quiet, json, std::io::stderr().is_terminal()));
    if s.quiet && !json {
        silence_stdout();
    }
}

/// Log lines go to stderr. RUST_LOG, when set, decides what is shown; else -v / --quiet do.
fn init_tracing(name: &str, s: &OutputStyle) {
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let filter = from_env
        .as_deref()
        .and_then(|v| match tracing_subscriber::EnvFilter::try_new(v) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("{name}: warning: RUST_LOG={v:?} is not a valid filter ({e}); using {:?} (e.g. RUST_LOG=semantos=debug)", s.log_filter());
                None
            }
        })
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(s.log_filter()));
    let ansi = style::colour_wanted(s.color, std::env::var_os("NO_COLOR").as_deref(), std::io::stderr().is_terminal());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// `--quiet` without `--json`: what the commands print on stdout goes nowhere (errors and
/// warnings stay on stderr), so no command needs its own check.
fn silence_stdout() {
    // SAFETY: plain syscalls on file descriptors this process owns; fd 1 is replaced atomically by dup2.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 1);
            libc::close(null);
        }
    }
}

/// The exit code of a command's result; an error is printed on stderr first, as one JSON
/// document under `json`, else as `<name>: error: …` with its causes.
pub fn exit_code(name: &str, result: anyhow::Result<i32>, json: bool) -> i32 {
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`semantos kb list | head`) is not an error.
            if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) {
                exit::OK
            } else {
                // A backup the transaction refuses (apply::Refused) is invalid input, as a rejected plan is.
                let refused = e.chain().any(|c| c.is::<crate::apply::Refused>());
                let code = e.downcast_ref::<CliError>().map(|c| c.code).unwrap_or(if refused { exit::INVALID } else { exit::FAILED });
                if json {
                    let _ = writeln!(std::io::stderr(), "{}", ErrorDoc::of(code, &e).line());
                } else {
                    let _ = writeln!(std::io::stderr(), "{name}: error: {e:#}");
                }
                code
            }
        }
    };
    let _ = std::io::stdout().flush();
    code
}

/// Whether the words ask for JSON, before the arguments are parsed (so that a usage error can be a
/// JSON document too): a `--json` before a `--` that ends the options.
pub fn json_words(argv: &[std::ffi::OsString]) -> bool {
    argv.iter().skip(1).take_while(|a| *a != "--").any(|a| a == "--json")
}

/// A usage error under `--json` as one error document on stderr; its exit code.
pub fn usage_error_doc(e: &clap::Error) -> i32 {
    let doc = ErrorDoc { exit_code: e.exit_code(), message: e.kind().to_string(), causes: vec![e.render().to_string().trim().to_string()] };
    eprintln!("{}", doc.line());
    e.exit_code()
}
