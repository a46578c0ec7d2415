//! The limits in force that the enabled symptoms divide by, read from files kept open: a
//! `sysctl.<key>` value, `filenr.allocated`, `conntrack.count`, the `/proc/net/stat` tables
//! (`conntrack.stat.*`, `neigh.*`) and the inotify limits (`inotify.limit.*`, the smaller of the
//! initial and the user namespace's). `telemetry::limits` opens, reads and closes about 25 files
//! per snapshot; an agent at 1 Hz re-reads the few it needs with one `pread` each. A `/proc/sys`
//! file re-read through a kept descriptor shows the value in force now (the kernel formats it on
//! every read), and in the network namespace it was opened in. A sandbox tree (a test's plain
//! directory) is re-opened on every read, since a test may replace its files. A file absent at
//! open (a module not loaded yet) is looked for again every `RETRY_EVERY` samples.

use crate::kb::metric::match_metric;
use crate::telemetry::limits::inotify_limit;
use crate::telemetry::procfs::parse_single_number;
use crate::telemetry::procfs::parse_num;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Samples between two attempts to open a limit file that was absent.
pub const RETRY_EVERY: u32 = 30;

/// How a file's text becomes metrics.
#[derive(Debug, Clone, PartialEq)]
enum Format {
    /// One number, published as this metric.
    Single(String),
    /// `fs/file-nr`: `filenr.allocated`.
    FileNr,
    /// A `/proc/net/stat` table, its columns under this prefix (`neigh.arp_cache`).
    Table(&'static str),
    /// One of the two inotify limits of `inotify.limit.<which>`: index 0 the initial namespace's
    /// `fs.inotify.max_user_*`, 1 the user namespace's `user.max_inotify_*`.
    Inotify(&'static str, usize),
}

/// One file and what it gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    path: PathBuf,
    format: Format,
}

/// The `/proc/net/stat` tables and the prefix of their metrics (as `telemetry::limits` names them).
const TABLES: [(&str, &str); 3] = [("net/stat/nf_conntrack", "conntrack.stat"), ("net/stat/arp_cache", "neigh.arp_cache"), ("net/stat/ndisc_cache", "neigh.ndisc_cache")];

impl Source {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The files that give `metrics` (names or `*` patterns): `sysctl.<key>` under `sysctl_root`, the
/// rest under `proc_root`. Metrics of other families are not limits and are left out.
pub fn sources(metrics: &[String], proc_root: &Path, sysctl_root: &Path) -> Vec<Source> {
    let sys = |key: &str| proc_root.join("sys").join(key.replace('.', "/"));
    let mut out: Vec<Source> = Vec::new();
    let mut add = |s: Source| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for m in metrics {
        if let Some(key) = m.strip_prefix("sysctl.") {
            add(Source { path: sysctl_root.join(key.replace('.', "/")), format: Format::Single(m.clone()) });
        } else if m == "filenr.allocated" {
            add(Source { path: sys("fs.file-nr"), format: Format::FileNr });
        } else if m == "conntrack.count" {
            add(Source { path: sys("net.netfilter.nf_conntrack_count"), format: Format::Single(m.clone()) });
        } else if let Some(which) = m.strip_prefix("inotify.limit.") {
            let (which, initial, own) = match which {
                "watches" => ("watches", "fs.inotify.max_user_watches", "user.max_inotify_watches"),
                "instances" => ("instances", "fs.inotify.max_user_instances", "user.max_inotify_instances"),
                _ => continue,
            };
            add(Source { path: sys(initial), format: Format::Inotify(which, 0) });
            add(Source { path: sys(own), format: Format::Inotify(which, 1) });
        } else {
            for (rel, prefix) in TABLES {
                // `neigh.arp_cache.entries` or a pattern over the table's columns.
                if m.strip_prefix(prefix).is_some_and(|r| r.starts_with('.')) || match_metric(m, &format!("{prefix}.x")).is_some() {
                    add(Source { path: proc_root.join(rel), format: Format::Table(prefix) });
                }
            }
        }
    }
    out
}

/// The limit files, open where they exist.
pub struct LimitFiles {
    files: Vec<(Source, Option<File>)>,
    /// Whether files stay open (a kernel tree) or are opened on each read (a sandbox).
    keep: bool,
    until_retry: u32,
    buf: Vec<u8>,
    /// A table metric's name is built here, so that a steady state allocates none.
    name: String,
    /// A table's column sums, reused.
    sums: Vec<f64>,
}

impl LimitFiles {
    /// Opens `sources`; `keep` false re-opens them on every read (a sandbox tree).
    pub fn open(sources: Vec<Source>, keep: bool) -> LimitFiles {
        let files = sources.into_iter().map(|s| (keep.then(|| File::open(&s.path).ok()).flatten(), s)).map(|(f, s)| (s, f)).collect();
        LimitFiles { files, keep, until_retry: RETRY_EVERY, buf: vec![0; 4096], name: String::new(), sums: Vec::new() }
    }

    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Reads every file and writes its metrics into `out` (existing names are overwritten in
    /// place, so a steady state allocates nothing); a file absent or unreadable leaves its
    /// metrics out, as `telemetry::limits` does.
    pub fn read_into(&mut self, out: &mut BTreeMap<String, f64>) {
        let LimitFiles { files, keep, until_retry, buf, name, sums } = self;
        let keep = *keep;
        let retry = keep && {
            *until_retry = until_retry.saturating_sub(1);
            *until_retry == 0
        };
        if retry {
            *until_retry = RETRY_EVERY;
        }
        let mut inotify: [(&str, [Option<f64>; 2]); 2] = [("watches", [None; 2]), ("instances", [None; 2])];
        for (src, file) in files.iter_mut() {
            if file.is_none() && (retry || !keep) {
                *file = File::open(&src.path).ok();
            }
            let Some(f) = file.as_ref() else {
                remove(out, &src.format);
                continue;
            };
            let text = match read(f, buf) {
                Some(t) => t,
                None => {
                    remove(out, &src.format);
                    continue;
                }
            };
            match &src.format {
                Format::Single(m) => put(out, m, parse_single_number(text, &src.path).ok()),
                Format::FileNr => put(out, "filenr.allocated", file_nr_allocated(text)),
                Format::Table(prefix) => {
                    if let Some(header) = stat_table(text, sums) {
                        for (col, v) in header.split_ascii_whitespace().zip(sums.iter()) {
                            put_prefixed(out, name, prefix, col, *v);
                        }
                    }
                }
                Format::Inotify(which, i) => {
                    if let Some(slot) = inotify.iter_mut().find(|(w, _)| w == which) {
                        slot.1[*i] = parse_single_number(text, &src.path).ok();
                    }
                }
            }
            if !keep {
                *file = None;
            }
        }
        for (which, [a, b]) in inotify {
            if files.iter().any(|(s, _)| matches!(&s.format, Format::Inotify(w, _) if *w == which)) {
                let name = if which == "watches" { "inotify.limit.watches" } else { "inotify.limit.instances" };
                put(out, name, inotify_limit(a, b));
            }
        }
    }
}

/// The whole file from offset 0, as text (`sysctl::store::read_whole`: a read that fills `buf` is
/// repeated from offset 0 with a larger one, since a sysctl read at a later offset is end-of-file).
fn read<'a>(f: &File, buf: &'a mut Vec<u8>) -> Option<&'a str> {
    let n = crate::sysctl::store::read_whole(f, buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()
}

/// `telemetry::procfs::parse_stat_table`'s column values (event counters summed over the CPUs'
/// rows, `entries` from the first, `chainlength` the largest) written into `sums`, reused, and the
/// header naming them; `None` where it gives an error or no column (a table without rows). It
/// allocated a vector per row and per table, 34 allocations a sample with the three tables; this
/// allocates none once `sums` has grown (test `stat_table_agrees_with_parse_stat_table`).
fn stat_table<'a>(text: &'a str, sums: &mut Vec<f64>) -> Option<&'a str> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next()?;
    // One pass over the header: the column count and where `entries` and `chainlength` are.
    let (mut n, mut entries, mut chain) = (0, None, None);
    for c in header.split_ascii_whitespace() {
        if !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        match c {
            "entries" => entries = entries.or(Some(n)),
            "chainlength" => chain = chain.or(Some(n)),
            _ => {}
        }
        n += 1;
    }
    if n == 0 {
        return None;
    }
    // A name repeated in the header (the kernel never prints one) is looked up per column.
    let (dup_entries, dup_chain) = (header.matches("entries").nth(1).is_some(), header.matches("chainlength").nth(1).is_some());
    sums.clear();
    sums.resize(n, 0.0);
    let mut rows = 0usize;
    for line in lines {
        // One pass over each row's bytes (the iterator chains over tokens cost ~70 k instructions
        // a sample for the three tables); `entries` in every row (a first-match column: a
        // second column of that name is summed, as `parse_stat_table` matches it the same way).
        let mut i = 0;
        for tok in line.split_ascii_whitespace() {
            let v = hex(tok)? as f64;
            let slot = sums.get_mut(i)?;
            *slot = if Some(i) == chain || (dup_chain && is_named(header, i, "chainlength")) {
                slot.max(v)
            } else if (Some(i) == entries || (dup_entries && is_named(header, i, "entries"))) && rows > 0 {
                *slot
            } else {
                *slot + v
            };
            i += 1;
        }
        if i != n {
            return None;
        }
        rows += 1;
    }
    (rows > 0).then_some(header)
}

/// Whether column `i` of `header` is named `name`.
fn is_named(header: &str, i: usize, name: &str) -> bool {
    header.split_ascii_whitespace().nth(i) == Some(name)
}

/// `u64::from_str_radix(tok, 16)` without its generic path: an optional `+`, then hex digits.
fn hex(tok: &str) -> Option<u64> {
    let b = tok.as_bytes();
    let digits = match b {
        [b'+', rest @ ..] => rest,
        _ => b,
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        let x = (*d as char).to_digit(16)? as u64;
        v = v.checked_mul(16)?.checked_add(x)?;
    }
    Some(v)
}

/// `parse_file_nr`'s allocated count (`allocated free max`, three whole numbers), without the
/// vector of tokens it collects (an allocation a sample).
fn file_nr_allocated(text: &str) -> Option<f64> {
    let mut toks = text.split_ascii_whitespace();
    let (a, _, m) = (toks.next()?, toks.next()?, toks.next()?);
    if toks.next().is_some() {
        return None;
    }
    parse_num(m)?;
    parse_num(a)
}

/// Sets `name` to `v` (without allocating when it is there), or removes it when `v` is none.
fn put(out: &mut BTreeMap<String, f64>, name: &str, v: Option<f64>) {
    match (out.get_mut(name), v) {
        (Some(slot), Some(v)) => *slot = v,
        (None, Some(v)) => {
            out.insert(name.to_string(), v);
        }
        (_, None) => {
            out.remove(name);
        }
    }
}

/// `put` of `<prefix>.<col>`.
fn put_prefixed(out: &mut BTreeMap<String, f64>, name: &mut String, prefix: &str, col: &str, v: f64) {
    name.clear();
    name.push_str(prefix);
    name.push('.');
    name.push_str(col);
    match out.get_mut(name.as_str()) {
        Some(slot) => *slot = v,
        None => {
            out.insert(name.clone(), v);
        }
    }
}

/// Takes out the metrics of a file that could not be read.
fn remove(out: &mut BTreeMap<String, f64>, format: &Format) {
    match format {
        Format::Single(m) => {
            out.remove(m);
        }
        Format::FileNr => {
            out.remove("filenr.allocated");
        }
        Format::Table(prefix) => out.retain(|k, _| !(k.starts_with(prefix) && k[prefix.len()..].starts_with('.'))),
        Format::Inotify(..) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn check(files: &[(&str, &str)], metrics: &[&str]) -> BTreeMap<String, f64> {
        let d = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let metrics: Vec<String> = metrics.iter().map(|s| s.to_string()).collect();
        let mut lf = LimitFiles::open(sources(&metrics, d.path(), &d.path().join("sys")), true);
        let mut out = BTreeMap::new();
        lf.read_into(&mut out);
        out
    }

    #[test]
    fn each_limit_metric_is_read_from_its_own_file_and_nothing_else() {
        let m = check(
            &[("sys/fs/file-max", "100\n"), ("sys/fs/file-nr", "5\t0\t100\n"), ("sys/fs/inotify/max_user_watches", "8192\n"), ("sys/user/max_inotify_watches", "4096\n"), ("sys/vm/max_map_count", "65530\n"), ("net/stat/arp_cache", "entries  table_fulls\n00000004 00000002\n")],
            &["sysctl.fs.file-max", "filenr.allocated", "inotify.limit.watches", "neigh.arp_cache.entries", "meminfo.MemTotal", "conntrack.count"],
        );
        assert_eq!(m.get("sysctl.fs.file-max"), Some(&100.0));
        assert_eq!(m.get("filenr.allocated"), Some(&5.0));
        assert_eq!(m.get("inotify.limit.watches"), Some(&4096.0), "the smaller of the two namespaces' limits");
        assert_eq!(m.get("neigh.arp_cache.entries"), Some(&4.0));
        // Not asked for: not read. Absent (no conntrack): absent, not zero.
        assert!(!m.contains_key("sysctl.vm.max_map_count") && !m.contains_key("conntrack.count") && !m.contains_key("meminfo.MemTotal"), "{m:?}");
    }

    #[test]
    fn a_kept_open_limit_file_shows_the_value_in_force_now() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("fs")).unwrap();
        let p = d.path().join("fs/file-max");
        std::fs::write(&p, "100\n").unwrap();
        let mut lf = LimitFiles::open(sources(&["sysctl.fs.file-max".to_string()], d.path(), d.path()), true);
        let mut out = BTreeMap::new();
        lf.read_into(&mut out);
        assert_eq!(out["sysctl.fs.file-max"], 100.0);
        // Rewritten in place, as the kernel's files are: the kept descriptor reads the new value.
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().write_all_at(b"250\n", 0).unwrap();
        lf.read_into(&mut out);
        assert_eq!(out["sysctl.fs.file-max"], 250.0);
        // On the live kernel too (read only).
        let mut lf = LimitFiles::open(sources(&["sysctl.kernel.pid_max".to_string()], Path::new("/proc"), Path::new("/proc/sys")), true);
        lf.read_into(&mut out);
        let want: f64 = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
        assert_eq!(out["sysctl.kernel.pid_max"], want);
    }

    #[test]
    fn file_nr_allocated_agrees_with_parse_file_nr() {
        use crate::telemetry::procfs::parse_file_nr;
        for t in ["594\t0\t2466239\n", "1 2\n", "1 2 3 4\n", "x 0 9\n", "5 x 9\n", "5 0 y\n", "", "  7   0   9  "] {
            assert_eq!(file_nr_allocated(t), parse_file_nr(t, Path::new("f")).ok().map(|v| v.0), "{t:?}");
        }
    }

    #[test]
    fn stat_table_agrees_with_parse_stat_table() {
        use crate::telemetry::procfs::parse_stat_table;
        let mut texts: Vec<String> = ["nf_conntrack", "arp_cache", "ndisc_cache"].iter().filter_map(|t| std::fs::read_to_string(Path::new("/proc/net/stat").join(t)).ok()).collect();
        texts.extend(
            [
                "entries  searches found chainlength\n00000004 00000002 0000000a 00000003\n00000004 00000001 00000001 00000007\n",
                "entries table_fulls\n",
                "",
                "\n\n",
                "entries table-fulls\n00000001 00000002\n",
                "entries table_fulls\n00000001\n",
                "entries table_fulls\n0000000g 00000001\n",
                "a b\n  \n 1 2 \n ff ff\n",
                "entries x\n+1 +\n",
                "entries x\n+1F aB\n",
                "entries x\n1 ffffffffffffffff\n",
                "entries x\n1 10000000000000000\n",
                "entries x\n1 -1\n",
                "entries chainlength entries chainlength\n1 2 3 4\n5 6 7 8\n9 1 1 1\n",
                "x entries y\n1 2 3\n4 5 6\n7 8\n",
                "x entries y\n1 2 3\n4 5 6 7\n",
            ]
            .map(String::from),
        );
        let mut sums = Vec::new();
        for t in &texts {
            let want: Vec<(&str, f64)> = parse_stat_table(t, Path::new("t")).unwrap_or_default();
            let got: Vec<(&str, f64)> = stat_table(t, &mut sums).map(|h| h.split_ascii_whitespace().zip(sums.iter().copied()).collect()).unwrap_or_default();
            assert_eq!(got, want, "{t:?}");
        }
    }

    #[test]
    fn a_limit_file_absent_at_start_is_found_later() {
        let d = tempfile::tempdir().unwrap();
        let mut lf = LimitFiles::open(sources(&["conntrack.count".to_string()], d.path(), d.path()), true);
        let mut out = BTreeMap::new();
        lf.read_into(&mut out);
        assert!(out.is_empty());
        std::fs::create_dir_all(d.path().join("sys/net/netfilter")).unwrap();
        std::fs::write(d.path().join("sys/net/netfilter/nf_conntrack_count"), "12\n").unwrap();
        for _ in 0..RETRY_EVERY {
            lf.read_into(&mut out);
        }
        assert_eq!(out.get("conntrack.count"), Some(&12.0));
    }
}
