//! The user's path, unchanged: `diagnose → recommend → guardrails`, fed with
//! the live telemetry of the bench's namespaces. The engine is told nothing
//! about the scenario: it sees two snapshots, the knowledge base, the intent
//! and the values read inside the namespace.
//!
//! The policy is the bench's own unless the user gives one: every KB entry
//! of low or medium risk whose scope is the network namespace. Whatever the
//! policy, the bench writes only per-namespace keys: a change of any other
//! key is refused here and again by the store at the moment of writing.

use super::target::Target;
use crate::kb::{Intent, Kb, Risk, Scope};
use crate::reasoning::{self, Context, Findings, Plan, Reasoner, RulesEngine};
use crate::safety::{self, CheckedPlan, Policy, Verdict};
use crate::sysctl::{SysctlKey, SysctlStore, Value};
use crate::telemetry::{Snapshot, Window};
use serde::Serialize;
use std::collections::BTreeMap;

/// The bench's default policy: low- and medium-risk KB keys scoped to the network namespace.
pub fn bench_policy(kb: &Kb) -> Policy {
    let whitelist = kb.params.values().filter(|p| p.scope == Scope::Netns && matches!(p.risk, Risk::Low | Risk::Medium)).map(|p| p.key.clone()).collect();
    Policy { whitelist, max_risk: Risk::Medium, ..Policy::default() }
}

/// The policy of a scenario off the network stage: exactly the keys its target may write, of low or medium risk.
pub fn stage_policy(kb: &Kb, keys: &[String]) -> Policy {
    let whitelist = keys.iter().filter(|k| kb.param(k).is_some_and(|p| matches!(p.risk, Risk::Low | Risk::Medium))).cloned().collect();
    Policy { whitelist, max_risk: Risk::Medium, ..Policy::default() }
}

/// One line saying what a policy allows, for the report.
pub fn describe_policy(p: &Policy, kb: &Kb, default: bool) -> String {
    let n = kb.params.keys().filter(|k| p.allows(k) && !p.forbids(k)).count();
    format!(
        "{}: {n} KB keys allowed, risk at most {}, at most ×{} per change, {} change(s) per batch",
        if default { "bench default — KB entries of low and medium risk whose scope is netns" } else { "user policy (the bench still writes only per-namespace keys)" },
        format!("{:?}", p.max_risk).to_lowercase(),
        p.max_step_ratio,
        p.batch_size
    )
}

/// Values of every KB key the store can read (never-risk entries are not read).
pub fn current_values(store: &dyn SysctlStore, kb: &Kb) -> BTreeMap<String, Value> {
    kb.params
        .iter()
        .filter(|(_, p)| p.risk != Risk::Never)
        .filter_map(|(k, _)| SysctlKey::parse(k).ok())
        .filter_map(|k| store.read(&k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// What the pipeline decided.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Symptoms found.
    pub findings: Findings,
    /// The plan after the guardrails.
    pub checked: CheckedPlan,
}

impl Decision {
    /// The writes the bench performs: accepted and clamped changes, as (key, value).
    pub fn writes(&self) -> Vec<(String, String)> {
        self.checked.writes().into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

/// Diagnoses the window, recommends (or takes `plan`), and checks the plan against `policy`; a change
/// `target` may not write is refused (`bench-scope`).
pub fn decide(kb: &Kb, intent: Intent, policy: &Policy, target: &Target, before: &Snapshot, after: &Snapshot, current: &BTreeMap<String, Value>, plan: Option<Plan>) -> Decision {
    let findings = reasoning::diagnose(before, after, kb);
    let plan = plan.unwrap_or_else(|| {
        let ctx = Context { kb, intent, current, window: Window::new(before, after) };
        RulesEngine.recommend(&findings, &ctx).expect("the rule engine does not fail")
    });
    // The bench's namespaces are child namespaces: a key they cannot write is refused as in any child.
    let facts = safety::Facts::new().in_netns(crate::telemetry::netns::NetnsPlace::Child);
    let mut checked = safety::check_with(&plan, kb, policy, current, &facts);
    for c in &mut checked.changes {
        let refused = match kb.param(&c.change.key) {
            Some(p) => target.refuses(&c.change.key, p.scope),
            None => Some(format!("{} has no knowledge-base entry", c.change.key)),
        };
        if let (Some(reason), true) = (refused, c.write.is_some()) {
            c.verdict = Verdict::Refuse { rule: "bench-scope".into(), reason };
            c.write = None;
        }
    }
    Decision { findings, checked }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_policy_is_netns_keys_of_low_and_medium_risk() {
        let kb = Kb::embedded().unwrap();
        let p = bench_policy(&kb);
        assert!(p.allows("net.core.somaxconn") && p.allows("net.ipv4.tcp_rmem") && p.allows("net.ipv4.tcp_slow_start_after_idle"));
        assert!(!p.allows("net.core.netdev_max_backlog"), "global");
        assert!(!p.allows("net.ipv4.tcp_syncookies"), "high risk");
        assert!(!p.allows("vm.swappiness"));
        assert!(describe_policy(&p, &kb, true).contains("KB entries of low and medium risk whose scope is netns"));
    }
}
