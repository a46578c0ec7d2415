//! The deterministic rule engine: findings + knowledge base + current values
//! → a plan. It sees only telemetry-derived findings, the KB and the values
//! read from a store; it never reads the clock, the RNG or the simulator.
//! Every number it proposes comes from a KB suggestion, a KB sizing rule over
//! a measured gauge, or one step (×2 or ÷2) within the KB range.

use super::findings::{Finding, Findings};
use super::plan::{Change, Consideration, Plan};
use crate::kb::entry::{Condition, Direction, EdgeKind, Relation};
use crate::kb::{Intent, Kb, Param};
use crate::sysctl::Value;
use crate::sysctl::value::ValueKind;
use crate::telemetry::Window;
use std::collections::BTreeMap;

/// What the engine may look at besides the findings.
pub struct Context<'a> {
    /// The knowledge base.
    pub kb: &'a Kb,
    /// The operator's intent.
    pub intent: Intent,
    /// Current values of the keys present on the host (a key absent here does not exist there).
    pub current: &'a BTreeMap<String, Value>,
    /// The telemetry window the findings came from (for sizing rules and conditions).
    pub window: Window<'a>,
}

/// A reasoning backend: the rule engine here, an LLM or an optimiser elsewhere.
pub trait Reasoner {
    /// Short name for plans and reports (`rules`).
    fn name(&self) -> String;
    /// Proposes a plan.
    fn recommend(&self, findings: &Findings, ctx: &Context) -> anyhow::Result<Plan>;
}

/// The deterministic, KB-driven engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct RulesEngine;

impl Reasoner for RulesEngine {
    fn name(&self) -> String {
        "rules".into()
    }
    fn recommend(&self, findings: &Findings, ctx: &Context) -> anyhow::Result<Plan> {
        Ok(recommend(findings, ctx))
    }
}

/// Which way to move, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    Raise,
    Lower,
    Set,
}

fn opposite(d: Direction) -> Option<Move> {
    match d {
        Direction::Raise => Some(Move::Lower),
        Direction::Lower => Some(Move::Raise),
        Direction::Keep | Direction::Set => None,
    }
}

fn forward(d: Direction) -> Option<Move> {
    match d {
        Direction::Raise => Some(Move::Raise),
        Direction::Lower => Some(Move::Lower),
        Direction::Set => Some(Move::Set),
        Direction::Keep => None,
    }
}

/// Proposes changes for `findings`. Pure: same inputs, same plan.
pub fn recommend(findings: &Findings, ctx: &Context) -> Plan {
    let mut plan = Plan::new("rules", ctx.intent);
    plan.snapshot_digest = Some(findings.snapshot_digest.clone());
    // First collect what every finding calls for, so opposite calls on one key are seen before any target is computed.
    let mut calls: BTreeMap<String, Vec<(&Finding, Move, bool)>> = BTreeMap::new();
    for f in &findings.findings {
        for p in ctx.kb.params.values() {
            let counter = p.counter_symptoms.contains(&f.id);
            if !counter && !p.symptoms.contains(&f.id) {
                continue;
            }
            let dir = p.direction.get(ctx.intent).copied();
            match dir.and_then(if counter { opposite } else { forward }) {
                Some(mv) => calls.entry(p.key.clone()).or_default().push((f, mv, counter)),
                None => plan.considered.push(Consideration { key: p.key.clone(), finding_id: f.id.clone(), reason: format!("the KB says keep it for intent {}", ctx.intent.name()) }),
            }
        }
    }
    add_rivals(&mut calls, &mut plan, ctx);
    // key -> (move, change)
    let mut chosen: BTreeMap<String, (Move, Change)> = BTreeMap::new();
    for (key, cs) in &calls {
        let p = &ctx.kb.params[key];
        let raise = cs.iter().any(|c| c.1 == Move::Raise);
        let lower = cs.iter().any(|c| c.1 == Move::Lower);
        if raise && lower {
            let (up, down): (Vec<_>, Vec<_>) = cs.iter().partition(|c| c.1 == Move::Raise);
            let names = |v: &[&(&Finding, Move, bool)]| v.iter().map(|c| c.0.id.clone()).collect::<Vec<_>>().join(", ");
            for c in cs {
                plan.considered.push(Consideration {
                    key: key.clone(),
                    finding_id: c.0.id.clone(),
                    reason: format!("conflicting evidence: {} call(s) to raise it, {} to lower it (a symptom and the sign of having gone too far); left unchanged", names(&up), names(&down)),
                });
            }
            continue;
        }
        for (f, mv, counter) in cs {
            match propose(p, *mv, *counter, f, ctx) {
                Ok(change) => match chosen.get_mut(key) {
                    Some((_, existing)) => {
                        existing.finding_ids.push(f.id.clone());
                        existing.evidence.extend(f.evidence.iter().map(|e| e.describe()));
                        existing.measurements.extend(f.evidence.iter().cloned());
                    }
                    None => {
                        chosen.insert(key.clone(), (*mv, change));
                    }
                },
                Err(reason) => plan.considered.push(Consideration { key: key.clone(), finding_id: f.id.clone(), reason }),
            }
        }
    }
    pull_in_partners(&mut chosen, &mut plan, ctx);
    drop_exclusive_pairs(&mut chosen, &mut plan, ctx);
    repair_invariants(&mut chosen, ctx);
    // Apply order: the KB's key order, so plans are stable and pairs stay together.
    plan.changes = chosen.into_values().map(|(_, c)| c).collect();
    plan
}

fn propose(p: &Param, mv: Move, counter: bool, f: &Finding, ctx: &Context) -> Result<Change, String> {
    let Some(cur) = ctx.current.get(&p.key) else {
        let why = match (&p.removed_in, &p.moved_to) {
            (Some(v), Some(to)) => format!("unavailable on this kernel: removed from /proc/sys in {v} ({to}); not written"),
            (Some(v), None) => format!("unavailable on this kernel: removed in {v}; not written"),
            _ => "unavailable: the key does not exist on this host (kernel version or configuration); not written".into(),
        };
        return Err(why);
    };
    if p.no_op {
        return Err("present but has no effect on current kernels".into());
    }
    // Raising a limit helps only if it is the one in force for what shows the symptom (`binding`).
    let bound = if counter { Vec::new() } else { super::binding::judge(p, &f.id, &ctx.window)? };
    let mut notes = Vec::new();
    for c in &p.conditions {
        match check_condition(c, ctx) {
            Some(true) => notes.push(format!("checked: {}", c.because)),
            Some(false) => return Err(format!("not proposed: {}", c.because)),
            None if c.sysctl.is_some() => return Err(format!("not proposed: cannot check the precondition ({})", c.because)),
            None => notes.push(format!("not verified (no telemetry for {}): {}", c.metric.as_deref().unwrap_or("?"), c.because)),
        }
    }
    let (to, how) = target(p, mv, counter, cur, ctx)?;
    let dir_word = match mv {
        Move::Raise => "raise",
        Move::Lower => "lower",
        Move::Set => "set",
    };
    let mut rationale = format!(
        "{}: {} {} {} {} ({} → {}) for intent {}: {}.",
        f.title,
        p.controls.trim_end_matches('.'),
        if counter { "— it went too far, so" } else { "— so" },
        dir_word,
        p.key,
        cur,
        to,
        ctx.intent.name(),
        how
    );
    for e in ctx.kb.edges_of(&p.key).filter(|e| e.kind == EdgeKind::Requires && e.from == p.key) {
        rationale.push_str(&format!(" Requires {}: {}", e.to, e.note));
    }
    for n in notes {
        rationale.push_str(&format!(" ({n})"));
    }
    if let Some(note) = &p.effect_note {
        rationale.push_str(&format!(" Takes effect: {note}"));
    }
    Ok(Change {
        key: p.key.clone(),
        from: Some(cur.to_string()),
        to: to.to_string(),
        rationale,
        evidence: f.evidence.iter().map(|e| e.describe()).chain(bound).collect(),
        measurements: f.evidence.clone(),
        finding_ids: vec![f.id.clone()],
        kb_key: Some(p.key.clone()),
        effect: p.effect,
        uncertainty: None,
        advice_only: false,
    })
}

/// Evaluates a precondition; `None` when what it compares is not available.
fn check_condition(c: &Condition, ctx: &Context) -> Option<bool> {
    let rhs = match c.value.strip_prefix('$') {
        Some(key) => ctx.current.get(key)?.to_string(),
        None => c.value.clone(),
    };
    let lhs = match (&c.sysctl, &c.metric) {
        (Some(k), _) => ctx.current.get(k)?.to_string(),
        (None, Some(m)) => format!("{}", ctx.window.reading(m)?),
        _ => return None,
    };
    match (lhs.parse::<f64>(), rhs.parse::<f64>()) {
        (Ok(a), Ok(b)) => Some(c.op.holds(a, b)),
        _ => Some(c.op.holds_str(&lhs, &rhs)),
    }
}

fn target(p: &Param, mv: Move, counter: bool, cur: &Value, ctx: &Context) -> Result<(Value, String), String> {
    if mv == Move::Set {
        let s = p.suggest.get(ctx.intent).ok_or_else(|| format!("the KB has no suggested value for intent {}", ctx.intent.name()))?;
        let v = Value::parse(s, p.kind, p.elements(), &p.values).map_err(|e| format!("KB suggestion unusable: {e}"))?;
        if &v == cur {
            return Err(format!("already at the suggested value {v}"));
        }
        return Ok((v, format!("the KB's suggested value for {}", ctx.intent.name())));
    }
    if !matches!(p.kind, ValueKind::Int | ValueKind::Ints) {
        return Err("not a numeric parameter; only `set` applies".into());
    }
    let ints = cur.ints().ok_or_else(|| format!("current value {cur} is not numeric"))?;
    let idx = p.adjust_index.unwrap_or(0).min(ints.len().saturating_sub(1));
    let now = ints[idx];
    let raise = mv == Move::Raise;
    let clamp = |x: i64| x.clamp(p.min.unwrap_or(i64::MIN), p.max.unwrap_or(i64::MAX));
    let better = |x: i64| if raise { x > now } else { x < now };
    let mut pick: Option<(i64, String)> = None;
    if !counter {
        if let Some(s) = &p.sizing
            && let Some(m) = ctx.window.gauge(&s.metric)
        {
            let mut t = (m * s.factor).ceil() as i64;
            if s.pow2 {
                t = (t.max(1) as u64).next_power_of_two() as i64;
            }
            let t = clamp(t);
            if !better(t) {
                return Err(format!("already sized: {} × {} = {} is not {} than the current {now}", s.metric, s.factor, t, if raise { "larger" } else { "smaller" }));
            }
            pick = Some((t, format!("sized to {} × {} ({m:.0}){}", s.factor, s.metric, if s.pow2 { ", rounded up to a power of two" } else { "" })));
        }
        if pick.is_none()
            && let Some(s) = p.suggest.get(ctx.intent)
            && let Some(sv) = Value::from_kernel(s).ints()
            && let Some(t) = sv.get(idx).copied()
        {
            // Past the KB's suggestion the symptom has another cause: do not keep pushing one knob.
            if !better(t) {
                return Err(format!("already at or beyond the KB's suggested value {t} for intent {}; the symptom persists for another reason (or needs a parameter the policy does not allow)", ctx.intent.name()));
            }
            pick = Some((t, format!("the KB's suggested value for {}", ctx.intent.name())));
        }
    }
    let (t, how) = match pick {
        Some(x) => x,
        None => {
            let mut t = if raise { now.saturating_mul(2).max(now + 1) } else { (now / 2).min(now - 1) };
            // Backing off never goes past the kernel default.
            if counter && let Some(d) = p.default.as_deref().and_then(|d| Value::from_kernel(d).ints()).and_then(|d| d.get(idx).copied()) {
                t = if raise { t.min(d.max(now)) } else { t.max(d.min(now)) };
            }
            let t = clamp(t);
            if !better(t) {
                return Err(format!("already at the KB limit ({now})"));
            }
            (t, format!("one step ({}) within the KB range", if raise { "×2" } else { "÷2" }))
        }
    };
    let mut out = ints.clone();
    out[idx] = t;
    if p.ordered {
        // Keep min ≤ default ≤ max by pulling the other elements along.
        for (i, v) in out.iter_mut().enumerate() {
            if i < idx {
                *v = (*v).min(t);
            } else if i > idx {
                *v = (*v).max(t);
            }
        }
    }
    Ok((Value::from_ints(&out), how))
}

/// The KB's rivals of every key called for a symptom (`Binding::rivals`), called for the same
/// symptom in their own direction, so that each is judged by whether it binds.
fn add_rivals<'f>(calls: &mut BTreeMap<String, Vec<(&'f Finding, Move, bool)>>, plan: &mut Plan, ctx: &Context) {
    let mut extra: Vec<(String, &'f Finding, Option<Move>, String)> = Vec::new();
    for (key, cs) in calls.iter() {
        let p = &ctx.kb.params[key];
        for (f, _, _) in cs.iter().filter(|c| !c.2) {
            for rival in super::binding::rivals(p, &f.id) {
                let already = calls.get(rival).is_some_and(|v| v.iter().any(|c| c.0.id == f.id)) || extra.iter().any(|e| e.0 == rival && e.1.id == f.id);
                // A rival absent from this host is no limit in force here: nothing to judge.
                if already || ctx.kb.param(rival).is_none() || !ctx.current.contains_key(rival) {
                    continue;
                }
                let mv = ctx.kb.params[rival].direction.get(ctx.intent).copied().and_then(forward);
                extra.push((rival.to_string(), *f, mv, key.clone()));
            }
        }
    }
    for (rival, f, mv, of) in extra {
        match mv {
            Some(mv) => calls.entry(rival).or_default().push((f, mv, false)),
            None => plan.considered.push(Consideration { key: rival, finding_id: f.id.clone(), reason: format!("may be the limit in force instead of {of}, but the KB gives no direction for intent {}", ctx.intent.name()) }),
        }
    }
}

fn pull_in_partners(chosen: &mut BTreeMap<String, (Move, Change)>, plan: &mut Plan, ctx: &Context) {
    let anchors: Vec<(String, Change)> = chosen.iter().map(|(k, (_, c))| (k.clone(), c.clone())).collect();
    for (key, change) in anchors {
        for e in ctx.kb.edges_of(&key).filter(|e| e.kind == EdgeKind::SynergizesWith) {
            let partner = e.other(&key);
            if chosen.contains_key(partner) {
                continue;
            }
            let Some(p) = ctx.kb.param(partner) else { continue };
            let finding_id = change.finding_ids.first().cloned().unwrap_or_default();
            let Some(mv) = p.direction.get(ctx.intent).copied().and_then(forward) else {
                plan.considered.push(Consideration { key: partner.to_string(), finding_id, reason: format!("partner of {key}, but the KB gives no direction for intent {}", ctx.intent.name()) });
                continue;
            };
            let f = Finding { id: finding_id.clone(), title: format!("Pulled in by {key}"), explain: String::new(), evidence: Vec::new(), presence: Default::default() };
            match propose(p, mv, false, &f, ctx) {
                Ok(mut c) => {
                    c.rationale = format!("{} Pulled in by the change of {key}: {}", c.rationale, e.note);
                    c.finding_ids = change.finding_ids.clone();
                    c.evidence = change.evidence.clone();
                    c.measurements = change.measurements.clone();
                    chosen.insert(partner.to_string(), (mv, c));
                }
                Err(reason) => plan.considered.push(Consideration { key: partner.to_string(), finding_id, reason: format!("partner of {key}: {reason}") }),
            }
        }
    }
}

fn drop_exclusive_pairs(chosen: &mut BTreeMap<String, (Move, Change)>, plan: &mut Plan, ctx: &Context) {
    for e in ctx.kb.edges.iter().filter(|e| matches!(e.kind, EdgeKind::MutuallyExclusive | EdgeKind::ConflictsWith)) {
        if chosen.contains_key(&e.from) && chosen.contains_key(&e.to) {
            let (_, dropped) = chosen.remove(&e.to).unwrap();
            plan.considered.push(Consideration {
                key: e.to.clone(),
                finding_id: dropped.finding_ids.first().cloned().unwrap_or_default(),
                reason: format!("{} with {} (kept): {}", if e.kind == EdgeKind::MutuallyExclusive { "mutually exclusive" } else { "conflicts" }, e.from, e.note),
            });
        }
    }
}

fn repair_invariants(chosen: &mut BTreeMap<String, (Move, Change)>, ctx: &Context) {
    for e in ctx.kb.edges.iter().filter(|e| e.kind == EdgeKind::Invariant) {
        let value_of = |k: &str, chosen: &BTreeMap<String, (Move, Change)>| -> Option<Vec<i64>> {
            match chosen.get(k) {
                Some((_, c)) => Value::from_kernel(&c.to).ints(),
                None => ctx.current.get(k)?.ints(),
            }
        };
        let (Some(a), Some(b)) = (value_of(&e.from, chosen), value_of(&e.to, chosen)) else { continue };
        let (ia, ib) = (e.from_index.unwrap_or(0), e.to_index.unwrap_or(0));
        let (Some(&x), Some(&y)) = (a.get(ia), b.get(ib)) else { continue };
        if e.unless_from.contains(&x) || e.unless_to.contains(&y) {
            continue;
        }
        let ok = match e.relation {
            Some(Relation::LessThan) => x < y,
            Some(Relation::LessEqual) => x <= y,
            None => true,
        };
        if ok {
            continue;
        }
        let bound = if e.relation == Some(Relation::LessThan) { y - 1 } else { y };
        if let Some((_, c)) = chosen.get_mut(&e.from)
            && a.len() == 1
        {
            let lo = ctx.kb.param(&e.from).and_then(|p| p.min).unwrap_or(i64::MIN);
            if bound >= lo {
                c.to = bound.to_string();
                c.rationale.push_str(&format!(" Adjusted to {bound} to keep {} {} {}: {}", e.from, if e.relation == Some(Relation::LessThan) { "<" } else { "≤" }, e.to, e.note));
            }
        }
    }
}
