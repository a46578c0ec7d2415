//! The grid that locates the optimum around SemantOS's choice. The numeric
//! keys of the plan are scaled together (the element the KB adjusts, by the
//! same factor, the other elements pulled along to stay ordered), so a plan
//! that raises `tcp_rmem` and `tcp_wmem` is explored along one line; a plan
//! of switches (`tcp_slow_start_after_idle`) is explored over each value the
//! switch can take. The start values are always a point of the grid too
//! (factor 0 in the report), so the grid shows both sides of the choice.
//!
//! A scenario that names the keys its symptoms implicate gets a grid over
//! their whole KB range instead (`range_points`), whatever SemantOS chose:
//! log-spaced for a wide range, every value for a switch or a small range.

use crate::kb::Kb;
use crate::sysctl::{Value, ValueKind};
use serde::Serialize;

/// Factors applied to SemantOS's value of every numeric key (1: SemantOS's own point).
pub const FACTORS: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

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

/// Grid points for SemantOS's `changes` (key, value written). Empty when it changed nothing.
pub fn points(kb: &Kb, changes: &[(String, String)]) -> Vec<GridPoint> {
    let numeric: Vec<&(String, String)> = changes
        .iter()
        .filter(|(k, v)| kb.param(k).is_some_and(|p| matches!(p.kind, ValueKind::Int | ValueKind::Ints)) && Value::from_kernel(v).ints().is_some())
        .collect();
    let mut out = Vec::new();
    if numeric.is_empty() {
        // Only switches: every combination of one switch's values, the others at SemantOS's choice.
        for (key, chosen) in changes {
            let Some(p) = kb.param(key) else { continue };
            let values: Vec<String> = match p.kind {
                ValueKind::Bool => vec!["0".into(), "1".into()],
                _ if !p.values.is_empty() => p.values.clone(),
                _ => vec![chosen.clone()],
            };
            for v in values {
                let writes = changes.iter().map(|(k, c)| (k.clone(), if k == key { v.clone() } else { c.clone() })).collect();
                out.push(GridPoint { label: format!("{}={v}", leaf(key)), writes });
            }
        }
        return out;
    }
    for f in FACTORS {
        let mut writes = Vec::new();
        let mut label = String::new();
        for (key, chosen) in changes {
            let p = kb.param(key).expect("numeric keys have KB entries");
            let Some(mut ints) = Value::from_kernel(chosen).ints().filter(|_| numeric.iter().any(|(k, _)| k == key)) else {
                writes.push((key.clone(), chosen.clone()));
                continue;
            };
            let idx = p.adjust_index.unwrap_or(0).min(ints.len().saturating_sub(1));
            let t = ((ints[idx] as f64 * f).round() as i64).clamp(p.min.unwrap_or(1).max(1), p.max.unwrap_or(i64::MAX));
            ints[idx] = t;
            if p.ordered {
                for (i, x) in ints.iter_mut().enumerate() {
                    if i < idx {
                        *x = (*x).min(t);
                    } else if i > idx {
                        *x = (*x).max(t);
                    }
                }
            }
            if label.is_empty() {
                let names: Vec<&str> = numeric.iter().map(|(k, _)| leaf(k)).collect();
                let at = if ints.len() > 1 { format!("[{idx}]") } else { String::new() };
                label = format!("{}{at}={}", names.join(","), short(t));
            }
            writes.push((key.clone(), Value::from_ints(&ints).to_string()));
        }
        if !out.iter().any(|g: &GridPoint| g.writes == writes) {
            out.push(GridPoint { label, writes });
        }
    }
    out
}

/// Points per key of a range grid over a wide numeric range: both ends and the powers of two between.
pub const RANGE_POINTS: usize = 5;

/// Every value of a switch or small range, or `RANGE_POINTS` log-spaced values from the KB's min to its max
/// (the interior rounded to a power of two, so that labels stay readable).
fn range_values(kb: &Kb, key: &str) -> Vec<i64> {
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

/// A grid over the KB range of each of `keys`, one key at a time, the others at the start values.
pub fn range_points(kb: &Kb, keys: &[&str]) -> Vec<GridPoint> {
    let mut out = Vec::new();
    for key in keys {
        for v in range_values(kb, key) {
            out.push(GridPoint { label: format!("{}={}", leaf(key), short(v)), writes: vec![(key.to_string(), v.to_string())] });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn numeric_keys_scale_together_and_stay_ordered() {
        let kb = Kb::embedded().unwrap();
        let g = points(&kb, &w(&[("net.ipv4.tcp_rmem", "4096 131072 33554432"), ("net.ipv4.tcp_wmem", "4096 16384 33554432")]));
        let labels: Vec<&str> = g.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["tcp_rmem,tcp_wmem[2]=8M", "tcp_rmem,tcp_wmem[2]=16M", "tcp_rmem,tcp_wmem[2]=32M", "tcp_rmem,tcp_wmem[2]=64M", "tcp_rmem,tcp_wmem[2]=128M"]);
        assert_eq!(g[0].writes, w(&[("net.ipv4.tcp_rmem", "4096 131072 8388608"), ("net.ipv4.tcp_wmem", "4096 16384 8388608")]));
        let s = points(&kb, &w(&[("net.core.somaxconn", "1024")]));
        assert_eq!(s.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(), ["somaxconn=256", "somaxconn=512", "somaxconn=1024", "somaxconn=2048", "somaxconn=4096"]);
    }

    #[test]
    fn switches_are_explored_over_their_values() {
        let kb = Kb::embedded().unwrap();
        let g = points(&kb, &w(&[("net.ipv4.tcp_slow_start_after_idle", "0")]));
        assert_eq!(g.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(), ["tcp_slow_start_after_idle=0", "tcp_slow_start_after_idle=1"]);
        assert!(points(&kb, &[]).is_empty());
    }

    #[test]
    fn a_range_grid_spans_the_kb_range_log_spaced_and_every_value_of_a_switch() {
        let kb = Kb::embedded().unwrap();
        let g = range_points(&kb, &["net.core.somaxconn", "net.ipv4.tcp_syncookies"]);
        let labels: Vec<&str> = g.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["somaxconn=128", "somaxconn=512", "somaxconn=2048", "somaxconn=16K", "somaxconn=65535", "tcp_syncookies=0", "tcp_syncookies=1", "tcp_syncookies=2"]);
        assert_eq!(g[1].writes, w(&[("net.core.somaxconn", "512")]));
        let m = range_points(&kb, &["vm.max_map_count"]);
        assert_eq!(m.first().unwrap().writes, w(&[("vm.max_map_count", "65530")]));
        assert_eq!(m.last().unwrap().writes, w(&[("vm.max_map_count", "2147483647")]));
    }
}
