//! The agent's own cost at 1 Hz, beside the floor measured in the same run (the machine is shared
//! and noisy: only figures from one run compare). Prints figures; asserts nothing.
//! `cargo bench --bench agent` (60 s; `-- --seconds N` for another length).
//!
//! (a) The agent in observe mode at 1 Hz, four side by side as child processes over the same
//!     seconds: `semantos agent` as shipped (`packaging/agent.yaml`, every symptom), the same with
//!     `semantos-agent` (the unit's executable: the agent alone), `semantos agent` with an empty
//!     config (the defaults, also every symptom), and `semantos-agent` with five symptoms; for each: CPU milliseconds per minute, from the scheduler's
//!     nanosecond run time of all its threads (`/proc/<pid>/task/*/schedstat`; `stat`'s utime and
//!     stime come in 10 ms ticks, coarser than the target), after a 5 s start-up that is not
//!     counted; its resident set in steady state (VmRSS at the end, with its anonymous and file
//!     parts) and at its peak (VmHWM, start-up included), against the targets (6 ms per minute,
//!     9 MiB; the steady VmRSS is what a daemon costs, and what the target is judged on).
//! (b) The floor for every symptom, by when `agent::sampler::needs` reads it: the files each
//!     sample reads (the signals' `/proc` files and measured limits) ×60, the settings each window
//!     end reads ×15 (a window closes every 4 samples), and what a window end that advises reads,
//!     each with a bare `pread` (kept open, no parsing); and one full `ProcReader` snapshot ×60.
//! (c) The floor at 1 Hz over the same seconds, with the caches a second's sleep leaves: a thread
//!     that only wakes once a second, and one that wakes and `pread`s every symptom's 1 Hz files.

use semantos::agent::limit_files;
use semantos::agent::sampler::{Reads, needs};
use semantos::kb::Kb;
use semantos::telemetry::procfs::ProcReader;
use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A task's run time in nanoseconds: the first field of its `schedstat` at `path`.
fn run_ns(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.split_whitespace().next()?.parse().ok()
}

/// The run time of every thread of `pid` in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let ns: u64 = tasks.filter_map(|t| run_ns(&t.ok()?.path().join("schedstat"))).sum();
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

/// Median µs of one bare `pread` (kept open, no parsing) of every file of `paths`.
fn pread_us(paths: &[std::path::PathBuf]) -> (f64, usize) {
    let files: Vec<File> = paths.iter().filter_map(|p| File::open(p).ok()).collect();
    let mut buf = vec![0u8; 1 << 16];
    let us = median_us(500, || {
        for f in &files {
            black_box(f.read_at(&mut buf, 0).unwrap_or(0));
        }
    });
    (us, files.len())
}

/// The files of `r` (and meminfo, always read, when `meminfo`).
fn paths(r: &Reads, meminfo: bool) -> Vec<std::path::PathBuf> {
    let mut p: Vec<std::path::PathBuf> = r.files.iter().chain(meminfo.then_some(&"meminfo")).map(|f| Path::new("/proc").join(f)).collect();
    p.extend(limit_files::sources(&r.limits, Path::new("/proc"), Path::new("/proc/sys")).iter().map(|s| s.path().to_path_buf()));
    p.sort();
    p.dedup();
    p
}

/// The floor for every symptom: (each sample's files: µs, count), (a window end's settings: µs,
/// count), (a window end's advice reads: µs, count), and one full `ProcReader` snapshot in µs.
fn floor() -> ((f64, usize), (f64, usize), (f64, usize), f64) {
    let kb = Kb::embedded().unwrap();
    let all: Vec<String> = kb.symptoms.keys().cloned().collect();
    let n = needs(&kb, &all);
    let each = pread_us(&paths(&n.each_sample, true));
    let end = pread_us(&paths(&n.window_end, false));
    let advise = pread_us(&paths(&n.advise, false));
    let reader = ProcReader::new().without_process_scan().keep_open().unwrap();
    let snap = median_us(500, || {
        black_box(reader.snapshot(0).unwrap());
    });
    (each, end, advise, snap)
}

/// One agent under test: a name, its configuration, and the child running it.
struct Run {
    name: String,
    child: std::process::Child,
    cpu0: f64,
}

/// Starts an agent in `dir` with `config` (observe mode, 1 Hz) as the unit does (`-v`,
/// `RUST_LOG=semantos=info`, its log kept): `semantos agent`, or with `service` `semantos-agent`,
/// the executable the unit runs.
fn start(dir: &Path, i: usize, name: &str, config: &str, service: bool) -> Run {
    // Each its own state directory: one agent per state directory (a lock).
    let d = dir.join(format!("agent-{i}"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("agent.yaml"), config).unwrap();
    let mut c = if service { Command::new(env!("CARGO_BIN_EXE_semantos-agent")) } else { Command::new(env!("CARGO_BIN_EXE_semantos")) };
    if !service {
        c.arg("agent");
    }
    // As the unit starts it: decision lines at info (`RUST_LOG=semantos=info`), its log kept (the
    // journal there, a file here): the logging code's pages count in the resident set.
    let log = File::create(d.join("agent.log")).unwrap();
    let child = c.args(["-v", "--config", "agent.yaml", "--state-dir", "state"]).env("RUST_LOG", "semantos=info").current_dir(&d).stdout(Stdio::null()).stderr(log).spawn().expect("starting the agent");
    Run { name: name.to_string(), child, cpu0: 0.0 }
}

/// This thread's run time in milliseconds.
fn thread_cpu_ms() -> f64 {
    run_ns(Path::new("/proc/thread-self/schedstat")).unwrap_or(0) as f64 / 1e6
}

/// The floor at 1 Hz, what no parsing can go below: a thread that wakes once a second for
/// `seconds` and `pread`s `paths` each time (none: it only wakes), as the agent's sampler does,
/// with the caches as cold as a second's sleep leaves them. Its CPU in ms per minute.
fn floor_at_1hz(paths: Vec<std::path::PathBuf>, seconds: u64) -> std::thread::JoinHandle<f64> {
    std::thread::spawn(move || {
        let files: Vec<File> = paths.iter().filter_map(|p| File::open(p).ok()).collect();
        let mut buf = vec![0u8; 1 << 16];
        let (t0, c0) = (Instant::now(), thread_cpu_ms());
        for i in 1..=seconds {
            for f in &files {
                black_box(f.read_at(&mut buf, 0).unwrap_or(0));
            }
            std::thread::sleep(Duration::from_secs(i).saturating_sub(t0.elapsed()));
        }
        (thread_cpu_ms() - c0) * 60.0 / t0.elapsed().as_secs_f64()
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.iter().position(|a| a == "--seconds").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok()).unwrap_or(60);
    let d = tempfile::tempdir().unwrap();
    let kb = Kb::embedded().unwrap();
    // Five symptoms whose signals read four /proc files and one setting, and no per-process scan.
    let few = ["accept_queue_overflow", "swap_in_stalls", "commit_limit_near", "tcp_memory_pressure", "tcp_oom_aborts"];
    let off: Vec<&String> = kb.symptoms.keys().filter(|s| !few.contains(&s.as_str())).collect();
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/agent.yaml")).unwrap();
    let configs = [
        ("semantos agent, shipped (packaging/agent.yaml: every symptom)", shipped.clone(), false),
        ("semantos-agent (the unit's executable), shipped: every symptom", shipped, true),
        ("semantos agent, defaults (an empty config: every symptom)", String::new(), false),
        ("semantos-agent, five symptoms (listen overflows, swap-in, commit, TCP memory)", format!("disable_symptoms: {off:?}\n"), true),
    ];
    // The agents run side by side over the same seconds, so their figures share the host's load.
    let mut runs: Vec<Run> = configs.iter().enumerate().map(|(i, (n, c, service))| start(d.path(), i, n, c, *service)).collect();
    std::thread::sleep(Duration::from_secs(5));
    let t0 = Instant::now();
    for r in &mut runs {
        r.cpu0 = cpu_ms(r.child.id());
    }
    // The 1 Hz floor over the same seconds: waking alone, and waking to read what every symptom reads each sample.
    let every = needs(&kb, &kb.symptoms.keys().cloned().collect::<Vec<_>>());
    let each_paths = paths(&every.each_sample, true);
    let cold = [("a thread that only wakes once a second", floor_at_1hz(Vec::new(), seconds)), ("one that wakes and preads the 1 Hz files of every symptom", floor_at_1hz(each_paths.clone(), seconds))];
    let (each, end, advise, snap_us) = floor();
    std::thread::sleep(Duration::from_secs(seconds).saturating_sub(t0.elapsed()));
    let secs = t0.elapsed().as_secs_f64();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("agents at 1 Hz, observe mode, {secs:.0} s side by side on this host (load {})", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    for r in &mut runs {
        let pid = r.child.id();
        if let Ok(Some(status)) = r.child.try_wait() {
            println!("  {}: exited early ({status}): no figures", r.name);
            continue;
        }
        let per_min = (cpu_ms(pid) - r.cpu0) * 60.0 / secs;
        let (hwm, rss, anon, file) = (status_kib(pid, "VmHWM:"), status_kib(pid, "VmRSS:"), status_kib(pid, "RssAnon:"), status_kib(pid, "RssFile:"));
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let _ = r.child.wait();
        println!("  {}", r.name);
        println!("    {:<50} {:>10.2} ms/min   (target ≤ 6; {:.0} µs a sample)", "CPU (user + system, scheduler run time)", per_min, per_min * 1000.0 / 60.0);
        println!("    {:<50} {:>10.1} MiB      (target ≤ 9; anon {:.1}, file {:.1})", "resident set, steady (VmRSS)", rss as f64 / 1024.0, anon as f64 / 1024.0, file as f64 / 1024.0);
        println!("    {:<50} {:>10.1} MiB", "resident set, peak (VmHWM, start-up included)", hwm as f64 / 1024.0);
    }
    // A window closes every (window - 1) samples: 4 at the defaults.
    let per_window = 60.0 / 4.0;
    println!("floor for every symptom, same run (bare pread, kept open, no parsing)");
    println!("  {:<52} {:>10.1} µs ×60 = {:.2} ms/min", format!("each sample: the signals' {} files", each.1), each.0, each.0 * 60.0 / 1000.0);
    println!("  {:<52} {:>10.1} µs ×15 = {:.2} ms/min", format!("each window end: {} settings", end.1), end.0, end.0 * per_window / 1000.0);
    println!("  {:<52} {:>10.1} µs ×15 = {:.2} ms/min   (only while advising)", format!("a window end that advises: {} files", advise.1), advise.0, advise.0 * per_window / 1000.0);
    println!("  {:<52} {:>10.2} ms/min", "floor of every symptom, not advising", (each.0 * 60.0 + end.0 * per_window) / 1000.0);
    // Not the parse-cost figure: a whole snapshot reads every source and limit, more than the 15
    // files above; `cargo bench --bench telemetry` compares the parse with a floor of its own files.
    println!("  {:<52} {:>10.1} µs = {:.2} ms/min   (every source and limit: more files than the line above)", "ProcReader snapshot, all sources, kept open", snap_us, snap_us * 60.0 / 1000.0);
    // The loops above run hot (the same files 500 times in a row); a sampler at 1 Hz finds its
    // caches cold after each second's sleep, and pays for the wake-up itself.
    println!("floor at 1 Hz, same seconds (cold caches; no parsing)");
    for (name, h) in cold {
        println!("  {:<52} {:>10.2} ms/min", name, h.join().unwrap());
    }
    println!("  ({} files; the window end's settings and the listeners' sock_diag dump come on top)", each_paths.len());
}
