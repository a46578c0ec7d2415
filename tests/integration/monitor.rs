//! The live monitor on the real kernel: inside a fresh network namespace a
//! listener that never accepts (backlog 1) takes a steady stream of
//! connections, so the diagnosis sees `accept_queue_overflow` before the
//! apply. When the apply's backup appears the stream gets ten times faster:
//! the symptom the changed key (`net.core.somaxconn`) answers for is now far
//! worse, and the monitor must roll the change back. With the check turned
//! off (`monitor_worsening_factor: 0`) the same apply commits, which shows
//! the worsening, not something else, made the difference.
//!
//! Privileged: skips without root unless SEMANTOS_REQUIRE_PRIVILEGED=1.

use crate::support::{Netns, privileged, text};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const LOAD: &str = r#"
import os, socket, sys, time, collections
trigger, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', port))
srv.listen(1)
live = collections.deque()
print('ready', flush=True)
while True:
    rate = 400.0 if os.path.exists(trigger) else 40.0
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(('127.0.0.1', port))
    except BlockingIOError:
        pass
    now = time.monotonic()
    live.append((now, s))
    # Closed before the first SYN retransmission: one overflow per connection attempt.
    while live and now - live[0][0] > 0.5:
        live.popleft()[1].close()
    time.sleep(1.0 / rate)
"#;

/// The connection stream inside `ns`, killed on drop.
struct Load(Child);

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn load(ns: &Netns, trigger: &Path, port: u16) -> Load {
    let mut c = Command::new("ip").args(["netns", "exec", &ns.name, "python3", "-c", LOAD]).arg(trigger).arg(port.to_string()).stdout(Stdio::piped()).spawn().expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(c.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    Load(c)
}

/// Applies `net.core.somaxconn = 2048` in `ns` under a policy with `worsening`, while the stream runs; returns (exit, stdout, stderr).
fn apply_under_load(ns: &Netns, dir: &Path, case: &str, worsening: &str, port: u16) -> (Option<i32>, String, String) {
    let case_dir = dir.join(case);
    std::fs::create_dir_all(&case_dir).unwrap();
    std::fs::write(case_dir.join("plan.conf"), "net.core.somaxconn = 2048\n").unwrap();
    std::fs::write(case_dir.join("policy.yaml"), format!("whitelist: [net.core.somaxconn]\nmonitor_worsening_factor: {worsening}\n")).unwrap();
    let backup = case_dir.join("backup/sysctl_backup.json");
    let _load = load(ns, &backup, port);
    // Let the stream run a moment before the baseline window.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = ns.semantos(&case_dir, &["--json", "apply", "--plan", "plan.conf", "--policy", "policy.yaml", "--interval", "2", "--monitor-seconds", "2", "--backup", "backup/sysctl_backup.json", "--audit-log", "audit.jsonl"], &[]);
    let (out, err) = text(&o);
    (o.status.code(), out, err)
}

#[test]
fn live_monitor_rolls_back_when_the_targeted_symptom_gets_worse_in_a_namespace() {
    if !privileged("live_monitor_rolls_back_when_the_targeted_symptom_gets_worse_in_a_namespace") {
        return;
    }
    let ns = Netns::create("monitor");
    let o = Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let before = ns.read("net.core.somaxconn");
    assert_ne!(before, "2048");
    let d = tempfile::tempdir().unwrap();

    let (code, out, err) = apply_under_load(&ns, d.path(), "judged", "2", 9100);
    assert_eq!(code, Some(semantos::cli::exit::ROLLED_BACK), "the monitor should have rolled back:\n{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["outcome"], "rolled_back", "{out}");
    let detail = v["batches"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("accept_queue_overflow got worse") && detail.contains("netstat.TcpExt.ListenOverflows"), "{detail}");
    eprintln!("monitor verdict: {detail}");
    assert_eq!(ns.read("net.core.somaxconn"), before, "not restored");

    let (code, out, err) = apply_under_load(&ns, d.path(), "unjudged", "0", 9101);
    assert_eq!(code, Some(0), "with the check off the apply commits:\n{err}\n{out}");
    assert_eq!(ns.read("net.core.somaxconn"), "2048");
}

/// Pids whose command line is exactly `argv` (NUL-separated in /proc/PID/cmdline).
fn running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok().as_deref() == Some(&want[..])).collect()
}

#[test]
fn a_hung_health_command_is_killed_at_its_timeout_and_the_batch_rolls_back() {
    if !privileged("a_hung_health_command_is_killed_at_its_timeout_and_the_batch_rolls_back") {
        return;
    }
    let ns = Netns::create("hungcheck");
    let before = ns.read("net.core.somaxconn");
    assert_ne!(before, "2048");
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("plan.conf"), "net.core.somaxconn = 2048\n").unwrap();
    std::fs::write(d.path().join("policy.yaml"), "whitelist: [net.core.somaxconn]\n").unwrap();
    // A distinctive duration: no other test's sleep is counted. The background sleep is the one a
    // kill of `sh` alone would leave behind.
    let sleep = ["sleep", "1000.25"];
    let t0 = std::time::Instant::now();
    let o = ns.semantos(
        d.path(),
        &["--json", "apply", "--plan", "plan.conf", "--policy", "policy.yaml", "--interval", "0.1", "--monitor-seconds", "0.2", "--health-cmd", "sleep 1000.25 & wait", "--health-timeout", "1", "--backup", "backup/sysctl_backup.json", "--audit-log", "audit.jsonl"],
        &[],
    );
    let (out, err) = text(&o);
    assert!(t0.elapsed() < std::time::Duration::from_secs(60), "the apply waited {:?} for a hung health command", t0.elapsed());
    assert_eq!(o.status.code(), Some(semantos::cli::exit::ROLLED_BACK), "a timed-out health check fails the batch:\n{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["outcome"], "rolled_back", "{out}");
    let detail = v["batches"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("\"sleep 1000.25 & wait\"") && detail.contains("within 1 s"), "the verdict names the command and the limit: {detail}");
    assert_eq!(ns.read("net.core.somaxconn"), before, "not restored");
    assert_eq!(running(&sleep), Vec::<u32>::new(), "the health command's background sleep outlived the apply");
    // The lock is free: a new apply may run (nothing of the run is left holding it).
    let lock = std::fs::File::open(d.path().join("backup/semantos.lock")).expect("the apply's lock file");
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) }, 0, "the lock is still held");
}

#[test]
fn semantos_fault_is_obeyed_only_by_a_fault_injection_build() {
    // A sandbox tree: no root, nothing of the machine is touched.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("tree/net/core/somaxconn");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, "128\n").unwrap();
    std::fs::write(d.path().join("plan.conf"), "net.core.somaxconn = 1024\n").unwrap();
    let o = Command::new(crate::support::bin())
        .args(["apply", "--sysctl-root", "tree", "--backup", "b/backup.json", "--audit-log", "a.jsonl", "--monitor-seconds", "0", "--interval", "0.05", "--plan", "plan.conf"])
        .current_dir(d.path())
        .env("SEMANTOS_FAULT", "kill-before#1")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    let value = std::fs::read_to_string(&p).unwrap();
    if cfg!(feature = "fault-injection") {
        // The test build (scripts/test.sh) obeys: killed before its first write.
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(libc::SIGKILL), "{err}\n{out}");
        assert_eq!(value.trim(), "128");
    } else {
        // A default build does not know the variable: the apply runs as if it were unset.
        assert!(o.status.success(), "a default build obeyed SEMANTOS_FAULT: {:?}\n{err}\n{out}", o.status);
        assert_eq!(value.trim(), "1024");
    }
}

/// A listener with listen(8) that never accepts; once `trigger` exists, nine connections complete
/// and wait in its accept queue (the kernel queues backlog + 1): the queue is at its backlog, and
/// no handshake overflows, so only the limit-relative symptom shows it.
const FILL_ON_TRIGGER: &str = r#"
import os, socket, sys, time
trigger, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', port))
srv.listen(8)
print('ready', flush=True)
while not os.path.exists(trigger):
    time.sleep(0.02)
held = [socket.create_connection(('127.0.0.1', port), timeout=1) for _ in range(9)]
while True:
    time.sleep(1)
"#;

#[test]
fn live_monitor_sees_a_listener_filling_to_its_backlog_after_the_apply_as_diagnose_does() {
    if !privileged("live_monitor_sees_a_listener_filling_to_its_backlog_after_the_apply_as_diagnose_does") {
        return;
    }
    let ns = Netns::create("monfill");
    let o = Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let before = ns.read("net.core.somaxconn");
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("plan.conf"), "net.core.somaxconn = 2048\n").unwrap();
    std::fs::write(d.path().join("policy.yaml"), "whitelist: [net.core.somaxconn]\n").unwrap();
    let backup = d.path().join("backup/sysctl_backup.json");
    let mut c = Command::new("ip").args(["netns", "exec", &ns.name, "python3", "-c", FILL_ON_TRIGGER]).arg(&backup).arg("9102").stdout(Stdio::piped()).spawn().expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(c.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let _load = Load(c);
    let o = ns.semantos(d.path(), &["--json", "apply", "--plan", "plan.conf", "--policy", "policy.yaml", "--interval", "1", "--monitor-seconds", "2", "--backup", "backup/sysctl_backup.json", "--audit-log", "audit.jsonl"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(semantos::cli::exit::ROLLED_BACK), "the monitor should have seen the full listener:\n{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let detail = v["batches"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("new symptom accept_queue_full") && detail.contains("listen."), "{detail}");
    assert_eq!(ns.read("net.core.somaxconn"), before, "not restored");
}
