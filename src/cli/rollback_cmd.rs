//! `semantos rollback` (and the seed's `--applier sysctl --rollback`): every
//! original value from the backup, or one apply (`--last`, `--run ID`), or a
//! fleet rollout's applies (`--fence-rollout ID`). A rollback with no backup
//! is refused (exit 3) before it creates anything, and so is a rollback of
//! every original over a key another writer changed since the last apply
//! (unless `--force`), as `--last` refuses it.

use super::common::{self, invalid, load_kb, refused};
use super::exit;
use super::flags::{ForceArg, JsonArg, KbDirArg, PolicyArg, StateArgs, TreeArg};
use super::writes;
use crate::apply::{self, AuditLog, HostIdentity};
use crate::safety::guard::guarded;
use crate::safety::{self, Policy};
use crate::sysctl::store::FaultyStore;
use crate::sysctl::{SysctlKey, SysctlStore, Value};
use anyhow::Result;
use clap::Args;

/// Arguments of `rollback`: which changes it undoes (default: every original value, newest apply first).
#[derive(Debug, Clone, Args)]
#[command(after_help = ROLLBACK_HELP)]
pub struct RollbackArgs {
    /// Undo only the newest committed apply; earlier applies stay.
    #[arg(long, conflicts_with = "run")]
    pub last: bool,
    /// Undo only the committed apply with this run id (the receipt's run_id); refused if a later apply changed the same keys.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    #[command(flatten)]
    pub tree: TreeArg,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub force: ForceArg,
    /// First fence fleet rollout ID, so a late apply of it is refused (set by `semantos rollout`).
    #[arg(long, value_name = "ID")]
    pub fence_rollout: Option<String>,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

const ROLLBACK_HELP: &str = "Examples:
  sudo semantos rollback                              every original value, from anywhere
  sudo semantos rollback --last                       only the newest apply
  sudo semantos rollback --run apply-1767000000-4242
  semantos rollback --sysctl-root /tmp/tree --state-dir /tmp/state";

/// `semantos --applier sysctl --rollback` / `semantos rollback`.
pub fn rollback(a: &RollbackArgs) -> Result<i32> {
    let kb = load_kb(&a.kb)?;
    if let Some(id) = &a.fence_rollout {
        apply::fence::validate_id(id).map_err(|e| invalid(format!("--fence-rollout: {e:#}")))?;
    }
    // The backup's keys pass the same checks as a plan's, again at the moment of writing: the KB's
    // always, a policy's whitelist and never_touch when one is given. Without --policy the built-in
    // whitelist is not applied: it would strand a value an apply under a site policy changed.
    let given = a.policy.policy.is_some();
    let pol = if given { common::policy(&a.policy, &kb)? } else { safety::Policy { whitelist: vec!["*".into()], ..Policy::default() } };
    let tree = common::store(&a.tree.sysctl_root);
    writes::require_root(&tree, "rollback")?;
    let st = writes::resolve(&a.state);
    let paths = writes::paths(&st);
    let line = writes::rollback_line(&a.tree.sysctl_root, &a.state.loc, a.state.audit_log.as_deref(), &st, &a.kb, &a.policy);
    if let Some(id) = &a.fence_rollout {
        // Before restoring, even with no backup here: an apply of this rollout that arrives later must find the fence.
        apply::fence::fence(&paths, id)?;
    } else if !paths.backup.exists() && !paths.journal.exists() {
        // Nothing to restore: refused before the lock is taken, so nothing (no directory, no lock file) is created.
        return Err(refused(format!(
            "no backup at {}: nothing to roll back (state directory {}, from {}). An apply made inside a SemantOS checkout keeps its backup in that checkout's experiments/backup/; pass --backup FILE or --state-dir DIR to name another",
            paths.backup.display(),
            st.dir.display(),
            st.origin.describe()
        )));
    }
    let host = HostIdentity::read(tree.root());
    let store = FaultyStore::new(guarded(tree.clone(), &kb, &pol), writes::faults()?);
    let now = common::now_ms();
    let opts = apply::RollbackOptions { force: a.force.force, run_id: format!("rollback-{}-{}", now / 1000, std::process::id()), now_s: now / 1000, policy: given.then_some(&pol) };
    let layer = match (&a.run, a.last) {
        (Some(id), _) => Some(apply::rollback::Layer::Run(id.clone())),
        (None, true) => Some(apply::rollback::Layer::Last),
        (None, false) => None,
    };
    // Every original put back over another writer's value would clobber it (an agent's backup
    // while the agent runs or after it was killed, an admin's fix since the last apply).
    let drift = if layer.is_none() && a.fence_rollout.is_none() { drifted(&tree, &paths)? } else { Vec::new() };
    if !drift.is_empty() && !a.force.force {
        return Err(refused(format!(
            "refusing to roll back: changed since the last apply by someone else: {}; nothing was restored. Leave those keys as they are and undo one apply with `semantos rollback --last` (it checks its own keys), or pass --force to put every original back anyway",
            drift.join("; ")
        )));
    }
    let audit = AuditLog::to(&st.audit_log);
    let mut r = match &layer {
        Some(l) => apply::rollback_layer(&store, &kb, &paths, &host, l, &opts, &audit),
        None => match &a.fence_rollout {
            // A fleet's final restore of one rollout undoes that rollout's changes only, or refuses.
            Some(id) => apply::rollout_undo::rollback_rollout(&store, &kb, &paths, &host, id, &opts, &audit),
            None => apply::rollback_with(&store, &kb, &paths, &host, &opts, &audit),
        },
    }
    .map_err(|e| writes::classify(e, &line))?;
    if !r.already_restored {
        r.drift.extend(drift);
    }
    for d in &r.drift {
        eprintln!("semantos: warning: changed since by someone else (restored anyway with --force): {d}");
    }
    if let Some(why) = &r.dropin_left {
        eprintln!("semantos: warning: {why}");
    }
    if a.json.json {
        super::output::print("rollback", &r)?;
    } else if let Some(id) = a.fence_rollout.as_ref().filter(|_| r.restored.is_empty()) {
        // Not "already restored": there may be no backup at all, or only other rollouts' layers.
        eprintln!("semantos: nothing to roll back for rollout {id} on this host (no committed change of it in {}); it is fenced here, so a late apply of it is refused", st.backup.display());
    } else if r.already_restored {
        println!("Nothing to do: the backup {} was already restored.", st.backup.display());
    } else {
        println!("Restored and verified {} key(s) from {}:", r.restored.len(), st.backup.display());
        for (k, was, orig) in &r.restored {
            println!("  {k}: {} → {orig}", was.as_deref().unwrap_or("(absent)"));
        }
        if let Some(d) = &r.removed_dropin {
            println!("removed drop-in {d}");
        }
        for d in &r.restored_dropins {
            println!("put back the earlier content of drop-in {d}");
        }
    }
    Ok(exit::OK)
}

/// The keys of an unrestored backup whose live value is neither what the last apply committed nor
/// the original: another writer's since. None when a run is unfinished (its keys' values are in
/// doubt and the rollback must go on) or for a key that cannot be read (it is restored).
fn drifted(store: &dyn SysctlStore, paths: &apply::Paths) -> Result<Vec<String>> {
    if apply::journal::pending(&paths.journal)?.is_some() {
        return Ok(Vec::new());
    }
    let Some(b) = apply::Backup::load_if_exists(&paths.backup)? else { return Ok(Vec::new()) };
    if b.state == apply::backup::BackupState::Restored {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (k, committed) in &b.committed {
        let Some(live) = SysctlKey::parse(k).ok().and_then(|key| store.read(&key).ok()) else { continue };
        let original = b.originals.get(k).cloned().flatten();
        let ours = [Some(committed.as_str()), original.as_deref()].into_iter().flatten().any(|v| Value::from_kernel(v) == live);
        if !ours {
            out.push(format!("{k} reads {live}, the last apply left {committed} (original {})", original.as_deref().unwrap_or("absent")));
        }
    }
    Ok(out)
}
