//! The bench's closed-loop arms (`semantos:tune`, and one per reasoner for
//! `compare --reasoners`): `tune::driver::run` with a `System` over the
//! bench's `Switcher` (every value set through the apply transaction on the
//! scenario's stage, and rolled back) and an `ObjectiveSource` running the
//! scenario's workload once, scored by the scenario's own objective. The
//! loop's best configuration then becomes an arm measured with the others,
//! interleaved, so its distance to the grid optimum is measured like
//! SemantOS's; the trials themselves say how soon it got within reach.

use super::compare::{self, TuneVsGrid};
use super::configure::{Progress, Switcher, effective};
use super::objective::Objective;
use super::workload::{Env, RunOutput, Workload};
use crate::kb::{Kb, Risk};
use crate::reasoning::Findings;
use crate::safety::Policy;
use crate::sysctl::Value;
use crate::tune::candidate::{Candidate, CandidateSource, Once};
use crate::tune::decide::Decision;
use crate::tune::driver::{self, Loop, Observer, Outcome, Settings, Stop};
use crate::tune::objective::{Direction, GuardLimit, Measurement, ObjectiveSpec, Stat};
use crate::tune::optimiser::GpSearch;
use crate::tune::space::{self, SearchSpace};
use crate::tune::{ObjectiveSource, System, Trial, Values};
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Trials of the `semantos:tune` arm in a full run unless `--tune-budget` says otherwise.
pub const DEFAULT_TUNE_BUDGET: usize = 10;
/// Trials of the `semantos:tune` arm in quick mode (CI): the rules plan and one more.
pub const QUICK_TUNE_BUDGET: usize = 2;
/// Paired repeats per trial in a full run (quick: 2, the fewest an interval needs). Why 5, not
/// `tune`'s default 3: what a full run has left to find after the rules plan is a gain of a few
/// percent under a few percent of noise, and 5 pairs keep a real 5 % gain half as often again as
/// 3 at the same false-keep bound (`tune::false_keeps`: 1120 against 720 of 2000).
pub const FULL_REPEATS: usize = 5;
/// The backup slot of the loop's writes (beside `start` and `arm`).
const SLOT: &str = "tune";

/// A source of candidates a closed-loop arm may draw on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Reasoner {
    /// The rules plan: SemantOS's configuration, one candidate.
    Rules,
    /// The optimiser (a Gaussian process) over the KB-safe space of the implicated keys.
    Optimiser,
    /// The LLM backend's plan, one candidate (only when the caller configured one).
    Llm,
}

impl Reasoner {
    /// The name reports show.
    pub fn name(self) -> &'static str {
        match self {
            Reasoner::Rules => "rules",
            Reasoner::Optimiser => "optimiser",
            Reasoner::Llm => "llm",
        }
    }
}

/// One closed-loop arm to run: its arm name and the sources it draws on, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneArmSpec {
    /// The arm's name (`semantos:tune`, `reasoner:rules`).
    pub name: String,
    /// Its candidate sources, asked in this order (round-robin once each has proposed).
    pub reasoners: Vec<Reasoner>,
    /// Trials at most.
    pub budget: usize,
}

impl TuneArmSpec {
    /// The bench's default closed-loop arm: the rules plan first, then the optimiser.
    pub fn semantos(budget: usize) -> Self {
        TuneArmSpec { name: "semantos:tune".into(), reasoners: vec![Reasoner::Rules, Reasoner::Optimiser], budget }
    }
}

/// The LLM backend's candidate for the findings and start values, when the caller configured one.
pub type LlmCandidate<'f> = &'f (dyn Fn(&Findings, &Values) -> Result<Option<Candidate>> + Sync);

/// What one closed-loop arm did, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct TuneSummary {
    /// The arm that measures its best configuration.
    pub arm: String,
    /// Its sources, in the order they were asked.
    pub sources: Vec<String>,
    /// Trials allowed.
    pub budget: usize,
    /// Paired repeats per trial.
    pub repeats: usize,
    /// The space the optimiser searched (empty when none was built).
    pub space: SearchSpace,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
    /// Why the loop stopped.
    pub stop: Stop,
    /// The best configuration: writes relative to the start values (empty: nothing was kept).
    pub best: Vec<(String, String)>,
    /// Trials measured worse than the incumbent with an interval excluding zero, or with a guard broken (each rolled back).
    pub harmful_trials: usize,
    /// Wall-clock seconds the loop took.
    pub wall_s: f64,
    /// Against the grid optimum (full mode only).
    pub vs_grid: Option<TuneVsGrid>,
}

/// The `System` of a closed-loop arm: the bench's switcher, in its own backup slot.
struct BenchSystem<'s, 'a> {
    sw: &'s Switcher<'a>,
    start: BTreeMap<String, Value>,
    label: String,
}

impl System for BenchSystem<'_, '_> {
    fn describe(&self) -> String {
        format!("the bench's stage ({:?}) through the apply transaction", self.sw.target())
    }

    fn read(&self, keys: &[String]) -> Result<Values> {
        let cur = self.sw.current()?;
        Ok(keys.iter().filter_map(|k| Some((k.clone(), cur.get(k)?.to_string()))).collect())
    }

    fn set(&mut self, values: &Values) -> Result<()> {
        let pairs: Vec<(String, String)> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let writes = effective(&pairs, &self.start);
        // Back to the start values first: the slot's backup then always holds them, whatever was set before.
        self.sw.restore(SLOT)?;
        if !writes.is_empty() {
            self.sw.set(SLOT, &self.label, &writes)?;
        }
        Ok(())
    }

    fn restore(&mut self) -> Result<()> {
        self.sw.restore(SLOT)
    }
}

/// The `ObjectiveSource` of a closed-loop arm: one run of the scenario's workload.
struct BenchObjective<'w> {
    workload: &'w dyn Workload,
    env: Env<'w>,
    objective: Objective,
}

impl ObjectiveSource for BenchObjective<'_> {
    fn describe(&self) -> String {
        format!("{}: {}", self.workload.describe(), self.objective.describe())
    }

    fn measure(&mut self) -> Result<Measurement> {
        let t = Instant::now();
        let out = self.workload.run(&self.env)?;
        Ok(measurement(self.objective, &out, t.elapsed()))
    }
}

/// One run as the loop scores it: the latency samples, or the one share of a limit scenario; failed requests as the `errors` guard.
pub fn measurement(objective: Objective, out: &RunOutput, took: Duration) -> Measurement {
    let samples = match objective {
        Objective::AchievedShare => Some(objective.of_run(out)).filter(|v| v.is_finite()).into_iter().collect(),
        Objective::P95Ms | Objective::P99Ms | Objective::MeanMs => out.samples_ms.clone(),
    };
    Measurement { samples, seconds: took.as_secs_f64(), guards: BTreeMap::from([("errors".to_string(), out.errors as f64)]) }
}

/// The scenario's objective as the loop's: its statistic and direction, and failed requests as a guard that may not rise.
pub fn spec_of(objective: Objective) -> ObjectiveSpec {
    let (stat, direction) = match objective {
        Objective::P95Ms => (Stat::P95, Direction::Lower),
        Objective::P99Ms => (Stat::P99, Direction::Lower),
        Objective::MeanMs => (Stat::Mean, Direction::Lower),
        Objective::AchievedShare => (Stat::Value, Direction::Higher),
    };
    ObjectiveSpec::new(stat, direction, vec![GuardLimit { name: "errors".into(), direction: Direction::Lower, max_worsening_pct: 0.0 }])
}

/// Prints each trial as it ends.
struct Lines<'p> {
    arm: String,
    progress: Progress<'p>,
}

impl Observer for Lines<'_> {
    fn finished(&mut self, t: &Trial, _incumbent: &Values) -> Result<()> {
        let values: Vec<String> = t.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        (self.progress)(&format!("{}: trial {} ({}) [{}]: {:?}: {}", self.arm, t.index, t.source, values.join(", "), t.judgement.decision, t.judgement.reason));
        Ok(())
    }
}

/// What a closed-loop arm needs from the run around it.
pub(super) struct Stage<'r, 'a> {
    pub(super) kb: &'r Kb,
    /// The engine's policy: what the loop may propose and write.
    pub(super) policy: &'r Policy,
    pub(super) sw: &'r Switcher<'a>,
    pub(super) workload: &'r dyn Workload,
    pub(super) env: Env<'r>,
    pub(super) objective: Objective,
    /// The KB values at the start.
    pub(super) start: &'r BTreeMap<String, Value>,
    /// Round 0's findings (what the optimiser's space is built from).
    pub(super) findings: &'r Findings,
    /// SemantOS's configuration (the rules candidate).
    pub(super) rules: &'r [(String, String)],
    pub(super) llm: Option<LlmCandidate<'r>>,
    pub(super) quick: bool,
    pub(super) seed: u64,
}

/// Runs one closed-loop arm; the stage is back on the start values when it returns, whatever happened.
pub(super) fn run_arm(st: &Stage, spec: &TuneArmSpec, progress: Progress) -> Result<TuneSummary> {
    let t0 = Instant::now();
    let start_text: Values = st.start.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
    let space = if spec.reasoners.contains(&Reasoner::Optimiser) { space::build_moving(st.kb, &space::implicated(st.kb, st.findings), st.policy, &start_text)? } else { SearchSpace::default() };
    let mut sources: Vec<Box<dyn CandidateSource>> = Vec::new();
    let mut keys: Vec<String> = space.keys();
    for r in &spec.reasoners {
        let (name, values, rationale) = match r {
            Reasoner::Optimiser => {
                sources.push(Box::new(GpSearch::new(st.seed)));
                continue;
            }
            Reasoner::Rules => ("rules", st.rules.iter().cloned().collect::<Values>(), "SemantOS's plan after the guardrails (the bench's rounds)".to_string()),
            Reasoner::Llm => match st.llm {
                None => bail!("the llm reasoner needs an LLM backend; configure one (see docs/llm.md) or leave llm out of --reasoners"),
                Some(f) => match f(st.findings, &start_text)? {
                    Some(c) => ("llm", c.values, c.rationale.unwrap_or_default()),
                    None => ("llm", Values::new(), String::new()),
                },
            },
        };
        keys.extend(values.keys().cloned());
        let candidate = (!values.is_empty()).then(|| Candidate { source: name.into(), values, rationale: Some(rationale), supported: None });
        sources.push(Box::new(Once::new(name, candidate)));
    }
    keys.sort();
    keys.dedup();
    let incumbent: Values = keys.iter().filter_map(|k| Some((k.clone(), st.start.get(k)?.to_string()))).collect();
    let objective_spec = spec_of(st.objective);
    let check = |values: &Values| guardrails(st, values);
    let settings = settings(st.quick, spec.budget, st.seed);
    let repeats = settings.repeats;
    let source_names: Vec<String> = sources.iter().map(|s| s.name()).collect();
    let looks = if settings.second_look { "as many again when a trial looks better but is not yet shown so" } else { "no second look (quick mode: a CI smoke run)" };
    progress(&format!("{}: closed loop over [{}], sources {}, budget {} trials × {repeats} paired repeats, {looks}", spec.name, keys.join(", "), source_names.join(" → "), spec.budget));
    let mut system = BenchSystem { sw: st.sw, start: st.start.clone(), label: spec.name.clone() };
    let mut measure = BenchObjective { workload: st.workload, env: st.env, objective: st.objective };
    let l = Loop { system: &mut system, objective: &mut measure, sources, space: &space, spec: &objective_spec, check: &check, settings };
    let ran = driver::run(l, incumbent.clone(), incumbent, Vec::new(), &mut Lines { arm: spec.name.clone(), progress });
    // The loop leaves its best in force; the arm is measured later with the others, from the start values.
    let restored = system.restore();
    let outcome: Outcome = ran?;
    restored?;
    let pairs: Vec<(String, String)> = outcome.best.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(TuneSummary {
        arm: spec.name.clone(),
        sources: source_names,
        budget: spec.budget,
        repeats,
        space,
        harmful_trials: harmful(&outcome.trials),
        best: effective(&pairs, st.start),
        trials: outcome.trials,
        stop: outcome.stop,
        wall_s: t0.elapsed().as_secs_f64(),
        vs_grid: None,
    })
}

/// The closed loop's settings: quick mode (a CI smoke run, which already runs no A/A check) has 2
/// pairs and no second look, full mode `FULL_REPEATS` pairs and the second look, as `tune` has.
pub fn settings(quick: bool, budget: usize, seed: u64) -> Settings {
    if quick { Settings::smoke(budget, 2, seed) } else { Settings::new(budget, FULL_REPEATS, seed) }
}

/// The guardrails over a complete assignment: every changed key has a KB entry, is not never-touch,
/// may be written on this stage and under the policy, and its value is inside the KB's range.
fn guardrails(st: &Stage, values: &Values) -> std::result::Result<(), String> {
    for (k, v) in values {
        if st.start.get(k).is_some_and(|s| *s == Value::from_kernel(v)) {
            continue;
        }
        let p = st.kb.param(k).ok_or_else(|| format!("{k} has no knowledge-base entry"))?;
        if p.risk == Risk::Never {
            return Err(format!("{k} is a never-touch key"));
        }
        if let Some(why) = st.sw.target().refuses(k, p.scope) {
            return Err(why);
        }
        if st.policy.forbids(k) || !st.policy.allows(k) {
            return Err(format!("{k} is outside the bench policy"));
        }
        crate::kb::validate::check_value(p, v).map_err(|e| format!("{k} = {v}: {e}"))?;
    }
    Ok(())
}

/// Trials measured worse with an interval excluding zero, or that broke a guard.
pub fn harmful(trials: &[Trial]) -> usize {
    trials.iter().filter(|t| t.judgement.decision == Decision::Reverted && (t.judgement.ci95_pct.1 < 0.0 || t.judgement.guards.values().any(|g| !g.held))).count()
}

/// The loop against the grid optimum: `start` is the start arm's objective, `final_value` the tune arm's
/// (both measured with the grid), `optimum` the grid's best point (label, objective).
pub fn vs_grid(trials: &[Trial], start: f64, final_value: f64, optimum: (&str, f64), objective: Objective) -> TuneVsGrid {
    let lower = objective.better(0.0, 1.0);
    let distance = |v: f64| compare::distance_pct(v, optimum.1, lower);
    // The incumbent's value after each trial, on the grid's footing: the start arm's until a trial is
    // kept; the last kept trial's configuration is the tune arm, measured with the grid (`final_value`);
    // an earlier kept one is the start's value scaled by the ratios its trials measured. Its own trial's
    // figure is not comparable: it ran at another moment of a shared machine (the first full run's rules
    // trial measured 835 ms where the arms, interleaved, measured the same configuration at 1682 ms).
    let last_kept = trials.iter().rposition(|t| t.judgement.decision == Decision::Kept);
    // (trial after which it held, its value): the start, then each kept trial's incumbent.
    let mut held = vec![(0, start)];
    for (i, t) in trials.iter().enumerate().filter(|(_, t)| t.judgement.decision == Decision::Kept) {
        let ratio = crate::eval::median(&t.judgement.candidate) / crate::eval::median(&t.judgement.incumbent);
        let before = held.last().map_or(start, |h| h.1);
        held.push((t.index, if Some(i) == last_kept { final_value } else { before * ratio }));
    }
    if last_kept.is_none() {
        held[0].1 = final_value;
    }
    // Reached and stayed: the first incumbent from which every later one is within, so that
    // `trials_to_within` is set exactly when the final distance meets the goal (one definition).
    let within = |v: f64| distance(v) <= compare::TUNE_TOLERANCE_PCT;
    let stays = held.iter().rposition(|h| !within(h.1)).map_or(0, |i| i + 1);
    let reached = held.get(stays).map(|h| h.0);
    let final_distance_pct = distance(final_value);
    TuneVsGrid {
        optimum: optimum.0.to_string(),
        optimum_value: optimum.1,
        final_value,
        final_distance_pct,
        trials_to_within: reached,
        trials: trials.len(),
        met: final_distance_pct <= compare::TUNE_TOLERANCE_PCT,
        confirmed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::decide::Judgement;

    /// The sound keep rule's second look more than doubled the CI quick bench; it is off there
    /// only, and on for every path whose decision is acted on.
    #[test]
    fn quick_settings_have_no_second_look_and_every_other_constructor_does() {
        assert!(!settings(true, 2, 7).second_look, "bench --quick");
        assert!(!Settings::smoke(2, 2, 7).second_look);
        assert!(settings(false, 10, 7).second_look, "full-mode bench");
        assert!(Settings::new(10, 3, 7).second_look, "tune, apply --objective-cmd, the agent");
        let old: Settings = serde_json::from_str(r#"{"budget":3,"max_time":null,"repeats":3,"warmup_runs":0,"seed":1}"#).unwrap();
        assert!(old.second_look, "a state file from before the setting has the second look");
        assert!(!serde_json::to_string(&Settings::new(3, 3, 1)).unwrap().contains("second_look"), "written only when off: traces keep their bytes");
    }

    fn trial(index: usize, decision: Decision, candidate: &[f64], ci: (f64, f64)) -> Trial {
        let mut judgement = Judgement::unmeasured(decision, "test");
        judgement.incumbent = vec![120.0; candidate.len()];
        judgement.candidate = candidate.to_vec();
        judgement.ci95_pct = ci;
        Trial { index, source: "tpe".into(), values: Values::new(), rationale: None, supported: None, judgement, elapsed_s: 0.0 }
    }

    #[test]
    fn trials_to_the_optimum_count_from_the_first_kept_trial_within_reach() {
        let t = [trial(1, Decision::Reverted, &[130.0, 131.0], (-20.0, -5.0)), trial(2, Decision::Kept, &[110.0, 112.0], (5.0, 20.0)), trial(3, Decision::Kept, &[101.0, 101.0], (1.0, 9.0))];
        let v = vs_grid(&t, 120.0, 101.5, ("grid:x", 100.0), Objective::P95Ms);
        assert_eq!(v.trials_to_within, Some(3));
        // Trial 2 measured itself at 111 against 120 in the loop: on the grid's footing (start 200) that is 185, far from 100.
        let slow = vs_grid(&t, 200.0, 101.5, ("grid:x", 100.0), Objective::P95Ms);
        assert_eq!(slow.trials_to_within, Some(3));
        assert!(v.met && (v.final_distance_pct - 1.5).abs() < 1e-9, "{v:?}");
        assert_eq!(harmful(&t), 1);
        // Higher is better: a share of 0.9 against an optimum of 1.0 is 10 % away, and never reached.
        let s = vs_grid(&t[..1], 0.9, 0.9, ("grid:y", 1.0), Objective::AchievedShare);
        assert!(!s.met && s.trials_to_within.is_none() && (s.final_distance_pct - 10.0).abs() < 1e-9, "{s:?}");
        assert_eq!(vs_grid(&[], 100.0, 100.0, ("start", 100.0), Objective::P95Ms).trials_to_within, Some(0));
    }

    #[test]
    fn trials_to_within_is_set_exactly_when_the_final_distance_meets_the_goal() {
        // Trial 2 reached the optimum; trial 3, a keep of noise, moved away: the report said "within
        // 2 % after 2 trials" and "8.6 % away" at once.
        let t = [trial(1, Decision::Reverted, &[130.0, 131.0], (-20.0, -5.0)), trial(2, Decision::Kept, &[101.0, 101.0], (5.0, 20.0)), trial(3, Decision::Kept, &[100.0, 100.0], (0.5, 2.0))];
        let v = vs_grid(&t, 120.0, 108.6, ("grid:x", 100.0), Objective::P95Ms);
        assert!(!v.met && v.trials_to_within.is_none(), "{v:?}");
        let w = vs_grid(&t, 120.0, 101.0, ("grid:x", 100.0), Objective::P95Ms);
        assert!(w.met && w.trials_to_within == Some(2), "{w:?}");
    }

    #[test]
    fn a_trial_measured_at_a_quieter_moment_does_not_count_as_reaching_the_optimum() {
        // The first full run said "within 2 % after 1 trial" and "8.6 % away" at once: the rules trial's own
        // 835 ms was compared with a grid measured at 1548 ms under heavier load.
        let t = [trial(1, Decision::Kept, &[835.0, 835.0], (37.0, 43.0))];
        let v = vs_grid(&t, 1591.7, 1681.9, ("grid:tcp_wmem[2]=256M", 1548.0), Objective::P95Ms);
        assert_eq!(v.trials_to_within, None, "{v:?}");
        assert!(!v.met);
    }

    #[test]
    fn a_limit_scenario_is_scored_by_its_share_and_errors_guard_every_objective() {
        let out = RunOutput { samples_ms: vec![5.0, 7.0], errors: 3, wanted: 10, achieved: 5, ..Default::default() };
        let m = measurement(Objective::AchievedShare, &out, Duration::from_secs(2));
        assert_eq!(m.samples, [0.5]);
        assert_eq!(m.guards["errors"], 3.0);
        assert_eq!(measurement(Objective::P99Ms, &out, Duration::from_secs(2)).samples, [5.0, 7.0]);
        assert_eq!(spec_of(Objective::AchievedShare).direction, Direction::Higher);
        assert_eq!((spec_of(Objective::P99Ms).stat, spec_of(Objective::P95Ms).stat), (Stat::P99, Stat::P95));
        assert_eq!((spec_of(Objective::MeanMs).stat, spec_of(Objective::MeanMs).direction), (Stat::Mean, Direction::Lower));
        assert_eq!(measurement(Objective::MeanMs, &out, Duration::from_secs(2)).samples, [5.0, 7.0]);
    }
}
