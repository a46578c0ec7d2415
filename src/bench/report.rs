//! The bench's report and its exporters: pure functions from a
//! `BenchReport` to the bytes of `bench_<scenario>.csv` (one row per arm),
//! `bench_<scenario>_samples.csv` (every latency sample), the JSON report,
//! the SVG of latency distributions and the terminal table. The one place
//! that writes them is `write_artifacts`.

use super::compare::{ArmStats, Comparison, Goals, NoiseCheck};
use super::grid::{GridMode, GridPoint};
use super::objective::{Avoid, AvoidHit};
use super::relay::RelayStats;
use super::tune::TuneSummary;
use super::workload::RunOutput;
use crate::apply::Receipt;
use crate::reasoning::Findings;
use crate::safety::CheckedPlan;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Version of the JSON report.
pub const BENCH_SCHEMA_VERSION: u32 = 1;

/// What an arm stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmKind {
    /// The starting values.
    Start,
    /// The starting values again: the A/A noise check.
    NoiseCheck,
    /// SemantOS's plan after the guardrails.
    Semantos,
    /// A TuneD profile.
    Tuned,
    /// A grid point not measured as another arm.
    Grid,
    /// The closed loop's best configuration (`semantos:tune`, or one reasoner's in `compare`).
    Tune,
}

/// One configuration the bench measured.
#[derive(Debug, Clone, Serialize)]
pub struct Arm {
    /// Name (`start`, `semantos`, `tuned:network-throughput`, `grid:somaxconn=256`).
    pub name: String,
    /// What it stands for.
    pub kind: ArmKind,
    /// Writes relative to the start values.
    pub writes: Vec<(String, String)>,
    /// What its source set that was not written, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One run of one arm.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Arm name.
    pub arm: String,
    /// Repetition (0-based).
    pub rep: usize,
    /// Position within the repetition (arms rotate from rep to rep).
    pub position: usize,
    /// Latencies (written to the samples CSV, not to the JSON).
    #[serde(skip)]
    pub output: RunOutput,
    /// Samples.
    pub samples: usize,
    /// Failed requests.
    pub errors: u64,
    /// p95 of this run, ms.
    pub p95_ms: f64,
    /// The telemetry the KB's network symptoms read, and socket state, during this run.
    pub telemetry: BTreeMap<String, f64>,
}

/// An arm with its results.
#[derive(Debug, Clone, Serialize)]
pub struct ArmResult {
    /// The arm.
    #[serde(flatten)]
    pub arm: Arm,
    /// Its latency statistics.
    pub stats: ArmStats,
    /// Against the start arm (absent for the start arm itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_start: Option<Comparison>,
    /// The scenario's objective, median over reps (`NaN`, written `null`, when undefined).
    pub objective: f64,
    /// Median over reps of each telemetry value.
    pub telemetry: BTreeMap<String, f64>,
}

/// A grid point and the arm that measured it.
#[derive(Debug, Clone, Serialize)]
pub struct GridRow {
    /// The point.
    #[serde(flatten)]
    pub point: GridPoint,
    /// The arm whose measurement it is (`start`, `semantos`, or its own `grid:` arm).
    pub measured_as: String,
    /// That arm's p95 (median over reps), ms.
    pub p95_ms: f64,
    /// That arm's objective.
    pub objective: f64,
}

/// The telemetry the decision was made on.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    /// Seconds between the two snapshots.
    pub window_s: f64,
    /// Socket dumps taken.
    pub dumps: usize,
    /// Latency samples of the observed run (not part of any arm).
    pub samples: usize,
    /// What the KB's network symptoms read, and socket state.
    pub telemetry: BTreeMap<String, f64>,
}

/// One round of the closed loop: observe the workload under a configuration, let the pipeline decide.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// 0 for the start values.
    pub round: usize,
    /// Writes (relative to the start values) in force while the round observed.
    pub config: Vec<(String, String)>,
    /// The telemetry the engine saw.
    pub observation: Observation,
    /// What it found.
    pub findings: Findings,
    /// What it proposed, after the guardrails.
    pub checked: CheckedPlan,
    /// The changes this round adds to the configuration (none ends the loop).
    pub proposed: Vec<(String, String)>,
}

/// Everything one `semantos bench` run found.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Format version.
    pub schema_version: u32,
    /// Scenario name, or `cmd` for a user's command.
    pub scenario: String,
    /// `full` or `quick`.
    pub mode: String,
    /// How to reproduce it.
    pub command: String,
    /// Kernel release.
    pub kernel: String,
    /// Wall-clock seconds of the run, from taking the machine's bench lock to the report.
    pub duration_s: f64,
    /// What runs.
    pub workload: String,
    /// Where (namespaces, link emulation).
    pub topology: String,
    /// The intent the engine served.
    pub intent: String,
    /// The policy the guardrails and the store applied.
    pub policy: String,
    /// Values the stage started from (for a host scenario: the host's values, read, not written).
    pub start: Vec<(String, String)>,
    /// What the scenario is judged by besides p95.
    pub objective: String,
    /// Tempting changes that cannot help this scenario.
    pub avoid: Vec<Avoid>,
    /// The avoided changes the engine proposed, any round, any verdict (empty: none).
    pub avoided_changes_proposed: Vec<AvoidHit>,
    /// The rounds of diagnose → recommend → guardrails that led to SemantOS's configuration.
    pub rounds: Vec<Round>,
    /// The receipts of SemantOS's first application (one per namespace).
    pub apply_receipts: Vec<Receipt>,
    /// Every arm with its results, in the order they were defined.
    pub arms: Vec<ArmResult>,
    /// The A/A check.
    pub noise_check: Option<NoiseCheck>,
    /// How the grid was laid out.
    pub grid_mode: GridMode,
    /// The keys the grid spans (the scenario's symptoms implicate them), independent of SemantOS's choice.
    pub grid_keys: Vec<String>,
    /// The grid over those keys' KB ranges.
    pub grid: Vec<GridRow>,
    /// The goals, each evaluated (`null`: its arms were not run), and whether all are met.
    pub goals: Goals,
    /// The closed-loop arms: their trials, best configuration and distance to the grid optimum.
    pub tune: Vec<TuneSummary>,
    /// Every run, in the order it ran.
    pub runs: Vec<RunRecord>,
    /// The relay's counters, when the path was emulated by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayStats>,
    /// Anything else worth knowing (skipped arms, absent keys, the monitor).
    pub notes: Vec<String>,
    /// Files written (filled by `write_artifacts`).
    pub files: Vec<String>,
}

impl BenchReport {
    /// The arm named `name`.
    pub fn arm(&self, name: &str) -> Option<&ArmResult> {
        self.arms.iter().find(|a| a.arm.name == name)
    }
}

fn num(v: f64) -> String {
    if v.is_finite() { format!("{v:.3}") } else { "NaN".into() }
}

fn config(writes: &[(String, String)]) -> String {
    writes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

/// `bench_<scenario>.csv`: one row per arm.
pub fn arms_csv(r: &BenchReport) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "scenario", "arm", "kind", "config", "reps", "samples", "errors", "p50_ms", "p95_ms", "p99_ms", "p95_rep_median_ms", "p95_rep_min_ms", "p95_rep_max_ms", "improvement_vs_start_pct", "ci95_lo_pct", "ci95_hi_pct", "objective",
    ])?;
    for a in &r.arms {
        let s = &a.stats;
        let (lo, hi) = s.rep_p95_ms.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
        let (imp, clo, chi) = a.vs_start.as_ref().map_or((f64::NAN, f64::NAN, f64::NAN), |c| (c.improvement_pct, c.ci95_pct.0, c.ci95_pct.1));
        w.write_record([
            r.scenario.clone(),
            a.arm.name.clone(),
            serde_json::to_value(a.arm.kind)?.as_str().unwrap_or("").to_string(),
            config(&a.arm.writes),
            s.rep_p95_ms.len().to_string(),
            s.samples.to_string(),
            s.errors.to_string(),
            num(s.p50_ms),
            num(s.p95_ms),
            num(s.p99_ms),
            num(s.p95_rep_median_ms),
            num(lo),
            num(hi),
            num(imp),
            num(clo),
            num(chi),
            num(a.objective),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// `bench_<scenario>_samples.csv`: every latency sample.
pub fn samples_csv(r: &BenchReport) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["arm", "rep", "index", "latency_ms"])?;
    for run in &r.runs {
        for (i, v) in run.output.samples_ms.iter().enumerate() {
            w.write_record([run.arm.clone(), run.rep.to_string(), i.to_string(), format!("{v:.3}")])?;
        }
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// The latency distribution of every arm, pooled over reps.
pub fn svg(r: &BenchReport) -> Result<String> {
    let arms: Vec<(String, Vec<f64>)> = r
        .arms
        .iter()
        .map(|a| (a.arm.name.clone(), r.runs.iter().filter(|x| x.arm == a.arm.name).flat_map(|x| x.output.samples_ms.iter().copied()).collect()))
        .collect();
    crate::eval::render_distributions_svg(&arms, &format!("semantos bench {} ({}): latency per arm", r.scenario, r.mode))
}

fn ci(c: &Comparison) -> String {
    format!("{:+.1} % [{:+.1}, {:+.1}]", c.improvement_pct, c.ci95_pct.0, c.ci95_pct.1)
}

/// The terminal summary.
pub fn table(r: &BenchReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "semantos bench {} ({}, {:.0} s) — {}", r.scenario, r.mode, r.duration_s, r.workload);
    let _ = writeln!(o, "path: {}", r.topology);
    let _ = writeln!(o, "policy: {}", r.policy);
    let _ = writeln!(o, "start: {}", if r.start.is_empty() { "the current values".to_string() } else { config(&r.start) });
    rounds_section(&mut o, r);
    arms_section(&mut o, r);
    goals_section(&mut o, r);
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    for f in &r.files {
        let _ = writeln!(o, "wrote {f}");
    }
    o
}


/// Each round: its findings and the plan after the guardrails.
fn rounds_section(o: &mut String, r: &BenchReport) {
    for round in &r.rounds {
        let _ = writeln!(
            *o,
            "\nRound {} (intent {}, {}): findings",
            round.round,
            r.intent,
            if round.config.is_empty() { "start values".to_string() } else { format!("with {}", config(&round.config)) }
        );
        if round.findings.findings.is_empty() {
            let _ = writeln!(*o, "  none");
        }
        for f in &round.findings.findings {
            let ev: Vec<String> = f.evidence.iter().map(|e| e.describe()).collect();
            let _ = writeln!(*o, "  {}: {}", f.id, ev.join("; "));
        }
        let _ = writeln!(*o, "plan after the guardrails:");
        if round.checked.changes.is_empty() {
            let _ = writeln!(*o, "  no change proposed");
        }
        for c in &round.checked.changes {
            let why = c.verdict.reason();
            let _ = writeln!(
                *o,
                "  [{}] {}: {} → {}{}",
                c.verdict.label(),
                c.change.key,
                c.change.from.as_deref().unwrap_or("?"),
                c.write.as_deref().unwrap_or(&c.change.to),
                if why.is_empty() { String::new() } else { format!("  ({why})") }
            );
        }
    }
}

/// SemantOS's configuration, the arms' statistics, the noise check and the grid.
fn arms_section(o: &mut String, r: &BenchReport) {
    let sem = r.arms.iter().find(|a| a.arm.kind == ArmKind::Semantos);
    let _ = writeln!(*o, "\nSemantOS's configuration: {}", sem.map(|a| if a.arm.writes.is_empty() { "no change".to_string() } else { config(&a.arm.writes) }).unwrap_or_default());
    let _ = writeln!(*o, "objective: {}", r.objective);
    let _ = writeln!(*o, "\n{:<34} {:>9} {:>9} {:>9} {:>10} {:>10}  p95 vs start [95 % CI]", "arm", "p50 ms", "p95 ms", "p99 ms", "p95 (reps)", "objective");
    for a in &r.arms {
        let s = &a.stats;
        let _ = writeln!(
            *o,
            "{:<34} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>10.3}  {}",
            a.arm.name,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.p95_rep_median_ms,
            a.objective,
            a.vs_start.as_ref().map(ci).unwrap_or_else(|| "—".into())
        );
    }
    if let Some(n) = &r.noise_check {
        let _ = writeln!(*o, "\nA/A noise check (start vs start): {} — {}", ci(&n.comparison), if n.passed { "passed: identical arms are not separated" } else { "FAILED: the harness separates identical arms; do not trust small differences" });
    }
    if !r.grid.is_empty() {
        let pts: Vec<String> = r.grid.iter().map(|g| format!("{} {:.1} ({:.3})", g.point.label, g.p95_ms, g.objective)).collect();
        let _ = writeln!(*o, "grid (p95 ms (objective)): {}", pts.join(", "));
    }
}

/// The goals, each met, not met or not evaluated.
fn goals_section(o: &mut String, r: &BenchReport) {
    o.push_str(&goals_text(&r.goals, &r.avoid, &r.avoided_changes_proposed));
    for t in &r.tune {
        tune_lines(o, t);
    }
}

/// One closed-loop arm: its trials, harmful trials, wall time and distance to the grid optimum.
fn tune_lines(o: &mut String, t: &TuneSummary) {
    let _ = writeln!(*o, "\nClosed loop {} ({}; {} of {} trials, {} harmful and rolled back, {:.0} s):", t.arm, t.sources.join(" → "), t.trials.len(), t.budget, t.harmful_trials, t.wall_s);
    for tr in &t.trials {
        let _ = writeln!(*o, "  trial {} ({}): {:?}: {}", tr.index, tr.source, tr.judgement.decision, tr.judgement.reason);
    }
    let _ = writeln!(*o, "  best: {}", if t.best.is_empty() { "no change kept".to_string() } else { config(&t.best) });
    if let Some(v) = &t.vs_grid {
        let reached = v.trials_to_within.map_or_else(|| "never within 2 %".to_string(), |n| format!("within 2 % after {n} trial(s)"));
        let _ = writeln!(*o, "  vs the grid optimum ({}, {:.3}): {:.3}, {:.1} % away; {reached}", v.optimum, v.optimum_value, v.final_value, v.final_distance_pct);
        if let Some(c) = &v.confirmed {
            let _ = writeln!(*o, "  confirmation round ({} reps, interleaved; reference {}, {:.3}):", c.reps, c.reference, c.reference_value);
            for d in &c.incumbents {
                let _ = writeln!(*o, "    after trial {} ({}): {:+.1} % [{:+.1}, {:+.1}] from it", d.after_trial, d.measured_as, d.distance_pct, d.ci95_pct.0, d.ci95_pct.1);
            }
        }
    }
}

/// Every goal with its figures, met, NOT met or not evaluated, and the verdict over all of them.
pub fn goals_text(g: &Goals, avoid: &[Avoid], hits: &[AvoidHit]) -> String {
    let mut o = String::new();
    let yn = |b: Option<bool>| match b {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not evaluated",
    };
    let _ = writeln!(o, "\nGoals:");
    let _ = writeln!(o, "  objective better than at the start: {}", yn(g.objective_improved));
    match (&g.no_avoided_change, hits.is_empty()) {
        (None, _) => {
            let _ = writeln!(o, "  no avoided change proposed: not evaluated (no avoid list)");
        }
        (Some(_), true) => {
            let _ = writeln!(o, "  no avoided change proposed ({}): met", avoid.iter().map(|a| a.key).collect::<Vec<_>>().join(", "));
        }
        (Some(_), false) => {
            let _ = writeln!(o, "  no avoided change proposed: NOT met");
            for h in hits {
                let _ = writeln!(o, "    round {}: [{}] {} {} → {}: {}", h.round, h.verdict, h.key, h.from.as_deref().unwrap_or("?"), h.to, h.why);
            }
        }
    }
    let _ = writeln!(o, "  p95 improvement CI excludes zero: {}", yn(g.improvement_ci_excludes_zero));
    let _ = writeln!(o, "  A/A noise check: {}", yn(g.noise_check_passed));
    match &g.vs_tuned {
        Some(v) => {
            let _ = writeln!(o, "  at least as good as the best TuneD profile ({}, p95 {:.1} ms vs SemantOS {:.1} ms, {}): {}", v.best, v.tuned_p95_ms, v.semantos_p95_ms, ci(&v.comparison), yn(Some(v.met)));
        }
        None => {
            let _ = writeln!(o, "  at least as good as the best TuneD profile: not evaluated");
        }
    }
    if let Some(v) = &g.objective_vs_grid {
        let _ = writeln!(o, "  objective within 5 % of the grid's best ({}, {:.3}; SemantOS {:.3}, {:.1} % away): {}", v.optimum, v.optimum_value, v.semantos_value, v.distance_pct, yn(Some(v.met)));
    }
    match &g.vs_grid {
        Some(v) => {
            let confirmed = v.confirmed_ci95_pct.map(|(lo, hi)| format!(", confirmed over the confirmation round's reps [{lo:+.1}, {hi:+.1}]")).unwrap_or_default();
            let _ = writeln!(o, "  within 5 % of the grid optimum ({}, p95 {:.1} ms; SemantOS {:.1} ms, {:.1} % away{confirmed}): {}", v.optimum, v.optimum_p95_ms, v.semantos_p95_ms, v.distance_pct, yn(Some(v.met)));
        }
        None => {
            let _ = writeln!(o, "  within 5 % of the grid optimum: not evaluated");
        }
    }
    match &g.tune_vs_grid {
        Some(v) => {
            let reached = v.trials_to_within.map_or_else(|| "never".to_string(), |n| format!("after {n} of {} trial(s)", v.trials));
            match v.confirmed.as_ref().and_then(|c| Some((c, c.incumbents.last()?))) {
                Some((c, d)) => {
                    let _ = writeln!(o, "  closed loop within 2 % of the grid optimum (confirmed over {} reps against {}: {:+.1} % [{:+.1}, {:+.1}]; reached {reached}): {}", c.reps, c.reference, d.distance_pct, d.ci95_pct.0, d.ci95_pct.1, yn(Some(v.met)));
                }
                None => {
                    let _ = writeln!(o, "  closed loop within 2 % of the grid optimum ({}, {:.3}; semantos:tune {:.3}, {:.1} % away; reached {reached}): {}", v.optimum, v.optimum_value, v.final_value, v.final_distance_pct, yn(Some(v.met)));
                }
            }
        }
        None => {
            let _ = writeln!(o, "  closed loop within 2 % of the grid optimum: not evaluated");
        }
    }
    let _ = writeln!(o, "all goals met: {}", if g.all_met() { "yes" } else { "NO (a goal above is NOT met, or one a full run judges was not evaluated)" });
    o
}

/// Writes the CSVs, the JSON report and the SVG into `dir` as `bench_<scenario>*`; records the paths in the report.
pub fn write_artifacts(r: &mut BenchReport, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let base = format!("bench_{}", r.scenario);
    let files: Vec<(PathBuf, String)> = vec![
        (dir.join(format!("{base}.csv")), arms_csv(r)?),
        (dir.join(format!("{base}_samples.csv")), samples_csv(r)?),
        (dir.join(format!("{base}.svg")), svg(r)?),
    ];
    r.files = files.iter().map(|(p, _)| p.display().to_string()).collect();
    let json_path = dir.join(format!("{base}.json"));
    r.files.push(json_path.display().to_string());
    for (p, text) in &files {
        crate::apply::files::write_atomic(p, text.as_bytes(), 0o644).with_context(|| format!("writing {}", p.display()))?;
    }
    crate::apply::files::write_atomic(&json_path, serde_json::to_string_pretty(r)?.as_bytes(), 0o644).with_context(|| format!("writing {}", json_path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::compare::{TuneVsGrid, VsGrid};
    use super::*;

    fn goals() -> Goals {
        Goals {
            improvement_ci_excludes_zero: Some(true),
            noise_check_passed: Some(true),
            vs_tuned: None,
            vs_grid: Some(VsGrid { optimum: "grid:somaxconn=2048".into(), optimum_p95_ms: 100.0, semantos_p95_ms: 110.0, distance_pct: 10.0, met: false, confirmed_ci95_pct: None }),
            objective_improved: Some(true),
            objective_vs_grid: None,
            no_avoided_change: None,
            tune_vs_grid: Some(TuneVsGrid { optimum: "grid:somaxconn=2048".into(), optimum_value: 100.0, final_value: 101.0, final_distance_pct: 1.0, trials_to_within: Some(3), trials: 5, met: true, confirmed: None }),
            all_met: true,
        }
    }

    #[test]
    fn goals_are_evaluated_and_every_one_is_printed_with_its_figures_a_missed_one_as_not_met() {
        // Before, `Goals::all_met` was never called: no report said whether the goals were met.
        let g = goals().evaluated();
        assert!(!g.all_met, "a goal is missed, so not all are met");
        assert_eq!(serde_json::to_value(&g).unwrap()["all_met"], false);
        let t = goals_text(&g, &[], &[]);
        assert!(t.contains("within 5 % of the grid optimum (grid:somaxconn=2048, p95 100.0 ms; SemantOS 110.0 ms, 10.0 % away): NOT met"), "{t}");
        assert!(t.contains("closed loop within 2 % of the grid optimum (grid:somaxconn=2048, 100.000; semantos:tune 101.000, 1.0 % away; reached after 3 of 5 trial(s)): met"), "{t}");
        assert!(t.contains("at least as good as the best TuneD profile: not evaluated"), "{t}");
        assert!(t.contains("all goals met: NO"), "{t}");
        let mut ok = goals();
        ok.vs_grid.as_mut().unwrap().met = true;
        ok.vs_tuned = None;
        assert!(!ok.clone().evaluated().all_met, "an unevaluated TuneD goal is not a met one");
        let mut missed = goals();
        missed.tune_vs_grid.as_mut().unwrap().met = false;
        missed.vs_grid.as_mut().unwrap().met = true;
        assert!(goals_text(&missed.evaluated(), &[], &[]).contains("1.0 % away; reached after 3 of 5 trial(s)): NOT met"));
    }
}
