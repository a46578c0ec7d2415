//! eBPF tracepoint telemetry on the real kernel, in namespaces the tests make:
//! each test loads its own copy of the programs (its own maps) and counts only
//! its own network namespace (by inode), so parallel tests do not see each
//! other's packets. Skips when eBPF is unavailable, fails under
//! SEMANTOS_REQUIRE_PRIVILEGED=1.

use crate::support::{Netns, privileged, text};
use semantos::bench::relay::LinkShape;
use semantos::bench::topology::{Link, SERVER_IP, Topology};
use semantos::telemetry::Snapshot;
use semantos::telemetry::ebpf::{
    Histogram, Probes,
    readings::{quantile, slot_range},
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

/// Running probes, or `None` (skip) when this host cannot run them; panics under SEMANTOS_REQUIRE_PRIVILEGED=1.
fn probes(test: &str) -> Option<Probes> {
    if !privileged(test) {
        return None;
    }
    let p = Probes::start(std::path::Path::new("/sys"));
    if p.running() {
        return Some(p);
    }
    if std::env::var("SEMANTOS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{test}: SEMANTOS_REQUIRE_PRIVILEGED=1 but no eBPF probe runs: {:?}", p.notes());
    }
    eprintln!("skipping {test}: {:?}", p.notes());
    None
}

/// The inode of a named namespace: the key the programs count it under.
fn ns_inode(name: &str) -> u32 {
    std::fs::metadata(semantos::sysctl::netns::path(name)).unwrap().ino() as u32
}

/// The `ebpf.*` metrics of namespace `ino` now.
fn ebpf_metrics(p: &mut Probes, ino: u32) -> Snapshot {
    let mut s = Snapshot::new(Default::default(), 0);
    p.read_into(&mut s, Some(ino));
    s
}

/// Field `field` of the `table` rows of a /proc/net/snmp-style file (header line, value line).
fn snmp_field(text: &str, table: &str, field: &str) -> u64 {
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&format!("{table}:"))).collect();
    let (names, values) = (rows[0].split_whitespace(), rows[1].split_whitespace());
    names.zip(values).find(|(n, _)| *n == field).map(|(_, v)| v.parse().unwrap()).unwrap_or_else(|| panic!("{table}.{field} not in {text}"))
}

/// Reads a counter of the calling thread's namespace.
fn counter(file: &str, table: &str, field: &str) -> u64 {
    snmp_field(&std::fs::read_to_string(format!("/proc/thread-self/net/{file}")).unwrap(), table, field)
}

fn lo_up(ns: &Netns) {
    let o = Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]).output().unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
}

#[test]
fn udp_receive_buffer_overflow_is_counted_with_its_reason_at_the_snmp_rate() {
    let Some(mut p) = probes("udp_receive_buffer_overflow_is_counted_with_its_reason_at_the_snmp_rate") else { return };
    let ns = Netns::create("ebpf-udp");
    lo_up(&ns);
    let ino = ns_inode(&ns.name);
    let before = ebpf_metrics(&mut p, ino);
    let snmp = semantos::sysctl::netns::run_in(Some(&ns.name), || {
        let rx = UdpSocket::bind("127.0.0.1:0")?;
        let small: libc::c_int = 4096;
        // SAFETY: setsockopt on a socket we own with a c_int option of the right size.
        let r = unsafe { libc::setsockopt(rx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, (&small as *const libc::c_int).cast(), 4) };
        assert_eq!(r, 0);
        let tx = UdpSocket::bind("127.0.0.1:0")?;
        let start = counter("snmp", "Udp", "RcvbufErrors");
        for _ in 0..2000 {
            tx.send_to(&[7u8; 1000], rx.local_addr()?)?;
        }
        // Loopback delivery runs in softirq, possibly later on ksoftirqd: wait until the kernel's
        // counter holds still, so the probes and the counter are read over the same drops.
        let mut last = counter("snmp", "Udp", "RcvbufErrors");
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            let now = counter("snmp", "Udp", "RcvbufErrors");
            if now == last {
                break;
            }
            last = now;
        }
        Ok(last - start)
    })
    .unwrap();
    let after = ebpf_metrics(&mut p, ino);
    let seen = after.get("ebpf.drop.socket_rcvbuff").unwrap_or(0.0) - before.get("ebpf.drop.socket_rcvbuff").unwrap_or(0.0);
    assert!(snmp > 100, "the burst should overflow a 4 KiB receive buffer; Udp.RcvbufErrors rose by {snmp}");
    assert_eq!(seen, snmp as f64, "kfree_skb(SOCKET_RCVBUFF) in netns {ino} vs /proc/net/snmp Udp.RcvbufErrors; all: {:?}", after.metrics);
}

#[test]
fn listener_overflow_is_counted_with_its_reason() {
    let Some(mut p) = probes("listener_overflow_is_counted_with_its_reason") else { return };
    let ns = Netns::create("ebpf-listen");
    lo_up(&ns);
    let ino = ns_inode(&ns.name);
    let overflows = semantos::sysctl::netns::run_in(Some(&ns.name), || {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let fd = listener.as_raw_fd();
        // Backlog 0 (one pending connection) and deferred accept: handshakes complete without
        // filling the accept queue, then the clients' first bytes all need a child at once.
        let defer: libc::c_int = 5;
        // SAFETY: setsockopt and listen on a socket we own.
        unsafe {
            assert_eq!(libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, (&defer as *const libc::c_int).cast(), 4), 0);
            assert_eq!(libc::listen(fd, 0), 0);
        }
        let addr = listener.local_addr()?;
        let start = counter("netstat", "TcpExt", "ListenOverflows");
        let mut clients = Vec::new();
        for _ in 0..8 {
            if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                clients.push(c);
            }
        }
        for c in &mut clients {
            let _ = c.write_all(b"x");
        }
        std::thread::sleep(Duration::from_millis(500));
        Ok(counter("netstat", "TcpExt", "ListenOverflows") - start)
    })
    .unwrap();
    let m = ebpf_metrics(&mut p, ino);
    assert!(overflows > 0, "the accept queue should overflow; TcpExt.ListenOverflows rose by {overflows}");
    let seen = m.get("ebpf.drop.tcp_listen_overflow").unwrap_or(0.0);
    assert!(seen > 0.0, "{overflows} listen overflows but no kfree_skb(TCP_LISTEN_OVERFLOW) in netns {ino}: {:?}", m.metrics);
}

#[test]
fn tcp_retransmits_appear_on_a_lossy_relay() {
    let Some(mut p) = probes("tcp_retransmits_appear_on_a_lossy_relay") else { return };
    // A 20 Mbit/s path with a queue of a few packets: slow start overruns it and the relay drops.
    let shape = LinkShape { delay_ms: 5.0, rate_mbit: 20.0, queue_bytes: 6000 };
    let topo = Topology::build(&format!("ebpfrtx{}", std::process::id() % 1000), &Link::Shaped(shape)).unwrap();
    let (client, server) = (topo.client.name().to_string(), topo.server.name().to_string());
    let ino = ns_inode(&client);
    let listener = semantos::sysctl::netns::run_in(Some(&server), || Ok(TcpListener::bind((SERVER_IP, 0))?)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let before = ebpf_metrics(&mut p, ino);
    let snmp = semantos::sysctl::netns::run_in(Some(&client), || {
        let start = counter("snmp", "Tcp", "RetransSegs");
        let mut s = TcpStream::connect_timeout(&(SERVER_IP, port).into(), Duration::from_secs(5))?;
        let chunk = vec![1u8; 1 << 16];
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(3) {
            s.write_all(&chunk)?;
        }
        s.shutdown(std::net::Shutdown::Write)?;
        drop(s);
        Ok(start)
    })
    .unwrap();
    let received = sink.join().unwrap();
    // The closed socket keeps retransmitting (its FIN, its tail) after `drop`: read the probes
    // first and the kernel's counter second, so every event the probes saw is already in it.
    let after = ebpf_metrics(&mut p, ino);
    let snmp = semantos::sysctl::netns::run_in(Some(&client), || Ok(counter("snmp", "Tcp", "RetransSegs"))).unwrap() - snmp;
    let seen: f64 = after.metrics.iter().filter(|(k, _)| k.starts_with("ebpf.tcp.retransmit.")).map(|(k, v)| v - before.get(k).unwrap_or(0.0)).sum();
    let stats = topo.teardown();
    assert!(snmp > 0, "the relay should have dropped ({stats:?}); {received} bytes crossed, no retransmit in /proc/net/snmp");
    // One tracepoint event per retransmitted skb; a TSO skb can carry several of the segments snmp counts.
    assert!(seen > 0.0 && seen <= snmp as f64, "tcp_retransmit_skb saw {seen} in netns {ino}, /proc/net/snmp Tcp.RetransSegs rose by {snmp}: {:?}", after.metrics);
    assert!(after.get("ebpf.tcp.state.syn_sent_established").unwrap_or(0.0) >= 1.0, "the connection's own handshake: {:?}", after.metrics);
}

/// Run-queue delays of a thread pinned to `cpu` at nice 19 that sleeps 1 ms `n` times (watched by the probes).
fn probe_thread(p: &mut Probes, cpu: usize, n: usize) -> Histogram {
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let h = std::thread::spawn(move || {
        pin(cpu);
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        // Nice 19 weighs 15 against a hog's 1024, so a wake-up beside a hog waits for the hog's
        // slice instead of preempting it at once (EEVDF lag): the effect is milliseconds, far
        // above what the rest of a parallel test suite adds on this CPU. Raising one's own nice
        // needs no privilege and ends with the thread.
        // SAFETY: setpriority on this thread's id.
        assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) }, 0);
        tid_tx.send(tid as u32).unwrap();
        go_rx.recv().unwrap();
        for _ in 0..n {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let tid = tid_rx.recv().unwrap();
    p.watch_thread(tid).unwrap();
    go_tx.send(()).unwrap();
    h.join().unwrap();
    p.thread_runq(tid)
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity on the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0);
    }
}

/// Three threads spinning on `cpu` until the returned guard is dropped.
struct Hogs(std::sync::Arc<std::sync::atomic::AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Hogs {
    fn start(cpu: usize) -> Hogs {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..3)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    pin(cpu);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        Hogs(stop, threads)
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        self.1.drain(..).for_each(|h| h.join().unwrap());
    }
}

/// The mean delay, µs, taking each log2 slot at the middle of its range.
fn mean_us(h: &Histogram) -> f64 {
    let mid = |slot: u32| {
        let (lo, hi) = slot_range(slot);
        (lo + hi) / 2.0
    };
    h.iter().map(|(&slot, &n)| mid(slot) * n as f64).sum::<f64>() / h.values().sum::<u64>().max(1) as f64
}

/// Adds histogram `b` into `a`.
fn add(a: &mut Histogram, b: &Histogram) {
    b.iter().for_each(|(&slot, &n)| *a.entry(slot).or_default() += n);
}

#[test]
fn run_queue_latency_rises_under_a_cpu_hog_pinned_beside_the_probe() {
    let Some(mut p) = probes("run_queue_latency_rises_under_a_cpu_hog_pinned_beside_the_probe") else { return };
    // Alone and beside hogs in alternating rounds, so whatever else runs on the CPU meanwhile
    // (the rest of the suite, in parallel) weighs on both sides alike.
    let (mut quiet, mut busy) = (Histogram::new(), Histogram::new());
    for _ in 0..6 {
        add(&mut quiet, &probe_thread(&mut p, 0, 75));
        let hogs = Hogs::start(0);
        add(&mut busy, &probe_thread(&mut p, 0, 75));
        drop(hogs);
    }
    let (q90, b90) = (quantile(&quiet, 0.9).unwrap(), quantile(&busy, 0.9).unwrap());
    let (q_mean, b_mean) = (mean_us(&quiet), mean_us(&busy));
    eprintln!("run-queue delay of a nice-19 thread: alone mean {q_mean:.1} µs p90 {q90:.1} µs; beside 3 hogs mean {b_mean:.1} µs p90 {b90:.1} µs");
    // The mean, not a quantile: whatever else runs on the CPU (the rest of the suite, a build)
    // delays both sides alike, interleaved, and the hogs add their slices on top. A quantile
    // failed both ways: beside the hogs as few as 6 % of wake-ups waited out a slice under one
    // load, and under a build the lone thread's p90 rose to 2 ms too. Measured on the 2-core VM,
    // mean alone against beside: idle 10–12 µs against 3.8–4.4 ms; a cargo build running
    // 0.5–0.6 ms against 2.5–4.8 ms; two nice-0 spinners loose 0.17–0.48 ms against 2.1–3.4 ms.
    assert!(b_mean >= 50.0 && b_mean >= 2.0 * q_mean, "mean {b_mean:.1} µs beside hogs vs {q_mean:.1} µs alone: quiet {quiet:?} vs busy {busy:?}");
    let mut s = Snapshot::new(Default::default(), 0);
    p.read_into(&mut s, None);
    assert!(s.get("ebpf.runq.p99_us").is_some(), "{:?}", s.metrics);
}

#[test]
fn collect_ebpf_degrades_with_one_line_per_reason_and_exit_zero() {
    // Without root (or without the probes built) collect still succeeds and says why once.
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(crate::support::bin());
    c.args(["collect", "--ebpf", "--interval", "0.1", "--count", "2", "--json"]).current_dir(dir.path());
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // As root: a /sys without kernel BTF is the degraded case we can make.
        c.args(["--sys-root", dir.path().to_str().unwrap()]);
    }
    let o = c.output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("eBPF")).collect();
    assert_eq!(lines.len(), 1, "one line naming the reason: {err}");
    assert!(lines[0].contains("vmlinux is missing") || lines[0].contains("not built") || lines[0].contains("root"), "{err}");
    assert!(!out.contains("\"ebpf."), "no eBPF metric without probes");
}
