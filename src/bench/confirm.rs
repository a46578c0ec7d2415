//! The confirmation round: the closed loop's distance to the grid optimum,
//! measured without the winner's curse.
//!
//! The grid's optimum is the best of many noisy measurements (25 points on
//! `bdp-transfer --grid full`), so its figure is biased in its favour: arms
//! that should tie differed by 10–25 %, and the closed loop was judged
//! against the luckiest. Here the grid's best few points and every
//! configuration the loop held (the start, then the incumbent after each
//! kept trial) are measured again, interleaved and rotated, `REPS` times;
//! the reference is the confirmed best grid point, and each configuration's
//! distance to it is a paired interval over the round's reps
//! (`tune::interval`: Student t over the reps' log-ratios, rep `i` of both
//! ran in the same rotation).
//!
//! **"Within 2 %" is the point estimate of that paired distance.** The
//! interval is reported beside it. Requiring the whole interval below 2 %
//! would demand a precision the workloads do not have (it would fail an
//! equal configuration); accepting any interval that reaches 2 % would pass
//! a configuration 10 % away whenever the noise is wide. The point estimate
//! no longer carries the bias of picking the best of 25; what bias is left
//! (the best of `GRID_POINTS`) favours the reference, so it can only make
//! the loop look farther away, never closer.
//!
//! One definition serves both figures (`trials_to_within` and the final
//! distance): the incumbent after trial N is one of the configurations
//! measured here, so "within 2 % after N trials" and "the final distance"
//! can no longer disagree (they did: within after 1 trial, 8.6 % at the end).

use super::arms::{Results, measure_arms};
use super::compare::{self, Confirmation, Distance, Goals, TuneVsGrid, VsGrid};
use super::configure::{Progress, Switcher, effective};
use super::objective::Objective;
use super::report::{Arm, ArmKind, GridRow, RunRecord};
use super::tune::TuneArmSpec;
use super::workload::RunOutput;
use crate::sysctl::Value;
use crate::tune::decide::Decision;
use crate::tune::interval::paired;
use crate::tune::objective::Direction;
use crate::tune::Trial;
use anyhow::Result;
use std::collections::BTreeMap;

/// Interleaved reps of the confirmation round. Why 8: a configuration's reps of `bdp-transfer`
/// differ by ±4–5 % on a quiet machine, so 5 reps left the point estimate of a distance ±2 %
/// (the goal's own width) and the best-of-3 reference about as much in its favour; 8 narrow
/// both by a fifth, for about 2 minutes more on that scenario.
pub const REPS: usize = 8;
/// The grid's best points measured again (by the grid's own figures).
pub const GRID_POINTS: usize = 3;
/// The prefix of a confirmation arm's name.
pub const PREFIX: &str = "confirm:";

/// The configurations to measure again: the grid's best `GRID_POINTS` by its own figures, then the
/// start, the incumbent after each kept trial of `trials`, and SemantOS's own plan (the `semantos`
/// arm of `measured`, judged against the optimum by the 5 % goal with the same winner's curse);
/// each distinct configuration once. Returns the arms, per incumbent (the trial after which it
/// held, the arm that measures it), and the arm that measures SemantOS's plan.
pub fn arms(grid: &[GridRow], measured: &[Arm], trials: &[Trial], start: &BTreeMap<String, Value>, objective: Objective) -> (Vec<Arm>, Vec<(usize, String)>, Option<String>) {
    let mut ranked: Vec<&GridRow> = grid.iter().filter(|g| g.objective.is_finite()).collect();
    ranked.sort_by(|a, b| if objective.better(a.objective, b.objective) { std::cmp::Ordering::Less } else if objective.better(b.objective, a.objective) { std::cmp::Ordering::Greater } else { std::cmp::Ordering::Equal });
    let mut out: Vec<Arm> = Vec::new();
    let add = |out: &mut Vec<Arm>, label: &str, kind: ArmKind, writes: Vec<(String, String)>| -> String {
        if let Some(a) = out.iter().find(|a| a.writes == writes) {
            return a.name.clone();
        }
        let name = format!("{PREFIX}{label}");
        out.push(Arm { name: name.clone(), kind, writes, notes: vec![] });
        name
    };
    for g in ranked.into_iter().take(GRID_POINTS) {
        let writes = measured.iter().find(|a| a.name == g.measured_as).map(|a| a.writes.clone()).unwrap_or_default();
        add(&mut out, &g.point.label, ArmKind::Grid, writes);
    }
    let mut held = vec![(0, add(&mut out, "start", ArmKind::Start, vec![]))];
    for t in trials.iter().filter(|t| t.judgement.decision == Decision::Kept) {
        let pairs: Vec<(String, String)> = t.values.iter().map(|(k, v): (&String, &String)| (k.clone(), v.clone())).collect();
        held.push((t.index, add(&mut out, &format!("semantos:tune after trial {}", t.index), ArmKind::Tune, effective(&pairs, start))));
    }
    let rules = measured.iter().find(|a| a.kind == ArmKind::Semantos).map(|a| add(&mut out, "semantos", ArmKind::Semantos, a.writes.clone()));
    (out, held, rules)
}

/// The round's conclusion from its runs: `grid_arms` are the names of the grid points' arms,
/// `held` the loop's configurations and `rules` SemantOS's plan (from `arms`).
pub fn conclude(runs: &[RunRecord], grid_arms: &[String], held: &[(usize, String)], rules: Option<&str>, objective: Objective) -> Option<Confirmation> {
    let per_rep = |name: &str| -> Vec<f64> {
        let mut rs: Vec<&RunRecord> = runs.iter().filter(|r| r.arm == name).collect();
        rs.sort_by_key(|r| r.rep);
        rs.iter().map(|r| objective.of_run(&r.output)).collect()
    };
    let mut names: Vec<String> = grid_arms.to_vec();
    for n in held.iter().map(|(_, n)| n.as_str()).chain(rules) {
        if !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    }
    let points: Vec<(String, Vec<f64>)> = names.iter().map(|n| (n.clone(), per_rep(n))).collect();
    let med = |v: &[f64]| {
        let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if f.is_empty() { f64::NAN } else { crate::eval::median(&f) }
    };
    let (reference, reference_value) = points
        .iter()
        .filter(|(n, _)| grid_arms.contains(n))
        .map(|(n, v)| (n.clone(), med(v)))
        .filter(|(_, m)| m.is_finite())
        .reduce(|a, b| if objective.better(b.1, a.1) { b } else { a })?;
    let values = |name: &str| points.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let direction = if objective.better(0.0, 1.0) { Direction::Lower } else { Direction::Higher };
    let distance = |after: usize, name: &str| {
        // A configuration's improvement over the reference is minus its distance.
        let p = if name == reference { Some((0.0, (0.0, 0.0))) } else { paired(direction, &values(&reference), &values(name)).map(|p| (-p.improvement_pct, (-p.ci95_pct.1, -p.ci95_pct.0))) };
        let (distance_pct, ci95_pct) = p.unwrap_or((f64::NAN, (f64::NAN, f64::NAN)));
        Distance { after_trial: after, measured_as: name.to_string(), distance_pct, ci95_pct }
    };
    let incumbents = held.iter().map(|(after, name)| distance(*after, name)).collect();
    let semantos = rules.map(|name| distance(0, name));
    Some(Confirmation { reps: points.first().map_or(0, |p| p.1.len()), reference, reference_value, points, incumbents, semantos })
}

/// The closed loop against the grid optimum, from the confirmation round, by one paired point
/// estimate: the final distance is the last incumbent's; `trials_to_within` the first trial after
/// which the incumbent was within `TUNE_TOLERANCE_PCT` and stayed within (every later incumbent
/// too), so it is set exactly when the final distance meets the goal.
pub fn judged(mut v: TuneVsGrid, c: Confirmation) -> TuneVsGrid {
    let within = |d: &Distance| d.distance_pct <= compare::TUNE_TOLERANCE_PCT;
    let stays = c.incumbents.iter().rposition(|d| !within(d)).map_or(0, |i| i + 1);
    v.trials_to_within = c.incumbents.get(stays).map(|d| d.after_trial);
    if let Some(last) = c.incumbents.last() {
        v.final_distance_pct = last.distance_pct.max(0.0);
        v.met = within(last);
    }
    v.confirmed = Some(c);
    v
}

/// The confirmation round: the grid's best points and the closed loop's incumbents
/// measured again, interleaved; the closed loop's distance to the grid optimum is judged from it.
pub(super) fn round(
    res: &mut Results,
    measured: &[Arm],
    start: &BTreeMap<String, Value>,
    objective: Objective,
    sw: &Switcher,
    progress: Progress,
    measure: &mut dyn FnMut() -> Result<(RunOutput, BTreeMap<String, f64>)>,
) -> Result<()> {
    let name = TuneArmSpec::semantos(0).name;
    let Some(t) = res.tune.iter_mut().find(|t| t.arm == name) else { return Ok(()) };
    let Some(v) = t.vs_grid.clone() else { return Ok(()) };
    let (c_arms, held, rules) = self::arms(&res.grid, measured, &t.trials, start, objective);
    progress(&format!("confirmation round: {} configurations × {} reps, interleaved (the grid's best {}, the closed loop's incumbents and SemantOS's plan)", c_arms.len(), REPS, GRID_POINTS));
    let (runs, _) = measure_arms(&c_arms, REPS, sw, progress, measure)?;
    let grid_arms: Vec<String> = c_arms.iter().filter(|a| a.kind == ArmKind::Grid).map(|a| a.name.clone()).collect();
    let Some(c) = conclude(&runs, &grid_arms, &held, rules.as_deref(), objective) else { return Ok(()) };
    for d in &c.incumbents {
        progress(&format!("confirmation: after trial {} ({}): {:+.1} % [{:+.1}, {:+.1}] from {}", d.after_trial, d.measured_as, d.distance_pct, d.ci95_pct.0, d.ci95_pct.1, c.reference));
    }
    if let Some(d) = &c.semantos {
        progress(&format!("confirmation: SemantOS's plan ({}): {:+.1} % [{:+.1}, {:+.1}] from {}", d.measured_as, d.distance_pct, d.ci95_pct.0, d.ci95_pct.1, c.reference));
    }
    let vs_grid = match (&c.semantos, objective) {
        (Some(d), Objective::P95Ms) if d.distance_pct.is_finite() => confirmed_vs_grid(&c, d),
        _ => res.goals.vs_grid.clone(),
    };
    t.vs_grid = Some(judged(v, c));
    res.goals = Goals { tune_vs_grid: t.vs_grid.clone(), vs_grid, ..res.goals.clone() }.evaluated();
    Ok(())
}

/// SemantOS's plan against the grid optimum (the 5 % goal) from the confirmation round: the paired
/// point estimate over its reps against the confirmed best grid point, as the closed loop's.
fn confirmed_vs_grid(c: &Confirmation, d: &Distance) -> Option<VsGrid> {
    let median = |name: &str| {
        let v: Vec<f64> = c.points.iter().find(|(n, _)| n == name)?.1.iter().copied().filter(|x| x.is_finite()).collect();
        (!v.is_empty()).then(|| crate::eval::median(&v))
    };
    Some(VsGrid {
        optimum: c.reference.strip_prefix(PREFIX).unwrap_or(&c.reference).to_string(),
        optimum_p95_ms: c.reference_value,
        semantos_p95_ms: median(&d.measured_as)?,
        distance_pct: d.distance_pct.max(0.0),
        met: d.distance_pct <= compare::GRID_TOLERANCE_PCT,
        confirmed_ci95_pct: Some(d.ci95_pct),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::grid::GridPoint;
    use crate::bench::workload::RunOutput;
    use crate::tune::decide::Judgement;

    fn row(label: &str, arm: &str, objective: f64) -> GridRow {
        GridRow { point: GridPoint { label: label.into(), writes: vec![] }, measured_as: arm.into(), p95_ms: objective, objective }
    }

    fn arm(name: &str, k: &str, v: &str) -> Arm {
        Arm { name: name.into(), kind: ArmKind::Grid, writes: vec![(k.into(), v.into())], notes: vec![] }
    }

    /// `REPS` runs of each arm: its true p95 times a load shared by the rep (rep 2 a slow one).
    fn runs(truth: &[(&str, f64)]) -> Vec<RunRecord> {
        let load = [1.0, 1.04, 1.3, 0.97, 1.01];
        let mut out = Vec::new();
        for (rep, l) in load.iter().enumerate() {
            for (i, (name, t)) in truth.iter().enumerate() {
                let jitter = 1.0 + 0.005 * ((rep * 7 + i * 3) % 5) as f64;
                let output = RunOutput { samples_ms: vec![t * l * jitter; 20], ..Default::default() };
                out.push(RunRecord { arm: name.to_string(), rep, position: i, output, samples: 20, errors: 0, p95_ms: t * l, telemetry: BTreeMap::new() });
            }
        }
        out
    }

    #[test]
    fn an_incumbent_on_the_optimums_plateau_is_within_2_percent_once_the_grids_best_are_measured_again() {
        // The grid's single measurements: b looked 10 % better than a, which the loop settled on; both
        // are on one plateau (equal when measured again), c is 10 % worse.
        let grid = [row("k=a", "grid:a", 100.0), row("k=b", "grid:b", 90.0), row("k=c", "grid:c", 110.0), row("k=d", "grid:d", 200.0)];
        let rules = Arm { kind: ArmKind::Semantos, ..arm("semantos", "k", "500") };
        let measured = [arm("grid:a", "k", "1000"), arm("grid:b", "k", "2000"), arm("grid:c", "k", "4000"), arm("grid:d", "k", "10"), rules];
        let start = BTreeMap::from([("k".to_string(), Value::from_kernel("10"))]);
        let judgement = Judgement::unmeasured(Decision::Kept, "test");
        let kept = Trial { index: 2, source: "gp".into(), values: BTreeMap::from([("k".to_string(), "1000".to_string())]), rationale: None, supported: None, judgement, elapsed_s: 0.0 };
        let (arms, held, rules) = arms(&grid, &measured, &[kept], &start, Objective::P95Ms);
        let names: Vec<&str> = arms.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["confirm:k=b", "confirm:k=a", "confirm:k=c", "confirm:start", "confirm:semantos"], "the grid's best 3, the start, SemantOS's plan; the incumbent is k=a's arm");
        assert_eq!(held, [(0, "confirm:start".to_string()), (2, "confirm:k=a".to_string())]);
        assert_eq!(rules.as_deref(), Some("confirm:semantos"));
        // SemantOS's plan is 3 % slower than the plateau: within the 5 % goal, though its single
        // measurement against the luckiest grid point said 14 % (the goal used to fail on that).
        let r = runs(&[("confirm:k=b", 100.0), ("confirm:k=a", 100.0), ("confirm:k=c", 110.0), ("confirm:start", 200.0), ("confirm:semantos", 103.0)]);
        let grid_arms: Vec<String> = names[..3].iter().map(|s| s.to_string()).collect();
        let c = conclude(&r, &grid_arms, &held, rules.as_deref(), Objective::P95Ms).unwrap();
        let sem = c.semantos.as_ref().expect("SemantOS's plan is judged in the round");
        assert!((sem.distance_pct - 3.0).abs() < 1.0, "{sem:?}");
        let v = confirmed_vs_grid(&c, sem).unwrap();
        assert!(v.met && v.confirmed_ci95_pct.is_some() && !v.optimum.starts_with(PREFIX), "{v:?}");
        assert!(!compare::vs_grid(103.0, &[("k=b".into(), 90.0)]).unwrap().met, "the unconfirmed goal failed it");
        let single = compare::distance_pct(100.0, 90.0, true);
        assert!(single > 10.0, "against the luckiest single measurement it looked {single:.1} % away");
        let d = c.incumbents.last().unwrap();
        assert!(d.distance_pct.abs() <= 1.0 && d.ci95_pct.0 <= 0.0 && d.ci95_pct.1 >= 0.0, "{c:?}");
        let v = judged(TuneVsGrid { optimum: "k=b".into(), optimum_value: 90.0, final_value: 100.0, final_distance_pct: single, trials_to_within: None, trials: 2, met: false, confirmed: None }, c);
        assert!(v.met && v.trials_to_within == Some(2), "{v:?}");
        assert!(v.confirmed.as_ref().unwrap().incumbents[0].distance_pct > 40.0, "the start is far");
    }
}
