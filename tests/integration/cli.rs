//! The command line a newcomer meets: help, diagnose from a CSV, plans as files.

use crate::support::{run_in, text};
use std::path::Path;

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/sample_telemetry.csv").display().to_string()
}

#[test]
fn help_lists_every_command_and_each_has_help() {
    let d = tempfile::tempdir().unwrap();
    let (out, _) = text(&run_in(d.path(), &["--help"]));
    for cmd in ["reproduce", "diagnose", "recommend", "apply", "rollback", "dry-run", "simulate", "--applier", "--seed", "--trials", "--plan", "--config"] {
        assert!(out.contains(cmd), "--help lacks {cmd}:\n{out}");
    }
    // Every subcommand the parser defines, nested ones too, is listed and has a help page.
    use clap::CommandFactory;
    let root = semantos::cli::args::Cli::command();
    let mut paths: Vec<Vec<String>> = root.get_subcommands().map(|c| vec![c.get_name().to_string()]).collect();
    let mut i = 0;
    while i < paths.len() {
        let mut c = &root;
        for name in &paths[i] {
            c = c.find_subcommand(name).unwrap();
        }
        let parent = paths[i].clone();
        paths.extend(c.get_subcommands().map(|s| parent.iter().cloned().chain([s.get_name().to_string()]).collect()));
        i += 1;
    }
    assert!(paths.len() > 15, "{paths:?}");
    for path in &paths {
        if path.len() == 1 {
            assert!(out.contains(&format!("  {}", path[0])), "--help lacks {}:\n{out}", path[0]);
        }
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let o = run_in(d.path(), &args);
        assert!(o.status.success() && !o.stdout.is_empty(), "{} --help", path.join(" "));
    }
    let o = run_in(d.path(), &["completions", "bash"]);
    assert!(text(&o).0.contains("semantos"));
}

#[test]
fn diagnose_reads_the_sample_telemetry() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(d.path(), &["diagnose", "--telemetry", &sample()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for id in ["accept_queue_overflow", "dirty_writeback_stalls", "softnet_backlog_drops", "swap_in_stalls"] {
        assert!(out.contains(&format!("[{id}]")), "{id} missing:\n{out}");
    }
    assert!(out.contains("evidence: netstat.TcpExt.ListenOverflows"), "{out}");
    let o = run_in(d.path(), &["--json", "diagnose", "--telemetry", &sample()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema_version"], 2);
}

#[test]
fn malformed_telemetry_is_refused_with_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(sample()).unwrap();
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    lines[2] = lines[2].replacen(",8,", ",eight,", 1);
    std::fs::write(d.path().join("bad.csv"), lines.join("\n")).unwrap();
    let o = run_in(d.path(), &["diagnose", "--telemetry", "bad.csv"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.csv:3") && err.contains("ncpus"), "{err}");
    std::fs::write(d.path().join("one.csv"), good.lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
    let (_, err) = text(&run_in(d.path(), &["diagnose", "--telemetry", "one.csv"]));
    assert!(err.contains("at least 2 are needed"), "{err}");
}

#[test]
fn recommend_writes_a_plan_that_reproduce_accepts() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("tree/net/core")).unwrap();
    std::fs::write(d.path().join("tree/net/core/somaxconn"), "128\n").unwrap();
    std::fs::create_dir_all(d.path().join("tree/vm")).unwrap();
    std::fs::write(d.path().join("tree/vm/swappiness"), "60\n").unwrap();
    let o = run_in(d.path(), &["recommend", "--telemetry", &sample(), "--sysctl-root", "tree", "--out", "plan.json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.path().join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["schema_version"], 1);
    let changes = plan["changes"].as_array().unwrap();
    let c = changes.iter().find(|c| c["key"] == "net.core.somaxconn").expect("somaxconn proposed");
    assert_eq!(c["from"], "128");
    assert!(c["rationale"].as_str().unwrap().contains("accept"), "{c}");
    assert!(c["evidence"][0].as_str().unwrap().contains("ListenOverflows"), "{c}");
    assert!(plan["considered"].as_array().unwrap().iter().any(|x| x["reason"].as_str().unwrap().contains("does not exist")));
    let o = run_in(d.path(), &["--plan", "plan.json", "--trials", "2", "--sandbox-dir", "sb", "--results-dir", "res", "--audit-log", "a.jsonl"]);
    assert!(o.status.success(), "{}", text(&o).1);
}

/// A sandbox sysctl tree under `dir/tree` holding `values`.
fn tree(dir: &Path, values: &[(&str, &str)]) {
    for (k, v) in values {
        let f = dir.join("tree").join(k.replace('.', "/"));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, format!("{v}\n")).unwrap();
    }
}

/// `semantos export sysctl.d` of `plan` against the sandbox tree (no /proc: no host facts).
fn export(dir: &Path, plan: &str) -> std::process::Output {
    run_in(dir, &["export", "sysctl.d", "--plan", plan, "--sysctl-root", "tree", "--proc-root", "no-proc", "--out", "out.conf"])
}

#[test]
fn export_rejects_a_plan_apply_rejects_for_an_invariant() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &[("vm.dirty_ratio", "20"), ("vm.dirty_background_ratio", "10"), ("vm.dirty_bytes", "0")]);
    std::fs::write(d.path().join("plan.conf"), "vm.dirty_ratio = 5\n").unwrap();
    let o = export(d.path(), "plan.conf");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("[invariant] vm.dirty_background_ratio < vm.dirty_ratio must hold, but the result would be 10 vs 5") && err.contains("nothing was exported"), "{err}");
    assert!(!d.path().join("out.conf").exists());
}

#[test]
fn export_writes_the_clamped_value_apply_would_write() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &[("net.core.netdev_max_backlog", "1000"), ("vm.swappiness", "10")]);
    std::fs::write(d.path().join("plan.conf"), "net.core.netdev_max_backlog = 8192\nvm.swappiness = 10\n").unwrap();
    let o = export(d.path(), "plan.conf");
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let out = std::fs::read_to_string(d.path().join("out.conf")).unwrap();
    // Clamped as apply clamps; a value already in force stays in the drop-in.
    assert!(out.contains("net.core.netdev_max_backlog = 8000\n") && !out.contains("8192") && out.contains("vm.swappiness = 10\n"), "{out}");
    assert!(err.contains("[max-step] net.core.netdev_max_backlog: 1000 → 8192 exceeds the policy's max_step_ratio 8; clamped to 8000"), "{err}");
}

#[test]
fn export_drops_refused_keys_of_a_recommended_plan_as_apply_does() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &[("net.core.somaxconn", "128"), ("net.core.netdev_budget", "300"), ("vm.swappiness", "60"), ("vm.watermark_scale_factor", "10")]);
    let o = run_in(d.path(), &["recommend", "--telemetry", &sample(), "--sysctl-root", "tree", "--out", "plan.json"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let plan = std::fs::read_to_string(d.path().join("plan.json")).unwrap();
    assert!(plan.contains("net.core.netdev_budget"), "{plan}");
    let o = export(d.path(), "plan.json");
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let out = std::fs::read_to_string(d.path().join("out.conf")).unwrap();
    assert!(out.contains("net.core.somaxconn = 1024\n") && out.contains("vm.swappiness = 10\n") && !out.contains("netdev_budget"), "{out}");
    assert!(err.contains("net.core.netdev_budget left out: refuse [whitelist] net.core.netdev_budget is not in the policy whitelist"), "{err}");
}

#[test]
fn dry_run_shows_the_live_value_and_the_drift_from_the_plan() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &[("vm.swappiness", "60")]);
    let plan = r#"{"schema_version": 1, "created_by": "hand", "intent": "latency", "changes": [{"key": "vm.swappiness", "from": "33", "to": "10", "rationale": "r"}]}"#;
    std::fs::write(d.path().join("plan.json"), plan).unwrap();
    let args = ["dry-run", "--telemetry", &sample(), "--sysctl-root", "tree", "--plan", "plan.json"];
    let o = run_in(d.path(), &args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let row = out.lines().find(|l| l.trim_start().starts_with("vm.swappiness ")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("60 *") && !row.contains("33"), "{row}");
    assert!(out.contains("vm.swappiness: the plan says from 33, the live value is 60"), "{out}");
    let o = run_in(d.path(), &[&["--json"][..], &args].concat());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = &v["checked"]["changes"][0];
    assert_eq!((c["change"]["from"].as_str(), c["plan_from"].as_str()), (Some("60"), Some("33")), "{c}");
}
