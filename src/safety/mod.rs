//! Safety: the policy and the guardrails every plan passes, whoever made
//! it. Pure; the store re-checks the whitelist at the moment of writing.

pub mod check;
pub mod facts;
pub mod guard;
pub mod policy;
pub mod scope;
pub mod step;

pub use check::{CheckedChange, CheckedPlan, Verdict, check, check_with};
pub use guard::guarded;
pub use policy::{NewSymptoms, Policy};
pub use facts::Facts;
