//! The exclusive lock: one apply or rollback at a time per backup location.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Held for the life of a run; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock at `path` without waiting; fails at once if another run holds it.
    pub fn acquire(path: &Path) -> Result<Lock> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // 0600: the pid inside is nobody else's business, and no other user should hold our lock open.
        let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path).with_context(|| format!("opening lock {}", path.display()))?;
        // SAFETY: flock on a valid, owned descriptor.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            bail!("another semantos run holds the lock {} ({}); wait for it to finish", path.display(), holder_text(&holder));
        }
        f.set_len(0)?;
        f.rewind()?;
        write!(f, "{}", std::process::id())?;
        Ok(Lock { _file: f })
    }
}

/// Names the holder from the lock file's text: the holder writes its pid just after it takes the
/// lock, so a run that lost the race by microseconds can find the file still empty.
fn holder_text(text: &str) -> String {
    match text.trim() {
        "" => "its pid not written yet: it started a moment ago".into(),
        pid => format!("pid {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_at_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("semantos.lock");
        let _a = Lock::acquire(&p).unwrap();
        let e = Lock::acquire(&p).unwrap_err().to_string();
        assert!(e.contains("another semantos run holds the lock"), "{e}");
        assert!(e.contains(&format!("(pid {})", std::process::id())), "{e}");
    }

    #[test]
    fn a_holder_that_has_not_written_its_pid_yet_is_not_named_pid_empty() {
        assert_eq!(holder_text(""), "its pid not written yet: it started a moment ago");
        assert_eq!(holder_text(" 42\n"), "pid 42");
    }
}
