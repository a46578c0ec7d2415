//! Where a transaction keeps its files: the backup, and the journal and lock beside it.
//!
//! Its own file because both the transaction and the fences name these paths, and a fence
//! must not depend on the transaction that consults it.

use std::path::{Path, PathBuf};

/// Files a transaction uses.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The backup (`experiments/backup/sysctl_backup.json`).
    pub backup: PathBuf,
    /// The journal, beside the backup.
    pub journal: PathBuf,
    /// The lock, beside the backup.
    pub lock: PathBuf,
}

impl Paths {
    /// Journal and lock beside `backup`.
    pub fn beside(backup: &Path) -> Self {
        let dir = backup.parent().map(Path::to_path_buf).unwrap_or_default();
        Self { backup: backup.to_path_buf(), journal: backup.with_extension("journal"), lock: dir.join("semantos.lock") }
    }
}
