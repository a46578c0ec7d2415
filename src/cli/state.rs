//! Where the live-host commands keep their state (backup, journal, lock,
//! fences, audit log, rollout state), decided once from the flags, the
//! environment and the current directory, so an apply made from one
//! directory is rolled back from any other.
//!
//! The rule, first match wins:
//! 1. `--backup`, `--audit-log`, `--state` name a file: that file.
//! 2. `--state-dir DIR`, else `SEMANTOS_STATE_DIR`: DIR (tests use the variable, so they never
//!    write to /var/lib).
//! 3. The current directory is a SemantOS checkout (its `Cargo.toml` has `[package]`
//!    `name = "semantos"`): the seed's documented paths in it,
//!    `experiments/backup/sysctl_backup.json`, `logs/semantos-audit.jsonl`,
//!    `experiments/rollout/state.json` (experiments/*.sh run from the checkout).
//! 4. Root: `/var/lib/semantos` (the audit log too: one directory to back up and to inspect).
//! 5. Anyone else: `$XDG_STATE_HOME/semantos`, else `~/.local/state/semantos`.
//!
//! In a state directory: `sysctl_backup.json` (the journal `sysctl_backup.journal`, the lock
//! `semantos.lock` and the rollout fences beside it), `audit.jsonl`, `rollout/state.json`.
//! Resolving writes nothing: a command that finds nothing to do creates no directory.

use std::path::{Path, PathBuf};

/// The environment variable that moves the default state directory.
pub const STATE_DIR_ENV: &str = "SEMANTOS_STATE_DIR";
/// Root's state directory.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/semantos";

/// What the resolution reads from the process: passed in, so the rule is a pure function.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `SEMANTOS_STATE_DIR`, when set and not empty.
    pub state_dir: Option<PathBuf>,
    /// Whether the current directory is a SemantOS checkout.
    pub checkout: bool,
    /// Effective user id.
    pub euid: u32,
    /// `XDG_STATE_HOME`, when set, absolute.
    pub xdg_state_home: Option<PathBuf>,
    /// `HOME`, when set.
    pub home: Option<PathBuf>,
}

impl Env {
    /// Reads the real process environment and current directory.
    pub fn read() -> Env {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        Env { state_dir: var(STATE_DIR_ENV), checkout: is_checkout(Path::new(".")), euid, xdg_state_home: var("XDG_STATE_HOME").filter(|p| p.is_absolute()), home: var("HOME") }
    }
}

/// Whether `dir` is a SemantOS checkout: `Cargo.toml` whose `[package]` is named `semantos`.
pub fn is_checkout(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else { return false };
    let Ok(v) = text.parse::<toml::Table>() else { return false };
    v.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str()) == Some("semantos")
}

/// Why the state lives where it does (for messages and the recovery hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--state-dir`.
    Flag,
    /// `SEMANTOS_STATE_DIR`.
    Env,
    /// The current directory is a checkout.
    Checkout,
    /// Root's /var/lib/semantos.
    System,
    /// The user's XDG state directory.
    User,
}

impl Origin {
    /// Where the choice came from, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Origin::Flag => "--state-dir",
            Origin::Env => "SEMANTOS_STATE_DIR",
            Origin::Checkout => "the SemantOS checkout in the current directory",
            Origin::System => "root's default",
            Origin::User => "this user's default",
        }
    }
}

/// The resolved state locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Backup file (journal, lock and fences beside it).
    pub backup: PathBuf,
    /// Audit log (JSON lines).
    pub audit_log: PathBuf,
    /// Rollout state file.
    pub rollout_state: PathBuf,
    /// The directory the defaults came from, and why.
    pub dir: PathBuf,
    /// Why.
    pub origin: Origin,
}

/// The default state directory and why, before any per-file flag.
pub fn default_dir(flag: Option<&Path>, env: &Env) -> (PathBuf, Origin) {
    if let Some(d) = flag {
        return (d.to_path_buf(), Origin::Flag);
    }
    if let Some(d) = &env.state_dir {
        return (d.clone(), Origin::Env);
    }
    if env.checkout {
        return (PathBuf::from("."), Origin::Checkout);
    }
    if env.euid == 0 {
        return (PathBuf::from(SYSTEM_STATE_DIR), Origin::System);
    }
    let base = env.xdg_state_home.clone().or_else(|| env.home.as_ref().map(|h| h.join(".local/state"))).unwrap_or_else(|| PathBuf::from(SYSTEM_STATE_DIR));
    (base.join("semantos"), Origin::User)
}

/// Resolves every state file: a file flag wins, else the default directory's layout.
pub fn resolve(state_dir: Option<&Path>, backup: Option<&Path>, audit_log: Option<&Path>, rollout_state: Option<&Path>, env: &Env) -> State {
    let (dir, origin) = default_dir(state_dir, env);
    let (b, a, r) = if origin == Origin::Checkout {
        (PathBuf::from("experiments/backup/sysctl_backup.json"), PathBuf::from("logs/semantos-audit.jsonl"), PathBuf::from("experiments/rollout/state.json"))
    } else {
        (dir.join("sysctl_backup.json"), dir.join("audit.jsonl"), dir.join("rollout/state.json"))
    };
    State {
        backup: backup.map(Path::to_path_buf).unwrap_or(b),
        audit_log: audit_log.map(Path::to_path_buf).unwrap_or(a),
        rollout_state: rollout_state.map(Path::to_path_buf).unwrap_or(r),
        dir,
        origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(state_dir: Option<&str>, checkout: bool, euid: u32) -> Env {
        Env { state_dir: state_dir.map(PathBuf::from), checkout, euid, xdg_state_home: None, home: Some("/home/u".into()) }
    }

    #[test]
    fn each_rule_wins_over_the_ones_below_it() {
        let p = |s: &State| (s.backup.display().to_string(), s.audit_log.display().to_string(), s.origin);
        let all = env(Some("/e"), true, 0);
        assert_eq!(p(&resolve(Some(Path::new("/f")), Some(Path::new("b.json")), None, None, &all)), ("b.json".into(), "/f/audit.jsonl".into(), Origin::Flag));
        assert_eq!(p(&resolve(None, None, None, None, &all)), ("/e/sysctl_backup.json".into(), "/e/audit.jsonl".into(), Origin::Env));
        assert_eq!(p(&resolve(None, None, None, None, &env(None, true, 0))), ("experiments/backup/sysctl_backup.json".into(), "logs/semantos-audit.jsonl".into(), Origin::Checkout));
        assert_eq!(p(&resolve(None, None, None, None, &env(None, false, 0))), ("/var/lib/semantos/sysctl_backup.json".into(), "/var/lib/semantos/audit.jsonl".into(), Origin::System));
        assert_eq!(p(&resolve(None, None, None, None, &env(None, false, 1000))), ("/home/u/.local/state/semantos/sysctl_backup.json".into(), "/home/u/.local/state/semantos/audit.jsonl".into(), Origin::User));
        let xdg = Env { xdg_state_home: Some("/x".into()), ..env(None, false, 1000) };
        assert_eq!(resolve(None, None, None, None, &xdg).rollout_state, PathBuf::from("/x/semantos/rollout/state.json"));
    }

    #[test]
    fn a_checkout_is_recognised_by_its_package_name_only() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_checkout(d.path()));
        std::fs::write(d.path().join("Cargo.toml"), "[package]\nname = \"other\"\n").unwrap();
        assert!(!is_checkout(d.path()));
        std::fs::write(d.path().join("Cargo.toml"), "[package]\nname = \"semantos\"\nversion = \"0.1.0\"\n").unwrap();
        assert!(is_checkout(d.path()));
        assert!(is_checkout(Path::new(env!("CARGO_MANIFEST_DIR"))));
    }
}
