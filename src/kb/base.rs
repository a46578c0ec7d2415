//! The loaded knowledge base as data: the `Kb` type with its lookups, and the error a KB file
//! that does not parse gives. It sits below the checks (`validate`, `limits`, `overrides`),
//! which take a `Kb`, and below `load`, whose constructors run those checks: so no file that
//! checks a KB is also one the KB's own file needs.

use super::entry::{Edge, Limit, Param, Symptom};
use std::collections::BTreeMap;

/// A loaded knowledge base.
#[derive(Debug, Clone, Default)]
pub struct Kb {
    /// Parameters by dotted key.
    pub params: BTreeMap<String, Param>,
    /// Typed edges.
    pub edges: Vec<Edge>,
    /// Symptoms by ID.
    pub symptoms: BTreeMap<String, Symptom>,
    /// Usage metrics paired with the limits they run into (`[[limit]]`).
    pub limits: Vec<Limit>,
    /// Which file each parameter came from (for error messages and `kb show`).
    pub origin: BTreeMap<String, String>,
}

/// A KB file that does not parse: names the file, the line and the field.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct KbFileError {
    /// File name.
    pub file: String,
    /// 1-based line of the problem (0 when unknown).
    pub line: usize,
    /// The parser's message, naming the field.
    pub message: String,
}

impl Kb {
    /// The entry for `key`, if the KB has one.
    pub fn param(&self, key: &str) -> Option<&Param> {
        self.params.get(key)
    }

    /// Edges touching `key`, either end.
    pub fn edges_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.from == key || e.to == key)
    }
}

