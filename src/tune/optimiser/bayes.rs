//! Bayesian optimisation over a few keys at a time: a Gaussian process over
//! every trial so far (each with the noise its measured interval shows),
//! asked for the move from the incumbent with the largest expected
//! improvement beyond what a paired interval could tell from noise.
//!
//! Each trial moves two keys (all of them in a smaller space), the others
//! keeping the incumbent's values: a subspace move, as in TuRBO's
//! perturbation mask. A trial that moves every key at once and is kept can
//! carry one of them to where the step limit strands it (a backlog lowered
//! below a cliff while a buffer gain pays for it is kept, and from there no
//! step within ×`max_step_ratio` climbs back over the cliff, since the
//! point in between is no better and is never kept); one key per trial
//! spends the whole of a small budget before every key was tried once (on
//! the bench, 4 keys in 5 trials lost to random search: median regret
//! 205 % against 85 %). An optimum that needs more keys moved is reached
//! through kept intermediate points, each inside the step limit of the
//! incumbent of its day: the step limit is the guardrail, not the trust
//! region. The region (which grows after a kept trial and shrinks after
//! `dims` misses in a row) only narrows where the model looks, inside the
//! step box, which every proposal respects.

use super::super::candidate::{Candidate, CandidateSource, Proposal};
use super::draw;
use super::gaussian::{self, Gp};
use super::region::{self, Observation};
use rand::RngExt;

/// Moves drawn per proposal and scored by the model.
const CANDIDATES: usize = 384;
/// Keys a move changes (all of them in a smaller space; all, too, when no two-key move is new).
const KEYS: usize = 2;
/// Share of drawn coordinates put exactly on an end of the trust box (half on each).
const ENDS: f64 = 0.2;
/// The noise variance assumed for a point with no measured interval (log-ratio units: ±5 %).
const DEFAULT_NOISE: f64 = 0.05 * 0.05;
/// The loss above the worst measured one given to a trial that was refused or failed, so the model steers away from it.
const UNMEASURED_PENALTY: f64 = 0.5;

/// A Gaussian-process optimiser with expected improvement, one key per trial, inside the trust region.
#[derive(Debug, Clone)]
pub struct GpSearch {
    seed: u64,
}

impl GpSearch {
    /// A GP optimiser seeded with `seed` (which moves of the incumbent it scores).
    pub fn new(seed: u64) -> Self {
        GpSearch { seed }
    }
}

impl CandidateSource for GpSearch {
    fn name(&self) -> String {
        "gp".into()
    }

    fn propose(&mut self, p: &Proposal) -> anyhow::Result<Option<Candidate>> {
        let d = p.space.dims.len();
        if d == 0 {
            return Ok(None);
        }
        let obs = region::observations(p);
        let (points, y, noise) = training(p, &obs);
        let model = Gp::fit(&points, &y, &noise);
        let centre = p.space.locate(p.incumbent);
        let here = model.as_ref().map_or(region::incumbent_loss(&obs, p.history), |m| m.predict(&centre).0);
        let target = here - margin(&obs);
        let mut rng = draw::rng(self.seed, 0x4750, p.history.len());
        let mut r = region::patient_radius(p.history, d);
        for keys in [KEYS.min(d), d] {
            for _widen in 0..3 {
                let bounds = region::trust_box(p, p.incumbent, r);
                let mut best: Option<(f64, crate::tune::Values)> = None;
                for _ in 0..CANDIDATES {
                    let mut point = vec![f64::NAN; d];
                    for i in pick(&mut rng, d, keys.min(d)) {
                        let (lo, hi) = bounds[i];
                        // The box's ends are drawn on purpose: a uniform draw never lands on them, while a
                        // switch's other value is always exact, so without them the first trial was always a switch.
                        point[i] = match rng.random::<f64>() {
                            u if u < ENDS / 2.0 => lo,
                            u if u < ENDS => hi,
                            _ => lo + rng.random::<f64>() * (hi - lo),
                        };
                    }
                    let values = p.space.assemble(p.incumbent, &point);
                    if !draw::fresh(p, &values) {
                        continue;
                    }
                    let score = match &model {
                        Some(m) => {
                            let (mean, var) = m.predict(&p.space.locate(&values));
                            gaussian::expected_improvement(mean, var, target)
                        }
                        None => 0.0,
                    };
                    if best.as_ref().is_none_or(|(b, _)| score > *b) {
                        best = Some((score, values));
                    }
                }
                if let Some((score, values)) = best {
                    let rationale = format!(
                        "GP expected improvement {:.2} % beyond the incumbent (moving {keys} key(s), trust region half-width {r:.2}), from {} observation(s)",
                        score * 100.0,
                        points.len()
                    );
                    return Ok(Some(Candidate { source: self.name(), values, rationale: Some(rationale), supported: None }));
                }
                r = (r * 2.0).min(region::CEILING);
            }
        }
        Ok(None)
    }
}

/// The model's training set: every trial (a refused or failed one scored worse than the worst
/// measured), and the incumbent when no trial holds its values (the start, loss 0).
fn training(p: &Proposal, obs: &[Observation]) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
    let measured: Vec<&Observation> = obs.iter().filter(|o| o.loss.is_finite()).collect();
    let worst = measured.iter().map(|o| o.loss).fold(0.0, f64::max);
    let mut noises: Vec<f64> = measured.iter().map(|o| o.noise).filter(|n| n.is_finite()).collect();
    noises.sort_by(f64::total_cmp);
    let typical = noises.get(noises.len() / 2).copied().unwrap_or(DEFAULT_NOISE);
    let (mut points, mut y, mut noise) = (Vec::new(), Vec::new(), Vec::new());
    for o in obs {
        points.push(o.point.clone());
        if o.loss.is_finite() {
            y.push(o.loss);
            noise.push(if o.noise.is_finite() { o.noise } else { typical });
        } else {
            y.push(worst + UNMEASURED_PENALTY);
            noise.push(typical);
        }
    }
    if !p.history.iter().any(|t| &t.values == p.incumbent) {
        points.push(p.space.locate(p.incumbent));
        y.push(region::incumbent_loss(obs, p.history));
        noise.push(typical);
    }
    (points, y, noise)
}

/// The improvement a trial must promise before it is worth measuring: the median half-width of
/// the trials' intervals (a smaller gain would not be told from noise, so it would not be kept).
fn margin(obs: &[Observation]) -> f64 {
    let mut half: Vec<f64> = obs.iter().map(|o| o.noise).filter(|n| n.is_finite()).map(|n| n.sqrt() * 1.96).collect();
    half.sort_by(f64::total_cmp);
    half.get(half.len() / 2).copied().unwrap_or(0.0)
}

/// `k` distinct dimensions of `d`, drawn.
fn pick(rng: &mut impl RngExt, d: usize, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..d).collect();
    for i in 0..k {
        let j = i + (rng.random::<f64>() * (d - i) as f64) as usize;
        all.swap(i, j.min(d - 1));
    }
    all.truncate(k);
    all
}
