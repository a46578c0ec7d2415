//! `apply --objective-cmd`: the user's own metric as a monitor gate beside
//! the symptom monitor. The user's command is run `repeats` times before the
//! writes (the baseline, `measure`) and `repeats` times after each batch,
//! while the symptom monitor's window has passed and the values are in
//! force. The i-th run after is paired with the i-th run before and judged
//! by `tune::judge` (paired t 95 % interval of the change in the
//! chosen statistic): a candidate worse with its interval excluding zero, or
//! a command that fails after the change although it passed before (the
//! `errors` guard), is a regression and the transaction rolls back with the
//! figures in its message. Not shown worse (neutral or better) is kept: the
//! gate guards against harm, it does not demand proof of benefit as `tune`
//! does.
//!
//! The runs before and after cannot be interleaved (the values are either
//! written or not), so a drift of the host between the two halves reads as
//! an effect of the change; the repeats and the interval keep one slow run
//! from deciding.

use crate::apply::{Health, Monitor};
use crate::eval::harness::UserCommand;
use crate::tune::command::CommandObjective;
use crate::tune::{Direction, GuardLimit, Judgement, Measurement, ObjectiveSource, ObjectiveSpec, judge};
use anyhow::{Result, bail};
use std::collections::BTreeMap;

/// The guard every run reports: 1 when the command failed, else 0.
pub const ERRORS: &str = "errors";

/// The user's objective: the command, how its runs are read, and how many of them each side takes.
#[derive(Debug, Clone)]
pub struct Objective {
    /// The command and how it runs.
    pub cmd: UserCommand,
    /// The statistic and its direction; `guards` gains the errors guard.
    pub spec: ObjectiveSpec,
    /// Runs before the writes, and again after each batch (≥ 2 for an interval).
    pub repeats: usize,
}

impl Objective {
    /// The spec judged: the user's, with the errors guard (no failure may be added by the change).
    fn judged_spec(&self) -> ObjectiveSpec {
        let mut spec = self.spec.clone();
        if !spec.guards.iter().any(|g| g.name == ERRORS) {
            spec.guards.push(GuardLimit { name: ERRORS.into(), direction: Direction::Lower, max_worsening_pct: 0.0 });
        }
        spec
    }
}

/// One run of the command as a measurement, read as `tune` reads it (`tune::command`); the errors
/// guard is 1 when the command failed (no samples then), else 0.
fn measure_once(o: &Objective) -> (Measurement, Option<String>) {
    match CommandObjective::new(o.cmd.clone(), o.spec.stat).measure() {
        Ok(mut m) => {
            // The gate's errors guard counts failed runs; tune's (lines without a number) is not it.
            m.guards.insert(ERRORS.to_string(), 0.0);
            (m, None)
        }
        Err(e) => (Measurement { samples: Vec::new(), seconds: 0.0, guards: BTreeMap::from([(ERRORS.to_string(), 1.0)]) }, Some(format!("{e:#}"))),
    }
}

/// The baseline: `o.repeats` runs before anything is written. Every run must succeed and give a
/// finite statistic, else nothing could be compared and the apply must not start.
pub fn measure(o: &Objective) -> Result<Vec<Measurement>> {
    let mut out = Vec::with_capacity(o.repeats);
    for i in 0..o.repeats {
        let (m, err) = measure_once(o);
        if let Some(e) = err {
            bail!("--objective-cmd failed before any change (run {} of {}): {e}; nothing was written. Fix the command (it must exit 0 and print one number per line, or CSV with --column) or leave out --objective-cmd", i + 1, o.repeats);
        }
        if !o.spec.stat.of(&m).is_finite() {
            bail!("--objective-cmd run {} of {} before any change gave no {:?} (it printed no numbers, or --stat throughput over a run of 0 s); nothing was written", i + 1, o.repeats, o.spec.stat);
        }
        out.push(m);
    }
    Ok(out)
}

/// Paired runs needed to call a change worse without an interval: every pair worse by chance
/// alone has probability 2^-n, under 5 % from five pairs on.
pub const SIGN_TEST_PAIRS: usize = 5;

/// Whether a judgement is a regression for an apply: a guard broken, or worse with the interval
/// excluding zero. The interval is relative to the baseline, so a baseline statistic of 0 (a count
/// of slow requests that was zero) gives none; then every pair worse, over at least
/// `SIGN_TEST_PAIRS` pairs, is a regression (a sign test), so such an objective still gates.
pub fn regressed(spec: &ObjectiveSpec, j: &Judgement) -> bool {
    if j.guards.values().any(|g| !g.held) {
        return true;
    }
    if j.ci95_pct.1.is_finite() {
        return j.ci95_pct.1 < 0.0;
    }
    let n = j.incumbent.len().min(j.candidate.len());
    n >= SIGN_TEST_PAIRS && j.incumbent.iter().zip(&j.candidate).all(|(i, c)| spec.better(*i, *c))
}

/// The gate: the symptom monitor first (its window passes with the values in force), then the objective.
pub struct ObjectiveGate<'a> {
    objective: Objective,
    baseline: Vec<Measurement>,
    symptoms: Box<dyn Monitor + 'a>,
}

impl<'a> ObjectiveGate<'a> {
    /// A gate judging `objective` after each batch against `baseline` (from `measure`), beside `symptoms`.
    pub fn new(objective: Objective, baseline: Vec<Measurement>, symptoms: Box<dyn Monitor + 'a>) -> Self {
        Self { objective, baseline, symptoms }
    }

    /// Runs the command `repeats` times with the batch's values in force and judges them against the baseline.
    fn judge_now(&self) -> (Judgement, Option<String>) {
        let mut cand = Vec::with_capacity(self.objective.repeats);
        let mut first_error = None;
        for _ in 0..self.objective.repeats {
            let (m, err) = measure_once(&self.objective);
            if first_error.is_none() {
                first_error = err;
            }
            cand.push(m);
        }
        if let Some(e) = first_error {
            // A failed run has no statistic: judge the errors guard alone rather than an interval over NaN.
            let failed = cand.iter().filter(|m| m.guards.get(ERRORS) == Some(&1.0)).count();
            let mut j = Judgement::unmeasured(crate::tune::Decision::Reverted, format!("errors 0 → {failed} of {} runs: {e}", cand.len()));
            j.guards.insert(ERRORS.into(), crate::tune::decide::GuardResult { incumbent: 0.0, candidate: failed as f64, worsening_pct: f64::INFINITY, held: false });
            return (j, Some(e));
        }
        (judge(&self.objective.judged_spec(), &self.baseline, &cand), None)
    }
}

impl Monitor for ObjectiveGate<'_> {
    fn after_batch(&mut self, index: usize, keys: &[String]) -> Result<Health> {
        let symptoms = self.symptoms.after_batch(index, keys)?;
        if let Health::Regressed(_) = symptoms {
            return Ok(symptoms);
        }
        let (j, _) = self.judge_now();
        let what = format!("objective {:?} of {:?}", self.objective.spec.stat, self.objective.cmd.cmd);
        if regressed(&self.objective.judged_spec(), &j) {
            let sign = if j.ci95_pct.1.is_finite() || j.guards.values().any(|g| !g.held) { String::new() } else { format!(" (no relative interval from a baseline of 0: every one of {} paired runs was worse)", j.candidate.len()) };
            return Ok(Health::Regressed(format!("batch {index} [{}]: {what} got worse: {}{sign}", keys.join(", "), j.reason)));
        }
        let Health::Healthy(detail) = symptoms else { unreachable!("regressed returned above") };
        Ok(Health::Healthy(format!("{detail}; {what} not worse: {}", j.reason)))
    }

    fn batch_started(&mut self, index: usize, total: usize, keys: &[String]) {
        self.symptoms.batch_started(index, total, keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::Stat;
    use std::time::Duration;

    /// A monitor that always passes.
    struct Quiet;
    impl Monitor for Quiet {
        fn after_batch(&mut self, i: usize, _: &[String]) -> Result<Health> {
            Ok(Health::Healthy(format!("batch {i}: quiet")))
        }
    }

    fn objective(cmd: &str) -> Objective {
        Objective {
            cmd: UserCommand { cmd: cmd.into(), netns: None, column: None, timeout: Duration::from_secs(10) },
            spec: ObjectiveSpec::new(Stat::P50, Direction::Lower, vec![]),
            repeats: 3,
        }
    }

    fn base(v: f64) -> Vec<Measurement> {
        (0..3).map(|i| Measurement { samples: vec![v + i as f64 * 0.01; 5], seconds: 0.1, guards: BTreeMap::from([(ERRORS.to_string(), 0.0)]) }).collect()
    }

    #[test]
    fn a_command_that_got_slower_rolls_back_with_its_figures_and_an_unchanged_one_is_kept() {
        let mut worse = ObjectiveGate::new(objective("echo 20; echo 20; echo 20"), base(10.0), Box::new(Quiet));
        let Health::Regressed(why) = worse.after_batch(0, &["net.core.somaxconn".into()]).unwrap() else { panic!("20 against 10 is worse") };
        assert!(why.contains("got worse") && why.contains("10.0") && why.contains("20.0") && why.contains("95 % CI") && why.contains("net.core.somaxconn"), "{why}");
        let mut same = ObjectiveGate::new(objective("echo 10.01"), base(10.0), Box::new(Quiet));
        let Health::Healthy(ok) = same.after_batch(0, &[]).unwrap() else { panic!("the same figure is not worse") };
        assert!(ok.contains("quiet") && ok.contains("not worse"), "{ok}");
    }

    #[test]
    fn an_objective_whose_baseline_is_zero_still_rolls_back_when_every_run_is_worse() {
        let zero = |n: usize| (0..n).map(|_| Measurement { samples: vec![0.0; 3], seconds: 0.1, guards: BTreeMap::from([(ERRORS.to_string(), 0.0)]) }).collect::<Vec<_>>();
        let mut o = objective("echo 4");
        o.repeats = SIGN_TEST_PAIRS;
        let mut g = ObjectiveGate::new(o.clone(), zero(SIGN_TEST_PAIRS), Box::new(Quiet));
        let Health::Regressed(why) = g.after_batch(0, &[]).unwrap() else { panic!("0 → 4 in every pair is worse") };
        assert!(why.contains("baseline of 0") && why.contains("every one of 5"), "{why}");
        let mut same = ObjectiveGate::new(objective("echo 0"), zero(3), Box::new(Quiet));
        assert!(matches!(same.after_batch(0, &[]).unwrap(), Health::Healthy(_)));
    }

    /// The gate had its own reading of a run beside tune's: a `value` objective printing two
    /// numbers passed here and failed in `tune`. One reading now (`tune::command`), with tune's
    /// guards and the gate's errors guard (failed runs).
    #[test]
    fn a_gate_run_is_read_as_tune_reads_it() {
        let mut two = objective("echo 1; echo 2");
        two.spec = ObjectiveSpec::new(Stat::Value, Direction::Lower, vec![]);
        let e = format!("{:#}", measure(&two).unwrap_err());
        assert!(e.contains("exactly one") && e.contains("nothing was written"), "{e}");
        let m = measure(&objective("echo 1; echo ERR")).unwrap();
        assert_eq!(m[0].guards[ERRORS], 0.0, "a run that succeeded has no failure, whatever it printed");
        assert!(m[0].guards["throughput"] > 0.0 && m[0].guards.contains_key("rss_mb"), "{:?}", m[0].guards);
    }

    #[test]
    fn a_command_that_fails_only_after_the_change_is_a_regression_and_before_it_refuses_the_apply() {
        let mut g = ObjectiveGate::new(objective("exit 3"), base(10.0), Box::new(Quiet));
        let Health::Regressed(why) = g.after_batch(1, &[]).unwrap() else { panic!("failing runs are a regression") };
        assert!(why.contains("errors 0 → 3 of 3") && why.contains("exit"), "{why}");
        let e = measure(&objective("exit 3")).unwrap_err().to_string();
        assert!(e.contains("before any change") && e.contains("nothing was written"), "{e}");
        assert!(measure(&objective("echo")).is_err(), "a run without numbers gives no baseline");
    }
}
