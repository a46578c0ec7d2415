//! The cost-saving memory of the reader: each file's key layout from the last snapshot, and the
//! last snapshot's metric map. A kernel prints the same keys in the same order snapshot after
//! snapshot, so names are formatted and sorted once (`LayoutCache`), and while no layout changes
//! the next map is a clone of the last one with its values overwritten in order (`Template`):
//! cloning a tree allocates only its nodes and names, where collecting ~600 pairs into a map
//! also allocated a 20 KiB vector whose every allocation made glibc consolidate the blocks the
//! previous snapshot had freed (a third of a snapshot's user time in a profile).

use super::parse::{Sink, visit_flat_keyed, visit_header_value_pairs, visit_loadavg, visit_meminfo, visit_psi, visit_sockstat, visit_softnet};
use super::files::TelemetryError;
use super::parse::RawMap;
use super::skeleton::Skeleton;
use super::sources::{Kind, SOURCES, Source};
use std::collections::BTreeMap;
use std::path::Path;

/// The keys one source had last time, with their metric names in sorted order, and this
/// snapshot's values.
///
/// The check that the layout is unchanged costs one comparison per key, where formatting and
/// sorting ~600 names cost about 30 % of a snapshot.
#[derive(Debug, Default)]
pub(super) struct LayoutCache {
    keys: Vec<(Box<str>, Box<str>)>,
    /// (index into `keys`, metric name), sorted by name.
    sorted: Vec<(usize, String)>,
    /// This snapshot's values in file order; kept to reuse its allocation.
    values: Vec<f64>,
    /// Bumped at every rebuild: a `Template` built on another generation is stale.
    generation: u64,
    /// The last fully parsed text, for re-reading only its numbers (`Skeleton::read`).
    skeleton: Skeleton,
}

/// The sink of the fast path: checks each pair's key against the cached layout and keeps only
/// the value, so a snapshot whose layout has not changed builds no `RawMap` (no allocation).
struct LayoutCheck<'c> {
    keys: &'c [(Box<str>, Box<str>)],
    values: &'c mut Vec<f64>,
    same: bool,
}

impl<'a> Sink<'a> for LayoutCheck<'_> {
    #[inline]
    fn pair(&mut self, section: &'a str, field: &'a str, value: f64, _token: &'a str) {
        let j = self.values.len();
        if self.same && j < self.keys.len() && eq_short(&self.keys[j].0, section) && eq_short(&self.keys[j].1, field) {
            self.values.push(value);
        } else {
            self.same = false;
        }
    }
}

/// Runs the parser of `kind` over `text` into `sink`.
fn visit<'t>(kind: Kind, text: &'t str, path: &Path, sink: &mut impl Sink<'t>) -> Result<(), TelemetryError> {
    match kind {
        Kind::Meminfo => visit_meminfo(text, path, sink),
        Kind::Vmstat => visit_flat_keyed(text, path, sink),
        Kind::HeaderPairs => visit_header_value_pairs(text, path, sink),
        Kind::Sockstat => visit_sockstat(text, path, sink),
        Kind::Softnet => visit_softnet(text, path, sink),
        Kind::Psi => visit_psi(text, path, sink),
        Kind::Loadavg => visit_loadavg(text, path, sink),
    }
}

/// String equality without a `memcmp` call: for keys of a few bytes the call
/// costs more than the comparison (it was a sixth of a snapshot in a profile).
#[inline]
fn eq_short(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

impl LayoutCache {
    /// Parses `text` (a file of `src`'s kind) into this snapshot's values, rebuilding the layout
    /// when the keys differ from last time. A malformed line fails either way, naming `path`.
    pub(super) fn parse(&mut self, src: &Source, text: &str, path: &Path) -> Result<(), TelemetryError> {
        self.values.clear();
        let mut check = LayoutCheck { keys: &self.keys, values: &mut self.values, same: true };
        visit(src.kind, text, path, &mut check)?;
        if !(check.same && self.values.len() == self.keys.len()) {
            self.relearn(src, text, path)?;
        }
        // The text parsed: the next one is re-read against it. Cannot fail: the same text parsed above.
        let mut rec = self.skeleton.recorder(text);
        visit(src.kind, text, path, &mut rec)?;
        let ok = rec.ok();
        self.skeleton.keep(text, ok, self.keys.len());
        Ok(())
    }

    /// Re-reads the numbers of `bytes` (the file's new text) when nothing else in it changed since
    /// the last full parse; `false` when the full parse (`parse`) is needed.
    #[inline]
    pub(super) fn reread(&mut self, bytes: &[u8]) -> bool {
        self.skeleton.read(bytes, &mut self.values)
    }

    /// Learns the layout of `text`, whose keys differ from the cached ones.
    fn relearn(&mut self, src: &Source, text: &str, path: &Path) -> Result<(), TelemetryError> {
        let mut raw = RawMap::default();
        visit(src.kind, text, path, &mut raw)?;
        self.keys = raw.entries.iter().map(|e| (e.section.into(), e.field.into())).collect();
        let mut named = Vec::with_capacity(raw.len());
        raw.emit(src.prefix, &mut named);
        self.sorted = named.into_iter().enumerate().map(|(i, (name, _))| (i, name)).collect();
        self.sorted.sort_by(|a, b| a.1.cmp(&b.1));
        self.values = raw.entries.iter().map(|e| e.value).collect();
        self.generation += 1;
        Ok(())
    }

    /// Whether the next text can be re-read by its numbers alone (tests).
    #[cfg(test)]
    pub(super) fn has_skeleton(&self) -> bool {
        self.skeleton.is_usable()
    }

    /// Appends this snapshot's values in the order of their names.
    pub(super) fn values_in_name_order(&self, out: &mut Vec<f64>) {
        out.extend(self.sorted.iter().map(|(i, _)| self.values[*i]));
    }

    /// Appends this snapshot's metrics in name order.
    pub(super) fn emit(&self, out: &mut Vec<(String, f64)>) {
        out.extend(self.sorted.iter().map(|(i, name)| (name.clone(), self.values[*i])));
    }

    /// Bumped at every rebuild of the layout: equal generations mean the same names in the same order.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// The number of metrics this source has.
    pub(super) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The value of `section.field` this snapshot (the first, if the file repeats it).
    pub(super) fn value(&self, section: &str, field: &str) -> Option<f64> {
        self.keys.iter().position(|k| &*k.0 == section && &*k.1 == field).map(|j| self.values[j])
    }
}

/// The map of the `SOURCES` metrics (with `host.*`) as the last snapshot built it, and what it
/// was built from: valid while the same files have data and no layout was rebuilt.
#[derive(Debug)]
pub(super) struct Template {
    map: BTreeMap<String, f64>,
    present: [bool; SOURCES.len()],
    generations: [u64; SOURCES.len()],
}

/// The `host.*` names, which sort before every `SOURCES` prefix.
const HOST_NAMES: [&str; 3] = ["host.mem_total_kb", "host.ncpus", "host.numa_nodes"];

/// This snapshot's values of `host.*` and the present sources' metrics, in the order of their names:
/// the map iterates in name order, the order `host.*` then each present source's sorted names come
/// in (the reader's metrics_come_out_sorted test holds it to that).
pub(super) fn source_values<'l>(layouts: &'l [LayoutCache], present: &'l [bool; SOURCES.len()], host: [f64; 3]) -> impl Iterator<Item = f64> + 'l {
    host.into_iter().chain(layouts.iter().zip(present).filter(|(_, p)| **p).flat_map(|(l, _)| l.sorted.iter().map(|(i, _)| l.values[*i])))
}

/// This snapshot's map of `host.*` and the present sources' metrics: a clone of the template with
/// the values overwritten when it is still valid, else collected from the names (and kept as the
/// next template).
pub(super) fn source_map(template: &mut Option<Template>, layouts: &[LayoutCache], present: &[bool; SOURCES.len()], host: [f64; 3]) -> BTreeMap<String, f64> {
    let generations: [u64; SOURCES.len()] = std::array::from_fn(|i| layouts[i].generation);
    if let Some(t) = template.as_ref().filter(|t| t.present == *present && t.generations == generations) {
        let mut map = t.map.clone();
        for (slot, v) in map.values_mut().zip(source_values(layouts, present, host)) {
            *slot = v;
        }
        return map;
    }
    let mut named = Vec::with_capacity(800);
    named.extend(HOST_NAMES.iter().zip(host).map(|(n, v)| (n.to_string(), v)));
    for (l, _) in layouts.iter().zip(present).filter(|(_, p)| **p) {
        l.emit(&mut named);
    }
    let n = named.len();
    // Collecting sorts (a single pass over input that is already sorted) and builds the tree in bulk.
    let map: BTreeMap<String, f64> = named.into_iter().collect();
    // A file that repeats a key collapses two names into one entry: no template then, since its
    // values would no longer line up with the names.
    *template = (map.len() == n).then(|| Template { map: map.clone(), present: *present, generations });
    map
}
