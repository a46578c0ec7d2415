//! The rollout state file's content as data: the plan, the hosts and their waves, the engine
//! settings, and each host's phase, values and reason. It sits below both the state file
//! (`state`, which reads and rewrites it) and its checks (`state_check`, which take a
//! `RolloutState`), so neither needs the other's file to name the type.

use crate::reasoning::Plan;
use crate::rollout::inventory::Host;
use crate::rollout::settings::{AnsibleSettings, RemoteSettings, SshSettings};
use crate::rollout::waves::WaveSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
}
