//! The fleet gate before any connection: every change of a plan is checked
//! on the controller against the KB and the policy (key syntax, KB entry,
//! never-touch, range, whitelist, risk, exclusive pairs), and every value
//! must be made only of characters no sysctl needs quoting for. A plan that
//! fails here never reaches a host, a command line, a playbook or a TuneD
//! profile. Pure.
//!
//! Each host checks the plan again against its own current values when it
//! applies it (step limits and invariants need those values).

use crate::kb::Kb;
use crate::kb::entry::EdgeKind;
use crate::reasoning::Plan;
use crate::safety::{self, Policy, Verdict};
use crate::sysctl::{SysctlKey, Value};
use std::collections::BTreeMap;
use std::fmt;

/// One validated write: the key and the canonical value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The key.
    pub key: SysctlKey,
    /// The canonical value (decimal integers separated by one space, or a plain word).
    pub value: Value,
}

/// Every reason a plan was refused, one per change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `key: reason` lines.
    pub problems: Vec<String>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the plan was refused before any connection; nothing was sent to any host:")?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

/// Whether `c` may appear in a value we send anywhere: sysctl values are
/// numbers, words (`bbr`, `fq_codel`) and, rarely, paths or lists.
fn value_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.' | ',' | ':' | '/' | '+' | '@' | '=')
}

/// Shell- and template-safe text: letters, digits and `_-.,:/+@=` and spaces only.
pub fn safe_value_text(v: &str) -> Result<(), String> {
    match v.chars().find(|c| !value_char_ok(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "contains {}; a fleet rollout only sends values made of letters, digits, spaces and _-.,:/+@= (so no value can reach a shell, a playbook template or a TuneD variable)",
            match c {
                '\n' => "a newline".to_string(),
                '\r' => "a carriage return".to_string(),
                '\t' => "a tab".to_string(),
                c if c.is_control() => "a control character".to_string(),
                c => format!("the character {c:?}"),
            }
        )),
    }
}

/// Whether a change is advice for the operator only (an uncertain LLM proposal).
/// Read through serde so plans without the field keep their meaning.
fn advice_only(c: &crate::reasoning::Change) -> bool {
    serde_json::to_value(c).ok().and_then(|v| v.get("advice_only").and_then(|a| a.as_bool())).unwrap_or(false)
}

/// Checks `plan` for a fleet; returns the writes every host is asked to make.
pub fn validate(plan: &Plan, kb: &Kb, policy: &Policy) -> Result<Vec<Target>, Refused> {
    let mut problems = Vec::new();
    if plan.changes.is_empty() {
        problems.push("the plan has no change".to_string());
    }
    // The guardrails need a current value per key to get past the existence
    // test; the target itself stands in (so step limits, which need the
    // host's real value, are left to each host).
    let stand_in: BTreeMap<String, Value> = plan
        .changes
        .iter()
        .filter_map(|c| {
            let k = SysctlKey::parse(&c.key).ok()?;
            Some((k.to_string(), Value::from_kernel(&c.to)))
        })
        .collect();
    let checked = safety::check(plan, kb, policy, &stand_in);
    let mut targets = Vec::new();
    for c in &checked.changes {
        if advice_only(&c.change) {
            // Shown to the operator, never applied automatically: not rolled out either.
            continue;
        }
        let key = &c.change.key;
        let shown = format!("{key:?} = {:?}", c.change.to);
        let mut ok = true;
        if let Verdict::Reject { rule, reason } | Verdict::Refuse { rule, reason } = &c.verdict {
            problems.push(format!("{shown}: [{rule}] {reason}"));
            ok = false;
        }
        if let Err(e) = safe_value_text(&c.change.to) {
            problems.push(format!("{shown}: [value-characters] the value {e}"));
            ok = false;
        }
        if !ok {
            continue;
        }
        let (Ok(k), Some(p)) = (SysctlKey::parse(key), kb.param(key)) else { continue };
        match crate::kb::validate::check_value(p, &c.change.to) {
            Ok(value) => targets.push(Target { key: k, value }),
            Err(e) => problems.push(format!("{shown}: [range] {e}")),
        }
    }
    for e in &kb.edges {
        if e.kind == EdgeKind::MutuallyExclusive && stand_in.contains_key(&e.from) && stand_in.contains_key(&e.to) {
            problems.push(format!("{} and {}: [mutually-exclusive] both are changed, but writing one zeroes the other: {}", e.from, e.to, e.note));
        }
    }
    if problems.is_empty() { Ok(targets) } else { Err(Refused { problems }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::Intent;
    use crate::reasoning::Change;

    fn plan(changes: &[(&str, &str)]) -> Plan {
        let mut p = Plan::new("test", Intent::Latency);
        p.changes = changes.iter().map(|(k, v)| serde_json::from_value::<Change>(serde_json::json!({"key": k, "to": v, "rationale": ""})).unwrap()).collect();
        p
    }

    fn policy() -> Policy {
        Policy { whitelist: vec!["net.core.somaxconn".into(), "net.ipv4.tcp_*".into()], ..Policy::default() }
    }

    fn check(changes: &[(&str, &str)], expected: Result<&[(&str, &str)], &[&str]>) {
        let kb = Kb::embedded().unwrap();
        match (validate(&plan(changes), &kb, &policy()), expected) {
            (Ok(t), Ok(want)) => assert_eq!(t.iter().map(|t| (t.key.to_string(), t.value.to_string())).collect::<Vec<_>>(), want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()),
            (Err(r), Err(frags)) => {
                let text = r.to_string();
                for f in frags {
                    assert!(text.contains(f), "{changes:?}: {f:?} missing from:\n{text}");
                }
            }
            (got, want) => panic!("{changes:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn a_clean_plan_gives_canonical_targets() {
        check(&[("net.core.somaxconn", "4096"), ("net.ipv4.tcp_slow_start_after_idle", "0")], Ok(&[("net.core.somaxconn", "4096"), ("net.ipv4.tcp_slow_start_after_idle", "0")]));
    }

    #[test]
    fn injection_attempts_are_refused_with_the_key_and_value() {
        check(&[("net.core.somaxconn; reboot", "1")], Err(&["\"net.core.somaxconn; reboot\"", "[key-syntax]", "nothing was sent"]));
        check(&[("net.core.somaxconn", "$(touch /tmp/pwned)")], Err(&["\"$(touch /tmp/pwned)\"", "[range]"]));
        check(&[("net.core.somaxconn", "`reboot`")], Err(&["[range]"]));
        check(&[("net.core.somaxconn", "4096\nkernel.x = 1")], Err(&["newline"]));
        check(&[("net.ipv4.tcp_congestion_control", "$(reboot)")], Err(&["[value-characters]", "the character '$'"]));
        check(&[("net.ipv4.tcp_congestion_control", "{{ lookup('pipe','id') }}")], Err(&["the character '{'"]));
        check(&[("vm.swappiness", "10")], Err(&["[whitelist]"]));
        check(&[("kernel.randomize_va_space", "0")], Err(&["[never-touch]"]));
        check(&[], Err(&["no change"]));
    }
}
