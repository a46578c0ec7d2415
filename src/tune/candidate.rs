//! Candidate sources behind one trait: the rules plan and the LLM backend
//! each give one candidate; an optimiser gives one per call until its
//! budget or space is spent. The measurement, not the source, decides.

use super::objective::ObjectiveSpec;
use super::space::SearchSpace;
use super::{Trial, Values};
use serde::{Deserialize, Serialize};

/// A complete assignment of the keys being tuned, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The source's name (`rules`, `llm`, `tpe`, `random`, ...).
    pub source: String,
    /// The values to try (every key of the space; unchanged keys carry the incumbent's value).
    pub values: Values,
    /// Why the source proposes it.
    pub rationale: Option<String>,
    /// For an LLM candidate: whether its rationale's cited numbers match the evidence (None: not an LLM's).
    pub supported: Option<bool>,
}

/// What a source sees when asked for the next candidate.
#[derive(Debug, Clone, Copy)]
pub struct Proposal<'a> {
    /// The keys, ranges and scales that may be changed (already inside KB, policy and step limits).
    pub space: &'a SearchSpace,
    /// The values kept so far (the start values before anything was kept).
    pub incumbent: &'a Values,
    /// Every trial so far, in order.
    pub history: &'a [Trial],
    /// The objective being optimised.
    pub objective: &'a ObjectiveSpec,
}

/// A source of candidates.
pub trait CandidateSource {
    /// The source's name, as trials and reports show it.
    fn name(&self) -> String;
    /// The next candidate, or `None` when this source has nothing more to offer.
    fn propose(&mut self, p: &Proposal) -> anyhow::Result<Option<Candidate>>;
}

/// A source with one precomputed candidate (the rules plan, an LLM plan), offered once.
#[derive(Debug, Clone)]
pub struct Once {
    name: String,
    candidate: Option<Candidate>,
}

impl Once {
    /// A source that offers `candidate` (or nothing) once under `name`.
    pub fn new(name: &str, candidate: Option<Candidate>) -> Self {
        Once { name: name.to_string(), candidate }
    }
}

impl CandidateSource for Once {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn propose(&mut self, p: &Proposal) -> anyhow::Result<Option<Candidate>> {
        // Completed over the incumbent so that a plan naming a subset of the keys is a full assignment.
        Ok(self.candidate.take().map(|mut c| {
            let mut full = p.incumbent.clone();
            full.append(&mut c.values);
            c.values = full;
            c
        }))
    }
}
