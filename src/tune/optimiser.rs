//! Optimisers over the search space (candidate sources that learn from the trials).
//! (Type names and constructors fixed; the bodies are the optimiser engineer's.)

use super::candidate::{Candidate, CandidateSource, Proposal};

/// Uniform random search over the space (on the log scale for log dimensions): the baseline every optimiser must beat.
#[derive(Debug, Clone)]
pub struct RandomSearch {
    _seed: u64,
}

impl RandomSearch {
    /// A random search seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        RandomSearch { _seed: seed }
    }
}

impl CandidateSource for RandomSearch {
    fn name(&self) -> String {
        "random".into()
    }
    fn propose(&mut self, _p: &Proposal) -> anyhow::Result<Option<Candidate>> {
        Ok(None)
    }
}

/// Tree-structured Parzen estimator inside a trust region around the incumbent.
#[derive(Debug, Clone)]
pub struct Tpe {
    _seed: u64,
}

impl Tpe {
    /// A TPE optimiser seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Tpe { _seed: seed }
    }
}

impl CandidateSource for Tpe {
    fn name(&self) -> String {
        "tpe".into()
    }
    fn propose(&mut self, _p: &Proposal) -> anyhow::Result<Option<Candidate>> {
        Ok(None)
    }
}
