//! The bounded per-process scan behind the limits that bind per process or
//! per user: open files against the process's own `RLIMIT_NOFILE`, memory
//! mappings against `vm.max_map_count`, inotify instances and watches per
//! user against `fs.inotify.max_user_*`. Each result names who is at the
//! limit (pid, comm, uid) from `/proc/PID/...`. It decides nothing.
//!
//! # What it costs, and the caps that bound it (`ScanCaps`)
//!
//! Per process: `status` and `limits` (about 1.5 KiB each) and one listing
//! of `fd/`. Then one `readlink` per descriptor, to find inotify instances,
//! and for each of those its `fdinfo` (one line per watch). `maps` is read
//! only for the few processes that can be near `max_map_count`: every
//! mapping spans at least one page, so a process whose `VmSize` is under
//! half of `max_map_count` pages has fewer than half that many mappings and
//! is skipped without reading; of the rest, the `max_maps_procs` largest by
//! `VmSize` are counted.
//!
//! * `max_procs` (4096): processes looked at, in `/proc` order;
//! * `max_fd_links` (65536): `readlink` calls over the whole scan;
//! * `max_maps_procs` (8): processes whose `maps` are counted;
//! * `max_bytes` (64 MiB): bytes of `fdinfo` and `maps` read over the whole scan.
//!
//! When the process, `readlink` or byte cap is reached the counts are lower
//! bounds and `scan.truncated` is 1; candidates for a `maps` count past
//! `max_maps_procs` are counted in `proc.maps.skipped`. `benches/limits.rs` prints the cost of one scan on this machine.
//! Without root, other users' `fd/` cannot be listed: those processes are
//! counted in `scan.unreadable` and contribute nothing.
//!
//! # Metrics (`ScanReport::metrics`)
//!
//! | metric | meaning |
//! |---|---|
//! | `scan.procs`, `scan.unreadable`, `scan.truncated`, `scan.bytes`, `scan.fd_links` | the scan's own cost and coverage |
//! | `proc.threads.total` | threads of every process listed, kernel threads included: the PIDs in use in the PID namespace the proc root shows (against `kernel.pid_max`, per PID namespace since 6.14) |
//! | `proc.fd.top.open`, `.soft_limit`, `.hard_limit`, `.pid`, `.uid` | the process nearest its own open-file limit (largest open ÷ soft `RLIMIT_NOFILE`) |
//! | `proc.maps.top.count`, `.pid`, `.uid`; `proc.maps.checked`, `proc.maps.skipped` | the process with the most mappings among those counted; how many were counted, and how many could be near the limit by their `VmSize` but were past `max_maps_procs` |
//! | `inotify.instances.top.count`, `.uid`, `.pid` | the user holding the most inotify instances, and its process holding the most |
//! | `inotify.watches.top.count`, `.uid`, `.pid` | the user holding the most inotify watches, and its process holding the most |
//! | `inotify.instances.total`, `inotify.watches.total` | over every user scanned |
//!
//! All are gauges. The `.pid` and `.uid` gauges exist so a finding's
//! evidence names who is at the limit; `ScanReport` also has the `comm`.
//! When nobody holds any (no inotify instance, no process whose `VmSize`
//! allows half of `max_map_count`), the `.top` gauges are 0 with pid 0: a
//! measured "none", so the symptoms read "not present", not "no data".

use super::procfs::{PidStatus, Rlimit, TelemetryError, is_absent, is_inotify_link, parse_nofile_limit, parse_pid_status};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The bounds of one scan (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanCaps {
    /// Processes looked at.
    pub max_procs: usize,
    /// `readlink` calls on `fd/*` over the whole scan.
    pub max_fd_links: usize,
    /// Processes whose `maps` are counted.
    pub max_maps_procs: usize,
    /// Bytes of `fdinfo` and `maps` read over the whole scan.
    pub max_bytes: u64,
}

impl Default for ScanCaps {
    fn default() -> Self {
        Self { max_procs: 4096, max_fd_links: 65536, max_maps_procs: 8, max_bytes: 64 << 20 }
    }
}

/// Who a process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcId {
    /// Process (thread-group) ID as the proc root shows it.
    pub pid: u32,
    /// `comm`.
    pub comm: String,
    /// Effective uid.
    pub uid: u32,
}

/// A process's open files against its own limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdUsage {
    /// The process.
    pub who: ProcId,
    /// Descriptors open (entries of `fd/`).
    pub open: u64,
    /// Its `RLIMIT_NOFILE`.
    pub limit: Rlimit,
}

impl FdUsage {
    /// Open descriptors as a share of the soft limit (0 when unlimited).
    pub fn fill(&self) -> f64 {
        if self.limit.soft == 0 || self.limit.soft == u64::MAX { 0.0 } else { self.open as f64 / self.limit.soft as f64 }
    }
}

/// A process's memory mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsUsage {
    /// The process.
    pub who: ProcId,
    /// Lines of `maps` (one per mapping).
    pub maps: u64,
    /// False when the byte cap cut the read: `maps` is then a lower bound.
    pub complete: bool,
}

/// One user's inotify use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInotify {
    /// Effective uid the instances are charged to.
    pub uid: u32,
    /// Instances held by the user's processes.
    pub instances: u64,
    /// Watches held by the user's processes.
    pub watches: u64,
    /// The user's process holding the most instances, with its count.
    pub top_instances: (ProcId, u64),
    /// The user's process holding the most watches, with its count.
    pub top_watches: (ProcId, u64),
}

/// What one scan found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanReport {
    /// Processes looked at.
    pub procs: usize,
    /// Processes whose `fd/` could not be listed (permissions).
    pub unreadable: usize,
    /// Whether a cap was reached (counts are lower bounds).
    pub truncated: bool,
    /// Bytes of `fdinfo` and `maps` read.
    pub bytes: u64,
    /// `readlink` calls made.
    pub fd_links: usize,
    /// Threads of every process looked at, kernel threads included: the PIDs
    /// in use in the PID namespace the proc root shows (a lower bound when truncated).
    pub threads: u64,
    /// Every process with a finite open-file limit, nearest its limit first.
    pub fds: Vec<FdUsage>,
    /// Processes whose mappings were counted, most first.
    pub maps: Vec<MapsUsage>,
    /// Processes large enough to be near `max_map_count` whose mappings were
    /// not counted (past `max_maps_procs`, smaller `VmSize` than those counted).
    pub maps_skipped: usize,
    /// Inotify use per user.
    pub inotify: BTreeMap<u32, UserInotify>,
}

impl ScanReport {
    /// The process nearest its open-file limit.
    pub fn fd_top(&self) -> Option<&FdUsage> {
        self.fds.first()
    }

    /// The process with the most mappings counted.
    pub fn maps_top(&self) -> Option<&MapsUsage> {
        self.maps.first()
    }

    /// The user with the most inotify watches (lowest uid on a tie).
    pub fn watches_top(&self) -> Option<&UserInotify> {
        self.inotify.values().filter(|u| u.watches > 0).max_by(|a, b| a.watches.cmp(&b.watches).then(b.uid.cmp(&a.uid)))
    }

    /// The user with the most inotify instances (lowest uid on a tie).
    pub fn instances_top(&self) -> Option<&UserInotify> {
        self.inotify.values().max_by(|a, b| a.instances.cmp(&b.instances).then(b.uid.cmp(&a.uid)))
    }

    /// The metrics the module documentation lists, appended to `out`.
    pub fn metrics(&self, out: &mut Vec<(String, f64)>) {
        let mut put = |name: &str, v: f64| out.push((name.to_string(), v));
        put("scan.procs", self.procs as f64);
        put("scan.unreadable", self.unreadable as f64);
        put("scan.truncated", if self.truncated { 1.0 } else { 0.0 });
        put("scan.bytes", self.bytes as f64);
        put("scan.fd_links", self.fd_links as f64);
        put("proc.threads.total", self.threads as f64);
        // Nobody at all is a measured zero, not an absence: the top gauges are
        // then 0 with pid 0 ("no process"), so a symptom reads "not present"
        // rather than "no data".
        let (open, soft, hard, pid, uid) = self.fd_top().map_or((0, 0, 0, 0, 0), |f| (f.open, f.limit.soft, f.limit.hard, f.who.pid, f.who.uid));
        put("proc.fd.top.open", open as f64);
        put("proc.fd.top.soft_limit", soft as f64);
        put("proc.fd.top.hard_limit", hard as f64);
        put("proc.fd.top.pid", pid as f64);
        put("proc.fd.top.uid", uid as f64);
        put("proc.maps.checked", self.maps.len() as f64);
        put("proc.maps.skipped", self.maps_skipped as f64);
        let (maps, pid, uid) = self.maps_top().map_or((0, 0, 0), |m| (m.maps, m.who.pid, m.who.uid));
        put("proc.maps.top.count", maps as f64);
        put("proc.maps.top.pid", pid as f64);
        put("proc.maps.top.uid", uid as f64);
        put("inotify.instances.total", self.inotify.values().map(|u| u.instances).sum::<u64>() as f64);
        put("inotify.watches.total", self.inotify.values().map(|u| u.watches).sum::<u64>() as f64);
        let (n, uid, pid) = self.instances_top().map_or((0, 0, 0), |u| (u.instances, u.uid, u.top_instances.0.pid));
        put("inotify.instances.top.count", n as f64);
        put("inotify.instances.top.uid", uid as f64);
        put("inotify.instances.top.pid", pid as f64);
        let (n, uid, pid) = self.watches_top().map_or((0, 0, 0), |u| (u.watches, u.uid, u.top_watches.0.pid));
        put("inotify.watches.top.count", n as f64);
        put("inotify.watches.top.uid", uid as f64);
        put("inotify.watches.top.pid", pid as f64);
    }
}

/// Errors that mean the process went away while it was read.
fn is_gone(e: &io::Error) -> bool {
    is_absent(e) || e.raw_os_error() == Some(libc::ESRCH)
}

/// Reads a small per-process file whole; `Ok(None)` when the process (or the file) is gone or hidden from us.
fn read_text(path: &Path) -> Result<Option<String>, TelemetryError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if is_gone(&e) || e.kind() == io::ErrorKind::PermissionDenied => Ok(None),
        Err(e) => Err(TelemetryError::Io { path: path.to_path_buf(), op: "read", source: e }),
    }
}

/// Streams `path` through `f` in 64 KiB chunks, at most `*budget` bytes;
/// returns whether the whole file was read (`None`: gone or not readable).
fn stream(path: &Path, budget: &mut u64, mut f: impl FnMut(&[u8])) -> Result<Option<bool>, TelemetryError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if is_gone(&e) || e.kind() == io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(TelemetryError::Io { path: path.to_path_buf(), op: "open", source: e }),
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if *budget == 0 {
            return Ok(Some(false));
        }
        let want = buf.len().min(*budget as usize);
        match file.read(&mut buf[..want]) {
            Ok(0) => return Ok(Some(true)),
            Ok(n) => {
                *budget -= n as u64;
                f(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_gone(&e) => return Ok(None),
            Err(e) => return Err(TelemetryError::Io { path: path.to_path_buf(), op: "read", source: e }),
        }
    }
}

/// Counts lines starting with `prefix` across chunk boundaries.
struct PrefixLines<'p> {
    prefix: &'p [u8],
    /// Bytes of `prefix` matched at the start of the current line; past its length once the line cannot match.
    matched: usize,
    count: u64,
}

impl<'p> PrefixLines<'p> {
    fn new(prefix: &'p [u8]) -> Self {
        Self { prefix, matched: 0, count: 0 }
    }

    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' {
                self.matched = 0;
            } else if self.matched < self.prefix.len() {
                if self.prefix[self.matched] == b {
                    self.matched += 1;
                    if self.matched == self.prefix.len() {
                        self.count += 1;
                    }
                } else {
                    self.matched = usize::MAX;
                }
            }
        }
    }
}

/// What the fd pass found for one process.
struct FdPass {
    open: u64,
    instances: u64,
    watches: u64,
}

/// Counts the descriptors of one process and its inotify instances and watches; `None` when `fd/` cannot be listed.
fn scan_fds(pid_dir: &Path, caps: &ScanCaps, rep: &mut ScanReport, budget: &mut u64) -> Result<Option<FdPass>, TelemetryError> {
    let fd_dir = pid_dir.join("fd");
    let rd = match std::fs::read_dir(&fd_dir) {
        Ok(rd) => rd,
        Err(e) if is_gone(&e) || e.kind() == io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(TelemetryError::Io { path: fd_dir, op: "list", source: e }),
    };
    let mut pass = FdPass { open: 0, instances: 0, watches: 0 };
    for entry in rd {
        let entry = match entry {
            Ok(e) => e,
            // The process exited while it was listed: what was seen stands.
            Err(e) if is_gone(&e) => break,
            Err(e) => return Err(TelemetryError::Io { path: fd_dir, op: "list", source: e }),
        };
        pass.open += 1;
        if rep.fd_links >= caps.max_fd_links {
            rep.truncated = true;
            continue;
        }
        rep.fd_links += 1;
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        if !is_inotify_link(target.as_os_str().as_bytes()) {
            continue;
        }
        pass.instances += 1;
        let mut lines = PrefixLines::new(b"inotify wd:");
        match stream(&pid_dir.join("fdinfo").join(entry.file_name()), budget, |c| lines.feed(c))? {
            Some(false) => rep.truncated = true,
            Some(true) | None => {}
        }
        pass.watches += lines.count;
    }
    Ok(Some(pass))
}

/// Adds one process's inotify use to its user's row.
fn charge_inotify(rep: &mut ScanReport, who: &ProcId, instances: u64, watches: u64) {
    let u = rep.inotify.entry(who.uid).or_insert_with(|| UserInotify { uid: who.uid, instances: 0, watches: 0, top_instances: (who.clone(), 0), top_watches: (who.clone(), 0) });
    u.instances += instances;
    u.watches += watches;
    if instances > u.top_instances.1 {
        u.top_instances = (who.clone(), instances);
    }
    if watches > u.top_watches.1 {
        u.top_watches = (who.clone(), watches);
    }
}

/// Scans the processes under `proc_root` within `caps`. `max_map_count`
/// (the limit in force, when known) sets the `VmSize` floor below which a
/// process cannot be near it, so its `maps` is not read.
pub fn scan(proc_root: &Path, caps: &ScanCaps, max_map_count: Option<u64>) -> Result<ScanReport, TelemetryError> {
    let mut rep = ScanReport::default();
    let mut budget = caps.max_bytes;
    let mut pids: Vec<u32> = match std::fs::read_dir(proc_root) {
        Ok(rd) => rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).collect(),
        Err(e) => return Err(TelemetryError::Io { path: proc_root.to_path_buf(), op: "list", source: e }),
    };
    pids.sort_unstable();
    if pids.len() > caps.max_procs {
        pids.truncate(caps.max_procs);
        rep.truncated = true;
    }
    // (VmSize in KiB, who) of every process that may be near max_map_count.
    let mut map_candidates: Vec<(u64, ProcId)> = Vec::new();
    let page_kb = (page_size() / 1024).max(1);
    let floor_kb = max_map_count.map_or(0, |m| m / 2 * page_kb);
    for pid in pids {
        let dir = proc_root.join(pid.to_string());
        let status_path = dir.join("status");
        let Some(text) = read_text(&status_path)? else { continue };
        let st: PidStatus = parse_pid_status(&text, &status_path)?;
        rep.threads += st.threads.max(1) as u64;
        // Kernel threads have no address space and no descriptors of their own.
        let Some(vm_kb) = st.vm_size_kb else { continue };
        rep.procs += 1;
        let who = ProcId { pid, comm: st.comm, uid: st.euid };
        if vm_kb >= floor_kb {
            map_candidates.push((vm_kb, who.clone()));
        }
        let Some(pass) = scan_fds(&dir, caps, &mut rep, &mut budget)? else {
            rep.unreadable += 1;
            continue;
        };
        if pass.instances > 0 {
            charge_inotify(&mut rep, &who, pass.instances, pass.watches);
        }
        let limits_path = dir.join("limits");
        if let Some(text) = read_text(&limits_path)?
            && let Some(limit) = parse_nofile_limit(&text, &limits_path)?
        {
            rep.fds.push(FdUsage { who, open: pass.open, limit });
        }
    }
    rep.fds.retain(|f| f.fill() > 0.0);
    rep.fds.sort_by(|a, b| b.fill().total_cmp(&a.fill()).then(a.who.pid.cmp(&b.who.pid)));
    map_candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.pid.cmp(&b.1.pid)));
    if map_candidates.len() > caps.max_maps_procs {
        rep.maps_skipped = map_candidates.len() - caps.max_maps_procs;
        map_candidates.truncate(caps.max_maps_procs);
    }
    for (_, who) in map_candidates {
        let mut lines = 0u64;
        let path = proc_root.join(who.pid.to_string()).join("maps");
        let Some(complete) = stream(&path, &mut budget, |c| lines += c.iter().filter(|&&b| b == b'\n').count() as u64)? else { continue };
        rep.truncated |= !complete;
        rep.maps.push(MapsUsage { who, maps: lines, complete });
    }
    rep.maps.sort_by(|a, b| b.maps.cmp(&a.maps).then(a.who.pid.cmp(&b.who.pid)));
    rep.bytes = caps.max_bytes - budget;
    Ok(rep)
}

/// The page size in bytes (a mapping spans at least one page).
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as u64 } else { 4096 }
}

#[cfg(test)]
mod tests;
