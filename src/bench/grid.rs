//! The grid that locates the optimum around SemantOS's choice. The numeric
//! keys of the plan are scaled together (the element the KB adjusts, by the
//! same factor, the other elements pulled along to stay ordered), so a plan
//! that raises `tcp_rmem` and `tcp_wmem` is explored along one line; a plan
//! of switches (`tcp_slow_start_after_idle`) is explored over each value the
//! switch can take. The start values are always a point of the grid too
//! (factor 0 in the report), so the grid shows both sides of the choice.

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
}
