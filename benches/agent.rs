//! The agent's own cost at 1 Hz, beside the floor measured in the same run (the machine is shared
//! and noisy: only figures from one run compare). Prints figures; asserts nothing.
//! `cargo bench --bench agent` (60 s; `-- --seconds N` for another length).
//!
//! (a) `semantos agent` in observe mode at `interval: 1s` with every symptom enabled (the
//!     default), as a child process: CPU milliseconds per minute, from the scheduler's
//!     nanosecond run time of all its threads (`/proc/<pid>/task/*/schedstat`; `stat`'s utime and
//!     stime come in 10 ms ticks, coarser than the target), after a 5 s start-up that is not
//!     counted; its resident set in steady state (VmRSS at the end, with its anonymous and file
//!     parts) and at its peak (VmHWM, start-up included), against the targets (6 ms per minute,
//!     9 MiB; the steady VmRSS is what a daemon costs, and what the target is judged on).
//! (b) The floor: the files the agent reads per sample for every symptom (the snapshot files the
//!     symptoms need and their limit files, as `agent::sampler::needs` says), read with a bare
//!     `pread` (kept open, no parsing) ×60; and one full `ProcReader` snapshot, kept open, ×60.

use semantos::agent::limit_files;
use semantos::agent::sampler::needs;
use semantos::kb::Kb;
use semantos::telemetry::procfs::ProcReader;
use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The run time of every thread of `pid` in milliseconds (schedstat's first field, nanoseconds).
fn cpu_ms(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let ns: u64 = tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()).filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok()).sum();
    ns as f64 / 1e6
}

/// A field of /proc/<pid>/status in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// Median of `f`'s wall time over `n` calls.
fn median_us(n: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[n / 2]
}

/// (bare pread of the agent's files, their count, a full ProcReader snapshot), µs.
fn floor() -> (f64, usize, f64) {
    let kb = Kb::embedded().unwrap();
    let all: Vec<String> = kb.symptoms.keys().cloned().collect();
    let n = needs(&kb, &all);
    let all = n.all();
    let mut paths: Vec<std::path::PathBuf> = all.files.iter().chain(std::iter::once(&"meminfo")).map(|f| Path::new("/proc").join(f)).collect();
    paths.extend(limit_files::sources(&all.limits, Path::new("/proc"), Path::new("/proc/sys")).iter().map(|s| s.path().to_path_buf()));
    paths.sort();
    paths.dedup();
    let files: Vec<File> = paths.iter().filter_map(|p| File::open(p).ok()).collect();
    let mut buf = vec![0u8; 1 << 16];
    let pread = median_us(500, || {
        for f in &files {
            black_box(f.read_at(&mut buf, 0).unwrap_or(0));
        }
    });
    let reader = ProcReader::new().without_process_scan().keep_open().unwrap();
    let snap = median_us(500, || {
        black_box(reader.snapshot(0).unwrap());
    });
    (pread, files.len(), snap)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.iter().position(|a| a == "--seconds").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(60);
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("agent.yaml"), "mode: observe\ninterval: 1s\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_semantos"))
        .args(["agent", "--config", "agent.yaml", "--state-dir", "state"])
        .current_dir(d.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("semantos agent");
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(5));
    let (c0, t0) = (cpu_ms(pid), Instant::now());
    let (pread_us, nfiles, snap_us) = floor();
    std::thread::sleep(Duration::from_secs(seconds).saturating_sub(t0.elapsed()));
    let (c1, secs) = (cpu_ms(pid), t0.elapsed().as_secs_f64());
    let (hwm, rss, anon, file) = (status_kib(pid, "VmHWM:"), status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"), status_kib(pid, "RssFile:"));
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    let per_min = (c1 - c0) * 60.0 / secs;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("agent at 1 Hz, observe mode, every symptom, {secs:.0} s on this host (load {})", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    println!("  {:<52} {:>10.2} ms/min   (target ≤ 6; {:.0} µs a sample)", "agent CPU (user + system, scheduler run time)", per_min, per_min * 1000.0 / 60.0);
    println!("  {:<52} {:>10.1} MiB      (target ≤ 9; anon {:.1}, file {:.1})", "agent resident set, steady (VmRSS)", rss as f64 / 1024.0, anon as f64 / 1024.0, file as f64 / 1024.0);
    println!("  {:<52} {:>10.1} MiB", "agent resident set, peak (VmHWM, start-up included)", hwm as f64 / 1024.0);
    println!("floor, same run (×60 = one sample a second)");
    println!("  {:<52} {:>10.1} µs = {:.2} ms/min", format!("bare pread of the agent's {nfiles} files (kept open)"), pread_us, pread_us * 60.0 / 1000.0);
    println!("  {:<52} {:>10.1} µs = {:.2} ms/min   ({:.2}× the floor)", "ProcReader snapshot, all files, kept open", snap_us, snap_us * 60.0 / 1000.0, snap_us / pread_us);
}
