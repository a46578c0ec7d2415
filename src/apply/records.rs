//! What SemantOS applied and still keeps, read back from its backups (the `committed` values and
//! the `layers` that say which run wrote each) and its audit log (when each was written): the data
//! `semantos status` and `verify` show, and that the ownership check receives as
//! `ownership::SemantosRecords` (ownership sits below `apply` and cannot read these files).

use super::backup::{Backup, BackupState};
use crate::ownership::{Ours, SemantosRecords};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One value SemantOS committed and has not restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The dotted key.
    pub key: String,
    /// The value it intends to keep.
    pub intended: String,
    /// The value before SemantOS first changed it (None: the key did not exist).
    pub original: Option<String>,
    /// The run that wrote the value now committed.
    pub run_id: String,
    /// What kind of run: `apply`, `rollout`, `tune`, `agent`, or `other`.
    pub run_kind: String,
    /// The fleet rollout it belonged to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    /// When it was written (Unix ms): the audit log's `write` event, else the backup's creation.
    pub at_ms: u64,
    /// The backup that records it.
    pub backup: PathBuf,
    /// The store it was written to (`/proc/sys`, `sandbox:…`).
    pub store: String,
}

/// Every committed value of the backups read, and the drop-ins they wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Records {
    /// One per key and backup, in backup then key order.
    pub records: Vec<Record>,
    /// Drop-ins SemantOS wrote (`--persist`).
    pub dropins: Vec<PathBuf>,
    /// The backups that exist and were read.
    pub backups: Vec<PathBuf>,
}

/// What kind of run `run_id` is (`apply-…`, `tune-…`, `agent-…`; a rollout's apply carries its rollout id).
pub fn run_kind(run_id: &str, rollout_id: Option<&str>) -> &'static str {
    if rollout_id.is_some() {
        return "rollout";
    }
    match run_id.split('-').next().unwrap_or_default() {
        "apply" => "apply",
        "tune" => "tune",
        "agent" => "agent",
        _ => "other",
    }
}

/// Reads every backup of `backups` that exists (a damaged one is an error naming it) and the times
/// of its writes from `audit` (a missing or unreadable audit log only loses the times).
pub fn read(backups: &[PathBuf], audit: Option<&Path>) -> Result<Records> {
    let times = audit.map(write_times).unwrap_or_default();
    let mut out = Records::default();
    for path in backups {
        let Some(b) = Backup::load_if_exists(path)? else { continue };
        out.backups.push(path.clone());
        out.dropins.extend(b.dropins.keys().chain(&b.persisted_to).map(PathBuf::from));
        if b.state == BackupState::Restored {
            continue;
        }
        for (key, value) in &b.committed {
            let layer = b.layers.iter().rev().find(|l| l.after.contains_key(key));
            let (run_id, rollout_id) = layer.map(|l| (l.run_id.clone(), l.rollout_id.clone())).unwrap_or((b.run_id.clone(), None));
            let at_ms = times.get(&(run_id.clone(), key.clone())).copied().unwrap_or(b.created_at * 1000);
            out.records.push(Record {
                key: key.clone(),
                intended: value.clone(),
                original: b.originals.get(key).cloned().flatten(),
                run_kind: run_kind(&run_id, rollout_id.as_deref()).to_string(),
                run_id,
                rollout_id,
                at_ms,
                backup: path.clone(),
                store: b.store.clone(),
            });
        }
    }
    out.dropins.sort();
    out.dropins.dedup();
    Ok(out)
}

/// (run, key) → the time of its last `write` event in the audit log; lines that are not JSON are skipped.
fn write_times(audit: &Path) -> BTreeMap<(String, String), u64> {
    let Ok(text) = std::fs::read_to_string(audit) else { return BTreeMap::new() };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "write")
        .filter_map(|v| Some(((v["run_id"].as_str()?.to_string(), v["key"].as_str()?.to_string()), v["ts_ms"].as_u64()?)))
        .collect()
}

impl Records {
    /// The records as the ownership check takes them.
    pub fn semantos(&self) -> SemantosRecords {
        let values = self.records.iter().map(|r| Ours { key: r.key.clone(), value: r.intended.clone(), run_id: r.run_id.clone(), run_kind: r.run_kind.clone(), source: r.backup.display().to_string() }).collect();
        SemantosRecords { values, dropins: self.dropins.clone() }
    }

    /// The managed keys, each once, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.records.iter().map(|r| r.key.clone()).collect();
        k.sort();
        k.dedup();
        k
    }
}
