//! Cost of the eBPF probes, with and without them in one run (the machine is
//! shared and noisy: only figures from the same run compare). Asserts nothing.
//! Run as root: `cargo bench --bench ebpf` (`-- --quick` for shorter rounds).
//!
//! Two workloads in a throwaway network namespace, each timed in rounds that
//! alternate probes off / on so drift hits both alike:
//! (a) drops: UDP datagrams to a closed port, each one a `kfree_skb` with a
//!     drop reason (the hottest probe, plus an ICMP reply);
//! (b) wake-ups: two threads passing a token over UDP, each hop a
//!     `sched_wakeup` and two `sched_switch`es.
//! For each: events per second and CPU time per event (user + system of this
//! process, which is where loopback softirqs and the programs run).

use semantos::bench::netns::Netns;
use semantos::telemetry::ebpf::Probes;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Datagrams to a port nobody listens on, for `d`; returns the count.
fn drops(d: Duration) -> u64 {
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // bound then closed: a free port
    let (t0, mut n) = (Instant::now(), 0u64);
    while t0.elapsed() < d {
        for _ in 0..256 {
            let _ = tx.send_to(&[0u8; 64], dead); // ECONNREFUSED from the previous ICMP is expected
            n += 1;
        }
    }
    n
}

/// A token passed back and forth between two threads over UDP, for `d`; returns the hops.
fn ping_pong(d: Duration) -> u64 {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    b.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let mut n = 0u64;
        while let Ok((len, _)) = b.recv_from(&mut buf) {
            if buf[..len] == *b"stop" {
                break;
            }
            b.send_to(&buf[..len], aa).unwrap();
            n += 1;
        }
        n
    });
    let mut buf = [0u8; 8];
    let t0 = Instant::now();
    while t0.elapsed() < d {
        a.send_to(b"tok", ba).unwrap();
        a.recv_from(&mut buf).unwrap();
    }
    a.send_to(b"stop", ba).unwrap();
    2 * echo.join().unwrap()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (round, rounds) = if quick { (Duration::from_millis(300), 3) } else { (Duration::from_secs(1), 5) };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: the probes and the namespace need root");
        return;
    }
    let ns = Netns::create("ebpfbench").expect("creating a network namespace");
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    let name = ns.name().to_string();
    let mut probes: Option<Probes> = None;
    let workloads: [(&str, fn(Duration) -> u64); 2] = [("drops (kfree_skb)", drops), ("wake-ups (sched)", ping_pong)];
    // [workload][off, on] → (events, cpu)
    let mut totals = [[(0u64, Duration::ZERO); 2]; 2];
    let mut walls = [[Duration::ZERO; 2]; 2];
    for r in 0..rounds * 2 {
        let on = r % 2 == 1;
        if on && probes.is_none() {
            let p = Probes::start(std::path::Path::new("/sys"));
            if !p.running() {
                println!("skipped: no eBPF probe runs: {:?}", p.notes());
                return;
            }
            probes = Some(p);
        }
        let held = if on { probes.take() } else { None }; // probes attached only for the "on" rounds
        for (w, (_, f)) in workloads.iter().enumerate() {
            let (c0, t0) = (cpu_time(), Instant::now());
            let n = semantos::sysctl::netns::run_in(Some(&name), || Ok(f(round))).unwrap();
            let (c, t) = (cpu_time() - c0, t0.elapsed());
            totals[w][on as usize].0 += n;
            totals[w][on as usize].1 += c;
            walls[w][on as usize] += t;
        }
        drop(held); // detaches: the next "off" round runs without programs
    }
    println!("eBPF probe overhead ({rounds} rounds of {:?} each, probes off/on alternating)", round);
    println!("{:<20} {:>14} {:>14} {:>16} {:>16} {:>10}", "workload", "events/s off", "events/s on", "CPU µs/event off", "CPU µs/event on", "CPU cost");
    for (w, (label, _)) in workloads.iter().enumerate() {
        let rate = |i: usize| totals[w][i].0 as f64 / walls[w][i].as_secs_f64();
        let per = |i: usize| totals[w][i].1.as_secs_f64() * 1e6 / totals[w][i].0.max(1) as f64;
        println!("{label:<20} {:>14.0} {:>14.0} {:>16.3} {:>16.3} {:>+9.1}%", rate(0), rate(1), per(0), per(1), (per(1) / per(0) - 1.0) * 100.0);
    }
}
