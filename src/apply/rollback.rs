//! Rollback: restores every original value a backup holds, after checking
//! each key like a plan's (the file is not trusted), and puts back every
//! drop-in semantos wrote, if it is still ours.

use super::audit::AuditLog;
use super::backup::{Backup, BackupState, HostIdentity};
use super::dropin;
use super::journal::{self, Entry, Journal};
use super::lock::Lock;
use super::paths::Paths;
use super::transaction::Run;
use crate::kb::Kb;
use crate::safety::Policy;
use crate::sysctl::{SysctlKey, SysctlStore, Value};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackReport {
    /// (key, value found, original restored).
    pub restored: Vec<(String, Option<String>, String)>,
    /// The backup was already restored: nothing was done.
    pub already_restored: bool,
    /// A drop-in removed.
    pub removed_dropin: Option<String>,
    /// Drop-ins put back to the content they had before semantos first wrote them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restored_dropins: Vec<String>,
    /// Keys of the undone apply that someone else changed since (restored anyway with --force).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Why a drop-in the backup names was left in place (not a file semantos wrote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropin_left: Option<String>,
}

/// Settings of one rollback.
#[derive(Debug, Clone)]
pub struct RollbackOptions<'a> {
    /// Accept a backup from another host or boot.
    pub force: bool,
    /// Identifier of this run in the journal and audit log.
    pub run_id: String,
    /// Unix time now (passed in, so the transaction reads no clock).
    pub now_s: u64,
    /// The policy every key in the backup must pass, as a plan's keys do (None: the KB checks only).
    pub policy: Option<&'a Policy>,
}

/// Which one apply to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// The newest committed apply.
    Last,
    /// The apply with this run id.
    Run(String),
}

/// Undoes one committed apply's changes and keeps every other (`rollback --last`, `--run ID`).
///
/// Undoing an apply whose keys a later apply changed again is refused: its `before` values are
/// what the later one replaced, and writing them would silently undo part of the later apply
/// (and the later one's own undo would then write values the host no longer had). A key changed
/// since by someone else (drift) is refused without `force` and reported either way.
pub fn rollback_layer(store: &dyn SysctlStore, kb: &Kb, paths: &Paths, here: &HostIdentity, which: &Layer, opts: &RollbackOptions, audit: &AuditLog) -> Result<RollbackReport> {
    let _lock = Lock::acquire(&paths.lock)?;
    if journal::pending(&paths.journal)?.is_some() {
        bail!("refusing to undo one apply: the journal {} shows an unfinished run; run `semantos rollback` (every original value) first", paths.journal.display());
    }
    let Some(mut backup) = Backup::load_if_exists(&paths.backup)? else { bail!("no backup at {}: nothing to roll back", paths.backup.display()) };
    if backup.state != BackupState::Committed || backup.layers.is_empty() {
        bail!("the backup {} holds no committed apply that can be undone on its own (state {:?}; a backup written by an older semantos or the Ansible playbook holds one set of originals): run `semantos rollback` to restore every original value", paths.backup.display(), backup.state);
    }
    if let Some(why) = backup.mismatch(here)
        && !opts.force
    {
        return Err(super::Refused(format!("refusing to roll back: {why}; pass --force to restore anyway")).into());
    }
    let runs = || backup.layers.iter().map(|l| l.run_id.clone()).collect::<Vec<_>>().join(", ");
    let i = match which {
        Layer::Last => backup.layers.len() - 1,
        Layer::Run(id) => backup.layers.iter().position(|l| &l.run_id == id).ok_or_else(|| anyhow::anyhow!("no committed apply {id} in {}; its applies are, oldest first: {}", paths.backup.display(), runs()))?,
    };
    let layer = backup.layers[i].clone();
    for later in &backup.layers[i + 1..] {
        if let Some(k) = layer.before.keys().find(|k| later.before.contains_key(*k)) {
            bail!("refusing to undo apply {}: the later apply {} changed {k} again; undo that one first (`semantos rollback --run {}`) or restore everything with `semantos rollback`", layer.run_id, later.run_id, later.run_id);
        }
    }
    for (k, v) in &layer.before {
        if let Some(v) = v
            && let Some(why) = refusal(kb, opts.policy, k, v)
        {
            return Err(super::Refused(format!("refusing to roll back: the backup {} names {k} (original {v:?}), which {why}; nothing was restored", paths.backup.display())).into());
        }
    }
    let mut drift = Vec::new();
    for (k, want) in &layer.after {
        let now = SysctlKey::parse(k).ok().and_then(|kk| store.read(&kk).ok()).map(|v| v.to_string());
        if now.as_deref().map(Value::from_kernel) != Some(Value::from_kernel(want)) {
            drift.push(format!("{k} reads {} but apply {} left {want}", now.as_deref().unwrap_or("(absent)"), layer.run_id));
        }
    }
    if !drift.is_empty() && !opts.force {
        bail!("refusing to undo apply {}: changed since by someone else: {}; nothing was restored (pass --force to restore its earlier values anyway)", layer.run_id, drift.join("; "));
    }
    let journal = Journal::begin(&paths.journal, &opts.run_id, &paths.backup)?;
    let run = Run { store, kb, journal, audit, run_id: opts.run_id.clone() };
    let keys: Vec<String> = layer.before.keys().cloned().collect();
    let found: BTreeMap<String, Option<String>> = keys.iter().map(|k| (k.clone(), SysctlKey::parse(k).ok().and_then(|kk| store.read(&kk).ok()).map(|v| v.to_string()))).collect();
    let failures = run.restore(&keys, &layer.before);
    if !failures.is_empty() {
        bail!("undoing apply {} is incomplete: {}; the journal {} is kept: run `semantos rollback`", layer.run_id, failures.join("; "), paths.journal.display());
    }
    backup.layers.remove(i);
    backup.committed = backup.layers.iter().flat_map(|l| l.after.clone()).collect();
    let (mut removed, mut restored_dropins, mut left) = (None, Vec::new(), None);
    if backup.layers.is_empty() {
        (removed, restored_dropins, left) = put_back_dropins(&mut backup, &opts.run_id, audit)?;
        backup.state = BackupState::Restored;
        backup.restored_at = Some(opts.now_s);
    } else if let Some(p) = backup.persisted_to.clone() {
        // The drop-ins hold what stays committed, so a reboot brings back neither less nor more.
        let kept: Vec<(SysctlKey, String)> = backup.committed.iter().filter_map(|(k, v)| Some((SysctlKey::parse(k).ok()?, v.clone()))).collect();
        let text = crate::sysctl::sysctld::render(&[dropin::header(&opts.run_id)], &kept);
        for d in backup.dropins.keys().chain(std::iter::once(&p)) {
            if Path::new(d).exists() && dropin::not_ours(Path::new(d))?.is_none() {
                super::files::write_atomic(Path::new(d), text.as_bytes(), 0o644).with_context(|| format!("values restored, but rewriting the drop-in {d} failed"))?;
            }
        }
    }
    backup.save(&paths.backup)?;
    run.journal.finish(&format!("undid {}", layer.run_id))?;
    for d in &drift {
        audit.log(&opts.run_id, "drift", None, None, None, d.clone());
    }
    audit.log(&opts.run_id, "rollback", None, None, None, format!("apply {} undone; {} later/earlier apply(s) kept", layer.run_id, backup.layers.len()));
    let restored = restored_rows(&keys, &layer.before, &found);
    Ok(RollbackReport { restored, already_restored: false, removed_dropin: removed, restored_dropins, dropin_left: left, drift })
}

/// The report's rows: (key, value found, original restored) for every key whose value the restore changed.
pub(super) fn restored_rows(keys: &[String], originals: &BTreeMap<String, Option<String>>, found: &BTreeMap<String, Option<String>>) -> Vec<(String, Option<String>, String)> {
    keys.iter()
        .filter_map(|k| {
            let orig = originals.get(k)?.clone()?;
            let was = found.get(k).cloned().flatten();
            (was.as_deref() != Some(orig.as_str())).then(|| (k.clone(), was, orig))
        })
        .collect()
}

/// Why `key`, named by a backup, must not be written back, if it must not: the key checks a plan
/// passes (a KB entry that is not `never`, then the policy's never-touch list and whitelist).
pub(super) fn refusal(kb: &Kb, policy: Option<&Policy>, key: &str, value: &str) -> Option<String> {
    match kb.param(key) {
        None => Some("has no knowledge-base entry (pass the --kb the apply used)".into()),
        Some(p) if p.risk == crate::kb::Risk::Never => Some("is a never-touch key in the knowledge base".into()),
        // The value is checked like a plan's too: the kernel would misread `0x10` or `010`, and a
        // value outside the KB range is not one an apply of ours could have found and recorded
        // without the KB being changed since (restore such a key by hand, deliberately).
        Some(p) if let Err(e) = crate::kb::validate::check_value(p, Value::from_kernel(value).as_str()) => Some(format!("is not a valid value for it: {e}")),
        Some(_) => match policy {
            Some(pol) if pol.forbids(key) => Some("is on the policy's never_touch list".into()),
            Some(pol) if !pol.allows(key) => Some("is not in the policy whitelist (pass the --policy the apply used)".into()),
            _ => None,
        },
    }
}

/// Puts every drop-in the backup names back as it was before semantos wrote it, if it is still ours:
/// (the last one removed, the ones restored to earlier content, why any was left in place).
pub(super) fn put_back_dropins(backup: &mut Backup, run_id: &str, audit: &AuditLog) -> Result<(Option<String>, Vec<String>, Option<String>)> {
    let mut all = std::mem::take(&mut backup.dropins);
    // A version-1 backup names only its newest drop-in, which it had created.
    if let Some(p) = backup.persisted_to.take() {
        all.entry(p).or_insert(None);
    }
    let (mut removed, mut restored, mut left) = (None, Vec::new(), Vec::new());
    for (path, before) in &all {
        if let Some(why) = dropin::not_ours(Path::new(path))? {
            audit.log(run_id, "dropin-left", None, None, None, why.clone());
            left.push(why);
            continue;
        }
        match dropin::put_back(Path::new(path), before.as_deref()).with_context(|| "values restored, but a drop-in could not be put back")? {
            dropin::PutBack::Removed => removed = Some(path.clone()),
            dropin::PutBack::Restored => restored.push(path.clone()),
            dropin::PutBack::Unchanged => {}
        }
    }
    backup.committed.clear();
    backup.layers.clear();
    Ok((removed, restored, (!left.is_empty()).then(|| left.join("; "))))
}

/// Restores every original value in the backup at `paths.backup` and verifies it (KB checks only; see `rollback_with`).
#[allow(clippy::too_many_arguments)]
pub fn rollback(store: &dyn SysctlStore, kb: &Kb, paths: &Paths, here: &HostIdentity, force: bool, run_id: &str, now_s: u64, audit: &AuditLog) -> Result<RollbackReport> {
    rollback_with(store, kb, paths, here, &RollbackOptions { force, run_id: run_id.into(), now_s, policy: None }, audit)
}

/// Restores every original value in the backup at `paths.backup` and verifies it. Every key the backup
/// names is checked like a plan's before anything starts: the file is not trusted.
pub fn rollback_with(store: &dyn SysctlStore, kb: &Kb, paths: &Paths, here: &HostIdentity, opts: &RollbackOptions, audit: &AuditLog) -> Result<RollbackReport> {
    let (force, run_id, now_s) = (opts.force, opts.run_id.as_str(), opts.now_s);
    let _lock = Lock::acquire(&paths.lock)?;
    let pending = journal::pending(&paths.journal)?;
    let nothing = RollbackReport { restored: Vec::new(), already_restored: true, removed_dropin: None, restored_dropins: Vec::new(), dropin_left: None, drift: Vec::new() };
    let Some(mut backup) = Backup::load_if_exists(&paths.backup)? else {
        if let Some(entries) = pending {
            if entries.iter().any(|e| matches!(e, Entry::Intent { .. })) {
                bail!("the journal {} records writes but there is no backup at {}: the original values are unknown", paths.journal.display(), paths.backup.display());
            }
            std::fs::remove_file(&paths.journal).ok();
            return Ok(nothing);
        }
        bail!("no backup at {}: nothing to roll back", paths.backup.display());
    };
    if backup.state == BackupState::Restored && pending.is_none() {
        return Ok(nothing);
    }
    if let Some(why) = backup.mismatch(here)
        && !force
    {
        return Err(super::Refused(format!("refusing to roll back: {why}; pass --force to restore anyway")).into());
    }
    for (k, v) in &backup.originals {
        if let Some(v) = v
            && let Some(why) = refusal(kb, opts.policy, k, v)
        {
            return Err(super::Refused(format!(
                "refusing to roll back: the backup {} names {k} (original {v:?}), which {why}; nothing was restored. Restore that key by hand if it needs it (`sysctl -w {k}={v}`), or remove it from the backup",
                paths.backup.display()
            ))
            .into());
        }
    }
    let journal = Journal::begin(&paths.journal, run_id, &paths.backup)?;
    let run = Run { store, kb, journal, audit, run_id: run_id.to_string() };
    let keys: Vec<String> = backup.originals.keys().cloned().collect();
    let before: BTreeMap<String, Option<String>> = keys.iter().map(|k| (k.clone(), SysctlKey::parse(k).ok().and_then(|kk| store.read(&kk).ok()).map(|v| v.to_string()))).collect();
    let failures = run.restore(&keys, &backup.originals);
    if !failures.is_empty() {
        bail!("rollback incomplete: {}; the journal {} is kept so the next run retries", failures.join("; "), paths.journal.display());
    }
    // Verify every original, partners included.
    for (k, orig) in &backup.originals {
        let Some(orig) = orig else { continue };
        let cur = SysctlKey::parse(k).ok().and_then(|kk| store.read(&kk).ok());
        if cur.as_ref().map(|v| v.as_str()) != Some(Value::from_kernel(orig).as_str()) {
            bail!("rollback verification failed: {k} reads {:?}, expected the original {orig:?}", cur.map(|v| v.to_string()));
        }
    }
    let (removed, restored_dropins, left) = put_back_dropins(&mut backup, run_id, audit)?;
    backup.state = BackupState::Restored;
    backup.restored_at = Some(now_s);
    backup.save(&paths.backup)?;
    run.journal.finish("rolled back")?;
    // Journal entries from an interrupted run are superseded by this complete restore.
    let _ = std::fs::remove_file(&paths.journal);
    let restored = restored_rows(&keys, &backup.originals, &before);
    audit.log(run_id, "rollback", None, None, None, "every original value restored and verified");
    Ok(RollbackReport { restored, already_restored: false, removed_dropin: removed, restored_dropins, dropin_left: left, drift: Vec::new() })
}
