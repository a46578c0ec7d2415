//! The diagnosis window as numbers: one column per metric the enabled symptoms read (names, and
//! the instances a `*` pattern matches), one row of values per sample. A window of N full
//! snapshots was N maps of ~1000 `String` keys, cloned and dropped every sample; a row is one
//! `Vec<Option<f64>>`, and its names are compared with the columns in place. Snapshots are made
//! from the rows only when a window advises; the window judge reads the rows in place
//! (`reasoning::columns`), by `diagnose`'s rule, so the agent's findings are those of `diagnose`
//! over the same samples.

use crate::kb::metric::match_metric;
use crate::reasoning::columns::Table;
use crate::telemetry::{HostFacts, Snapshot};
use std::collections::BTreeMap;

/// One sample: its time and a value per column (`None`: absent in that sample).
#[derive(Debug, Clone, PartialEq)]
struct Row {
    t_ms: u64,
    values: Vec<Option<f64>>,
}

/// The samples of the current window.
#[derive(Debug, Clone, Default)]
pub struct Compact {
    /// Metric names and `*` patterns, sorted.
    wanted: Vec<String>,
    /// The names the rows hold with the index of the `wanted` entry each matched, in the order
    /// `matches` yields them (by that index, then by name); a sample holds a subsequence.
    columns: Vec<(usize, String)>,
    rows: Vec<Row>,
    /// The last sample's host facts (a diagnosis reads the last snapshot's).
    host: HostFacts,
    /// Rows dropped by `keep_last`, reused.
    spare: Vec<Vec<Option<f64>>>,
}

/// The metrics of `maps` (searched in order: the first holding a name gives its value) that
/// `wanted` names or matches, each once, in `wanted`'s order (the index is passed) and then by name.
fn matches<'a>(wanted: &'a [String], maps: &[&'a BTreeMap<String, f64>], mut each: impl FnMut(usize, &'a str, f64)) {
    for (wi, w) in wanted.iter().enumerate() {
        let Some(star) = w.find('*') else {
            if let Some(v) = maps.iter().find_map(|m| m.get(w.as_str())) {
                each(wi, w, *v);
            }
            continue;
        };
        let prefix = &w[..star];
        // The instances of a pattern, from every map, in name order; the first map wins a tie.
        let mut found: Vec<(&'a str, f64)> = Vec::new();
        for m in maps {
            for (k, v) in m.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded)).take_while(|(k, _)| k.starts_with(prefix)) {
                if match_metric(w, k).is_some() && !found.iter().any(|(n, _)| *n == k.as_str()) {
                    found.push((k.as_str(), *v));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in found {
            each(wi, k, v);
        }
    }
}

impl Compact {
    /// An empty window keeping the metrics `wanted` names (names or `*` patterns).
    pub fn new(wanted: &[String]) -> Compact {
        let mut wanted = wanted.to_vec();
        wanted.sort();
        wanted.dedup();
        Compact { wanted, ..Compact::default() }
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends one sample: the wanted metrics of `maps` (the first map holding a name wins).
    pub fn push(&mut self, t_ms: u64, host: &HostFacts, maps: &[&BTreeMap<String, f64>]) {
        // HostFacts' derived `clone_from` allocates its strings anew; the facts rarely change.
        if self.host != *host {
            self.host.clone_from(host);
        }
        let mut values = self.spare.pop().unwrap_or_default();
        values.clear();
        values.resize(self.columns.len(), None);
        // The steady state: this sample's names are (a subsequence of) the columns, and no name is
        // copied; walking both in order finds each one's column.
        let (mut j, mut fits) = (0, true);
        matches(&self.wanted, maps, |_, name, v| {
            while fits && j < self.columns.len() && self.columns[j].1 != name {
                j += 1;
            }
            if j == self.columns.len() {
                fits = false;
            } else if fits {
                values[j] = Some(v);
                j += 1;
            }
        });
        if fits {
            self.rows.push(Row { t_ms, values });
            return;
        }
        // A metric appeared (a listener opened, a module loaded): the columns become the union,
        // and the rows held so far are re-laid by name.
        let mut now: Vec<((usize, String), f64)> = Vec::new();
        matches(&self.wanted, maps, |wi, name, v| now.push(((wi, name.to_string()), v)));
        let mut columns: Vec<(usize, String)> = self.columns.iter().cloned().chain(now.iter().map(|(c, _)| c.clone())).collect();
        columns.sort();
        columns.dedup();
        for row in &mut self.rows {
            let old: BTreeMap<&str, Option<f64>> = self.columns.iter().map(|(_, n)| n.as_str()).zip(row.values.iter().copied()).collect();
            row.values = columns.iter().map(|(_, n)| old.get(n.as_str()).copied().flatten()).collect();
        }
        let here: BTreeMap<&str, f64> = now.iter().map(|((_, n), v)| (n.as_str(), *v)).collect();
        values.clear();
        values.extend(columns.iter().map(|(_, n)| here.get(n.as_str()).copied()));
        self.columns = columns;
        self.rows.push(Row { t_ms, values });
    }

    /// The window's samples as snapshots holding the wanted metrics, oldest first.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        (0..self.rows.len()).map(|i| self.snapshot(i)).collect()
    }

    /// Sample `i` as a snapshot holding the wanted metrics (for the advice and the digest, only
    /// when a window advises).
    pub fn snapshot(&self, i: usize) -> Snapshot {
        let r = &self.rows[i];
        let mut s = Snapshot::new(self.host.clone(), r.t_ms);
        s.metrics = self.columns.iter().zip(&r.values).filter_map(|((_, k), v)| Some((k.clone(), (*v)?))).collect();
        s
    }

    /// The window as columns for the window judge (`reasoning::columns`), read in place.
    pub fn table(&self) -> Table<'_> {
        Table::new(self.columns.iter().map(|(_, n)| n.as_str()), self.rows.iter().map(|r| (r.t_ms, r.values.as_slice())))
    }

    /// The last sample's host facts.
    pub fn host(&self) -> &HostFacts {
        &self.host
    }

    /// Makes the last sample's values of the columns `pred` names stand for every sample of the
    /// window: the settings read once a window, at its end (`sampler::Needs::window_end`), so a
    /// limit changed mid-window is the one in force for the whole window's judgement (a raised
    /// limit leaves no stale "at the limit" reading in its earlier samples).
    pub fn hold(&mut self, pred: impl Fn(&str) -> bool) {
        let Some((last, earlier)) = self.rows.split_last_mut() else { return };
        for (c, (_, name)) in self.columns.iter().enumerate() {
            if pred(name) {
                for r in earlier.iter_mut() {
                    r.values[c] = last.values[c];
                }
            }
        }
    }

    /// Keeps only the last sample (consecutive windows share their end sample), and only the
    /// columns it holds (a metric gone for a whole window is no longer looked for).
    pub fn keep_last(&mut self) {
        let n = self.rows.len().saturating_sub(1);
        for r in self.rows.drain(..n) {
            self.spare.push(r.values);
        }
        if let Some(last) = self.rows.last_mut()
            && last.values.iter().any(Option::is_none)
        {
            let keep: Vec<bool> = last.values.iter().map(Option::is_some).collect();
            let mut k = keep.iter();
            self.columns.retain(|_| *k.next().unwrap_or(&true));
            last.values.retain(Option::is_some);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(xs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        xs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// Pushes each sample's maps; returns the snapshots of the window.
    fn check(wanted: &[&str], samples: &[Vec<BTreeMap<String, f64>>]) -> Vec<BTreeMap<String, f64>> {
        let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
        let mut w = Compact::new(&wanted);
        for (t, maps) in samples.iter().enumerate() {
            let refs: Vec<&BTreeMap<String, f64>> = maps.iter().collect();
            w.push(t as u64 * 1000, &HostFacts::default(), &refs);
        }
        let snaps = w.snapshots();
        assert!(snaps.iter().enumerate().all(|(t, s)| s.timestamp_ms == t as u64 * 1000));
        snaps.into_iter().map(|s| s.metrics).collect()
    }

    #[test]
    fn the_window_keeps_only_the_wanted_metrics_and_patterns_match_instances() {
        let full = map(&[("listen.80.queue.max", 3.0), ("listen.443.queue.max", 9.0), ("listen.80.backlog", 128.0), ("vmstat.pswpin", 5.0), ("meminfo.MemTotal", 1e6)]);
        let extra = map(&[("sysctl.net.core.somaxconn", 4096.0), ("vmstat.pswpin", 6.0)]);
        let got = check(&["listen.*.queue.max", "vmstat.pswpin", "sysctl.net.core.somaxconn", "psi.cpu.some.avg10"], &[vec![extra.clone(), full.clone()]]);
        assert_eq!(got, vec![map(&[("listen.443.queue.max", 9.0), ("listen.80.queue.max", 3.0), ("sysctl.net.core.somaxconn", 4096.0), ("vmstat.pswpin", 6.0)])]);
    }

    #[test]
    fn a_metric_that_appears_mid_window_is_absent_before_and_present_after() {
        let a = map(&[("listen.80.queue.max", 3.0)]);
        let b = map(&[("listen.80.queue.max", 4.0), ("listen.8080.queue.max", 1.0)]);
        let c = map(&[("listen.8080.queue.max", 2.0)]);
        let got = check(&["listen.*.queue.max"], &[vec![a.clone()], vec![b.clone()], vec![c.clone()]]);
        assert_eq!(got, vec![a, b, c]);
    }

    #[test]
    fn keep_last_keeps_the_shared_end_sample() {
        let wanted = vec!["x".to_string()];
        let mut w = Compact::new(&wanted);
        for t in 0..5u64 {
            w.push(t, &HostFacts::default(), &[&map(&[("x", t as f64)])]);
        }
        w.keep_last();
        assert_eq!(w.len(), 1);
        w.push(5, &HostFacts::default(), &[&map(&[("x", 5.0)])]);
        let s = w.snapshots();
        assert_eq!((s[0].get("x"), s[1].get("x")), (Some(4.0), Some(5.0)));
        // A metric gone for a whole window leaves the columns; one that comes back is found again.
        let wanted = vec!["l.*.q".to_string()];
        let mut w = Compact::new(&wanted);
        w.push(0, &HostFacts::default(), &[&map(&[("l.1.q", 1.0), ("l.2.q", 2.0)])]);
        w.push(1, &HostFacts::default(), &[&map(&[("l.2.q", 3.0)])]);
        w.keep_last();
        assert_eq!(w.columns.len(), 1);
        w.push(2, &HostFacts::default(), &[&map(&[("l.1.q", 4.0), ("l.2.q", 5.0)])]);
        assert_eq!(w.snapshots().into_iter().map(|s| s.metrics).collect::<Vec<_>>(), vec![map(&[("l.2.q", 3.0)]), map(&[("l.1.q", 4.0), ("l.2.q", 5.0)])]);
    }
}
