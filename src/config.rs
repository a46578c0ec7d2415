//! Experiment configuration: the workload mix, trials, seed, intent, the
//! simulated host and the policy, loaded from YAML (`--config FILE`).
//! Raw values are parsed first, then validated as a whole before anything
//! runs; every error names the file, the field, the bad value and what is
//! valid.

use crate::kb::Intent;
use crate::safety::Policy;
use crate::sim::{HostSpec, WorkloadClass, WorkloadSpec};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A complete experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Seed of every random stream.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Evaluation trials (paired: baseline and tuned share each trial's seed).
    #[serde(default = "default_trials")]
    pub trials: usize,
    /// What to optimise for.
    #[serde(default = "default_intent")]
    pub intent: Intent,
    /// Simulated seconds per evaluation trial.
    #[serde(default = "default_trial_seconds")]
    pub trial_seconds: f64,
    /// Simulated seconds of telemetry the diagnosis looks at in each tuning round.
    #[serde(default = "default_trial_seconds")]
    pub observe_seconds: f64,
    /// Diagnose → recommend → apply rounds (step limits make convergence take several).
    #[serde(default = "default_rounds")]
    pub max_rounds: usize,
    /// The simulated host.
    #[serde(default)]
    pub host: HostSpec,
    /// Workloads running on it.
    #[serde(default = "default_workloads")]
    pub workloads: Vec<WorkloadSpec>,
    /// Guardrails and monitor.
    #[serde(default)]
    pub policy: Policy,
    /// LLM backend settings for `semantos compare` (the `--llm-config` format; flags and that file win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<crate::llm::settings::Partial>,
    /// Closed-loop tuning on the simulator after the rules rounds (absent: the reproduction as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<TuneSection>,
}

/// Candidate sources a simulator tune may name.
pub const TUNE_SOURCES: [&str; 4] = ["rules", "compass", "tpe", "random"];

/// The `tune:` section: the reproduction's closed-loop mode on the simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneSection {
    /// Trials at most (a refused candidate counts).
    #[serde(default = "default_tune_budget")]
    pub budget: usize,
    /// Paired repeats per trial (incumbent and candidate, back to back).
    #[serde(default = "default_tune_repeats")]
    pub repeats: usize,
    /// Candidate sources, asked in turn: `rules` (the reproduction's rules plan, once), `compass`, `tpe`, `random`.
    #[serde(default = "default_tune_sources")]
    pub sources: Vec<String>,
    /// Seed of the tune's runs and intervals (default: the experiment's seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Simulated seconds per measured run (default: `trial_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_seconds: Option<f64>,
    /// Largest worsening of any one workload's p95 a kept trial may bring, percent against the
    /// incumbent (default: the policy's `max_p95_regression`, the monitor's own limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_workload_worsening_pct: Option<f64>,
}

impl TuneSection {
    /// The per-workload guard limit, percent: the section's, else the policy's `max_p95_regression`.
    pub fn worsening_limit_pct(&self, policy: &Policy) -> f64 {
        self.max_workload_worsening_pct.unwrap_or(policy.max_p95_regression * 100.0)
    }
}

fn default_tune_budget() -> usize {
    60
}
fn default_tune_repeats() -> usize {
    3
}
fn default_tune_sources() -> Vec<String> {
    ["rules", "tpe", "compass"].iter().map(|s| s.to_string()).collect()
}

impl TuneSection {
    /// Checks the section; the message names the field, the value and what is valid.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.budget) {
            return Err(format!("tune.budget: {} is out of range; use 1 to 1000 trials", self.budget));
        }
        if !(2..=50).contains(&self.repeats) {
            return Err(format!("tune.repeats: {} is out of range; use 2 to 50 (an interval needs two paired repeats)", self.repeats));
        }
        if self.sources.is_empty() {
            return Err(format!("tune.sources: empty; list one or more of {}", TUNE_SOURCES.join(", ")));
        }
        for (i, s) in self.sources.iter().enumerate() {
            if !TUNE_SOURCES.contains(&s.as_str()) {
                return Err(format!("tune.sources[{i}]: {s:?} is not a source the simulator tune has; use {} (an LLM is compared with `semantos compare --reasoners`)", TUNE_SOURCES.join(", ")));
            }
            if self.sources[..i].contains(s) {
                return Err(format!("tune.sources[{i}]: {s:?} is named twice"));
            }
        }
        if let Some(v) = self.run_seconds
            && !(v.is_finite() && (15.0..=3600.0).contains(&v))
        {
            return Err(format!("tune.run_seconds: {v} is out of range; use 15 to 3600 simulated seconds"));
        }
        if let Some(w) = self.max_workload_worsening_pct
            && !(w.is_finite() && (0.0..=100.0).contains(&w))
        {
            return Err(format!("tune.max_workload_worsening_pct: {w} is out of range; use 0 to 100"));
        }
        Ok(())
    }
}

fn default_seed() -> u64 {
    7
}
fn default_trials() -> usize {
    20
}
fn default_intent() -> Intent {
    Intent::Latency
}
fn default_trial_seconds() -> f64 {
    60.0
}
fn default_rounds() -> usize {
    4
}
fn default_workloads() -> Vec<WorkloadSpec> {
    WorkloadClass::ALL.iter().map(|c| WorkloadSpec { class: *c, intensity: 1.0 }).collect()
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            seed: default_seed(),
            trials: default_trials(),
            intent: default_intent(),
            trial_seconds: default_trial_seconds(),
            observe_seconds: default_trial_seconds(),
            max_rounds: default_rounds(),
            host: HostSpec::default(),
            workloads: default_workloads(),
            policy: Policy::default(),
            llm: None,
            tune: None,
        }
    }
}

impl ExperimentConfig {
    /// Parses YAML text; `file` names the source in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self> {
        let cfg: ExperimentConfig = serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{file}: {}", e.to_string().replace("<input>", file)))?;
        cfg.validate().map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        Ok(cfg)
    }

    /// Loads and validates a YAML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Checks the whole configuration; the message names the field, the value and what is valid.
    pub fn validate(&self) -> Result<(), String> {
        if self.llm.as_ref().is_some_and(|l| l.api_key.is_some()) {
            return Err(format!("llm.api_key: an API key is never read from a file (files get copied, committed and logged); set {} in the environment instead", crate::llm::settings::API_KEY_ENV));
        }
        if !(1..=10_000).contains(&self.trials) {
            return Err(format!("trials: {} is out of range; use 1 to 10000", self.trials));
        }
        for (name, v) in [("trial_seconds", self.trial_seconds), ("observe_seconds", self.observe_seconds)] {
            if !(v.is_finite() && (15.0..=3600.0).contains(&v)) {
                return Err(format!("{name}: {v} is out of range; use 15 to 3600 simulated seconds"));
            }
        }
        if !(1..=20).contains(&self.max_rounds) {
            return Err(format!("max_rounds: {} is out of range; use 1 to 20", self.max_rounds));
        }
        if self.workloads.is_empty() {
            return Err("workloads: empty; list at least one of web, oltp, bulk, batch".into());
        }
        for (i, w) in self.workloads.iter().enumerate() {
            if !(w.intensity.is_finite() && w.intensity > 0.0 && w.intensity <= 4.0) {
                return Err(format!("workloads[{i}].intensity: {} is out of range; use a number in (0, 4]", w.intensity));
            }
        }
        let h = &self.host;
        if !(1..=1024).contains(&h.ncpus) {
            return Err(format!("host.ncpus: {} is out of range; use 1 to 1024", h.ncpus));
        }
        if !(16..=4096).contains(&h.mem_gib) {
            return Err(format!("host.mem_gib: {} is out of range; use 16 to 4096 (the batch workload needs 12 GiB)", h.mem_gib));
        }
        if !(1..=64).contains(&h.numa_nodes) {
            return Err(format!("host.numa_nodes: {} is out of range; use 1 to 64", h.numa_nodes));
        }
        if !(h.disk_mb_s.is_finite() && (10.0..=100_000.0).contains(&h.disk_mb_s)) {
            return Err(format!("host.disk_mb_s: {} is out of range; use 10 to 100000", h.disk_mb_s));
        }
        if h.hostname.is_empty() || h.hostname.len() > 64 || !h.hostname.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(format!("host.hostname: {:?} is invalid; use letters, digits, '-' and '.' (at most 64)", h.hostname));
        }
        for (k, v) in &h.start {
            let key = crate::sysctl::SysctlKey::parse(k).map_err(|e| format!("host.start: {e}"))?;
            if !h.kernel_defaults().contains_key(&key.to_string()) {
                return Err(format!("host.start.{k}: the simulator does not model this key; modelled keys: {}", h.kernel_defaults().keys().cloned().collect::<Vec<_>>().join(", ")));
            }
            if v.trim().is_empty() || v.contains(['\n', '#']) {
                return Err(format!("host.start.{k}: {v:?} is not a plain value"));
            }
        }
        if let Some(t) = &self.tune {
            t.validate()?;
        }
        self.policy.validate().map_err(|e| e.to_string())
    }
}

/// Reads a config file or returns the defaults; `bail`s with the file named on error.
pub fn load_or_default(path: Option<&Path>) -> Result<ExperimentConfig> {
    match path {
        Some(p) => ExperimentConfig::load(p),
        None => Ok(ExperimentConfig::default()),
    }
}

/// Refuses a config whose starting values are not valid KB values (checked against the KB ranges).
pub fn check_start_values(cfg: &ExperimentConfig, kb: &crate::kb::Kb) -> Result<()> {
    for (k, v) in &cfg.host.start {
        if let Some(p) = kb.param(k)
            && let Err(e) = crate::kb::validate::check_value(p, v)
        {
            bail!("host.start.{k}: {v:?} is not a valid value: {e}");
        }
    }
    Ok(())
}
