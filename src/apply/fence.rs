//! Fences: a fleet rollout that has been rolled back on this host is fenced,
//! so that a late apply of the same rollout is refused instead of landing.
//!
//! Why: a controller killed mid-wave leaves its remote `semantos apply`
//! running (ssh does not stop a remote command whose client died), and that
//! apply may only reach the host's lock after `rollout --rollback-fleet` has
//! restored it. Both take the host's lock: an apply that got there first
//! finishes before the fence is written and is then restored; one that
//! comes later finds the fence and writes nothing. A fence is an empty file
//! named after the rollout in `fenced/` beside the backup.

use super::lock::Lock;
use super::paths::Paths;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// Checks a rollout id: 1–64 characters of `A-Z a-z 0-9 . _ -`, not starting with a dot (it names a file).
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || id.starts_with('.')
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!(
            "rollout id {id:?} is invalid; use 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`"
        );
    }
    Ok(())
}

/// The fence file of rollout `id` for the transaction files at `paths`.
pub fn path(paths: &Paths, id: &str) -> PathBuf {
    paths.lock.with_file_name("fenced").join(id)
}

/// The fence of rollout `id`, if it has been fenced here.
pub fn fenced(paths: &Paths, id: &str) -> Result<Option<PathBuf>> {
    validate_id(id)?;
    let p = path(paths, id);
    Ok(p.exists().then_some(p))
}

/// Fences rollout `id` under the host's lock (fails at once if another run holds it) and makes the fence durable.
pub fn fence(paths: &Paths, id: &str) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    validate_id(id)?;
    let _lock = Lock::acquire(&paths.lock)?;
    let p = path(paths, id);
    let dir = p.parent().expect("the fence has a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the fence directory {}", dir.display()))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("writing the fence {}", p.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing the fence {}", p.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_escape_or_hide_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "a b", "x\n", &"a".repeat(65)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        validate_id("rollout-1795493762-7145").unwrap();
    }

    #[test]
    fn a_fence_is_found_after_it_is_written_and_waits_for_no_one() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::beside(&d.path().join("b/sysctl_backup.json"));
        assert_eq!(fenced(&paths, "r1").unwrap(), None);
        let p = fence(&paths, "r1").unwrap();
        assert_eq!(fenced(&paths, "r1").unwrap(), Some(p.clone()));
        assert_eq!(fenced(&paths, "r2").unwrap(), None);
        // Fencing twice is fine; fencing while another run holds the lock fails at once.
        fence(&paths, "r1").unwrap();
        let _held = Lock::acquire(&paths.lock).unwrap();
        let e = fence(&paths, "r2").unwrap_err().to_string();
        assert!(e.contains("holds the lock"), "{e}");
    }
}
