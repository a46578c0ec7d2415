//! Flag groups the commands flatten: each command takes exactly the groups it
//! uses, so its `--help` lists only its flags and a flag it does not use is a
//! usage error (exit 2). Imports no command module.

use crate::kb::Intent;
use clap::Args;
use std::path::PathBuf;

/// `--json`.
#[derive(Debug, Clone, Default, Args)]
pub struct JsonArg {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `--kb DIR`.
#[derive(Debug, Clone, Default, Args)]
pub struct KbDirArg {
    /// Extra knowledge-base files (*.toml) merged over the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub kb: Option<PathBuf>,
}

/// `--plan FILE`.
#[derive(Debug, Clone, Default, Args)]
pub struct PlanArg {
    /// Use this plan (JSON or sysctl.d syntax; `-` reads either from standard input) instead of recommending one.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

/// `--policy FILE`.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArg {
    /// Policy file (YAML): whitelist, never_touch, max_step_ratio, max_risk, monitor thresholds.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// `--intent`.
#[derive(Debug, Clone, Default, Args)]
pub struct IntentArg {
    /// What to optimise for [default: latency].
    #[arg(long, value_enum)]
    pub intent: Option<Intent>,
}

/// `--sysctl-root DIR`.
#[derive(Debug, Clone, Args)]
pub struct TreeArg {
    /// Sysctl tree to read and write: /proc/sys, or a directory laid out like it (a sandbox).
    #[arg(long, value_name = "DIR", default_value = "/proc/sys")]
    pub sysctl_root: PathBuf,
}

/// Where telemetry comes from: a CSV, or two live snapshots.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Read telemetry from this CSV (as written by `collect --out` or the simulator) instead of the live host.
    #[arg(long, value_name = "FILE")]
    pub telemetry: Option<PathBuf>,
    /// The /proc to read telemetry from.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Seconds between the two telemetry snapshots of a live diagnosis.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    pub interval: f64,
}

/// Where the live-host state is kept (see FILES in the man page).
#[derive(Debug, Clone, Default, Args)]
pub struct StateLoc {
    /// State directory: backup, journal, lock, audit log [default: $SEMANTOS_STATE_DIR, the checkout's
    /// experiments/ and logs/ when run in one, /var/lib/semantos as root, else ~/.local/state/semantos].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Backup file of the live-host applier [default: <state dir>/sysctl_backup.json].
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
}

/// The state and the audit log of the commands that write (apply, rollback).
#[derive(Debug, Clone, Default, Args)]
pub struct StateArgs {
    #[command(flatten)]
    pub loc: StateLoc,
    /// Audit log (JSON lines) [default: <state dir>/audit.jsonl].
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
}

/// `--force`.
#[derive(Debug, Clone, Default, Args)]
pub struct ForceArg {
    /// Accept a backup from another host or boot.
    #[arg(long)]
    pub force: bool,
}

/// How an apply watches what it changed, and what it persists (also shapes `rollout` and the Ansible export).
#[derive(Debug, Clone, Default, Args)]
pub struct WatchArgs {
    /// Monitor window after each batch on a live host, seconds; 0 skips the telemetry watch (the
    /// health command still runs) [default: the policy's monitor_seconds, 30].
    #[arg(long, value_name = "S")]
    pub monitor_seconds: Option<f64>,
    /// Health command run after each batch; a non-zero exit rolls back.
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Also write committed values to this sysctl.d drop-in (removed again on rollback).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "/etc/sysctl.d/99-semantos.conf")]
    pub persist: Option<PathBuf>,
}

/// `--health-timeout`.
#[derive(Debug, Clone, Default, Args)]
pub struct HealthTimeoutArg {
    /// Seconds the health command may run before it is killed with its process group and counts as failed [default: the policy's health_timeout_seconds, 30].
    #[arg(long, value_name = "SECONDS")]
    pub health_timeout: Option<f64>,
}

/// The sandbox reproduction's inputs.
#[derive(Debug, Clone, Default, Args)]
pub struct ReproArgs {
    /// Seed of the sandbox reproduction (same seed and trials: byte-identical outputs) [default: 7].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluation trials of the sandbox reproduction [default: 20].
    #[arg(long)]
    pub trials: Option<usize>,
    /// Experiment configuration (YAML): workloads, trials, seed, intent, policy.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Where the reproduction (and `compare`) write.
#[derive(Debug, Clone, Args)]
pub struct ResultsArgs {
    /// Sandbox directory of the reproduction.
    #[arg(long, value_name = "DIR", default_value = "experiments/sandbox")]
    pub sandbox_dir: PathBuf,
    /// Results directory (summary.csv, summary.svg, trials.csv, trace.json).
    #[arg(long, value_name = "DIR", default_value = "experiments/results")]
    pub results_dir: PathBuf,
}

/// The reproduction's own outputs beyond [`ResultsArgs`].
#[derive(Debug, Clone, Default, Args)]
pub struct ReproOutArgs {
    /// Applied configuration written by the reproduction [default: <sandbox dir>/sysctl.conf].
    #[arg(long, value_name = "FILE")]
    pub sysctl_conf: Option<PathBuf>,
}
