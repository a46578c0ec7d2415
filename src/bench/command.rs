//! `semantos bench --cmd`: a user's own workload, a shell command printing
//! its latencies, observed, tuned and measured in the namespace the user
//! names (or, with `--allow-host`, the bench's own) with the same loop,
//! transaction and statistics as a built-in scenario.

use super::configure::Switcher;
use super::netns::Netns;
use super::objective;
use super::scenario::Judging;
use super::probe::{NsProbe, observe};
use super::report::{Arm, ArmKind, BENCH_SCHEMA_VERSION, BenchReport};
use super::arms::{measure_arms, results};
use super::runner::{Options, Progress, kernel_release, policy_of, telemetry_of, tune};
use super::target::Target;
use super::topology;
use super::workdir::WorkDir;
use super::workload::RunOutput;
use crate::apply::AuditLog;
use crate::kb::Kb;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// A user's workload command.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// The shell command; it prints one latency per line, or CSV with `column`.
    pub cmd: String,
    /// The namespace to run it in and tune (`None`: the bench's own namespace).
    pub netns: Option<String>,
    /// CSV column (header name, or 1-based index) holding the latency.
    pub column: Option<String>,
    /// How long one run may take; then its process group is killed and the run fails.
    pub timeout: Duration,
}

fn run_user_command(spec: &CommandSpec) -> Result<RunOutput> {
    let c = crate::eval::harness::UserCommand { cmd: spec.cmd.clone(), netns: spec.netns.clone(), column: spec.column.clone(), timeout: spec.timeout };
    Ok(RunOutput { samples_ms: crate::eval::harness::run(&c)?.samples, ..Default::default() })
}

/// Runs a user's command under the current and the proposed configuration.
pub fn run_command(kb: &Kb, spec: &CommandSpec, o: &Options, progress: Progress) -> Result<BenchReport> {
    topology::preflight()?;
    let _lock = super::lock::acquire(progress)?;
    let t0 = std::time::Instant::now();
    let ns = spec.netns.as_deref().map(Netns::existing).transpose()?;
    let reps = o.reps.unwrap_or(if o.quick { 2 } else { 5 }).max(1);
    std::fs::create_dir_all(&o.out_dir).with_context(|| format!("creating {}", o.out_dir.display()))?;
    let work = WorkDir::new(o.out_dir.join(format!(".bench-work-cmd-{}", std::process::id())));
    std::fs::create_dir_all(work.path()).with_context(|| format!("creating {}", work.path().display()))?;
    let report = measure_command(kb, spec, o, progress, ns.as_ref(), reps, work.path());
    // The values live on in the user's namespace (or the host): a failed restore keeps its backup.
    let mut report = work.finish(report)?;
    report.duration_s = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// `run_command` once its work directory `work` exists.
fn measure_command(kb: &Kb, spec: &CommandSpec, o: &Options, progress: Progress, ns: Option<&Netns>, reps: usize, work: &Path) -> Result<BenchReport> {
    let (policy, policy_text) = policy_of(kb, o, &Target::Netns);
    let audit_path = o.out_dir.join("bench_cmd.audit.jsonl");
    let _ = std::fs::remove_file(&audit_path);
    let probes = vec![NsProbe::open(ns, work)?];
    let sw = Switcher::new(kb, &policy, vec![ns], work, AuditLog::to(&audit_path));
    let where_ = ns.map(|n| format!("network namespace {}", n.name())).unwrap_or_else(|| "the bench's own network namespace (the host's, unless run inside one)".into());
    let run = || observe(&probes, Duration::from_millis(50), || run_user_command(spec));
    progress(&format!("cmd: observing {:?} in {where_}", spec.cmd));
    let tuned = tune(kb, o, &policy, &sw, "cmd", progress, &run)?;
    let sem_writes = tuned.writes.clone();
    let mut arms = vec![Arm { name: "start".into(), kind: ArmKind::Start, writes: vec![], notes: vec!["the current configuration".into()] }];
    if !o.quick {
        arms.push(Arm { name: "start (A/A)".into(), kind: ArmKind::NoiseCheck, writes: vec![], notes: vec![] });
    }
    arms.push(Arm { name: "semantos".into(), kind: ArmKind::Semantos, writes: sem_writes.clone(), notes: vec![] });
    progress(&format!("cmd: plan [{}]; measuring {} arms × {reps} reps", sem_writes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "), arms.len()));
    let (runs, receipts) = measure_arms(&arms, reps, &sw, progress, || {
        let (out, obs) = run()?;
        Ok((out, telemetry_of(kb, &obs, false)))
    })?;
    let judge = Judging { objective: objective::Objective::P95Ms, avoid: vec![], grid_keys: vec![] };
    let res = results(&arms, &runs, &[], &judge, &tuned.rounds, vec![]);
    Ok(BenchReport {
        schema_version: BENCH_SCHEMA_VERSION,
        scenario: "cmd".into(),
        mode: if o.quick { "quick" } else { "full" }.into(),
        command: o.command_line.clone(),
        kernel: kernel_release(),
        // Filled in by run_command, which holds the clock.
        duration_s: f64::NAN,
        workload: format!("user command {:?}", spec.cmd),
        topology: where_.clone(),
        intent: o.intent.name().into(),
        policy: policy_text,
        start: vec![],
        objective: judge.objective.describe().into(),
        avoid: vec![],
        avoided_changes_proposed: vec![],
        rounds: tuned.rounds,
        apply_receipts: receipts,
        arms: res.arms,
        noise_check: res.noise,
        grid_mode: o.grid,
        grid_keys: vec![],
        grid: vec![],
        goals: res.goals,
        tune: vec![],
        runs,
        relay: None,
        notes: vec![format!("every arm is applied and rolled back in {where_} through the apply transaction; audit log {}", audit_path.display())],
        files: vec![],
    })
}
