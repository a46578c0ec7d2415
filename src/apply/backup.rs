//! The backup: the original value of every key an apply will touch, with
//! the host, boot and kernel it was taken on. Written atomically (mode 0600)
//! before the first write; `rollback` restores from it.

use super::files::{read_versioned_json, write_atomic};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Version of the backup file format.
pub const BACKUP_SCHEMA_VERSION: u32 = 1;

/// Where the backup was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    /// Host name.
    pub hostname: String,
    /// Boot id (changes at every boot: values not persisted are gone after a reboot).
    pub boot_id: String,
    /// Kernel release.
    pub kernel_release: String,
}

impl HostIdentity {
    /// Reads the identity of the host whose sysctl tree is at `sysctl_root` (`/proc/sys` or a sandbox).
    pub fn read(sysctl_root: &Path) -> HostIdentity {
        let get = |rel: &str| std::fs::read_to_string(sysctl_root.join(rel)).map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into());
        HostIdentity { hostname: get("kernel/hostname"), boot_id: get("kernel/random/boot_id"), kernel_release: get("kernel/osrelease") }
    }
}

/// Lifecycle of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    /// Written; writes may be under way.
    InProgress,
    /// The apply finished and kept some changes.
    Committed,
    /// Every original value was restored.
    Restored,
}

/// The backup file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Format version.
    pub schema_version: u32,
    /// The run that wrote it.
    pub run_id: String,
    /// Unix time (seconds) it was first written.
    pub created_at: u64,
    /// Host it belongs to.
    pub host: HostIdentity,
    /// Store description (`/proc/sys`, `sandbox:...`).
    pub store: String,
    /// Original value of every key (None: the key did not exist).
    pub originals: BTreeMap<String, Option<String>>,
    /// State.
    pub state: BackupState,
    /// The plan being applied, as JSON.
    pub plan: serde_json::Value,
    /// Drop-in file written by `--persist`, removed on rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted_to: Option<String>,
    /// Unix time of the last successful restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_at: Option<u64>,
}

impl Backup {
    /// Writes it atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        write_atomic(path, json.as_bytes(), 0o600).with_context(|| format!("writing backup {}", path.display()))
    }

    /// Loads a backup, checking its version.
    pub fn load(path: &Path) -> Result<Backup> {
        read_versioned_json(path, "backup", BACKUP_SCHEMA_VERSION)
    }

    /// Loads a backup if the file exists.
    pub fn load_if_exists(path: &Path) -> Result<Option<Backup>> {
        match std::fs::symlink_metadata(path) {
            Err(_) => return Ok(None),
            Ok(m) if m.file_type().is_symlink() => {
                bail!("{} is a symbolic link; refusing to read or replace a backup through it (remove the link or choose another --backup)", path.display())
            }
            Ok(_) => {}
        }
        Backup::load(path).map(Some)
    }

    /// Why this backup must not be restored on `here`, unless forced.
    pub fn mismatch(&self, here: &HostIdentity) -> Option<String> {
        if self.host.hostname != here.hostname {
            return Some(format!("the backup was taken on host {:?}, this is {:?}", self.host.hostname, here.hostname));
        }
        if self.host.boot_id != here.boot_id {
            return Some(format!("the backup was taken in boot {} and this is boot {}: values not persisted were already reset by the reboot", self.host.boot_id, here.boot_id));
        }
        None
    }
}
