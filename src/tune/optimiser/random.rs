//! Uniform random search: the baseline every other optimiser must beat at equal budget.

use super::super::candidate::{Candidate, CandidateSource, Proposal};
use super::draw;
use rand::RngExt;

/// Uniform random search over the space (on the log scale for log dimensions): the baseline every optimiser must beat.
#[derive(Debug, Clone)]
pub struct RandomSearch {
    seed: u64,
}

impl RandomSearch {
    /// A random search seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        RandomSearch { seed }
    }
}

impl CandidateSource for RandomSearch {
    fn name(&self) -> String {
        "random".into()
    }

    fn propose(&mut self, p: &Proposal) -> anyhow::Result<Option<Candidate>> {
        if p.space.dims.is_empty() {
            return Ok(None);
        }
        let mut rng = draw::rng(self.seed, 0x52414e44, p.history.len());
        for _ in 0..draw::TRIES {
            let point: Vec<f64> = p.space.dims.iter().map(|_| rng.random::<f64>()).collect();
            let values = p.space.assemble(p.incumbent, &point);
            if draw::fresh(p, &values) {
                let rationale = format!("a uniform draw over the {} dimension(s) of the space", p.space.dims.len());
                return Ok(Some(Candidate { source: self.name(), values, rationale: Some(rationale), supported: None }));
            }
        }
        Ok(None)
    }
}
