//! Scope: whether a key can be written from the network namespace the
//! target runs in, judged from the KB `scope` and `Facts::netns`.
//!
//! The kernel serves `/proc/sys/net` per network namespace; everything else
//! under `/proc/sys` ignores the network namespace. So, in a child network
//! namespace:
//! * a `net.` key of scope `netns` is the namespace's own: fine;
//! * a `net.` key of scope `netns_read_only` is a read-only mirror of the
//!   host's value and one of scope `global` is absent: the write cannot
//!   happen here (EACCES, or no such file). It is refused, never attempted,
//!   and the message says how to set it on the host;
//! * any other key (`vm.`, `kernel.`, `fs.`) is the host's (or another
//!   namespace's) value: the change goes through, with a warning that it is
//!   not confined to this network namespace.
//!
//! Where the namespace is unknown, a `net.` key that would be refused in a
//! child gets a warning instead. Pure: the namespace arrives in `Facts`.

use super::facts::Facts;
use crate::kb::{Param, Scope};
use crate::sysctl::{SysctlKey, Value, sysctld};
use crate::telemetry::netns::NetnsPlace;

/// The verdict rule a scope refusal carries (`refuse [scope]`).
pub const RULE: &str = "scope";

/// Whether `key` is served per network namespace (the `/proc/sys/net` tree).
fn in_net_tree(key: &str) -> bool {
    key.starts_with("net.")
}

/// Why a `net.` key cannot be written from a child namespace; None when it can.
fn unwritable_in_child(p: &Param) -> Option<&'static str> {
    match p.scope {
        Scope::NetnsReadOnly => Some("read-only in a child network namespace (KB scope netns_read_only: it mirrors the host's value)"),
        Scope::Global => Some("absent from a child network namespace (KB scope global: one value for the whole host)"),
        _ => None,
    }
}

/// Why a change of `key` to `to` cannot be written from here (the reason of a `refuse [scope]`); None when it can (or the namespace is not judged).
pub fn refusal(key: &str, p: &Param, to: &Value, facts: &Facts) -> Option<String> {
    if facts.netns != Some(NetnsPlace::Child) || !in_net_tree(key) {
        return None;
    }
    let why = unwritable_in_child(p)?;
    let cmd = match &facts.host_plan {
        Some(path) => format!("`semantos apply --plan {}` (this run wrote the changes refused for their scope there; it holds `{key} = {to}`)", path.display()),
        None => format!("`semantos apply --plan FILE` with the line `{key} = {to}` in FILE"),
    };
    Some(format!("{key} is {why}, and this runs in a child network namespace: never attempted here. Set it on the host (initial namespace): {cmd}"))
}

/// A warning for a change that is allowed but reaches beyond this network namespace, or whose fate here is unknown.
pub fn warning(key: &str, p: &Param, facts: &Facts) -> Option<String> {
    let place = facts.netns.as_ref()?;
    match place {
        NetnsPlace::Initial => None,
        NetnsPlace::Child if in_net_tree(key) => None,
        NetnsPlace::Child => Some(match p.scope {
            Scope::Global => format!("{key} is host-wide (KB scope global): a network namespace does not isolate it, so this changes it for the whole host, not only this namespace"),
            other => format!("{key} is not per network namespace (KB scope {}): unless this process also has that namespace of its own, this changes the host's value", other.name()),
        }),
        NetnsPlace::Unknown(why) if in_net_tree(key) => {
            let w = unwritable_in_child(p)?;
            Some(format!("could not tell which network namespace this runs in ({why}); if it is a child one, {key} is {w} and the write will fail and be rolled back"))
        }
        NetnsPlace::Unknown(_) => None,
    }
}

/// Changes refused for their scope (`CheckedPlan::refused_for_scope`) as a sysctl.d plan to run on the host; None when there are none.
pub fn host_plan(refused: &[(String, String)]) -> Option<String> {
    let entries: Vec<(SysctlKey, String)> = refused.iter().filter_map(|(k, v)| Some((SysctlKey::parse(k).ok()?, Value::from_kernel(v).to_string()))).collect();
    if entries.is_empty() {
        return None;
    }
    let header = vec![
        "Changes refused inside a child network namespace because they can only be set on the host.".to_string(),
        "Run on the host (initial network namespace): semantos apply --plan THIS_FILE".to_string(),
    ];
    Some(sysctld::render(&header, &entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::Kb;

    fn judge(key: &str, to: &str, place: Option<NetnsPlace>) -> (Option<String>, Option<String>) {
        let kb = Kb::embedded().unwrap();
        let p = kb.param(key).unwrap();
        let facts = match place {
            Some(pl) => Facts::new().in_netns(pl),
            None => Facts::new(),
        };
        (refusal(key, p, &Value::from_kernel(to), &facts), warning(key, p, &facts))
    }

    #[test]
    fn read_only_and_global_net_keys_are_refused_in_a_child_netns_with_the_host_command() {
        for key in ["net.core.rmem_max", "net.core.netdev_max_backlog"] {
            let (r, w) = judge(key, "8388608", Some(NetnsPlace::Child));
            let Some(reason) = r else { panic!("{key}: not refused") };
            assert!(reason.contains("Set it on the host (initial namespace): `semantos apply --plan FILE`") && reason.contains(&format!("{key} = 8388608")), "{reason}");
            assert_eq!(w, None);
        }
        // The namespace's own keys are fine there; nothing is judged on the host or without facts.
        assert_eq!(judge("net.core.somaxconn", "8192", Some(NetnsPlace::Child)), (None, None));
        assert_eq!(judge("net.core.rmem_max", "8388608", Some(NetnsPlace::Initial)), (None, None));
        assert_eq!(judge("net.core.rmem_max", "8388608", None), (None, None));
    }

    #[test]
    fn host_wide_keys_proposed_from_a_child_netns_carry_a_warning() {
        let (r, w) = judge("vm.swappiness", "10", Some(NetnsPlace::Child));
        assert_eq!(r, None);
        assert!(w.is_some_and(|w| w.contains("host-wide") && w.contains("vm.swappiness")));
        let (r, w) = judge("net.core.rmem_max", "8388608", Some(NetnsPlace::Unknown("cannot read /proc/1/ns/net".into())));
        assert_eq!(r, None);
        assert!(w.is_some_and(|w| w.contains("could not tell") && w.contains("cannot read /proc/1/ns/net")));
    }
}
