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
//! | `net/softnet_stat` | sums over CPUs: `softnet.processed`, `.dropped`, `.time_squeeze`, `.received_rps` (10+ columns), `.flow_limit_count` (11+ columns); `softnet.cpus`, the number of rows (a level, although `metric_kind` files every `softnet.*` name as a counter) |
//! | `pressure/{cpu,memory,io}` | `psi.<res>.<some/full>.<avg10/avg60/avg300/total>` |
//! | `loadavg` | `loadavg.1`, `.5`, `.15`, `.runnable`, `.tasks` |
//! | host facts | `HostFacts` and `host.ncpus`, `host.numa_nodes`, `host.mem_total_kb` |
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

use super::snapshot::{HostFacts, Snapshot};
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Failure of a telemetry reader; always names the file, and the line when the text is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An I/O error other than "file not present".
    #[error("{}: {op} failed: {source}", path.display())]
    Io {
        /// File or directory being read.
        path: PathBuf,
        /// What was being done (`open`, `read`, `list`).
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A file the snapshot cannot do without is absent.
    #[error("{}: required file is missing; is this a procfs? (point --proc-root at a directory laid out like /proc)", path.display())]
    Missing {
        /// The absent file.
        path: PathBuf,
    },
    /// A line that does not follow its file's format.
    #[error("{}:{line}: {reason}: {text:?}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
        /// The line (cut to 120 characters).
        text: String,
    },
}

impl TelemetryError {
    /// The file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            TelemetryError::Io { path, .. } | TelemetryError::Missing { path } | TelemetryError::Malformed { path, .. } => path,
        }
    }
}

/// Builds a `Malformed` error for line `line` (1-based) of `path`.
pub(crate) fn malformed(path: &Path, line: usize, reason: impl Into<String>, text: &str) -> TelemetryError {
    let text: String = text.chars().take(120).collect();
    TelemetryError::Malformed { path: path.to_path_buf(), line, reason: reason.into(), text }
}

/// One pair of step one: `section.field = value`, borrowing the file's text (`section` is empty for flat files).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawEntry<'a> {
    /// Section (`TcpExt`, `TCP`, `some`), or empty for flat files (meminfo, vmstat).
    pub section: &'a str,
    /// Field name as the kernel spells it.
    pub field: &'a str,
    /// The number.
    pub value: f64,
}

/// Step one of parsing: a file's key → value pairs in file order, borrowing its text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawMap<'a> {
    /// The pairs.
    pub entries: Vec<RawEntry<'a>>,
}

impl<'a> RawMap<'a> {
    fn with_capacity(n: usize) -> Self {
        Self { entries: Vec::with_capacity(n) }
    }

    fn push(&mut self, section: &'a str, field: &'a str, value: f64) {
        self.entries.push(RawEntry { section, field, value });
    }

    /// The value of `section.field` (`section` empty for flat files), if present.
    pub fn get(&self, section: &str, field: &str) -> Option<f64> {
        self.entries.iter().find(|e| e.section == section && e.field == field).map(|e| e.value)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Step two: appends `prefix.section.field` (or `prefix.field`) metrics to `out`.
    pub fn emit(&self, prefix: &str, out: &mut Vec<(String, f64)>) {
        for e in &self.entries {
            let mut name = String::with_capacity(prefix.len() + e.section.len() + e.field.len() + 2);
            name.push_str(prefix);
            name.push('.');
            if !e.section.is_empty() {
                name.push_str(e.section);
                name.push('.');
            }
            name.push_str(e.field);
            out.push((name, e.value));
        }
    }
}

/// Parses a number as the kernel prints it: decimal integers (the fast, common case), negatives, decimals.
pub(crate) fn parse_num(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= 19 && b.iter().all(u8::is_ascii_digit) {
        // At most 19 digits cannot overflow a u64.
        let mut v: u64 = 0;
        for &c in b {
            v = v * 10 + (c - b'0') as u64;
        }
        return Some(v as f64);
    }
    // Rare: negatives (snmp Tcp MaxConn -1), decimals (PSI, loadavg), 20-digit counters.
    // Rust's float parser also accepts "inf" and "nan", which no kernel prints: refuse them.
    let first = *b.first()?;
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Lines of `text` with 1-based numbers, skipping blank lines.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty())
}

/// `/proc/meminfo`: `Field:   value [kB]` per line.
pub fn parse_meminfo<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(64);
    for (n, line) in numbered_lines(text) {
        let (key, rest) = line.split_once(':').ok_or_else(|| malformed(path, n, "expected `Field: value [kB]`", line))?;
        let mut toks = rest.split_ascii_whitespace();
        let v = toks.next().and_then(parse_num).ok_or_else(|| malformed(path, n, "expected a number after the colon", line))?;
        match toks.next() {
            None | Some("kB") if toks.next().is_none() => {}
            _ => return Err(malformed(path, n, "expected at most a `kB` unit after the number", line)),
        }
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(malformed(path, n, "expected a field name without spaces before the colon", line));
        }
        m.push("", key, v);
    }
    Ok(m)
}

/// Flat keyed files: `key value` per line (`/proc/vmstat`, cgroup `cpu.stat`, `memory.stat`, `memory.events`).
pub fn parse_flat_keyed<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(200);
    for (n, line) in numbered_lines(text) {
        let mut toks = line.split_ascii_whitespace();
        let (Some(key), Some(val), None) = (toks.next(), toks.next(), toks.next()) else {
            return Err(malformed(path, n, "expected `key value`", line));
        };
        let v = parse_num(val).ok_or_else(|| malformed(path, n, format!("value of {key} is not a number"), line))?;
        m.push("", key, v);
    }
    Ok(m)
}

/// `/proc/vmstat`: `key value` per line.
pub fn parse_vmstat<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    parse_flat_keyed(text, path)
}

/// `/proc/net/netstat` and `/proc/net/snmp`: pairs of `Section: names...` / `Section: values...` lines.
///
/// Fields are matched by the header, never by position: each kernel adds
/// fields (and `snmp` has `IcmpMsg` only once an ICMP message was seen).
pub fn parse_header_value_pairs<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(256);
    let mut lines = numbered_lines(text);
    while let Some((hn, header)) = lines.next() {
        let (hsec, hnames) = header.split_once(':').ok_or_else(|| malformed(path, hn, "expected a `Section: Field ...` header line", header))?;
        let Some((vn, values)) = lines.next() else {
            return Err(malformed(path, hn, format!("header line of {hsec} has no value line after it"), header));
        };
        let (vsec, vvals) = values.split_once(':').ok_or_else(|| malformed(path, vn, format!("expected the `{hsec}: values ...` line"), values))?;
        if vsec != hsec {
            return Err(malformed(path, vn, format!("value line is for section {vsec}, but the header above it is for {hsec}"), values));
        }
        let mut names = hnames.split_ascii_whitespace();
        let mut vals = vvals.split_ascii_whitespace();
        loop {
            match (names.next(), vals.next()) {
                (Some(name), Some(val)) => {
                    let v = parse_num(val).ok_or_else(|| malformed(path, vn, format!("value of {hsec}.{name} is not a number: {val:?}"), values))?;
                    m.push(hsec, name, v);
                }
                (None, None) => break,
                _ => {
                    let (h, v) = (hnames.split_ascii_whitespace().count(), vvals.split_ascii_whitespace().count());
                    return Err(malformed(path, vn, format!("{hsec} has {h} field names but {v} values"), values));
                }
            }
        }
    }
    Ok(m)
}

/// `/proc/net/sockstat`: `Section: key value key value ...` per line.
pub fn parse_sockstat<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(16);
    for (n, line) in numbered_lines(text) {
        let (sec, rest) = line.split_once(':').ok_or_else(|| malformed(path, n, "expected `Section: key value ...`", line))?;
        let mut toks = rest.split_ascii_whitespace();
        while let Some(key) = toks.next() {
            let val = toks.next().ok_or_else(|| malformed(path, n, format!("{sec}.{key} has no value"), line))?;
            let v = parse_num(val).ok_or_else(|| malformed(path, n, format!("value of {sec}.{key} is not a number"), line))?;
            m.push(sec.trim(), key, v);
        }
    }
    Ok(m)
}

/// `/proc/net/softnet_stat`: per-CPU rows of hex columns, summed over CPUs.
///
/// Layouts seen: 9 columns (before 2.6.35), 10 (+ received_rps), 11 (+
/// flow_limit_count, 3.11), 13 (+ backlog length and CPU index, 5.10) and 15
/// (+ input and process queue lengths, 6.x). Rows narrower than 9 columns, or
/// narrower or wider than the first row, are malformed (a torn or corrupted
/// file); columns beyond 15 are ignored.
pub fn parse_softnet(text: &str, path: &Path) -> Result<RawMap<'static>, TelemetryError> {
    let mut sums = [0u64; 5];
    let (mut rows, mut width) = (0u64, None);
    for (n, line) in numbered_lines(text) {
        let mut cols = 0usize;
        for tok in line.split_ascii_whitespace() {
            let v = u64::from_str_radix(tok, 16).map_err(|_| malformed(path, n, format!("column {} is not hexadecimal", cols + 1), line))?;
            let slot = match cols {
                0 => Some(0),
                1 => Some(1),
                2 => Some(2),
                9 => Some(3),
                10 => Some(4),
                _ => None,
            };
            if let Some(s) = slot {
                sums[s] = sums[s].wrapping_add(v);
            }
            cols += 1;
        }
        if cols < 9 {
            return Err(malformed(path, n, format!("{cols} columns; every kernel prints at least 9"), line));
        }
        match width {
            None => width = Some(cols),
            Some(w) if w != cols => return Err(malformed(path, n, format!("{cols} columns, but the first row has {w}"), line)),
            _ => {}
        }
        rows += 1;
    }
    let mut m = RawMap::with_capacity(6);
    if rows == 0 {
        return Ok(m);
    }
    let w = width.unwrap_or(0);
    m.push("", "processed", sums[0] as f64);
    m.push("", "dropped", sums[1] as f64);
    m.push("", "time_squeeze", sums[2] as f64);
    if w >= 10 {
        m.push("", "received_rps", sums[3] as f64);
    }
    if w >= 11 {
        m.push("", "flow_limit_count", sums[4] as f64);
    }
    m.push("", "cpus", rows as f64);
    Ok(m)
}

/// `/proc/pressure/*` and cgroup `*.pressure`: `some avg10=.. avg60=.. avg300=.. total=..` (and `full ...`).
pub fn parse_psi<'a>(text: &'a str, path: &Path) -> Result<RawMap<'a>, TelemetryError> {
    let mut m = RawMap::with_capacity(8);
    for (n, line) in numbered_lines(text) {
        let mut toks = line.split_ascii_whitespace();
        let kind = toks.next().unwrap_or_default();
        let mut any = false;
        for tok in toks {
            let (k, v) = tok.split_once('=').ok_or_else(|| malformed(path, n, format!("expected key=value, found {tok:?}"), line))?;
            let v = parse_num(v).ok_or_else(|| malformed(path, n, format!("value of {kind}.{k} is not a number"), line))?;
            m.push(kind, k, v);
            any = true;
        }
        if !any {
            return Err(malformed(path, n, "expected `some|full avg10=.. avg60=.. avg300=.. total=..`", line));
        }
    }
    Ok(m)
}

/// `/proc/loadavg`: `1.00 0.50 0.25 runnable/tasks last_pid`.
pub fn parse_loadavg(text: &str, path: &Path) -> Result<RawMap<'static>, TelemetryError> {
    let mut m = RawMap::with_capacity(5);
    let Some((n, line)) = numbered_lines(text).next() else {
        return Err(malformed(path, 1, "empty file; expected `1.00 0.50 0.25 runnable/tasks last_pid`", ""));
    };
    let toks: Vec<&str> = line.split_ascii_whitespace().collect();
    let bad = || malformed(path, n, "expected `1.00 0.50 0.25 runnable/tasks last_pid`", line);
    if toks.len() < 4 {
        return Err(bad());
    }
    for (name, tok) in ["1", "5", "15"].into_iter().zip(&toks) {
        m.push("", name, parse_num(tok).ok_or_else(bad)?);
    }
    let (run, tasks) = toks[3].split_once('/').ok_or_else(bad)?;
    m.push("", "runnable", parse_num(run).ok_or_else(bad)?);
    m.push("", "tasks", parse_num(tasks).ok_or_else(bad)?);
    Ok(m)
}

/// Counts CPUs in a sysfs CPU list (`0-3,8,10-11`).
pub fn count_cpu_list(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    let mut n = 0u32;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                n += b.checked_sub(a)? + 1;
            }
            None => {
                part.trim().parse::<u32>().ok()?;
                n += 1;
            }
        }
    }
    Some(n)
}

/// What to do with the text of each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Meminfo,
    Vmstat,
    HeaderPairs,
    Sockstat,
    Softnet,
    Psi,
    Loadavg,
}

/// One file of the snapshot: path under the proc root, metric prefix, format.
struct Source {
    rel: &'static str,
    prefix: &'static str,
    kind: Kind,
}

/// In the order of their metric prefixes, so that the metrics of a snapshot
/// come out already sorted (after the `host.*` ones) and the metric map is
/// built without a real sort.
const SOURCES: [Source; 10] = [
    Source { rel: "loadavg", prefix: "loadavg", kind: Kind::Loadavg },
    Source { rel: "meminfo", prefix: "meminfo", kind: Kind::Meminfo },
    Source { rel: "net/netstat", prefix: "netstat", kind: Kind::HeaderPairs },
    Source { rel: "pressure/cpu", prefix: "psi.cpu", kind: Kind::Psi },
    Source { rel: "pressure/io", prefix: "psi.io", kind: Kind::Psi },
    Source { rel: "pressure/memory", prefix: "psi.memory", kind: Kind::Psi },
    Source { rel: "net/snmp", prefix: "snmp", kind: Kind::HeaderPairs },
    Source { rel: "net/sockstat", prefix: "sockstat", kind: Kind::Sockstat },
    Source { rel: "net/softnet_stat", prefix: "softnet", kind: Kind::Softnet },
    Source { rel: "vmstat", prefix: "vmstat", kind: Kind::Vmstat },
];

/// The files one snapshot reads, relative to the proc root (host facts aside); benchmarks read the same list.
pub const SNAPSHOT_FILES: [&str; 10] = {
    let mut out = [""; 10];
    let mut i = 0;
    while i < SOURCES.len() {
        out[i] = SOURCES[i].rel;
        i += 1;
    }
    out
};

/// Index of `meminfo` in `SOURCES`: the one file a snapshot requires.
const MEMINFO: usize = 1;

/// Errors that mean "this file has no data here", not "something is wrong".
pub(crate) fn is_absent(e: &io::Error) -> bool {
    // EOPNOTSUPP: PSI compiled in but disabled (psi=0), or a cgroup with cgroup.pressure=0.
    // ENODEV: a cgroup removed between listing and reading.
    e.kind() == io::ErrorKind::NotFound || matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::ENODEV))
}

/// Largest single read request. Small on purpose: on `/proc/sys` the kernel
/// allocates and zeroes a buffer the size of each request (perf-facts.md),
/// and seq_file files hand out at most their own page-sized buffer per read
/// anyway.
pub(crate) const READ_CHUNK: usize = 4096;

/// A reusable read buffer: one allocation per snapshot, grown in 4 KiB steps.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    buf: Vec<u8>,
    len: usize,
}

impl Scratch {
    /// A buffer that holds the largest snapshot file without growing.
    pub(crate) fn new() -> Self {
        Self { buf: vec![0; 4 * READ_CHUNK], len: 0 }
    }

    /// Reads `f` to the end, from its current position (`pread == false`) or with `pread` from offset 0.
    pub(crate) fn fill(&mut self, f: &File, pread: bool) -> io::Result<()> {
        self.len = 0;
        loop {
            if self.buf.len() - self.len < READ_CHUNK {
                self.buf.resize(self.buf.len() + READ_CHUNK, 0);
            }
            let dst = &mut self.buf[self.len..self.len + READ_CHUNK];
            // Read until a read returns 0: a short read is not the end of a
            // seq_file with many records (softnet_stat on a large machine):
            // the kernel stops at its page-sized buffer.
            let r = if pread { f.read_at(dst, self.len as u64) } else { (&*f).read(dst) };
            match r {
                Ok(0) => return Ok(()),
                Ok(n) => self.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The bytes read, as text (lossless for the ASCII files of `/proc`; anything else fails the line that holds it).
    pub(crate) fn text(&self) -> Cow<'_, str> {
        let b = &self.buf[..self.len];
        // from_utf8 is much faster than the lossy decoder on the valid text we always get.
        match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(b),
        }
    }
}

/// Reads a small file (sysfs, `/proc/sys`) with small reads; `Ok(None)` when it is absent.
pub(crate) fn read_small(path: &Path, scratch: &mut Scratch) -> Result<Option<String>, TelemetryError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(TelemetryError::Io { path: path.to_path_buf(), op: "open", source: e }),
    };
    match scratch.fill(&f, false) {
        Ok(()) => Ok(Some(scratch.text().into_owned())),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(TelemetryError::Io { path: path.to_path_buf(), op: "read", source: e }),
    }
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

/// The keys one source had last time, with their metric names in sorted order.
///
/// A kernel prints the same keys in the same order snapshot after snapshot,
/// so the names are formatted and sorted once and then only cloned: the
/// check that the layout is unchanged costs one comparison per key, where
/// formatting and sorting ~600 names cost about 30 % of a snapshot.
#[derive(Debug, Default)]
struct LayoutCache {
    keys: Vec<(Box<str>, Box<str>)>,
    /// (index into the `RawMap`, metric name), sorted by name.
    sorted: Vec<(usize, String)>,
}

/// String equality without a `memcmp` call: for keys of a few bytes the call
/// costs more than the comparison (it was a sixth of a snapshot in a profile).
#[inline]
fn eq_short(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

impl LayoutCache {
    /// Appends the metrics of `raw` in name order, rebuilding the cache if the layout changed.
    fn emit(&mut self, raw: &RawMap<'_>, prefix: &str, out: &mut Vec<(String, f64)>) {
        let same = self.keys.len() == raw.len() && self.keys.iter().zip(&raw.entries).all(|(k, e)| eq_short(&k.0, e.section) && eq_short(&k.1, e.field));
        if !same {
            self.keys = raw.entries.iter().map(|e| (e.section.into(), e.field.into())).collect();
            let mut named = Vec::with_capacity(raw.len());
            raw.emit(prefix, &mut named);
            self.sorted = named.into_iter().enumerate().map(|(i, (name, _))| (i, name)).collect();
            self.sorted.sort_by(|a, b| a.1.cmp(&b.1));
        }
        out.extend(self.sorted.iter().map(|(i, name)| (name.clone(), raw.entries[*i].value)));
    }
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
        Self { proc_root: proc_root.into(), sys_root: sys_root.into(), open: None, facts: OnceLock::new(), layouts }
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
        let path = || self.proc_root.join(SOURCES[i].rel);
        let res = match &self.open {
            Some(files) => match &files[i] {
                Some(f) => scratch.fill(f, true),
                None => return Ok(false),
            },
            None => match File::open(path()) {
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
    fn read_metrics(&self, scratch: &mut Scratch, out: &mut Vec<(String, f64)>) -> Result<Option<u32>, TelemetryError> {
        let mut softnet_cpus = None;
        // Poisoning cannot leave a cache wrong (each is rebuilt whole), so a poisoned lock is used as is.
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        for (i, src) in SOURCES.iter().enumerate() {
            if !self.read_source(i, scratch)? {
                if i == MEMINFO {
                    return Err(TelemetryError::Missing { path: self.proc_root.join(src.rel) });
                }
                continue;
            }
            let text = scratch.text();
            let path = || self.proc_root.join(src.rel);
            let raw = match src.kind {
                Kind::Meminfo => parse_meminfo(&text, &path())?,
                Kind::Vmstat => parse_vmstat(&text, &path())?,
                Kind::HeaderPairs => parse_header_value_pairs(&text, &path())?,
                Kind::Sockstat => parse_sockstat(&text, &path())?,
                Kind::Softnet => {
                    let raw = parse_softnet(&text, &path())?;
                    softnet_cpus = raw.get("", "cpus").map(|v| v as u32);
                    raw
                }
                Kind::Psi => parse_psi(&text, &path())?,
                Kind::Loadavg => parse_loadavg(&text, &path())?,
            };
            layouts[i].emit(&raw, src.prefix, out);
        }
        Ok(softnet_cpus)
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

    /// One snapshot at `timestamp_ms` (the caller's clock: readers never read it).
    pub fn snapshot(&self, timestamp_ms: u64) -> Result<Snapshot, TelemetryError> {
        let mut scratch = Scratch::new();
        // host.* sort first: their slots are filled once meminfo has been read.
        let mut metrics = Vec::with_capacity(800);
        for name in ["host.mem_total_kb", "host.ncpus", "host.numa_nodes"] {
            metrics.push((name.to_string(), 0.0));
        }
        let softnet_cpus = self.read_metrics(&mut scratch, &mut metrics)?;
        let facts = match self.facts.get() {
            Some(f) => f,
            None => {
                let f = self.static_facts(&mut scratch)?;
                self.facts.get_or_init(|| f)
            }
        };
        let mem_total_kb = metrics.iter().find(|(k, _)| k == "meminfo.MemTotal").map(|(_, v)| *v as u64).unwrap_or(0);
        let host = HostFacts {
            hostname: facts.hostname.clone(),
            kernel_release: facts.kernel_release.clone(),
            boot_id: facts.boot_id.clone(),
            ncpus: facts.ncpus.or(softnet_cpus).unwrap_or(0),
            mem_total_kb,
            numa_nodes: facts.numa_nodes,
        };
        metrics[0].1 = host.mem_total_kb as f64;
        metrics[1].1 = host.ncpus as f64;
        metrics[2].1 = host.numa_nodes as f64;
        let mut snap = Snapshot::new(host, timestamp_ms);
        // Collecting sorts (a single pass over input that is already sorted) and builds the tree in bulk.
        snap.metrics = metrics.into_iter().collect();
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc").join(name)
    }

    fn read_fixture(name: &str) -> Snapshot {
        let root = fixture(name);
        ProcReader::with_roots(root.join("proc"), root.join("sys")).snapshot(1_000).unwrap()
    }

    /// A fake `/proc` + `/sys` in a temp dir, seeded from a fixture.
    struct TestProcfs {
        dir: tempfile::TempDir,
    }

    impl TestProcfs {
        fn from_fixture(name: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            copy_tree(&fixture(name), dir.path());
            Self { dir }
        }
        fn proc(&self) -> PathBuf {
            self.dir.path().join("proc")
        }
        fn write(&self, rel: &str, text: &str) {
            let p = self.proc().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        fn remove(&self, rel: &str) {
            let p = self.proc().join(rel);
            if p.is_dir() { fs::remove_dir_all(p).unwrap() } else { fs::remove_file(p).unwrap() }
        }
        fn reader(&self) -> ProcReader {
            ProcReader::with_roots(self.proc(), self.dir.path().join("sys"))
        }
        fn err(&self) -> String {
            self.reader().snapshot(0).unwrap_err().to_string()
        }
    }

    fn copy_tree(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy_tree(&e.path(), &to.join(e.file_name()));
            } else {
                fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    #[test]
    fn live_fixture_6_18_parses_every_file() {
        let s = read_fixture("6.18-live");
        assert_eq!(s.host.kernel_release, "6.18.44-fc-v669");
        assert_eq!(s.host.ncpus, 2);
        assert_eq!(s.host.numa_nodes, 1);
        assert_eq!(s.host.boot_id.len(), 36);
        assert!(s.host.mem_total_kb > 1_000_000);
        assert_eq!(s.get("host.mem_total_kb"), Some(s.host.mem_total_kb as f64));
        assert_eq!(s.get("meminfo.MemTotal"), Some(s.host.mem_total_kb as f64));
        assert!(s.get("meminfo.Dirty").is_some());
        assert!(s.get("meminfo.Active(anon)").is_some());
        assert!(s.get("vmstat.nr_dirty").is_some());
        assert!(s.get("vmstat.pgscan_direct").is_some());
        assert!(s.get("netstat.TcpExt.ListenOverflows").is_some());
        assert!(s.get("netstat.TcpExt.PAWSOldAck").is_some(), "a 6.x-only TcpExt field");
        assert!(s.get("netstat.IpExt.InOctets").is_some());
        assert!(s.get("netstat.MPTcpExt.MPCapableSYNRX").is_some());
        assert_eq!(s.get("snmp.Tcp.MaxConn"), Some(-1.0));
        assert!(s.get("snmp.Tcp.RetransSegs").is_some());
        assert!(s.get("snmp.Udp.RcvbufErrors").is_some());
        assert!(s.get("snmp.Ip.OutTransmits").is_some());
        assert!(s.get("sockstat.TCP.inuse").is_some());
        assert!(s.get("sockstat.TCP.mem").is_some());
        assert!(s.get("sockstat.sockets.used").is_some());
        assert_eq!(s.get("softnet.cpus"), Some(2.0));
        assert_eq!(s.get("softnet.processed"), Some((0x0d + 0xc27) as f64));
        assert_eq!(s.get("softnet.flow_limit_count"), Some(0.0));
        assert!(s.get("softnet.received_rps").is_some());
        for res in ["cpu", "memory", "io"] {
            for kind in ["some", "full"] {
                for f in ["avg10", "avg60", "avg300", "total"] {
                    assert!(s.get(&format!("psi.{res}.{kind}.{f}")).is_some(), "psi.{res}.{kind}.{f}");
                }
            }
        }
        assert!(s.get("loadavg.1").is_some());
        assert!(s.get("loadavg.tasks").unwrap() >= 1.0);
        assert_eq!(s.get("host.ncpus"), Some(2.0));
        assert!(s.metrics.len() > 500, "{} metrics", s.metrics.len());
    }

    #[test]
    fn older_layout_4_19_without_psi() {
        let s = read_fixture("4.19-nopsi");
        assert_eq!(s.host.kernel_release, "4.19.0-27-amd64");
        assert_eq!(s.host.ncpus, 4);
        assert_eq!(s.host.numa_nodes, 2);
        assert_eq!(s.host.mem_total_kb, 16_393_876);
        assert!(s.metrics.keys().all(|k| !k.starts_with("psi.")), "no PSI before 4.20");
        assert!(s.get("netstat.TcpExt.ListenOverflows").is_some());
        assert_eq!(s.get("netstat.TcpExt.PAWSOldAck"), None, "absent on 4.19, not zero");
        assert_eq!(s.get("netstat.MPTcpExt.MPCapableSYNRX"), None);
        assert_eq!(s.get("snmp.Udp.MemErrors"), None);
        assert!(s.get("snmp.Udp.RcvbufErrors").is_some());
        assert_eq!(s.get("meminfo.KReclaimable"), None);
        // 10-column softnet_stat: received_rps but no flow_limit_count.
        assert_eq!(s.get("softnet.cpus"), Some(4.0));
        assert!(s.get("softnet.received_rps").is_some());
        assert_eq!(s.get("softnet.flow_limit_count"), None);
        assert_eq!(s.get("softnet.dropped"), Some((0x1f + 0x2 + 0x11) as f64), "summed over the 4 rows");
    }

    #[test]
    fn live_proc_of_this_machine() {
        let r = ProcReader::new();
        let a = r.snapshot(0).unwrap();
        assert!(a.host.mem_total_kb > 0);
        assert!(a.host.ncpus >= 1);
        assert!(!a.host.kernel_release.is_empty());
        assert!(a.get("vmstat.nr_free_pages").is_some());
        let kept = ProcReader::new().keep_open().unwrap();
        let b = kept.snapshot(1).unwrap();
        let c = kept.snapshot(2).unwrap();
        // Same files, same names, whichever way they are read.
        let names = |s: &Snapshot| s.metrics.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&b), names(&c));
        assert!(names(&a).iter().filter(|n| !names(&b).contains(n)).count() == 0, "kept-open lost metrics");
        assert!(c.get("softnet.processed").unwrap() >= b.get("softnet.processed").unwrap());
    }

    #[test]
    fn metrics_come_out_sorted_so_the_map_builds_without_a_real_sort() {
        for (proc_root, sys_root) in [(fixture("6.18-live").join("proc"), fixture("6.18-live").join("sys")), ("/proc".into(), "/sys".into())] {
            let r = ProcReader::with_roots(proc_root, sys_root);
            for _ in 0..2 {
                let mut out = vec![("host.zzz".to_string(), 0.0)];
                r.read_metrics(&mut Scratch::new(), &mut out).unwrap();
                assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", out.windows(2).find(|w| w[0].0 >= w[1].0));
            }
        }
    }

    #[test]
    fn layout_cache_follows_a_changed_layout() {
        let t = TestProcfs::from_fixture("6.18-live");
        let r = t.reader();
        assert!(r.snapshot(0).unwrap().get("vmstat.nr_dirty").is_some());
        t.write("vmstat", "pgfault 5\nnr_dirty 7\n");
        let s = r.snapshot(1).unwrap();
        assert_eq!((s.get("vmstat.nr_dirty"), s.get("vmstat.pgfault"), s.get("vmstat.nr_free_pages")), (Some(7.0), Some(5.0), None));
        t.write("vmstat", "pgfault 6\nnr_dirtx 8\n");
        let s = r.snapshot(2).unwrap();
        assert_eq!((s.get("vmstat.nr_dirty"), s.get("vmstat.nr_dirtx")), (None, Some(8.0)));
    }

    #[test]
    fn kept_open_matches_open_read_close_on_fixtures() {
        let root = fixture("6.18-live");
        let a = ProcReader::with_roots(root.join("proc"), root.join("sys")).snapshot(5).unwrap();
        let kept = ProcReader::with_roots(root.join("proc"), root.join("sys")).keep_open().unwrap();
        assert_eq!(kept.snapshot(5).unwrap(), a);
        assert_eq!(kept.snapshot(5).unwrap(), a, "the second pread from offset 0 reads the same");
    }

    #[test]
    fn missing_meminfo_is_fatal_other_files_are_not() {
        let t = TestProcfs::from_fixture("6.18-live");
        t.remove("net/sockstat");
        t.remove("net/softnet_stat");
        let s = t.reader().snapshot(0).unwrap();
        assert!(s.metrics.keys().all(|k| !k.starts_with("sockstat.") && !k.starts_with("softnet.")));
        assert_eq!(s.host.ncpus, 2, "from sysfs");
        t.remove("meminfo");
        let e = t.err();
        assert!(e.contains("meminfo: required file is missing"), "{e}");
        let e = t.reader().keep_open().unwrap_err().to_string();
        assert!(e.contains("meminfo: required file is missing"), "{e}");
    }

    #[test]
    fn absent_psi_is_no_data() {
        let t = TestProcfs::from_fixture("6.18-live");
        t.remove("pressure");
        let s = t.reader().snapshot(0).unwrap();
        assert!(s.metrics.keys().all(|k| !k.starts_with("psi.")));
        assert!(s.get("meminfo.MemTotal").is_some());
        let s = t.reader().keep_open().unwrap().snapshot(0).unwrap();
        assert!(s.metrics.keys().all(|k| !k.starts_with("psi.")));
        // One resource only (an old kernel had no cpu "full" line: also fine).
        t.write("pressure/io", "some avg10=1.50 avg60=0.00 avg300=0.00 total=10\n");
        let s = t.reader().snapshot(0).unwrap();
        assert_eq!(s.get("psi.io.some.avg10"), Some(1.5));
        assert_eq!(s.get("psi.io.full.avg10"), None);
        assert_eq!(s.get("psi.cpu.some.avg10"), None);
    }

    #[test]
    fn eopnotsupp_counts_as_absent() {
        assert!(is_absent(&io::Error::from_raw_os_error(libc::EOPNOTSUPP)));
        assert!(is_absent(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(!is_absent(&io::Error::from_raw_os_error(libc::EACCES)));
    }

    fn check_malformed(rel: &str, text: &str, want: &str) {
        let t = TestProcfs::from_fixture("6.18-live");
        t.write(rel, text);
        let e = t.err();
        assert!(e.contains(want), "{rel}: got {e:?}, want {want:?}");
        let e = t.reader().keep_open().unwrap().snapshot(0).unwrap_err().to_string();
        assert!(e.contains(want), "{rel} kept open: got {e:?}, want {want:?}");
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        check_malformed("meminfo", "MemTotal: 100 kB\nMemFree 100 kB\n", "meminfo:2: expected `Field: value [kB]`");
        check_malformed("meminfo", "MemTotal: 100 kB\nDirty: lots kB\n", "meminfo:2: expected a number");
        check_malformed("vmstat", "nr_dirty 1\n\nnr_writeback 2 3\n", "vmstat:3: expected `key value`");
        check_malformed("vmstat", "nr_dirty x1\n", "vmstat:1: value of nr_dirty is not a number");
        check_malformed("net/netstat", "TcpExt: A B\nTcpExt: 1\n", "netstat:2: TcpExt has 2 field names but 1 values");
        check_malformed("net/netstat", "TcpExt: A B\nIpExt: 1 2\n", "netstat:2: value line is for section IpExt");
        check_malformed("net/snmp", "Tcp: A B\nTcp: 1 2\nUdp: A\n", "snmp:3: header line of Udp has no value line");
        check_malformed("net/snmp", "Tcp: A B\nTcp: 1 nan\n", "snmp:2: value of Tcp.B is not a number");
        check_malformed("net/sockstat", "TCP: inuse 1 orphan\n", "sockstat:1: TCP.orphan has no value");
        check_malformed(
            "net/softnet_stat",
            "0000000d 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\nzz\n",
            "softnet_stat:2: column 1 is not hexadecimal",
        );
        check_malformed("pressure/io", "some avg10=0.00 avg60\n", "io:1: expected key=value");
        check_malformed("loadavg", "0.1 0.2\n", "loadavg:1: expected `1.00 0.50 0.25 runnable/tasks last_pid`");
    }

    #[test]
    fn error_carries_the_path() {
        let t = TestProcfs::from_fixture("6.18-live");
        t.write("vmstat", "nr_dirty\n");
        let e = t.reader().snapshot(0).unwrap_err();
        assert_eq!(e.path(), t.proc().join("vmstat"));
        assert!(matches!(e, TelemetryError::Malformed { line: 1, .. }));
    }

    fn softnet(text: &str) -> Result<RawMap<'static>, String> {
        parse_softnet(text, Path::new("/proc/net/softnet_stat")).map_err(|e| e.to_string())
    }

    fn row(cols: usize, v: u32) -> String {
        (0..cols).map(|i| format!("{:08x}", if i < 3 || i == 9 || i == 10 { v } else { 0 })).collect::<Vec<_>>().join(" ") + "\n"
    }

    #[test]
    fn softnet_layouts_9_to_15_columns() {
        // 9 columns (before 2.6.35): the three classic counters, nothing else.
        let m = softnet(&(row(9, 1) + &row(9, 2))).unwrap();
        assert_eq!((m.get("", "processed"), m.get("", "dropped"), m.get("", "time_squeeze")), (Some(3.0), Some(3.0), Some(3.0)));
        assert_eq!(m.get("", "received_rps"), None);
        assert_eq!(m.get("", "flow_limit_count"), None);
        assert_eq!(m.get("", "cpus"), Some(2.0));
        let m = softnet(&row(10, 0x10)).unwrap();
        assert_eq!((m.get("", "received_rps"), m.get("", "flow_limit_count")), (Some(16.0), None));
        for cols in [11, 13, 15, 17] {
            let m = softnet(&(row(cols, 1) + &row(cols, 1) + &row(cols, 1))).unwrap();
            assert_eq!(m.get("", "flow_limit_count"), Some(3.0), "{cols} columns");
            assert_eq!(m.get("", "cpus"), Some(3.0));
        }
        assert_eq!(softnet("").unwrap().len(), 0);
    }

    #[test]
    fn softnet_torn_rows_are_malformed() {
        let e = softnet(&(row(15, 1) + &row(9, 1))).unwrap_err();
        assert!(e.contains("softnet_stat:2: 9 columns, but the first row has 15"), "{e}");
        let e = softnet(&(row(10, 1) + &row(8, 1))).unwrap_err();
        assert!(e.contains("softnet_stat:2: 8 columns; every kernel prints at least 9"), "{e}");
    }

    #[test]
    fn header_value_pairs_are_matched_by_name() {
        let text = "TcpExt: ListenDrops ListenOverflows\nTcpExt: 7 5\nIpExt: InOctets\nIpExt: 99\n";
        let m = parse_header_value_pairs(text, Path::new("netstat")).unwrap();
        assert_eq!(m.get("TcpExt", "ListenOverflows"), Some(5.0));
        assert_eq!(m.get("TcpExt", "ListenDrops"), Some(7.0));
        assert_eq!(m.get("IpExt", "InOctets"), Some(99.0));
        let mut out = Vec::new();
        m.emit("netstat", &mut out);
        assert_eq!(out[1], ("netstat.TcpExt.ListenOverflows".to_string(), 5.0));
    }

    #[test]
    fn numbers_as_the_kernel_prints_them() {
        assert_eq!(parse_num("18446744073709551615"), Some(18446744073709551615u64 as f64));
        assert_eq!(parse_num("1234567890123456789"), Some(1234567890123456789u64 as f64));
        assert_eq!(parse_num("-1"), Some(-1.0));
        assert_eq!(parse_num("0.76"), Some(0.76));
        assert_eq!(parse_num("inf"), None);
        assert_eq!(parse_num("NaN"), None);
        assert_eq!(parse_num(""), None);
        assert_eq!(parse_num("12kB"), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-1\n"), Some(2));
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("x"), None);
    }

    #[test]
    fn snapshot_file_list_matches_perf_facts() {
        assert_eq!(SNAPSHOT_FILES[MEMINFO], "meminfo");
        assert!(SNAPSHOT_FILES.contains(&"net/softnet_stat") && SNAPSHOT_FILES.contains(&"pressure/io"));
    }
}
