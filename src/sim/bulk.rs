//! Bulk transfers received over a long-RTT path.
//!
//! Mechanisms: a transfer's rate is the least of its fair share of the
//! bottleneck, the receive window autotuning can reach (about half of the
//! `tcp_rmem` maximum is advertised as window), and what CUBIC sustains
//! under the packet-loss rate, which includes input-backlog drops on this
//! host. A receive window below the bandwidth-delay product shows in
//! per-socket state as receive-window-limited time (what `ss -ti` reports).

use super::params::HostParams;
use super::rng::SimRng;
use super::{HostSpec, Shared, Telemetry};
use rand::RngExt;

const RTT_S: f64 = 0.080;
const BOTTLENECK_BYTES_S: f64 = 125e6;
const OBJECT_BYTES: f64 = 32.0 * 1024.0 * 1024.0;
const MSS: f64 = 1448.0;
const PATH_LOSS: f64 = 2e-6;
const TRANSFERS: usize = 60;

/// Window-limited rate: bytes per second a receive buffer of `rmem_max` allows at `rtt`.
pub fn window_rate(rmem_max: f64, rtt: f64) -> f64 {
    rmem_max * 0.5 / rtt
}

/// CUBIC's sustainable rate at loss probability `p` (response function, C = 0.4, β = 0.7).
pub fn cubic_rate(p: f64, rtt: f64) -> f64 {
    let w_pkts = 1.054 * rtt.powf(0.75) / p.max(1e-12).powf(0.75);
    w_pkts * MSS / rtt
}

/// Runs the bulk workload; returns per-transfer completion times in ms.
pub fn run(_spec: &HostSpec, p: &HostParams, intensity: f64, _seconds: f64, shared: &Shared, rng: &mut SimRng, tel: &mut Telemetry) -> Vec<f64> {
    let flows = (2.0 * intensity).round().max(1.0);
    let loss = shared.rx_drop_prob + PATH_LOSS;
    let mut lat = Vec::with_capacity(TRANSFERS);
    let (mut rwnd_limited, mut bdp_max, mut retrans) = (0.0, 0.0f64, 0.0);
    for _ in 0..TRANSFERS {
        let rtt = RTT_S * (1.0 + 0.05 * rng.random::<f64>());
        let fair = BOTTLENECK_BYTES_S / flows * (0.9 + 0.2 * rng.random::<f64>());
        let window = window_rate(p.tcp_rmem_max as f64, rtt);
        // Loss events are random: some transfers see none, some several.
        let loss_here = loss * (0.5 + rng.random::<f64>());
        let cubic = cubic_rate(loss_here, rtt);
        let rate = fair.min(window).min(cubic);
        let limited = if window <= fair.min(cubic) { 0.85 } else if window < 1.2 * fair.min(cubic) { 0.25 } else { 0.03 };
        rwnd_limited += limited * (0.9 + 0.2 * rng.random::<f64>());
        bdp_max = bdp_max.max(rate * RTT_S);
        let cwnd_pkts = rate * rtt / MSS;
        let slow_start_rtts = (cwnd_pkts / 10.0).max(1.0).log2().ceil();
        let secs = rtt + slow_start_rtts * rtt * 0.5 + OBJECT_BYTES / rate;
        retrans += OBJECT_BYTES / MSS * loss_here;
        lat.push(secs * 1000.0);
    }
    tel.set("sock.rwnd_limited_pct.mean", 100.0 * rwnd_limited / TRANSFERS as f64);
    tel.set("sock.sndbuf_limited_pct.mean", 1.0);
    tel.set("sock.bdp_bytes.max", bdp_max.round());
    tel.set("sock.rtt_ms.p50", RTT_S * 1000.0);
    tel.set("sockstat.TCP.mem", (flows * (p.tcp_rmem_max as f64).min(2.0 * BOTTLENECK_BYTES_S * RTT_S) / 4096.0).round());
    tel.add("snmp.Tcp.RetransSegs", retrans.round());
    tel.add("snmp.Tcp.InSegs", TRANSFERS as f64 * OBJECT_BYTES / MSS);
    tel.add("app.bulk.requests", TRANSFERS as f64);
    lat
}
