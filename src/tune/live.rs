//! A [`System`] on a real sysctl tree: the live `/proc/sys`, a sandbox tree
//! (`--sysctl-root`), or the `net.*` keys of a named network namespace
//! (`--netns`). Every trial's values go through the same transaction a user's
//! `semantos apply` runs (lock, journal, backup, batched writes with
//! read-back, audit log), with the tune's own backup in the tune directory,
//! and `restore` is that transaction's rollback: the backup's originals are
//! the values in force before the tune's first write, whatever was kept or
//! tried in between, so a killed tune is undone from disk alone.
//!
//! The store is guarded at the moment of writing (KB entry, never-touch,
//! policy, and in a namespace the key's scope), and [`LiveSystem::check`]
//! runs the guardrails (`safety::check_with`, step limit judged from the
//! incumbent) over a candidate before it is ever set: a refused candidate is
//! never attempted.

use super::{System, Values};
use crate::apply::{self, ApplyOptions, AuditLog, HostIdentity, OnRegression, Paths};
use crate::kb::{Intent, Kb, Risk, Scope};
use crate::safety::{self, Facts, Policy, Verdict};
use crate::sysctl::store::GuardedStore;
use crate::sysctl::{SysctlKey, SysctlStore, TreeStore, Value, netns};
use crate::telemetry::netns::NetnsPlace;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a tune writes: a sysctl tree, and the network namespace whose `net.*` keys it tunes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The sysctl tree (`/proc/sys`, or a sandbox directory laid out like it).
    pub sysctl_root: PathBuf,
    /// A named network namespace (`ip netns add NAME`); `None`: this process's own.
    pub netns: Option<String>,
}

impl Target {
    /// The tree's store: kernel semantics under /proc, sandbox semantics elsewhere.
    pub fn store(&self) -> TreeStore {
        if self.sysctl_root.starts_with("/proc") { TreeStore::kernel_at(&self.sysctl_root) } else { TreeStore::sandbox(&self.sysctl_root) }
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        match &self.netns {
            Some(ns) => format!("the net.* keys of network namespace {ns} ({})", self.sysctl_root.display()),
            None => self.sysctl_root.display().to_string(),
        }
    }

    /// Why `key` may not be tuned here, if it may not: in a named namespace only the
    /// namespace's own `net.*` keys (KB scope `netns`) are; anything else is the host's.
    pub fn refusal(&self, key: &str, kb: &Kb) -> Option<String> {
        let ns = self.netns.as_deref()?;
        let p = kb.param(key)?;
        if !key.starts_with("net.") {
            return Some(format!("{key} is not per network namespace (KB scope {}): tuning it from namespace {ns} would change the host's value; tune it without --netns", p.scope.name()));
        }
        match p.scope {
            Scope::Global => Some(format!("{key} is absent from a child network namespace (KB scope global: one value for the whole host); never attempted in {ns}. Tune it on the host, without --netns")),
            Scope::NetnsReadOnly => Some(format!("{key} is read-only in a child network namespace (KB scope netns_read_only: it mirrors the host's value); never attempted in {ns}. Tune it on the host, without --netns")),
            _ => None,
        }
    }

    /// Runs `f` where the target's `net.*` files resolve to its namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        netns::run_in(self.netns.as_deref(), f)
    }
}

/// A store that reads (and writes) the target's tree from inside its namespace: what a
/// diagnosis or the guardrails see as the values in force there.
pub struct InTarget {
    target: Target,
    inner: TreeStore,
}

impl Target {
    /// The target's store, each call made inside its namespace.
    pub fn reader(&self) -> InTarget {
        InTarget { target: self.clone(), inner: self.store() }
    }
}

impl InTarget {
    fn within<T: Send>(&self, f: impl Fn(&TreeStore) -> T + Send + Sync) -> T {
        let (inner, f) = (&self.inner, &f);
        match &self.target.netns {
            None => f(inner),
            // A namespace that cannot be entered was checked before; reading it then fails like a missing key.
            Some(_) => self.target.run(|| Ok(f(inner))).unwrap_or_else(|_| f(&TreeStore::sandbox("/nonexistent"))),
        }
    }
}

impl SysctlStore for InTarget {
    fn describe(&self) -> String {
        self.target.describe()
    }
    fn read(&self, key: &SysctlKey) -> std::result::Result<Value, crate::sysctl::StoreError> {
        self.within(|s| s.read(key))
    }
    fn write(&self, token: &crate::apply::token::WriteToken, key: &SysctlKey, value: &Value) -> std::result::Result<(), crate::sysctl::StoreError> {
        self.within(|s| s.write(token, key, value))
    }
    fn exists(&self, key: &SysctlKey) -> bool {
        self.within(|s| s.exists(key))
    }
    fn writable(&self, key: &SysctlKey) -> bool {
        self.within(|s| s.writable(key))
    }
    fn list(&self) -> std::result::Result<Vec<SysctlKey>, crate::sysctl::StoreError> {
        self.within(|s| s.list())
    }
}

/// Sets values through the apply transaction, with the tune's own backup.
pub struct LiveSystem {
    target: Target,
    kb: Arc<Kb>,
    policy: Arc<Policy>,
    paths: Paths,
    audit: AuditLog,
    run: String,
    writes: usize,
}

fn now() -> (u64, u64) {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    (ms, ms / 1000)
}

impl LiveSystem {
    /// A system writing `target` under `policy`, its backup, journal and lock at `backup` (and beside it).
    pub fn new(target: Target, kb: &Kb, policy: &Policy, backup: &Path, audit: AuditLog) -> Self {
        Self::sharing(target, Arc::new(kb.clone()), policy, backup, audit)
    }

    /// `new` with a KB the caller shares (a long-running agent holds one copy, not one per user).
    pub fn sharing(target: Target, kb: Arc<Kb>, policy: &Policy, backup: &Path, audit: AuditLog) -> Self {
        let (ms, _) = now();
        LiveSystem { target, kb, policy: Arc::new(policy.clone()), paths: Paths::beside(backup), audit, run: format!("tune-{}-{ms}", std::process::id()), writes: 0 }
    }

    /// The transaction's files.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The run id its transactions are recorded under (each set adds `-setN`).
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The store, refusing at the moment of writing what the guardrails and the target refuse.
    fn store(&self) -> GuardedStore<TreeStore> {
        let (kb, policy, target) = (self.kb.clone(), self.policy.clone(), self.target.clone());
        GuardedStore::new(self.target.store(), move |key: &SysctlKey| {
            let k = key.to_string();
            match kb.param(&k) {
                None => Err(format!("{k} has no knowledge-base entry")),
                Some(p) if p.risk == Risk::Never => Err(format!("{k} is a never-touch key")),
                Some(_) if policy.forbids(&k) => Err(format!("{k} is on the policy's never_touch list")),
                Some(_) if !policy.allows(&k) => Err(format!("{k} is not in the policy whitelist")),
                Some(_) => target.refusal(&k, &kb).map_or(Ok(()), Err),
            }
        })
    }

    /// The guardrails over a complete assignment against the incumbent: `Err(reason)` refuses it.
    /// `others` holds the values in force of keys outside the tune (for invariants across keys).
    pub fn check(&self, others: &BTreeMap<String, Value>, incumbent: &Values, values: &Values, intent: Intent) -> std::result::Result<(), String> {
        check(&self.kb, &self.policy, &self.target, others, incumbent, values, intent)
    }

    fn host(&self) -> HostIdentity {
        HostIdentity::read(&self.target.sysctl_root)
    }
}

/// The guardrails over `values` against `incumbent` (see [`LiveSystem::check`]); pure.
pub fn check(kb: &Kb, policy: &Policy, target: &Target, others: &BTreeMap<String, Value>, incumbent: &Values, values: &Values, intent: Intent) -> std::result::Result<(), String> {
    let mut plan = crate::reasoning::Plan::new("tune", intent);
    for (k, v) in values {
        if incumbent.get(k) == Some(v) {
            continue;
        }
        if let Some(why) = target.refusal(k, kb) {
            return Err(format!("refused [scope]: {why}"));
        }
        let change = serde_json::json!({ "key": k, "from": incumbent.get(k), "to": v, "rationale": "a tune candidate" });
        plan.changes.push(serde_json::from_value(change).map_err(|e| format!("{k} = {v:?}: {e}"))?);
    }
    let mut current = others.clone();
    current.extend(incumbent.iter().map(|(k, v)| (k.clone(), Value::from_kernel(v))));
    let facts = match target.netns {
        Some(_) => Facts::new().in_netns(NetnsPlace::Child),
        None => Facts::new(),
    };
    let checked = safety::check_with(&plan, kb, policy, &current, &facts);
    if let Some(why) = &checked.aborted {
        return Err(format!("rejected by the guardrails: {}", why.replace('\n', "; ")));
    }
    let refused: Vec<String> = checked
        .changes
        .iter()
        .filter_map(|c| match &c.verdict {
            Verdict::Accept => None,
            Verdict::Clamp { to, .. } => Some(format!("{} = {} exceeds the step limit from the incumbent {} (at most {to}): {}", c.change.key, c.change.to, c.change.from.as_deref().unwrap_or("?"), c.verdict.reason())),
            v => Some(format!("{} = {}: {} {}", c.change.key, c.change.to, v.label(), v.reason())),
        })
        .collect();
    if refused.is_empty() { Ok(()) } else { Err(format!("refused by the guardrails: {}", refused.join("; "))) }
}

impl System for LiveSystem {
    fn describe(&self) -> String {
        self.target.describe()
    }

    fn read(&self, keys: &[String]) -> Result<Values> {
        let store = self.target.store();
        let target = self.target.describe();
        self.target.run(|| {
            keys.iter()
                .map(|k| {
                    let key = SysctlKey::parse(k).with_context(|| format!("key {k:?}"))?;
                    let v = store.read(&key).with_context(|| format!("reading {k} from {target}; a key this kernel (or namespace) lacks cannot be tuned here: drop it"))?;
                    Ok((k.clone(), v.to_string()))
                })
                .collect()
        })
    }

    fn set(&mut self, values: &Values) -> Result<()> {
        let now_in_force = self.read(&values.keys().cloned().collect::<Vec<_>>())?;
        let mut writes = Vec::new();
        for (k, v) in values {
            if now_in_force.get(k).map(|c| Value::from_kernel(c)) != Some(Value::from_kernel(v)) {
                writes.push((SysctlKey::parse(k).with_context(|| format!("key {k:?}"))?, Value::from_kernel(v)));
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.paths.backup.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating the tune's state directory {}", dir.display()))?;
        }
        self.writes += 1;
        let (_, s) = now();
        let opts = ApplyOptions {
            paths: self.paths.clone(),
            batch_size: writes.len(),
            on_regression: OnRegression::RollbackAll,
            persist: None,
            run_id: format!("{}-set{}", self.run, self.writes),
            now_s: s,
            force: false,
            rollout_id: None,
        };
        let plan = serde_json::json!({ "tune": values });
        let (store, host, kb, audit) = (self.store(), self.host(), self.kb.clone(), &self.audit);
        let r = self.target.run(|| apply::apply(&store, &kb, &writes, plan, &host, &opts, None, audit)).with_context(|| format!("setting {} on {}", show(values), self.target.describe()))?;
        if r.outcome != apply::Outcome::Committed {
            bail!("setting {} on {}: the transaction ended {:?}, not committed", show(values), self.target.describe(), r.outcome);
        }
        Ok(())
    }

    fn restore(&mut self) -> Result<()> {
        restore(&self.target, &self.kb, &self.paths, &self.audit).map(|_| ())
    }
}

/// Puts back every value the tune's backup at `paths` holds (the values in force before its first
/// write), also after a kill; returns the keys restored. Nothing to do when no backup exists.
pub fn restore(target: &Target, kb: &Kb, paths: &Paths, audit: &AuditLog) -> Result<Vec<String>> {
    if !paths.backup.exists() && !paths.journal.exists() {
        return Ok(Vec::new());
    }
    let (ms, s) = now();
    let store = target.store();
    let host = HostIdentity::read(&target.sysctl_root);
    let run = format!("tune-restore-{}-{ms}", std::process::id());
    let r = target
        .run(|| apply::rollback(&store, kb, paths, &host, false, &run, s, audit))
        .with_context(|| format!("restoring the start values on {} from the tune's backup {}", target.describe(), paths.backup.display()))?;
    Ok(r.restored.iter().map(|x| format!("{x:?}")).collect())
}

/// `k=v, k=v` for messages.
pub fn show(values: &Values) -> String {
    values.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(dir: &Path, values: &[(&str, &str)]) -> Target {
        let store = TreeStore::sandbox(dir.join("tree"));
        for (k, v) in values {
            store.seed(&SysctlKey::parse(k).unwrap(), &Value::from_kernel(v)).unwrap();
        }
        Target { sysctl_root: dir.join("tree"), netns: None }
    }

    fn vals(kv: &[(&str, &str)]) -> Values {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn open() -> Policy {
        Policy { whitelist: vec!["*".into()], ..Policy::default() }
    }

    #[test]
    fn set_goes_through_the_transaction_and_restore_puts_the_start_values_back() {
        let dir = tempfile::tempdir().unwrap();
        let kb = Kb::embedded().unwrap();
        let t = sandbox(dir.path(), &[("net.core.somaxconn", "4096"), ("vm.swappiness", "60")]);
        let mut s = LiveSystem::new(t.clone(), &kb, &open(), &dir.path().join("state/backup.json"), AuditLog::none());
        s.set(&vals(&[("net.core.somaxconn", "8192"), ("vm.swappiness", "60")])).unwrap();
        s.set(&vals(&[("net.core.somaxconn", "1024"), ("vm.swappiness", "30")])).unwrap();
        assert_eq!(s.read(&["net.core.somaxconn".into(), "vm.swappiness".into()]).unwrap(), vals(&[("net.core.somaxconn", "1024"), ("vm.swappiness", "30")]));
        assert!(dir.path().join("state/backup.json").exists(), "the transaction's backup");
        s.restore().unwrap();
        assert_eq!(s.read(&["net.core.somaxconn".into(), "vm.swappiness".into()]).unwrap(), vals(&[("net.core.somaxconn", "4096"), ("vm.swappiness", "60")]));
    }

    #[test]
    fn a_host_wide_key_is_refused_in_a_namespace_before_any_write() {
        let kb = Kb::embedded().unwrap();
        let t = Target { sysctl_root: "/nonexistent".into(), netns: Some("app".into()) };
        let inc = vals(&[("net.core.rmem_max", "212992"), ("vm.swappiness", "60"), ("net.core.somaxconn", "4096")]);
        let e = check(&kb, &open(), &t, &BTreeMap::new(), &inc, &vals(&[("net.core.rmem_max", "4194304")]), Intent::Latency).unwrap_err();
        assert!(e.contains("netns_read_only") && e.contains("never attempted"), "{e}");
        let e = check(&kb, &open(), &t, &BTreeMap::new(), &inc, &vals(&[("vm.swappiness", "10")]), Intent::Latency).unwrap_err();
        assert!(e.contains("host's value"), "{e}");
        assert_eq!(check(&kb, &open(), &t, &BTreeMap::new(), &inc, &vals(&[("net.core.somaxconn", "8192")]), Intent::Latency), Ok(()));
    }

    #[test]
    fn a_candidate_past_the_step_limit_or_outside_the_policy_is_refused() {
        let kb = Kb::embedded().unwrap();
        let t = Target { sysctl_root: "/nonexistent".into(), netns: None };
        let inc = vals(&[("net.core.somaxconn", "4096")]);
        let e = check(&kb, &open(), &t, &BTreeMap::new(), &inc, &vals(&[("net.core.somaxconn", "1000000")]), Intent::Latency).unwrap_err();
        assert!(e.contains("net.core.somaxconn"), "{e}");
        let narrow = Policy { whitelist: vec!["vm.*".into()], ..Policy::default() };
        assert!(check(&kb, &narrow, &t, &BTreeMap::new(), &inc, &vals(&[("net.core.somaxconn", "8192")]), Intent::Latency).is_err());
    }
}
