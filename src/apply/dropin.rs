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
