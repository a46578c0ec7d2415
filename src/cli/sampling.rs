//! The telemetry window a diagnosis judges (shared by `diagnose`,
//! `recommend`, `dry-run` and `apply`): every row of a CSV, or live samples
//! spread over `--interval` with the listening sockets over `sock_diag` and
//! the `sysctl.<key>` limits the KB's symptoms divide by. Imports no command
//! module.

use super::common::{self, invalid};
use super::flags::TelemetryArgs;
use crate::kb::Kb;
use crate::sysctl::{SysctlKey, SysctlStore, TreeStore};
use crate::telemetry::Snapshot;
use crate::telemetry::procfs::ProcReader;
use crate::telemetry::sockdiag::BufferCaps;
use anyhow::Result;
use std::path::Path;
use std::time::Duration;

/// Snapshots a live diagnosis spreads over its `--interval` window unless
/// `diagnose --samples` says otherwise: four sub-intervals, so a window
/// costs no more wall time than the two snapshots it replaced.
pub const DEFAULT_SAMPLES: usize = 5;

/// The window a diagnosis judges: every row of a CSV (in time order), or
/// `samples` live reads spread evenly over `--interval`. `sysctl_root` is the
/// tree the limits are read from.
pub fn telemetry(t: &TelemetryArgs, sysctl_root: &Path, kb: &Kb, samples: usize) -> Result<Vec<Snapshot>> {
    if let Some(path) = &t.telemetry {
        return crate::telemetry::csv::read_file(path).map_err(|e| invalid(format!("{e:#}")));
    }
    let mut live = LiveSampler::open(t, sysctl_root, kb)?;
    live.window(Duration::from_secs_f64(t.interval), samples)
}

/// Reads one live snapshot at a time: `/proc`, the listening sockets of this
/// network namespace over `sock_diag` (listeners only: their number, not the
/// host's connection count, bounds the cost), and the `sysctl.<key>` limits
/// the KB's symptoms divide by, from the sysctl tree, so a ratio's limit is
/// the one in force when the count was read.
pub struct LiveSampler {
    reader: ProcReader,
    diag: Option<crate::telemetry::sockdiag::SockDiag>,
    store: TreeStore,
    limits: Vec<(String, SysctlKey)>,
    /// The caps the live host's sockets run on, when they are this host's (not for a fixture
    /// /proc or a sandbox tree, whose sockets these are not): each sub-interval's sockets are then
    /// sampled over it.
    sockets: Option<BufferCaps>,
}

impl LiveSampler {
    /// A sampler of the `/proc` `t` names, with the limits of the tree at `sysctl_root`.
    pub fn open(t: &TelemetryArgs, sysctl_root: &Path, kb: &Kb) -> Result<LiveSampler> {
        if !(t.interval.is_finite() && (0.05..=3600.0).contains(&t.interval)) {
            return Err(invalid(format!("--interval {}: use 0.05 to 3600 seconds", t.interval)));
        }
        let named = kb.symptoms.values().flat_map(|s| &s.when).flat_map(|s| std::iter::once(&s.metric).chain(&s.per));
        // Only keys the KB knows and may read: a secret or a key whose read acts (vm.stat_refresh) never is.
        let readable = |k: &str| kb.param(k).is_some_and(|p| p.no_read.is_none());
        let mut limits: Vec<(String, SysctlKey)> = named
            .chain(kb.limits.iter().flat_map(|l| &l.limits))
            .filter_map(|m| m.strip_prefix("sysctl.").filter(|k| readable(k)).and_then(|k| Some((m.clone(), SysctlKey::parse(k).ok()?))))
            .collect();
        limits.sort_by(|a, b| a.0.cmp(&b.0));
        limits.dedup_by(|a, b| a.0 == b.0);
        // No sock_diag (a kernel without it, a seccomp profile): listener symptoms say "no data".
        let diag = crate::telemetry::sockdiag::SockDiag::open().ok();
        let store = common::store(sysctl_root);
        let on_host = t.proc_root == Path::new("/proc") && store.root().starts_with("/proc");
        let sockets = on_host.then(|| BufferCaps::read(store.root()));
        Ok(LiveSampler { reader: ProcReader::with_roots(&t.proc_root, "/sys"), diag, store, limits, sockets })
    }

    /// `samples` snapshots (at least two) spread evenly over `span`: the window a diagnosis judges
    /// (`diagnose`, `recommend`, `apply`'s baseline) and the one `apply`'s monitor judges after each batch.
    pub fn window(&mut self, span: Duration, samples: usize) -> Result<Vec<Snapshot>> {
        let n = samples.max(2);
        let step = span / (n - 1) as u32;
        let mut snaps = vec![self.sample()?];
        for _ in 1..n {
            // Each sub-interval's sockets are sampled over that sub-interval (every 50 ms) and join the
            // snapshot that closes it, so a per-socket signal is judged per sub-interval like the rest.
            let socks = self.sockets.and_then(|caps| crate::telemetry::sockdiag::sample_window(step, Duration::from_millis(50), caps).ok());
            if socks.is_none() {
                std::thread::sleep(step);
            }
            let mut snap = self.sample()?;
            for (k, v) in socks.map(|a| a.metrics()).unwrap_or_default() {
                // The per-sample listener gauges stay as sampled.
                snap.metrics.entry(k).or_insert(v);
            }
            snaps.push(snap);
        }
        Ok(snaps)
    }

    /// One snapshot now.
    pub fn sample(&mut self) -> Result<Snapshot> {
        let t = common::now_ms();
        let mut snap = self.reader.snapshot(t)?;
        if let Some(recs) = self.diag.as_mut().and_then(|d| d.dump(crate::telemetry::sockdiag::States::LISTEN).ok()) {
            let mut agg = crate::telemetry::sockdiag::SockAggregator::new(Vec::<String>::new());
            agg.observe(0, &recs);
            snap.metrics.extend(agg.metrics().into_iter().filter(|(k, _)| k.starts_with("listen.")));
        }
        for (metric, key) in &self.limits {
            // A single number only; a key absent here (a netns without it) leaves the ratio "no data".
            if let Some(v) = self.store.read(key).ok().and_then(|v| v.as_str().trim().parse::<f64>().ok()) {
                snap.set(metric.clone(), v);
            }
        }
        Ok(snap)
    }
}
