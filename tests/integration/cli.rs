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
    assert_eq!(v["schema_version"], 1);
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
