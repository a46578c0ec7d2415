//! The journal of intended writes: one JSON line per step, fsynced, so a
//! run killed at any point leaves a record the next run finds. A journal
//! that exists means an apply or rollback did not finish.

use super::files::append_line;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Entry {
    /// A run started (`rollout_id`: the fleet rollout it belongs to, so that a fleet's restore of
    /// that rollout can undo this run's partial writes alone; absent in journals of older versions).
    Begin {
        run_id: String,
        backup: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rollout_id: Option<String>,
    },
    /// About to write `key`.
    Intent { key: String, from: Option<String>, to: String },
    /// The write of `key` was verified.
    Written { key: String },
    /// A batch finished and passed the monitor.
    BatchOk { batch: usize },
    /// About to restore `key`.
    Restore { key: String, to: String },
    /// The run ended (committed or rolled back).
    End { outcome: String },
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// Starts a journal at `path` (it must not exist: see `pending`).
    pub fn begin(path: &Path, run_id: &str, backup: &Path) -> Result<Journal> {
        Journal::begin_for_rollout(path, run_id, backup, None)
    }

    /// Starts a journal for a run of fleet rollout `rollout_id` (recorded in its `Begin` line).
    pub fn begin_for_rollout(path: &Path, run_id: &str, backup: &Path, rollout_id: Option<&str>) -> Result<Journal> {
        let j = Journal { path: path.to_path_buf() };
        j.record(&Entry::Begin { run_id: run_id.into(), backup: backup.display().to_string(), rollout_id: rollout_id.map(str::to_string) })?;
        Ok(j)
    }

    /// Appends an entry durably.
    pub fn record(&self, e: &Entry) -> Result<()> {
        append_line(&self.path, &serde_json::to_string(e)?, 0o600)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ends the run: the journal is removed.
    pub fn finish(self, outcome: &str) -> Result<()> {
        self.record(&Entry::End { outcome: outcome.into() })?;
        std::fs::remove_file(&self.path).with_context(|| format!("removing journal {}", self.path.display()))
    }
}

/// Entries of an unfinished journal at `path`, if one exists.
pub fn pending(path: &Path) -> Result<Option<Vec<Entry>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading journal {}", path.display())),
    };
    // A line cut by the kill is ignored: everything before it was fsynced.
    let entries: Vec<Entry> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if entries.iter().any(|e| matches!(e, Entry::End { .. })) {
        return Ok(None);
    }
    Ok(Some(entries))
}

/// A one-paragraph description of an unfinished journal for the user.
pub fn describe_pending(path: &Path, entries: &[Entry]) -> String {
    let run = entries.iter().find_map(|e| if let Entry::Begin { run_id, .. } = e { Some(run_id.clone()) } else { None }).unwrap_or("?".into());
    let intents = entries.iter().filter(|e| matches!(e, Entry::Intent { .. })).count();
    let written = entries.iter().filter(|e| matches!(e, Entry::Written { .. })).count();
    format!(
        "an earlier run ({run}) was interrupted: its journal {} records {intents} intended write(s), {written} verified; the host may be half-changed. Run `semantos --applier sysctl --rollback` (or `semantos rollback`) to restore every original value from the backup",
        path.display()
    )
}
