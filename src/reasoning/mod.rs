//! Reasoning: `diagnose` turns two snapshots into findings with evidence;
//! a `Reasoner` turns findings, the knowledge base and current values into a
//! plan whose every change carries its rationale. Nothing here writes, reads
//! the clock, or knows the simulator exists.

pub mod binding;
pub mod findings;
pub mod plan;
pub mod rules;

pub use findings::{Evidence, Finding, Findings, diagnose};
pub use plan::{Change, Consideration, Plan};
pub use rules::{Context, Reasoner, RulesEngine, recommend};
