//! The `Snapshot`: every number the pipeline knows about a host at one
//! instant, whether read from `/proc` or emitted by the simulator. Metrics are
//! flat names (`netstat.TcpExt.ListenOverflows`, `vmstat.nr_dirty`,
//! `psi.io.some.avg10`) so a counter missing on one kernel is simply absent.
//! Rates always come from two snapshots (`Window`), never from one; a
//! diagnosis over several samples judges each consecutive pair
//! (`Window::sub_intervals`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the on-disk snapshot format (JSON and CSV).
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

/// Facts about the host that do not change between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    /// Host name.
    pub hostname: String,
    /// `uname -r`.
    pub kernel_release: String,
    /// `/proc/sys/kernel/random/boot_id`, identifying this boot.
    pub boot_id: String,
    /// Online CPUs.
    pub ncpus: u32,
    /// MemTotal in KiB.
    pub mem_total_kb: u64,
    /// NUMA nodes online.
    pub numa_nodes: u32,
}

/// Counters and gauges of one host at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version.
    pub schema_version: u32,
    /// Milliseconds on the source's clock (Unix time for live hosts, simulated time for the simulator).
    pub timestamp_ms: u64,
    /// Host facts.
    pub host: HostFacts,
    /// Metric name → value.
    pub metrics: BTreeMap<String, f64>,
}

/// Whether a metric only grows (rates make sense) or is a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic counter: read it as a rate or a delta between snapshots.
    Counter,
    /// Instantaneous level.
    Gauge,
}

/// Classifies a metric by name, following the conventions of each `/proc` file.
pub fn metric_kind(name: &str) -> MetricKind {
    let (file, rest) = name.split_once('.').unwrap_or((name, ""));
    match file {
        "netstat" => MetricKind::Counter,
        "softnet" => {
            if rest == "cpus" { MetricKind::Gauge } else { MetricKind::Counter }
        }
        // /proc/net/snmp: a few fields are levels or configuration.
        "snmp" => match rest {
            "Tcp.CurrEstab" | "Tcp.RtoAlgorithm" | "Tcp.RtoMin" | "Tcp.RtoMax" | "Tcp.MaxConn" | "Ip.Forwarding" | "Ip.DefaultTTL" => MetricKind::Gauge,
            _ => MetricKind::Counter,
        },
        // /proc/vmstat: nr_* are levels, the rest are event counters.
        // /proc/vmstat: nr_* are levels except a few cumulative ones; the rest are event counters.
        "vmstat" => match rest {
            "nr_dirtied" | "nr_written" => MetricKind::Counter,
            r if r.starts_with("nr_foll_pin_") => MetricKind::Counter,
            "workingset_nodes" => MetricKind::Gauge,
            r if r.starts_with("nr_") => MetricKind::Gauge,
            _ => MetricKind::Counter,
        },
        // PSI: the `total` field is cumulative stall microseconds.
        "psi" => {
            if rest.ends_with(".total") { MetricKind::Counter } else { MetricKind::Gauge }
        }
        // cgroup files mix both; see telemetry::cgroup for the naming convention.
        "cgroup" => cgroup_kind(rest),
        // /proc/net/stat tables (telemetry::limits): event counters, except the table size and the longest chain.
        "conntrack" => {
            if rest.starts_with("stat.") && rest != "stat.entries" && rest != "stat.chainlength" { MetricKind::Counter } else { MetricKind::Gauge }
        }
        "neigh" => {
            if rest.ends_with(".entries") { MetricKind::Gauge } else { MetricKind::Counter }
        }
        // eBPF (telemetry::ebpf): drops, retransmits and state changes count events; latency percentiles are levels.
        "ebpf" => {
            if rest.starts_with("drop.") || rest.starts_with("tcp.") { MetricKind::Counter } else { MetricKind::Gauge }
        }
        // sim workload counters: completed requests.
        "app" if rest.ends_with(".requests") => MetricKind::Counter,
        _ => MetricKind::Gauge,
    }
}

/// Kind of a cgroup metric (`cgroup.<hierarchy>:<path>:<file>.<field>`), judged by
/// `<file>.<field>` alone: the path may hold any text, dots included.
fn cgroup_kind(rest: &str) -> MetricKind {
    let leaf = rest.rsplit_once(':').map_or(rest, |(_, leaf)| leaf);
    let counter = if let Some(field) = leaf.strip_prefix("memory.stat.") {
        // memory.stat: sizes are levels; pg* (faults, scans, steals), thp_* and
        // workingset_* (except the workingset_nodes level) count events. v1 prefixes hierarchical totals with total_.
        let field = field.strip_prefix("total_").unwrap_or(field);
        field.starts_with("pg") || field.starts_with("thp_") || (field.starts_with("workingset_") && field != "workingset_nodes")
    } else if leaf.contains(".pressure.") {
        // PSI: total is cumulative stall microseconds, avg* are levels.
        leaf.ends_with(".total")
    } else {
        // cpu.stat (usec and nr_* counts), memory.events(.local), cpuacct.usage* (ns).
        leaf.starts_with("cpu.stat.") || leaf.starts_with("memory.events") || leaf.starts_with("cpuacct.usage")
    };
    if counter { MetricKind::Counter } else { MetricKind::Gauge }
}

impl Snapshot {
    /// An empty snapshot of `host` at `timestamp_ms`.
    pub fn new(host: HostFacts, timestamp_ms: u64) -> Self {
        Self { schema_version: SNAPSHOT_SCHEMA_VERSION, timestamp_ms, host, metrics: BTreeMap::new() }
    }

    /// The value of a metric, if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied()
    }

    /// Sets a metric.
    pub fn set(&mut self, name: impl Into<String>, value: f64) {
        self.metrics.insert(name.into(), value);
    }

    /// A short digest of the snapshot's content, for decision traces.
    pub fn digest(&self) -> String {
        // FNV-1a over the canonical JSON: stable across runs and platforms.
        super::fnv::fnv1a64_hex(&serde_json::to_string(self).unwrap_or_default())
    }
}

/// Two snapshots of the same host: the unit rates come from, and one
/// sub-interval of a diagnosis window.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Earlier snapshot.
    pub before: &'a Snapshot,
    /// Later snapshot.
    pub after: &'a Snapshot,
}

impl<'a> Window<'a> {
    /// Pairs two snapshots; `after` must not be earlier than `before`.
    pub fn new(before: &'a Snapshot, after: &'a Snapshot) -> Self {
        Self { before, after }
    }

    /// The consecutive sub-intervals of `snaps` (in time order): the windows a
    /// diagnosis over several samples judges one by one.
    pub fn sub_intervals(snaps: &'a [Snapshot]) -> Vec<Window<'a>> {
        snaps.windows(2).map(|p| Window::new(&p[0], &p[1])).collect()
    }

    /// Seconds between the snapshots.
    pub fn seconds(&self) -> f64 {
        (self.after.timestamp_ms.saturating_sub(self.before.timestamp_ms)) as f64 / 1000.0
    }

    /// Increase of a counter; a counter that went backwards (reset, wrap) counts from zero.
    pub fn delta(&self, name: &str) -> Option<f64> {
        let a = self.after.get(name)?;
        match self.before.get(name) {
            Some(b) if a >= b => Some(a - b),
            _ => Some(a),
        }
    }

    /// Per-second rate of a counter.
    pub fn rate(&self, name: &str) -> Option<f64> {
        let s = self.seconds();
        if s <= 0.0 {
            return None;
        }
        Some(self.delta(name)? / s)
    }

    /// Latest value of a gauge.
    pub fn gauge(&self, name: &str) -> Option<f64> {
        self.after.get(name)
    }

    /// The natural reading of a metric: a rate for counters, the latest value for gauges.
    pub fn reading(&self, name: &str) -> Option<f64> {
        match metric_kind(name) {
            MetricKind::Counter => self.rate(name),
            MetricKind::Gauge => self.gauge(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_two_snapshots() {
        let mut a = Snapshot::new(HostFacts::default(), 1_000);
        let mut b = Snapshot::new(HostFacts::default(), 3_000);
        a.set("netstat.TcpExt.ListenOverflows", 10.0);
        b.set("netstat.TcpExt.ListenOverflows", 50.0);
        b.set("vmstat.nr_dirty", 7.0);
        let w = Window::new(&a, &b);
        assert_eq!(w.rate("netstat.TcpExt.ListenOverflows"), Some(20.0));
        assert_eq!(w.reading("vmstat.nr_dirty"), Some(7.0));
        assert_eq!(w.reading("netstat.TcpExt.Missing"), None);
    }

    #[test]
    fn kinds_follow_proc_conventions() {
        assert_eq!(metric_kind("vmstat.nr_dirty"), MetricKind::Gauge);
        assert_eq!(metric_kind("vmstat.pswpin"), MetricKind::Counter);
        assert_eq!(metric_kind("psi.io.some.avg10"), MetricKind::Gauge);
        assert_eq!(metric_kind("psi.io.some.total"), MetricKind::Counter);
        assert_eq!(metric_kind("snmp.Tcp.CurrEstab"), MetricKind::Gauge);
        assert_eq!(metric_kind("meminfo.Dirty"), MetricKind::Gauge);
        assert_eq!(metric_kind("vmstat.nr_written"), MetricKind::Counter);
        assert_eq!(metric_kind("vmstat.workingset_nodes"), MetricKind::Gauge);
        assert_eq!(metric_kind("softnet.cpus"), MetricKind::Gauge);
        assert_eq!(metric_kind("conntrack.stat.drop"), MetricKind::Counter);
        assert_eq!(metric_kind("conntrack.stat.entries"), MetricKind::Gauge);
        assert_eq!(metric_kind("conntrack.count"), MetricKind::Gauge);
        assert_eq!(metric_kind("neigh.arp_cache.table_fulls"), MetricKind::Counter);
        assert_eq!(metric_kind("neigh.arp_cache.entries"), MetricKind::Gauge);
        assert_eq!(metric_kind("proc.maps.top.count"), MetricKind::Gauge);
    }

    #[test]
    fn cgroup_kinds_follow_the_file_not_the_path() {
        assert_eq!(metric_kind("cgroup.:system.slice:cpu.stat.throttled_usec"), MetricKind::Counter);
        assert_eq!(metric_kind("cgroup.:cpu.stat.nr_throttled"), MetricKind::Counter);
        assert_eq!(metric_kind("cgroup.:a.events.b_usec:memory.current"), MetricKind::Gauge);
        assert_eq!(metric_kind("cgroup.:user.slice:memory.stat.file_dirty"), MetricKind::Gauge);
        assert_eq!(metric_kind("cgroup.:user.slice:memory.stat.pgmajfault"), MetricKind::Counter);
        assert_eq!(metric_kind("cgroup.:user.slice:memory.stat.workingset_nodes"), MetricKind::Gauge);
        assert_eq!(metric_kind("cgroup.:user.slice:memory.events.oom"), MetricKind::Counter);
        assert_eq!(metric_kind("cgroup.:io.pressure.some.avg10"), MetricKind::Gauge);
        assert_eq!(metric_kind("cgroup.:io.pressure.full.total"), MetricKind::Counter);
        assert_eq!(metric_kind("cgroup.v1:memory.stat.total_pgmajfault"), MetricKind::Counter);
        assert_eq!(metric_kind("cgroup.v1:memory.usage_in_bytes"), MetricKind::Gauge);
        assert_eq!(metric_kind("cgroup.v1:cpuacct.usage"), MetricKind::Counter);
    }
}
