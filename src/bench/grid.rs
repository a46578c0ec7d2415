//! The grid that locates the optimum, independent of SemantOS's choice: it
//! spans the KB range of the keys the scenario's symptoms implicate (the
//! scenario's own list, or every key the KB links to a symptom the telemetry
//! showed), log-spaced for a wide range (`RANGE_POINTS` values, the interior
//! rounded to powers of two), every value of a switch or small range. A
//! multi-value key (`tcp_rmem`) moves the element the KB adjusts, the others
//! pulled along to stay ordered. The default grid moves one key at a time,
//! the others at the start values; `--grid full` measures every combination
//! (their product, at most `FULL_GRID_MAX` points: past it the wide ranges
//! get fewer points each, see `points_per_range`). The whole KB range is
//! gridded, both sides of the start value, whatever the KB's direction for
//! the intent, and the start values are always a point of the grid too.

use crate::kb::Kb;
use crate::kb::entry::EdgeKind;
use crate::sysctl::{Value, ValueKind};
use serde::Serialize;
use std::collections::BTreeMap;

/// One point of the grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridPoint {
    /// Short label (`somaxconn=256`, `tcp_rmem,tcp_wmem[2]=8M`).
    pub label: String,
    /// Writes relative to the start values.
    pub writes: Vec<(String, String)>,
}

/// `33554432` → `32M`, `4096` → `4K`.
pub fn short(v: i64) -> String {
    if v != 0 && v % (1 << 20) == 0 {
        format!("{}M", v >> 20)
    } else if v != 0 && v % (1 << 10) == 0 && v >= 1 << 14 {
        format!("{}K", v >> 10)
    } else {
        v.to_string()
    }
}

fn leaf(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Points per key of a range grid over a wide numeric range: both ends and the powers of two between.
pub const RANGE_POINTS: usize = 5;

/// Every value of a switch or small range, or `n` log-spaced values over the whole KB range (the
/// interior rounded to a power of two, so that labels stay readable). The whole range, both sides
/// of the start value whatever the KB's direction says: the grid must be able to show that
/// SemantOS moved the wrong way. A point far on the slow side costs bounded time (the workloads
/// cut a response at their timeout and record it as failed).
fn range_values(kb: &Kb, key: &str, n: usize) -> Vec<i64> {
    let Some(p) = kb.param(key) else { return vec![] };
    if p.kind == ValueKind::Bool {
        return vec![0, 1];
    }
    if !p.values.is_empty() {
        return p.values.iter().filter_map(|v| v.trim().parse().ok()).collect();
    }
    let (lo, hi) = (p.min.unwrap_or(0), p.max.unwrap_or(i64::from(i32::MAX)));
    if hi - lo <= 8 {
        return (lo..=hi).collect();
    }
    let n = n.max(2);
    let (a, b) = ((lo.max(1)) as f64, hi as f64);
    let mut out = vec![lo];
    for i in 1..n - 1 {
        let x = a * (b / a).powf(i as f64 / (n - 1) as f64);
        let v = 2f64.powf(x.log2().round()) as i64;
        if v > *out.last().unwrap() && v < hi {
            out.push(v);
        }
    }
    out.push(hi);
    out
}

/// Whether `key`'s grid is a log-spaced range (its point count can be lowered), not every value of a switch.
fn is_range(kb: &Kb, key: &str) -> bool {
    kb.param(key).is_some_and(|p| p.kind != ValueKind::Bool && p.values.is_empty() && p.max.unwrap_or(i64::from(i32::MAX)) - p.min.unwrap_or(0) > 8)
}

/// Most points `--grid full` measures; a larger product is refused before anything is measured.
pub const FULL_GRID_MAX: usize = 64;

/// How the grid is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum GridMode {
    /// One key at a time over its KB range, the others at the start values.
    #[default]
    Axes,
    /// Every combination of the keys' grid values (their product).
    Full,
}

/// The keys the grid spans: the scenario's own list when it names one, otherwise every key the KB
/// links to a symptom in `findings` and the keys the KB says work with those (`synergizes_with`:
/// `tcp_rmem` with `tcp_wmem`, whichever end's symptom showed), each once in KB order, minus those
/// `writable` refuses here.
pub fn implicated_keys(kb: &Kb, scenario_keys: &[&str], findings: &[&str], writable: &dyn Fn(&str) -> bool) -> Vec<String> {
    if !scenario_keys.is_empty() {
        return scenario_keys.iter().map(|k| k.to_string()).filter(|k| writable(k)).collect();
    }
    let direct: Vec<&str> = kb.params.values().filter(|p| p.symptoms.iter().any(|s| findings.contains(&s.as_str()))).map(|p| p.key.as_str()).collect();
    let partner = |k: &str| direct.iter().any(|d| kb.edges_of(d).any(|e| e.kind == EdgeKind::SynergizesWith && (e.from == k || e.to == k)));
    kb.params.keys().filter(|k| (direct.contains(&k.as_str()) || partner(k)) && writable(k)).cloned().collect()
}

/// One key's grid values as (label, value written): a scalar's range values (`n` of a wide range),
/// or a multi-value key's start value with the KB's adjusted element set to each (the others
/// pulled along to stay ordered).
fn key_values(kb: &Kb, key: &str, start: Option<&Value>, n: usize) -> Vec<(String, String)> {
    let Some(p) = kb.param(key) else { return vec![] };
    let whole = |v: i64| (format!("{}={}", leaf(key), short(v)), v.to_string());
    match (p.kind, start.and_then(Value::ints)) {
        (ValueKind::Ints, Some(ints)) if ints.len() > 1 => {
            let idx = p.adjust_index.unwrap_or(0).min(ints.len() - 1);
            range_values(kb, key, n)
                .into_iter()
                .map(|t| {
                    let mut v = ints.clone();
                    v[idx] = t;
                    if p.ordered {
                        for (i, x) in v.iter_mut().enumerate() {
                            *x = if i < idx { (*x).min(t) } else if i > idx { (*x).max(t) } else { t };
                        }
                    }
                    (format!("{}[{idx}]={}", leaf(key), short(t)), Value::from_ints(&v).to_string())
                })
                .collect()
        }
        // A multi-value key whose start value cannot be read has no element to move: not gridded.
        (ValueKind::Ints, _) => vec![],
        _ => range_values(kb, key, n).into_iter().map(whole).collect(),
    }
}

/// A grid over the KB range of each of `keys`, one key at a time, the others at the `start` values.
pub fn range_points(kb: &Kb, keys: &[&str], start: &BTreeMap<String, Value>) -> Vec<GridPoint> {
    let mut out = Vec::new();
    for key in keys {
        for (label, v) in key_values(kb, key, start.get(*key), RANGE_POINTS) {
            out.push(GridPoint { label, writes: vec![(key.to_string(), v)] });
        }
    }
    out
}

/// The number of points the full grid has with `n` values per wide range (the product of each key's values).
fn count_with(kb: &Kb, keys: &[&str], start: &BTreeMap<String, Value>, n: usize) -> usize {
    keys.iter().map(|k| key_values(kb, k, start.get(*k), n).len().max(1)).product()
}

/// Values per wide numeric range in the full grid: `RANGE_POINTS`, or, when the product of every
/// key's values would exceed `FULL_GRID_MAX`, the largest count (at least 2: both ends of the KB
/// range) that keeps it within. Every key stays an axis and every switch keeps all its values (a
/// switch has no value between two others to stand for); only the spacing of the wide ranges
/// coarsens, all alike, so that no key is favoured. An error naming the count when even both ends
/// of each range are too many.
pub fn points_per_range(kb: &Kb, keys: &[&str], start: &BTreeMap<String, Value>) -> Result<usize, String> {
    if let Some(n) = (2..=RANGE_POINTS).rev().find(|n| count_with(kb, keys, start, *n) <= FULL_GRID_MAX) {
        return Ok(n);
    }
    let ranges = keys.iter().filter(|k| is_range(kb, k)).count();
    Err(format!(
        "--grid full over {} would measure {} points even with only both ends of each of its {ranges} wide range(s), more than the {FULL_GRID_MAX} a run may take; drop --grid full to measure each key's range on its own ({} points)",
        keys.join(", "),
        count_with(kb, keys, start, 2),
        range_points(kb, keys, start).len()
    ))
}

/// The number of points `full_points` gives (after `points_per_range`), or the error it would give.
pub fn full_count(kb: &Kb, keys: &[&str], start: &BTreeMap<String, Value>) -> Result<usize, String> {
    points_per_range(kb, keys, start).map(|n| count_with(kb, keys, start, n))
}

/// Every combination of the keys' grid values, at most `FULL_GRID_MAX` (see `points_per_range`).
pub fn full_points(kb: &Kb, keys: &[&str], start: &BTreeMap<String, Value>) -> Result<Vec<GridPoint>, String> {
    let n = points_per_range(kb, keys, start)?;
    let mut out = vec![GridPoint { label: String::new(), writes: vec![] }];
    for key in keys {
        let values = key_values(kb, key, start.get(*key), n);
        if values.is_empty() {
            continue;
        }
        out = out
            .into_iter()
            .flat_map(|g| {
                values.iter().map(move |(label, v)| {
                    let mut writes = g.writes.clone();
                    writes.push((key.to_string(), v.clone()));
                    GridPoint { label: if g.label.is_empty() { label.clone() } else { format!("{},{label}", g.label) }, writes }
                })
            })
            .collect();
    }
    Ok(out.into_iter().filter(|g| !g.writes.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn start(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), Value::from_kernel(v))).collect()
    }

    #[test]
    fn a_range_grid_spans_the_kb_range_log_spaced_and_every_value_of_a_switch() {
        let kb = Kb::embedded().unwrap();
        let g = range_points(&kb, &["net.core.somaxconn", "net.ipv4.tcp_syncookies"], &BTreeMap::new());
        let labels: Vec<&str> = g.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["somaxconn=128", "somaxconn=512", "somaxconn=2048", "somaxconn=16K", "somaxconn=65535", "tcp_syncookies=0", "tcp_syncookies=1", "tcp_syncookies=2"]);
        assert_eq!(g[1].writes, w(&[("net.core.somaxconn", "512")]));
        let m = range_points(&kb, &["vm.max_map_count"], &BTreeMap::new());
        assert_eq!(m.first().unwrap().writes, w(&[("vm.max_map_count", "65530")]));
        assert_eq!(m.last().unwrap().writes, w(&[("vm.max_map_count", "2147483647")]));
    }

    #[test]
    fn a_multi_value_key_is_gridded_on_its_adjusted_element_not_written_as_one_number() {
        // The old range grid wrote `net.ipv4.tcp_rmem = 4096`: a triple replaced by a scalar.
        let kb = Kb::embedded().unwrap();
        let s = start(&[("net.ipv4.tcp_rmem", "4096 131072 6291456")]);
        let g = range_points(&kb, &["net.ipv4.tcp_rmem"], &s);
        assert_eq!(g.first().unwrap().writes, w(&[("net.ipv4.tcp_rmem", "4096 4096 4096")]));
        assert_eq!(g.last().unwrap().writes, w(&[("net.ipv4.tcp_rmem", "4096 131072 1073741824")]));
        assert!(g.iter().all(|p| Value::from_kernel(&p.writes[0].1).ints().unwrap().len() == 3), "{g:?}");
        assert!(range_points(&kb, &["net.ipv4.tcp_rmem"], &BTreeMap::new()).is_empty());
    }

    #[test]
    fn the_grid_does_not_depend_on_semantos_choice_but_on_the_implicated_keys() {
        let kb = Kb::embedded().unwrap();
        let any = |_: &str| true;
        let keys = implicated_keys(&kb, &[], &["send_buffer_limited", "receive_window_limited"], &any);
        assert!(keys.contains(&"net.ipv4.tcp_rmem".to_string()) && keys.contains(&"net.ipv4.tcp_wmem".to_string()), "{keys:?}");
        // The second full run saw only the sender's symptom and gridded tcp_wmem alone; the KB pairs it with tcp_rmem.
        let sender = implicated_keys(&kb, &[], &["send_buffer_limited"], &any);
        assert!(sender.contains(&"net.ipv4.tcp_rmem".to_string()) && sender.contains(&"net.ipv4.tcp_wmem".to_string()), "{sender:?}");
        assert_eq!(implicated_keys(&kb, &["net.core.somaxconn"], &["send_buffer_limited"], &any), ["net.core.somaxconn"]);
        assert!(implicated_keys(&kb, &[], &["send_buffer_limited"], &|k| k != "net.ipv4.tcp_wmem").iter().all(|k| k != "net.ipv4.tcp_wmem"));
        assert!(implicated_keys(&kb, &[], &[], &any).is_empty());
    }

    #[test]
    fn the_grid_spans_both_sides_of_the_start_value_whatever_the_kbs_direction() {
        // It gridded only the side the KB's direction points to (a buffer it raises never below its
        // start), so "within 2 % of the optimum" was measured where SemantOS already looked.
        let kb = Kb::embedded().unwrap();
        let s = start(&[("net.ipv4.tcp_wmem", "4096 16384 4194304"), ("net.core.somaxconn", "1024")]);
        let g = range_points(&kb, &["net.ipv4.tcp_wmem", "net.core.somaxconn"], &s);
        let maxima: Vec<i64> = g.iter().filter(|p| p.writes[0].0 == "net.ipv4.tcp_wmem").map(|p| *Value::from_kernel(&p.writes[0].1).ints().unwrap().last().unwrap()).collect();
        assert!(maxima.iter().any(|m| *m < 4194304) && maxima.iter().any(|m| *m > 4194304), "{maxima:?}");
        assert_eq!(g[0].writes, w(&[("net.ipv4.tcp_wmem", "4096 4096 4096")]), "the bottom of the KB range, the other fields pulled along");
        let somaxconn: Vec<&str> = g.iter().filter(|p| p.writes[0].0 == "net.core.somaxconn").map(|p| p.writes[0].1.as_str()).collect();
        assert!(somaxconn.contains(&"128") && somaxconn.contains(&"65535"), "below and above the start's 1024: {somaxconn:?}");
    }

    #[test]
    fn a_full_grid_past_its_bound_coarsens_every_wide_range_alike_and_keeps_every_switch_value() {
        let kb = Kb::embedded().unwrap();
        let s = start(&[("net.ipv4.tcp_rmem", "4096 131072 6291456"), ("net.ipv4.tcp_wmem", "4096 16384 4194304")]);
        // Three wide ranges and a three-valued switch: 5 × 5 × 5 × 3 = 375 points at full spacing.
        let keys = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies", "net.ipv4.tcp_wmem"];
        let n = points_per_range(&kb, &keys[..3], &s).unwrap();
        let g = full_points(&kb, &keys[..3], &s).unwrap();
        assert!(g.len() <= FULL_GRID_MAX && n < RANGE_POINTS, "{n} per range, {} points", g.len());
        assert_eq!(g.len(), full_count(&kb, &keys[..3], &s).unwrap());
        for v in ["tcp_syncookies=0", "tcp_syncookies=1", "tcp_syncookies=2", "somaxconn=128", "somaxconn=65535"] {
            assert!(g.iter().any(|p| p.label.split(',').any(|l| l == v)), "{v} missing: {:?}", g.iter().map(|p| &p.label).collect::<Vec<_>>());
        }
        // Four wide ranges and the switch: even both ends of each (2^4 × 3 = 48) fit; five would not.
        assert!(full_points(&kb, &keys, &s).unwrap().len() <= FULL_GRID_MAX);
        let five = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies", "net.ipv4.tcp_wmem", "net.ipv4.tcp_rmem", "net.core.netdev_max_backlog"];
        let s5 = start(&[("net.ipv4.tcp_rmem", "4096 131072 6291456"), ("net.ipv4.tcp_wmem", "4096 16384 4194304")]);
        let e = full_points(&kb, &five, &s5).unwrap_err();
        assert!(e.contains("even with only both ends") && e.contains("drop --grid full"), "{e}");
    }

    #[test]
    fn the_full_grid_is_the_product_of_the_keys_values_and_bounded() {
        let kb = Kb::embedded().unwrap();
        let s = start(&[("net.ipv4.tcp_rmem", "4096 131072 6291456"), ("net.ipv4.tcp_wmem", "4096 16384 4194304")]);
        let keys = ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];
        let g = full_points(&kb, &keys, &s).unwrap();
        assert_eq!(g.len(), RANGE_POINTS * RANGE_POINTS);
        assert_eq!(full_count(&kb, &keys, &s), Ok(g.len()));
        assert!(g.iter().all(|p| p.writes.len() == 2));
        assert!(g[0].label.starts_with("tcp_rmem[2]=") && g[0].label.contains(",tcp_wmem[2]="), "{}", g[0].label);
    }
}
