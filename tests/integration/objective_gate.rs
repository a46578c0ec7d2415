//! `apply --objective-cmd` on the real kernel, in a throwaway network
//! namespace. The objective is a command we control whose result the change
//! decides with certainty: it listens (its backlog in force is
//! min(listen() argument, somaxconn), read at listen()), opens 400
//! connections at once while the application is busy for 50 ms, and prints
//! each connection's connect time in ms. Under somaxconn 4096 every
//! handshake is queued at once; under 128 the SYNs past the queue are
//! dropped and wait for their 1 s retransmission, so the median is about
//! 1000 ms.
//!
//! * Lowering somaxconn from 4096 to 128 (nothing in the KB's monitor
//!   objects: no listener is open during its window) is rolled back by the
//!   gate, with the figures; without the gate the same apply commits.
//! * Raising it from 128 to 4096 helps the objective and is kept.
//!
//! Privileged: skips without root unless SEMANTOS_REQUIRE_PRIVILEGED=1.

use crate::support::{Netns, privileged, text};
use std::path::Path;
use std::process::Command;

const BURST: &str = r#"
import select, socket, time
N = 400
srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(4096)
srv.setblocking(False)
addr = srv.getsockname()
pend = {}
for _ in range(N):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(addr)
    except BlockingIOError:
        pass
    pend[c.fileno()] = (c, time.monotonic())
time.sleep(0.05)
accepted, out = [], []
deadline = time.monotonic() + 10
while pend and time.monotonic() < deadline:
    try:
        while True:
            accepted.append(srv.accept()[0])
    except BlockingIOError:
        pass
    _, w, _ = select.select([], [c for c, _ in pend.values()], [], 0.01)
    now = time.monotonic()
    for c in w:
        out.append((now - pend.pop(c.fileno())[1]) * 1000)
out += [10000.0] * len(pend)
print('\n'.join('%.3f' % ms for ms in out))
"#;

fn set_somaxconn(ns: &Netns, v: &str) {
    let o = Command::new("ip").args(["netns", "exec", &ns.name, "sysctl", "-qw", &format!("net.core.somaxconn={v}")]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
}

/// `apply --plan` of `somaxconn = to` in `ns`, with the objective gate when `gated`; (exit, stdout, stderr).
fn apply(ns: &Netns, dir: &Path, case: &str, to: &str, gated: bool) -> (Option<i32>, String, String) {
    let d = dir.join(case);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("plan.conf"), format!("net.core.somaxconn = {to}\n")).unwrap();
    std::fs::write(d.join("policy.yaml"), "whitelist: [net.core.somaxconn]\nmax_step_ratio: 64\n").unwrap();
    std::fs::write(d.join("burst.py"), BURST).unwrap();
    let mut args = vec!["--json", "apply", "--plan", "plan.conf", "--policy", "policy.yaml", "--interval", "0.5", "--monitor-seconds", "0.5", "--backup", "backup/sysctl_backup.json", "--audit-log", "audit.jsonl"];
    if gated {
        args.extend(["--objective-cmd", "python3 burst.py", "--stat", "p50", "--repeats", "3", "--cmd-timeout", "30"]);
    }
    let o = ns.semantos(&d, &args, &[]);
    let (out, err) = text(&o);
    (o.status.code(), out, err)
}

#[test]
fn apply_objective_cmd_rolls_back_a_change_that_hurts_the_objective_and_keeps_one_that_helps() {
    if !privileged("apply_objective_cmd_rolls_back_a_change_that_hurts_the_objective_and_keeps_one_that_helps") {
        return;
    }
    let ns = Netns::create("objgate");
    let o = Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let d = tempfile::tempdir().unwrap();

    set_somaxconn(&ns, "4096");
    let (code, out, err) = apply(&ns, d.path(), "hurts", "128", true);
    assert_eq!(code, Some(semantos::cli::exit::ROLLED_BACK), "the gate should have rolled back:\n{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["outcome"], "rolled_back", "{out}");
    let detail = v["batches"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("objective P50") && detail.contains("got worse") && detail.contains("95 % CI") && detail.contains("worse, the interval excludes zero"), "{detail}");
    eprintln!("gate verdict: {detail}");
    assert_eq!(ns.read("net.core.somaxconn"), "4096", "not restored");

    // The same change without the gate: nothing else objects to it.
    let (code, out, err) = apply(&ns, d.path(), "ungated", "128", false);
    assert_eq!(code, Some(0), "without --objective-cmd the apply commits:\n{err}\n{out}");
    assert_eq!(ns.read("net.core.somaxconn"), "128");

    // From 128, raising it helps the objective: kept, with the figures in the receipt.
    let (code, out, err) = apply(&ns, d.path(), "helps", "4096", true);
    assert_eq!(code, Some(0), "a helpful change is kept:\n{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let detail = v["batches"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("not worse") && detail.contains("better, the interval excludes zero"), "{detail}");
    assert_eq!(ns.read("net.core.somaxconn"), "4096");
}

#[test]
fn apply_objective_cmd_that_fails_before_any_change_writes_nothing() {
    if !privileged("apply_objective_cmd_that_fails_before_any_change_writes_nothing") {
        return;
    }
    let ns = Netns::create("objfail");
    set_somaxconn(&ns, "4096");
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("plan.conf"), "net.core.somaxconn = 2048\n").unwrap();
    std::fs::write(d.path().join("policy.yaml"), "whitelist: [net.core.somaxconn]\n").unwrap();
    let o = ns.semantos(d.path(), &["apply", "--plan", "plan.conf", "--policy", "policy.yaml", "--interval", "0.5", "--monitor-seconds", "0.5", "--backup", "backup/sysctl_backup.json", "--audit-log", "audit.jsonl", "--objective-cmd", "exit 7", "--repeats", "2"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(semantos::cli::exit::INVALID), "{err}\n{out}");
    assert!(err.contains("--objective-cmd failed before any change") && err.contains("nothing was written"), "{err}");
    assert_eq!(ns.read("net.core.somaxconn"), "4096");
    let o = ns.semantos(d.path(), &["apply", "--plan", "plan.conf", "--objective-cmd", "true", "--repeats", "1"], &[]);
    assert_eq!(o.status.code(), Some(semantos::cli::exit::INVALID), "{}", text(&o).1);
    assert!(text(&o).1.contains("--repeats 1 is invalid"), "{}", text(&o).1);
}
