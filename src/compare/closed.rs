//! Reasoners in closed loop at matched budget (`semantos compare --reasoners
//! rules,llm,optimiser --budget N`): each reasoner is a candidate source in
//! its own `tune::driver::run` on a fresh simulated host, with the same
//! budget, objective, guardrails and seeds; every incumbent it reaches is
//! scored against the optimum of an exhaustive grid over the same space,
//! computed on the simulator with the same scoring run.
//!
//! Per reasoner: trials until the incumbent is within 2 % of the grid
//! optimum, the final distance to it, harmful trials tried (measured worse
//! with the interval excluding zero), unsupported LLM rationales and wall
//! time. [`race`] is the hook for any other system and objective (the
//! bench's scenarios): it takes the reasoner list, the budget and a factory
//! of fresh (system, objective) pairs.

use crate::config::ExperimentConfig;
use crate::kb::Kb;
use crate::llm::reasoner::LlmReasoner;
use crate::reasoning::{self, Context, Findings};
use crate::safety::{self, Policy};
use crate::sim::{self, rng::trial_seed};
use crate::sysctl::Value;
use crate::tune::candidate::{Candidate, CandidateSource, Once, Proposal};
use crate::tune::driver::{self, Loop, Observer, Settings};
use crate::tune::optimiser::GpSearch;
use crate::tune::sim::{self as tsim, Compass, SimHost};
use crate::tune::{Decision, DimKind, ObjectiveSource, ObjectiveSpec, SearchSpace, System, Trial, Values};
use anyhow::{Result, bail};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// Within this far of the grid optimum counts as reaching it, percent.
pub const WITHIN_PCT: f64 = 2.0;
/// Most grid points the exhaustive grid may have (each is one simulated run).
pub const MAX_GRID: usize = 50_000;
/// Salt of the scoring run's seed (the tune's measurements use 300 000).
const SCORE_SALT: usize = 400_000;

/// A reasoner raced in closed loop.
pub enum Tuner {
    /// The rule engine, re-observing the simulated host at each incumbent (one plan per round).
    Rules,
    /// An LLM's one plan; `None` when no LLM is configured (the row says so).
    Llm(Option<Box<LlmReasoner>>),
    /// The optimisers over the space (the GP optimiser, then compass search when it has nothing to offer).
    Optimiser,
}

impl Tuner {
    /// Row label.
    pub fn name(&self) -> String {
        match self {
            Tuner::Rules => "rules".into(),
            Tuner::Llm(Some(l)) => format!("llm:{}", l.settings().model),
            Tuner::Llm(None) => "llm".into(),
            Tuner::Optimiser => "optimiser".into(),
        }
    }
}

/// The optimum of the exhaustive grid.
#[derive(Debug, Clone, Serialize)]
pub struct Grid {
    /// Points scored.
    pub points: usize,
    /// Values of each dimension, in the space's order.
    pub axes: Vec<(String, Vec<String>)>,
    /// The best point.
    pub best: Values,
    /// Its score (geometric-mean p95, ms).
    pub score: f64,
}

/// One reasoner's race.
#[derive(Debug, Clone, Serialize)]
pub struct RaceRow {
    /// `rules`, `llm:model`, `optimiser`.
    pub reasoner: String,
    /// Trials run (at most the budget).
    pub trials: usize,
    /// First trial after which the incumbent was within 2 % of the grid optimum (`None`: never).
    pub trials_to_within_2pct: Option<usize>,
    /// Final incumbent's score against the grid optimum, percent (negative: better than the grid's best point).
    pub final_distance_pct: f64,
    /// Trials measured worse with the interval excluding zero.
    pub harmful_tried: usize,
    /// Candidates whose rationale cited figures that do not match the evidence.
    pub unsupported: usize,
    /// Wall-clock seconds of the race (LLM calls included).
    pub wall_s: f64,
    /// The values it ended with.
    pub best: Values,
    /// Why the row has no race, when it has none.
    pub note: Option<String>,
    /// Every trial (values, repeats, interval, decision).
    pub trace: Vec<Trial>,
}

/// The comparison at matched budget.
#[derive(Debug, Clone, Serialize)]
pub struct Race {
    /// Trials each reasoner may use.
    pub budget: usize,
    /// The grid optimum.
    pub grid: Grid,
    /// One row per reasoner, in the order asked.
    pub rows: Vec<RaceRow>,
}

/// The rule engine as a candidate source: observes the simulated host at the
/// incumbent, diagnoses, recommends and checks; its writes are the candidate.
/// Stops when a plan has nothing to write or equals a point already tried.
pub struct RulesSource<'a> {
    cfg: &'a ExperimentConfig,
    kb: &'a Kb,
    round: usize,
}

impl CandidateSource for RulesSource<'_> {
    fn name(&self) -> String {
        "rules".into()
    }

    fn propose(&mut self, p: &Proposal) -> Result<Option<Candidate>> {
        let (findings, current, out) = observe(self.cfg, self.kb, p.incumbent, self.round);
        self.round += 1;
        let ctx = Context { kb: self.kb, intent: self.cfg.intent, current: &current, window: crate::telemetry::Window::new(&out.before, &out.after) };
        let plan = reasoning::recommend(&findings, &ctx);
        let values = writes(&plan, self.kb, &self.cfg.policy, &current, p.incumbent);
        let ids: Vec<&str> = findings.findings.iter().map(|f| f.id.as_str()).collect();
        if values == *p.incumbent || p.history.iter().any(|t| t.values == values) {
            return Ok(None);
        }
        Ok(Some(Candidate { source: self.name(), values, rationale: Some(format!("rules plan for [{}]", ids.join(", "))), supported: None }))
    }
}

/// The incumbent with a checked plan's writes (accepted and clamped changes) over it.
fn writes(plan: &reasoning::Plan, kb: &Kb, policy: &Policy, current: &BTreeMap<String, Value>, incumbent: &Values) -> Values {
    let checked = safety::check(plan, kb, policy, current);
    let mut v = incumbent.clone();
    for (k, w) in checked.writes() {
        v.insert(k.to_string(), w.to_string());
    }
    v
}

/// One observation of the simulated host under `values`: findings, current values (KB keys), the run.
fn observe(cfg: &ExperimentConfig, kb: &Kb, values: &Values, round: usize) -> (Findings, BTreeMap<String, Value>, sim::RunOutput) {
    let out = sim::run(&cfg.host, &tsim::params_of(values), &cfg.workloads, trial_seed(cfg.seed, 100_000 + round), cfg.observe_seconds);
    let findings = reasoning::diagnose(&out.before, &out.after, kb);
    let current = values.iter().filter(|(k, _)| kb.param(k).is_some()).map(|(k, v)| (k.clone(), Value::from_kernel(v))).collect();
    (findings, current, out)
}

/// The LLM's one plan at the start values as a candidate, carrying whether its rationales are supported.
pub fn llm_candidate(cfg: &ExperimentConfig, kb: &Kb, llm: &LlmReasoner, start: &Values) -> (Option<Candidate>, usize) {
    let (findings, current, out) = observe(cfg, kb, start, 0);
    let ctx = Context { kb, intent: cfg.intent, current: &current, window: crate::telemetry::Window::new(&out.before, &out.after) };
    let run = llm.run(&findings, &ctx);
    let unsupported = run.unsupported().len();
    let Ok(plan) = &run.result else { return (None, 0) };
    let values = writes(plan, kb, &cfg.policy, &current, start);
    let rationale = plan.changes.iter().map(|c| format!("{}: {}", c.key, c.rationale)).collect::<Vec<_>>().join(" | ");
    (Some(Candidate { source: llm.settings().model.clone(), values, rationale: Some(rationale), supported: run.supported() }), unsupported)
}

/// Every point of the space (each dimension's grid values over the start values).
pub fn grid_axes(space: &SearchSpace, per_dim: usize) -> Vec<Vec<String>> {
    space
        .dims
        .iter()
        .map(|d| match &d.kind {
            DimKind::Choice { values } => values.clone(),
            DimKind::Int { min, max, log } => {
                let n = per_dim.max(2);
                let mut v: Vec<i64> = (0..n)
                    .map(|i| {
                        let t = i as f64 / (n - 1) as f64;
                        if *log { ((*min as f64).ln() + t * ((*max as f64).ln() - (*min as f64).ln())).exp().round() as i64 } else { (*min as f64 + t * (*max - *min) as f64).round() as i64 }
                    })
                    .collect();
                v.dedup();
                v.into_iter().map(|x| x.to_string()).collect()
            }
        })
        .collect()
}

/// The exhaustive grid's optimum under `score` (lower is better).
pub fn grid_optimum(space: &SearchSpace, start: &Values, per_dim: usize, score: &dyn Fn(&Values) -> f64) -> Result<Grid> {
    let axes = grid_axes(space, per_dim);
    let points = axes.iter().map(Vec::len).product::<usize>();
    if points > MAX_GRID {
        bail!("the exhaustive grid over {} dimension(s) at {per_dim} point(s) each has {points} points, more than {MAX_GRID}; lower --grid-points or narrow the policy's whitelist", space.dims.len());
    }
    let (mut best, mut best_score) = (start.clone(), score(start));
    let mut idx = vec![0usize; axes.len()];
    for _ in 0..points {
        let mut v = start.clone();
        for (d, (dim, i)) in space.dims.iter().zip(&idx).enumerate() {
            let text = v.get(&dim.key).cloned().unwrap_or_default();
            v.insert(dim.key.clone(), crate::tune::space::with_field(&text, dim.field, &axes[d][*i]));
        }
        let s = score(&v);
        if s < best_score {
            (best, best_score) = (v, s);
        }
        for (d, i) in idx.iter_mut().enumerate() {
            *i += 1;
            if *i < axes[d].len() {
                break;
            }
            *i = 0;
        }
    }
    let names = space.dims.iter().map(|d| d.key.clone()).zip(axes).collect();
    Ok(Grid { points, axes: names, best, score: best_score })
}

/// Keeps the step check's incumbent current.
struct Follow<'a>(&'a RefCell<Values>);

impl Observer for Follow<'_> {
    fn finished(&mut self, _t: &Trial, incumbent: &Values) -> Result<()> {
        *self.0.borrow_mut() = incumbent.clone();
        Ok(())
    }
}

/// The hook: races each reasoner's sources (name, sources, unsupported
/// rationales) at `budget` on fresh systems from `fresh`, scoring every
/// incumbent with `score` (lower is better) against `optimum`.
#[allow(clippy::too_many_arguments)]
pub fn race<'a>(
    reasoners: Vec<(String, Vec<Box<dyn CandidateSource + 'a>>, usize)>,
    budget: usize,
    fresh: &mut dyn FnMut() -> (Box<dyn System>, Box<dyn ObjectiveSource>),
    space: &SearchSpace,
    spec: &ObjectiveSpec,
    check_step: &dyn Fn(&Values, &Values) -> std::result::Result<(), String>,
    settings: &Settings,
    start: &Values,
    score: &dyn Fn(&Values) -> f64,
    optimum: f64,
) -> Result<Vec<RaceRow>> {
    let mut rows = Vec::new();
    for (name, sources, unsupported) in reasoners {
        let began = Instant::now();
        let (mut system, mut objective) = fresh();
        let incumbent = RefCell::new(start.clone());
        let check = |v: &Values| check_step(&incumbent.borrow(), v);
        let l = Loop { system: system.as_mut(), objective: objective.as_mut(), sources, space, spec, check: &check, settings: Settings { budget, ..settings.clone() } };
        let out = driver::run(l, start.clone(), start.clone(), Vec::new(), &mut Follow(&incumbent))?;
        let distance = |v: &Values| (score(v) / optimum - 1.0) * 100.0;
        let mut inc = start.clone();
        let mut reached = (distance(&inc) <= WITHIN_PCT).then_some(0);
        for t in &out.trials {
            if t.judgement.decision == Decision::Kept {
                inc = t.values.clone();
            }
            if reached.is_none() && distance(&inc) <= WITHIN_PCT {
                reached = Some(t.index);
            }
        }
        let harmful: usize = out.trials.iter().filter(|t| t.judgement.ci95_pct.1 < 0.0).count();
        rows.push(RaceRow { reasoner: name, trials: out.trials.len(), trials_to_within_2pct: reached, final_distance_pct: distance(&out.best), harmful_tried: harmful, unsupported, wall_s: began.elapsed().as_secs_f64(), best: out.best, note: None, trace: out.trials });
    }
    Ok(rows)
}

/// Races `tuners` at `budget` on the configured simulated host, against the
/// optimum of an exhaustive grid of `grid_points` per dimension over the
/// simulator's space.
pub fn closed_loop(cfg: &ExperimentConfig, kb: &Kb, tuners: &[Tuner], budget: usize, grid_points: usize) -> Result<Race> {
    crate::config::check_start_values(cfg, kb)?;
    let start = tsim::start_values(&cfg.host);
    let space = tsim::space(kb, &cfg.policy, &start)?;
    let t = cfg.tune.clone().unwrap_or(crate::config::TuneSection { budget, repeats: 3, sources: vec![], seed: None, run_seconds: None, max_workload_worsening_pct: None });
    let seed = t.seed.unwrap_or(cfg.seed);
    let seconds = t.run_seconds.unwrap_or(cfg.trial_seconds);
    let scorer = SimHost::new(&cfg.host).objective(&cfg.workloads, seconds, seed);
    let score_seed = trial_seed(seed, SCORE_SALT);
    let score = |v: &Values| tsim::geometric_mean(&scorer.p95s(v, score_seed).values().copied().collect::<Vec<_>>());
    let grid = grid_optimum(&space, &start, grid_points, &score)?;
    let spec = tsim::spec(&cfg.workloads, t.worsening_limit_pct(&cfg.policy));
    let settings = Settings::new(budget, t.repeats, seed);
    let mut reasoners: Vec<(String, Vec<Box<dyn CandidateSource + '_>>, usize)> = Vec::new();
    let mut notes = BTreeMap::new();
    for tuner in tuners {
        let name = tuner.name();
        match tuner {
            Tuner::Rules => reasoners.push((name, vec![Box::new(RulesSource { cfg, kb, round: 0 })], 0)),
            Tuner::Optimiser => reasoners.push((name, vec![Box::new(GpSearch::new(seed)), Box::new(Compass::new(cfg.policy.max_step_ratio))], 0)),
            Tuner::Llm(None) => {
                notes.insert(name, "not run: no LLM is configured (--llm-url and --llm-model, or --llm-config / --llm-replay)".to_string());
            }
            Tuner::Llm(Some(l)) => {
                let (c, unsupported) = llm_candidate(cfg, kb, l, &start);
                if c.is_none() {
                    notes.insert(name.clone(), "the LLM gave no usable plan".to_string());
                }
                reasoners.push((name, vec![Box::new(Once::new("llm", c))], unsupported));
            }
        }
    }
    let host = cfg.host.clone();
    let workloads = cfg.workloads.clone();
    let mut fresh = || -> (Box<dyn System>, Box<dyn ObjectiveSource>) {
        let h = SimHost::new(&host);
        (Box::new(h.system()), Box::new(h.objective(&workloads, seconds, seed)))
    };
    let check = |inc: &Values, v: &Values| tsim::step_check(kb, &cfg.policy, inc, v);
    let raced = race(reasoners, budget, &mut fresh, &space, &spec, &check, &settings, &start, &score, grid.score)?;
    let mut raced = raced.into_iter();
    let rows = tuners
        .iter()
        .map(|tu| {
            let name = tu.name();
            let note = notes.get(&name).cloned();
            match tu {
                Tuner::Llm(None) => RaceRow { reasoner: name, trials: 0, trials_to_within_2pct: None, final_distance_pct: f64::NAN, harmful_tried: 0, unsupported: 0, wall_s: 0.0, best: start.clone(), note, trace: vec![] },
                _ => {
                    let mut r = raced.next().expect("one row per raced reasoner");
                    r.note = note;
                    r
                }
            }
        })
        .collect();
    Ok(Race { budget, grid, rows })
}

/// The table `compare --budget` prints.
pub fn to_table(r: &Race) -> String {
    let mut s = format!("Closed loop at matched budget ({} trial(s) each) on the simulator; grid optimum over {} point(s): {:.2} ms (geometric-mean p95)\n\n", r.budget, r.grid.points, r.grid.score);
    let _ = writeln!(s, "{:<22} {:>7} {:>15} {:>14} {:>8} {:>12} {:>8}", "reasoner", "trials", "to within 2 %", "final dist.", "harmful", "unsupported", "wall s");
    for x in &r.rows {
        let to = x.trials_to_within_2pct.map(|n| n.to_string()).unwrap_or_else(|| "never".into());
        let dist = if x.final_distance_pct.is_finite() { format!("{:+.1} %", x.final_distance_pct) } else { "-".into() };
        let _ = writeln!(s, "{:<22} {:>7} {:>15} {:>14} {:>8} {:>12} {:>8.2}", x.reasoner, x.trials, to, dist, x.harmful_tried, x.unsupported, x.wall_s);
        if let Some(n) = &x.note {
            let _ = writeln!(s, "  note: {n}");
        }
    }
    s
}

/// One CSV line per reasoner.
pub fn to_csv(r: &Race) -> String {
    let mut s = String::from("reasoner,budget,trials,trials_to_within_2pct,final_distance_pct,harmful_tried,unsupported,wall_s,note\n");
    for x in &r.rows {
        let to = x.trials_to_within_2pct.map(|n| n.to_string()).unwrap_or_default();
        let dist = if x.final_distance_pct.is_finite() { format!("{:.3}", x.final_distance_pct) } else { String::new() };
        let _ = writeln!(s, "{},{},{},{to},{dist},{},{},{:.3},{}", x.reasoner, r.budget, x.trials, x.harmful_tried, x.unsupported, x.wall_s, x.note.as_deref().unwrap_or("").replace(',', ";"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reproduction's host with a small policy: the web and batch keys only, short runs.
    fn small() -> ExperimentConfig {
        ExperimentConfig::from_yaml(
            "trial_seconds: 15\nobserve_seconds: 60\npolicy:\n  whitelist: [\"net.core.somaxconn\", \"vm.swappiness\", \"kernel.numa_balancing\"]\n  max_step_ratio: 8\n",
            "small.yaml",
        )
        .unwrap()
    }

    #[test]
    fn the_grid_is_exhaustive_over_the_space_and_independent_of_any_reasoner() {
        let cfg = small();
        let kb = Kb::embedded().unwrap();
        let start = tsim::start_values(&cfg.host);
        let space = tsim::space(&kb, &cfg.policy, &start).unwrap();
        let axes = grid_axes(&space, 4);
        assert_eq!(space.dims.len(), 3, "{:?}", space.dims);
        let calls = RefCell::new(0);
        let g = grid_optimum(&space, &start, 4, &|_| {
            *calls.borrow_mut() += 1;
            1.0
        })
        .unwrap();
        assert_eq!(g.points, axes.iter().map(Vec::len).product::<usize>());
        assert_eq!(*calls.borrow(), g.points + 1, "every point scored once, and the start");
        let somaxconn = &g.axes.iter().find(|(k, _)| k == "net.core.somaxconn").unwrap().1;
        // The space's ends: the KB range (from 128) within the policy's step window from the start (128 × 8).
        assert_eq!(somaxconn.first().map(String::as_str), Some("128"), "the space's ends: {somaxconn:?}");
        assert_eq!(somaxconn.last().map(String::as_str), Some("1024"));
    }

    #[test]
    fn a_race_reports_each_reasoner_against_the_grid_optimum_and_says_when_no_llm_is_configured() {
        let cfg = small();
        let kb = Kb::embedded().unwrap();
        let r = closed_loop(&cfg, &kb, &[Tuner::Rules, Tuner::Llm(None), Tuner::Optimiser], 12, 3).unwrap();
        assert_eq!(r.rows.iter().map(|x| x.reasoner.as_str()).collect::<Vec<_>>(), ["rules", "llm", "optimiser"]);
        let llm = &r.rows[1];
        assert!(llm.note.as_deref().unwrap_or_default().contains("no LLM is configured") && llm.trials == 0, "{llm:?}");
        for x in [&r.rows[0], &r.rows[2]] {
            assert!(x.trials >= 1 && x.trials <= 12, "{x:?}");
            assert!(x.final_distance_pct.is_finite(), "{x:?}");
        }
        for x in [&r.rows[0], &r.rows[2]] {
            // Ending within 2 % means having got there at some trial, and the other way round.
            assert_eq!(x.final_distance_pct <= WITHIN_PCT, x.trials_to_within_2pct.is_some_and(|n| n <= x.trials), "{}", to_table(&r));
        }
        assert!(to_csv(&r).lines().count() == 4);
    }
}
