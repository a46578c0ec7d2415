//! The agent's own cost at 1 Hz, beside the telemetry floor measured in the same run (the
//! machine is shared and noisy: only figures from one run compare). Prints figures; asserts
//! nothing. `cargo bench --bench agent` (60 s; `-- --seconds N` for another length).
//!
//! (a) `semantos agent` in observe mode at `interval: 1s` on this host, as a child process: CPU
//!     milliseconds per minute (utime + stime from /proc/<pid>/stat over the run, after a 5 s
//!     start-up that is not counted) and its peak RSS (VmHWM), against the targets (6 ms per
//!     minute, 9 MiB).
//! (b) The floor: one snapshot's files read with a bare `pread` (kept open, no parsing), and one
//!     `ProcReader` snapshot with its files kept open, each ×60 as ms per minute.

use semantos::telemetry::procfs::{ProcReader, SNAPSHOT_FILES};
use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// utime + stime of `pid` in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) * 1000.0 / tick
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

fn floor() -> (f64, f64) {
    let files: Vec<File> = SNAPSHOT_FILES.iter().filter_map(|f| File::open(Path::new("/proc").join(f)).ok()).collect();
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
    (pread, snap)
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
    let (pread_us, snap_us) = floor();
    std::thread::sleep(Duration::from_secs(seconds).saturating_sub(t0.elapsed()));
    let (c1, secs) = (cpu_ms(pid), t0.elapsed().as_secs_f64());
    let (hwm, rss) = (status_kib(pid, "VmHWM:"), status_kib(pid, "VmRSS:"));
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    let per_min = (c1 - c0) * 60.0 / secs;
    println!("agent at 1 Hz, observe mode, {secs:.0} s on this host (CPU at clock-tick resolution: ±{:.1} ms/min)", 10.0 * 60.0 / secs);
    println!("  {:<52} {:>10.1} ms/min   (target ≤ 6)", "agent CPU (user + system)", per_min);
    println!("  {:<52} {:>10.1} MiB      (target ≤ 9; now {:.1} MiB)", "agent peak RSS (VmHWM)", hwm as f64 / 1024.0, rss as f64 / 1024.0);
    println!("telemetry floor, same run (×60 = one snapshot a second)");
    println!("  {:<52} {:>10.1} µs = {:.1} ms/min", "bare pread of the snapshot files (kept open)", pread_us, pread_us * 60.0 / 1000.0);
    println!("  {:<52} {:>10.1} µs = {:.1} ms/min   ({:.2}× the floor)", "ProcReader snapshot, kept open, no process scan", snap_us, snap_us * 60.0 / 1000.0, snap_us / pread_us);
}
