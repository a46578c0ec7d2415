//! One sample per tick, as cheap as the enabled symptoms allow, each metric read at the cadence of
//! what it is (`Needs`): the `/proc` files and measured limits of their signals each sample, kept
//! open and refreshed in place (`ProcReader::refresh`: no map of ~1000 names built per tick, and
//! no allocation); the settings the signals divide by (kept-open files, `limit_files`) at each
//! window's end; what only the advice reads at a window's end that may advise (`snapshot`); the
//! per-process scan only when an enabled symptom reads its metrics, every `scan_every` of sample
//! time; listening sockets dumped over `sock_diag` only when one reads `listen.*`. What a snapshot holds for those symptoms is what `semantos diagnose` sees
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

/// The `/proc` files and limit metrics one read takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reads {
    /// The snapshot files (`SNAPSHOT_FILES` names).
    pub files: Vec<&'static str>,
    /// Limit metrics (`sysctl.<key>`, `filenr.*`, `conntrack.*`, `neigh.*`, `inotify.limit.*`), sorted.
    pub limits: Vec<String>,
}

/// What the enabled symptoms read, by when it is read (docs/agent.md, "Cost"):
///
/// * `each_sample`: the files and measured limit families (`filenr.*`, `conntrack.*`, `neigh.*`)
///   of the symptoms' signals, the window's columns: 1 Hz sampling means these, judged per
///   sub-interval by the window rule;
/// * `window_end`: the settings the signals divide by (`sysctl.*`, `inotify.limit.*`), read once
///   at each window's end and standing for all of its samples (`Compact::hold`), so a limit
///   changed mid-window is the one in force for that window's judgement;
/// * `advise`: what only the advice reads (sizing, conditions, `binds_when` gauges, their rivals),
///   read at a window's end only when it may advise (a symptom open or on its way).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needs {
    /// The per-process scan (`proc.*`, `inotify.{watches,instances}.*`), on its own cadence.
    pub process_scan: bool,
    /// Listening sockets (`listen.*`) dumped over `sock_diag`.
    pub listeners: bool,
    /// Whether a signal reads them (each sample); else only the advice does (a window end that may advise).
    pub listeners_each_sample: bool,
    /// Read every sample.
    pub each_sample: Reads,
    /// Read at every window's end (settings only: no files).
    pub window_end: Reads,
    /// Read at a window's end when it may advise.
    pub advise: Reads,
    /// The metrics the symptoms' signals read (names or `*` patterns): the window's columns.
    pub signals: Vec<String>,
}

impl Needs {
    /// Every file and limit, whenever read.
    pub fn all(&self) -> Reads {
        let mut r = Reads::default();
        for x in [&self.each_sample, &self.window_end, &self.advise] {
            r.files.extend(&x.files);
            r.limits.extend(x.limits.iter().cloned());
        }
        r.files.sort();
        r.files.dedup();
        r.limits.sort();
        r.limits.dedup();
        r
    }
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

/// Whether limit metric `m` is a setting (a value someone writes, not a measurement): read once
/// a window, at its end.
pub fn is_setting(m: &str) -> bool {
    m.starts_with("sysctl.") || m.starts_with("inotify.limit.")
}

/// The files and limits `metrics` read.
fn reads(metrics: &[String], readable: impl Fn(&str) -> bool) -> Reads {
    let mut limits: Vec<String> = metrics.iter().filter(|m| is_limit(m) && readable(m)).cloned().collect();
    limits.sort();
    limits.dedup();
    let files: Vec<&'static str> = FILES.iter().filter(|(pre, _)| metrics.iter().any(|m| m.starts_with(pre))).map(|(_, f)| *f).collect();
    Reads { files, limits }
}

/// Asks the KB which metrics `symptoms` read: their signals, and what the keys that may be proposed
/// for them read (sizing, conditions, `binds_when` and its cited gauges, and those of their rivals),
/// since the advice is computed from the same snapshots; each by when it is read (`Needs`).
pub fn needs(kb: &Kb, symptoms: &[String]) -> Needs {
    let mut signals: Vec<String> = symptoms.iter().filter_map(|s| kb.symptoms.get(s)).flat_map(|s| &s.when).flat_map(|s| std::iter::once(&s.metric).chain(&s.per)).cloned().collect();
    signals.sort();
    signals.dedup();
    let mut keys: Vec<&String> = kb.params.iter().filter(|(_, p)| p.symptoms.iter().any(|s| symptoms.contains(s))).map(|(k, _)| k).collect();
    let rivals: Vec<&String> = keys.iter().filter_map(|k| kb.param(k)).flat_map(|p| &p.binds_when).flat_map(|b| &b.rivals).collect();
    keys.extend(rivals);
    let mut advised: Vec<String> = Vec::new();
    for p in keys.iter().filter_map(|k| kb.param(k)) {
        advised.extend(p.sizing.iter().map(|s| s.metric.clone()));
        advised.extend(p.conditions.iter().filter_map(|c| c.metric.clone()));
        advised.extend(p.binds_when.iter().flat_map(|b| std::iter::once(&b.metric).chain(&b.cite)).cloned());
    }
    let readable = |m: &str| m.strip_prefix("sysctl.").is_none_or(|k| kb.param(k).is_some_and(|p| p.no_read.is_none()));
    let all: Vec<String> = signals.iter().chain(&advised).cloned().collect();
    let process_scan = all.iter().any(|m| is_scan(m));
    let listeners = all.iter().any(|m| m.starts_with("listen."));
    let mut signal_reads = reads(&signals, readable);
    let mut settings: Vec<String> = Vec::new();
    signal_reads.limits.retain(|m| !is_setting(m) || {
        settings.push(m.clone());
        false
    });
    if process_scan {
        // The scan compares each process's mappings with the limit in force.
        settings.push("sysctl.vm.max_map_count".into());
    }
    if listeners {
        // `listen.full.at_somaxconn` compares each full listener's backlog with somaxconn in force.
        settings.push("sysctl.net.core.somaxconn".into());
    }
    settings.sort();
    settings.dedup();
    let mut advise = reads(&advised, readable);
    // Meminfo is always read (the host facts); what a sample or a window end reads already is not read again.
    advise.files.retain(|f| *f != "meminfo" && !signal_reads.files.contains(f));
    advise.limits.retain(|m| !signal_reads.limits.contains(m) && !settings.contains(m));
    let listeners_each_sample = signals.iter().any(|m| m.starts_with("listen."));
    Needs { process_scan, listeners, listeners_each_sample, each_sample: signal_reads, window_end: Reads { files: Vec::new(), limits: settings }, advise, signals }
}

/// The default time between two per-process scans (`scan_every:`). The scan (`readlink` of every
/// `fd/*`, `maps` of the largest processes) costs 2–35 ms, ten to a hundred times a sample, while
/// what it measures (descriptors, mappings, inotify watches held) grows over minutes: every 30 s it
/// was a third of the agent's CPU; every 5 min it is about 0.5 ms a minute. Between scans the last
/// one's figures stand in every sample, so a symptom held over the window still sees them.
pub const SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// The per-process scan on its own cadence, and its last figures.
struct Scan {
    caps: ScanCaps,
    every_ms: u64,
    /// When the next scan is due (sample time, ms); `None`: at the next sample.
    next_ms: Option<u64>,
    last: Vec<(String, f64)>,
}

/// Reads one sample at a time into the snapshot it keeps.
pub struct Sampler {
    reader: ProcReader,
    /// The `/proc` files' metrics, refreshed in place.
    full: Snapshot,
    /// What the sampler adds (limits, scan, listeners, eBPF): it wins over `full`.
    extra: Snapshot,
    /// The measured limits the signals read, each sample.
    limits: LimitFiles,
    /// The settings the signals read, at each window's end.
    settings: LimitFiles,
    /// What only the advice reads (files, limits), at a window's end that may advise.
    advise: Option<ProcReader>,
    advise_limits: LimitFiles,
    /// The advice's files, refreshed in place (a reader's own snapshot: `refresh` drops names it did not write).
    advised: Snapshot,
    /// The advice's limits.
    advised_limits: BTreeMap<String, f64>,
    diag: Option<crate::telemetry::sockdiag::SockDiag>,
    /// Whether the listeners are dumped each sample (a signal reads them) or only for the advice.
    listen_each: bool,
    scan: Option<Scan>,
    /// The eBPF probes and the network namespace (inode) whose counters are this agent's.
    probes: Option<(Probes, Option<u32>)>,
}

impl Sampler {
    /// Opens the files once, in the network namespace the calling thread is in; the per-process
    /// scan runs every `scan_every` (sample time).
    pub fn open(proc_root: &Path, store: TreeStore, needs: &Needs, ebpf: bool, scan_every: std::time::Duration) -> Result<Sampler> {
        let reader = ProcReader::with_roots(proc_root, "/sys").with_files(&needs.each_sample.files)?.without_limits().without_process_scan().keep_open()?;
        let advise = if needs.advise.files.is_empty() { None } else { Some(ProcReader::with_roots(proc_root, "/sys").with_files(&needs.advise.files)?.without_limits().without_process_scan().keep_open()?) };
        // A root without process directories (a fixture) has nothing to scan: no `scan.*` metrics
        // rather than zeros, as `ProcReader` does.
        let every_ms = scan_every.as_millis() as u64;
        let scan = (needs.process_scan && has_pid_dir(proc_root)).then(|| Scan { caps: ScanCaps::default(), every_ms, next_ms: None, last: Vec::new() });
        // No sock_diag (a kernel without it, a seccomp profile): listener symptoms say "no data".
        let diag = if needs.listeners { crate::telemetry::sockdiag::SockDiag::open().ok() } else { None };
        // The kernel's files stay open; a sandbox's (a test's directory) are re-opened each time.
        let keep = store.root().starts_with("/proc");
        let open = |r: &Reads| LimitFiles::open(limit_files::sources(&r.limits, proc_root, store.root()), keep);
        let (limits, mut settings, advise_limits) = (open(&needs.each_sample), open(&needs.window_end), open(&needs.advise));
        // The probes see every namespace; the agent counts the one it samples (it entered its
        // `netns:` before opening). What cannot attach is said once, and its metrics stay absent.
        let probes = ebpf.then(|| {
            let p = Probes::start(Path::new("/sys"));
            for note in p.notes() {
                tracing::warn!("{note}");
            }
            (p, netns_inode(proc_root))
        });
        let mut extra = Snapshot::default();
        // The first window's samples need the settings before its end.
        settings.read_into(&mut extra.metrics);
        Ok(Sampler { reader, full: Snapshot::default(), extra, limits, settings, advise, advise_limits, advised: Snapshot::default(), advised_limits: BTreeMap::new(), diag, listen_each: needs.listeners_each_sample, scan, probes })
    }

    /// Reads one sample stamped `t_ms`; `window_end`: the sample that ends a window, which first
    /// re-reads the settings (so its derived figures, such as the listeners' binding evidence, see
    /// the values in force, and `Compact::hold` makes them stand for the whole window).
    pub fn sample(&mut self, t_ms: u64, window_end: bool) -> Result<()> {
        if window_end {
            self.settings.read_into(&mut self.extra.metrics);
        }
        self.reader.refresh(&mut self.full, t_ms)?;
        self.extra.timestamp_ms = t_ms;
        self.limits.read_into(&mut self.extra.metrics);
        if let Some(scan) = self.scan.as_mut()
            && scan.next_ms.is_none_or(|n| t_ms >= n)
        {
            let max_map_count = self.extra.metrics.get("sysctl.vm.max_map_count").map(|v| *v as u64);
            scan.last.clear();
            proc_scan::scan(self.reader.proc_root(), &scan.caps, max_map_count)?.metrics(&mut scan.last);
            scan.next_ms = Some(t_ms.saturating_add(scan.every_ms));
            self.extra.metrics.retain(|k, _| !is_scan(k));
            for (k, v) in &scan.last {
                self.extra.set(k.clone(), *v);
            }
        }
        if self.listen_each {
            self.listen();
        }
        if let Some((probes, netns)) = self.probes.as_mut() {
            probes.read_into(&mut self.extra, *netns);
        }
        Ok(())
    }

    /// Dumps the listening sockets into `extra` (`listen.*`).
    fn listen(&mut self) {
        let Some(d) = self.diag.as_mut() else { return };
        self.extra.metrics.retain(|k, _| !k.starts_with("listen."));
        if let Ok(recs) = d.dump(crate::telemetry::sockdiag::States::LISTEN) {
            // With somaxconn in force (a setting, read at the window's end), as `diagnose` has
            // it: `listen.full.at_somaxconn` is the evidence that somaxconn is the limit that binds.
            let somaxconn = self.extra.metrics.get("sysctl.net.core.somaxconn").map(|v| *v as u64);
            let caps = crate::telemetry::sockdiag::BufferCaps { somaxconn, ..Default::default() };
            let mut agg = crate::telemetry::sockdiag::SockAggregator::new(Vec::<String>::new()).with_caps(caps);
            agg.observe(0, &recs);
            self.extra.metrics.extend(agg.metrics().into_iter().filter(|(k, _)| k.starts_with("listen.")));
        }
    }

    /// The last sample's metrics: what the sampler adds first (it wins), then the `/proc` files'.
    pub fn maps(&self) -> [&BTreeMap<String, f64>; 2] {
        [&self.extra.metrics, &self.full.metrics]
    }

    /// The last sample's host facts.
    pub fn host(&self) -> &crate::telemetry::HostFacts {
        &self.full.host
    }

    /// The last sample as one snapshot, with what only the advice reads read now (a copy: for
    /// the advice, at a window's end that may advise).
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        if let Some(r) = &self.advise {
            r.refresh(&mut self.advised, self.full.timestamp_ms)?;
        }
        self.advise_limits.read_into(&mut self.advised_limits);
        if !self.listen_each {
            // Only the advice reads them (`binds_when` evidence): dumped now, not each sample.
            self.listen();
        }
        let mut s = self.full.clone();
        for (k, v) in self.advised.metrics.iter().chain(&self.advised_limits).chain(&self.extra.metrics) {
            s.set(k.clone(), *v);
        }
        Ok(s)
    }
}

/// Whether `k` is one of the per-process scan's metrics.
pub fn is_scan(k: &str) -> bool {
    k.starts_with("proc.") || k.starts_with("scan.") || k.starts_with("inotify.watches") || k.starts_with("inotify.instances")
}

#[cfg(test)]
mod tests;
