//! Consistency checks over the knowledge base: per entry (ranges, defaults,
//! shapes) and across entries (every edge and symptom reference resolves).
//! Live checks against a running kernel live in `kb::live`.

use super::entry::{EdgeKind, Param};
use super::Kb;
use crate::sysctl::value::{Value, ValueKind};
use crate::sysctl::SysctlKey;

/// Checks one entry on its own; the message names the field.
pub fn check_param(p: &Param) -> Result<(), String> {
    SysctlKey::parse(&p.key).map_err(|e| format!("key: {e}"))?;
    if let (Some(lo), Some(hi)) = (p.min, p.max)
        && lo > hi
    {
        return Err(format!("min {lo} is above max {hi}"));
    }
    if p.kind == ValueKind::Enum && p.values.is_empty() {
        return Err("type enum needs `values`".into());
    }
    if p.kind == ValueKind::Ints && p.count < 2 {
        return Err("type ints needs `count` of at least 2".into());
    }
    if let Some(i) = p.adjust_index
        && i >= p.elements()
    {
        return Err(format!("adjust_index {i} is past the {} element(s)", p.elements()));
    }
    if let Some(d) = &p.default {
        check_value(p, d).map_err(|e| format!("default: {e}"))?;
    }
    for (intent, s) in [("latency", &p.suggest.latency), ("throughput", &p.suggest.throughput), ("memory", &p.suggest.memory), ("balanced", &p.suggest.balanced)] {
        if let Some(s) = s {
            check_value(p, s).map_err(|e| format!("suggest.{intent}: {e}"))?;
        }
    }
    for c in &p.conditions {
        if c.sysctl.is_some() == c.metric.is_some() {
            return Err("each condition names exactly one of `sysctl` or `metric`".into());
        }
    }
    Ok(())
}

/// Parses `raw` as a value of `p` and checks it against the KB range and order.
pub fn check_value(p: &Param, raw: &str) -> Result<Value, String> {
    let v = Value::parse(raw, p.kind, p.elements(), &p.values).map_err(|e| e.to_string())?;
    if let Some(ints) = v.ints().filter(|_| matches!(p.kind, ValueKind::Int | ValueKind::Bool | ValueKind::Ints)) {
        for (i, x) in ints.iter().enumerate() {
            let which = if ints.len() > 1 { format!("element {} ({x})", i + 1) } else { format!("{x}") };
            if let Some(lo) = p.min
                && *x < lo
            {
                return Err(format!("{which} is below the minimum {lo}{}", unit(p)));
            }
            if let Some(hi) = p.max
                && *x > hi
            {
                return Err(format!("{which} is above the maximum {hi}{}", unit(p)));
            }
        }
        if p.ordered && ints.windows(2).any(|w| w[0] > w[1]) {
            return Err(format!("elements of {v} must be in non-decreasing order"));
        }
    }
    Ok(v)
}

fn unit(p: &Param) -> String {
    p.unit.as_ref().map(|u| format!(" {u}")).unwrap_or_default()
}

/// Cross-entry checks: every edge end, symptom reference and condition key resolves.
pub fn check_consistency(kb: &Kb) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    for e in &kb.edges {
        for end in [&e.from, &e.to] {
            if !kb.params.contains_key(end) {
                errs.push(format!("edge {:?} {} -> {}: no entry for {end}", e.kind, e.from, e.to));
            }
        }
        if e.kind == EdgeKind::Invariant && e.relation.is_none() {
            errs.push(format!("invariant {} -> {} has no relation", e.from, e.to));
        }
    }
    for p in kb.params.values() {
        for s in p.symptoms.iter().chain(&p.counter_symptoms) {
            if !kb.symptoms.contains_key(s) {
                errs.push(format!("{}: symptom {s:?} is not defined in any symptoms table", p.key));
            }
        }
        for c in &p.conditions {
            if let Some(k) = &c.sysctl
                && !kb.params.contains_key(k)
            {
                errs.push(format!("{}: condition names {k}, which has no entry", p.key));
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}
