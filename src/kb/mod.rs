//! The knowledge base: one entry per parameter, typed edges between
//! parameters, and the symptoms that call for them. The data lives in
//! `kb/*.toml`, is embedded in the binary, and can be extended or overridden
//! by the user's own files (`--kb DIR`). The KB data files are the single
//! source of parameter ranges; no code path is specific to one parameter.

pub mod base;
pub mod entry;
pub mod graph;
pub mod limits;
pub mod live;
pub mod load;
pub mod metric;
pub mod overrides;
pub mod query;
pub mod validate;

pub use base::{Kb, KbFileError};
pub use entry::{Direction, Edge, EdgeKind, Effect, Intent, Param, Risk, Scope, Symptom};
pub use load::{KB_FILES, override_files};
