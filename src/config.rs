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
