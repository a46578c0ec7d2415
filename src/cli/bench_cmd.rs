//! `semantos bench`: argument checks and printing only; the bench itself is
//! `crate::bench`.

use super::{Cli, invalid, load_kb};
use crate::bench::{self, CommandSpec, Options, ScenarioId};
use crate::kb::Intent;
use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `semantos bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = BENCH_HELP)]
pub struct BenchArgs {
    /// Built-in scenario to run (omit with --cmd).
    #[arg(value_enum, required_unless_present = "cmd", conflicts_with = "cmd")]
    pub scenario: Option<ScenarioId>,
    /// Short mode for CI: fewer requests and 2 reps per arm, no A/A check, anchors or grid.
    #[arg(long)]
    pub quick: bool,
    /// Repetitions per arm (default 5; 2 with --quick).
    #[arg(long, value_name = "N")]
    pub reps: Option<usize>,
    /// Directory for bench_<scenario>.csv, _samples.csv, .json, .svg and the audit log.
    #[arg(long, value_name = "DIR", default_value = "experiments/results")]
    pub out_dir: PathBuf,
    /// Your own workload: a shell command printing one latency per line (or CSV with --column).
    #[arg(long, value_name = "CMD")]
    pub cmd: Option<String>,
    /// With --cmd: run the command in, and tune, this existing network namespace (`ip netns add NS`).
    #[arg(long, value_name = "NS", requires = "cmd")]
    pub netns: Option<String>,
    /// With --cmd: the CSV column holding the latency (header name or 1-based index).
    #[arg(long, value_name = "COL", requires = "cmd")]
    pub column: Option<String>,
}

const BENCH_HELP: &str = "Each run builds its own network namespaces, sets the scenario's start values there,
lets the normal pipeline (diagnose → recommend → guardrails) decide from live telemetry,
applies the plan inside the namespaces through the apply transaction, measures, rolls back,
and compares against an A/A repeat, TuneD's network-throughput and network-latency profiles
and a grid around the chosen value. The host's own settings are never written.

Examples:
  sudo semantos bench accept-burst
  sudo semantos bench bdp-transfer --quick --json
  sudo semantos bench --cmd './my-client --print-latencies' --netns myapp
  sudo semantos bench --cmd 'cat lat.csv' --column latency_ms --plan plan.json";

/// Checked arguments.
fn options(cli: &Cli, a: &BenchArgs) -> Result<Options> {
    if a.reps == Some(0) {
        return Err(invalid("--reps 0 measures nothing; use --reps 5 (the default) or more"));
    }
    let policy = match &cli.host.policy {
        Some(p) => Some(super::host::load_policy(p)?),
        None => None,
    };
    Ok(Options {
        quick: a.quick,
        reps: a.reps,
        intent: cli.host.intent.unwrap_or(Intent::Latency),
        policy,
        plan: cli.plan.clone(),
        out_dir: a.out_dir.clone(),
        seed: cli.seed.unwrap_or(7),
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

/// Runs the bench; exit code 0 when it ran (whatever the goals say), 1 when it failed.
pub fn run(cli: &Cli, a: &BenchArgs) -> Result<i32> {
    let kb = load_kb(cli)?;
    let o = options(cli, a)?;
    // Progress goes to stderr even with --json: a full run takes minutes, and stdout stays the report.
    let progress = |line: &str| eprintln!("bench: {line}");
    let mut report = match (&a.cmd, a.scenario) {
        (Some(cmd), _) => {
            if cmd.trim().is_empty() {
                return Err(invalid("--cmd is empty; give the command that prints your latencies"));
            }
            let spec = CommandSpec { cmd: cmd.clone(), netns: a.netns.clone(), column: a.column.clone() };
            bench::run_command(&kb, &spec, &o, &progress)?
        }
        (None, Some(id)) => bench::run_scenario(&kb, id, &o, &progress)?,
        (None, None) => return Err(invalid("name a scenario (accept-burst, bdp-transfer, idle-slow-start) or give --cmd")),
    };
    bench::write_artifacts(&mut report, &o.out_dir)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", bench::report::table(&report));
    }
    Ok(0)
}
