//! `semantos agent` (and `semantos-agent`, the same agent in the service's own executable) as a real process: advice with one stable ID across a restart, drift reported
//! once per change, SIGTERM with `on_exit: rollback` restoring every value, one agent per state
//! directory, and (root) a symptom made in a network namespace found by an agent sampling inside it.
//!
//! The unprivileged tests feed the agent a fixture `/proc` (this machine's meminfo with
//! Committed_AS at 97 % of CommitLimit: `commit_limit_near` holds in every window) and a sandbox
//! sysctl tree in strict overcommit mode, so the rules propose `vm.overcommit_ratio` ×2 there.

use crate::support::{Netns, agent_bin, bin, privileged, text};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running agent, stopped (SIGKILL) and reaped on drop if the test did not stop it.
struct Agent {
    child: Option<Child>,
}

impl Agent {
    /// Started in the test's own namespace: an agent with `netns:` in its config enters it itself.
    fn start(dir: &Path, config: &Path) -> Agent {
        let mut c = Command::new(bin());
        c.arg("agent");
        Agent::spawn(c, dir, config)
    }

    /// As `start`, with `semantos-agent`, the executable the service runs.
    fn start_service(dir: &Path, config: &Path) -> Agent {
        Agent::spawn(Command::new(agent_bin()), dir, config)
    }

    /// `c` (either executable) with the agent's flags, its state under `dir`.
    fn spawn(mut c: Command, dir: &Path, config: &Path) -> Agent {
        c.args(["-v", "--config"]).arg(config).arg("--state-dir").arg(dir.join("state")).current_dir(dir).env_remove("RUST_LOG").stdout(Stdio::piped()).stderr(Stdio::piped());
        Agent { child: Some(c.spawn().unwrap_or_else(|e| panic!("starting {:?}: {e}", c.get_program()))) }
    }

    /// SIGTERM, then its exit status and log.
    fn stop(mut self) -> (Option<i32>, String) {
        let child = self.child.take().unwrap();
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let o = child.wait_with_output().unwrap();
        (o.status.code(), text(&o).1)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits up to `secs` for `cond`; panics with `what` when it never holds.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("waited {secs} s for {what}");
}

/// The advice store as JSON (empty object when not written yet).
fn advice(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("state/advice.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(serde_json::json!({ "advice": {} }))
}

/// IDs of the advice of `kind` on `key`.
fn ids(dir: &Path, kind: &str, key: &str) -> Vec<String> {
    advice(dir)["advice"].as_object().unwrap().iter().filter(|(_, r)| r["kind"] == kind && r["key"] == key).map(|(id, _)| id.clone()).collect()
}

/// A fixture /proc whose commit charge sits at 97 % of the commit limit, and a sandbox tree in
/// strict overcommit mode; returns the config path.
fn fixture(dir: &Path, extra: &str) -> PathBuf {
    let proc = dir.join("proc");
    std::fs::create_dir_all(&proc).unwrap();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap();
    let limit: u64 = mem.lines().find_map(|l| l.strip_prefix("CommitLimit:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    let mem: Vec<String> = mem.lines().map(|l| if l.starts_with("Committed_AS:") { format!("Committed_AS:   {} kB", limit * 97 / 100) } else { l.to_string() }).collect();
    std::fs::write(proc.join("meminfo"), mem.join("\n") + "\n").unwrap();
    let vm = dir.join("tree/vm");
    std::fs::create_dir_all(&vm).unwrap();
    std::fs::write(vm.join("overcommit_memory"), "2\n").unwrap();
    std::fs::write(vm.join("overcommit_ratio"), "50\n").unwrap();
    std::fs::write(dir.join("policy.yaml"), "whitelist: [\"vm.overcommit_ratio\"]\n").unwrap();
    let cfg = dir.join("agent.yaml");
    let base = format!("interval: 100ms\nwindow: 3\nopen_after: 2\nclose_after: 2\npolicy: policy.yaml\nproc_root: {}\nsysctl_root: {}\n", proc.display(), dir.join("tree").display());
    std::fs::write(&cfg, base + extra).unwrap();
    cfg
}

/// The objective of the fixture's apply-mode tests: the live `vm.overcommit_ratio` of the sandbox
/// tree as the score, read by a command in each run. It measures the value in force at that
/// moment (what an incumbent or candidate left there), not a number the test made up; with
/// `goal: higher` the proposed ×2 helps it, with `goal: lower` it hurts it.
fn ratio_objective(dir: &Path, goal: &str) -> String {
    format!("objective:\n  cmd: cat {}\n  stat: value\n  goal: {goal}\n  repeats: 2\n", dir.join("tree/vm/overcommit_ratio").display())
}

/// The agent state file as JSON.
fn state(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("state/agent-state.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(serde_json::Value::Null)
}

fn ratio(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("tree/vm/overcommit_ratio")).unwrap().trim().to_string()
}

/// `agent --json` ends with one versioned document on stdout (tests/integration/output.rs walks
/// every command and sends the agent here).
#[test]
fn agent_json_on_sigterm_is_one_versioned_document() {
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture(d.path(), "mode: observe\n");
    let child = Command::new(bin()).args(["--json", "agent", "--config"]).arg(&cfg).arg("--state-dir").arg(d.path().join("state")).current_dir(d.path()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut a = Agent { child: Some(child) };
    wait_for(20, "advice on vm.overcommit_ratio", || !ids(d.path(), "advice", "vm.overcommit_ratio").is_empty());
    let child = a.child.take().unwrap();
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{out}"));
    assert_eq!(v["kind"], "agent", "{out}");
    assert!(v["schema_version"].as_u64().is_some_and(|n| n >= 1), "{out}");
    assert_eq!(v["signal"], "SIGTERM", "{out}");
}

#[test]
fn observe_mode_keeps_one_advice_id_across_a_restart_and_logs_it_once_per_run() {
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture(d.path(), "mode: observe\n");
    let a = Agent::start(d.path(), &cfg);
    wait_for(20, "advice on vm.overcommit_ratio", || !ids(d.path(), "advice", "vm.overcommit_ratio").is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    let first = ids(d.path(), "advice", "vm.overcommit_ratio");
    assert_eq!(first.len(), 1, "{first:?}");
    let id = &first[0];
    let rec = advice(d.path())["advice"][id].clone();
    assert!(rec["count"].as_u64().unwrap() >= 3, "seen in several windows: {rec}");
    assert_eq!(log.matches(id.as_str()).count(), 1, "repeated advice is logged again:\n{log}");
    assert_eq!(ratio(d.path()), "50", "observe mode wrote a value");
    let a = Agent::start(d.path(), &cfg);
    wait_for(20, "the advice seen again after the restart", || advice(d.path())["advice"][id]["count"].as_u64() > rec["count"].as_u64());
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(ids(d.path(), "advice", "vm.overcommit_ratio"), first, "the restart gave the same advice another ID");
    assert_eq!(advice(d.path())["advice"][id]["first_seen_ms"], rec["first_seen_ms"]);
    assert_eq!(log.matches(id.as_str()).count(), 1, "{log}");
}

#[test]
fn a_key_changed_behind_the_agents_back_is_reported_as_drift_once_and_left_at_its_value_on_exit() {
    let d = tempfile::tempdir().unwrap();
    let extra = format!("mode: apply\nmin_dwell: 0\ndaily_change_budget: 1\non_exit: rollback\n{}", ratio_objective(d.path(), "higher"));
    let cfg = fixture(d.path(), &extra);
    let a = Agent::start(d.path(), &cfg);
    wait_for(30, "the agent's change kept", || state(d.path())["managed"]["vm.overcommit_ratio"]["intended"] == "100");
    // As the kernel's sysctl write is to a reader: whole (a plain fs::write truncates first, and an
    // agent reading in between saw an empty value and reported it as a first drift).
    let tmp = d.path().join("tree/vm/.overcommit_ratio.new");
    std::fs::write(&tmp, "77\n").unwrap();
    std::fs::rename(&tmp, d.path().join("tree/vm/overcommit_ratio")).unwrap();
    wait_for(20, "drift reported", || !ids(d.path(), "drift", "vm.overcommit_ratio").is_empty());
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(ratio(d.path()), "77", "the agent fought the other writer");
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(log.matches("drift:").count(), 1, "drift is logged once per change:\n{log}");
    let state = state(d.path());
    assert_eq!(state["drift_total"], 1, "{state}");
    assert_eq!(state["changes_applied_total"], 1, "the daily budget of 1 held: {state}");
    // on_exit: rollback restores what the agent left, not what another writer set since.
    assert_eq!(ratio(d.path()), "77", "on_exit: rollback clobbered another writer's value:\n{log}");
    assert!(log.contains("not restored on exit") && log.contains("not restored: vm.overcommit_ratio: live 77"), "{log}");
}

#[test]
fn a_second_agent_on_the_same_state_is_refused_with_exit_3_and_a_bad_config_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture(d.path(), "mode: observe\n");
    let a = Agent::start(d.path(), &cfg);
    wait_for(20, "the first agent's lock", || d.path().join("state/agent.lock").exists());
    let o = Command::new(bin()).args(["agent", "--config"]).arg(&cfg).arg("--state-dir").arg(d.path().join("state")).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("one agent per host"), "{err}");
    // The service's executable takes the same lock: it is the same agent.
    let o = Command::new(agent_bin()).arg("--config").arg(&cfg).arg("--state-dir").arg(d.path().join("state")).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "semantos-agent beside semantos agent: {err}");
    assert!(err.starts_with("semantos-agent: error:") && err.contains("one agent per host"), "{err}");
    a.stop();
    std::fs::write(d.path().join("bad.yaml"), "mode: observe\nintervall: 2\n").unwrap();
    for cmd in [vec![bin().into_os_string(), "agent".into()], vec![agent_bin().into_os_string()]] {
        let o = Command::new(&cmd[0]).args(&cmd[1..]).args(["--config", "bad.yaml", "--state-dir", "s2"]).current_dir(d.path()).output().unwrap();
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(err.contains("bad.yaml") && err.contains("intervall"), "{cmd:?}: {err}");
        assert!(!d.path().join("s2").exists(), "{cmd:?}: a refused configuration created the state directory");
    }
    // A flag it does not know is a usage error (2), as a JSON document under --json.
    let o = Command::new(agent_bin()).args(["--json", "--intervall", "2"]).current_dir(d.path()).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let doc: serde_json::Value = serde_json::from_str(err.trim()).unwrap_or_else(|e| panic!("not one JSON document ({e}): {err}"));
    assert_eq!(doc["exit_code"], 2, "{doc}");
    assert!(doc["causes"][0].as_str().unwrap().contains("--intervall"), "{doc}");
    assert!(!d.path().join("s2").exists());
}

/// A listener (backlog 2) that never accepts, its queue full (as in `diagnose.rs`).
const STALLED_LISTENER: &str = r#"
import socket, time
srv = socket.socket()
srv.bind(('127.0.0.1', 18090))
srv.listen(2)
held = []
for _ in range(3):
    c = socket.socket()
    c.connect(('127.0.0.1', 18090))
    held.append(c)
print('ready', flush=True)
time.sleep(600)
"#;

#[test]
fn observe_mode_in_a_namespace_finds_its_full_accept_queue_under_one_advice_id_across_a_restart_as_the_service_executable() {
    if !privileged("observe_mode_in_a_namespace_finds_its_full_accept_queue_under_one_advice_id_across_a_restart_as_the_service_executable") {
        return;
    }
    let ns = Netns::create("agent-obs");
    assert!(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]).status().unwrap().success());
    let mut load = Command::new("ip").args(["netns", "exec", &ns.name, "python3", "-c", STALLED_LISTENER]).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(load.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("agent.yaml");
    std::fs::write(&cfg, format!("netns: {}\ninterval: 200ms\nwindow: 3\nopen_after: 2\n", ns.name)).unwrap();
    let symptom = |dir: &Path| -> Vec<String> { advice(dir)["advice"].as_object().unwrap().iter().filter(|(_, r)| r["symptom"].as_str().unwrap_or("").contains("accept_queue_full")).map(|(id, _)| id.clone()).collect() };
    let a = Agent::start(d.path(), &cfg);
    wait_for(30, "advice for accept_queue_full", || !symptom(d.path()).is_empty());
    let (code, log) = a.stop();
    let first = symptom(d.path());
    assert_eq!(code, Some(0), "{log}");
    // The listener's backlog in force (2, from listen()) is below somaxconn: the agent judges the
    // binding limit on the listener it sees, as `diagnose` does, rather than lacking the evidence.
    let somax: Vec<String> = advice(d.path())["advice"].as_object().unwrap().values().filter(|r| r["verdict"].as_str().unwrap_or("").contains("net.core.somaxconn")).map(|r| r["verdict"].as_str().unwrap_or("").to_string()).collect();
    assert!(!somax.is_empty() && somax.iter().all(|v| !v.contains("was not measured") && v.contains("does not bind") && v.contains("listen.full.below_somaxconn = 1")), "the agent had no listener evidence for somaxconn: {somax:?}\n{log}");
    let count = advice(d.path())["advice"][&first[0]]["count"].as_u64().unwrap();
    // Restarted as the service runs it: `semantos-agent`, the same agent in its own executable.
    let a = Agent::start_service(d.path(), &cfg);
    wait_for(30, "the advice seen again", || advice(d.path())["advice"][&first[0]]["count"].as_u64().unwrap() > count);
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(symptom(d.path()), first, "the same finding got another ID after the restart as semantos-agent:\n{log}");
    // The host's own listeners were not what the agent saw.
    assert!(log.contains(&format!("netns=\"{}\"", ns.name)) || log.contains(&format!("netns={}", ns.name)), "{log}");
    let _ = load.kill();
    let _ = load.wait();
}

/// The objective of the TIME-WAIT tests: the size of the namespace's ephemeral port range, read
/// live by the command in each run from the namespace it runs in (more ports: more connections
/// before TIME-WAIT exhausts them). A real measurement of the value in force at that moment, cheap
/// and exact where a connection burst exhausting 28 000 ports would be slow and noisy on two
/// shared cores. `goal: higher`: the proposed wider range helps; `goal: lower`: it hurts.
fn port_range_objective(goal: &str) -> String {
    format!("objective:\n  cmd: \"set -- $(cat /proc/sys/net/ipv4/ip_local_port_range); echo $(($2 - $1))\"\n  stat: value\n  goal: {goal}\n  repeats: 3\n")
}

/// The size of a port range `"lo hi"`, as the port-range objective prints it.
fn ports(range: &str) -> u64 {
    let v: Vec<u64> = range.split_whitespace().map(|x| x.parse().unwrap()).collect();
    v[1] - v[0]
}

/// The value of the unlabelled sample of `family` in a Prometheus text body.
fn sample(text: &str, family: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(family)?.strip_prefix(' ')?.parse().ok())
}

/// The configuration of an agent in apply mode in namespace `ns` on a fixture /proc whose
/// TIME-WAIT count equals the namespace's live tcp_max_tw_buckets: the rules propose the
/// namespace's TIME-WAIT keys (`keys`: ip_local_port_range, tcp_tw_reuse) as one change set,
/// judged by `objective`; `extra` adds configuration lines. Returns its path.
fn timewait_config(ns: &crate::support::Netns, d: &Path, keys: &[&str], objective: &str, extra: &str) -> PathBuf {
    let proc = d.join("proc");
    std::fs::create_dir_all(proc.join("net")).unwrap();
    std::fs::copy("/proc/meminfo", proc.join("meminfo")).unwrap();
    let tw = ns.read("net.ipv4.tcp_max_tw_buckets");
    std::fs::write(proc.join("net/sockstat"), format!("sockets: used 10\nTCP: inuse 1 orphan 0 tw {tw} alloc 1 mem 1\n")).unwrap();
    std::fs::write(d.join("policy.yaml"), format!("whitelist: [{}]\n", keys.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", "))).unwrap();
    let cfg = d.join("agent.yaml");
    std::fs::write(&cfg, format!("netns: {}\nmode: apply\nmin_dwell: 0\non_exit: rollback\ninterval: 100ms\nwindow: 3\nopen_after: 2\npolicy: policy.yaml\nproc_root: {}\n{extra}{objective}", ns.name, proc.display())).unwrap();
    cfg
}

/// An agent on `timewait_config` judged by the port-range objective with `goal`. Returns once
/// the change set has been measured (kept or rolled back).
fn timewait_agent(ns: &crate::support::Netns, d: &Path, keys: &[&str], goal: &str, extra: &str) -> Agent {
    let cfg = timewait_config(ns, d, keys, &port_range_objective(goal), extra);
    let a = Agent::start(d, &cfg);
    wait_for(60, "the change set measured in the namespace", || {
        let s = state(d);
        s["changes_applied_total"].as_u64().unwrap_or(0) + s["changes_rolled_back_total"].as_u64().unwrap_or(0) > 0
    });
    a
}

#[test]
fn sigterm_with_on_exit_rollback_restores_every_namespace_value() {
    if !privileged("sigterm_with_on_exit_rollback_restores_every_namespace_value") {
        return;
    }
    let ns = Netns::create("agent-exit");
    let keys = ["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse"];
    let before: Vec<String> = keys.iter().map(|k| ns.read(k)).collect();
    let now = || keys.iter().map(|k| ns.read(k)).collect::<Vec<String>>();
    let d = tempfile::tempdir().unwrap();
    let a = timewait_agent(&ns, d.path(), &keys, "higher", "");
    let changed = now();
    assert_ne!(changed, before, "the kept change set is not in force");
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(now(), before, "not restored on SIGTERM (changed to {changed:?}):\n{log}");
}

/// `on_exit: rollback` used to put the backup's originals over whatever was live: a key another
/// writer changed after the agent is now left at that writer's value and reported with its
/// advice ID; the keys still at the agent's value are restored.
#[test]
fn on_exit_rollback_leaves_a_key_another_writer_changed_and_restores_the_rest() {
    if !privileged("on_exit_rollback_leaves_a_key_another_writer_changed_and_restores_the_rest") {
        return;
    }
    let ns = Netns::create("agent-clobber");
    let (range, reuse) = ("net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse");
    let range_before = ns.read(range);
    let d = tempfile::tempdir().unwrap();
    let a = timewait_agent(&ns, d.path(), &[range, reuse], "higher", "");
    let applied = state(d.path())["managed"][reuse].clone();
    assert_ne!(ns.read(reuse), "0", "the test's other writer must differ from the agent's value");
    assert!(Command::new("ip").args(["netns", "exec", &ns.name, "sysctl", "-qw", &format!("{reuse}=0")]).status().unwrap().success());
    wait_for(20, "drift reported", || !ids(d.path(), "drift", reuse).is_empty());
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(ns.read(reuse), "0", "on_exit: rollback clobbered the other writer's value:\n{log}");
    assert_eq!(ns.read(range), range_before, "the key still at the agent's value was not restored:\n{log}");
    let line = log.lines().find(|l| l.contains("not restored on exit")).unwrap_or_else(|| panic!("the key left is not reported:\n{log}"));
    assert!(line.contains(applied["advice_id"].as_str().unwrap()) && line.contains(reuse), "{line}");
    assert!(log.contains(&format!("not restored: {reuse}: live 0")), "the exit summary does not list it:\n{log}");
}

#[test]
fn apply_mode_keeps_a_change_set_that_helps_the_objective_in_a_namespace() {
    if !privileged("apply_mode_keeps_a_change_set_that_helps_the_objective_in_a_namespace") {
        return;
    }
    let ns = Netns::create("agent-keep");
    let keys = ["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse"];
    let before = ns.read(keys[0]);
    let d = tempfile::tempdir().unwrap();
    let a = timewait_agent(&ns, d.path(), &keys, "higher", "");
    // Read while it runs: its on_exit: rollback puts the values before back when it stops.
    let state = state(d.path());
    let live: Vec<String> = keys.iter().map(|k| ns.read(k)).collect();
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    for (k, live) in keys.iter().zip(&live) {
        let intended = state["managed"][k]["intended"].as_str().unwrap_or_else(|| panic!("{k} not kept: {state}\n{log}"));
        assert_eq!(live, intended, "the kept {k} is not in force:\n{log}");
    }
    let id = state["managed"][keys[0]]["advice_id"].as_str().unwrap();
    let line = log.lines().find(|l| l.contains("kept:")).unwrap_or_else(|| panic!("no `kept:` line:\n{log}"));
    let figures = format!("{} → {}", ports(&before), ports(state["managed"][keys[0]]["intended"].as_str().unwrap()));
    assert!(line.contains(id) && line.contains(&figures) && line.contains("CI"), "the kept line lacks its advice ID or the evidence {figures}: {line}");
    assert_eq!((state["changes_applied_total"].as_u64(), state["changes_rolled_back_total"].as_u64()), (Some(1), Some(0)), "{state}");
}

#[test]
fn apply_mode_rolls_back_a_change_set_that_hurts_the_objective_and_does_not_retry_it() {
    if !privileged("apply_mode_rolls_back_a_change_set_that_hurts_the_objective_and_does_not_retry_it") {
        return;
    }
    let ns = Netns::create("agent-hurt");
    let keys = ["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse"];
    let before: Vec<String> = keys.iter().map(|k| ns.read(k)).collect();
    let d = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let prom = d.path().join("semantos.prom");
    // The same change set, the same reading, judged lower-is-better: every candidate run is worse.
    let a = timewait_agent(&ns, d.path(), &keys, "lower", &format!("metrics_addr: 127.0.0.1:{port}\ntextfile: {}\n", prom.display()));
    // More windows with the symptom still open: a rolled-back change set must not be tried again.
    std::thread::sleep(Duration::from_millis(2000));
    // Held-back advice used to be invisible in the metrics: both the endpoint and the textfile
    // publish the two advice IDs held back and rolled back by measurement.
    let body = ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    for (what, text) in [("/metrics", body), ("textfile", std::fs::read_to_string(&prom).unwrap())] {
        let exp = openmetrics_parser::prometheus::parse_prometheus(&text).unwrap_or_else(|e| panic!("{what}: {e:?}\n{text}"));
        for (family, want) in [("semantos_advice_held_back", 2.0), ("semantos_advice_rolled_back_by_measurement_total", 2.0)] {
            let f = exp.families.get(family).unwrap_or_else(|| panic!("{what}: {family} missing:\n{text}"));
            assert!(!f.help.is_empty(), "{what}: {family} has no HELP text");
            assert_eq!(sample(&text, family), Some(want), "{what}: {family}:\n{text}");
        }
    }
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(keys.iter().map(|k| ns.read(k)).collect::<Vec<_>>(), before, "the change set that hurt was left in force:\n{log}");
    let state = state(d.path());
    assert!(state["managed"].as_object().unwrap().is_empty(), "{state}");
    let rejected = state["rejected"].as_object().unwrap_or_else(|| panic!("no rejected record: {state}"));
    assert_eq!(rejected.len(), 2, "one record per advice ID of the change set: {state}");
    let tried = rejected.values().find(|r| r["key"] == keys[0]).unwrap()["value"].as_str().unwrap().to_string();
    let figures = format!("{} → {}", ports(&before[0]), ports(&tried));
    for (id, rec) in rejected {
        assert!(rec["evidence"].as_str().unwrap().contains("worse, the interval excludes zero"), "{rec}");
        let line = log.lines().find(|l| l.contains("rolled back, not proposed again")).unwrap_or_else(|| panic!("no rollback line:\n{log}"));
        assert!(line.contains(id.as_str()) && line.contains(&figures) && line.contains("CI"), "the rollback line lacks its advice ID or the evidence {figures}: {line}");
    }
    assert_eq!(state["changes_rolled_back_total"], 1, "the rolled-back change set was tried again: {state}\n{log}");
    assert_eq!(log.matches("rolled back, not proposed again").count(), 1, "{log}");
    assert!(log.contains("not proposed again: rolled back on its measurement"), "{log}");
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify_with_its_hardening() {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/semantos-agent.service")).unwrap();
    for line in ["ProtectSystem=strict", "NoNewPrivileges=yes", "ReadWritePaths=/var/lib/semantos", "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_NET_ADMIN CAP_SYS_PTRACE"] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    if Command::new("systemd-analyze").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("skipping systemd-analyze verify: no systemd-analyze (scripts/setup/60-agent.sh installs it)");
        return;
    }
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("semantos-agent.service");
    assert!(unit.lines().any(|l| l.starts_with("ExecStart=/usr/bin/semantos-agent ")), "the unit runs the agent's own executable");
    std::fs::write(&path, unit.replace("/usr/bin/semantos-agent", agent_bin().to_str().unwrap())).unwrap();
    let o = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let (out, err) = text(&o);
    // verify exits 0 on unknown keys too, with a warning: any output is a finding.
    assert!(o.status.success() && out.trim().is_empty() && err.trim().is_empty(), "systemd-analyze verify:\n{out}{err}");
}

#[test]
fn a_key_a_sysctl_d_file_owns_is_refused_by_apply_mode_unless_taken_over() {
    let d = tempfile::tempdir().unwrap();
    let owners = d.path().join("root");
    std::fs::create_dir_all(owners.join("etc/sysctl.d")).unwrap();
    std::fs::write(owners.join("etc/sysctl.d/90-memory.conf"), "vm.overcommit_ratio = 50\n").unwrap();
    let extra = format!("mode: apply\nmin_dwell: 0\nowners_root: {}\n{}", owners.display(), ratio_objective(d.path(), "higher"));
    let cfg = fixture(d.path(), &extra);
    let a = Agent::start(d.path(), &cfg);
    wait_for(20, "the accepted advice", || !ids(d.path(), "advice", "vm.overcommit_ratio").is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(ratio(d.path()), "50", "a key /etc/sysctl.d/90-memory.conf sets was changed:\n{log}");
    assert!(log.contains("refused: another owner manages this key") && log.contains("90-memory.conf"), "{log}");
    assert_eq!(log.matches("refused: another owner").count(), 1, "the refusal is logged once:\n{log}");
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap() + "take_ownership: [vm.overcommit_ratio]\n").unwrap();
    let a = Agent::start(d.path(), &cfg);
    wait_for(20, "the change once ownership is taken", || ratio(d.path()) == "100");
    let (_, log) = a.stop();
    assert!(log.contains("taking ownership"), "{log}");
}

#[test]
fn metrics_scraped_over_http_parse_and_carry_the_agents_advice_and_cost() {
    let d = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let prom = d.path().join("semantos.prom");
    let cfg = fixture(d.path(), &format!("mode: observe\ntextfile: {}\n", prom.display()));
    let mut c = Command::new(bin());
    c.args(["agent", "--config"]).arg(&cfg).arg("--state-dir").arg(d.path().join("state")).args(["--metrics-addr", &format!("127.0.0.1:{port}")]);
    let a = Agent { child: Some(c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()) };
    wait_for(20, "advice", || !ids(d.path(), "advice", "vm.overcommit_ratio").is_empty());
    std::thread::sleep(Duration::from_millis(600));
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(&format!("http://127.0.0.1:{port}/metrics")).call().unwrap();
    assert_eq!(r.status(), 200);
    let ctype = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert_eq!(ctype, semantos::metrics::CONTENT_TYPE);
    let body = r.body_mut().read_to_string().unwrap();
    let exp = openmetrics_parser::prometheus::parse_prometheus(&body).unwrap_or_else(|e| panic!("{e:?}\n{body}"));
    let id = &ids(d.path(), "advice", "vm.overcommit_ratio")[0];
    assert!(body.contains(&format!("advice_id=\"{id}\"")) || body.contains(id.as_str()), "the advice ID is not published:\n{body}");
    assert!(body.contains("semantos_finding_present{symptom=\"commit_limit_near\"} 1"), "{body}");
    for family in ["semantos_samples_total", "semantos_agent_cpu_seconds_total", "semantos_agent_resident_memory_bytes", "semantos_last_sample_duration_seconds"] {
        assert!(exp.families.contains_key(family), "{family} missing:\n{body}");
    }
    let rss: f64 = body.lines().find_map(|l| l.strip_prefix("semantos_agent_resident_memory_bytes ")).unwrap().parse().unwrap();
    assert!(rss > 1e6, "{body}");
    let text = std::fs::read_to_string(&prom).unwrap();
    openmetrics_parser::prometheus::parse_prometheus(&text).unwrap_or_else(|e| panic!("textfile: {e:?}\n{text}"));
    let (code, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// A UDP socket that never reads, flooded in its namespace: the kernel drops at its full receive
/// buffer, which only the eBPF drop reason tells.
const UDP_FLOOD: &str = r#"
import socket, time
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
rx.bind(('127.0.0.1', 18091))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print('ready', flush=True)
end = time.time() + 60
while time.time() < end:
    for _ in range(50):
        tx.sendto(b'x' * 1000, ('127.0.0.1', 18091))
    time.sleep(0.01)
"#;

/// With `ebpf: true` the agent attaches the probes and an eBPF-only symptom opens for drops in
/// its own namespace (issue 15: "the agent, when enabled").
#[test]
fn agent_with_ebpf_finds_receive_buffer_drops_in_its_namespace_by_their_drop_reason() {
    if !privileged("agent_with_ebpf_finds_receive_buffer_drops_in_its_namespace_by_their_drop_reason") {
        return;
    }
    let probe = Command::new(bin()).args(["collect", "--ebpf", "--interval", "0.05"]).output().unwrap();
    if text(&probe).1.contains("eBPF probes") && std::env::var("SEMANTOS_REQUIRE_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("skipping: eBPF unavailable here: {}", text(&probe).1);
        return;
    }
    let ns = Netns::create("agent-ebpf");
    assert!(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]).status().unwrap().success());
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("agent.yaml");
    let prom = d.path().join("m.prom");
    std::fs::write(&cfg, format!("netns: {}\ninterval: 200ms\nwindow: 3\nopen_after: 2\nebpf: true\ntextfile: {}\n", ns.name, prom.display())).unwrap();
    let a = Agent::start(d.path(), &cfg);
    let mut load = Command::new("ip").args(["netns", "exec", &ns.name, "python3", "-c", UDP_FLOOD]).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(load.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let found = || std::fs::read_to_string(&prom).unwrap_or_default().contains("socket_receive_buffer_drops_traced");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !found() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = load.kill();
    let _ = load.wait();
    let (code, log) = a.stop();
    assert!(found(), "the eBPF-only symptom never opened:\n{}\n{log}", std::fs::read_to_string(&prom).unwrap_or_default());
    assert_eq!(code, Some(0), "{log}");
}

/// An agent killed (SIGKILL) while its objective command measures the candidate leaves the trial
/// in flight; the next agent on the same state directory rolls back every value it had applied
/// before it samples, and says so. The objective reads the live ratio and, when it sees the
/// candidate's, marks the moment and waits for the test: the kill lands inside the measurement.
#[test]
fn an_agent_killed_while_measuring_a_change_set_is_rolled_back_by_the_next_start() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("tree/vm/overcommit_ratio");
    let mark = d.path().join("measuring-candidate");
    let script = d.path().join("objective.sh");
    std::fs::write(&script, format!("v=$(cat {f})\nif [ \"$v\" = 100 ]; then touch {m}; while [ -e {m} ]; do sleep 0.1; done; fi\necho $v\n", f = file.display(), m = mark.display())).unwrap();
    let objective = format!("objective:\n  cmd: sh {}\n  stat: value\n  goal: higher\n  repeats: 2\n  timeout: 120s\n", script.display());
    let cfg = fixture(d.path(), &format!("mode: apply\nmin_dwell: 0\n{objective}"));
    let mut a = Agent::start(d.path(), &cfg);
    wait_for(30, "the objective measuring the candidate", || mark.exists());
    assert_eq!(ratio(d.path()), "100", "the candidate is in force while it is measured");
    assert!(state(d.path())["trial"]["candidate"]["vm.overcommit_ratio"] == "100", "the in-flight trial is not recorded: {}", state(d.path()));
    let mut child = a.child.take().unwrap();
    child.kill().unwrap();
    let _ = child.wait_with_output();
    std::fs::remove_file(&mark).unwrap();
    assert_eq!(ratio(d.path()), "100", "the kill itself changed nothing");
    // The next start, in observe mode so that nothing new is tried: the rollback is the start's own.
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap().replace("mode: apply", "mode: observe")).unwrap();
    let b = Agent::start(d.path(), &cfg);
    // Polled on what only the recovery writes (its signal handler is installed before it runs).
    wait_for(20, "the restarted agent's recovery", || state(d.path())["trial"].is_null() && ratio(d.path()) == "50");
    let (code, log) = b.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(ratio(d.path()), "50", "the next start did not roll back the value the killed agent applied:\n{log}");
    let recovery = log.find("crash recovery").unwrap_or_else(|| panic!("the restart does not say it rolled back:\n{log}"));
    assert!(recovery < log.find("agent started").unwrap(), "the rollback came after the agent started sampling:\n{log}");
    assert!(state(d.path())["trial"].is_null(), "{}", state(d.path()));
}

/// `revert_when_evidence_gone`: once the symptom behind a kept change closes (the fixture's
/// commit charge falls to 10 % of the limit), `true` puts the value before back and `false`
/// reports it and keeps the change; both log the advice ID.
#[test]
fn a_kept_change_whose_evidence_has_gone_is_reverted_only_when_configured() {
    for revert in [true, false] {
        let d = tempfile::tempdir().unwrap();
        let extra = format!("mode: apply\nmin_dwell: 0\nrevert_when_evidence_gone: {revert}\n{}", ratio_objective(d.path(), "higher"));
        let cfg = fixture(d.path(), &extra);
        let a = Agent::start(d.path(), &cfg);
        wait_for(30, "the change kept", || state(d.path())["managed"]["vm.overcommit_ratio"]["intended"] == "100");
        // The same file rewritten in place (the sampler keeps it open): the commit charge drops.
        let meminfo = d.path().join("proc/meminfo");
        let text = std::fs::read_to_string(&meminfo).unwrap();
        let limit: u64 = text.lines().find_map(|l| l.strip_prefix("CommitLimit:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
        let low: Vec<String> = text.lines().map(|l| if l.starts_with("Committed_AS:") { format!("Committed_AS:   {} kB", limit / 10) } else { l.to_string() }).collect();
        std::fs::write(&meminfo, low.join("\n") + "\n").unwrap();
        wait_for(30, "the evidence-gone report", || !ids(d.path(), "evidence-gone", "vm.overcommit_ratio").is_empty());
        if revert {
            wait_for(20, "the revert", || ratio(d.path()) == "50");
        } else {
            std::thread::sleep(Duration::from_millis(1000));
        }
        let (code, log) = a.stop();
        assert_eq!(code, Some(0), "{log}");
        let id = &ids(d.path(), "evidence-gone", "vm.overcommit_ratio")[0];
        assert!(log.lines().any(|l| l.contains("the evidence for a kept change has gone") && l.contains(id.as_str())), "{log}");
        if revert {
            assert_eq!(ratio(d.path()), "50", "{log}");
            assert!(state(d.path())["managed"].as_object().unwrap().is_empty(), "{}", state(d.path()));
        } else {
            assert_eq!(ratio(d.path()), "100", "revert_when_evidence_gone: false reverted the change:\n{log}");
            assert_eq!(state(d.path())["managed"]["vm.overcommit_ratio"]["intended"], "100");
        }
    }
}

/// Crash recovery used to put every original of the backup back, over a value another writer set
/// after the agent's write and before the next start. An agent killed while its objective
/// measures a two-key change set in a namespace; one key changed from outside; the next start
/// restores the key still at the agent's value and leaves the other at the outside value, naming
/// it with its advice ID. The objective sees the candidate's wider port range, marks the moment and
/// waits for the test: the kill lands inside the measurement.
#[test]
fn crash_recovery_leaves_a_key_another_writer_changed_after_the_kill_and_restores_the_rest() {
    if !privileged("crash_recovery_leaves_a_key_another_writer_changed_after_the_kill_and_restores_the_rest") {
        return;
    }
    let ns = Netns::create("agent-crash");
    let (range, reuse) = ("net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse");
    let (range_before, reuse_before) = (ns.read(range), ns.read(reuse));
    let d = tempfile::tempdir().unwrap();
    let mark = d.path().join("measuring-candidate");
    let script = d.path().join("objective.sh");
    let body = format!("set -- $(cat /proc/sys/net/ipv4/ip_local_port_range)\nif [ $(($2 - $1)) -ne {} ]; then touch {m}; while [ -e {m} ]; do sleep 0.1; done; fi\necho $(($2 - $1))\n", ports(&range_before), m = mark.display());
    std::fs::write(&script, body).unwrap();
    let objective = format!("objective:\n  cmd: sh {}\n  stat: value\n  goal: higher\n  repeats: 2\n  timeout: 120s\n", script.display());
    let cfg = timewait_config(&ns, d.path(), &[range, reuse], &objective, "");
    let mut a = Agent::start(d.path(), &cfg);
    wait_for(60, "the objective measuring the candidate", || mark.exists());
    let trial = state(d.path())["trial"].clone();
    let candidate_reuse = trial["candidate"][reuse].as_str().unwrap_or_else(|| panic!("the change set does not hold {reuse}: {trial}")).to_string();
    assert_ne!(ns.read(range), range_before, "the candidate is in force while it is measured");
    let mut child = a.child.take().unwrap();
    child.kill().unwrap();
    let _ = child.wait_with_output();
    std::fs::remove_file(&mark).unwrap();
    // The other writer: a value neither the original nor the agent's.
    let outside = ["0", "1", "2"].into_iter().find(|v| *v != reuse_before && *v != candidate_reuse).unwrap();
    assert!(Command::new("ip").args(["netns", "exec", &ns.name, "sysctl", "-qw", &format!("{reuse}={outside}")]).status().unwrap().success());
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap().replace("mode: apply", "mode: observe")).unwrap();
    let b = Agent::start(d.path(), &cfg);
    wait_for(30, "the restarted agent's recovery", || state(d.path())["trial"].is_null() && ns.read(range) == range_before);
    let (code, log) = b.stop();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(ns.read(range), range_before, "the key still at the agent's value was not restored:\n{log}");
    assert_eq!(ns.read(reuse), outside, "crash recovery clobbered the other writer's value:\n{log}");
    let line = log.lines().find(|l| l.contains("not restored by crash recovery")).unwrap_or_else(|| panic!("the key left is not reported:\n{log}"));
    let id = trial["advice_by_key"][reuse].as_str().unwrap_or_else(|| panic!("no advice ID per key in the in-flight record: {trial}"));
    assert!(line.contains(reuse) && line.contains(id), "{line}");
    assert!(log.find("crash recovery").unwrap() < log.find("agent started").unwrap(), "the rollback came after the agent started sampling:\n{log}");
}

/// `semantos rollback` of an agent's backup used to put every original back over a value another
/// writer set after the agent's write (here: the agent killed with a kept change, then an admin's
/// value): it now refuses, naming the key and how to go on, and restores nothing; `--force`
/// restores it and warns.
#[test]
fn rollback_of_an_agents_backup_refuses_to_clobber_a_key_another_writer_changed() {
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture(d.path(), &format!("mode: apply\nmin_dwell: 0\n{}", ratio_objective(d.path(), "higher")));
    let mut a = Agent::start(d.path(), &cfg);
    wait_for(30, "the change kept", || state(d.path())["managed"]["vm.overcommit_ratio"]["intended"] == "100");
    let mut child = a.child.take().unwrap();
    child.kill().unwrap();
    let _ = child.wait_with_output();
    std::fs::write(d.path().join("tree/vm/overcommit_ratio"), "77\n").unwrap();
    let backup = d.path().join("state/agent/backup.json");
    let (tree, audit) = (d.path().join("tree"), d.path().join("audit.jsonl"));
    let args = ["rollback", "--backup", backup.to_str().unwrap(), "--sysctl-root", tree.to_str().unwrap(), "--audit-log", audit.to_str().unwrap()];
    let o = crate::support::run_in(d.path(), &args);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "refused: {err}");
    assert_eq!(ratio(d.path()), "77", "semantos rollback clobbered another writer's value: {err}");
    assert!(err.contains("vm.overcommit_ratio reads 77") && err.contains("--force") && err.contains("nothing was restored"), "{err}");
    let o = crate::support::run_in(d.path(), &[&args[..], &["--force"]].concat());
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(ratio(d.path()), "50", "--force restores the original: {err}");
    assert!(err.contains("changed since by someone else") && err.contains("vm.overcommit_ratio"), "{err}");
}
