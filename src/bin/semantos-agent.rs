//! `semantos-agent`: `semantos agent` in an executable of its own, the one the service runs
//! (`packaging/semantos-agent.service`). Same flags, configuration, state and exit codes; what
//! differs is what is linked in: only the agent's code, not the bench, the simulator, the plots
//! or the LLM client. A long-running process keeps mapped the pages of code around what it ran,
//! and in a smaller executable those pages hold less of what it never runs (docs/agent.md, "Cost").

use clap::Parser;
use semantos::cli::agent_cmd::{self, AgentArgs};
use semantos::cli::entry;
use semantos::cli::style::OutputStyle;

/// The command line: `semantos agent`'s flags and the output flags every command takes.
#[derive(Debug, Parser)]
#[command(name = "semantos-agent", version, about = "The SemantOS agent: samples the host, publishes advice under stable IDs and, in apply mode, tunes one measured change set at a time (docs/agent.md)", after_help = agent_cmd::SERVICE_HELP)]
struct Cli {
    #[command(flatten)]
    style: OutputStyle,
    #[command(flatten)]
    agent: AgentArgs,
}

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Under --json a usage error is an error document too, as with `semantos`.
    let json_words = entry::json_words(&argv);
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) if json_words && e.use_stderr() => std::process::exit(entry::usage_error_doc(&e)),
        Err(e) => e.exit(),
    };
    let json = cli.agent.json.json;
    entry::init("semantos-agent", &cli.style, json);
    std::process::exit(entry::exit_code("semantos-agent", agent_cmd::run(&cli.agent), json));
}
