//! The loop: ask the sources for a candidate, check it against the
//! guardrails, set it, measure it against the incumbent in interleaved
//! repeats, keep it or put the incumbent back. Every exit path leaves the
//! system on the incumbent (a kept value, or the start values).

use super::candidate::{CandidateSource, Proposal};
use super::decide::{Decision, Judgement, judge, looks_better};
use super::objective::{Measurement, ObjectiveSpec};
use super::space::{SearchSpace, complete};
use super::{ObjectiveSource, System, Trial, Values};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How much the loop may spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Trials at most (a refused candidate counts: it used a proposal).
    pub budget: usize,
    /// Wall-clock limit; the trial running when it passes finishes first.
    pub max_time: Option<Duration>,
    /// Paired repeats per trial (incumbent, candidate, incumbent, candidate, ...); a trial that
    /// looks better but is not shown so gets as many again, once, and is judged on all of them.
    pub repeats: usize,
    /// Runs before each measured run of a configuration, not scored (caches, slow start).
    pub warmup_runs: usize,
    /// Seed of the optimisers that draw at random (`tune` hands it to the GP search); the judge draws nothing.
    pub seed: u64,
    /// The second look (as many pairs again, once, for a trial that looks better but is not yet
    /// shown so). On everywhere a decision is acted on; off only in `Settings::smoke`, the CI
    /// smoke run of `bench --quick`, whose 2 pairs rarely prove anything. Absent in older trace
    /// and state files (on), and not written when on, so their bytes do not change.
    #[serde(default = "on", skip_serializing_if = "is_on")]
    pub second_look: bool,
}

fn on() -> bool {
    true
}

fn is_on(v: &bool) -> bool {
    *v
}

impl Settings {
    /// `budget` trials of `repeats` paired repeats, no time limit, no warm-up runs, the second look on.
    pub fn new(budget: usize, repeats: usize, seed: u64) -> Settings {
        Settings { budget, max_time: None, repeats, warmup_runs: 0, seed, second_look: true }
    }

    /// As `new`, without the second look: for a smoke run whose decisions nobody acts on
    /// (`bench --quick` in CI), where it would double the run for little proof.
    pub fn smoke(budget: usize, repeats: usize, seed: u64) -> Settings {
        Settings { second_look: false, ..Settings::new(budget, repeats, seed) }
    }
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// `budget` trials were run.
    Budget,
    /// `max_time` passed.
    Time,
    /// Every source said it had nothing more.
    Exhausted,
}

/// What a tune ends with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The values in force before the first trial.
    pub start: Values,
    /// The incumbent at the end (the start values when nothing was kept); in force on the system.
    pub best: Values,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
    /// Why the loop stopped.
    pub stop: Stop,
}

/// Hears about the loop's progress (a progress bar, the state file).
pub trait Observer {
    /// A trial is about to be set and measured.
    fn started(&mut self, _index: usize, _budget: usize, _source: &str, _values: &Values) -> Result<()> {
        Ok(())
    }
    /// A trial ended; `incumbent` is what is in force now.
    fn finished(&mut self, _trial: &Trial, _incumbent: &Values) -> Result<()> {
        Ok(())
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Guardrails over a complete assignment: `Err(reason)` refuses it unapplied.
pub type Check<'a> = &'a dyn Fn(&Values) -> std::result::Result<(), String>;

/// Everything one tune run needs.
pub struct Loop<'a> {
    /// Where values are set.
    pub system: &'a mut dyn System,
    /// What is measured.
    pub objective: &'a mut dyn ObjectiveSource,
    /// Asked in order; a source that returns `None` is not asked again.
    pub sources: Vec<Box<dyn CandidateSource + 'a>>,
    /// What may change.
    pub space: &'a SearchSpace,
    /// What is better.
    pub spec: &'a ObjectiveSpec,
    /// The guardrails.
    pub check: Check<'a>,
    /// Budget and repeats.
    pub settings: Settings,
}

/// Runs the loop from `history` (empty for a fresh tune; a resumed tune passes its trials and incumbent).
pub fn run(mut l: Loop, start: Values, incumbent: Values, mut history: Vec<Trial>, observer: &mut dyn Observer) -> Result<Outcome> {
    let began = Instant::now();
    let mut incumbent = incumbent;
    let mut exhausted = vec![false; l.sources.len()];
    let mut next = 0usize;
    let stop = loop {
        if history.len() >= l.settings.budget {
            break Stop::Budget;
        }
        if l.settings.max_time.is_some_and(|t| began.elapsed() >= t) {
            break Stop::Time;
        }
        let Some((source, candidate)) = next_candidate(&mut l, &mut exhausted, &mut next, &incumbent, &history)? else { break Stop::Exhausted };
        let index = history.len() + 1;
        let values = complete(&incumbent, &candidate.values);
        observer.started(index, l.settings.budget, &source, &values)?;
        let judgement = if values == incumbent {
            Judgement::unmeasured(Decision::Refused, "the candidate equals the incumbent; nothing to measure")
        } else {
            match (l.check)(&values) {
                Err(why) => Judgement::unmeasured(Decision::Refused, format!("refused by the guardrails, never applied: {why}")),
                Ok(()) => trial(&mut l, &incumbent, &values)?,
            }
        };
        if judgement.decision == Decision::Kept {
            incumbent = values.clone();
        }
        let t = Trial { index, source, values, rationale: candidate.rationale, supported: candidate.supported, judgement, elapsed_s: began.elapsed().as_secs_f64() };
        observer.finished(&t, &incumbent)?;
        history.push(t);
    };
    Ok(Outcome { start, best: incumbent, trials: history, stop })
}

/// The next candidate from the sources, round-robin, skipping exhausted ones.
fn next_candidate(l: &mut Loop, exhausted: &mut [bool], next: &mut usize, incumbent: &Values, history: &[Trial]) -> Result<Option<(String, super::Candidate)>> {
    let n = l.sources.len();
    for _ in 0..n {
        let i = *next % n;
        *next += 1;
        if exhausted[i] {
            continue;
        }
        let p = Proposal { space: l.space, incumbent, history, objective: l.spec };
        match l.sources[i].propose(&p)? {
            Some(c) => return Ok(Some((l.sources[i].name(), c))),
            None => exhausted[i] = true,
        }
    }
    Ok(None)
}

/// Sets and measures one candidate in paired repeats; leaves the incumbent in force unless kept.
///
/// Two looks: `repeats` pairs, then, only when the candidate looks better (by at least the minimum
/// effect, guards held) but its interval includes zero, `repeats` more, judged on all. Each look's
/// 95 % interval keeps an identical candidate at most 2.5 % of the time (its lower end above zero),
/// so two looks keep one at most 5 % of the time; a candidate that looks no better stops at the
/// first (test: `tune::false_keeps`). `Settings::smoke` has only the first look. One look of 3 pairs had to choose between keeping noise
/// (the bootstrap: 1 in 8) and never keeping a real +10 % (the t interval at 2 degrees of freedom).
fn trial(l: &mut Loop, incumbent: &Values, values: &Values) -> Result<Judgement> {
    let measured = measure_pairs(l, incumbent, values, 0).and_then(|(mut inc, mut cand)| {
        if l.settings.second_look && looks_better(l.spec, &judge(l.spec, &inc, &cand)) {
            let (more_inc, more_cand) = measure_pairs(l, incumbent, values, inc.len())?;
            inc.extend(more_inc);
            cand.extend(more_cand);
        }
        Ok((inc, cand))
    });
    match measured {
        Ok((inc, cand)) => {
            let j = judge(l.spec, &inc, &cand);
            if j.decision == Decision::Kept {
                l.system.set(values)?;
            } else {
                l.system.set(incumbent)?;
            }
            Ok(j)
        }
        Err(e) => {
            // Put the incumbent back before anything else; a failure to do so is the caller's to report.
            l.system.set(incumbent)?;
            Ok(Judgement::unmeasured(Decision::Failed, format!("{e:#}; the incumbent was put back")))
        }
    }
}

/// Interleaved repeats: incumbent then candidate, `repeats` times (the order alternates to cancel
/// drift; `done` pairs were measured before, so the alternation continues theirs).
fn measure_pairs(l: &mut Loop, incumbent: &Values, values: &Values, done: usize) -> Result<(Vec<Measurement>, Vec<Measurement>)> {
    let (mut inc, mut cand) = (Vec::new(), Vec::new());
    for r in done..done + l.settings.repeats {
        let order: [(&Values, bool); 2] = if r % 2 == 0 { [(incumbent, false), (values, true)] } else { [(values, true), (incumbent, false)] };
        for (v, is_candidate) in order {
            l.system.set(v)?;
            for _ in 0..l.settings.warmup_runs {
                l.objective.measure()?;
            }
            let m = l.objective.measure()?;
            if is_candidate { cand.push(m) } else { inc.push(m) }
        }
    }
    Ok((inc, cand))
}
