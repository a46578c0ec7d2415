//! Snapshot tests of plans, one telemetry input per file under tests/plans/:
//! edges at work (co-tuning, refusal of conflicting evidence), conditions,
//! sizing, and unavailable keys explained. Each snapshot holds the findings,
//! the proposed changes with rationale, what was left out and why, and the
//! guardrail verdicts under a policy that allows every KB key of low and
//! medium risk.

use semantos::kb::{Intent, Kb};
use semantos::reasoning::{Context, diagnose, recommend};
use semantos::safety::{Policy, check};
use semantos::sysctl::Value;
use semantos::telemetry::{HostFacts, Snapshot, Window};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    intent: Intent,
    seconds: u64,
    current: BTreeMap<String, String>,
    before: BTreeMap<String, f64>,
    after: BTreeMap<String, f64>,
}

fn snapshot(t: u64, metrics: &BTreeMap<String, f64>) -> Snapshot {
    let mut s = Snapshot::new(HostFacts { hostname: "h".into(), kernel_release: "6.18.0".into(), ..Default::default() }, t);
    for (k, v) in metrics {
        s.set(k.clone(), *v);
    }
    s
}

#[test]
fn plans_for_each_telemetry_input() {
    let kb = Kb::embedded().unwrap();
    let policy = Policy { whitelist: vec!["*".into()], ..Policy::default() };
    insta::glob!("../plans", "*.yaml", |path| {
        let case: Case = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let before = snapshot(0, &case.before);
        let after = snapshot(case.seconds * 1000, &case.after);
        let findings = diagnose(&before, &after, &kb);
        let current: BTreeMap<String, Value> = case.current.iter().map(|(k, v)| (k.clone(), Value::from_kernel(v))).collect();
        let ctx = Context { kb: &kb, intent: case.intent, current: &current, window: Window::new(&before, &after) };
        let plan = recommend(&findings, &ctx);
        let checked = check(&plan, &kb, &policy, &current);
        let view = serde_json::json!({
            "findings": findings.findings.iter().map(|f| serde_json::json!({"id": f.id, "evidence": f.evidence.iter().map(|e| e.describe()).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            "changes": checked.changes.iter().map(|c| serde_json::json!({
                "key": c.change.key, "from": c.change.from, "to": c.change.to, "verdict": c.verdict.label(),
                "verdict_reason": c.verdict.reason(), "rationale": c.change.rationale, "finding_ids": c.change.finding_ids,
            })).collect::<Vec<_>>(),
            "considered": plan.considered.iter().map(|c| format!("{} ({}): {}", c.key, c.finding_id, c.reason)).collect::<Vec<_>>(),
            "aborted": checked.aborted,
        });
        insta::assert_json_snapshot!(view);
    });
}
