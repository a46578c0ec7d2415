//! Aggregation of repeated dumps into the window metrics the parent module
//! documents: one track per connection, the idle-restart detection, the
//! limited shares and the percentiles.

use super::limits::{BufferCaps, Receivers, listener_metrics};
use super::wire::{SockRecord, TcpInfo};
use crate::telemetry::snapshot::Snapshot;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// Linux's initial congestion window (`TCP_INIT_CWND`): a socket at or below it has no window to lose.
pub const TCP_INIT_CWND: u32 = 10;

/// What the aggregator keeps of one connection between samples.
#[derive(Debug, Clone)]
struct Track {
    remote: IpAddr,
    cong: Option<String>,
    /// Time of the latest sample, ms on the caller's clock.
    t_ms: u64,
    info: TcpInfo,
    cwnd_max: u32,
    bdp_max: f64,
}

/// Folds repeated dumps of one or more namespaces into window metrics.
#[derive(Debug, Clone, Default)]
pub struct SockAggregator {
    known_cc: BTreeSet<String>,
    tracks: HashMap<u64, Track>,
    /// Listening port → (latest backlog, peak queue).
    listeners: BTreeMap<u16, (u32, u32)>,
    idle_drops: Vec<f64>,
    samples: usize,
    /// The caps to classify sockets against (`limits`); without them no `limits` metric is reported.
    caps: Option<BufferCaps>,
    receivers: Receivers,
}

impl SockAggregator {
    /// An aggregator that reports a share (0 when unused) for each algorithm in `known_cc`
    /// (e.g. `tcp_available_congestion_control`), so "nobody used BBR" is a measured 0, not an absence.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(known_cc: I) -> Self {
        Self { known_cc: known_cc.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// The same aggregator, also counting the sockets held at each of `caps` (see `limits`).
    pub fn with_caps(mut self, caps: BufferCaps) -> Self {
        self.caps = Some(caps);
        self
    }

    /// Adds one UDP dump (only the receive buffers are kept).
    pub fn observe_udp(&mut self, records: &[SockRecord]) {
        for r in records {
            self.receivers.observe(r, true);
        }
    }

    /// Number of dumps observed.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Adds one dump taken at `t_ms` (the caller's monotonic clock, milliseconds).
    pub fn observe(&mut self, t_ms: u64, records: &[SockRecord]) {
        self.samples += 1;
        for r in records {
            if r.is_listener() {
                let e = self.listeners.entry(r.local.port()).or_insert((0, 0));
                e.0 = r.wqueue;
                e.1 = e.1.max(r.rqueue);
                continue;
            }
            self.receivers.observe(r, false);
            let Some(info) = r.info.clone() else { continue };
            let bdp = match (info.delivery_rate, info.min_rtt_us) {
                (Some(rate), Some(rtt)) if rate > 0 && rtt > 0 => rate as f64 * rtt as f64 / 1e6,
                _ => 0.0,
            };
            match self.tracks.get_mut(&r.cookie) {
                Some(tr) => {
                    let prev = &tr.info;
                    // Last-send instants on the caller's clock; equal up to a jiffy when nothing was sent.
                    let prev_send = tr.t_ms as i64 - prev.last_data_sent_ms as i64;
                    let cur_send = t_ms as i64 - info.last_data_sent_ms as i64;
                    let idle_before = prev.last_data_sent_ms as u64 * 1000 > prev.rto_us as u64 && prev.rto_us > 0;
                    if idle_before && cur_send > prev_send + 10 && prev.snd_cwnd > TCP_INIT_CWND {
                        let drop = (prev.snd_cwnd as f64 - info.snd_cwnd as f64) / prev.snd_cwnd as f64 * 100.0;
                        self.idle_drops.push(drop.max(0.0));
                    }
                    tr.t_ms = t_ms;
                    tr.cwnd_max = tr.cwnd_max.max(info.snd_cwnd);
                    tr.bdp_max = tr.bdp_max.max(bdp);
                    if r.cong.is_some() {
                        tr.cong = r.cong.clone();
                    }
                    tr.info = info;
                }
                None => {
                    self.tracks.insert(r.cookie, Track { remote: r.remote.ip(), cong: r.cong.clone(), t_ms, cwnd_max: info.snd_cwnd, bdp_max: bdp, info });
                }
            }
        }
    }

    /// The window's metrics (see the `sockdiag` module documentation for names and meanings).
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        let tracks: Vec<&Track> = self.tracks.values().collect();
        m.insert("sock.connections".into(), tracks.len() as f64);
        if !self.listeners.is_empty() {
            m.insert("listen.count".into(), self.listeners.len() as f64);
            m.insert("listen.backlog.max".into(), self.listeners.values().map(|l| l.0).max().unwrap_or(0) as f64);
            m.insert("listen.queue.max".into(), self.listeners.values().map(|l| l.1).max().unwrap_or(0) as f64);
            for (port, (backlog, queue)) in &self.listeners {
                m.insert(format!("listen.{port}.backlog"), *backlog as f64);
                m.insert(format!("listen.{port}.queue.max"), *queue as f64);
            }
        }
        if let Some(caps) = &self.caps {
            listener_metrics(&self.listeners, caps, &mut m);
            self.receivers.metrics(caps, &mut m);
        }
        if tracks.is_empty() {
            return m;
        }
        let rtts: Vec<f64> = tracks.iter().filter(|t| t.info.rtt_us > 0).map(|t| t.info.rtt_us as f64 / 1000.0).collect();
        if !rtts.is_empty() {
            m.insert("sock.rtt_ms.p50".into(), nearest_rank(&rtts, 50.0));
            m.insert("sock.rtt_ms.p95".into(), nearest_rank(&rtts, 95.0));
        }
        if let Some(min) = tracks.iter().filter_map(|t| t.info.min_rtt_us).filter(|&v| v > 0 && v != u32::MAX).min() {
            m.insert("sock.min_rtt_ms.min".into(), min as f64 / 1000.0);
        }
        let cwnds: Vec<f64> = tracks.iter().map(|t| t.info.snd_cwnd as f64).collect();
        m.insert("sock.cwnd.p50".into(), nearest_rank(&cwnds, 50.0));
        m.insert("sock.cwnd.max".into(), tracks.iter().map(|t| t.cwnd_max).max().unwrap_or(0) as f64);
        if let Some(rate) = tracks.iter().filter_map(|t| t.info.delivery_rate).max() {
            m.insert("sock.delivery_rate_bps.max".into(), rate as f64);
        }
        let bdp = tracks.iter().map(|t| t.bdp_max).fold(0.0, f64::max);
        if bdp > 0.0 {
            m.insert("sock.bdp_bytes.max".into(), bdp.round());
        }
        m.insert("sock.retrans.sum".into(), tracks.iter().map(|t| t.info.total_retrans as f64).sum());
        m.insert("sock.busy_ms.sum".into(), tracks.iter().filter_map(|t| t.info.busy_time_us).sum::<u64>() as f64 / 1000.0);
        limited_share(&tracks, |i| i.rwnd_limited_us, "sock.rwnd_limited_pct", &mut m);
        limited_share(&tracks, |i| i.sndbuf_limited_us, "sock.sndbuf_limited_pct", &mut m);
        m.insert("sock.idle_restarts".into(), self.idle_drops.len() as f64);
        if !self.idle_drops.is_empty() {
            m.insert("sock.idle_cwnd_drop_pct.mean".into(), self.idle_drops.iter().sum::<f64>() / self.idle_drops.len() as f64);
            m.insert("sock.idle_cwnd_drop_pct.max".into(), self.idle_drops.iter().copied().fold(0.0, f64::max));
        }
        let with_cc: Vec<&str> = tracks.iter().filter_map(|t| t.cong.as_deref()).collect();
        let names: BTreeSet<&str> = self.known_cc.iter().map(String::as_str).chain(with_cc.iter().copied()).collect();
        if !with_cc.is_empty() {
            for name in names {
                let n = with_cc.iter().filter(|c| **c == name).count();
                m.insert(format!("sock.cc.{name}.share"), n as f64 / with_cc.len() as f64);
            }
        }
        let mut peers: BTreeMap<IpAddr, Vec<&Track>> = BTreeMap::new();
        for t in &tracks {
            peers.entry(t.remote).or_default().push(t);
        }
        for (ip, ts) in peers {
            let p = format!("sock.peer.{}", ip.to_string().replace(['.', ':'], "_"));
            m.insert(format!("{p}.connections"), ts.len() as f64);
            let rtts: Vec<f64> = ts.iter().filter(|t| t.info.rtt_us > 0).map(|t| t.info.rtt_us as f64 / 1000.0).collect();
            if !rtts.is_empty() {
                m.insert(format!("{p}.rtt_ms.p50"), nearest_rank(&rtts, 50.0));
            }
            let bdp = ts.iter().map(|t| t.bdp_max).fold(0.0, f64::max);
            if bdp > 0.0 {
                m.insert(format!("{p}.bdp_bytes.max"), bdp.round());
            }
            let busy: u64 = ts.iter().filter_map(|t| t.info.busy_time_us).sum();
            if busy > 0 {
                let rw: u64 = ts.iter().filter_map(|t| t.info.rwnd_limited_us).sum();
                let sb: u64 = ts.iter().filter_map(|t| t.info.sndbuf_limited_us).sum();
                m.insert(format!("{p}.rwnd_limited_pct"), 100.0 * rw as f64 / busy as f64);
                m.insert(format!("{p}.sndbuf_limited_pct"), 100.0 * sb as f64 / busy as f64);
            }
        }
        m
    }

    /// Adds the metrics to `snap` (overwriting metrics of the same name).
    pub fn add_to(&self, snap: &mut Snapshot) {
        for (k, v) in self.metrics() {
            snap.set(k, v);
        }
    }
}

/// Busy time below which one connection's limited share is too noisy to be its `.max`.
const MIN_BUSY_US: u64 = 10_000;

/// `<name>.mean` (busy-time-weighted share over all connections) and `<name>.max`.
fn limited_share(tracks: &[&Track], limited: impl Fn(&TcpInfo) -> Option<u64>, name: &str, m: &mut BTreeMap<String, f64>) {
    let busy: u64 = tracks.iter().filter(|t| limited(&t.info).is_some()).filter_map(|t| t.info.busy_time_us).sum();
    if busy == 0 {
        return;
    }
    let lim: u64 = tracks.iter().filter_map(|t| limited(&t.info)).sum();
    m.insert(format!("{name}.mean"), 100.0 * lim as f64 / busy as f64);
    let max = tracks
        .iter()
        .filter_map(|t| Some((t.info.busy_time_us?, limited(&t.info)?)))
        .filter(|(b, _)| *b >= MIN_BUSY_US)
        .map(|(b, l)| 100.0 * l as f64 / b as f64)
        .fold(f64::NAN, f64::max);
    if max.is_finite() {
        m.insert(format!("{name}.max"), max);
    }
}

/// Nearest-rank percentile (`p` in percent) of a non-empty slice.
fn nearest_rank(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let k = ((p / 100.0 * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[k - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::wire::TCP_LISTEN;

    fn rec(cookie: u64, state: u8, info: TcpInfo, cong: &str) -> SockRecord {
        SockRecord {
            state,
            local: "10.0.0.1:9090".parse().unwrap(),
            remote: "10.0.0.2:40000".parse().unwrap(),
            cookie,
            inode: 1,
            rqueue: 0,
            wqueue: 0,
            cong: Some(cong.into()),
            info: Some(info),
            skmem: None,
        }
    }

    #[test]
    fn limited_shares_are_weighted_by_busy_time() {
        let mut a = SockAggregator::new(["reno", "bbr", "cubic"]);
        let sender = TcpInfo { busy_time_us: Some(1_000_000), rwnd_limited_us: Some(900_000), sndbuf_limited_us: Some(0), snd_cwnd: 900, delivery_rate: Some(25_000_000), min_rtt_us: Some(100_000), rtt_us: 120_000, ..Default::default() };
        let requester = TcpInfo { busy_time_us: Some(1_000), rwnd_limited_us: Some(0), sndbuf_limited_us: Some(0), snd_cwnd: 10, rtt_us: 100_000, ..Default::default() };
        a.observe(0, &[rec(1, 1, sender, "cubic"), rec(2, 1, requester, "cubic")]);
        let m = a.metrics();
        assert!((m["sock.rwnd_limited_pct.mean"] - 100.0 * 900_000.0 / 1_001_000.0).abs() < 1e-9);
        assert_eq!(m["sock.rwnd_limited_pct.max"], 90.0);
        assert_eq!(m["sock.sndbuf_limited_pct.mean"], 0.0);
        assert_eq!(m["sock.bdp_bytes.max"], 2_500_000.0);
        assert_eq!(m["sock.cc.cubic.share"], 1.0);
        assert_eq!(m["sock.cc.bbr.share"], 0.0, "an unused available algorithm is a measured zero");
        assert_eq!(m["sock.peer.10_0_0_2.connections"], 2.0);
        assert!(!m.contains_key("sock.idle_cwnd_drop_pct.mean"), "no restart seen, no value");
    }

    #[test]
    fn a_send_after_idle_longer_than_rto_with_a_smaller_window_is_a_collapse() {
        let mut a = SockAggregator::new(["cubic"]);
        let at = |sent_ago: u32, cwnd: u32| TcpInfo { rto_us: 300_000, last_data_sent_ms: sent_ago, snd_cwnd: cwnd, ..Default::default() };
        // Busy, then 1 s of silence, then a response that starts from cwnd 100.
        a.observe(0, &[rec(1, 1, at(0, 800), "cubic")]);
        a.observe(500, &[rec(1, 1, at(500, 800), "cubic")]);
        a.observe(1000, &[rec(1, 1, at(1000, 800), "cubic")]);
        a.observe(1025, &[rec(1, 1, at(5, 100), "cubic")]);
        // Idle shorter than the RTO: no event.
        a.observe(1200, &[rec(1, 1, at(180, 700), "cubic")]);
        a.observe(1230, &[rec(1, 1, at(2, 700), "cubic")]);
        // A requester at the initial window: nothing to lose, not counted.
        a.observe(3000, &[rec(2, 1, at(2000, 10), "cubic")]);
        a.observe(3025, &[rec(2, 1, at(1, 10), "cubic")]);
        let m = a.metrics();
        assert_eq!(m["sock.idle_restarts"], 1.0);
        assert_eq!(m["sock.idle_cwnd_drop_pct.mean"], 87.5);
    }

    #[test]
    fn listeners_report_backlog_and_peak_queue() {
        let mut a = SockAggregator::new(Vec::<String>::new());
        let l = |rq, wq| SockRecord { state: TCP_LISTEN, local: "10.0.0.2:8080".parse().unwrap(), remote: "0.0.0.0:0".parse().unwrap(), cookie: 9, inode: 1, rqueue: rq, wqueue: wq, cong: None, info: None, skmem: None };
        a.observe(0, &[l(0, 128)]);
        a.observe(50, &[l(129, 128)]);
        a.observe(100, &[l(3, 128)]);
        let m = a.metrics();
        assert_eq!((m["listen.backlog.max"], m["listen.queue.max"], m["listen.8080.queue.max"]), (128.0, 129.0, 129.0));
        assert_eq!(m["sock.connections"], 0.0);
    }
}
