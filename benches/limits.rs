//! Cost of the limit telemetry on this machine, side by side in one run (the
//! machine is shared and noisy: only figures from the same run compare).
//! Prints medians and what one scan covered; asserts nothing. Run with
//! `cargo bench --bench limits` (add `-- --quick` for fewer rounds).
//!
//! (a) One snapshot without the per-process scan (`/proc` counters and the
//!     host-wide limits), and with it (the default).
//! (b) The per-process scan alone (`proc_scan::scan` with the default
//!     caps), and with each cap's effect visible: processes, `readlink`s and
//!     bytes of `fdinfo`/`maps` read.

use semantos::telemetry::proc_scan::{ScanCaps, scan};
use semantos::telemetry::procfs::ProcReader;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 { format!("{:.2} ms", us / 1000.0) } else { format!("{us:.1} µs") }
}

/// Runs every case once per round, rounds interleaved so drift hits all cases alike; returns medians.
fn interleaved(rounds: usize, cases: &mut [(&str, &mut dyn FnMut())]) -> Vec<Duration> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); cases.len()];
    for (_, f) in cases.iter_mut() {
        for _ in 0..3 {
            f();
        }
    }
    for _ in 0..rounds {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            samples[i].push(t.elapsed());
        }
    }
    samples.into_iter().map(median).collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 15 } else { 101 };
    let proc_root = Path::new("/proc");
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|s| s.trim().parse().ok());
    let caps = ScanCaps::default();
    let plain = ProcReader::new().without_process_scan();
    let full = ProcReader::new();
    let mut cases: Vec<(&str, &mut dyn FnMut())> = Vec::new();
    let mut a = || drop(black_box(plain.snapshot(0).unwrap()));
    let mut b = || drop(black_box(full.snapshot(0).unwrap()));
    let mut c = || drop(black_box(scan(proc_root, &caps, max_map_count).unwrap()));
    let no_maps = ScanCaps { max_maps_procs: 0, ..caps };
    let mut d = || drop(black_box(scan(proc_root, &no_maps, max_map_count).unwrap()));
    let no_links = ScanCaps { max_maps_procs: 0, max_fd_links: 0, ..caps };
    let mut e = || drop(black_box(scan(proc_root, &no_links, max_map_count).unwrap()));
    cases.push(("snapshot without the process scan", &mut a));
    cases.push(("snapshot with the process scan (default)", &mut b));
    cases.push(("process scan alone (proc_scan::scan, default caps)", &mut c));
    cases.push(("  the same without maps (max_maps_procs 0)", &mut d));
    cases.push(("  the same without maps or readlinks", &mut e));
    let medians = interleaved(rounds, &mut cases);
    let r = scan(proc_root, &caps, max_map_count).unwrap();
    println!("\nlimit telemetry, {rounds} interleaved rounds, medians");
    for ((name, _), m) in cases.iter().zip(&medians) {
        println!("  {name:<55} {:>10}", fmt(*m));
    }
    println!(
        "\none scan: {} processes ({} unreadable), {} readlinks, {} bytes of fdinfo/maps, maps counted for {} process(es), truncated: {}",
        r.procs,
        r.unreadable,
        r.fd_links,
        r.bytes,
        r.maps.len(),
        r.truncated
    );
    println!(
        "caps: {} processes, {} readlinks, {} maps files, {} MiB",
        caps.max_procs,
        caps.max_fd_links,
        caps.max_maps_procs,
        caps.max_bytes >> 20
    );
}
