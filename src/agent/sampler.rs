//! One snapshot per tick, as cheap as the enabled symptoms allow: only the `/proc` files whose
//! metrics they (or the keys they call for) read, kept open and refreshed in place
//! (`ProcReader::refresh`: no map of ~1000 names built per tick); the limits they divide by from
//! kept-open files (`limit_files`); the per-process scan only when an enabled symptom reads its
//! metrics, every `SCAN_EVERY` samples; listening sockets dumped over `sock_diag` only when one
//! reads `listen.*`. What a snapshot holds for those symptoms is what `semantos diagnose` sees
//! (`cli::sampling::LiveSampler`), so the agent's findings are the one-shot command's. Per-socket
//! buffer signals (`sock.*`, sampled over a window by `diagnose`) are not sampled: their symptoms
//! are "no data" here.

use super::limit_files::{self, LimitFiles};
use crate::kb::Kb;
use crate::sysctl::TreeStore;
use crate::telemetry::Snapshot;
use crate::telemetry::ebpf::{Probes, netns_inode};
use crate::telemetry::proc_scan::{self, ScanCaps};
use crate::telemetry::procfs::{ProcReader, has_pid_dir};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// What the enabled symptoms read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needs {
    /// The per-process scan (`proc.*`, `inotify.{watches,instances}.*`).
    pub process_scan: bool,
    /// Listening sockets (`listen.*`).
    pub listeners: bool,
    /// Limit metrics (`sysctl.<key>`, `filenr.*`, `conntrack.*`, `neigh.*`, `inotify.limit.*`), sorted.
    pub limits: Vec<String>,
    /// The snapshot files (`SNAPSHOT_FILES` names) whose metrics are read.
    pub files: Vec<&'static str>,
    /// The metrics the symptoms' signals read (names or `*` patterns): the window's columns.
    pub signals: Vec<String>,
}

/// The snapshot file of each metric prefix (`host.*` comes with `meminfo`, which is always read).
const FILES: [(&str, &str); 10] = [
    ("loadavg.", "loadavg"),
    ("meminfo.", "meminfo"),
    ("netstat.", "net/netstat"),
    ("psi.cpu.", "pressure/cpu"),
    ("psi.io.", "pressure/io"),
    ("psi.memory.", "pressure/memory"),
    ("snmp.", "net/snmp"),
    ("sockstat.", "net/sockstat"),
    ("softnet.", "net/softnet_stat"),
    ("vmstat.", "vmstat"),
];

/// The limit families (`telemetry::limits`), read by `limit_files`.
fn is_limit(m: &str) -> bool {
    ["sysctl.", "filenr.", "conntrack.", "neigh.", "inotify.limit."].iter().any(|p| m.starts_with(p))
}

/// Asks the KB which metrics `symptoms` read: their signals, and what the keys that may be proposed
/// for them read (sizing, conditions, `binds_when` and its cited gauges, and those of their rivals),
/// since the advice is computed from the same snapshots.
pub fn needs(kb: &Kb, symptoms: &[String]) -> Needs {
    let mut signals: Vec<String> = symptoms.iter().filter_map(|s| kb.symptoms.get(s)).flat_map(|s| &s.when).flat_map(|s| std::iter::once(&s.metric).chain(&s.per)).cloned().collect();
    signals.sort();
    signals.dedup();
    let mut keys: Vec<&String> = kb.params.iter().filter(|(_, p)| p.symptoms.iter().any(|s| symptoms.contains(s))).map(|(k, _)| k).collect();
    let rivals: Vec<&String> = keys.iter().filter_map(|k| kb.param(k)).flat_map(|p| &p.binds_when).flat_map(|b| &b.rivals).collect();
    keys.extend(rivals);
    let mut metrics = signals.clone();
    for p in keys.iter().filter_map(|k| kb.param(k)) {
        metrics.extend(p.sizing.iter().map(|s| s.metric.clone()));
        metrics.extend(p.conditions.iter().filter_map(|c| c.metric.clone()));
        metrics.extend(p.binds_when.iter().flat_map(|b| std::iter::once(&b.metric).chain(&b.cite)).cloned());
    }
    let readable = |m: &str| m.strip_prefix("sysctl.").is_none_or(|k| kb.param(k).is_some_and(|p| p.no_read.is_none()));
    let process_scan = metrics.iter().any(|m| m.starts_with("proc.") || m.starts_with("inotify.watches") || m.starts_with("inotify.instances") || m.starts_with("scan."));
    let mut limits: Vec<String> = metrics.iter().filter(|m| is_limit(m) && readable(m)).cloned().collect();
    if process_scan {
        // The scan compares each process's mappings with the limit in force.
        limits.push("sysctl.vm.max_map_count".into());
    }
    let listeners = metrics.iter().any(|m| m.starts_with("listen."));
    if listeners {
        // `listen.full.at_somaxconn` compares each full listener's backlog with somaxconn in force.
        limits.push("sysctl.net.core.somaxconn".into());
    }
    limits.sort();
    limits.dedup();
    let mut files: Vec<&'static str> = FILES.iter().filter(|(pre, _)| metrics.iter().any(|m| m.starts_with(pre))).map(|(_, f)| *f).collect();
    files.dedup();
    Needs { process_scan, listeners, limits, files, signals }
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

/// Reads one sample at a time into the snapshot it keeps.
pub struct Sampler {
    reader: ProcReader,
    /// The `/proc` files' metrics, refreshed in place.
    full: Snapshot,
    /// What the sampler adds (limits, scan, listeners, eBPF): it wins over `full`.
    extra: Snapshot,
    limits: LimitFiles,
    diag: Option<crate::telemetry::sockdiag::SockDiag>,
    scan: Option<Scan>,
    /// The eBPF probes and the network namespace (inode) whose counters are this agent's.
    probes: Option<(Probes, Option<u32>)>,
}

impl Sampler {
    /// Opens the files once, in the network namespace the calling thread is in.
    pub fn open(proc_root: &Path, store: TreeStore, needs: &Needs, ebpf: bool) -> Result<Sampler> {
        let reader = ProcReader::with_roots(proc_root, "/sys").with_files(&needs.files)?.without_limits().without_process_scan().keep_open()?;
        // A root without process directories (a fixture) has nothing to scan: no `scan.*` metrics
        // rather than zeros, as `ProcReader` does.
        let scan = (needs.process_scan && has_pid_dir(proc_root)).then(|| Scan { caps: ScanCaps::default(), left: 0, last: Vec::new() });
        // No sock_diag (a kernel without it, a seccomp profile): listener symptoms say "no data".
        let diag = if needs.listeners { crate::telemetry::sockdiag::SockDiag::open().ok() } else { None };
        // The kernel's files stay open; a sandbox's (a test's directory) are re-opened each time.
        let keep = store.root().starts_with("/proc");
        let limits = LimitFiles::open(limit_files::sources(&needs.limits, proc_root, store.root()), keep);
        // The probes see every namespace; the agent counts the one it samples (it entered its
        // `netns:` before opening). What cannot attach is said once, and its metrics stay absent.
        let probes = ebpf.then(|| {
            let p = Probes::start(Path::new("/sys"));
            for note in p.notes() {
                tracing::warn!("{note}");
            }
            (p, netns_inode(proc_root))
        });
        Ok(Sampler { reader, full: Snapshot::default(), extra: Snapshot::default(), limits, diag, scan, probes })
    }

    /// Reads one sample stamped `t_ms`.
    pub fn sample(&mut self, t_ms: u64) -> Result<()> {
        self.reader.refresh(&mut self.full, t_ms)?;
        self.extra.timestamp_ms = t_ms;
        self.limits.read_into(&mut self.extra.metrics);
        if let Some(scan) = self.scan.as_mut() {
            if scan.left == 0 {
                let max_map_count = self.extra.metrics.get("sysctl.vm.max_map_count").map(|v| *v as u64);
                scan.last.clear();
                proc_scan::scan(self.reader.proc_root(), &scan.caps, max_map_count)?.metrics(&mut scan.last);
                scan.left = SCAN_EVERY;
                self.extra.metrics.retain(|k, _| !is_scan(k));
                for (k, v) in &scan.last {
                    self.extra.set(k.clone(), *v);
                }
            }
            scan.left -= 1;
        }
        if let Some(d) = self.diag.as_mut() {
            self.extra.metrics.retain(|k, _| !k.starts_with("listen."));
            if let Ok(recs) = d.dump(crate::telemetry::sockdiag::States::LISTEN) {
                // With somaxconn in force (a limit file, read above), as `diagnose` has it:
                // `listen.full.at_somaxconn` is the evidence that somaxconn is the limit that binds.
                let somaxconn = self.extra.metrics.get("sysctl.net.core.somaxconn").map(|v| *v as u64);
                let caps = crate::telemetry::sockdiag::BufferCaps { somaxconn, ..Default::default() };
                let mut agg = crate::telemetry::sockdiag::SockAggregator::new(Vec::<String>::new()).with_caps(caps);
                agg.observe(0, &recs);
                self.extra.metrics.extend(agg.metrics().into_iter().filter(|(k, _)| k.starts_with("listen.")));
            }
        }
        if let Some((probes, netns)) = self.probes.as_mut() {
            probes.read_into(&mut self.extra, *netns);
        }
        Ok(())
    }

    /// The last sample's metrics: what the sampler adds first (it wins), then the `/proc` files'.
    pub fn maps(&self) -> [&BTreeMap<String, f64>; 2] {
        [&self.extra.metrics, &self.full.metrics]
    }

    /// The last sample's host facts.
    pub fn host(&self) -> &crate::telemetry::HostFacts {
        &self.full.host
    }

    /// The last sample as one snapshot (a copy: for the advice, once per window).
    pub fn snapshot(&self) -> Snapshot {
        let mut s = self.full.clone();
        for (k, v) in &self.extra.metrics {
            s.set(k.clone(), *v);
        }
        s
    }
}

/// Whether `k` is one of the per-process scan's metrics.
fn is_scan(k: &str) -> bool {
    k.starts_with("proc.") || k.starts_with("scan.") || k.starts_with("inotify.watches") || k.starts_with("inotify.instances")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_enabled_symptoms_decide_what_is_read() {
        let kb = Kb::embedded().unwrap();
        let n = needs(&kb, &["accept_queue_full".into()]);
        assert!(n.listeners && !n.process_scan, "{n:?}");
        assert!(n.limits.contains(&"sysctl.net.core.somaxconn".to_string()), "the listeners' binding limit: {n:?}");
        // Its signals are the listeners' queues: no /proc file beyond meminfo, which is always read.
        assert!(n.files.is_empty() && n.signals.iter().all(|m| m.starts_with("listen.")), "{n:?}");
        let n = needs(&kb, &["timewait_port_pressure".into(), "inotify_watches_near_limit".into()]);
        assert!(!n.listeners && n.process_scan, "{n:?}");
        assert!(n.limits.contains(&"sysctl.net.ipv4.tcp_max_tw_buckets".to_string()) && n.limits.contains(&"sysctl.vm.max_map_count".to_string()), "{n:?}");
        assert!(n.limits.iter().all(|m| is_limit(m)) && !n.limits.contains(&"sysctl.fs.file-max".to_string()), "{n:?}");
        assert_eq!(needs(&kb, &[]), Needs::default());
        // Every symptom: every file a symptom names is read.
        let all: Vec<String> = kb.symptoms.keys().cloned().collect();
        let n = needs(&kb, &all);
        for m in &n.signals {
            if let Some((_, f)) = FILES.iter().find(|(pre, _)| m.starts_with(pre)) {
                assert!(n.files.contains(f), "{m} needs {f}: {n:?}");
            }
        }
    }

    #[test]
    fn the_agent_read_every_snapshot_file_and_limit_for_a_symptom_that_reads_two() {
        let kb = Kb::embedded().unwrap();
        let n = needs(&kb, &["timewait_port_pressure".into()]);
        let mut s = Sampler::open(Path::new("/proc"), TreeStore::kernel(), &n, false).unwrap();
        s.sample(0).unwrap();
        let names: Vec<&String> = s.maps().iter().flat_map(|m| m.keys()).collect();
        // What the symptom reads is there; files and limits it does not read are not.
        assert!(names.iter().any(|k| k.starts_with("sockstat.")) && names.iter().any(|k| *k == "sysctl.net.ipv4.tcp_max_tw_buckets"), "{names:?}");
        assert!(!names.iter().any(|k| k.starts_with("vmstat.") || k.starts_with("psi.") || k.starts_with("softnet.") || k.starts_with("filenr.") || *k == "sysctl.fs.file-max"), "{names:?}");
    }

    #[test]
    fn the_process_scan_runs_once_per_scan_every_samples_and_its_figures_stand_between() {
        let kb = Kb::embedded().unwrap();
        let n = needs(&kb, &["inotify_watches_near_limit".into()]);
        let store = TreeStore::kernel();
        let mut s = Sampler::open(Path::new("/proc"), store, &n, false).unwrap();
        let mut scanned = Vec::new();
        for t in 0..(SCAN_EVERY as u64 + 1) {
            s.sample(t).unwrap();
            assert!(s.maps()[0].keys().any(|k| k.starts_with("scan.")), "sample {t} lacks the scan's figures");
            assert!(s.snapshot().metrics.keys().any(|k| k.starts_with("scan.")));
            scanned.push(s.scan.as_ref().unwrap().left == SCAN_EVERY - 1);
        }
        assert_eq!(scanned.iter().filter(|x| **x).count(), 2, "a scan at sample 0 and at sample {SCAN_EVERY}: {scanned:?}");
        assert!(scanned[0] && scanned[SCAN_EVERY as usize]);
    }
}
