//! A mechanistic host model for reproduction and tests.
//!
//! Four workload classes share one simulated host, and their latency responds
//! to sysctl values through the kernel mechanisms that really govern it:
//! accept-queue overflow with SYN retransmission back-off (`web`), per-CPU
//! input-backlog drops that cost retransmissions and congestion-window cuts
//! (`web`, `bulk`), the TCP receive window against the bandwidth-delay
//! product (`bulk`), dirty-page writeback stalls, write merging and writer
//! throttling (`oltp`), and swap-in versus page-cache refaults plus direct
//! reclaim (`batch`). The host also emits the telemetry a real kernel would
//! show in that state (ListenOverflows, softnet drops, nr_dirty, pswpin,
//! PSI...), and nothing else: the reasoning engine never sees the model.
//!
//! Tuning can make things worse: too low a dirty threshold throttles writers
//! and defeats write merging, too low a swappiness thrashes the page cache, a
//! large watermark gap takes memory from the batch job. Same seed, same bytes.

pub mod batch;
pub mod bulk;
pub mod driver;
pub mod oltp;
pub mod params;
pub mod rng;
pub mod web;

use crate::sysctl::{SysctlKey, TreeStore, Value};
use crate::telemetry::HostFacts;
use params::HostParams;

pub use driver::{RunOutput, run, telemetry_series};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The workload classes the model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadClass {
    /// Web service with connection bursts (accept queue, input backlog).
    Web,
    /// fsync-heavy OLTP database (dirty writeback).
    Oltp,
    /// Bulk transfer over a long-RTT path (receive window, input-backlog loss).
    Bulk,
    /// Memory-pressured batch job (swap, page cache, direct reclaim).
    Batch,
}

impl WorkloadClass {
    /// Every class, in report order.
    pub const ALL: [WorkloadClass; 4] = [WorkloadClass::Web, WorkloadClass::Oltp, WorkloadClass::Bulk, WorkloadClass::Batch];

    /// The lowercase name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadClass::Web => "web",
            WorkloadClass::Oltp => "oltp",
            WorkloadClass::Bulk => "bulk",
            WorkloadClass::Batch => "batch",
        }
    }
}

/// One workload running on the simulated host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Its class.
    pub class: WorkloadClass,
    /// Load multiplier (1.0 = the scenario's nominal load).
    #[serde(default = "one")]
    pub intensity: f64,
}

fn one() -> f64 {
    1.0
}

/// The simulated machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Host name in telemetry and backups.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Kernel release it pretends to run; decides which keys exist (the sched keys left /proc/sys in 5.13).
    #[serde(default = "default_kernel")]
    pub kernel_release: String,
    /// CPUs.
    #[serde(default = "default_ncpus")]
    pub ncpus: u32,
    /// Memory in GiB.
    #[serde(default = "default_mem")]
    pub mem_gib: u32,
    /// NUMA nodes.
    #[serde(default = "default_numa")]
    pub numa_nodes: u32,
    /// Sequential write bandwidth of the data disk, MB/s.
    #[serde(default = "default_disk")]
    pub disk_mb_s: f64,
    /// Starting sysctl values that differ from kernel defaults (the scenario's stated starting point).
    #[serde(default = "default_start")]
    pub start: BTreeMap<String, String>,
}

fn default_hostname() -> String {
    "sim-host-1".into()
}
fn default_kernel() -> String {
    "6.18.0-sim".into()
}
fn default_ncpus() -> u32 {
    8
}
fn default_mem() -> u32 {
    64
}
fn default_numa() -> u32 {
    2
}
fn default_disk() -> f64 {
    250.0
}

/// The scenario's starting values: an older distribution's listen backlog,
/// and NUMA balancing on (the kernel enables it on multi-node machines).
pub fn default_start() -> BTreeMap<String, String> {
    [("net.core.somaxconn", "128"), ("kernel.numa_balancing", "1")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Default for HostSpec {
    fn default() -> Self {
        Self {
            hostname: default_hostname(),
            kernel_release: default_kernel(),
            ncpus: default_ncpus(),
            mem_gib: default_mem(),
            numa_nodes: default_numa(),
            disk_mb_s: default_disk(),
            start: default_start(),
        }
    }
}

impl HostSpec {
    /// Kernel defaults of every modelled key, with the sched keys only on kernels before 5.13.
    pub fn kernel_defaults(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = [
            ("net.core.somaxconn", "4096"),
            ("net.core.netdev_max_backlog", "1000"),
            ("net.core.netdev_budget", "300"),
            ("net.ipv4.tcp_rmem", "4096 131072 6291456"),
            ("net.ipv4.tcp_wmem", "4096 16384 4194304"),
            ("net.ipv4.tcp_max_syn_backlog", "2048"),
            ("net.ipv4.tcp_syncookies", "1"),
            ("net.ipv4.tcp_slow_start_after_idle", "1"),
            ("net.ipv4.tcp_congestion_control", "cubic"),
            ("vm.dirty_ratio", "20"),
            ("vm.dirty_background_ratio", "10"),
            ("vm.dirty_bytes", "0"),
            ("vm.dirty_background_bytes", "0"),
            ("vm.dirty_expire_centisecs", "3000"),
            ("vm.dirty_writeback_centisecs", "500"),
            ("vm.swappiness", "60"),
            ("vm.watermark_scale_factor", "10"),
            ("vm.min_free_kbytes", "67584"),
            ("vm.drop_caches", "0"),
            ("kernel.numa_balancing", "0"),
            ("kernel.randomize_va_space", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if kernel_before(&self.kernel_release, 5, 13) {
            m.insert("kernel.sched_latency_ns".into(), "24000000".into());
            m.insert("kernel.sched_min_granularity_ns".into(), "3000000".into());
        }
        m
    }

    /// Facts reported in telemetry.
    pub fn facts(&self, boot_id: &str) -> HostFacts {
        HostFacts {
            hostname: self.hostname.clone(),
            kernel_release: self.kernel_release.clone(),
            boot_id: boot_id.to_string(),
            ncpus: self.ncpus,
            mem_total_kb: self.mem_gib as u64 * 1024 * 1024,
            numa_nodes: self.numa_nodes,
        }
    }
}

/// Whether `release` (`5.10.0-x`) is older than `major.minor`.
pub fn kernel_before(release: &str, major: u32, minor: u32) -> bool {
    let mut it = release.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse::<u32>().unwrap_or(0));
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) < (major, minor)
}

/// Creates the sandbox `/proc/sys` tree at `root` holding the scenario's starting values.
pub fn seed_sandbox(spec: &HostSpec, root: &std::path::Path) -> anyhow::Result<TreeStore> {
    if root.exists() {
        std::fs::remove_dir_all(root).map_err(|e| anyhow::anyhow!("clearing sandbox {}: {e}", root.display()))?;
    }
    let store = TreeStore::sandbox(root);
    let mut values = spec.kernel_defaults();
    for (k, v) in &spec.start {
        values.insert(k.clone(), v.clone());
    }
    for (k, v) in &values {
        let key = SysctlKey::parse(k)?;
        store.seed(&key, &Value::from_kernel(v)).map_err(|e| anyhow::anyhow!("seeding {}: {e}", root.join(key.rel_path()).display()))?;
    }
    // Keys removed from /proc/sys are not in the tree; the boot id identifies this sandbox "boot".
    let boot = root.join("kernel/random");
    std::fs::create_dir_all(&boot)?;
    std::fs::write(boot.join("boot_id"), format!("sim-{}\n", spec.hostname))?;
    Ok(store)
}

/// Counters the workloads add to while they run; turned into snapshots at the end.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    /// Cumulative counters by metric name.
    pub counters: BTreeMap<String, f64>,
    /// Gauges at the end of the run by metric name.
    pub gauges: BTreeMap<String, f64>,
}

impl Telemetry {
    /// Adds to a counter.
    pub fn add(&mut self, name: &str, v: f64) {
        *self.counters.entry(name.to_string()).or_insert(0.0) += v;
    }
    /// Sets a gauge.
    pub fn set(&mut self, name: &str, v: f64) {
        self.gauges.insert(name.to_string(), v);
    }
}

/// Shared state computed by one stage and used by the next.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// Probability that a received packet is dropped at the input backlog.
    pub rx_drop_prob: f64,
    /// Data-disk utilisation by writeback and commits, 0..1.
    pub disk_util: f64,
    /// Fraction of time runnable tasks wait for a CPU.
    pub cpu_pressure: f64,
}

/// Per-request cost of NUMA balancing hint faults and of remote memory without it.
pub fn numa_factor(spec: &HostSpec, params: &HostParams, placement_sensitive: bool) -> f64 {
    if spec.numa_nodes <= 1 {
        return 1.0;
    }
    match (params.numa_balancing & 1 == 1, placement_sensitive) {
        // Hint faults and PTE scanning cost every task a few percent.
        (true, false) => 1.06,
        (true, true) => 1.02,
        // Without balancing, an unpinned job keeps some memory on the remote node.
        (false, true) => 1.04,
        (false, false) => 1.0,
    }
}

#[cfg(test)]
mod tests;

/// Host parameters at the scenario's starting values (kernel defaults plus `start`).
pub fn starting_params(spec: &HostSpec) -> HostParams {
    let mut v = spec.kernel_defaults();
    v.extend(spec.start.clone());
    let store = crate::sysctl::store::MemStore::new(v.iter().filter_map(|(k, v)| Some((SysctlKey::parse(k).ok()?, Value::from_kernel(v)))));
    HostParams::from_store(&store)
}
