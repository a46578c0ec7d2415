//! Rollback: restores every original value a backup holds, after checking
//! each key like a plan's (the file is not trusted), and puts back every
//! drop-in semantos wrote, if it is still ours.

use super::audit::AuditLog;
use super::backup::{Backup, BackupState, HostIdentity};
use super::dropin;
use super::journal::{self, Entry, Journal};
use super::lock::Lock;
use super::transaction::{Paths, Run};
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

/// Why `key`, named by a backup, must not be written back, if it must not: the key checks a plan
/// passes (a KB entry that is not `never`, then the policy's never-touch list and whitelist).
fn refusal(kb: &Kb, policy: Option<&Policy>, key: &str) -> Option<String> {
    match kb.param(key) {
        None => Some("has no knowledge-base entry (pass the --kb the apply used)".into()),
        Some(p) if p.risk == crate::kb::Risk::Never => Some("is a never-touch key in the knowledge base".into()),
        Some(_) => match policy {
            Some(pol) if pol.forbids(key) => Some("is on the policy's never_touch list".into()),
            Some(pol) if !pol.allows(key) => Some("is not in the policy whitelist (pass the --policy the apply used)".into()),
            _ => None,
        },
    }
}

/// Puts every drop-in the backup names back as it was before semantos wrote it, if it is still ours:
/// (the last one removed, the ones restored to earlier content, why any was left in place).
fn put_back_dropins(backup: &mut Backup, run_id: &str, audit: &AuditLog) -> Result<(Option<String>, Vec<String>, Option<String>)> {
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
    let nothing = RollbackReport { restored: Vec::new(), already_restored: true, removed_dropin: None, restored_dropins: Vec::new(), dropin_left: None };
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
        bail!("refusing to roll back: {why}; pass --force to restore anyway");
    }
    for (k, v) in &backup.originals {
        if let (Some(v), Some(why)) = (v, refusal(kb, opts.policy, k)) {
            bail!(
                "refusing to roll back: the backup {} names {k} (original {v:?}), which {why}; nothing was restored. Restore that key by hand if it needs it (`sysctl -w {k}={v}`), or remove it from the backup",
                paths.backup.display()
            );
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
    let restored = keys
        .iter()
        .filter_map(|k| {
            let orig = backup.originals.get(k)?.clone()?;
            let was = before.get(k).cloned().flatten();
            (was.as_deref() != Some(orig.as_str())).then(|| (k.clone(), was, orig))
        })
        .collect();
    audit.log(run_id, "rollback", None, None, None, "every original value restored and verified");
    Ok(RollbackReport { restored, already_restored: false, removed_dropin: removed, restored_dropins, dropin_left: left })
}
