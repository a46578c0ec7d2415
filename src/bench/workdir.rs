//! The bench's work directory: backups, journals and locks of every
//! configuration switch. It goes when the run ends, however it ends, except
//! when a failed run leaves a backup whose values may not be restored: that
//! file is the only record of what to put back, so it stays and the error
//! says where it is and how to restore it.

use anyhow::Result;
use std::path::{Path, PathBuf};

/// Removes the work directory when the run ends, however it ends, unless `keep` was set: a run
/// whose restore failed keeps its backups there, the only record of the values to put back.
pub struct WorkDir(PathBuf, bool);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The backups under `dir` whose values are not (known to be) restored: in progress, committed,
/// or unreadable. Each is `(namespace directory name, path)`; the layout is the `Switcher`'s
/// `<work>/<namespace or "host">/<slot>/backup.json`.
fn unrestored_backups(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for ns in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for slot in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            let b = slot.path().join("backup.json");
            let restored = matches!(crate::apply::Backup::load_if_exists(&b), Ok(None) | Ok(Some(crate::apply::Backup { state: crate::apply::backup::BackupState::Restored, .. })));
            if !restored {
                out.push((ns.file_name().to_string_lossy().into_owned(), b));
            }
        }
    }
    out.sort();
    out
}

impl WorkDir {
    /// The directory `path` (created by the caller), removed on drop.
    pub fn new(path: PathBuf) -> WorkDir {
        WorkDir(path, false)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `result`, or its error with the backups it left unrestored kept on disk and named, with
    /// the command that restores each.
    pub fn finish<T>(mut self, result: Result<T>) -> Result<T> {
        let e = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let left = unrestored_backups(&self.0);
        if left.is_empty() {
            return Err(e);
        }
        self.1 = true;
        let how = left
            .iter()
            .map(|(ns, b)| match ns.as_str() {
                "host" => format!("semantos rollback --backup {}", b.display()),
                ns => format!("ip netns exec {ns} semantos rollback --backup {}", b.display()),
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(e.context(format!("the bench failed with values it may not have restored; its backups are kept in {} — restore them with: {how}", self.0.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{self, ApplyOptions, AuditLog, HostIdentity, OnRegression, Paths};
    use crate::kb::Kb;
    use crate::sysctl::store::MemStore;
    use crate::sysctl::{SysctlKey, Value};

    #[test]
    fn a_failed_cmd_run_keeps_its_unrestored_backup_and_says_how_to_restore_it() {
        let kb = Kb::embedded().unwrap();
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join(".bench-work-cmd-1");
        // The Switcher's layout: <work>/<namespace or host>/<slot>/backup.json, here committed (an arm whose restore failed).
        let paths = Paths::beside(&dir.join("host/arm/backup.json"));
        std::fs::create_dir_all(dir.join("host/arm")).unwrap();
        let key = SysctlKey::parse("net.core.somaxconn").unwrap();
        let store = MemStore::new([(key.clone(), Value::int(128))]);
        let host = HostIdentity { hostname: "h".into(), boot_id: "b".into(), kernel_release: "6.18".into() };
        let opts = ApplyOptions { paths: paths.clone(), batch_size: 2, on_regression: OnRegression::RollbackAll, persist: None, run_id: "t".into(), now_s: 1, force: false, rollout_id: None };
        apply::apply(&store, &kb, &[(key.clone(), Value::int(1024))], serde_json::json!({}), &host, &opts, None, &AuditLog::none()).unwrap();
        let failed: Result<()> = Err(anyhow::anyhow!("restoring the start values after arm semantos"));
        let e = format!("{:#}", WorkDir(dir.clone(), false).finish(failed).unwrap_err());
        assert!(paths.backup.exists(), "the only backup was deleted: {e}");
        assert!(e.contains(&format!("semantos rollback --backup {}", paths.backup.display())) && e.contains("restoring the start values"), "{e}");
        // Once restored, a failure has nothing to keep: the directory goes.
        apply::rollback(&store, &kb, &paths, &host, false, "r", 2, &AuditLog::none()).unwrap();
        let failed: Result<()> = Err(anyhow::anyhow!("a later failure"));
        assert_eq!(format!("{:#}", WorkDir(dir.clone(), false).finish(failed).unwrap_err()), "a later failure");
        assert!(!dir.exists());
    }
}
