//! A tree-structured Parzen estimator (the `tpe` crate, one estimator per
//! dimension) asked inside the trust region around the incumbent: of the
//! trials that fell in the region, the best quarter shapes the density it
//! draws from and the rest the density it avoids. With no trial yet it draws
//! around the incumbent, so early trials are small, safe moves.

use super::super::candidate::{Candidate, CandidateSource, Proposal};
use super::draw;
use super::region::{self, Observation};
use rand_pcg::Pcg64Mcg;

/// The share of observations that counts as good (the `tpe` crate's gamma): a quarter, so that
/// a handful of trials already has one good point to follow.
const GAMMA: f64 = 0.25;
/// Draws from the good density per dimension, of which the one most likelier good than bad is taken.
const CANDIDATES: usize = 24;
/// Trials before the model is asked (at least one more than the dimensions): spread over the trust region.
const STARTUP: usize = 3;

/// Tree-structured Parzen estimator inside a trust region around the incumbent.
#[derive(Debug, Clone)]
pub struct Tpe {
    seed: u64,
}

impl Tpe {
    /// A TPE optimiser seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Tpe { seed }
    }
}

impl CandidateSource for Tpe {
    fn name(&self) -> String {
        "tpe".into()
    }

    fn propose(&mut self, p: &Proposal) -> anyhow::Result<Option<Candidate>> {
        if p.space.dims.is_empty() {
            return Ok(None);
        }
        let obs = region::observations(p);
        let mut rng = draw::rng(self.seed, 0x545045, p.history.len());
        let mut r = region::radius(p.history);
        // Rounded to integers, a small region may hold nothing new: widen it until it does.
        for attempt in 0..draw::TRIES {
            if attempt > 0 && attempt % 16 == 0 {
                r = (r * 2.0).min(1.0);
            }
            let bounds = region::trust_box(p, p.incumbent, r);
            let point = if p.history.len() + attempt < STARTUP.max(p.space.dims.len() + 1) {
                // Too few trials to model: a low-discrepancy point of the box, so the first trials cover it evenly.
                draw::spread(self.seed, p.history.len() + attempt, &bounds)
            } else {
                bounds.iter().enumerate().map(|(i, &b)| ask(i, b, &obs, &mut rng)).collect::<anyhow::Result<Vec<f64>>>()?
            };
            let values = p.space.assemble(p.incumbent, &point);
            if draw::fresh(p, &values) {
                let inside = obs.iter().filter(|o| o.point.iter().zip(&bounds).all(|(x, b)| b.0 <= *x && *x <= b.1)).count();
                let rationale = format!("TPE in a trust region of half-width {r:.3} around the incumbent, learning from {inside} of {} observation(s)", obs.len());
                return Ok(Some(Candidate { source: self.name(), values, rationale: Some(rationale), supported: None }));
            }
        }
        Ok(None)
    }
}

/// One coordinate of dimension `i`, drawn by TPE within `(lo, hi)` from the observations that lie there.
fn ask(i: usize, (lo, hi): (f64, f64), obs: &[Observation], rng: &mut Pcg64Mcg) -> anyhow::Result<f64> {
    if hi - lo < 1e-9 {
        return Ok(lo);
    }
    let range = tpe::range(lo, hi).map_err(|e| anyhow::anyhow!("trust region {lo}..{hi} of dimension {i}: {e}"))?;
    let mut opt = tpe::TpeOptimizerBuilder::new().gamma(GAMMA).candidates(CANDIDATES).build(tpe::parzen_estimator(), range).map_err(|e| anyhow::anyhow!("TPE settings: {e}"))?;
    for o in obs {
        let x = o.point[i];
        if lo <= x && x < hi && !o.loss.is_nan() {
            opt.tell(x, o.loss).map_err(|e| anyhow::anyhow!("TPE observation of dimension {i}: {e}"))?;
        }
    }
    opt.ask(rng).map_err(|e| match e {})
}
