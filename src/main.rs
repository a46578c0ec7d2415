//! The `semantos` binary: parse arguments, set up output (log level, colour,
//! progress), run, map errors to exit codes (the table is `semantos::cli::exit`)
//! and print them (as one JSON object on stderr under `--json`).

use semantos::cli::{self, entry};

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

fn main() {
    // Under --json a usage error is an error document too.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json_words = entry::json_words(&argv);
    // A usage error (a flag unknown to the command, or one its mode does not use) exits 2 here.
    let args = match cli::args::parse(&argv) {
        Ok(a) => a,
        Err(e) if json_words && e.use_stderr() => std::process::exit(entry::usage_error_doc(&e)),
        Err(e) => e.exit(),
    };
    let json = wants_json(&args);
    entry::init("semantos", &args.style, json);
    std::process::exit(entry::exit_code("semantos", cli::run(args), json));
}
