//! Reasoning: `diagnose` turns a window of snapshots into findings with
//! evidence (`window` says how a signal is judged over it);
//! a `Reasoner` turns findings, the knowledge base and current values into a
//! plan whose every change carries its rationale. Nothing here writes, reads
//! the clock, or knows the simulator exists.

pub mod binding;
pub mod columns;
pub mod findings;
pub mod plan;
pub mod rules;
pub mod window;

pub use findings::{Evidence, Finding, Findings, Presence, diagnose, diagnose_series};
pub use plan::{Change, Consideration, Plan};
pub use rules::{Context, Reasoner, RulesEngine, recommend};
