//! Web service with connection bursts, and the per-CPU input backlog every
//! receiver on the host shares.
//!
//! Mechanisms: `listen()` truncates the application's backlog to
//! `somaxconn`; when the accept queue holds more than that many connections
//! the kernel drops the handshake (ListenOverflows) and the client resends its
//! SYN after 1 s, then 3 s, 7 s... (exponential back-off from the 1 s initial
//! RTO; server SYN-ACK retransmissions interleave with them, which spreads
//! the retries by up to 200 ms). Packets arrive at each receive CPU in trains; a train longer than
//! `netdev_max_backlog` loses its tail (softnet column 2), which costs a
//! retransmission timeout (200 ms) for data or 1 s for a SYN.

use super::params::HostParams;
use super::rng::{self, SimRng};
use super::{HostSpec, Shared, Telemetry, numa_factor};
use rand::RngExt;
use rand_distr::{Distribution, LogNormal};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// The application's own listen() backlog (nginx `backlog=2048`).
pub const APP_BACKLOG: i64 = 2048;
const WORKERS: usize = 8;
const BURST_PERIOD_S: f64 = 15.0;
const BURST_SIZE: f64 = 1000.0;
const BURST_SPREAD_S: f64 = 0.100;
const PACKETS_PER_REQUEST: i32 = 6;

/// Packet trains at the receive CPUs: sets the drop probability and emits softnet counters.
///
/// Train sizes are log-normal; a train longer than the backlog loses its
/// tail. The expected loss is computed in closed form (the tail is too thin
/// to sample reliably: a few trains in a hundred thousand overflow), then
/// the counters are drawn around it.
pub fn rx_backlog(spec: &HostSpec, p: &HostParams, bulk: f64, web: f64, seed: u64, seconds: f64, shared: &mut Shared, tel: &mut Telemetry) {
    let mut rng = rng::stream(seed, "rx_backlog");
    let rx_cpus = spec.ncpus.clamp(1, 4) as f64;
    let trains = (400.0 * bulk + 20.0 * web) * rx_cpus * seconds;
    if trains <= 0.0 {
        return;
    }
    let (mu, sigma) = ((80.0 * bulk.max(web * 0.5).max(0.1)).ln(), 0.6);
    let mean = (mu + sigma * sigma / 2.0).exp();
    let excess = lognormal_excess(mu, sigma, p.netdev_max_backlog as f64);
    let over_budget = 1.0 - normal_cdf((( p.netdev_budget as f64).ln() - mu) / sigma);
    let jitter = |rng: &mut SimRng| 0.9 + 0.2 * rng.random::<f64>();
    shared.rx_drop_prob = excess / mean;
    let drops = trains * excess * jitter(&mut rng);
    tel.add("softnet.processed", trains * mean - drops);
    tel.add("softnet.dropped", drops.round());
    tel.add("softnet.time_squeeze", (trains * over_budget * jitter(&mut rng)).round());
    tel.set("softnet.cpus", spec.ncpus as f64);
}

/// E[(K − c)⁺] for K log-normal(mu, sigma).
pub fn lognormal_excess(mu: f64, sigma: f64, c: f64) -> f64 {
    let mean = (mu + sigma * sigma / 2.0).exp();
    let d2 = (mu - c.max(1e-9).ln()) / sigma;
    (mean * normal_cdf(d2 + sigma) - c * normal_cdf(d2)).max(0.0)
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 for erf, |error| < 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    // Ordered so that, at equal times, a finishing worker frees its slot before an arrival is judged.
    WorkerDone(usize),
    Arrive(usize),
}

/// Runs the web workload; returns per-request latency in ms (connect start to full response).
pub fn run(spec: &HostSpec, p: &HostParams, intensity: f64, seconds: f64, shared: &Shared, rng: &mut SimRng, tel: &mut Telemetry) -> Vec<f64> {
    let backlog = APP_BACKLOG.min(p.somaxconn).max(1) as usize;
    let service = LogNormal::new((2.0f64).ln(), 0.5).unwrap();
    let numa = numa_factor(spec, p, false);
    let slice_ms = scheduler_slice_ms(spec, p);
    let per_burst = (BURST_SIZE * intensity).round() as usize;
    let bursts = (seconds / BURST_PERIOD_S).floor().max(1.0) as usize;
    let mut lat = Vec::with_capacity(per_burst * bursts);
    let (mut overflows, mut queue_peak) = (0u64, 0usize);
    for _ in 0..bursts {
        // Event queue keyed by time in microseconds.
        let mut heap: BinaryHeap<Reverse<(u64, Ev)>> = BinaryHeap::new();
        let mut first_try = vec![0u64; per_burst];
        let mut attempts = vec![0u32; per_burst];
        for (i, t) in first_try.iter_mut().enumerate() {
            *t = (rng.random::<f64>() * BURST_SPREAD_S * 1e6) as u64;
            heap.push(Reverse((*t, Ev::Arrive(i))));
        }
        let mut queue: VecDeque<usize> = VecDeque::new();
        let mut busy: Vec<Option<usize>> = vec![None; WORKERS];
        let start_work = |w: usize, conn: usize, now: u64, heap: &mut BinaryHeap<Reverse<(u64, Ev)>>, busy: &mut Vec<Option<usize>>, rng: &mut SimRng| {
            let s_ms: f64 = service.sample(rng) * numa;
            busy[w] = Some(conn);
            heap.push(Reverse((now + (s_ms * 1000.0) as u64, Ev::WorkerDone(w))));
        };
        while let Some(Reverse((now, ev))) = heap.pop() {
            match ev {
                Ev::Arrive(c) => {
                    // The kernel drops when the queue already holds more than the backlog.
                    if queue.len() > backlog {
                        overflows += 1;
                        attempts[c] += 1;
                        // Client SYN retries and server SYN-ACK retries interleave, so retries do not land in lockstep.
                        let backoff_s = (1u64 << (attempts[c] - 1).min(5)) as f64 + 0.2 * rng.random::<f64>();
                        if attempts[c] <= 6 {
                            heap.push(Reverse((now + (backoff_s * 1e6) as u64, Ev::Arrive(c))));
                        } else {
                            lat.push((now - first_try[c]) as f64 / 1000.0 + 1000.0);
                        }
                        continue;
                    }
                    queue.push_back(c);
                    queue_peak = queue_peak.max(queue.len());
                    if let Some(w) = busy.iter().position(Option::is_none) {
                        let c = queue.pop_front().unwrap();
                        start_work(w, c, now, &mut heap, &mut busy, rng);
                    }
                }
                Ev::WorkerDone(w) => {
                    let c = busy[w].take().unwrap();
                    let mut ms = (now - first_try[c]) as f64 / 1000.0;
                    ms += network_penalty_ms(shared.rx_drop_prob, rng);
                    ms += rng.random::<f64>() * slice_ms * shared.cpu_pressure * 2.0;
                    lat.push(ms);
                    if let Some(next) = queue.pop_front() {
                        start_work(w, next, now, &mut heap, &mut busy, rng);
                    }
                }
            }
        }
    }
    tel.add("netstat.TcpExt.ListenOverflows", overflows as f64);
    tel.add("netstat.TcpExt.ListenDrops", overflows as f64);
    tel.add("netstat.TcpExt.TCPReqQFullDoCookies", 0.0);
    tel.add("snmp.Tcp.PassiveOpens", (per_burst * bursts) as f64);
    tel.add("app.web.requests", lat.len() as f64);
    tel.set("listen.backlog.max", backlog as f64);
    tel.set("listen.queue.max", queue_peak as f64);
    lat
}

/// Extra delay when one of a request's packets is dropped at the input backlog.
fn network_penalty_ms(drop_prob: f64, rng: &mut SimRng) -> f64 {
    if drop_prob <= 0.0 {
        return 0.0;
    }
    for i in 0..PACKETS_PER_REQUEST {
        if rng.random::<f64>() < drop_prob {
            // A lost SYN waits for the 1 s initial RTO; a lost data segment for the 200 ms minimum RTO.
            return if i == 0 { 1000.0 } else { 200.0 + rng.random::<f64>() * 20.0 };
        }
    }
    0.0
}

/// The time slice a woken task may wait behind: CFS's min granularity before 5.13, EEVDF's base slice after.
pub fn scheduler_slice_ms(spec: &HostSpec, p: &HostParams) -> f64 {
    let factor = 1.0 + (spec.ncpus.clamp(1, 8) as f64).log2().floor();
    match p.sched_min_granularity_ns {
        Some(ns) => ns as f64 / 1e6,
        None => 0.7 * factor,
    }
}
