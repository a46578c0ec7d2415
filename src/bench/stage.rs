//! Building a scenario's stage and taking it down: the network namespaces,
//! the sandbox tree of a throwaway user namespace's limits, or the host
//! (with the guard that puts its global values back). Each gives the
//! workload its environment, the switcher its target and the diagnosis its
//! probes.

use super::netns::Netns;
use super::probe::NsProbe;
use super::relay::RelayStats;
use super::scenario::{Scenario, Stage};
use super::target::Target;
use super::topology::Topology;
use super::workload::Env;
use crate::sysctl::{SysctlKey, SysctlStore, TreeStore, Value};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The host's values of some global keys as they were before the bench, written back on drop when they differ.
///
/// Every arm is already rolled back by the apply transaction; this guard is the second line for a
/// run that ends between an apply and its rollback (an error, a panic), so the host never keeps
/// an arm's value. It only ever writes the values it read.
pub struct HostValuesRestoredOnDrop {
    saved: Vec<(SysctlKey, Value)>,
}

impl HostValuesRestoredOnDrop {
    /// Reads `keys` from the host's `/proc/sys`.
    pub fn save(keys: &[&str]) -> Result<Self> {
        let store = TreeStore::kernel();
        let saved = keys
            .iter()
            .map(|k| {
                let key = SysctlKey::parse(k)?;
                let v = store.read(&key).with_context(|| format!("reading the host's {k} before the bench changes it"))?;
                Ok((key, v))
            })
            .collect::<Result<_>>()?;
        Ok(Self { saved })
    }

    /// The saved values, as (key, value).
    pub fn values(&self) -> Vec<(String, String)> {
        self.saved.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

impl Drop for HostValuesRestoredOnDrop {
    fn drop(&mut self) {
        let store = TreeStore::kernel();
        for (k, v) in &self.saved {
            if store.read(k).ok().as_ref() != Some(v)
                && let Err(e) = crate::apply::put_back::put_back(&store, k, v)
            {
                eprintln!("bench: could not put the host's {k} back to {v}: {e}; restore it with `sysctl -w {k}={v}`");
            }
        }
    }
}

/// A built stage.
pub struct Staged {
    /// Readers for the diagnosis.
    pub probes: Vec<NsProbe>,
    /// What the switcher writes.
    pub target: Target,
    /// Where it runs, for the report.
    pub description: String,
    topo: Option<Topology>,
    tree: Option<PathBuf>,
    host: Option<HostValuesRestoredOnDrop>,
}

impl Staged {
    /// The workload's environment.
    pub fn env(&self) -> Env<'_> {
        match (&self.topo, &self.tree) {
            (Some(t), _) => Env::Net(t),
            (None, Some(p)) => Env::UserNs(p),
            (None, None) => Env::Host,
        }
    }

    /// The namespaces the switcher writes in (`None`: the bench's own).
    pub fn namespaces(&self) -> Vec<Option<&Netns>> {
        match &self.topo {
            Some(t) => t.namespaces().into_iter().map(Some).collect(),
            None => vec![None],
        }
    }

    /// The host's values the run started from, when it runs on the host.
    pub fn host_start(&self) -> Option<Vec<(String, String)>> {
        self.host.as_ref().map(HostValuesRestoredOnDrop::values)
    }

    /// Takes the stage down (namespaces removed, host values checked and put back); the relay's counters.
    pub fn teardown(mut self) -> Option<RelayStats> {
        self.probes.clear();
        self.host.take();
        self.topo.take().and_then(Topology::teardown)
    }
}

/// Builds the stage of `sc` under `work`; `allow_host` is the operator's consent to change a global key.
pub fn build(sc: &Scenario, work: &Path, allow_host: bool) -> Result<Staged> {
    let name = sc.id.name();
    match &sc.stage {
        Stage::Netns(link) => {
            let topo = Topology::build(name, link)?;
            let probes = topo.namespaces().into_iter().map(|ns| NsProbe::open(Some(ns), work)).collect::<Result<_>>()?;
            let description = format!("namespaces {} (client) and {} (server); {}", topo.client.name(), topo.server.name(), topo.emulation);
            Ok(Staged { probes, target: Target::Netns, description, topo: Some(topo), tree: None, host: None })
        }
        Stage::UserNs { keys } => {
            let tree = work.join("userns-limits");
            let store = TreeStore::sandbox(&tree);
            for (k, v) in &sc.start {
                store.seed(&SysctlKey::parse(k)?, &Value::from_kernel(v)).with_context(|| format!("seeding {k} in {}", tree.display()))?;
            }
            let files: Vec<String> = keys.iter().map(|(k, f)| format!("{k} as /proc/sys/{f}")).collect();
            let description = format!("a fresh user namespace per run, its limits ({}) from the sandbox tree {}; the host's limits are not touched", files.join(", "), tree.display());
            let target = Target::Tree(tree.clone(), keys.iter().map(|(k, _)| k.to_string()).collect());
            // The workload runs under the namespace's limits, which the stage keeps in the tree: the probe reads them there.
            let probe = NsProbe::host()?.with_namespace_limits(&tree, keys);
            Ok(Staged { probes: vec![probe], target, description, topo: None, tree: Some(tree), host: None })
        }
        Stage::Host { keys } => {
            if !allow_host {
                bail!(
                    "{name} changes the host's global {} (no namespace has its own) and runs only with --allow-host; nothing was run or written. With --allow-host each arm raises it through the apply transaction and rolls it back, and the values read now are written back at the end whatever happens",
                    keys.join(", ")
                );
            }
            let host = HostValuesRestoredOnDrop::save(keys)?;
            let description = format!("a child process on the host, under the host's global {} (changed with --allow-host, restored after every arm and at the end)", keys.join(", "));
            let target = Target::Host(keys.iter().map(|k| k.to_string()).collect());
            Ok(Staged { probes: vec![NsProbe::host()?], target, description, topo: None, tree: None, host: Some(host) })
        }
    }
}
