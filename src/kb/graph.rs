//! The KB's typed edges drawn as a graph: Graphviz DOT and Mermaid text.
//!
//! Pure functions from a loaded `Kb` to a `String`; writing the text
//! somewhere is the caller's business. Only parameters that take part in at
//! least one edge become nodes, so the picture stays readable with hundreds
//! of entries. Output is deterministic (nodes in key order, edges in KB
//! order) so it can be snapshot-tested and diffed between KB versions.

use super::entry::{Edge, EdgeKind, Relation, Risk};
use super::Kb;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Which text format to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum GraphFormat {
    /// Graphviz DOT (`dot -Tsvg`).
    #[default]
    Dot,
    /// A Mermaid flowchart (renders in GitHub and GitLab Markdown).
    Mermaid,
}

/// Renders the edges of `kb` in `format`.
pub fn render(kb: &Kb, format: GraphFormat) -> String {
    match format {
        GraphFormat::Dot => to_dot(kb),
        GraphFormat::Mermaid => to_mermaid(kb),
    }
}

/// Every key that is an end of some edge, sorted.
pub fn nodes(kb: &Kb) -> Vec<&str> {
    let mut keys: Vec<&str> = kb.edges.iter().flat_map(|e| [e.from.as_str(), e.to.as_str()]).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// A short human label for an edge: its kind, and for invariants the comparison.
pub fn edge_label(e: &Edge) -> String {
    match e.kind {
        EdgeKind::SynergizesWith => "synergizes with".into(),
        EdgeKind::ConflictsWith => "conflicts with".into(),
        EdgeKind::Requires => "requires".into(),
        EdgeKind::BoundedBy => "bounded by".into(),
        EdgeKind::MutuallyExclusive => "mutually exclusive".into(),
        EdgeKind::Invariant => {
            let op = match e.relation {
                Some(Relation::LessThan) => "<",
                Some(Relation::LessEqual) | None => "≤",
            };
            let side = |name: &str, idx: Option<usize>| match idx {
                Some(i) => format!("{name}[{i}]"),
                None => name.to_string(),
            };
            let mut s = format!("{} {op} {}", side("from", e.from_index), side("to", e.to_index));
            let list = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            if !e.unless_from.is_empty() {
                let _ = write!(s, " unless from={}", list(&e.unless_from));
            }
            if !e.unless_to.is_empty() {
                let _ = write!(s, " unless to={}", list(&e.unless_to));
            }
            s
        }
    }
}

fn risk_fill(r: Risk) -> &'static str {
    match r {
        Risk::Low => "#e8f5e9",
        Risk::Medium => "#fff8e1",
        Risk::High => "#ffe0b2",
        Risk::Never => "#ffcdd2",
    }
}

/// Escapes text for a double-quoted DOT string.
fn dot_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole graph in Graphviz DOT. Nodes are coloured by risk; each edge
/// kind has its own colour and style, and the edge's note is its tooltip.
pub fn to_dot(kb: &Kb) -> String {
    let mut out = String::new();
    out.push_str("digraph kb {\n");
    out.push_str("  rankdir=LR;\n");
    out.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"monospace\", fillcolor=\"#ffffff\"];\n");
    out.push_str("  edge [fontname=\"sans-serif\", fontsize=10];\n");
    for key in nodes(kb) {
        match kb.param(key) {
            Some(p) => {
                let tip = format!("{} (risk {:?}, scope {:?})", p.controls, p.risk, p.scope);
                let _ = writeln!(out, "  {} [fillcolor={}, tooltip={}];", dot_str(key), dot_str(risk_fill(p.risk)), dot_str(&tip));
            }
            // An edge to a key without an entry fails the consistency check; draw it anyway, dashed.
            None => {
                let _ = writeln!(out, "  {} [style=dashed];", dot_str(key));
            }
        }
    }
    for e in &kb.edges {
        let style = match e.kind {
            EdgeKind::SynergizesWith => "color=\"#2e7d32\", dir=none",
            EdgeKind::ConflictsWith => "color=\"#c62828\", style=bold, dir=none",
            EdgeKind::Requires => "color=\"#1565c0\", style=dashed",
            EdgeKind::BoundedBy => "color=\"#ef6c00\", arrowhead=tee",
            EdgeKind::MutuallyExclusive => "color=\"#c62828\", style=dashed, dir=both",
            EdgeKind::Invariant => "color=\"#000000\", penwidth=1.5",
        };
        let _ = writeln!(out, "  {} -> {} [label={}, {style}, tooltip={}];", dot_str(&e.from), dot_str(&e.to), dot_str(&edge_label(e)), dot_str(&e.note));
    }
    out.push_str("}\n");
    out
}

/// Escapes text for a quoted Mermaid label (Mermaid uses HTML-like entity codes).
fn mermaid_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole graph as a Mermaid flowchart. Node IDs are `n0`, `n1`... in
/// key order (dots are not valid in Mermaid IDs); risk classes colour them.
pub fn to_mermaid(kb: &Kb) -> String {
    let keys = nodes(kb);
    let id: BTreeMap<&str, String> = keys.iter().enumerate().map(|(i, k)| (*k, format!("n{i}"))).collect();
    let mut out = String::from("flowchart LR\n");
    for k in &keys {
        let _ = writeln!(out, "  {}[{}]", id[k], mermaid_str(k));
    }
    for e in &kb.edges {
        let arrow = match e.kind {
            EdgeKind::SynergizesWith => "---",
            EdgeKind::ConflictsWith => "--x",
            EdgeKind::Requires => "-.->",
            EdgeKind::BoundedBy => "--o",
            EdgeKind::MutuallyExclusive => "<-.->",
            EdgeKind::Invariant => "==>",
        };
        let _ = writeln!(out, "  {} {arrow}|{}| {}", id[e.from.as_str()], mermaid_str(&edge_label(e)), id[e.to.as_str()]);
    }
    let mut by_risk: BTreeMap<Risk, Vec<&str>> = BTreeMap::new();
    for k in &keys {
        if let Some(p) = kb.param(k) {
            by_risk.entry(p.risk).or_default().push(id[k].as_str());
        }
    }
    for (risk, ids) in by_risk {
        let class = format!("{risk:?}").to_lowercase();
        let _ = writeln!(out, "  classDef {class} fill:{}", risk_fill(risk));
        let _ = writeln!(out, "  class {} {class}", ids.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb() -> Kb {
        let mut kb = Kb::default();
        let text = r#"
[[param]]
key = "net.ipv4.ip_unprivileged_port_start"
type = "int"
scope = "netns"
risk = "never"
risk_reason = "r"
controls = "The first \"unprivileged\" port."

[[param]]
key = "net.ipv4.ip_local_port_range"
type = "ints"
count = 2
scope = "netns"
risk = "medium"
risk_reason = "r"
controls = "c"

[[param]]
key = "vm.dirty_bytes"
type = "int"
scope = "global"
risk = "medium"
risk_reason = "r"
controls = "c"

[[param]]
key = "vm.dirty_ratio"
type = "int"
scope = "global"
risk = "medium"
risk_reason = "r"
controls = "c"

[[param]]
key = "vm.unrelated"
type = "int"
scope = "global"
risk = "low"
risk_reason = "r"
controls = "c"

[[edge]]
kind = "invariant"
from = "net.ipv4.ip_unprivileged_port_start"
to = "net.ipv4.ip_local_port_range"
relation = "less_equal"
to_index = 0
note = "The <boundary> must not exceed the range's low end."

[[edge]]
kind = "mutually_exclusive"
from = "vm.dirty_bytes"
to = "vm.dirty_ratio"
note = "Writing one zeroes the other."
"#;
        kb.merge_text(text, "t.toml").unwrap();
        kb
    }

    #[test]
    fn only_edge_ends_are_nodes() {
        assert_eq!(nodes(&kb()), vec!["net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start", "vm.dirty_bytes", "vm.dirty_ratio"]);
    }

    #[test]
    fn dot_has_every_edge_with_label_and_escaped_text() {
        let dot = to_dot(&kb());
        assert!(dot.starts_with("digraph kb {\n") && dot.ends_with("}\n"), "{dot}");
        assert!(dot.contains("\"net.ipv4.ip_unprivileged_port_start\" -> \"net.ipv4.ip_local_port_range\" [label=\"from ≤ to[0]\""), "{dot}");
        assert!(dot.contains("\"vm.dirty_bytes\" -> \"vm.dirty_ratio\" [label=\"mutually exclusive\", color=\"#c62828\", style=dashed, dir=both"), "{dot}");
        assert!(dot.contains("The first \\\"unprivileged\\\" port."), "quotes in tooltips are escaped: {dot}");
        assert!(!dot.contains("vm.unrelated"), "{dot}");
        assert_eq!(dot, to_dot(&kb()), "deterministic");
    }

    #[test]
    fn mermaid_uses_safe_ids_and_entities() {
        let m = to_mermaid(&kb());
        assert!(m.starts_with("flowchart LR\n"), "{m}");
        assert!(m.contains("  n0[\"net.ipv4.ip_local_port_range\"]"), "{m}");
        assert!(m.contains("  n1 ==>|\"from ≤ to[0]\"| n0"), "{m}");
        assert!(m.contains("  n2 <-.->|\"mutually exclusive\"| n3"), "{m}");
        assert!(m.contains("classDef never fill:#ffcdd2") && m.contains("class n1 never"), "{m}");
        assert!(m.contains("class n0,n2,n3 medium"), "{m}");
    }

    #[test]
    fn invariant_labels_name_exemptions() {
        let e = Edge {
            kind: EdgeKind::Invariant,
            from: "a".into(),
            to: "b".into(),
            relation: Some(Relation::LessThan),
            from_index: None,
            to_index: None,
            unless_from: vec![-1],
            unless_to: vec![0],
            note: "n".into(),
        };
        assert_eq!(edge_label(&e), "from < to unless from=-1 unless to=0");
        assert_eq!(mermaid_str("a<b>\"c\""), "\"a#lt;b#gt;#quot;c#quot;\"");
    }

    #[test]
    fn embedded_kb_renders_in_both_formats() {
        let kb = Kb::embedded().unwrap();
        let dot = render(&kb, GraphFormat::Dot);
        let mermaid = render(&kb, GraphFormat::Mermaid);
        assert_eq!(dot.matches(" -> ").count(), kb.edges.len());
        assert_eq!(mermaid.lines().filter(|l| l.contains('|')).count(), kb.edges.len());
    }
}
