//! The kernel side's edge: loads bpf/telemetry.bpf.c's object with `aya`,
//! attaches each program on its own (one that fails is named, the others run),
//! and reads the maps into `Readings`. Only built when build.rs compiled the
//! object (cfg `semantos_ebpf_built`).

use super::readings::{Histogram, Readings};
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader, Pod};
use std::collections::BTreeMap;

/// Bytes at 8-byte alignment: the ELF parser reads 64-bit fields in place.
#[repr(C, align(8))]
struct Aligned<B: ?Sized> {
    bytes: B,
}

/// The object build.rs compiled from bpf/telemetry.bpf.c.
static OBJECT: &Aligned<[u8]> = &Aligned { bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/telemetry.bpf.o")) };

/// (program, tracepoint, what it measures): the probes, in the order they are attached.
pub const PROGRAMS: &[(&str, &str, &str)] = &[
    ("kfree_skb", "kfree_skb", "drop reasons"),
    ("tcp_retransmit_skb", "tcp_retransmit_skb", "TCP retransmits"),
    ("inet_sock_set_state", "inet_sock_set_state", "socket state changes"),
    ("sched_wakeup", "sched_wakeup", "run-queue latency"),
    ("sched_wakeup_new", "sched_wakeup_new", "run-queue latency"),
    ("sched_switch", "sched_switch", "run-queue latency"),
    ("block_rq_issue", "block_rq_issue", "block I/O latency"),
    ("block_rq_complete", "block_rq_complete", "block I/O latency"),
];

/// Map key (netns, value): `struct drop_key` in the C program.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PairKey {
    netns: u32,
    value: u32,
}
// SAFETY: two u32, no padding, every bit pattern valid.
unsafe impl Pod for PairKey {}

/// Map key (netns, old, new): `struct state_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct StateKey {
    netns: u32,
    from: u16,
    to: u16,
}
// SAFETY: u32 + two u16, no padding, every bit pattern valid.
unsafe impl Pod for StateKey {}

/// Map key (id, log2 slot): `struct hist_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct HistKey {
    id: u32,
    slot: u32,
}
// SAFETY: two u32, no padding, every bit pattern valid.
unsafe impl Pod for HistKey {}

/// The loaded object and its attached programs; dropping it detaches them all.
pub struct Loaded {
    ebpf: Ebpf,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loaded")
    }
}

/// Loads the object against the running kernel's BTF and attaches every program it can.
/// `Err` when nothing can run (no BTF, no privilege); otherwise the probes that failed, each with its reason.
pub fn load(btf_path: &std::path::Path) -> Result<(Loaded, Vec<String>), String> {
    let btf = Btf::parse_file(btf_path, aya::Endianness::default())
        .map_err(|e| format!("kernel BTF {} unreadable ({e}); a kernel built with CONFIG_DEBUG_INFO_BTF=y has it", btf_path.display()))?;
    let mut ebpf = EbpfLoader::new().btf(Some(&btf)).load(&OBJECT.bytes).map_err(|e| {
        let why = error_chain(&e);
        if why.contains("Operation not permitted") || why.contains("Permission denied") {
            format!("loading needs root, or CAP_BPF with CAP_PERFMON ({why})")
        } else {
            format!("the object did not load: {why}")
        }
    })?;
    let mut failed = Vec::new();
    for (prog, tp, what) in PROGRAMS {
        let r = (|| -> Result<(), String> {
            let p: &mut BtfTracePoint = ebpf.program_mut(prog).ok_or("not in the object")?.try_into().map_err(|e| format!("{e}"))?;
            p.load(tp, &btf).map_err(|e| format!("load: {}", error_chain(&e)))?;
            p.attach().map_err(|e| format!("attach: {}", error_chain(&e)))?;
            Ok(())
        })();
        if let Err(e) = r {
            failed.push(format!("eBPF probe {prog} ({what}) not attached: {e}"));
        }
    }
    Ok((Loaded { ebpf }, failed))
}

/// An error and its sources on one line (aya puts the verifier's words in the source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    // The verifier's log runs to many lines: its first says what failed, its last why.
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first} … {last}"),
    }
}

impl Loaded {
    /// Reads every map once.
    pub fn read(&self) -> Readings {
        let mut r = Readings::default();
        for (k, n) in entries::<PairKey>(&self.ebpf, "drops") {
            r.drops.push((k.netns, k.value, n));
        }
        for (k, n) in entries::<PairKey>(&self.ebpf, "retransmits") {
            r.retransmits.push((k.netns, k.value, n));
        }
        for (k, n) in entries::<StateKey>(&self.ebpf, "transitions") {
            r.transitions.push((k.netns, k.from, k.to, n));
        }
        r.runq = entries::<HistKey>(&self.ebpf, "runq_hist").into_iter().map(|(k, n)| (k.slot, n)).collect();
        let mut bio: BTreeMap<u32, Histogram> = BTreeMap::new();
        for (k, n) in entries::<HistKey>(&self.ebpf, "bio_hist") {
            *bio.entry(k.id).or_default().entry(k.slot).or_default() += n;
        }
        r.bio = bio;
        r
    }

    /// Starts a run-queue histogram of thread `tid` alone (see `thread_runq`).
    pub fn watch_thread(&mut self, tid: u32) -> Result<(), String> {
        let map = self.ebpf.map_mut("runq_watch").ok_or("map runq_watch missing")?;
        let mut m: BpfHashMap<&mut MapData, u32, u32> = BpfHashMap::try_from(map).map_err(|e| e.to_string())?;
        m.insert(tid, 1, 0).map_err(|e| format!("watching thread {tid}: {e}"))
    }

    /// The run-queue delays of a watched thread since it was watched.
    pub fn thread_runq(&self, tid: u32) -> Histogram {
        entries::<HistKey>(&self.ebpf, "runq_tid_hist").into_iter().filter(|(k, _)| k.id == tid).map(|(k, n)| (k.slot, n)).collect()
    }
}

/// Every (key, u64) of a hash map; an unreadable map reads as empty (the snapshot lacks its metrics, nothing fails).
fn entries<K: Pod>(ebpf: &Ebpf, name: &str) -> Vec<(K, u64)> {
    let Some(map) = ebpf.map(name) else { return Vec::new() };
    let Ok(m) = BpfHashMap::<&MapData, K, u64>::try_from(map) else { return Vec::new() };
    m.iter().filter_map(Result::ok).collect()
}
