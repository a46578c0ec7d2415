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
use crate::telemetry::procfs::ProcReader;
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

/// Reads one snapshot at a time.
pub struct Sampler {
    reader: ProcReader,
    diag: Option<crate::telemetry::sockdiag::SockDiag>,
    store: TreeStore,
    limits: Vec<(String, SysctlKey)>,
}

impl Sampler {
    /// Opens the files once, in the network namespace the calling thread is in.
    pub fn open(proc_root: &Path, store: TreeStore, needs: &Needs) -> Result<Sampler> {
        let mut reader = ProcReader::with_roots(proc_root, "/sys");
        if !needs.process_scan {
            reader = reader.without_process_scan();
        }
        let reader = reader.keep_open()?;
        // No sock_diag (a kernel without it, a seccomp profile): listener symptoms say "no data".
        let diag = if needs.listeners { crate::telemetry::sockdiag::SockDiag::open().ok() } else { None };
        let limits = needs.limits.iter().filter_map(|(m, k)| Some((m.clone(), SysctlKey::parse(k).ok()?))).collect();
        Ok(Sampler { reader, diag, store, limits })
    }

    /// One snapshot stamped `t_ms`.
    pub fn sample(&mut self, t_ms: u64) -> Result<Snapshot> {
        let mut snap = self.reader.snapshot(t_ms)?;
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
}
