//! The guardrails: `check(plan, kb, policy, current)` gives every change a
//! verdict. Hard violations (unknown or never-touch key, malformed or
//! out-of-range value, broken invariant, both members of an exclusive pair)
//! abort the whole plan: nothing is applied. Soft ones (outside the
//! whitelist, risk above policy, key absent on this kernel, no change) drop
//! only that change. Step limits clamp, judged by the value in force
//! (`step`). Pure: no I/O; host quantities arrive as `Facts`.

use super::policy::Policy;
use super::scope;
use super::step::{self, Facts, Step};
use crate::kb::entry::{EdgeKind, Relation};
use crate::kb::{Kb, Risk};
use crate::kb::validate::check_value;
use crate::reasoning::{Change, Plan};
use crate::sysctl::{SysctlKey, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The outcome for one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Apply as proposed.
    Accept,
    /// Apply, but at a smaller step.
    Clamp { to: String, rule: String, reason: String },
    /// Not applied, not an error (absent key, no change).
    Skip { reason: String },
    /// Not applied: policy refuses it; the rest of the plan proceeds.
    Refuse { rule: String, reason: String },
    /// Not applied, and the whole plan is aborted.
    Reject { rule: String, reason: String },
}

impl Verdict {
    /// Short label for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Clamp { .. } => "clamp",
            Verdict::Skip { .. } => "skip",
            Verdict::Refuse { .. } => "refuse",
            Verdict::Reject { .. } => "REJECT",
        }
    }

    /// The reason, if any.
    pub fn reason(&self) -> String {
        match self {
            Verdict::Accept => String::new(),
            Verdict::Clamp { rule, reason, .. } | Verdict::Refuse { rule, reason } | Verdict::Reject { rule, reason } => format!("[{rule}] {reason}"),
            Verdict::Skip { reason } => reason.clone(),
        }
    }
}

/// A change with its verdict and the value that would be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedChange {
    /// The proposal, its `from` the value read from the target when checked (when the key exists there).
    pub change: Change,
    /// Set when the plan was made against another value (drift): the plan's own `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_from: Option<String>,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The value to write (for accept and clamp).
    pub write: Option<String>,
    /// What the operator should know even though the change may go ahead (a host-wide key changed from a child network namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A plan after the guardrails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedPlan {
    /// The plan as proposed.
    pub plan: Plan,
    /// One entry per change, in plan order.
    pub changes: Vec<CheckedChange>,
    /// Set when a hard violation aborts the plan: every rule broken, one per line.
    pub aborted: Option<String>,
}

impl CheckedPlan {
    /// The writes to perform, in order: (key, value) for accepted and clamped changes; empty when aborted.
    pub fn writes(&self) -> Vec<(SysctlKey, Value)> {
        if self.aborted.is_some() {
            return Vec::new();
        }
        self.changes
            .iter()
            // Advice-only changes never get a write (see `advice_only`); this filter keeps it so if a verdict is ever edited.
            .filter(|c| !c.change.advice_only)
            .filter_map(|c| c.write.as_ref().map(|w| (SysctlKey::parse(&c.change.key).expect("checked key"), Value::from_kernel(w))))
            .collect()
    }

    /// The changes refused because they cannot be written from the target's namespace, as (key, value): what to set on the host.
    pub fn refused_for_scope(&self) -> Vec<(String, String)> {
        self.changes.iter().filter(|c| matches!(&c.verdict, Verdict::Refuse { rule, .. } if rule == scope::RULE)).map(|c| (c.change.key.clone(), c.change.to.clone())).collect()
    }

    /// Counts of verdicts by label.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in &self.changes {
            *m.entry(c.verdict.label()).or_insert(0) += 1;
        }
        m
    }
}

/// Applies every guardrail to `plan`. `current` holds the values of keys present on the target.
/// Without host facts, a step from a sentinel whose value in force needs one is skipped.
pub fn check(plan: &Plan, kb: &Kb, policy: &Policy, current: &BTreeMap<String, Value>) -> CheckedPlan {
    check_with(plan, kb, policy, current, &Facts::new())
}

/// `check` with the host quantities (`safety::facts::from_snapshot`) that sentinel conversions need.
pub fn check_with(plan: &Plan, kb: &Kb, policy: &Policy, current: &BTreeMap<String, Value>, facts: &Facts) -> CheckedPlan {
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    for ch in &plan.changes {
        let verdict = advice_only(ch, check_one(ch, kb, policy, current, facts, &mut seen));
        let write = match &verdict {
            Verdict::Accept => Some(Value::from_kernel(&ch.to).to_string()),
            Verdict::Clamp { to, .. } => Some(to.clone()),
            _ => None,
        };
        let warnings = kb.param(&ch.key).and_then(|p| scope::warning(&ch.key, p, facts)).into_iter().collect();
        let (change, plan_from) = with_live_from(ch, current);
        out.push(CheckedChange { change, plan_from, verdict, write, warnings });
    }
    cross_checks(&mut out, kb, current, facts);
    let hard: Vec<String> = out
        .iter()
        .filter_map(|c| match &c.verdict {
            Verdict::Reject { rule, reason } => Some(format!("{}: [{rule}] {reason}", c.change.key)),
            _ => None,
        })
        .collect();
    CheckedPlan { plan: plan.clone(), changes: out, aborted: if hard.is_empty() { None } else { Some(hard.join("\n")) } }
}

/// The change with `from` set to the value read from the target, and the
/// plan's own `from` when it differs (the plan was made against another
/// value): a dry run shows what the apply will really start from.
fn with_live_from(ch: &Change, current: &BTreeMap<String, Value>) -> (Change, Option<String>) {
    let live = SysctlKey::parse(&ch.key).ok().and_then(|k| current.get(&k.to_string()));
    let Some(live) = live else { return (ch.clone(), None) };
    let drift = ch.from.as_deref().filter(|f| Value::from_kernel(f) != *live).map(str::to_string);
    let mut change = ch.clone();
    if ch.from.is_none() || drift.is_some() {
        change.from = Some(live.to_string());
    }
    (change, drift)
}

/// An advice-only change passes every guardrail like any other (a hard
/// violation still aborts the plan), but what would have been written is
/// only shown: the operator decides.
fn advice_only(ch: &Change, v: Verdict) -> Verdict {
    if !ch.advice_only {
        return v;
    }
    let u = ch.uncertainty.map(|u| format!(" (uncertainty {u:.2})")).unwrap_or_default();
    match v {
        Verdict::Accept => Verdict::Skip { reason: format!("{} is advice only{u}: shown, not applied automatically; the guardrails would accept {}", ch.key, ch.to) },
        Verdict::Clamp { to, .. } => Verdict::Skip { reason: format!("{} is advice only{u}: shown, not applied automatically; the guardrails would clamp it to {to}", ch.key) },
        other => other,
    }
}

/// The longest value one write to a `/proc/sys` file sets whole (a page, 4096 bytes, less one).
pub const MAX_WRITE: usize = 4095;

fn reject(rule: &str, reason: impl Into<String>) -> Verdict {
    Verdict::Reject { rule: rule.into(), reason: reason.into() }
}

fn check_one(ch: &Change, kb: &Kb, policy: &Policy, current: &BTreeMap<String, Value>, facts: &Facts, seen: &mut BTreeMap<String, ()>) -> Verdict {
    let key = match SysctlKey::parse(&ch.key) {
        Ok(k) => k.to_string(),
        Err(e) => return reject("key-syntax", e.to_string()),
    };
    if seen.insert(key.clone(), ()).is_some() {
        return reject("duplicate", format!("{key} appears twice in the plan"));
    }
    let Some(p) = kb.param(&key) else {
        let hint = crate::reasoning::plan::unknown_key_hint(&key, kb.params.keys().map(String::as_str));
        return reject("unknown-key", format!("{key} has no knowledge-base entry, so nothing is known of its range or risk; {hint} (add an entry with --kb DIR if it should be tunable)"));
    };
    if p.risk == Risk::Never {
        return reject("never-touch", format!("{key} is never changed by a tuner: {}", p.risk_reason));
    }
    if policy.forbids(&key) {
        return reject("never-touch", format!("{key} is on the policy's never_touch list"));
    }
    let to = match check_value(p, &ch.to) {
        Ok(v) => v,
        Err(e) => return reject("range", format!("{key} = {:?}: {e}", ch.to)),
    };
    // Before the whitelist and the presence check: a key this namespace cannot write is refused for
    // that reason, with where it can be set, whatever else would be said of it here.
    if let Some(reason) = scope::refusal(&key, p, &to, facts) {
        return Verdict::Refuse { rule: scope::RULE.into(), reason };
    }
    if !policy.allows(&key) {
        return Verdict::Refuse { rule: "whitelist".into(), reason: format!("{key} is not in the policy whitelist ({})", policy.whitelist.iter().chain(&policy.extend_whitelist).cloned().collect::<Vec<_>>().join(", ")) };
    }
    if p.risk > policy.max_risk {
        return Verdict::Refuse { rule: "risk".into(), reason: format!("{key} has risk {:?} above the policy's max_risk {:?}: {}", p.risk, policy.max_risk, p.risk_reason) };
    }
    let Some(cur) = current.get(&key) else {
        let why = p.removed_in.as_ref().map(|v| format!(" (removed from /proc/sys in {v}{})", p.moved_to.as_ref().map(|m| format!("; {m}")).unwrap_or_default())).unwrap_or_default();
        return Verdict::Skip { reason: format!("{key} does not exist on this kernel{why}; not written") };
    };
    if &to == cur {
        return Verdict::Skip { reason: format!("{key} is already {cur}") };
    }
    // The kernel takes at most a page less one byte in one write and cuts a longer one at its last
    // whole number (the store writes once, as a second write at an offset is ignored or merged): a
    // value longer than that could not be written whole, nor, in force, be put back by a rollback.
    if to.as_str().len() > MAX_WRITE {
        return reject("range", format!("{key}: the new value is {} bytes; the kernel takes at most {MAX_WRITE} in one write", to.as_str().len()));
    }
    if cur.as_str().len() > MAX_WRITE {
        return Verdict::Refuse { rule: "restorable".into(), reason: format!("{key}'s value in force is {} bytes, longer than the {MAX_WRITE} the kernel takes in one write: a rollback could not put it back exactly, so it is not changed", cur.as_str().len()) };
    }
    if let (Some(old), Some(new)) = (cur.ints(), to.ints()) {
        let r = policy.max_step_ratio;
        match step::bound(&key, p, &old, &new, r, current, facts) {
            Step::Within => {}
            Step::Unbounded(reason) => return Verdict::Skip { reason },
            Step::Refuse(reason) => return Verdict::Refuse { rule: "sentinel".into(), reason },
            Step::Clamp { to: clamped, in_force } => {
                let from = match &in_force {
                    Some(f) => format!("{cur} ({f})"),
                    None => cur.to_string(),
                };
                let v = Value::from_ints(&clamped);
                if check_value(p, v.as_str()).is_ok() && &v != cur {
                    return Verdict::Clamp { to: v.to_string(), rule: "max-step".into(), reason: format!("{key}: {from} → {to} exceeds the policy's max_step_ratio {r}; clamped to {v} (a later round may continue)") };
                }
                return Verdict::Skip { reason: format!("{key}: {from} → {to} exceeds the policy's max_step_ratio {r} and no smaller step is valid") };
            }
        }
    }
    Verdict::Accept
}

fn cross_checks(out: &mut [CheckedChange], kb: &Kb, current: &BTreeMap<String, Value>, facts: &Facts) {
    let final_value = |k: &str, out: &[CheckedChange]| -> Option<Value> {
        match out.iter().find(|c| c.change.key == k && c.write.is_some()) {
            Some(c) => c.write.as_deref().map(Value::from_kernel),
            None => current.get(k).cloned(),
        }
    };
    for e in &kb.edges {
        let changed = |k: &str| out.iter().any(|c| c.change.key == k && c.write.is_some());
        // A plan that asks to move both members is incoherent whatever the other guardrails
        // made of each (a step limit may skip one): judged on what was asked, as the fleet
        // precheck and the export do.
        let asks = |k: &str| out.iter().any(|c| c.change.key == k && !c.change.advice_only && current.get(k).is_some_and(|v| *v != Value::from_kernel(&c.change.to)));
        match e.kind {
            EdgeKind::MutuallyExclusive if asks(&e.from) && asks(&e.to) => {
                mark(out, &e.to, "mutually-exclusive", format!("{} and {} are both changed, but writing one zeroes the other: {}", e.from, e.to, e.note));
            }
            EdgeKind::ConflictsWith if changed(&e.from) && changed(&e.to) => {
                mark(out, &e.to, "conflict", format!("{} and {} are changed together, and the KB says they work against each other: {}", e.from, e.to, e.note));
            }
            EdgeKind::Invariant if changed(&e.from) || changed(&e.to) => {
                let (Some(a), Some(b)) = (final_value(&e.from, out), final_value(&e.to, out)) else { continue };
                let (Some(a), Some(b)) = (a.ints(), b.ints()) else { continue };
                let (Some(&x), Some(&y)) = (a.get(e.from_index.unwrap_or(0)), b.get(e.to_index.unwrap_or(0))) else { continue };
                // A partner sentinel (dirty_ratio reads 0 while dirty_bytes is in force) is compared by
                // the value in force when the facts allow; `unless_*` skips it only when they do not.
                let finals: BTreeMap<String, Value> = current.iter().map(|(k, v)| (k.clone(), final_value(k, out).unwrap_or_else(|| v.clone()))).collect();
                let in_force = |k: &str, v: i64| kb.param(k).and_then(|p| p.sentinel.as_ref()).and_then(|s| step::partner_in_force(k, s, v, &finals, facts));
                let (xf, yf) = (in_force(&e.from, x), in_force(&e.to, y));
                if (e.unless_from.contains(&x) && xf.is_none()) || (e.unless_to.contains(&y) && yf.is_none()) {
                    continue;
                }
                let (x, y) = (Shown(xf.unwrap_or(x as f64)), Shown(yf.unwrap_or(y as f64)));
                let (ok, sym) = match e.relation {
                    Some(Relation::LessThan) => (x.0 < y.0, "<"),
                    Some(Relation::LessEqual) => (x.0 <= y.0, "≤"),
                    None => (true, "?"),
                };
                if !ok {
                    let target = if changed(&e.from) { e.from.clone() } else { e.to.clone() };
                    mark(out, &target, "invariant", format!("{} {sym} {} must hold, but the result would be {x} vs {y}: {}", e.from, e.to, e.note));
                }
            }
            _ => {}
        }
    }
}

/// A compared value: whole numbers as integers, values in force with two decimals.
struct Shown(f64);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.fract() == 0.0 { write!(f, "{}", self.0 as i64) } else { write!(f, "{:.2}", self.0) }
    }
}

fn mark(out: &mut [CheckedChange], key: &str, rule: &str, reason: String) {
    if let Some(c) = out.iter_mut().find(|c| c.change.key == key) {
        c.verdict = reject(rule, reason);
        c.write = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::{Effect, Intent};

    fn change(key: &str, to: &str) -> Change {
        Change { key: key.into(), from: None, to: to.into(), rationale: String::new(), evidence: vec![], measurements: vec![], finding_ids: vec![], kb_key: None, effect: Effect::Live, uncertainty: None, advice_only: false }
    }

    fn check_plan(changes: &[(&str, &str)]) -> CheckedPlan {
        let kb = Kb::embedded().unwrap();
        let mut plan = Plan::new("test", Intent::Latency);
        plan.changes = changes.iter().map(|(k, v)| change(k, v)).collect();
        let current: BTreeMap<String, Value> = [
            ("vm.dirty_ratio", "20"),
            ("vm.dirty_background_ratio", "10"),
            ("vm.dirty_bytes", "0"),
            ("vm.vfs_cache_pressure", "100"),
            ("vm.vfs_cache_pressure_denom", "100"),
            ("vm.swappiness", "60"),
            ("net.core.somaxconn", "128"),
            ("net.ipv4.tcp_rmem", "4096 131072 6291456"),
            ("kernel.randomize_va_space", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from_kernel(v)))
        .collect();
        let policy = Policy { extend_whitelist: vec!["vm.vfs_cache_pressure*".into()], ..Policy::default() };
        check(&plan, &kb, &policy, &current)
    }

    fn verdict_of<'a>(c: &'a CheckedPlan, key: &str) -> &'a Verdict {
        &c.changes.iter().find(|x| x.change.key == key).unwrap().verdict
    }

    #[test]
    fn each_rule_gives_its_verdict() {
        let c = check_plan(&[("vm.swappiness", "10")]);
        assert_eq!(verdict_of(&c, "vm.swappiness"), &Verdict::Accept);
        assert!(c.aborted.is_none());
        let c = check_plan(&[("net.core.somaxconn", "4096")]);
        assert!(matches!(verdict_of(&c, "net.core.somaxconn"), Verdict::Clamp { to, .. } if to == "1024"));
        let c = check_plan(&[("net.ipv4.tcp_rmem", "4096 131072 33554432")]);
        assert!(matches!(verdict_of(&c, "net.ipv4.tcp_rmem"), Verdict::Refuse { rule, .. } if rule == "whitelist"));
        assert!(c.aborted.is_none());
        let c = check_plan(&[("kernel.sched_latency_ns", "3000000")]);
        assert!(matches!(verdict_of(&c, "kernel.sched_latency_ns"), Verdict::Skip { reason } if reason.contains("removed from /proc/sys in 5.13")));
    }

    #[test]
    fn a_value_longer_than_one_kernel_write_is_neither_written_nor_changed_from() {
        let kb = Kb::embedded().unwrap();
        let key = "net.ipv4.ip_local_reserved_ports";
        let long: String = (10000..12000).step_by(2).map(|p| p.to_string()).collect::<Vec<_>>().join(",");
        assert!(long.len() > MAX_WRITE);
        let policy = Policy { extend_whitelist: vec![key.into()], ..Policy::default() };
        let run = |cur: &str, to: &str| {
            let mut plan = Plan::new("test", Intent::Latency);
            plan.changes = vec![change(key, to)];
            let current: BTreeMap<String, Value> = [(key.to_string(), Value::from_kernel(cur))].into_iter().collect();
            check(&plan, &kb, &policy, &current)
        };
        // A short list in force and a short one asked for: accepted (the rule is only about length).
        assert_eq!(verdict_of(&run("8080", "8080-8090"), key), &Verdict::Accept);
        // The kernel would cut the new value at its last whole number within 4095 bytes.
        let c = run("8080", &long);
        assert!(matches!(verdict_of(&c, key), Verdict::Reject { rule, .. } if rule == "range"), "{}", verdict_of(&c, key).reason());
        // One byte over a page less one: within the KB's string bound, still more than one write sets.
        let just_over = format!("{}11", "1,".repeat(2047));
        assert_eq!(just_over.len(), MAX_WRITE + 1);
        let c = run("8080", &just_over);
        assert!(matches!(verdict_of(&c, key), Verdict::Reject { rule, reason } if rule == "range" && reason.contains("at most 4095")), "{}", verdict_of(&c, key).reason());
        // A value in force that long could not be put back by a rollback.
        let c = run(&long, "8080");
        assert!(matches!(verdict_of(&c, key), Verdict::Refuse { rule, reason } if rule == "restorable" && reason.contains(&format!("{} bytes", long.len()))), "{}", verdict_of(&c, key).reason());
        assert!(c.writes().is_empty());
    }

    #[test]
    fn advice_only_changes_are_checked_but_never_written() {
        let kb = Kb::embedded().unwrap();
        let current: BTreeMap<String, Value> = [("vm.swappiness", "60"), ("net.core.somaxconn", "128")].into_iter().map(|(k, v)| (k.to_string(), Value::from_kernel(v))).collect();
        let mut plan = Plan::new("llm:test", Intent::Latency);
        plan.changes = vec![change("vm.swappiness", "10"), change("net.core.somaxconn", "4096")];
        for c in &mut plan.changes {
            c.advice_only = true;
            c.uncertainty = Some(0.67);
        }
        let c = check(&plan, &kb, &Policy::default(), &current);
        assert!(c.writes().is_empty() && c.aborted.is_none());
        assert!(matches!(verdict_of(&c, "vm.swappiness"), Verdict::Skip { reason } if reason.contains("advice only (uncertainty 0.67)") && reason.contains("would accept 10")));
        assert!(matches!(verdict_of(&c, "net.core.somaxconn"), Verdict::Skip { reason } if reason.contains("would clamp it to 1024")));
        // A hard violation in advice still aborts: hostile advice taints the plan.
        plan.changes.push(change("kernel.randomize_va_space", "0"));
        plan.changes[2].advice_only = true;
        let c = check(&plan, &kb, &Policy::default(), &current);
        assert!(c.aborted.as_deref().is_some_and(|a| a.contains("[never-touch]")));
        // Applied and advice-only side by side: only the applied one is written.
        plan.changes.truncate(2);
        plan.changes[0].advice_only = false;
        let c = check(&plan, &kb, &Policy::default(), &current);
        assert_eq!(c.writes().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(), ["vm.swappiness=10"]);
    }

    /// One change of `key` from `cur` to `to` under `policy`, with extra current values and host facts.
    fn step_verdict(key: &str, cur: &str, to: &str, others: &[(&str, &str)], facts: &Facts, policy: &Policy) -> Verdict {
        let kb = Kb::embedded().unwrap();
        let mut plan = Plan::new("test", Intent::Latency);
        plan.changes = vec![change(key, to)];
        let current: BTreeMap<String, Value> = others.iter().chain(&[(key, cur)]).map(|(k, v)| (k.to_string(), Value::from_kernel(v))).collect();
        let c = check_with(&plan, &kb, policy, &current, facts);
        c.changes[0].verdict.clone()
    }

    fn open_policy(ratio: f64) -> Policy {
        Policy { whitelist: vec!["*".into()], max_step_ratio: ratio, max_risk: Risk::High, ..Policy::default() }
    }

    #[test]
    fn step_limit_holds_when_dirty_bytes_starts_at_zero() {
        // 0 means dirty_ratio (20 % of 4 GiB dirtyable ≈ 859 MB) is in force: 1 TiB is a ×1280 step from it.
        let facts = Facts::from([(crate::kb::entry::Fact::DirtyableBytes, 4.0 * 1024.0 * 1024.0 * 1024.0)]);
        let v = step_verdict("vm.dirty_bytes", "0", "1099511627776", &[("vm.dirty_ratio", "20")], &facts, &Policy::default());
        assert!(matches!(&v, Verdict::Clamp { to, reason, .. } if to == "6871947673" && reason.contains("in force ≈ 858993459 from vm.dirty_ratio 20")), "{v:?}");
        // Within ×8 of the value in force: accepted as asked.
        assert_eq!(step_verdict("vm.dirty_bytes", "0", "268435456", &[("vm.dirty_ratio", "20")], &facts, &Policy::default()), Verdict::Accept);
        // Without the host fact the value in force is unknown: not written rather than unbounded.
        let v = step_verdict("vm.dirty_bytes", "0", "1099511627776", &[("vm.dirty_ratio", "20")], &Facts::new(), &Policy::default());
        assert!(matches!(&v, Verdict::Skip { reason } if reason.contains("dirtyable_bytes, which was not measured")), "{v:?}");
        // The other way round: dirty_ratio reads 0 while dirty_bytes (1 % of dirtyable) is in force.
        let v = step_verdict("vm.dirty_ratio", "0", "80", &[("vm.dirty_bytes", "42949673")], &facts, &Policy::default());
        assert!(matches!(&v, Verdict::Clamp { to, .. } if to == "8"), "{v:?}");
    }

    #[test]
    fn step_limit_holds_when_target_is_zero() {
        // swappiness 0 is not "off" (it does not disable swap): a step like any other.
        let v = step_verdict("vm.swappiness", "60", "0", &[], &Facts::new(), &open_policy(4.0));
        assert!(matches!(&v, Verdict::Clamp { to, .. } if to == "15"), "{v:?}");
        let v = step_verdict("vm.swappiness", "60", "0", &[], &Facts::new(), &Policy::default());
        assert!(matches!(&v, Verdict::Clamp { to, .. } if to == "8"), "{v:?}");
        assert_eq!(step_verdict("vm.swappiness", "8", "0", &[], &Facts::new(), &Policy::default()), Verdict::Accept);
        // From a plain 0 the step is measured from 1.
        let v = step_verdict("vm.swappiness", "0", "60", &[], &Facts::new(), &Policy::default());
        assert!(matches!(&v, Verdict::Clamp { to, .. } if to == "8"), "{v:?}");
    }

    #[test]
    fn step_limit_holds_when_leaving_an_off_sentinel() {
        // Off means nothing in force: turning a feature on starts from the bottom of the scale.
        let v = step_verdict("vm.watermark_boost_factor", "0", "30000", &[], &Facts::new(), &open_policy(8.0));
        assert!(matches!(&v, Verdict::Clamp { to, .. } if to == "8"), "{v:?}");
        // Turning it off is a mode switch the KB documents, not a step.
        assert_eq!(step_verdict("vm.watermark_boost_factor", "15000", "0", &[], &Facts::new(), &open_policy(8.0)), Verdict::Accept);
        assert_eq!(step_verdict("kernel.numa_balancing", "1", "0", &[], &Facts::new(), &Policy::default()), Verdict::Accept);
        // auto with a known value: tcp_orphan_retries 0 is 8, so 0 → 1 is ÷8 and 0 → 127 is out of reach.
        assert!(matches!(step_verdict("net.ipv4.tcp_orphan_retries", "0", "1", &[], &Facts::new(), &open_policy(8.0)), Verdict::Accept));
    }

    #[test]
    fn writing_a_partner_sentinel_is_refused_not_taken_as_a_mode_switch() {
        let v = step_verdict("vm.overcommit_kbytes", "1048576", "0", &[("vm.overcommit_ratio", "0")], &Facts::new(), &open_policy(8.0));
        assert!(matches!(&v, Verdict::Refuse { rule, reason } if rule == "sentinel" && reason.contains("write vm.overcommit_ratio instead")), "{v:?}");
    }

    #[test]
    fn checked_change_shows_the_live_value_not_the_plan_from() {
        let kb = Kb::embedded().unwrap();
        let mut plan = Plan::new("test", Intent::Latency);
        plan.changes = vec![Change { from: Some("33".into()), ..change("vm.swappiness", "10") }, Change { from: Some("128".into()), ..change("net.core.somaxconn", "256") }];
        let current: BTreeMap<String, Value> = [("vm.swappiness", "60"), ("net.core.somaxconn", "128")].into_iter().map(|(k, v)| (k.to_string(), Value::from_kernel(v))).collect();
        let c = check(&plan, &kb, &Policy::default(), &current);
        assert_eq!((c.changes[0].change.from.as_deref(), c.changes[0].plan_from.as_deref()), (Some("60"), Some("33")));
        assert_eq!((c.changes[1].change.from.as_deref(), c.changes[1].plan_from.as_deref()), (Some("128"), None));
    }

    #[test]
    fn invariant_holds_when_dirty_ratio_reads_zero_because_dirty_bytes_is_in_force() {
        // dirty_bytes ≈ 1 % of 4 GiB dirtyable is in force (dirty_ratio reads 0): a background ratio of 5 % is above it.
        let facts = Facts::from([(crate::kb::entry::Fact::DirtyableBytes, 4.0 * 1024.0 * 1024.0 * 1024.0)]);
        let others = [("vm.dirty_ratio", "0"), ("vm.dirty_bytes", "42949673"), ("vm.dirty_background_bytes", "0")];
        let v = step_verdict("vm.dirty_background_ratio", "1", "5", &others, &facts, &Policy::default());
        assert!(matches!(&v, Verdict::Reject { rule, reason } if rule == "invariant" && reason.contains("5 vs 1.00")), "{v:?}");
        // Without the fact the comparison cannot be made and is left to the KB's `unless_to`, as before.
        assert_eq!(step_verdict("vm.dirty_background_ratio", "1", "5", &others, &Facts::new(), &Policy::default()), Verdict::Accept);
    }

    #[test]
    fn hard_violations_abort_the_whole_plan() {
        for (changes, rule) in [
            (vec![("vm.swappiness", "10"), ("kernel.randomize_va_space", "0")], "never-touch"),
            (vec![("vm.swappiness", "10"), ("vm.drop_caches", "3")], "never-touch"),
            (vec![("vm.swappiness", "300")], "range"),
            (vec![("vm.swappiness", "010")], "range"),
            (vec![("vm.swappiness", "300 # comment")], "range"),
            (vec![("net.ipv4.tcp_rmem", "8192 16384 abc")], "range"),
            (vec![("net.ipv4.tcp_rmem", "8192 4096 2048")], "range"),
            (vec![("vm.made_up", "1")], "unknown-key"),
            (vec![("../../etc/passwd", "1")], "key-syntax"),
            (vec![("net.core.somaxconn\nkernel.x", "1")], "key-syntax"),
            (vec![("vm.dirty_background_ratio", "30")], "invariant"),
            (vec![("vm.dirty_ratio", "12"), ("vm.dirty_bytes", "1000000")], "mutually-exclusive"),
            (vec![("vm.vfs_cache_pressure", "50"), ("vm.vfs_cache_pressure_denom", "200")], "conflict"),
        ] {
            let c = check_plan(&changes);
            let aborted = c.aborted.clone().unwrap_or_else(|| panic!("{changes:?} not aborted"));
            assert!(aborted.contains(&format!("[{rule}]")), "{changes:?}: {aborted}");
            assert!(c.writes().is_empty());
        }
    }
}
