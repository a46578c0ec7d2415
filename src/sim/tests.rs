//! Unit tests of the model's mechanisms: each knob moves latency the way the
//! kernel mechanism says, and too far is worse, not better.

use super::*;
use crate::eval::stats::percentile;

fn params() -> HostParams {
    let spec = HostSpec::default();
    let mut v = spec.kernel_defaults();
    v.extend(spec.start.clone());
    let store = crate::sysctl::store::MemStore::new(v.iter().map(|(k, v)| (SysctlKey::parse(k).unwrap(), Value::from_kernel(v))));
    HostParams::from_store(&store)
}

fn p95(p: &HostParams, class: WorkloadClass, seed: u64) -> f64 {
    let spec = HostSpec::default();
    let wl: Vec<WorkloadSpec> = WorkloadClass::ALL.iter().map(|c| WorkloadSpec { class: *c, intensity: 1.0 }).collect();
    let out = run(&spec, p, &wl, seed, 60.0);
    percentile(&out.latencies[class.name()], 95.0)
}

#[test]
fn same_seed_same_samples() {
    let p = params();
    assert_eq!(p95(&p, WorkloadClass::Oltp, 3), p95(&p, WorkloadClass::Oltp, 3));
    assert_ne!(p95(&p, WorkloadClass::Web, 3), p95(&p, WorkloadClass::Web, 4));
}

#[test]
fn accept_queue_overflow_costs_seconds_and_somaxconn_fixes_it() {
    let base = params();
    let mut tuned = base.clone();
    tuned.somaxconn = 4096;
    assert!(p95(&base, WorkloadClass::Web, 1) > 900.0);
    assert!(p95(&tuned, WorkloadClass::Web, 1) < 600.0);
}

#[test]
fn dirty_thresholds_have_an_interior_optimum() {
    let base = params();
    let at = |ratio: i64, bg: i64| {
        let mut p = base.clone();
        p.dirty_ratio = ratio;
        p.dirty_background_ratio = bg;
        (0..3).map(|s| p95(&p, WorkloadClass::Oltp, s)).sum::<f64>() / 3.0
    };
    let default = at(20, 10);
    let moderate = at(3, 1);
    let floor = at(1, 1);
    assert!(moderate < default * 0.8, "moderate {moderate} vs default {default}");
    assert!(floor > moderate, "floor {floor} should be worse than moderate {moderate}");
}

#[test]
fn swappiness_has_an_interior_optimum() {
    let base = params();
    let spec = HostSpec::default();
    let at = |s: i64| {
        let mut p = base.clone();
        p.watermark_scale_factor = 50;
        p.swappiness = s;
        batch::expected_fault_ms(&spec, &p)
    };
    let (zero, low, default, high) = (at(0), at(30), at(60), at(200));
    assert!(low < default, "30: {low} vs 60: {default}");
    assert!(zero > low, "0: {zero} should be worse than 30: {low}");
    assert!(high > default, "200: {high} vs 60: {default}");
}

#[test]
fn watermark_gap_trades_direct_reclaim_for_memory() {
    let base = params();
    let at = |w: i64| {
        let mut p = base.clone();
        p.watermark_scale_factor = w;
        (0..3).map(|seed| p95(&p, WorkloadClass::Batch, seed)).sum::<f64>() / 3.0
    };
    let (default, moderate, huge) = (at(10), at(50), at(500));
    assert!(moderate < default * 0.85, "50: {moderate} vs 10: {default}");
    assert!(huge > moderate, "500: {huge} vs 50: {moderate}");
}

#[test]
fn backlog_drops_slow_bulk_transfers() {
    let base = params();
    let mut tuned = base.clone();
    tuned.netdev_max_backlog = 8192;
    assert!(p95(&tuned, WorkloadClass::Bulk, 2) < p95(&base, WorkloadClass::Bulk, 2) * 0.8);
}
