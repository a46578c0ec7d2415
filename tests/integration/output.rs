//! What the binary prints: a versioned JSON document from every command that
//! takes `--json` (walked from the clap definitions, so a new command without
//! a case fails here), errors under `--json` as one object on stderr, colour
//! by terminal / NO_COLOR / `--color`, `--quiet`, RUST_LOG, progress lines on
//! stderr, and the "did you mean" of plan and policy keys. Sandbox trees,
//! telemetry CSVs and (root) a network namespace; nothing global changes.

use crate::support::{Netns, bin, privileged, text};
use std::path::Path;
use std::process::{Command, Output};

const CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/data/sample_telemetry.csv");

/// A sandbox tree with a few keys, a three-key plan (two batches of the default size 2), and an inventory.
fn sandbox() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (k, v) in [("net/core/somaxconn", "128"), ("vm/swappiness", "60"), ("vm/dirty_ratio", "20"), ("vm/dirty_background_ratio", "10"), ("kernel/osrelease", "6.18.0")] {
        let p = d.path().join("tree").join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{v}\n")).unwrap();
    }
    std::fs::write(d.path().join("plan.conf"), "net.core.somaxconn = 1024\nvm.swappiness = 10\nvm.dirty_ratio = 15\n").unwrap();
    std::fs::write(d.path().join("hosts.yaml"), "hosts:\n  - {name: web-1, address: 10.0.0.11}\n  - {name: web-2, address: 10.0.0.12}\n").unwrap();
    d
}

/// The flags that keep a live-host command on the sandbox tree and its files in the temp dir
/// (each command takes only the ones it uses: `--monitor-seconds` is apply's, the audit log
/// apply's and rollback's, the telemetry interval not rollback's).
fn on_tree(sub: &str) -> Vec<&'static str> {
    let mut v = vec!["--sysctl-root", "tree"];
    if sub != "recommend" {
        v.extend(["--backup", "b/backup.json"]);
    }
    if sub == "apply" || sub == "rollback" {
        v.extend(["--audit-log", "a.jsonl"]);
    }
    if sub == "apply" {
        v.extend(["--monitor-seconds", "0"]);
    }
    if sub != "rollback" {
        v.extend(["--interval", "0.05"]);
    }
    v
}

/// Runs `semantos args` in `dir` with extra environment (RUST_LOG and NO_COLOR cleared first).
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).current_dir(dir).env_remove("SEMANTOS_FAULT").env_remove("RUST_LOG").env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running semantos")
}

fn with<'a>(first: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    first.iter().chain(rest).copied().collect()
}

/// The JSON document on stdout; panics naming the command when there is none or it is unversioned.
fn document(o: &Output, what: &str) -> serde_json::Value {
    let (out, err) = text(o);
    assert!(o.status.success(), "{what} failed ({:?}):\n{out}\n{err}", o.status);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: stdout is not one JSON document ({e}):\n{out}"));
    assert!(v["schema_version"].as_u64().is_some_and(|n| n >= 1), "{what}: no schema_version:\n{out}");
    assert!(v["kind"].as_str().is_some_and(|k| !k.is_empty()), "{what}: no kind:\n{out}");
    v
}

#[test]
fn json_output_of_dry_run_recommend_apply_rollback_kb_and_others_had_no_schema_version() {
    let d = sandbox();
    let dir = d.path();
    // (subcommand path, arguments, expected kind). Order matters: apply before rollback.
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("reproduce", vec!["--json", "reproduce", "--trials", "2", "--sandbox-dir", "sb", "--results-dir", "res", "--audit-log", "a.jsonl"], "reproduction"),
        ("collect", vec!["collect", "--json", "--interval", "0.05"], "collection"),
        ("kb list", vec!["kb", "list", "--json", "--subsystem", "vm"], "kb_list"),
        ("kb show", vec!["kb", "show", "vm.swappiness", "--json"], "kb_entry"),
        ("kb validate", vec!["kb", "validate", "--json"], "kb_validation"),
        ("kb graph", vec!["kb", "graph", "--json"], "kb_graph"),
        ("diagnose", vec!["--json", "diagnose", "--telemetry", CSV], "findings"),
        ("recommend", with(&["--json", "recommend", "--telemetry", CSV], &on_tree("recommend")), "recommendation"),
        ("dry-run", with(&["--json", "dry-run", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "pol.yaml"], &on_tree("dry-run")), "dry_run"),
        ("apply", with(&["--json", "apply", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "pol.yaml"], &on_tree("apply")), "apply"),
        ("status", vec!["--json", "status", "--sysctl-root", "tree", "--backup", "b/backup.json"], "status"),
        ("verify", vec!["--json", "verify", "--sysctl-root", "tree", "--backup", "b/backup.json"], "verify"),
        ("rollback", with(&["--json", "rollback"], &on_tree("rollback")), "rollback"),
        ("simulate", vec!["--json", "simulate", "--out", "sim.csv", "--windows", "1"], "simulation"),
        ("compare", vec!["--json", "compare", "--reasoners", "rules", "--trials", "2", "--sandbox-dir", "sb", "--results-dir", "res"], "comparison"),
        ("rollout", vec!["--json", "rollout", "--inventory", "hosts.yaml", "--plan", "plan.conf", "--policy", "pol.yaml"], "rollout_dry_run"),
        ("export", vec!["--json", "export", "sysctl.d", "--plan", "plan.conf", "--policy", "pol.yaml", "--sysctl-root", "tree"], "export"),
    ];
    std::fs::write(dir.join("pol.yaml"), "whitelist: [net.core.somaxconn, vm.swappiness, vm.dirty_ratio]\n").unwrap();
    // Commands whose output is not a document, or that need what this test cannot give.
    let not_here = [("completions", "prints a shell script"), ("man", "prints roff"), ("bench", "needs root and minutes; its --json goes through the same output::print (tests/integration/bench.rs)"), ("tune", "needs a measuring command and a target to write; its versioned --json document is checked in tests/integration/tune.rs"), ("agent", "runs until a signal; its versioned --json document is checked in tests/integration/agent.rs")];
    let walked: Vec<String> = <semantos::cli::Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .flat_map(|c| {
            let name = c.get_name().to_string();
            let subs: Vec<String> = c.get_subcommands().map(|s| format!("{name} {}", s.get_name())).filter(|s| s != "kb help").collect();
            if subs.is_empty() { vec![name] } else { subs }
        })
        .filter(|n| n != "help")
        .collect();
    for name in &walked {
        assert!(cases.iter().any(|(c, _, _)| c == name) || not_here.iter().any(|(c, _)| c == name), "`semantos {name}` has no --json case here");
    }
    for (name, args, kind) in &cases {
        let v = document(&run(dir, args, &[]), name);
        assert_eq!(v["kind"], *kind, "{name}");
    }
    // What each document holds, where a consumer depends on it (the fleet engine reads these).
    let v = document(&run(dir, &with(&["--json", "apply", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "pol.yaml"], &on_tree("apply")), &[]), "apply again");
    assert_eq!(v["outcome"], "committed", "{v}");
    assert_eq!(v["applied"].as_array().map(Vec::len), Some(3), "{v}");
}

#[test]
fn errors_under_json_were_plain_text_on_stderr() {
    let d = sandbox();
    let dir = d.path();
    std::fs::write(dir.join("typo.yaml"), "extend_whitelist: [net.core.somaxcon]\n").unwrap();
    let bad: Vec<(&str, Vec<&str>)> = vec![
        ("missing telemetry file", vec!["diagnose", "--telemetry", "nope.csv"]),
        ("unknown flag", vec!["diagnose", "--no-such-flag"]),
        ("export without a plan", vec!["export", "sysctl.d", "--sysctl-root", "tree"]),
        ("unknown policy key", with(&["dry-run", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "typo.yaml"], &on_tree("dry-run"))),
        ("kb show of an unknown key", vec!["kb", "show", "vm.swapines"]),
    ];
    for (what, args) in &bad {
        let plain = run(dir, args, &[]);
        let json = run(dir, &with(&["--json"], args), &[]);
        let (out, err) = text(&json);
        assert!(!plain.status.success(), "{what}: expected a failure");
        assert_eq!(json.status.code(), plain.status.code(), "{what}: the exit code changed under --json");
        assert_eq!(out, "", "{what}: stdout under --json must stay empty");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what}: stderr must be one JSON object:\n{err}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{what}: {e}:\n{err}"));
        assert_eq!((v["schema_version"].as_u64(), v["kind"].as_str()), (Some(1), Some("error")), "{what}: {v}");
        assert_eq!(v["exit_code"].as_i64(), plain.status.code().map(i64::from), "{what}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()) && v["causes"].is_array(), "{what}: {v}");
    }
}

/// A dry run of the sandbox plan with `extra` flags and environment: (stdout, stderr).
fn dry_run(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> (String, String) {
    std::fs::write(dir.join("all.yaml"), "whitelist: [\"*\"]\n").unwrap();
    let args = with(&with(&["dry-run", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "all.yaml"], &on_tree("dry-run")), extra);
    let o = run(dir, &args, env);
    assert!(o.status.success(), "{:?}", text(&o));
    text(&o)
}

#[test]
fn verdicts_had_no_colour_and_colour_follows_the_terminal_no_color_and_the_flag() {
    let d = sandbox();
    let (out, _) = dry_run(d.path(), &[], &[]);
    assert!(out.contains("accept") && !out.contains('\x1b'), "stdout of a test is no terminal: no escape codes by default:\n{out}");
    let (out, _) = dry_run(d.path(), &["--color", "always"], &[]);
    assert!(out.contains("\x1b[32maccept\x1b[0m"), "--color always paints accept green:\n{out}");
    let (out, _) = dry_run(d.path(), &["--color", "auto"], &[("NO_COLOR", "1")]);
    assert!(!out.contains('\x1b'), "NO_COLOR=1 with --color auto:\n{out}");
    let (out, _) = dry_run(d.path(), &["--color", "never"], &[]);
    assert!(!out.contains('\x1b'), "{out}");
}

#[test]
fn quiet_did_not_exist_and_now_prints_nothing_on_success() {
    let d = sandbox();
    std::fs::write(d.path().join("all.yaml"), "whitelist: [\"*\"]\n").unwrap();
    for sub in ["apply", "rollback"] {
        let args = with(&[sub, "--quiet", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "all.yaml"], &on_tree(sub));
        let args: Vec<&str> = if sub == "rollback" { with(&[sub, "--quiet"], &on_tree("rollback")) } else { args };
        let o = run(d.path(), &args, &[]);
        assert!(o.status.success(), "{sub}: {:?}", text(&o));
        assert_eq!(text(&o), (String::new(), String::new()), "{sub} --quiet printed something");
    }
    assert_eq!(std::fs::read_to_string(d.path().join("tree/vm/swappiness")).unwrap().trim(), "60", "the quiet rollback ran");
}

#[test]
fn rust_log_did_nothing_and_now_debug_lines_go_to_stderr() {
    let d = sandbox();
    std::fs::write(d.path().join("all.yaml"), "whitelist: [\"*\"]\n").unwrap();
    let args = with(&["apply", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "all.yaml"], &on_tree("apply"));
    let o = run(d.path(), &args, &[("RUST_LOG", "debug")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(err.lines().any(|l| l.contains("DEBUG") && l.contains("writing") && l.contains("vm.swappiness")), "no debug line for the write:\n{err}");
    assert!(err.lines().any(|l| l.contains("DEBUG") && l.contains("monitor decided")), "{err}");
    assert!(!out.contains("DEBUG"), "log lines on stdout:\n{out}");
    let o = run(d.path(), &with(&["rollback"], &on_tree("rollback")), &[]);
    let (_, err) = text(&o);
    assert!(o.status.success() && !err.contains("DEBUG"), "debug lines without RUST_LOG or -vv:\n{err}");
    let o = run(d.path(), &with(&["apply", "-vv", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "all.yaml"], &on_tree("apply")), &[]);
    assert!(text(&o).1.contains("DEBUG"), "-vv shows debug lines: {:?}", text(&o));
}

/// Progress lines of an apply: one per batch on stderr, none on stdout.
fn assert_progress(o: &Output, batches: usize) {
    let (out, err) = text(o);
    assert!(o.status.success(), "{out}\n{err}");
    for i in 1..=batches {
        let lines = err.lines().filter(|l| l.contains(&format!("batch {i}/{batches} [")) && l.contains("monitoring for")).count();
        assert_eq!(lines, 1, "batch {i}/{batches}: one progress line on stderr:\n{err}");
    }
    assert!(!out.contains("monitoring for"), "progress on stdout:\n{out}");
}

#[test]
fn monitor_windows_were_silent_and_now_each_batch_shows_on_stderr() {
    let d = sandbox();
    std::fs::write(d.path().join("all.yaml"), "whitelist: [\"*\"]\nbatch_size: 2\n").unwrap();
    let o = run(d.path(), &with(&["apply", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "all.yaml"], &on_tree("apply")), &[]);
    assert_progress(&o, 2);
    // Under --json the display is off: stderr stays free for an error document.
    let o = run(d.path(), &with(&["--json", "rollback"], &on_tree("rollback")), &[]);
    assert!(o.status.success());
    let o = run(d.path(), &with(&["--json", "apply", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "all.yaml"], &on_tree("apply")), &[]);
    assert!(o.status.success() && !text(&o).1.contains("monitoring for"), "{:?}", text(&o));
}

#[test]
fn monitor_windows_were_silent_in_a_network_namespace_apply() {
    if !privileged("monitor_windows_were_silent_in_a_network_namespace_apply") {
        return;
    }
    let ns = Netns::create("progress");
    let d = tempfile::tempdir().unwrap();
    let somax: i64 = ns.read("net.core.somaxconn").parse().unwrap();
    let syn: i64 = ns.read("net.ipv4.tcp_max_syn_backlog").parse().unwrap();
    let idle: i64 = ns.read("net.ipv4.tcp_slow_start_after_idle").parse().unwrap();
    std::fs::write(d.path().join("plan.conf"), format!("net.core.somaxconn = {}\nnet.ipv4.tcp_max_syn_backlog = {}\nnet.ipv4.tcp_slow_start_after_idle = {}\n", somax / 2, syn / 2, 1 - idle)).unwrap();
    std::fs::write(d.path().join("pol.yaml"), "whitelist: [net.core.somaxconn, net.ipv4.tcp_max_syn_backlog, net.ipv4.tcp_slow_start_after_idle]\nbatch_size: 2\n").unwrap();
    let common = ["--policy", "pol.yaml", "--backup", "b/backup.json", "--audit-log", "a.jsonl"];
    let o = ns.semantos(d.path(), &with(&["apply", "--plan", "plan.conf", "--monitor-seconds", "0.3", "--interval", "0.05"], &common), &[]);
    assert_progress(&o, 2);
    let o = ns.semantos(d.path(), &with(&["rollback"], &common), &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(ns.read("net.core.somaxconn"), somax.to_string());
}

#[test]
fn misspelt_plan_key_got_no_did_you_mean() {
    let d = sandbox();
    std::fs::write(d.path().join("typo.conf"), "vm.swapines = 10\n").unwrap();
    std::fs::write(d.path().join("far.conf"), "vm.nothing_like_any_key = 10\n").unwrap();
    let o = run(d.path(), &with(&["dry-run", "--telemetry", CSV, "--plan", "typo.conf"], &on_tree("dry-run")), &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("vm.swapines has no knowledge-base entry") && out.contains("did you mean vm.swappiness?"), "{out}");
    let o = run(d.path(), &with(&["dry-run", "--telemetry", CSV, "--plan", "far.conf"], &on_tree("dry-run")), &[]);
    let (out, _) = text(&o);
    assert!(!out.contains("did you mean") && out.contains("`semantos kb list`"), "a far key gets the list, not a guess:\n{out}");
}

#[test]
fn unknown_extend_whitelist_key_was_accepted_silently() {
    let d = sandbox();
    std::fs::write(d.path().join("typo.yaml"), "extend_whitelist: [net.core.somaxcon]\n").unwrap();
    std::fs::write(d.path().join("narrow.yaml"), "whitelist: [\"*\"]\nnever_touch: [vm.swapines]\n").unwrap();
    let o = run(d.path(), &with(&["apply", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "typo.yaml"], &on_tree("apply")), &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("typo.yaml: policy.extend_whitelist: \"net.core.somaxcon\" matches no key") && err.contains("did you mean net.core.somaxconn?"), "{err}");
    assert_eq!(std::fs::read_to_string(d.path().join("tree/net/core/somaxconn")).unwrap().trim(), "128", "nothing may be written");
    assert!(!d.path().join("b/backup.json").exists());
    // never_touch only narrows: a warning, and the run goes on.
    let o = run(d.path(), &with(&["dry-run", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "narrow.yaml"], &on_tree("dry-run")), &[]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("policy.never_touch: \"vm.swapines\" matches no key").count(), 1, "one warning per run:\n{err}");
    assert!(err.contains("did you mean vm.swappiness?"), "{err}");
}

/// Runs `semantos args` in `dir` under a pseudo-terminal (`script`), stdout and stderr both on it; None without `script`.
fn on_a_terminal(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Option<String> {
    let line = std::iter::once(bin().display().to_string()).chain(args.iter().map(|a| format!("'{a}'"))).collect::<Vec<_>>().join(" ");
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"]).current_dir(dir).env_remove("SEMANTOS_FAULT").env_remove("RUST_LOG").env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    match c.output() {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => panic!("{line}: {:?}", text(&o)),
        Err(e) => {
            eprintln!("skipping the terminal checks: no `script` ({e})");
            None
        }
    }
}

#[test]
fn on_a_terminal_verdicts_are_coloured_unless_no_color_and_the_monitor_window_counts_down() {
    let d = sandbox();
    std::fs::write(d.path().join("all.yaml"), "whitelist: [\"*\"]\n").unwrap();
    let dry = with(&["dry-run", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "all.yaml"], &on_tree("dry-run"));
    let Some(out) = on_a_terminal(d.path(), &dry, &[]) else { return };
    assert!(out.contains("\x1b[32maccept\x1b[0m"), "a terminal gets colour by default:\n{out}");
    let out = on_a_terminal(d.path(), &dry, &[("NO_COLOR", "1")]).unwrap();
    assert!(out.contains("accept") && !out.contains("\x1b[32m"), "NO_COLOR=1 on a terminal:\n{out}");
    let mut apply = with(&["apply", "--telemetry", CSV, "--plan", "plan.conf", "--policy", "all.yaml"], &on_tree("apply"));
    let window = apply.iter().position(|a| *a == "--monitor-seconds").unwrap() + 1;
    apply[window] = "1";
    let out = on_a_terminal(d.path(), &apply, &[]).unwrap();
    assert!(out.contains("batch 1/2 [") && out.contains("monitoring, 1 s left"), "no bar counting the window down:\n{out}");
    assert!(!out.contains("monitoring for"), "a terminal gets the bar, not the plain lines:\n{out}");
}

#[test]
fn unknown_extend_whitelist_key_in_an_experiment_config_was_accepted_silently() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("exp.yaml"), "seed: 7\ntrials: 2\npolicy:\n  extend_whitelist: [\"net.ipv4.tcp_rmen\"]\n").unwrap();
    let o = run(d.path(), &["--config", "exp.yaml", "--sandbox-dir", "sb", "--results-dir", "res", "--audit-log", "a.jsonl"], &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("exp.yaml: policy.extend_whitelist: \"net.ipv4.tcp_rmen\" matches no key") && err.contains("did you mean net.ipv4.tcp_rmem?"), "{err}");
    assert!(!d.path().join("res").exists(), "nothing may run");
}
