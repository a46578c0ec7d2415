//! What `apply` and `rollback` (and the dry run's warning) share before they
//! write: the state files the flags resolve to, the root check, the faults a
//! test build may inject, the recovery hint that repeats the user's flags,
//! and the mapping of the transaction's refusals to exit code 3.

use super::common::{CliError, refused, shell_word};
use super::exit;
use super::flags::{KbDirArg, PolicyArg, StateArgs, StateLoc};
use super::state::{self, Origin, State};
use crate::apply::Paths;
use crate::sysctl::TreeStore;
use crate::sysctl::store::Fault;
use anyhow::Result;
use std::path::Path;

/// The state files the flags (and environment, and current directory) name.
pub fn resolve(s: &StateArgs) -> State {
    state::resolve(s.loc.state_dir.as_deref(), s.loc.backup.as_deref(), s.audit_log.as_deref(), None, &state::Env::read())
}

/// The state files of a command that writes no audit log (`dry-run`).
pub fn resolve_loc(s: &StateLoc) -> State {
    resolve(&StateArgs { loc: s.clone(), audit_log: None })
}

/// The transaction's paths: backup, and the journal and lock beside it.
pub fn paths(st: &State) -> Paths {
    Paths::beside(&st.backup)
}

/// The rollback command that acts on the same files as this run: the user's `--sysctl-root`,
/// `--state-dir` (or the `SEMANTOS_STATE_DIR` in force), `--backup`, `--audit-log`, `--kb` and
/// `--policy` repeated, so a copied hint cannot restore from, or into, another place.
pub fn rollback_line(sysctl_root: &Path, s: &StateLoc, audit_log: Option<&Path>, st: &State, kb: &KbDirArg, policy: &PolicyArg) -> String {
    let mut w = vec!["semantos".to_string(), "rollback".to_string()];
    let mut flag = |name: &str, v: &Path| {
        w.push(name.to_string());
        w.push(shell_word(&v.display().to_string()));
    };
    if sysctl_root != Path::new("/proc/sys") {
        flag("--sysctl-root", sysctl_root);
    }
    // The state directory matters only for the files not named explicitly.
    let all_named = s.backup.is_some() && audit_log.is_some();
    match (&s.state_dir, st.origin) {
        (Some(d), _) if !all_named => flag("--state-dir", d),
        (None, Origin::Env) if !all_named => flag("--state-dir", &st.dir),
        _ => {}
    }
    if let Some(b) = &s.backup {
        flag("--backup", b);
    }
    if let Some(a) = audit_log {
        flag("--audit-log", a);
    }
    if let Some(k) = &kb.kb {
        flag("--kb", k);
    }
    if let Some(p) = &policy.policy {
        flag("--policy", p);
    }
    w.join(" ")
}

/// `msg` with its generic rollback advice replaced by `line` (the same files as this run).
pub fn with_hint(msg: &str, line: &str) -> String {
    let seed = "`semantos --applier sysctl --rollback` (or `semantos rollback`)";
    if msg.contains(seed) {
        return msg.replace(seed, &format!("`{line}`"));
    }
    msg.replace("`semantos rollback`", &format!("`{line}`"))
}

/// The transaction's own refusals (taken before any write) as exit 3, with the recovery hint;
/// other errors keep their code. `apply::Refused` (a backup the checks refuse) stays exit 2.
pub fn classify(e: anyhow::Error, line: &str) -> anyhow::Error {
    if e.downcast_ref::<CliError>().is_some() || e.chain().any(|c| c.is::<crate::apply::Refused>()) {
        return e;
    }
    let msg = format!("{e:#}");
    if msg.starts_with("refusing to ") || msg.starts_with("another semantos run holds the lock") {
        return refused(with_hint(&msg, line));
    }
    if msg.contains("`semantos rollback`") || msg.contains("`semantos --applier sysctl --rollback`") {
        return CliError { code: exit::FAILED, message: with_hint(&msg, line) }.into();
    }
    e
}

/// Writing the live /proc/sys needs root: refused (exit 3) before anything is read or written.
pub fn require_root(store: &TreeStore, what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if store.root().starts_with("/proc") && euid != 0 {
        return Err(refused(format!("{what} needs root: writing {} requires root (CAP_SYS_ADMIN / CAP_NET_ADMIN); re-run with sudo. Nothing was written.", store.root().display())));
    }
    Ok(())
}

/// The store faults `SEMANTOS_FAULT` asks for. Only a build with the `fault-injection` feature
/// (the test suite's, scripts/test.sh) reads the variable: in a default build no environment can
/// make the binary fail its writes or SIGKILL itself mid-apply.
pub fn faults() -> Result<Vec<Fault>> {
    let spec = if cfg!(feature = "fault-injection") { std::env::var("SEMANTOS_FAULT").ok() } else { None };
    faults_from(spec.as_deref())
}

/// Parses a `SEMANTOS_FAULT` value (comma-separated faults; empty or absent: none).
fn faults_from(spec: Option<&str>) -> Result<Vec<Fault>> {
    match spec {
        Some(spec) if !spec.is_empty() => spec.split(',').map(|s| Fault::parse(s.trim()).map_err(|e| super::common::invalid(format!("SEMANTOS_FAULT: {e}")))).collect(),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn semantos_fault_values_parse_or_name_the_variable() {
        // Parsing only: whether the binary reads the variable at all is checked on the binary
        // (tests/integration/monitor.rs, semantos_fault_is_obeyed_only_by_a_fault_injection_build).
        assert_eq!(faults_from(Some("kill-before#1, write#2:EIO")).unwrap(), vec![Fault::KillBeforeWrite { nth: 1 }, Fault::FailWrite { nth: 2, errno: libc::EIO }]);
        assert!(faults_from(Some("explode")).unwrap_err().to_string().contains("SEMANTOS_FAULT"));
        assert_eq!(faults_from(Some("")).unwrap(), vec![]);
    }

    #[test]
    fn the_recovery_hint_repeats_the_flags_the_user_gave() {
        let s = StateLoc { state_dir: None, backup: Some(PathBuf::from("my dir/b.json")) };
        let st = state::resolve(None, s.backup.as_deref(), None, None, &state::Env { state_dir: Some("/st".into()), ..Default::default() });
        let line = rollback_line(Path::new("/tmp/tree"), &s, None, &st, &KbDirArg { kb: Some("kb".into()) }, &PolicyArg::default());
        assert_eq!(line, "semantos rollback --sysctl-root /tmp/tree --state-dir /st --backup 'my dir/b.json' --kb kb");
        let msg = "an earlier run (r) was interrupted. Run `semantos --applier sysctl --rollback` (or `semantos rollback`) to restore";
        assert_eq!(with_hint(msg, &line), format!("an earlier run (r) was interrupted. Run `{line}` to restore"));
        let e = classify(anyhow::anyhow!("another semantos run holds the lock /x/semantos.lock (pid 1); wait for it to finish"), &line);
        assert_eq!(e.downcast_ref::<CliError>().map(|c| c.code), Some(exit::REFUSED));
    }
}
