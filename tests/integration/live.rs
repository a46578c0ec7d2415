//! Real host mode on the real kernel (privileged): dry run against the live
//! /proc/sys, and apply / rollback / faults / SIGKILL / concurrency inside
//! throwaway network namespaces, where net.* keys are private. The host's
//! values are checked not to move. The same flows also run on a sandbox
//! tree without root.

use crate::support::{Netns, bin, host_value, privileged, run_in, text};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const KEYS: [&str; 3] = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_slow_start_after_idle"];

fn policy(dir: &Path) -> String {
    let p = dir.join("policy.yaml");
    std::fs::write(&p, "whitelist: [\"net.core.somaxconn\", \"net.ipv4.tcp_max_syn_backlog\", \"net.ipv4.tcp_slow_start_after_idle\", \"net.core.rmem_max\"]\nmax_step_ratio: 8\nbatch_size: 2\n").unwrap();
    p.display().to_string()
}

/// A plan moving each key to a different valid value, from the values read now.
fn plan(dir: &Path, read: impl Fn(&str) -> String) -> (String, Vec<(String, String)>) {
    let somax: i64 = read(KEYS[0]).parse().unwrap();
    let syn: i64 = read(KEYS[1]).parse().unwrap();
    let idle: i64 = read(KEYS[2]).parse().unwrap();
    let new = vec![
        (KEYS[0].to_string(), (if somax > 256 { somax / 2 } else { somax * 2 }).to_string()),
        (KEYS[1].to_string(), (if syn > 256 { syn / 2 } else { syn * 2 }).to_string()),
        (KEYS[2].to_string(), (1 - idle).to_string()),
    ];
    let p = dir.join("plan.conf");
    std::fs::write(&p, new.iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>()).unwrap();
    (p.display().to_string(), new)
}

fn args<'a>(dir: &'a Path, pol: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = ["--policy", pol, "--backup", &dir.join("backup/sysctl_backup.json").display().to_string(), "--audit-log", &dir.join("logs/audit.jsonl").display().to_string(), "--monitor-seconds", "0.05", "--interval", "0.05"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The flags of `args` that `verb` takes: apply takes them all; rollback and dry-run refuse the
/// ones they do not use (the telemetry, the plan, the monitor and persist flags; rollback's state).
fn for_verb(verb: &str, args: &[String]) -> Vec<String> {
    let drop: &[&str] = match verb {
        "rollback" => &["--plan", "--interval", "--monitor-seconds", "--health-cmd", "--health-timeout", "--persist", "--intent", "--telemetry", "--proc-root", "--rollout-id"],
        "dry-run" => &["--audit-log", "--monitor-seconds", "--health-cmd", "--health-timeout", "--persist", "--force", "--rollout-id"],
        _ => &[],
    };
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let name = a.split('=').next().unwrap();
        if drop.contains(&name) {
            if !a.contains('=') && name != "--force" {
                it.next();
            }
            continue;
        }
        out.push(a.clone());
    }
    out
}

fn ok(o: &Output, what: &str) -> String {
    let (out, err) = text(o);
    assert!(o.status.success(), "{what} failed ({:?}):\n{out}\n{err}", o.status);
    out
}

fn host_net_values() -> Vec<String> {
    KEYS.iter().chain(&["net.core.rmem_max"]).map(|k| host_value(k)).collect()
}

#[test]
fn dry_run_against_live_proc_sys_writes_nothing() {
    if !privileged("dry_run_against_live_proc_sys_writes_nothing") {
        return;
    }
    let kb = semantos::kb::Kb::embedded().unwrap();
    let snapshot = || -> Vec<(String, String)> {
        // ns_last_pid moves with every fork: it is not a setting.
        kb.params.iter().filter(|(k, p)| p.no_read.is_none() && k.as_str() != "kernel.ns_last_pid").map(|(k, _)| (k.clone(), host_value(k))).collect()
    };
    let before = snapshot();
    let d = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/run_sysctl_dryrun.sh");
    let o = Command::new("bash").arg(&script).env("SEMANTOS_BIN", bin()).args(["--interval", "0.2", "--backup", &d.path().join("b.json").display().to_string()]).output().unwrap();
    let out = ok(&o, "run_sysctl_dryrun.sh");
    assert!(out.contains("DRY RUN against /proc/sys"), "{out}");
    assert!(out.contains("Findings on"), "{out}");
    let after = snapshot();
    let moved: Vec<_> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert!(moved.is_empty(), "a dry run changed /proc/sys: {moved:?}");
    assert!(!d.path().join("b.json").exists());
}

#[test]
fn apply_and_rollback_in_a_network_namespace_leave_the_host_alone() {
    if !privileged("apply_and_rollback_in_a_network_namespace_leave_the_host_alone") {
        return;
    }
    let host_before = host_net_values();
    let ns = Netns::create("apply");
    let d = tempfile::tempdir().unwrap();
    let pol = policy(d.path());
    let originals: Vec<String> = KEYS.iter().map(|k| ns.read(k)).collect();
    let (plan, new) = plan(d.path(), |k| ns.read(k));
    let a = args(d.path(), &pol, &["--plan", &plan, "--persist", &d.path().join("99-semantos.conf").display().to_string()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut apply = vec!["--applier", "sysctl", "--apply"];
    apply.extend(&a);
    let out = ok(&ns.semantos(d.path(), &apply, &[]), "apply");
    assert!(out.contains("Committed"), "{out}");
    for (k, v) in &new {
        assert_eq!(&ns.read(k), v, "{k} inside the namespace");
    }
    assert_eq!(host_net_values(), host_before, "the host's values moved");
    let backup = d.path().join("backup/sysctl_backup.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    let b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&backup).unwrap()).unwrap();
    for (i, k) in KEYS.iter().enumerate() {
        assert_eq!(b["originals"][k], originals[i].as_str(), "backup of {k}");
    }
    assert!(b["host"]["boot_id"].as_str().unwrap().len() > 8);
    let dropin = std::fs::read_to_string(d.path().join("99-semantos.conf")).unwrap();
    assert!(semantos::sysctl::sysctld::parse(&dropin, "dropin").unwrap().len() == 3, "{dropin}");
    let audit = std::fs::read_to_string(d.path().join("logs/audit.jsonl")).unwrap();
    assert!(audit.lines().filter(|l| l.contains("\"event\":\"write\"")).count() == 3, "{audit}");

    let mut rb = vec!["--applier", "sysctl", "--rollback"];
    let rb_args = for_verb("rollback", &a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    rb.extend(rb_args.iter().map(String::as_str));
    let out = ok(&ns.semantos(d.path(), &rb, &[]), "rollback");
    assert!(out.contains("Restored and verified 3 key(s)"), "{out}");
    assert!(!d.path().join("99-semantos.conf").exists(), "drop-in not removed");
    for (i, k) in KEYS.iter().enumerate() {
        assert_eq!(ns.read(k), originals[i], "{k} after rollback");
    }
    let out = ok(&ns.semantos(d.path(), &rb, &[]), "second rollback");
    assert!(out.contains("Nothing to do"), "{out}");
    assert_eq!(host_net_values(), host_before);
}

#[test]
fn a_read_only_key_in_a_namespace_is_refused_before_any_write_and_the_rest_applied() {
    if !privileged("a_read_only_key_in_a_namespace_is_refused_before_any_write_and_the_rest_applied") {
        return;
    }
    // It used to be attempted, fail with EACCES and roll the whole apply back; the guardrails
    // now know the namespace (tests/integration/scope.rs has the plan with that key alone).
    let ns = Netns::create("ro");
    let d = tempfile::tempdir().unwrap();
    let pol = policy(d.path());
    let rmem: i64 = ns.read("net.core.rmem_max").parse().unwrap();
    std::fs::write(d.path().join("plan.conf"), format!("net.core.somaxconn = 1024\nnet.core.rmem_max = {}\n", rmem * 2)).unwrap();
    let a = args(d.path(), &pol, &["--plan", "plan.conf"]);
    let mut v = vec!["apply"];
    v.extend(a.iter().map(String::as_str));
    let o = ns.semantos(d.path(), &v, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("[scope]") && out.contains("net.core.rmem_max") && !err.contains("EACCES"), "{out}\n{err}");
    assert_eq!(ns.read("net.core.somaxconn"), "1024");
    assert_eq!(ns.read("net.core.rmem_max"), rmem.to_string());
}

#[test]
// SEMANTOS_FAULT is compiled in only with the feature (scripts/test.sh turns it on).
#[cfg_attr(not(feature = "fault-injection"), ignore = "needs --features fault-injection")]
fn a_fault_at_every_write_position_restores_the_namespace() {
    if !privileged("a_fault_at_every_write_position_restores_the_namespace") {
        return;
    }
    let ns = Netns::create("fault");
    for errno in ["EINVAL", "EPERM", "EIO"] {
        for n in 1..=3 {
            let d = tempfile::tempdir().unwrap();
            let pol = policy(d.path());
            let before: Vec<String> = KEYS.iter().map(|k| ns.read(k)).collect();
            let (plan, new) = plan(d.path(), |k| ns.read(k));
            let a = args(d.path(), &pol, &["--plan", &plan]);
            let mut v = vec!["apply"];
            v.extend(a.iter().map(String::as_str));
            let fault = format!("write#{n}:{errno}");
            let o = ns.semantos(d.path(), &v, &[("SEMANTOS_FAULT", &fault)]);
            let (_, err) = text(&o);
            assert_eq!(o.status.code(), Some(1), "{fault}: {err}");
            let (k, val) = &new[n - 1];
            assert!(err.contains(&format!("writing {k} = {val} failed")) && err.contains(errno), "{fault}: {err}");
            let after: Vec<String> = KEYS.iter().map(|k| ns.read(k)).collect();
            assert_eq!(after, before, "{fault}: not restored");
        }
    }
}

#[test]
// SEMANTOS_FAULT is compiled in only with the feature (scripts/test.sh turns it on).
#[cfg_attr(not(feature = "fault-injection"), ignore = "needs --features fault-injection")]
fn sigkill_at_every_write_point_is_undone_by_rollback() {
    if !privileged("sigkill_at_every_write_point_is_undone_by_rollback") {
        return;
    }
    let ns = Netns::create("kill");
    for point in ["kill-before#1", "kill-after#1", "kill-before#2", "kill-after#2", "kill-before#3", "kill-after#3"] {
        let d = tempfile::tempdir().unwrap();
        let pol = policy(d.path());
        let before: Vec<String> = KEYS.iter().map(|k| ns.read(k)).collect();
        let (plan, _) = plan(d.path(), |k| ns.read(k));
        let a = args(d.path(), &pol, &["--plan", &plan]);
        let mut v = vec!["apply"];
        v.extend(a.iter().map(String::as_str));
        let o = ns.semantos(d.path(), &v, &[("SEMANTOS_FAULT", point)]);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(9), "{point}: {:?} {}", o.status, text(&o).1);
        // The next run that touches the store sees the journal and says so.
        let o = ns.semantos(d.path(), &v, &[]);
        let (_, err) = text(&o);
        assert!(!o.status.success() && err.contains("was interrupted"), "{point}: {err}");
        let mut dry = vec!["dry-run"];
        let dry_args = for_verb("dry-run", &a);
        dry.extend(dry_args.iter().map(String::as_str));
        let (_, err) = text(&ns.semantos(d.path(), &dry, &[]));
        assert!(err.contains("was interrupted"), "{point}: dry run did not warn: {err}");
        let mut rb = vec!["rollback"];
        let rb_args = for_verb("rollback", &a);
        rb.extend(rb_args.iter().map(String::as_str));
        ok(&ns.semantos(d.path(), &rb, &[]), &format!("rollback after {point}"));
        let after: Vec<String> = KEYS.iter().map(|k| ns.read(k)).collect();
        assert_eq!(after, before, "{point}: rollback did not restore every value");
        assert!(!d.path().join("backup/sysctl_backup.journal").exists(), "{point}: journal left behind");
    }
}

#[test]
fn two_concurrent_applies_exactly_one_proceeds() {
    if !privileged("two_concurrent_applies_exactly_one_proceeds") {
        return;
    }
    let ns = Netns::create("lock");
    let d = tempfile::tempdir().unwrap();
    let pol = policy(d.path());
    let (plan, _) = plan(d.path(), |k| ns.read(k));
    let mut a = args(d.path(), &pol, &["--plan", &plan]);
    let i = a.iter().position(|x| x == "--monitor-seconds").unwrap();
    a[i + 1] = "1.5".into();
    let mut first = Command::new("ip");
    first.args(["netns", "exec", &ns.name]).arg(bin()).arg("apply").args(&a).current_dir(d.path());
    let child = first.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let journal = d.path().join("backup/sysctl_backup.journal");
    let t0 = std::time::Instant::now();
    while !journal.exists() && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(journal.exists(), "the first apply never started");
    let mut v = vec!["apply"];
    v.extend(a.iter().map(String::as_str));
    let second = ns.semantos(d.path(), &v, &[]);
    let (_, err) = text(&second);
    assert!(!second.status.success() && err.contains("another semantos run holds the lock"), "{err}");
    let first = child.wait_with_output().unwrap();
    ok(&first, "first apply");
    let mut rb = vec!["rollback"];
    let rb_args = for_verb("rollback", &a);
    rb.extend(rb_args.iter().map(String::as_str));
    ok(&ns.semantos(d.path(), &rb, &[]), "rollback");
}

#[test]
fn apply_without_root_is_refused_before_anything_happens() {
    if !privileged("apply_without_root_is_refused_before_anything_happens") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args(["--applier", "sysctl", "--apply", "--backup", "/nonexistent/b.json", "--audit-log", "/nonexistent/a.jsonl"])
        .current_dir("/")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(semantos::cli::exit::REFUSED), "{err}");
    assert!(err.contains("needs root") && err.contains("Nothing was written"), "{err}");
    assert!(!d.path().join("b.json").exists());
}

#[test]
fn hostile_keys_and_values_are_refused_on_the_live_path() {
    if !privileged("hostile_keys_and_values_are_refused_on_the_live_path") {
        return;
    }
    let ns = Netns::create("hostile");
    let d = tempfile::tempdir().unwrap();
    let pol = policy(d.path());
    let before: Vec<String> = KEYS.iter().map(|k| ns.read(k)).collect();
    for (i, (plan, expect)) in [
        ("../../etc/passwd = 1\n", "`..`"),
        ("/proc/sys/vm/swappiness = 10\n", "absolute paths"),
        ("net.core.somaxconn = 010\n", "octal"),
        ("net.core.somaxconn = 300 # comment\n", "inline comments"),
        ("net.ipv4.tcp_rmem = 8192 16384 abc\n", "\"abc\""),
        ("kernel.randomize_va_space = 0\n", "[never-touch]"),
        ("net.ipv4.tcp_max_syn_backlog = -5\n", "below the minimum"),
    ]
    .iter()
    .enumerate()
    {
        let f = d.path().join(format!("hostile{i}.conf"));
        std::fs::write(&f, plan).unwrap();
        let a = args(d.path(), &pol, &["--plan", f.to_str().unwrap()]);
        let mut v = vec!["apply"];
        v.extend(a.iter().map(String::as_str));
        let o = ns.semantos(d.path(), &v, &[]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{plan:?}: {err}");
        assert!(err.contains(expect), "{plan:?}: expected {expect:?}: {err}");
    }
    // A newline inside a JSON key.
    std::fs::write(d.path().join("nl.json"), r#"{"schema_version":1,"created_by":"x","intent":"latency","changes":[{"key":"net.core.somaxconn\nkernel.x","to":"1","rationale":"r"}]}"#).unwrap();
    let a = args(d.path(), &pol, &["--plan", "nl.json"]);
    let mut v = vec!["apply"];
    v.extend(a.iter().map(String::as_str));
    let (_, err) = text(&ns.semantos(d.path(), &v, &[]));
    assert!(err.contains("newline"), "{err}");
    assert_eq!(KEYS.iter().map(|k| ns.read(k)).collect::<Vec<_>>(), before, "a hostile plan changed something");
    assert!(!d.path().join("backup/sysctl_backup.json").exists());
}

#[test]
fn sandbox_tree_apply_rollback_without_root() {
    let d = tempfile::tempdir().unwrap();
    for (k, v) in [("net/core/somaxconn", "128"), ("vm/swappiness", "60"), ("vm/dirty_ratio", "20"), ("vm/dirty_background_ratio", "10")] {
        let p = d.path().join("tree").join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{v}\n")).unwrap();
    }
    std::fs::write(d.path().join("plan.conf"), "net.core.somaxconn = 1024\nvm.swappiness = 10\n").unwrap();
    let common = ["--sysctl-root", "tree", "--backup", "b/backup.json", "--audit-log", "a.jsonl", "--monitor-seconds", "0", "--interval", "0.05", "--plan", "plan.conf"];
    let mut v = vec!["apply"];
    v.extend(common);
    ok(&run_in(d.path(), &v), "sandbox apply");
    assert_eq!(std::fs::read_to_string(d.path().join("tree/net/core/somaxconn")).unwrap().trim(), "1024");
    let mut v = vec!["rollback"];
    v.extend(&common[..6]);
    ok(&run_in(d.path(), &v), "sandbox rollback");
    assert_eq!(std::fs::read_to_string(d.path().join("tree/net/core/somaxconn")).unwrap().trim(), "128");
    assert_eq!(std::fs::read_to_string(d.path().join("tree/vm/swappiness")).unwrap().trim(), "60");
    // A symlink planted at the backup path is refused and nothing is written.
    std::os::unix::fs::symlink("/tmp/elsewhere", d.path().join("b/link.json")).unwrap();
    let mut v = vec!["apply", "--sysctl-root", "tree", "--backup", "b/link.json", "--audit-log", "a.jsonl", "--monitor-seconds", "0", "--interval", "0.05", "--plan", "plan.conf"];
    v.truncate(v.len());
    let o = run_in(d.path(), &v);
    let (_, err) = text(&o);
    assert!(!o.status.success() && err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(d.path().join("tree/net/core/somaxconn")).unwrap().trim(), "128");
}

/// A sandbox tree holding net.core.somaxconn = 128 and a plan raising it to 1024.
fn fence_sandbox() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let somaxconn = d.path().join("tree/net/core/somaxconn");
    std::fs::create_dir_all(somaxconn.parent().unwrap()).unwrap();
    std::fs::write(&somaxconn, "128\n").unwrap();
    std::fs::write(d.path().join("plan.conf"), "net.core.somaxconn = 1024\n").unwrap();
    (d, somaxconn)
}

const FENCE_ARGS: [&str; 10] = ["--sysctl-root", "tree", "--backup", "b/backup.json", "--audit-log", "a.jsonl", "--monitor-seconds", "0", "--plan", "plan.conf"];

fn fence_cmd<'a>(first: &[&'a str]) -> Vec<&'a str> {
    // A rollback takes the tree and state flags only (the first six); an apply takes them all.
    let n = if first[0] == "rollback" { 6 } else { FENCE_ARGS.len() };
    let tail: &[&str] = if first[0] == "rollback" { &[] } else { &["--interval", "0.05"] };
    first.iter().copied().chain(FENCE_ARGS[..n].iter().copied()).chain(tail.iter().copied()).collect()
}

/// A fleet controller killed mid-wave leaves its remote apply running; when that apply reaches
/// the host after `--rollback-fleet` restored it, the fence must stop it (CI failure, session 1).
#[test]
fn a_late_apply_of_a_fenced_rollout_writes_nothing() {
    let (d, somaxconn) = fence_sandbox();
    let value = || std::fs::read_to_string(&somaxconn).unwrap().trim().to_string();
    ok(&run_in(d.path(), &fence_cmd(&["apply", "--rollout-id", "rollout-1-1"])), "apply of the rollout");
    assert_eq!(value(), "1024");
    ok(&run_in(d.path(), &fence_cmd(&["rollback", "--fence-rollout", "rollout-1-1"])), "fencing rollback");
    assert_eq!(value(), "128");
    assert!(d.path().join("b/fenced/rollout-1-1").exists());
    // The late apply: refused under the lock, nothing written.
    let o = run_in(d.path(), &fence_cmd(&["apply", "--rollout-id", "rollout-1-1"]));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(semantos::cli::exit::REFUSED), "{err}");
    assert!(err.contains("fleet rollout rollout-1-1 was rolled back on this host") && err.contains("nothing written"), "{err}");
    assert_eq!(value(), "128");
    // Fencing with the backup already restored still fences (the apply may not have started yet).
    ok(&run_in(d.path(), &fence_cmd(&["rollback", "--fence-rollout", "rollout-2-2"])), "fencing rollback with nothing to restore");
    assert!(d.path().join("b/fenced/rollout-2-2").exists());
    // Another rollout is not fenced; a hostile id is a usage error before anything is opened.
    ok(&run_in(d.path(), &fence_cmd(&["apply", "--rollout-id", "rollout-3-3"])), "apply of another rollout");
    assert_eq!(value(), "1024");
    for (flag, bad) in [("--fence-rollout", "../../etc/passwd"), ("--fence-rollout", ".x"), ("--rollout-id", "a b"), ("--rollout-id", "../x")] {
        let verb = if flag == "--rollout-id" { "apply" } else { "rollback" };
        let o = run_in(d.path(), &fence_cmd(&[verb, flag, bad]));
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(flag) && err.contains("invalid"), "{err}");
    }
    assert_eq!(value(), "1024");
    assert!(!d.path().join("etc").exists());
}

/// The race itself: an apply already running (still diagnosing, before the lock) when the
/// fencing rollback runs must not land afterwards.
#[test]
fn an_apply_on_its_way_when_the_fence_goes_up_writes_nothing() {
    let (d, somaxconn) = fence_sandbox();
    // A 2 s telemetry interval keeps the apply away from the lock while the rollback runs.
    let late = Command::new(bin()).args(["apply", "--rollout-id", "rollout-9-9", "--interval", "2"]).args(FENCE_ARGS).current_dir(d.path()).env_remove("SEMANTOS_FAULT").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = run_in(d.path(), &fence_cmd(&["rollback", "--fence-rollout", "rollout-9-9"]));
    let (_, err) = text(&o);
    // Nothing was applied yet, so there is nothing to restore; the fence is up all the same.
    assert!(err.contains("nothing to roll back"), "{err}");
    assert!(d.path().join("b/fenced/rollout-9-9").exists());
    let o = late.wait_with_output().unwrap();
    let (_, err) = text(&o);
    assert!(!o.status.success() && err.contains("was rolled back on this host"), "the late apply: {err}");
    assert_eq!(std::fs::read_to_string(&somaxconn).unwrap().trim(), "128");
}

/// Two applies persisting to the same drop-in inside a namespace: the file holds both changes, and a
/// rollback restores both keys and removes the file it created (it would bring them back at boot).
#[test]
fn persist_keeps_values_an_earlier_apply_persisted() {
    if !privileged("persist_keeps_values_an_earlier_apply_persisted") {
        return;
    }
    let host_before = host_net_values();
    let ns = Netns::create("persist");
    let d = tempfile::tempdir().unwrap();
    let pol = policy(d.path());
    let originals: Vec<String> = KEYS[..2].iter().map(|k| ns.read(k)).collect();
    let (_, new) = plan(d.path(), |k| ns.read(k));
    let dropin = d.path().join("99-semantos.conf").display().to_string();
    for (i, (k, v)) in new[..2].iter().enumerate() {
        let p = d.path().join(format!("plan{i}.conf"));
        std::fs::write(&p, format!("{k} = {v}\n")).unwrap();
        let p = p.display().to_string();
        let a = args(d.path(), &pol, &["--plan", &p, "--persist", &dropin]);
        let mut apply = vec!["apply"];
        apply.extend(a.iter().map(String::as_str));
        ok(&ns.semantos(d.path(), &apply, &[]), "apply");
    }
    let persisted: Vec<(String, String)> = semantos::sysctl::sysctld::parse_file(Path::new(&dropin)).unwrap().into_iter().map(|a| (a.key.to_string(), a.value)).collect();
    let mut want = new[..2].to_vec();
    want.sort();
    assert_eq!(persisted, want, "the first apply's persisted value was dropped");
    let a = args(d.path(), &pol, &[]);
    let mut rb = vec!["rollback"];
    let rb_args = for_verb("rollback", &a);
    rb.extend(rb_args.iter().map(String::as_str));
    let out = ok(&ns.semantos(d.path(), &rb, &[]), "rollback");
    assert!(out.contains(&format!("removed drop-in {dropin}")), "{out}");
    assert!(!Path::new(&dropin).exists());
    assert_eq!(KEYS[..2].iter().map(|k| ns.read(k)).collect::<Vec<_>>(), originals);
    assert_eq!(host_net_values(), host_before, "the host's values moved");
}

/// A sandbox tree (somaxconn 128, swappiness 60) and two plans: `a.conf` (swappiness 30), `b.conf` (somaxconn 1024).
fn two_plans_on_a_sandbox_tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (k, v) in [("net/core/somaxconn", "128"), ("vm/swappiness", "60")] {
        let p = d.path().join("tree").join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{v}\n")).unwrap();
    }
    std::fs::write(d.path().join("a.conf"), "vm.swappiness = 30\n").unwrap();
    std::fs::write(d.path().join("b.conf"), "net.core.somaxconn = 1024\n").unwrap();
    d
}

/// `rollback --last` on a sandbox tree undoes the newest apply only; plain `rollback` then restores the rest.
#[test]
fn rollback_last_keeps_an_earlier_apply() {
    let d = two_plans_on_a_sandbox_tree();
    let common = ["--sysctl-root", "tree", "--backup", "b/backup.json", "--audit-log", "a.jsonl", "--monitor-seconds", "0", "--interval", "0.05"];
    let read = |k: &str| std::fs::read_to_string(d.path().join("tree").join(k)).unwrap().trim().to_string();
    for plan in ["a.conf", "b.conf"] {
        let mut v = vec!["apply", "--plan", plan];
        v.extend(common);
        ok(&run_in(d.path(), &v), "sandbox apply");
    }
    let mut v = vec!["rollback", "--last"];
    v.extend(&common[..6]);
    let out = ok(&run_in(d.path(), &v), "rollback --last");
    assert!(out.contains("net.core.somaxconn: 1024 → 128"), "{out}");
    assert_eq!((read("net/core/somaxconn"), read("vm/swappiness")), ("128".to_string(), "30".to_string()), "the earlier apply was undone too");
    let mut v = vec!["rollback"];
    v.extend(&common[..6]);
    ok(&run_in(d.path(), &v), "rollback");
    assert_eq!(read("vm/swappiness"), "60");
}

/// A fleet's final restore of rollout B (`rollback --fence-rollout B`) leaves rollout A's committed values.
#[test]
fn a_fleet_restore_of_one_rollout_keeps_an_earlier_rollout() {
    let d = two_plans_on_a_sandbox_tree();
    let common = ["--sysctl-root", "tree", "--backup", "b/backup.json", "--audit-log", "a.jsonl", "--monitor-seconds", "0", "--interval", "0.05"];
    let read = |k: &str| std::fs::read_to_string(d.path().join("tree").join(k)).unwrap().trim().to_string();
    for (plan, id) in [("a.conf", "rollout-a"), ("b.conf", "rollout-b")] {
        let mut v = vec!["apply", "--plan", plan, "--rollout-id", id];
        v.extend(common);
        ok(&run_in(d.path(), &v), "sandbox apply");
    }
    let mut v = vec!["rollback", "--fence-rollout", "rollout-b"];
    v.extend(&common[..6]);
    ok(&run_in(d.path(), &v), "fleet restore of rollout-b");
    assert_eq!((read("net/core/somaxconn"), read("vm/swappiness")), ("128".to_string(), "30".to_string()), "rollout-a was undone too");
}

/// Builds a reserved-ports list of 1000 single ports (about 6 KB of text) in `ns`: the first
/// write at offset 0 sets the list, and each further write at a later offset adds to it (the
/// kernel takes at most 4095 bytes in one write).
const LONG_RESERVED_PORTS: &str = r#"
import os
p = "/proc/sys/net/ipv4/ip_local_reserved_ports"
ports = [str(x) for x in range(20000, 22000, 2)]
fd = os.open(p, os.O_WRONLY)
off = 0
for i in range(0, len(ports), 200):
    part = ",".join(ports[i:i + 200])
    os.pwrite(fd, part.encode(), off)
    off += len(part) + 1
os.close(fd)
"#;

#[test]
fn a_sysctl_value_longer_than_one_read_is_read_whole_and_the_key_is_not_changed() {
    if !privileged("a_sysctl_value_longer_than_one_read_is_read_whole_and_the_key_is_not_changed") {
        return;
    }
    // The store read 4 KiB chunks; the kernel answers a read past offset 0 of this file with
    // end-of-file, so the backup held the list cut after 4096 bytes, mid-number, and a rollback
    // would have put that back. A value this long cannot be written back in one write either.
    let ns = Netns::create("longval");
    let key = "net.ipv4.ip_local_reserved_ports";
    let o = Command::new("ip").args(["netns", "exec", &ns.name, "python3", "-c", LONG_RESERVED_PORTS]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole = ns.read(key);
    assert!(whole.len() > 4096 && whole.ends_with("21998"), "{} bytes: …{}", whole.len(), &whole[whole.len().saturating_sub(20)..]);
    let d = tempfile::tempdir().unwrap();
    let pol = d.path().join("policy.yaml");
    std::fs::write(&pol, format!("whitelist: [\"{key}\"]\n")).unwrap();
    std::fs::write(d.path().join("plan.conf"), format!("{key} = 8080\n")).unwrap();
    let pol = pol.display().to_string();
    let a = args(d.path(), &pol, &["--plan", "plan.conf"]);
    let mut v = vec!["apply"];
    v.extend(a.iter().map(String::as_str));
    let o = ns.semantos(d.path(), &v, &[]);
    let (out, err) = text(&o);
    // The message quotes the length the store read: the whole list, not its first 4096 bytes.
    assert!(out.contains("restorable") && out.contains(&format!("value in force is {} bytes", whole.len())), "{out}\n{err}");
    assert_eq!(ns.read(key), whole, "the list was changed");
}
