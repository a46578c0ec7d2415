//! Prints the simulator's p95 per workload while one parameter sweeps: a
//! quick look at the response curves (`cargo run --release --example sim_sweep`).

use semantos::sim::{self, HostSpec, WorkloadClass, WorkloadSpec, params::HostParams};
use semantos::sysctl::{SysctlKey, Value, store::MemStore};

fn p95(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let r = 0.95 * (s.len() - 1) as f64;
    let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (r - lo as f64)
}

fn main() {
    let spec = HostSpec::default();
    let mut v = spec.kernel_defaults();
    v.extend(spec.start.clone());
    let store = MemStore::new(v.iter().map(|(k, v)| (SysctlKey::parse(k).unwrap(), Value::from_kernel(v))));
    let base = HostParams::from_store(&store);
    let wl: Vec<WorkloadSpec> = WorkloadClass::ALL.iter().map(|c| WorkloadSpec { class: *c, intensity: 1.0 }).collect();
    let show = |label: &str, p: &HostParams| {
        let mut acc = [0.0; 4];
        for seed in 0..5 {
            let out = sim::run(&spec, p, &wl, seed, 60.0);
            for (i, c) in WorkloadClass::ALL.iter().enumerate() {
                acc[i] += p95(&out.latencies[c.name()]) / 5.0;
            }
        }
        println!("{label:<28} web {:>8.1}  oltp {:>8.1}  bulk {:>8.1}  batch {:>8.1}", acc[0], acc[1], acc[2], acc[3]);
    };
    show("baseline", &base);
    for (r, b) in [(20, 10), (10, 5), (5, 2), (3, 1), (2, 1), (1, 1)] {
        let mut p = base.clone();
        p.dirty_ratio = r;
        p.dirty_background_ratio = b;
        show(&format!("dirty {r}/{b}"), &p);
    }
    for s in [0, 5, 10, 20, 30, 60, 100, 200] {
        let mut p = base.clone();
        p.watermark_scale_factor = 50;
        p.swappiness = s;
        show(&format!("wsf 50, swappiness {s}"), &p);
    }
    for w in [10, 20, 50, 100, 200, 500] {
        let mut p = base.clone();
        p.watermark_scale_factor = w;
        show(&format!("watermark_scale_factor {w}"), &p);
    }
    for s in [128, 512, 1024, 2048, 4096] {
        let mut p = base.clone();
        p.somaxconn = s;
        show(&format!("somaxconn {s}"), &p);
    }
    for b in [1000, 2000, 4096, 8192] {
        let mut p = base.clone();
        p.netdev_max_backlog = b;
        show(&format!("netdev_max_backlog {b}"), &p);
    }
    for m in [6291456i64, 16777216, 33554432, 67108864] {
        let mut p = base.clone();
        p.netdev_max_backlog = 8192;
        p.tcp_rmem_max = m;
        show(&format!("backlog 8192 + rmem {m}"), &p);
    }
    let mut p = base.clone();
    p.numa_balancing = 0;
    show("numa_balancing 0", &p);
}
