//! The proving ground: objectives whose optimum is known, so that an
//! optimiser's result can be scored as regret (how far its final incumbent is
//! from the best point of an exhaustive grid). The benchmark
//! (`benches/optimiser.rs`) and the tests that hold the GP optimiser to
//! beating random search use it; both run the real loop (`tune::driver::run`) over a
//! [`MapSystem`] whose values an [`ObjectiveSource`] reads back.
//!
//! Landscapes: [`Synthetic`] (2–4 dimensions shaped like sysctl responses: a
//! cliff below a limit with a plateau above it, a log-scale optimum, a
//! percentage with an interior optimum, a switch), drawn afresh from each
//! seed. (The simulator's workloads are tuned in closed loop by `repro::tune`
//! and `compare`, not here: its optimum is not known in closed form.)

use super::super::candidate::CandidateSource;
use super::super::driver::{self, Loop, Settings, Silent};
use super::super::objective::{Direction, Measurement, ObjectiveSpec, Stat};
use super::super::space::{Dim, DimKind, SearchSpace};
use super::super::{ObjectiveSource, System, Values};
use crate::eval::percentile;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use rand_pcg::Pcg64Mcg;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A response surface: lower is better.
pub trait Landscape {
    /// One line for reports.
    fn name(&self) -> String;
    /// What may change.
    fn space(&self) -> &SearchSpace;
    /// The values before the first trial.
    fn start(&self) -> Values;
    /// The noise-free objective at `values` (what regret is measured on).
    fn truth(&self, values: &Values) -> f64;
    /// The samples of one noisy run at `values`.
    fn run(&self, values: &Values, rng: &mut Pcg64Mcg) -> Vec<f64>;
    /// Grid points per integer dimension for the exhaustive optimum.
    fn grid_points(&self) -> usize {
        33
    }
}

/// A `System` whose values live in memory, shared with the objective that reads them.
pub struct MapSystem {
    held: Rc<RefCell<Values>>,
    start: Values,
}

impl MapSystem {
    /// A system holding `start`.
    pub fn new(start: Values) -> Self {
        MapSystem { held: Rc::new(RefCell::new(start.clone())), start }
    }
    /// The map the objective reads.
    pub fn handle(&self) -> Rc<RefCell<Values>> {
        Rc::clone(&self.held)
    }
}

impl System for MapSystem {
    fn describe(&self) -> String {
        "values in memory (proving ground)".into()
    }
    fn read(&self, keys: &[String]) -> anyhow::Result<Values> {
        let held = self.held.borrow();
        Ok(keys.iter().filter_map(|k| held.get(k).map(|v| (k.clone(), v.clone()))).collect())
    }
    fn set(&mut self, values: &Values) -> anyhow::Result<()> {
        self.held.borrow_mut().extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }
    fn restore(&mut self) -> anyhow::Result<()> {
        *self.held.borrow_mut() = self.start.clone();
        Ok(())
    }
}

/// Measures a landscape at the values a `MapSystem` holds now.
pub struct Probe<'a> {
    held: Rc<RefCell<Values>>,
    land: &'a dyn Landscape,
    rng: Pcg64Mcg,
    /// Runs measured so far.
    pub runs: usize,
}

impl<'a> Probe<'a> {
    /// A probe of `land` reading `held`, its noise seeded with `seed`.
    pub fn new(land: &'a dyn Landscape, held: Rc<RefCell<Values>>, seed: u64) -> Self {
        Probe { held, land, rng: Pcg64Mcg::seed_from_u64(seed ^ 0x5052_4f42), runs: 0 }
    }
}

impl ObjectiveSource for Probe<'_> {
    fn describe(&self) -> String {
        self.land.name()
    }
    fn measure(&mut self) -> anyhow::Result<Measurement> {
        self.runs += 1;
        let samples = self.land.run(&self.held.borrow(), &mut self.rng);
        Ok(Measurement { samples, seconds: 1.0, guards: BTreeMap::new() })
    }
}

/// What one tune on a landscape ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct Result {
    /// The final incumbent.
    pub best: Values,
    /// Its noise-free objective over the grid optimum's, percent above (0: at or past the optimum).
    pub regret_pct: f64,
    /// Trials kept.
    pub kept: usize,
}

/// The objective every proving-ground tune optimises: the median of a run's samples, lower is better.
pub fn spec() -> ObjectiveSpec {
    ObjectiveSpec::new(Stat::P50, Direction::Lower, vec![])
}

/// Runs the closed loop on `land` with `source` for `budget` trials (3 paired repeats each) and scores the result.
pub fn tune(land: &dyn Landscape, source: Box<dyn CandidateSource + '_>, budget: usize, seed: u64, optimum: f64) -> anyhow::Result<Result> {
    let mut system = MapSystem::new(land.start());
    let mut probe = Probe::new(land, system.handle(), seed);
    let space = land.space();
    let held = system.handle();
    // The guardrails as a real tune has them: the KB orders, and the step limit judged against
    // the values in force (the incumbent: the loop puts it back after every trial).
    let check = |v: &Values| guardrails(space, &held.borrow(), v);
    let spec = spec();
    let settings = Settings::new(budget, 3, seed);
    let l = Loop { system: &mut system, objective: &mut probe, sources: vec![source], space, spec: &spec, check: &check, settings };
    let out = driver::run(l, land.start(), land.start(), Vec::new(), &mut Silent)?;
    let kept = out.trials.iter().filter(|t| t.judgement.decision == super::super::Decision::Kept).count();
    Ok(Result { regret_pct: regret_pct(land.truth(&out.best), optimum), best: out.best, kept })
}

/// The proving ground's guardrails: the space's orders, and no integer moved past the step limit
/// from `in_force` (values compared as max(v, 1), as `safety::step` does).
pub fn guardrails(space: &SearchSpace, in_force: &Values, v: &Values) -> std::result::Result<(), String> {
    space.admits(v)?;
    let Some(r) = space.max_step_ratio else { return Ok(()) };
    for d in space.dims.iter().filter(|d| matches!(d.kind, DimKind::Int { .. })) {
        let (a, b) = (num(in_force, &d.key).max(1.0), num(v, &d.key).max(1.0));
        if a / b > r || b / a > r {
            return Err(format!("{}: {a} → {b} exceeds the step limit ×{r}", d.key));
        }
    }
    Ok(())
}

/// How far `value` is above `optimum`, percent (0 at or below it).
pub fn regret_pct(value: f64, optimum: f64) -> f64 {
    ((value - optimum) / optimum.abs() * 100.0).max(0.0)
}

/// The best noise-free objective over the exhaustive grid of the space (every choice, `grid_points` per integer dimension).
pub fn grid_optimum(land: &dyn Landscape) -> f64 {
    let axes: Vec<Vec<f64>> = land
        .space()
        .dims
        .iter()
        .map(|d| match &d.kind {
            DimKind::Choice { values } => (0..values.len()).map(|i| (i as f64 + 0.5) / values.len() as f64).collect(),
            DimKind::Int { .. } => {
                let n = land.grid_points().max(2);
                (0..n).map(|i| i as f64 / (n - 1) as f64).collect()
            }
        })
        .collect();
    let start = land.start();
    let mut best = f64::INFINITY;
    let mut idx = vec![0usize; axes.len()];
    loop {
        let point: Vec<f64> = idx.iter().zip(&axes).map(|(&i, a)| a[i]).collect();
        let v = land.space().assemble(&start, &point);
        if land.space().admits(&v).is_ok() {
            best = best.min(land.truth(&v));
        }
        // Odometer over the axes.
        let mut d = 0;
        loop {
            if d == axes.len() {
                return best;
            }
            idx[d] += 1;
            if idx[d] < axes[d].len() {
                break;
            }
            idx[d] = 0;
            d += 1;
        }
    }
}

/// Median and 90th percentile of regrets.
pub fn summary(regrets: &[f64]) -> (f64, f64) {
    (percentile(regrets, 50.0), percentile(regrets, 90.0))
}

fn int_dim(key: &str, min: i64, max: i64, log: bool) -> Dim {
    Dim { key: key.into(), field: None, kind: DimKind::Int { min, max, log }, why: "proving ground".into() }
}

fn num(values: &Values, key: &str) -> f64 {
    values.get(key).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN)
}

/// A synthetic landscape of 2–4 dimensions shaped like sysctl responses, its optimum drawn from a seed.
#[derive(Debug, Clone)]
pub struct Synthetic {
    space: SearchSpace,
    /// The backlog below which requests time out (a cliff), above which the cost is flat.
    need: f64,
    /// The buffer size with the best latency (a log-scale optimum).
    bdp: f64,
    /// The percentage with the best latency.
    pct: f64,
    /// The switch value that helps.
    on: String,
}

impl Synthetic {
    /// A landscape over the first `dims` (2–4) of: backlog, buffer, ratio, switch.
    pub fn new(dims: usize, seed: u64) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x53594e);
        let log_uniform = |rng: &mut Pcg64Mcg, lo: f64, hi: f64| (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp();
        let need = log_uniform(&mut rng, 100.0, 900.0);
        let bdp = log_uniform(&mut rng, 1.0e6, 3.0e7);
        let pct = 5.0 + rng.random::<f64>() * 55.0;
        let on = if rng.random::<f64>() < 0.5 { "0" } else { "1" }.to_string();
        let all = [
            int_dim("backlog", 16, 1024, true),
            int_dim("buffer", 524_288, 33_554_432, true),
            int_dim("ratio", 3, 100, false),
            Dim { key: "switch".into(), field: None, kind: DimKind::Choice { values: vec!["0".into(), "1".into()] }, why: "proving ground".into() },
        ];
        let space = SearchSpace { dims: all[..dims.clamp(2, 4)].to_vec(), max_step_ratio: Some(8.0), ..SearchSpace::default() };
        Synthetic { space, need, bdp, pct, on }
    }
}

impl Landscape for Synthetic {
    fn name(&self) -> String {
        format!("synthetic, {} dimensions", self.space.dims.len())
    }
    fn space(&self) -> &SearchSpace {
        &self.space
    }
    fn start(&self) -> Values {
        [("backlog", "128"), ("buffer", "4194304"), ("ratio", "20"), ("switch", "1")].iter().take(self.space.dims.len()).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
    fn truth(&self, v: &Values) -> f64 {
        let mut f = 10.0;
        let a = num(v, "backlog");
        // Below the limit connections are dropped and retried: a cliff; above it, a flat cost of memory.
        f *= if a < self.need { 3.0 } else { 1.0 + 0.02 * (a / self.need).ln() };
        let b = num(v, "buffer");
        f *= 1.0 + 0.6 * (self.bdp / b).ln().max(0.0) + 0.08 * (b / self.bdp).ln().max(0.0);
        if self.space.dims.len() > 2 {
            f *= 1.0 + 0.3 * ((num(v, "ratio") - self.pct) / 50.0).powi(2);
        }
        if self.space.dims.len() > 3 && v.get("switch") != Some(&self.on) {
            f *= 1.12;
        }
        f
    }
    fn run(&self, v: &Values, rng: &mut Pcg64Mcg) -> Vec<f64> {
        // Run-to-run drift shared by the run's samples, and per-request spread.
        let drift = LogNormal::new(0.0, 0.03).expect("valid").sample(rng);
        let spread = LogNormal::new(0.0, 0.25).expect("valid");
        let f = self.truth(v) * drift;
        (0..40).map(|_| f * spread.sample(rng)).collect()
    }
}
