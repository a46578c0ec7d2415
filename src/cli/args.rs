//! Command-line definitions: one source for parsing, `--help`, shell
//! completions and the man page.

use crate::kb::Intent;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// SemantOS tunes Linux kernel parameters (sysctls) safely: it diagnoses the
/// host from telemetry, recommends changes grounded in a knowledge base,
/// checks them against guardrails, applies them transactionally with backup,
/// read-back and automatic rollback, and measures the result.
///
/// With no subcommand it runs the sandbox reproduction
/// (`semantos --seed 7 --trials 20`), or the live-host applier
/// (`semantos --applier sysctl [--apply | --rollback]`).
#[derive(Debug, Parser)]
#[command(name = "semantos", version, about, long_about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Seed of the sandbox reproduction (same seed and trials: byte-identical outputs).
    #[arg(long, global = true)]
    pub seed: Option<u64>,
    /// Evaluation trials of the sandbox reproduction.
    #[arg(long, global = true)]
    pub trials: Option<usize>,
    /// Experiment configuration (YAML): workloads, trials, seed, intent, policy.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Use this plan (JSON or sysctl.d syntax) instead of recommending one.
    #[arg(long, global = true, value_name = "FILE")]
    pub plan: Option<PathBuf>,
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
    pub host: HostArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub style: crate::cli::style::OutputStyle,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Extra knowledge-base files (*.toml) merged over the built-in ones.
    #[arg(long, global = true, value_name = "DIR")]
    pub kb: Option<PathBuf>,
}

const AFTER_HELP: &str = "Examples:
  semantos --seed 7 --trials 20            sandbox reproduction (same as `semantos reproduce`)
  semantos diagnose --telemetry experiments/data/sample_telemetry.csv
  semantos --applier sysctl                dry run against the live /proc/sys
  sudo semantos --applier sysctl --apply   apply with backup, journal, read-back and monitor
  sudo semantos --applier sysctl --rollback
  semantos kb show net.core.somaxconn";

/// Which applier the seed interface drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Applier {
    /// The live host's sysctl tree (`--sysctl-root`, default /proc/sys).
    Sysctl,
}

/// Where the live-host commands read and write.
#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Sysctl tree to read and write: /proc/sys, or a directory laid out like it (a sandbox).
    #[arg(long, global = true, value_name = "DIR", default_value = "/proc/sys")]
    pub sysctl_root: PathBuf,
    /// The /proc to read telemetry from.
    #[arg(long, global = true, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Policy file (YAML): whitelist, never_touch, max_step_ratio, max_risk, monitor thresholds.
    #[arg(long, global = true, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// What to optimise for.
    #[arg(long, global = true, value_enum)]
    pub intent: Option<Intent>,
    /// Seconds between the two telemetry snapshots of a live diagnosis.
    #[arg(long, global = true, default_value_t = 2.0, value_name = "S")]
    pub interval: f64,
    /// Monitor window after each batch on a live host, seconds.
    #[arg(long, global = true, value_name = "S")]
    pub monitor_seconds: Option<f64>,
    /// Health command run after each batch; a non-zero exit rolls back.
    #[arg(long, global = true, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Seconds the health command may run before it is killed with its process group and counts as failed (default: the policy's health_timeout_seconds, 30).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub health_timeout: Option<f64>,
    /// Also write committed values to this sysctl.d drop-in (removed again on rollback).
    #[arg(long, global = true, value_name = "FILE", num_args = 0..=1, default_missing_value = "/etc/sysctl.d/99-semantos.conf")]
    pub persist: Option<PathBuf>,
    /// Accept a backup from another host or boot.
    #[arg(long, global = true)]
    pub force: bool,
    /// apply: this apply belongs to fleet rollout ID and is refused once ID is fenced here (set by `semantos rollout`).
    #[arg(long, global = true, value_name = "ID")]
    pub rollout_id: Option<String>,
    /// rollback: first fence fleet rollout ID, so a late apply of it is refused (set by `semantos rollout`).
    #[arg(long, global = true, value_name = "ID")]
    pub fence_rollout: Option<String>,
}

/// Which changes `semantos rollback` undoes (default: every original value, newest apply first).
#[derive(Debug, Clone, Default, Args)]
pub struct RollbackArgs {
    /// Undo only the newest committed apply; earlier applies stay.
    #[arg(long, conflicts_with = "run")]
    pub last: bool,
    /// Undo only the committed apply with this run id (the receipt's run_id); refused if a later apply changed the same keys.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
}

/// Output locations (defaults are relative to the current directory).
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Sandbox directory of the reproduction.
    #[arg(long, global = true, value_name = "DIR", default_value = "experiments/sandbox")]
    pub sandbox_dir: PathBuf,
    /// Applied configuration written by the reproduction.
    #[arg(long, global = true, value_name = "FILE")]
    pub sysctl_conf: Option<PathBuf>,
    /// Results directory (summary.csv, summary.svg, trials.csv, trace.json).
    #[arg(long, global = true, value_name = "DIR", default_value = "experiments/results")]
    pub results_dir: PathBuf,
    /// Backup file of the live-host applier.
    #[arg(long, global = true, value_name = "FILE", default_value = "experiments/backup/sysctl_backup.json")]
    pub backup: PathBuf,
    /// Audit log (JSON lines).
    #[arg(long, global = true, value_name = "FILE", default_value = "logs/semantos-audit.jsonl")]
    pub audit_log: PathBuf,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline on a simulated host and evaluate baseline vs tuned p95.
    Reproduce,
    /// Read live telemetry (/proc, PSI, cgroups): snapshots and per-second rates.
    Collect(crate::cli::collect_cmd::CollectArgs),
    /// Query the knowledge base: list, show, validate [--live], graph.
    Kb(crate::cli::kb_cmd::KbArgs),
    /// Diagnose symptoms from live telemetry or a telemetry CSV, judged over a window of samples; `--watch N` follows them.
    Diagnose(DiagnoseArgs),
    /// Recommend a plan; `--out plan.json` writes it for review or `--plan`.
    Recommend(RecommendArgs),
    /// Apply a plan (or a fresh recommendation) transactionally (same as `--applier sysctl --apply`).
    Apply(TelemetryArgs),
    /// Restore every value from the backup (same as `--applier sysctl --rollback`), or with `--last` / `--run ID` undo one apply only.
    Rollback(RollbackArgs),
    /// Show what an apply would do, without writing (same as `--applier sysctl`).
    DryRun(TelemetryArgs),
    /// Write simulated telemetry (CSV) of the configured host at its starting values.
    Simulate(SimulateArgs),
    /// Measure live workloads in throwaway network namespaces: start values vs SemantOS's plan, TuneD profiles and a grid.
    Bench(crate::cli::bench_cmd::BenchArgs),
    /// Compare reasoning backends (rules, llm) on the same findings: verdicts and simulated p95 side by side.
    Compare(crate::cli::compare_cmd::CompareArgs),
    /// Roll a plan across a fleet in waves (canary, ramp, rest) over SSH or Ansible, with health gates and fleet-wide rollback.
    Rollout(crate::cli::rollout_cmd::RolloutArgs),
    /// Write a plan as an Ansible playbook, a TuneD profile, a sysctl.d drop-in or an OpenShift NTO Tuned resource.
    Export(crate::cli::export_cmd::ExportArgs),
    /// Write shell completions to stdout.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Write the man page (roff) to stdout.
    Man,
}

/// Where telemetry comes from.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Read telemetry from this CSV (as written by `collect --out` or the simulator) instead of the live host.
    #[arg(long, value_name = "FILE")]
    pub telemetry: Option<PathBuf>,
}

/// Arguments of `diagnose`.
#[derive(Debug, Clone, Args)]
pub struct DiagnoseArgs {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Snapshots per window: spread evenly over --interval on a live host; with --watch, consecutive rows of a --telemetry CSV (without --watch a CSV is one window of all its rows). At least 2.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub samples: usize,
    /// Diagnose N windows back to back (0: until interrupted; a CSV: until its rows run out) and print one line, with its time, per finding that appears or clears.
    #[arg(long, value_name = "N")]
    pub watch: Option<u32>,
}

/// Arguments of `recommend`.
#[derive(Debug, Clone, Args)]
pub struct RecommendArgs {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Write the plan (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub reasoner: crate::cli::compare_cmd::ReasonerArgs,
}

/// Arguments of `simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Output CSV.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Number of windows (the CSV has one more row than windows).
    #[arg(long, default_value_t = 3)]
    pub windows: usize,
    /// Simulated seconds per window.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
}
