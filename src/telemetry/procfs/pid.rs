//! Parsers of the per-process files under `/proc/PID/` that the limit scan
//! reads: `status` (who the process is and how large its address space is),
//! `limits` (its `RLIMIT_NOFILE`), an inotify descriptor's `fdinfo` (its
//! watches) and `maps` (its mappings). Pure functions over text; the scan in
//! `telemetry::proc_scan` does the reading.

use super::{TelemetryError, malformed, parse_num};
use std::path::Path;

/// What the scan needs from `/proc/PID/status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PidStatus {
    /// `Name:`, the command name (`comm`, at most 15 bytes).
    pub comm: String,
    /// Effective uid (second field of `Uid:`): inotify charges instances and watches to it.
    pub euid: u32,
    /// `VmSize:` in KiB; `None` for kernel threads, which have no address space.
    pub vm_size_kb: Option<u64>,
    /// `Threads:`.
    pub threads: u32,
}

/// Parses `/proc/PID/status`. `Name` and `Uid` are required; the rest are optional.
pub fn parse_pid_status(text: &str, path: &Path) -> Result<PidStatus, TelemetryError> {
    let mut st = PidStatus::default();
    let (mut name, mut uid) = (false, false);
    for (i, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        match key {
            // The name is the rest of the line after one tab: it may hold spaces.
            "Name" => {
                st.comm = rest.strip_prefix('\t').unwrap_or(rest).to_string();
                name = true;
            }
            "Uid" => {
                let euid = rest.split_ascii_whitespace().nth(1).and_then(|t| t.parse::<u32>().ok());
                st.euid = euid.ok_or_else(|| malformed(path, i + 1, "expected `Uid: real effective saved fs`", line))?;
                uid = true;
            }
            "VmSize" => {
                let kb = rest.split_ascii_whitespace().next().and_then(|t| t.parse::<u64>().ok());
                st.vm_size_kb = Some(kb.ok_or_else(|| malformed(path, i + 1, "expected `VmSize: <number> kB`", line))?);
            }
            "Threads" => {
                st.threads = rest.trim().parse().map_err(|_| malformed(path, i + 1, "expected `Threads: <number>`", line))?;
            }
            _ => {}
        }
    }
    if !(name && uid) {
        return Err(malformed(path, 1, "no `Name:` or no `Uid:` line; is this a /proc/PID/status file?", text.lines().next().unwrap_or("")));
    }
    Ok(st)
}

/// A resource limit's soft and hard values; `u64::MAX` stands for `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit: the one the kernel enforces.
    pub soft: u64,
    /// Hard limit: the ceiling the process may raise its soft limit to.
    pub hard: u64,
}

/// The `Max open files` line of `/proc/PID/limits` (`RLIMIT_NOFILE`); `Ok(None)` when the line is absent.
pub fn parse_nofile_limit(text: &str, path: &Path) -> Result<Option<Rlimit>, TelemetryError> {
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("Max open files") else { continue };
        let mut toks = rest.split_ascii_whitespace();
        let mut next = || match toks.next() {
            Some("unlimited") => Some(u64::MAX),
            Some(t) => t.parse::<u64>().ok(),
            None => None,
        };
        let (Some(soft), Some(hard)) = (next(), next()) else {
            return Err(malformed(path, i + 1, "expected `Max open files <soft> <hard> files`", line));
        };
        return Ok(Some(Rlimit { soft, hard }));
    }
    Ok(None)
}

/// The number of inotify watches an inotify descriptor's `fdinfo` lists (one `inotify wd:` line each).
pub fn count_inotify_watches(fdinfo: &str) -> u64 {
    fdinfo.lines().filter(|l| l.starts_with("inotify wd:")).count() as u64
}

/// Whether a descriptor's link target (`readlink /proc/PID/fd/N`) is an inotify instance.
pub fn is_inotify_link(target: &[u8]) -> bool {
    target == b"anon_inode:inotify"
}

/// A single number in a `/proc/sys` file (`nf_conntrack_count`, `max_map_count`).
pub fn parse_single_number(text: &str, path: &Path) -> Result<f64, TelemetryError> {
    let t = text.trim();
    parse_num(t).ok_or_else(|| malformed(path, 1, "expected one number", t))
}

/// `/proc/sys/fs/file-nr`: `allocated  free  max` (free is always 0 since 2.6).
pub fn parse_file_nr(text: &str, path: &Path) -> Result<(f64, f64), TelemetryError> {
    let toks: Vec<&str> = text.split_ascii_whitespace().collect();
    let bad = || malformed(path, 1, "expected `allocated free max`", text.trim());
    if toks.len() != 3 {
        return Err(bad());
    }
    let alloc = parse_num(toks[0]).ok_or_else(bad)?;
    let max = parse_num(toks[2]).ok_or_else(bad)?;
    Ok((alloc, max))
}

/// The columns of a `/proc/net/stat/*` table (`arp_cache`, `ndisc_cache`,
/// `nf_conntrack`): a header of names, then one row of hexadecimal numbers
/// per CPU. Event counters are summed over the rows; `entries` is the size
/// of the whole table, printed the same in every row, so it is taken once;
/// `chainlength` is a per-CPU maximum, so the largest row wins.
pub fn parse_stat_table<'a>(text: &'a str, path: &Path) -> Result<Vec<(&'a str, f64)>, TelemetryError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else { return Ok(Vec::new()) };
    let names: Vec<&str> = header.split_ascii_whitespace().collect();
    if names.is_empty() || names.iter().any(|n| !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')) {
        return Err(malformed(path, 1, "expected a header of column names", header));
    }
    let mut out: Vec<(&str, f64)> = names.iter().map(|n| (*n, 0.0)).collect();
    let mut rows = 0usize;
    for (i, line) in lines {
        let vals: Vec<&str> = line.split_ascii_whitespace().collect();
        if vals.len() != names.len() {
            return Err(malformed(path, i + 1, format!("{} columns, but the header names {}", vals.len(), names.len()), line));
        }
        for (slot, tok) in out.iter_mut().zip(vals) {
            let v = u64::from_str_radix(tok, 16).map_err(|_| malformed(path, i + 1, format!("column {} is not hexadecimal: {tok:?}", slot.0), line))? as f64;
            slot.1 = match slot.0 {
                "entries" if rows > 0 => slot.1,
                "chainlength" => slot.1.max(v),
                _ => slot.1 + v,
            };
        }
        rows += 1;
    }
    if rows == 0 {
        return Ok(Vec::new());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/proc/42/status")
    }

    #[test]
    fn status_gives_comm_with_spaces_euid_and_vmsize() {
        let text = "Name:\tWeb Content\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1001\t1000\t1000\nVmSize:\t  123456 kB\nThreads:\t7\n";
        let st = parse_pid_status(text, p()).unwrap();
        assert_eq!(st, PidStatus { comm: "Web Content".into(), euid: 1001, vm_size_kb: Some(123456), threads: 7 });
    }

    #[test]
    fn kernel_thread_status_has_no_vmsize() {
        let st = parse_pid_status("Name:\tkworker/0:1\nUid:\t0\t0\t0\t0\nThreads:\t1\n", p()).unwrap();
        assert_eq!(st.vm_size_kb, None);
    }

    #[test]
    fn status_without_uid_is_malformed_and_names_the_file() {
        let e = parse_pid_status("Name:\tx\n", p()).unwrap_err().to_string();
        assert!(e.contains("/proc/42/status") && e.contains("Uid"), "{e}");
        let e = parse_pid_status("Name:\tx\nUid:\tabc\n", p()).unwrap_err().to_string();
        assert!(e.contains(":2:"), "{e}");
    }

    #[test]
    fn nofile_limit_reads_soft_hard_and_unlimited() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \nMax processes             96367                96367                processes \nMax open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile_limit(text, p()).unwrap(), Some(Rlimit { soft: 1024, hard: 524288 }));
        let text = "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_nofile_limit(text, p()).unwrap(), Some(Rlimit { soft: u64::MAX, hard: u64::MAX }));
        assert_eq!(parse_nofile_limit("Max processes 1 1 processes\n", p()).unwrap(), None);
        assert!(parse_nofile_limit("Max open files  lots\n", p()).is_err());
    }

    #[test]
    fn inotify_watches_are_the_wd_lines() {
        let text = "pos:\t0\nflags:\t00\nmnt_id:\t16\nino:\t1057\ninotify wd:2 ino:a0 sdev:800001 mask:fc6 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a000000000000000\ninotify wd:1 ino:2 sdev:800001 mask:fc6 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0200000000000000\n";
        assert_eq!(count_inotify_watches(text), 2);
        assert_eq!(count_inotify_watches("pos:\t0\nflags:\t02\n"), 0);
        assert!(is_inotify_link(b"anon_inode:inotify"));
        assert!(!is_inotify_link(b"anon_inode:[eventpoll]"));
    }

    #[test]
    fn file_nr_gives_allocated_and_max() {
        assert_eq!(parse_file_nr("836\t0\t2466239\n", p()).unwrap(), (836.0, 2466239.0));
        assert!(parse_file_nr("836 0\n", p()).is_err());
    }

    #[test]
    fn stat_table_sums_counters_and_takes_entries_once() {
        let text = "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n\
00000004 000005a0 00000585 00000001   00000000 00000000 00000000   00000000         00000000         000002ae         00000003       00000000            00000010\n\
00000004 000006db 000006f2 00000003   00000000 00000000 00000002   00000000         00000000         00000000         00000001       00000000            00000001\n";
        let m: std::collections::BTreeMap<&str, f64> = parse_stat_table(text, p()).unwrap().into_iter().collect();
        assert_eq!(m["entries"], 4.0);
        assert_eq!(m["allocs"], (0x5a0 + 0x6db) as f64);
        assert_eq!(m["forced_gc_runs"], 4.0);
        assert_eq!(m["table_fulls"], 17.0);
    }

    #[test]
    fn stat_table_takes_the_longest_chain() {
        let text = "entries chainlength drop\n00000002 00000003 00000001\n00000002 00000007 00000001\n";
        let m: std::collections::BTreeMap<&str, f64> = parse_stat_table(text, p()).unwrap().into_iter().collect();
        assert_eq!((m["entries"], m["chainlength"], m["drop"]), (2.0, 7.0, 2.0));
    }

    #[test]
    fn stat_table_with_a_torn_row_names_the_line() {
        let e = parse_stat_table("entries drop\n00000001 00000002\n00000001\n", p()).unwrap_err().to_string();
        assert!(e.contains(":3:") && e.contains("1 columns, but the header names 2"), "{e}");
        let e = parse_stat_table("entries drop\n00000001 zz\n", p()).unwrap_err().to_string();
        assert!(e.contains("drop is not hexadecimal"), "{e}");
        assert!(parse_stat_table("", p()).unwrap().is_empty());
    }
}
