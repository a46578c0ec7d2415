//! Ownership plumbing shared by `apply`, `tune`, `status` and `verify`: the flags, where the
//! host's files are, what SemantOS's state directory says it applied, and the check `apply` and
//! `tune` run before their first write (refused, exit 3, unless `--take-ownership`, which is
//! then recorded in the audit log). Imports no command module.

use super::common::refused;
use super::state::State;
use crate::apply::AuditLog;
use crate::apply::records::{self, Records};
use crate::ownership::{self, Roots};
use crate::sysctl::{SysctlKey, SysctlStore, Value};
use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};

/// `--owners-root DIR`.
#[derive(Debug, Clone, Default, Args)]
pub struct OwnersRootArg {
    /// Look for other owners (etc/sysctl.d, etc/tuned, proc, var/lib/kubelet) under DIR instead of /
    /// [default: / for a tree under /proc; none for a sandbox tree].
    #[arg(long, value_name = "DIR")]
    pub owners_root: Option<PathBuf>,
}

/// The flags of a command that writes: `--take-ownership` and `--owners-root`.
#[derive(Debug, Clone, Default, Args)]
pub struct OwnershipArgs {
    /// Write keys another owner manages (a sysctl.d file, TuneD's profile, bpftune) anyway; each
    /// override is recorded in the audit log.
    #[arg(long)]
    pub take_ownership: bool,
    #[command(flatten)]
    pub root: OwnersRootArg,
}

/// Where the host's files are for a command on `sysctl_root`: `--owners-root`, else `/` when the
/// tree is the kernel's (under /proc), else none: a sandbox tree is no host's, and no sysctl.d
/// file or TuneD profile of this machine sets it.
pub fn roots(r: &OwnersRootArg, sysctl_root: &Path) -> Option<Roots> {
    match &r.owners_root {
        Some(d) => Some(Roots::at(d)),
        None if sysctl_root.starts_with("/proc") => Some(Roots::host()),
        None => None,
    }
}

/// The backups of a state directory: the applies' (and rollouts'), each tune's, the agent's.
pub fn backups(st: &State) -> Vec<PathBuf> {
    let mut out = vec![st.backup.clone()];
    for sub in ["tune", "agent"] {
        let Ok(entries) = std::fs::read_dir(st.dir.join(sub)) else { continue };
        let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path().join("backup.json")).filter(|p| p.exists()).collect();
        found.sort();
        out.extend(found);
    }
    let agent = st.dir.join("agent").join("backup.json");
    if agent.exists() {
        out.push(agent);
    }
    out
}

/// What the state directory says SemantOS applied and keeps.
pub fn records(st: &State) -> Result<Records> {
    records::read(&backups(st), Some(&st.audit_log))
}

/// Before the first write of `keys` (name → value to write, empty when a tune has yet to choose it) on `sysctl_root`: refused (exit 3)
/// naming each key and its other owner when one manages it, unless `--take-ownership`, then each
/// override goes to the audit log under `run_id` and a warning to stderr. Writes nothing else.
pub fn check_before_write(o: &OwnershipArgs, sysctl_root: &Path, keys: &[(String, String)], st: &State, audit: &AuditLog, run_id: &str) -> Result<()> {
    let Some(roots) = roots(&o.root, sysctl_root) else { return Ok(()) };
    let names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
    let report = ownership::owners(&roots, &records(st)?.semantos(), &names)?;
    for w in &report.warnings {
        eprintln!("semantos: warning: ownership: {w}");
    }
    let Some(why) = report.refusal(&names) else { return Ok(()) };
    if !o.take_ownership {
        return Err(refused(why));
    }
    for (key, value) in keys {
        for owner in report.foreign(key) {
            let detail = format!("--take-ownership: written although {} manages it", owner.describe());
            let to = Some(value.as_str()).filter(|v| !v.is_empty());
            audit.log(run_id, "take-ownership", Some(key), owner.value.as_deref(), to, detail.clone());
            eprintln!("semantos: warning: {key}: {detail}");
        }
    }
    Ok(())
}

/// What `status` and `verify` both read: the state directory, what it says SemantOS applied, the
/// tree, and every owner of those keys (SemantOS's own runs included, also on a sandbox tree,
/// where no host file sets a key).
pub struct ManagedView {
    /// The state directory resolved from the flags and the environment.
    pub state: State,
    /// What the state directory's backups and audit log say SemantOS applied.
    pub records: Records,
    /// The sysctl tree read.
    pub store: crate::sysctl::TreeStore,
    /// Every owner of the managed keys.
    pub report: ownership::Report,
}

/// Reads the [`ManagedView`] of the flags' state directory, tree and owners root; writes nothing.
pub fn managed_view(state: &super::flags::StateArgs, sysctl_root: &Path, root: &OwnersRootArg) -> Result<ManagedView> {
    let st = super::writes::resolve(state);
    let recs = records(&st)?;
    let keys = recs.keys();
    let roots = roots(root, sysctl_root).unwrap_or_else(|| Roots::at("/nonexistent"));
    let report = ownership::owners(&roots, &recs.semantos(), &keys)?;
    Ok(ManagedView { state: st, records: recs, store: super::common::store(sysctl_root), report })
}

/// The value of `key` in `store` now (None: not a key, absent or unreadable).
pub fn live(store: &dyn SysctlStore, key: &str) -> Option<String> {
    let k = SysctlKey::parse(key).ok()?;
    store.read(&k).ok().map(|v| v.to_string())
}

/// Whether a value read equals the one intended, as sysctl values (whitespace normalised).
pub fn same(live: Option<&str>, intended: &str) -> bool {
    live.is_some_and(|l| Value::from_kernel(l) == Value::from_kernel(intended))
}
