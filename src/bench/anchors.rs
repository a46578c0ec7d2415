//! The anchors a user would otherwise pick: TuneD's network profiles,
//! reduced to the sysctl values they set for keys that exist, writable, in a
//! network namespace. What a profile sets outside a namespace's reach
//! (global keys, read-only mirrors, keys absent there) is listed as a note,
//! never silently dropped.

use crate::kb::{Kb, Scope};
use crate::sysctl::Value;
use serde::Serialize;
use std::collections::BTreeMap;

/// How a profile sets a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// This value.
    Set(&'static str),
    /// At least this number (TuneD's `>` prefix): left alone when already larger.
    AtLeast(i64),
}

/// A TuneD profile as the sysctls it sets (its `include`d base profile merged in).
#[derive(Debug, Clone)]
pub struct Profile {
    /// Arm name (`tuned:network-throughput`).
    pub name: &'static str,
    /// Where the values come from.
    pub source: &'static str,
    /// Key and rule.
    pub settings: &'static [(&'static str, Rule)],
}

/// TuneD's `network-throughput` (base `throughput-performance`) and `network-latency`.
pub const TUNED: [Profile; 2] = [
    Profile {
        name: "tuned:network-throughput",
        source: "TuneD network-throughput with its base throughput-performance",
        settings: &[
            ("net.core.somaxconn", Rule::AtLeast(2048)),
            ("net.ipv4.tcp_rmem", Rule::Set("4096 131072 16777216")),
            ("net.ipv4.tcp_wmem", Rule::Set("4096 16384 16777216")),
            ("net.ipv4.tcp_slow_start_after_idle", Rule::Set("0")),
            ("net.ipv4.tcp_notsent_lowat", Rule::Set("131072")),
        ],
    },
    Profile {
        name: "tuned:network-latency",
        source: "TuneD network-latency",
        settings: &[("net.ipv4.tcp_fastopen", Rule::Set("3")), ("net.core.busy_read", Rule::Set("50")), ("net.core.busy_poll", Rule::Set("50"))],
    },
];

/// A profile resolved against one namespace's current values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resolved {
    /// Writes that change something, in profile order.
    pub writes: Vec<(String, String)>,
    /// What the profile sets that is not written here, and why.
    pub notes: Vec<String>,
}

/// Resolves `p` against `current` (the namespace's values of the KB keys it can read).
pub fn resolve(p: &Profile, kb: &Kb, current: &BTreeMap<String, Value>) -> Resolved {
    let mut out = Resolved::default();
    for (key, rule) in p.settings {
        let want = match rule {
            Rule::Set(v) => v.to_string(),
            Rule::AtLeast(n) => format!(">= {n}"),
        };
        let scope = kb.param(key).map(|p| p.scope);
        let Some(cur) = current.get(*key) else {
            let why = match scope {
                Some(Scope::Global) => "a global key, absent in a network namespace",
                Some(Scope::NetnsReadOnly) => "read-only in a network namespace (a mirror of the global value)",
                None => "not in the knowledge base",
                _ => "absent in this network namespace",
            };
            out.notes.push(format!("{key} = {want}: not applied ({why})"));
            continue;
        };
        if scope != Some(Scope::Netns) {
            out.notes.push(format!("{key} = {want}: not applied (not a per-namespace key)"));
            continue;
        }
        let to = match rule {
            Rule::Set(v) => Value::from_kernel(v),
            Rule::AtLeast(n) => match cur.as_int() {
                Some(c) if c >= *n => {
                    out.notes.push(format!("{key} {want}: already {c}"));
                    continue;
                }
                _ => Value::int(*n),
            },
        };
        if &to == cur {
            out.notes.push(format!("{key} = {to}: already set"));
            continue;
        }
        out.writes.push((key.to_string(), to.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_keep_what_a_namespace_can_take_and_say_what_it_cannot() {
        let kb = Kb::embedded().unwrap();
        let cur: BTreeMap<String, Value> = [
            ("net.core.somaxconn", "128"),
            ("net.ipv4.tcp_rmem", "4096 131072 6291456"),
            ("net.ipv4.tcp_wmem", "4096 16384 4194304"),
            ("net.ipv4.tcp_slow_start_after_idle", "0"),
            ("net.ipv4.tcp_notsent_lowat", "4294967295"),
            ("net.ipv4.tcp_fastopen", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from_kernel(v)))
        .collect();
        let thr = resolve(&TUNED[0], &kb, &cur);
        assert_eq!(thr.writes[0], ("net.core.somaxconn".to_string(), "2048".to_string()));
        assert!(thr.writes.iter().any(|(k, v)| k == "net.ipv4.tcp_rmem" && v == "4096 131072 16777216"));
        assert!(thr.notes.iter().any(|n| n.contains("tcp_slow_start_after_idle = 0: already set")), "{:?}", thr.notes);
        let lat = resolve(&TUNED[1], &kb, &cur);
        assert_eq!(lat.writes, vec![("net.ipv4.tcp_fastopen".to_string(), "3".to_string())]);
        assert!(lat.notes.iter().any(|n| n.starts_with("net.core.busy_poll = 50: not applied (a global key")), "{:?}", lat.notes);
    }
}
