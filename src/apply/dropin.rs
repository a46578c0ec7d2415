//! The `--persist` drop-in: a sysctl.d file semantos writes, and removes or
//! restores only when it is still a file semantos wrote. Its path comes from
//! a backup, which is not trusted: rollback runs as root, and a path to
//! another file (or a symlink to one) must never be deleted.

use anyhow::{Context, Result};
use std::path::Path;

/// How every drop-in semantos writes begins; a file without it is not ours.
pub const HEADER_PREFIX: &str = "# Written by semantos run ";

/// The first header line (without `# `) of a drop-in written by run `run_id`.
pub fn header(run_id: &str) -> String {
    format!("Written by semantos run {run_id} — committed values only; `semantos rollback` restores what was here before.")
}

/// What became of a drop-in named by a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// It was ours and is gone.
    Removed,
    /// Nothing was there.
    Absent,
    /// Left in place: why (the path, what is there, what to do).
    Refused(String),
}

/// Why the file at `path` is not one semantos wrote, if it is not (`Ok(None)` also when nothing is there).
pub fn not_ours(path: &Path) -> Result<Option<String>> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("looking at the drop-in {}", path.display())),
    };
    let why = if m.file_type().is_symlink() {
        Some("is a symbolic link".to_string())
    } else if !m.file_type().is_file() {
        Some("is not a regular file".to_string())
    } else {
        let text = std::fs::read(path).with_context(|| format!("reading the drop-in {}", path.display()))?;
        (!text.starts_with(HEADER_PREFIX.as_bytes())).then(|| format!("does not begin with the header semantos writes ({:?})", HEADER_PREFIX.trim()))
    };
    Ok(why.map(|w| format!("the drop-in {} {w}, so it is not a file semantos wrote; left in place (remove it by hand if it holds values you no longer want at boot)", path.display())))
}

/// Removes the drop-in at `path` only if semantos wrote it.
pub fn remove_ours(path: &Path) -> Result<Removal> {
    if let Some(why) = not_ours(path)? {
        return Ok(Removal::Refused(why));
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Removal::Removed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Removal::Absent),
        Err(e) => Err(e).with_context(|| format!("values restored, but removing the drop-in {} failed", path.display())),
    }
}

/// The bytes of the file at `path` before semantos writes it (None: no file), so they can be put back
/// exactly. Read before the first write: a link, a directory or unreadable text stops the run there.
pub fn read_for_backup(path: &Path) -> Result<Option<String>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("--persist {}: cannot look at the file; nothing was written", path.display())),
        Ok(m) if m.file_type().is_symlink() => anyhow::bail!("--persist {} is a symbolic link; refusing to write through it, nothing was written (remove the link or choose another path)", path.display()),
        Ok(m) if !m.file_type().is_file() => anyhow::bail!("--persist {} is not a regular file; nothing was written (choose a file path)", path.display()),
        Ok(_) => {}
    }
    std::fs::read_to_string(path).map(Some).with_context(|| format!("--persist {}: cannot read its current content (a sysctl.d file is text); nothing was written", path.display()))
}

/// What putting a drop-in back did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutBack {
    /// It already held those bytes (or was absent and should be).
    Unchanged,
    /// Removed (there was no file before).
    Removed,
    /// Its earlier content was written back.
    Restored,
}

/// Puts the drop-in at `path` back to `before` (None: no file), byte for byte. A file that is not
/// ours is never removed (the caller decides whether to overwrite one: see `not_ours`).
pub fn put_back(path: &Path, before: Option<&str>) -> Result<PutBack> {
    let now = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => Some(std::fs::read_to_string(path).unwrap_or_default()),
    };
    if now.as_deref() == before {
        return Ok(PutBack::Unchanged);
    }
    match before {
        None => match remove_ours(path)? {
            Removal::Refused(why) => anyhow::bail!("{why}"),
            _ => Ok(PutBack::Removed),
        },
        Some(text) => {
            super::files::write_atomic(path, text.as_bytes(), 0o644).with_context(|| format!("putting back the earlier content of the drop-in {}", path.display()))?;
            Ok(PutBack::Restored)
        }
    }
}
