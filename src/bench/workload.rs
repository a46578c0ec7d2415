//! What every workload gives back, and the trait the runner drives. A
//! workload starts its server in the server namespace, runs its client in
//! the client namespace, and reports one latency sample per request.

use super::topology::Topology;
use anyhow::Result;
use serde::Serialize;

/// The latencies of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunOutput {
    /// One sample per measured request, milliseconds.
    pub samples_ms: Vec<f64>,
    /// Requests that failed (connection error, early close, timeout); a timed-out request also counts its timeout as a sample.
    pub errors: u64,
    /// Warm-up requests, not in `samples_ms` (e.g. the first object, which includes slow start).
    pub warmup_ms: Vec<f64>,
}

/// A workload the bench can run repeatedly on one topology.
pub trait Workload: Send + Sync {
    /// One line for reports: what runs, with its sizes.
    fn describe(&self) -> String;
    /// One run: start the server, run the client to completion, stop the server.
    fn run(&self, topo: &Topology) -> Result<RunOutput>;
}
