//! Apply: the only code that writes to a sysctl store. A transaction takes
//! a lock, journals its intent, saves a backup before the first write,
//! writes in batches with read-back verification, consults a monitor after
//! each batch, and restores everything it changed on any failure.

pub mod audit;
pub mod backup;
pub mod dropin;
pub mod fence;
pub mod files;
pub mod journal;
pub mod lock;
pub mod paths;
pub mod put_back;
pub mod records;
pub mod rollback;
pub mod rollout_undo;
pub mod token;
pub mod transaction;

#[cfg(test)]
mod tests;

/// An input the transaction refused before it started anything (a damaged backup, a key or value a
/// backup must not restore, a backup from another host or boot): nothing was written. The CLI exits
/// with its invalid-input code for it, as for a plan the guardrails reject.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

pub use audit::AuditLog;
pub use backup::{Backup, HostIdentity};
pub use rollback::{RollbackOptions, RollbackReport, rollback, rollback_layer, rollback_with};
pub use paths::Paths;
pub use transaction::{ApplyOptions, Health, Monitor, OnRegression, Outcome, Receipt, apply, pending_run};
