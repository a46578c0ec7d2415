//! The grid that locates the optimum, independent of SemantOS's choice: it
//! spans the KB range of the keys the scenario's symptoms implicate (the
//! scenario's own list, or every key the KB links to a symptom the telemetry
//! showed), log-spaced for a wide range (`RANGE_POINTS` values, the interior
//! rounded to powers of two), every value of a switch or small range. A
//! multi-value key (`tcp_rmem`) moves the element the KB adjusts, the others
//! pulled along to stay ordered. The default grid moves one key at a time,
//! the others at the start values; `--grid full` measures every combination
//! (their product, at most `FULL_GRID_MAX` points). The start values are
//! always a point of the grid too, so the grid shows both sides of them.

use crate::kb::entry::{Direction, EdgeKind};
use crate::kb::{Intent, Kb};
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

/// Every value of a switch or small range, or `RANGE_POINTS` log-spaced values over the KB range
/// (the interior rounded to a power of two, so that labels stay readable). With a start value
/// `from` and a KB direction for the intent, only the side of the range that direction points to:
/// a buffer the KB raises for its symptom is not gridded below its start value (a 4 KiB
/// `tcp_rmem` maximum moves 32 MiB at 40 KB/s on the long path: one point would take an hour).
fn range_values(kb: &Kb, key: &str, from: Option<i64>, direction: Option<Direction>) -> Vec<i64> {
    let Some(p) = kb.param(key) else { return vec![] };
    if p.kind == ValueKind::Bool {
        return vec![0, 1];
    }
    if !p.values.is_empty() {
        return p.values.iter().filter_map(|v| v.trim().parse().ok()).collect();
    }
    let (mut lo, mut hi) = (p.min.unwrap_or(0), p.max.unwrap_or(i64::from(i32::MAX)));
    match (from.filter(|f| (lo..=hi).contains(f)), direction) {
        (Some(f), Some(Direction::Raise)) => lo = f,
        (Some(f), Some(Direction::Lower)) => hi = f,
        _ => {}
    }
    if hi - lo <= 8 {
        return (lo..=hi).collect();
    }
    let (a, b) = ((lo.max(1)) as f64, hi as f64);
    let mut out = vec![lo];
    for i in 1..RANGE_POINTS - 1 {
        let x = a * (b / a).powf(i as f64 / (RANGE_POINTS - 1) as f64);
        let v = 2f64.powf(x.log2().round()) as i64;
        if v > *out.last().unwrap() && v < hi {
            out.push(v);
        }
    }
    out.push(hi);
    out
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

/// One key's grid values as (label, value written): a scalar's range values, or a multi-value key's
/// start value with the KB's adjusted element set to each (the others pulled along to stay ordered).
fn key_values(kb: &Kb, intent: Intent, key: &str, start: Option<&Value>) -> Vec<(String, String)> {
    let Some(p) = kb.param(key) else { return vec![] };
    let direction = p.direction.get(intent).copied();
    let whole = |v: i64| (format!("{}={}", leaf(key), short(v)), v.to_string());
    match (p.kind, start.and_then(Value::ints)) {
        (ValueKind::Ints, Some(ints)) if ints.len() > 1 => {
            let idx = p.adjust_index.unwrap_or(0).min(ints.len() - 1);
            range_values(kb, key, Some(ints[idx]), direction)
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
        _ => range_values(kb, key, start.and_then(Value::ints).and_then(|v| v.first().copied()), direction).into_iter().map(whole).collect(),
    }
}

/// A grid over the KB range of each of `keys`, one key at a time, the others at the `start` values.
pub fn range_points(kb: &Kb, intent: Intent, keys: &[&str], start: &BTreeMap<String, Value>) -> Vec<GridPoint> {
    let mut out = Vec::new();
    for key in keys {
        for (label, v) in key_values(kb, intent, key, start.get(*key)) {
            out.push(GridPoint { label, writes: vec![(key.to_string(), v)] });
        }
    }
    out
}

/// The number of points `full_points` would give (the product of each key's grid values).
pub fn full_count(kb: &Kb, intent: Intent, keys: &[&str], start: &BTreeMap<String, Value>) -> usize {
    keys.iter().map(|k| key_values(kb, intent, k, start.get(*k)).len().max(1)).product()
}

/// Every combination of the keys' grid values; an error naming the count when it is above `FULL_GRID_MAX`.
pub fn full_points(kb: &Kb, intent: Intent, keys: &[&str], start: &BTreeMap<String, Value>) -> Result<Vec<GridPoint>, String> {
    let n = full_count(kb, intent, keys, start);
    if n > FULL_GRID_MAX {
        return Err(format!(
            "--grid full over {} would measure {n} points, more than the {FULL_GRID_MAX} a run may take; drop --grid full to measure each key's range on its own ({} points)",
            keys.join(", "),
            range_points(kb, intent, keys, start).len()
        ));
    }
    let mut out = vec![GridPoint { label: String::new(), writes: vec![] }];
    for key in keys {
        let values = key_values(kb, intent, key, start.get(*key));
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
        let g = range_points(&kb, Intent::Latency, &["net.core.somaxconn", "net.ipv4.tcp_syncookies"], &BTreeMap::new());
        let labels: Vec<&str> = g.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["somaxconn=128", "somaxconn=512", "somaxconn=2048", "somaxconn=16K", "somaxconn=65535", "tcp_syncookies=0", "tcp_syncookies=1", "tcp_syncookies=2"]);
        assert_eq!(g[1].writes, w(&[("net.core.somaxconn", "512")]));
        let m = range_points(&kb, Intent::Latency, &["vm.max_map_count"], &BTreeMap::new());
        assert_eq!(m.first().unwrap().writes, w(&[("vm.max_map_count", "65530")]));
        assert_eq!(m.last().unwrap().writes, w(&[("vm.max_map_count", "2147483647")]));
    }

    #[test]
    fn a_multi_value_key_is_gridded_on_its_adjusted_element_not_written_as_one_number() {
        // The old range grid wrote `net.ipv4.tcp_rmem = 4096`: a triple replaced by a scalar.
        let kb = Kb::embedded().unwrap();
        let s = start(&[("net.ipv4.tcp_rmem", "4096 131072 6291456")]);
        let g = range_points(&kb, Intent::Latency, &["net.ipv4.tcp_rmem"], &s);
        assert_eq!(g.first().unwrap().writes, w(&[("net.ipv4.tcp_rmem", "4096 131072 6291456")]));
        assert_eq!(g.last().unwrap().writes, w(&[("net.ipv4.tcp_rmem", "4096 131072 1073741824")]));
        assert!(g.iter().all(|p| Value::from_kernel(&p.writes[0].1).ints().unwrap().len() == 3), "{g:?}");
        assert!(range_points(&kb, Intent::Latency, &["net.ipv4.tcp_rmem"], &BTreeMap::new()).is_empty());
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
    fn a_buffer_the_kb_raises_for_its_symptom_is_not_gridded_below_its_start_value() {
        // The first full run's grid began at a 4 KiB tcp_rmem maximum: 32 MiB at 40 KB/s, an hour a point.
        let kb = Kb::embedded().unwrap();
        let s = start(&[("net.ipv4.tcp_wmem", "4096 16384 4194304"), ("net.core.somaxconn", "1024")]);
        let g = range_points(&kb, Intent::Latency, &["net.ipv4.tcp_wmem", "net.core.somaxconn"], &s);
        let maxima: Vec<i64> = g.iter().map(|p| *Value::from_kernel(&p.writes[0].1).ints().unwrap().last().unwrap()).collect();
        assert!(maxima.iter().all(|m| *m >= 1024), "{g:?}");
        assert_eq!(maxima[..5], [4194304, 16777216, 67108864, 268435456, 1073741824]);
        assert_eq!(g[5].label, "somaxconn=1024", "{g:?}");
        // With no KB direction for the intent (memory keeps buffers) the whole range is gridded.
        let m = range_points(&kb, Intent::Memory, &["net.ipv4.tcp_wmem"], &s);
        assert_eq!(m.first().unwrap().writes, w(&[("net.ipv4.tcp_wmem", "4096 4096 4096")]));
    }

    #[test]
    fn the_full_grid_is_the_product_of_the_keys_values_and_bounded() {
        let kb = Kb::embedded().unwrap();
        let s = start(&[("net.ipv4.tcp_rmem", "4096 131072 6291456"), ("net.ipv4.tcp_wmem", "4096 16384 4194304")]);
        let keys = ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];
        let g = full_points(&kb, Intent::Latency, &keys, &s).unwrap();
        assert_eq!(g.len(), RANGE_POINTS * RANGE_POINTS);
        assert_eq!(full_count(&kb, Intent::Latency, &keys, &s), g.len());
        assert!(g.iter().all(|p| p.writes.len() == 2));
        assert_eq!(g[1].label, "tcp_rmem[2]=6M,tcp_wmem[2]=16M");
        let big = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];
        let e = full_points(&kb, Intent::Latency, &big, &s).unwrap_err();
        assert!(e.contains(&format!("{} points", full_count(&kb, Intent::Latency, &big, &s))) && e.contains("drop --grid full"), "{e}");
    }
}
