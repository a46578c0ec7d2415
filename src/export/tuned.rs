//! TuneD profiles: `tuned.conf` with a `[main]` section (summary, optional
//! parent via `include=`) and a `[sysctl]` section of `key=value` lines, as
//! tuned's sysctl plugin reads it. Pure.

use super::{one_line, sysctl_section};
use crate::rollout::precheck::Target;

/// A TuneD profile name or parent: a letter or digit, then letters, digits,
/// `-`, `_` and `.`. A profile is a directory under /etc/tuned, so `.`,
/// `..` and names starting with a dot or dash are refused.
pub fn valid_profile_name(s: &str) -> bool {
    s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Renders `tuned.conf`. `include` names a parent profile (e.g. `throughput-performance`).
pub fn profile(targets: &[Target], summary: &str, include: Option<&str>, header: &[String]) -> String {
    let mut s = String::new();
    for h in header {
        s.push_str(&format!("# {}\n", one_line(h)));
    }
    if !header.is_empty() {
        s.push('\n');
    }
    s.push_str("[main]\n");
    // TuneD expands ${...} in values: the summary is one line without `$`.
    s.push_str(&format!("summary={}\n", one_line(summary).replace('$', "")));
    if let Some(i) = include {
        s.push_str(&format!("include={i}\n"));
    }
    s.push_str("\n[sysctl]\n");
    s.push_str(&sysctl_section(targets));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_and_sysctl_sections() {
        let t = profile(&crate::export::tests::targets(), "SemantOS plan (latency)\n$x", Some("throughput-performance"), &["from plan.json".into()]);
        assert_eq!(t, "# from plan.json\n\n[main]\nsummary=SemantOS plan (latency) x\ninclude=throughput-performance\n\n[sysctl]\nnet.core.somaxconn=4096\nnet.ipv4.tcp_rmem=4096 131072 6291456\n");
        assert!(valid_profile_name("throughput-performance") && !valid_profile_name("a b") && !valid_profile_name("${f:exec:x}"));
    }

    #[test]
    fn a_profile_name_cannot_leave_the_profile_directory() {
        for bad in ["", ".", "..", ".hidden", "-x", "a/b", "a b", "x$"] {
            assert!(!valid_profile_name(bad), "{bad:?}");
        }
        assert!(valid_profile_name("semantos-web_2") && valid_profile_name("v1.2"));
    }
}
