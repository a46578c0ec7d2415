//! How a rollout reaches its hosts and what runs there: the ssh client's
//! settings, the remote settings (binary, directory, policy, KB, health
//! command and its timeout) and the Ansible engine's settings. Plain records
//! below both engines and the state file: the state file stores them without
//! knowing how hosts are reached, and the engines read them without
//! importing the state file's types back (no `use` cycle between files).

use super::inventory::Host;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How to run the ssh client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    /// The client (`ssh`).
    pub program: String,
    /// `-F FILE` instead of the user's `~/.ssh/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Extra `-o` options (`StrictHostKeyChecking=yes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// `ConnectTimeout`, seconds.
    pub connect_timeout_s: u32,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings { program: "ssh".into(), config: None, options: Vec::new(), connect_timeout_s: 10 }
    }
}

/// What runs on each host, and where it keeps its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSettings {
    /// Path of `semantos` on the hosts (ignored with `copy_binary`).
    pub semantos: String,
    /// Working directory on each host (backup, journal, lock, audit log); `{host}` is replaced by the host's name.
    pub dir: String,
    /// Upload this local binary to `<dir>/semantos` and run that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_binary: Option<PathBuf>,
    /// Policy (YAML text) uploaded to `<dir>/rollout-policy.yaml`; `None`: the hosts use the built-in policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// `--monitor-seconds` on each host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_seconds: Option<f64>,
    /// `--health-cmd` on each host, and the wave gate's health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_cmd: Option<String>,
    /// The controller's `--health-timeout`, seconds: passed to each host's apply and bounds the gate's
    /// health check. `None` (and in state files written before it existed): each host uses the
    /// uploaded policy's `health_timeout_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout_s: Option<f64>,
    /// `--persist FILE` on each host (`{host}` replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<String>,
    /// `--interval` (seconds between the two telemetry snapshots) on each host.
    pub interval: f64,
    /// Seconds one remote command may run; the remote `timeout` stops it there.
    pub host_timeout_s: f64,
    /// The controller's `--kb DIR` files (name → TOML text): uploaded to `<dir>/kb/` on each host
    /// and passed to its apply, so a host judges the plan by the same knowledge base.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kb: BTreeMap<String, String>,
}

impl RemoteSettings {
    /// Checks the paths and command; the message names the flag, the value and what is valid.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, v) in [("--remote-semantos", Some(&self.semantos)), ("--remote-dir", Some(&self.dir)), ("--persist", self.persist.as_ref())] {
            let Some(v) = v else { continue };
            // Plain paths only: they go on remote command lines and into playbook templates.
            let plain = v.replace("{host}", "");
            if v.is_empty() || v.starts_with('-') || !plain.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+@:".contains(c)) {
                return Err(format!("{flag} {v:?} is invalid; use a plain path of letters, digits and /._-+@: (with `{{host}}` for the host's name), not starting with `-`"));
            }
        }
        if !self.dir.starts_with('/') {
            return Err(format!("--remote-dir {:?} must be absolute (it is resolved on each host, whose working directory is unknown)", self.dir));
        }
        if let Some(c) = &self.health_cmd
            && (c.trim().is_empty() || c.chars().any(|x| x.is_control() && x != '\t'))
        {
            return Err(format!("--health-cmd {c:?} is invalid; use one line of shell"));
        }
        if let Some(t) = self.health_timeout_s
            && !(t.is_finite() && t > 0.0 && t <= 86400.0)
        {
            return Err(format!("--health-timeout {t} is invalid; use seconds in (0, 86400] (the default is the policy's health_timeout_seconds, {})", crate::safety::policy::DEFAULT_HEALTH_TIMEOUT_S));
        }
        if !(self.host_timeout_s.is_finite() && self.host_timeout_s >= 1.0 && self.host_timeout_s <= 86400.0) {
            return Err(format!("--host-timeout {} is invalid; use 1 to 86400 seconds", self.host_timeout_s));
        }
        if !(self.interval.is_finite() && (0.05..=3600.0).contains(&self.interval)) {
            return Err(format!("--interval {}: use 0.05 to 3600 seconds", self.interval));
        }
        for name in self.kb.keys() {
            // Each name becomes a path on every host.
            if name.starts_with('.') || !name.ends_with(".toml") || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                return Err(format!("--kb: file name {name:?} is invalid for upload; use letters, digits and ._- ending in .toml"));
            }
        }
        Ok(())
    }

    /// The working directory on `host`.
    pub fn dir_on(&self, host: &Host) -> String {
        self.dir.replace("{host}", &host.name)
    }

    /// The backup path on `host` (`semantos rollback --backup` there restores it by hand).
    pub fn backup_on(&self, host: &Host) -> String {
        format!("{}/rollout-backup.json", self.dir_on(host))
    }

    /// The uploaded knowledge-base directory on `host`, when the controller has one.
    pub fn kb_on(&self, host: &Host) -> Option<String> {
        (!self.kb.is_empty()).then(|| format!("{}/kb", self.dir_on(host)))
    }

    /// The `semantos` binary run on `host`.
    pub fn semantos_on(&self, host: &Host) -> String {
        if self.copy_binary.is_some() { format!("{}/semantos", self.dir_on(host)) } else { self.semantos.clone() }
    }
}

/// Settings of the Ansible engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnsibleSettings {
    /// `ansible-playbook` to run.
    pub program: String,
    /// Directory the playbook, inventory and ansible.cfg are written to.
    pub dir: PathBuf,
    /// Python on the hosts (`ansible_python_interpreter`); `None`: Ansible discovers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
}

