//! The fleet inventory as data: a `Host`, the `Inventory` of them, the format a file was read
//! as and the error that refuses it. It sits below the parsers (`ours`, `ansible`), which build
//! an `Inventory`, and below the reading in `mod.rs`, which calls them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One host of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Inventory name: shown in reports, used for `{host}` in remote paths.
    pub name: String,
    /// Address ssh connects to (host name, IPv4 or IPv6 address).
    pub address: String,
    /// ssh port; `None` leaves it to the user's ssh config (22 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Login user; `None` leaves it to the user's ssh config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Free-form labels (`role: web`), for `--limit key=value` and reports.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Groups the host belongs to, for `--limit group`; hosts in `canary` go first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Private key for this host (`ssh -i`); `None` uses the agent and the ssh config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
}

impl Host {
    /// A host with only a name and an address.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Host {
        Host { name: name.into(), address: address.into(), port: None, user: None, labels: BTreeMap::new(), groups: Vec::new(), identity_file: None }
    }

    /// Whether the host is marked as a canary (group `canary` or label `canary: "true"`).
    pub fn is_canary(&self) -> bool {
        self.groups.iter().any(|g| g == "canary") || self.labels.get("canary").is_some_and(|v| v == "true")
    }

    /// Whether `pattern` selects this host: its name, one of its groups, or `key=value` of a label.
    pub fn matches(&self, pattern: &str) -> bool {
        if let Some((k, v)) = pattern.split_once('=') {
            return self.labels.get(k).is_some_and(|x| x == v);
        }
        self.name == pattern || self.groups.iter().any(|g| g == pattern) || (pattern == "all")
    }
}

/// The hosts of a fleet, in inventory order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Hosts, in the order the file lists them.
    pub hosts: Vec<Host>,
}

/// The format an inventory file was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Our YAML (`hosts:` list).
    Semantos,
    /// Ansible YAML (`all:` / group mappings).
    AnsibleYaml,
    /// Ansible INI.
    AnsibleIni,
}

/// Why an inventory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct InventoryError {
    /// File as given.
    pub file: String,
    /// What is wrong and what would be valid.
    pub problem: String,
}

impl Inventory {
    /// The hosts any of `patterns` selects (all of them when `patterns` is empty), canaries first, otherwise in inventory order.
    pub fn select(&self, patterns: &[String]) -> Result<Vec<Host>, String> {
        let mut out: Vec<Host> = self.hosts.iter().filter(|h| patterns.is_empty() || patterns.iter().any(|p| h.matches(p))).cloned().collect();
        if out.is_empty() {
            return Err(format!("--limit {} selects no host; use host names, group names or label key=value", patterns.join(",")));
        }
        // A stable sort: canaries first, the rest keep the inventory's order.
        out.sort_by_key(|h| !h.is_canary());
        Ok(out)
    }
}
