//! Rollout in sandbox mode: the monitor that lets the simulated host run
//! after each batch and reports a regression when a watched workload's p95
//! gets worse than the policy allows. It reads the host's sysctls from the
//! store, exactly as the simulated kernel would.

use crate::apply::{Health, Monitor};
use crate::eval::stats::percentile;
use crate::sim::{self, HostSpec, WorkloadSpec, params::HostParams};
use crate::sysctl::SysctlStore;
use std::collections::BTreeMap;

/// Watches simulated p95 latency per workload across batches.
pub struct SimMonitor<'a> {
    store: &'a dyn SysctlStore,
    spec: HostSpec,
    workloads: Vec<WorkloadSpec>,
    seed: u64,
    seconds: f64,
    max_regression: f64,
    last: BTreeMap<String, f64>,
    /// One line per batch: what the monitor saw.
    pub log: Vec<String>,
}

impl<'a> SimMonitor<'a> {
    /// Measures the current p95s as the reference. Every measurement uses `seed`, so differences come from the sysctls, not the noise.
    pub fn new(store: &'a dyn SysctlStore, spec: &HostSpec, workloads: &[WorkloadSpec], seed: u64, seconds: f64, max_regression: f64) -> Self {
        let mut m = Self { store, spec: spec.clone(), workloads: workloads.to_vec(), seed, seconds, max_regression, last: BTreeMap::new(), log: Vec::new() };
        m.last = m.measure();
        m
    }

    /// p95 per workload with the store's current values.
    pub fn measure(&self) -> BTreeMap<String, f64> {
        let params = HostParams::from_store(self.store);
        let out = sim::run(&self.spec, &params, &self.workloads, self.seed, self.seconds);
        out.latencies.iter().map(|(k, v)| (k.clone(), percentile(v, 95.0))).collect()
    }
}

impl Monitor for SimMonitor<'_> {
    fn after_batch(&mut self, index: usize, keys: &[String]) -> anyhow::Result<Health> {
        let now = self.measure();
        let mut worst: Option<(String, f64, f64, f64)> = None;
        let mut parts = Vec::new();
        for (w, after) in &now {
            let before = self.last.get(w).copied().unwrap_or(*after);
            let change = if before > 0.0 { after / before - 1.0 } else { 0.0 };
            parts.push(format!("{w} p95 {before:.0}→{after:.0} ms ({:+.1}%)", change * 100.0));
            if change > self.max_regression && worst.as_ref().is_none_or(|x| change > x.3) {
                worst = Some((w.clone(), before, *after, change));
            }
        }
        let summary = parts.join(", ");
        let line = format!("batch {index} [{}]: {summary}", keys.join(", "));
        Ok(match worst {
            Some((w, before, after, change)) => {
                self.log.push(format!("{line} → ROLLED BACK: {w} p95 regressed {:+.1}% (limit {:+.1}%)", change * 100.0, self.max_regression * 100.0));
                Health::Regressed(format!("{w} p95 {before:.0} → {after:.0} ms ({:+.1}%, limit {:+.1}%)", change * 100.0, self.max_regression * 100.0))
            }
            None => {
                self.log.push(format!("{line} → kept"));
                self.last = now;
                Health::Healthy(summary)
            }
        })
    }
}
