//! Plans: the proposed changes, each with its rationale and evidence. A plan
//! is a file users can read, edit and hand back (`--plan FILE`), in a
//! versioned JSON format or in sysctl.d syntax.

use crate::kb::{Effect, Intent};
use crate::sysctl::{SysctlKey, SysctlStore, sysctld};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of the on-disk plan format.
pub const PLAN_SCHEMA_VERSION: u32 = 1;

/// One proposed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Dotted key.
    pub key: String,
    /// Value before the change, as read from the store (absent when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Proposed value.
    pub to: String,
    /// Why, in words: the symptom, what the key controls, why this value.
    pub rationale: String,
    /// The measurements the change rests on, one line each for people.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// The same measurements as data (metric, how it was measured, value, threshold crossed),
    /// for tools; absent in plans written before it existed and in hand-written ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<crate::reasoning::Evidence>,
    /// IDs of the findings that call for it.
    #[serde(default)]
    pub finding_ids: Vec<String>,
    /// The KB entry it rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb_key: Option<String>,
    /// When the change takes effect.
    #[serde(default)]
    pub effect: Effect,
    /// Uncertainty u ∈ [0, 1] of an LLM-proposed change (1 − the share of
    /// samples that agree on it); absent for deterministic engines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty: Option<f64>,
    /// Shown to the operator, never applied automatically (an LLM change
    /// whose uncertainty reached the threshold τ). The guardrails still
    /// check it; `CheckedPlan::writes` leaves it out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub advice_only: bool,
}

/// A change the engine considered and did not propose, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consideration {
    /// Dotted key.
    pub key: String,
    /// Finding that led to it.
    pub finding_id: String,
    /// Why it was not proposed.
    pub reason: String,
}

/// A set of proposed changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Format version.
    pub schema_version: u32,
    /// What produced it (`rules`, `file:plan.conf`, `llm:model`).
    pub created_by: String,
    /// The intent it serves.
    pub intent: Intent,
    /// Digest of the snapshot it was derived from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_digest: Option<String>,
    /// Proposed changes, in apply order.
    pub changes: Vec<Change>,
    /// What was considered and left out, with reasons.
    #[serde(default)]
    pub considered: Vec<Consideration>,
}

impl Plan {
    /// An empty plan.
    pub fn new(created_by: impl Into<String>, intent: Intent) -> Self {
        Self { schema_version: PLAN_SCHEMA_VERSION, created_by: created_by.into(), intent, snapshot_digest: None, changes: Vec::new(), considered: Vec::new() }
    }

    /// The change for `key`, if any.
    pub fn change(&self, key: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.key == key)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plans serialise")
    }

    /// Parses a JSON plan; `file` names the source in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Plan> {
        let v: serde_json::Value = serde_json::from_str(text).with_context(|| format!("{file}: not valid JSON"))?;
        match v.get("schema_version") {
            Some(n) if n.as_u64() == Some(PLAN_SCHEMA_VERSION as u64) => {}
            Some(n) if n.is_u64() => bail!("{file}: plan schema_version {n} is not supported; this build reads version {PLAN_SCHEMA_VERSION}"),
            Some(n) => bail!("{file}: plan schema_version {n} is not a whole number; write \"schema_version\": {PLAN_SCHEMA_VERSION}"),
            None => bail!("{file}: plan has no schema_version (expected {PLAN_SCHEMA_VERSION})"),
        }
        // From the text, not from `v`: a JSON object collapses a repeated field to its last
        // value, and `"to": "40", "to": "200"` must be an error, not a silent 200.
        let plan: Plan = serde_json::from_str(text).with_context(|| format!("{file}: not a valid plan"))?;
        let mut seen: Vec<(SysctlKey, &str)> = Vec::new();
        for c in &plan.changes {
            let key = SysctlKey::parse(&c.key).with_context(|| format!("{file}: change of {:?}", c.key))?;
            // Two spellings of one key (`vm.swappiness`, `vm/swappiness`) are one key.
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                bail!("{file}: {key} is changed twice (as {first:?} and {:?}); a plan names each key once", c.key);
            }
            if let Some(u) = c.uncertainty
                && !(0.0..=1.0).contains(&u)
            {
                bail!("{file}: change of {key}: uncertainty {u} is outside [0, 1]");
            }
            seen.push((key, &c.key));
        }
        Ok(plan)
    }

    /// Loads a plan file: JSON (`.json`, or text starting with `{`) or sysctl.d syntax; `from` values are read from `store`.
    pub fn load(path: &Path, intent: Intent, store: &dyn SysctlStore) -> Result<Plan> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading plan {}", path.display()))?;
        Plan::from_text(&text, &path.display().to_string(), path.extension().is_some_and(|e| e == "json"), intent, store)
    }

    /// A plan from its text (`--plan -` reads standard input): JSON when `json` or when it opens
    /// with `{`, else sysctl.d syntax; `file` names the source in messages.
    pub fn from_text(text: &str, file: &str, json: bool, intent: Intent, store: &dyn SysctlStore) -> Result<Plan> {
        let file = file.to_string();
        if json || text.trim_start().starts_with('{') {
            return Plan::from_json(text, &file);
        }
        let mut plan = Plan::new(format!("file:{file}"), intent);
        for a in sysctld::parse(text, &file)? {
            if plan.change(&a.key.to_string()).is_some() {
                bail!("{file}:{}: {} is assigned twice; a plan names each key once", a.line, a.key);
            }
            plan.changes.push(Change {
                key: a.key.to_string(),
                from: store.read(&a.key).ok().map(|v| v.to_string()),
                to: a.value.clone(),
                rationale: format!("requested in {file}:{}", a.line),
                evidence: Vec::new(),
                measurements: Vec::new(),
                finding_ids: Vec::new(),
                kb_key: None,
                effect: Effect::Live,
                uncertainty: None,
                advice_only: false,
            });
        }
        Ok(plan)
    }
}

/// The known key nearest to `key` by edit distance, when it is near enough to be a typo of it
/// (one edit per ten characters, at least one, at most three); ties go to the first candidate.
pub fn did_you_mean<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (1 + key.chars().count() / 10).min(3);
    known.into_iter().map(|k| (edit_distance(key, k), k)).filter(|&(d, _)| d > 0 && d <= limit).min_by_key(|&(d, _)| d).map(|(_, k)| k)
}

/// What to tell a user who named `key`, which `known` does not hold: the near key, else where the
/// list of keys is.
pub fn unknown_key_hint<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(key, known) {
        Some(k) => format!("did you mean {k}?"),
        None => "`semantos kb list` shows the keys the knowledge base knows".into(),
    }
}

/// Levenshtein distance over characters (insertions, deletions, substitutions).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diag + usize::from(ca != *cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysctl::store::MemStore;
    use crate::sysctl::Value;

    #[test]
    fn a_misspelt_key_gets_the_near_one_and_a_far_one_gets_none() {
        let known = ["vm.swappiness", "vm.dirty_ratio", "net.core.somaxconn", "net.ipv4.tcp_rmem"];
        assert_eq!(did_you_mean("vm.swapiness", known), Some("vm.swappiness"));
        assert_eq!(did_you_mean("net.core.somaxcon", known), Some("net.core.somaxconn"));
        assert_eq!(did_you_mean("net.ipv4.tcp_rmen", known), Some("net.ipv4.tcp_rmem"));
        assert_eq!(did_you_mean("vm.made_up", known), None, "too far from every key");
        assert_eq!(did_you_mean("vm.swappiness", known), None, "a known key is not a typo");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert!(unknown_key_hint("vm.nothing_like_it", known).contains("semantos kb list"));
    }

    #[test]
    fn json_round_trip_and_version_check() {
        let mut p = Plan::new("rules", Intent::Latency);
        p.changes.push(Change { key: "vm.swappiness".into(), from: Some("60".into()), to: "10".into(), rationale: "r".into(), evidence: vec![], measurements: vec![], finding_ids: vec![], kb_key: None, effect: Effect::Live, uncertainty: None, advice_only: false });
        let back = Plan::from_json(&p.to_json(), "p.json").unwrap();
        assert_eq!(back, p);
        let e = Plan::from_json(&p.to_json().replace("\"schema_version\": 1", "\"schema_version\": 9"), "p.json").unwrap_err();
        assert!(e.to_string().contains("schema_version 9 is not supported"), "{e}");
        let e = Plan::from_json(&p.to_json().replace("\"rationale\"", "\"colour\": 1, \"rationale\""), "p.json").unwrap_err();
        assert!(format!("{e:#}").contains("unknown field `colour`"), "{e:#}");
        let e = Plan::from_json(&p.to_json().replace("vm.swappiness", "../../etc/passwd"), "p.json").unwrap_err();
        assert!(format!("{e:#}").contains("`..`"), "{e:#}");
    }

    #[test]
    fn repeated_json_field_is_refused_not_last_wins() {
        // Before: parsing went through a serde_json::Value, whose map keeps the last of two `to`s.
        let t = r#"{"schema_version": 1, "created_by": "x", "intent": "latency", "changes": [{"key": "vm.swappiness", "to": "40", "to": "200", "rationale": "r"}]}"#;
        let e = format!("{:#}", Plan::from_json(t, "p.json").unwrap_err());
        assert!(e.contains("p.json: not a valid plan") && e.contains("duplicate field `to`"), "{e}");
    }

    #[test]
    fn key_changed_twice_is_refused_in_either_spelling() {
        // Before: a JSON plan could name a key twice (the sysctl.d reader already refused it).
        let two = |a: &str, b: &str| format!(r#"{{"schema_version": 1, "created_by": "x", "intent": "latency", "changes": [{{"key": "{a}", "to": "40", "rationale": "r"}}, {{"key": "{b}", "to": "200", "rationale": "r"}}]}}"#);
        let e = Plan::from_json(&two("vm.swappiness", "vm.swappiness"), "p.json").unwrap_err().to_string();
        assert!(e.contains("p.json: vm.swappiness is changed twice"), "{e}");
        let e = Plan::from_json(&two("vm.swappiness", "vm/swappiness"), "p.json").unwrap_err().to_string();
        assert!(e.contains("changed twice (as \"vm.swappiness\" and \"vm/swappiness\")"), "{e}");
    }

    #[test]
    fn schema_version_of_the_wrong_type_is_named_not_missing() {
        // Before: "plan has no schema_version" for a version that was there, as "1" or 1.0.
        let p = Plan::new("rules", Intent::Latency).to_json();
        for (v, frag) in [("\"1\"", "schema_version \"1\" is not a whole number"), ("1.0", "schema_version 1.0 is not a whole number"), ("-1", "schema_version -1 is not a whole number")] {
            let e = Plan::from_json(&p.replace("\"schema_version\": 1", &format!("\"schema_version\": {v}")), "p.json").unwrap_err().to_string();
            assert!(e.contains(frag), "{v}: {e}");
        }
    }

    #[test]
    fn uncertainty_outside_zero_one_is_refused() {
        let t = r#"{"schema_version": 1, "created_by": "x", "intent": "latency", "changes": [{"key": "vm.swappiness", "to": "40", "rationale": "r", "uncertainty": 7.5}]}"#;
        let e = Plan::from_json(t, "p.json").unwrap_err().to_string();
        assert!(e.contains("uncertainty 7.5 is outside [0, 1]"), "{e}");
    }

    #[test]
    fn llm_fields_are_optional_and_round_trip() {
        // A plan written before the LLM fields existed still parses, and writes none of them back.
        let old = r#"{"schema_version": 1, "created_by": "rules", "intent": "latency", "changes": [{"key": "vm.swappiness", "to": "10", "rationale": "r"}]}"#;
        let p = Plan::from_json(old, "old.json").unwrap();
        assert_eq!((p.changes[0].uncertainty, p.changes[0].advice_only), (None, false));
        assert!(p.changes[0].measurements.is_empty() && !p.to_json().contains("measurements"));
        assert!(!p.to_json().contains("advice_only") && !p.to_json().contains("uncertainty"));
        let mut p = p;
        p.changes[0].uncertainty = Some(2.0 / 3.0);
        p.changes[0].advice_only = true;
        assert_eq!(Plan::from_json(&p.to_json(), "p.json").unwrap(), p);
    }

    #[test]
    fn sysctl_d_plan_reads_from_values() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("plan.conf");
        std::fs::write(&f, "# mine\nvm.swappiness = 10\n").unwrap();
        let store = MemStore::new([(SysctlKey::parse("vm.swappiness").unwrap(), Value::int(60))]);
        let p = Plan::load(&f, Intent::Latency, &store).unwrap();
        assert_eq!(p.changes[0].from.as_deref(), Some("60"));
        assert_eq!(p.changes[0].to, "10");
        std::fs::write(&f, "vm.swappiness = 10\nvm.swappiness = 20\n").unwrap();
        assert!(Plan::load(&f, Intent::Latency, &store).unwrap_err().to_string().contains(":2: vm.swappiness is assigned twice"));
    }
}
