//! The arms' runner: every arm measured in interleaved, rotated repetitions (each applied and
//! rolled back through the switcher), and the statistics, comparisons and goals of what was
//! measured. Below `runner` (the scenario's whole run) and `confirm` (the confirmation round),
//! which both measure arms with it.

use super::compare::{self, Goals, NoiseCheck};
use super::configure::{Progress, Switcher};
use super::grid;
use super::objective::{self, AvoidHit, Objective};
use super::report::{Arm, ArmKind, ArmResult, GridRow, Round, RunRecord};
use super::scenario::Judging;
use super::tune::{self as closed_loop, TuneArmSpec, TuneSummary};
use super::workload::RunOutput;
use crate::apply::Receipt;
use crate::eval::percentile;
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// Runs every arm `reps` times, interleaved and rotated, measuring each run with `measure`.
pub(super) fn measure_arms(
    arms: &[Arm],
    reps: usize,
    sw: &Switcher,
    progress: Progress,
    mut measure: impl FnMut() -> Result<(RunOutput, BTreeMap<String, f64>)>,
) -> Result<(Vec<RunRecord>, Vec<Receipt>)> {
    let mut runs = Vec::new();
    let mut receipts = Vec::new();
    for rep in 0..reps {
        for pos in 0..arms.len() {
            // Rotating the order keeps any drift over a rep (warm caches, a neighbour's load) off one arm.
            let arm = &arms[(pos + rep) % arms.len()];
            if !arm.writes.is_empty() {
                let r = sw.set("arm", &arm.name, &arm.writes)?;
                if arm.kind == ArmKind::Semantos && receipts.is_empty() {
                    receipts = r;
                }
            }
            let measured = measure();
            if !arm.writes.is_empty() {
                sw.restore("arm").with_context(|| format!("restoring the start values after arm {}", arm.name))?;
            }
            let (output, telemetry) = measured.with_context(|| format!("arm {}, rep {rep}", arm.name))?;
            let p95 = percentile(&output.samples_ms, 95.0);
            progress(&format!("rep {}/{reps} {:<34} p95 {:>9.1} ms ({} samples, {} errors)", rep + 1, arm.name, p95, output.samples_ms.len(), output.errors));
            runs.push(RunRecord { arm: arm.name.clone(), rep, position: pos, samples: output.samples_ms.len(), errors: output.errors, p95_ms: p95, output, telemetry });
        }
    }
    Ok((runs, receipts))
}

/// Statistics, comparisons and goals of measured arms.
pub(super) struct Results {
    pub(super) tune: Vec<TuneSummary>,
    pub(super) arms: Vec<ArmResult>,
    pub(super) noise: Option<NoiseCheck>,
    pub(super) grid: Vec<GridRow>,
    pub(super) goals: Goals,
    pub(super) hits: Vec<AvoidHit>,
}

pub(super) fn results(arms: &[Arm], runs: &[RunRecord], grid_points: &[(grid::GridPoint, String)], judge: &Judging, rounds: &[Round], mut tune: Vec<TuneSummary>) -> Results {
    let of = |name: &str| -> Vec<&RunOutput> {
        let mut rs: Vec<&RunRecord> = runs.iter().filter(|r| r.arm == name).collect();
        rs.sort_by_key(|r| r.rep);
        rs.into_iter().map(|r| &r.output).collect()
    };
    let start = of("start");
    let mut out = Vec::new();
    for a in arms {
        let mine = of(&a.name);
        let recs: Vec<&RunRecord> = runs.iter().filter(|r| r.arm == a.name).collect();
        out.push(ArmResult {
            arm: a.clone(),
            stats: compare::arm_stats(&mine),
            vs_start: (a.kind != ArmKind::Start).then(|| compare::compare(("start", &start), (&a.name, &mine))),
            objective: judge.objective.of_arm(&mine),
            telemetry: median_telemetry(&recs),
        });
    }
    let find = |k: ArmKind| arms.iter().find(|a| a.kind == k).map(|a| a.name.clone());
    let noise = find(ArmKind::NoiseCheck).map(|n| compare::noise_check(compare::compare(("start", &start), (&n, &of(&n)))));
    let sem_name = find(ArmKind::Semantos).unwrap_or_default();
    let sem = of(&sem_name);
    let p95_of = |name: &str| out.iter().find(|r| r.arm.name == name).map(|r| r.stats.p95_rep_median_ms).unwrap_or(f64::NAN);
    let tuned_names: Vec<String> = arms.iter().filter(|a| a.kind == ArmKind::Tuned).map(|a| a.name.clone()).collect();
    let tuned_runs: Vec<(String, Vec<&RunOutput>)> = tuned_names.iter().map(|n| (n.clone(), of(n))).collect();
    let tuned_refs: Vec<(&str, &[&RunOutput])> = tuned_runs.iter().map(|(n, r)| (n.as_str(), r.as_slice())).collect();
    let objective_of = |name: &str| out.iter().find(|r| r.arm.name == name).map(|r| r.objective).unwrap_or(f64::NAN);
    let grid: Vec<GridRow> = grid_points.iter().map(|(p, arm)| GridRow { point: p.clone(), measured_as: arm.clone(), p95_ms: p95_of(arm), objective: objective_of(arm) }).collect();
    let plans: Vec<(usize, &crate::safety::CheckedPlan)> = rounds.iter().map(|r| (r.round, &r.checked)).collect();
    let hits = objective::hits(&judge.avoid, &plans);
    let (sem_obj, start_obj) = (objective_of(&sem_name), objective_of("start"));
    let sem_cmp = out.iter().find(|r| r.arm.kind == ArmKind::Semantos).and_then(|r| r.vs_start.clone());
    let goals = Goals {
        improvement_ci_excludes_zero: sem_cmp.map(|c| c.ci95_pct.0 > 0.0),
        noise_check_passed: noise.as_ref().map(|n| n.passed),
        vs_tuned: if tuned_refs.is_empty() { None } else { compare::vs_tuned((&sem_name, &sem), &tuned_refs) },
        vs_grid: if grid.is_empty() { None } else { compare::vs_grid(p95_of(&sem_name), &grid.iter().map(|g| (g.point.label.clone(), g.p95_ms)).collect::<Vec<_>>()) },
        objective_improved: (sem_obj.is_finite() && start_obj.is_finite()).then(|| judge.objective.better(sem_obj, start_obj)),
        objective_vs_grid: if grid.is_empty() || judge.objective == Objective::P95Ms {
            None
        } else {
            compare::objective_vs_grid(sem_obj, &grid.iter().map(|g| (g.point.label.clone(), g.objective)).collect::<Vec<_>>(), judge.objective.better(0.0, 1.0))
        },
        no_avoided_change: (!judge.avoid.is_empty()).then_some(hits.is_empty()),
        tune_vs_grid: None,
        all_met: false,
    };
    let optimum = best_point(&grid, judge.objective);
    for t in &mut tune {
        t.vs_grid = optimum.as_ref().map(|(label, v)| closed_loop::vs_grid(&t.trials, start_obj, objective_of(&t.arm), (label, *v), judge.objective));
    }
    let goals = Goals { tune_vs_grid: tune.iter().find(|t| t.arm == TuneArmSpec::semantos(0).name).and_then(|t| t.vs_grid.clone()), ..goals }.evaluated();
    Results { tune, arms: out, noise, grid, goals, hits }
}

/// Median over runs of each telemetry value.
fn median_telemetry(runs: &[&RunRecord]) -> BTreeMap<String, f64> {
    let mut all: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for (k, v) in &r.telemetry {
            all.entry(k.clone()).or_default().push(*v);
        }
    }
    all.into_iter().map(|(k, v)| (k, crate::eval::median(&v))).collect()
}

/// The grid's best point by the scenario's objective (the first of equals), with its objective.
fn best_point(grid: &[GridRow], objective: Objective) -> Option<(String, f64)> {
    let mut best: Option<(String, f64)> = None;
    for g in grid.iter().filter(|g| g.objective.is_finite()) {
        if best.as_ref().is_none_or(|(_, b)| objective.better(g.objective, *b)) {
            best = Some((g.point.label.clone(), g.objective));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(arm: &str, rep: usize, ms: f64) -> RunRecord {
        let output = RunOutput { samples_ms: vec![ms + rep as f64; 20], ..Default::default() };
        RunRecord { arm: arm.into(), rep, position: 0, samples: 20, errors: 0, p95_ms: ms, output, telemetry: BTreeMap::new() }
    }

    #[test]
    fn the_goals_are_evaluated_against_the_grid_optimum_for_semantos_and_the_closed_loop() {
        let arm = |name: &str, kind| Arm { name: name.into(), kind, writes: vec![], notes: vec![] };
        let arms = [arm("start", ArmKind::Start), arm("semantos", ArmKind::Semantos), arm("grid:a", ArmKind::Grid), arm("semantos:tune", ArmKind::Tune)];
        let runs: Vec<RunRecord> = (0..3).flat_map(|rep| [record("start", rep, 200.0), record("semantos", rep, 150.0), record("grid:a", rep, 100.0), record("semantos:tune", rep, 101.0)]).collect();
        let point = |label: &str| grid::GridPoint { label: label.into(), writes: vec![] };
        let rows = [(point("start"), "start".to_string()), (point("a"), "grid:a".to_string())];
        let judge = Judging { objective: Objective::P95Ms, avoid: vec![], grid_keys: vec![] };
        let mut judgement = crate::tune::Judgement::unmeasured(crate::tune::Decision::Kept, "test");
        judgement.candidate = vec![101.5, 101.5];
        let trial = crate::tune::Trial { index: 1, source: "rules".into(), values: Default::default(), rationale: None, supported: None, judgement, elapsed_s: 1.0 };
        let summary = TuneSummary {
            arm: "semantos:tune".into(),
            sources: vec!["rules".into()],
            budget: 5,
            repeats: 2,
            space: Default::default(),
            trials: vec![trial],
            stop: crate::tune::driver::Stop::Exhausted,
            best: vec![],
            harmful_trials: 0,
            wall_s: 1.0,
            vs_grid: None,
        };
        let res = results(&arms, &runs, &rows, &judge, &[], vec![summary]);
        let g = &res.goals;
        let v = g.vs_grid.as_ref().expect("SemantOS is judged against the grid optimum");
        assert!(v.optimum == "a" && !v.met && (v.distance_pct - 50.0).abs() < 1.0, "{v:?}");
        let t = g.tune_vs_grid.as_ref().expect("the closed loop is judged against the grid optimum");
        assert!(t.met && t.trials_to_within == Some(1) && (t.final_distance_pct - 1.0).abs() < 0.5, "{t:?}");
        assert_eq!(res.tune[0].vs_grid.as_ref(), Some(t));
        assert!(!g.all_met && g.all_met == g.all_met(), "evaluated: SemantOS is 50 % from the optimum");
    }
}
