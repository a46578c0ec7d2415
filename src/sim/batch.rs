//! A memory-pressured batch job.
//!
//! Mechanisms: the job's anonymous and file working sets do not both fit in
//! the memory left to it. Reclaim splits what it takes between anonymous
//! pages (swapped out, faulted back from the swap device: pswpin) and file
//! pages (dropped, read back: workingset refaults) in the ratio `swappiness`
//! : `200 − swappiness`, weighted by pool size. Access is skewed, so the
//! first pages evicted are cold and cheap to lose; a cache cut below about
//! two thirds of its working set thrashes. Allocation bursts larger than the
//! gap kswapd keeps free (`watermark_scale_factor`) stall in direct reclaim,
//! while a larger gap leaves less memory to the job.

use super::params::HostParams;
use super::rng::SimRng;
use super::{HostSpec, Shared, Telemetry, numa_factor};
use rand::RngExt;
use rand_distr::{Distribution, LogNormal};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const ANON_TOUCHES: f64 = 100.0;
const FILE_TOUCHES: f64 = 200.0;
const SWAP_IN_MS: f64 = 3.0;
const FILE_READ_MS: f64 = 1.0;
const ALLOC_BURST_EVERY_S: f64 = 4.0;
const RECLAIM_BYTES_S: f64 = 800.0 * 1024.0 * 1024.0;
const ITEMS: usize = 3000;

/// Fraction of each pool evicted, given the shortfall and swappiness.
pub fn eviction_split(shortfall: f64, anon_ws: f64, file_ws: f64, swappiness: i64) -> (f64, f64) {
    let s = swappiness.clamp(0, 200) as f64;
    let wa = if s == 0.0 { 0.0 } else { s * anon_ws / (s * anon_ws + (200.0 - s) * file_ws) };
    let mut ea = shortfall * wa;
    let mut ef = shortfall * (1.0 - wa);
    // A pool cannot give more than it has: the rest comes from the other one.
    let cap = 0.95;
    if ef > file_ws * cap {
        ea += ef - file_ws * cap;
        ef = file_ws * cap;
    }
    if ea > anon_ws * cap {
        ef = (ef + ea - anon_ws * cap).min(file_ws * cap);
        ea = anon_ws * cap;
    }
    (ea / anon_ws, ef / file_ws)
}

/// Miss ratio of the anonymous pool with a fraction `e` evicted (the heap is touched uniformly).
pub fn anon_miss(e: f64) -> f64 {
    e
}

/// Miss ratio of the file cache with a fraction `e` evicted (thrashes past ~35 %).
pub fn file_miss(e: f64) -> f64 {
    (e * e * (1.0 + 6.0 * (e - 0.35).max(0.0))).min(1.0)
}

fn working_sets(intensity: f64) -> (f64, f64) {
    (8.0 * GIB * intensity, 6.0 * GIB * intensity)
}

/// Bytes between two zone watermarks: what kswapd keeps free ahead of allocations.
pub fn watermark_step(spec: &HostSpec, p: &HostParams) -> f64 {
    p.watermark_scale_factor.max(1) as f64 / 10000.0 * spec.mem_gib as f64 * GIB
}

/// Evicted fractions and miss ratios (anon, file) of the job's working sets under `p`.
pub fn miss_ratios(spec: &HostSpec, p: &HostParams, intensity: f64) -> (f64, f64, f64, f64) {
    let budget = spec.mem_gib as f64 * GIB * 0.1875;
    let (anon_ws, file_ws) = working_sets(intensity);
    // kswapd keeps the gap up to the high watermark free: two steps above min.
    let shortfall = (anon_ws + file_ws - (budget - 2.0 * watermark_step(spec, p))).max(0.0);
    let (ea, ef) = eviction_split(shortfall, anon_ws, file_ws, p.swappiness);
    (ea, ef, anon_miss(ea), file_miss(ef))
}

/// Mean fault time per item in ms on an idle disk: the quantity swappiness trades.
pub fn expected_fault_ms(spec: &HostSpec, p: &HostParams) -> f64 {
    let (_, _, ma, mf) = miss_ratios(spec, p, 1.0);
    let lognormal_mean = |median: f64, sigma: f64| median * (sigma * sigma / 2.0f64).exp();
    ANON_TOUCHES * ma * lognormal_mean(SWAP_IN_MS, 0.6) + FILE_TOUCHES * mf * lognormal_mean(FILE_READ_MS, 0.5)
}

/// Runs the batch workload; returns per-item latencies in ms.
pub fn run(spec: &HostSpec, p: &HostParams, intensity: f64, seconds: f64, shared: &Shared, rng: &mut SimRng, tel: &mut Telemetry) -> Vec<f64> {
    let (anon_ws, _) = working_sets(intensity);
    let step = watermark_step(spec, p);
    let (ea, _, ma, mf) = miss_ratios(spec, p, intensity);
    let burst = 400.0 * 1024.0 * 1024.0 * intensity;
    let stall_s = ((burst - step) / RECLAIM_BYTES_S).max(0.0);
    let base = LogNormal::new((20.0f64).ln(), 0.3).unwrap();
    let swap_cost = LogNormal::new(SWAP_IN_MS.ln(), 0.6).unwrap();
    let read_cost = LogNormal::new(FILE_READ_MS.ln(), 0.5).unwrap();
    let numa = numa_factor(spec, p, true);
    let disk = 1.0 / (1.0 - 0.6 * shared.disk_util.min(0.95));
    let mut lat = Vec::with_capacity(ITEMS);
    let (mut swapins, mut refaults, mut stall_ms_total, mut fault_ms_total) = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..ITEMS {
        let start = rng.random::<f64>() * seconds;
        let mut ms = base.sample(rng) * numa;
        let na = super::oltp::poisson(ANON_TOUCHES * ma, rng);
        let nf = super::oltp::poisson(FILE_TOUCHES * mf, rng);
        let mut fault_ms = 0.0;
        for _ in 0..na {
            fault_ms += swap_cost.sample(rng) * disk;
        }
        for _ in 0..nf {
            fault_ms += read_cost.sample(rng) * disk;
        }
        swapins += na as f64;
        refaults += nf as f64;
        ms += fault_ms;
        fault_ms_total += fault_ms;
        let phase = start % ALLOC_BURST_EVERY_S;
        if phase < stall_s {
            let s = (stall_s - phase) * 1000.0;
            ms += s;
            stall_ms_total += s;
        }
        lat.push(ms);
    }
    // Scale per-item counts to the whole run: four worker threads busy for `seconds`.
    let mean_ms = lat.iter().sum::<f64>() / lat.len() as f64;
    let items_per_run = 4.0 * seconds * 1000.0 / mean_ms;
    let scale = items_per_run / ITEMS as f64;
    tel.add("vmstat.pswpin", swapins * scale);
    tel.add("vmstat.pswpout", swapins * scale * 0.9);
    tel.add("vmstat.workingset_refault_anon", swapins * scale);
    tel.add("vmstat.workingset_refault_file", refaults * scale);
    tel.add("vmstat.pgmajfault", (swapins + refaults) * scale);
    let bursts = seconds / ALLOC_BURST_EVERY_S;
    let direct = if stall_s > 0.0 { bursts * (burst - step) / (32.0 * 4096.0) } else { 0.0 };
    tel.add("vmstat.allocstall_normal", direct);
    tel.add("vmstat.pgscan_direct", direct * 32.0);
    tel.add("app.batch.requests", items_per_run);
    let stalled_share = (fault_ms_total + stall_ms_total) / (lat.iter().sum::<f64>());
    tel.set("psi.memory.some.avg10", (100.0 * stalled_share).min(100.0));
    tel.set("meminfo.SwapTotal", 16.0 * 1024.0 * 1024.0);
    tel.set("meminfo.SwapFree", (16.0 * GIB - ea * anon_ws).max(0.0) / 1024.0);
    lat
}
