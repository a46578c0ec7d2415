//! Fleet rollout against real hosts: network namespaces each running a real
//! `sshd` (`fleet/hosts.rs`), driven by `semantos rollout` from a controller
//! namespace over the system `ssh`, and by `ansible-playbook` with
//! ansible.posix.sysctl. Only per-namespace keys are planned
//! (net.core.somaxconn, net.ipv4.tcp_max_syn_backlog,
//! net.ipv4.tcp_slow_start_after_idle), so no global setting of the machine
//! moves; each test checks that.
//!
//! Privileged: skips without root unless SEMANTOS_REQUIRE_PRIVILEGED=1.
//! The exporter checks at the end run everywhere.

#[path = "fleet/hosts.rs"]
mod hosts;

use crate::support::{bin, host_value, privileged, text};
use hosts::{TestFleet, ansible_playbook};
use semantos::apply::Backup;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const KEYS: [&str; 3] = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_slow_start_after_idle"];
const TARGETS: [&str; 3] = ["8192", "4096", "0"];

/// The Ansible fleet runs alone: its Python tasks fill both cores, and other privileged tests
/// (live workloads measuring latency) share them. The ssh fleets are light and run together.
static ANSIBLE_ALONE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held while a fleet exists.
enum FleetGuard {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

/// A fleet of `n` hosts with distinct starting values (somaxconn 2000+i), or None when the test
/// must skip; tags starting with `ansible` get the machine to themselves.
fn fleet(test: &str, tag: &str, n: usize) -> Option<(FleetGuard, TestFleet)> {
    if !privileged(test) {
        return None;
    }
    let guard = if tag.starts_with("ansible") {
        FleetGuard::Alone(ANSIBLE_ALONE.write().unwrap_or_else(|p| p.into_inner()))
    } else {
        FleetGuard::Shared(ANSIBLE_ALONE.read().unwrap_or_else(|p| p.into_inner()))
    };
    if let Some(why) = hosts::missing() {
        if std::env::var("SEMANTOS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("{test}: SEMANTOS_REQUIRE_PRIVILEGED=1 but {why}");
        }
        eprintln!("skipping {test}: {why}");
        return None;
    }
    let f = TestFleet::start(tag, n).unwrap_or_else(|e| panic!("{test}: building the test fleet: {e}"));
    for i in 0..n {
        f.write(i, KEYS[0], &(2000 + i).to_string());
        f.write(i, KEYS[1], "1024");
        f.write(i, KEYS[2], "1");
    }
    Some((guard, f))
}

fn originals(i: usize) -> [String; 3] {
    [(2000 + i).to_string(), "1024".into(), "1".into()]
}

fn values(f: &TestFleet, i: usize) -> [String; 3] {
    KEYS.map(|k| f.read(i, k))
}

fn plan_file(f: &TestFleet, name: &str, changes: &[(&str, &str)]) -> PathBuf {
    let p = f.dir.path().join(name);
    let changes: Vec<Json> = changes.iter().map(|(k, v)| serde_json::json!({"key": k, "to": v, "rationale": "fleet test"})).collect();
    std::fs::write(&p, serde_json::json!({"schema_version": 1, "created_by": "fleet-test", "intent": "latency", "changes": changes}).to_string()).unwrap();
    p
}

fn good_plan(f: &TestFleet) -> PathBuf {
    plan_file(f, "plan.json", &KEYS.iter().copied().zip(TARGETS).collect::<Vec<_>>())
}

/// `semantos rollout` in the controller namespace with the fleet's files and `extra` flags (monitor window 0.1 s).
fn rollout_cmd(f: &TestFleet, plan: &Path, state: &str, extra: &[&str]) -> Command {
    rollout_with(f, &f.inventory, plan, state, "0.1", extra)
}

fn rollout_with(f: &TestFleet, inventory: &Path, plan: &Path, state: &str, monitor: &str, extra: &[&str]) -> Command {
    rollout_under(f, &f.policy(&KEYS), inventory, plan, state, monitor, extra)
}

fn rollout_under(f: &TestFleet, policy: &Path, inventory: &Path, plan: &Path, state: &str, monitor: &str, extra: &[&str]) -> Command {
    let mut c = f.in_ctl(bin());
    // TMPDIR inside the fleet: a killed controller's ssh control sockets go away with it.
    c.current_dir(f.dir.path()).env_remove("SEMANTOS_FAULT").env("TMPDIR", f.dir.path()).args(["rollout", "--inventory"]).arg(inventory).arg("--plan").arg(plan).arg("--policy").arg(policy);
    c.arg("--ssh-config").arg(&f.ssh_config).arg("--remote-semantos").arg(bin()).args(["--remote-dir", &f.remote_dir(), "--state", state]);
    c.args(["--interval", "0.1", "--monitor-seconds", monitor, "--canary", "1", "--steps", "50%", "--host-timeout", "60", "--parallel", "4"]);
    c.args(extra);
    c
}

fn run(mut c: Command) -> (Output, String, String) {
    let o = c.output().expect("running semantos rollout");
    let (out, err) = text(&o);
    (o, out, err)
}

fn report(out: &str) -> Json {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{out}"))
}

fn verdicts(r: &Json) -> Vec<(String, String)> {
    r["hosts"].as_array().unwrap().iter().map(|h| (h["host"].as_str().unwrap().to_string(), h["verdict"].as_str().unwrap().to_string())).collect()
}

fn globals_before() -> Vec<String> {
    KEYS.iter().map(|k| host_value(k)).collect()
}

#[test]
fn fleet_clean_rollout_six_hosts_three_waves() {
    let Some((_one, f)) = fleet("fleet_clean_rollout_six_hosts_three_waves", "clean", 6) else { return };
    let globals = globals_before();
    let (o, out, err) = run(rollout_cmd(&f, &good_plan(&f), "state.json", &["--run", "--json"]));
    assert!(o.status.success(), "exit {:?}\n{err}\n{out}", o.status.code());
    let r = report(&out);
    assert_eq!(r["status"], "passed");
    assert_eq!(r["waves"], serde_json::json!([["h1"], ["h2", "h3"], ["h4", "h5", "h6"]]));
    for i in 0..6 {
        assert_eq!(values(&f, i), TARGETS.map(String::from), "h{}", i + 1);
        let row = &r["hosts"][i];
        assert_eq!(row["verdict"], "committed", "{row}");
        assert_eq!(row["before"][KEYS[0]], Json::from((2000 + i).to_string()), "{row}");
        assert_eq!(row["after"][KEYS[0]], "8192", "{row}");
        // The host's own backup, in the single-host format, holds its own originals.
        let b = Backup::load(&f.backup(i)).unwrap();
        assert_eq!(b.originals[KEYS[0]].as_deref(), Some((2000 + i).to_string().as_str()));
        assert_eq!(serde_json::to_value(b.state).unwrap(), "committed");
    }
    assert_eq!(globals_before(), globals, "a global value moved");
    // The human table names every column.
    let (o, out, _) = run(rollout_cmd(&f, &good_plan(&f), "state.json", &["--resume"]));
    assert!(o.status.success());
    for col in ["HOST", "WAVE", "BEFORE", "AFTER", "VERDICT", "REASON", "PASSED"] {
        assert!(out.contains(col), "{col} missing:\n{out}");
    }
    // `semantos rollback` on one host restores it from the rollout's backup, by hand.
    let o = Command::new("ip").args(["netns", "exec", &f.hosts[3].ns]).arg(bin()).args(["rollback", "--sysctl-root", "/proc/sys", "--backup"]).arg(f.backup(3)).arg("--audit-log").arg(f.dir.path().join("audit.jsonl")).current_dir(f.dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(values(&f, 3), originals(3));
}

/// Waits until the state file says `pred`, or panics after 30 s with the state and `log` (the controller's stderr).
fn wait_state(path: &Path, what: &str, log: Option<&Path>, pred: impl Fn(&Json) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(t) = std::fs::read_to_string(path)
            && let Ok(v) = serde_json::from_str::<Json>(&t)
            && pred(&v)
        {
            return;
        }
        if Instant::now() >= deadline {
            let state = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"));
            let log = log.map(|l| std::fs::read_to_string(l).unwrap_or_default()).unwrap_or_default();
            panic!("timed out waiting for {what} in {}\nstate: {state}\ncontroller stderr:\n{log}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn phase(s: &Json, host: usize) -> String {
    s["hosts"][host]["phase"].as_str().unwrap_or("").to_string()
}

#[test]
fn fleet_sshd_stopped_in_wave_two_rolls_back_waves_one_and_two() {
    let Some((_one, f)) = fleet("fleet_sshd_stopped_in_wave_two_rolls_back_waves_one_and_two", "down", 6) else { return };
    let state = f.dir.path().join("state.json");
    // A one-second monitor window keeps wave 1 busy while h3's sshd goes away.
    let mut c = rollout_with(&f, &f.inventory, &good_plan(&f), "state.json", "1", &["--run", "--json"]);
    let child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    wait_state(&state, "wave 1 applying", None, |s| phase(s, 0) == "applying");
    f.stop_sshd(2);
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(semantos::cli::exit::ROLLED_BACK), "a failed wave, rolled back: {err}\n{out}");
    let r = report(&out);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["failed_wave"], 2);
    let v = verdicts(&r);
    assert_eq!(v[0], ("h1".into(), "rolled_back".into()));
    assert_eq!(v[1], ("h2".into(), "rolled_back".into()));
    assert_eq!(v[2], ("h3".into(), "unreachable".into()));
    for i in 0..3 {
        assert_eq!(values(&f, i), originals(i), "h{} not restored", i + 1);
    }
    for (i, (_, verdict)) in v.iter().enumerate().skip(3) {
        assert_eq!(verdict, "untouched");
        assert_eq!(values(&f, i), originals(i));
        assert_eq!(f.connections(i), 1, "h{} was contacted by the rollout (only the fixture's own check may connect)", i + 1);
    }
    assert!(r["hosts"][0]["reason"].as_str().unwrap().contains("wave 2 failed (h3"), "{}", r["hosts"][0]["reason"]);
}

#[test]
fn fleet_health_command_failing_on_one_host_rolls_back() {
    let Some((_one, f)) = fleet("fleet_health_command_failing_on_one_host_rolls_back", "health", 6) else { return };
    let globals = globals_before();
    // Healthy everywhere but on h5 (10.231.0.15), in the last wave.
    let health = "! ip -4 -o addr show | grep -qF ' 10.231.0.15/'";
    let (o, out, err) = run(rollout_cmd(&f, &good_plan(&f), "state.json", &["--run", "--json", "--health-cmd", health]));
    assert_eq!(o.status.code(), Some(semantos::cli::exit::ROLLED_BACK), "a failed wave, rolled back: {err}\n{out}");
    let r = report(&out);
    assert_eq!(r["failed_wave"], 3);
    for (i, (name, verdict)) in verdicts(&r).into_iter().enumerate() {
        assert_eq!(verdict, if name == "h5" { "failed" } else { "rolled_back" }, "{name}: {}", r["hosts"][i]);
        assert_eq!(values(&f, i), originals(i), "{name} not restored");
    }
    let reason = r["hosts"][4]["reason"].as_str().unwrap();
    assert!(reason.contains("health command") && reason.contains("restored"), "{reason}");
    assert_eq!(globals_before(), globals);
}

fn spawn_and_kill_mid_wave(f: &TestFleet, plan: &Path, state: &str) {
    let path = f.dir.path().join(state);
    let mut c = rollout_with(f, &f.inventory, plan, state, "1.5", &["--run"]);
    let log = f.dir.path().join(format!("{state}.stderr"));
    let mut child = c.stdout(std::process::Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    // `ip netns exec` execs semantos in place: the child's pid is the controller's.
    wait_state(&path, "wave 2 applying", Some(&log), |s| phase(s, 1) == "applying" || phase(s, 2) == "applying");
    // SAFETY: our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let st = child.wait().unwrap();
    assert!(!st.success());
    // Its ssh clients die with it (left alone, they would live until their remote apply, at
    // least a second away, answered); only the multiplexing masters (`ssh: SOCKET [mux]`) linger.
    let config = f.ssh_config.display().to_string();
    wait_until_none_runs("the killed controller left ssh clients running", Duration::from_millis(500), |c| c.starts_with("ssh ") && c.contains(&config));
    let s: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(s["status"], "running", "the killed controller left: {s}");
}

/// Waits until no process's command line (arguments joined by spaces) satisfies `matches`, or panics with `what` after `within`.
fn wait_until_none_runs(what: &str, within: Duration, matches: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let running: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| matches(c))
            .collect();
        if running.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {running:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to 90 s: the host timeout is 60 s) until no `semantos apply` of this fleet runs on any host.
fn wait_for_remote_applies_to_end(f: &TestFleet) {
    let marker = format!("{}/remote/", f.dir.path().display());
    wait_until_none_runs("remote applies still running", Duration::from_secs(90), |c| c.contains(&marker) && c.contains(" apply ") && !c.starts_with("timeout "));
}

#[test]
fn fleet_controller_killed_mid_wave_resume_then_rollback_fleet() {
    let Some((_one, f)) = fleet("fleet_controller_killed_mid_wave_resume_then_rollback_fleet", "kill", 6) else { return };
    let plan = good_plan(&f);
    spawn_and_kill_mid_wave(&f, &plan, "a.json");
    // Resume finishes the interrupted wave and the rest: every host at the targets.
    let (o, out, err) = run(rollout_cmd(&f, &plan, "a.json", &["--resume", "--json"]));
    assert!(o.status.success(), "{err}\n{out}");
    assert_eq!(report(&out)["status"], "passed");
    for i in 0..6 {
        assert_eq!(values(&f, i), TARGETS.map(String::from), "h{} after resume", i + 1);
    }
    // The same state rolls the whole fleet back: every host at its originals.
    let (o, out, err) = run(rollout_cmd(&f, &plan, "a.json", &["--rollback-fleet", "--json"]));
    assert!(o.status.success(), "{err}\n{out}");
    assert_eq!(report(&out)["status"], "rolled_back");
    for i in 0..6 {
        assert_eq!(values(&f, i), originals(i), "h{} after rollback", i + 1);
    }
    // Killed again mid-wave, a fresh rollout is rolled back straight from its state. The dead
    // controller's remote applies may still be on their way: once they have all ended, the
    // fleet must still be at its originals (each touched host fenced the rollout first).
    spawn_and_kill_mid_wave(&f, &plan, "b.json");
    let (o, out, err) = run(rollout_cmd(&f, &plan, "b.json", &["--rollback-fleet", "--json"]));
    assert!(o.status.success(), "{err}\n{out}");
    let r = report(&out);
    assert_eq!(r["status"], "rolled_back");
    wait_for_remote_applies_to_end(&f);
    let run_id = r["run_id"].as_str().unwrap();
    for (i, h) in r["hosts"].as_array().unwrap().iter().enumerate() {
        if h["verdict"] == "rolled_back" {
            let fence = f.backup(i).with_file_name("fenced").join(run_id);
            assert!(fence.exists(), "{} restored without fencing {run_id}", h["host"]);
        }
    }
    for (i, (name, verdict)) in verdicts(&r).into_iter().enumerate() {
        assert_eq!(values(&f, i), originals(i), "{name} after the second rollback\n{err}\n{out}\nkilled controller:\n{}", std::fs::read_to_string(f.dir.path().join("b.json.stderr")).unwrap_or_default());
        assert!(["rolled_back", "untouched"].contains(&verdict.as_str()), "{name}: {verdict}");
    }
}

#[test]
fn fleet_hostile_plan_refused_before_any_connection() {
    let Some((_one, f)) = fleet("fleet_hostile_plan_refused_before_any_connection", "hostile", 2) else { return };
    let pwned = f.dir.path().join("pwned");
    let p = pwned.display().to_string();
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("key with ;", vec![("net.core.somaxconn; reboot".into(), "4096".into())]),
        ("key with $()", vec![(format!("net.core.somaxconn$(touch {p})"), "4096".into())]),
        ("value with $()", vec![("net.core.somaxconn".into(), format!("$(touch {p})"))]),
        ("value with backticks", vec![("net.core.somaxconn".into(), format!("`touch {p}`"))]),
        ("value with a newline", vec![("net.core.somaxconn".into(), "4096\nnet.ipv4.tcp_syncookies = 0".into())]),
        ("string value with $()", vec![("net.ipv4.tcp_congestion_control".into(), format!("$(touch {p})"))]),
        ("string value with a template", vec![("net.ipv4.tcp_congestion_control".into(), "{{ lookup('pipe', 'id') }}".into())]),
        ("hidden among good changes", vec![("net.core.somaxconn".into(), "8192".into()), ("net.ipv4.tcp_max_syn_backlog".into(), format!("4096; touch {p}"))]),
    ];
    for (what, changes) in &cases {
        let refs: Vec<(&str, &str)> = changes.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let plan = plan_file(&f, "hostile.json", &refs);
        for engine in ["ssh", "ansible"] {
            let (o, out, err) = run(rollout_cmd(&f, &plan, "hostile-state.json", &["--run", "--engine", engine]));
            assert_eq!(o.status.code(), Some(2), "{what} ({engine}): exit {:?}\n{err}\n{out}", o.status.code());
            assert!(err.contains("refused before any connection") || err.contains("key"), "{what}: {err}");
        }
    }
    // A sysctl.d plan with a shell tail is refused the same way.
    let conf = f.dir.path().join("hostile.conf");
    std::fs::write(&conf, format!("net.core.somaxconn = 4096; touch {p}\n")).unwrap();
    let (o, _, err) = run(rollout_cmd(&f, &conf, "hostile-state.json", &["--run"]));
    assert_eq!(o.status.code(), Some(2), "{err}");
    // An inventory address that would be an ssh option is refused too.
    let inv = f.dir.path().join("hostile-hosts.yaml");
    std::fs::write(&inv, format!("hosts:\n  - {{name: evil, address: '-oProxyCommand=touch {p}'}}\n")).unwrap();
    let (o, _, err) = run(rollout_with(&f, &inv, &good_plan(&f), "hostile-state.json", "0.1", &["--run"]));
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("address"), "{err}");
    assert!(!pwned.exists(), "a hostile plan ran a command");
    assert!(!f.dir.path().join("hostile-state.json").exists(), "a refused rollout wrote a state file");
    for i in 0..2 {
        // Only the fixture's own readiness check ever connected.
        assert_eq!(f.connections(i), 1, "h{} saw a connection", i + 1);
        assert_eq!(values(&f, i), originals(i));
    }
}

fn syntax_check(ansible: &Path, playbook: &Path, inventory: Option<&Path>) {
    let mut c = Command::new(ansible);
    c.arg("--syntax-check").arg(playbook).env("ANSIBLE_NOCOLOR", "1");
    if let Some(i) = inventory {
        c.arg("-i").arg(i);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "--syntax-check {}: {}{}", playbook.display(), text(&o).0, text(&o).1);
}

fn need_ansible(test: &str) -> Option<PathBuf> {
    match ansible_playbook() {
        Some(p) => Some(p),
        None if std::env::var("SEMANTOS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") => panic!("{test}: no ansible-playbook: run scripts/setup/30-ansible.sh"),
        None => {
            eprintln!("skipping {test}: no ansible-playbook (scripts/setup/30-ansible.sh installs it)");
            None
        }
    }
}

#[test]
fn fleet_ansible_engine_applies_gates_and_rolls_back_for_real() {
    let Some((_one, f)) = fleet("fleet_ansible_engine_applies_gates_and_rolls_back_for_real", "ansible", 6) else { return };
    let Some(ansible) = need_ansible("fleet_ansible_engine_applies_gates_and_rolls_back_for_real") else { return };
    let globals = globals_before();
    let persist = format!("--persist={}/remote/{{host}}/99-semantos.conf", f.dir.path().display());
    let ans = ansible.display().to_string();
    // The hosts' system Python: interpreter discovery could pick a user-level shim.
    let common = ["--run", "--json", "--engine", "ansible", "--ansible-playbook", ans.as_str(), "--ansible-python", "/usr/bin/python3", persist.as_str()];
    // A clean run: every host at the targets, a SemantOS-format backup on each.
    let (o, out, err) = run(rollout_cmd(&f, &good_plan(&f), "ans.json", &common));
    assert!(o.status.success(), "{err}\n{out}");
    assert_eq!(report(&out)["status"], "passed");
    let playbook = f.dir.path().join("ansible/playbook.yml");
    let text_pb = std::fs::read_to_string(&playbook).unwrap();
    // Ansible does the waves; each host runs semantos itself (the ssh engine's transaction and backup).
    assert!(text_pb.contains("serial: [1, 2, 3]") && text_pb.contains("max_fail_percentage: 0") && text_pb.contains("\"--rollout-id\"") && text_pb.contains("\"--fence-rollout\""), "{text_pb}");
    syntax_check(&ansible, &playbook, Some(&f.dir.path().join("ansible/inventory.yml")));
    for i in 0..6 {
        assert_eq!(values(&f, i), TARGETS.map(String::from), "h{}", i + 1);
        let b = Backup::load(&f.backup(i)).unwrap_or_else(|e| panic!("h{}: {e:#}", i + 1));
        assert_eq!(b.originals[KEYS[0]].as_deref(), Some((2000 + i).to_string().as_str()));
    }
    // Each host's backup is restored by `semantos rollback` there, like a local apply's
    // (the rollback play itself runs in the failing scenario below).
    for i in 0..6 {
        let o = Command::new("ip").args(["netns", "exec", &f.hosts[i].ns]).arg(bin()).args(["rollback", "--sysctl-root", "/proc/sys", "--backup"]).arg(f.backup(i)).arg("--audit-log").arg(f.dir.path().join("audit.jsonl")).current_dir(f.dir.path()).output().unwrap();
        assert!(o.status.success(), "h{}: {}", i + 1, text(&o).1);
        assert_eq!(values(&f, i), originals(i), "h{} after semantos rollback", i + 1);
    }
    // A health command failing on h3 (wave 2): Ansible stops after that batch,
    // waves 1–2 are restored, wave 3 is never touched.
    let health = "! ip -4 -o addr show | grep -qF ' 10.231.0.13/'";
    let mut args = common.to_vec();
    args.extend(["--health-cmd", health]);
    let (o, out, err) = run(rollout_cmd(&f, &good_plan(&f), "ans2.json", &args));
    assert_eq!(o.status.code(), Some(semantos::cli::exit::ROLLED_BACK), "a failed wave, rolled back: {err}\n{out}");
    let r = report(&out);
    assert_eq!(r["failed_wave"], 2);
    let v = verdicts(&r);
    assert_eq!(v[2], ("h3".into(), "failed".into()), "{}", r["hosts"][2]);
    assert_eq!(v[0].1, "rolled_back");
    assert_eq!(v[1].1, "rolled_back");
    for i in 0..6 {
        assert_eq!(values(&f, i), originals(i), "h{}", i + 1);
    }
    for (i, (_, verdict)) in v.iter().enumerate().skip(3) {
        assert_eq!(verdict, "untouched");
        assert!(!f.backup(i).exists() || Backup::load(&f.backup(i)).unwrap().run_id != r["run_id"].as_str().unwrap(), "h{} was touched", i + 1);
    }
    assert_eq!(globals_before(), globals);
}

/// Exporters run everywhere (no root): each format, and the Ansible playbook through --syntax-check.
#[test]
fn export_writes_every_format_from_a_checked_plan() {
    let d = tempfile::tempdir().unwrap();
    let plan = d.path().join("plan.json");
    let changes: Vec<Json> = KEYS.iter().zip(TARGETS).map(|(k, v)| serde_json::json!({"key": k, "to": v, "rationale": "export test"})).collect();
    std::fs::write(&plan, serde_json::json!({"schema_version": 1, "created_by": "export-test", "intent": "latency", "changes": changes}).to_string()).unwrap();
    let policy = d.path().join("policy.yaml");
    std::fs::write(&policy, format!("whitelist: [{}]\n", KEYS.join(", "))).unwrap();
    let export = |fmt: &str, extra: &[&str]| -> (Output, String) {
        let o = Command::new(bin()).current_dir(d.path()).args(["export", fmt, "--plan"]).arg(&plan).arg("--policy").arg(&policy).args(extra).output().unwrap();
        let s = text(&o).0;
        (o, s)
    };
    let (o, s) = export("sysctl.d", &[]);
    assert!(o.status.success());
    assert!(s.contains("net.core.somaxconn = 8192\nnet.ipv4.tcp_max_syn_backlog = 4096\nnet.ipv4.tcp_slow_start_after_idle = 0\n"), "{s}");
    let (o, s) = export("tuned", &["--include", "throughput-performance"]);
    assert!(o.status.success());
    assert!(s.contains("[main]\nsummary=semantos: SemantOS plan export-test (intent latency)\ninclude=throughput-performance\n\n[sysctl]\nnet.core.somaxconn=8192\n"), "{s}");
    let (o, s) = export("nto", &["--name", "semantos-web"]);
    assert!(o.status.success());
    for want in ["apiVersion: tuned.openshift.io/v1", "kind: Tuned", "- name: semantos-web", "      [sysctl]\n      net.core.somaxconn=8192", "  recommend:", "profile: semantos-web"] {
        assert!(s.contains(want), "{want:?} missing:\n{s}");
    }
    let out = d.path().join("site.yml");
    let (o, _) = export("ansible", &["--out", out.to_str().unwrap(), "--health-cmd", "true"]);
    assert!(o.status.success());
    let pb = std::fs::read_to_string(&out).unwrap();
    assert!(pb.contains("serial: [1, \"25%\", \"25%\", \"100%\"]") && pb.contains("max_fail_percentage: 0") && pb.contains("sysctl_set: true"), "{pb}");
    // A hostile value is refused by every exporter, and nothing is written.
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, r#"{"schema_version": 1, "created_by": "x", "intent": "latency", "changes": [{"key": "net.ipv4.tcp_congestion_control", "to": "${f:exec:/bin/sh}", "rationale": ""}]}"#).unwrap();
    std::fs::write(&policy, "whitelist: [net.ipv4.tcp_congestion_control]\n").unwrap();
    for fmt in ["sysctl.d", "tuned", "nto", "ansible"] {
        let o = Command::new(bin()).current_dir(d.path()).args(["export", fmt, "--plan"]).arg(&bad).arg("--policy").arg(&policy).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{fmt}: {}", text(&o).1);
        assert!(text(&o).1.contains("'$'") && text(&o).1.contains("tcp_congestion_control"), "{fmt}: the message names the key and the character: {}", text(&o).1);
        assert!(o.stdout.is_empty());
    }
    if let Some(ansible) = ansible_playbook() {
        syntax_check(&ansible, &out, None);
    }
}

/// A parameter the built-in KB lacks, given by the user's `--kb DIR`: the controller uploads the
/// files, so each host's own guardrails know it too (without them a host would refuse the plan).
#[test]
fn fleet_hosts_judge_the_plan_by_the_controllers_kb_overrides() {
    let Some((_one, f)) = fleet("fleet_hosts_judge_the_plan_by_the_controllers_kb_overrides", "kb", 2) else { return };
    let key = "net.ipv4.tcp_comp_sack_nr";
    assert!(semantos::kb::Kb::embedded().unwrap().param(key).is_none(), "pick a key the built-in KB lacks");
    let kb = f.dir.path().join("site-kb");
    std::fs::create_dir_all(&kb).unwrap();
    std::fs::write(kb.join("site.toml"), format!("[[param]]\nkey = \"{key}\"\ntype = \"int\"\nmin = 0\nmax = 255\ndefault = \"44\"\nscope = \"netns\"\nrisk = \"low\"\nrisk_reason = \"Fewer compressed SACKs cost the sender a little precision.\"\ncontrols = \"How many SACKs the kernel may compress into one.\"\nreferences = [\"Documentation/networking/ip-sysctl.rst#tcp_comp_sack_nr\"]\n")).unwrap();
    let policy = f.dir.path().join("kb-policy.yaml");
    std::fs::write(&policy, format!("whitelist: [{key}]\nmonitor_seconds: 0.2\n")).unwrap();
    let plan = plan_file(&f, "kb-plan.json", &[(key, "22")]);
    let before: Vec<String> = (0..2).map(|i| f.read(i, key)).collect();
    // Without the directory the controller refuses before any connection.
    let (o, _, err) = run(rollout_under(&f, &policy, &f.inventory, &plan, "kb-none.json", "0.1", &["--run"]));
    assert_eq!(o.status.code(), Some(2), "{err}");
    let kb_flag = format!("--kb={}", kb.display());
    let (o, out, err) = run(rollout_under(&f, &policy, &f.inventory, &plan, "kb-state.json", "0.1", &["--run", "--json", &kb_flag]));
    assert!(o.status.success(), "{err}\n{out}");
    assert_eq!(report(&out)["status"], "passed");
    for i in 0..2 {
        assert_eq!(f.read(i, key), "22", "h{}", i + 1);
        let uploaded = f.backup(i).with_file_name("kb").join("site.toml");
        assert_eq!(std::fs::read_to_string(&uploaded).unwrap(), std::fs::read_to_string(kb.join("site.toml")).unwrap());
    }
    let (o, _, err) = run(rollout_under(&f, &policy, &f.inventory, &plan, "kb-state.json", "0.1", &["--rollback-fleet", &kb_flag]));
    assert!(o.status.success(), "{err}");
    assert_eq!((0..2).map(|i| f.read(i, key)).collect::<Vec<_>>(), before);
}

/// A sandbox host for one rollout restore: a tree (somaxconn 128, swappiness 60) and its files.
struct SandboxHost {
    d: tempfile::TempDir,
}

impl SandboxHost {
    const COMMON: [&'static str; 6] = ["--sysctl-root", "tree", "--backup", "b/backup.json", "--audit-log", "a.jsonl"];
    /// Apply's own flags: no monitor window (rollback takes none).
    const APPLY: [&'static str; 4] = ["--monitor-seconds", "0", "--interval", "0.05"];

    fn new() -> SandboxHost {
        let d = tempfile::tempdir().unwrap();
        for (k, v) in [("net/core/somaxconn", "128"), ("vm/swappiness", "60")] {
            let p = d.path().join("tree").join(k);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("{v}\n")).unwrap();
        }
        SandboxHost { d }
    }

    /// (somaxconn, swappiness) now.
    fn values(&self) -> (String, String) {
        let read = |k: &str| std::fs::read_to_string(self.d.path().join("tree").join(k)).unwrap().trim().to_string();
        (read("net/core/somaxconn"), read("vm/swappiness"))
    }

    /// `semantos apply` of `plan` (sysctl.d text) as rollout `id`, with `SEMANTOS_FAULT=fault` when given.
    fn apply(&self, id: &str, plan: &str, fault: Option<&str>) -> Output {
        let p = self.d.path().join(format!("{id}.conf"));
        std::fs::write(&p, plan).unwrap();
        let mut c = Command::new(bin());
        c.args(["apply", "--plan"]).arg(&p).args(["--rollout-id", id]).args(Self::COMMON).args(Self::APPLY).current_dir(self.d.path()).env_remove("SEMANTOS_FAULT");
        if let Some(f) = fault {
            c.env("SEMANTOS_FAULT", f);
        }
        c.output().unwrap()
    }

    /// The fleet's final restore of rollout `id` on this host.
    fn fleet_restore(&self, id: &str) -> Output {
        Command::new(bin()).args(["--json", "rollback", "--fence-rollout", id]).args(Self::COMMON).current_dir(self.d.path()).env_remove("SEMANTOS_FAULT").output().unwrap()
    }
}

/// Rollout B's apply killed after its first write (a journal is left) on a host where rollout A is
/// committed: the fleet restore of B used to restore the whole backup, undoing A too.
#[test]
fn a_fleet_restore_of_an_interrupted_rollout_keeps_an_earlier_rollout() {
    let h = SandboxHost::new();
    assert!(h.apply("rollout-a", "vm.swappiness = 30\n", None).status.success());
    let o = h.apply("rollout-b", "vm.swappiness = 20\nnet.core.somaxconn = 1024\n", Some("kill-before#2"));
    assert!(!o.status.success(), "the fault did not interrupt the apply: {}", text(&o).1);
    assert!(h.d.path().join("b/backup.journal").exists(), "no journal left by the interrupted apply");
    assert_ne!(h.values(), ("128".to_string(), "30".to_string()), "the interrupted apply wrote nothing");
    let o = h.fleet_restore("rollout-b");
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(h.values(), ("128".to_string(), "30".to_string()), "rollout-a's swappiness 30 must stay");
    assert!(!h.d.path().join("b/backup.journal").exists(), "the journal is finished");
    // Rollout A still undoes on its own afterwards, to the true originals.
    let o = h.fleet_restore("rollout-a");
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(h.values(), ("128".to_string(), "60".to_string()));
}

/// A fleet resuming rollout B on a host where B's own apply was cut off: the host undoes B's partial
/// writes from its journal and applies afresh; rollout A's value on a key B does not touch stays.
/// (The fleet used to answer "interrupted" with a whole-backup rollback, which undid A there.)
#[test]
fn resuming_an_interrupted_rollout_on_a_host_keeps_an_earlier_rollouts_values() {
    let h = SandboxHost::new();
    std::fs::write(h.d.path().join("tree/net/core/netdev_max_backlog"), "1000\n").unwrap();
    assert!(h.apply("rollout-a", "vm.swappiness = 30\n", None).status.success());
    let o = h.apply("rollout-b", "net.core.somaxconn = 1024\nnet.core.netdev_max_backlog = 2000\n", Some("kill-before#2"));
    assert!(!o.status.success(), "the fault did not interrupt the apply: {}", text(&o).1);
    assert!(h.d.path().join("b/backup.journal").exists(), "no journal left by the interrupted apply");
    // The resumed apply of the same rollout goes through.
    let o = h.apply("rollout-b", "net.core.somaxconn = 1024\nnet.core.netdev_max_backlog = 2000\n", None);
    let (_, err) = text(&o);
    assert!(o.status.success(), "the resumed apply: {err}");
    assert!(err.contains("finished the interrupted apply of rollout rollout-b"), "{err}");
    assert_eq!(h.values(), ("1024".to_string(), "30".to_string()), "rollout-a's swappiness 30 must stay");
    // Another rollout's leftovers are not undone by a resume: that apply is refused instead.
    let o = h.apply("rollout-c", "net.core.somaxconn = 2048\n", Some("kill-before#1"));
    assert!(!o.status.success());
    let o = h.apply("rollout-b", "net.core.somaxconn = 1024\n", None);
    assert!(!o.status.success(), "a resume of rollout-b undid rollout-c's unfinished run: {}", text(&o).1);
    assert_eq!(h.values().1, "30");
}

/// An unfinished run of another rollout holds the journal: restoring rollout B alone cannot be done,
/// so it is refused with nothing written (it used to restore the whole backup).
#[test]
fn a_fleet_restore_refuses_an_interrupted_run_of_another_rollout_and_writes_nothing() {
    let h = SandboxHost::new();
    assert!(h.apply("rollout-a", "vm.swappiness = 30\n", None).status.success());
    let o = h.apply("rollout-c", "vm.swappiness = 20\nnet.core.somaxconn = 1024\n", Some("kill-before#2"));
    assert!(!o.status.success());
    let before = h.values();
    let o = h.fleet_restore("rollout-b");
    let (_, err) = text(&o);
    assert!(!o.status.success(), "restored: {err}");
    assert!(err.contains("rollout-c") && err.contains("Nothing was written") && err.contains("semantos rollback --backup"), "{err}");
    assert_eq!(h.values(), before, "something was written");
}

/// Rollout B committed nothing on a host (its apply was refused there) where rollout A is committed:
/// the fleet restore of B used to fall back to the whole backup and undo A.
#[test]
fn a_fleet_restore_of_a_rollout_that_committed_nothing_here_keeps_an_earlier_rollout() {
    let h = SandboxHost::new();
    assert!(h.apply("rollout-a", "vm.swappiness = 30\n", None).status.success());
    let o = h.apply("rollout-b", "vm.swappiness = 20\n", Some("write#1:EIO"));
    assert!(!o.status.success());
    let o = h.fleet_restore("rollout-b");
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(h.values(), ("128".to_string(), "30".to_string()), "rollout-a was undone");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Rollout A (somaxconn 8192) passes on every host. Rollout B1 sets tcp_max_syn_backlog and its
/// last wave fails (a health command failing on the last host, whose own apply undoes itself, so B1
/// has nothing committed there): the failed wave and every earlier one are restored. Rollout B2
/// sets tcp_max_syn_backlog and somaxconn, passes, and is rolled back with `--rollback-fleet`. After
/// each, every host must hold A's values again, not the originals from before A.
fn rollback_of_b_keeps_a_on_every_host(f: &TestFleet, engine: &[&str]) {
    let n = f.hosts.len();
    let with = |extra: &[&str]| -> Vec<String> { engine.iter().chain(extra).map(|s| s.to_string()).collect() };
    let a = plan_file(f, "a.json", &[(KEYS[0], "8192")]);
    let (o, out, err) = run(rollout_cmd(f, &a, "a-state.json", &strs(&with(&["--run", "--json"]))));
    assert!(o.status.success(), "rollout A: {err}\n{out}");
    for i in 0..n {
        assert_eq!(values(f, i)[0], "8192", "h{} after rollout A", i + 1);
    }
    let a_values = || ["8192".to_string(), "1024".into(), "1".into()];
    // B1: the last host's health command fails, so its wave fails and the rollout is rolled back.
    let last = format!("! ip -4 -o addr show | grep -qF ' 10.231.0.{}/'", 10 + n);
    let b1 = plan_file(f, "b1.json", &[(KEYS[1], "4096")]);
    let (o, out, err) = run(rollout_cmd(f, &b1, "b1-state.json", &strs(&with(&["--run", "--json", "--health-cmd", &last]))));
    assert_eq!(o.status.code(), Some(4), "rollout B1 should fail on its last host and be rolled back (exit 4): {err}\n{out}");
    assert_eq!(report(&out)["status"], "failed", "{out}");
    for i in 0..n {
        assert_eq!(values(f, i), a_values(), "h{} after B1's failed wave was rolled back: rollout A was undone too\n{out}", i + 1);
    }
    // B2: passes, then the whole rollout is rolled back.
    let changes = [(KEYS[1], "4096"), (KEYS[0], "10000")];
    let b2 = plan_file(f, "b2.json", &changes);
    let (o, out, err) = run(rollout_cmd(f, &b2, "b2-state.json", &strs(&with(&["--run", "--json"]))));
    assert!(o.status.success(), "rollout B2: {err}\n{out}");
    for i in 0..n {
        for (k, v) in changes {
            assert_eq!(f.read(i, k), v, "h{} after rollout B2", i + 1);
        }
    }
    let (o, out, err) = run(rollout_cmd(f, &b2, "b2-state.json", &strs(&with(&["--rollback-fleet", "--json"]))));
    assert!(o.status.success(), "rollback of B2: {err}\n{out}");
    assert_eq!(report(&out)["status"], "rolled_back", "{out}");
    for i in 0..n {
        assert_eq!(values(f, i), a_values(), "h{} after rolling back B2: rollout A was undone too", i + 1);
    }
    // A itself still rolls back, to the values from before it.
    let (o, out, err) = run(rollout_cmd(f, &a, "a-state.json", &strs(&with(&["--rollback-fleet", "--json"]))));
    assert!(o.status.success(), "rollback of A: {err}\n{out}");
    for i in 0..n {
        assert_eq!(values(f, i), originals(i), "h{} after rolling back A", i + 1);
    }
}

#[test]
fn fleet_rollback_of_a_later_rollout_over_ssh_keeps_the_earlier_rollouts_values() {
    let Some((_one, f)) = fleet("fleet_rollback_of_a_later_rollout_over_ssh_keeps_the_earlier_rollouts_values", "layers", 3) else { return };
    let globals = globals_before();
    rollback_of_b_keeps_a_on_every_host(&f, &[]);
    assert_eq!(globals_before(), globals, "a global value moved");
}

#[test]
fn fleet_rollback_of_a_later_rollout_over_ansible_keeps_the_earlier_rollouts_values() {
    let test = "fleet_rollback_of_a_later_rollout_over_ansible_keeps_the_earlier_rollouts_values";
    let Some((_one, f)) = fleet(test, "ansible2", 3) else { return };
    let Some(ansible) = need_ansible(test) else { return };
    let globals = globals_before();
    let ans = ansible.display().to_string();
    rollback_of_b_keeps_a_on_every_host(&f, &["--engine", "ansible", "--ansible-playbook", ans.as_str(), "--ansible-python", "/usr/bin/python3"]);
    assert_eq!(globals_before(), globals, "a global value moved");
}

/// An Ansible inventory of the test fleet for a playbook run by hand: root over the fleet's ssh
/// config, per-host backup directory and sysctl.d file under the fleet's directory (never /etc),
/// and no `become` (the hosts are reached as root and have no sudo).
fn export_inventory(f: &TestFleet) -> PathBuf {
    let mut s = String::from("all:\n  hosts:\n");
    for h in &f.hosts {
        let home = f.dir.path().join("export").join(&h.name);
        std::fs::create_dir_all(&home).unwrap();
        s.push_str(&format!(
            "    {n}:\n      ansible_host: {a}\n      ansible_user: root\n      ansible_ssh_common_args: \"-F {c}\"\n      ansible_python_interpreter: /usr/bin/python3\n      semantos_become: false\n      semantos_remote_dir: {d}\n      semantos_sysctl_file_path: {d}/99-semantos.conf\n",
            n = h.name,
            a = h.addr,
            c = f.ssh_config.display(),
            d = home.display()
        ));
    }
    let p = f.dir.path().join("export-inventory.yml");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn exported_ansible_playbook_previews_with_check_diff_then_applies_once() {
    // Before: facts came from `command` tasks that --check skips, so `--check --diff` failed on
    // the read-back of values it never wrote; and `become` defaulted to false although sysctl
    // writes need root.
    let test = "exported_ansible_playbook_previews_with_check_diff_then_applies_once";
    let Some((_one, f)) = fleet(test, "ansible-export", 2) else { return };
    let Some(ansible) = need_ansible(test) else { return };
    let globals = globals_before();
    let d = f.dir.path();
    let plan = d.join("export-plan.json");
    let changes: Vec<Json> = KEYS.iter().zip(TARGETS).map(|(k, v)| serde_json::json!({"key": k, "to": v, "rationale": "export test"})).collect();
    std::fs::write(&plan, serde_json::json!({"schema_version": 1, "created_by": "export-test", "intent": "latency", "changes": changes}).to_string()).unwrap();
    let site = d.join("site.yml");
    let o = Command::new(bin()).current_dir(d).args(["export", "ansible", "--plan"]).arg(&plan).arg("--policy").arg(f.policy(&KEYS)).arg("--out").arg(&site).output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let pb = std::fs::read_to_string(&site).unwrap();
    assert!(pb.contains("become: \"{{ semantos_become | default(true) }}\""), "{pb}");
    let inv = export_inventory(&f);
    // JSON callback: every task's result per host, diffs included.
    let play = |extra: &[&str]| -> (Output, Json) {
        let mut c = f.in_ctl(&ansible);
        // A private ssh control-socket directory: the default (~/.ansible/cp) is keyed by address,
        // and another test's fleet uses the same 10.231.0.x addresses in its own namespaces, so a
        // master connection it left would carry this run to that fleet's hosts.
        c.arg("-i").arg(&inv).arg(&site).args(extra).env("ANSIBLE_NOCOLOR", "1").env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json").env("ANSIBLE_SSH_CONTROL_PATH_DIR", d.join("cp"));
        let o = c.output().unwrap();
        let j = serde_json::from_slice(&o.stdout).unwrap_or(Json::Null);
        (o, j)
    };
    // (task name, host) → (changed, the task's result) over every play of a run.
    let results = |j: &Json| -> Vec<(String, String, bool, Json)> {
        let mut v = Vec::new();
        for p in j["plays"].as_array().into_iter().flatten() {
            for t in p["tasks"].as_array().into_iter().flatten() {
                for (h, r) in t["hosts"].as_object().into_iter().flatten() {
                    v.push((t["task"]["name"].as_str().unwrap_or("").to_string(), h.clone(), r["changed"].as_bool().unwrap_or(false), r.clone()));
                }
            }
        }
        v
    };
    let write_tasks: Vec<String> = KEYS.iter().zip(TARGETS).map(|(k, v)| format!("{k} = {v}")).collect();
    let before: Vec<Vec<String>> = (0..f.hosts.len()).map(|i| KEYS.iter().map(|k| f.read(i, k)).collect()).collect();
    // Preview: nothing written; every write reports a change and the diff shows each value now and after.
    let (o, j) = play(&["--check", "--diff"]);
    assert!(o.status.success(), "check mode failed:\n{}\n{}", text(&o).0, text(&o).1);
    for (i, b) in before.iter().enumerate() {
        assert_eq!(&KEYS.iter().map(|k| f.read(i, k)).collect::<Vec<_>>(), b, "check mode wrote on {}", f.hosts[i].name);
        assert!(!d.join("export").join(&f.hosts[i].name).join("rollout-backup.json").exists(), "check mode wrote a backup");
    }
    let r = results(&j);
    for w in &write_tasks {
        assert_eq!(r.iter().filter(|(t, _, changed, _)| t == w && *changed).count(), f.hosts.len(), "{w} not reported as a change on every host: {r:#?}");
    }
    let diff = r.iter().find(|(t, h, _, _)| t.contains("now and after") && h == "h1").map(|x| x.3.to_string()).unwrap_or_else(|| panic!("no diff task result: {r:#?}"));
    assert!(diff.contains("2000") && diff.contains("8192") && diff.contains("net.core.somaxconn"), "the diff shows somaxconn now and after: {diff}");
    // The real run writes every value; a second run changes no value.
    let (o, _) = play(&[]);
    assert!(o.status.success(), "apply failed:\n{}\n{}", text(&o).0, text(&o).1);
    for i in 0..f.hosts.len() {
        assert_eq!(KEYS.iter().map(|k| f.read(i, k)).collect::<Vec<_>>(), TARGETS, "{}", f.hosts[i].name);
    }
    let (o, j) = play(&[]);
    assert!(o.status.success(), "second run failed:\n{}\n{}", text(&o).0, text(&o).1);
    let r = results(&j);
    for w in &write_tasks {
        assert!(r.iter().filter(|(t, _, _, _)| t == w).all(|(_, _, changed, _)| !changed), "{w} changed again on a second run: {r:#?}");
    }
    // Rolling back restores the starting values.
    let (o, _) = play(&["--tags", "rollback"]);
    assert!(o.status.success(), "rollback failed:\n{}\n{}", text(&o).0, text(&o).1);
    for (i, b) in before.iter().enumerate() {
        assert_eq!(&KEYS.iter().map(|k| f.read(i, k)).collect::<Vec<_>>(), b, "rollback on {}", f.hosts[i].name);
    }
    assert_eq!(globals_before(), globals, "a global value moved");
}
