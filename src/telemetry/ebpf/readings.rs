//! What one read of the kernel maps holds, and how it becomes snapshot metrics.
//! Pure: the loader fills `Readings`; `metrics` names and sums them.
//!
//! Names: `ebpf.drop.<reason>` (the `SKB_DROP_REASON_` suffix, lowercase),
//! `ebpf.tcp.retransmit.<state>`, `ebpf.tcp.state.<from>_<to>` (counters, so
//! rates come from two snapshots like every counter), `ebpf.runq.p50_us` /
//! `p99_us` and `ebpf.bio.<dev>.p50_us` / `p99_us` (gauges: percentiles of the
//! events since the previous read, from log2 histograms).

use std::collections::BTreeMap;

/// Log2 histogram: slot 0 counts values below 1 µs, slot `s` counts [2^(s-1), 2^s) µs.
pub type Histogram = BTreeMap<u32, u64>;

/// One read of every map: counters are cumulative since attach, histograms too.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// (netns inode, `skb_drop_reason` value) → packets freed with that reason.
    pub drops: Vec<(u32, u32, u64)>,
    /// (netns inode, TCP state) → segments retransmitted in that state.
    pub retransmits: Vec<(u32, u32, u64)>,
    /// (netns inode, old state, new state) → socket state changes.
    pub transitions: Vec<(u32, u16, u16, u64)>,
    /// Run-queue delay of every task.
    pub runq: Histogram,
    /// Completion latency per block device (`dev_t` as the kernel encodes it: major << 20 | minor).
    pub bio: BTreeMap<u32, Histogram>,
}

/// Names of what the numbers mean on this kernel.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// `skb_drop_reason` value → lowercase suffix (`socket_rcvbuff`), read from the kernel's BTF.
    pub drop_reasons: BTreeMap<u32, String>,
    /// `dev_t` → device name (`vda`), read from /sys/dev/block.
    pub devices: BTreeMap<u32, String>,
}

/// Lowercase TCP state name (include/net/tcp_states.h), or `state<n>` for one this table lacks.
pub fn tcp_state(n: u32) -> String {
    const STATES: [&str; 14] = [
        "unknown", "established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait", "close", "close_wait", "last_ack", "listen", "closing",
        "new_syn_recv", "bound_inactive",
    ];
    STATES.get(n as usize).filter(|_| n > 0).map_or_else(|| format!("state{n}"), |s| s.to_string())
}

/// The metric suffix of a drop reason: its BTF name without `SKB_DROP_REASON_`, lowercase.
pub fn drop_reason_suffix(btf_name: &str) -> String {
    btf_name.strip_prefix("SKB_DROP_REASON_").unwrap_or(btf_name).to_ascii_lowercase()
}

/// The µs range `[lo, hi)` a log2 slot counts: slot 0 is [0, 1), slot `s` is [2^(s-1), 2^s).
pub fn slot_range(slot: u32) -> (f64, f64) {
    if slot == 0 { (0.0, 1.0) } else { ((1u64 << (slot - 1).min(62)) as f64, (1u64 << slot.min(63)) as f64) }
}

/// The `q` quantile (0..=1) of a histogram in µs, interpolated inside its bucket; `None` when empty.
pub fn quantile(h: &Histogram, q: f64) -> Option<f64> {
    let total: u64 = h.values().sum();
    if total == 0 {
        return None;
    }
    let target = q.clamp(0.0, 1.0) * total as f64;
    let mut seen = 0u64;
    for (&slot, &n) in h {
        if n == 0 {
            continue;
        }
        if (seen + n) as f64 >= target {
            let (lo, hi) = slot_range(slot);
            let frac = ((target - seen as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lo + (hi - lo) * frac);
        }
        seen += n;
    }
    None
}

/// What happened between two cumulative histograms (a slot that went backwards, after a reload, counts from zero).
pub fn since(now: &Histogram, before: &Histogram) -> Histogram {
    now.iter().map(|(&s, &n)| (s, n.checked_sub(before.get(&s).copied().unwrap_or(0)).unwrap_or(n))).filter(|&(_, n)| n > 0).collect()
}

/// The snapshot metrics of `now`, counting only network namespace `netns` (every one when `None`);
/// percentiles cover the events since `before` (the previous read) or since attach.
pub fn metrics(now: &Readings, before: Option<&Readings>, names: &Names, netns: Option<u32>) -> BTreeMap<String, f64> {
    let ours = |ns: u32| netns.is_none_or(|want| want == ns);
    let mut m = BTreeMap::new();
    for &(_, reason, n) in now.drops.iter().filter(|d| ours(d.0)) {
        let name = names.drop_reasons.get(&reason).cloned().unwrap_or_else(|| format!("reason{reason}"));
        *m.entry(format!("ebpf.drop.{name}")).or_insert(0.0) += n as f64;
    }
    for &(_, state, n) in now.retransmits.iter().filter(|r| ours(r.0)) {
        *m.entry(format!("ebpf.tcp.retransmit.{}", tcp_state(state))).or_insert(0.0) += n as f64;
    }
    for &(_, from, to, n) in now.transitions.iter().filter(|t| ours(t.0)) {
        *m.entry(format!("ebpf.tcp.state.{}_{}", tcp_state(from.into()), tcp_state(to.into()))).or_insert(0.0) += n as f64;
    }
    let empty = Histogram::new();
    let runq = since(&now.runq, before.map_or(&empty, |b| &b.runq));
    if let (Some(p50), Some(p99)) = (quantile(&runq, 0.5), quantile(&runq, 0.99)) {
        m.insert("ebpf.runq.p50_us".into(), p50);
        m.insert("ebpf.runq.p99_us".into(), p99);
    }
    for (dev, h) in &now.bio {
        let h = since(h, before.and_then(|b| b.bio.get(dev)).unwrap_or(&empty));
        let name = names.devices.get(dev).cloned().unwrap_or_else(|| format!("{}:{}", dev >> 20, dev & 0xfffff));
        if let (Some(p50), Some(p99)) = (quantile(&h, 0.5), quantile(&h, 0.99)) {
            m.insert(format!("ebpf.bio.{name}.p50_us"), p50);
            m.insert(format!("ebpf.bio.{name}.p99_us"), p99);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(pairs: &[(u32, u64)]) -> Histogram {
        pairs.iter().copied().collect()
    }

    #[test]
    fn quantiles_interpolate_inside_log2_buckets() {
        // 100 events in [4, 8) µs: p50 is halfway through the bucket.
        assert_eq!(quantile(&hist(&[(3, 100)]), 0.5), Some(6.0));
        // 98 in [1, 2) µs, 2 in [512, 1024): p50 is in the fast bucket, p99 in the slow one.
        let h = hist(&[(1, 98), (10, 2)]);
        assert!((1.0..2.0).contains(&quantile(&h, 0.5).unwrap()));
        let p99 = quantile(&h, 0.99).unwrap();
        assert!((512.0..=1024.0).contains(&p99), "{p99}");
        assert_eq!(quantile(&Histogram::new(), 0.5), None);
    }

    #[test]
    fn percentiles_cover_only_the_events_since_the_previous_read() {
        let before = Readings { runq: hist(&[(1, 1000)]), ..Default::default() };
        let now = Readings { runq: hist(&[(1, 1000), (12, 10)]), ..Default::default() };
        let m = metrics(&now, Some(&before), &Names::default(), None);
        assert!(m["ebpf.runq.p50_us"] >= 2048.0, "only the 10 slow wake-ups happened since: {m:?}");
        let m0 = metrics(&now, None, &Names::default(), None);
        assert!(m0["ebpf.runq.p50_us"] < 2.0, "{m0:?}");
    }

    #[test]
    fn drops_are_named_from_btf_and_filtered_by_netns() {
        let names = Names { drop_reasons: [(6, drop_reason_suffix("SKB_DROP_REASON_SOCKET_RCVBUFF"))].into(), ..Default::default() };
        let now = Readings {
            drops: vec![(7, 6, 40), (8, 6, 5), (7, 99, 1)],
            retransmits: vec![(7, 1, 3)],
            transitions: vec![(7, 1, 8, 2), (8, 1, 8, 9)],
            ..Default::default()
        };
        let m = metrics(&now, None, &names, Some(7));
        assert_eq!(m.get("ebpf.drop.socket_rcvbuff"), Some(&40.0));
        assert_eq!(m.get("ebpf.drop.reason99"), Some(&1.0), "a value the BTF lacks still counts, by number");
        assert_eq!(m.get("ebpf.tcp.retransmit.established"), Some(&3.0));
        assert_eq!(m.get("ebpf.tcp.state.established_close_wait"), Some(&2.0));
        assert_eq!(metrics(&now, None, &names, None).get("ebpf.drop.socket_rcvbuff"), Some(&45.0));
        assert!(m.keys().all(|k| crate::telemetry::snapshot::metric_kind(k) == crate::telemetry::snapshot::MetricKind::Counter), "{m:?}");
    }

    #[test]
    fn block_latency_is_per_device_and_a_gauge() {
        let dev = (254 << 20) | 0;
        let names = Names { devices: [(dev, "vda".to_string())].into(), ..Default::default() };
        let now = Readings { bio: [(dev, hist(&[(8, 10)])), ((8 << 20) | 16, hist(&[(2, 1)]))].into(), ..Default::default() };
        let m = metrics(&now, None, &names, None);
        assert!((128.0..=256.0).contains(&m["ebpf.bio.vda.p99_us"]), "{m:?}");
        assert!(m.contains_key("ebpf.bio.8:16.p50_us"), "{m:?}");
        assert_eq!(crate::telemetry::snapshot::metric_kind("ebpf.bio.vda.p99_us"), crate::telemetry::snapshot::MetricKind::Gauge);
        assert_eq!(tcp_state(6), "time_wait");
        assert_eq!(tcp_state(40), "state40");
    }
}
