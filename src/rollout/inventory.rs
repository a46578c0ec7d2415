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

/// A YAML node that keeps mapping order (host order decides the waves).
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = a.next_element()? {
                    out.push(n);
                }
                Ok(Node::Seq(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<Node, Node>()? {
                    let k = match k {
                        Node::Scalar(s) => s,
                        Node::Null => String::new(),
                        _ => return Err(serde::de::Error::custom("mapping keys must be plain words")),
                    };
                    out.push((k, v));
                }
                Ok(Node::Map(out))
            }
        }
        d.deserialize_any(V)
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

/// Our YAML format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OursFile {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    defaults: OursDefaults,
    hosts: Vec<OursHost>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OursDefaults {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    identity_file: Option<PathBuf>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OursHost {
    name: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    identity_file: Option<PathBuf>,
}

fn parse_ours(text: &str) -> Result<Inventory, String> {
    let f: OursFile = serde_saphyr::from_str(text).map_err(|e| format!("not a valid SemantOS inventory: {e}"))?;
    if let Some(v) = f.schema_version
        && v != 1
    {
        return Err(format!("inventory schema_version {v} is not supported; this build reads version 1"));
    }
    let hosts = f
        .hosts
        .into_iter()
        .map(|h| {
            let mut labels = f.defaults.labels.clone();
            labels.extend(h.labels);
            Host {
                address: h.address.unwrap_or_else(|| h.name.clone()),
                name: h.name,
                port: h.port.or(f.defaults.port),
                user: h.user.or_else(|| f.defaults.user.clone()),
                labels,
                groups: h.groups,
                identity_file: h.identity_file.or_else(|| f.defaults.identity_file.clone()),
            }
        })
        .collect();
    Ok(Inventory { hosts })
}

/// Host variables gathered from an Ansible inventory before they become a `Host`.
#[derive(Debug, Default, Clone)]
struct AnsibleHost {
    groups: Vec<String>,
    /// (depth of the group that set it, value); host vars use depth `usize::MAX`.
    vars: BTreeMap<String, (usize, String)>,
}

impl AnsibleHost {
    fn set(&mut self, key: &str, value: String, depth: usize) {
        // Deeper (more specific) groups win over their parents; host vars win over all.
        match self.vars.get(key) {
            Some((d, _)) if *d > depth => {}
            _ => {
                self.vars.insert(key.to_string(), (depth, value));
            }
        }
    }
}

fn finish_ansible(order: Vec<String>, mut hosts: BTreeMap<String, AnsibleHost>) -> Result<Inventory, String> {
    let mut out = Vec::new();
    for name in order {
        let Some(a) = hosts.remove(&name) else { continue };
        let var = |k: &str| a.vars.get(k).map(|(_, v)| v.clone());
        let port = match var("ansible_port").or_else(|| var("ansible_ssh_port")) {
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("host {name:?}: ansible_port {p:?} is not a port; use 1 to 65535"))?),
            None => None,
        };
        let labels = a.vars.iter().filter(|(k, (d, _))| *d == usize::MAX && !k.starts_with("ansible_")).map(|(k, (_, v))| (k.clone(), v.clone())).collect();
        out.push(Host {
            address: var("ansible_host").or_else(|| var("ansible_ssh_host")).unwrap_or_else(|| name.clone()),
            port,
            user: var("ansible_user").or_else(|| var("ansible_ssh_user")),
            labels,
            groups: a.groups.into_iter().filter(|g| g != "all" && g != "ungrouped").collect(),
            identity_file: var("ansible_ssh_private_key_file").map(PathBuf::from),
            name,
        });
    }
    Ok(Inventory { hosts: out })
}

fn scalar(v: &Node) -> Option<String> {
    match v {
        Node::Scalar(s) => Some(s.clone()),
        _ => None,
    }
}

/// `(depth, group, vars)`: vars set on a group, applied parents first.
type GroupVars = Vec<(usize, String, Vec<(String, String)>)>;

/// What an Ansible inventory says, gathered before it becomes hosts.
#[derive(Default)]
struct Groups {
    /// Host names in first-seen order (the order decides the waves).
    order: Vec<String>,
    hosts: BTreeMap<String, AnsibleHost>,
    /// Group vars are applied after membership is known, parents before children.
    vars: GroupVars,
    members: BTreeMap<String, Vec<String>>,
    children: BTreeMap<String, Vec<String>>,
}

impl Groups {
    fn add_host(&mut self, group: &str, name: String, vars: &[(String, String)]) {
        if !self.hosts.contains_key(&name) {
            self.order.push(name.clone());
        }
        let entry = self.hosts.entry(name.clone()).or_default();
        for (k, v) in vars {
            entry.set(k, v.clone(), usize::MAX);
        }
        self.members.entry(group.to_string()).or_default().push(name);
    }

    /// Reads one YAML group and its children.
    fn walk(&mut self, name: &str, body: &Node, depth: usize) -> Result<(), String> {
        if depth > 32 {
            return Err(format!("group {name:?} is nested more than 32 deep"));
        }
        let fields = match body {
            Node::Null => return Ok(()),
            Node::Map(m) => m,
            _ => return Err(format!("group {name:?} must be a mapping with hosts, vars or children")),
        };
        for (k, _) in fields {
            if !matches!(k.as_str(), "hosts" | "vars" | "children") {
                return Err(format!("group {name:?} has an unknown section {k:?}; Ansible groups hold hosts, vars and children"));
            }
        }
        if let Some(h) = body.get("hosts") {
            let Node::Map(hm) = h else {
                return Err(format!("group {name:?}: hosts must be a mapping of host name to variables"));
            };
            for (hname, hvars) in hm {
                let vars: Vec<(String, String)> = match hvars {
                    Node::Map(v) => v.iter().filter_map(|(k, v)| scalar(v).map(|s| (k.clone(), s))).collect(),
                    _ => Vec::new(),
                };
                for expanded in expand_range(hname)? {
                    self.add_host(name, expanded, &vars);
                }
            }
        }
        if let Some(Node::Map(vars)) = body.get("vars") {
            self.vars.push((depth, name.to_string(), vars.iter().filter_map(|(k, v)| scalar(v).map(|s| (k.clone(), s))).collect()));
        }
        if let Some(c) = body.get("children") {
            let Node::Map(cm) = c else {
                return Err(format!("group {name:?}: children must be a mapping of group names"));
            };
            for (cname, cbody) in cm {
                self.children.entry(name.to_string()).or_default().push(cname.clone());
                self.walk(cname, cbody, depth + 1)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Inventory, String> {
        apply_groups(&mut self.hosts, &self.members, &self.children, &self.vars);
        finish_ansible(self.order, self.hosts)
    }
}

fn parse_ansible_yaml(text: &str) -> Result<Inventory, String> {
    let root: Node = serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let Node::Map(top) = root else { return Err("an Ansible YAML inventory is a mapping of groups (all: {hosts, vars, children})".into()) };
    let mut g = Groups::default();
    for (name, body) in &top {
        g.walk(name, body, 0)?;
    }
    g.finish()
}

/// Gives every host the groups it belongs to (directly or through children) and their vars.
fn apply_groups(hosts: &mut BTreeMap<String, AnsibleHost>, members: &BTreeMap<String, Vec<String>>, children: &BTreeMap<String, Vec<String>>, group_vars: &GroupVars) {
    fn all_members(g: &str, members: &BTreeMap<String, Vec<String>>, children: &BTreeMap<String, Vec<String>>, seen: &mut Vec<String>) -> Vec<String> {
        if seen.iter().any(|s| s == g) {
            return Vec::new();
        }
        seen.push(g.to_string());
        let mut out = members.get(g).cloned().unwrap_or_default();
        for c in children.get(g).into_iter().flatten() {
            out.extend(all_members(c, members, children, seen));
        }
        out
    }
    let mut groups: Vec<&String> = members.keys().chain(children.keys()).collect();
    groups.sort();
    groups.dedup();
    for g in groups {
        for h in all_members(g, members, children, &mut Vec::new()) {
            if let Some(a) = hosts.get_mut(&h)
                && !a.groups.contains(g)
            {
                a.groups.push(g.clone());
            }
        }
    }
    // `all` holds every host even when the file never says so.
    for (depth, g, vars) in group_vars {
        let targets: Vec<String> = if g == "all" { hosts.keys().cloned().collect() } else { all_members(g, members, children, &mut Vec::new()) };
        for h in targets {
            if let Some(a) = hosts.get_mut(&h) {
                for (k, v) in vars {
                    a.set(k, v.clone(), *depth);
                }
            }
        }
    }
}

fn parse_ansible_ini(text: &str) -> Result<Inventory, String> {
    #[derive(PartialEq)]
    enum Section {
        Hosts(String),
        Vars(String),
        Children(String),
    }
    let mut section = Section::Hosts("ungrouped".into());
    let mut g = Groups::default();
    let mut vars: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(inner) = t.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| format!("line {line}: {t:?} opens a section but does not close it with ]"))?;
            section = match inner.split_once(':') {
                None => Section::Hosts(inner.to_string()),
                Some((g, "vars")) => Section::Vars(g.to_string()),
                Some((g, "children")) => Section::Children(g.to_string()),
                Some((_, other)) => return Err(format!("line {line}: section suffix :{other} is not known; use [group], [group:vars] or [group:children]")),
            };
            if let Section::Hosts(g) | Section::Vars(g) | Section::Children(g) = &section
                && !valid_group(g)
            {
                return Err(format!("line {line}: group name {g:?} is invalid; use letters, digits, _ and -"));
            }
            continue;
        }
        let words = split_ini_words(t).map_err(|e| format!("line {line}: {e}"))?;
        match &section {
            Section::Hosts(group) => {
                let (name, rest) = words.split_first().expect("a non-empty line has a word");
                let mut hv = Vec::new();
                for w in rest {
                    let (k, v) = w.split_once('=').ok_or_else(|| format!("line {line}: {w:?} after host {name:?} is not key=value"))?;
                    hv.push((k.to_string(), v.to_string()));
                }
                for expanded in expand_range(name).map_err(|e| format!("line {line}: {e}"))? {
                    g.add_host(group, expanded, &hv);
                }
            }
            Section::Vars(group) => {
                let joined = words.join(" ");
                let (k, v) = joined.split_once('=').ok_or_else(|| format!("line {line}: {t:?} in [{group}:vars] is not key=value"))?;
                vars.entry(group.clone()).or_default().push((k.trim().to_string(), v.trim().to_string()));
            }
            Section::Children(group) => {
                for w in words {
                    if !valid_group(&w) {
                        return Err(format!("line {line}: child group {w:?} is invalid; use letters, digits, _ and -"));
                    }
                    g.children.entry(group.clone()).or_default().push(w);
                }
            }
        }
    }
    // Depth of a group: `all` 0, top-level groups 1, each child one more.
    fn depth_of(g: &str, children: &BTreeMap<String, Vec<String>>, guard: usize) -> usize {
        if g == "all" || guard > 32 {
            return 0;
        }
        children.iter().filter(|(_, cs)| cs.iter().any(|c| c == g)).map(|(p, _)| depth_of(p, children, guard + 1) + 1).max().unwrap_or(1)
    }
    g.vars = vars.into_iter().map(|(name, v)| (depth_of(&name, &g.children, 0), name, v)).collect();
    g.finish()
}

/// Splits an INI line into words, honouring 'single' and "double" quotes around values.
fn split_ini_words(t: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in t.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if cur.is_empty() => break,
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("{t:?} has an unclosed quote"));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Expands one Ansible host range (`web[01:03].example.com`, `db-[a:c]`) into names.
fn expand_range(name: &str) -> Result<Vec<String>, String> {
    let (Some(open), Some(close)) = (name.find('['), name.find(']')) else { return Ok(vec![name.to_string()]) };
    if close < open {
        return Err(format!("host pattern {name:?} has ] before ["));
    }
    let (prefix, inner, suffix) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let (lo, hi) = inner.split_once(':').ok_or_else(|| format!("host range {name:?} must look like [01:10] or [a:f]"))?;
    let mut out = Vec::new();
    if let (Ok(a), Ok(b)) = (lo.parse::<u32>(), hi.parse::<u32>()) {
        if a > b || b - a > 10_000 {
            return Err(format!("host range {name:?}: {a} to {b} is empty or larger than 10000 hosts"));
        }
        let width = if lo.starts_with('0') && lo.len() > 1 { lo.len() } else { 0 };
        for n in a..=b {
            for rest in expand_range(suffix)? {
                out.push(format!("{prefix}{n:0width$}{rest}"));
            }
        }
    } else if lo.len() == 1 && hi.len() == 1 && lo <= hi && lo.chars().all(|c| c.is_ascii_alphabetic()) && hi.chars().all(|c| c.is_ascii_alphabetic()) {
        for c in lo.chars().next().unwrap()..=hi.chars().next().unwrap() {
            for rest in expand_range(suffix)? {
                out.push(format!("{prefix}{c}{rest}"));
            }
        }
    } else {
        return Err(format!("host range {name:?} must look like [01:10] or [a:f]"));
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// name, address, port, user, groups.
    type Want<'a> = (&'a str, &'a str, Option<u16>, Option<&'a str>, &'a [&'a str]);
    type Got = (String, String, Option<u16>, Option<String>, Vec<String>);

    fn check(text: &str, expected: Result<(Format, &[Want]), &str>) {
        match (Inventory::parse(text, "inv"), expected) {
            (Ok((inv, fmt)), Ok((want_fmt, want))) => {
                assert_eq!(fmt, want_fmt, "{text}");
                let got: Vec<Got> = inv.hosts.iter().map(|h| (h.name.clone(), h.address.clone(), h.port, h.user.clone(), h.groups.clone())).collect();
                let want: Vec<Got> = want.iter().map(|(n, a, p, u, g)| (n.to_string(), a.to_string(), *p, u.map(str::to_string), g.iter().map(|s| s.to_string()).collect())).collect();
                assert_eq!(got, want, "{text}");
            }
            (Err(e), Err(frag)) => assert!(e.to_string().contains(frag), "{text}: {e}"),
            (got, want) => panic!("{text}: got {got:?}, want {:?}", want.map(|w| w.0)),
        }
    }

    #[test]
    fn our_yaml_with_defaults() {
        check(
            "defaults: {user: root, port: 2222}\nhosts:\n  - {name: web-1, address: 10.0.0.1, groups: [web], labels: {role: web}}\n  - {name: db-1, address: db1.example.com, port: 22, user: admin}\n",
            Ok((Format::Semantos, &[("web-1", "10.0.0.1", Some(2222), Some("root"), &["web"]), ("db-1", "db1.example.com", Some(22), Some("admin"), &[])])),
        );
        check("hosts:\n  - {name: a, colour: red}\n", Err("unknown field `colour`"));
    }

    #[test]
    fn ansible_yaml_with_children_and_var_precedence() {
        let text = "all:\n  vars: {ansible_user: deploy, ansible_port: 22}\n  hosts:\n    lb1: {ansible_host: 10.0.0.9}\n  children:\n    web:\n      vars: {ansible_port: 2200}\n      hosts:\n        web[1:2]:\n        web3: {ansible_host: 10.0.0.3, ansible_port: 2203, role: front}\n";
        check(
            text,
            Ok((Format::AnsibleYaml, &[("lb1", "10.0.0.9", Some(22), Some("deploy"), &[]), ("web1", "web1", Some(2200), Some("deploy"), &["web"]), ("web2", "web2", Some(2200), Some("deploy"), &["web"]), ("web3", "10.0.0.3", Some(2203), Some("deploy"), &["web"])])),
        );
        let (inv, _) = Inventory::parse(text, "inv").unwrap();
        assert_eq!(inv.hosts[3].labels.get("role").map(String::as_str), Some("front"));
    }

    #[test]
    fn ansible_ini_with_sections_ranges_and_quotes() {
        let text = "# fleet\nbastion ansible_host=10.1.0.1\n\n[web]\nweb[01:03] ansible_user='ops'\n\n[db]\ndb-a ansible_host=\"10.1.0.20\" ansible_port=5022\n\n[prod:children]\nweb\ndb\n\n[prod:vars]\nansible_user=root\n\n[web:vars]\nansible_port=2222\n";
        check(
            text,
            Ok((
                Format::AnsibleIni,
                &[
                    ("bastion", "10.1.0.1", None, None, &[]),
                    ("web01", "web01", Some(2222), Some("ops"), &["prod", "web"]),
                    ("web02", "web02", Some(2222), Some("ops"), &["prod", "web"]),
                    ("web03", "web03", Some(2222), Some("ops"), &["prod", "web"]),
                    ("db-a", "10.1.0.20", Some(5022), Some("root"), &["db", "prod"]),
                ],
            )),
        );
    }

    #[test]
    fn hostile_or_broken_entries_name_the_host_and_field() {
        check("hosts:\n  - {name: a, address: '-oProxyCommand=touch /tmp/pwned'}\n", Err("host \"a\": address \"-oProxyCommand=touch /tmp/pwned\" is invalid"));
        check("hosts:\n  - {name: a, address: 10.0.0.1, user: 'root; reboot'}\n", Err("user \"root; reboot\" is invalid"));
        check("hosts:\n  - {name: '$(reboot)', address: 10.0.0.1}\n", Err("host name \"$(reboot)\" is invalid"));
        check("hosts:\n  - {name: a, address: 10.0.0.1}\n  - {name: a, address: 10.0.0.2}\n", Err("listed twice"));
        check("hosts: []\n", Err("no host"));
        check("[web\nh1\n", Err("line 1"));
        check("h1 ansible_port=http\n", Err("ansible_port \"http\" is not a port"));
        check("hosts:\n  - {name: v6, address: '[fe80::1]'}\n", Ok((Format::Semantos, &[("v6", "[fe80::1]", None, None, &[])])));
    }

    #[test]
    fn limit_and_canary_order() {
        let (inv, _) = Inventory::parse("hosts:\n  - {name: a, groups: [web]}\n  - {name: b, labels: {canary: 'true'}}\n  - {name: c, groups: [db]}\n", "inv").unwrap();
        let names = |hs: Vec<Host>| hs.into_iter().map(|h| h.name).collect::<Vec<_>>();
        assert_eq!(names(inv.select(&[]).unwrap()), ["b", "a", "c"]);
        assert_eq!(names(inv.select(&["web".into(), "c".into()]).unwrap()), ["a", "c"]);
        assert_eq!(names(inv.select(&["canary=true".into()]).unwrap()), ["b"]);
        assert!(inv.select(&["nope".into()]).unwrap_err().contains("selects no host"));
    }
}
