//! Plumbing every command shares: the error that carries an exit code, and
//! loading what the flags name (KB, policy, plan, telemetry, store,
//! experiment config). Every command module uses this one; it uses none of
//! them, so the files of `cli/` form no circle.

use super::exit;
use super::flags::{IntentArg, KbDirArg, PolicyArg, ReproArgs};
use crate::config::ExperimentConfig;
use crate::kb::{Intent, Kb};
use crate::reasoning::Plan;
use crate::safety::Policy;
use crate::sysctl::{SysctlKey, SysctlStore, TreeStore, Value};
use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An error that carries its exit code (a row of `cli::exit`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// Message.
    pub message: String,
}

/// Invalid input, nothing written (exit 2).
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    CliError { code: exit::INVALID, message: message.into() }.into()
}

/// Refused by the host's state before any write (exit 3).
pub fn refused(message: impl Into<String>) -> anyhow::Error {
    CliError { code: exit::REFUSED, message: message.into() }.into()
}

/// Loads the knowledge base, with the user's overrides (`--kb DIR`) when given.
pub fn load_kb(dir: &KbDirArg) -> Result<Kb> {
    match &dir.kb {
        Some(dir) => Kb::with_overrides(dir).map_err(|e| invalid(format!("{e:#}"))),
        None => Kb::embedded(),
    }
}

/// Loads and validates a policy file.
pub fn load_policy(path: &Path) -> Result<Policy> {
    // Every way the file can be wrong is invalid input (exit 2): nothing was written yet.
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| invalid(format!("{file}: cannot read the policy: {e}; check the path given to --policy")))?;
    Policy::from_bytes(&bytes, &file).map_err(invalid)
}

/// The policy the flags name (`--policy FILE`, else the default), its keys checked against
/// `kb` (an unknown whitelist key is invalid input; an unknown never_touch key is warned
/// about once per run).
pub fn policy(p: &PolicyArg, kb: &Kb) -> Result<Policy> {
    let Some(path) = &p.policy else { return Ok(Policy::default()) };
    let pol = load_policy(path)?;
    checked_keys(&pol, &path.display().to_string(), kb)?;
    Ok(pol)
}

/// Checks a policy's keys against the KB: an unknown whitelist key is invalid input, an
/// unknown never_touch key is warned about (once per run).
pub fn checked_keys(pol: &Policy, source: &str, kb: &Kb) -> Result<()> {
    let known: Vec<&str> = kb.params.keys().map(String::as_str).collect();
    let warnings = pol.check_keys(source, &known).map_err(invalid)?;
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| warnings.iter().for_each(|w| eprintln!("semantos: warning: {w}")));
    Ok(())
}

/// `--intent`, else latency.
pub fn intent(i: &IntentArg) -> Intent {
    i.intent.unwrap_or(Intent::Latency)
}

/// The store a `--sysctl-root` names: kernel semantics under /proc, sandbox semantics elsewhere.
pub fn store(root: &Path) -> TreeStore {
    if root.starts_with("/proc") { TreeStore::kernel_at(root) } else { TreeStore::sandbox(root) }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Current values of every KB key present in `store`.
pub fn current_values(store: &dyn SysctlStore, kb: &Kb) -> BTreeMap<String, Value> {
    kb.params
        .iter()
        .filter(|(_, p)| p.risk != crate::kb::Risk::Never)
        .filter_map(|(k, _)| SysctlKey::parse(k).ok())
        .filter_map(|k| store.read(&k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// Whether a `--plan` names standard input.
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// Loads `--plan FILE`, JSON or sysctl.d syntax; `--plan -` reads either from standard input
/// (how `semantos rollout` hands each host its plan). Every failure is invalid input (exit 2).
pub fn load_plan(path: &Path, intent: Intent, store: &dyn SysctlStore) -> Result<Plan> {
    let plan = if is_stdin(path) {
        let text = read_stdin()?;
        Plan::from_text(&text, "<stdin>", false, intent, store)
    } else {
        Plan::load(path, intent, store)
    };
    plan.map_err(|e| invalid(format!("{e:#}")))
}

fn read_stdin() -> Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| invalid(format!("--plan -: reading the plan from standard input: {e}")))?;
    Ok(text)
}

/// A plan file for the commands that read the plan by path themselves (`reproduce`, `bench`):
/// `--plan -` is copied from standard input to a private temporary file, removed on drop.
pub struct PlanFile {
    path: Option<PathBuf>,
    temp: Option<PathBuf>,
}

impl PlanFile {
    /// The plan path to hand on (None: no `--plan`).
    pub fn new(plan: Option<&Path>) -> Result<PlanFile> {
        let Some(p) = plan else { return Ok(PlanFile { path: None, temp: None }) };
        if !is_stdin(p) {
            return Ok(PlanFile { path: Some(p.to_path_buf()), temp: None });
        }
        let text = read_stdin()?;
        let ext = if text.trim_start().starts_with('{') { "json" } else { "conf" };
        let tmp = std::env::temp_dir().join(format!("semantos-plan-stdin-{}.{ext}", std::process::id()));
        crate::apply::files::write_atomic(&tmp, text.as_bytes(), 0o600).with_context(|| format!("copying the plan from standard input to {}", tmp.display()))?;
        Ok(PlanFile { path: Some(tmp.clone()), temp: Some(tmp) })
    }

    /// The path, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl Drop for PlanFile {
    fn drop(&mut self) {
        if let Some(t) = &self.temp {
            let _ = std::fs::remove_file(t);
        }
    }
}

/// The experiment configuration: the config file, then the flags that override it.
pub fn experiment(r: &ReproArgs, pol: &PolicyArg, i: &IntentArg, kb: &Kb) -> Result<ExperimentConfig> {
    let mut cfg = match &r.config {
        Some(p) => ExperimentConfig::load(p).map_err(|e| invalid(format!("{e:#}")))?,
        None => ExperimentConfig::default(),
    };
    if let Some(s) = r.seed {
        cfg.seed = s;
    }
    if let Some(t) = r.trials {
        cfg.trials = t;
    }
    if let Some(i) = i.intent {
        cfg.intent = i;
    }
    if pol.policy.is_some() {
        cfg.policy = policy(pol, kb)?;
    }
    let source = r.config.as_ref().map(|p| p.display().to_string()).unwrap_or("command line".into());
    cfg.validate().map_err(|e| invalid(format!("{source}: {e}")))?;
    crate::config::check_start_values(&cfg, kb).map_err(|e| invalid(format!("{source}: {e:#}")))?;
    if pol.policy.is_none() {
        // The config's own policy section: its keys are checked like a policy file's.
        checked_keys(&cfg.policy, &source, kb)?;
    }
    Ok(cfg)
}

/// The file ansible.posix.sysctl keeps values in: `--persist`, else a dedicated drop-in.
pub fn sysctl_file(persist: Option<&str>) -> String {
    persist.unwrap_or("/etc/sysctl.d/99-semantos.conf").to_string()
}

/// A `--monitor-seconds` value, checked: 0 to 86400 (0: no telemetry watch, the health command still runs).
pub fn monitor_seconds(s: f64) -> Result<f64> {
    if !(s.is_finite() && (0.0..=86400.0).contains(&s)) {
        return Err(invalid(format!("--monitor-seconds {s} is invalid; use 0 to 86400 seconds (0: no telemetry watch, the health command still runs)")));
    }
    Ok(s)
}

/// A word quoted for a POSIX shell, when it needs quoting (recovery hints the user copies).
pub fn shell_word(w: &str) -> String {
    if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}
