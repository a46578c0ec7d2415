//! The decision trace and the state kept while the loop runs.
//!
//! `trace.jsonl` in the run directory has one JSON line per trial: the
//! values, the keys changed, every measured run (which assignment it ran
//! under, warm-up or scored, the sample count and the run's p50/p95/p99/mean,
//! wall time and guard figures), the objective statistic per repeat, the
//! interval, the decision and its reason. The loop itself only hands back a
//! `Trial`; the runs are seen on the way by wrapping the system and the
//! objective ([`Watched`], [`Recorder`]).
//!
//! [`Keeper`] is the loop's observer that writes the state file before a
//! trial's values are set and after its decision, and appends the trace line.

use super::driver::Observer;
use super::objective::Measurement;
use super::state::{InProgress, TuneState};
use super::{ObjectiveSource, System, Trial, Values};
use crate::eval::{mean, percentile};
use anyhow::{Context, Result};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One measured run, summarised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// `incumbent` or `candidate`: the assignment in force during the run.
    pub under: &'static str,
    /// A warm-up run (not scored).
    pub warmup: bool,
    /// Samples the run printed.
    pub n: usize,
    /// Statistics of its samples (NaN, written `null`, when it printed none).
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Guard figures.
    pub guards: BTreeMap<String, f64>,
    /// The error, when the run failed.
    pub error: Option<String>,
}

/// What the wrappers saw during the trial in progress.
#[derive(Debug, Default)]
pub struct Seen {
    candidate: Option<Values>,
    under_candidate: bool,
    since_set: usize,
    warmup_runs: usize,
    runs: Vec<RunRecord>,
}

/// Shared between the wrappers and the observer (one thread: the loop's).
pub type Recorder = Rc<RefCell<Seen>>;

/// A new recorder for a loop with `warmup_runs` warm-up runs per setting.
pub fn recorder(warmup_runs: usize) -> Recorder {
    Rc::new(RefCell::new(Seen { warmup_runs, ..Seen::default() }))
}

/// A system that tells the recorder which assignment is in force.
pub struct Watched<'a> {
    /// The real system.
    pub inner: &'a mut dyn System,
    /// Where it reports.
    pub seen: Recorder,
}

impl System for Watched<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read(&self, keys: &[String]) -> Result<Values> {
        self.inner.read(keys)
    }
    fn set(&mut self, values: &Values) -> Result<()> {
        let mut s = self.seen.borrow_mut();
        s.under_candidate = s.candidate.as_ref() == Some(values);
        s.since_set = 0;
        drop(s);
        self.inner.set(values)
    }
    fn restore(&mut self) -> Result<()> {
        self.inner.restore()
    }
}

/// An objective whose every run is summarised into the recorder.
pub struct Recorded<'a> {
    /// The real objective.
    pub inner: &'a mut dyn ObjectiveSource,
    /// Where it reports.
    pub seen: Recorder,
}

/// A run's summary (pure).
pub fn summarise(m: &Measurement, under: &'static str, warmup: bool) -> RunRecord {
    let stat = |p: f64| if m.samples.is_empty() { f64::NAN } else { percentile(&m.samples, p) };
    let avg = if m.samples.is_empty() { f64::NAN } else { mean(&m.samples) };
    RunRecord { under, warmup, n: m.samples.len(), p50: stat(50.0), p95: stat(95.0), p99: stat(99.0), mean: avg, seconds: m.seconds, guards: m.guards.clone(), error: None }
}

impl ObjectiveSource for Recorded<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn measure(&mut self) -> Result<Measurement> {
        let r = self.inner.measure();
        let mut s = self.seen.borrow_mut();
        let under = if s.under_candidate { "candidate" } else { "incumbent" };
        let warmup = s.since_set < s.warmup_runs;
        s.since_set += 1;
        let rec = match &r {
            Ok(m) => summarise(m, under, warmup),
            Err(e) => RunRecord { error: Some(format!("{e:#}")), ..summarise(&Measurement::default(), under, warmup) },
        };
        s.runs.push(rec);
        r
    }
}

/// One line of the decision trace.
#[derive(Debug, Clone, Serialize)]
pub struct TraceLine<'a> {
    /// The trial.
    #[serde(flatten)]
    pub trial: &'a Trial,
    /// Keys whose value differs from the incumbent's at the time.
    pub changed: Vec<String>,
    /// Every run measured for it, in order.
    pub runs: &'a [RunRecord],
}

/// The keys of `values` that differ from `incumbent`.
pub fn changed(incumbent: &Values, values: &Values) -> Vec<String> {
    values.iter().filter(|(k, v)| incumbent.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect()
}

/// The loop's observer that keeps the state file and the trace.
pub struct Keeper {
    /// The state, as last written.
    pub state: TuneState,
    /// The state file.
    pub path: PathBuf,
    /// The trace file (JSON lines).
    pub trace: PathBuf,
    /// What the wrappers saw.
    pub seen: Recorder,
    incumbent_before: Values,
}

impl Keeper {
    /// An observer writing `state` to `path` and the trace to `trace`.
    pub fn new(state: TuneState, path: &Path, trace: &Path, seen: Recorder) -> Self {
        let incumbent_before = state.incumbent.clone();
        Keeper { state, path: path.to_path_buf(), trace: trace.to_path_buf(), seen, incumbent_before }
    }
}

impl Observer for Keeper {
    fn started(&mut self, index: usize, _budget: usize, source: &str, values: &Values) -> Result<()> {
        // Written before the values are set: a kill from here on finds them named in the state.
        self.state.in_progress = Some(InProgress { index, source: source.to_string(), values: values.clone() });
        self.state.save(&self.path)?;
        let mut s = self.seen.borrow_mut();
        s.candidate = Some(values.clone());
        s.runs.clear();
        Ok(())
    }

    fn finished(&mut self, trial: &Trial, incumbent: &Values) -> Result<()> {
        let runs = std::mem::take(&mut self.seen.borrow_mut().runs);
        let line = TraceLine { trial, changed: changed(&self.incumbent_before, &trial.values), runs: &runs };
        crate::apply::files::append_line(&self.trace, &serde_json::to_string(&line)?, 0o600).with_context(|| format!("appending to the decision trace {}", self.trace.display()))?;
        self.state.trials.push(trial.clone());
        self.state.incumbent = incumbent.clone();
        self.state.in_progress = None;
        self.incumbent_before = incumbent.clone();
        self.seen.borrow_mut().candidate = None;
        self.state.save(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_summary_holds_its_statistics_and_which_assignment_it_ran_under() {
        let m = Measurement { samples: (1..=100).map(f64::from).collect(), seconds: 2.0, guards: BTreeMap::from([("errors".into(), 0.0)]) };
        let r = summarise(&m, "candidate", false);
        assert_eq!((r.n, r.p50, r.mean, r.under), (100, 50.5, 50.5, "candidate"));
        assert!(summarise(&Measurement::default(), "incumbent", true).p95.is_nan());
        let inc = Values::from([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]);
        let v = Values::from([("a".to_string(), "1".to_string()), ("b".to_string(), "3".to_string())]);
        assert_eq!(changed(&inc, &v), vec!["b".to_string()]);
    }
}
