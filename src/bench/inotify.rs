//! A file watcher that needs more inotify watches than its user may hold:
//! the inotify workload. It watches every directory of a tree of `dirs`
//! directories (as IDEs, build watchers and log shippers do), in a fresh
//! user namespace whose limits are the ones in force for this arm
//! (`userns`); where `inotify_add_watch` fails with ENOSPC it falls back,
//! as such watchers do, to rescanning the directories it could not watch
//! every `rescan`.
//!
//! Then `changes` files are created, one every `every`, in directories
//! spread over the tree; the sample is the time from creating a file to the
//! watcher noticing it (an inotify event, or the rescan seeing the
//! directory's mtime move). `wanted` is the directory count, `achieved` the
//! watches established; a change not noticed within 2 s is an error.

use super::userns;
use super::workload::{Env, RunOutput, Workload};
use crate::sysctl::{SysctlKey, SysctlStore, TreeStore};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};


/// The user-namespace limits of `inotify-watchers`: the KB key and the file of the child namespace that is its per-namespace form.
pub const INOTIFY_KEYS: [(&str, &str); 2] = [("fs.inotify.max_user_watches", "user/max_inotify_watches"), ("fs.inotify.max_user_instances", "user/max_inotify_instances")];
/// The inotify-watchers workload.
#[derive(Debug)]
pub struct InotifyWatchers {
    /// Directories to watch.
    pub dirs: usize,
    /// Files created per run.
    pub changes: usize,
    /// Time between two changes.
    pub every: Duration,
    /// The fallback rescan interval of directories without a watch.
    pub rescan: Duration,
    /// The tree, made on the first run and removed on drop.
    tree: OnceLock<PathBuf>,
}

/// A change not noticed after this long is an error.
const LOST_AFTER: Duration = Duration::from_secs(2);

impl InotifyWatchers {
    /// A watcher of `dirs` directories to which `changes` files are made, one every `every`, with a `rescan` fallback.
    pub fn new(dirs: usize, changes: usize, every: Duration, rescan: Duration) -> Self {
        Self { dirs, changes, every, rescan, tree: OnceLock::new() }
    }

    fn dir(root: &Path, i: usize) -> PathBuf {
        root.join(format!("d{:03}", i / 1000)).join(format!("{:03}", i % 1000))
    }

    /// The tree under the temporary directory, made once.
    fn tree(&self) -> Result<&Path> {
        if let Some(t) = self.tree.get() {
            return Ok(t);
        }
        let root = std::env::temp_dir().join(format!("semantos-bench-inotify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for i in 0..self.dirs {
            let d = Self::dir(&root, i);
            std::fs::create_dir_all(&d).with_context(|| format!("creating the watched tree: {}", d.display()))?;
        }
        Ok(self.tree.get_or_init(|| root))
    }
}

impl Drop for InotifyWatchers {
    fn drop(&mut self) {
        if let Some(t) = self.tree.get() {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

/// The limits of this arm, read from the sandbox tree the apply transaction writes, as `(file of the user namespace, value)`.
fn limits(tree: &Path) -> Result<Vec<(&'static str, String)>> {
    let store = TreeStore::sandbox(tree);
    INOTIFY_KEYS
        .iter()
        .map(|(key, file)| {
            let v = store.read(&SysctlKey::parse(key)?).with_context(|| format!("reading {key} from the user namespace's limits at {}", tree.display()))?;
            Ok((*file, v.to_string()))
        })
        .collect()
}

fn mtime_ns(p: &Path) -> i128 {
    std::fs::metadata(p).map(|m| i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())).unwrap_or(0)
}

/// The directories named by the events in `buf[..n]` (by watch descriptor).
fn event_wds(buf: &[u8]) -> Vec<i32> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let wd = i32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
        let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
        out.push(wd);
        at += 16 + len;
    }
    out
}

impl Workload for InotifyWatchers {
    fn describe(&self) -> String {
        format!(
            "a watcher of {} directories in a fresh user namespace (rescans unwatched ones every {} ms); {} files created, one every {} ms",
            self.dirs,
            self.rescan.as_millis(),
            self.changes,
            self.every.as_millis()
        )
    }

    fn run(&self, env: &Env) -> Result<RunOutput> {
        let lim = limits(env.tree()?)?;
        let root = self.tree()?.to_path_buf();
        let fd = userns::inotify_in_fresh_userns(&lim)?;
        let mut out = RunOutput { wanted: self.dirs as u64, ..Default::default() };
        let mut by_wd: HashMap<i32, usize> = HashMap::new();
        let mut unwatched: Vec<(usize, i128)> = Vec::new();
        let mask = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE;
        for i in 0..self.dirs {
            let d = Self::dir(&root, i);
            let c = CString::new(d.as_os_str().as_bytes())?;
            // SAFETY: a valid C string and our inotify descriptor.
            let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
            if wd >= 0 {
                by_wd.insert(wd, i);
                out.achieved += 1;
            } else {
                unwatched.push((i, mtime_ns(&d)));
            }
        }
        let t0 = Instant::now();
        let mut pending: HashMap<usize, Instant> = HashMap::new();
        let mut made: Vec<PathBuf> = Vec::with_capacity(self.changes);
        let mut next_rescan = t0 + self.rescan;
        let mut buf = vec![0u8; 64 * 1024];
        let mut k = 0;
        loop {
            let now = Instant::now();
            if k < self.changes && now >= t0 + self.every * k as u32 {
                // Spread over the tree (7919 is prime, so consecutive changes land in distant directories).
                let i = (k * 7919 + 13) % self.dirs;
                let f = Self::dir(&root, i).join(format!("change-{k}"));
                pending.entry(i).or_insert_with(Instant::now);
                std::fs::write(&f, b"x").with_context(|| format!("creating {}", f.display()))?;
                made.push(f);
                k += 1;
                continue;
            }
            if now >= next_rescan {
                for (i, seen) in unwatched.iter_mut() {
                    let m = mtime_ns(&Self::dir(&root, *i));
                    if m != *seen {
                        *seen = m;
                        if let Some(t) = pending.remove(i) {
                            out.samples_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                }
                next_rescan += self.rescan;
            }
            pending.retain(|_, t| {
                let lost = t.elapsed() > LOST_AFTER;
                if lost {
                    out.errors += 1;
                    out.samples_ms.push(LOST_AFTER.as_secs_f64() * 1000.0);
                }
                !lost
            });
            if k >= self.changes && pending.is_empty() {
                break;
            }
            let next_change = if k < self.changes { t0 + self.every * k as u32 } else { next_rescan };
            let wait = next_change.min(next_rescan).saturating_duration_since(Instant::now());
            let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, wait.as_millis().min(1000) as i32) };
            if r > 0 {
                // SAFETY: read into our buffer from our non-blocking descriptor.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    for wd in event_wds(&buf[..n as usize]) {
                        if let Some(t) = by_wd.get(&wd).and_then(|i| pending.remove(i)) {
                            out.samples_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                }
            }
        }
        for f in made {
            let _ = std::fs::remove_file(f);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_by_their_name_length() {
        let mut b = Vec::new();
        for (wd, name) in [(3i32, &b"change-1\0\0\0\0\0\0\0\0"[..]), (9, &b""[..])] {
            b.extend_from_slice(&wd.to_ne_bytes());
            b.extend_from_slice(&(libc::IN_CREATE).to_ne_bytes());
            b.extend_from_slice(&0u32.to_ne_bytes());
            b.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            b.extend_from_slice(name);
        }
        assert_eq!(event_wds(&b), vec![3, 9]);
    }
}
