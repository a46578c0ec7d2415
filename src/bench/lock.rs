//! One benchmark at a time on a machine. Two benchmarks sharing the same few
//! cores disturb each other's latencies (and a relay starved of CPU becomes
//! the bottleneck it emulates), so a second `semantos bench` waits for the
//! first. The lock is an `flock` on a file in `/run/lock` (or the temporary
//! directory): the kernel releases it when the holder exits, however it
//! exits, so a killed run never blocks the next one.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Holds the machine-wide bench lock until dropped.
#[derive(Debug)]
pub struct BenchLock {
    _file: File,
}

/// Where the lock lives.
pub fn lock_path() -> PathBuf {
    let run = PathBuf::from("/run/lock");
    if run.is_dir() { run.join("semantos-bench.lock") } else { std::env::temp_dir().join("semantos-bench.lock") }
}

fn flock(f: &File, how: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), how) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Takes the lock, waiting (and saying so through `waiting`) while another bench holds it.
pub fn acquire(waiting: &dyn Fn(&str)) -> Result<BenchLock> {
    let path = lock_path();
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).with_context(|| format!("opening the bench lock {}", path.display()))?;
    if let Err(e) = flock(&f, libc::LOCK_EX | libc::LOCK_NB) {
        if e.kind() != std::io::ErrorKind::WouldBlock {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        waiting(&format!(
            "waiting for another semantos bench (pid {}) to finish: two benchmarks on the same cores disturb each other ({})",
            holder.trim(),
            path.display()
        ));
        flock(&f, libc::LOCK_EX).with_context(|| format!("locking {}", path.display()))?;
    }
    f.set_len(0)?;
    f.rewind()?;
    write!(f, "{}", std::process::id())?;
    Ok(BenchLock { _file: f })
}
