//! The shape of the command line: each command takes exactly its flags, a
//! flag it does not take is a usage error that writes nothing, the seed's
//! spellings still parse, state lives in one place whatever the current
//! directory, the exit-code table holds case by case, and the man pages
//! render without warnings.

use crate::support::{bin, files_under, text};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const JSON: &[&str] = &["json"];
const KB: &[&str] = &["kb"];
const PLAN: &[&str] = &["plan", "policy", "intent"];
const TEL: &[&str] = &["telemetry", "proc-root", "interval"];
const STATE: &[&str] = &["state-dir", "backup"];
const WATCH: &[&str] = &["monitor-seconds", "health-cmd", "persist"];
const REPRO: &[&str] = &["seed", "trials", "config"];
const RESULTS: &[&str] = &["sandbox-dir", "results-dir"];
const SCENARIO: &[&str] = &["scenario", "quick", "grid", "allow-host", "out-dir"];
const LLM: &[&str] = &[
    "llm-url", "llm-model", "llm-config", "llm-timeout", "llm-connect-timeout", "llm-samples", "llm-tau", "llm-temperature", "llm-max-tokens", "llm-fallback", "llm-response-format", "llm-record", "llm-replay", "llm-calibration", "llm-ca-file",
];

/// Every command path and the long flags its help must list (besides --help), as groups.
fn expected() -> Vec<(&'static str, Vec<&'static [&'static str]>)> {
    vec![
        ("reproduce", vec![REPRO, PLAN, RESULTS, &["sysctl-conf", "audit-log"], KB, JSON]),
        ("collect", vec![&["interval", "count", "json", "proc-root", "sys-root", "out", "ebpf"]]),
        ("kb", vec![]),
        ("kb list", vec![&["subsystem", "risk", "intent"], KB, JSON]),
        ("kb show", vec![&["sysctl-root"], KB, JSON]),
        ("kb validate", vec![&["live", "no-scope", "sysctl-root"], KB, JSON]),
        ("kb graph", vec![&["format"], KB, JSON]),
        ("diagnose", vec![TEL, &["samples", "watch"], KB, JSON]),
        ("recommend", vec![TEL, PLAN, &["out", "reasoner", "sysctl-root"], LLM, KB, JSON]),
        ("apply", vec![TEL, PLAN, WATCH, STATE, &["health-timeout", "audit-log", "sysctl-root", "force", "rollout-id", "objective-cmd", "stat", "goal", "column", "repeats", "cmd-timeout", "take-ownership", "owners-root"], KB, JSON]),
        ("rollback", vec![STATE, &["last", "run", "policy", "audit-log", "sysctl-root", "force", "fence-rollout"], KB, JSON]),
        ("dry-run", vec![TEL, PLAN, STATE, &["sysctl-root"], KB, JSON]),
        ("simulate", vec![REPRO, &["out", "windows", "seconds", "policy", "intent"], KB, JSON]),
        ("bench", vec![PLAN, &["quick", "reps", "out-dir", "cmd", "netns", "column", "allow-host", "cmd-timeout", "grid", "tune-budget", "seed"], KB, JSON]),
        ("compare", vec![REPRO, RESULTS, LLM, SCENARIO, &["reasoners", "budget", "grid-points", "policy", "intent"], KB, JSON]),
        (
            "rollout",
            vec![
                PLAN,
                WATCH,
                &[
                    "inventory", "engine", "canary", "steps", "parallel", "host-timeout", "state", "state-dir", "resume", "rollback-fleet", "run", "limit", "remote-semantos", "copy-binary", "remote-dir", "ssh-config", "ssh-option", "connect-timeout", "ansible-playbook", "ansible-dir", "ansible-python", "interval", "health-timeout",
                ],
                KB,
                JSON,
            ],
        ),
        ("export", vec![PLAN, WATCH, &["out", "inventory", "canary", "steps", "remote-dir", "name", "include", "node-label", "priority", "namespace", "sysctl-root", "proc-root", "health-timeout"], KB, JSON]),
        (
            "tune",
            vec![
                TEL,
                PLAN,
                LLM,
                SCENARIO,
                &["objective-cmd", "column", "stat", "goal", "guard", "min-effect", "budget", "max-time", "repeats", "warmup", "cmd-timeout", "netns", "sources", "keys", "seed", "resume", "rollback", "sysctl-root", "state-dir", "audit-log", "take-ownership", "owners-root"],
                KB,
                JSON,
            ],
        ),
        ("agent", vec![&["config", "state-dir", "metrics-addr"], KB, JSON]),
        ("status", vec![STATE, &["sysctl-root", "audit-log", "owners-root"], JSON]),
        ("verify", vec![STATE, &["sysctl-root", "audit-log", "owners-root"], JSON]),
        ("completions", vec![]),
        ("man", vec![&["dir"]]),
    ]
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).current_dir(dir).env_remove("SEMANTOS_FAULT").env("SEMANTOS_STATE_DIR", dir.join("state"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running semantos")
}

/// The long flags in the Options section of a `--help` text.
fn help_flags(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in help.lines() {
        if line == "Options:" {
            inside = true;
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with(' ') {
            break;
        }
        let t = line.trim_start();
        if line.len() - t.len() > 6 {
            continue; // a wrapped description line, not a flag
        }
        let t = t.strip_prefix("-h, ").or_else(|| t.strip_prefix("-V, ")).unwrap_or(t);
        if inside && let Some(rest) = t.strip_prefix("--") {
            out.insert(rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).next().unwrap().to_string());
        }
    }
    out
}

#[test]
fn each_command_lists_only_its_flags() {
    const GLOBAL_STYLE: &[&str] = &["quiet", "verbose", "color"];
    let root = semantos::cli::args::command();
    let table = expected();
    let mut paths: Vec<Vec<String>> = root.get_subcommands().map(|c| vec![c.get_name().to_string()]).collect();
    let mut i = 0;
    while i < paths.len() {
        let mut c = &root;
        for n in &paths[i] {
            c = c.find_subcommand(n).unwrap();
        }
        let parent = paths[i].clone();
        paths.extend(c.get_subcommands().map(|s| parent.iter().cloned().chain([s.get_name().to_string()]).collect()));
        i += 1;
    }
    let d = tempfile::tempdir().unwrap();
    for path in &paths {
        let name = path.join(" ");
        let want: BTreeSet<String> = table.iter().find(|(p, _)| *p == name).unwrap_or_else(|| panic!("`{name}` is missing from the expected table")).1.iter().flat_map(|g| g.iter().map(|s| s.to_string())).chain(["help".to_string()]).collect();
        let mut c = &root;
        for n in path {
            c = c.find_subcommand(n).unwrap();
        }
        let defined: BTreeSet<String> = c.get_arguments().filter_map(|a| a.get_long().map(str::to_string)).chain(["help".to_string()]).collect();
        assert_eq!(defined, want, "`{name}` defines other flags than it uses");
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (out, _) = text(&run(d.path(), &args, &[]));
        // The output style (-q, -v, --color) is global on the top-level command: every help lists it.
        assert!(out.contains("--quiet") && out.contains("--verbose") && out.contains("--color"), "`{name} --help` lacks the global output flags:\n{out}");
        let listed: BTreeSet<String> = help_flags(&out).into_iter().filter(|f| !GLOBAL_STYLE.contains(&f.as_str())).collect();
        assert_eq!(listed, want, "`{name} --help` lists other flags:\n{out}");
        // Examples are whole commands on one line each, within 100 columns (clap wraps only lines
        // longer than that; the option descriptions are clap's to wrap).
        let after = c.get_after_help().map(|h| h.to_string()).unwrap_or_default();
        for line in after.lines() {
            assert!(line.chars().count() < 100, "`{name} --help` has a line of {} chars: {line}", line.chars().count());
            assert!(!line.trim_end().ends_with('\\'), "`{name} --help` continues a command on the next line: {line}");
        }
        if !["kb", "completions"].contains(&name.as_str()) && !name.starts_with("kb ") {
            assert!(out.contains("Examples:") || out.contains("Example:"), "`{name} --help` has no example:\n{out}");
        }
        assert!(out.contains("Exit status"), "`{name} --help` says nothing of exit status:\n{out}");
    }
    assert_eq!(paths.len(), table.len(), "the table names a command that does not exist");
}

#[test]
fn a_flag_the_command_does_not_take_is_a_usage_error_that_writes_nothing() {
    for args in [
        &["collect", "--seed", "4", "--persist", "/tmp/x.conf"][..],
        &["--seed", "4", "collect"],
        &["--plan", "p.json", "apply"],
        &["man", "--plan", "x"],
        &["rollback", "--plan", "p.json"],
        &["rollback", "--monitor-seconds", "0"],
        &["diagnose", "--sysctl-root", "/tmp"],
        &["export", "sysctl.d", "--plan", "p.json", "--health-timeout", "5"],
        &["--applier", "sysctl", "--seed", "7"],
        &["--applier", "sysctl", "--rollback", "--health-cmd", "true"],
        &["--applier", "sysctl", "--persist"],
        &["--seed", "7", "--backup", "b.json"],
        &["--health-cmd", "true"],
        &["--json", "completions", "bash"],
    ] {
        let d = tempfile::tempdir().unwrap();
        let o = run(d.path(), args, &[]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(semantos::cli::exit::INVALID), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
        assert!(files_under(d.path()).is_empty(), "{args:?} wrote {:?}", files_under(d.path()));
    }
}

#[test]
fn the_seed_spellings_still_parse() {
    use semantos::cli::args::parse;
    let ok = |argv: &[&str]| parse(std::iter::once("semantos").chain(argv.iter().copied())).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    ok(&["--seed", "7", "--trials", "20"]);
    ok(&["--config", "experiments/configs/default.yaml"]);
    ok(&["--seed", "7", "--trials", "20", "--plan", "p.conf", "--results-dir", "r", "--sandbox-dir", "s", "--sysctl-conf", "c", "--audit-log", "a", "--kb", "k", "--json"]);
    ok(&["--applier", "sysctl"]);
    ok(&["--applier", "sysctl", "--interval", "0.2", "--backup", "b.json"]);
    ok(&["--applier", "sysctl", "--apply", "--plan", "p", "--policy", "x", "--backup", "b", "--audit-log", "a", "--monitor-seconds", "0", "--health-cmd", "true", "--persist", "--interval", "0.05"]);
    ok(&["--applier", "sysctl", "--rollback", "--backup", "b", "--audit-log", "a", "--policy", "x", "--force"]);
    // What `semantos rollout` runs on each host (rollout::ssh), and what tests and docs spell.
    ok(&["--json", "apply", "--sysctl-root", "/proc/sys", "--audit-log", "/d/audit.jsonl", "--backup", "/d/b.json", "--kb", "/d/kb", "--policy", "/d/p.yaml", "--interval", "2", "--plan", "-", "--rollout-id", "r-1-1", "--monitor-seconds", "1", "--health-cmd", "true", "--persist=/etc/sysctl.d/x.conf"]);
    ok(&["--json", "rollback", "--sysctl-root", "/proc/sys", "--audit-log", "/d/audit.jsonl", "--backup", "/d/b.json", "--policy", "/d/p.yaml", "--fence-rollout", "r-1-1"]);
    ok(&["--json", "recommend", "--sysctl-root", "/proc/sys", "--interval", "2", "--intent", "latency"]);
    ok(&["--json", "diagnose", "--telemetry", "x.csv"]);
    let r = ok(&["--sandbox-dir", "sb", "--results-dir", "res", "--audit-log", "a.jsonl", "reproduce", "--seed", "7", "--trials", "5"]);
    match r.command {
        Some(semantos::cli::args::Command::Reproduce(a)) => {
            assert_eq!((a.results.sandbox_dir.to_str(), a.results.results_dir.to_str(), a.audit_log.as_deref().and_then(|p| p.to_str()), a.repro.seed), (Some("sb"), Some("res"), Some("a.jsonl"), Some(7)));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse(["semantos", "--seed", "7", "reproduce", "--seed", "8"]).is_err(), "a flag given twice");
    ok(&["--json", "kb", "show", "vm.swappiness"]);
    ok(&["compare", "--reasoners", "rules,llm", "--trials", "3", "--llm-url", "http://x/v1", "--llm-model", "m"]);
}

/// A sandbox tree with two keys, a plan for them, in `dir`.
fn sandbox(dir: &Path) {
    for (k, v) in [("net/core/somaxconn", "128"), ("vm/swappiness", "60"), ("vm/dirty_ratio", "20"), ("vm/dirty_background_ratio", "10")] {
        let p = dir.join("tree").join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{v}\n")).unwrap();
    }
    std::fs::write(dir.join("plan.conf"), "net.core.somaxconn = 1024\nvm.swappiness = 10\n").unwrap();
}

fn somaxconn(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("tree/net/core/somaxconn")).unwrap().trim().to_string()
}

const APPLY: &[&str] = &["apply", "--sysctl-root", "tree", "--monitor-seconds", "0", "--interval", "0.05", "--plan", "plan.conf"];

#[test]
fn a_rollback_finds_the_apply_from_any_directory_and_without_a_backup_creates_nothing() {
    let d = tempfile::tempdir().unwrap();
    sandbox(d.path());
    let state = d.path().join("state");
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let tree = d.path().join("tree").display().to_string();
    // No backup yet: refused with exit 3, and neither the state directory nor a lock file appears.
    let o = run(&elsewhere, &["rollback", "--sysctl-root", &tree], &[("SEMANTOS_STATE_DIR", state.to_str().unwrap())]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(semantos::cli::exit::REFUSED), "{err}");
    assert!(err.contains("no backup at") && err.contains(&state.display().to_string()), "{err}");
    assert!(!state.exists() && files_under(&elsewhere).is_empty(), "a rollback with no backup created files");
    // Apply from one directory, roll back from another: the state is in the state directory.
    let o = run(d.path(), APPLY, &[("SEMANTOS_STATE_DIR", state.to_str().unwrap())]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(somaxconn(d.path()), "1024");
    assert!(state.join("sysctl_backup.json").exists() && state.join("audit.jsonl").exists());
    assert!(!d.path().join("experiments").exists() && !d.path().join("logs").exists(), "state landed in the current directory");
    let o = run(&elsewhere, &["rollback", "--sysctl-root", &tree], &[("SEMANTOS_STATE_DIR", state.to_str().unwrap())]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(somaxconn(d.path()), "128");
    // An explicit --backup wins over the state directory; --state-dir over the variable.
    let other = d.path().join("other");
    let o = run(d.path(), &[APPLY, &["--state-dir", other.to_str().unwrap()]].concat(), &[("SEMANTOS_STATE_DIR", state.to_str().unwrap())]);
    assert!(o.status.success() && other.join("sysctl_backup.json").exists(), "{}", text(&o).1);
    let o = run(d.path(), &["rollback", "--sysctl-root", "tree", "--state-dir", other.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o).1);
    let o = run(d.path(), &[APPLY, &["--backup", "mine/b.json"]].concat(), &[]);
    assert!(o.status.success() && d.path().join("mine/b.json").exists(), "{}", text(&o).1);
}

#[test]
fn in_a_checkout_the_seed_paths_hold() {
    let d = tempfile::tempdir().unwrap();
    sandbox(d.path());
    std::fs::write(d.path().join("Cargo.toml"), "[package]\nname = \"semantos\"\nversion = \"0.0.0\"\n").unwrap();
    let o = Command::new(bin()).args(APPLY).current_dir(d.path()).env_remove("SEMANTOS_STATE_DIR").env_remove("SEMANTOS_FAULT").output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(d.path().join("experiments/backup/sysctl_backup.json").exists() && d.path().join("logs/semantos-audit.jsonl").exists());
    let o = Command::new(bin()).args(["rollback", "--sysctl-root", "tree"]).current_dir(d.path()).env_remove("SEMANTOS_STATE_DIR").output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(somaxconn(d.path()), "128");
}

/// A fault-injection build SIGKILLs itself mid-apply, leaving the journal of an interrupted run.
#[test]
#[cfg_attr(not(feature = "fault-injection"), ignore = "needs --features fault-injection")]
fn the_recovery_hint_repeats_the_flags_given_and_copying_it_restores() {
    let d = tempfile::tempdir().unwrap();
    sandbox(d.path());
    let flags = ["--sysctl-root", "tree", "--backup", "my state/b.json", "--audit-log", "a.jsonl"];
    let o = Command::new(bin()).args(APPLY).args(["--backup", "my state/b.json", "--audit-log", "a.jsonl"]).current_dir(d.path()).env("SEMANTOS_FAULT", "kill-after#1").output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o).1);
    let o = run(d.path(), &[APPLY, &flags[2..]].concat(), &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(semantos::cli::exit::REFUSED), "{err}");
    let hint = err.split('`').find(|s| s.starts_with("semantos rollback")).unwrap_or_else(|| panic!("no hint: {err}"));
    assert_eq!(hint, "semantos rollback --sysctl-root tree --backup 'my state/b.json' --audit-log a.jsonl");
    // Copy the hint into a shell: it restores the same tree from the same backup.
    let o = Command::new("sh").arg("-c").arg(hint.replacen("semantos", &bin().display().to_string(), 1)).current_dir(d.path()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(somaxconn(d.path()), "128");
    let _ = flags;
}

fn exit_case(name: &str, dir: &Path, args: &[&str], want: i32) {
    let o = run(dir, args, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(want), "{name}: {args:?}\n{out}\n{err}");
}

#[test]
fn every_exit_code_of_the_table_case_by_case() {
    use semantos::cli::exit::*;
    let d = tempfile::tempdir().unwrap();
    sandbox(d.path());
    std::fs::write(d.path().join("aslr.conf"), "kernel.randomize_va_space = 0\n").unwrap();
    let t = d.path();
    exit_case("bad flag", t, &["apply", "--no-such-flag"], INVALID);
    exit_case("missing policy file", t, &[APPLY, &["--policy", "missing.yaml"]].concat(), INVALID);
    exit_case("missing plan", t, &["apply", "--sysctl-root", "tree", "--monitor-seconds", "0", "--interval", "0.05", "--plan", "missing.conf"], INVALID);
    exit_case("guardrail rejection", t, &["apply", "--sysctl-root", "tree", "--monitor-seconds", "0", "--interval", "0.05", "--plan", "aslr.conf"], INVALID);
    exit_case("no backup", t, &["rollback", "--sysctl-root", "tree"], REFUSED);
    exit_case("rolled back by the health command", t, &[APPLY, &["--health-cmd", "exit 1"]].concat(), ROLLED_BACK);
    assert_eq!(somaxconn(t), "128", "the rolled-back apply left a value");
    // Lock held: another process holds the state directory's lock (flock(1), as a run would).
    std::fs::create_dir_all(t.join("state")).unwrap();
    // -o: the lock stays with flock itself (not with `sleep`), so killing flock releases it.
    let mut holder = Command::new("flock").arg("-o").arg(t.join("state/semantos.lock")).args(["sleep", "30"]).spawn().expect("flock (util-linux)");
    std::thread::sleep(std::time::Duration::from_millis(300));
    exit_case("lock held", t, APPLY, REFUSED);
    let _ = holder.kill();
    let _ = holder.wait();
    exit_case("ok", t, APPLY, OK);
    // Not root: writing the live /proc/sys is refused before anything is read.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let live = ["apply", "--monitor-seconds", "0", "--plan", "plan.conf"];
    let o = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(bin()).args(live).current_dir(t).env("SEMANTOS_STATE_DIR", t.join("nobody"));
        match c.output() {
            Ok(o) => o,
            Err(e) => return eprintln!("skipping the not-root case: no setpriv ({e})"),
        }
    } else {
        run(t, &live, &[])
    };
    assert_eq!(o.status.code(), Some(REFUSED), "not root: {}", text(&o).1);
    assert!(text(&o).1.contains("needs root"), "{}", text(&o).1);
}

#[test]
#[cfg_attr(not(feature = "fault-injection"), ignore = "needs --features fault-injection")]
fn an_interrupted_run_pending_is_refused_with_exit_3() {
    let d = tempfile::tempdir().unwrap();
    sandbox(d.path());
    let o = Command::new(bin()).args(APPLY).current_dir(d.path()).env("SEMANTOS_STATE_DIR", d.path().join("state")).env("SEMANTOS_FAULT", "kill-before#2").output().unwrap();
    assert!(!o.status.success());
    exit_case("interrupted run pending", d.path(), APPLY, semantos::cli::exit::REFUSED);
    exit_case("rollback of it", d.path(), &["rollback", "--sysctl-root", "tree"], semantos::cli::exit::OK);
    assert_eq!(somaxconn(d.path()), "128");
}

#[test]
fn a_plan_on_standard_input_works_in_both_formats() {
    let d = tempfile::tempdir().unwrap();
    sandbox(d.path());
    let json = r#"{"schema_version":1,"created_by":"test","intent":"latency","changes":[{"key":"vm.swappiness","to":"10","rationale":"r"}]}"#;
    for (what, text_in) in [("sysctl.d", "vm.swappiness = 10\n"), ("json", json)] {
        for cmd in [&["dry-run", "--sysctl-root", "tree", "--interval", "0.05", "--plan", "-"][..], &["export", "sysctl.d", "--sysctl-root", "tree", "--plan", "-"], &["recommend", "--sysctl-root", "tree", "--interval", "0.05", "--plan", "-"]] {
            let mut c = Command::new(bin());
            c.args(cmd).current_dir(d.path()).env("SEMANTOS_STATE_DIR", d.path().join("state")).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text_in.as_bytes()).unwrap();
            let o = child.wait_with_output().unwrap();
            let (out, err) = text(&o);
            assert!(o.status.success(), "{what} {cmd:?}: {err}");
            assert!(out.contains("vm.swappiness"), "{what} {cmd:?}: {out}");
        }
    }
    // A broken plan on stdin is invalid input naming standard input.
    let mut child = Command::new(bin()).args(["dry-run", "--sysctl-root", "tree", "--interval", "0.05", "--plan", "-"]).current_dir(d.path()).stdin(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).stdout(std::process::Stdio::null()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"vm.swappiness 10 = = \n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("<stdin>"), "{}", text(&o).1);
}

#[test]
fn monitor_seconds_zero_means_the_same_from_the_flag_and_the_policy() {
    let d = tempfile::tempdir().unwrap();
    sandbox(d.path());
    std::fs::write(d.path().join("policy.yaml"), "monitor_seconds: 0\nwhitelist: [\"net.core.*\", \"vm.*\"]\n").unwrap();
    let base = ["apply", "--sysctl-root", "tree", "--interval", "0.05", "--plan", "plan.conf"];
    for (how, extra) in [("flag", &["--monitor-seconds", "0"][..]), ("policy", &["--policy", "policy.yaml"][..])] {
        for (health, want) in [("true", 0), ("exit 1", semantos::cli::exit::ROLLED_BACK)] {
            let state = d.path().join(format!("state-{how}-{}", want));
            let o = run(d.path(), &[&base[..], extra, &["--health-cmd", health, "--state-dir", state.to_str().unwrap(), "--json"]].concat(), &[]);
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(want), "{how} {health}: {err}");
            assert!(out.contains("monitor window 0 s"), "{how} {health}: {out}");
            if want == 0 {
                assert!(run(d.path(), &["rollback", "--sysctl-root", "tree", "--state-dir", state.to_str().unwrap()], &[]).status.success());
            }
        }
    }
    for bad in ["-1", "NaN", "90000"] {
        exit_case("bad --monitor-seconds", d.path(), &[&base[..], &["--monitor-seconds", bad]].concat(), 2);
    }
}

/// The checkout's commit, as `git rev-parse --short HEAD` gives it; `None` outside git.
fn checkout_commit() -> Option<String> {
    let o = Command::new("git").arg("-C").arg(env!("CARGO_MANIFEST_DIR")).args(["rev-parse", "--short", "HEAD"]).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The digest of the checkout's kb/*.toml files, computed as build.rs does (FNV-1a over each
/// file's name and bytes, in name order, top 48 bits): what `--version` must name.
fn kb_digest() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kb");
    let mut files: Vec<PathBuf> = files_under(&dir).into_iter().filter(|p| p.parent() == Some(dir.as_path()) && p.extension().is_some_and(|x| x == "toml")).collect();
    files.sort();
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for b in name.bytes().chain([0]).chain(std::fs::read(&f).unwrap()).chain([0]) {
            digest = (digest ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:012x}", digest >> 16)
}

#[test]
fn version_names_the_commit_and_the_kb() {
    let d = tempfile::tempdir().unwrap();
    let (out, _) = text(&run(d.path(), &["--version"], &[]));
    let v = out.trim();
    assert!(v.starts_with(&format!("semantos {} (commit ", env!("CARGO_PKG_VERSION"))) && v.contains(", kb "), "{v}");
    let commit = v.split("(commit ").nth(1).unwrap().split(',').next().unwrap();
    // Built from this checkout: the commit it names is the checkout's (build.rs reruns when HEAD moves).
    match checkout_commit() {
        Some(head) => assert_eq!(commit.trim_end_matches("-dirty"), head, "{v}"),
        None => assert_eq!(commit, "unknown", "{v}"),
    }
    let kb = v.split(", kb ").nth(1).unwrap().trim_end_matches(')');
    assert_eq!(kb, kb_digest(), "--version names another KB than the kb/*.toml files built in: {v}");
}

#[test]
fn every_command_reports_a_usage_error_under_json_as_a_versioned_object() {
    let root = semantos::cli::args::command();
    let mut paths: Vec<Vec<String>> = vec![vec![]];
    let mut i = 0;
    while i < paths.len() {
        let mut c = &root;
        for n in &paths[i] {
            c = c.find_subcommand(n).unwrap();
        }
        let parent = paths[i].clone();
        paths.extend(c.get_subcommands().filter(|s| s.get_name() != "help").map(|s| parent.iter().cloned().chain([s.get_name().to_string()]).collect()));
        i += 1;
    }
    let d = tempfile::tempdir().unwrap();
    for path in &paths {
        let words: Vec<&str> = path.iter().map(String::as_str).collect();
        // `--json` first (global spelling) and, for a command that takes it, after the command.
        let mut spellings = vec![[&["--json"][..], &words, &["--no-such-flag"]].concat()];
        if !path.is_empty() && expected().iter().any(|(p, groups)| *p == path.join(" ") && groups.iter().any(|g| g.contains(&"json"))) {
            spellings.push([&words[..], &["--json", "--no-such-flag"]].concat());
        }
        for args in spellings {
            let o = run(d.path(), &args, &[]);
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(semantos::cli::exit::INVALID), "{args:?}: {err}");
            assert_eq!(out, "", "{args:?}: stdout must stay empty");
            let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "{args:?}: stderr must be one JSON object:\n{err}");
            let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{args:?}: {e}:\n{err}"));
            assert_eq!((v["schema_version"].as_u64(), v["kind"].as_str(), v["exit_code"].as_i64()), (Some(1), Some("error"), Some(2)), "{args:?}: {v}");
        }
    }
    assert!(files_under(d.path()).is_empty(), "a usage error wrote {:?}", files_under(d.path()));
}

fn renders_without_warnings(page: &Path) -> Result<(), String> {
    // -k: preconv, as man(1) runs it, for the UTF-8 in the help texts (τ, —).
    let o = Command::new("groff").args(["-k", "-man", "-ww", "-z", "-Tutf8"]).arg(page).output().map_err(|e| format!("groff: {e}"))?;
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() || !err.trim().is_empty() { Err(format!("{}: {err}", page.display())) } else { Ok(()) }
}

#[test]
fn every_man_page_renders_without_warnings_and_see_also_names_only_pages_that_exist() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("man1");
    let o = run(d.path(), &["man", "--dir", dir.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o).1);
    let pages: Vec<PathBuf> = files_under(&dir);
    let names: BTreeSet<String> = pages.iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    for sub in ["semantos", "semantos-apply", "semantos-rollback", "semantos-kb", "semantos-kb-show", "semantos-man", "semantos-export"] {
        assert!(names.contains(sub), "no page {sub}: {names:?}");
    }
    if Command::new("groff").arg("-v").output().is_err() {
        if std::env::var("SEMANTOS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("groff is missing (scripts/setup/00-system.sh installs it)");
        }
        return eprintln!("skipping the rendering check: no groff");
    }
    for p in &pages {
        renders_without_warnings(p).unwrap();
        let roff = std::fs::read_to_string(p).unwrap();
        for section in ["EXIT STATUS", "FILES", "ENVIRONMENT", "SYNOPSIS"] {
            assert!(roff.contains(section), "{} lacks {section}", p.display());
        }
        // Every page reference, in SEE ALSO and in the subcommand list, names a generated page.
        for r in roff.split(|c: char| c.is_whitespace() || c == ',').filter_map(|w| w.strip_suffix("(1)")).filter(|r| !r.is_empty()) {
            let r = r.trim_start_matches("\\fB").trim_end_matches("\\fR").replace("\\-", "-");
            assert!(names.contains(&r), "{} refers to {r}(1), which was not generated", p.display());
        }
        for r in roff.lines().filter_map(|l| l.strip_prefix(".BR ")).filter_map(|l| l.split(' ').next()) {
            assert!(names.contains(&r.replace("\\-", "-")), "{} refers to {r}(1)", p.display());
        }
    }
    let (out, _) = text(&run(d.path(), &["man"], &[]));
    assert!(out.contains(".TH SEMANTOS 1"), "{out}");
}
