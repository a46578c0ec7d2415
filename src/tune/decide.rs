//! Keep or revert: a candidate measured against the incumbent in
//! interleaved repeats is kept only when the objective improves by at least
//! the objective's minimum effect, with a paired 95 % interval (Student t
//! over the pairs' log-ratios: `interval`) that excludes zero, and no guard
//! objective worsens past its limit. Pure: the measurements are given.

use super::interval::paired;
use super::objective::{Direction, Measurement, ObjectiveSpec};
use crate::eval::median;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What was decided about a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Measured better by at least the minimum effect, with an interval excluding zero; guards held: the new incumbent.
    Kept,
    /// Measured, not shown better (or a guard worsened): rolled back.
    Reverted,
    /// Never applied: the guardrails refused it.
    Refused,
    /// Applying or measuring it failed: rolled back.
    Failed,
}

/// One guard's figures in a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardResult {
    /// Median of the guard over the incumbent's repeats.
    pub incumbent: f64,
    /// Median of the guard over the candidate's repeats.
    pub candidate: f64,
    /// Worsening against the incumbent, percent (positive: worse; infinite when it rose from zero).
    pub worsening_pct: f64,
    /// Within the guard's limit.
    pub held: bool,
}

/// The measurement of a trial and the decision drawn from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Kept, reverted, refused or failed.
    pub decision: Decision,
    /// One sentence with the evidence: the figures the decision rests on.
    pub reason: String,
    /// The objective statistic of each incumbent repeat, in run order.
    pub incumbent: Vec<f64>,
    /// The objective statistic of each candidate repeat, in run order.
    pub candidate: Vec<f64>,
    /// Improvement of the candidate over the incumbent at the pairs' geometric-mean ratio, percent (positive: better).
    pub improvement_pct: f64,
    /// Paired 95 % interval of that improvement (Student t over the pairs' log-ratios).
    pub ci95_pct: (f64, f64),
    /// Guard objectives by name.
    pub guards: BTreeMap<String, GuardResult>,
}

impl Judgement {
    /// A judgement for a trial that was never measured (refused or failed), with its reason.
    pub fn unmeasured(decision: Decision, reason: impl Into<String>) -> Self {
        Judgement { decision, reason: reason.into(), incumbent: vec![], candidate: vec![], improvement_pct: f64::NAN, ci95_pct: (f64::NAN, f64::NAN), guards: BTreeMap::new() }
    }
}

/// Judges paired repeats (`incumbent[i]` and `candidate[i]` were run back to back), by the
/// paired t interval of `tune::interval` (nothing is drawn at random, so no seed).
pub fn judge(spec: &ObjectiveSpec, incumbent: &[Measurement], candidate: &[Measurement]) -> Judgement {
    let n = incumbent.len().min(candidate.len());
    let inc: Vec<f64> = incumbent[..n].iter().map(|m| spec.stat.of(m)).collect();
    let cand: Vec<f64> = candidate[..n].iter().map(|m| spec.stat.of(m)).collect();
    let guards = guard_results(spec, &incumbent[..n], &candidate[..n]);
    let p = paired(spec.direction, &inc, &cand);
    let improvement = p.map_or_else(|| spec.improvement_pct(median(&inc), median(&cand)), |p| p.improvement_pct);
    let ci = p.map_or((f64::NAN, f64::NAN), |p| p.ci95_pct);
    let broken: Vec<String> = guards.iter().filter(|(_, g)| !g.held).map(|(k, g)| format!("{k} {} → {} ({:+.1} %)", fmt(g.incumbent), fmt(g.candidate), g.worsening_pct)).collect();
    let figures = format!("{:?} {} → {} ({:+.1} %, 95 % CI [{:+.1}, {:+.1}] over {n} paired repeats)", spec.stat, fmt(median(&inc)), fmt(median(&cand)), improvement, ci.0, ci.1);
    let (decision, reason) = if n < 2 {
        (Decision::Failed, format!("only {n} paired repeat(s) measured; at least 2 are needed for an interval"))
    } else if !broken.is_empty() {
        (Decision::Reverted, format!("{figures}; guard worsened past its limit: {}", broken.join(", ")))
    } else if ci.0 > 0.0 && improvement >= floor(spec) {
        (Decision::Kept, format!("{figures}: better, the interval excludes zero, and by at least the minimum effect ({:.1} %)", floor(spec)))
    } else if ci.0 > 0.0 {
        (Decision::Reverted, format!("{figures}: better, but by less than the minimum effect of {:.1} % (--min-effect): not worth a change", floor(spec)))
    } else if ci.1 < 0.0 {
        (Decision::Reverted, format!("{figures}: worse, the interval excludes zero"))
    } else {
        (Decision::Reverted, format!("{figures}: not shown better (the interval includes zero)"))
    };
    Judgement { decision, reason, incumbent: inc, candidate: cand, improvement_pct: improvement, ci95_pct: ci, guards }
}

/// The smallest improvement kept: the objective's minimum effect, and never less than what the
/// reports print as +0.1 % (a change shown as "+0.0 %" is never kept, whatever `--min-effect 0`).
fn floor(spec: &ObjectiveSpec) -> f64 {
    if spec.min_effect_pct.is_finite() { spec.min_effect_pct.max(0.05) } else { super::objective::DEFAULT_MIN_EFFECT_PCT }
}

/// Whether a reverted trial looked better but was not shown so: every guard held, the improvement
/// reached the minimum effect, and only the interval's lower end failed to clear zero. The loop
/// measures such a trial again (`driver`) before giving up on it; a trial that looked no better,
/// or worse, is not worth the runs.
pub fn looks_better(spec: &ObjectiveSpec, j: &Judgement) -> bool {
    j.decision == Decision::Reverted && j.guards.values().all(|g| g.held) && j.improvement_pct >= floor(spec) && !(j.ci95_pct.0 > 0.0)
}

fn guard_results(spec: &ObjectiveSpec, inc: &[Measurement], cand: &[Measurement]) -> BTreeMap<String, GuardResult> {
    let med = |ms: &[Measurement], name: &str| median(&ms.iter().map(|m| m.guards.get(name).copied().unwrap_or(f64::NAN)).collect::<Vec<_>>());
    spec.guards
        .iter()
        .map(|g| {
            let (i, c) = (med(inc, &g.name), med(cand, &g.name));
            let rise = match g.direction {
                Direction::Lower => c - i,
                Direction::Higher => i - c,
            };
            let worsening = if rise <= 0.0 { 0.0 } else if i == 0.0 { f64::INFINITY } else { rise / i.abs() * 100.0 };
            // A guard the runs did not report cannot be shown to hold.
            let held = i.is_finite() && c.is_finite() && worsening <= g.max_worsening_pct;
            (g.name.clone(), GuardResult { incumbent: i, candidate: c, worsening_pct: worsening, held })
        })
        .collect()
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.3}") }
}

#[cfg(test)]
mod tests {
    use super::super::objective::{GuardLimit, Stat};
    use super::*;

    fn runs(centres: &[f64], errors: f64) -> Vec<Measurement> {
        centres
            .iter()
            .map(|&c| Measurement { samples: (0..50).map(|i| c + (i % 5) as f64 * 0.01).collect(), seconds: 1.0, guards: BTreeMap::from([("errors".to_string(), errors)]) })
            .collect()
    }

    fn spec() -> ObjectiveSpec {
        ObjectiveSpec::new(Stat::P95, Direction::Lower, vec![GuardLimit { name: "errors".into(), direction: Direction::Lower, max_worsening_pct: 0.0 }])
    }

    #[test]
    fn a_clearly_faster_candidate_is_kept() {
        let j = judge(&spec(), &runs(&[10.0, 10.2, 9.9, 10.1, 10.0], 0.0), &runs(&[8.0, 8.1, 7.9, 8.2, 8.0], 0.0));
        assert_eq!(j.decision, Decision::Kept, "{}", j.reason);
        assert!(j.ci95_pct.0 > 0.0);
    }

    #[test]
    fn a_slower_candidate_is_reverted_with_the_figures() {
        let j = judge(&spec(), &runs(&[10.0, 10.2, 9.9, 10.1, 10.0], 0.0), &runs(&[30.0, 31.0, 29.0, 30.5, 30.2], 0.0));
        assert_eq!(j.decision, Decision::Reverted);
        assert!(j.reason.contains("worse"), "{}", j.reason);
    }

    #[test]
    fn noise_alone_is_not_kept() {
        let j = judge(&spec(), &runs(&[10.0, 10.4, 9.7, 10.1, 10.0], 0.0), &runs(&[10.1, 9.8, 10.3, 9.9, 10.0], 0.0));
        assert_eq!(j.decision, Decision::Reverted, "{}", j.reason);
    }

    #[test]
    fn a_faster_candidate_that_starts_failing_requests_is_reverted() {
        let j = judge(&spec(), &runs(&[10.0, 10.2, 9.9, 10.1], 0.0), &runs(&[8.0, 8.1, 7.9, 8.2], 3.0));
        assert_eq!(j.decision, Decision::Reverted);
        assert!(j.reason.contains("errors"), "{}", j.reason);
    }

    #[test]
    fn a_consistent_gain_below_the_minimum_effect_is_not_kept() {
        // Every pair 0.5 % faster: the interval excludes zero, the gain is not worth a change.
        let j = judge(&spec(), &runs(&[10.0, 10.2, 9.9, 10.1], 0.0), &runs(&[9.95, 10.149, 9.8505, 10.0495], 0.0));
        assert!(j.ci95_pct.0 > 0.0, "{}", j.reason);
        assert_eq!(j.decision, Decision::Reverted, "{}", j.reason);
        assert!(j.reason.contains("less than the minimum effect of 1.0 %"), "{}", j.reason);
        let mut lax = spec();
        lax.min_effect_pct = 0.25;
        assert_eq!(judge(&lax, &runs(&[10.0, 10.2, 9.9, 10.1], 0.0), &runs(&[9.95, 10.149, 9.8505, 10.0495], 0.0)).decision, Decision::Kept);
    }

    #[test]
    fn a_change_shown_as_zero_point_zero_percent_is_never_kept_even_with_no_minimum_effect() {
        let mut none = spec();
        none.min_effect_pct = 0.0;
        let j = judge(&none, &runs(&[10.0, 10.2, 9.9, 10.1], 0.0), &runs(&[9.998, 10.198, 9.898, 10.098], 0.0));
        assert!(j.ci95_pct.0 > 0.0 && j.improvement_pct < 0.05, "{}", j.reason);
        assert_eq!(j.decision, Decision::Reverted, "{}", j.reason);
    }

    #[test]
    fn higher_is_better_objectives_keep_the_larger_score() {
        let s = ObjectiveSpec::new(Stat::Value, Direction::Higher, vec![]);
        let j = judge(&s, &runs(&[100.0, 101.0, 99.0, 100.0], 0.0), &runs(&[120.0, 121.0, 119.0, 120.0], 0.0));
        assert_eq!(j.decision, Decision::Kept, "{}", j.reason);
        assert!(j.improvement_pct > 15.0);
    }
}
