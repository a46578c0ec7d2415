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

use crate::rollout::precheck::Target;
use crate::sysctl::sysctld;

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

    #[test]
    fn sysctl_d_round_trips_through_the_parser() {
        let text = sysctl_d(&targets(), &["plan rules\nintent latency".into()]);
        assert!(text.starts_with("# plan rules intent latency\n"), "{text}");
        let back = sysctld::parse(&text, "x.conf").unwrap();
        assert_eq!(back.iter().map(|a| (a.key.to_string(), a.value.clone())).collect::<Vec<_>>(), [("net.core.somaxconn".to_string(), "4096".to_string()), ("net.ipv4.tcp_rmem".into(), "4096 131072 6291456".into())]);
    }
}
