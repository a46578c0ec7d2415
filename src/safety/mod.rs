//! Safety: the policy and the guardrails every plan passes, whoever made
//! it. Pure; the store re-checks the whitelist at the moment of writing.

pub mod check;
pub mod policy;

pub use check::{CheckedChange, CheckedPlan, Verdict, check};
pub use policy::{NewSymptoms, Policy};
