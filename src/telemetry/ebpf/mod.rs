//! eBPF telemetry from tracepoints: why packets were dropped (`skb:kfree_skb`
//! reasons), TCP retransmits per state, socket state changes, run-queue and
//! block I/O latency. The C programs (bpf/telemetry.bpf.c) aggregate in kernel
//! maps; `Probes::read_into` reads them once per snapshot and adds `ebpf.*`
//! metrics to the same `Snapshot` as every other reader.
//!
//! It degrades, never fails: built without the `ebpf` feature or without clang
//! (build.rs), on a kernel without BTF, without root/CAP_BPF, or when one
//! tracepoint does not attach, the metrics it would give are absent and
//! `Probes::notes` says why, one line per reason.

pub mod btf_enum;
#[cfg(semantos_ebpf_built)]
mod loader;
pub mod readings;

pub use readings::{Histogram, Names, Readings};

use crate::telemetry::snapshot::Snapshot;
use std::path::{Path, PathBuf};

/// Said when build.rs did not compile the programs.
pub const NOT_BUILT: &str = "eBPF probes not built: clang not found at build time (install it with scripts/setup/ebpf.sh and rebuild)";
/// Said when the crate was built without the `ebpf` feature.
pub const FEATURE_OFF: &str = "eBPF probes not built: the ebpf cargo feature was off at build time";

/// Running probes (or none) and what is missing, with the reason.
#[derive(Debug)]
pub struct Probes {
    #[cfg(semantos_ebpf_built)]
    loaded: Option<loader::Loaded>,
    names: Names,
    previous: Option<Readings>,
    notes: Vec<String>,
}

impl Probes {
    /// Loads and attaches what this build and kernel allow, reading BTF and devices under `sys_root` (`/sys`).
    pub fn start(sys_root: &Path) -> Probes {
        let btf_path = sys_root.join("kernel/btf/vmlinux");
        let names = Names { drop_reasons: drop_reason_names(&btf_path), devices: block_devices(&sys_root.join("dev/block")) };
        let mut p = Probes {
            #[cfg(semantos_ebpf_built)]
            loaded: None,
            names,
            previous: None,
            notes: Vec::new(),
        };
        p.attach(&btf_path);
        p
    }

    #[cfg(semantos_ebpf_built)]
    fn attach(&mut self, btf_path: &Path) {
        if !btf_path.exists() {
            self.notes.push(format!("eBPF probes off: {} is missing (the kernel needs CONFIG_DEBUG_INFO_BTF=y)", btf_path.display()));
            return;
        }
        match loader::load(btf_path) {
            Ok((loaded, failed)) => {
                self.loaded = Some(loaded);
                self.notes.extend(failed);
            }
            Err(why) => self.notes.push(format!("eBPF probes off: {why}")),
        }
    }

    #[cfg(not(semantos_ebpf_built))]
    fn attach(&mut self, _btf_path: &Path) {
        self.notes.push(if cfg!(feature = "ebpf") { NOT_BUILT } else { FEATURE_OFF }.to_string());
    }

    /// Whether any program is attached.
    pub fn running(&self) -> bool {
        #[cfg(semantos_ebpf_built)]
        return self.loaded.is_some();
        #[cfg(not(semantos_ebpf_built))]
        false
    }

    /// Why probes or metrics are missing, one line each (empty when all is well).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Reads every map once; `None` when nothing runs.
    pub fn read(&self) -> Option<Readings> {
        #[cfg(semantos_ebpf_built)]
        return self.loaded.as_ref().map(loader::Loaded::read);
        #[cfg(not(semantos_ebpf_built))]
        None
    }

    /// Adds the `ebpf.*` metrics of network namespace `netns` (every one when `None`) to `snap`;
    /// percentiles cover the time since the previous call.
    pub fn read_into(&mut self, snap: &mut Snapshot, netns: Option<u32>) {
        let Some(now) = self.read() else { return };
        for (k, v) in readings::metrics(&now, self.previous.as_ref(), &self.names, netns) {
            snap.set(k, v);
        }
        self.previous = Some(now);
    }

    /// Gives thread `tid` its own run-queue histogram (tests and benches watch one thread among many).
    pub fn watch_thread(&mut self, tid: u32) -> Result<(), String> {
        #[cfg(semantos_ebpf_built)]
        if let Some(l) = self.loaded.as_mut() {
            return l.watch_thread(tid);
        }
        let _ = tid;
        Err("no eBPF probes running".into())
    }

    /// Run-queue delays of a watched thread since `watch_thread`.
    pub fn thread_runq(&self, tid: u32) -> Histogram {
        #[cfg(semantos_ebpf_built)]
        if let Some(l) = self.loaded.as_ref() {
            return l.thread_runq(tid);
        }
        let _ = tid;
        Histogram::new()
    }

    /// The names this kernel gives drop reasons and block devices.
    pub fn names(&self) -> &Names {
        &self.names
    }
}

/// The network namespace inode of `/proc/self/ns/net` (under `proc_root`), the key the programs count under.
pub fn netns_inode(proc_root: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(proc_root.join("self/ns/net")).ok().map(|m| m.ino() as u32)
}

/// `skb_drop_reason` value → metric suffix, from the kernel's BTF; empty when unreadable (drops are then named by number).
pub fn drop_reason_names(btf_path: &Path) -> std::collections::BTreeMap<u32, String> {
    let Ok(bytes) = std::fs::read(btf_path) else { return Default::default() };
    match btf_enum::enum_variants(&bytes, "skb_drop_reason") {
        Ok(Some(v)) => v.into_iter().filter(|(n, _)| (0..=u32::MAX as i64).contains(n)).map(|(n, name)| (n as u32, readings::drop_reason_suffix(&name))).collect(),
        _ => Default::default(),
    }
}

/// `dev_t` (major << 20 | minor) → name, from `<dir>/<major>:<minor>/uevent`'s DEVNAME.
pub fn block_devices(dir: &Path) -> std::collections::BTreeMap<u32, String> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some((maj, min)) = file_name.to_str().and_then(|n| n.split_once(':')) else { continue };
        let (Ok(maj), Ok(min)) = (maj.parse::<u32>(), min.parse::<u32>()) else { continue };
        let uevent: PathBuf = e.path().join("uevent");
        let text = std::fs::read_to_string(&uevent).unwrap_or_default();
        if let Some(name) = text.lines().find_map(|l| l.strip_prefix("DEVNAME=")) {
            out.insert((maj << 20) | min, name.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_device_names_come_from_uevent() {
        let dir = tempfile::tempdir().unwrap();
        for (d, text) in [("254:0", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n"), ("7:1", "DEVNAME=loop1\n"), ("junk", "DEVNAME=x\n")] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("uevent"), text).unwrap();
        }
        let m = block_devices(dir.path());
        assert_eq!(m.get(&(254 << 20)), Some(&"vda".to_string()));
        assert_eq!(m.get(&((7 << 20) | 1)), Some(&"loop1".to_string()));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn a_sys_tree_without_btf_says_why_and_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Probes::start(dir.path());
        assert!(!p.running());
        assert_eq!(p.notes().len(), 1, "{:?}", p.notes());
        let n = &p.notes()[0];
        assert!(n.contains("vmlinux is missing") || n.contains("not built"), "{n}");
        let mut s = Snapshot::new(Default::default(), 0);
        p.read_into(&mut s, None);
        assert!(s.metrics.is_empty());
    }
}
