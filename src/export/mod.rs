//! Exporters: a validated plan rendered for the tools sites already run —
//! an Ansible playbook (`ansible.posix.sysctl`, waves as `serial`), a TuneD
//! profile, a sysctl.d drop-in, and an OpenShift Node Tuning Operator
//! `Tuned` resource. Each is a pure function from the plan's targets to
//! bytes; the CLI writes them with `apply::files::write_atomic`.
//!
//! Only the writes of a plan checked by the same guardrails as `apply`
//! (`safety::check_with`, see `cli::export_cmd`) reach an exporter, each
//! value passed through `rollout::precheck::safe_value_text`, so no value
//! holds a character TuneD would expand (`$`), Ansible would template
//! (`{`, `%`) or YAML would read as structure.

pub mod nto;
pub mod tuned;

use crate::kb::Intent;
use crate::reasoning::Plan;
use crate::rollout::precheck::Target;
use crate::sysctl::sysctld;

/// What an export may say about the plan it came from: only what the plan
/// (or the user's flag) states, never a default. A sysctl.d plan has no
/// intent of its own; its export must not claim one.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// Where the plan was read from (a path, or `standard input`).
    pub source: String,
    /// What produced the plan (`rules`, `llm:…`, `file:…`).
    pub created_by: String,
    /// The intent and who stated it (`the plan` or `--intent`), if anyone did.
    pub intent: Option<(Intent, &'static str)>,
    /// Digest of the snapshot the plan was derived from, if it says.
    pub snapshot_digest: Option<String>,
    /// Number of changes exported.
    pub changes: usize,
}

impl Provenance {
    /// What `plan`, read from `source`, states. A plan written as sysctl.d
    /// (`created_by` `file:…`, see [`Plan::load`]) states no intent: then
    /// only `flag_intent` (the user's `--intent`) is reported.
    pub fn of(plan: &Plan, source: &str, flag_intent: Option<Intent>, changes: usize) -> Provenance {
        let from_text = plan.created_by.starts_with("file:");
        let intent = match (from_text, flag_intent) {
            (false, _) => Some((plan.intent, "the plan")),
            (true, Some(i)) => Some((i, "--intent")),
            (true, None) => None,
        };
        Provenance { source: source.to_string(), created_by: plan.created_by.clone(), intent, snapshot_digest: plan.snapshot_digest.clone(), changes }
    }

    /// Header lines for a drop-in, profile or resource.
    pub fn header(&self) -> Vec<String> {
        let intent = match &self.intent {
            Some((i, "the plan")) => format!("intent {}", i.name()),
            Some((i, who)) => format!("intent {} (from {who})", i.name()),
            None => "no intent stated".to_string(),
        };
        let mut h = vec![format!("SemantOS plan from {} ({}, {intent}): {} change(s)", self.source, self.created_by, self.changes)];
        if let Some(d) = &self.snapshot_digest {
            h.push(format!("derived from telemetry snapshot {d}"));
        }
        h
    }

    /// A one-line summary naming the profile, for TuneD's `summary=`.
    pub fn summary(&self, profile: &str) -> String {
        match &self.intent {
            Some((i, _)) => format!("{profile}: SemantOS plan {} (intent {})", self.created_by, i.name()),
            None => format!("{profile}: SemantOS plan {}", self.created_by),
        }
    }
}

/// Formats `semantos export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An Ansible playbook using ansible.posix.sysctl, waves as `serial`, with a rollback play.
    Ansible,
    /// A TuneD profile (tuned.conf: `[main]` summary and a `[sysctl]` section).
    Tuned,
    /// A sysctl.d drop-in (`key = value` lines) for /etc/sysctl.d/.
    #[value(name = "sysctl.d")]
    SysctlD,
    /// An OpenShift Node Tuning Operator `Tuned` resource (tuned.openshift.io/v1).
    Nto,
}

/// One line of text for a header or summary: control characters become spaces.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// The `[sysctl]` section body shared by TuneD and NTO: `key=value` lines.
pub fn sysctl_section(targets: &[Target]) -> String {
    targets.iter().map(|t| format!("{}={}\n", t.key, t.value)).collect()
}

/// A sysctl.d drop-in; `header` lines become `# ` comments.
pub fn sysctl_d(targets: &[Target], header: &[String]) -> String {
    let header: Vec<String> = header.iter().map(|h| one_line(h)).collect();
    let entries: Vec<_> = targets.iter().map(|t| (t.key.clone(), t.value.to_string())).collect();
    sysctld::render(&header, &entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysctl::{SysctlKey, Value};

    pub(crate) fn targets() -> Vec<Target> {
        vec![
            Target { key: SysctlKey::parse("net.core.somaxconn").unwrap(), value: Value::from_kernel("4096") },
            Target { key: SysctlKey::parse("net.ipv4.tcp_rmem").unwrap(), value: Value::from_kernel("4096 131072 6291456") },
        ]
    }

    fn plan(created_by: &str, intent: Intent) -> Plan {
        Plan::new(created_by, intent)
    }

    #[test]
    fn a_sysctl_d_plan_export_claims_no_intent_it_does_not_have() {
        // Before: "intent latency" in the header of every export of a sysctl.d plan,
        // the default the loader filled in, not anything the plan said.
        let p = Provenance::of(&plan("file:plan.conf", Intent::Latency), "plan.conf", None, 2);
        assert_eq!(p.header(), ["SemantOS plan from plan.conf (file:plan.conf, no intent stated): 2 change(s)"]);
        assert_eq!(p.summary("web"), "web: SemantOS plan file:plan.conf");
        let p = Provenance::of(&plan("file:plan.conf", Intent::Latency), "plan.conf", Some(Intent::Throughput), 2);
        assert!(p.header()[0].contains("intent throughput (from --intent)"), "{:?}", p.header());
    }

    #[test]
    fn a_json_plan_export_states_the_plan_s_own_intent_and_snapshot() {
        let mut pl = plan("rules", Intent::Throughput);
        pl.snapshot_digest = Some("ab12".into());
        let p = Provenance::of(&pl, "plan.json", Some(Intent::Latency), 1);
        assert_eq!(p.header(), ["SemantOS plan from plan.json (rules, intent throughput): 1 change(s)", "derived from telemetry snapshot ab12"]);
        assert_eq!(p.summary("semantos"), "semantos: SemantOS plan rules (intent throughput)");
    }

    #[test]
    fn sysctl_d_round_trips_through_the_parser() {
        let text = sysctl_d(&targets(), &["plan rules\nintent latency".into()]);
        assert!(text.starts_with("# plan rules intent latency\n"), "{text}");
        let back = sysctld::parse(&text, "x.conf").unwrap();
        assert_eq!(back.iter().map(|a| (a.key.to_string(), a.value.clone())).collect::<Vec<_>>(), [("net.core.somaxconn".to_string(), "4096".to_string()), ("net.ipv4.tcp_rmem".into(), "4096 131072 6291456".into())]);
    }
}
