//! The transaction: lock → journal → backup → batched writes with read-back
//! → monitor after each batch → commit, or restore. Any failure restores
//! every value already changed before the error is returned, and a run
//! killed at any point leaves a journal and a backup from which `rollback`
//! restores the originals exactly.

use super::audit::AuditLog;
use super::dropin;
use super::backup::{Backup, BackupState, HostIdentity, BACKUP_SCHEMA_VERSION};
use super::journal::{self, Entry, Journal};
use super::lock::Lock;
use crate::kb::entry::EdgeKind;
use crate::kb::Kb;
use crate::safety::Policy;
use crate::sysctl::store::StoreError;
use crate::sysctl::value::{read_back_matches, Rounding};
use crate::sysctl::{SysctlKey, SysctlStore, Value, sysctld};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files a transaction uses.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The backup (`experiments/backup/sysctl_backup.json`).
    pub backup: PathBuf,
    /// The journal, beside the backup.
    pub journal: PathBuf,
    /// The lock, beside the backup.
    pub lock: PathBuf,
}

impl Paths {
    /// Journal and lock beside `backup`.
    pub fn beside(backup: &Path) -> Self {
        let dir = backup.parent().map(Path::to_path_buf).unwrap_or_default();
        Self { backup: backup.to_path_buf(), journal: backup.with_extension("journal"), lock: dir.join("semantos.lock") }
    }
}

/// What the monitor says after a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Keep going.
    Healthy(String),
    /// A watched signal regressed: roll back.
    Regressed(String),
}

/// Watches health after each batch (the simulator, real telemetry, a user command).
pub trait Monitor {
    /// Called after batch `index` (0-based) changed `keys`.
    fn after_batch(&mut self, index: usize, keys: &[String]) -> Result<Health>;
}

/// What to undo when the monitor reports a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRegression {
    /// Restore only the batch that regressed, keep earlier batches, go on (sandbox rollout).
    RollbackBatch,
    /// Restore everything and stop (production apply).
    RollbackAll,
}

/// Settings of one apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Files.
    pub paths: Paths,
    /// Changes per batch (≥ 1).
    pub batch_size: usize,
    /// Reaction to a regression.
    pub on_regression: OnRegression,
    /// Write committed values to this sysctl.d drop-in.
    pub persist: Option<PathBuf>,
    /// Identifier of this run in the journal, backup and audit log.
    pub run_id: String,
    /// Unix time now (passed in, so the transaction reads no clock).
    pub now_s: u64,
    /// Accept an existing backup from another host or boot.
    pub force: bool,
    /// The fleet rollout this apply belongs to: refused once that rollout is fenced here (`fence`).
    pub rollout_id: Option<String>,
}

/// One key's fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    /// Key.
    pub key: String,
    /// Value before.
    pub from: Option<String>,
    /// Value written.
    pub to: String,
    /// Still in place at the end.
    pub kept: bool,
}

/// One batch's fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchReport {
    /// 0-based index.
    pub index: usize,
    /// Keys it changed.
    pub keys: Vec<String>,
    /// Kept or rolled back.
    pub kept: bool,
    /// What the monitor said.
    pub detail: String,
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing to write.
    NothingToDo,
    /// Every batch kept.
    Committed,
    /// Some batches kept, some rolled back by the monitor.
    PartlyCommitted,
    /// Everything restored by the monitor.
    RolledBack,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    /// Run id.
    pub run_id: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Every key written.
    pub applied: Vec<Applied>,
    /// Every batch.
    pub batches: Vec<BatchReport>,
    /// Drop-in written, if any.
    pub persisted_to: Option<String>,
}

struct Run<'a> {
    store: &'a dyn SysctlStore,
    kb: &'a Kb,
    journal: Journal,
    audit: &'a AuditLog,
    run_id: String,
}

impl Run<'_> {
    fn rounding(&self, key: &str) -> Rounding {
        self.kb.param(key).map(|p| p.rounding).unwrap_or_default()
    }

    fn write_verified(&self, key: &SysctlKey, value: &Value) -> Result<()> {
        self.store.write(key, value).map_err(|e| describe_store_error(e, value))?;
        let back = self.store.read(key).with_context(|| format!("{key}: reading back after writing {value}"))?;
        if !read_back_matches(value, &back, self.rounding(&key.to_string())) {
            bail!("{key}: wrote {value:?} but read back {back:?} (the kernel changed or refused part of the value)");
        }
        Ok(())
    }

    /// Restores `keys` to their originals, newest first; returns the failures.
    fn restore(&self, keys: &[String], originals: &BTreeMap<String, Option<String>>) -> Vec<String> {
        let mut failures = Vec::new();
        for key in keys.iter().rev() {
            let Some(Some(orig)) = originals.get(key) else { continue };
            if zeroed_by_partner(self.kb, key, orig, originals) {
                continue;
            }
            // Backups are validated when loaded; a bad key here is a failure to report, never a panic.
            let k = match SysctlKey::parse(key) {
                Ok(k) => k,
                Err(e) => {
                    failures.push(format!("{key:?} cannot be restored: {e}"));
                    continue;
                }
            };
            let v = Value::from_kernel(orig);
            if let Ok(cur) = self.store.read(&k)
                && cur == v
            {
                continue;
            }
            let _ = self.journal.record(&Entry::Restore { key: key.clone(), to: orig.clone() });
            match self.write_verified(&k, &v) {
                Ok(()) => self.audit.log(&self.run_id, "restore", Some(key), None, Some(orig), "restored original value"),
                Err(e) => {
                    self.audit.log(&self.run_id, "restore-failed", Some(key), None, Some(orig), format!("{e:#}"));
                    failures.push(format!("{e:#}"));
                }
            }
        }
        failures
    }
}

/// Whether restoring `key` to `orig` is done by restoring its mutually exclusive partner (writing `dirty_ratio` zeroes `dirty_bytes`, and `dirty_bytes` cannot be written as 0).
fn zeroed_by_partner(kb: &Kb, key: &str, orig: &str, originals: &BTreeMap<String, Option<String>>) -> bool {
    orig.trim() == "0"
        && kb.edges_of(key).filter(|e| e.kind == EdgeKind::MutuallyExclusive).any(|e| {
            let partner = e.other(key);
            matches!(originals.get(partner), Some(Some(v)) if v.trim() != "0")
        })
}

fn describe_store_error(e: StoreError, value: &Value) -> anyhow::Error {
    match &e {
        StoreError::Io { key, .. } | StoreError::ShortWrite { key, .. } => anyhow::anyhow!("writing {key} = {value} failed: {e}"),
        _ => anyhow::anyhow!("{e} (value {value})"),
    }
}

fn partners(kb: &Kb, key: &str) -> Vec<String> {
    kb.edges_of(key).filter(|e| e.kind == EdgeKind::MutuallyExclusive).map(|e| e.other(key).to_string()).collect()
}

/// Message for a run that finds an unfinished journal: another run in progress (it holds the lock), or an interrupted one.
pub fn pending_run(paths: &Paths) -> Result<Option<String>> {
    let Some(entries) = journal::pending(&paths.journal)? else { return Ok(None) };
    if let Err(e) = Lock::acquire(&paths.lock) {
        return Ok(Some(format!("{e:#} (its journal {} is live)", paths.journal.display())));
    }
    Ok(Some(journal::describe_pending(&paths.journal, &entries)))
}

/// The backup after this run undid all of its own writes: the earlier unrestored backup again
/// (its changes are still on the host and still roll back), or this one marked restored.
fn undone(mut this: Backup, earlier: Option<&Backup>, now_s: u64) -> Backup {
    match earlier {
        Some(b) => b.clone(),
        None => {
            this.state = BackupState::Restored;
            this.restored_at = Some(now_s);
            this
        }
    }
}

/// Applies `writes` (already through the guardrails) to `store` transactionally.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    store: &dyn SysctlStore,
    kb: &Kb,
    writes: &[(SysctlKey, Value)],
    plan_json: serde_json::Value,
    host: &HostIdentity,
    opts: &ApplyOptions,
    monitor: Option<&mut dyn Monitor>,
    audit: &AuditLog,
) -> Result<Receipt> {
    let mut receipt = Receipt { run_id: opts.run_id.clone(), outcome: Outcome::NothingToDo, applied: Vec::new(), batches: Vec::new(), persisted_to: None };
    if writes.is_empty() {
        return Ok(receipt);
    }
    let _lock = Lock::acquire(&opts.paths.lock)?;
    if let Some(id) = &opts.rollout_id
        && let Some(f) = super::fence::fenced(&opts.paths, id)?
    {
        bail!("refusing to apply: fleet rollout {id} was rolled back on this host (fence {}); nothing written", f.display());
    }
    if let Some(msg) = pending_run(&opts.paths)? {
        bail!("refusing to apply: {msg}");
    }
    let previous = Backup::load_if_exists(&opts.paths.backup)?;
    if let Some(b) = &previous
        && b.state != BackupState::Restored
        && let Some(why) = b.mismatch(host)
        && !opts.force
    {
        bail!("refusing to apply: an unrestored backup {} exists and {why}; roll it back with --force, or move it away", opts.paths.backup.display());
    }
    // What this run finds: every key to write and its mutually exclusive partners. A failure or a
    // regression restores these, so an earlier committed change survives this run's undoing.
    let mut here: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (k, _) in writes {
        for key in std::iter::once(k.to_string()).chain(partners(kb, &k.to_string())) {
            let v = SysctlKey::parse(&key).ok().and_then(|kk| store.read(&kk).ok()).map(|v| v.to_string());
            here.insert(key, v);
        }
    }
    // The backup's originals (what `rollback` restores): an earlier unrestored backup's win.
    let earlier = previous.as_ref().filter(|b| b.state != BackupState::Restored && b.mismatch(host).is_none());
    let mut originals = here.clone();
    if let Some(b) = earlier {
        for (k, v) in &b.originals {
            originals.insert(k.clone(), v.clone());
        }
    }
    let journal = Journal::begin(&opts.paths.journal, &opts.run_id, &opts.paths.backup)?;
    let mut backup = Backup {
        schema_version: BACKUP_SCHEMA_VERSION,
        run_id: opts.run_id.clone(),
        created_at: previous.as_ref().filter(|b| b.state != BackupState::Restored).map(|b| b.created_at).unwrap_or(opts.now_s),
        host: host.clone(),
        store: store.describe(),
        originals: originals.clone(),
        state: BackupState::InProgress,
        plan: plan_json,
        persisted_to: previous.as_ref().and_then(|b| b.persisted_to.clone()),
        restored_at: None,
    };
    if let Err(e) = backup.save(&opts.paths.backup) {
        let _ = journal.finish("aborted: backup not written");
        return Err(e.context("nothing was written because the backup could not be saved"));
    }
    audit.log(&opts.run_id, "backup", None, None, None, format!("{} original value(s) saved to {}", originals.len(), opts.paths.backup.display()));
    let run = Run { store, kb, journal, audit, run_id: opts.run_id.clone() };
    let mut monitor = monitor;
    let mut written: Vec<String> = Vec::new();
    let mut kept_any = false;
    let mut rolled_back_any = false;
    for (index, batch) in writes.chunks(opts.batch_size.max(1)).enumerate() {
        let mut batch_keys = Vec::new();
        for (k, v) in batch {
            let key = k.to_string();
            let from = here.get(&key).cloned().flatten();
            run.journal.record(&Entry::Intent { key: key.clone(), from: from.clone(), to: v.to_string() })?;
            written.push(key.clone());
            if let Err(e) = run.write_verified(k, v) {
                audit.log(&opts.run_id, "write-failed", Some(&key), from.as_deref(), Some(v.as_str()), format!("{e:#}"));
                let failures = run.restore(&written, &here);
                if failures.is_empty() {
                    backup = undone(backup, earlier, opts.now_s);
                    backup.save(&opts.paths.backup)?;
                    run.journal.finish("failed; restored")?;
                    bail!("{e:#}; every key changed by this run ({}) was restored to its original value", written.join(", "));
                }
                bail!("{e:#}; restoring failed too: {} — the journal {} and backup {} are kept: run rollback", failures.join("; "), opts.paths.journal.display(), opts.paths.backup.display());
            }
            run.journal.record(&Entry::Written { key: key.clone() })?;
            audit.log(&opts.run_id, "write", Some(&key), from.as_deref(), Some(v.as_str()), "written and verified by read-back");
            batch_keys.push(key.clone());
            receipt.applied.push(Applied { key, from, to: v.to_string(), kept: true });
        }
        let health = match monitor.as_deref_mut() {
            Some(m) => m.after_batch(index, &batch_keys)?,
            None => Health::Healthy("no monitor".into()),
        };
        match health {
            Health::Healthy(detail) => {
                run.journal.record(&Entry::BatchOk { batch: index })?;
                audit.log(&opts.run_id, "monitor", None, None, None, format!("batch {index} healthy: {detail}"));
                receipt.batches.push(BatchReport { index, keys: batch_keys, kept: true, detail });
                kept_any = true;
            }
            Health::Regressed(detail) => {
                audit.log(&opts.run_id, "monitor", None, None, None, format!("batch {index} regressed: {detail}"));
                let undo: Vec<String> = match opts.on_regression {
                    OnRegression::RollbackBatch => batch_keys.clone(),
                    OnRegression::RollbackAll => written.clone(),
                };
                let failures = run.restore(&undo, &here);
                if !failures.is_empty() {
                    bail!("monitor regression ({detail}); restoring failed: {}; journal {} kept: run rollback", failures.join("; "), opts.paths.journal.display());
                }
                for a in receipt.applied.iter_mut().filter(|a| undo.contains(&a.key)) {
                    a.kept = false;
                }
                receipt.batches.push(BatchReport { index, keys: batch_keys, kept: false, detail });
                rolled_back_any = true;
                written.retain(|k| !undo.contains(k));
                if opts.on_regression == OnRegression::RollbackAll {
                    kept_any = false;
                    break;
                }
            }
        }
    }
    receipt.outcome = match (kept_any, rolled_back_any) {
        (true, false) => Outcome::Committed,
        (true, true) => Outcome::PartlyCommitted,
        (false, _) => Outcome::RolledBack,
    };
    if kept_any {
        if let Some(dropin) = &opts.persist {
            let kept: Vec<(SysctlKey, String)> = writes.iter().filter(|(k, _)| receipt.applied.iter().any(|a| a.kept && a.key == k.to_string())).map(|(k, v)| (k.clone(), v.to_string())).collect();
            let header = vec![dropin::header(&opts.run_id)];
            super::files::write_atomic(dropin, sysctld::render(&header, &kept).as_bytes(), 0o644).with_context(|| format!("writing drop-in {}", dropin.display()))?;
            backup.persisted_to = Some(dropin.display().to_string());
            receipt.persisted_to = backup.persisted_to.clone();
            audit.log(&opts.run_id, "persist", None, None, None, format!("{} value(s) written to {}", kept.len(), dropin.display()));
        }
        backup.state = BackupState::Committed;
    } else {
        backup = undone(backup, earlier, opts.now_s);
    }
    backup.save(&opts.paths.backup)?;
    run.journal.finish(&format!("{:?}", receipt.outcome))?;
    audit.log(&opts.run_id, "end", None, None, None, format!("{:?}", receipt.outcome));
    Ok(receipt)
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackReport {
    /// (key, value found, original restored).
    pub restored: Vec<(String, Option<String>, String)>,
    /// The backup was already restored: nothing was done.
    pub already_restored: bool,
    /// A drop-in removed.
    pub removed_dropin: Option<String>,
    /// Why the drop-in the backup names was left in place (not a file semantos wrote).
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
    let nothing = RollbackReport { restored: Vec::new(), already_restored: true, removed_dropin: None, dropin_left: None };
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
    let (mut removed, mut left) = (None, None);
    if let Some(d) = backup.persisted_to.take() {
        match dropin::remove_ours(Path::new(&d))? {
            dropin::Removal::Removed => removed = Some(d),
            dropin::Removal::Absent => {}
            dropin::Removal::Refused(why) => {
                audit.log(run_id, "dropin-left", None, None, None, why.clone());
                left = Some(why);
            }
        }
    }
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
    Ok(RollbackReport { restored, already_restored: false, removed_dropin: removed, dropin_left: left })
}
