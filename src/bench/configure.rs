//! Switching the namespaces between configurations, through the same
//! transaction a user's `semantos apply` runs (lock, journal, backup,
//! batched writes with read-back) and `semantos rollback` undoes. Every
//! write of the bench goes through here: the start values, SemantOS's plan,
//! the TuneD anchors and the grid points.
//!
//! The transaction runs on a thread inside each namespace, because
//! `/proc/sys/net` resolves to the namespace of the task that opens it. The
//! store is guarded: a key without a KB entry, of `never` risk, outside the
//! policy or not scoped to the network namespace is refused at the moment of
//! writing, whatever asked for it. Backups and journals live in the bench's
//! work directory, one slot per namespace and purpose (`start`, `arm`).
//!
//! A scenario off the network stage names its target instead: a sandbox
//! tree holding a user namespace's limits, or the host's own `/proc/sys`
//! for the few global keys the operator allowed with `--allow-host`; the
//! store then refuses every key but those.

use super::netns::{Netns, run_in};
use super::target::Target;
use crate::apply::{self, ApplyOptions, AuditLog, HostIdentity, OnRegression, Paths, Receipt};
use crate::kb::{Kb, Risk};
use crate::safety::Policy;
use crate::sysctl::store::GuardedStore;
use crate::sysctl::{SysctlKey, TreeStore, Value};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where progress lines go (stderr in the CLI).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// Writes sorted and normalised as the kernel prints them, minus those equal to `current`: two arms with equal results are the same configuration.
pub fn effective(writes: &[(String, String)], current: &std::collections::BTreeMap<String, Value>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = writes
        .iter()
        .map(|(k, v)| (k.clone(), Value::from_kernel(v).to_string()))
        .filter(|(k, v)| current.get(k).map(|c| c.to_string()) != Some(v.clone()))
        .collect();
    out.sort();
    out
}

/// Applies and restores configurations in a set of namespaces.
pub struct Switcher<'a> {
    kb: &'a Kb,
    target: Target,
    guard: Arc<(Kb, Policy)>,
    namespaces: Vec<Option<&'a Netns>>,
    work: PathBuf,
    audit: AuditLog,
    batch_size: usize,
}

fn now() -> (u64, u64) {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    (ms, ms / 1000)
}

impl<'a> Switcher<'a> {
    /// A switcher over `namespaces` (`None`: the calling thread's own namespace) allowed to write what `policy` allows.
    pub fn new(kb: &'a Kb, policy: &Policy, namespaces: Vec<Option<&'a Netns>>, work: &Path, audit: AuditLog) -> Self {
        Self { kb, target: Target::Netns, guard: Arc::new((kb.clone(), policy.clone())), namespaces, work: work.to_path_buf(), audit, batch_size: policy.batch_size }
    }

    /// The same switcher writing `target` instead of the namespaces' kernel.
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    /// What it writes.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn inner(&self) -> TreeStore {
        match &self.target {
            Target::Tree(root, _) => TreeStore::sandbox(root),
            _ => TreeStore::kernel(),
        }
    }

    fn paths(&self, ns: Option<&Netns>, slot: &str) -> Paths {
        let dir = self.work.join(ns.map(Netns::name).unwrap_or("host")).join(slot);
        Paths::beside(&dir.join("backup.json"))
    }

    fn store(&self) -> GuardedStore<TreeStore> {
        let guard = self.guard.clone();
        let target = self.target.clone();
        GuardedStore::new(self.inner(), move |key: &SysctlKey| {
            let (kb, policy) = &*guard;
            let k = key.to_string();
            match kb.param(&k) {
                None => Err(format!("{k} has no knowledge-base entry")),
                Some(p) if p.risk == Risk::Never => Err(format!("{k} is a never-touch key")),
                Some(p) if target.refuses(&k, p.scope).is_some() => Err(target.refuses(&k, p.scope).unwrap_or_default()),
                Some(_) if policy.forbids(&k) => Err(format!("{k} is on the policy's never_touch list")),
                Some(_) if !policy.allows(&k) => Err(format!("{k} is not in the bench policy")),
                Some(_) => Ok(()),
            }
        })
    }

    /// Writes `writes` in every namespace as one transaction each, in slot `slot`; returns the receipts.
    /// On a failure in one namespace, the namespaces already changed are restored before the error returns.
    pub fn set(&self, slot: &str, label: &str, writes: &[(String, String)]) -> Result<Vec<Receipt>> {
        let parsed: Vec<(SysctlKey, Value)> = writes
            .iter()
            .map(|(k, v)| Ok((SysctlKey::parse(k).with_context(|| format!("configuration {label}: key {k:?}"))?, Value::from_kernel(v))))
            .collect::<Result<_>>()?;
        let mut receipts = Vec::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            let name = ns.map(Netns::name).unwrap_or("host");
            let paths = self.paths(*ns, slot);
            std::fs::create_dir_all(paths.backup.parent().unwrap()).with_context(|| format!("creating {}", paths.backup.display()))?;
            let (ms, s) = now();
            let opts = ApplyOptions {
                paths,
                batch_size: self.batch_size,
                on_regression: OnRegression::RollbackAll,
                persist: None,
                run_id: format!("bench-{slot}-{}-{ms}", std::process::id()),
                now_s: s,
                force: false,
                rollout_id: None,
            };
            let plan_json = serde_json::json!({ "bench_configuration": label, "writes": writes });
            let r = run_in(*ns, || {
                let store = self.store();
                apply::apply(&store, self.kb, &parsed, plan_json, &HostIdentity::read(Path::new("/proc/sys")), &opts, None, &self.audit)
            })
            .with_context(|| format!("netns {name}: applying configuration {label}"));
            match r {
                Ok(r) => receipts.push(r),
                Err(e) => {
                    for done in &self.namespaces[..i] {
                        let _ = self.restore_one(*done, slot);
                    }
                    return Err(e);
                }
            }
        }
        Ok(receipts)
    }

    fn restore_one(&self, ns: Option<&Netns>, slot: &str) -> Result<()> {
        let name = ns.map(Netns::name).unwrap_or("host");
        let paths = self.paths(ns, slot);
        if !paths.backup.exists() {
            return Ok(());
        }
        let (ms, s) = now();
        run_in(ns, || {
            apply::rollback(&self.inner(), self.kb, &paths, &HostIdentity::read(Path::new("/proc/sys")), false, &format!("bench-restore-{slot}-{}-{ms}", std::process::id()), s, &self.audit)?;
            Ok(())
        })
        .with_context(|| format!("netns {name}: restoring the values saved in slot {slot}"))
    }

    /// Restores every namespace from slot `slot` (the transaction's rollback, verified).
    pub fn restore(&self, slot: &str) -> Result<()> {
        let mut first_err = None;
        for ns in &self.namespaces {
            if let Err(e) = self.restore_one(*ns, slot) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Reads the KB keys in every namespace; the error names the first key whose value differs between them.
    pub fn current(&self) -> Result<std::collections::BTreeMap<String, Value>> {
        let mut first: Option<(String, std::collections::BTreeMap<String, Value>)> = None;
        for ns in &self.namespaces {
            let name = ns.map(Netns::name).unwrap_or("host").to_string();
            let cur = run_in(*ns, || Ok(super::pipeline::current_values(&self.inner(), self.kb)))?;
            match &first {
                None => first = Some((name, cur)),
                Some((n0, c0)) => {
                    for (k, v) in c0 {
                        if let Some(w) = cur.get(k)
                            && w != v
                        {
                            anyhow::bail!("netns {n0} and {name} differ in {k} ({v} vs {w}); the bench tunes both ends alike and needs them to start alike");
                        }
                    }
                }
            }
        }
        Ok(first.map(|(_, c)| c).unwrap_or_default())
    }
}
