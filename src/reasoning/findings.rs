//! Diagnosis: symptoms found over a window of snapshots, each with the
//! evidence that triggered it, when it began and how long it held. The
//! symptom definitions come from the knowledge base, so this code knows no
//! metric by name; how one signal is judged over the window is
//! `reasoning::window`.

use super::window::{self, Judged};
use crate::kb::Kb;
use crate::kb::entry::{Measure, Signal, Symptom};
use crate::telemetry::{HostFacts, Snapshot, Window};
use serde::{Deserialize, Serialize};

/// Version of the on-disk findings format (2: onset, persistence and per-sample values).
pub const FINDINGS_SCHEMA_VERSION: u32 = 2;

/// One measured fact that supports a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Metric name.
    pub metric: String,
    /// How it was read.
    pub measure: Measure,
    /// The value observed (a rate per second for `rate`).
    pub value: f64,
    /// The threshold it crossed, as `op value` (`> 0.2`).
    pub threshold: String,
    /// The reading in each sub-interval of the window (`null` where it could not be read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Option<f64>>,
}

impl Evidence {
    /// One line for humans: `netstat.TcpExt.ListenOverflows = 37.2/s (> 0.2/s)`.
    pub fn describe(&self) -> String {
        let unit = match self.measure {
            Measure::Rate => "/s",
            _ => "",
        };
        format!("{} = {}{unit} ({}{unit})", self.metric, fmt_value(self.value), self.threshold)
    }
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// A symptom present on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable ID (the KB symptom ID), the same across runs.
    pub id: String,
    /// Short title.
    pub title: String,
    /// What it means.
    pub explain: String,
    /// The signals that held.
    pub evidence: Vec<Evidence>,
    /// When it began and how long it held within the window.
    #[serde(default)]
    pub presence: Presence,
}

/// When a finding held within its window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// Timestamp (ms, the source's clock) of the end of the first sub-interval in which every signal held on its own reading; `None` when none did (a rate can hold over the window without holding in any one short sub-interval).
    pub onset_ms: Option<u64>,
    /// Sub-intervals in which every signal held.
    pub held: usize,
    /// Sub-intervals in the window.
    pub sub_intervals: usize,
    /// `held / sub_intervals`.
    pub fraction: f64,
    /// Seconds of the sub-intervals in which it held.
    pub held_s: f64,
}

impl Presence {
    /// One line for humans: `held in 4 of 4 sub-intervals (2.0 s of the window)`.
    pub fn describe(&self) -> String {
        format!("held in {} of {} sub-intervals ({:.1} s of the window)", self.held, self.sub_intervals, self.held_s)
    }
}

/// Everything the diagnosis found in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// Format version.
    pub schema_version: u32,
    /// The host the snapshots came from.
    pub host: HostFacts,
    /// Digest of the later snapshot (decision trace).
    pub snapshot_digest: String,
    /// Seconds from the first snapshot to the last.
    pub window_s: f64,
    /// Snapshots the window holds (sub-intervals + 1).
    #[serde(default)]
    pub samples: usize,
    /// Symptoms found, in KB order.
    pub findings: Vec<Finding>,
    /// Symptoms that could not be evaluated because a metric was absent (PSI off, no socket data...).
    pub no_data: Vec<String>,
}

impl Findings {
    /// The finding with `id`, if present.
    pub fn get(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }
}

/// Reads one signal from a two-snapshot window; `None` when a metric it needs is absent.
pub fn read_signal(w: &Window, s: &Signal) -> Option<f64> {
    window::read(w, s).map(|(v, _)| v)
}

/// Finds every KB symptom whose signals all hold between `before` and `after`.
pub fn diagnose(before: &Snapshot, after: &Snapshot, kb: &Kb) -> Findings {
    diagnose_series(&[before.clone(), after.clone()], kb)
}

/// Finds every KB symptom whose signals all hold over `snaps` (in time
/// order; fewer than two give no sub-interval, so every symptom is no data),
/// judged per sub-interval by the rule of `reasoning::window`.
pub fn diagnose_series(snaps: &[Snapshot], kb: &Kb) -> Findings {
    let windows = Window::sub_intervals(snaps);
    let mut findings = Vec::new();
    let mut no_data = Vec::new();
    for sym in kb.symptoms.values() {
        let judged: Vec<Judged> = sym.when.iter().map(|s| window::judge(&windows, s)).collect();
        if judged.iter().all(|j| j.holds) {
            findings.push(finding(sym, &judged, &windows));
        } else if judged.iter().any(Judged::no_data) {
            no_data.push(sym.id.clone());
        }
    }
    // One snapshot is no window (every symptom is no data); none is an empty host.
    let empty = Snapshot::default();
    let (first, last) = (snaps.first().unwrap_or(&empty), snaps.last().unwrap_or(&empty));
    Findings {
        schema_version: FINDINGS_SCHEMA_VERSION,
        host: last.host.clone(),
        snapshot_digest: last.digest(),
        window_s: Window::new(first, last).seconds(),
        samples: snaps.len(),
        findings,
        no_data,
    }
}

/// The finding of `sym`, whose signals `judged` all held over `windows` (also the column judge's,
/// `reasoning::columns`, so both report a finding alike).
pub(crate) fn finding<I: window::Interval>(sym: &Symptom, judged: &[Judged], windows: &[I]) -> Finding {
    let evidence = sym
        .when
        .iter()
        .zip(judged)
        .map(|(s, j)| Evidence { metric: j.label.clone(), measure: s.measure, value: j.value.unwrap_or(0.0), threshold: format!("{} {}", s.op.symbol(), fmt_value(s.value)), samples: j.samples.clone() })
        .collect();
    let held: Vec<usize> = (0..windows.len()).filter(|&i| sym.when.iter().zip(judged).all(|(s, j)| j.held_at(i, s))).collect();
    let presence = Presence {
        onset_ms: held.first().map(|&i| windows[i].end_ms()),
        held: held.len(),
        sub_intervals: windows.len(),
        fraction: if windows.is_empty() { 0.0 } else { held.len() as f64 / windows.len() as f64 },
        held_s: held.iter().map(|&i| windows[i].seconds()).sum(),
    };
    Finding { id: sym.id.clone(), title: sym.title.clone(), explain: sym.explain.clone(), evidence, presence }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A steady load sampled every 0.5 s: a listener's queue at 3 of its
    /// backlog 2 throughout, and one ListenOverflows event every 3 s.
    fn steady_load() -> Vec<Snapshot> {
        (0..40u64)
            .map(|i| {
                let mut s = Snapshot::new(HostFacts::default(), 500 * i);
                s.set("listen.8080.queue.max", 3.0);
                s.set("listen.8080.backlog", 2.0);
                s.set("netstat.TcpExt.ListenOverflows", (i / 6) as f64);
                s
            })
            .collect()
    }

    fn ids(f: &Findings) -> BTreeSet<String> {
        f.findings.iter().map(|x| x.id.clone()).collect()
    }

    #[test]
    fn repeated_windows_under_a_steady_load_agree() {
        let kb = Kb::embedded().unwrap();
        let snaps = steady_load();
        // Every 2-second window (5 samples) starting at any sample of the load.
        let windowed: BTreeSet<BTreeSet<String>> = (0..=snaps.len() - 5).map(|i| ids(&diagnose_series(&snaps[i..i + 5], &kb))).collect();
        assert_eq!(windowed.len(), 1, "calls disagree: {windowed:?}");
        assert!(windowed.iter().next().unwrap().contains("accept_queue_full"));
        // Control: two snapshots 2 s apart judge the absolute overflow rate differently from call to call.
        let pairs: BTreeSet<BTreeSet<String>> = (0..=snaps.len() - 5).map(|i| ids(&diagnose(&snaps[i], &snaps[i + 4], &kb))).collect();
        assert!(pairs.len() > 1, "the two-snapshot reading did not flicker: {pairs:?}");
    }

    #[test]
    fn a_finding_says_when_it_began_and_how_long_it_held() {
        let kb = Kb::embedded().unwrap();
        let mut snaps = steady_load()[..5].to_vec();
        snaps[1].set("listen.8080.queue.max", 1.0);
        let f = diagnose_series(&snaps, &kb);
        let x = f.get("accept_queue_full").expect("3 of 4 sub-intervals is sustained");
        assert_eq!(x.presence, Presence { onset_ms: Some(1000), held: 3, sub_intervals: 4, fraction: 0.75, held_s: 1.5 });
        assert_eq!(x.evidence[0].samples, vec![Some(0.5), Some(1.5), Some(1.5), Some(1.5)]);
        assert_eq!((f.samples, f.window_s), (5, 2.0));
    }

    #[test]
    fn fewer_than_two_snapshots_is_no_data_not_a_panic() {
        let kb = Kb::embedded().unwrap();
        for snaps in [Vec::new(), steady_load()[..1].to_vec()] {
            let f = diagnose_series(&snaps, &kb);
            assert!(f.findings.is_empty() && f.no_data.contains(&"accept_queue_full".to_string()), "{f:?}");
        }
    }
}
