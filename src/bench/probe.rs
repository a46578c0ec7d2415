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

use super::netns::{Netns, run_in};
use crate::telemetry::Snapshot;
use crate::telemetry::procfs::ProcReader;
use crate::telemetry::sockdiag::{SockAggregator, SockDiag, States, available_congestion_control};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Entries of the per-namespace `/proc` view that link to the real `/proc`.
const MACHINE_WIDE: [&str; 5] = ["meminfo", "vmstat", "loadavg", "pressure", "sys"];

/// The readers of one namespace.
pub struct NsProbe {
    /// Namespace name (`host` for the bench's own).
    pub name: String,
    reader: ProcReader,
    diag: Mutex<SockDiag>,
    view: PathBuf,
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
        Ok(NsProbe { name, reader, diag: Mutex::new(diag), view })
    }

    /// The readers a user's `semantos diagnose` on the host has: the real `/proc` (every process
    /// directory included, which per-process and per-user limits need) and the bench's own network namespace.
    pub fn host() -> Result<NsProbe> {
        let reader = ProcReader::new().keep_open().context("host: opening /proc")?;
        let diag = SockDiag::open().context("host: opening sock_diag")?;
        Ok(NsProbe { name: "host".into(), reader, diag: Mutex::new(diag), view: PathBuf::new() })
    }
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
    let snap = |p: &NsProbe| p.reader.snapshot(unix_ms()).with_context(|| format!("netns {}: reading /proc", p.name));
    // Sockets already open belong to an earlier run (orphans still closing over a long path): not this run's.
    let mut earlier = std::collections::HashSet::new();
    for p in probes {
        let mut d = p.diag.lock().unwrap_or_else(|e| e.into_inner());
        earlier.extend(d.dump(States::FULL).with_context(|| format!("netns {}: dumping TCP sockets", p.name))?.into_iter().filter(|r| !r.is_listener()).map(|r| r.cookie));
    }
    let before = merge(&probes.iter().map(snap).collect::<Result<Vec<_>>>()?);
    let stop = AtomicBool::new(false);
    let (value, agg) = std::thread::scope(|s| {
        let sampler = s.spawn(|| -> Result<SockAggregator> {
            let mut agg = SockAggregator::new(available_congestion_control());
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
                    return Ok(agg);
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
    let agg = agg??;
    let mut after = merge(&probes.iter().map(snap).collect::<Result<Vec<_>>>()?);
    agg.add_to(&mut after);
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
}
