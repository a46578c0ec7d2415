//! What a scenario is judged by besides p95, and the changes it must not
//! see: each scenario names its objective (connect p99, the share of
//! watches or mappings the process got) and the tempting changes that
//! cannot help it (a limit that does not bind, a switch that turns delay
//! into failures). Pure functions of the measured runs and of the checked
//! plans; the engine never sees any of this.

use super::workload::RunOutput;
use crate::eval::{mean, median, percentile};
use crate::safety::CheckedPlan;
use crate::sysctl::Value;
use serde::Serialize;

/// The number a scenario is judged by, per run; an arm's value is the median over its reps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// p95 of the latency samples, ms (lower is better).
    P95Ms,
    /// p99 of the latency samples, ms (lower is better).
    P99Ms,
    /// Mean of the latency samples, ms (lower is better): for a run of equal objects, its goodput.
    MeanMs,
    /// `achieved / wanted` of the limited resource (higher is better).
    AchievedShare,
}

impl Objective {
    /// One line for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Objective::P95Ms => "p95 latency, ms (lower is better; median over reps)",
            Objective::P99Ms => "p99 latency, ms (lower is better; median over reps); failed requests are counted as errors",
            Objective::MeanMs => "mean transfer time, ms (lower is better; median over reps): equal objects, so the run's goodput",
            Objective::AchievedShare => "share of the needed resource the process got, achieved / wanted (higher is better; median over reps)",
        }
    }

    /// The value of one run (`NaN` when it has no samples or wanted nothing).
    pub fn of_run(self, r: &RunOutput) -> f64 {
        match self {
            Objective::P95Ms => percentile(&r.samples_ms, 95.0),
            Objective::P99Ms => percentile(&r.samples_ms, 99.0),
            Objective::MeanMs => mean(&r.samples_ms),
            Objective::AchievedShare if r.wanted == 0 => f64::NAN,
            Objective::AchievedShare => r.achieved as f64 / r.wanted as f64,
        }
    }

    /// The value of an arm: the median over its runs.
    pub fn of_arm(self, runs: &[&RunOutput]) -> f64 {
        let v: Vec<f64> = runs.iter().map(|r| self.of_run(r)).filter(|x| x.is_finite()).collect();
        if v.is_empty() { f64::NAN } else { median(&v) }
    }

    /// `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Objective::P95Ms | Objective::P99Ms | Objective::MeanMs => a < b,
            Objective::AchievedShare => a > b,
        }
    }
}

/// Which move of a key is wrong for a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Bad {
    /// Any change of the key.
    Any,
    /// Raising it (the largest element, for a triple).
    Raise,
    /// Setting this value.
    Set(&'static str),
}

/// A tempting change that cannot help the scenario, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Avoid {
    /// The key.
    pub key: &'static str,
    /// Which move of it is wrong.
    pub bad: Bad,
    /// Why it cannot help (the docs say the same).
    pub why: &'static str,
}

/// One avoided change the engine proposed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvoidHit {
    /// The round of the closed loop that proposed it.
    pub round: usize,
    /// The key.
    pub key: String,
    /// From (as read when checked).
    pub from: Option<String>,
    /// To (the value the guardrails would write, or the proposal when refused).
    pub to: String,
    /// The guardrails' verdict (`accept`, `clamp`, `refuse`...): a refused proposal is still the engine's mistake.
    pub verdict: String,
    /// Why the scenario lists it.
    pub why: String,
}

fn largest(v: &str) -> Option<i64> {
    Value::from_kernel(v).ints().and_then(|i| i.into_iter().max())
}

/// Whether changing `from` → `to` is the move `bad` names.
pub fn is_bad(bad: Bad, from: Option<&str>, to: &str) -> bool {
    match bad {
        Bad::Any => from.is_none_or(|f| Value::from_kernel(f) != Value::from_kernel(to)),
        Bad::Raise => match (from.and_then(largest), largest(to)) {
            (Some(f), Some(t)) => t > f,
            // A value that cannot be compared is treated as the wrong move: the check errs towards flagging.
            _ => true,
        },
        Bad::Set(v) => Value::from_kernel(v) == Value::from_kernel(to),
    }
}

/// Every change in `plans` (round, checked plan) that `avoid` lists, whatever its verdict.
pub fn hits(avoid: &[Avoid], plans: &[(usize, &CheckedPlan)]) -> Vec<AvoidHit> {
    let mut out = Vec::new();
    for (round, plan) in plans {
        for c in &plan.changes {
            let to = c.write.clone().unwrap_or_else(|| c.change.to.clone());
            for a in avoid.iter().filter(|a| a.key == c.change.key) {
                if is_bad(a.bad, c.change.from.as_deref(), &to) {
                    out.push(AvoidHit { round: *round, key: c.change.key.clone(), from: c.change.from.clone(), to: to.clone(), verdict: c.verdict.label().into(), why: a.why.into() });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raise_a_set_value_and_any_change_are_told_apart() {
        assert!(is_bad(Bad::Raise, Some("128"), "1024"));
        assert!(!is_bad(Bad::Raise, Some("1024"), "128"));
        assert!(is_bad(Bad::Raise, Some("4096 131072 6291456"), "4096 131072 8388608"));
        assert!(is_bad(Bad::Set("1"), Some("0"), "1") && !is_bad(Bad::Set("1"), Some("1"), "0"));
        assert!(is_bad(Bad::Any, Some("0"), "2") && !is_bad(Bad::Any, Some("2"), " 2 "));
    }

    #[test]
    fn objectives_read_the_runs_and_know_which_way_is_better() {
        let r = RunOutput { samples_ms: (1..=100).map(f64::from).collect(), wanted: 10, achieved: 8, ..Default::default() };
        assert_eq!(Objective::AchievedShare.of_run(&r), 0.8);
        assert!(Objective::P99Ms.of_run(&r) > Objective::P95Ms.of_run(&r));
        assert!(Objective::AchievedShare.better(1.0, 0.8) && Objective::P99Ms.better(10.0, 20.0));
        assert!(Objective::AchievedShare.of_arm(&[&RunOutput::default()]).is_nan());
        assert_eq!(Objective::MeanMs.of_run(&r), 50.5);
        assert!(Objective::MeanMs.better(10.0, 20.0) && Objective::MeanMs.of_run(&RunOutput::default()).is_nan());
    }

    #[test]
    fn the_mean_of_six_objects_moves_by_one_slow_object_in_sixths_where_the_p95_jumps_to_it() {
        // Six objects, one caught in a loss episode (the bdp-transfer pattern): the p95 lands near the
        // slow one, the mean moves by a sixth of its delay.
        let fast = RunOutput { samples_ms: vec![660.0; 6], ..Default::default() };
        let one_slow = RunOutput { samples_ms: vec![660.0, 660.0, 660.0, 660.0, 660.0, 810.0], ..Default::default() };
        let step = |o: Objective| o.of_run(&one_slow) / o.of_run(&fast) - 1.0;
        assert!(step(Objective::P95Ms) > 0.15, "{}", step(Objective::P95Ms));
        assert!((step(Objective::MeanMs) - 25.0 / 660.0).abs() < 1e-9, "{}", step(Objective::MeanMs));
    }
}
