//! Cost of reading the host, side by side in one run (the machine is shared
//! and noisy: only figures from the same run compare). Prints medians; asserts
//! nothing. Run with `cargo bench --bench telemetry` (add `-- --quick` for
//! fewer rounds).
//!
//! (a) One telemetry snapshot of the `SNAPSHOT_FILES` (no limits, no process
//!     scan: the parse is what is measured): `ProcReader` opening, reading and
//!     closing each file; the same reader with its files kept open and re-read
//!     with `pread`; and, as floors without any parsing,
//!     `std::fs::read_to_string` of the same files and a bare `pread` of them;
//!     and `ProcReader::refresh` rewriting one kept snapshot in place, what a
//!     sampler pays each tick. Ratios are to the bare `pread` floor (issue 14's
//!     target, judged on the steady-state refresh: within 1.3x of it).
//!     `-- --profile snapshot|refresh|pread` runs one of these alone, for
//!     `valgrind --tool=callgrind`.
//! (c) What a full snapshot adds to (a): the limits in force (~25 small files
//!     opened per snapshot) and the bounded process scan.
//! (b) Every key under `/proc/sys`: `TreeStore` list + read against
//!     `sysctl -a` (procps) run as a subprocess.

use semantos::sysctl::{SysctlStore, TreeStore};
use semantos::telemetry::procfs::{ProcReader, SNAPSHOT_FILES};
use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
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
            f(); // warm caches and the kernel's dentries
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

fn print_table(title: &str, names: &[&str], medians: &[Duration], base: usize) {
    println!("\n{title}");
    println!("  {:<58} {:>10} {:>8}", "case", "median", "ratio");
    for (n, m) in names.iter().zip(medians) {
        println!("  {:<58} {:>10} {:>7.2}x", n, fmt(*m), m.as_secs_f64() / medians[base].as_secs_f64());
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let proc_root = Path::new("/proc");

    // (a) one snapshot
    let rounds = if quick { 300 } else { 3000 };
    let orc = ProcReader::new().without_process_scan().without_limits();
    let kept = ProcReader::new().without_process_scan().without_limits().keep_open().expect("open /proc files");
    // Its own reader, so the fresh snapshots of `kept` share no cache with it.
    let steady = ProcReader::new().without_process_scan().without_limits().keep_open().expect("open /proc files");
    let mut snap = steady.snapshot(0).unwrap();
    let paths: Vec<_> = SNAPSHOT_FILES.iter().map(|f| proc_root.join(f)).filter(|p| p.exists()).collect();
    let open_files: Vec<File> = paths.iter().map(|p| File::open(p).unwrap()).collect();
    let mut buf = vec![0u8; 16384];
    let metrics = kept.snapshot(0).unwrap().metrics.len();
    let mut ts = 0u64;
    let names_a = [
        "ProcReader::snapshot, open/read/close + parse",
        "ProcReader::snapshot, kept open + pread + parse (fresh map)",
        "ProcReader::refresh, kept open, same snapshot (steady state)",
        "std::fs::read_to_string of the same files (no parse)",
        "bare pread of the same files, kept open (no parse)",
    ];
    let (mut c1, mut c2, mut c3, mut c4, mut c5) = (
        || {
            ts += 1;
            black_box(orc.snapshot(ts).unwrap());
        },
        || {
            black_box(kept.snapshot(1).unwrap());
        },
        || {
            steady.refresh(&mut snap, 1).unwrap();
            black_box(&snap);
        },
        || {
            for p in &paths {
                black_box(std::fs::read_to_string(p).unwrap());
            }
        },
        || {
            for f in &open_files {
                let mut n = 0;
                loop {
                    let r = f.read_at(&mut buf[n..(n + 4096).min(16384)], n as u64).unwrap();
                    if r == 0 {
                        break;
                    }
                    n += r;
                }
                black_box(&buf[..n]);
            }
        },
    );
    // `-- --profile <case>` runs one case alone, for `valgrind --tool=callgrind` (repeatable instruction counts).
    if let Some(case) = std::env::args().skip_while(|a| a != "--profile").nth(1) {
        let f: &mut dyn FnMut() = match case.as_str() {
            "snapshot" => &mut c2,
            "refresh" => &mut c3,
            "pread" => &mut c5,
            other => panic!("--profile {other:?}: expected snapshot, refresh or pread"),
        };
        for _ in 0..rounds {
            f();
        }
        return;
    }
    let med_a = interleaved(rounds, &mut [(names_a[0], &mut c1), (names_a[1], &mut c2), (names_a[2], &mut c3), (names_a[3], &mut c4), (names_a[4], &mut c5)]);
    print_table(
        &format!("(a) one snapshot: {} files, {metrics} metrics, median of {rounds} rounds; ratio to bare pread", paths.len()),
        &names_a,
        &med_a,
        4,
    );

    // (c) what the limits and the process scan add
    let rounds = if quick { 30 } else { 200 };
    let with_limits = ProcReader::new().without_process_scan().keep_open().expect("open /proc files");
    let full = ProcReader::new().keep_open().expect("open /proc files");
    let names_c = ["kept open, files of (a) only", "kept open + the limits in force", "kept open + limits + the process scan (the default reader)"];
    let (mut d1, mut d2, mut d3) = (
        || {
            black_box(kept.snapshot(1).unwrap());
        },
        || {
            black_box(with_limits.snapshot(1).unwrap());
        },
        || {
            black_box(full.snapshot(1).unwrap());
        },
    );
    let med_c = interleaved(rounds, &mut [(names_c[0], &mut d1), (names_c[1], &mut d2), (names_c[2], &mut d3)]);
    print_table(&format!("(c) what a full snapshot adds, median of {rounds} rounds; ratio to (a)'s kept open"), &names_c, &med_c, 0);

    // (b) every key under /proc/sys
    let rounds = if quick { 5 } else { 25 };
    let store = TreeStore::kernel();
    let keys = store.list().expect("list /proc/sys").len();
    let mut failed = 0usize;
    let sysctl = ["/usr/sbin/sysctl", "/sbin/sysctl", "/usr/bin/sysctl"].into_iter().find(|p| Path::new(p).exists());
    let names_b = ["TreeStore::kernel(): list + read every key", "`sysctl -a` (procps) as a subprocess, output discarded"];
    let mut b1 = || {
        failed = 0;
        for k in store.list().unwrap() {
            match store.read(&k) {
                Ok(v) => {
                    black_box(v);
                }
                Err(_) => failed += 1,
            }
        }
    };
    let mut b2 = || {
        if let Some(bin) = sysctl {
            let st = Command::new(bin).arg("-a").stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
            black_box(st);
        }
    };
    let med_b = interleaved(rounds, &mut [(names_b[0], &mut b1), (names_b[1], &mut b2)]);
    print_table(
        &format!("(b) every key under /proc/sys: {keys} keys ({failed} unreadable), median of {rounds} rounds; ratio to TreeStore"),
        if sysctl.is_some() { &names_b } else { &names_b[..1] },
        if sysctl.is_some() { &med_b } else { &med_b[..1] },
        0,
    );
    if sysctl.is_none() {
        println!("  (sysctl not installed: procps case skipped)");
    }
}
