//! The closed loop (`semantos tune`): candidates from several sources
//! (the rules plan, the LLM backend, an optimiser over KB-safe ranges) are
//! tried one at a time through the apply transaction, measured against the
//! incumbent with interleaved repeats, and kept only when the user's
//! objective improves with an interval that excludes zero and no guard
//! objective worsens past its limit; everything else is rolled back.
//!
//! The loop is generic over three small traits so that one driver serves
//! every mode: a [`System`] sets values (the live host, a network namespace,
//! a sandbox tree, the simulator's parameters), an [`ObjectiveSource`]
//! measures (a user's command, a bench scenario, the simulator), and a
//! [`CandidateSource`] proposes. Nothing here parses flags or prints.

pub mod candidate;
pub mod command;
pub mod decide;
pub mod driver;
#[cfg(test)]
mod false_keeps;
pub mod interval;
pub mod live;
pub mod objective;
pub mod optimiser;
pub mod sim;
pub mod space;
pub mod state;
pub mod trace;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use candidate::{Candidate, CandidateSource, Proposal};
pub use decide::{Decision, Judgement, judge};
pub use objective::{Direction, GuardLimit, Measurement, ObjectiveSpec, Stat};
pub use space::{Dim, DimKind, SearchSpace};

/// Sysctl values by key, in the kernel's text form (`"4096 131072 6291456"`).
pub type Values = BTreeMap<String, String>;

/// Where a trial's values are set. Implementations write through the apply
/// transaction (backup, journal, read-back) or the simulator's parameters.
pub trait System {
    /// One line for reports: where the values go.
    fn describe(&self) -> String;
    /// The values in force now for `keys`.
    fn read(&self, keys: &[String]) -> anyhow::Result<Values>;
    /// Sets `values` (a complete assignment of the keys being tuned); on any
    /// error nothing of this call may stay written.
    fn set(&mut self, values: &Values) -> anyhow::Result<()>;
    /// Puts back what was in force before the first `set`.
    fn restore(&mut self) -> anyhow::Result<()>;
}

/// Where the objective is measured.
pub trait ObjectiveSource {
    /// One line for reports: what is measured.
    fn describe(&self) -> String;
    /// One run of the workload under the values in force now.
    fn measure(&mut self) -> anyhow::Result<Measurement>;
}

/// What became of one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 1-based trial number.
    pub index: usize,
    /// The candidate source that proposed it (`rules`, `llm`, `tpe`, `random`, ...).
    pub source: String,
    /// The complete assignment tried.
    pub values: Values,
    /// Why the source proposed it (the rules' or LLM's rationale; the optimiser's acquisition).
    pub rationale: Option<String>,
    /// For an LLM candidate: whether every number its rationale cites matches the evidence it was given.
    pub supported: Option<bool>,
    /// The measurement and the decision.
    pub judgement: Judgement,
    /// Seconds since the tune started when the trial ended.
    pub elapsed_s: f64,
}
