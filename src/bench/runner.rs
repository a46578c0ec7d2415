//! One bench run from start to report: build the namespaces, set the start
//! values, observe the workload, let the pipeline decide, measure every arm
//! in interleaved repetitions (each arm applied and rolled back through the
//! transaction), compare, and tear everything down. `run_command` does the
//! same for a user's own command in a namespace the user names.

use super::anchors::{self, TUNED};
use super::arms::{measure_arms, results};
use super::configure::Switcher;
use super::confirm;
use super::grid::{self, GridMode};
use super::netns;
use super::pipeline::{self, Decision};
use super::probe::{Observed, observe};
use super::report::{Arm, ArmKind, BENCH_SCHEMA_VERSION, BenchReport, Observation, Round};
use super::scenario::{Scenario, ScenarioId, Stage, scenario};
use super::stage::{self, Staged};
use super::target::Target;
use super::sockets;
use super::topology;
use super::tune::{self as closed_loop, LlmCandidate, TuneArmSpec, TuneSummary};
use super::workdir::WorkDir;
use super::workload::RunOutput;
use crate::apply::AuditLog;
use crate::kb::entry::Measure;
use crate::kb::{Intent, Kb};
use crate::reasoning::Plan;
use crate::reasoning::findings::read_signal;
use crate::safety::Policy;
use crate::sysctl::store::MemStore;
use crate::sysctl::{SysctlKey, Value};
use crate::telemetry::Window;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Settings shared by scenario and command runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Short CI mode: fewer requests and reps; no A/A, anchors or grid.
    pub quick: bool,
    /// Repetitions per arm (default: the scenario's; 5 for a command).
    pub reps: Option<usize>,
    /// The intent the engine serves.
    pub intent: Intent,
    /// A user policy instead of the bench's.
    pub policy: Option<Policy>,
    /// A plan file instead of the engine's recommendation.
    pub plan: Option<PathBuf>,
    /// Where artifacts go.
    pub out_dir: PathBuf,
    /// Seed of the closed loop's optimiser.
    pub seed: u64,
    /// The command line, for the report.
    pub command_line: String,
    /// The operator allows a scenario to change the host's global keys it names (`map-heavy`).
    pub allow_host: bool,
    /// The grid: each implicated key's range on its own, or their product (`--grid full`).
    pub grid: GridMode,
    /// Trials of the `semantos:tune` arm (0: no closed-loop arm).
    pub tune_budget: usize,
}

pub use super::configure::Progress;

/// Metrics worth keeping of every run besides what the KB's symptoms read.
const SOCKET_STATE: [&str; 11] = [
    "sock.connections",
    "sock.bdp_bytes.max",
    "sock.rtt_ms.p50",
    "sock.min_rtt_ms.min",
    "sock.cwnd.max",
    "sock.idle_restarts",
    "sock.retrans.sum",
    "sock.rwnd_limited_pct.max",
    "sock.sndbuf_limited_pct.max",
    "listen.backlog.max",
    "listen.queue.max",
];

/// What the KB's network symptoms read in this window (`<metric>/s` for rates), and socket state;
/// with `all`, what every symptom reads (a limit scenario's evidence is not in the network counters).
pub fn telemetry_of(kb: &Kb, obs: &Observed, all: bool) -> BTreeMap<String, f64> {
    let w = Window::new(&obs.before, &obs.after);
    let mut m = BTreeMap::new();
    for sym in kb.symptoms.values() {
        for s in &sym.when {
            let net = all || ["sock.", "listen.", "netstat.", "snmp.", "sockstat."].iter().any(|p| s.metric.starts_with(p));
            if let (true, Some(v)) = (net, read_signal(&w, s)) {
                let name = match s.measure {
                    Measure::Rate => format!("{}/s", s.metric),
                    Measure::Delta => format!("{} delta", s.metric),
                    _ => s.metric.clone(),
                };
                m.insert(name, v);
            }
        }
    }
    for k in SOCKET_STATE {
        if let Some(v) = obs.after.get(k) {
            m.insert(k.to_string(), v);
        }
    }
    for (k, v) in obs.after.metrics.range("sock.cc.".to_string().."sock.cc/".to_string()) {
        m.insert(k.clone(), *v);
    }
    m
}

pub(super) use super::configure::effective;

/// The pipeline's decision, from the engine or from `--plan`.
fn decide(kb: &Kb, o: &Options, policy: &Policy, target: &Target, obs: &Observed, current: &BTreeMap<String, Value>) -> Result<Decision> {
    let plan = match &o.plan {
        Some(path) => {
            let store = MemStore::new(current.iter().filter_map(|(k, v)| Some((SysctlKey::parse(k).ok()?, v.clone()))));
            Some(Plan::load(path, o.intent, &store)?)
        }
        None => None,
    };
    Ok(pipeline::decide(kb, o.intent, policy, target, &obs.before, &obs.after, current, plan))
}

/// The policy in force and its description.
pub(super) fn policy_of(kb: &Kb, o: &Options, target: &Target) -> (Policy, String) {
    match (&o.policy, target) {
        (Some(p), _) => (p.clone(), pipeline::describe_policy(p, kb, false)),
        (None, Target::Host(keys) | Target::Tree(_, keys)) => {
            let p = pipeline::stage_policy(kb, keys);
            let d = format!("stage policy — only {} may be written here, at most ×{} per change, {} change(s) per batch", keys.join(", "), p.max_step_ratio, p.batch_size);
            (p, d)
        }
        (None, Target::Netns) => {
            let p = pipeline::bench_policy(kb);
            let d = pipeline::describe_policy(&p, kb, true);
            (p, d)
        }
    }
}

/// Most rounds of the closed loop. A round stops the loop when it proposes nothing new.
pub const MAX_ROUNDS: usize = 3;

/// What the closed loop settled on.
pub(super) struct Tuned {
    pub(super) rounds: Vec<Round>,
    /// KB values at the start.
    pub(super) start: BTreeMap<String, Value>,
    /// SemantOS's configuration: writes relative to the start values.
    pub(super) writes: Vec<(String, String)>,
}

/// The user's loop, run by the bench: observe under the configuration so far, diagnose, recommend,
/// check; apply what is new and observe again, until a round proposes nothing (or `MAX_ROUNDS`).
/// A policy's step limit is per change and per round, so a clamped change continues in the next
/// round, as it would for a user who runs `semantos apply` again while the symptom persists.
pub(super) fn tune(kb: &Kb, o: &Options, policy: &Policy, sw: &Switcher, tag: &str, progress: Progress, run: &dyn Fn() -> Result<(RunOutput, Observed)>) -> Result<Tuned> {
    let mut rounds: Vec<Round> = Vec::new();
    let mut start: Option<BTreeMap<String, Value>> = None;
    let mut writes: Vec<(String, String)> = Vec::new();
    // A plan file is the user's decision: one round, no loop.
    let max = if o.plan.is_some() { 1 } else { MAX_ROUNDS };
    for round in 0..max {
        if !writes.is_empty() {
            sw.set("arm", &format!("round {round}"), &writes)?;
        }
        let observed = (|| -> Result<_> {
            let (out, obs) = run()?;
            let current = sw.current()?;
            let decision = decide(kb, o, policy, sw.target(), &obs, &current)?;
            Ok((out, obs, current, decision))
        })();
        if !writes.is_empty() {
            sw.restore("arm").with_context(|| format!("restoring the start values after round {round}"))?;
        }
        let (out, obs, current, decision) = observed.with_context(|| format!("round {round}"))?;
        let new = effective(&decision.writes(), &current);
        progress(&format!(
            "{tag}: round {round}: findings [{}]; proposes [{}]",
            decision.findings.findings.iter().map(|f| f.id.as_str()).collect::<Vec<_>>().join(", "),
            new.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
        ));
        let start = start.get_or_insert_with(|| current.clone());
        rounds.push(Round {
            round,
            config: writes.clone(),
            observation: Observation { window_s: Window::new(&obs.before, &obs.after).seconds(), dumps: obs.dumps, samples: out.samples_ms.len(), telemetry: telemetry_of(kb, &obs, *sw.target() != Target::Netns) },
            findings: decision.findings,
            checked: decision.checked,
            proposed: new.clone(),
        });
        if new.is_empty() {
            break;
        }
        for (k, v) in new {
            writes.retain(|(w, _)| *w != k);
            writes.push((k, v));
        }
        writes = effective(&writes, start);
    }
    Ok(Tuned { rounds, start: start.unwrap_or_default(), writes })
}

pub(super) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Runs built-in scenario `id` and returns its report (artifacts are written by the caller); with
/// `o.tune_budget` above 0 the `semantos:tune` arm runs beside `semantos`.
pub fn run_scenario(kb: &Kb, id: ScenarioId, o: &Options, progress: Progress) -> Result<BenchReport> {
    run_scenario_with(kb, id, o, &[TuneArmSpec::semantos(o.tune_budget)], None, progress)
}

/// Runs built-in scenario `id` with the closed-loop arms `specs` (`llm` gives the LLM reasoner's candidate).
pub fn run_scenario_with(kb: &Kb, id: ScenarioId, o: &Options, specs: &[TuneArmSpec], llm: Option<LlmCandidate>, progress: Progress) -> Result<BenchReport> {
    topology::preflight()?;
    let sc = scenario(id, o.quick);
    if let Stage::Host { keys } = &sc.stage
        && !o.allow_host
    {
        // Before the lock, the namespaces and the work directory: a refused run does nothing.
        bail!("{} changes the host's global {} and runs only with --allow-host; nothing was run or written", id.name(), keys.join(", "));
    }
    let _lock = super::lock::acquire(progress)?;
    let t0 = std::time::Instant::now();
    for n in netns::remove_stale() {
        progress(&format!("removed namespace {n}, left by a bench run that no longer exists"));
    }
    sockets::raise_nofile_limit();
    let reps = o.reps.unwrap_or(sc.reps).max(1);
    std::fs::create_dir_all(&o.out_dir).with_context(|| format!("creating {}", o.out_dir.display()))?;
    // The namespaces (and any value left in them) are removed below: no backup needs keeping.
    let work = WorkDir::new(o.out_dir.join(format!(".bench-work-{}-{}", id.name(), std::process::id())));
    std::fs::create_dir_all(work.path()).with_context(|| format!("creating {}", work.path().display()))?;
    let audit_path = o.out_dir.join(format!("bench_{}.audit.jsonl", id.name()));
    let _ = std::fs::remove_file(&audit_path);
    progress(&format!("{}: building the stage", id.name()));
    let staged = stage::build(&sc, work.path(), o.allow_host)?;
    let result = run_on(kb, &sc, reps, &staged, work.path(), &audit_path, o, specs, llm, progress);
    let relay = staged.teardown();
    let mut report = result?;
    report.relay = relay;
    report.duration_s = t0.elapsed().as_secs_f64();
    report.notes.push(format!("audit log of every write and restore: {}", audit_path.display()));
    Ok(report)
}

/// The keys the grid spans: the scenario's list, or every key the KB links to a symptom any round found,
/// that may be written on this stage (never a `never` key, never one the stage's target refuses).
fn grid_keys(kb: &Kb, sc: &Scenario, target: &Target, rounds: &[Round]) -> Vec<String> {
    let found: Vec<&str> = rounds.iter().flat_map(|r| r.findings.findings.iter().map(|f| f.id.as_str())).collect();
    let writable = |k: &str| kb.param(k).is_some_and(|p| p.risk != crate::kb::Risk::Never && target.refuses(k, p.scope).is_none());
    grid::implicated_keys(kb, &sc.judge.grid_keys, &found, &writable)
}

/// The TuneD anchors' arms, each inside the policy.
fn anchor_arms(kb: &Kb, policy: &Policy, current: &BTreeMap<String, Value>, arms: &mut Vec<Arm>) {
    for p in &TUNED {
        let r = anchors::resolve(p, kb, current);
        let (ok, refused): (Vec<_>, Vec<_>) = r.writes.into_iter().partition(|(k, _)| policy.allows(k) && !policy.forbids(k));
        let mut arm_notes = r.notes;
        arm_notes.extend(refused.iter().map(|(k, v)| format!("{k} = {v}: not applied (outside the policy)")));
        arm_notes.insert(0, p.source.to_string());
        arms.push(Arm { name: p.name.into(), kind: ArmKind::Tuned, writes: effective(&ok, current), notes: arm_notes });
    }
}

/// The grid's arms over `keys` (as grid rows naming the arm that measures each point; a point equal
/// to another arm's configuration is measured once, as that arm). Independent of SemantOS's choice.
#[allow(clippy::too_many_arguments)]
fn grid_arms(kb: &Kb, keys: &[String], mode: GridMode, current: &BTreeMap<String, Value>, arms: &mut Vec<Arm>, progress: Progress) -> Result<Vec<(grid::GridPoint, String)>> {
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let points = match mode {
        GridMode::Axes => grid::range_points(kb, &key_refs, current),
        GridMode::Full => grid::full_points(kb, &key_refs, current).map_err(anyhow::Error::msg)?,
    };
    let how = match mode {
        GridMode::Full => format!("full: every combination, {} values per wide range", grid::points_per_range(kb, &key_refs, current).unwrap_or(grid::RANGE_POINTS)),
        GridMode::Axes => "each key's whole KB range on its own".to_string(),
    };
    progress(&format!("grid ({how}) over [{}]: {} points besides the start values", keys.join(", "), points.len()));
    let mut grid_rows: Vec<(grid::GridPoint, String)> = Vec::new();
    let start_point = grid::GridPoint { label: format!("start ({})", keys.iter().filter_map(|k| Some(format!("{}={}", k.rsplit('.').next()?, current.get(k)?))).collect::<Vec<_>>().join(", ")), writes: vec![] };
    if !points.is_empty() {
        grid_rows.push((start_point, "start".into()));
    }
    for p in points {
        let eff = effective(&p.writes, current);
        if eff.is_empty() {
            // The start values, already the grid's first point.
            continue;
        }
        let same = arms.iter().find(|a| a.kind != ArmKind::NoiseCheck && a.writes == eff).map(|a| a.name.clone());
        let name = match same {
            Some(n) => n,
            None => {
                let n = format!("grid:{}", p.label);
                arms.push(Arm { name: n.clone(), kind: ArmKind::Grid, writes: eff, notes: vec![] });
                n
            }
        };
        grid_rows.push((p, name));
    }
    Ok(grid_rows)
}

/// The closed-loop arms of `specs`, each run to its budget; their best configurations become arms.
#[allow(clippy::too_many_arguments)]
fn closed_loop_arms(
    kb: &Kb,
    sc: &Scenario,
    o: &Options,
    policy: &Policy,
    sw: &Switcher,
    env: super::workload::Env,
    tuned: &Tuned,
    specs: &[TuneArmSpec],
    llm: Option<LlmCandidate>,
    arms: &mut Vec<Arm>,
    progress: Progress,
) -> Result<Vec<TuneSummary>> {
    let Some(first) = tuned.rounds.first() else { bail!("{}: the closed loop needs the first round's findings, and no round was observed", sc.id.name()) };
    let st = closed_loop::Stage {
        kb,
        policy,
        sw,
        workload: &*sc.workload,
        env,
        objective: sc.judge.objective,
        start: &tuned.start,
        findings: &first.findings,
        rules: &tuned.writes,
        llm,
        quick: o.quick,
        seed: o.seed,
    };
    let mut out = Vec::new();
    for spec in specs.iter().filter(|s| s.budget > 0) {
        let t = closed_loop::run_arm(&st, spec, progress)?;
        arms.push(Arm { name: spec.name.clone(), kind: ArmKind::Tune, writes: t.best.clone(), notes: vec![format!("the closed loop's best after {} trial(s) ({})", t.trials.len(), t.sources.join(" → "))] });
        out.push(t);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn run_on(kb: &Kb, sc: &Scenario, reps: usize, staged: &Staged, work: &Path, audit_path: &Path, o: &Options, specs: &[TuneArmSpec], llm: Option<LlmCandidate>, progress: Progress) -> Result<BenchReport> {
    let id = sc.id;
    let (policy, policy_text) = policy_of(kb, o, &staged.target);
    let nss = staged.namespaces();
    // The start values are the stage, not a tuning: their own whitelist, same transaction and scope guard.
    let stage_policy = Policy { whitelist: sc.start.iter().map(|(k, _)| k.clone()).collect(), ..Policy::default() };
    let setup = Switcher::new(kb, &stage_policy, nss.clone(), work, AuditLog::to(audit_path)).with_target(staged.target.clone());
    if !sc.start.is_empty() {
        setup.set("start", "start values", &sc.start)?;
    }
    let inner = (|| -> Result<BenchReport> {
        let sw = Switcher::new(kb, &policy, nss.clone(), work, AuditLog::to(audit_path)).with_target(staged.target.clone());
        let all_metrics = staged.target != Target::Netns;
        let workload = &*sc.workload;
        let env = staged.env();
        let run = || observe(&staged.probes, sc.sample_every, || workload.run(&env));
        progress(&format!("{}: observing the workload ({})", id.name(), workload.describe()));
        let tuned = tune(kb, o, &policy, &sw, id.name(), progress, &run)?;
        let current = tuned.start.clone();
        let sem_writes = tuned.writes.clone();
        let mut notes = vec!["each arm is applied and rolled back through the same transaction as `semantos apply` (backup, journal, read-back); no monitor window runs inside it: the arm's measurement is the monitor".to_string()];
        let mut arms = vec![Arm { name: "start".into(), kind: ArmKind::Start, writes: vec![], notes: vec![] }];
        if !o.quick {
            arms.push(Arm { name: "start (A/A)".into(), kind: ArmKind::NoiseCheck, writes: vec![], notes: vec![] });
        }
        arms.push(Arm { name: "semantos".into(), kind: ArmKind::Semantos, writes: sem_writes.clone(), notes: vec![] });
        let keys = grid_keys(kb, sc, &staged.target, &tuned.rounds);
        // Before the closed loop: a full grid too large to measure is refused before anything long runs.
        if !o.quick && o.grid == GridMode::Full {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            grid::full_points(kb, &refs, &current).map_err(anyhow::Error::msg)?;
        }
        let tune = closed_loop_arms(kb, sc, o, &policy, &sw, env, &tuned, specs, llm, &mut arms, progress)?;
        let grid_rows = if o.quick {
            notes.push("quick mode: no A/A check, no TuneD anchors and no grid; the goals are judged in full mode only, except the avoid-list check".into());
            vec![]
        } else {
            anchor_arms(kb, &policy, &current, &mut arms);
            grid_arms(kb, &keys, o.grid, &current, &mut arms, progress)?
        };
        progress(&format!("{}: measuring {} arms × {reps} reps, interleaved", id.name(), arms.len()));
        // The grid is a measurement, not a recommendation: its keys may be written on this stage even where the
        // engine's policy would not propose them (tcp_syncookies is high risk). The store's target rule still holds.
        let mut measuring = policy.clone();
        measuring.whitelist.extend(keys.iter().cloned());
        let sw = Switcher::new(kb, &measuring, nss.clone(), work, AuditLog::to(audit_path)).with_target(staged.target.clone());
        let (runs, receipts) = measure_arms(&arms, reps, &sw, progress, || {
            let (out, obs) = run()?;
            Ok((out, telemetry_of(kb, &obs, all_metrics)))
        })?;
        let mut res = results(&arms, &runs, &grid_rows, &sc.judge, &tuned.rounds, tune);
        if !o.quick {
            confirm::round(&mut res, &arms, &tuned.start, sc.judge.objective, &sw, progress, &mut || {
                let (out, obs) = run()?;
                Ok((out, telemetry_of(kb, &obs, all_metrics)))
            })?;
        }
        Ok(BenchReport {
            schema_version: BENCH_SCHEMA_VERSION,
            scenario: id.name().into(),
            mode: if o.quick { "quick" } else { "full" }.into(),
            command: o.command_line.clone(),
            kernel: kernel_release(),
            // Filled in by run_scenario, which holds the clock.
            duration_s: f64::NAN,
            workload: workload.describe(),
            topology: staged.description.clone(),
            intent: o.intent.name().into(),
            policy: policy_text.clone(),
            start: staged.host_start().unwrap_or_else(|| sc.start.clone()),
            objective: sc.judge.objective.describe().into(),
            avoid: sc.judge.avoid.clone(),
            avoided_changes_proposed: res.hits,
            rounds: tuned.rounds,
            apply_receipts: receipts,
            arms: res.arms,
            noise_check: res.noise,
            grid_mode: o.grid,
            grid_keys: if o.quick { vec![] } else { keys },
            grid: res.grid,
            goals: res.goals,
            tune: res.tune,
            runs,
            relay: None,
            notes,
            files: vec![],
        })
    })();
    let restored = if sc.start.is_empty() { Ok(()) } else { setup.restore("start") };
    let report = inner?;
    restored?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_writes_are_the_same_configuration() {
        let cur: BTreeMap<String, Value> = [("net.core.somaxconn".to_string(), Value::int(128))].into();
        let w = |v: &str| vec![("net.core.somaxconn".to_string(), v.to_string())];
        assert!(effective(&w("128"), &cur).is_empty());
        assert_eq!(effective(&w(" 1024 "), &cur), w("1024"));
    }
}
