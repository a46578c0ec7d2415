//! The agent's metrics as plain data, and their Prometheus exposition (an HTTP endpoint and a
//! node_exporter textfile). The agent fills [`AgentMetrics`] once per sample; this module only
//! renders and serves it, so it decides nothing and reads nothing of the host.
//!
//! * `render.rs`: [`AgentMetrics`] → the Prometheus text format 0.0.4 ([`render`], [`CONTENT_TYPE`]).
//! * `serve.rs`: `GET /metrics` on a small HTTP server thread ([`serve`], [`Server`]).
//! * `textfile.rs`: the same text for node_exporter's textfile collector, written atomically
//!   ([`write_textfile`]).

mod error;
mod render;
mod serve;
mod textfile;

pub use error::MetricsError;
pub use render::{render, CONTENT_TYPE};
pub use serve::{serve, Server};
pub use textfile::write_textfile;

/// One managed key: what SemantOS intends and what is live now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedKey {
    /// The dotted sysctl name.
    pub key: String,
    /// The value SemantOS applied and means to keep.
    pub intended: String,
    /// The value read now (`None` when it could not be read).
    pub live: Option<String>,
    /// Whether live equals intended (compared as sysctl values, not as strings).
    pub in_agreement: bool,
}

/// One piece of open advice, under its stable ID.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advice {
    /// The stable advice ID (same finding, key and proposal → same ID across runs).
    pub id: String,
    /// The KB symptom behind it.
    pub symptom: String,
    /// The key it proposes to change (empty for advice without a change).
    pub key: String,
    /// How many times it has been seen.
    pub count: u64,
}

/// A key another owner manages, found while the agent planned or verified.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conflict {
    /// The dotted sysctl name.
    pub key: String,
    /// Who else manages it (for example `/etc/sysctl.d/99-net.conf` or `tuned:throughput-performance`).
    pub owner: String,
}

/// Everything the agent publishes, refreshed once per sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentMetrics {
    /// `observe` or `apply`.
    pub mode: String,
    /// KB symptoms present now (sustained over the window).
    pub findings: Vec<String>,
    /// Open advice.
    pub advice: Vec<Advice>,
    /// Change sets applied and kept since the agent's state began.
    pub changes_applied_total: u64,
    /// Change sets rolled back (by measurement, monitor or on exit).
    pub changes_rolled_back_total: u64,
    /// Managed keys with their intended and live values.
    pub managed: Vec<ManagedKey>,
    /// Managed keys found changed behind the agent's back, counted once per change.
    pub drift_total: u64,
    /// Workload changes detected on the symptom and objective signals.
    pub workload_changes_total: u64,
    /// Keys another owner manages.
    pub conflicts: Vec<Conflict>,
    /// Samples taken.
    pub samples_total: u64,
    /// The agent's own CPU time, user + system, in seconds.
    pub cpu_seconds_total: f64,
    /// The agent's resident set size in bytes.
    pub rss_bytes: u64,
    /// How long the last sample took (read + diagnose), in seconds.
    pub last_sample_seconds: f64,
    /// Advice rolled back by its measurement and held back now (until a workload change or
    /// `objective.retry_after`).
    pub advice_held_back: u64,
    /// Advice rolled back by its measurement since the agent's state began (one per advice ID of
    /// each change set rolled back).
    pub advice_rolled_back_by_measurement_total: u64,
}
