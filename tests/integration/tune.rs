//! `semantos tune` on the real kernel and on sandbox trees: a candidate that
//! lowers the accept backlog under a connection burst is rolled back every
//! time, one that raises it is kept; a tune killed mid-trial leaves a state
//! that `--rollback` (or `--resume`) finishes without leaving the trial's
//! values behind; bad input is refused with a named error and nothing written.

use crate::support::{self, Netns, privileged, run_in, text};
use semantos::apply::AuditLog;
use semantos::eval::harness::UserCommand;
use semantos::kb::{Intent, Kb};
use semantos::safety::Policy;
use semantos::tune::candidate::{Candidate, CandidateSource, Proposal};
use semantos::tune::command::CommandObjective;
use semantos::tune::driver::{self, Loop, Settings, Silent};
use semantos::tune::live::{self, LiveSystem, Target};
use semantos::tune::{Decision, Direction, GuardLimit, ObjectiveSpec, SearchSpace, Stat, System, Values};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server that starts accepting 0.3 s after a burst of N non-blocking connects arrives
/// (listen(65535): the backlog in force is the namespace's somaxconn), and a client that
/// prints each connection's connect-to-reply latency in ms (ERR for none within 10 s). A SYN
/// that finds the accept queue full is dropped and retransmitted after 1 s.
const BURST: &str = r#"
import resource, selectors, socket, sys, threading, time
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 4 * n + 64
resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(65535)
port = srv.getsockname()[1]
def serve():
    time.sleep(0.3)
    while True:
        try:
            c, _ = srv.accept()
        except OSError:
            return
        try:
            c.sendall(b"ok")
        except OSError:
            pass
        c.close()
threading.Thread(target=serve, daemon=True).start()
sel = selectors.DefaultSelector()
began = {}
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    began[s] = time.monotonic()
    s.connect_ex(("127.0.0.1", port))
    sel.register(s, selectors.EVENT_READ)
out, deadline = [], time.monotonic() + 10
while began and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.2):
        s = key.fileobj
        try:
            data = s.recv(8)
        except OSError:
            data = b""
        if data:
            out.append("%.3f" % ((time.monotonic() - began[s]) * 1000))
        else:
            out.append("ERR")
        sel.unregister(s)
        s.close()
        del began[s]
out += ["ERR"] * len(began)
print("\n".join(out))
"#;

/// Connections per burst: more than a backlog of 512, fewer than 1024.
const CONNECTIONS: usize = 700;

fn burst_cmd(dir: &Path) -> String {
    let script = dir.join("burst.py");
    std::fs::write(&script, BURST).unwrap();
    format!("python3 {} {CONNECTIONS}", script.display())
}

/// A namespace with loopback up and `somaxconn` at `start`.
fn burst_netns(tag: &str, start: &str) -> Netns {
    let ns = Netns::create(tag);
    let up = Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]).output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let w = Command::new("ip").args(["netns", "exec", &ns.name, "sysctl", "-qw", &format!("net.core.somaxconn={start}")]).output().unwrap();
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    ns
}

/// Offers each of its values of `net.core.somaxconn` once, in order.
struct Fixed(Vec<&'static str>);

impl CandidateSource for Fixed {
    fn name(&self) -> String {
        "fixed".into()
    }
    fn propose(&mut self, p: &Proposal) -> anyhow::Result<Option<Candidate>> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let mut values = p.incumbent.clone();
        values.insert("net.core.somaxconn".into(), self.0.remove(0).to_string());
        Ok(Some(Candidate { source: "fixed".into(), values, rationale: None, supported: None }))
    }
}

/// Runs the loop in namespace `ns` over `candidates` with the burst as the p99 objective.
fn tune_in(ns: &Netns, dir: &Path, candidates: Vec<&'static str>) -> (driver::Outcome, LiveSystem) {
    let kb = Kb::embedded().unwrap();
    let pol = Policy::default();
    let target = Target { sysctl_root: "/proc/sys".into(), netns: Some(ns.name.clone()) };
    let mut system = LiveSystem::new(target.clone(), &kb, &pol, &dir.join("state/backup.json"), AuditLog::to(dir.join("audit.jsonl")));
    let mut objective = CommandObjective::new(UserCommand { cmd: burst_cmd(dir), netns: Some(ns.name.clone()), column: None, timeout: Duration::from_secs(60) }, Stat::P99);
    let spec = ObjectiveSpec::new(Stat::P99, Direction::Lower, vec![GuardLimit { name: "errors".into(), direction: Direction::Lower, max_worsening_pct: 0.0 }]);
    let start = system.read(&["net.core.somaxconn".to_string()]).unwrap();
    let space = SearchSpace::default();
    let check = |v: &Values| live::check(&kb, &pol, &target, &BTreeMap::new(), &start, v, Intent::Latency);
    let l = Loop {
        system: &mut system,
        objective: &mut objective,
        sources: vec![Box::new(Fixed(candidates))],
        space: &space,
        spec: &spec,
        check: &check,
        settings: Settings::new(4, 3, 7),
    };
    let out = driver::run(l, start.clone(), start.clone(), Vec::new(), &mut Silent).unwrap();
    (out, system)
}

#[test]
fn a_lower_backlog_under_a_connection_burst_is_rolled_back_every_time() {
    if !privileged("a_lower_backlog_under_a_connection_burst_is_rolled_back_every_time") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host_before = support::host_value("net.core.somaxconn");
    let ns = burst_netns("tune-lower", "4096");
    let (out, _) = tune_in(&ns, dir.path(), vec!["512", "640"]);
    assert_eq!(out.trials.len(), 2);
    for t in &out.trials {
        assert_eq!(t.judgement.decision, Decision::Reverted, "trial {} ({:?}): {}", t.index, t.values, t.judgement.reason);
        assert!(t.judgement.reason.contains("worse"), "measured worse, not merely unproven: {}", t.judgement.reason);
    }
    assert_eq!(ns.read("net.core.somaxconn"), "4096", "the namespace is back on its start value");
    assert_eq!(support::host_value("net.core.somaxconn"), host_before, "the host's own value never moved");
}

#[test]
fn a_higher_backlog_under_a_connection_burst_is_kept_and_restore_undoes_it() {
    if !privileged("a_higher_backlog_under_a_connection_burst_is_kept_and_restore_undoes_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host_before = support::host_value("net.core.somaxconn");
    let ns = burst_netns("tune-higher", "128");
    let (out, mut system) = tune_in(&ns, dir.path(), vec!["1024"]);
    assert_eq!(out.trials[0].judgement.decision, Decision::Kept, "{}", out.trials[0].judgement.reason);
    assert_eq!(ns.read("net.core.somaxconn"), "1024", "the kept value is in force");
    assert_eq!(support::host_value("net.core.somaxconn"), host_before, "the host's own value never moved");
    system.restore().unwrap();
    assert_eq!(ns.read("net.core.somaxconn"), "128");
}

/// A sandbox tree with `net.core.somaxconn` at 4096, a state directory, and a plan that sets 1024.
fn sandbox(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("net/core")).unwrap();
    std::fs::write(tree.join("net/core/somaxconn"), "4096\n").unwrap();
    let plan = dir.join("plan.conf");
    std::fs::write(&plan, "net.core.somaxconn = 1024\n").unwrap();
    (tree, dir.join("state"), plan)
}

fn telemetry() -> String {
    format!("{}/experiments/data/sample_telemetry.csv", env!("CARGO_MANIFEST_DIR"))
}

fn somaxconn(tree: &Path) -> String {
    std::fs::read_to_string(tree.join("net/core/somaxconn")).unwrap().trim().to_string()
}

/// Starts `semantos tune` with a slow objective, waits until the candidate's value is in force, kills it (SIGKILL).
fn kill_mid_trial(dir: &Path, extra: &[&str], in_force: &dyn Fn() -> bool) {
    let mut c = Command::new(support::bin());
    c.arg("tune").args(extra).args(["--objective-cmd", "sleep 0.4; echo 1; echo 2", "--repeats", "4", "--budget", "2", "--sources", "rules", "--telemetry", &telemetry()]);
    let mut child: Child = c.current_dir(dir).env_remove("SEMANTOS_FAULT").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while !in_force() {
        assert!(Instant::now() < until, "the candidate's value never came into force");
        assert!(child.try_wait().unwrap().is_none(), "tune ended before its trial was measured");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_tune_killed_mid_trial_on_a_sandbox_tree_is_rolled_back_by_tune_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, state, plan) = sandbox(dir.path());
    let flags = ["--sysctl-root", tree.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--plan", plan.to_str().unwrap()];
    kill_mid_trial(dir.path(), &flags, &|| somaxconn(&tree) == "1024");
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state.join("tune/state.json")).unwrap()).unwrap();
    assert_eq!(s["status"], "running");
    assert_eq!(s["in_progress"]["values"]["net.core.somaxconn"], "1024", "the state names the values being measured");
    // A new tune refuses while this one is unfinished, and names both ways out.
    let o = run_in(dir.path(), &[&["tune", "--objective-cmd", "echo 1", "--keys", "net.core.somaxconn"][..], &flags[..4]].concat());
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("tune --resume") && err.contains("tune --rollback"), "{err}");
    let o = run_in(dir.path(), &["tune", "--rollback", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(somaxconn(&tree), "4096", "the trial's value was not left behind");
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state.join("tune/state.json")).unwrap()).unwrap();
    assert_eq!(s["status"], "rolled_back");
}

#[test]
fn a_tune_killed_mid_trial_resumes_from_its_incumbent() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, state, plan) = sandbox(dir.path());
    let flags = ["--sysctl-root", tree.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--plan", plan.to_str().unwrap()];
    kill_mid_trial(dir.path(), &flags, &|| somaxconn(&tree) == "1024");
    let o = run_in(dir.path(), &["tune", "--resume", "--state-dir", state.to_str().unwrap(), "--json"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((doc["kind"].as_str(), doc["schema_version"].as_u64()), (Some("tune"), Some(1)), "{out}");
    // The plan's one candidate was the interrupted trial: measured again from the incumbent, and
    // (the objective does not depend on it) not shown better, so rolled back.
    let trials = doc["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 1, "{out}");
    assert_eq!(trials[0]["judgement"]["decision"], "reverted", "{out}");
    assert_eq!(somaxconn(&tree), "4096", "the incumbent (the start values) is in force");
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state.join("tune/state.json")).unwrap()).unwrap();
    assert_eq!(s["status"], "finished");
}

#[test]
fn a_tune_killed_mid_trial_in_a_namespace_is_rolled_back_by_tune_rollback() {
    if !privileged("a_tune_killed_mid_trial_in_a_namespace_is_rolled_back_by_tune_rollback") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = burst_netns("tune-kill", "4096");
    let (_, state, plan) = sandbox(dir.path());
    let flags = ["--netns", ns.name.as_str(), "--state-dir", state.to_str().unwrap(), "--plan", plan.to_str().unwrap()];
    kill_mid_trial(dir.path(), &flags, &|| ns.read("net.core.somaxconn") == "1024");
    assert_eq!(ns.read("net.core.somaxconn"), "1024", "killed with the trial's value in force");
    let o = run_in(dir.path(), &["tune", "--rollback", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(ns.read("net.core.somaxconn"), "4096");
}

/// Runs `tune` with `args` on a fresh sandbox; asserts exit 2, a message containing `needle`, and nothing written.
fn refused(args: &[&str], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (tree, state, _) = sandbox(dir.path());
    let mut all = vec!["tune", "--sysctl-root", tree.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--telemetry"];
    let t = telemetry();
    all.push(&t);
    all.extend_from_slice(args);
    let o = run_in(dir.path(), &all);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
    assert!(!state.exists(), "{args:?}: the state directory was written");
    assert_eq!(somaxconn(&tree), "4096");
}

#[test]
fn bad_tune_input_is_refused_by_name_and_writes_nothing() {
    refused(&["--objective-cmd", "echo 1", "--stat", "p42"], "p42");
    refused(&["--objective-cmd", "echo 1", "--budget", "0", "--keys", "net.core.somaxconn"], "--budget 0");
    refused(&["--objective-cmd", "true", "--keys", "net.core.somaxconn"], "printed no latency samples");
    refused(&["--objective-cmd", "echo 1", "--keys", "net.core.no_such_key"], "net.core.no_such_key is not in the knowledge base");
    refused(&["--objective-cmd", "echo 1", "--keys", "net.core.somaxconn", "--guard", "latency:5"], "reports no guard \"latency\"");
    refused(&["--objective-cmd", "echo 1; echo 2", "--stat", "value", "--keys", "net.core.somaxconn"], "exactly one");
    refused(&["--objective-cmd", "echo 1", "--keys", "net.core.somaxconn", "--min-effect=150"], "--min-effect 150");
}

#[test]
fn a_host_wide_key_in_a_namespace_tune_is_a_refused_trial_never_attempted() {
    if !privileged("a_host_wide_key_in_a_namespace_tune_is_a_refused_trial_never_attempted") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = burst_netns("tune-scope", "4096");
    let host_before = support::host_value("net.core.rmem_max");
    let want = (host_before.parse::<u64>().unwrap() * 2).to_string();
    let plan = dir.path().join("plan.conf");
    std::fs::write(&plan, format!("net.core.rmem_max = {want}\n")).unwrap();
    let pol = dir.path().join("policy.yaml");
    std::fs::write(&pol, "whitelist: [\"net.core.*\"]\n").unwrap();
    let state = dir.path().join("state");
    let t = telemetry();
    let o = run_in(
        dir.path(),
        &["tune", "--netns", &ns.name, "--state-dir", state.to_str().unwrap(), "--plan", plan.to_str().unwrap(), "--policy", pol.to_str().unwrap(), "--sources", "rules", "--objective-cmd", "echo 1; echo 2", "--telemetry", &t, "--json"],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let j = &doc["trials"][0]["judgement"];
    assert_eq!(j["decision"], "refused", "{out}");
    assert!(j["reason"].as_str().unwrap().contains("netns_read_only"), "{out}");
    assert_eq!(support::host_value("net.core.rmem_max"), host_before, "never attempted, so the host's value never moved");
    let audit = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).unwrap_or_default();
    assert!(!audit.contains("rmem_max"), "nothing about the key reached the transaction: {audit}");
}

/// An LLM reply proposing vm.swappiness 10 whose rationale cites a swap-in rate the evidence it was given does not show.
fn unsupported_reply() -> String {
    let change = serde_json::json!({"key": "vm.swappiness", "kb_key": "vm.swappiness", "finding_id": "swap_in_stalls", "value": "10", "rationale": "swap-ins run at 987654 pages per second, so keep anonymous pages in memory"});
    serde_json::json!({"schema_version": 1, "changes": [change]}).to_string()
}

#[test]
fn an_llm_candidate_with_an_unsupported_rationale_is_marked_so_and_kept_only_by_measurement() {
    use crate::llm_contract::{Canned, FakeServer};
    let server = FakeServer::always(Canned::content(&unsupported_reply(), "stop"));
    let url = server.url();
    // The same candidate under two objectives: one that the lower swappiness really helps (its
    // p99 is the swappiness in force), one it cannot move. The rationale is the same wrong one.
    for (helps, want) in [(true, "kept"), (false, "reverted")] {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        semantos::sim::seed_sandbox(&semantos::sim::HostSpec::default(), &tree).unwrap();
        let state = dir.path().join("state");
        let cmd = if helps { format!("v=$(cat {}/vm/swappiness); for i in 1 2 3 4 5 6 7 8; do echo $v; done", tree.display()) } else { "for i in 1 2 3 4 5 6 7 8; do echo 5; done".to_string() };
        let t = telemetry();
        let args = ["tune", "--sources", "llm", "--llm-url", &url, "--llm-model", "fake-model", "--llm-timeout", "5", "--telemetry", &t, "--sysctl-root", tree.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--objective-cmd", &cmd, "--budget", "1", "--repeats", "2"];
        let o = run_in(dir.path(), &[&args[..], &["--json"]].concat());
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let trial = &doc["trials"][0];
        assert_eq!(trial["source"], "llm", "{out}");
        assert_eq!(trial["supported"], false, "the rationale's 987654 pages/s is in no evidence: {out}");
        assert_eq!(trial["judgement"]["decision"], want, "helps = {helps}: {out}");
        let trace = std::fs::read_to_string(doc["trace"].as_str().unwrap()).unwrap();
        assert!(trace.replace([' ', '\n'], "").contains("\"supported\":false"), "the trace does not carry it: {trace}");
        let swappiness = std::fs::read_to_string(tree.join("vm/swappiness")).unwrap();
        assert_eq!(swappiness.trim() != "60", helps, "helps = {helps}: swappiness {swappiness}");
    }
    // The table says so too.
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    semantos::sim::seed_sandbox(&semantos::sim::HostSpec::default(), &tree).unwrap();
    let (t, state) = (telemetry(), dir.path().join("state"));
    let o = run_in(dir.path(), &["tune", "--sources", "llm", "--llm-url", &url, "--llm-model", "fake-model", "--telemetry", &t, "--sysctl-root", tree.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--objective-cmd", "echo 5; echo 5", "--budget", "1", "--repeats", "2"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains("do not match the evidence it was given (unsupported)"), "{out}");
}
