//! The backup: the original value of every key an apply will touch, with
//! the host, boot and kernel it was taken on. Written atomically (mode 0600)
//! before the first write; `rollback` restores from it.

use super::files::{read_json_of_versions, write_atomic};
use crate::sysctl::SysctlKey;
use crate::sysctl::value::MAX_VALUE_LEN;
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Version of the backup file format written. Version 1 (no `committed`, no `dropins`; the format the
/// Ansible playbook writes) is still read.
pub const BACKUP_SCHEMA_VERSION: u32 = 2;

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

/// One apply's kept changes, so that they can be undone on their own (`rollback --last`, `--run ID`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The apply that made them.
    pub run_id: String,
    /// The fleet rollout it belonged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    /// Each key it changed (and their mutually exclusive partners) as that apply found them (None: absent).
    pub before: BTreeMap<String, Option<String>>,
    /// Each value it wrote and kept.
    pub after: BTreeMap<String, String>,
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
    /// Every value an apply committed and nothing restored since (key → value): what `--persist` writes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub committed: BTreeMap<String, String>,
    /// Each drop-in semantos wrote (path → its content before semantos first wrote it; None: no file):
    /// a rollback puts back exactly that.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropins: BTreeMap<String, Option<String>>,
    /// The committed applies, oldest first (empty in version 1: only a whole rollback is possible).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
    /// Unix time of the last successful restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_at: Option<u64>,
}

impl Backup {
    /// Writes it atomically with mode 0600, always in the current format.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(&Backup { schema_version: BACKUP_SCHEMA_VERSION, ..self.clone() })?;
        write_atomic(path, json.as_bytes(), 0o600).with_context(|| format!("writing backup {}", path.display()))
    }

    /// Loads a backup, checking the file (a regular file of ours), its version and every key and value in it.
    /// A damaged backup is an error that names the file and the defect and says how to recover.
    pub fn load(path: &Path) -> Result<Backup> {
        let loaded = check_file(path).and_then(|()| read_json_of_versions::<Backup>(path, "backup", &[1, BACKUP_SCHEMA_VERSION])).and_then(|b| b.validate().map(|()| b));
        loaded.map_err(|e| damaged(path, e)).map(Backup::upgrade)
    }

    /// A version-1 backup (written by an older semantos or the Ansible playbook) in version-2 terms: its
    /// drop-in, which it had created, and the values that drop-in holds, if it is still ours, as committed.
    fn upgrade(mut self) -> Backup {
        if self.schema_version != 1 {
            return self;
        }
        if let Some(p) = self.persisted_to.clone() {
            self.dropins.entry(p.clone()).or_insert(None);
            let path = Path::new(&p);
            if path.exists()
                && matches!(super::dropin::not_ours(path), Ok(None))
                && let Ok(entries) = crate::sysctl::sysctld::parse_file(path)
            {
                for a in entries {
                    self.committed.entry(a.key.to_string()).or_insert_with(|| a.value.to_string());
                }
            }
        }
        self.schema_version = BACKUP_SCHEMA_VERSION;
        self
    }

    /// Loads a backup if the file exists (any other failure to look at it is an error, not "no backup").
    pub fn load_if_exists(path: &Path) -> Result<Option<Backup>> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Backup::load(path).map(Some),
        }
    }

    /// Every key must be a plain sysctl name and every value one line of text: the file is read as root
    /// and its keys become paths under the sysctl root.
    fn validate(&self) -> Result<()> {
        for (key, value) in &self.originals {
            SysctlKey::parse(key).map_err(|e| anyhow!("key {key:?} is not a valid sysctl name: {e}"))?;
            if let Some(v) = value
                && let Some(why) = bad_value(v)
            {
                bail!("the value of {key} is {why}");
            }
        }
        for (key, v) in &self.committed {
            SysctlKey::parse(key).map_err(|e| anyhow!("committed key {key:?} is not a valid sysctl name: {e}"))?;
            if let Some(why) = bad_value(v) {
                bail!("the committed value of {key} is {why}");
            }
        }
        for l in &self.layers {
            for (key, v) in l.before.iter().map(|(k, v)| (k, v.as_deref())).chain(l.after.iter().map(|(k, v)| (k, Some(v.as_str())))) {
                SysctlKey::parse(key).map_err(|e| anyhow!("run {}: key {key:?} is not a valid sysctl name: {e}", l.run_id))?;
                if let Some(why) = v.and_then(bad_value) {
                    bail!("run {}: the value of {key} is {why}", l.run_id);
                }
            }
        }
        for path in self.dropins.keys().chain(&self.persisted_to) {
            if !path.starts_with('/') || path.contains('\0') || path.contains('\n') {
                bail!("the drop-in path {path:?} is not an absolute path on one line");
            }
        }
        Ok(())
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

/// Why `v` cannot be a saved sysctl value, if it cannot.
fn bad_value(v: &str) -> Option<String> {
    if v.len() > MAX_VALUE_LEN {
        return Some(format!("longer than {MAX_VALUE_LEN} bytes ({} bytes)", v.len()));
    }
    // Tabs are how the kernel separates the elements of a vector value; nothing else below a space is.
    let name = |c: char| match c {
        '\n' | '\r' => "a newline".to_string(),
        '\0' => "a NUL byte".to_string(),
        c => format!("the control character U+{:04X}", c as u32),
    };
    v.chars().find(|c| c.is_control() && *c != '\t').map(|c| format!("{v:?}, which holds {} (a sysctl value is one line of text)", name(c)))
}

/// Refuses what is not a regular, non-empty file owned by the user running us and writable by no one else:
/// a backup decides what root writes into the kernel.
fn check_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).with_context(|| format!("reading backup {}", path.display()))?;
    if m.file_type().is_symlink() {
        bail!("it is a symbolic link; a backup is never read or replaced through one");
    }
    if !m.file_type().is_file() {
        bail!("it is not a regular file");
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if m.uid() != euid {
        bail!("it is owned by uid {}, not by uid {euid} who runs semantos (semantos writes its backups itself, mode 0600)", m.uid());
    }
    if m.mode() & 0o022 != 0 {
        bail!("its mode is {:o}: other users may write it (semantos writes its backups with mode 0600)", m.mode() & 0o7777);
    }
    if m.len() == 0 {
        bail!("it is empty (0 bytes): it was cut before any content was written");
    }
    Ok(())
}

/// The error for a backup that cannot be used: the file, the defect, what it seems to hold and how to recover.
fn damaged(path: &Path, defect: anyhow::Error) -> anyhow::Error {
    let p = path.display();
    let held = readable_values(path);
    let holds = if held.is_empty() {
        "No original value can be read from it. ".to_string()
    } else {
        format!("It appears to hold these original values: {}. ", held.join(", "))
    };
    super::Refused(format!(
        "the backup {p} cannot be used: {defect:#}. Nothing was started and nothing was written. {holds}To recover: restore the values the host needs by hand (`sysctl -w KEY=VALUE`), then move the file aside (`mv {p} {p}.damaged`) and run again; --force does not override this check"
    ))
    .into()
}

/// `key=value` for every original a lenient read of the file finds (for the recovery message only: never restored).
fn readable_values(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return Vec::new() };
    let mut out = Vec::new();
    let mut collect = |o: &serde_json::Value| {
        for (k, v) in o.as_object().into_iter().flatten() {
            match v.as_str() {
                Some(s) => out.push(format!("{k:?}={:?}", s.chars().take(80).collect::<String>())),
                None => out.push(format!("{k:?} (absent before)")),
            }
        }
    };
    collect(&v["originals"]);
    out.truncate(40);
    out
}
