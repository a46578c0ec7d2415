//! Reader of the live host's `/proc` (and the few `/sys` files that say how
//! many CPUs and NUMA nodes it has). It owns the text formats of the files
//! below and turns them into a `Snapshot`; it decides nothing.
//!
//! | file | metrics |
//! |---|---|
//! | `meminfo` (required) | `meminfo.<Field>`, the number as written (kB for most, a count for `HugePages_*`) |
//! | `vmstat` | `vmstat.<field>` |
//! | `net/netstat`, `net/snmp` | `netstat.<Section>.<Field>`, `snmp.<Section>.<Field>`, parsed by header: field positions vary by kernel |
//! | `net/sockstat` | `sockstat.<Section>.<key>` (`sockstat.TCP.mem` is in pages) |
//! | `net/softnet_stat` | sums over CPUs: `softnet.processed`, `.dropped`, `.time_squeeze`, `.received_rps` (10+ columns), `.flow_limit_count` (11+ columns); `softnet.cpus`, the number of rows (a level) |
//! | `pressure/{cpu,memory,io}` | `psi.<res>.<some/full>.<avg10/avg60/avg300/total>` |
//! | `loadavg` | `loadavg.1`, `.5`, `.15`, `.runnable`, `.tasks` |
//! | host facts | `HostFacts` and `host.ncpus`, `host.numa_nodes`, `host.mem_total_kb` |
//! | limits (`telemetry::limits`) | `sysctl.<key>` (the limits in force), `inotify.limit.*`, `filenr.allocated`, `conntrack.*`, `neigh.*` |
//! | process scan (`telemetry::proc_scan`, bounded; off with `without_process_scan`) | `proc.*`, `inotify.{instances,watches}.*`, `scan.*` |
//!
//! Parsing is tolerant and happens in two steps: the raw text becomes a
//! `RawMap` (key → value pairs borrowing the text, no allocation per line),
//! then the pairs become flat metric names in the `Snapshot`. A counter this
//! kernel lacks is absent; a line that does not follow its file's format is a
//! `TelemetryError::Malformed` naming the file and the line. Only a missing
//! `meminfo` is fatal: any other missing file (sockstat in an odd container,
//! `pressure/` on a kernel without PSI) contributes no metrics, and so does a
//! PSI file whose read fails with `EOPNOTSUPP` (PSI compiled in, booted with
//! `psi=0`).
//!
//! Two ways to read, same output: `ProcReader::snapshot` on a fresh reader
//! opens, reads and closes every file; after `ProcReader::keep_open` the files
//! stay open and each snapshot re-reads them with `pread` at offset 0, which
//! perf-facts.md measured at a little over half the cost. Host facts that
//! cannot change while the process lives (hostname, kernel release, boot id,
//! CPU and node counts) are read on the first snapshot and cached.
//!
//! Steady state: `ProcReader::refresh` rewrites a snapshot the caller keeps,
//! equal to what `snapshot` would return. A file whose text differs from its
//! last one only in its numbers is re-read by those alone (`skeleton`), and
//! while no layout changes the map's names are reused and only its values
//! written (`refill`); any other change falls back to the full parse and a
//! fresh map, so the result never depends on which path ran.

use super::limits::read_limits;
use super::proc_scan::{ScanCaps, scan};
use super::snapshot::{HostFacts, SNAPSHOT_SCHEMA_VERSION, Snapshot};
use std::fs::File;
use std::path::{Path, PathBuf};
use layout::{LayoutCache, Template};
use sources::{Kind, SOURCES};
pub use sources::SNAPSHOT_FILES;
use std::sync::{Mutex, OnceLock};

mod files;
mod layout;
mod parse;
mod pid;
mod refill;
mod skeleton;
mod sources;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod refresh_tests;

pub use files::*;
pub use parse::*;
pub use pid::*;

/// Index of `meminfo` in `SOURCES`: the one file a snapshot requires.
const MEMINFO: usize = 1;

/// Whether `root` holds at least one numeric (process) directory.
pub fn has_pid_dir(root: &Path) -> bool {
    std::fs::read_dir(root).map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.file_name().to_str().is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))).unwrap_or(false)
}

/// Facts read once per reader: they cannot change while the process lives (or hardly: hostname, CPU hotplug).
#[derive(Debug, Clone)]
struct StaticFacts {
    hostname: String,
    kernel_release: String,
    boot_id: String,
    ncpus: Option<u32>,
    numa_nodes: u32,
}

/// The number of softnet rows (a CPU count), when softnet_stat was read.
fn softnet_cpus(layouts: &[LayoutCache], present: &[bool; SOURCES.len()]) -> Option<u32> {
    let i = SOURCES.iter().position(|s| s.kind == Kind::Softnet)?;
    if present[i] { layouts[i].value("", "cpus").map(|v| v as u32) } else { None }
}

/// Reader of `/proc` (and `/sys`) that produces `Snapshot`s.
pub struct ProcReader {
    proc_root: PathBuf,
    sys_root: PathBuf,
    /// After `keep_open`: one slot per `SOURCES` entry, `None` for files absent at open time.
    open: Option<Vec<Option<File>>>,
    facts: OnceLock<StaticFacts>,
    /// One per `SOURCES` entry.
    layouts: Mutex<Vec<LayoutCache>>,
    /// Bounds of the per-process limit scan; `None` skips it (`without_process_scan`).
    scan: Option<ScanCaps>,
    /// Where the scan lists processes, when not the proc root (`with_process_scan_root`).
    scan_root: Option<PathBuf>,
    /// One per `SOURCES` entry: whether a snapshot reads it (`with_files`; all by default).
    selected: [bool; SOURCES.len()],
    /// Whether a snapshot reads the limits in force (`without_limits` turns it off).
    limits: bool,
    /// One per `SOURCES` entry: its path under the proc root, joined once (errors name it).
    paths: Vec<PathBuf>,
    /// The last snapshot's map of the `SOURCES` metrics, cloned for the next one while no
    /// layout changes (see `layout::Template`).
    template: Mutex<Option<Template>>,
    /// The read buffer, kept between snapshots: a fresh 16 KiB one per snapshot was a large
    /// allocation that also made the allocator consolidate every small block freed before it.
    scratch: Mutex<Scratch>,
    /// What the last `refresh` left in its caller's map (see `refill`).
    refill: Mutex<refill::Refill>,
}

impl std::fmt::Debug for ProcReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The layout caches hold hundreds of names: leave them out.
        f.debug_struct("ProcReader")
            .field("proc_root", &self.proc_root)
            .field("sys_root", &self.sys_root)
            .field("kept_open", &self.open.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ProcReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcReader {
    /// Reads the host's `/proc` and `/sys`.
    pub fn new() -> Self {
        Self::with_roots("/proc", "/sys")
    }

    /// Reads directories laid out like `/proc` and `/sys` (fixtures, a container's view).
    pub fn with_roots(proc_root: impl Into<PathBuf>, sys_root: impl Into<PathBuf>) -> Self {
        let layouts = Mutex::new(SOURCES.iter().map(|_| LayoutCache::default()).collect());
        let proc_root: PathBuf = proc_root.into();
        let paths = SOURCES.iter().map(|s| proc_root.join(s.rel)).collect();
        Self {
            proc_root,
            sys_root: sys_root.into(),
            open: None,
            facts: OnceLock::new(),
            layouts,
            scan: Some(ScanCaps::default()),
            scan_root: None,
            selected: [true; SOURCES.len()],
            limits: true,
            paths,
            scratch: Mutex::new(Scratch::new()),
            template: Mutex::new(None),
            refill: Mutex::new(refill::Refill::default()),
        }
    }

    /// Reads only `files` of `SNAPSHOT_FILES` (and `meminfo`, which every snapshot needs for
    /// `host.mem_total_kb`): for a caller that needs only some metrics, such as an agent whose
    /// enabled symptoms read two files. Call before `keep_open`, which then opens only these.
    /// A name outside `SNAPSHOT_FILES` is refused, naming it and the valid ones.
    pub fn with_files(mut self, files: &[&str]) -> Result<Self, TelemetryError> {
        let mut selected = [false; SOURCES.len()];
        selected[MEMINFO] = true;
        for f in files {
            let i = SOURCES.iter().position(|s| s.rel == *f).ok_or_else(|| TelemetryError::UnknownFile { name: f.to_string(), valid: SNAPSHOT_FILES.join(", ") })?;
            selected[i] = true;
        }
        self.selected = selected;
        if let Some(open) = &mut self.open {
            for (slot, keep) in open.iter_mut().zip(selected) {
                if !keep {
                    *slot = None;
                }
            }
        }
        Ok(self)
    }

    /// Leaves out the limits in force (`sysctl.*`, `filenr.*`, `inotify.limit.*`, `conntrack.*`,
    /// `neigh.*`: about 25 small files opened per snapshot): for callers whose symptoms divide
    /// by none of them. The process scan then has no `vm.max_map_count` to compare maps with.
    pub fn without_limits(mut self) -> Self {
        self.limits = false;
        self
    }

    /// Leaves out the per-process scan (`proc.*`, `inotify.*` counts, `scan.*`): for
    /// callers that sample many times a second and need only the `/proc` counters.
    /// The host-wide limits (`sysctl.*`, `filenr.*`, `conntrack.*`, `neigh.*`) stay.
    pub fn without_process_scan(mut self) -> Self {
        self.scan = None;
        self
    }

    /// Bounds the per-process scan by `caps` instead of the defaults.
    pub fn with_scan_caps(mut self, caps: ScanCaps) -> Self {
        self.scan = Some(caps);
        self
    }

    /// Lists processes under `root` (`/proc`) instead of the proc root: for a
    /// proc root that is a view holding only some of `/proc`'s files (the
    /// bench's per-namespace views), whose processes are the host's.
    pub fn with_process_scan_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.scan_root = Some(root.into());
        self
    }

    /// The proc root this reader reads.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// The sys root this reader reads.
    pub fn sys_root(&self) -> &Path {
        &self.sys_root
    }

    /// Opens every snapshot file once; later snapshots re-read them with `pread` at offset 0.
    ///
    /// A file absent now stays absent for this reader's life (PSI and
    /// `/proc/net` do not appear on a running kernel). Note that `/proc/net`
    /// files opened here keep showing the network namespace of this moment.
    pub fn keep_open(mut self) -> Result<Self, TelemetryError> {
        let mut files = Vec::with_capacity(SOURCES.len());
        for (i, src) in SOURCES.iter().enumerate() {
            if !self.selected[i] {
                files.push(None);
                continue;
            }
            let path = self.proc_root.join(src.rel);
            match File::open(&path) {
                Ok(f) => files.push(Some(f)),
                Err(e) if is_absent(&e) => {
                    if i == MEMINFO {
                        return Err(TelemetryError::Missing { path });
                    }
                    files.push(None);
                }
                Err(e) => return Err(TelemetryError::Io { path, op: "open", source: e }),
            }
        }
        self.open = Some(files);
        Ok(self)
    }

    /// Whether this reader keeps its files open (see `keep_open`).
    pub fn is_kept_open(&self) -> bool {
        self.open.is_some()
    }

    /// Reads source `i` into `scratch`; `Ok(false)` when it has no data here.
    fn read_source(&self, i: usize, scratch: &mut Scratch) -> Result<bool, TelemetryError> {
        let path = || self.paths[i].clone();
        let res = match &self.open {
            Some(files) => match &files[i] {
                Some(f) => scratch.fill(f, true),
                None => return Ok(false),
            },
            None => match File::open(&self.paths[i]) {
                Ok(f) => scratch.fill(&f, false),
                Err(e) if is_absent(&e) => return Ok(false),
                Err(e) => return Err(TelemetryError::Io { path: path(), op: "open", source: e }),
            },
        };
        match res {
            Ok(()) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(TelemetryError::Io { path: path(), op: "read", source: e }),
        }
    }

    /// Every metric of the snapshot files after `out`'s first entries, sorted
    /// by name within each file; the number of softnet rows (a CPU count).
    #[cfg(test)]
    fn read_metrics(&self, scratch: &mut Scratch, out: &mut Vec<(String, f64)>) -> Result<Option<u32>, TelemetryError> {
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        let present = self.read_sources(scratch, &mut layouts)?;
        for (l, p) in layouts.iter().zip(present) {
            if p {
                l.emit(out);
            }
        }
        Ok(softnet_cpus(&layouts, &present))
    }

    /// Reads and parses every selected file into its layout cache; which of them had data.
    fn read_sources(&self, scratch: &mut Scratch, layouts: &mut [LayoutCache]) -> Result<[bool; SOURCES.len()], TelemetryError> {
        let mut present = [false; SOURCES.len()];
        for (i, src) in SOURCES.iter().enumerate() {
            if !self.selected[i] {
                continue;
            }
            if !self.read_source(i, scratch)? {
                if i == MEMINFO {
                    return Err(TelemetryError::Missing { path: self.proc_root.join(src.rel) });
                }
                continue;
            }
            // The numbers alone when only they changed; else the full parse, which learns the
            // new layout or names what is malformed.
            if !layouts[i].reread(scratch.bytes()) {
                layouts[i].parse(src, &scratch.text(), &self.paths[i])?;
            }
            present[i] = true;
        }
        Ok(present)
    }

    fn static_facts(&self, scratch: &mut Scratch) -> Result<StaticFacts, TelemetryError> {
        let sys = |rel: &str| self.proc_root.join("sys/kernel").join(rel);
        let mut line = |p: PathBuf| -> Result<String, TelemetryError> { Ok(read_small(&p, scratch)?.map(|s| s.trim().to_string()).unwrap_or_default()) };
        let hostname = line(sys("hostname"))?;
        let kernel_release = line(sys("osrelease"))?;
        let boot_id = line(sys("random/boot_id"))?;
        let cpu_online = self.sys_root.join("devices/system/cpu/online");
        let ncpus = match read_small(&cpu_online, scratch)? {
            Some(text) => Some(count_cpu_list(&text).ok_or_else(|| malformed(&cpu_online, 1, "expected a CPU list like 0-3,8", text.trim()))?),
            None => None,
        };
        let node_dir = self.sys_root.join("devices/system/node");
        let numa_nodes = match std::fs::read_dir(&node_dir) {
            Ok(rd) => {
                let mut n = 0u32;
                for entry in rd {
                    let entry = entry.map_err(|e| TelemetryError::Io { path: node_dir.clone(), op: "list", source: e })?;
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.strip_prefix("node").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
                        n += 1;
                    }
                }
                n.max(1)
            }
            // A kernel without CONFIG_NUMA has no node directory and one memory node.
            Err(e) if is_absent(&e) => 1,
            Err(e) => return Err(TelemetryError::Io { path: node_dir, op: "list", source: e }),
        };
        Ok(StaticFacts { hostname, kernel_release, boot_id, ncpus, numa_nodes })
    }

    /// The limits in force and, unless switched off, the per-process scan
    /// (`telemetry::limits`, `telemetry::proc_scan`), appended to `out`.
    fn read_limit_metrics(&self, scratch: &mut Scratch, out: &mut Vec<(String, f64)>) -> Result<(), TelemetryError> {
        let first = out.len();
        if self.limits {
            read_limits(&self.proc_root, scratch, out)?;
        }
        let Some(caps) = &self.scan else { return Ok(()) };
        let root = self.scan_root.as_deref().unwrap_or(&self.proc_root);
        // A directory laid out like /proc without process directories (a
        // fixture, a view) has nothing to scan: no `scan.*` metrics rather
        // than zeros that would read as "nobody holds an inotify instance".
        if !has_pid_dir(root) {
            return Ok(());
        }
        let max_map_count = out[first..].iter().find(|(k, _)| k == "sysctl.vm.max_map_count").map(|(_, v)| *v as u64);
        scan(root, caps, max_map_count)?.metrics(out);
        Ok(())
    }

    /// Reads every selected file, the limits and the scan; the host facts and the `host.*` values.
    fn read_all(&self, scratch: &mut Scratch, layouts: &mut [LayoutCache]) -> Result<Reading<'_>, TelemetryError> {
        let present = self.read_sources(scratch, layouts)?;
        let mut extra = Vec::new();
        self.read_limit_metrics(scratch, &mut extra)?;
        let facts = match self.facts.get() {
            Some(f) => f,
            None => {
                let f = self.static_facts(scratch)?;
                self.facts.get_or_init(|| f)
            }
        };
        let mem_total_kb = layouts[MEMINFO].value("", "MemTotal").map(|v| v as u64).unwrap_or(0);
        let ncpus = facts.ncpus.or(softnet_cpus(layouts, &present)).unwrap_or(0);
        let host_values = [mem_total_kb as f64, ncpus as f64, facts.numa_nodes as f64];
        Ok(Reading { present, extra, facts, ncpus, mem_total_kb, host_values })
    }

    /// One snapshot at `timestamp_ms` (the caller's clock: readers never read it).
    pub fn snapshot(&self, timestamp_ms: u64) -> Result<Snapshot, TelemetryError> {
        // Poisoning cannot leave the buffer wrong (every read refills it), so a poisoned lock is used as is.
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        // Poisoning cannot leave a cache wrong (each is rebuilt whole), so a poisoned lock is used as is.
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        let r = self.read_all(&mut scratch, &mut layouts)?;
        let host = HostFacts {
            hostname: r.facts.hostname.clone(),
            kernel_release: r.facts.kernel_release.clone(),
            boot_id: r.facts.boot_id.clone(),
            ncpus: r.ncpus,
            mem_total_kb: r.mem_total_kb,
            numa_nodes: r.facts.numa_nodes,
        };
        let mut template = self.template.lock().unwrap_or_else(|e| e.into_inner());
        let mut metrics = layout::source_map(&mut template, &layouts, &r.present, r.host_values);
        // The limits and the scan: a few dozen keys, none under a `SOURCES` prefix.
        for (k, v) in r.extra {
            metrics.insert(k, v);
        }
        let mut snap = Snapshot::new(host, timestamp_ms);
        snap.metrics = metrics;
        Ok(snap)
    }

    /// Rewrites `snap` into this reader's snapshot at `timestamp_ms`, equal to what `snapshot`
    /// would return, reusing its metric names: the steady-state read of a sampler, which keeps
    /// one `Snapshot` and refreshes it each tick.
    ///
    /// Cheapest when `snap` is what the last `refresh` of this reader left (no name is allocated
    /// then, only values are written); metrics the caller added since are removed, and any other
    /// snapshot (a fresh `Snapshot::default()`, one the caller took metrics out of, one from
    /// another reader, a layout that changed on the host) is rebuilt whole. On error `snap` is
    /// left as it was.
    pub fn refresh(&self, snap: &mut Snapshot, timestamp_ms: u64) -> Result<(), TelemetryError> {
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        let r = self.read_all(&mut scratch, &mut layouts)?;
        snap.schema_version = SNAPSHOT_SCHEMA_VERSION;
        snap.timestamp_ms = timestamp_ms;
        // clone_from reuses the strings' allocations; the facts rarely change, the copies stay cheap.
        let h = &mut snap.host;
        h.hostname.clone_from(&r.facts.hostname);
        h.kernel_release.clone_from(&r.facts.kernel_release);
        h.boot_id.clone_from(&r.facts.boot_id);
        h.ncpus = r.ncpus;
        h.mem_total_kb = r.mem_total_kb;
        h.numa_nodes = r.facts.numa_nodes;
        let mut template = self.template.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.refill.lock().unwrap_or_else(|e| e.into_inner());
        refill::refill(&mut state, &mut template, &mut snap.metrics, &layouts, &r.present, r.host_values, r.extra);
        Ok(())
    }
}

/// What one read of the files gives, before it becomes a snapshot.
struct Reading<'f> {
    present: [bool; SOURCES.len()],
    /// The limits and the scan: a few dozen keys, none under a `SOURCES` prefix.
    extra: Vec<(String, f64)>,
    facts: &'f StaticFacts,
    ncpus: u32,
    mem_total_kb: u64,
    /// `host.mem_total_kb`, `host.ncpus`, `host.numa_nodes`.
    host_values: [f64; 3],
}
