//! Network namespaces the bench creates and removes, and running code inside
//! one. A namespace is made with `ip netns add` (so `ip netns exec` and the
//! user can see it while the bench runs) and deleted by a Drop guard.
//!
//! Code enters a namespace with `setns(2)` on a thread of its own: the
//! thread's sockets, the TUN devices it creates, the `/proc/sys/net` files it
//! opens and `/proc/thread-self/net` all belong to that namespace, while the
//! rest of the process stays where it was. A socket or file opened there
//! keeps its namespace when another thread uses it.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// Prefix of every namespace the bench creates: `sbench-<pid>-<tag>`.
pub const NAME_PREFIX: &str = "sbench-";

/// A named network namespace; deleted on drop when the bench created it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    owned: bool,
}

/// Runs `ip` with `args`; the error names the namespace and quotes `ip`'s message.
pub fn ip(ns: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().with_context(|| format!("netns {ns}: running `ip {}` (is iproute2 installed?)", args.join(" ")))?;
    if !out.status.success() {
        bail!("netns {ns}: `ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Netns {
    /// Creates `sbench-<pid>-<tag>`. A namespace of that name can only be a
    /// leftover of a process with our PID, so it is replaced.
    pub fn create(tag: &str) -> Result<Netns> {
        let name = format!("{NAME_PREFIX}{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&name, &["netns", "add", &name])?;
        Ok(Netns { name, owned: true })
    }

    /// A namespace someone else made (`ip netns add NAME`); never deleted by the bench.
    pub fn existing(name: &str) -> Result<Netns> {
        let ns = Netns { name: name.to_string(), owned: false };
        if name.is_empty() || name.contains('/') || !ns.path().exists() {
            bail!("netns {name}: no such network namespace (expected {}; create it with `ip netns add {name}`)", ns.path().display());
        }
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its bind mount, `/var/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        crate::sysctl::netns::path(&self.name)
    }

    /// Runs `ip -n <name> args...`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&self.name, &all)
    }

    /// Moves the calling thread into this namespace.
    pub fn enter(&self) -> Result<()> {
        crate::sysctl::netns::enter(&self.name)
    }

    /// Runs `f` on a thread inside this namespace and returns its result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        crate::sysctl::netns::run_in(Some(&self.name), f)
    }

    /// Starts `f` on a named thread inside this namespace.
    pub fn spawn<T: Send + 'static>(&self, what: &str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<std::thread::JoinHandle<Result<T>>> {
        let me = Netns { name: self.name.clone(), owned: false };
        std::thread::Builder::new()
            .name(format!("{what}@{}", self.name))
            .spawn(move || {
                me.enter()?;
                f()
            })
            .with_context(|| format!("netns {}: starting the {what} thread", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.owned {
            let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        }
    }
}

/// Runs `f` inside `ns`, or on the calling thread's own namespace when `ns` is `None`.
pub fn run_in<T: Send>(ns: Option<&Netns>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    match ns {
        Some(ns) => ns.run(f),
        None => f(),
    }
}

/// Deletes namespaces left by bench processes that no longer exist (a run
/// killed before its Drop guards ran). Only names of the exact form
/// `sbench-<pid>-<tag>` whose PID is not alive are touched.
pub fn remove_stale() -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir("/var/run/netns") else { return removed };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NAME_PREFIX) else { continue };
        let Some((pid, _tag)) = rest.split_once('-') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if Command::new("ip").args(["netns", "del", &name]).output().is_ok_and(|o| o.status.success()) {
            removed.push(name);
        }
    }
    removed
}
