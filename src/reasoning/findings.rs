//! Diagnosis: symptoms found in two snapshots, each with the evidence that
//! triggered it. The symptom definitions come from the knowledge base, so
//! this code knows no metric by name.

use crate::kb::Kb;
use crate::kb::entry::{Measure, Signal};
use crate::telemetry::{HostFacts, Snapshot, Window};
use serde::{Deserialize, Serialize};

/// Version of the on-disk findings format.
pub const FINDINGS_SCHEMA_VERSION: u32 = 1;

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
    /// Seconds between the snapshots.
    pub window_s: f64,
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

/// Reads one signal from the window; `None` when a metric it needs is absent.
pub fn read_signal(w: &Window, s: &Signal) -> Option<f64> {
    match s.measure {
        Measure::Rate => w.rate(&s.metric),
        Measure::Delta => w.delta(&s.metric),
        Measure::Gauge => w.gauge(&s.metric),
        Measure::Ratio => {
            let num = w.gauge(&s.metric)?;
            let den = w.gauge(s.per.as_deref()?)?;
            if den == 0.0 { None } else { Some(num / den) }
        }
    }
}

/// Finds every KB symptom whose signals all hold between `before` and `after`.
pub fn diagnose(before: &Snapshot, after: &Snapshot, kb: &Kb) -> Findings {
    let w = Window::new(before, after);
    let mut findings = Vec::new();
    let mut no_data = Vec::new();
    for sym in kb.symptoms.values() {
        let mut evidence = Vec::new();
        let mut holds = true;
        let mut missing = false;
        for s in &sym.when {
            match read_signal(&w, s) {
                Some(v) if s.op.holds(v, s.value) => evidence.push(Evidence {
                    metric: match &s.per {
                        Some(per) => format!("{} / {per}", s.metric),
                        None => s.metric.clone(),
                    },
                    measure: s.measure,
                    value: v,
                    threshold: format!("{} {}", s.op.symbol(), fmt_value(s.value)),
                }),
                Some(_) => holds = false,
                None => {
                    missing = true;
                    holds = false;
                }
            }
        }
        if holds {
            findings.push(Finding { id: sym.id.clone(), title: sym.title.clone(), explain: sym.explain.clone(), evidence });
        } else if missing {
            no_data.push(sym.id.clone());
        }
    }
    Findings { schema_version: FINDINGS_SCHEMA_VERSION, host: after.host.clone(), snapshot_digest: after.digest(), window_s: w.seconds(), findings, no_data }
}
