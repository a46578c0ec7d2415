//! What every workload gives back, and the trait the runner drives. A
//! network workload starts its server in the server namespace, runs its
//! client in the client namespace, and reports one latency sample per
//! request; a limit workload (inotify watches, memory mappings) runs a
//! process that needs more of a per-user or per-process resource than its
//! limit grants, and reports what it got besides its latencies.

use super::topology::Topology;
use anyhow::{Result, bail};
use serde::Serialize;
use std::path::Path;

/// The latencies of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunOutput {
    /// One sample per measured request, milliseconds.
    pub samples_ms: Vec<f64>,
    /// Requests that failed (connection error, early close, timeout); a timed-out request also counts its timeout as a sample.
    pub errors: u64,
    /// Warm-up requests, not in `samples_ms` (e.g. the first object, which includes slow start).
    pub warmup_ms: Vec<f64>,
    /// Units of a limited resource the run needed (watches, mappings); 0 when the workload has none.
    pub wanted: u64,
    /// Of `wanted`, how many it got before the limit refused more.
    pub achieved: u64,
}

/// Where a workload runs.
#[derive(Clone, Copy)]
pub enum Env<'a> {
    /// The bench's client and server network namespaces.
    Net(&'a Topology),
    /// A fresh user namespace per run, its limits read from this sandbox tree (the one the apply transaction writes).
    UserNs(&'a Path),
    /// A child process on the host, under the host's own (global) limits.
    Host,
}

impl<'a> Env<'a> {
    /// The network namespaces; an error for a workload started outside them.
    pub fn topology(&self) -> Result<&'a Topology> {
        match self {
            Env::Net(t) => Ok(t),
            _ => bail!("this workload needs the bench's network namespaces (an internal error: the scenario's stage and workload do not match)"),
        }
    }

    /// The sandbox tree holding the user namespace's limits.
    pub fn tree(&self) -> Result<&'a Path> {
        match self {
            Env::UserNs(p) => Ok(p),
            _ => bail!("this workload needs a user-namespace stage with its limits tree (an internal error: the scenario's stage and workload do not match)"),
        }
    }
}

/// A workload the bench can run repeatedly in one environment.
pub trait Workload: Send + Sync {
    /// One line for reports: what runs, with its sizes.
    fn describe(&self) -> String;
    /// One run: start the server, run the client to completion, stop the server.
    fn run(&self, env: &Env) -> Result<RunOutput>;
}
