//! Privileged: `semantos bench` on live workloads, each built-in scenario in
//! `--quick` mode, one after the other in one test (two benchmarks at once
//! on two cores disturb each other). For each: the pipeline found the
//! symptom, proposed the right family of change, and improved p95. Around
//! all three: the sysctls of the test's own namespace (every readable key
//! under /proc/sys/net and every KB key) are identical before and after,
//! and no namespace of the bench is left behind.
//!
//! Skips without root unless SEMANTOS_REQUIRE_PRIVILEGED=1, which makes that a failure.

use crate::support::{self, run_in, text};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Held by every test here that compares the host's sysctls before and after, and by the one test
/// that changes a global value (map-heavy's vm.max_map_count), so that no snapshot sees its arm.
static HOST_SYSCTLS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The lock above, whatever an earlier panicking holder left.
fn host_sysctls_lock() -> std::sync::MutexGuard<'static, ()> {
    HOST_SYSCTLS.lock().unwrap_or_else(|e| e.into_inner())
}

/// KB keys whose value is a counter, not a setting: it moves with every fork on the machine.
const MOVING_COUNTERS: [&str; 1] = ["kernel.ns_last_pid"];

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Per-interface subtrees of a host interface other tests may add or remove while this one runs
/// (the bench's own devices live in its namespaces and never appear here).
fn foreign_interface(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    matches!(parts.as_slice(), [_, "conf" | "neigh", iface, ..] if !["all", "default", "lo"].contains(iface))
}

fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, root, out);
        } else if let Some(v) = read(&p) {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if !foreign_interface(&rel) {
                out.insert(rel.replace('/', "."), v);
            }
        }
    }
}

/// The test namespace's sysctls: net.* and every KB key.
fn host_sysctls() -> BTreeMap<String, String> {
    let root = Path::new("/proc/sys");
    let mut out = BTreeMap::new();
    walk(&root.join("net"), root, &mut out);
    let kb = semantos::kb::Kb::embedded().unwrap();
    for k in kb.params.keys().filter(|k| !MOVING_COUNTERS.contains(&k.as_str())) {
        if let Some(v) = read(&root.join(k.replace('.', "/"))) {
            out.insert(k.clone(), v);
        }
    }
    out
}

/// The namespaces a run reports it used (`topology` names them).
fn namespaces_of(r: &serde_json::Value) -> Vec<String> {
    r["topology"].as_str().unwrap_or("").split_whitespace().filter(|w| w.starts_with("sbench-")).map(str::to_string).collect()
}

/// The third number of `4096 131072 6291456`, or the number itself.
fn max_of(v: &str) -> i64 {
    v.split_whitespace().last().unwrap().parse().unwrap()
}

struct Expect {
    scenario: &'static str,
    /// Any of these findings in the first round.
    symptoms: &'static [&'static str],
    /// SemantOS's writes are exactly these keys...
    family: &'static [&'static str],
    /// ...each moved this way from the start value (`raise` compares the maximum, `0` is an exact value).
    direction: &'static str,
}

const EXPECT: [Expect; 3] = [
    Expect { scenario: "accept-burst", symptoms: &["accept_queue_overflow"], family: &["net.core.somaxconn"], direction: "raise" },
    Expect { scenario: "bdp-transfer", symptoms: &["send_buffer_limited", "receive_window_limited"], family: &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"], direction: "raise" },
    Expect { scenario: "idle-slow-start", symptoms: &["cwnd_collapse_after_idle"], family: &["net.ipv4.tcp_slow_start_after_idle"], direction: "0" },
];

fn check(e: &Expect, r: &serde_json::Value, dir: &Path) {
    let s = e.scenario;
    let round0: Vec<&str> = r["rounds"][0]["findings"]["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert!(e.symptoms.iter().any(|x| round0.contains(x)), "{s}: expected one of {:?} in the first round, found {round0:?}", e.symptoms);
    let start: BTreeMap<&str, &str> = r["start"].as_array().unwrap().iter().map(|kv| (kv[0].as_str().unwrap(), kv[1].as_str().unwrap())).collect();
    let arm = |name: &str| r["arms"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("{s}: no arm {name}")).clone();
    let sem = arm("semantos");
    let writes: BTreeMap<&str, &str> = sem["writes"].as_array().unwrap().iter().map(|kv| (kv[0].as_str().unwrap(), kv[1].as_str().unwrap())).collect();
    assert_eq!(writes.keys().copied().collect::<Vec<_>>(), e.family, "{s}: SemantOS changed {writes:?}");
    for (k, v) in &writes {
        match e.direction {
            "raise" => assert!(max_of(v) > max_of(start.get(k).copied().unwrap_or("0")), "{s}: {k} = {v} is not raised from {:?}", start.get(k)),
            exact => assert_eq!(*v, exact, "{s}: {k}"),
        }
    }
    let (p95_start, p95_sem) = (arm("start")["stats"]["p95_rep_median_ms"].as_f64().unwrap(), sem["stats"]["p95_rep_median_ms"].as_f64().unwrap());
    assert!(p95_sem < p95_start, "{s}: p95 {p95_sem:.1} ms with SemantOS's plan is not below {p95_start:.1} ms at the start values");
    assert!(sem["vs_start"]["improvement_pct"].as_f64().unwrap() > 0.0, "{s}: {}", sem["vs_start"]);
    for f in ["csv", "json", "svg"] {
        assert!(dir.join(format!("bench_{s}.{f}")).exists(), "{s}: bench_{s}.{f} not written");
    }
    check_tune_arm(r);
}

/// The closed loop ran beside SemantOS: its first trial is the rules plan, measured in paired repeats and
/// decided with its evidence; its best is an arm of its own; the goals are evaluated (quick: never all met).
fn check_tune_arm(r: &serde_json::Value) {
    let s = r["scenario"].as_str().unwrap();
    let tune = &r["tune"][0];
    assert_eq!(tune["arm"], "semantos:tune", "{s}: {}", r["tune"]);
    let trials = tune["trials"].as_array().unwrap();
    assert!(!trials.is_empty() && trials.len() <= tune["budget"].as_u64().unwrap() as usize, "{s}: {trials:?}");
    assert_eq!(trials[0]["source"], "rules", "{s}: the rules plan is tried first");
    let j = &trials[0]["judgement"];
    assert!(["kept", "reverted", "refused", "failed"].contains(&j["decision"].as_str().unwrap()) && !j["reason"].as_str().unwrap().is_empty(), "{s}: {j}");
    if j["decision"] == "kept" || j["decision"] == "reverted" {
        // 2 paired repeats, and 2 more (the second look) when the first 2 look better without showing it.
        let n = j["candidate"].as_array().unwrap().len();
        assert!(n == 2 || n == 4, "{s}: quick mode measures 2 paired repeats, 4 after a second look: {j}");
        assert_eq!(j["incumbent"].as_array().unwrap().len(), n, "{s}: every candidate run is paired with an incumbent run: {j}");
    }
    let arm = r["arms"].as_array().unwrap().iter().find(|a| a["name"] == "semantos:tune").unwrap_or_else(|| panic!("{s}: no semantos:tune arm"));
    assert_eq!(arm["writes"], tune["best"], "{s}");
    assert_eq!(r["goals"]["all_met"], false, "{s}: quick mode judges no grid, A/A or TuneD goal: {}", r["goals"]);
    assert!(r["goals"]["tune_vs_grid"].is_null(), "{s}: no grid in quick mode");
}

#[test]
fn quick_scenarios_find_the_symptom_fix_it_and_leave_the_host_alone() {
    if !support::privileged("bench::quick_scenarios_find_the_symptom_fix_it_and_leave_the_host_alone") {
        return;
    }
    let _host = host_sysctls_lock();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let before = host_sysctls();
    // The time the runs themselves took: a run may first wait for another bench on the machine (a CI job's).
    let mut took = Duration::ZERO;
    let mut used = Vec::new();
    for e in &EXPECT {
        let o = run_in(dir.path(), &["bench", e.scenario, "--quick", "--json", "--out-dir", out.to_str().unwrap()]);
        let (stdout, stderr) = text(&o);
        assert!(o.status.success(), "{}: exit {:?}\n{stderr}", e.scenario, o.status);
        let r: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{}: not JSON ({err}): {stdout}", e.scenario));
        check(e, &r, &out);
        took += Duration::from_secs_f64(r["duration_s"].as_f64().unwrap());
        used.extend(namespaces_of(&r));
        eprintln!("{}: {:?} of runs so far", e.scenario, took);
    }
    let after = host_sysctls();
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} → {:?}", after.get(k)))
        .chain(after.keys().filter(|k| !before.contains_key(*k)).map(|k| format!("{k}: appeared")))
        .collect();
    assert!(changed.is_empty(), "the host's sysctls changed:\n{}", changed.join("\n"));
    assert_eq!(used.len(), 6, "each run names its two namespaces: {used:?}");
    let left: Vec<&String> = used.iter().filter(|n| Path::new("/var/run/netns").join(n).exists()).collect();
    assert!(left.is_empty(), "the bench left namespaces behind: {left:?}");
    // How long they took is a figure, printed above, not a pass/fail (house rule: no timed tests;
    // the CI budget is watched on the whole suite). The sound keep rule's second look made it
    // about 200 s, from about 80 s.
    eprintln!("the three quick scenarios took {took:?} of runs");
}

#[test]
fn bench_cmd_without_netns_refuses_instead_of_tuning_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let cmd = format!("touch {}; echo 1", marker.display());
    let o = run_in(dir.path(), &["bench", "--cmd", &cmd, "--out-dir", "results"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "a usage error:\n{err}");
    assert!(err.contains("--netns") && err.contains("--allow-host") && err.contains("nothing was run or written"), "{err}");
    assert!(!marker.exists(), "the command ran");
    assert!(!dir.path().join("results").exists(), "the run started: its results directory exists");
    // The help says what --cmd writes, not that the host is never written.
    let (help, _) = text(&run_in(dir.path(), &["bench", "--help"]));
    assert!(!help.contains("The host's own settings are never written") && help.contains("--allow-host") && help.contains("--cmd-timeout"), "{help}");
}

/// Pids whose command line is exactly `argv` (NUL-separated in /proc/PID/cmdline).
fn running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok().as_deref() == Some(&want[..])).collect()
}

#[test]
fn bench_cmd_that_hangs_is_killed_at_cmd_timeout_with_its_process_group() {
    if !support::privileged("bench::bench_cmd_that_hangs_is_killed_at_cmd_timeout_with_its_process_group") {
        return;
    }
    let ns = support::Netns::create("benchhang");
    let dir = tempfile::tempdir().unwrap();
    // A distinctive duration: no other test's sleep is counted; the background one is what killing `sh` alone leaves.
    let o = run_in(dir.path(), &["bench", "--cmd", "sleep 1000.75 & wait", "--netns", &ns.name, "--cmd-timeout", "1", "--quick", "--out-dir", "results"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("did not finish within 1 s") && err.contains("--cmd-timeout"), "{err}");
    assert_eq!(running(&["sleep", "1000.75"]), Vec::<u32>::new(), "the command's background sleep outlived the bench");
}

// ---- The limit scenarios of issue 11: syn-burst, inotify-watchers, map-heavy (quick mode). ----
// Each run checks its measured objective, the report's fields, and that SemantOS's plan holds
// none of the scenario's avoided changes. Whether SemantOS finds the right fix for the two
// limit scenarios needs the limit-saturation symptoms; that check is its own test below.

/// Runs one quick scenario (extra args after it) and returns its JSON report.
fn quick_report(dir: &Path, out: &Path, scenario: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["bench", scenario, "--quick", "--json", "--out-dir", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run_in(dir, &args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{scenario}: exit {:?}\n{stderr}", o.status);
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{scenario}: not JSON ({err}): {stdout}"))
}

fn arm_of<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["arms"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("{}: no arm {name}", r["scenario"]))
}

/// SemantOS's writes as key → value.
fn semantos_writes(r: &serde_json::Value) -> BTreeMap<String, String> {
    arm_of(r, "semantos")["writes"].as_array().unwrap().iter().map(|kv| (kv[0].as_str().unwrap().to_string(), kv[1].as_str().unwrap().to_string())).collect()
}

/// The report names its objective and avoid list, reports the avoided changes proposed consistently with its goal, and wrote its files.
fn check_report_fields(r: &serde_json::Value, out: &Path) {
    let s = r["scenario"].as_str().unwrap();
    assert!(!r["objective"].as_str().unwrap().is_empty(), "{s}: no objective");
    assert!(!r["avoid"].as_array().unwrap().is_empty(), "{s}: no avoid list");
    let hits = r["avoided_changes_proposed"].as_array().unwrap();
    assert_eq!(r["goals"]["no_avoided_change"], hits.is_empty(), "{s}: {}", r["goals"]);
    for f in ["csv", "json", "svg"] {
        assert!(out.join(format!("bench_{s}.{f}")).exists(), "{s}: bench_{s}.{f} not written");
    }
}

/// `check_report_fields`, and the engine proposed none of the scenario's avoided changes in any round.
fn check_limit_report(r: &serde_json::Value, out: &Path) {
    check_report_fields(r, out);
    let s = r["scenario"].as_str().unwrap();
    assert_eq!(r["avoided_changes_proposed"], serde_json::json!([]), "{s}: SemantOS proposed an avoided change");
    assert_eq!(r["goals"]["no_avoided_change"], true, "{s}: {}", r["goals"]);
    let avoided: Vec<&str> = r["avoid"].as_array().unwrap().iter().map(|a| a["key"].as_str().unwrap()).collect();
    for round in r["rounds"].as_array().unwrap() {
        for c in round["checked"]["changes"].as_array().unwrap() {
            let key = c["key"].as_str().unwrap_or_default();
            assert!(!avoided.contains(&key) || c["verdict"] == "skip", "{s}: round {} proposes {c}", round["round"]);
        }
    }
}

#[test]
fn syn_burst_and_inotify_quick_measure_their_objective_propose_no_avoided_change_and_leave_the_host_alone() {
    if !support::privileged("bench::syn_burst_and_inotify_quick_measure_their_objective_propose_no_avoided_change_and_leave_the_host_alone") {
        return;
    }
    let _host = host_sysctls_lock();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let before = host_sysctls();

    let syn = quick_report(dir.path(), &out, "syn-burst", &[]);
    check_limit_report(&syn, &out);
    let start = arm_of(&syn, "start");
    // The objective is connect p99: at the start values a full accept queue drops SYNs, and a dropped SYN waits for its 1 s retransmission.
    assert!(start["objective"].as_f64().unwrap() >= 1000.0, "syn-burst: start p99 {} ms shows no dropped SYN", start["objective"]);
    // The objective is the median of the reps' p99, so it is at least the median of their p95.
    assert!(start["objective"].as_f64().unwrap() >= start["stats"]["p95_rep_median_ms"].as_f64().unwrap(), "syn-burst: the objective is not a p99: {start}");
    // The accept queue is what binds: SemantOS raises somaxconn and the p99 falls.
    let w = semantos_writes(&syn);
    assert!(w.get("net.core.somaxconn").is_some_and(|v| v.parse::<i64>().unwrap() > 128), "syn-burst: SemantOS wrote {w:?}");
    assert!(arm_of(&syn, "semantos")["objective"].as_f64().unwrap() < start["objective"].as_f64().unwrap(), "syn-burst: p99 not lower with {w:?}");

    let ino = quick_report(dir.path(), &out, "inotify-watchers", &[]);
    check_limit_report(&ino, &out);
    // The watcher needs 12288 watches and its user namespace allows 8192: exactly that share is established, whatever the host's own limit.
    let share = arm_of(&ino, "start")["objective"].as_f64().unwrap();
    assert!((share - 8192.0 / 12288.0).abs() < 1e-9, "inotify-watchers: start established {share} of the watches, not 8192/12288");
    assert!(ino["topology"].as_str().unwrap().contains("user namespace"), "{}", ino["topology"]);

    let after = host_sysctls();
    let changed: Vec<String> = before.iter().filter(|(k, v)| after.get(*k) != Some(v)).map(|(k, v)| format!("{k}: {v} → {:?}", after.get(k))).collect();
    assert!(changed.is_empty(), "the host's sysctls changed:\n{}", changed.join("\n"));
    let left: Vec<String> = namespaces_of(&syn).into_iter().filter(|n| Path::new("/var/run/netns").join(n).exists()).collect();
    assert!(left.is_empty(), "the bench left namespaces behind: {left:?}");
}

#[test]
fn map_heavy_refuses_without_allow_host_and_the_quick_run_changes_vm_max_map_count_under_a_guard_that_restores_it() {
    if !support::privileged("bench::map_heavy_refuses_without_allow_host_and_the_quick_run_changes_vm_max_map_count_under_a_guard_that_restores_it") {
        return;
    }
    let _host = host_sysctls_lock();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let limit = || std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().to_string();
    let before = limit();
    let o = run_in(dir.path(), &["bench", "map-heavy", "--quick", "--out-dir", out.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "a usage error:\n{err}");
    assert!(err.contains("--allow-host") && err.contains("vm.max_map_count") && err.contains("nothing was run or written"), "{err}");
    assert!(!out.exists(), "the refused run started: its results directory exists");
    if before.parse::<u64>().unwrap() > semantos::bench::map_heavy::MAX_HOST_LIMIT {
        eprintln!("map-heavy: this host's vm.max_map_count {before} is above what the scenario exercises; the run is not attempted");
        return;
    }
    let r = quick_report(dir.path(), &out, "map-heavy", &["--allow-host"]);
    assert_eq!(limit(), before, "vm.max_map_count was not restored");
    check_limit_report(&r, &out);
    // The process needs 1.25 × the host's limit: it cannot get them all at the start.
    let share = arm_of(&r, "start")["objective"].as_f64().unwrap();
    assert!(share < 1.0 && share > 0.5, "map-heavy: start established {share} of the mappings");
    assert_eq!(r["start"], serde_json::json!([["vm.max_map_count", before]]), "the report's start is the host's value, read");
    // The right fix, once the limit symptoms of issue 11 make the engine propose one (today it proposes
    // nothing here; the integrator makes this unconditional after merging them): vm.max_map_count raised, and it helps.
    let w = semantos_writes(&r);
    if !w.is_empty() {
        assert!(w.get("vm.max_map_count").is_some_and(|v| v.parse::<u64>().unwrap() > before.parse::<u64>().unwrap()), "map-heavy: SemantOS wrote {w:?}");
        assert!(arm_of(&r, "semantos")["objective"].as_f64().unwrap() > share, "map-heavy: SemantOS's plan {w:?} did not raise the share of mappings");
    }
}

#[test]
fn limit_scenarios_quick_semantos_raises_the_limit_that_binds() {
    if !support::privileged("bench::limit_scenarios_quick_semantos_raises_the_limit_that_binds") {
        return;
    }
    let _host = host_sysctls_lock();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    // map-heavy's right fix is checked in the one test allowed to change a global value (above).
    for (scenario, key, extra) in [("inotify-watchers", "fs.inotify.max_user_watches", &[][..])] {
        let r = quick_report(dir.path(), &out, scenario, extra);
        check_limit_report(&r, &out);
        let w = semantos_writes(&r);
        assert!(w.contains_key(key), "{scenario}: SemantOS wrote {w:?}, not {key}");
        let (start, sem) = (arm_of(&r, "start")["objective"].as_f64().unwrap(), arm_of(&r, "semantos")["objective"].as_f64().unwrap());
        assert!(sem > start, "{scenario}: {sem} of the resource with SemantOS's plan, {start} at the start");
    }
}
