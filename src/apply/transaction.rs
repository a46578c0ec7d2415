//! The transaction: lock → journal → backup → batched writes with read-back
//! → monitor after each batch → commit, or restore. Any failure restores
//! every value already changed before the error is returned, and a run
//! killed at any point leaves a journal and a backup from which `rollback`
//! restores the originals exactly.

use super::audit::AuditLog;
use super::dropin;
use super::backup::{Backup, BackupState, HostIdentity, Layer, BACKUP_SCHEMA_VERSION};
use super::journal::{self, Entry, Journal};
use super::lock::Lock;
use super::paths::Paths;
use super::token::WriteToken;
use crate::kb::entry::EdgeKind;
use crate::kb::Kb;
use crate::sysctl::store::StoreError;
use crate::sysctl::value::{read_back_matches, Rounding};
use crate::sysctl::{SysctlKey, SysctlStore, Value, sysctld};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

    /// Progress hook: batch `index` of `total` is about to write `keys`. The transaction prints
    /// nothing; a front end (the CLI's progress display) wraps the monitor to show this.
    fn batch_started(&mut self, _index: usize, _total: usize, _keys: &[String]) {}
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

/// One run's means of writing and restoring (apply and rollback share it).
pub(super) struct Run<'a> {
    pub(super) store: &'a dyn SysctlStore,
    pub(super) kb: &'a Kb,
    pub(super) journal: Journal,
    pub(super) audit: &'a AuditLog,
    pub(super) run_id: String,
}

impl Run<'_> {
    fn rounding(&self, key: &str) -> Rounding {
        self.kb.param(key).map(|p| p.rounding).unwrap_or_default()
    }

    fn write_verified(&self, key: &SysctlKey, value: &Value) -> Result<()> {
        tracing::debug!(run = %self.run_id, store = %self.store.describe(), %key, %value, "writing");
        self.store.write(&WriteToken::new(), key, value).map_err(|e| describe_store_error(e, value))?;
        let back = self.store.read(key).with_context(|| format!("{key}: reading back after writing {value}"))?;
        if !read_back_matches(value, &back, self.rounding(&key.to_string())) {
            bail!("{key}: wrote {value:?} but read back {back:?} (the kernel changed or refused part of the value)");
        }
        Ok(())
    }

    /// Restores `keys` to their originals, newest first; returns the failures.
    pub(super) fn restore(&self, keys: &[String], originals: &BTreeMap<String, Option<String>>) -> Vec<String> {
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
    let previous = refuse_to_start(host, opts)?;
    let here = found(store, kb, writes);
    // An earlier unrestored backup of this host and boot: its originals win (what `rollback` restores).
    let earlier = previous.as_ref().filter(|b| b.state != BackupState::Restored && b.mismatch(host).is_none());
    // Every drop-in this run may rewrite, as it is now: read before the first write, so a file that
    // cannot be read stops the run before anything changes, and a failure puts back these bytes.
    let dropins_now = dropins_to_write(opts, earlier)?;
    let journal = Journal::begin_for_rollout(&opts.paths.journal, &opts.run_id, &opts.paths.backup, opts.rollout_id.as_deref())?;
    let mut backup = first_backup(store, &here, earlier, &dropins_now, plan_json, host, opts);
    if let Err(e) = backup.save(&opts.paths.backup) {
        let _ = journal.finish("aborted: backup not written");
        return Err(e.context("nothing was written because the backup could not be saved"));
    }
    audit.log(&opts.run_id, "backup", None, None, None, format!("{} original value(s) saved to {}", backup.originals.len(), opts.paths.backup.display()));
    let run = Run { store, kb, journal, audit, run_id: opts.run_id.clone() };
    // From the first write on, every error goes through `undo`: it restores what this run changed
    // (values and drop-ins), or keeps the journal so the next run restores from the backup.
    let mut written: Vec<String> = Vec::new();
    let result = write_batches(&run, writes, &here, opts, monitor, &mut written, &mut receipt).and_then(|kept_any| commit(&run, &mut backup, writes, &here, opts, &mut receipt, kept_any, earlier));
    match result {
        Ok(()) => Ok(receipt),
        Err(e) => Err(undo(&run, e, &written, &here, backup, earlier, &dropins_now, opts)),
    }
}

/// Refuses, before anything is written, an apply of a fenced rollout, one that finds an unfinished
/// run, or one that finds an unrestored backup from another host or boot (unless forced); returns
/// the backup already on disk, if any. Called with the lock held.
fn refuse_to_start(host: &HostIdentity, opts: &ApplyOptions) -> Result<Option<Backup>> {
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
    Ok(previous)
}

/// What this run finds: every key to write and its mutually exclusive partners. A failure or a
/// regression restores these, so an earlier committed change survives this run's undoing.
fn found(store: &dyn SysctlStore, kb: &Kb, writes: &[(SysctlKey, Value)]) -> BTreeMap<String, Option<String>> {
    let mut here: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (k, _) in writes {
        for key in std::iter::once(k.to_string()).chain(partners(kb, &k.to_string())) {
            let v = SysctlKey::parse(&key).ok().and_then(|kk| store.read(&kk).ok()).map(|v| v.to_string());
            here.insert(key, v);
        }
    }
    here
}

/// The backup saved before the first write: this run's originals under an earlier unrestored
/// backup's (which win), and everything else that backup carries on.
fn first_backup(store: &dyn SysctlStore, here: &BTreeMap<String, Option<String>>, earlier: Option<&Backup>, dropins_now: &BTreeMap<String, Option<String>>, plan_json: serde_json::Value, host: &HostIdentity, opts: &ApplyOptions) -> Backup {
    let mut originals = here.clone();
    if let Some(b) = earlier {
        for (k, v) in &b.originals {
            originals.insert(k.clone(), v.clone());
        }
    }
    let mut dropins = earlier.map(|b| b.dropins.clone()).unwrap_or_default();
    for (path, now) in dropins_now {
        dropins.entry(path.clone()).or_insert_with(|| now.clone());
    }
    Backup {
        schema_version: BACKUP_SCHEMA_VERSION,
        run_id: opts.run_id.clone(),
        created_at: earlier.map(|b| b.created_at).unwrap_or(opts.now_s),
        host: host.clone(),
        store: store.describe(),
        originals,
        state: BackupState::InProgress,
        plan: plan_json,
        persisted_to: earlier.and_then(|b| b.persisted_to.clone()),
        committed: earlier.map(|b| b.committed.clone()).unwrap_or_default(),
        dropins,
        layers: earlier.map(|b| b.layers.clone()).unwrap_or_default(),
        restored_at: None,
    }
}

/// The drop-ins a `--persist` run rewrites (its own path and every earlier one of ours) with their bytes now.
fn dropins_to_write(opts: &ApplyOptions, earlier: Option<&Backup>) -> Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    let Some(p) = &opts.persist else { return Ok(out) };
    let paths = std::iter::once(p.display().to_string()).chain(earlier.into_iter().flat_map(|b| b.dropins.keys().cloned()));
    for path in paths {
        let now = dropin::read_for_backup(Path::new(&path))?;
        out.insert(path, now);
    }
    Ok(out)
}

/// Writes the batches, consulting the monitor after each; `written` grows before each write. Returns whether any batch was kept.
fn write_batches(run: &Run, writes: &[(SysctlKey, Value)], here: &BTreeMap<String, Option<String>>, opts: &ApplyOptions, mut monitor: Option<&mut dyn Monitor>, written: &mut Vec<String>, receipt: &mut Receipt) -> Result<bool> {
    let mut kept_any = false;
    let total = writes.len().div_ceil(opts.batch_size.max(1));
    for (index, batch) in writes.chunks(opts.batch_size.max(1)).enumerate() {
        let keys: Vec<String> = batch.iter().map(|(k, _)| k.to_string()).collect();
        tracing::debug!(run = %opts.run_id, batch = index + 1, of = total, keys = %keys.join(","), "batch starts");
        if let Some(m) = monitor.as_deref_mut() {
            m.batch_started(index, total, &keys);
        }
        let mut batch_keys = Vec::new();
        for (k, v) in batch {
            let key = k.to_string();
            let from = here.get(&key).cloned().flatten();
            run.journal.record(&Entry::Intent { key: key.clone(), from: from.clone(), to: v.to_string() })?;
            written.push(key.clone());
            if let Err(e) = run.write_verified(k, v) {
                run.audit.log(&opts.run_id, "write-failed", Some(&key), from.as_deref(), Some(v.as_str()), format!("{e:#}"));
                return Err(e);
            }
            run.journal.record(&Entry::Written { key: key.clone() })?;
            run.audit.log(&opts.run_id, "write", Some(&key), from.as_deref(), Some(v.as_str()), "written and verified by read-back");
            batch_keys.push(key.clone());
            receipt.applied.push(Applied { key, from, to: v.to_string(), kept: true });
        }
        let health = match monitor.as_deref_mut() {
            Some(m) => m.after_batch(index, &batch_keys).with_context(|| format!("the monitor failed after batch {index}"))?,
            None => Health::Healthy("no monitor".into()),
        };
        tracing::debug!(run = %opts.run_id, batch = index + 1, of = total, health = ?health, "monitor decided");
        match health {
            Health::Healthy(detail) => {
                run.journal.record(&Entry::BatchOk { batch: index })?;
                run.audit.log(&opts.run_id, "monitor", None, None, None, format!("batch {index} healthy: {detail}"));
                receipt.batches.push(BatchReport { index, keys: batch_keys, kept: true, detail });
                kept_any = true;
            }
            Health::Regressed(detail) => {
                run.audit.log(&opts.run_id, "monitor", None, None, None, format!("batch {index} regressed: {detail}"));
                let undo: Vec<String> = match opts.on_regression {
                    OnRegression::RollbackBatch => batch_keys.clone(),
                    OnRegression::RollbackAll => written.clone(),
                };
                let failures = run.restore(&undo, here);
                if !failures.is_empty() {
                    bail!("monitor regression ({detail}); restoring failed: {}", failures.join("; "));
                }
                for a in receipt.applied.iter_mut().filter(|a| undo.contains(&a.key)) {
                    a.kept = false;
                }
                receipt.batches.push(BatchReport { index, keys: batch_keys, kept: false, detail });
                written.retain(|k| !undo.contains(k));
                if opts.on_regression == OnRegression::RollbackAll {
                    return Ok(false);
                }
            }
        }
    }
    Ok(kept_any)
}

/// Ends a run whose batches are done: drop-ins rewritten, backup marked, journal finished.
#[allow(clippy::too_many_arguments)]
fn commit(run: &Run, backup: &mut Backup, writes: &[(SysctlKey, Value)], here: &BTreeMap<String, Option<String>>, opts: &ApplyOptions, receipt: &mut Receipt, kept_any: bool, earlier: Option<&Backup>) -> Result<()> {
    let rolled_back_any = receipt.batches.iter().any(|b| !b.kept);
    receipt.outcome = match (kept_any, rolled_back_any) {
        (true, false) => Outcome::Committed,
        (true, true) => Outcome::PartlyCommitted,
        (false, _) => Outcome::RolledBack,
    };
    if kept_any {
        let mut layer = Layer { run_id: opts.run_id.clone(), rollout_id: opts.rollout_id.clone(), before: BTreeMap::new(), after: BTreeMap::new() };
        for (k, v) in writes.iter().filter(|(k, _)| receipt.applied.iter().any(|a| a.kept && a.key == k.to_string())) {
            backup.committed.insert(k.to_string(), v.to_string());
            layer.after.insert(k.to_string(), v.to_string());
            for key in std::iter::once(k.to_string()).chain(partners(run.kb, &k.to_string())) {
                layer.before.insert(key.clone(), here.get(&key).cloned().flatten());
            }
        }
        backup.layers.push(layer);
        if let Some(path) = &opts.persist {
            // Every committed, unrestored value, not only this run's: an earlier persisted change must survive the next boot.
            let kept: Vec<(SysctlKey, String)> = backup.committed.iter().filter_map(|(k, v)| Some((SysctlKey::parse(k).ok()?, v.clone()))).collect();
            let text = sysctld::render(&[dropin::header(&opts.run_id)], &kept);
            // The older drop-ins of ours get the same values, so whichever loads last at boot agrees.
            let ours: Vec<String> = backup.dropins.keys().filter(|p| Path::new(p) == path.as_path() || dropin::not_ours(Path::new(p)).ok() == Some(None) && Path::new(p).exists()).cloned().collect();
            for p in &ours {
                super::files::write_atomic(Path::new(p), text.as_bytes(), 0o644).with_context(|| format!("writing drop-in {p}"))?;
            }
            backup.persisted_to = Some(path.display().to_string());
            receipt.persisted_to = backup.persisted_to.clone();
            run.audit.log(&opts.run_id, "persist", None, None, None, format!("{} value(s) written to {}", kept.len(), ours.join(", ")));
        }
        backup.state = BackupState::Committed;
    } else {
        *backup = undone(backup.clone(), earlier, opts.now_s);
    }
    backup.save(&opts.paths.backup)?;
    run.journal.record(&Entry::End { outcome: format!("{:?}", receipt.outcome) })?;
    if let Err(e) = std::fs::remove_file(run.journal.path()) {
        // The run is complete and recorded as ended; a leftover journal with an End line is not pending.
        run.audit.log(&opts.run_id, "journal", None, None, None, format!("removing {} failed: {e}", run.journal.path().display()));
    }
    run.audit.log(&opts.run_id, "end", None, None, None, format!("{:?}", receipt.outcome));
    Ok(())
}

/// After a failure past the first write: restores every key this run changed and every drop-in it
/// rewrote, then puts the backup back as it was before the run. If anything cannot be restored, the
/// journal is kept: the next run refuses to apply and `rollback` restores from the backup.
#[allow(clippy::too_many_arguments)]
fn undo(run: &Run, e: anyhow::Error, written: &[String], here: &BTreeMap<String, Option<String>>, backup: Backup, earlier: Option<&Backup>, dropins_before: &BTreeMap<String, Option<String>>, opts: &ApplyOptions) -> anyhow::Error {
    let mut failures = run.restore(written, here);
    for (path, before) in dropins_before {
        if let Err(err) = dropin::put_back(Path::new(path), before.as_deref()) {
            run.audit.log(&opts.run_id, "dropin-restore-failed", None, None, None, format!("{err:#}"));
            failures.push(format!("{err:#}"));
        }
    }
    let keep = |why: String| anyhow::anyhow!("{e:#}; {why} — the journal {} and backup {} are kept: run `semantos rollback`", opts.paths.journal.display(), opts.paths.backup.display());
    if !failures.is_empty() {
        return keep(format!("restoring failed too: {}", failures.join("; ")));
    }
    let changed = if written.is_empty() { "no key was changed".to_string() } else { format!("every key changed by this run ({}) was restored to its original value", written.join(", ")) };
    if let Err(err) = undone(backup, earlier, opts.now_s).save(&opts.paths.backup) {
        return keep(format!("{changed}, but the backup could not be updated ({err:#})"));
    }
    if let Err(err) = run.journal.record(&Entry::End { outcome: "failed; restored".into() }).and_then(|()| std::fs::remove_file(run.journal.path()).context("removing the journal")) {
        return keep(format!("{changed}, but the journal could not be closed ({err:#})"));
    }
    anyhow::anyhow!("{e:#}; {changed}")
}
