//! Reader of cgroup accounting: it owns finding the cgroup hierarchies
//! through `/proc/self/mountinfo` and the text of the cgroup files it reads.
//! It decides nothing.
//!
//! # Where the hierarchies are
//!
//! The last visible `cgroup2` mount is the unified hierarchy, wherever it is
//! (`/sys/fs/cgroup` on pure v2 hosts, `/sys/fs/cgroup/unified` on hybrid
//! ones, absent on v1-only hosts). Each v1 mount (`fstype cgroup`) carries its
//! controllers in its super options (`rw,cpu,cpuacct`). A mount hidden by a
//! later mount over the same point is ignored. Mount points are absolute on
//! the host; they are read below the reader's roots: a point under `/sys`
//! below `sys_root`, any other point below the parent of `sys_root` (which is
//! `/` for the live host and the fixture directory in tests).
//!
//! # What is read
//!
//! cgroup2, the root and its direct children (sorted by name, at most
//! `max_children`, 64 by default): `cpu.stat` (usage_usec, nr_throttled,
//! throttled_usec), `memory.current`, `memory.stat` (anon, file, file_dirty,
//! file_writeback, pgmajfault), `memory.events` (oom, oom_kill, high, max),
//! and `cpu.pressure`, `memory.pressure`, `io.pressure` (some/full avg10 and
//! total). cgroup v1, the root of the hierarchy holding each controller:
//! `memory.usage_in_bytes`, `memory.stat` (hierarchical `total_*` fields) and
//! `cpuacct.usage`. A file absent here (the root cgroup has no
//! `memory.current`; a controller not enabled for a child) gives no metrics.
//!
//! # Metric names
//!
//! `cgroup.<hierarchy>:<path>:<file>.<field>`, where
//!
//! * `<hierarchy>` is empty for cgroup2 and `v1` for cgroup v1;
//! * the path is the cgroup's path relative to the hierarchy root with every
//!   `/` written as `:`, and written with a leading and a trailing `/`, so the
//!   root is a single `:`; inside a path component `%`, `:`, whitespace and
//!   control characters are percent-encoded (`%3A`), so the only `:` in a
//!   name are separators;
//! * `<file>.<field>` is the file and the key inside it (`cpu.stat.usage_usec`,
//!   `io.pressure.some.avg10`), or the file alone for single-value files
//!   (`memory.current`).
//!
//! ```text
//! cgroup.:cpu.stat.usage_usec                         cgroup2 root
//! cgroup.:system.slice:cpu.stat.throttled_usec        cgroup2 /system.slice
//! cgroup.:system.slice:io.pressure.some.avg10
//! cgroup.:user.slice:memory.current
//! cgroup.v1:memory.stat.total_rss                     v1 memory root
//! cgroup.v1:cpuacct.usage                             v1 cpuacct root
//! ```
//!
//! The text up to the first `:` is the hierarchy, the text after the last `:`
//! is `<file>.<field>`, and what lies between is the path: dots in cgroup
//! names (`system.slice`) never make a name ambiguous. `parse_metric_name`
//! inverts `metric_name`; `metric_kind` classifies by `<file>.<field>`.

use super::procfs::{RawMap, Scratch, TelemetryError, is_absent, malformed, parse_flat_keyed, parse_num, parse_psi, read_small};
use super::snapshot::Snapshot;
use std::path::{Path, PathBuf};

/// Default bound on the children of the cgroup2 root that are read.
pub const DEFAULT_MAX_CHILDREN: usize = 64;

/// Which cgroup hierarchy a metric comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// The unified hierarchy (cgroup2).
    V2,
    /// A cgroup v1 controller hierarchy.
    V1,
}

impl Hierarchy {
    fn tag(self) -> &'static str {
        match self {
            Hierarchy::V2 => "",
            Hierarchy::V1 => "v1",
        }
    }
}

/// Percent-encodes the characters a path component may not carry into a metric name.
fn escape_component(c: &str, out: &mut String) {
    for ch in c.chars() {
        if ch == '%' || ch == ':' || ch.is_whitespace() || ch.is_control() {
            let mut b = [0u8; 4];
            for byte in ch.encode_utf8(&mut b).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(ch);
        }
    }
}

fn unescape_component(c: &str) -> Option<String> {
    let b = c.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = c.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The metric name for `leaf` (`cpu.stat.usage_usec`, `memory.current`) of the cgroup at `rel_path` (`""` for the root, `system.slice`).
pub fn metric_name(h: Hierarchy, rel_path: &str, leaf: &str) -> String {
    let mut s = String::with_capacity(8 + rel_path.len() + leaf.len());
    s.push_str("cgroup.");
    s.push_str(h.tag());
    s.push(':');
    for comp in rel_path.split('/').filter(|c| !c.is_empty()) {
        escape_component(comp, &mut s);
        s.push(':');
    }
    s.push_str(leaf);
    s
}

/// A cgroup metric name taken apart: the inverse of `metric_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMetric {
    /// Hierarchy.
    pub hierarchy: Hierarchy,
    /// Path relative to the hierarchy root, `/`-separated, `""` for the root.
    pub rel_path: String,
    /// `<file>.<field>` or `<file>`.
    pub leaf: String,
}

/// Takes a cgroup metric name apart; `None` if it does not follow the convention.
pub fn parse_metric_name(name: &str) -> Option<CgroupMetric> {
    let rest = name.strip_prefix("cgroup.")?;
    let (tag, rest) = rest.split_once(':')?;
    let hierarchy = match tag {
        "" => Hierarchy::V2,
        "v1" => Hierarchy::V1,
        _ => return None,
    };
    let (path, leaf) = rest.rsplit_once(':').unwrap_or(("", rest));
    if leaf.is_empty() {
        return None;
    }
    let comps = path.split(':').filter(|c| !c.is_empty()).map(unescape_component).collect::<Option<Vec<_>>>()?;
    Some(CgroupMetric { hierarchy, rel_path: comps.join("/"), leaf: leaf.to_string() })
}

/// One line of `/proc/self/mountinfo`, the fields this module needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Mount id.
    pub id: u64,
    /// Parent mount id.
    pub parent: u64,
    /// Root of the mount within its filesystem.
    pub root: String,
    /// Mount point (unescaped).
    pub mount_point: String,
    /// Filesystem type (`cgroup2`, `cgroup`, `tmpfs`).
    pub fstype: String,
    /// Per-superblock options (for cgroup v1: the controllers).
    pub super_options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push(((b[i + 1] - b'0') << 6) | ((b[i + 2] - b'0') << 3) | (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/<pid>/mountinfo`.
pub fn parse_mountinfo(text: &str, path: &Path) -> Result<Vec<MountEntry>, TelemetryError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let toks: Vec<&str> = line.split(' ').collect();
        let sep = toks.iter().position(|t| *t == "-");
        let (Some(sep), true) = (sep, toks.len() >= 10) else {
            return Err(malformed(path, n, "expected `id parent maj:min root point options [optional...] - fstype source super_options`", line));
        };
        if sep < 6 || toks.len() < sep + 4 {
            return Err(malformed(path, n, "expected 6 fields, optional fields, `-`, then fstype, source and super options", line));
        }
        let id = toks[0].parse().map_err(|_| malformed(path, n, "mount id is not a number", line))?;
        let parent = toks[1].parse().map_err(|_| malformed(path, n, "parent id is not a number", line))?;
        out.push(MountEntry {
            id,
            parent,
            root: unescape_mount(toks[3]),
            mount_point: unescape_mount(toks[4]),
            fstype: toks[sep + 1].to_string(),
            super_options: toks[sep + 3].to_string(),
        });
    }
    Ok(out)
}

/// Where the cgroup hierarchies are, as paths below the reader's roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLayout {
    /// The cgroup2 (unified) hierarchy, if mounted.
    pub v2: Option<PathBuf>,
    /// cgroup v1 hierarchies: (controllers as in the super options, `cpu,cpuacct`; path).
    pub v1: Vec<(Vec<String>, PathBuf)>,
}

impl CgroupLayout {
    /// The v1 hierarchy holding `controller` (`memory`, `cpuacct`), if mounted.
    pub fn v1_controller(&self, controller: &str) -> Option<&Path> {
        self.v1.iter().find(|(c, _)| c.iter().any(|x| x == controller)).map(|(_, p)| p.as_path())
    }

    /// Finds the hierarchies among `mounts`, resolving mount points below `sys_root` (see the module doc).
    pub fn from_mounts(mounts: &[MountEntry], sys_root: &Path) -> Self {
        // A mount is hidden when a mount listed after it (mountinfo lists mounts in
        // the order they were made) sits on its mount point or on a directory
        // above it, unless that later mount is one of its own ancestors (the
        // root mount is often listed after the mounts under it).
        let is_ancestor = |a: &MountEntry, m: &MountEntry| {
            let mut cur = m.parent;
            for _ in 0..=mounts.len() {
                if cur == a.id {
                    return true;
                }
                match mounts.iter().find(|p| p.id == cur) {
                    Some(p) if p.parent != p.id => cur = p.parent,
                    _ => return false,
                }
            }
            false
        };
        let covers = |above: &str, below: &str| above == "/" || below == above || below.strip_prefix(above).is_some_and(|r| r.starts_with('/'));
        let visible = |i: usize| {
            let m = &mounts[i];
            !mounts[i + 1..].iter().any(|o| covers(&o.mount_point, &m.mount_point) && !is_ancestor(o, m))
        };
        let fs_root = sys_root.parent().unwrap_or(Path::new("/"));
        let resolve = |point: &str| -> PathBuf {
            match point.strip_prefix("/sys") {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => sys_root.join(rest.trim_start_matches('/')),
                _ => fs_root.join(point.trim_start_matches('/')),
            }
        };
        let mut layout = CgroupLayout::default();
        for m in (0..mounts.len()).filter(|&i| visible(i)).map(|i| &mounts[i]) {
            match m.fstype.as_str() {
                "cgroup2" => layout.v2 = Some(resolve(&m.mount_point)),
                "cgroup" => {
                    let ctrls: Vec<String> = m
                        .super_options
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro" | "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode") && !o.contains('='))
                        .map(str::to_string)
                        .collect();
                    if !ctrls.is_empty() && !layout.v1.iter().any(|(c, _)| *c == ctrls) {
                        layout.v1.push((ctrls, resolve(&m.mount_point)));
                    }
                }
                _ => {}
            }
        }
        layout
    }
}

/// cgroup2 `cpu.stat` fields read.
const CPU_STAT_FIELDS: [&str; 3] = ["usage_usec", "nr_throttled", "throttled_usec"];
/// cgroup2 `memory.stat` fields read.
const MEMORY_STAT_FIELDS: [&str; 5] = ["anon", "file", "file_dirty", "file_writeback", "pgmajfault"];
/// cgroup2 `memory.events` fields read.
const MEMORY_EVENTS_FIELDS: [&str; 4] = ["oom", "oom_kill", "high", "max"];
/// PSI fields read from each cgroup `*.pressure` file.
const PRESSURE_FIELDS: [(&str, &str); 4] = [("some", "avg10"), ("some", "total"), ("full", "avg10"), ("full", "total")];
/// cgroup v1 `memory.stat` fields read at the root (hierarchical totals).
const V1_MEMORY_STAT_FIELDS: [&str; 6] = ["total_cache", "total_rss", "total_shmem", "total_dirty", "total_writeback", "total_pgmajfault"];

/// Reader of cgroup accounting below a proc root and a sys root.
#[derive(Debug, Clone)]
pub struct CgroupReader {
    proc_root: PathBuf,
    sys_root: PathBuf,
    max_children: usize,
}

impl Default for CgroupReader {
    fn default() -> Self {
        Self::new()
    }
}

impl CgroupReader {
    /// Reads the host's cgroups (`/proc/self/mountinfo`, `/sys`).
    pub fn new() -> Self {
        Self::with_roots("/proc", "/sys")
    }

    /// Reads a tree laid out like `/proc` and `/sys` (fixtures).
    pub fn with_roots(proc_root: impl Into<PathBuf>, sys_root: impl Into<PathBuf>) -> Self {
        Self { proc_root: proc_root.into(), sys_root: sys_root.into(), max_children: DEFAULT_MAX_CHILDREN }
    }

    /// Reads at most `n` children of the cgroup2 root.
    pub fn with_max_children(mut self, n: usize) -> Self {
        self.max_children = n;
        self
    }

    /// Finds the hierarchies; no `self/mountinfo` means no cgroups, not an error.
    pub fn layout(&self) -> Result<CgroupLayout, TelemetryError> {
        let path = self.proc_root.join("self/mountinfo");
        let mut scratch = Scratch::new();
        let Some(text) = read_small(&path, &mut scratch)? else {
            return Ok(CgroupLayout::default());
        };
        Ok(CgroupLayout::from_mounts(&parse_mountinfo(&text, &path)?, &self.sys_root))
    }

    /// Adds every cgroup metric to `snap` (see the module doc for names).
    pub fn collect_into(&self, snap: &mut Snapshot) -> Result<(), TelemetryError> {
        let layout = self.layout()?;
        let mut out = Vec::new();
        self.read_layout(&layout, &mut out)?;
        snap.metrics.extend(out);
        Ok(())
    }

    /// Every cgroup metric of `layout`, in reading order.
    pub fn read_layout(&self, layout: &CgroupLayout, out: &mut Vec<(String, f64)>) -> Result<(), TelemetryError> {
        let mut scratch = Scratch::new();
        if let Some(root) = &layout.v2 {
            self.read_v2(root, "", &mut scratch, out)?;
            for child in self.children(root)? {
                self.read_v2(&root.join(&child), &child, &mut scratch, out)?;
            }
        }
        if let Some(mem) = layout.v1_controller("memory") {
            let p = mem.join("memory.usage_in_bytes");
            if let Some(v) = read_single(&p, &mut scratch)? {
                out.push((metric_name(Hierarchy::V1, "", "memory.usage_in_bytes"), v));
            }
            let p = mem.join("memory.stat");
            if let Some(text) = read_small(&p, &mut scratch)? {
                pick(&parse_flat_keyed(&text, &p)?, Hierarchy::V1, "", "memory.stat", "", &V1_MEMORY_STAT_FIELDS, out);
            }
        }
        if let Some(acct) = layout.v1_controller("cpuacct") {
            let p = acct.join("cpuacct.usage");
            if let Some(v) = read_single(&p, &mut scratch)? {
                out.push((metric_name(Hierarchy::V1, "", "cpuacct.usage"), v));
            }
        }
        Ok(())
    }

    /// Names of the direct children of `root`, sorted, at most `max_children`.
    fn children(&self, root: &Path) -> Result<Vec<String>, TelemetryError> {
        let rd = match std::fs::read_dir(root) {
            Ok(rd) => rd,
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(TelemetryError::Io { path: root.to_path_buf(), op: "list", source: e }),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| TelemetryError::Io { path: root.to_path_buf(), op: "list", source: e })?;
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        names.truncate(self.max_children);
        Ok(names)
    }

    fn read_v2(&self, dir: &Path, rel: &str, scratch: &mut Scratch, out: &mut Vec<(String, f64)>) -> Result<(), TelemetryError> {
        let h = Hierarchy::V2;
        let p = dir.join("cpu.stat");
        if let Some(text) = read_small(&p, scratch)? {
            pick(&parse_flat_keyed(&text, &p)?, h, rel, "cpu.stat", "", &CPU_STAT_FIELDS, out);
        }
        let p = dir.join("memory.current");
        if let Some(v) = read_single(&p, scratch)? {
            out.push((metric_name(h, rel, "memory.current"), v));
        }
        let p = dir.join("memory.stat");
        if let Some(text) = read_small(&p, scratch)? {
            pick(&parse_flat_keyed(&text, &p)?, h, rel, "memory.stat", "", &MEMORY_STAT_FIELDS, out);
        }
        let p = dir.join("memory.events");
        if let Some(text) = read_small(&p, scratch)? {
            pick(&parse_flat_keyed(&text, &p)?, h, rel, "memory.events", "", &MEMORY_EVENTS_FIELDS, out);
        }
        for file in ["cpu.pressure", "memory.pressure", "io.pressure"] {
            let p = dir.join(file);
            if let Some(text) = read_small(&p, scratch)? {
                let raw = parse_psi(&text, &p)?;
                for (kind, field) in PRESSURE_FIELDS {
                    if let Some(v) = raw.get(kind, field) {
                        out.push((metric_name(h, rel, &format!("{file}.{kind}.{field}")), v));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Appends the wanted `fields` of a flat keyed file.
fn pick(raw: &RawMap<'_>, h: Hierarchy, rel: &str, file: &str, section: &str, fields: &[&str], out: &mut Vec<(String, f64)>) {
    for f in fields {
        if let Some(v) = raw.get(section, f) {
            out.push((metric_name(h, rel, &format!("{file}.{f}")), v));
        }
    }
}

/// Reads a file holding one number (`memory.current`); `Ok(None)` when absent.
fn read_single(path: &Path, scratch: &mut Scratch) -> Result<Option<f64>, TelemetryError> {
    let Some(text) = read_small(path, scratch)? else { return Ok(None) };
    let t = text.trim();
    parse_num(t).map(Some).ok_or_else(|| malformed(path, 1, "expected a single number", t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{MetricKind, metric_kind};
    use std::fs;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc").join(name)
    }

    fn collect(root: &Path) -> Snapshot {
        let mut s = Snapshot::default();
        CgroupReader::with_roots(root.join("proc"), root.join("sys")).collect_into(&mut s).unwrap();
        s
    }

    #[test]
    fn hybrid_layout_of_this_machine_fixture() {
        let root = fixture("6.18-live");
        let r = CgroupReader::with_roots(root.join("proc"), root.join("sys"));
        let l = r.layout().unwrap();
        assert_eq!(l.v2, Some(root.join("sys/fs/cgroup/unified")));
        assert_eq!(l.v1_controller("memory"), Some(root.join("sys/fs/cgroup/memory").as_path()));
        assert_eq!(l.v1_controller("cpuacct"), Some(root.join("sys/fs/cgroup/cpuacct").as_path()));
        assert_eq!(l.v1_controller("systemd"), None, "name=systemd is not a controller");
        let s = collect(&root);
        assert!(s.get("cgroup.:cpu.stat.usage_usec").unwrap() > 0.0);
        assert!(s.get("cgroup.:io.pressure.some.total").is_some());
        assert!(s.get("cgroup.:cpu.pressure.full.avg10").is_some());
        assert_eq!(s.get("cgroup.:memory.current"), None, "the root cgroup has no memory.current");
        assert!(s.get("cgroup.v1:memory.usage_in_bytes").unwrap() > 0.0);
        assert!(s.get("cgroup.v1:memory.stat.total_rss").is_some());
        assert!(s.get("cgroup.v1:cpuacct.usage").unwrap() > 0.0);
    }

    #[test]
    fn v1_only_layout_4_19() {
        let root = fixture("4.19-nopsi");
        let l = CgroupReader::with_roots(root.join("proc"), root.join("sys")).layout().unwrap();
        assert_eq!(l.v2, None);
        assert_eq!(l.v1_controller("cpuacct"), Some(root.join("sys/fs/cgroup/cpu,cpuacct").as_path()));
        let s = collect(&root);
        assert_eq!(s.get("cgroup.v1:memory.usage_in_bytes"), Some(13004111872.0));
        assert_eq!(s.get("cgroup.v1:memory.stat.total_pgmajfault"), Some(1180344.0));
        assert_eq!(s.get("cgroup.v1:cpuacct.usage"), Some(1928374650192.0));
        assert!(s.metrics.keys().all(|k| !k.starts_with("cgroup.:")));
    }

    #[test]
    fn live_cgroups_of_this_machine() {
        let mut s = Snapshot::default();
        CgroupReader::new().collect_into(&mut s).unwrap();
        for k in s.metrics.keys() {
            assert!(parse_metric_name(k).is_some(), "{k}");
        }
    }

    /// A fake pure-v2 host with children, one named awkwardly.
    fn v2_tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = d.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        w(
            "proc/self/mountinfo",
            "26 1 8:1 / / rw - ext4 /dev/sda1 rw\n30 26 0:25 / /sys rw - sysfs sysfs rw\n31 30 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        let cg = "sys/fs/cgroup";
        w(&format!("{cg}/cpu.stat"), "usage_usec 100\nuser_usec 60\nsystem_usec 40\n");
        w(&format!("{cg}/io.pressure"), "some avg10=1.00 avg60=0.00 avg300=0.00 total=5\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=3\n");
        w(&format!("{cg}/cgroup.procs"), "1\n");
        for child in ["system.slice", "user.slice", "a:b c.scope"] {
            w(&format!("{cg}/{child}/cpu.stat"), "usage_usec 7\nuser_usec 4\nsystem_usec 3\nnr_periods 10\nnr_throttled 2\nthrottled_usec 900\n");
            w(&format!("{cg}/{child}/memory.current"), "4096\n");
            w(&format!("{cg}/{child}/memory.stat"), "anon 1024\nfile 2048\nfile_dirty 512\nfile_writeback 0\npgfault 40\npgmajfault 3\n");
            w(&format!("{cg}/{child}/memory.events"), "low 0\nhigh 1\nmax 2\noom 3\noom_kill 4\noom_group_kill 0\n");
        }
        d
    }

    #[test]
    fn v2_root_and_children() {
        let d = v2_tree();
        let s = collect(d.path());
        assert_eq!(s.get("cgroup.:cpu.stat.usage_usec"), Some(100.0));
        assert_eq!(s.get("cgroup.:io.pressure.full.total"), Some(3.0));
        assert_eq!(s.get("cgroup.:io.pressure.some.avg60"), None, "only avg10 and total");
        assert_eq!(s.get("cgroup.:system.slice:cpu.stat.throttled_usec"), Some(900.0));
        assert_eq!(s.get("cgroup.:user.slice:memory.current"), Some(4096.0));
        assert_eq!(s.get("cgroup.:user.slice:memory.stat.file_dirty"), Some(512.0));
        assert_eq!(s.get("cgroup.:user.slice:memory.stat.pgfault"), None, "not in the read list");
        assert_eq!(s.get("cgroup.:system.slice:memory.events.oom_kill"), Some(4.0));
        assert_eq!(s.get("cgroup.:a%3Ab%20c.scope:cpu.stat.nr_throttled"), Some(2.0));
        // Bounded children: the first by name.
        let mut s = Snapshot::default();
        CgroupReader::with_roots(d.path().join("proc"), d.path().join("sys")).with_max_children(1).collect_into(&mut s).unwrap();
        assert!(s.get("cgroup.:a%3Ab%20c.scope:memory.current").is_some());
        assert!(s.get("cgroup.:system.slice:memory.current").is_none());
    }

    #[test]
    fn malformed_cgroup_file_names_file_and_line() {
        let d = v2_tree();
        fs::write(d.path().join("sys/fs/cgroup/user.slice/memory.stat"), "anon 1\nfile\n").unwrap();
        let mut s = Snapshot::default();
        let e = CgroupReader::with_roots(d.path().join("proc"), d.path().join("sys")).collect_into(&mut s).unwrap_err().to_string();
        assert!(e.contains("user.slice/memory.stat:2: expected `key value`"), "{e}");
        fs::write(d.path().join("sys/fs/cgroup/user.slice/memory.stat"), "anon 1\n").unwrap();
        fs::write(d.path().join("sys/fs/cgroup/user.slice/memory.current"), "max\n").unwrap();
        let e = CgroupReader::with_roots(d.path().join("proc"), d.path().join("sys")).collect_into(&mut s).unwrap_err().to_string();
        assert!(e.contains("user.slice/memory.current:1: expected a single number"), "{e}");
        fs::write(d.path().join("proc/self/mountinfo"), "26 1 8:1 / /\n").unwrap();
        let e = CgroupReader::with_roots(d.path().join("proc"), d.path().join("sys")).layout().unwrap_err().to_string();
        assert!(e.contains("mountinfo:1: expected"), "{e}");
    }

    #[test]
    fn no_mountinfo_no_cgroups() {
        let d = tempfile::tempdir().unwrap();
        let r = CgroupReader::with_roots(d.path().join("proc"), d.path().join("sys"));
        assert_eq!(r.layout().unwrap(), CgroupLayout::default());
        let mut s = Snapshot::default();
        r.collect_into(&mut s).unwrap();
        assert!(s.metrics.is_empty());
    }

    fn mounts(text: &str) -> Vec<MountEntry> {
        parse_mountinfo(text, Path::new("mountinfo")).unwrap()
    }

    #[test]
    fn overmounted_hierarchies_are_ignored() {
        // v1 controllers under a tmpfs, then a cgroup2 mounted over /sys/fs/cgroup hides them all.
        let m = mounts(concat!(
            "21 26 0:20 / /sys rw - sysfs sysfs rw\n",
            "30 21 0:25 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n",
            "34 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            "41 30 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
            "50 30 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        ));
        let l = CgroupLayout::from_mounts(&m, Path::new("/sys"));
        assert_eq!(l.v2, Some(PathBuf::from("/sys/fs/cgroup")));
        assert!(l.v1.is_empty());
        // Mount points outside /sys resolve below the parent of the sys root.
        let m = mounts("60 1 0:41 / /cg\\0402 rw shared:3 master:1 - cgroup2 none rw\n");
        assert_eq!(m[0].mount_point, "/cg 2");
        let l = CgroupLayout::from_mounts(&m, Path::new("/tmp/fx/sys"));
        assert_eq!(l.v2, Some(PathBuf::from("/tmp/fx/cg 2")));
        let l = CgroupLayout::from_mounts(&m, Path::new("/sys"));
        assert_eq!(l.v2, Some(PathBuf::from("/cg 2")));
    }

    #[test]
    fn names_are_unambiguous_and_round_trip() {
        for (h, path, leaf, want) in [
            (Hierarchy::V2, "", "cpu.stat.usage_usec", "cgroup.:cpu.stat.usage_usec"),
            (Hierarchy::V2, "system.slice", "cpu.stat.throttled_usec", "cgroup.:system.slice:cpu.stat.throttled_usec"),
            (
                Hierarchy::V2,
                "system.slice/sshd@1-10.0.0.1:22-10.0.0.2:5000.service",
                "memory.current",
                "cgroup.:system.slice:sshd@1-10.0.0.1%3A22-10.0.0.2%3A5000.service:memory.current",
            ),
            (Hierarchy::V2, "cpu.stat", "io.pressure.some.avg10", "cgroup.:cpu.stat:io.pressure.some.avg10"),
            (Hierarchy::V2, "100%", "memory.current", "cgroup.:100%25:memory.current"),
            (Hierarchy::V1, "", "cpuacct.usage", "cgroup.v1:cpuacct.usage"),
        ] {
            let name = metric_name(h, path, leaf);
            assert_eq!(name, want);
            assert_eq!(parse_metric_name(&name), Some(CgroupMetric { hierarchy: h, rel_path: path.to_string(), leaf: leaf.to_string() }), "{name}");
        }
        assert_eq!(parse_metric_name("cgroup.system.slice.cpu.stat.usage_usec"), None);
        assert_eq!(parse_metric_name("cgroup.:system.slice:"), None);
    }

    #[test]
    fn kinds_of_cgroup_metrics() {
        for (name, kind) in [
            ("cgroup.:cpu.stat.usage_usec", MetricKind::Counter),
            ("cgroup.:system.slice:cpu.stat.nr_throttled", MetricKind::Counter),
            ("cgroup.:system.slice:cpu.stat.throttled_usec", MetricKind::Counter),
            ("cgroup.:x.events.y:memory.current", MetricKind::Gauge),
            ("cgroup.:a:memory.stat.anon", MetricKind::Gauge),
            ("cgroup.:a:memory.stat.file_dirty", MetricKind::Gauge),
            ("cgroup.:a:memory.stat.pgmajfault", MetricKind::Counter),
            ("cgroup.:a:memory.events.oom_kill", MetricKind::Counter),
            ("cgroup.:a:io.pressure.some.avg10", MetricKind::Gauge),
            ("cgroup.:a:io.pressure.full.total", MetricKind::Counter),
            ("cgroup.v1:memory.usage_in_bytes", MetricKind::Gauge),
            ("cgroup.v1:memory.stat.total_rss", MetricKind::Gauge),
            ("cgroup.v1:memory.stat.total_pgmajfault", MetricKind::Counter),
            ("cgroup.v1:cpuacct.usage", MetricKind::Counter),
        ] {
            assert_eq!(metric_kind(name), kind, "{name}");
        }
    }
}
