//! Questions asked of the knowledge base by people rather than by the
//! pipeline: which parameters belong to a subsystem, which carry a given
//! risk, which an intent wants moved, and how the KB is spread across
//! subsystems, risks and edge kinds. Pure functions over a loaded `Kb`.

use super::entry::{Direction, EdgeKind, Intent, Param, Risk};
use super::Kb;
use std::collections::BTreeMap;

/// The subsystem a key belongs to, as `kb list --subsystem` and the counts
/// use it: the first two components under `net` (`net.ipv4`, `net.core`,
/// `net.netfilter`...) and the first component elsewhere (`vm`, `kernel`,
/// `fs`, `user`). `net.nf_conntrack_max` has only two components and so
/// counts as `net`.
pub fn subsystem_of(key: &str) -> &str {
    let mut dots = key.match_indices('.').map(|(i, _)| i);
    let first = dots.next().unwrap_or(key.len());
    if &key[..first] != "net" {
        return &key[..first];
    }
    match dots.next() {
        Some(second) => &key[..second],
        None => &key[..first],
    }
}

/// What `kb list` keeps; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// A dotted prefix (`vm`, `net`, `net.ipv4`, `net.ipv4.neigh`): keys equal to it or below it.
    pub subsystem: Option<String>,
    /// Exactly this risk.
    pub risk: Option<Risk>,
    /// Parameters whose direction for this intent (falling back to `balanced`) is set and is not `keep`.
    pub intent: Option<Intent>,
}

impl ListFilter {
    /// Whether `p` passes the filter.
    pub fn matches(&self, p: &Param) -> bool {
        if let Some(s) = &self.subsystem {
            // A trailing dot (`net.ipv4.`) means the same as none.
            let s = s.trim_end_matches('.');
            if !(p.key == s || p.key.strip_prefix(s).is_some_and(|rest| rest.starts_with('.'))) {
                return false;
            }
        }
        if let Some(r) = self.risk
            && p.risk != r
        {
            return false;
        }
        if let Some(i) = self.intent
            && !matches!(p.direction.get(i), Some(d) if *d != Direction::Keep)
        {
            return false;
        }
        true
    }
}

/// The parameters that pass `filter`, in key order.
pub fn list<'a>(kb: &'a Kb, filter: &ListFilter) -> Vec<&'a Param> {
    kb.params.values().filter(|p| filter.matches(p)).collect()
}

/// How many parameters each subsystem (see [`subsystem_of`]) has.
pub fn count_by_subsystem(kb: &Kb) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for k in kb.params.keys() {
        *out.entry(subsystem_of(k).to_string()).or_insert(0) += 1;
    }
    out
}

/// How many parameters carry each risk.
pub fn count_by_risk(kb: &Kb) -> BTreeMap<Risk, usize> {
    let mut out = BTreeMap::new();
    for p in kb.params.values() {
        *out.entry(p.risk).or_insert(0) += 1;
    }
    out
}

/// How many edges there are of each kind.
pub fn count_edges_by_kind(kb: &Kb) -> BTreeMap<EdgeKind, usize> {
    let mut out = BTreeMap::new();
    for e in &kb.edges {
        *out.entry(e.kind).or_insert(0) += 1;
    }
    out
}

/// The lowercase name of a risk, as written in the KB files.
pub fn risk_name(r: Risk) -> &'static str {
    match r {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
        Risk::Never => "never",
    }
}

/// The snake_case name of an edge kind, as written in the KB files.
pub fn edge_kind_name(k: EdgeKind) -> &'static str {
    match k {
        EdgeKind::SynergizesWith => "synergizes_with",
        EdgeKind::ConflictsWith => "conflicts_with",
        EdgeKind::Requires => "requires",
        EdgeKind::BoundedBy => "bounded_by",
        EdgeKind::MutuallyExclusive => "mutually_exclusive",
        EdgeKind::Invariant => "invariant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb() -> Kb {
        let mut kb = Kb::default();
        let text = r#"
[[param]]
key = "vm.swappiness"
type = "int"
scope = "global"
risk = "medium"
risk_reason = "r"
controls = "c"
direction = { latency = "lower", balanced = "keep" }

[[param]]
key = "net.ipv4.tcp_fin_timeout"
type = "int"
scope = "netns"
risk = "low"
risk_reason = "r"
controls = "c"
direction = { balanced = "lower" }

[[param]]
key = "net.ipv4.neigh.default.gc_thresh3"
type = "int"
scope = "global"
risk = "low"
risk_reason = "r"
controls = "c"

[[param]]
key = "net.nf_conntrack_max"
type = "int"
scope = "global"
risk = "medium"
risk_reason = "r"
controls = "c"

[[param]]
key = "kernel.randomize_va_space"
type = "int"
scope = "global"
risk = "never"
risk_reason = "r"
controls = "c"
"#;
        kb.merge_text(text, "t.toml").unwrap();
        kb
    }

    fn check(filter: ListFilter, expected: &[&str]) {
        let kb = kb();
        let got: Vec<&str> = list(&kb, &filter).iter().map(|p| p.key.as_str()).collect();
        assert_eq!(got, expected, "{filter:?}");
    }

    #[test]
    fn subsystem_is_two_components_under_net() {
        assert_eq!(subsystem_of("net.ipv4.tcp_rmem"), "net.ipv4");
        assert_eq!(subsystem_of("net.ipv4.neigh.default.gc_thresh1"), "net.ipv4");
        assert_eq!(subsystem_of("net.nf_conntrack_max"), "net");
        assert_eq!(subsystem_of("vm.swappiness"), "vm");
        assert_eq!(subsystem_of("kernel.yama.ptrace_scope"), "kernel");
        assert_eq!(subsystem_of("vm"), "vm");
    }

    #[test]
    fn filters_by_prefix_risk_and_intent() {
        check(ListFilter::default(), &["kernel.randomize_va_space", "net.ipv4.neigh.default.gc_thresh3", "net.ipv4.tcp_fin_timeout", "net.nf_conntrack_max", "vm.swappiness"]);
        check(ListFilter { subsystem: Some("net".into()), ..Default::default() }, &["net.ipv4.neigh.default.gc_thresh3", "net.ipv4.tcp_fin_timeout", "net.nf_conntrack_max"]);
        check(ListFilter { subsystem: Some("net.ipv4.neigh".into()), ..Default::default() }, &["net.ipv4.neigh.default.gc_thresh3"]);
        // A prefix must end at a component boundary: `net.ipv4.tcp` is not a subsystem.
        check(ListFilter { subsystem: Some("net.ipv4.tcp".into()), ..Default::default() }, &[]);
        check(ListFilter { subsystem: Some("vm.".into()), ..Default::default() }, &["vm.swappiness"]);
        check(ListFilter { risk: Some(Risk::Never), ..Default::default() }, &["kernel.randomize_va_space"]);
        // Latency: swappiness says lower; fin_timeout falls back to balanced (lower).
        check(ListFilter { intent: Some(Intent::Latency), ..Default::default() }, &["net.ipv4.tcp_fin_timeout", "vm.swappiness"]);
        // Balanced: swappiness says keep, so it is left out.
        check(ListFilter { intent: Some(Intent::Balanced), ..Default::default() }, &["net.ipv4.tcp_fin_timeout"]);
        check(ListFilter { subsystem: Some("vm".into()), risk: Some(Risk::Low), intent: None }, &[]);
    }

    #[test]
    fn counts() {
        let kb = kb();
        let by_sub = count_by_subsystem(&kb);
        assert_eq!(by_sub.get("net.ipv4"), Some(&2));
        assert_eq!(by_sub.get("net"), Some(&1));
        assert_eq!(by_sub.get("vm"), Some(&1));
        let by_risk = count_by_risk(&kb);
        assert_eq!(by_risk.get(&Risk::Medium), Some(&2));
        assert_eq!(risk_name(Risk::Never), "never");
        assert_eq!(edge_kind_name(EdgeKind::BoundedBy), "bounded_by");
    }
}
