//! A fleet's final restore of one rollout on one host (`rollback --fence-rollout ID`): undo exactly
//! what rollout ID left here and nothing else. Its committed applies are undone layer by layer
//! (newest first); an apply of it that was cut off mid-write is undone from its journal (each
//! intended write names the value it found); an apply of another run, or a backup that cannot say
//! which rollout its originals belong to, is refused with nothing written, because restoring the
//! whole backup would silently undo every other rollout still committed on the host.

use super::audit::AuditLog;
use super::backup::{Backup, BackupState, HostIdentity};
use super::journal::{self, Entry, Journal};
use super::lock::Lock;
use super::rollback::{Layer, RollbackOptions, RollbackReport, put_back_dropins, refusal, restored_rows, rollback_layer};
use super::paths::Paths;
use super::transaction::Run;
use crate::kb::Kb;
use crate::kb::entry::EdgeKind;
use crate::sysctl::{SysctlKey, SysctlStore, Value};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

/// The report of a restore that found nothing of the rollout on this host.
fn nothing() -> RollbackReport {
    RollbackReport { restored: Vec::new(), already_restored: true, removed_dropin: None, restored_dropins: Vec::new(), drift: Vec::new(), dropin_left: None }
}

/// Undoes rollout `id` on this host and keeps every other committed apply (see the module comment).
#[allow(clippy::too_many_arguments)]
pub fn rollback_rollout(store: &dyn SysctlStore, kb: &Kb, paths: &Paths, here: &HostIdentity, id: &str, opts: &RollbackOptions, audit: &AuditLog) -> Result<RollbackReport> {
    if let Some(entries) = journal::pending(&paths.journal)? {
        return undo_interrupted(store, kb, paths, here, id, &entries, opts, audit);
    }
    let Some(backup) = Backup::load_if_exists(&paths.backup)? else { return Ok(nothing()) };
    match backup.state {
        BackupState::Restored => Ok(nothing()),
        BackupState::InProgress => bail!(
            "refusing to undo rollout {id} alone: the backup {} is marked in progress but no journal says which run wrote what; nothing was written. Run `semantos rollback --backup {}` on the host to restore every original value (this also undoes every other apply committed here)",
            paths.backup.display(),
            paths.backup.display()
        ),
        BackupState::Committed => {
            let runs: Vec<String> = backup.layers.iter().rev().filter(|l| l.rollout_id.as_deref() == Some(id)).map(|l| l.run_id.clone()).collect();
            if runs.is_empty() && backup.layers.is_empty() {
                // A version-1 backup (an older semantos, or the standalone exported playbook) keeps one set of originals.
                bail!(
                    "refusing to undo rollout {id} alone: the backup {} holds one set of originals with no record of which rollout changed what (a version-1 backup, written by an older semantos or an exported Ansible playbook); restoring it would also undo every earlier change it holds. Nothing was written. Run `semantos rollback --backup {}` on the host to restore every original value, if that is what you want",
                    paths.backup.display(),
                    paths.backup.display()
                );
            }
            // No layer of this rollout: it committed nothing here (refused, failed and undone by
            // itself, or never reached the host); the other rollouts' layers stay.
            let mut last = nothing();
            for run in runs {
                last = rollback_layer(store, kb, paths, here, &Layer::Run(run), opts, audit)?;
            }
            Ok(last)
        }
    }
}

/// Each key an unfinished run meant to write and the value it found there, in journal order.
fn intended(entries: &[Entry]) -> (Vec<String>, BTreeMap<String, Option<String>>) {
    let mut keys = Vec::new();
    let mut found = BTreeMap::new();
    for e in entries {
        if let Entry::Intent { key, from, .. } = e
            && !found.contains_key(key)
        {
            keys.push(key.clone());
            found.insert(key.clone(), from.clone());
        }
    }
    (keys, found)
}

/// Undoes an apply of rollout `id` that was cut off mid-write: every key its journal says it meant
/// to write goes back to the value that apply found (an earlier rollout's value stays), then the
/// backup and drop-ins are put back as they were before that apply.
#[allow(clippy::too_many_arguments)]
fn undo_interrupted(store: &dyn SysctlStore, kb: &Kb, paths: &Paths, here: &HostIdentity, id: &str, entries: &[Entry], opts: &RollbackOptions, audit: &AuditLog) -> Result<RollbackReport> {
    let _lock = Lock::acquire(&paths.lock)?;
    let (run_id, rollout) = entries.iter().find_map(|e| if let Entry::Begin { run_id, rollout_id, .. } = e { Some((run_id.clone(), rollout_id.clone())) } else { None }).unwrap_or_else(|| ("?".into(), None));
    let j = paths.journal.display();
    let b = paths.backup.display();
    if rollout.as_deref() != Some(id) {
        let whose = match &rollout {
            Some(other) => format!("of rollout {other}"),
            None => "that recorded no rollout (a local apply, or an older semantos)".to_string(),
        };
        bail!(
            "refusing to undo rollout {id} alone: the journal {j} shows an unfinished run {run_id} {whose}, not one of rollout {id}; restoring the whole backup would also undo every other change committed here. Nothing was written. Run `semantos rollback --backup {b}` on the host to restore every original value (then re-apply what should stay)"
        );
    }
    let Some(mut backup) = Backup::load_if_exists(&paths.backup)? else {
        bail!("the journal {j} of run {run_id} (rollout {id}) is unfinished but there is no backup at {b}: the values before it are unknown; nothing was written. Check the keys it names by hand, then remove the journal")
    };
    if let Some(why) = backup.mismatch(here)
        && !opts.force
    {
        return Err(super::Refused(format!("refusing to roll back: {why}; pass --force to restore anyway")).into());
    }
    let (keys, found_then) = intended(entries);
    for (k, v) in &found_then {
        let Some(v) = v else { continue };
        if let Some(why) = refusal(kb, opts.policy, k, v) {
            return Err(super::Refused(format!("refusing to roll back: the journal {j} names {k} (value before {v:?}), which {why}; nothing was restored")).into());
        }
        // Writing 0 to one of a mutually exclusive pair is done by writing its partner, whose earlier
        // value the journal does not hold.
        if v.trim() == "0"
            && let Some(e) = kb.edges_of(k).find(|e| e.kind == EdgeKind::MutuallyExclusive && !found_then.contains_key(e.other(k)))
        {
            bail!(
                "refusing to undo run {run_id} of rollout {id}: {k} was 0 before it (the regime of {}), whose earlier value the journal {j} does not record; nothing was written. Run `semantos rollback --backup {b}` to restore every original value",
                e.other(k)
            );
        }
    }
    let journal = Journal::begin(&paths.journal, &opts.run_id, &paths.backup)?;
    let run = Run { store, kb, journal, audit, run_id: opts.run_id.clone() };
    let read = |k: &str| SysctlKey::parse(k).ok().and_then(|kk| store.read(&kk).ok()).map(|v| v.to_string());
    let now: BTreeMap<String, Option<String>> = keys.iter().map(|k| (k.clone(), read(k))).collect();
    let failures = run.restore(&keys, &found_then);
    if !failures.is_empty() {
        bail!("undoing the interrupted run {run_id} of rollout {id} is incomplete: {}; the journal {j} is kept: run this again, or `semantos rollback --backup {b}`", failures.join("; "));
    }
    for (k, v) in &found_then {
        let Some(v) = v else { continue };
        if read(k).as_deref().map(Value::from_kernel) != Some(Value::from_kernel(v)) {
            bail!("undoing the interrupted run {run_id} of rollout {id}: {k} reads {:?} after the restore, expected {v:?}; the journal {j} is kept", read(k));
        }
    }
    let (removed, restored_dropins, left) = put_back_after_interrupted(&mut backup, &opts.run_id, audit)?;
    // Back at every original value (nothing else of semantos's is on the host): the backup is spent.
    let at_originals = backup.originals.iter().all(|(k, v)| v.as_deref().map(Value::from_kernel) == read(k).as_deref().map(Value::from_kernel));
    if backup.layers.is_empty() && at_originals {
        backup.state = BackupState::Restored;
        backup.restored_at = Some(opts.now_s);
    } else {
        backup.state = BackupState::Committed;
    }
    backup.save(&paths.backup)?;
    run.journal.finish(&format!("undid the interrupted run {run_id}"))?;
    audit.log(&opts.run_id, "rollback", None, None, None, format!("interrupted run {run_id} of rollout {id} undone from its journal; {} committed apply(s) kept", backup.layers.len()));
    let restored = restored_rows(&keys, &found_then, &now);
    Ok(RollbackReport { restored, already_restored: false, removed_dropin: removed, restored_dropins, dropin_left: left, drift: Vec::new() })
}

/// The drop-ins after an interrupted apply is undone: when an earlier apply persisted values, every
/// drop-in of ours holds what stays committed (the cut-off run may have rewritten them with its own
/// values too); when none did, every drop-in goes back to its content before semantos wrote it.
fn put_back_after_interrupted(backup: &mut Backup, run_id: &str, audit: &AuditLog) -> Result<(Option<String>, Vec<String>, Option<String>)> {
    if backup.persisted_to.is_none() || backup.committed.is_empty() {
        let (committed, layers) = (std::mem::take(&mut backup.committed), std::mem::take(&mut backup.layers));
        let out = put_back_dropins(backup, run_id, audit)?;
        (backup.committed, backup.layers) = (committed, layers);
        return Ok(out);
    }
    let kept: Vec<(SysctlKey, String)> = backup.committed.iter().filter_map(|(k, v)| Some((SysctlKey::parse(k).ok()?, v.clone()))).collect();
    let text = crate::sysctl::sysctld::render(&[super::dropin::header(run_id)], &kept);
    let mut rewritten = Vec::new();
    for d in backup.dropins.keys().chain(backup.persisted_to.iter()) {
        if Path::new(d).exists() && super::dropin::not_ours(Path::new(d))?.is_none() && !rewritten.contains(d) {
            super::files::write_atomic(Path::new(d), text.as_bytes(), 0o644).with_context(|| format!("values restored, but rewriting the drop-in {d} failed"))?;
            rewritten.push(d.clone());
        }
    }
    Ok((None, rewritten, None))
}
