//! `semantos bench`: argument checks and printing only; the bench itself is
//! `crate::bench`.

use super::common::{self, PlanFile, invalid, load_kb};
use super::flags::{IntentArg, JsonArg, KbDirArg, PlanArg, PolicyArg};
use crate::bench::{self, CommandSpec, Options, ScenarioId};
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
    /// With --cmd and no --netns: tune the bench's own network namespace, the host's unless run inside one (its values are restored after every arm). With map-heavy: let it change the host's global vm.max_map_count (restored after every arm and at the end).
    #[arg(long, conflicts_with = "netns")]
    pub allow_host: bool,
    /// With --cmd: seconds one run of the command may take before it is killed with its process group (the run fails, values are restored).
    #[arg(long, value_name = "SECONDS", requires = "cmd", default_value_t = DEFAULT_CMD_TIMEOUT_S)]
    pub cmd_timeout: f64,
    /// The grid: `axes` measures each implicated key's KB range on its own; `full` every combination (at most 64 points, counted before running).
    #[arg(long, value_enum, default_value_t = bench::GridMode::Axes, conflicts_with = "cmd")]
    pub grid: bench::GridMode,
    /// Trials of the `semantos:tune` arm, the closed loop beside `semantos` (default 10; 2 with --quick; 0: no such arm).
    #[arg(long, value_name = "N", conflicts_with = "cmd")]
    pub tune_budget: Option<usize>,
    /// Seed of the closed loop's optimiser (the intervals are paired t intervals: no seed).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[command(flatten)]
    pub plan: PlanArg,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// `--cmd-timeout`'s default: a generous bound for one repetition of a user's workload.
pub const DEFAULT_CMD_TIMEOUT_S: f64 = 600.0;

const BENCH_HELP: &str = "Each run builds its own network namespaces, sets the scenario's start values there, lets the
normal pipeline (diagnose → recommend → guardrails) decide from live telemetry, applies the
plan inside the namespaces through the apply transaction, measures, rolls back, and compares
against an A/A repeat, TuneD's network-throughput and network-latency profiles, the closed loop
(`semantos:tune`: the rules plan, then the optimiser, each trial kept only when measured
better) and a grid over the KB range of the keys the symptoms implicate. A built-in scenario
writes only inside the namespaces it creates (inotify-watchers: in a sandbox tree realised in a
throwaway user namespace per run; map-heavy: the host's global vm.max_map_count, only with
--allow-host, restored after every arm and at the end). --cmd writes inside the namespace
--netns names; without --netns it refuses, unless --allow-host says to tune the bench's own
namespace (the host's settings, restored after
every arm; if a restore fails the backup is kept and the error says how to restore it).

Examples:
  sudo semantos bench accept-burst
  sudo semantos bench bdp-transfer --quick --json
  sudo semantos bench bdp-transfer --grid full --tune-budget 10
  sudo semantos bench syn-burst
  sudo semantos bench inotify-watchers --quick
  sudo semantos bench map-heavy --allow-host
  sudo semantos bench --cmd './my-client --print-latencies' --netns myapp
  sudo semantos bench --cmd './my-client --print-latencies' --allow-host --cmd-timeout 120
  sudo semantos bench --cmd 'cat lat.csv' --column latency_ms --netns myapp --plan plan.json";

/// Checked arguments.
fn options(a: &BenchArgs, plan: &PlanFile, kb: &crate::kb::Kb) -> Result<Options> {
    if a.reps == Some(0) {
        return Err(invalid("--reps 0 measures nothing; use --reps 5 (the default) or more"));
    }
    if let Some(id) = a.scenario {
        super::scenario_run::check_allow_host(id, a.allow_host, "--cmd and to map-heavy")?;
    }
    let policy = match &a.policy.policy {
        Some(_) => Some(common::policy(&a.policy, kb)?),
        None => None,
    };
    Ok(Options {
        quick: a.quick,
        reps: a.reps,
        intent: common::intent(&a.intent),
        policy,
        plan: plan.path().map(|p| p.to_path_buf()),
        out_dir: a.out_dir.clone(),
        seed: a.seed,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        allow_host: a.allow_host,
        grid: a.grid,
        tune_budget: a.tune_budget.unwrap_or(if a.quick { bench::tune::QUICK_TUNE_BUDGET } else { bench::tune::DEFAULT_TUNE_BUDGET }),
    })
}

/// The checked `--cmd` settings: nothing runs, and nothing is written, when they are wrong.
fn command_spec(cmd: &str, a: &BenchArgs) -> Result<CommandSpec> {
    if cmd.trim().is_empty() {
        return Err(invalid("--cmd is empty; give the command that prints your latencies"));
    }
    if a.netns.is_none() && !a.allow_host {
        return Err(invalid(format!(
            "--cmd {cmd:?} without --netns would tune this host's own network settings; nothing was run or written. Give --netns NS to tune the namespace your workload runs in, or --allow-host to tune the host's (restored after every arm)"
        )));
    }
    if !(a.cmd_timeout.is_finite() && a.cmd_timeout > 0.0 && a.cmd_timeout <= 86400.0) {
        return Err(invalid(format!("--cmd-timeout {} is invalid; use seconds in (0, 86400] (the default is {DEFAULT_CMD_TIMEOUT_S})", a.cmd_timeout)));
    }
    Ok(CommandSpec { cmd: cmd.to_string(), netns: a.netns.clone(), column: a.column.clone(), timeout: std::time::Duration::from_secs_f64(a.cmd_timeout) })
}

/// Runs the bench; exit code 0 when it ran (whatever the goals say), 1 when it failed.
pub fn run(a: &BenchArgs) -> Result<i32> {
    if let Some(cmd) = &a.cmd {
        // Before anything else (the KB, the lock, the namespaces): a refused run does nothing.
        command_spec(cmd, a)?;
    }
    let plan = PlanFile::new(a.plan.plan.as_deref())?;
    let kb = load_kb(&a.kb)?;
    let o = options(a, &plan, &kb)?;
    // Progress goes to stderr even with --json: a full run takes minutes, and stdout stays the report.
    let progress = |line: &str| eprintln!("bench: {line}");
    let mut report = match (&a.cmd, a.scenario) {
        (Some(cmd), _) => {
            let spec = command_spec(cmd, a)?;
            bench::run_command(&kb, &spec, &o, &progress)?
        }
        (None, Some(id)) => bench::run_scenario(&kb, id, &o, &progress)?,
        (None, None) => return Err(invalid("name a scenario (accept-burst, bdp-transfer, idle-slow-start, syn-burst, inotify-watchers, map-heavy) or give --cmd")),
    };
    bench::write_artifacts(&mut report, &o.out_dir)?;
    if a.json.json {
        super::output::print("bench", &report)?;
    } else {
        print!("{}", bench::report::table(&report));
    }
    Ok(0)
}
