//! Ansible inventories, YAML (`all: {hosts, vars, children}`) and INI
//! (`[group]`, `[group:vars]`, `[group:children]`, host ranges), turned into
//! hosts with the connection variables SemantOS honours.

use super::node::Node;
use super::check::valid_group;
use super::model::{Host, Inventory};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// Host names expanded from patterns so far, repeats included (see `MAX_HOSTS`).
    expanded: u64,
}

/// Most host names one inventory may expand to, repeats included. Ranges multiply
/// (`web[00:99][00:99][00:99]` is a million names from 24 bytes), so the count is checked
/// before a pattern is expanded, not after memory ran out.
pub const MAX_HOSTS: u64 = 100_000;

impl Groups {
    /// Adds every host `pattern` expands to, refusing before expanding when the inventory would pass `MAX_HOSTS`.
    fn add_pattern(&mut self, group: &str, pattern: &str, vars: &[(String, String)]) -> Result<(), String> {
        let n = range_count(pattern)?;
        let total = self.expanded.saturating_add(n);
        if total > MAX_HOSTS {
            return Err(format!(
                "host pattern {pattern:?} expands to {n} hosts, which with the {} before it passes the limit of {MAX_HOSTS} hosts per inventory; split the fleet into several inventories or narrow the ranges",
                self.expanded
            ));
        }
        self.expanded = total;
        for name in expand_range(pattern)? {
            self.add_host(group, name, vars);
        }
        Ok(())
    }

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
                self.add_pattern(name, hname, &vars).map_err(|e| format!("group {name:?}: {e}"))?;
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
        check_group_links(&self.children)?;
        apply_groups(&mut self.hosts, &self.members, &self.children, &self.vars);
        finish_ansible(self.order, self.hosts)
    }
}

pub(super) fn parse_ansible_yaml(text: &str) -> Result<Inventory, String> {
    let root: Node = serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let Node::Map(top) = root else { return Err("an Ansible YAML inventory is a mapping of groups (all: {hosts, vars, children})".into()) };
    let mut g = Groups::default();
    for (name, body) in &top {
        g.walk(name, body, 0)?;
    }
    g.finish()
}

/// Deepest chain of children links accepted (the YAML walk refuses more than 32 too).
const MAX_GROUP_DEPTH: usize = 64;

/// Refuses a group that is its own descendant (naming the chain of links) or a chain of children deeper than `MAX_GROUP_DEPTH`.
fn check_group_links(children: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
    // Depth-first with the path on a stack; `done` holds groups whose descendants were all
    // seen without a cycle, so each group is explored once.
    fn visit(g: &str, children: &BTreeMap<String, Vec<String>>, path: &mut Vec<String>, done: &mut std::collections::BTreeSet<String>) -> Result<(), String> {
        if let Some(at) = path.iter().position(|p| p == g) {
            let cycle = path[at..].iter().chain([&g.to_string()]).cloned().collect::<Vec<_>>().join(" → ");
            return Err(format!("group {g:?} is its own descendant ({cycle}); Ansible refuses such an inventory: remove one of these children links"));
        }
        if done.contains(g) {
            return Ok(());
        }
        if path.len() >= MAX_GROUP_DEPTH {
            return Err(format!("group {g:?} is nested more than {MAX_GROUP_DEPTH} children deep ({} → …); flatten the groups", path[0]));
        }
        path.push(g.to_string());
        for c in children.get(g).into_iter().flatten() {
            visit(c, children, path, done)?;
        }
        path.pop();
        done.insert(g.to_string());
        Ok(())
    }
    let mut done = std::collections::BTreeSet::new();
    children.keys().try_for_each(|g| visit(g, children, &mut Vec::new(), &mut done))
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

pub(super) fn parse_ansible_ini(text: &str) -> Result<Inventory, String> {
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
                // `""` is a non-empty line that splits into no word: there is no host to name.
                let (name, rest) = words.split_first().ok_or_else(|| format!("line {line}: {t:?} names no host; write a host name (quotes around an empty name leave none)"))?;
                let mut hv = Vec::new();
                for w in rest {
                    let (k, v) = w.split_once('=').ok_or_else(|| format!("line {line}: {w:?} after host {name:?} is not key=value"))?;
                    hv.push((k.to_string(), v.to_string()));
                }
                g.add_pattern(group, name, &hv).map_err(|e| format!("line {line}: {e}"))?;
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
    // Depth of a group: `all` 0, top-level groups 1, each child one more. Memoised: groups that
    // are children of two parents in each of 30 layers would otherwise cost 2^30 calls.
    fn depth_of(g: &str, children: &BTreeMap<String, Vec<String>>, guard: usize, memo: &mut BTreeMap<String, usize>) -> usize {
        if g == "all" || guard > 32 {
            return 0;
        }
        if let Some(d) = memo.get(g) {
            return *d;
        }
        let parents: Vec<&String> = children.iter().filter(|(_, cs)| cs.iter().any(|c| c == g)).map(|(p, _)| p).collect();
        let d = parents.into_iter().map(|p| depth_of(p, children, guard + 1, memo) + 1).max().unwrap_or(1);
        memo.insert(g.to_string(), d);
        d
    }
    let mut memo = BTreeMap::new();
    g.vars = vars.into_iter().map(|(name, v)| (depth_of(&name, &g.children, 0, &mut memo), name, v)).collect();
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

/// How many names `expand_range(name)` gives (saturating), without building them.
fn range_count(name: &str) -> Result<u64, String> {
    let (Some(open), Some(close)) = (name.find('['), name.find(']')) else { return Ok(1) };
    if close < open {
        return Err(format!("host pattern {name:?} has ] before ["));
    }
    let (inner, suffix) = (&name[open + 1..close], &name[close + 1..]);
    let (lo, hi) = inner.split_once(':').ok_or_else(|| format!("host range {name:?} must look like [01:10] or [a:f]"))?;
    let here = match (lo.parse::<u32>(), hi.parse::<u32>()) {
        (Ok(a), Ok(b)) if a <= b => u64::from(b - a) + 1,
        (Ok(_), Ok(_)) => 0,
        _ if lo.len() == 1 && hi.len() == 1 && lo <= hi => u64::from(hi.as_bytes()[0] - lo.as_bytes()[0]) + 1,
        _ => 1,
    };
    Ok(here.saturating_mul(range_count(suffix)?))
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
