//! A process that needs more memory mappings than `vm.max_map_count`
//! grants: the mapping workload (a JVM with many thread stacks and mapped
//! files, a search engine mapping its segments). A forked child maps
//! `wanted` one-page anonymous regions, alternating read-only and
//! read-write so that neighbours cannot merge into one VMA, in batches; the
//! sample is the time of one batch, `achieved` the mappings that
//! succeeded (beyond the limit `mmap` fails with ENOMEM). The pages are
//! never touched, so the mappings cost address space and VMAs, not memory.
//! The child then holds them for `HOLD`, as a running service would, so
//! that the bench's telemetry during the run sees the process at its limit.
//!
//! `vm.max_map_count` is global: no namespace or cgroup has its own. The
//! bench never lowers it; instead the process needs `over` times the
//! host's value as first read (fixed for the whole run, so every arm faces
//! the same demand). The child is a separate process so that the bench's
//! own allocations never meet the limit; between fork and exit it only
//! makes raw system calls on memory prepared before the fork.

use super::workload::{Env, RunOutput, Workload};
use anyhow::{Context, Result, bail};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Largest host limit the scenario exercises: past it the process would need more VMAs than a bench should create.
pub const MAX_HOST_LIMIT: u64 = 262_144;

/// How long the process keeps its mappings after making them: a service at its limit stays there
/// while it runs, and the telemetry taken during the run must be able to see it (the bench's
/// process scan runs every 100 ms).
const HOLD: Duration = Duration::from_millis(500);

/// Slots of the shared result page: done, achieved, errors, batch count, then one nanosecond time per batch.
const HEADER: usize = 4;
const PAGE_SLOTS: usize = 64 * 1024;

/// The map-heavy workload.
#[derive(Debug)]
pub struct MapHeavy {
    /// Needed mappings as a multiple of the host's `vm.max_map_count` at the first run.
    pub over: f64,
    /// Mappings per timed batch.
    pub batch: usize,
    /// Give up on the child after this long.
    pub timeout: Duration,
    wanted: OnceLock<u64>,
}

impl MapHeavy {
    /// A process needing `over` × the host's limit, timed per `batch` mappings.
    pub fn new(over: f64, batch: usize, timeout: Duration) -> Self {
        Self { over, batch, timeout, wanted: OnceLock::new() }
    }

    /// The demand, fixed at the first call from the live limit.
    fn wanted(&self) -> Result<u64> {
        if let Some(w) = self.wanted.get() {
            return Ok(*w);
        }
        let path = "/proc/sys/vm/max_map_count";
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        let limit: u64 = text.trim().parse().with_context(|| format!("{path} holds {:?}, not a number", text.trim()))?;
        if limit > MAX_HOST_LIMIT {
            bail!(
                "{path} is {limit} on this host; map-heavy needs a process to exceed it and stops at a host limit of {MAX_HOST_LIMIT} (it would create {} mappings); nothing was changed. Run it on a host at the kernel default (65530)",
                (limit as f64 * self.over).ceil()
            );
        }
        Ok(*self.wanted.get_or_init(|| (limit as f64 * self.over).ceil() as u64))
    }
}

fn now_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec; CLOCK_MONOTONIC is always available (and async-signal-safe).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The child: maps `wanted` regions in batches, records into `slots`, then holds them until killed. Never returns.
unsafe fn child(slots: *mut AtomicI64, wanted: u64, batch: usize) -> ! {
    let slot = |i: usize| unsafe { &*slots.add(i) };
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let (mut ok, mut failed, mut b) = (0i64, 0i64, 0usize);
    let mut i = 0u64;
    while i < wanted && HEADER + b < PAGE_SLOTS {
        let t0 = now_ns();
        for _ in 0..batch {
            if i >= wanted {
                break;
            }
            let prot = if i.is_multiple_of(2) { libc::PROT_READ } else { libc::PROT_READ | libc::PROT_WRITE };
            // SAFETY: a fresh private anonymous mapping; never touched.
            let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0) };
            if p == libc::MAP_FAILED { failed += 1 } else { ok += 1 }
            i += 1;
        }
        slot(HEADER + b).store(now_ns() - t0, Ordering::Relaxed);
        b += 1;
    }
    slot(1).store(ok, Ordering::Relaxed);
    slot(2).store(failed, Ordering::Relaxed);
    slot(3).store(b as i64, Ordering::Relaxed);
    slot(0).store(1, Ordering::SeqCst);
    // Hold the mappings, as the service this stands for keeps running, until the parent ends it.
    loop {
        unsafe { libc::pause() };
    }
}

impl Workload for MapHeavy {
    fn describe(&self) -> String {
        let n = self.wanted.get().map(|w| w.to_string()).unwrap_or_else(|| format!("{} × vm.max_map_count", self.over));
        format!("a process mapping {n} one-page regions of alternating protection, timed per {} mappings", self.batch)
    }

    fn run(&self, env: &Env) -> Result<RunOutput> {
        if !matches!(env, Env::Host) {
            bail!("map-heavy runs on the host stage only (an internal error)");
        }
        let wanted = self.wanted()?;
        let bytes = PAGE_SLOTS * 8;
        // SAFETY: a fresh anonymous shared mapping; checked for MAP_FAILED.
        let page = unsafe { libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0) };
        if page == libc::MAP_FAILED {
            bail!("mmap of the result page: {}", std::io::Error::last_os_error());
        }
        let slots: *mut AtomicI64 = page.cast();
        let result = (|| -> Result<RunOutput> {
            // SAFETY: the child runs `child` only (raw system calls on the page mapped above) until it is killed.
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                bail!("fork for the mapping process: {}", std::io::Error::last_os_error());
            }
            if pid == 0 {
                unsafe { child(slots, wanted, self.batch) }
            }
            let deadline = Instant::now() + self.timeout;
            let mut status = 0;
            // SAFETY: slots within the page, written by the child with atomics.
            let slot = |i: usize| unsafe { (*slots.add(i)).load(Ordering::SeqCst) };
            let end = |status: &mut i32| unsafe {
                // SAFETY: our own child.
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, status, 0);
            };
            loop {
                if slot(0) == 1 {
                    // It holds its mappings for HOLD, as a running service would, then is ended.
                    std::thread::sleep(HOLD);
                    end(&mut status);
                    break;
                }
                // SAFETY: our own child.
                if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                    bail!("the mapping process ended without reporting (wait status {status:#x})");
                }
                if Instant::now() > deadline {
                    end(&mut status);
                    bail!("the mapping process did not finish {wanted} mappings within {} s and was killed", self.timeout.as_secs());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let samples_ms = (0..slot(3) as usize).map(|b| slot(HEADER + b) as f64 / 1e6).collect();
            Ok(RunOutput { samples_ms, errors: slot(2) as u64, wanted, achieved: slot(1) as u64, ..Default::default() })
        })();
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(page, bytes) };
        result
    }
}
