//! Live telemetry from inside the bench's namespaces while a workload runs:
//! the product's own `ProcReader` for the `/proc` counters and
//! `telemetry::sockdiag` for per-socket TCP state, merged into the two
//! snapshots the diagnosis takes.
//!
//! `/proc/net/*` shows the namespace of the *thread-group leader*
//! (`/proc/self` is the process), so a reader that simply opened
//! `/proc/net/netstat` from a thread inside a namespace would still see the
//! host. Each namespace therefore gets a small directory laid out like
//! `/proc` whose `net` links to `/proc/thread-self/net` and whose other
//! entries link to the real `/proc`; the reader opens it (`keep_open`) on a
//! thread inside the namespace, and the open files keep that namespace.
//!
//! The two namespaces stand for the two ends of one service that the
//! operator tunes together, as the reference runs did: their per-namespace
//! counters (`netstat.*`, `snmp.*`, and sockstat's per-namespace `inuse` and
//! `tw`) are summed, machine-wide files (meminfo, vmstat, PSI, softnet) are
//! taken once, and one socket aggregator sees the sockets of both.
//!
//! Limits that bind per process or per user (inotify watches, memory
//! mappings, open files) are held only while the workload runs: a scan
//! before the run finds nothing yet, one after it nothing any more. So a
//! probe that reads the real `/proc` (the stages that run on the host or in a
//! user namespace, `NsProbe::host`) also runs the bounded process scan of
//! `telemetry::proc_scan` while the workload runs (at most every
//! `SCAN_EVERY`), and the snapshot after the run carries, for each such
//! limit, the scan that found its holder nearest it (`ScanPeak`). A network
//! namespace's view has no process directories and is not scanned.
//!
//! A workload in a throwaway user namespace runs under that namespace's own
//! `/proc/sys/user/*` limits, which a reader in the initial namespace does
//! not see. The stage sets them from its sandbox tree (the file the apply
//! writes), so the probe reads them there (`with_namespace_limits`) and
//! states the limit in force as the namespace itself would read it.

use super::netns::{Netns, run_in};
use crate::sysctl::{SysctlKey, SysctlStore, TreeStore};
use crate::telemetry::Snapshot;
use crate::telemetry::limits::inotify_limit;
use crate::telemetry::proc_scan::{ScanCaps, scan};
use crate::telemetry::procfs::ProcReader;
use crate::telemetry::sockdiag::{SockAggregator, SockDiag, States, available_congestion_control};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Entries of the per-namespace `/proc` view that link to the real `/proc`.
const MACHINE_WIDE: [&str; 5] = ["meminfo", "vmstat", "loadavg", "pressure", "sys"];

/// Shortest time between two process scans while a workload runs: a scan lists every process's
/// `fd/` and reads the `maps` of the largest, so it does not follow the socket cadence.
const SCAN_EVERY: Duration = Duration::from_millis(100);

/// The readers of one namespace.
pub struct NsProbe {
    /// Namespace name (`host` for the bench's own).
    pub name: String,
    reader: ProcReader,
    diag: Mutex<SockDiag>,
    view: PathBuf,
    /// The proc root whose processes are scanned while the workload runs (`None`: a view without them).
    scan_root: Option<PathBuf>,
    /// The workload's user-namespace limits: the sandbox tree and (KB key, the namespace's `/proc/sys` file).
    ns_limits: Option<(PathBuf, Vec<(String, String)>)>,
}

impl Drop for NsProbe {
    fn drop(&mut self) {
        if !self.view.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.view);
        }
    }
}

/// Builds the `/proc` view at `dir`.
fn make_view(dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in MACHINE_WIDE {
        std::os::unix::fs::symlink(Path::new("/proc").join(name), dir.join(name)).with_context(|| format!("linking {}/{name}", dir.display()))?;
    }
    std::os::unix::fs::symlink("/proc/thread-self/net", dir.join("net")).with_context(|| format!("linking {}/net", dir.display()))?;
    Ok(())
}

impl NsProbe {
    /// Opens the readers of `ns` (the calling thread's own namespace when `None`); `work` holds the `/proc` view.
    pub fn open(ns: Option<&Netns>, work: &Path) -> Result<NsProbe> {
        let name = ns.map(|n| n.name().to_string()).unwrap_or_else(|| "host".into());
        let view = work.join(format!("procview-{name}"));
        make_view(&view)?;
        let (reader, diag) = run_in(ns, || {
            let reader = ProcReader::with_roots(&view, "/sys").keep_open().with_context(|| format!("netns {name}: opening /proc"))?;
            let diag = SockDiag::open().with_context(|| format!("netns {name}: opening sock_diag"))?;
            Ok((reader, diag))
        })?;
        Ok(NsProbe { name, reader, diag: Mutex::new(diag), view, scan_root: None, ns_limits: None })
    }

    /// The readers a user's `semantos diagnose` on the host has: the real `/proc` (every process
    /// directory included, which per-process and per-user limits need) and the bench's own network namespace.
    pub fn host() -> Result<NsProbe> {
        let reader = ProcReader::new().keep_open().context("host: opening /proc")?;
        let diag = SockDiag::open().context("host: opening sock_diag")?;
        Ok(NsProbe { name: "host".into(), reader, diag: Mutex::new(diag), view: PathBuf::new(), scan_root: Some("/proc".into()), ns_limits: None })
    }

    /// Reads the limits of the workload's user namespace from the sandbox tree at `tree`, where the
    /// stage keeps them: each `(KB key, file)` becomes `sysctl.<file with / as .>`, as a reader inside
    /// the namespace sees `/proc/sys/<file>`, and the inotify limits in force are recomputed.
    pub fn with_namespace_limits(mut self, tree: &Path, files: &[(&str, &str)]) -> NsProbe {
        self.ns_limits = Some((tree.to_path_buf(), files.iter().map(|(k, f)| (k.to_string(), f.to_string())).collect()));
        self
    }

    /// One snapshot now, with the namespace's limits when it has its own.
    fn snapshot(&self) -> Result<Snapshot> {
        let mut snap = self.reader.snapshot(unix_ms()).with_context(|| format!("netns {}: reading /proc", self.name))?;
        let Some((tree, files)) = &self.ns_limits else { return Ok(snap) };
        let store = TreeStore::sandbox(tree);
        for (key, file) in files {
            let v = store.read(&SysctlKey::parse(key)?).with_context(|| format!("reading {key} from the user namespace's limits at {}", tree.display()))?;
            let n: f64 = v.as_str().trim().parse().with_context(|| format!("{key} in {} holds {:?}, not one number", tree.display(), v.as_str()))?;
            snap.set(format!("sysctl.{}", file.replace('/', ".")), n);
        }
        for (limit, initial, own) in [
            ("inotify.limit.watches", "sysctl.fs.inotify.max_user_watches", "sysctl.user.max_inotify_watches"),
            ("inotify.limit.instances", "sysctl.fs.inotify.max_user_instances", "sysctl.user.max_inotify_instances"),
        ] {
            if let Some(l) = inotify_limit(snap.get(initial), snap.get(own)) {
                snap.set(limit, l);
            }
        }
        Ok(snap)
    }
}

/// The process-scan gauges whose holder comes and goes with the workload, each group read together
/// (count, pid, uid of one holder): (prefix, count, the limit it is a share of when per holder).
const PEAK_GROUPS: [(&str, &str, Option<&str>); 4] = [
    ("proc.fd.top.", "proc.fd.top.open", Some("proc.fd.top.soft_limit")),
    ("proc.maps.top.", "proc.maps.top.count", None),
    ("inotify.watches.top.", "inotify.watches.top.count", None),
    ("inotify.instances.top.", "inotify.instances.top.count", None),
];

/// The worst moment of the in-run process scans: per `PEAK_GROUPS` entry the whole group from the
/// scan whose holder was nearest its limit, and every other scan gauge at its largest.
#[derive(Debug, Default)]
struct ScanPeak {
    groups: BTreeMap<&'static str, (f64, Vec<(String, f64)>)>,
    rest: BTreeMap<String, f64>,
    scans: usize,
}

impl ScanPeak {
    fn observe(&mut self, metrics: &[(String, f64)]) {
        self.scans += 1;
        let get = |n: &str| metrics.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        for (prefix, count, per) in PEAK_GROUPS {
            let Some(n) = get(count) else { continue };
            let level = match per.map(get) {
                Some(Some(d)) if d > 0.0 => n / d,
                Some(_) => 0.0,
                None => n,
            };
            if self.groups.get(prefix).is_none_or(|(l, _)| level > *l) {
                self.groups.insert(prefix, (level, metrics.iter().filter(|(k, _)| k.starts_with(prefix)).cloned().collect()));
            }
        }
        for (k, v) in metrics.iter().filter(|(k, _)| !PEAK_GROUPS.iter().any(|(p, ..)| k.starts_with(p))) {
            let e = self.rest.entry(k.clone()).or_insert(*v);
            *e = e.max(*v);
        }
    }

    /// Puts the peaks into `snap` in place of its own scan's (taken after the workload ended).
    fn add_to(&self, snap: &mut Snapshot) {
        if self.scans == 0 {
            return;
        }
        for (k, v) in self.groups.values().flat_map(|(_, g)| g.iter().map(|(k, v)| (k, v))).chain(&self.rest) {
            snap.set(k.clone(), *v);
        }
    }
}

/// One bounded process scan of every probe that has processes to scan.
fn scan_probes(probes: &[NsProbe], max_map_count: Option<u64>, peak: &mut ScanPeak) -> Result<()> {
    for (p, root) in probes.iter().filter_map(|p| Some((p, p.scan_root.as_ref()?))) {
        let mut m = Vec::new();
        scan(root, &ScanCaps::default(), max_map_count).with_context(|| format!("{}: scanning the processes under {}", p.name, root.display()))?.metrics(&mut m);
        peak.observe(&m);
    }
    Ok(())
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Whether a metric is counted per network namespace (summed over the two ends).
fn per_netns(name: &str) -> bool {
    name.starts_with("netstat.") || name.starts_with("snmp.") || (name.starts_with("sockstat.") && (name.ends_with(".inuse") || name.ends_with(".tw")))
}

/// Merges same-instant snapshots of several namespaces: per-namespace counters summed, the rest from the first.
pub fn merge(snaps: &[Snapshot]) -> Snapshot {
    let mut out = snaps[0].clone();
    for s in &snaps[1..] {
        for (k, v) in &s.metrics {
            if per_netns(k) {
                *out.metrics.entry(k.clone()).or_insert(0.0) += v;
            } else {
                out.metrics.entry(k.clone()).or_insert(*v);
            }
        }
    }
    out
}

/// Telemetry of one observed run.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Merged snapshot before the run.
    pub before: Snapshot,
    /// Merged snapshot after the run, with the socket metrics of the whole run.
    pub after: Snapshot,
    /// Socket dumps taken.
    pub dumps: usize,
}

/// Runs `f` while sampling `probes` every `every`; returns `f`'s result and the telemetry.
pub fn observe<T: Send>(probes: &[NsProbe], every: Duration, f: impl FnOnce() -> Result<T> + Send) -> Result<(T, Observed)> {
    let snap = |p: &NsProbe| p.snapshot();
    // Sockets already open belong to an earlier run (orphans still closing over a long path): not this run's.
    let mut earlier = std::collections::HashSet::new();
    for p in probes {
        let mut d = p.diag.lock().unwrap_or_else(|e| e.into_inner());
        earlier.extend(d.dump(States::FULL).with_context(|| format!("netns {}: dumping TCP sockets", p.name))?.into_iter().filter(|r| !r.is_listener()).map(|r| r.cookie));
    }
    let before = merge(&probes.iter().map(snap).collect::<Result<Vec<_>>>()?);
    let max_map_count = before.get("sysctl.vm.max_map_count").map(|v| v as u64);
    let stop = AtomicBool::new(false);
    let (value, agg) = std::thread::scope(|s| {
        let sampler = s.spawn(|| -> Result<(SockAggregator, ScanPeak)> {
            let mut agg = SockAggregator::new(available_congestion_control());
            let mut peak = ScanPeak::default();
            let mut next_scan = Instant::now();
            let t0 = Instant::now();
            loop {
                // One last dump after the workload ended: connections still open show their final counters.
                let last = stop.load(Ordering::Relaxed);
                let t = t0.elapsed().as_millis() as u64;
                for p in probes {
                    let mut d = p.diag.lock().unwrap_or_else(|e| e.into_inner());
                    let mut recs = d.dump(States::FULL).with_context(|| format!("netns {}: dumping TCP sockets", p.name))?;
                    recs.retain(|r| !earlier.contains(&r.cookie));
                    agg.observe(t, &recs);
                }
                if last {
                    return Ok((agg, peak));
                }
                if Instant::now() >= next_scan {
                    scan_probes(probes, max_map_count, &mut peak)?;
                    next_scan = Instant::now() + SCAN_EVERY.max(every);
                }
                std::thread::sleep(every);
            }
        });
        let value = f();
        stop.store(true, Ordering::Relaxed);
        let agg = sampler.join().map_err(|_| anyhow::anyhow!("the socket sampler panicked"));
        (value, agg)
    });
    let value = value?;
    let (agg, peak) = agg??;
    let mut after = merge(&probes.iter().map(snap).collect::<Result<Vec<_>>>()?);
    agg.add_to(&mut after);
    peak.add_to(&mut after);
    Ok((value, Observed { before, after, dumps: agg.samples() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::HostFacts;

    #[test]
    fn per_namespace_counters_are_summed_and_machine_wide_ones_taken_once() {
        let snap = |overflows: f64, inuse: f64| {
            let mut s = Snapshot::new(HostFacts::default(), 1);
            s.set("netstat.TcpExt.ListenOverflows", overflows);
            s.set("sockstat.TCP.inuse", inuse);
            s.set("sockstat.TCP.mem", 7.0);
            s.set("vmstat.nr_dirty", 100.0);
            s
        };
        let m = merge(&[snap(5.0, 3.0), snap(2.0, 4.0)]);
        assert_eq!(m.get("netstat.TcpExt.ListenOverflows"), Some(7.0));
        assert_eq!(m.get("sockstat.TCP.inuse"), Some(7.0));
        assert_eq!(m.get("sockstat.TCP.mem"), Some(7.0), "TCP memory is machine-wide");
        assert_eq!(m.get("vmstat.nr_dirty"), Some(100.0));
    }

    #[test]
    fn the_after_snapshot_keeps_each_holder_from_the_scan_nearest_its_limit_not_the_empty_one_after_the_run() {
        let scan = |watches: f64, pid: f64, maps: f64, open: f64, soft: f64| {
            vec![
                ("inotify.watches.top.count".to_string(), watches),
                ("inotify.watches.top.pid".to_string(), pid),
                ("proc.maps.top.count".to_string(), maps),
                ("proc.maps.top.pid".to_string(), pid),
                ("proc.fd.top.open".to_string(), open),
                ("proc.fd.top.soft_limit".to_string(), soft),
                ("proc.fd.top.pid".to_string(), pid),
                ("scan.procs".to_string(), pid),
            ]
        };
        let mut peak = ScanPeak::default();
        let mut after = Snapshot::new(HostFacts::default(), 1);
        peak.add_to(&mut after);
        assert!(after.metrics.is_empty(), "no scan ran: the snapshot's own readings stay");
        peak.observe(&scan(10.0, 7.0, 65000.0, 900.0, 1024.0));
        peak.observe(&scan(8192.0, 9.0, 3.0, 10.0, 1024.0));
        peak.observe(&scan(0.0, 11.0, 0.0, 60.0, 64.0));
        // What the scan after the run finds: nobody holds anything any more.
        for (k, v) in scan(0.0, 0.0, 0.0, 0.0, 0.0) {
            after.set(k, v);
        }
        peak.add_to(&mut after);
        let g = |k: &str| after.get(k).unwrap();
        assert_eq!((g("inotify.watches.top.count"), g("inotify.watches.top.pid")), (8192.0, 9.0));
        assert_eq!((g("proc.maps.top.count"), g("proc.maps.top.pid")), (65000.0, 7.0));
        // Open files are judged against the holder's own limit: 60 of 64 is nearer than 900 of 1024.
        assert_eq!((g("proc.fd.top.open"), g("proc.fd.top.soft_limit"), g("proc.fd.top.pid")), (60.0, 64.0, 11.0));
        assert_eq!(g("scan.procs"), 11.0);
    }
}
