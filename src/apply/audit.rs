//! The audit log: every action appended as one JSON line
//! (`logs/semantos-audit.jsonl` by default).

use super::files::append_line;
use serde::Serialize;
use std::path::PathBuf;

/// One audited action.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    /// Unix time in milliseconds.
    pub ts_ms: u64,
    /// The run.
    pub run_id: &'a str,
    /// What happened (`backup`, `write`, `verify`, `rollback`, `monitor`, `commit`...).
    pub event: &'a str,
    /// Key concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    /// Value before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'a str>,
    /// Value after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
    /// Free text.
    pub detail: String,
}

/// Where audit events go.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: Option<PathBuf>,
}

impl AuditLog {
    /// A log appending to `path`.
    pub fn to(path: impl Into<PathBuf>) -> Self {
        Self { path: Some(path.into()) }
    }

    /// A log that discards events.
    pub fn none() -> Self {
        Self { path: None }
    }

    /// Appends an event; failures to log are reported on stderr, never fatal to a rollback.
    pub fn log(&self, run_id: &str, event: &str, key: Option<&str>, from: Option<&str>, to: Option<&str>, detail: impl Into<String>) {
        let Some(path) = &self.path else { return };
        let ts_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let e = Event { ts_ms, run_id, event, key, from, to, detail: detail.into() };
        if let Err(err) = append_line(path, &serde_json::to_string(&e).unwrap_or_default(), 0o600) {
            eprintln!("semantos: warning: audit log {}: {err:#}", path.display());
        }
    }
}
