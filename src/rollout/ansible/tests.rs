//! Playbooks rendered for real plans, checked as YAML and for what they must (and must never) contain; JSON reports read back.

use super::*;
use crate::rollout::precheck::Target;
use crate::sysctl::Value;

fn targets() -> Vec<Target> {
    vec![Target { key: SysctlKey::parse("net.core.somaxconn").unwrap(), value: Value::from_kernel("4096") }, Target { key: SysctlKey::parse("net.ipv4.tcp_slow_start_after_idle").unwrap(), value: Value::from_kernel("0") }]
}

fn opts() -> PlaybookOptions {
    PlaybookOptions { run_id: "r1".into(), serial: vec![Batch::Count(1), Batch::Count(2), Batch::Count(3)], remote_dir: "/var/lib/semantos/{host}".into(), sysctl_file: "/etc/sysctl.d/99-semantos.conf".into(), monitor_seconds: 2.0, health_cmd: Some("curl -fsS http://127.0.0.1/ok && test \"$(id -u)\" = 0".into()), health_timeout_s: 30.0, header: vec!["plan: rules\nsecond line".into()] }
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
        "argv: [\"timeout\", \"-k\", \"5\", \"30\", \"sh\", \"-c\", !unsafe \"curl -fsS http://127.0.0.1/ok && test \\\"$(id -u)\\\" = 0\"]",
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

#[test]
fn the_standalone_playbooks_health_command_is_bounded_on_the_host() {
    // Before: `argv: ["sh", "-c", CMD]`, so a hung health command held the host's play forever.
    let p = playbook(&targets(), &PlaybookOptions { health_timeout_s: 7.5, ..opts() });
    assert!(p.contains("argv: [\"timeout\", \"-k\", \"5\", \"8\", \"sh\", \"-c\", !unsafe \"curl"), "{p}");
    assert!(!p.contains("argv: [\"sh\", \"-c\", !unsafe \"curl"), "{p}");
}

fn engine_opts() -> EngineOptions {
    let remote = crate::rollout::settings::RemoteSettings {
        semantos: "/usr/local/bin/semantos".into(),
        dir: "/var/lib/semantos/{host}".into(),
        copy_binary: None,
        policy: Some("batch_size: 1\n".into()),
        monitor_seconds: Some(2.0),
        health_cmd: Some("curl -fsS http://127.0.0.1/ok".into()),
        health_timeout_s: Some(9.0),
        persist: Some("/etc/sysctl.d/90-{host}.conf".into()),
        interval: 0.5,
        host_timeout_s: 300.0,
        kb: [("site.toml".to_string(), "# site\n".to_string())].into(),
    };
    EngineOptions { rollout_id: "rollout-1-2".into(), serial: vec![Batch::Count(1), Batch::Count(2)], remote, plan_json: r#"{"changes": [{"key": "net.core.somaxconn", "to": "4096"}]}"#.into(), changes: 1, header: vec!["rollout rollout-1-2".into()] }
}

#[test]
fn the_ansible_engine_runs_semantos_on_each_host_and_its_rollback_undoes_only_this_rollout() {
    // Before: the engine's playbook wrote a version-1 backup through Jinja and its rollback play
    // restored that whole backup, so rolling back rollout B also undid an earlier rollout A.
    let p = engine_playbook(&engine_opts());
    for want in [
        "serial: [1, 2]",
        "max_fail_percentage: 0",
        "\"--rollout-id\", \"rollout-1-2\"",
        "\"--fence-rollout\", \"rollout-1-2\"",
        "\"--health-cmd\", !unsafe \"curl -fsS http://127.0.0.1/ok\"",
        "\"--health-timeout\", \"9\"",
        "\"--plan\", \"-\"",
        "\"timeout\", \"-k\", \"5\", \"300\", \"{{ semantos_bin }}\"",
        "\"{{ '--persist=' ~ semantos_sysctl_file_path }}\"",
        "semantos_bin: !unsafe \"/usr/local/bin/semantos\"",
        "stdin: !unsafe \"{\\\"changes\\\"",
        "tags: [never, rollback]",
        "default('/var/lib/semantos/' ~ inventory_hostname ~ '')",
    ] {
        assert!(p.contains(want), "{want:?} missing:\n{p}");
    }
    // No second restore logic in Jinja: the hosts' own semantos keeps the backup.
    for never in ["ansible.posix.sysctl", "from_json", "originals"] {
        assert!(!p.contains(never), "{never:?} in:\n{p}");
    }
    let v: serde_json::Value = serde_saphyr::from_str(&p.replace("!unsafe ", "")).unwrap();
    assert_eq!(v.as_array().map(|a| a.len()), Some(2));
    let apply = &v[0]["tasks"];
    // Working directory, KB directory, one KB file, the policy, then the apply block.
    assert_eq!(apply.as_array().map(|a| a.len()), Some(5), "{apply:#}");
    let argv = &apply[4]["block"][0]["ansible.builtin.command"]["argv"];
    assert_eq!(argv[4], "{{ semantos_bin }}");
    assert_eq!(argv[6], "apply");
    let rb = &v[1]["tasks"][0]["ansible.builtin.command"]["argv"];
    assert!(rb.as_array().unwrap().iter().any(|w| w == "--policy") && rb.as_array().unwrap().iter().any(|w| w == "--kb"), "a restore passes the apply's KB and policy: {rb}");
}

#[test]
fn a_failed_commands_report_gives_its_stderr_not_non_zero_return_code() {
    // The rollback play's `semantos rollback` says on stderr why it refused; Ansible's msg says only "non-zero return code".
    let out = r#"{"plays": [{"play": {"name": "x"}, "tasks": [{"task": {"name": "semantos rollback"}, "hosts": {"h1": {"failed": true, "msg": "non-zero return code", "stderr": "line one\nsemantos: error: refusing to undo rollout r1 alone"}}}]}],
 "stats": {"h1": {"ok": 1, "failures": 1, "unreachable": 0}}}"#;
    let r = parse_json_report(out).unwrap();
    assert_eq!(r.failed["h1"].1, "semantos rollback: line one semantos: error: refusing to undo rollout r1 alone");
}
