//! The search space: the keys a tune may change, each with the range it may
//! take here (the KB range, narrowed by the policy and the step limit),
//! its scale (log for byte and count keys) and, for a multi-value key such as
//! `net.ipv4.tcp_rmem`, which field is tuned.
//!
//! A point of the space is a vector in [0,1]^d (`assemble` maps it to values,
//! `locate` maps values back), so that an optimiser never needs to know what a
//! key means: the KB's ranges, scales, invariants and exclusive pairs are all
//! settled here, where the space is built.

use super::Values;
use crate::kb::entry::{EdgeKind, Relation, Sentinel};
use crate::kb::{Kb, Param, Risk};
use crate::safety::Policy;
use crate::sysctl::{Value, ValueKind};
use serde::{Deserialize, Serialize};

/// How one dimension's values are laid out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimKind {
    /// An integer range, inclusive; `log` for byte and count keys (searched on a log scale).
    Int { min: i64, max: i64, log: bool },
    /// A finite set of values (switches, congestion-control names), in the kernel's text form.
    Choice { values: Vec<String> },
}

/// One tunable dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dim {
    /// The sysctl key.
    pub key: String,
    /// For a multi-value key, the 0-based field tuned (the others keep the incumbent's); `None` for a scalar.
    pub field: Option<usize>,
    /// The values this dimension may take.
    pub kind: DimKind,
    /// Why the key is in the space (the finding or KB edge that implicates it).
    pub why: String,
}

/// An order the KB requires between two tuned values (an invariant edge whose two ends are both
/// dimensions of the space); an order against a key the space does not tune narrows the range instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The key that must be the smaller.
    pub from: String,
    /// Its field compared (`None`: a scalar, or the first field).
    pub from_field: Option<usize>,
    /// The key that must be the larger.
    pub to: String,
    /// Its field compared.
    pub to_field: Option<usize>,
    /// `from < to` instead of `from ≤ to`.
    pub strict: bool,
    /// Values of `from` for which the order does not apply.
    pub unless_from: Vec<i64>,
    /// Values of `to` that disable the order.
    pub unless_to: Vec<i64>,
    /// The KB edge's note.
    pub why: String,
}

/// The keys and ranges a tune may explore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// The dimensions, in a stable order (by key, then field).
    pub dims: Vec<Dim>,
    /// Implicated keys the space leaves out, each with the reason (policy, KB risk, absent here, ...).
    #[serde(default)]
    pub left_out: Vec<(String, String)>,
    /// The policy's step limit (largest factor of one change): an optimiser's trust region keeps
    /// every move from the incumbent within it. `None`: no limit known.
    #[serde(default)]
    pub max_step_ratio: Option<f64>,
    /// Orders the KB requires between dimensions of the space; `admits` checks them.
    #[serde(default)]
    pub orders: Vec<Order>,
}

impl SearchSpace {
    /// The keys the space touches (each once).
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.dims.iter().map(|d| d.key.clone()).collect();
        k.dedup();
        k
    }

    /// The values of the point `unit_point` (one coordinate in [0,1] per dimension, on each
    /// dimension's scale; rounded for integers): `base` with each dimension's key (field) replaced.
    /// A missing or non-finite coordinate keeps `base`'s value.
    pub fn assemble(&self, base: &Values, unit_point: &[f64]) -> Values {
        let mut out = base.clone();
        for (d, u) in self.dims.iter().zip(unit_point.iter().copied().chain(std::iter::repeat(f64::NAN))) {
            if !u.is_finite() {
                continue;
            }
            let u = u.clamp(0.0, 1.0);
            let text = match &d.kind {
                DimKind::Int { min, max, log } => {
                    let v = keep_order(out.get(&d.key).map(String::as_str), d.field, from_unit(*min, *max, *log, u));
                    v.to_string()
                }
                DimKind::Choice { values } if !values.is_empty() => values[((u * values.len() as f64) as usize).min(values.len() - 1)].clone(),
                DimKind::Choice { .. } => continue,
            };
            let whole = match out.get(&d.key) {
                Some(old) => with_field(old, d.field, &text),
                None if d.field.is_none() => text,
                // A field of a value we do not have cannot be set; the key stays absent.
                None => continue,
            };
            out.insert(d.key.clone(), whole);
        }
        out
    }

    /// The point of `values` in [0,1]^d (the inverse of `assemble`), clamped into the space;
    /// a dimension whose value is missing or unreadable sits at its middle.
    pub fn locate(&self, values: &Values) -> Vec<f64> {
        self.dims.iter().map(|d| values.get(&d.key).and_then(|t| field_of(t, d.field)).and_then(|v| unit_of(d, &v)).unwrap_or(0.5)).collect()
    }

    /// Per dimension, the part of [0,1] within the step limit of `around` (the incumbent): a move
    /// inside this box never exceeds `max_step_ratio` (values compared as max(v, 1), as the
    /// guardrails do). The whole [0,1] for switches, or with no limit.
    pub fn step_box(&self, around: &Values) -> Vec<(f64, f64)> {
        self.dims
            .iter()
            .map(|d| {
                let (DimKind::Int { min, max, log }, Some(r)) = (&d.kind, self.max_step_ratio) else { return (0.0, 1.0) };
                let Some(c) = around.get(&d.key).and_then(|t| field_of(t, d.field)).and_then(|t| t.parse::<i64>().ok()) else { return (0.0, 1.0) };
                let base = c.max(1) as f64;
                let (lo, hi) = (((base / r).ceil() as i64).clamp(*min, *max), ((base * r).floor() as i64).clamp(*min, *max));
                (to_unit(*min, *max, *log, lo), to_unit(*min, *max, *log, hi))
            })
            .collect()
    }

    /// Whether `values` keeps every order of the space; the error names the order and the values.
    pub fn admits(&self, values: &Values) -> Result<(), String> {
        let num = |k: &str, f: Option<usize>| values.get(k).and_then(|t| field_of(t, Some(f.unwrap_or(0)))).and_then(|t| t.parse::<i64>().ok());
        for o in &self.orders {
            let (Some(x), Some(y)) = (num(&o.from, o.from_field), num(&o.to, o.to_field)) else { continue };
            if o.unless_from.contains(&x) || o.unless_to.contains(&y) {
                continue;
            }
            if (o.strict && x >= y) || x > y {
                return Err(format!("{} = {x} must be {} {} = {y}: {}", o.from, if o.strict { "<" } else { "≤" }, o.to, o.why));
            }
        }
        Ok(())
    }
}

/// The value at `u` in [0,1] of an integer range, rounded (geometrically spaced when `log`; a log
/// range starts at 1 or above, `build` sees to it).
fn from_unit(min: i64, max: i64, log: bool, u: f64) -> i64 {
    let (lo, hi) = (min as f64, max as f64);
    let v = if log && lo >= 1.0 { (lo.ln() + u * (hi.ln() - lo.ln())).exp() } else { lo + u * (hi - lo) };
    (v.round() as i64).clamp(min, max)
}

/// The coordinate in [0,1] of `v` in an integer range (clamped).
fn to_unit(min: i64, max: i64, log: bool, v: i64) -> f64 {
    if max <= min {
        return 0.5;
    }
    let v = v.clamp(min, max) as f64;
    let (lo, hi) = (min as f64, max as f64);
    let u = if log && lo >= 1.0 { (v.ln() - lo.ln()) / (hi.ln() - lo.ln()) } else { (v - lo) / (hi - lo) };
    u.clamp(0.0, 1.0)
}

fn unit_of(d: &Dim, text: &str) -> Option<f64> {
    match &d.kind {
        DimKind::Int { min, max, log } => text.parse::<i64>().ok().map(|v| to_unit(*min, *max, *log, v)),
        DimKind::Choice { values } => values.iter().position(|v| v == text).map(|i| (i as f64 + 0.5) / values.len() as f64),
    }
}

/// `v` for field `field` of the multi-value `old`, kept between its neighbours when `old`'s fields
/// are in order (min ≤ default ≤ max): a field moved alone must not break the order the KB requires.
fn keep_order(old: Option<&str>, field: Option<usize>, v: i64) -> i64 {
    let (Some(old), Some(i)) = (old, field) else { return v };
    let Some(parts) = Value::from_kernel(old).ints() else { return v };
    if !parts.windows(2).all(|w| w[0] <= w[1]) {
        return v;
    }
    let lo = if i > 0 { parts.get(i - 1).copied().unwrap_or(i64::MIN) } else { i64::MIN };
    let hi = parts.get(i + 1).copied().unwrap_or(i64::MAX);
    v.clamp(lo, hi.max(lo))
}

/// Sets field `field` of a whitespace-separated multi-value `text` (or the whole value when `None`).
pub fn with_field(text: &str, field: Option<usize>, value: &str) -> String {
    match field {
        None => value.to_string(),
        Some(i) => {
            let mut parts: Vec<String> = text.split_whitespace().map(str::to_string).collect();
            if i < parts.len() {
                parts[i] = value.to_string();
            }
            parts.join(" ")
        }
    }
}

/// Reads field `field` of a multi-value `text` (or the whole value when `None`).
pub fn field_of(text: &str, field: Option<usize>) -> Option<String> {
    match field {
        None => Some(text.trim().to_string()),
        Some(i) => text.split_whitespace().nth(i).map(str::to_string),
    }
}

/// `values` with every key of `incumbent` the candidate leaves out filled in from it.
pub fn complete(incumbent: &Values, values: &Values) -> Values {
    let mut full = incumbent.clone();
    full.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    full
}


/// The keys a tune may change for these findings, each with why: the keys
/// the KB links to each finding's symptom (and the rivals that may be the
/// limit in force instead), then their KB partners (synergy, requires,
/// invariant, bounded-by; not conflicting or exclusive ones, which must not
/// move together). In finding order, then KB key order, then edge order; a
/// key named twice keeps its first place and gathers every reason.
pub fn implicated(kb: &Kb, findings: &crate::reasoning::Findings) -> Vec<(String, String)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let add = |out: &mut Vec<(String, Vec<String>)>, key: &str, why: String| match out.iter_mut().find(|e| e.0 == key) {
        Some(e) if !e.1.contains(&why) => e.1.push(why),
        Some(_) => {}
        None => out.push((key.to_string(), vec![why])),
    };
    for f in &findings.findings {
        for p in kb.params.values() {
            if p.symptoms.contains(&f.id) {
                add(&mut out, &p.key, format!("symptom {} → {}", f.id, p.key));
                for rival in crate::reasoning::binding::rivals(p, &f.id).filter(|r| kb.param(r).is_some()) {
                    add(&mut out, rival, format!("may be the limit in force instead of {} for symptom {}", p.key, f.id));
                }
            } else if p.counter_symptoms.contains(&f.id) {
                add(&mut out, &p.key, format!("symptom {} → {} (a sign it went too far)", f.id, p.key));
            }
        }
    }
    let direct: Vec<String> = out.iter().map(|e| e.0.clone()).collect();
    for key in &direct {
        for e in kb.edges_of(key) {
            let other = e.other(key);
            let from_here = e.from == *key;
            let why = match e.kind {
                EdgeKind::SynergizesWith => format!("synergy with {key}"),
                EdgeKind::Requires if from_here => format!("{key} requires it"),
                EdgeKind::Requires => format!("requires {key}"),
                EdgeKind::BoundedBy if from_here => format!("caps {key}"),
                EdgeKind::BoundedBy => format!("capped by {key}"),
                EdgeKind::Invariant => format!("invariant with {key}"),
                EdgeKind::ConflictsWith | EdgeKind::MutuallyExclusive => continue,
            };
            if other != key && kb.param(other).is_some() {
                add(&mut out, other, why);
            }
        }
    }
    out.into_iter().map(|(k, whys)| (k, whys.join("; "))).collect()
}

/// The space over `implicated` keys: the KB range narrowed by `policy`
/// (never-touch, whitelist, risk, step limit against `current`), log-scaled
/// for byte and count keys, one dimension per tuned field. A key the space
/// cannot hold is in `left_out` with the reason; `never` keys never enter it.
/// Of a mutually exclusive or conflicting pair only the first stays; an
/// invariant against a key outside the space narrows the range, one between
/// two dimensions becomes an `Order`.
pub fn build(kb: &Kb, implicated: &[(String, String)], policy: &Policy, current: &Values) -> anyhow::Result<SearchSpace> {
    build_with(kb, implicated, policy, current, Window::AroundCurrent)
}

/// The space over `implicated` keys as `build` makes it, but over the KB range ∩ the policy
/// without the step window around `current`: the step limit is kept as `max_step_ratio`, and an
/// optimiser that keeps every move within `SearchSpace::step_box` of the incumbent of its day
/// (`GpSearch`, `Tpe`) then walks a trust region that moves with the best point. `build`'s space
/// stops at one step from the start values, so an optimum beyond it was unreachable
/// (`accept-burst`: the plateau starts at somaxconn 2048, the space stopped at 1024).
pub fn build_moving(kb: &Kb, implicated: &[(String, String)], policy: &Policy, current: &Values) -> anyhow::Result<SearchSpace> {
    build_with(kb, implicated, policy, current, Window::Whole)
}

/// How far an integer dimension reaches from the value in force.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Window {
    /// Within the policy's step limit of it.
    AroundCurrent,
    /// The whole KB range the policy allows (each move still bounded by `step_box`).
    Whole,
}

fn build_with(kb: &Kb, implicated: &[(String, String)], policy: &Policy, current: &Values, window: Window) -> anyhow::Result<SearchSpace> {
    policy.validate().map_err(|e| anyhow::anyhow!("cannot build the search space: {e}"))?;
    let mut space = SearchSpace { max_step_ratio: Some(policy.max_step_ratio), ..SearchSpace::default() };
    let mut dims: Vec<Dim> = Vec::new();
    for (key, why) in implicated {
        if dims.iter().any(|d| &d.key == key) || space.left_out.iter().any(|l| &l.0 == key) {
            continue;
        }
        match dim_for(kb, key, why, policy, current, window) {
            Ok(d) => dims.push(d),
            Err(reason) => space.left_out.push((key.clone(), reason)),
        }
    }
    for e in kb.edges.iter().filter(|e| matches!(e.kind, EdgeKind::MutuallyExclusive | EdgeKind::ConflictsWith)) {
        if dims.iter().any(|d| d.key == e.from) && dims.iter().any(|d| d.key == e.to) {
            dims.retain(|d| d.key != e.to);
            let how = if e.kind == EdgeKind::MutuallyExclusive { "mutually exclusive" } else { "conflicts" };
            space.left_out.push((e.to.clone(), format!("{how} with {}, which stays in the space (they must not move together): {}", e.from, e.note)));
        }
    }
    invariants(kb, &mut dims, &mut space, current);
    dims.sort_by(|a, b| (&a.key, a.field).cmp(&(&b.key, b.field)));
    space.dims = dims;
    Ok(space)
}

/// One key's dimension, or why it stays out.
fn dim_for(kb: &Kb, key: &str, why: &str, policy: &Policy, current: &Values, window: Window) -> Result<Dim, String> {
    let p = kb.param(key).ok_or("no knowledge-base entry, so nothing is known of its range or risk")?;
    if p.risk == Risk::Never {
        return Err(format!("risk never: {}", p.risk_reason));
    }
    if policy.forbids(key) {
        return Err("on the policy's never_touch list".into());
    }
    if !policy.allows(key) {
        return Err("not in the policy whitelist (extend_whitelist would allow it)".into());
    }
    if p.risk > policy.max_risk {
        return Err(format!("risk {:?} is above the policy's max_risk {:?}: {}", p.risk, policy.max_risk, p.risk_reason));
    }
    if p.no_read.is_some() || p.no_op {
        return Err("the KB marks it unreadable or without effect on current kernels".into());
    }
    let cur = current.get(key).ok_or("absent on this kernel (no value was read)")?;
    let choice = |values: Vec<String>| -> Result<Dim, String> {
        if values.len() < 2 {
            return Err("the KB lists fewer than two values to choose from".into());
        }
        Ok(Dim { key: key.to_string(), field: None, kind: DimKind::Choice { values }, why: why.to_string() })
    };
    match p.kind {
        ValueKind::Bool => choice(vec!["0".into(), "1".into()]),
        ValueKind::Enum | ValueKind::String => choice(p.values.clone()),
        ValueKind::Int | ValueKind::Ints => int_dim(p, why, cur, policy.max_step_ratio, window),
    }
}

/// Units whose values span orders of magnitude: searched on a log scale.
const LOG_UNITS: &[&str] = &[
    "bytes", "KiB", "MiB", "pages", "entries", "packets", "packets per CPU", "sockets", "file descriptors", "file handles", "instances", "mappings per process", "messages", "mounts",
    "queues", "requests", "segments", "watches", "datagrams", "events", "buckets",
];

/// An integer dimension: the KB range ∩ the step window around the value in force, the
/// sentinel value left out (writing it is a mode switch, not a step), neighbours kept in order.
fn int_dim(p: &Param, why: &str, cur: &str, ratio: f64, window: Window) -> Result<Dim, String> {
    let field = match p.kind {
        ValueKind::Ints => Some(p.adjust_index.ok_or("a multi-value key whose KB entry names no field to tune (adjust_index)")?),
        _ => None,
    };
    let parts = Value::from_kernel(cur).ints().ok_or(format!("its value {cur:?} is not numeric"))?;
    let i = field.unwrap_or(0);
    let c = *parts.get(i).ok_or(format!("its value {cur:?} has no field {i}"))?;
    let (Some(kmin), Some(kmax)) = (p.min, p.max) else { return Err("the KB gives no range (min and max) for it".into()) };
    let in_force = match &p.sentinel {
        Some(s) if s.value() == c => match s {
            Sentinel::Off { .. } => 0,
            Sentinel::Auto { equals: Some(e), .. } => *e,
            Sentinel::Auto { note, .. } => return Err(format!("holds {c}, the kernel's own choice ({note}); a step from it cannot be bounded here")),
            Sentinel::Partner { partner, note, .. } => return Err(format!("holds {c}: {partner} is in force instead ({note}); tune {partner}")),
        },
        _ => c,
    };
    if in_force < 0 {
        return Err(format!("holds {c}, a special value rather than an amount; not a step"));
    }
    let base = in_force.max(1) as f64;
    let (mut lo, mut hi) = match window {
        Window::AroundCurrent => (kmin.max((base / ratio).ceil() as i64), kmax.min((base * ratio).floor() as i64)),
        Window::Whole => (kmin, kmax),
    };
    if let Some(s) = &p.sentinel {
        if s.value() == lo {
            lo += 1;
        } else if s.value() == hi {
            hi -= 1;
        }
    }
    if p.ordered && field.is_some() {
        lo = lo.max(if i > 0 { parts[i - 1] } else { i64::MIN });
        hi = hi.min(parts.get(i + 1).copied().unwrap_or(i64::MAX));
    }
    let log = p.unit.as_deref().is_some_and(|u| LOG_UNITS.contains(&u));
    if log {
        lo = lo.max(1);
    }
    if lo >= hi {
        return Err(format!("no room to move: the KB range {kmin}..{kmax} and the step limit ×{ratio} around {c} leave {lo}..{hi}"));
    }
    let reach = match window {
        Window::AroundCurrent => format!("within ×{ratio} of {c}"),
        Window::Whole => format!("each move within ×{ratio} of the incumbent, from {c}"),
    };
    let mut why = format!("{why}; {lo}..{hi} (KB {kmin}..{kmax} {reach}{})", if log { ", log scale" } else { "" });
    if let Some(f) = field {
        why.push_str(&format!("; field {f} of {}, the one the KB adjusts (adjust_index), the others kept", p.elements()));
    }
    Ok(Dim { key: p.key.clone(), field, kind: DimKind::Int { min: lo, max: hi, log }, why })
}

/// The KB's invariant edges over the space: between two dimensions an `Order`; against a key
/// the space does not tune, the tuned side's range narrowed to keep it (a dimension with no
/// room left goes to `left_out`).
fn invariants(kb: &Kb, dims: &mut Vec<Dim>, space: &mut SearchSpace, current: &Values) {
    let find = |dims: &[Dim], key: &str, idx: Option<usize>| dims.iter().position(|d| d.key == key && d.field.unwrap_or(0) == idx.unwrap_or(0) && matches!(d.kind, DimKind::Int { .. }));
    let fixed = |key: &str, idx: Option<usize>| current.get(key).and_then(|t| field_of(t, Some(idx.unwrap_or(0)))).and_then(|t| t.parse::<i64>().ok());
    for e in kb.edges.iter().filter(|e| e.kind == EdgeKind::Invariant) {
        let Some(rel) = e.relation else { continue };
        let strict = rel == Relation::LessThan;
        let gap = i64::from(strict);
        match (find(dims, &e.from, e.from_index), find(dims, &e.to, e.to_index)) {
            (Some(_), Some(_)) => space.orders.push(Order {
                from: e.from.clone(),
                from_field: e.from_index,
                to: e.to.clone(),
                to_field: e.to_index,
                strict,
                unless_from: e.unless_from.clone(),
                unless_to: e.unless_to.clone(),
                why: e.note.clone(),
            }),
            (Some(a), None) => {
                if let Some(y) = fixed(&e.to, e.to_index).filter(|y| !e.unless_to.contains(y)) {
                    narrow(&mut dims[a], None, Some(y - gap), &format!("kept {} {} ({y})", if strict { "<" } else { "≤" }, e.to));
                }
            }
            (None, Some(b)) => {
                if let Some(x) = fixed(&e.from, e.from_index).filter(|x| !e.unless_from.contains(x)) {
                    narrow(&mut dims[b], Some(x + gap), None, &format!("kept {} {} ({x})", if strict { ">" } else { "≥" }, e.from));
                }
            }
            (None, None) => {}
        }
    }
    let (keep, empty): (Vec<Dim>, Vec<Dim>) = std::mem::take(dims).into_iter().partition(|d| matches!(d.kind, DimKind::Int { min, max, .. } if min < max) || matches!(d.kind, DimKind::Choice { .. }));
    *dims = keep;
    space.left_out.extend(empty.into_iter().map(|d| (d.key, format!("no room to move within the KB's invariants: {}", d.why))));
}

fn narrow(d: &mut Dim, lo: Option<i64>, hi: Option<i64>, note: &str) {
    if let DimKind::Int { min, max, .. } = &mut d.kind {
        *min = (*min).max(lo.unwrap_or(i64::MIN));
        *max = (*max).min(hi.unwrap_or(i64::MAX));
        d.why.push_str(&format!("; {note}, {}..{}", min, max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reasoning::{Finding, Findings};

    fn findings(ids: &[&str]) -> Findings {
        let findings = ids.iter().map(|id| Finding { id: id.to_string(), title: id.to_string(), explain: String::new(), evidence: vec![], presence: Default::default() }).collect();
        Findings { schema_version: 2, host: Default::default(), snapshot_digest: String::new(), window_s: 1.0, samples: 2, findings, no_data: vec![] }
    }

    fn values(kv: &[(&str, &str)]) -> Values {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn policy(extra: &[&str]) -> Policy {
        Policy { extend_whitelist: extra.iter().map(|s| s.to_string()).collect(), ..Policy::default() }
    }

    fn dim<'a>(s: &'a SearchSpace, key: &str) -> &'a Dim {
        s.dims.iter().find(|d| d.key == key).unwrap_or_else(|| panic!("{key} not in the space: {:?}", s.left_out))
    }

    #[test]
    fn implicated_keys_are_the_symptoms_keys_then_their_kb_partners_each_with_why() {
        let kb = Kb::embedded().unwrap();
        let got = implicated(&kb, &findings(&["accept_queue_overflow"]));
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        let i = keys.iter().position(|k| *k == "net.core.somaxconn").expect("somaxconn");
        let j = keys.iter().position(|k| *k == "net.ipv4.tcp_max_syn_backlog").expect("its synergy partner");
        assert!(got[i].1.contains("symptom accept_queue_overflow → net.core.somaxconn"), "{:?}", got[i]);
        assert!(got[j].1.contains("synergy with net.core.somaxconn"), "{:?}", got[j]);
        assert_eq!(got, implicated(&kb, &findings(&["accept_queue_overflow"])), "deterministic");
        assert!(implicated(&kb, &findings(&[])).is_empty());
    }

    #[test]
    fn a_key_the_policy_or_the_kb_forbids_or_this_kernel_lacks_is_left_out_with_the_reason() {
        let kb = Kb::embedded().unwrap();
        let imp: Vec<(String, String)> = ["net.core.somaxconn", "vm.swappiness", "kernel.randomize_va_space", "vm.dirty_ratio", "net.ipv4.tcp_rmem"].iter().map(|k| (k.to_string(), "test".to_string())).collect();
        let mut pol = policy(&["kernel.randomize_va_space"]);
        pol.never_touch = vec!["vm.swappiness".into()];
        let cur = values(&[("net.core.somaxconn", "128"), ("vm.swappiness", "60"), ("kernel.randomize_va_space", "2"), ("net.ipv4.tcp_rmem", "4096 131072 6291456")]);
        let s = build(&kb, &imp, &pol, &cur).unwrap();
        assert_eq!(s.keys(), vec!["net.core.somaxconn"]);
        let why = |k: &str| s.left_out.iter().find(|l| l.0 == k).map(|l| l.1.clone()).unwrap_or_else(|| panic!("{k} not left out: {:?}", s.left_out));
        assert!(why("vm.swappiness").contains("never_touch"));
        assert!(why("kernel.randomize_va_space").contains("risk never"), "a never key stays out even when whitelisted");
        assert!(why("vm.dirty_ratio").contains("absent on this kernel"));
        assert!(why("net.ipv4.tcp_rmem").contains("whitelist"));
    }

    #[test]
    fn a_multi_value_key_tunes_the_field_the_kb_adjusts_on_a_log_scale_within_the_step_limit() {
        let kb = Kb::embedded().unwrap();
        let imp = vec![("net.ipv4.tcp_rmem".to_string(), "symptom receive_window_limited".to_string())];
        let cur = values(&[("net.ipv4.tcp_rmem", "4096 131072 6291456")]);
        let s = build(&kb, &imp, &policy(&["net.ipv4.tcp_rmem"]), &cur).unwrap();
        let d = dim(&s, "net.ipv4.tcp_rmem");
        assert_eq!(d.field, Some(2));
        assert_eq!(d.kind, DimKind::Int { min: 6291456 / 8, max: 6291456 * 8, log: true });
        assert!(d.why.contains("field 2 of 3") && d.why.contains("log scale"), "{}", d.why);
        // The middle of a log range is the geometric mean; the other fields are kept.
        let mid = s.assemble(&cur, &[0.5]);
        assert_eq!(mid["net.ipv4.tcp_rmem"], "4096 131072 6291456");
        assert_eq!(s.assemble(&cur, &[1.0])["net.ipv4.tcp_rmem"], "4096 131072 50331648");
        assert_eq!(s.locate(&cur), vec![0.5]);
    }

    #[test]
    fn assemble_keeps_a_multi_value_key_in_order_when_its_base_moved() {
        let s = SearchSpace { dims: vec![Dim { key: "k".into(), field: Some(2), kind: DimKind::Int { min: 10, max: 1000, log: true }, why: String::new() }], ..SearchSpace::default() };
        // A rules plan raised the middle field above the bottom of the tuned field's range.
        let base = values(&[("k", "4 500 900")]);
        assert_eq!(s.assemble(&base, &[0.0])["k"], "4 500 500");
    }

    #[test]
    fn locate_is_the_inverse_of_assemble_and_clamps_what_lies_outside() {
        let s = SearchSpace {
            dims: vec![
                Dim { key: "a".into(), field: None, kind: DimKind::Int { min: 16, max: 4096, log: true }, why: String::new() },
                Dim { key: "b".into(), field: None, kind: DimKind::Int { min: 0, max: 100, log: false }, why: String::new() },
                Dim { key: "c".into(), field: None, kind: DimKind::Choice { values: vec!["0".into(), "1".into()] }, why: String::new() },
            ],
            ..SearchSpace::default()
        };
        let base = values(&[("a", "128"), ("b", "60"), ("c", "1")]);
        for u in [[0.0, 0.0, 0.0], [0.3, 0.7, 0.9], [1.0, 1.0, 0.49]] {
            let v = s.assemble(&base, &u);
            assert_eq!(s.assemble(&base, &s.locate(&v)), v, "{u:?}");
        }
        assert_eq!(s.locate(&values(&[("a", "9999999"), ("b", "-4"), ("c", "7")])), vec![1.0, 0.0, 0.5]);
        assert_eq!(s.assemble(&base, &[f64::NAN, 0.5]), values(&[("a", "128"), ("b", "50"), ("c", "1")]));
    }

    #[test]
    fn an_invariant_between_two_dimensions_is_an_order_and_against_a_fixed_key_a_narrower_range() {
        let kb = Kb::embedded().unwrap();
        let cur = values(&[("vm.dirty_ratio", "20"), ("vm.dirty_background_ratio", "10"), ("vm.dirty_bytes", "0"), ("vm.dirty_background_bytes", "0")]);
        let mut both = implicated(&kb, &findings(&["dirty_writeback_stalls"]));
        both.push(("vm.dirty_bytes".into(), "test".into()));
        let s = build(&kb, &both, &Policy::default(), &cur).unwrap();
        assert!(s.orders.iter().any(|o| o.from == "vm.dirty_background_ratio" && o.to == "vm.dirty_ratio" && o.strict), "{:?}", s.orders);
        assert!(s.admits(&values(&[("vm.dirty_ratio", "20"), ("vm.dirty_background_ratio", "19")])).is_ok());
        let e = s.admits(&values(&[("vm.dirty_ratio", "20"), ("vm.dirty_background_ratio", "20")])).unwrap_err();
        assert!(e.contains("vm.dirty_background_ratio = 20 must be < vm.dirty_ratio = 20"), "{e}");
        // dirty_bytes reads 0: dirty_ratio is in force, so dirty_bytes stays out (tuning it would switch mode).
        assert!(s.left_out.iter().any(|(k, why)| k == "vm.dirty_bytes" && why.contains("vm.dirty_ratio is in force")), "{:?}", s.left_out);
        let one = vec![("vm.dirty_background_ratio".to_string(), "test".to_string())];
        let s = build(&kb, &one, &Policy::default(), &cur).unwrap();
        assert_eq!(dim(&s, "vm.dirty_background_ratio").kind, DimKind::Int { min: 2, max: 19, log: false });
    }

    #[test]
    fn of_a_conflicting_pair_only_the_first_enters_the_space() {
        let kb = Kb::embedded().unwrap();
        let imp: Vec<(String, String)> = ["vm.vfs_cache_pressure", "vm.vfs_cache_pressure_denom"].iter().map(|k| (k.to_string(), "test".to_string())).collect();
        let cur = values(&[("vm.vfs_cache_pressure", "100"), ("vm.vfs_cache_pressure_denom", "100")]);
        let s = build(&kb, &imp, &policy(&["vm.vfs_cache_pressure*"]), &cur).unwrap();
        assert_eq!(s.keys(), vec!["vm.vfs_cache_pressure"], "{:?}", s.left_out);
        assert!(s.left_out.iter().any(|(k, why)| k == "vm.vfs_cache_pressure_denom" && why.starts_with("conflicts with vm.vfs_cache_pressure")));
    }

    #[test]
    fn the_step_box_keeps_every_move_from_the_incumbent_within_the_policy_ratio() {
        let s = SearchSpace { dims: vec![Dim { key: "a".into(), field: None, kind: DimKind::Int { min: 1, max: 1 << 20, log: true }, why: String::new() }], max_step_ratio: Some(4.0), ..SearchSpace::default() };
        let inc = values(&[("a", "1000")]);
        let (lo, hi) = s.step_box(&inc)[0];
        assert_eq!(s.assemble(&inc, &[lo])["a"], "250");
        assert_eq!(s.assemble(&inc, &[hi])["a"], "4000");
    }
}
