//! Calibration records: one JSON line per LLM-proposed change, pairing its
//! uncertainty u with what became of it (the guardrails' verdict, and on the
//! simulator whether it was kept and what the plan did to p95). Collected
//! over many runs these show whether u predicts trouble, and so where τ
//! belongs. The records are built purely; [`append`] is the one write.

use super::reasoner::{LlmProposal, Source};
use crate::safety::{CheckedPlan, Verdict};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Version of the record format.
pub const CALIBRATION_SCHEMA_VERSION: u32 = 1;

/// One (u, outcome) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Format version.
    pub schema_version: u32,
    /// Model name.
    pub model: String,
    /// Digest of the snapshot the findings came from.
    pub snapshot_digest: Option<String>,
    /// Dotted key.
    pub key: String,
    /// Proposed value.
    pub to: String,
    /// Uncertainty.
    pub u: f64,
    /// Samples asked.
    pub k: usize,
    /// Threshold in force.
    pub tau: f64,
    /// Whether it was advice only.
    pub advice_only: bool,
    /// Guardrail verdict label (`accept`, `clamp`, `skip`, `refuse`, `reject`).
    pub verdict: String,
    /// What became of it: `eligible` (would be applied), `advice_only`, `not_applied`
    /// (skipped or refused), `rejected` (a hard violation), then on the simulator
    /// `kept` or `rolled_back`.
    pub outcome: String,
    /// Whether the run fell back to the rule engine.
    pub fell_back: bool,
    /// On the simulator: the plan's overall p95 improvement, percent (positive is faster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_improvement_pct: Option<f64>,
}

fn outcome_of(v: &Verdict, advice_only: bool) -> &'static str {
    match v {
        Verdict::Accept | Verdict::Clamp { .. } => "eligible",
        // Only the advice-only skip: an advice change that would change nothing ("already 60") is not_applied.
        Verdict::Skip { reason } if advice_only && reason.contains("is advice only") => "advice_only",
        Verdict::Skip { .. } | Verdict::Refuse { .. } => "not_applied",
        Verdict::Reject { .. } => "rejected",
    }
}

/// Records for the LLM's own plan in `p` (none when the LLM gave no plan).
pub fn records(p: &LlmProposal) -> Vec<Record> {
    let Some(checked) = &p.llm_checked else { return Vec::new() };
    records_of(checked, &p.run.model, p.run.k, p.run.tau, matches!(p.source, Source::FellBack { .. }))
}

/// Records for a checked LLM plan.
pub fn records_of(checked: &CheckedPlan, model: &str, k: usize, tau: f64, fell_back: bool) -> Vec<Record> {
    checked
        .changes
        .iter()
        .filter_map(|c| {
            let u = c.change.uncertainty?;
            Some(Record {
                schema_version: CALIBRATION_SCHEMA_VERSION,
                model: model.to_string(),
                snapshot_digest: checked.plan.snapshot_digest.clone(),
                key: c.change.key.clone(),
                to: c.change.to.clone(),
                u,
                k,
                tau,
                advice_only: c.change.advice_only,
                verdict: c.verdict.label().to_lowercase(),
                outcome: outcome_of(&c.verdict, c.change.advice_only).into(),
                fell_back,
                p95_improvement_pct: None,
            })
        })
        .collect()
}

/// Appends records to a JSON-lines file (created with its directory if needed).
pub fn append(path: &Path, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).expect("records serialise"));
        text.push('\n');
    }
    // One write of whole lines, in append mode: concurrent runs interleave lines, never halves.
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening calibration log {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("appending to calibration log {}", path.display()))
}
