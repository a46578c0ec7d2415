//! The tune's state file, so a killed tune resumes or rolls back.
//!
//! `<state dir>/tune/state.json` (written atomically, like the backup) holds
//! what a later `semantos tune --resume` or `--rollback` needs without the
//! original command line: the objective, the settings, the target, the start
//! values, the incumbent, every trial so far and the trial in progress (the
//! values being measured when the process died). It is written before a
//! trial's values are set and after its decision, so at any SIGKILL it names
//! a superset of what may be on the system; the values themselves are undone
//! by the apply transaction's backup in the run directory beside it
//! (`<state dir>/tune/<run>/backup.json`), whose originals are the start
//! values.
//!
//! A tune whose state is not `finished` or `rolled_back` blocks a new one: it
//! is resumed or rolled back first.

use super::candidate::Candidate;
use super::decide::{Decision, GuardResult, Judgement};
use super::driver::{Settings, Stop};
use super::live::Target;
use super::objective::ObjectiveSpec;
use super::space::SearchSpace;
use super::{Trial, Values};
use crate::kb::Intent;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Format version of the state file.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// Where a tune is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trials are being run (or the process died while they were).
    Running,
    /// The loop ended; the incumbent is in force.
    Finished,
    /// `tune --rollback` put the start values back.
    RolledBack,
}

/// The user's command as the state keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandConfig {
    /// The shell command.
    pub cmd: String,
    /// CSV column, if any.
    pub column: Option<String>,
    /// Per-run timeout, seconds.
    pub timeout_s: f64,
}

/// A trial whose values were being measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InProgress {
    /// Its 1-based number.
    pub index: usize,
    /// Its source.
    pub source: String,
    /// The values being measured.
    pub values: Values,
}

/// Everything a resumed or rolled-back tune needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneState {
    /// Format version.
    pub schema_version: u32,
    /// Running, finished or rolled back.
    pub status: Status,
    /// The process that runs (or ran) it.
    pub pid: u32,
    /// This tune's directory (backup, journal, lock, trace, plot).
    pub run_dir: PathBuf,
    /// Where the values are set.
    pub target: Target,
    /// The objective command.
    pub command: CommandConfig,
    /// What is better.
    pub objective: ObjectiveSpec,
    /// Budget, time, repeats, warm-up, seed.
    pub settings: Settings,
    /// The intent the guardrails judged with.
    pub intent: Intent,
    /// The `--policy` file the tune was started with (a resumed tune reads it again).
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// The `--kb` directory the tune was started with.
    #[serde(default)]
    pub kb: Option<PathBuf>,
    /// The candidate sources asked, in order.
    pub sources: Vec<String>,
    /// The optimiser's space.
    pub space: SearchSpace,
    /// The one-off candidates (rules, llm, plan) computed at the start, so a resumed tune offers the ones not yet tried.
    pub once: Vec<Candidate>,
    /// The values in force before the first trial.
    pub start: Values,
    /// The values kept so far (in force between trials).
    pub incumbent: Values,
    /// Every finished trial.
    #[serde(deserialize_with = "trials_in")]
    pub trials: Vec<Trial>,
    /// The trial being measured, if any.
    pub in_progress: Option<InProgress>,
    /// Why the loop stopped, once it has.
    pub stop: Option<Stop>,
}

/// The state file in state directory `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("tune").join("state.json")
}

impl TuneState {
    /// Writes the state atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let bytes = serde_json::to_vec_pretty(self)?;
        crate::apply::files::write_atomic(path, &bytes, 0o600).with_context(|| format!("writing the tune state {}", path.display()))
    }

    /// Reads the state at `path`; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<TuneState>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading the tune state {}", path.display())),
        };
        let s: TuneState = serde_json::from_str(&text).with_context(|| format!("the tune state {} is not valid (fix or move it away; `semantos rollback --backup <its run dir>/backup.json` restores the values it set)", path.display()))?;
        if s.schema_version != STATE_SCHEMA_VERSION {
            bail!("the tune state {} has schema_version {}, this semantos reads {STATE_SCHEMA_VERSION}", path.display(), s.schema_version);
        }
        Ok(Some(s))
    }

    /// Not finished and not rolled back: a new tune must wait for `--resume` or `--rollback`.
    pub fn unfinished(&self) -> bool {
        self.status == Status::Running
    }

    /// The one-off candidates no trial has used yet.
    pub fn unused_once(&self) -> Vec<Candidate> {
        self.once.iter().filter(|c| !self.trials.iter().any(|t| t.source == c.source)).cloned().collect()
    }
}

/// Whether `pid` is a live semantos process (the tune that wrote a state may still be running).
pub fn alive(pid: u32) -> bool {
    pid != std::process::id() && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "semantos")
}

/// JSON writes a float that is not finite (an unmeasured trial's interval, a guard that rose
/// from zero) as `null`; read those back as NaN.
fn trials_in<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<Trial>, D::Error> {
    Ok(Vec::<TrialIn>::deserialize(d)?.into_iter().map(TrialIn::into_trial).collect())
}

fn nan(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

#[derive(Deserialize)]
struct GuardIn {
    incumbent: Option<f64>,
    candidate: Option<f64>,
    worsening_pct: Option<f64>,
    held: bool,
}

#[derive(Deserialize)]
struct JudgementIn {
    decision: Decision,
    reason: String,
    incumbent: Vec<Option<f64>>,
    candidate: Vec<Option<f64>>,
    improvement_pct: Option<f64>,
    ci95_pct: (Option<f64>, Option<f64>),
    guards: BTreeMap<String, GuardIn>,
}

#[derive(Deserialize)]
struct TrialIn {
    index: usize,
    source: String,
    values: Values,
    rationale: Option<String>,
    supported: Option<bool>,
    judgement: JudgementIn,
    elapsed_s: f64,
}

impl TrialIn {
    fn into_trial(self) -> Trial {
        let j = self.judgement;
        let guards = j.guards.into_iter().map(|(k, g)| (k, GuardResult { incumbent: nan(g.incumbent), candidate: nan(g.candidate), worsening_pct: g.worsening_pct.unwrap_or(f64::INFINITY), held: g.held })).collect();
        let judgement = Judgement {
            decision: j.decision,
            reason: j.reason,
            incumbent: j.incumbent.into_iter().map(nan).collect(),
            candidate: j.candidate.into_iter().map(nan).collect(),
            improvement_pct: nan(j.improvement_pct),
            ci95_pct: (nan(j.ci95_pct.0), nan(j.ci95_pct.1)),
            guards,
        };
        Trial { index: self.index, source: self.source, values: self.values, rationale: self.rationale, supported: self.supported, judgement, elapsed_s: self.elapsed_s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::objective::{Direction, Stat};

    fn state(dir: &Path) -> TuneState {
        let v = |x: &str| Values::from([("net.core.somaxconn".to_string(), x.to_string())]);
        let refused = Trial { index: 1, source: "rules".into(), values: v("8"), rationale: None, supported: None, judgement: Judgement::unmeasured(Decision::Refused, "step limit"), elapsed_s: 0.5 };
        TuneState {
            schema_version: STATE_SCHEMA_VERSION,
            status: Status::Running,
            pid: 1,
            run_dir: dir.join("run"),
            target: Target { sysctl_root: dir.join("tree"), netns: None },
            command: CommandConfig { cmd: "echo 1".into(), column: None, timeout_s: 10.0 },
            objective: ObjectiveSpec::new(Stat::P99, Direction::Lower, vec![]),
            settings: Settings::new(3, 3, 1),
            intent: Intent::Latency,
            policy: None,
            kb: None,
            sources: vec!["rules".into()],
            space: SearchSpace::default(),
            once: vec![],
            start: v("4096"),
            incumbent: v("4096"),
            trials: vec![refused],
            in_progress: Some(InProgress { index: 2, source: "plan".into(), values: v("128") }),
            stop: None,
        }
    }

    #[test]
    fn an_unmeasured_trial_with_nan_figures_survives_the_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        let s = state(dir.path());
        s.save(&p).unwrap();
        let back = TuneState::load(&p).unwrap().unwrap();
        assert!(back.trials[0].judgement.improvement_pct.is_nan());
        assert_eq!(back.in_progress, s.in_progress);
        assert!(back.unfinished());
        assert!(TuneState::load(&dir.path().join("none.json")).unwrap().is_none());
    }
}
