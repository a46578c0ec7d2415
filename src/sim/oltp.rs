//! fsync-heavy OLTP database on a host that also writes buffered data.
//!
//! Mechanisms, stepped every 50 ms:
//! * Buffered writes dirty page cache. Rewrites of a page that is still dirty
//!   cost nothing more: the longer pages stay dirty, the more rewrites merge
//!   (so very low thresholds raise the load on the disk).
//! * Flushers write back when dirty data passes the background threshold, or
//!   when it is older than `dirty_expire_centisecs`.
//! * Above the midpoint between the background and foreground thresholds
//!   writers are paused in `balance_dirty_pages` (up to 200 ms); at the
//!   foreground threshold they can only dirty as fast as the disk drains.
//! * Every 30 s the database checkpoints: fsync of its data files forces
//!   their share of the dirty pile out at once, and commit fsyncs queue
//!   behind that flush (journal ordering), so the pile size becomes a stall.

use super::params::HostParams;
use super::rng::SimRng;
use super::{HostSpec, Shared, Telemetry};
use rand::RngExt;
use rand_distr::{Distribution, LogNormal};
use std::collections::VecDeque;

const DT: f64 = 0.05;
const MB: f64 = 1024.0 * 1024.0;
const HOT_SHARE: f64 = 0.6;
const REWRITE_INTERVAL_S: f64 = 8.0;
const CHECKPOINT_EVERY_S: f64 = 30.0;
const DB_SHARE_OF_DIRTY: f64 = 0.5;
const COMMITS_PER_S: f64 = 250.0;

/// Fraction of incoming writes that dirty a clean page, given how long pages stay dirty.
pub fn merge_factor(residence_s: f64) -> f64 {
    let r = residence_s.max(1e-3);
    (1.0 - HOT_SHARE) + HOT_SHARE * (REWRITE_INTERVAL_S / r) * (1.0 - (-r / REWRITE_INTERVAL_S).exp())
}

/// The page cache's dirty data and the checkpoint flush still owed.
struct Dirty {
    /// Dirty data as (time dirtied, bytes), oldest first.
    chunks: VecDeque<(f64, f64)>,
    /// Bytes dirty now.
    pile: f64,
    /// Bytes the running checkpoint still has to flush.
    checkpoint_left: f64,
}

impl Dirty {
    /// Writes back for one step at time `t` with `budget` bytes of disk left after the WAL: the
    /// checkpoint first, then everything above `bg` or else what is older than `expire_s`; the
    /// oldest data goes first. Returns the bytes flushed.
    fn writeback(&mut self, t: f64, mut budget: f64, bg: f64, expire_s: f64) -> f64 {
        let mut want = 0.0;
        if self.checkpoint_left > 0.0 {
            let c = self.checkpoint_left.min(budget);
            self.checkpoint_left -= c;
            want += c;
            budget -= c;
        }
        if self.pile > bg {
            want += budget;
        } else {
            let expired: f64 = self.chunks.iter().take_while(|(td, _)| t - td > expire_s).map(|(_, b)| b).sum();
            want += expired.min(budget);
        }
        let flushed = want.min(self.pile);
        let mut left = flushed;
        while left > 0.0 {
            let Some(front) = self.chunks.front_mut() else { break };
            if front.1 <= left {
                left -= front.1;
                self.chunks.pop_front();
            } else {
                front.1 -= left;
                left = 0.0;
            }
        }
        self.pile = (self.pile - flushed).max(0.0);
        flushed
    }
}

/// What the disk and the writers went through over the run, for the telemetry.
#[derive(Default)]
struct Totals {
    stalled_steps: f64,
    busy_sum: f64,
    throttled_steps: f64,
    written: f64,
}

/// The state one step's commits see.
struct StepState {
    util: f64,
    checkpoint_left: f64,
    pause_ms: f64,
}

/// Appends the latency (ms) of each of `n` commits arriving in one step.
fn commits(n: usize, cpu: &LogNormal<f64>, st: &StepState, disk: f64, rng: &mut SimRng, lat: &mut Vec<f64>) {
    for _ in 0..n {
        let mut ms: f64 = cpu.sample(rng);
        // WAL fsync: queueing on a busy disk, then behind whatever the checkpoint still has to flush.
        ms += 0.8 / (1.0 - st.util);
        ms += st.checkpoint_left / disk * 1000.0 * rng.random::<f64>().sqrt();
        if st.pause_ms > 0.0 && rng.random::<f64>() < 0.5 {
            ms += st.pause_ms * (0.5 + rng.random::<f64>());
        }
        lat.push(ms);
    }
}

/// Runs the OLTP workload; returns commit latencies in ms and records disk utilisation in `shared`.
pub fn run(spec: &HostSpec, p: &HostParams, intensity: f64, seconds: f64, shared: &mut Shared, rng: &mut SimRng, tel: &mut Telemetry) -> Vec<f64> {
    let disk = spec.disk_mb_s * MB;
    let dirtyable = spec.mem_gib as f64 * 1024.0 * MB * 0.6;
    let (fg, bg) = p.dirty_thresholds(dirtyable);
    let freerun = (fg + bg) / 2.0;
    let expire_s = p.dirty_expire_centisecs as f64 / 100.0;
    let cpu = LogNormal::new((1.2f64).ln(), 0.4).unwrap();
    let mut d = Dirty { chunks: VecDeque::new(), pile: 0.0, checkpoint_left: 0.0 };
    let mut bursting = false;
    let mut lat = Vec::new();
    let mut tot = Totals::default();
    let steps = (seconds / DT) as usize;
    // Start from a steady pile so short runs see the state a long-running host is in.
    let warm = (bg * 0.9).min(fg * 0.9);
    d.chunks.push_back((-expire_s * 0.5, warm));
    d.pile += warm;
    let mut next_ckpt = CHECKPOINT_EVERY_S * rng.random::<f64>();
    for step in 0..steps {
        let t = step as f64 * DT;
        if rng.random::<f64>() < DT / if bursting { 2.0 } else { 4.0 } {
            bursting = !bursting;
        }
        let incoming = intensity * if bursting { 420.0 } else { 120.0 } * MB * DT;
        let residence = if incoming > 0.0 { d.pile / (incoming / DT) } else { 60.0 };
        let mut new_dirty = incoming * merge_factor(residence);
        // Writer throttling.
        let pause_ms = if d.pile > freerun { 200.0 * ((d.pile - freerun) / (fg - freerun).max(1.0)).min(1.0) } else { 0.0 };
        if d.pile >= fg {
            new_dirty = new_dirty.min(disk * DT * 0.5);
        }
        if pause_ms > 0.0 {
            tot.throttled_steps += 1.0;
        }
        d.pile += new_dirty;
        d.chunks.push_back((t, new_dirty));
        // Checkpoint: the database fsyncs its data files.
        if t >= next_ckpt {
            d.checkpoint_left += d.pile * DB_SHARE_OF_DIRTY;
            next_ckpt += CHECKPOINT_EVERY_S;
        }
        // Writeback budget for this step, after commits take their small share.
        let wal = intensity * COMMITS_PER_S * 16384.0 * DT;
        let flushed = d.writeback(t, disk * DT - wal, bg, expire_s);
        tot.written += flushed;
        let util = ((flushed + wal) / (disk * DT)).min(0.98);
        tot.busy_sum += util;
        if d.checkpoint_left > 0.0 || pause_ms > 0.0 {
            tot.stalled_steps += 1.0;
        }
        // Commits arriving in this step.
        let n = poisson(intensity * COMMITS_PER_S * DT, rng);
        commits(n, &cpu, &StepState { util, checkpoint_left: d.checkpoint_left, pause_ms }, disk, rng, &mut lat);
    }
    shared.disk_util = tot.busy_sum / steps as f64;
    let page = 4096.0;
    tel.set("vmstat.nr_dirty", (d.pile / page).round());
    tel.set("vmstat.nr_writeback", (d.checkpoint_left.min(disk) / page).round());
    tel.set("vmstat.nr_dirty_threshold", (fg / page).round());
    tel.set("vmstat.nr_dirty_background_threshold", (bg / page).round());
    tel.set("meminfo.Dirty", (d.pile / 1024.0).round());
    tel.set("psi.io.some.avg10", 100.0 * tot.stalled_steps / steps as f64);
    tel.set("psi.io.full.avg10", 100.0 * tot.throttled_steps / steps as f64 * 0.5);
    tel.add("vmstat.nr_written", tot.written / page);
    tel.add("app.oltp.requests", lat.len() as f64);
    lat
}

/// A Poisson draw by inversion (small means only).
pub fn poisson(mean: f64, rng: &mut SimRng) -> usize {
    let l = (-mean).exp();
    let (mut k, mut prod) = (0usize, rng.random::<f64>());
    while prod > l && k < 10_000 {
        k += 1;
        prod *= rng.random::<f64>();
    }
    k
}
