//! Playbooks rendered for real plans, checked as YAML and for what they must (and must never) contain; JSON reports read back.

use super::*;
use crate::rollout::precheck::Target;
use crate::sysctl::Value;

fn targets() -> Vec<Target> {
    vec![Target { key: SysctlKey::parse("net.core.somaxconn").unwrap(), value: Value::from_kernel("4096") }, Target { key: SysctlKey::parse("net.ipv4.tcp_slow_start_after_idle").unwrap(), value: Value::from_kernel("0") }]
}

fn opts() -> PlaybookOptions {
    PlaybookOptions { run_id: "r1".into(), serial: vec![Batch::Count(1), Batch::Count(2), Batch::Count(3)], remote_dir: "/var/lib/semantos/{host}".into(), sysctl_file: "/etc/sysctl.d/99-semantos.conf".into(), monitor_seconds: 2.0, health_cmd: Some("curl -fsS http://127.0.0.1/ok && test \"$(id -u)\" = 0".into()), header: vec!["plan: rules\nsecond line".into()] }
}

#[test]
fn playbook_has_waves_fail_fast_module_and_rollback_play() {
    let p = playbook(&targets(), &opts());
    for want in [
        "serial: [1, 2, 3]",
        "max_fail_percentage: 0",
        "ansible.posix.sysctl:",
        "sysctl_set: true",
        "reload: true",
        "state: present",
        "value: !unsafe \"4096\"",
        "tags: [never, rollback]",
        "rescue:",
        "argv: [\"sh\", \"-c\", !unsafe \"curl -fsS http://127.0.0.1/ok && test \\\"$(id -u)\\\" = 0\"]",
        "default('/var/lib/semantos/' ~ inventory_hostname ~ '')",
        "# plan: rules second line",
        "seconds: 2",
    ] {
        assert!(p.contains(want), "{want:?} missing:\n{p}");
    }
    // It is YAML: a list of two plays.
    let v: serde_json::Value = serde_saphyr::from_str(&p.replace("!unsafe ", "")).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(2));
    assert_eq!(v[0]["serial"], serde_json::json!([1, 2, 3]));
}

#[test]
fn json_report_gives_failed_and_ok_hosts() {
    let out = r#"noise
{"plays": [{"play": {"name": "x"}, "tasks": [{"task": {"name": "health command"}, "hosts": {"h2": {"failed": true, "msg": "non-zero return code"}, "h1": {"changed": false}}}]}],
 "stats": {"h1": {"ok": 5, "failures": 0, "unreachable": 0}, "h2": {"ok": 3, "failures": 1, "unreachable": 0, "rescued": 1}, "h3": {"ok": 0, "failures": 0, "unreachable": 1}}}"#;
    let r = parse_json_report(out).unwrap();
    assert_eq!(r.ok.iter().cloned().collect::<Vec<_>>(), ["h1"]);
    assert_eq!(r.failed["h2"], (false, "health command: non-zero return code".to_string()));
    assert!(r.failed["h3"].0);
}
