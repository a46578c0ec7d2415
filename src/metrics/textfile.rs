//! The metrics as a node_exporter textfile (`--collector.textfile.directory`): written to a
//! temporary file in the same directory, synced, then renamed over the target, so the collector
//! reads either the previous file or the new one, never half of one. The temporary name does not
//! end in `.prom`, so the collector never picks it up.

use super::{render, AgentMetrics, MetricsError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes [`render`]`(m)` to `path` atomically; on error the previous file is left whole.
pub fn write_textfile(path: &Path, m: &AgentMetrics) -> Result<(), MetricsError> {
    let name = path.file_name().ok_or_else(|| MetricsError::TextfilePath(path.to_path_buf()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let fail = |p: &Path, source| MetricsError::Textfile { path: p.to_path_buf(), source };
    let written = write_synced(&tmp, render(m).as_bytes()).map_err(|e| fail(&tmp, e)).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| fail(path, e))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp); // leave no stray temporary behind
        return written;
    }
    // The rename is durable once the directory is synced; a failure here loses nothing readable.
    let _ = File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

fn write_synced(tmp: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    // create_new: a leftover from a crashed run with the same PID is removed first, never appended.
    let _ = std::fs::remove_file(tmp);
    let mut f = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}
