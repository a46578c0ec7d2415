//! The fleet inventory: which hosts a rollout may touch and how to reach
//! them. Three formats are read, chosen by content:
//!
//! * ours (YAML): `hosts:` is a list of `{name, address, port, user, labels,
//!   groups, identity_file}`, with optional `defaults:` for port, user and
//!   identity file;
//! * an Ansible YAML inventory (`all: {hosts, vars, children}`), honouring
//!   `ansible_host`, `ansible_port`, `ansible_user` and
//!   `ansible_ssh_private_key_file`, group vars below host vars;
//! * an Ansible INI inventory (`[group]`, `[group:vars]`,
//!   `[group:children]`, `web[01:03].example.com` ranges).
//!
//! Every name, address and user is validated here, before any connection:
//! they end up as ssh arguments and in generated playbooks, so an address
//! such as `-oProxyCommand=...` or a user with a space is refused with the
//! host, the field, the value and what would be valid.

mod ansible;
mod node;
mod ours;
#[cfg(test)]
mod tests;

use ansible::{parse_ansible_ini, parse_ansible_yaml};
use node::Node;
use ours::parse_ours;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// Reads and validates an inventory file in any of the three formats.
    pub fn load(path: &Path) -> Result<(Inventory, Format), InventoryError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError { file: file.clone(), problem: format!("cannot read: {e}") })?;
        Inventory::parse(&text, &file)
    }

    /// Parses inventory text; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<(Inventory, Format), InventoryError> {
        let err = |problem: String| InventoryError { file: file.to_string(), problem };
        let (inv, format) = match detect(text) {
            Format::Semantos => (parse_ours(text).map_err(err)?, Format::Semantos),
            Format::AnsibleYaml => (parse_ansible_yaml(text).map_err(err)?, Format::AnsibleYaml),
            Format::AnsibleIni => (parse_ansible_ini(text).map_err(err)?, Format::AnsibleIni),
        };
        inv.validate().map_err(err)?;
        Ok((inv, format))
    }

    /// Checks every host; the message names the host, the field, the value and what is valid.
    pub fn validate(&self) -> Result<(), String> {
        if self.hosts.is_empty() {
            return Err("the inventory lists no host".into());
        }
        let mut seen = BTreeMap::new();
        for h in &self.hosts {
            if let Some(prev) = seen.insert(h.name.clone(), h.address.clone()) {
                return Err(format!("host {:?} is listed twice (addresses {prev} and {}); names must be unique", h.name, h.address));
            }
            validate_host(h)?;
        }
        Ok(())
    }

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

fn detect(text: &str) -> Format {
    match serde_saphyr::from_str::<Node>(text) {
        Ok(n @ Node::Map(_)) if matches!(n.get("hosts"), Some(Node::Seq(_))) => Format::Semantos,
        Ok(Node::Map(_)) => Format::AnsibleYaml,
        // INI text (`[web]`, `host key=value`) is not a YAML mapping.
        _ => Format::AnsibleIni,
    }
}

fn valid_group(g: &str) -> bool {
    !g.is_empty() && g.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A host name or inventory name: letters, digits, `.`, `_`, `-`, not starting with `-`.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && !s.starts_with(['-', '.']) && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// An address: a host name, an IPv4 address, or an IPv6 address (optionally in brackets).
fn valid_address(s: &str) -> bool {
    let inner = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(s);
    if inner.contains(':') {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    valid_name(inner)
}

fn valid_user(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn validate_host(h: &Host) -> Result<(), String> {
    if !valid_name(&h.name) {
        return Err(format!("host name {:?} is invalid; use letters, digits, `.`, `_` and `-`, not starting with `-` or `.` (it names the host in reports and remote paths)", h.name));
    }
    if !valid_address(&h.address) {
        return Err(format!("host {:?}: address {:?} is invalid; use a host name, an IPv4 address or an IPv6 address (it is passed to ssh, so `-`-prefixed or spaced text is refused)", h.name, h.address));
    }
    if let Some(u) = &h.user
        && !valid_user(u)
    {
        return Err(format!("host {:?}: user {u:?} is invalid; use a login name of letters, digits, `.`, `_` and `-`", h.name));
    }
    if h.port == Some(0) {
        return Err(format!("host {:?}: port 0 is invalid; use 1 to 65535", h.name));
    }
    for g in &h.groups {
        if !valid_group(g) {
            return Err(format!("host {:?}: group {g:?} is invalid; use letters, digits, _ and -", h.name));
        }
    }
    for (k, v) in &h.labels {
        if k.is_empty() || k.contains('=') || k.chars().chain(v.chars()).any(|c| c.is_control()) {
            return Err(format!("host {:?}: label {k:?}: {v:?} is invalid; keys are non-empty without `=`, and neither side may hold control characters", h.name));
        }
    }
    if let Some(f) = &h.identity_file
        && f.to_string_lossy().chars().any(|c| c.is_control())
    {
        return Err(format!("host {:?}: identity_file {:?} contains a control character", h.name, f));
    }
    Ok(())
}
