//! The limit that binds: before a key is raised for a symptom, telemetry must
//! show that this key is the limit in force for what shows the symptom. The
//! KB says how, per key (`Param::binds_when`): a gauge that counts the
//! sockets held at this key's limit. `net.core.rmem_max`, for instance, caps
//! only what an application asks for with `SO_RCVBUF` (such a socket sits at
//! 2 × rmem_max and no longer autotunes), while autotuned TCP sockets grow up
//! to `tcp_rmem[2]` whatever rmem_max says: with receiving sockets at
//! tcp_rmem[2] and none at 2 × rmem_max, rmem_max does not bind.
//!
//! The counts come from per-socket state over `sock_diag`
//! (`telemetry::sockdiag`, its `BufferCaps` classification). Pure.

use crate::kb::Param;
use crate::kb::entry::Binding;
use crate::telemetry::Window;

/// Whether `p` binds for the symptom `finding_id`: the evidence lines to cite when it does (or
/// is presumed to), the reason (with the readings) when it does not.
pub fn judge(p: &Param, finding_id: &str, window: &Window) -> Result<Vec<String>, String> {
    let mut evidence = Vec::new();
    for b in p.binds_when.iter().filter(|b| b.symptom.as_deref().is_none_or(|s| s == finding_id)) {
        match window.gauge(&b.metric) {
            None if b.presumed => {}
            None => {
                return Err(format!(
                    "not proposed — nothing shows that {} binds: {} was not measured (no per-socket telemetry here); {}",
                    p.key, b.metric, b.because
                ));
            }
            Some(v) if b.op.holds(v, b.value) => {
                evidence.push(format!("{} binds: {} = {} ({} {}): {}{}", p.key, b.metric, show(v), b.op.symbol(), show(b.value), b.because, cited(b, window)));
            }
            Some(v) => {
                return Err(format!(
                    "not proposed — {} does not bind: {} = {}, not {} {}; {}{}",
                    p.key,
                    b.metric,
                    show(v),
                    b.op.symbol(),
                    show(b.value),
                    b.because,
                    cited(b, window)
                ));
            }
        }
    }
    Ok(evidence)
}

/// The rivals of `p` for the symptom `finding_id` (keys that may be the limit in force instead).
pub fn rivals<'a>(p: &'a Param, finding_id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    p.binds_when.iter().filter(move |b| b.symptom.as_deref().is_none_or(|s| s == finding_id)).flat_map(|b| b.rivals.iter().map(String::as_str))
}

/// "; evidence: a = 1, b = 2" for the binding's cited gauges (those measured).
fn cited(b: &Binding, window: &Window) -> String {
    let parts: Vec<String> = b.cite.iter().filter_map(|m| window.gauge(m).map(|v| format!("{m} = {}", show(v)))).collect();
    if parts.is_empty() { String::new() } else { format!(" (evidence: {})", parts.join(", ")) }
}

fn show(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::Kb;
    use crate::telemetry::{HostFacts, Snapshot};

    fn judge_with(key: &str, symptom: &str, gauges: &[(&str, f64)]) -> Result<Vec<String>, String> {
        let kb = Kb::embedded().unwrap();
        let a = Snapshot::new(HostFacts::default(), 0);
        let mut b = Snapshot::new(HostFacts::default(), 1000);
        for (k, v) in gauges {
            b.set(k.to_string(), *v);
        }
        judge(kb.param(key).unwrap(), symptom, &Window::new(&a, &b))
    }

    #[test]
    fn rmem_max_does_not_bind_for_autotuned_receivers_and_tcp_rmem_does() {
        let autotuned = [("sock.tcp.rcv.receiving", 12.0), ("sock.tcp.rcv.at_tcp_rmem_max", 12.0), ("sock.tcp.rcv.at_rmem_max", 0.0), ("sock.tcp.rcv.rcvbuf.max", 6291456.0)];
        let why = judge_with("net.core.rmem_max", "receive_window_limited", &autotuned).unwrap_err();
        assert!(why.contains("does not bind") && why.contains("SO_RCVBUF") && why.contains("sock.tcp.rcv.at_tcp_rmem_max = 12") && why.contains("6291456"), "{why}");
        let ev = judge_with("net.ipv4.tcp_rmem", "receive_window_limited", &autotuned).unwrap();
        assert!(ev.iter().any(|e| e.contains("net.ipv4.tcp_rmem binds")), "{ev:?}");
        // An application that sized its sockets at the cap: rmem_max binds, tcp_rmem does not.
        let locked = [("sock.tcp.rcv.receiving", 3.0), ("sock.tcp.rcv.at_tcp_rmem_max", 0.0), ("sock.tcp.rcv.at_rmem_max", 3.0)];
        assert!(judge_with("net.core.rmem_max", "receive_window_limited", &locked).is_ok());
        assert!(judge_with("net.ipv4.tcp_rmem", "receive_window_limited", &locked).unwrap_err().contains("does not bind"));
    }

    #[test]
    fn without_per_socket_telemetry_the_default_limit_is_presumed_and_the_opt_in_cap_is_not() {
        assert_eq!(judge_with("net.ipv4.tcp_rmem", "receive_window_limited", &[]), Ok(vec![]));
        assert!(judge_with("net.core.rmem_max", "receive_window_limited", &[]).unwrap_err().contains("was not measured"));
        assert_eq!(judge_with("net.core.somaxconn", "accept_queue_overflow", &[]), Ok(vec![]));
    }

    #[test]
    fn every_binding_names_a_defined_symptom_gauges_and_known_rivals() {
        let kb = Kb::embedded().unwrap();
        let mut n = 0;
        for p in kb.params.values() {
            for b in &p.binds_when {
                n += 1;
                assert!(b.symptom.as_ref().is_none_or(|s| kb.symptoms.contains_key(s)), "{}: binding for {:?}, which no symptoms table defines", p.key, b.symptom);
                assert!(!b.metric.is_empty() && !b.because.is_empty(), "{}", p.key);
                for r in &b.rivals {
                    assert!(kb.param(r).is_some_and(|q| !q.binds_when.is_empty()), "{}: rival {r} has no entry or no binds_when to be judged by", p.key);
                }
            }
        }
        assert!(n >= 4, "{n} bindings");
    }

    #[test]
    fn somaxconn_does_not_bind_for_a_listener_whose_own_backlog_is_smaller() {
        let why = judge_with("net.core.somaxconn", "accept_queue_overflow", &[("listen.full", 1.0), ("listen.full.at_somaxconn", 0.0), ("listen.full.below_somaxconn", 1.0)]).unwrap_err();
        assert!(why.contains("listen()") && why.contains("listen.full.below_somaxconn = 1"), "{why}");
        assert!(judge_with("net.core.somaxconn", "accept_queue_overflow", &[("listen.full", 1.0), ("listen.full.at_somaxconn", 1.0)]).is_ok());
    }
}
