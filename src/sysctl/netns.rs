//! Running code inside a named network namespace (`ip netns add NAME`), so
//! that the `/proc/sys/net` files it opens are that namespace's. The kernel
//! resolves `/proc/sys/net` by the namespace of the task that opens the
//! file, so the code runs on a thread of its own that `setns(2)`s into the
//! namespace; the rest of the process stays where it was.
//!
//! `bench::netns::Netns` (the namespaces the bench creates and deletes)
//! enters and runs through these functions.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where `ip netns add NAME` binds a namespace.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(name)
}

/// Checks that `name` names an existing namespace; the error says how to make one.
pub fn check(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') || !path(name).exists() {
        bail!("netns {name:?}: no such network namespace (expected {}); create it with `ip netns add {name}` or name an existing one (`ip netns list`)", path(name).display());
    }
    Ok(())
}

/// Moves the calling thread into namespace `name`.
pub fn enter(name: &str) -> Result<()> {
    let f = File::open(path(name)).with_context(|| format!("netns {name}: opening {}", path(name).display()))?;
    // SAFETY: setns on a descriptor we own; affects the calling thread only (CLONE_NEWNET).
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("netns {name}: setns failed: {} (entering a network namespace needs CAP_SYS_ADMIN: run as root)", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a thread inside namespace `name` (or on the calling thread when `None`) and returns its result.
pub fn run_in<T: Send>(name: Option<&str>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let Some(name) = name else { return f() };
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(name)?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("netns {name}: a thread running inside the namespace panicked"))?
    })
}
