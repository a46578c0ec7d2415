//! The limit that binds, on the real kernel (root): real sockets in a
//! throwaway network namespace, and the binary's `recommend` run there. A
//! cap the sockets do not run on is "considered, not proposed" with the
//! evidence; the one they do run on is proposed.
//! * Receive pressure: receivers that autotune (never set SO_RCVBUF) sit at
//!   tcp_rmem[2] — rmem_max does not bind; receivers whose application set
//!   SO_RCVBUF above rmem_max sit at 2 × rmem_max — rmem_max binds.
//! * Accept queue overflow: a listener whose application passed a small
//!   backlog is held by it — somaxconn does not bind; one whose backlog was
//!   clamped to somaxconn — it does.

use crate::support::{Netns, privileged, text};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Runs `f` on a thread that entered the namespace: the sockets it makes live there.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on an open namespace file; affects only this thread.
        assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
        f()
    })
    .join()
    .unwrap()
}

fn sh_in(ns: &Netns, cmd: &str) {
    let o = Command::new("ip").args(["netns", "exec", &ns.name, "sh", "-c", cmd]).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
}

fn set_int(fd: i32, level: i32, opt: i32, v: i32) {
    // SAFETY: plain setsockopt with a valid int.
    let r = unsafe { libc::setsockopt(fd, level, opt, (&v as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t) };
    assert_eq!(r, 0, "setsockopt");
}

/// Threads that stop when the flag is set.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Three bulk senders on loopback; receivers read 64 KiB every millisecond, or never.
/// `rcvbuf`: what the receiving application asks for with SO_RCVBUF (None: autotuning).
fn receive_pressure(ns: &Netns, rcvbuf: Option<i32>, read: bool) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, addr) = in_netns(&ns.name, || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    });
    if let Some(n) = rcvbuf {
        // Accepted sockets inherit the listener's buffer and its lock.
        set_int(listener.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, n);
    }
    let mut threads = Vec::new();
    for _ in 0..3 {
        let s = stop.clone();
        let c = in_netns(&ns.name, move || TcpStream::connect(addr).unwrap());
        threads.push(std::thread::spawn(move || {
            let mut c = c;
            c.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
            let buf = vec![7u8; 65536];
            while !s.load(Ordering::SeqCst) {
                let _ = c.write(&buf);
            }
        }));
        let (mut r, _) = listener.accept().unwrap();
        let s = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            r.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            while !s.load(Ordering::SeqCst) {
                if read {
                    let _ = r.read(&mut buf);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    }
    // Let autotuning reach its cap and the senders fill the windows.
    std::thread::sleep(Duration::from_millis(1500));
    Load { stop, threads }
}

/// A listener with listen(backlog) that never accepts, and a client opening connections every 5 ms.
fn accept_overflow(ns: &Netns, backlog: i32) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let (fd, addr) = in_netns(&ns.name, move || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a: SocketAddr = l.local_addr().unwrap();
        // SAFETY: listen() again on our own listening socket resets its backlog.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), backlog) }, 0);
        (std::os::fd::IntoRawFd::into_raw_fd(l), a)
    });
    // SAFETY: fd is the listener we own; kept open (and closed) by this thread.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    let s = stop.clone();
    let connector = in_netns(&ns.name, move || {
        std::thread::spawn(move || {
            let _keep = listener;
            let mut conns = Vec::new();
            while !s.load(Ordering::SeqCst) && conns.len() < 2000 {
                if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(5)) {
                    conns.push(c);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    Load { stop, threads: vec![connector] }
}

/// `semantos recommend --json` in the namespace; the checked plan.
fn recommend(ns: &Netns, dir: &Path) -> serde_json::Value {
    let pol = dir.join("policy.yaml");
    std::fs::write(&pol, "whitelist: [\"net.core.rmem_max\", \"net.ipv4.tcp_rmem\", \"net.core.somaxconn\"]\n").unwrap();
    // recommend takes no --backup: the state directory (where a host plan would go) is the environment's.
    let args = ["recommend", "--json", "--interval", "1", "--policy", &pol.display().to_string()];
    let state = dir.join("state").display().to_string();
    let o = ns.semantos(dir, &args, &[("SEMANTOS_STATE_DIR", state.as_str())]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn changed(plan: &serde_json::Value) -> Vec<String> {
    plan["plan"]["changes"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap().to_string()).collect()
}

fn considered(plan: &serde_json::Value, key: &str) -> Vec<String> {
    plan["plan"]["considered"].as_array().unwrap().iter().filter(|c| c["key"] == key).map(|c| c["reason"].as_str().unwrap().to_string()).collect()
}

fn findings(plan: &serde_json::Value) -> String {
    plan["plan"]["changes"].to_string() + &plan["plan"]["considered"].to_string()
}

#[test]
fn rmem_max_is_not_raised_for_receivers_that_autotune_to_tcp_rmem_max() {
    if !privileged("rmem_max_is_not_raised_for_receivers_that_autotune_to_tcp_rmem_max") {
        return;
    }
    let ns = Netns::create("bindauto");
    sh_in(&ns, "ip link set lo up && echo '4096 16384 262144' > /proc/sys/net/ipv4/tcp_rmem");
    let d = tempfile::tempdir().unwrap();
    let load = receive_pressure(&ns, None, true);
    let plan = recommend(&ns, d.path());
    drop(load);
    let all = findings(&plan);
    assert!(all.contains("receive_window_limited"), "the receive window limits the senders: {all}");
    assert!(!changed(&plan).contains(&"net.core.rmem_max".to_string()), "rmem_max does not bind: {all}");
    let why = considered(&plan, "net.core.rmem_max").join(" | ");
    assert!(why.contains("does not bind") && why.contains("SO_RCVBUF") && why.contains("sock.tcp.rcv.at_rmem_max = 0"), "{why}");
    assert!(why.contains("sock.tcp.rcv.at_tcp_rmem_max = ") && !why.contains("sock.tcp.rcv.at_tcp_rmem_max = 0"), "the receivers are at tcp_rmem[2]: {why}");
    // Whatever is proposed for the symptom is tcp_rmem.
    for c in plan["plan"]["changes"].as_array().unwrap() {
        if c["finding_ids"].as_array().unwrap().iter().any(|f| f == "receive_window_limited") {
            assert_eq!(c["key"], "net.ipv4.tcp_rmem", "{all}");
        }
    }
}

#[test]
fn rmem_max_is_proposed_for_receivers_their_application_sized_at_it() {
    if !privileged("rmem_max_is_proposed_for_receivers_their_application_sized_at_it") {
        return;
    }
    let ns = Netns::create("bindlock");
    sh_in(&ns, "ip link set lo up");
    let d = tempfile::tempdir().unwrap();
    // Asks for 1 GiB, gets 2 × rmem_max, and never reads: the senders wait on the window.
    let load = receive_pressure(&ns, Some(1 << 30), false);
    let plan = recommend(&ns, d.path());
    drop(load);
    let all = findings(&plan);
    assert!(changed(&plan).contains(&"net.core.rmem_max".to_string()), "rmem_max binds: {all}");
    let c = plan["plan"]["changes"].as_array().unwrap().iter().find(|c| c["key"] == "net.core.rmem_max").unwrap();
    assert!(c["evidence"].to_string().contains("net.core.rmem_max binds: sock.tcp.rcv.at_rmem_max = 3"), "{c}");
    // The autotuning cap does not hold these sockets.
    assert!(considered(&plan, "net.ipv4.tcp_rmem").join(" ").contains("does not bind"), "{all}");
}

#[test]
fn somaxconn_is_not_raised_when_the_applications_own_backlog_binds() {
    if !privileged("somaxconn_is_not_raised_when_the_applications_own_backlog_binds") {
        return;
    }
    let ns = Netns::create("bindsmall");
    sh_in(&ns, "ip link set lo up");
    let d = tempfile::tempdir().unwrap();
    let load = accept_overflow(&ns, 8);
    let plan = recommend(&ns, d.path());
    drop(load);
    let all = findings(&plan);
    assert!(all.contains("accept_queue_overflow"), "the queue overflows: {all}");
    assert!(!changed(&plan).contains(&"net.core.somaxconn".to_string()), "{all}");
    let why = considered(&plan, "net.core.somaxconn").join(" | ");
    assert!(why.contains("listen()") && why.contains("listen.full.below_somaxconn = 1"), "{why}");
}

#[test]
fn somaxconn_is_proposed_when_it_clamped_the_listeners_backlog() {
    if !privileged("somaxconn_is_proposed_when_it_clamped_the_listeners_backlog") {
        return;
    }
    let ns = Netns::create("bindclamp");
    sh_in(&ns, "ip link set lo up && echo 128 > /proc/sys/net/core/somaxconn");
    let d = tempfile::tempdir().unwrap();
    let load = accept_overflow(&ns, 65535);
    let plan = recommend(&ns, d.path());
    drop(load);
    let all = findings(&plan);
    assert!(changed(&plan).contains(&"net.core.somaxconn".to_string()), "{all}");
    let c = plan["plan"]["changes"].as_array().unwrap().iter().find(|c| c["key"] == "net.core.somaxconn").unwrap();
    assert!(c["evidence"].to_string().contains("listen.full.at_somaxconn = 1"), "{c}");
}

/// A listener with listen(backlog) that never accepts, and exactly `conns` connections that complete their
/// handshake and wait in its accept queue: the queue is at its backlog, and nothing overflows after that.
fn accept_queue_filled(ns: &Netns, backlog: i32, conns: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let holder = in_netns(&ns.name, move || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: SocketAddr = l.local_addr().unwrap();
        // SAFETY: listen() again on our own listening socket resets its backlog.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), backlog) }, 0);
        let held: Vec<TcpStream> = (0..conns).map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap()).collect();
        std::thread::spawn(move || {
            let _keep = (l, held);
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    Load { stop, threads: vec![holder] }
}

/// The plan's entries (changes and considerations) that answer `accept_queue_full`.
fn for_queue_full(plan: &serde_json::Value) -> (Vec<serde_json::Value>, Vec<String>) {
    let changes = plan["plan"]["changes"].as_array().unwrap().iter().filter(|c| c["finding_ids"].as_array().unwrap().iter().any(|f| f == "accept_queue_full")).cloned().collect();
    let considered = plan["plan"]["considered"].as_array().unwrap().iter().filter(|c| c["finding_id"] == "accept_queue_full").map(|c| format!("{}: {}", c["key"].as_str().unwrap(), c["reason"].as_str().unwrap())).collect();
    (changes, considered)
}

#[test]
fn accept_queue_full_proposes_somaxconn_when_somaxconn_clamped_the_full_listener() {
    if !privileged("accept_queue_full_proposes_somaxconn_when_somaxconn_clamped_the_full_listener") {
        return;
    }
    let ns = Netns::create("qfullclamp");
    sh_in(&ns, "ip link set lo up && echo 16 > /proc/sys/net/core/somaxconn");
    let d = tempfile::tempdir().unwrap();
    // The application asks for 1024; somaxconn clamps it to 16 at listen(); 17 connections fill it (the kernel queues backlog + 1).
    let load = accept_queue_filled(&ns, 1024, 17);
    let plan = recommend(&ns, d.path());
    drop(load);
    let all = findings(&plan);
    let (changes, considered) = for_queue_full(&plan);
    assert!(changes.iter().any(|c| c["key"] == "net.core.somaxconn"), "somaxconn is the backlog in force: changes for accept_queue_full {changes:?}; considered {considered:?}; all {all}");
    let c = changes.iter().find(|c| c["key"] == "net.core.somaxconn").unwrap();
    let ev = c["evidence"].to_string();
    assert!(ev.contains("net.core.somaxconn binds: listen.full.at_somaxconn = 1") && ev.contains("listen.backlog.max = 16"), "the listener evidence is cited: {c}");
    assert!(c["to"].as_str().unwrap().parse::<u64>().unwrap() > 16, "{c}");
}

#[test]
fn accept_queue_full_considers_somaxconn_not_proposed_when_the_applications_listen_backlog_binds() {
    if !privileged("accept_queue_full_considers_somaxconn_not_proposed_when_the_applications_listen_backlog_binds") {
        return;
    }
    let ns = Netns::create("qfullapp");
    sh_in(&ns, "ip link set lo up && echo 4096 > /proc/sys/net/core/somaxconn");
    let d = tempfile::tempdir().unwrap();
    // listen(8) under somaxconn 4096: the application's own number is the backlog in force.
    let load = accept_queue_filled(&ns, 8, 9);
    let plan = recommend(&ns, d.path());
    drop(load);
    let all = findings(&plan);
    let (changes, considered) = for_queue_full(&plan);
    assert!(changes.iter().all(|c| c["key"] != "net.core.somaxconn"), "somaxconn does not bind: {all}");
    let why = considered.iter().filter(|c| c.starts_with("net.core.somaxconn:")).cloned().collect::<Vec<_>>().join(" | ");
    assert!(why.contains("not proposed") && why.contains("listen()"), "considered, not proposed, with the reason: {why}; all {all}");
}
