//! The `semantos` binary: parse arguments, set up output (log level, colour,
//! progress), run, map errors to exit codes (the table is `semantos::cli::exit`)
//! and print them (as one JSON object on stderr under `--json`).

use semantos::cli::output::ErrorDoc;
use semantos::cli::style::{self, OutputStyle};
use semantos::cli::{self, CliError, exit};
use std::io::{IsTerminal, Write};

/// Whether the command line asks for JSON: the top-level `--json` (the seed's interface) or a subcommand's own.
fn wants_json(c: &cli::Cli) -> bool {
    use cli::args::Command;
    c.json.json
        || match &c.command {
            None => false,
            Some(Command::Reproduce(a)) => a.json.json,
            Some(Command::Collect(a)) => a.json,
            Some(Command::Kb(a)) => a.json(),
            Some(Command::Diagnose(a)) => a.json.json,
            Some(Command::Recommend(a)) => a.json.json,
            Some(Command::Apply(a)) => a.json.json,
            Some(Command::Rollback(a)) => a.json.json,
            Some(Command::DryRun(a)) => a.json.json,
            Some(Command::Bench(a)) => a.json.json,
            Some(Command::Compare(a)) => a.json.json,
            Some(Command::Rollout(a)) => a.json.json,
            Some(Command::Export(a)) => a.json.json,
            Some(Command::Tune(a)) => a.json.json,
            Some(Command::Agent(a)) => a.json.json,
            Some(Command::Simulate(a)) => a.json.json,
            Some(Command::Status(a)) => a.json.json,
            Some(Command::Verify(a)) => a.json.json,
            Some(Command::Completions { .. }) | Some(Command::Man(_)) => false,
        }
}

/// Log lines go to stderr. RUST_LOG, when set, decides what is shown; else -v / --quiet do.
fn init_tracing(s: &OutputStyle) {
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let filter = from_env
        .as_deref()
        .and_then(|v| match tracing_subscriber::EnvFilter::try_new(v) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("semantos: warning: RUST_LOG={v:?} is not a valid filter ({e}); using {:?} (e.g. RUST_LOG=semantos=debug)", s.log_filter());
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

fn main() {
    // Under --json a usage error is an error document too; the arguments are not parsed yet, so
    // the words decide (`--json` before a `--` that ends the options).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json_words = argv.iter().skip(1).take_while(|a| *a != "--").any(|a| a == "--json");
    // A usage error (a flag unknown to the command, or one its mode does not use) exits 2 here.
    let args = match cli::args::parse(&argv) {
        Ok(a) => a,
        Err(e) if json_words && e.use_stderr() => {
            let doc = ErrorDoc { exit_code: e.exit_code(), message: e.kind().to_string(), causes: vec![e.render().to_string().trim().to_string()] };
            eprintln!("{}", doc.line());
            std::process::exit(e.exit_code());
        }
        Err(e) => e.exit(),
    };
    let json = wants_json(&args);
    init_tracing(&args.style);
    let colour = style::colour_wanted(args.style.color, std::env::var_os("NO_COLOR").as_deref(), std::io::stdout().is_terminal());
    style::set(colour, style::progress_mode(args.style.quiet, json, std::io::stderr().is_terminal()));
    if args.style.quiet && !json {
        silence_stdout();
    }
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
                if json {
                    let _ = writeln!(std::io::stderr(), "{}", ErrorDoc::of(code, &e).line());
                } else {
                    let _ = writeln!(std::io::stderr(), "semantos: error: {e:#}");
                }
                code
            }
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
