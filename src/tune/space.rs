//! The search space: the keys a tune may change, each with the range it may
//! take here (the KB range, narrowed by the policy and the step limit),
//! its scale (log for byte and count keys) and, for a multi-value key such as
//! `net.ipv4.tcp_rmem`, which field is tuned.

use super::Values;
use serde::{Deserialize, Serialize};

/// How one dimension's values are laid out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimKind {
    /// An integer range, inclusive; `log` for byte and count keys (searched on a log scale).
    Int { min: i64, max: i64, log: bool },
    /// A finite set of values (switches, congestion-control names), in the kernel's text form.
    Choice { values: Vec<String> },
}

/// One tunable dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dim {
    /// The sysctl key.
    pub key: String,
    /// For a multi-value key, the 0-based field tuned (the others keep the incumbent's); `None` for a scalar.
    pub field: Option<usize>,
    /// The values this dimension may take.
    pub kind: DimKind,
    /// Why the key is in the space (the finding or KB edge that implicates it).
    pub why: String,
}

/// The keys and ranges a tune may explore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// The dimensions, in a stable order (by key, then field).
    pub dims: Vec<Dim>,
}

impl SearchSpace {
    /// The keys the space touches (each once).
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.dims.iter().map(|d| d.key.clone()).collect();
        k.dedup();
        k
    }
}

/// Sets field `field` of a whitespace-separated multi-value `text` (or the whole value when `None`).
pub fn with_field(text: &str, field: Option<usize>, value: &str) -> String {
    match field {
        None => value.to_string(),
        Some(i) => {
            let mut parts: Vec<String> = text.split_whitespace().map(str::to_string).collect();
            if i < parts.len() {
                parts[i] = value.to_string();
            }
            parts.join(" ")
        }
    }
}

/// Reads field `field` of a multi-value `text` (or the whole value when `None`).
pub fn field_of(text: &str, field: Option<usize>) -> Option<String> {
    match field {
        None => Some(text.trim().to_string()),
        Some(i) => text.split_whitespace().nth(i).map(str::to_string),
    }
}

/// `values` with every key of `incumbent` the candidate leaves out filled in from it.
pub fn complete(incumbent: &Values, values: &Values) -> Values {
    let mut full = incumbent.clone();
    full.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    full
}

/// The keys a tune may change for these findings, each with why: the keys
/// the KB links to each finding's symptom, plus their KB edges.
/// (Signature fixed; the body is the optimiser engineer's.)
pub fn implicated(_kb: &crate::kb::Kb, _findings: &crate::reasoning::Findings) -> Vec<(String, String)> {
    Vec::new()
}

/// The space over `implicated` keys: the KB range narrowed by `policy`
/// (never-touch, whitelist, risk, step limit against `current`), log-scaled
/// for byte and count keys, one dimension per tuned field.
/// (Signature fixed; the body is the optimiser engineer's.)
pub fn build(_kb: &crate::kb::Kb, _implicated: &[(String, String)], _policy: &crate::safety::Policy, _current: &Values) -> anyhow::Result<SearchSpace> {
    Ok(SearchSpace::default())
}
