//! The steady-state refresh: a snapshot's metric map rewritten in place (`ProcReader::refresh`).
//! Where `Template` saves formatting and sorting the names, this also saves allocating them: a
//! fresh map of ~600 metrics costs one `String` and one tree slot each, which was most of what a
//! kept-open snapshot cost above the bare `pread` of its files.
//!
//! The map is the caller's, so the reader cannot assume it still holds what the last refresh left
//! there: the caller may have added metrics of its own, removed some, or passed another snapshot.
//! Each name the last refresh wrote is remembered by identity (the address and length of its
//! bytes, two word comparisons a metric) and checked while the values are written in the map's
//! order; anything unexpected falls back to building the map afresh, so a refreshed snapshot is
//! always equal to a fresh `snapshot()` of the same file contents.

use super::layout::{LayoutCache, Template, source_map};
use super::sources::SOURCES;
use std::collections::BTreeMap;

/// What the last refresh left in the caller's map: the identity of each `host.*` and source
/// metric name in map order, and the layouts it was built from.
#[derive(Debug, Default)]
pub(super) struct Refill {
    /// (address, length) of each name's bytes, in map order; empty when there is nothing to reuse.
    names: Vec<(usize, usize)>,
    present: [bool; SOURCES.len()],
    generations: [u64; SOURCES.len()],
    /// This refresh's values in map order; kept to reuse its allocation.
    values: Vec<f64>,
}

/// The identity of a name in the map: a name the caller removed and inserted again is another
/// allocation, and so another identity.
#[inline]
fn identity(name: &str) -> (usize, usize) {
    (name.as_ptr() as usize, name.len())
}

/// Rewrites `map` to hold `host.*`, the present sources' metrics and `extra` (the limits and the
/// scan), exactly as a fresh snapshot's map: in place when the names are those the last refresh
/// left, else built afresh.
pub(super) fn refill(
    state: &mut Refill,
    template: &mut Option<Template>,
    map: &mut BTreeMap<String, f64>,
    layouts: &[LayoutCache],
    present: &[bool; SOURCES.len()],
    host: [f64; 3],
    mut extra: Vec<(String, f64)>,
) {
    let generations: [u64; SOURCES.len()] = std::array::from_fn(|i| layouts[i].generation());
    // A later duplicate wins, as with the inserts of `snapshot`: sort stably, keep the last.
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    dedup_keep_last(&mut extra);
    if !state.names.is_empty() && state.present == *present && state.generations == generations {
        state.values.clear();
        state.values.extend(host);
        for (l, _) in layouts.iter().zip(present).filter(|(_, p)| **p) {
            l.values_in_name_order(&mut state.values);
        }
        if state.values.len() == state.names.len() && in_place(map, &state.names, &state.values, &mut extra) {
            return;
        }
    }
    let fresh = source_map(template, layouts, present, host);
    let expected = HOST_COUNT + layouts.iter().zip(present).filter(|(_, p)| **p).map(|(l, _)| l.len()).sum::<usize>();
    // A file that repeats a key collapses two names into one: values would not line up, so nothing is reused.
    state.names = if fresh.len() == expected { fresh.keys().map(|k| identity(k)).collect() } else { Vec::new() };
    state.present = *present;
    state.generations = generations;
    *map = fresh;
    for (k, v) in extra {
        map.insert(k, v);
    }
}

/// The number of `host.*` metrics, which come first in the map.
const HOST_COUNT: usize = 3;

/// Drops all but the last of each run of equal names in sorted `v`.
fn dedup_keep_last(v: &mut Vec<(String, f64)>) {
    if v.windows(2).any(|w| w[0].0 == w[1].0) {
        v.reverse();
        v.dedup_by(|a, b| a.0 == b.0);
        v.reverse();
    }
}

/// Writes `values` over the names of `names` and `extra` over theirs, removes every other name and
/// inserts the extras the map lacks; `false` (the map half-written) when a name of `names` is gone.
fn in_place(map: &mut BTreeMap<String, f64>, names: &[(usize, usize)], values: &[f64], extra: &mut [(String, f64)]) -> bool {
    let (mut next, mut e, mut foreign) = (0usize, 0usize, 0usize);
    // Indices of the extras the map lacks (few: extras are a few dozen names, stable between snapshots).
    let mut missing = Vec::new();
    for (k, v) in map.iter_mut() {
        if names.get(next) == Some(&identity(k)) {
            // `values` and `names` have one entry per name: same layouts, same counts.
            *v = values[next];
            next += 1;
            continue;
        }
        while e < extra.len() && extra[e].0 < *k {
            missing.push(e);
            e += 1;
        }
        if e < extra.len() && extra[e].0 == *k {
            *v = extra[e].1;
            e += 1;
        } else {
            foreign += 1;
        }
    }
    if next < names.len() {
        return false;
    }
    missing.extend(e..extra.len());
    if foreign > 0 {
        // Names the caller added, or last snapshot's extras gone now: a snapshot never carries a stale value.
        let mut next = 0usize;
        map.retain(|k, _| {
            if names.get(next) == Some(&identity(k)) {
                next += 1;
                true
            } else {
                extra.binary_search_by(|(n, _)| n.as_str().cmp(k)).is_ok()
            }
        });
    }
    for i in missing {
        let (k, v) = std::mem::take(&mut extra[i]);
        map.insert(k, v);
    }
    true
}
