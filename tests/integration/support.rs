//! Shared helpers: the binary, privilege gating, throwaway network namespaces.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every file below `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The `semantos` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_semantos"))
}

/// The `semantos-agent` binary under test: the agent alone, the executable the service runs.
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_semantos-agent"))
}

/// Runs `semantos` with `args` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin()).args(args).current_dir(dir).env_remove("SEMANTOS_FAULT").output().expect("running semantos")
}

/// stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn missing_privilege() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no working `ip` command (iproute2)".into()),
    }
}

/// True when a privileged test may run; skips with a reason, or panics under SEMANTOS_REQUIRE_PRIVILEGED=1.
pub fn privileged(test: &str) -> bool {
    let Some(why) = missing_privilege() else { return true };
    if std::env::var("SEMANTOS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: SEMANTOS_REQUIRE_PRIVILEGED=1 but the test cannot run: {why}");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// A network namespace deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `semantos-<tag>-<pid>`.
    pub fn create(tag: &str) -> Netns {
        let name = format!("semantos-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let o = Command::new("ip").args(["netns", "add", &name]).output().expect("ip netns add");
        assert!(o.status.success(), "ip netns add {name}: {}", String::from_utf8_lossy(&o.stderr));
        Netns { name }
    }

    /// Reads a sysctl inside the namespace.
    pub fn read(&self, key: &str) -> String {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let o = Command::new("ip").args(["netns", "exec", &self.name, "cat", &path]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Runs `semantos` inside the namespace, in `dir`, with extra environment.
    pub fn semantos(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(bin()).args(args).current_dir(dir).env_remove("SEMANTOS_FAULT");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// The host's value of a sysctl (the test process's own namespace).
pub fn host_value(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/"))).unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ")
}
