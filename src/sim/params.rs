//! The sysctl values the simulated host runs with, read from a sysctl store
//! (the sandbox tree) exactly as the real kernel would read its own. A key
//! missing from the store (the sched keys on kernels ≥ 5.13) is `None` and
//! the model falls back to what such a kernel does instead.

use crate::sysctl::{SysctlKey, SysctlStore};

/// Values the model's mechanisms depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct HostParams {
    pub somaxconn: i64,
    pub netdev_max_backlog: i64,
    pub netdev_budget: i64,
    pub tcp_rmem_max: i64,
    pub tcp_wmem_max: i64,
    pub tcp_slow_start_after_idle: bool,
    pub dirty_ratio: i64,
    pub dirty_background_ratio: i64,
    pub dirty_bytes: i64,
    pub dirty_background_bytes: i64,
    pub dirty_expire_centisecs: i64,
    pub swappiness: i64,
    pub watermark_scale_factor: i64,
    pub numa_balancing: i64,
    pub sched_min_granularity_ns: Option<i64>,
    pub sched_latency_ns: Option<i64>,
}

fn int(store: &dyn SysctlStore, key: &str, element: usize) -> Option<i64> {
    let k = SysctlKey::parse(key).ok()?;
    let v = store.read(&k).ok()?;
    v.ints()?.get(element).copied()
}

impl HostParams {
    /// Reads every modelled key from `store`; a missing key takes the kernel default.
    pub fn from_store(store: &dyn SysctlStore) -> Self {
        let g = |k: &str, d: i64| int(store, k, 0).unwrap_or(d);
        Self {
            somaxconn: g("net.core.somaxconn", 4096),
            netdev_max_backlog: g("net.core.netdev_max_backlog", 1000),
            netdev_budget: g("net.core.netdev_budget", 300),
            tcp_rmem_max: int(store, "net.ipv4.tcp_rmem", 2).unwrap_or(6_291_456),
            tcp_wmem_max: int(store, "net.ipv4.tcp_wmem", 2).unwrap_or(4_194_304),
            tcp_slow_start_after_idle: g("net.ipv4.tcp_slow_start_after_idle", 1) != 0,
            dirty_ratio: g("vm.dirty_ratio", 20),
            dirty_background_ratio: g("vm.dirty_background_ratio", 10),
            dirty_bytes: g("vm.dirty_bytes", 0),
            dirty_background_bytes: g("vm.dirty_background_bytes", 0),
            dirty_expire_centisecs: g("vm.dirty_expire_centisecs", 3000),
            swappiness: g("vm.swappiness", 60),
            watermark_scale_factor: g("vm.watermark_scale_factor", 10),
            numa_balancing: g("kernel.numa_balancing", 0),
            sched_min_granularity_ns: int(store, "kernel.sched_min_granularity_ns", 0),
            sched_latency_ns: int(store, "kernel.sched_latency_ns", 0),
        }
    }

    /// Foreground and background dirty thresholds in bytes, as `domain_dirty_limits()` computes them.
    pub fn dirty_thresholds(&self, dirtyable_bytes: f64) -> (f64, f64) {
        let fg = if self.dirty_bytes > 0 { self.dirty_bytes as f64 } else { self.dirty_ratio as f64 / 100.0 * dirtyable_bytes };
        let mut bg = if self.dirty_background_bytes > 0 {
            self.dirty_background_bytes as f64
        } else {
            self.dirty_background_ratio as f64 / 100.0 * dirtyable_bytes
        };
        // The kernel silently halves a background threshold that reaches the foreground one.
        if bg >= fg {
            bg = fg / 2.0;
        }
        (fg.max(8192.0), bg.max(4096.0))
    }
}
