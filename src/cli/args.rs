//! Command-line definitions: one source for parsing, `--help`, shell
//! completions and the man pages. Each subcommand takes only the flag groups
//! it uses (`cli::flags`); the top level takes the seed's interface
//! (`semantos --seed 7 --trials 20`, `semantos --applier sysctl [--apply |
//! --rollback]`), and [`parse`] refuses a top-level flag the chosen mode does
//! not use, with the usage exit code.

use super::apply_cmd::ApplyArgs;
use super::bench_cmd::BenchArgs;
use super::collect_cmd::CollectArgs;
use super::compare_cmd::CompareArgs;
use super::exit;
use super::export_cmd::ExportArgs;
use super::flags::{ForceArg, HealthTimeoutArg, IntentArg, JsonArg, KbDirArg, PlanArg, PolicyArg, ReproArgs, ReproOutArgs, ResultsArgs, StateArgs, TelemetryArgs, TreeArg, WatchArgs};
use super::host::{DiagnoseArgs, DryRunArgs, RecommendArgs};
use super::kb_cmd::KbArgs;
use super::reproduce::{ReproduceArgs, SimulateArgs};
use super::rollback_cmd::RollbackArgs;
use super::rollout_cmd::RolloutArgs;
use super::tune_cmd::TuneArgs;
use super::agent_cmd::AgentArgs;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// The version `--version` prints: the crate's, the git commit it was built from, and the KB's digest.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SEMANTOS_GIT_COMMIT"), ", kb ", env!("SEMANTOS_KB_DIGEST"), ")");

/// SemantOS tunes Linux kernel parameters (sysctls) safely: it diagnoses the
/// host from telemetry, recommends changes grounded in a knowledge base,
/// checks them against guardrails, applies them transactionally with backup,
/// read-back and automatic rollback, and measures the result.
///
/// With no subcommand it runs the sandbox reproduction
/// (`semantos --seed 7 --trials 20`), or the live-host applier
/// (`semantos --applier sysctl [--apply | --rollback]`).
#[derive(Debug, Parser)]
#[command(name = "semantos", version = VERSION, about, long_about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub repro: ReproArgs,
    #[command(flatten)]
    pub plan: PlanArg,
    /// Seed interface: `sysctl` works on the live host's /proc/sys (dry run unless --apply or --rollback).
    #[arg(long, value_enum)]
    pub applier: Option<Applier>,
    /// With --applier sysctl: apply the plan.
    #[arg(long, requires = "applier", conflicts_with = "rollback")]
    pub apply: bool,
    /// With --applier sysctl: restore every value from the backup.
    #[arg(long, requires = "applier")]
    pub rollback: bool,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub results: ResultsArgs,
    #[command(flatten)]
    pub repro_out: ReproOutArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub tree: TreeArg,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub health_timeout: HealthTimeoutArg,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub force: ForceArg,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
    #[command(flatten)]
    pub style: crate::cli::style::OutputStyle,
}

const AFTER_HELP: &str = "Examples:
  semantos --seed 7 --trials 20            sandbox reproduction (same as `semantos reproduce`)
  semantos diagnose --telemetry experiments/data/sample_telemetry.csv
  semantos --applier sysctl                dry run against the live /proc/sys
  sudo semantos --applier sysctl --apply   apply with backup, journal, read-back and monitor
  sudo semantos --applier sysctl --rollback
  semantos kb show net.core.somaxconn
  semantos man --dir /usr/local/share/man/man1

Flags go after the subcommand (`semantos apply --plan p.json`); only --json may also come
before it. `semantos CMD --help` lists a command's flags.";

/// Which applier the seed interface drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Applier {
    /// The live host's sysctl tree (`--sysctl-root`, default /proc/sys).
    Sysctl,
}

/// Arguments of `man`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  semantos man | man -l -                        read semantos(1)
  semantos man --dir /usr/local/share/man/man1   install every page")]
pub struct ManArgs {
    /// Write semantos.1 and semantos-<command>.1 for every command into DIR instead of semantos(1) to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline on a simulated host and evaluate baseline vs tuned p95.
    Reproduce(ReproduceArgs),
    /// Read live telemetry (/proc, PSI, cgroups): snapshots and per-second rates.
    Collect(CollectArgs),
    /// Query the knowledge base: list, show, validate [--live], graph.
    Kb(KbArgs),
    /// Diagnose symptoms from live telemetry or a telemetry CSV, judged over a window of samples; `--watch N` follows them.
    Diagnose(DiagnoseArgs),
    /// Recommend a plan; `--out plan.json` writes it for review or `--plan`.
    Recommend(RecommendArgs),
    /// Apply a plan (or a fresh recommendation) transactionally (same as `--applier sysctl --apply`).
    Apply(ApplyArgs),
    /// Restore every value from the backup (same as `--applier sysctl --rollback`), or with `--last` / `--run ID` undo one apply only.
    Rollback(RollbackArgs),
    /// Show what an apply would do, without writing (same as `--applier sysctl`).
    DryRun(DryRunArgs),
    /// Write simulated telemetry (CSV) of the configured host at its starting values.
    Simulate(SimulateArgs),
    /// Measure live workloads in throwaway network namespaces: start values vs SemantOS's plan, TuneD profiles and a grid.
    Bench(BenchArgs),
    /// Compare reasoning backends (rules, llm) on the same findings: verdicts and simulated p95 side by side.
    Compare(CompareArgs),
    /// Roll a plan across a fleet in waves (canary, ramp, rest) over SSH or Ansible, with health gates and fleet-wide rollback.
    Rollout(RolloutArgs),
    /// Tune in closed loop against your own objective command: each candidate is applied, measured against the incumbent, and kept only when measured better.
    Tune(TuneArgs),
    /// Run the continuous service in the foreground: observe (advice with stable IDs) or apply (one calm change set at a time).
    Agent(AgentArgs),
    /// Show what SemantOS changed on this host, when, by which run (apply, rollout, tune, agent), and what is live now.
    Status(super::status_cmd::StatusArgs),
    /// Check every key SemantOS manages: intended vs live value and who else owns it; exit 1 when any differ.
    Verify(super::verify_cmd::VerifyArgs),
    /// Write a plan as an Ansible playbook, a TuneD profile, a sysctl.d drop-in or an OpenShift NTO Tuned resource.
    Export(ExportArgs),
    /// Write shell completions to stdout.
    #[command(after_help = "Examples:\n  semantos completions bash > /etc/bash_completion.d/semantos\n  semantos completions zsh > ~/.zfunc/_semantos")]
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (roff): semantos(1) to stdout, or every page into --dir.
    Man(ManArgs),
}

/// The commands whose after_help carries the whole exit-code table (the ones that can give 3, 4 or 5).
const FULL_TABLE: &[&str] = &["apply", "rollback", "rollout"];

/// The parser: the derived definitions, with the exit-code table in the top command's and
/// in each command's after_help (the whole table where codes 3 to 5 can occur, a pointer elsewhere).
pub fn command() -> clap::Command {
    with_exit_status(Cli::command(), true)
}

/// `c` and its subcommands, each with the exit-status part of its after_help.
fn with_exit_status(mut c: clap::Command, full: bool) -> clap::Command {
    let names: Vec<String> = c.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for name in names {
        let sub_full = FULL_TABLE.contains(&name.as_str());
        c = c.mut_subcommand(&name, |s| with_exit_status(s, sub_full));
    }
    let help = c.get_after_help().map(|h| h.to_string()).unwrap_or_default();
    let tail = if full {
        exit::TABLE.to_string()
    } else if help.contains("Exit status") {
        return c;
    } else {
        "Exit status: 0 success, 1 failure, 2 usage error or invalid input (table: `semantos --help`).".to_string()
    };
    let text = if help.is_empty() { tail } else { format!("{help}\n\n{tail}") };
    c.after_help(text)
}

/// Top-level flags that `reproduce` takes too, so they may precede it.
const REPRO_TOO: &[&str] = &["seed", "trials", "config", "sandbox_dir", "results_dir", "sysctl_conf", "plan", "policy", "intent", "audit_log", "kb"];

/// Copies the top-level flags given before `reproduce` into its own arguments.
fn settle_reproduce(cli: &mut Cli, m: &ArgMatches) {
    let Some(Command::Reproduce(a)) = &mut cli.command else { return };
    let g = given(m);
    let has = |id: &str| g.iter().any(|x| x == id);
    if has("seed") {
        a.repro.seed = cli.repro.seed;
    }
    if has("trials") {
        a.repro.trials = cli.repro.trials;
    }
    if has("config") {
        a.repro.config = cli.repro.config.clone();
    }
    if has("sandbox_dir") {
        a.results.sandbox_dir = cli.results.sandbox_dir.clone();
    }
    if has("results_dir") {
        a.results.results_dir = cli.results.results_dir.clone();
    }
    if has("sysctl_conf") {
        a.out.sysctl_conf = cli.repro_out.sysctl_conf.clone();
    }
    if has("plan") {
        a.plan = cli.plan.clone();
    }
    if has("policy") {
        a.policy = cli.policy.clone();
    }
    if has("intent") {
        a.intent = cli.intent.clone();
    }
    if has("audit_log") {
        a.audit_log = cli.state.audit_log.clone();
    }
    if has("kb") {
        a.kb = cli.kb.clone();
    }
}

/// Top-level flags of the reproduction only.
const REPRO_ONLY: &[&str] = &["seed", "trials", "config", "sandbox_dir", "results_dir", "sysctl_conf"];
/// Top-level flags of the live-host applier only, and which of its modes take them.
const APPLIER_ONLY: &[(&str, Mode)] = &[
    ("telemetry", Mode::NotRollback),
    ("proc_root", Mode::NotRollback),
    ("interval", Mode::NotRollback),
    ("sysctl_root", Mode::Any),
    ("monitor_seconds", Mode::Apply),
    ("health_cmd", Mode::Apply),
    ("health_timeout", Mode::Apply),
    ("persist", Mode::Apply),
    ("state_dir", Mode::Any),
    ("backup", Mode::Any),
    ("audit_log", Mode::NotDryRun),
    ("force", Mode::NotDryRun),
];

/// Which `--applier sysctl` modes take a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Any,
    Apply,
    NotRollback,
    NotDryRun,
}

/// `--seed` for the id `seed`.
fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// The top-level flags given on the command line (not defaults, not environment).
fn given(m: &ArgMatches) -> Vec<String> {
    // Flattened groups have ids too (their struct's name, capitalised): only the flags count.
    m.ids().map(|id| id.as_str().to_string()).filter(|id| id.starts_with(|c: char| c.is_ascii_lowercase()) && m.value_source(id) == Some(ValueSource::CommandLine)).collect()
}

/// Why the top-level flags do not fit the chosen mode, if they do not.
fn misfit(cli: &Cli, m: &ArgMatches) -> Option<String> {
    let given = given(m);
    if let Some((name, sub)) = m.subcommand() {
        // `semantos [flags] reproduce` is the bare `semantos [flags]`: its flags may come first (not twice).
        let before_ok = |id: &str| matches!(id, "json" | "quiet" | "verbose" | "color") || (name == "reproduce" && REPRO_TOO.contains(&id));
        if let Some(twice) = given.iter().find(|id| name == "reproduce" && REPRO_TOO.contains(&id.as_str()) && sub.value_source(id) == Some(ValueSource::CommandLine)) {
            return Some(format!("{} is given both before and after `reproduce`; give it once", flag(twice)));
        }
        let stray: Vec<String> = given.iter().filter(|id| !before_ok(id)).map(|id| flag(id)).collect();
        if !stray.is_empty() {
            return Some(format!("{} before `{name}`: put a command's flags after it (`semantos {name} {} ...`); `semantos {name} --help` lists the flags it takes", stray.join(" "), stray[0]));
        }
        return None;
    }
    let applier = cli.applier.is_some();
    for id in &given {
        if applier && REPRO_ONLY.contains(&id.as_str()) {
            return Some(format!("{} belongs to the sandbox reproduction, not to --applier sysctl; drop one of them", flag(id)));
        }
        if let Some((_, mode)) = APPLIER_ONLY.iter().find(|(f, _)| f == id) {
            if !applier && id == "audit_log" {
                continue; // the reproduction's audit log
            }
            if !applier {
                return Some(format!("{} belongs to the live-host applier: use it with --applier sysctl (or `semantos apply` / `rollback` / `dry-run`), not with the sandbox reproduction", flag(id)));
            }
            let ok = match mode {
                Mode::Any => true,
                Mode::Apply => cli.apply,
                Mode::NotRollback => !cli.rollback,
                Mode::NotDryRun => cli.apply || cli.rollback,
            };
            if !ok {
                let what = if cli.apply { "--apply" } else if cli.rollback { "--rollback" } else { "a dry run (no --apply or --rollback)" };
                return Some(format!("{} does not apply to --applier sysctl with {what}", flag(id)));
            }
        }
    }
    None
}

/// Moves a top-level `--json` into the subcommand's own; an error when the subcommand has none.
fn settle_json(cli: &mut Cli) -> Result<(), String> {
    if !cli.json.json {
        return Ok(());
    }
    let Some(cmd) = &mut cli.command else { return Ok(()) };
    let json = match cmd {
        Command::Reproduce(a) => &mut a.json.json,
        Command::Collect(a) => &mut a.json,
        Command::Kb(a) => a.json_mut(),
        Command::Diagnose(a) => &mut a.json.json,
        Command::Recommend(a) => &mut a.json.json,
        Command::Apply(a) => &mut a.json.json,
        Command::Rollback(a) => &mut a.json.json,
        Command::DryRun(a) => &mut a.json.json,
        Command::Bench(a) => &mut a.json.json,
        Command::Compare(a) => &mut a.json.json,
        Command::Rollout(a) => &mut a.json.json,
        Command::Simulate(a) => &mut a.json.json,
        Command::Export(a) => &mut a.json.json,
        Command::Tune(a) => &mut a.json.json,
        Command::Agent(a) => &mut a.json.json,
        Command::Status(a) => &mut a.json.json,
        Command::Verify(a) => &mut a.json.json,
        Command::Completions { .. } | Command::Man(_) => return Err("--json: this command prints no JSON".into()),
    };
    *json = true;
    Ok(())
}

/// Parses `argv` into one checked command line; a usage error is a clap error (exit 2, nothing run).
pub fn parse<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = command();
    let m = cmd.try_get_matches_from_mut(argv)?;
    let mut cli = Cli::from_arg_matches(&m)?;
    if let Some(why) = misfit(&cli, &m) {
        return Err(cmd.error(clap::error::ErrorKind::ArgumentConflict, why));
    }
    settle_json(&mut cli).map_err(|why| cmd.error(clap::error::ErrorKind::ArgumentConflict, why))?;
    settle_reproduce(&mut cli, &m);
    Ok(cli)
}
