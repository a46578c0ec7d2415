//! One snapshot per tick, as cheap as the enabled symptoms allow: the `/proc` files stay open
//! (re-read with `pread`), the per-process scan runs only when an enabled symptom reads its
//! metrics, listening sockets are dumped over `sock_diag` only when one reads `listen.*`, and only
//! the `sysctl.<key>` limits the enabled symptoms divide by are read. What a snapshot holds
//! otherwise is what `semantos diagnose` sees (`cli::sampling::LiveSampler`), so the agent's
//! findings are the one-shot command's. Per-socket buffer signals (`sock.*`, sampled over a
//! window by `diagnose`) are not sampled: their symptoms are "no data" here.

use crate::kb::Kb;
use crate::sysctl::{SysctlKey, SysctlStore, TreeStore};
use crate::telemetry::Snapshot;
use crate::telemetry::ebpf::{Probes, netns_inode};
use crate::telemetry::proc_scan::{self, ScanCaps};
use crate::telemetry::procfs::{ProcReader, has_pid_dir};
use anyhow::Result;
use std::path::Path;

/// What the enabled symptoms read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needs {
    /// The per-process scan (`proc.*`, `inotify.{watches,instances}.*`).
    pub process_scan: bool,
    /// Listening sockets (`listen.*`).
    pub listeners: bool,
    /// `sysctl.<key>` metrics and their keys.
    pub limits: Vec<(String, String)>,
}

/// Asks the KB which metrics `symptoms` read.
pub fn needs(kb: &Kb, symptoms: &[String]) -> Needs {
    let metrics: Vec<&String> = symptoms.iter().filter_map(|s| kb.symptoms.get(s)).flat_map(|s| &s.when).flat_map(|s| std::iter::once(&s.metric).chain(&s.per)).collect();
    let readable = |k: &str| kb.param(k).is_some_and(|p| p.no_read.is_none());
    let mut limits: Vec<(String, String)> = metrics.iter().filter_map(|m| m.strip_prefix("sysctl.").filter(|k| readable(k)).map(|k| (m.to_string(), k.to_string()))).collect();
    limits.sort();
    limits.dedup();
    Needs {
        process_scan: metrics.iter().any(|m| m.starts_with("proc.") || m.starts_with("inotify.watches") || m.starts_with("inotify.instances") || m.starts_with("scan.")),
        listeners: metrics.iter().any(|m| m.starts_with("listen.")),
        limits,
    }
}

/// Samples between two per-process scans. The scan (`readlink` of every `fd/*`, `maps` of the
/// largest processes) costs 15–35 ms on a busy host, a hundred times a `/proc` snapshot, while
/// what it measures (descriptors, mappings, inotify watches held) grows over minutes: at 1 Hz a
/// scan every sample was nearly all of the agent's CPU. Between scans the last one's figures
/// stand in the snapshot, so a symptom held over the window still sees them in every sample.
pub const SCAN_EVERY: u32 = 30;

/// The per-process scan on its own cadence, and its last figures.
struct Scan {
    caps: ScanCaps,
    left: u32,
    last: Vec<(String, f64)>,
}

/// Reads one snapshot at a time.
pub struct Sampler {
    reader: ProcReader,
    diag: Option<crate::telemetry::sockdiag::SockDiag>,
    store: TreeStore,
    limits: Vec<(String, SysctlKey)>,
    scan: Option<Scan>,
    /// The eBPF probes and the network namespace (inode) whose counters are this agent's.
    probes: Option<(Probes, Option<u32>)>,
}

impl Sampler {
    /// Opens the files once, in the network namespace the calling thread is in.
    pub fn open(proc_root: &Path, store: TreeStore, needs: &Needs, ebpf: bool) -> Result<Sampler> {
        let reader = ProcReader::with_roots(proc_root, "/sys").without_process_scan().keep_open()?;
        // A root without process directories (a fixture) has nothing to scan: no `scan.*` metrics
        // rather than zeros, as `ProcReader` does.
        let scan = (needs.process_scan && has_pid_dir(proc_root)).then(|| Scan { caps: ScanCaps::default(), left: 0, last: Vec::new() });
        // No sock_diag (a kernel without it, a seccomp profile): listener symptoms say "no data".
        let diag = if needs.listeners { crate::telemetry::sockdiag::SockDiag::open().ok() } else { None };
        let limits = needs.limits.iter().filter_map(|(m, k)| Some((m.clone(), SysctlKey::parse(k).ok()?))).collect();
        // The probes see every namespace; the agent counts the one it samples (it entered its
        // `netns:` before opening). What cannot attach is said once, and its metrics stay absent.
        let probes = ebpf.then(|| {
            let p = Probes::start(Path::new("/sys"));
            for note in p.notes() {
                tracing::warn!("{note}");
            }
            (p, netns_inode(proc_root))
        });
        Ok(Sampler { reader, diag, store, limits, scan, probes })
    }

    /// One snapshot stamped `t_ms`.
    pub fn sample(&mut self, t_ms: u64) -> Result<Snapshot> {
        let mut snap = self.reader.snapshot(t_ms)?;
        if let Some(scan) = self.scan.as_mut() {
            if scan.left == 0 {
                let max_map_count = snap.metrics.get("sysctl.vm.max_map_count").map(|v| *v as u64);
                scan.last.clear();
                proc_scan::scan(self.reader.proc_root(), &scan.caps, max_map_count)?.metrics(&mut scan.last);
                scan.left = SCAN_EVERY;
            }
            scan.left -= 1;
            for (k, v) in &scan.last {
                snap.set(k.clone(), *v);
            }
        }
        if let Some(recs) = self.diag.as_mut().and_then(|d| d.dump(crate::telemetry::sockdiag::States::LISTEN).ok()) {
            let mut agg = crate::telemetry::sockdiag::SockAggregator::new(Vec::<String>::new());
            agg.observe(0, &recs);
            snap.metrics.extend(agg.metrics().into_iter().filter(|(k, _)| k.starts_with("listen.")));
        }
        if let Some((probes, netns)) = self.probes.as_mut() {
            probes.read_into(&mut snap, *netns);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_enabled_symptoms_decide_what_is_read() {
        let kb = Kb::embedded().unwrap();
        let n = needs(&kb, &["accept_queue_full".into()]);
        assert!(n.listeners && !n.process_scan && n.limits.is_empty(), "{n:?}");
        let n = needs(&kb, &["timewait_port_pressure".into(), "inotify_watches_near_limit".into()]);
        assert!(!n.listeners && n.process_scan, "{n:?}");
        assert_eq!(n.limits, vec![("sysctl.net.ipv4.tcp_max_tw_buckets".to_string(), "net.ipv4.tcp_max_tw_buckets".to_string())]);
        assert_eq!(needs(&kb, &[]), Needs::default());
    }

    #[test]
    fn the_process_scan_runs_once_per_scan_every_samples_and_its_figures_stand_between() {
        let kb = Kb::embedded().unwrap();
        let n = needs(&kb, &["inotify_watches_near_limit".into()]);
        let store = TreeStore::kernel();
        let mut s = Sampler::open(Path::new("/proc"), store, &n, false).unwrap();
        let mut scanned = Vec::new();
        for t in 0..(SCAN_EVERY as u64 + 1) {
            let snap = s.sample(t).unwrap();
            assert!(snap.metrics.keys().any(|k| k.starts_with("scan.")), "sample {t} lacks the scan's figures");
            scanned.push(s.scan.as_ref().unwrap().left == SCAN_EVERY - 1);
        }
        assert_eq!(scanned.iter().filter(|x| **x).count(), 2, "a scan at sample 0 and at sample {SCAN_EVERY}: {scanned:?}");
        assert!(scanned[0] && scanned[SCAN_EVERY as usize]);
    }
}
