//! What the agent remembers across restarts, in its state directory: the keys it manages (the
//! value it applied, the value before, the symptom behind it), the change ledger (dwell time and
//! daily budget), its counters, the drift it already reported, the change sets measured and rolled
//! back (not retried for a while) and the one being measured. Rewritten atomically.

use super::calm::Ledger;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Version of `agent-state.json`.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// The agent's files in its state directory.
#[derive(Debug, Clone)]
pub struct Files {
    /// The state directory.
    pub dir: PathBuf,
    /// One agent per host (per state directory): an flock, its pid inside.
    pub lock: PathBuf,
    /// The advice store.
    pub advice: PathBuf,
    /// [`Persisted`].
    pub state: PathBuf,
    /// The apply transaction's backup (journal and the transaction's lock beside it, in `agent/`,
    /// apart from `semantos apply`'s, whose lock the agent must not hold while it runs).
    pub backup: PathBuf,
    /// The audit log (JSON lines) the agent's transactions append to.
    pub audit: PathBuf,
}

impl Files {
    /// The layout under `dir`.
    pub fn under(dir: &Path) -> Files {
        Files {
            dir: dir.to_path_buf(),
            lock: dir.join("agent.lock"),
            advice: dir.join("advice.json"),
            state: dir.join("agent-state.json"),
            backup: dir.join("agent/backup.json"),
            audit: dir.join("audit.jsonl"),
        }
    }
}

/// One key the agent applied and means to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Managed {
    /// The value applied.
    pub intended: String,
    /// The value before.
    pub from: String,
    /// The symptom that called for it.
    pub symptom: String,
    /// The advice it came from.
    pub advice_id: String,
    /// When it was applied, seconds since the epoch.
    pub applied_s: u64,
    /// The measurement it was kept on (both statistics, the interval); empty in a state written
    /// before apply mode measured.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evidence: String,
}

/// A change set measured and rolled back: its advice is not proposed again until the workload
/// changes (a CUSUM change point on its symptom) or `objective.retry_after` has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    /// The key.
    pub key: String,
    /// The value tried.
    pub value: String,
    /// The symptom that called for it (a change point on it lifts the rejection).
    pub symptom: String,
    /// The measurement it was rolled back on.
    pub evidence: String,
    /// When it was rolled back, seconds since the epoch.
    pub at_s: u64,
}

/// A change set being measured: written before its first write, cleared once it is kept or
/// rolled back. Found at start, it means the agent died in the middle: every value is rolled back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InFlight {
    /// The advice IDs of the change set.
    pub advice_ids: Vec<String>,
    /// The values in force before it (the incumbent).
    pub incumbent: BTreeMap<String, String>,
    /// The values tried.
    pub candidate: BTreeMap<String, String>,
    /// When it started, seconds since the epoch.
    pub started_s: u64,
    /// The advice ID of each key of the change set (absent in state files of older versions), so
    /// crash recovery can name the advice of a key it leaves to another writer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub advice_by_key: BTreeMap<String, String>,
}

/// The state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persisted {
    /// Format version.
    pub schema_version: u32,
    /// Keys the agent manages.
    pub managed: BTreeMap<String, Managed>,
    /// Change sets made.
    pub ledger: Ledger,
    /// Change sets applied and kept.
    pub changes_applied_total: u64,
    /// Change sets rolled back.
    pub changes_rolled_back_total: u64,
    /// Drift reports.
    pub drift_total: u64,
    /// Workload changes detected.
    pub workload_changes_total: u64,
    /// The live value last reported as drift, per key (reported once per change).
    pub drift_seen: BTreeMap<String, String>,
    /// Change sets measured and rolled back, by advice ID (not proposed again for a while).
    #[serde(default)]
    pub rejected: BTreeMap<String, Rejected>,
    /// Advice rolled back by its measurement, one per advice ID of each such change set.
    #[serde(default)]
    pub advice_rolled_back_by_measurement_total: u64,
    /// The change set being measured, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<InFlight>,
}

impl Default for Persisted {
    fn default() -> Self {
        Persisted {
            schema_version: STATE_SCHEMA_VERSION,
            managed: BTreeMap::new(),
            ledger: Ledger::default(),
            changes_applied_total: 0,
            changes_rolled_back_total: 0,
            drift_total: 0,
            workload_changes_total: 0,
            drift_seen: BTreeMap::new(),
            rejected: BTreeMap::new(),
            advice_rolled_back_by_measurement_total: 0,
            trial: None,
        }
    }
}

impl Persisted {
    /// Loads `path`, or the empty state when it does not exist; a damaged file is an error naming it.
    pub fn load(path: &Path) -> Result<Persisted> {
        match std::fs::read(path) {
            Ok(b) => {
                let p: Persisted = serde_json::from_slice(&b).with_context(|| format!("{}: the agent's state is damaged; stop the agent, run `semantos rollback --backup {}` if it applied anything, and move the file aside", path.display(), path.with_file_name("agent/backup.json").display()))?;
                if p.schema_version != STATE_SCHEMA_VERSION {
                    bail!("{}: agent state schema_version {} is not {STATE_SCHEMA_VERSION}; move the file aside to start afresh", path.display(), p.schema_version);
                }
                Ok(p)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Persisted::default()),
            Err(e) => Err(e).with_context(|| format!("reading the agent's state {}", path.display())),
        }
    }

    /// Writes it atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::apply::files::write_atomic(path, serde_json::to_string_pretty(self)?.as_bytes(), 0o644).with_context(|| format!("writing the agent's state {}", path.display()))
    }
}
