//! The crate's file graph, read from the source text: which file uses an item of which file.
//!
//! What counts as an edge (ARCHITECTURE.md, "How the module graph is read"):
//! * a file that names an item of another file depends on it: `use crate::a::b::Item`,
//!   `super::files::write_atomic(..)`, `sim::params::HostParams` after `use crate::sim`;
//! * a path is followed to the file that defines the item: through the modules it names, then
//!   through `pub use` re-exports (`crate::apply::apply` is defined in `apply/transaction.rs`);
//! * a module's table of contents is not a dependency: `mod x;` and a `pub use` of an item of
//!   one of its own descendants (the facade in a `mod.rs`) make no edge, so a child that uses an
//!   item its parent defines (`super::Refused`) is no cycle by itself;
//! * naming a module alone (`use crate::sim;`, `{self, ..}`) binds a name; the paths through
//!   that name are the edges;
//! * code under `#[cfg(test)]` (a `mod tests;` file, an inline test module, a test-only `use` or
//!   function) is left out: a test may drive its module with anything above it;
//! * comments, strings and character literals are ignored; paths of other crates are ignored.

use super::lex::{Tok, lex};
use std::collections::{BTreeMap, BTreeSet};

/// A path as written, in the module it was written in.
#[derive(Debug, Clone)]
struct RawPath {
    /// The module the path appears in (file module plus inline modules).
    module: Vec<String>,
    segments: Vec<String>,
    line: usize,
    /// A `pub use` leaf: a re-export, which is no edge when it names a descendant's item.
    reexport: bool,
    /// The name a `use` leaf binds (`None` for a path in code or a glob).
    binds: Option<String>,
    glob: bool,
    from_use: bool,
}

/// What one file says about modules and paths.
#[derive(Debug, Default)]
struct Scan {
    /// Child modules declared with `mod x;` (name, test-only).
    children: Vec<(String, bool)>,
    /// Inline modules (`mod x { .. }`), as module paths.
    inline: Vec<Vec<String>>,
    /// Items defined at the top of the file (fn, struct, enum, trait, type, const, static).
    items: BTreeSet<String>,
    paths: Vec<RawPath>,
}

/// Parses a `use` tree starting at `toks[*i]`, pushing one `RawPath` per leaf; stops after `;`.
fn parse_use(toks: &[(Tok, usize)], i: &mut usize, prefix: Vec<String>, base: &RawPath, out: &mut Vec<RawPath>) {
    let mut segs = prefix;
    while *i < toks.len() {
        let (t, line) = &toks[*i];
        match t {
            Tok::Ident(s) if s == "as" => {
                *i += 1;
                let alias = match &toks.get(*i) {
                    Some((Tok::Ident(a), _)) => a.clone(),
                    _ => String::new(),
                };
                *i += 1;
                if let Some(last) = out.last_mut() {
                    last.binds = Some(alias).filter(|a| a != "_");
                }
                continue;
            }
            Tok::Ident(s) => {
                segs.push(s.clone());
                *i += 1;
                if !matches!(toks.get(*i), Some((Tok::Punct("::"), _))) {
                    let mut leaf = segs.clone();
                    let mut name = leaf.last().cloned();
                    if leaf.last().map(String::as_str) == Some("self") && leaf.len() > 1 {
                        leaf.pop();
                        name = leaf.last().cloned();
                    }
                    out.push(RawPath { segments: leaf, line: *line, binds: name, glob: false, from_use: true, ..base.clone() });
                }
            }
            Tok::Punct("::") => *i += 1,
            Tok::Punct("*") => {
                out.push(RawPath { segments: segs.clone(), line: *line, binds: None, glob: true, from_use: true, ..base.clone() });
                *i += 1;
            }
            Tok::Punct("{") => {
                *i += 1;
                loop {
                    parse_use(toks, i, segs.clone(), base, out);
                    match toks.get(*i) {
                        Some((Tok::Punct(","), _)) => *i += 1,
                        _ => break,
                    }
                    if matches!(toks.get(*i), Some((Tok::Punct("}"), _))) {
                        break;
                    }
                }
                *i += 1; // the closing brace
                return;
            }
            Tok::Punct(",") | Tok::Punct("}") => return,
            Tok::Punct(";") => return,
            _ => *i += 1,
        }
        if matches!(toks.get(*i), Some((Tok::Punct(","), _)) | Some((Tok::Punct("}"), _)) | Some((Tok::Punct(";"), _))) {
            return;
        }
    }
}

/// Index just past the item starting at `i` (a `use` to its `;`, anything else to its `;` or
/// matching `}`), skipping any further attributes first.
fn item_end(toks: &[(Tok, usize)], mut i: usize) -> usize {
    let is_use = toks[i..].iter().take(6).map(|(t, _)| t).take_while(|t| !matches!(t, Tok::Punct("{") | Tok::Punct(";"))).any(|t| *t == Tok::Ident("use".into()));
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i].0 {
            Tok::Punct("{") => depth += 1,
            Tok::Punct("}") => {
                depth = depth.saturating_sub(1);
                if depth == 0 && !is_use {
                    return i + 1;
                }
            }
            Tok::Punct(";") if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The identifier at `j`, if there is one.
fn ident(toks: &[(Tok, usize)], j: usize) -> Option<&str> {
    match toks.get(j) {
        Some((Tok::Ident(x), _)) => Some(x.as_str()),
        _ => None,
    }
}

/// The attribute whose `#` is at `i`: (index past it, whether it is an outer `#[cfg(test)]`).
fn attribute(toks: &[(Tok, usize)], i: usize) -> (usize, bool) {
    let inner = matches!(toks.get(i + 1), Some((Tok::Punct("!"), _)));
    let start = if inner { i + 2 } else { i + 1 };
    let end = item_end_brackets(toks, start);
    let attr: Vec<&Tok> = toks[start..end].iter().map(|(t, _)| t).collect();
    let is_cfg_test = attr.len() >= 5 && attr[1] == &Tok::Ident("cfg".into()) && attr[3] == &Tok::Ident("test".into()) && attr[4] == &Tok::Punct(")");
    (end, is_cfg_test && !inner)
}

/// Whether the `use` at `i` is `pub` or `pub(..)`: a re-export.
fn is_reexport(toks: &[(Tok, usize)], i: usize) -> bool {
    i > 0 && (ident(toks, i - 1) == Some("pub") || matches!(toks[i - 1].0, Tok::Punct(")")) && (i.saturating_sub(5)..i).any(|j| ident(toks, j) == Some("pub")))
}

/// The path `a::b::c` starting at `i`: its segments and the index past it.
fn path_at(toks: &[(Tok, usize)], i: usize) -> (Vec<String>, usize) {
    let mut segs = vec![ident(toks, i).unwrap_or_default().to_string()];
    let mut j = i + 1;
    while matches!(toks.get(j), Some((Tok::Punct("::"), _)))
        && let Some(n) = ident(toks, j + 1)
    {
        segs.push(n.to_string());
        j += 2;
    }
    (segs, j)
}

/// Scans one file whose module path is `module`.
fn scan(src: &str, module: &[String]) -> Scan {
    let toks = lex(src);
    let mut s = Scan::default();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let (mut depth, mut i) = (0usize, 0usize);
    let cur = |inline: &[(String, usize)]| module.iter().cloned().chain(inline.iter().map(|(n, _)| n.clone())).collect::<Vec<_>>();
    while i < toks.len() {
        let (t, line) = (&toks[i].0, toks[i].1);
        match t {
            Tok::Punct("#") => {
                let (end, test_only) = attribute(&toks, i);
                i = end;
                if test_only {
                    // A test-only `mod x;` is recorded (its file is left out); the item is skipped.
                    while matches!(toks.get(i), Some((Tok::Punct("#"), _))) {
                        i = attribute(&toks, i).0;
                    }
                    if let Some(m) = (i..i + 3).find(|j| ident(&toks, *j) == Some("mod"))
                        && let Some(name) = ident(&toks, m + 1)
                        && matches!(toks.get(m + 2), Some((Tok::Punct(";"), _)))
                        && inline.is_empty()
                    {
                        s.children.push((name.to_string(), true));
                    }
                    i = item_end(&toks, i);
                }
                continue;
            }
            Tok::Punct("{") => depth += 1,
            Tok::Punct("}") => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        match t {
            Tok::Ident(w) if w == "mod" => {
                match (ident(&toks, i + 1), toks.get(i + 2)) {
                    (Some(name), Some((Tok::Punct(";"), _))) if inline.is_empty() => s.children.push((name.to_string(), false)),
                    (Some(name), Some((Tok::Punct("{"), _))) => {
                        inline.push((name.to_string(), depth));
                        s.inline.push(cur(&inline));
                        depth += 1;
                        i += 1;
                    }
                    _ => {}
                }
                i += 2;
            }
            Tok::Ident(w) if w == "use" => {
                let base = RawPath { module: cur(&inline), segments: Vec::new(), line, reexport: is_reexport(&toks, i), binds: None, glob: false, from_use: true };
                i += 1;
                parse_use(&toks, &mut i, Vec::new(), &base, &mut s.paths);
                while i < toks.len() && toks[i].0 != Tok::Punct(";") {
                    i += 1;
                }
            }
            Tok::Ident(w) if ["fn", "struct", "enum", "trait", "type", "const", "static", "union"].contains(&w.as_str()) => {
                if let Some(name) = ident(&toks, i + 1)
                    && depth == 0
                {
                    s.items.insert(name.to_string());
                }
                i += 1;
            }
            Tok::Ident(_) if matches!(toks.get(i + 1), Some((Tok::Punct("::"), _))) && !(i > 0 && toks[i - 1].0 == Tok::Punct("::")) => {
                let (segments, j) = path_at(&toks, i);
                s.paths.push(RawPath { module: cur(&inline), segments, line, reexport: false, binds: None, glob: false, from_use: false });
                i = j;
            }
            _ => i += 1,
        }
    }
    s
}

/// Index just past the `]` closing the attribute whose `[` is at `i`.
fn item_end_brackets(toks: &[(Tok, usize)], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i].0 {
            Tok::Punct("[") => depth += 1,
            Tok::Punct("]") => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// One dependency between files: `from` names an item of `to` at `line`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub line: usize,
}

/// The file graph of a crate.
#[derive(Debug, Default)]
pub struct Graph {
    /// Module path → file (relative to `src/`) for every file-backed and inline module.
    modules: BTreeMap<Vec<String>, String>,
    /// Per module: re-exported name → absolute target path.
    reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
    /// Per module: glob re-exports (absolute module paths).
    globs: BTreeMap<Vec<String>, Vec<Vec<String>>>,
    items: BTreeMap<String, BTreeSet<String>>,
    /// Every edge, deduplicated per (from, to) with the first line.
    pub edges: Vec<Edge>,
    /// Files that are compiled only for tests (left out).
    pub test_files: BTreeSet<String>,
}

/// The module path of a file relative to `src/` (`lib.rs` → [], `a/mod.rs` and `a.rs` → [a]).
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod") | Some("lib")) {
        parts.pop();
    }
    parts
}

impl Graph {
    /// Builds the graph from `(path relative to src/, text)` pairs of one library crate.
    pub fn build(files: &[(String, String)]) -> Graph {
        let mut g = Graph::default();
        let mut scans = BTreeMap::new();
        for (rel, text) in files {
            let m = module_of(rel);
            let s = scan(text, &m);
            g.modules.insert(m.clone(), rel.clone());
            for inl in &s.inline {
                g.modules.insert(inl.clone(), rel.clone());
            }
            g.items.insert(rel.clone(), s.items.clone());
            scans.insert(rel.clone(), (m, s));
        }
        // Test-only files: declared `#[cfg(test)] mod x;`, and everything below them.
        for (rel, (m, s)) in &scans {
            for (child, test) in &s.children {
                let cm: Vec<String> = m.iter().cloned().chain([child.clone()]).collect();
                if *test || g.test_files.contains(rel) {
                    let prefix = cm.clone();
                    for (r2, (m2, _)) in &scans {
                        if m2.starts_with(&prefix) {
                            g.test_files.insert(r2.clone());
                        }
                    }
                }
            }
        }
        // Re-exports and bindings first, then every path resolved with them.
        let mut bindings: BTreeMap<String, BTreeMap<(Vec<String>, String), Vec<String>>> = BTreeMap::new();
        for (rel, (_, s)) in &scans {
            for p in s.paths.iter().filter(|p| p.from_use) {
                let Some(abs) = g.absolute(&p.module, &p.segments, None) else { continue };
                if p.glob && p.reexport {
                    g.globs.entry(p.module.clone()).or_default().push(abs.clone());
                }
                if let Some(name) = &p.binds {
                    if p.reexport {
                        g.reexports.entry(p.module.clone()).or_default().insert(name.clone(), abs.clone());
                    }
                    bindings.entry(rel.clone()).or_default().insert((p.module.clone(), name.clone()), abs);
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (rel, (_, s)) in &scans {
            if g.test_files.contains(rel) {
                continue;
            }
            let b = bindings.get(rel);
            for p in &s.paths {
                let Some(abs) = g.absolute(&p.module, &p.segments, b) else { continue };
                if p.reexport && abs.starts_with(&p.module) {
                    continue; // the module's own facade
                }
                if p.from_use && !p.glob && g.modules.contains_key(&abs) {
                    continue; // binds a module name; the paths through it are the edges
                }
                let mut via = Vec::new();
                let Some(to) = g.resolve(&abs, 0, &mut via) else { continue };
                for to in via.into_iter().chain([to]) {
                    if &to != rel && !g.test_files.contains(&to) && seen.insert((rel.clone(), to.clone())) {
                        g.edges.push(Edge { from: rel.clone(), to, line: p.line });
                    }
                }
            }
        }
        g.edges.sort();
        g
    }

    /// The absolute module-and-item path `segs` names when written in `module`, or `None` for another crate's path.
    fn absolute(&self, module: &[String], segs: &[String], bindings: Option<&BTreeMap<(Vec<String>, String), Vec<String>>>) -> Option<Vec<String>> {
        let first = segs.first()?;
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => module.to_vec(),
            "super" => {
                let mut m = module.to_vec();
                let mut rest = segs;
                while rest.first().map(String::as_str) == Some("super") {
                    m.pop();
                    rest = &rest[1..];
                }
                return Some(m.into_iter().chain(rest.iter().cloned()).collect());
            }
            _ => {
                // A name bound by a `use` in this module or an enclosing one, a child module, or another crate.
                let bound = bindings.and_then(|b| (0..=module.len()).rev().find_map(|n| b.get(&(module[..n].to_vec(), first.clone()))));
                if let Some(target) = bound {
                    return Some(target.iter().cloned().chain(segs[1..].iter().cloned()).collect());
                }
                let child: Vec<String> = module.iter().cloned().chain([first.clone()]).collect();
                if self.modules.contains_key(&child) {
                    return Some(module.iter().cloned().chain(segs.iter().cloned()).collect());
                }
                return None;
            }
        };
        base.extend(segs[1..].iter().cloned());
        Some(base)
    }

    /// The file that defines what the absolute path `abs` names; `via` gets each file whose `pub use`
    /// the path went through (a re-export is that file's promise, so the user depends on it too).
    fn resolve(&self, abs: &[String], depth: usize, via: &mut Vec<String>) -> Option<String> {
        if depth > 16 {
            return None;
        }
        let mut m: Vec<String> = Vec::new();
        for (i, seg) in abs.iter().enumerate() {
            let mut child = m.clone();
            child.push(seg.clone());
            if self.modules.contains_key(&child) {
                m = child;
                continue;
            }
            if let Some(target) = self.reexports.get(&m).and_then(|r| r.get(seg)) {
                let next: Vec<String> = target.iter().cloned().chain(abs[i + 1..].iter().cloned()).collect();
                if next != abs {
                    via.extend(self.modules.get(&m).cloned());
                    return self.resolve(&next, depth + 1, via);
                }
            }
            let file = self.modules.get(&m)?;
            let defined_here = self.items.get(file).is_some_and(|it| it.contains(seg));
            if !defined_here {
                for glob in self.globs.get(&m).into_iter().flatten() {
                    if let Some(f) = self.modules.get(glob)
                        && self.items.get(f).is_some_and(|it| it.contains(seg))
                    {
                        return Some(f.clone());
                    }
                }
            }
            return Some(file.clone());
        }
        self.modules.get(&m).cloned()
    }

    /// Cycles between files: for each strongly connected component of more than one file, a
    /// shortest cycle through its first file and the component's files.
    pub fn cycles(&self, ignore: &dyn Fn(&Edge) -> bool) -> Vec<(Vec<String>, Vec<String>)> {
        let mut adj: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in self.edges.iter().filter(|e| !ignore(e)) {
            adj.entry(&e.from).or_default().push(&e.to);
        }
        let nodes: BTreeSet<&str> = self.edges.iter().flat_map(|e| [e.from.as_str(), e.to.as_str()]).collect();
        let mut out = Vec::new();
        let mut done: BTreeSet<&str> = BTreeSet::new();
        for n in &nodes {
            if done.contains(n) {
                continue;
            }
            // Every node that reaches `n` and that `n` reaches: its component.
            let fwd = reach(&adj, n);
            let mut rev_adj: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (a, bs) in &adj {
                for b in bs {
                    rev_adj.entry(b).or_default().push(a);
                }
            }
            let back = reach(&rev_adj, n);
            let comp: BTreeSet<&str> = fwd.intersection(&back).copied().collect();
            done.extend(comp.iter().copied());
            if comp.len() > 1 {
                out.push((cycle_through(&adj, n, &comp), comp.iter().map(|f| f.to_string()).collect()));
            }
        }
        out
    }

    /// The line where `from` first uses `to`.
    pub fn line_of(&self, from: &str, to: &str) -> Option<usize> {
        self.edges.iter().find(|e| e.from == from && e.to == to).map(|e| e.line)
    }

    /// The top-level module of a file (`apply/fence.rs` → `apply`, `lib.rs` → `lib`).
    pub fn top(file: &str) -> String {
        module_of(file).first().cloned().unwrap_or_else(|| "lib".into())
    }
}

fn reach<'a>(adj: &BTreeMap<&'a str, Vec<&'a str>>, start: &'a str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::from([start]);
    let mut stack = vec![start];
    while let Some(n) = stack.pop() {
        for m in adj.get(n).into_iter().flatten() {
            if seen.insert(m) {
                stack.push(m);
            }
        }
    }
    seen
}

/// A shortest cycle from `start` back to itself inside `comp` (breadth-first).
fn cycle_through(adj: &BTreeMap<&str, Vec<&str>>, start: &str, comp: &BTreeSet<&str>) -> Vec<String> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for m in adj.get(n).into_iter().flatten().filter(|m| comp.contains(*m)) {
            if *m == start {
                let mut path = vec![n.to_string()];
                let mut cur = n;
                while let Some(p) = prev.get(cur) {
                    path.push(p.to_string());
                    cur = p;
                }
                path.reverse();
                path.push(start.to_string());
                return path;
            }
            if !prev.contains_key(m) && *m != start {
                prev.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    comp.iter().map(|s| s.to_string()).collect()
}
