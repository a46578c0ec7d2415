//! Apply mode's hands, and what every mode keeps watching: the keys the agent manages. Each change
//! set the calm gate (dwell, daily budget, ownership) lets through is one `tune` trial (`trial`):
//! the incumbent and the candidate set through `tune`'s live `System` (`tune::live::LiveSystem`:
//! the apply transaction with its backup, journal, read-back and audit log, in
//! `<state dir>/agent/`) and measured in interleaved pairs by the user's objective; kept only when
//! `tune::judge` says so, else rolled back and not proposed again until the workload changes or
//! `objective.retry_after` passes. A managed key found changed behind the agent's back is drift:
//! reported once per change, never fought over, and never put back on exit. A kept change is
//! rolled back when a symptom the KB lists as its key's counter-symptom opens, and reported (or,
//! by `revert_when_evidence_gone`, reverted) when the symptom behind it has closed.

use super::advice;
use super::calm::Transition;
use super::config::AgentConfig;
use super::decide::Verdicts;
use super::state::{Files, InFlight, Managed, Persisted, Rejected, now_ms};
use super::trial::Trial;
use crate::apply::{AuditLog, Paths};
use crate::kb::Kb;
use crate::metrics::ManagedKey;
use crate::ownership::{Ours, Roots, SemantosRecords};
use crate::sysctl::{SysctlKey, SysctlStore, TreeStore, Value, value::read_back_matches};
use crate::tune::live::{LiveSystem, Target};
use crate::tune::{Decision, System, Values};
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The managed keys and the means to change them.
pub struct Actor {
    cfg: AgentConfig,
    /// Shared with the service and the live system: one copy of the KB in the agent.
    kb: Arc<Kb>,
    files: Files,
    target: Target,
    store: TreeStore,
    system: LiveSystem,
    state: Persisted,
    /// Live values read at the last drift check.
    live: BTreeMap<String, Option<String>>,
    /// The wait last logged per advice ID (a gate that still holds is not logged again).
    waiting: BTreeMap<String, String>,
    /// Keys another owner manages, found at the last change set.
    conflicts: Vec<crate::metrics::Conflict>,
}

fn now_s() -> u64 {
    now_ms() / 1000
}

impl Actor {
    /// Loads the state; a journal left by a killed agent is rolled back first (its in-flight
    /// change and every value it had applied, still at the agent's value: the backup's originals).
    pub fn open(cfg: &AgentConfig, files: &Files, kb: &Arc<Kb>) -> Result<Actor> {
        let target = Target { sysctl_root: cfg.sysctl_root.clone(), netns: cfg.netns.clone() };
        let audit = AuditLog::to(&files.audit);
        let system = LiveSystem::sharing(target.clone(), kb.clone(), &cfg.policy, &files.backup, audit);
        let mut a = Actor { cfg: cfg.clone(), kb: kb.clone(), files: files.clone(), store: cfg.store(), target, system, state: Persisted::load(&files.state)?, live: BTreeMap::new(), waiting: BTreeMap::new(), conflicts: Vec::new() };
        let paths = Paths::beside(&files.backup);
        let pending = crate::apply::pending_run(&paths)?;
        // A trial leaves no journal between its writes (each set is its own committed
        // transaction), so the state's in-flight record is what tells a kill in mid-measurement.
        let in_flight = a.state.trial.as_ref().map(|t| format!("change set {} ({}) was being measured since {}", t.advice_ids.join(","), crate::tune::live::show(&t.candidate), t.started_s));
        if let Some(msg) = pending.or(in_flight) {
            tracing::warn!("crash recovery: a previous agent was stopped in the middle of a change ({msg}); rolling back every value it applied that no other writer changed since, before anything else");
            let r = a.recover("crash recovery at start")?;
            tracing::warn!(keys = %r.restored.join(" "), left = %r.left.join("; "), "crash recovery: rolled back every value the previous agent applied that no other writer changed since ({} restored, {} left to another writer)", r.restored.len(), r.left.len());
            a.state.trial = None;
            a.save()?;
        }
        Ok(a)
    }

    /// The persisted state.
    pub fn state(&self) -> &Persisted {
        &self.state
    }

    /// Writes the state file.
    pub fn save(&self) -> Result<()> {
        self.state.save(&self.files.state)
    }

    /// Advice rolled back by its measurement and still held back now (neither a workload change
    /// nor `objective.retry_after` has lifted it yet), for the metrics.
    pub fn held_back_now(&self) -> u64 {
        let retry = self.cfg.objective.as_ref().map(|o| o.retry_after.as_secs()).unwrap_or(86400);
        let now = now_s();
        self.state.rejected.values().filter(|r| now < r.at_s.saturating_add(retry)).count() as u64
    }

    /// Keys another owner manages (for the metrics).
    pub fn conflicts(&self) -> &[crate::metrics::Conflict] {
        &self.conflicts
    }

    /// The managed keys with the live values of the last check.
    pub fn managed_live(&self) -> Vec<ManagedKey> {
        self.state
            .managed
            .iter()
            .map(|(k, m)| {
                let live = self.live.get(k).cloned().flatten();
                ManagedKey { key: k.clone(), intended: m.intended.clone(), in_agreement: live.as_deref().is_some_and(|l| self.agrees(k, &m.intended, l)), live }
            })
            .collect()
    }

    fn agrees(&self, key: &str, intended: &str, live: &str) -> bool {
        let rounding = self.kb.param(key).map(|p| p.rounding).unwrap_or_default();
        read_back_matches(&Value::from_kernel(intended), &Value::from_kernel(live), rounding)
    }

    /// Reads every managed key; a value that differs from what the agent applied, and from what
    /// was last reported, is drift: counted, logged once with its advice ID.
    pub fn check_drift(&mut self, store: &mut advice::Store) {
        let managed: Vec<(String, String)> = self.state.managed.iter().map(|(k, m)| (k.clone(), m.intended.clone())).collect();
        for (key, intended) in managed {
            let live = SysctlKey::parse(&key).ok().and_then(|k| self.store.read(&k).ok()).map(|v| v.to_string());
            self.live.insert(key.clone(), live.clone());
            let Some(live) = live else { continue };
            if self.agrees(&key, &intended, &live) {
                self.state.drift_seen.remove(&key);
                continue;
            }
            if self.state.drift_seen.get(&key) == Some(&live) {
                continue;
            }
            self.state.drift_seen.insert(key.clone(), live.clone());
            self.state.drift_total += 1;
            let id = advice::id("drift", "", &key, &live);
            let rec = advice::Record { kind: "drift".into(), symptom: String::new(), key: key.clone(), proposal: intended.clone(), verdict: format!("live {live}, applied {intended}: changed behind the agent's back; not re-applied"), first_seen_ms: 0, last_seen_ms: 0, count: 0 };
            store.seen(&id, rec, now_ms());
            tracing::warn!(advice_id = %id, key = %key, intended = %intended, live = %live, "drift: a key the agent applied was changed behind its back; the agent leaves it (find the writer with `semantos verify`)");
        }
        self.live.retain(|k, _| self.state.managed.contains_key(k));
    }

    /// Counts a workload change on `symptom`'s signal; the change sets rolled back for it may be
    /// tried again (the measurement that rejected them was of another workload).
    pub fn workload_changed(&mut self, symptom: &str) {
        self.state.workload_changes_total += 1;
        tracing::info!(symptom = %symptom, "workload change detected (CUSUM on the symptom's signal): its diagnosis re-opens");
        let lifted: Vec<String> = self.state.rejected.iter().filter(|(_, r)| r.symptom.split(',').any(|s| s == symptom)).map(|(id, _)| id.clone()).collect();
        for id in lifted {
            self.state.rejected.remove(&id);
            self.waiting.remove(&id);
            tracing::info!(advice_id = %id, symptom = %symptom, "a change set rolled back on its measurement may be tried again: the workload changed");
        }
    }

    /// Apply mode: the monitor and the evidence check on the managed keys, then at most one new change set.
    pub fn act(&mut self, v: &Verdicts, open: &BTreeSet<String>, store: &mut advice::Store) {
        for t in &v.transitions {
            match t {
                Transition::Opened(s) => self.monitor(s),
                Transition::Closed(s) => self.evidence_gone(s, store),
            }
        }
        self.change(v, open);
    }

    /// Rolls back every managed key whose KB entry lists `symptom` as a counter-symptom.
    fn monitor(&mut self, symptom: &str) {
        let hit: Vec<String> = self.state.managed.keys().filter(|k| self.kb.param(k).is_some_and(|p| p.counter_symptoms.iter().any(|c| c == symptom))).cloned().collect();
        for key in hit {
            self.revert(&key, &format!("monitor: {symptom} opened, a counter-symptom of {key}"));
        }
    }

    /// Reports (and by policy reverts) the kept changes that rested on `symptom`, now closed.
    fn evidence_gone(&mut self, symptom: &str, store: &mut advice::Store) {
        let gone: Vec<(String, Managed)> = self.state.managed.iter().filter(|(_, m)| m.symptom.split(',').any(|s| s == symptom)).map(|(k, m)| (k.clone(), m.clone())).collect();
        for (key, m) in gone {
            let id = advice::id("evidence-gone", symptom, &key, &m.intended);
            let action = if self.cfg.revert_when_evidence_gone { "reverted (revert_when_evidence_gone)" } else { "kept (revert_when_evidence_gone: false)" };
            let rec = advice::Record { kind: "evidence-gone".into(), symptom: symptom.into(), key: key.clone(), proposal: m.from.clone(), verdict: action.into(), first_seen_ms: 0, last_seen_ms: 0, count: 0 };
            store.seen(&id, rec, now_ms());
            tracing::info!(advice_id = %id, key = %key, symptom = %symptom, intended = %m.intended, "the evidence for a kept change has gone: {action}");
            if self.cfg.revert_when_evidence_gone {
                self.revert(&key, &format!("evidence gone: {symptom} closed"));
            }
        }
    }

    /// Puts `key` back to the value before the agent changed it.
    fn revert(&mut self, key: &str, why: &str) {
        let Some(m) = self.state.managed.get(key).cloned() else { return };
        match self.system.set(&BTreeMap::from([(key.to_string(), m.from.clone())])) {
            Ok(()) => {
                self.state.managed.remove(key);
                self.state.drift_seen.remove(key);
                self.state.changes_rolled_back_total += 1;
                tracing::warn!(advice_id = %m.advice_id, key = %key, from = %m.intended, to = %m.from, "rolled back: {why}");
            }
            Err(e) => tracing::error!(advice_id = %m.advice_id, key = %key, "rolling back failed ({why}): {e:#}; the value stays {}", m.intended),
        }
    }

    /// The accepted advice of the open symptoms as one change set, when the gate lets it through;
    /// measured as one trial.
    fn change(&mut self, v: &Verdicts, open: &BTreeSet<String>) {
        let now = now_s();
        let wanted: Vec<&super::decide::Advice> = v
            .advice
            .iter()
            .filter(|a| a.record.symptom.split(',').any(|s| open.contains(s)))
            .filter(|a| a.write.is_some() && !self.state.managed.contains_key(&a.record.key) && !self.state.drift_seen.contains_key(&a.record.key))
            .collect();
        let wanted: Vec<&super::decide::Advice> = wanted.into_iter().filter(|a| !self.held_back(&a.id, now)).collect();
        if wanted.is_empty() {
            return;
        }
        if let Err(w) = self.state.ledger.may_change(now, self.cfg.min_dwell.as_secs(), self.cfg.daily_change_budget) {
            let kind = format!("{:?}", std::mem::discriminant(&w));
            for a in &wanted {
                if self.waiting.insert(a.id.clone(), kind.clone()).as_ref() != Some(&kind) {
                    tracing::info!(advice_id = %a.id, key = %a.record.key, "not applied yet: {}", w.describe());
                }
            }
            return;
        }
        let wanted = self.owned(wanted);
        if wanted.is_empty() {
            return;
        }
        let values: Values = wanted.iter().map(|a| (a.record.key.clone(), a.write.clone().unwrap_or_default())).collect();
        let ids: Vec<&str> = wanted.iter().map(|a| a.id.as_str()).collect();
        let before = match self.system.read(&values.keys().cloned().collect::<Vec<_>>()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(advice_id = %ids.join(","), "change set not tried: {e:#}");
                return;
            }
        };
        // Written before the first write: a kill from here on is rolled back by the next start.
        let advice_by_key = wanted.iter().map(|a| (a.record.key.clone(), a.id.clone())).collect();
        self.state.trial = Some(InFlight { advice_ids: ids.iter().map(|s| s.to_string()).collect(), incumbent: before.clone(), candidate: values.clone(), started_s: now, advice_by_key });
        if let Err(e) = self.save() {
            tracing::error!(advice_id = %ids.join(","), "change set not tried: the state that would let a restart undo it cannot be written: {e:#}");
            self.state.trial = None;
            return;
        }
        self.state.ledger.record(now);
        for a in &wanted {
            self.waiting.remove(&a.id);
        }
        let judged = self.measure(&ids, &before, &values);
        match judged {
            Ok(j) if j.decision == Decision::Kept => {
                self.state.changes_applied_total += 1;
                tracing::info!(advice_id = %ids.join(","), change = %crate::tune::live::show(&values), from = %crate::tune::live::show(&before), "kept: {}", j.reason);
                for a in &wanted {
                    let (key, to) = (&a.record.key, a.write.clone().unwrap_or_default());
                    let from = before.get(key).cloned().unwrap_or_default();
                    self.state.managed.insert(key.clone(), Managed { intended: to, from, symptom: a.record.symptom.clone(), advice_id: a.id.clone(), applied_s: now, evidence: j.reason.clone() });
                }
            }
            judged => {
                let evidence = match judged {
                    Ok(j) => format!("{:?}: {}", j.decision, j.reason),
                    Err(e) => format!("{e:#}"),
                };
                self.state.changes_rolled_back_total += 1;
                if let Some(sig) = super::signals::received() {
                    // Stopped, not judged: the next start may try it again.
                    tracing::warn!(advice_id = %ids.join(","), change = %crate::tune::live::show(&values), "rolled back, its measurement cut short by {sig}: {evidence}");
                    self.state.trial = None;
                    return;
                }
                let retry = self.cfg.objective.as_ref().map(|o| o.retry_after.as_secs()).unwrap_or(86400);
                tracing::warn!(advice_id = %ids.join(","), change = %crate::tune::live::show(&values), "rolled back, not proposed again until the workload changes or {retry} s pass: {evidence}");
                self.state.advice_rolled_back_by_measurement_total += wanted.len() as u64;
                for a in &wanted {
                    let rec = Rejected { key: a.record.key.clone(), value: a.write.clone().unwrap_or_default(), symptom: a.record.symptom.clone(), evidence: evidence.clone(), at_s: now };
                    self.state.rejected.insert(a.id.clone(), rec);
                }
            }
        }
        self.state.trial = None;
    }

    /// Sets and measures the change set against the values before; on an error setting a value,
    /// puts the values before back (the driver does on every other path).
    fn measure(&mut self, ids: &[&str], before: &Values, values: &Values) -> Result<crate::tune::Judgement> {
        let Some(obj) = self.cfg.objective.clone() else {
            anyhow::bail!("no objective configured: apply mode measures every change set (the configuration check refuses this)");
        };
        let t = Trial { spec: &obj.spec, repeats: obj.repeats };
        let r = t.run(&mut self.system, &mut obj.source(), before, values);
        if let Err(e) = &r
            && let Err(e2) = self.system.set(before)
        {
            tracing::error!(advice_id = %ids.join(","), "putting back {} failed after a failed trial ({e:#}): {e2:#}; run `semantos rollback --backup {}`", crate::tune::live::show(before), self.files.backup.display());
        }
        r
    }

    /// Whether `id` was rolled back on its measurement recently enough not to be proposed again;
    /// logged once while it is held back. An expired rejection is forgotten.
    fn held_back(&mut self, id: &str, now: u64) -> bool {
        let Some(r) = self.state.rejected.get(id) else { return false };
        let retry = self.cfg.objective.as_ref().map(|o| o.retry_after.as_secs()).unwrap_or(86400);
        if now >= r.at_s.saturating_add(retry) {
            tracing::info!(advice_id = %id, key = %r.key, "a change set rolled back on its measurement may be tried again: objective.retry_after ({retry} s) has passed");
            self.state.rejected.remove(id);
            return false;
        }
        if self.waiting.insert(id.to_string(), "rejected".into()).as_deref() != Some("rejected") {
            tracing::info!(advice_id = %id, key = %r.key, value = %r.value, "not proposed again: rolled back on its measurement ({}); tried again after a workload change on {} or {} s after it", r.evidence, r.symptom, retry);
        }
        true
    }

    /// The advice whose keys no other owner manages, or whose owner the configuration overrides
    /// (`take_ownership`, logged); each refusal logged once with its advice ID. When the owners
    /// cannot be read, nothing is changed (fail closed).
    fn owned<'a>(&mut self, wanted: Vec<&'a super::decide::Advice>) -> Vec<&'a super::decide::Advice> {
        let keys: Vec<String> = wanted.iter().map(|a| a.record.key.clone()).collect();
        let ours = SemantosRecords {
            values: self.state.managed.iter().map(|(k, m)| Ours { key: k.clone(), value: m.intended.clone(), run_id: m.advice_id.clone(), run_kind: "agent".into(), source: self.files.backup.display().to_string() }).collect(),
            dropins: Vec::new(),
        };
        let report = match crate::ownership::owners(&Roots::at(&self.cfg.owners_root), &ours, &keys) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("not changing anything: the owners of {} could not be read: {e:#}", keys.join(", "));
                return Vec::new();
            }
        };
        self.conflicts = report.conflicts();
        let mut out = Vec::new();
        for a in wanted {
            let foreign = report.foreign(&a.record.key);
            if foreign.is_empty() {
                out.push(a);
                continue;
            }
            let owners = foreign.iter().map(|o| o.describe()).collect::<Vec<_>>().join("; ");
            if self.cfg.take_ownership.iter().any(|k| k == &a.record.key) {
                tracing::warn!(advice_id = %a.id, key = %a.record.key, owner = %owners, "taking ownership (take_ownership in the configuration): the other owner may put its value back");
                out.push(a);
            } else if self.waiting.insert(a.id.clone(), format!("owner {owners}")).as_deref() != Some(&format!("owner {owners}")) {
                tracing::warn!(advice_id = %a.id, key = %a.record.key, owner = %owners, "refused: another owner manages this key; change it there, or list it under take_ownership");
            }
        }
        out
    }

    /// Crash recovery: puts back the backup's original of every key still at a value the agent
    /// wrote (its kept values, the in-flight trial's, the half-made change's) or at its original,
    /// and of every key whose live value cannot be read (the safe default: the last write was the
    /// agent's). A key at a third value was changed by another writer after the agent's write: it
    /// is left, logged with its advice ID as drift, reported in what this returns, and dropped from
    /// the backup first, so neither this restore nor a later `semantos rollback` clobbers it.
    pub fn recover(&mut self, why: &str) -> Result<Restoration> {
        let paths = Paths::beside(&self.files.backup);
        let backup = crate::apply::Backup::load_if_exists(&paths.backup)?.filter(|b| b.state != crate::apply::backup::BackupState::Restored);
        let mut left = Vec::new();
        if let Some(mut b) = backup {
            let ours = self.agents_values(&paths, &b.committed)?;
            let keys: Vec<String> = b.originals.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect();
            let live: BTreeMap<String, Option<String>> = keys.iter().map(|k| (k.clone(), self.system.read(std::slice::from_ref(k)).ok().and_then(|v| v.get(k).cloned()))).collect();
            for key in live.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k) {
                tracing::warn!(advice_id = %self.advice_of(key), key = %key, "crash recovery: the live value cannot be read; restoring the original anyway (the last write known is the agent's)");
            }
            for key in recovery_left(&b.originals, &ours, &live, |k, a, l| self.agrees(k, a, l)) {
                let l = live.get(&key).cloned().flatten().unwrap_or_default();
                let original = b.originals.get(&key).cloned().flatten().unwrap_or_default();
                let id = self.advice_of(&key);
                tracing::warn!(advice_id = %id, key = %key, live = %l, original = %original, "drift: not restored by crash recovery: another writer changed this key after the agent wrote it; left at its value ({why})");
                self.state.drift_total += 1;
                left.push(format!("{key}: live {l}, original {original} ({id}): changed by another writer, left as it is"));
                b.originals.remove(&key);
                b.committed.remove(&key);
            }
            if !left.is_empty() {
                b.save(&paths.backup).map_err(|e| e.context(format!("crash recovery: dropping the keys another writer changed from the backup {}; nothing was restored", paths.backup.display())))?;
            }
        }
        let restored = self.restore_all(why)?;
        Ok(Restoration { restored, left })
    }

    /// Every value the agent may have written, per key: its kept values, the in-flight trial's
    /// incumbent and candidate, the backup's committed values and the half-made change's.
    fn agents_values(&self, paths: &Paths, committed: &BTreeMap<String, String>) -> Result<BTreeMap<String, Vec<String>>> {
        let mut ours: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut add = |k: &str, v: &str| ours.entry(k.to_string()).or_default().push(v.to_string());
        self.state.managed.iter().for_each(|(k, m)| add(k, &m.intended));
        committed.iter().for_each(|(k, v)| add(k, v));
        if let Some(t) = &self.state.trial {
            t.incumbent.iter().chain(&t.candidate).for_each(|(k, v)| add(k, v));
        }
        for e in crate::apply::journal::pending(&paths.journal)?.unwrap_or_default() {
            if let crate::apply::journal::Entry::Intent { key, to, .. } = e {
                add(&key, &to);
            }
        }
        Ok(ours)
    }

    /// The advice ID behind the agent's write of `key`: the kept change's, the in-flight trial's
    /// for that key, or (state files of older versions) the trial's whole change set.
    fn advice_of(&self, key: &str) -> String {
        if let Some(m) = self.state.managed.get(key) {
            return m.advice_id.clone();
        }
        let t = self.state.trial.as_ref();
        t.and_then(|t| t.advice_by_key.get(key).cloned()).or_else(|| t.map(|t| t.advice_ids.join(","))).unwrap_or_else(|| "no advice ID recorded".into())
    }

    /// Puts back every value in force before the agent's first write (the backup's originals):
    /// what crash recovery does once the keys another writer changed are out of the backup.
    pub fn restore_all(&mut self, why: &str) -> Result<Vec<String>> {
        let paths = Paths::beside(&self.files.backup);
        let keys = crate::tune::live::restore(&self.target, &self.kb, &paths, &AuditLog::to(&self.files.audit))?;
        if !keys.is_empty() || !self.state.managed.is_empty() {
            self.state.changes_rolled_back_total += 1;
            tracing::info!(keys = keys.len(), "restored every value the agent applied: {why}");
        }
        self.state.managed.clear();
        self.state.drift_seen.clear();
        self.live.clear();
        Ok(keys)
    }

    /// `on_exit: rollback`: puts the value before back on every managed key still at the value
    /// the agent applied; a key another writer changed since is left at that writer's value and
    /// reported (log line with its advice ID, and in what this returns). The transaction's
    /// backup is closed (marked restored) only when every key it names reads its original again.
    pub fn restore_on_exit(&mut self, why: &str) -> Result<Restoration> {
        let managed: Vec<(String, Managed)> = self.state.managed.iter().map(|(k, m)| (k.clone(), m.clone())).collect();
        let mut back = Values::new();
        let mut left = Vec::new();
        for (key, m) in &managed {
            let live = self.system.read(std::slice::from_ref(key)).ok().and_then(|v| v.get(key).cloned());
            match live {
                Some(l) if !self.agrees(key, &m.intended, &l) => {
                    tracing::warn!(advice_id = %m.advice_id, key = %key, intended = %m.intended, live = %l, "not restored on exit: another writer changed this key since the agent applied it; left at its value ({why})");
                    left.push(format!("{key}: live {l}, the agent applied {} ({}): changed by another writer, left as it is", m.intended, m.advice_id));
                }
                _ => {
                    back.insert(key.clone(), m.from.clone());
                }
            }
        }
        if !back.is_empty() {
            self.system.set(&back)?;
            self.state.changes_rolled_back_total += 1;
            tracing::info!(keys = back.len(), left = left.len(), "restored every value the agent applied that no other writer changed since: {why}");
        }
        let restored: Vec<String> = back.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for key in back.keys() {
            self.state.managed.remove(key);
            self.state.drift_seen.remove(key);
        }
        self.live.clear();
        if left.is_empty() {
            self.close_backup(why);
        }
        Ok(Restoration { restored, left })
    }

    /// Marks the transaction's backup restored when every key it names reads its original (so a
    /// later `semantos rollback` or crash recovery has nothing of the agent's to undo); any other
    /// value is someone else's now and the backup stays as it is.
    fn close_backup(&mut self, why: &str) {
        let paths = Paths::beside(&self.files.backup);
        let Ok(Some(b)) = crate::apply::Backup::load_if_exists(&paths.backup) else { return };
        if b.state == crate::apply::backup::BackupState::Restored {
            return;
        }
        let originals: Vec<(String, String)> = b.originals.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        let live = self.system.read(&originals.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()).unwrap_or_default();
        if originals.iter().all(|(k, v)| live.get(k).is_some_and(|l| self.agrees(k, v, l)))
            && let Err(e) = crate::tune::live::restore(&self.target, &self.kb, &paths, &AuditLog::to(&self.files.audit))
        {
            tracing::warn!("the backup {} could not be marked restored ({why}): {e:#}", paths.backup.display());
        }
    }
}

/// The keys crash recovery leaves: those whose live value is neither their original nor any value
/// the agent wrote (`ours`), as `agrees(key, value, live)` compares them. A key that cannot be read
/// is restored (the last write known was the agent's).
fn recovery_left(originals: &BTreeMap<String, Option<String>>, ours: &BTreeMap<String, Vec<String>>, live: &BTreeMap<String, Option<String>>, agrees: impl Fn(&str, &str, &str) -> bool) -> Vec<String> {
    let mut left = Vec::new();
    for (key, original) in originals {
        let (Some(original), Some(Some(l))) = (original, live.get(key)) else { continue };
        let known = std::iter::once(original).chain(ours.get(key).into_iter().flatten());
        if !known.into_iter().any(|v| agrees(key, v, l)) {
            left.push(key.clone());
        }
    }
    left
}

/// What `on_exit: rollback` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restoration {
    /// `key=value` put back.
    pub restored: Vec<String>,
    /// Keys left at another writer's value, each with why.
    pub left: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn originals(kv: &[(&str, &str)]) -> BTreeMap<String, Option<String>> {
        kv.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect()
    }

    #[test]
    fn crash_recovery_leaves_only_a_key_at_a_value_neither_original_nor_the_agents() {
        let o = originals(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        let ours = BTreeMap::from([("a".to_string(), vec!["10".to_string()]), ("b".to_string(), vec!["20".to_string()])]);
        let live = BTreeMap::from([("a".to_string(), Some("10".to_string())), ("b".to_string(), Some("77".to_string())), ("c".to_string(), Some("3".to_string())), ("d".to_string(), None)]);
        let left = recovery_left(&o, &ours, &live, |_, a, l| a == l);
        assert_eq!(left, vec!["b".to_string()], "a is the agent's, c its original, d unreadable (restored): only b is another writer's");
    }
}
