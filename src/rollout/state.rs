//! The rollout state file: everything a controller needs to resume or roll
//! back a rollout it did not finish — the plan, the hosts and their waves,
//! the engine settings, and each host's phase, values before and after, and
//! reason. Rewritten atomically (temp file, fsync, rename) at every host
//! transition, *before* the step it announces, so a controller killed at any
//! instant leaves a file that says which hosts may have been touched.

use super::inventory::Host;
use super::settings::{AnsibleSettings, RemoteSettings, SshSettings};
use super::waves::WaveSpec;
use crate::apply::files::{read_versioned_json, write_atomic};
use crate::reasoning::Plan;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Version of the state file format.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// Key → value read on a host (`None`: the key does not exist there).
pub type Values = BTreeMap<String, Option<String>>;

/// Which engine drives the hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// The system OpenSSH client running `semantos apply` on each host.
    Ssh,
    /// `ansible-playbook` with `ansible.posix.sysctl`.
    Ansible,
}

/// Where the whole rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waves are being applied.
    Running,
    /// Every wave passed.
    Passed,
    /// A wave failed and earlier waves are being restored.
    RollingBack,
    /// A wave failed; it and every earlier wave were restored.
    Failed,
    /// `--rollback-fleet` restored every touched host.
    RolledBack,
    /// Some host could not be restored: see its reason.
    NeedsAttention,
}

impl Status {
    /// Whether the rollout is finished (nothing left to resume).
    pub fn finished(self) -> bool {
        matches!(self, Status::Passed | Status::Failed | Status::RolledBack)
    }
}

/// Where one host stands; also its verdict in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Its wave has not started.
    Pending,
    /// `semantos apply` was started: values may be partly changed.
    Applying,
    /// Applied and verified on the host; waiting for the wave's gate.
    Applied,
    /// Its wave passed: the change is in place.
    Committed,
    /// The plan changed nothing there (values already as planned).
    Unchanged,
    /// Apply, read-back, monitor or gate failed on this host.
    Failed,
    /// ssh could not connect.
    Unreachable,
    /// The host did not finish within `--host-timeout`.
    TimedOut,
    /// A restore was started.
    RollingBack,
    /// Restored to the values in its backup.
    RolledBack,
    /// The restore failed: the host needs attention.
    RollbackFailed,
    /// A later wave that was never touched because an earlier one failed.
    Untouched,
}

impl Phase {
    /// Short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Applying => "applying",
            Phase::Applied => "applied",
            Phase::Committed => "committed",
            Phase::Unchanged => "unchanged",
            Phase::Failed => "FAILED",
            Phase::Unreachable => "UNREACHABLE",
            Phase::TimedOut => "TIMED-OUT",
            Phase::RollingBack => "rolling-back",
            Phase::RolledBack => "rolled-back",
            Phase::RollbackFailed => "ROLLBACK-FAILED",
            Phase::Untouched => "untouched",
        }
    }
}

/// One host's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostState {
    /// The host, as the inventory gave it.
    pub host: Host,
    /// 0-based wave.
    pub wave: usize,
    /// Where it stands.
    pub phase: Phase,
    /// Something may have been written on it (apply started): it must be restored on rollback.
    pub touched: bool,
    /// Values read before the first write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Values>,
    /// Values the host reported writing (after its own guardrails: a step limit may clamp).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub written: BTreeMap<String, String>,
    /// Values read at the end (after the gate, or after a restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Values>,
    /// Why it ended where it is.
    #[serde(default)]
    pub reason: String,
    /// Seconds spent on this host by the last step.
    #[serde(default)]
    pub seconds: f64,
}

/// Everything about engine and remote settings a resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Engine.
    pub engine: EngineKind,
    /// Waves as specified.
    pub waves: WaveSpec,
    /// Hosts worked on at once inside a wave.
    pub parallel: usize,
    /// Seconds one host may take for one step.
    pub host_timeout_s: f64,
    /// ssh client settings (both engines connect with them).
    pub ssh: SshSettings,
    /// What runs on each host.
    pub remote: RemoteSettings,
    /// Ansible settings, with `--engine ansible`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ansible: Option<AnsibleSettings>,
}

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutState {
    /// Format version.
    pub schema_version: u32,
    /// This rollout's id.
    pub run_id: String,
    /// Unix seconds it started.
    pub created_at: u64,
    /// Overall status.
    pub status: Status,
    /// The wave being worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_wave: Option<usize>,
    /// The wave whose gate failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_wave: Option<usize>,
    /// The validated plan every host receives.
    pub plan: Plan,
    /// Keys in plan order.
    pub keys: Vec<String>,
    /// Engine and remote settings.
    pub settings: Settings,
    /// Every host, in rollout order (wave by wave).
    pub hosts: Vec<HostState>,
}

impl RolloutState {
    /// Number of waves.
    pub fn wave_count(&self) -> usize {
        // Saturating: a wave number is bounded on load, but a state built in memory is not.
        self.hosts.iter().map(|h| h.wave.saturating_add(1)).max().unwrap_or(0)
    }

    /// Indices of the hosts of wave `w`.
    pub fn wave(&self, w: usize) -> Vec<usize> {
        (0..self.hosts.len()).filter(|&i| self.hosts[i].wave == w).collect()
    }

    /// Loads a state file and checks its form: not through a symbolic link, no field given
    /// twice, wave numbers within the fleet. `state_check::check_recorded` checks its content.
    pub fn load(path: &Path) -> Result<RolloutState> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            anyhow::bail!("{}: the rollout state is a symbolic link; refusing to read or rewrite through it (point --state at the file itself)", path.display());
        }
        // The generic reader checks the version and refuses a field or key given twice in one
        // object (an edited file must not say two things), so the file is read and parsed once.
        let s: RolloutState = read_versioned_json(path, "rollout state", STATE_SCHEMA_VERSION)?;
        super::state_check::check_waves(&s).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(s)
    }
}

/// The state file, shared by the worker threads of one controller.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: Mutex<RolloutState>,
}

impl StateFile {
    /// Writes `state` to `path` now and keeps it for updates.
    pub fn create(path: &Path, state: RolloutState) -> Result<StateFile> {
        let f = StateFile { path: path.to_path_buf(), state: Mutex::new(state) };
        f.save(&f.lock())?;
        Ok(f)
    }

    /// Opens an existing state file.
    pub fn open(path: &Path) -> Result<StateFile> {
        Ok(StateFile { path: path.to_path_buf(), state: Mutex::new(RolloutState::load(path)?) })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, RolloutState> {
        // A worker that panicked mid-update left a whole (if stale) state: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, s: &RolloutState) -> Result<()> {
        let json = serde_json::to_string_pretty(s)?;
        write_atomic(&self.path, json.as_bytes(), 0o600).with_context(|| format!("writing rollout state {}", self.path.display()))
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> RolloutState {
        self.lock().clone()
    }

    /// Changes the state and writes it durably before returning.
    pub fn update<T>(&self, f: impl FnOnce(&mut RolloutState) -> T) -> Result<T> {
        let mut g = self.lock();
        let out = f(&mut g);
        self.save(&g)?;
        Ok(out)
    }

    /// Changes one host and writes the state durably before returning.
    pub fn host<T>(&self, i: usize, f: impl FnOnce(&mut HostState) -> T) -> Result<T> {
        self.update(|s| f(&mut s.hosts[i]))
    }
}
