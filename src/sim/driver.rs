//! The driver: one simulated run of every workload on one host, in the order the
//! mechanisms feed each other, and the snapshots it leaves.
//!
//! It sits above the workload files (`web`, `oltp`, `bulk`, `batch`), which use
//! only the shared host types of `sim/mod.rs`: so the module has no circle.

use super::params::HostParams;
use super::{HostSpec, Shared, Telemetry, WorkloadClass, WorkloadSpec, batch, bulk, oltp, rng, web};
use crate::telemetry::Snapshot;
use std::collections::BTreeMap;

/// Everything one simulated run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Latency samples in ms per workload name.
    pub latencies: BTreeMap<String, Vec<f64>>,
    /// Snapshot at the start of the run.
    pub before: Snapshot,
    /// Snapshot at the end of the run.
    pub after: Snapshot,
}

/// Runs every workload of `workloads` for `seconds` on a host with `params`.
pub fn run(spec: &HostSpec, params: &HostParams, workloads: &[WorkloadSpec], seed: u64, seconds: f64) -> RunOutput {
    let mut tel = Telemetry::default();
    let mut shared = Shared::default();
    let intensity = |c: WorkloadClass| workloads.iter().filter(|w| w.class == c).map(|w| w.intensity).sum::<f64>();
    // Order matters: the input backlog sees every receiver's packets, the disk is shared by writeback and page-cache reads.
    web::rx_backlog(spec, params, intensity(WorkloadClass::Bulk), intensity(WorkloadClass::Web), seed, seconds, &mut shared, &mut tel);
    shared.cpu_pressure = (0.04 + 0.08 * intensity(WorkloadClass::Batch) + 0.03 * intensity(WorkloadClass::Web)).min(0.9);
    let mut latencies = BTreeMap::new();
    for class in WorkloadClass::ALL {
        let k = intensity(class);
        if k <= 0.0 {
            continue;
        }
        let mut rng = rng::stream(seed, class.name());
        let samples = match class {
            WorkloadClass::Web => web::run(spec, params, k, seconds, &shared, &mut rng, &mut tel),
            WorkloadClass::Oltp => oltp::run(spec, params, k, seconds, &mut shared, &mut rng, &mut tel),
            WorkloadClass::Bulk => bulk::run(spec, params, k, seconds, &shared, &mut rng, &mut tel),
            WorkloadClass::Batch => batch::run(spec, params, k, seconds, &shared, &mut rng, &mut tel),
        };
        latencies.insert(class.name().to_string(), samples);
    }
    numa_overhead(spec, params, seconds, &mut tel);
    tel.set("psi.cpu.some.avg10", 100.0 * shared.cpu_pressure);
    let (before, after) = snapshots(spec, &tel, seed, seconds);
    RunOutput { latencies, before, after }
}

fn numa_overhead(spec: &HostSpec, params: &HostParams, seconds: f64, tel: &mut Telemetry) {
    if spec.numa_nodes > 1 && params.numa_balancing & 1 == 1 {
        let faults = 1800.0 * spec.ncpus as f64 * seconds;
        tel.add("vmstat.numa_hint_faults", faults);
        tel.add("vmstat.numa_hint_faults_local", faults * 0.93);
        tel.add("vmstat.numa_pages_migrated", faults * 0.01);
        tel.add("vmstat.numa_pte_updates", faults * 1.6);
    }
}

fn snapshots(spec: &HostSpec, tel: &Telemetry, seed: u64, seconds: f64) -> (Snapshot, Snapshot) {
    let facts = spec.facts(&format!("sim-{}", spec.hostname));
    // Counters start from an arbitrary non-zero base, as on a host that has been up for a while.
    let base = 1_000_000.0 + (seed % 1000) as f64;
    let start_ms = 3_600_000;
    let mut before = Snapshot::new(facts.clone(), start_ms);
    let mut after = Snapshot::new(facts, start_ms + (seconds * 1000.0) as u64);
    for (k, v) in &tel.counters {
        before.set(k.clone(), base);
        after.set(k.clone(), (base + v).round());
    }
    for (k, v) in &tel.gauges {
        before.set(k.clone(), *v);
        after.set(k.clone(), (*v * 1000.0).round() / 1000.0);
    }
    for s in [&mut before, &mut after] {
        s.set("host.ncpus", spec.ncpus as f64);
        s.set("host.numa_nodes", spec.numa_nodes as f64);
        s.set("host.mem_total_kb", (spec.mem_gib as u64 * 1024 * 1024) as f64);
        s.set("meminfo.MemTotal", (spec.mem_gib as u64 * 1024 * 1024) as f64);
    }
    (before, after)
}

/// A telemetry series of `windows + 1` snapshots, `seconds` apart, from consecutive simulated windows.
pub fn telemetry_series(spec: &HostSpec, params: &HostParams, workloads: &[WorkloadSpec], seed: u64, windows: usize, seconds: f64) -> Vec<Snapshot> {
    let mut out: Vec<Snapshot> = Vec::new();
    for w in 0..windows.max(1) {
        let run = run(spec, params, workloads, rng::trial_seed(seed, 300_000 + w), seconds);
        if out.is_empty() {
            out.push(run.before.clone());
        }
        let prev = out.last().unwrap().clone();
        let mut next = run.after.clone();
        next.timestamp_ms = prev.timestamp_ms + (seconds * 1000.0) as u64;
        for (k, v) in &run.after.metrics {
            if crate::telemetry::metric_kind(k) == crate::telemetry::MetricKind::Counter {
                let delta = v - run.before.get(k).unwrap_or(0.0);
                next.set(k.clone(), prev.get(k).unwrap_or(0.0) + delta);
            }
        }
        out.push(next);
    }
    out
}
