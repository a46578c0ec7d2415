//! The namespace the binary runs in, on the real kernel (root): inside a
//! child network namespace a key that namespace cannot write
//! (`netns_read_only`, global) is refused by the dry run with the command to
//! run on the host, and the apply writes nothing; a host-wide `vm.*` change
//! is flagged. In the initial namespace the same plan is not refused for
//! its scope.

use crate::support::{Netns, privileged, run_in, text};
use std::path::Path;

fn common(dir: &Path) -> Vec<String> {
    let pol = dir.join("policy.yaml");
    std::fs::write(&pol, "whitelist: [\"net.core.rmem_max\", \"net.core.somaxconn\", \"vm.swappiness\"]\nmax_step_ratio: 8\n").unwrap();
    ["--policy", &pol.display().to_string(), "--backup", &dir.join("backup/sysctl_backup.json").display().to_string(), "--audit-log", &dir.join("logs/audit.jsonl").display().to_string(), "--monitor-seconds", "0.05", "--interval", "0.05"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `first --plan plan.conf` with the common flags `first` takes (a dry run writes no audit log and monitors nothing).
fn cmd<'a>(first: &'a str, common: &'a [String]) -> Vec<&'a str> {
    let mut v = vec![first, "--plan", "plan.conf"];
    for pair in common.chunks(2) {
        if first == "dry-run" && ["--audit-log", "--monitor-seconds"].contains(&pair[0].as_str()) {
            continue;
        }
        v.extend(pair.iter().map(String::as_str));
    }
    v
}

#[test]
fn a_read_only_key_planned_in_a_child_netns_is_refused_with_the_host_command_and_never_written() {
    if !privileged("a_read_only_key_planned_in_a_child_netns_is_refused_with_the_host_command_and_never_written") {
        return;
    }
    let ns = Netns::create("scope");
    let d = tempfile::tempdir().unwrap();
    let c = common(d.path());
    let rmem: i64 = ns.read("net.core.rmem_max").parse().unwrap();
    let want = rmem * 2;
    std::fs::write(d.path().join("plan.conf"), format!("net.core.rmem_max = {want}\n")).unwrap();

    let o = ns.semantos(d.path(), &cmd("dry-run", &c), &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let host_plan = d.path().join("backup/host-plan.conf");
    assert!(out.contains("verdict: refuse [scope]"), "{out}");
    assert!(out.contains("Set it on the host (initial namespace): `semantos apply --plan") && out.contains(&host_plan.display().to_string()), "{out}");
    let written = std::fs::read_to_string(&host_plan).expect("the dry run writes the refused changes as a plan for the host");
    assert!(written.contains(&format!("net.core.rmem_max = {want}")), "{written}");

    let o = ns.semantos(d.path(), &cmd("apply", &c), &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "refused before any write:\n{out}\n{err}");
    assert!(err.contains("cannot be written from this network namespace") && err.contains("nothing was written"), "{err}");
    assert!(!err.contains("EACCES"), "never attempted: {err}");
    assert_eq!(ns.read("net.core.rmem_max"), rmem.to_string());
    assert!(!d.path().join("backup/sysctl_backup.json").exists(), "no backup: nothing was about to be written");
}

#[test]
fn a_host_wide_key_proposed_from_a_child_netns_carries_a_warning() {
    if !privileged("a_host_wide_key_proposed_from_a_child_netns_carries_a_warning") {
        return;
    }
    let ns = Netns::create("scopevm");
    let d = tempfile::tempdir().unwrap();
    let c = common(d.path());
    // A dry run only: vm.* is the host's value even from inside the namespace.
    std::fs::write(d.path().join("plan.conf"), "vm.swappiness = 13\nnet.core.somaxconn = 1024\n").unwrap();
    let o = ns.semantos(d.path(), &cmd("dry-run", &c), &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("warning: vm.swappiness is host-wide"), "{out}");
    assert!(!out.contains("warning: net.core.somaxconn"), "the namespace's own key needs no warning: {out}");
    assert!(!out.contains("[scope]"), "{out}");
    assert!(!d.path().join("backup/host-plan.conf").exists());
}

#[test]
fn a_read_only_key_planned_in_the_initial_netns_is_not_refused_for_its_scope() {
    if !privileged("a_read_only_key_planned_in_the_initial_netns_is_not_refused_for_its_scope") {
        return;
    }
    if std::fs::read_link("/proc/self/ns/net").ok() != std::fs::read_link("/proc/1/ns/net").ok() {
        eprintln!("skipping: the test process is not in the initial network namespace");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let c = common(d.path());
    let rmem: i64 = crate::support::host_value("net.core.rmem_max").parse().unwrap();
    std::fs::write(d.path().join("plan.conf"), format!("net.core.rmem_max = {}\n", rmem * 2)).unwrap();
    // A dry run in the test's own (initial) namespace: nothing is written.
    let o = run_in(d.path(), &cmd("dry-run", &c));
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("net.core.rmem_max") && !out.contains("[scope]") && !out.contains("warning:"), "{out}");
    assert!(!d.path().join("backup/host-plan.conf").exists());
}
