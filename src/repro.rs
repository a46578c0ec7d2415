//! The sandbox reproduction: the whole pipeline on a simulated host.
//!
//! Seed a sandbox `/proc/sys` tree with the scenario's starting values →
//! observe the simulated host (two snapshots) → diagnose → recommend (or
//! take the user's plan) → guardrails → staged apply into the sandbox with
//! the simulator as monitor → repeat for a few rounds → evaluate baseline
//! vs tuned over many seeded, paired trials → `sysctl.conf`,
//! `summary.csv`, a plot and a decision trace. A mode is a choice of source,
//! store and workload; these are the same stages a real host goes through.

use crate::apply::{self, ApplyOptions, AuditLog, HostIdentity, OnRegression, Paths, Receipt};
use crate::config::ExperimentConfig;
use crate::eval::stats::percentile;
use crate::eval::summary::{self, SummaryRow, TrialResult};
use crate::kb::Kb;
use crate::reasoning::{self, Context, Findings, Plan, Reasoner, RulesEngine};
use crate::rollout::SimMonitor;
use crate::safety::{self, CheckedPlan, guarded};
use crate::sim::{self, params::HostParams, rng::trial_seed};
use crate::sysctl::{SysctlKey, SysctlStore, Value, sysctld};
use anyhow::{Context as _, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod tune;

/// Input the reproduction refuses before writing anything.
#[derive(Debug, thiserror::Error)]
pub enum ReproError {
    /// The plan file does not parse.
    #[error("{0}")]
    InvalidPlan(String),
    /// The guardrails rejected the plan.
    #[error("{0}")]
    Rejected(String),
}

/// Where the reproduction writes.
#[derive(Debug, Clone)]
pub struct ReproPaths {
    /// Sandbox directory: the `proc_sys/` tree, its backup and `sysctl.conf`.
    pub sandbox: PathBuf,
    /// The applied configuration (sysctl.d syntax).
    pub sysctl_conf: PathBuf,
    /// Results directory: `summary.csv`, `summary.svg`, `trials.csv`, `trace.json`.
    pub results: PathBuf,
    /// Audit log (JSON lines).
    pub audit: PathBuf,
}

impl ReproPaths {
    /// The documented defaults under `root` (the repository).
    pub fn defaults(root: &Path) -> Self {
        Self {
            sandbox: root.join("experiments/sandbox"),
            sysctl_conf: root.join("experiments/sandbox/sysctl.conf"),
            results: root.join("experiments/results"),
            audit: root.join("logs/semantos-audit.jsonl"),
        }
    }
}

/// One diagnose → recommend → check → apply round.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// 0-based.
    pub round: usize,
    /// Digest of the snapshot before the window.
    pub before_digest: String,
    /// What the diagnosis found.
    pub findings: Findings,
    /// Guardrail verdicts (the plan is inside).
    pub checked: CheckedPlan,
    /// What the transaction did.
    pub receipt: Option<Receipt>,
    /// What the monitor saw after each batch.
    pub monitor: Vec<String>,
}

/// Everything a reproduction produced.
#[derive(Debug, Clone, Serialize)]
pub struct ReproReport {
    /// Seed.
    pub seed: u64,
    /// Trials.
    pub trials: usize,
    /// Tuning rounds.
    pub rounds: Vec<Round>,
    /// Keys whose final value differs from the start: (key, start, final).
    pub changes: Vec<(String, String, String)>,
    /// The evaluation summary.
    pub summary: Vec<SummaryRow>,
    /// The closed-loop tune after the rules rounds (a config with a `tune:` section).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tune: Option<tune::TuneReport>,
}

fn current_values(store: &dyn SysctlStore, kb: &Kb) -> BTreeMap<String, Value> {
    kb.params.keys().filter_map(|k| SysctlKey::parse(k).ok()).filter_map(|k| store.read(&k).ok().map(|v| (k.to_string(), v))).collect()
}

/// Runs the reproduction. `plan` replaces the rule engine for a single round; `progress(done, total)` reports evaluation trials.
pub fn run(cfg: &ExperimentConfig, kb: &Kb, paths: &ReproPaths, config_label: &str, plan: Option<&Path>, progress: &dyn Fn(usize, usize)) -> Result<ReproReport> {
    crate::config::check_start_values(cfg, kb)?;
    let tree = sim::seed_sandbox(&cfg.host, &paths.sandbox.join("proc_sys"))?;
    let store = guarded(tree.clone(), kb, &cfg.policy);
    let start = current_values(&store, kb);
    let baseline = HostParams::from_store(&store);
    let host = HostIdentity { hostname: cfg.host.hostname.clone(), boot_id: format!("sim-{}", cfg.host.hostname), kernel_release: cfg.host.kernel_release.clone() };
    let apaths = Paths::beside(&paths.sandbox.join("sysctl_backup.json"));
    for stale in [&apaths.backup, &apaths.journal] {
        let _ = std::fs::remove_file(stale);
    }
    let audit = AuditLog::to(&paths.audit);
    let user_plan = match plan {
        Some(p) => Some(Plan::load(p, cfg.intent, &store).map_err(|e| ReproError::InvalidPlan(format!("{e:#}")))?),
        None => None,
    };
    let mut rounds = Vec::new();
    let max_rounds = if user_plan.is_some() { 1 } else { cfg.max_rounds };
    for round in 0..max_rounds {
        let params = HostParams::from_store(&store);
        let out = sim::run(&cfg.host, &params, &cfg.workloads, trial_seed(cfg.seed, 100_000 + round), cfg.observe_seconds);
        let findings = reasoning::diagnose(&out.before, &out.after, kb);
        let current = current_values(&store, kb);
        let plan = match &user_plan {
            Some(p) => p.clone(),
            None => {
                let ctx = Context { kb, intent: cfg.intent, current: &current, window: crate::telemetry::Window::new(&out.before, &out.after) };
                RulesEngine.recommend(&findings, &ctx)?
            }
        };
        let checked = safety::check(&plan, kb, &cfg.policy, &current);
        if let Some(why) = &checked.aborted {
            return Err(ReproError::Rejected(format!("round {round}: the guardrails rejected the plan, nothing was applied:\n{why}")).into());
        }
        let writes = checked.writes();
        let mut round_report = Round { round, before_digest: out.before.digest(), findings, checked: checked.clone(), receipt: None, monitor: Vec::new() };
        if writes.is_empty() {
            rounds.push(round_report);
            break;
        }
        let mut monitor = SimMonitor::new(&store, &cfg.host, &cfg.workloads, trial_seed(cfg.seed, 200_000 + round), cfg.policy.monitor_seconds.max(15.0), cfg.policy.max_p95_regression);
        let opts = ApplyOptions {
            paths: apaths.clone(),
            batch_size: cfg.policy.batch_size,
            on_regression: OnRegression::RollbackBatch,
            persist: None,
            run_id: format!("repro-seed{}-round{round}", cfg.seed),
            now_s: 0,
            force: false,
            rollout_id: None,
        };
        let receipt = apply::apply(&store, kb, &writes, serde_json::to_value(&checked.plan)?, &host, &opts, Some(&mut monitor), &audit)?;
        round_report.monitor = std::mem::take(&mut monitor.log);
        let kept = receipt.applied.iter().filter(|a| a.kept).count();
        round_report.receipt = Some(receipt);
        rounds.push(round_report);
        if kept == 0 {
            break;
        }
    }
    let changes = changed(&start, &current_values(&store, kb));
    write_sysctl_conf(&paths.sysctl_conf, cfg, config_label, &changes, &rounds)?;
    let tuned = HostParams::from_store(&store);
    let trials = evaluate(cfg, &baseline, &tuned, progress);
    let summary = summary::summarize(&trials, cfg.seed);
    write_results(&paths.results, &summary, &trials, cfg)?;
    // Only with a user's plan absent: the closed loop starts from the rules plan.
    let tune = match (&cfg.tune, plan) {
        (Some(t), None) => Some(tune::run(cfg, kb, t, &changes, &paths.results)?),
        _ => None,
    };
    let report = ReproReport { seed: cfg.seed, trials: cfg.trials, rounds, changes, summary, tune };
    let trace = serde_json::to_string_pretty(&report)?;
    apply::files::write_atomic(&paths.results.join("trace.json"), trace.as_bytes(), 0o644)?;
    Ok(report)
}

/// Each key whose value differs between `start` and `end`, as (key, from, to).
fn changed(start: &BTreeMap<String, Value>, end: &BTreeMap<String, Value>) -> Vec<(String, String, String)> {
    end.iter()
        .filter_map(|(k, v)| {
            let s = start.get(k)?;
            (s != v).then(|| (k.clone(), s.to_string(), v.to_string()))
        })
        .collect()
}

/// The paired evaluation: per trial seed, the baseline and the tuned host run the same workloads;
/// `progress(done, total)` after each trial.
fn evaluate(cfg: &ExperimentConfig, baseline: &HostParams, tuned: &HostParams, progress: &dyn Fn(usize, usize)) -> Vec<TrialResult> {
    let mut trials = Vec::new();
    for i in 0..cfg.trials {
        let s = trial_seed(cfg.seed, i);
        let b = sim::run(&cfg.host, baseline, &cfg.workloads, s, cfg.trial_seconds);
        let t = sim::run(&cfg.host, tuned, &cfg.workloads, s, cfg.trial_seconds);
        for (w, bl) in &b.latencies {
            let tl = &t.latencies[w];
            trials.push(TrialResult {
                workload: w.clone(),
                trial: i,
                baseline_p50_ms: percentile(bl, 50.0),
                baseline_p95_ms: percentile(bl, 95.0),
                tuned_p50_ms: percentile(tl, 50.0),
                tuned_p95_ms: percentile(tl, 95.0),
            });
        }
        progress(i + 1, cfg.trials);
    }
    trials
}

fn write_sysctl_conf(path: &Path, cfg: &ExperimentConfig, config_label: &str, changes: &[(String, String, String)], rounds: &[Round]) -> Result<()> {
    let mut header = vec![
        format!("Generated by semantos {} — sandbox reproduction (simulated host {}, kernel {})", env!("CARGO_PKG_VERSION"), cfg.host.hostname, cfg.host.kernel_release),
        format!("seed {}, {} evaluation trials, intent {}, config {config_label}", cfg.seed, cfg.trials, cfg.intent.name()),
        "Values kept by the staged rollout after the monitor's checks; load with `sysctl -p FILE`.".into(),
        String::new(),
    ];
    let why = |k: &str| -> String {
        rounds
            .iter()
            .filter_map(|r| r.checked.plan.change(k))
            .flat_map(|c| c.finding_ids.iter().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (k, from, to) in changes {
        header.push(format!("{k}: {from} → {to} ({})", why(k)));
    }
    if changes.is_empty() {
        header.push("No change was kept.".into());
    }
    let entries: Vec<(SysctlKey, String)> = changes.iter().map(|(k, _, to)| (SysctlKey::parse(k).expect("KB keys are valid"), to.clone())).collect();
    apply::files::write_atomic(path, sysctld::render(&header, &entries).as_bytes(), 0o644).with_context(|| format!("writing {}", path.display()))
}

fn write_results(dir: &Path, rows: &[SummaryRow], trials: &[TrialResult], cfg: &ExperimentConfig) -> Result<()> {
    apply::files::write_atomic(&dir.join("summary.csv"), summary::to_csv(rows).as_bytes(), 0o644)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    for t in trials {
        w.serialize(t)?;
    }
    apply::files::write_atomic(&dir.join("trials.csv"), &w.into_inner()?, 0o644)?;
    let title = format!("SemantOS sandbox reproduction, simulated host: p95 baseline vs tuned (seed {}, {} trials)", cfg.seed, cfg.trials);
    let source = "simulated: every latency comes from the seeded simulator, not from a measurement of this machine";
    let svg = crate::eval::plot::render_svg(rows, &title, source)?;
    apply::files::write_atomic(&dir.join("summary.svg"), svg.as_bytes(), 0o644)?;
    Ok(())
}
