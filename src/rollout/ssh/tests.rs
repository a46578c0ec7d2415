//! The ssh engine's command lines, quoting and settings checks.

use super::*;

#[test]
fn quoting_keeps_every_byte_literal() {
    assert_eq!(sh_quote("/proc/sys/net/core/somaxconn"), "/proc/sys/net/core/somaxconn");
    assert_eq!(sh_quote("a b"), "'a b'");
    assert_eq!(sh_quote("it's $(reboot) `id`"), "'it'\\''s $(reboot) `id`'");
    assert_eq!(sh_quote(""), "''");
    // The shell gives back exactly the original.
    for s in ["plain", "it's", "$(touch /tmp/x)", "a\nb", "`id`; reboot", "\\'\""] {
        let out = Command::new("sh").arg("-c").arg(format!("printf %s {}", sh_quote(s))).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), s);
    }
}

#[test]
fn every_remote_command_runs_under_the_remote_timeout() {
    // A stand-in for ssh that records the remote command line (its last argument) and answers nothing.
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("remote-commands");
    let fake = d.path().join("ssh");
    std::fs::write(&fake, format!("#!/bin/sh\ncase \" $* \" in *' -O '*) exit 0;; esac\nfor a; do last=$a; done\nprintf '%s\\0' \"$last\" >> {}\ncat > /dev/null\n", log.display())).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bin = d.path().join("semantos-bin");
    std::fs::write(&bin, b"binary").unwrap();
    let remote = RemoteSettings {
        semantos: "semantos".into(),
        dir: "/var/lib/semantos/{host}".into(),
        copy_binary: Some(bin),
        policy: Some("batch_size: 1\n".into()),
        monitor_seconds: Some(1.0),
        health_cmd: Some("curl -fsS http://127.0.0.1/ok".into()),
        health_timeout_s: None,
        persist: None,
        interval: 2.0,
        host_timeout_s: 30.0,
        kb: [("site.toml".to_string(), String::new())].into(),
    };
    let ssh = SshSettings { program: fake.display().to_string(), ..SshSettings::default() };
    let h = Host::new("web-1", "10.0.0.1");
    let keys = [SysctlKey::parse("net.core.somaxconn").unwrap()];
    // The remote side answers nothing: only the command lines matter here.
    {
        let e = SshEngine::new(ssh.clone(), remote.clone()).unwrap().with_rollout_id("r1");
        let _ = e.prepare(&h);
        let _ = e.read(&h, &keys);
        let _ = e.prepare_and_read(&h, &keys);
        let _ = e.read_and_check_health(&h, &keys);
        let _ = e.apply(&h, "{}");
        let _ = e.health(&h);
        let _ = e.rollback(&h, true);
        let _ = e.recommend(&h, Intent::Latency);
    }
    {
        // The one-round-trip preparation taken without a binary or KB to upload.
        let e = SshEngine::new(ssh, RemoteSettings { copy_binary: None, kb: BTreeMap::new(), ..remote }).unwrap();
        let _ = e.prepare_and_read(&h, &keys);
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.split('\0').filter(|l| !l.is_empty()).collect();
    // Uploads (binary, KB file, policy), the KB directory, reads, gate checks, apply, health, rollback, recommend.
    assert!(lines.len() >= 12, "{lines:#?}");
    for l in &lines {
        assert!(l.starts_with("timeout -k 5 40 sh -c "), "a remote command without the remote bound: {l}");
    }
    for what in ["cat > ", "rm -rf -- ", "for f in ", "apply", "rollback", "recommend", "__semantos_health_rc="] {
        assert!(lines.iter().any(|l| l.contains(what)), "no remote command with {what:?} in {lines:#?}");
    }
    // The bounded line runs exactly the script it was given.
    let e = SshEngine::new(SshSettings::default(), RemoteSettings { host_timeout_s: 5.0, ..ok_settings() }).unwrap();
    let line = e.remote_line("printf '%s' \"it's\"; echo \" $((1+1))\"");
    let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "it's 2\n", "{line}");
}

fn ok_settings() -> RemoteSettings {
    RemoteSettings { semantos: "semantos".into(), dir: "/var/lib/semantos/{host}".into(), copy_binary: None, policy: None, monitor_seconds: None, health_cmd: None, health_timeout_s: None, persist: None, interval: 2.0, host_timeout_s: 300.0, kb: BTreeMap::new() }
}

#[test]
fn json_after_login_noise() {
    assert_eq!(json_of("motd line\n{\n  \"outcome\": \"committed\"\n}\n").unwrap()["outcome"], "committed");
    assert!(json_of("no json here\n").is_none());
}

#[test]
fn remote_settings_refuse_odd_paths() {
    let ok = RemoteSettings { semantos: "semantos".into(), dir: "/var/lib/semantos/{host}".into(), copy_binary: None, policy: None, monitor_seconds: None, health_cmd: None, health_timeout_s: None, persist: None, interval: 2.0, host_timeout_s: 300.0, kb: BTreeMap::new() };
    assert!(ok.validate().is_ok());
    assert!(RemoteSettings { dir: "relative".into(), ..ok.clone() }.validate().unwrap_err().contains("absolute"));
    assert!(RemoteSettings { semantos: "-oops".into(), ..ok.clone() }.validate().unwrap_err().contains("--remote-semantos"));
    assert!(RemoteSettings { dir: "/var/lib/{{ lookup('pipe','id') }}".into(), ..ok.clone() }.validate().unwrap_err().contains("plain path"));
    assert!(RemoteSettings { persist: Some("/etc/sysctl.d/$(reboot).conf".into()), ..ok.clone() }.validate().unwrap_err().contains("--persist"));
    assert!(RemoteSettings { health_cmd: Some("true\nreboot".into()), ..ok.clone() }.validate().unwrap_err().contains("one line"));
    assert_eq!(ok.dir_on(&Host::new("web-1", "10.0.0.1")), "/var/lib/semantos/web-1");
    for bad in ["../x.toml", ".hidden.toml", "notes.txt", "a b.toml", "$(id).toml"] {
        let kb = [(bad.to_string(), String::new())].into();
        assert!(RemoteSettings { kb, ..ok.clone() }.validate().unwrap_err().contains("--kb"), "{bad}");
    }
    let kb: BTreeMap<String, String> = [("site-net_2.toml".to_string(), String::new())].into();
    assert!(RemoteSettings { kb, ..ok.clone() }.validate().is_ok());
}

/// The remote command lines `e` sends for an apply and a gate health check (a stand-in ssh records them).
fn apply_and_health_lines(remote: RemoteSettings) -> Vec<String> {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("remote-commands");
    let fake = d.path().join("ssh");
    std::fs::write(&fake, format!("#!/bin/sh\ncase \" $* \" in *' -O '*) exit 0;; esac\nfor a; do last=$a; done\nprintf '%s\\0' \"$last\" >> {}\ncat > /dev/null\n", log.display())).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ssh = SshSettings { program: fake.display().to_string(), ..SshSettings::default() };
    let h = Host::new("web-1", "10.0.0.1");
    {
        let e = SshEngine::new(ssh, remote).unwrap();
        let _ = e.apply(&h, "{}");
        let _ = e.health(&h);
    }
    std::fs::read_to_string(&log).unwrap().split('\0').filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[test]
fn the_controllers_health_timeout_reaches_every_host_and_bounds_the_gate_check() {
    // Before: RemoteSettings had no field for it, so `--health-timeout 7` on the controller was
    // dropped and each host used the policy's value (30 s), and the gate's check ran up to --host-timeout.
    let remote = RemoteSettings { health_cmd: Some("sleep 100".into()), health_timeout_s: Some(7.0), ..ok_settings() };
    let lines = apply_and_health_lines(remote);
    let apply = lines.iter().find(|l| l.contains(" apply ")).unwrap_or_else(|| panic!("no apply in {lines:#?}"));
    assert!(apply.contains("--health-timeout 7"), "{apply}");
    let health = lines.iter().find(|l| !l.contains(" apply ")).unwrap_or_else(|| panic!("no health check in {lines:#?}"));
    assert!(health.contains("timeout -k 5 7 sh -c"), "{health}");
    // Without the flag the hosts keep the uploaded policy's value: nothing is passed.
    let lines = apply_and_health_lines(RemoteSettings { health_cmd: Some("true".into()), ..ok_settings() });
    assert!(lines.iter().all(|l| !l.contains("--health-timeout")), "{lines:#?}");
    // A value outside (0, 86400] is refused by name.
    assert!(RemoteSettings { health_timeout_s: Some(0.0), ..ok_settings() }.validate().unwrap_err().contains("--health-timeout 0"));
}

#[test]
fn a_remote_json_error_is_read_as_its_message_not_shown_raw() {
    // The remote runs `semantos --json …`, whose errors are one JSON object on stderr.
    let line = r#"{"schema_version":1,"kind":"error","exit_code":1,"message":"refusing to apply","causes":["another run holds the lock"]}"#;
    assert_eq!(remote_error(line), "refusing to apply: another run holds the lock");
    assert_eq!(remote_error("semantos: error: the lock is held"), "the lock is held");
}
