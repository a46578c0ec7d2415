//! The host-wide (or namespace-wide) limits a workload can run into, read
//! live with the counts they cap, so the diagnosis can state every such
//! symptom as a ratio of a count to the limit in force on this host. Cheap:
//! a few small files under the proc root, no per-process work (that is
//! `proc_scan`). It decides nothing.
//!
//! | metric | source | kind |
//! |---|---|---|
//! | `sysctl.<key>` | `/proc/sys/<key with dots as slashes>` for each key of `LIMIT_KEYS`: the limit in force | gauge |
//! | `filenr.allocated` | `/proc/sys/fs/file-nr`, first field: file handles allocated system-wide (against `fs.file-max`) | gauge |
//! | `inotify.limit.watches`, `inotify.limit.instances` | the smaller of `fs.inotify.max_user_*` (the initial user namespace's limit) and `user.max_inotify_*` (this user namespace's): the per-user limit in force for users of the namespace the reader runs in | gauge |
//! | `conntrack.count` | `/proc/sys/net/netfilter/nf_conntrack_count` (absent: conntrack not built in or not loaded, "no data") | gauge |
//! | `conntrack.stat.<column>` | `/proc/net/stat/nf_conntrack` summed over CPUs (`drop`: table full, `early_drop`: an entry evicted to make room, `insert_failed`) | counter (`entries`, `chainlength`: gauge) |
//! | `neigh.arp_cache.<column>`, `neigh.ndisc_cache.<column>` | `/proc/net/stat/{arp_cache,ndisc_cache}` summed over CPUs (`entries`: the whole table; `table_fulls`: allocations refused at `gc_thresh3`; `forced_gc_runs`) | counter (`entries`: gauge) |
//!
//! A neighbour table's `entries` counts permanent entries too, which
//! `gc_thresh3` does not cap (it caps the collectable ones): the ratio to
//! `gc_thresh3` is an upper bound, and `table_fulls` is the proof of overflow.
//! `gc_thresh*` exist only in the initial network namespace (the table is
//! host-wide), so in a child namespace those symptoms have no data.
//!
//! Tasks against `kernel.threads-max` use the existing
//! `loadavg.tasks` (the fourth field of `/proc/loadavg`, every thread on the
//! host); against `kernel.pid_max`, per PID namespace since 6.14, the scan's
//! `proc.threads.total` (the threads of the PID namespace `/proc` shows).
//! `/proc/sys/net` and `/proc/net` show the network namespace of the
//! reader; `nf_conntrack_max` and `gc_thresh*` are host-wide tables even
//! when read from a child namespace.

use super::procfs::{Scratch, TelemetryError, parse_file_nr, parse_single_number, parse_stat_table, read_small};
use std::path::Path;

/// The sysctl keys whose values are emitted as `sysctl.<key>`: every limit a `symptoms_limits.toml` ratio divides by.
pub const LIMIT_KEYS: [&str; 19] = [
    "fs.file-max",
    "fs.nr_open",
    "fs.inotify.max_user_instances",
    "fs.inotify.max_user_watches",
    "kernel.pid_max",
    "kernel.threads-max",
    "net.core.somaxconn",
    "net.ipv4.neigh.default.gc_thresh1",
    "net.ipv4.neigh.default.gc_thresh2",
    "net.ipv4.neigh.default.gc_thresh3",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv6.neigh.default.gc_thresh1",
    "net.ipv6.neigh.default.gc_thresh2",
    "net.ipv6.neigh.default.gc_thresh3",
    "net.netfilter.nf_conntrack_max",
    "user.max_inotify_instances",
    "user.max_inotify_watches",
    "vm.max_map_count",
];

/// The `/proc/net/stat` tables read, with their metric prefixes.
const STAT_TABLES: [(&str, &str); 3] = [("net/stat/nf_conntrack", "conntrack.stat"), ("net/stat/arp_cache", "neigh.arp_cache"), ("net/stat/ndisc_cache", "neigh.ndisc_cache")];

/// Path of a sysctl key under `proc_root` (`sys/fs/file-max`). The keys are ours and hold no `/`.
fn sysctl_path(proc_root: &Path, key: &str) -> std::path::PathBuf {
    proc_root.join("sys").join(key.replace('.', "/"))
}

/// The per-user inotify limit in force from the initial user namespace's `fs.inotify.max_user_*`
/// and a user namespace's `user.max_inotify_*`: the kernel charges each level of user namespace up
/// to the initial one, so for the users of that namespace the smaller limit binds.
pub fn inotify_limit(initial: Option<f64>, own: Option<f64>) -> Option<f64> {
    match (initial, own) {
        (Some(a), Some(b)) => Some(f64::min(a, b)),
        (a, b) => a.or(b),
    }
}

/// Every limit metric this module documents, appended to `out`; a file absent here contributes nothing.
pub(crate) fn read_limits(proc_root: &Path, scratch: &mut Scratch, out: &mut Vec<(String, f64)>) -> Result<(), TelemetryError> {
    let value = |rel: &Path, scratch: &mut Scratch| -> Result<Option<f64>, TelemetryError> {
        match read_small(rel, scratch)? {
            Some(text) => Ok(Some(parse_single_number(&text, rel)?)),
            None => Ok(None),
        }
    };
    let mut inotify = [(None, None), (None, None)];
    for key in LIMIT_KEYS {
        let path = sysctl_path(proc_root, key);
        let Some(v) = value(&path, scratch)? else { continue };
        match key {
            "fs.inotify.max_user_watches" => inotify[0].0 = Some(v),
            "user.max_inotify_watches" => inotify[0].1 = Some(v),
            "fs.inotify.max_user_instances" => inotify[1].0 = Some(v),
            "user.max_inotify_instances" => inotify[1].1 = Some(v),
            _ => {}
        }
        out.push((format!("sysctl.{key}"), v));
    }
    for ((a, b), name) in inotify.into_iter().zip(["inotify.limit.watches", "inotify.limit.instances"]) {
        if let Some(l) = inotify_limit(a, b) {
            out.push((name.to_string(), l));
        }
    }
    let file_nr = sysctl_path(proc_root, "fs.file-nr");
    if let Some(text) = read_small(&file_nr, scratch)? {
        out.push(("filenr.allocated".into(), parse_file_nr(&text, &file_nr)?.0));
    }
    if let Some(v) = value(&sysctl_path(proc_root, "net.netfilter.nf_conntrack_count"), scratch)? {
        out.push(("conntrack.count".into(), v));
    }
    for (rel, prefix) in STAT_TABLES {
        let path = proc_root.join(rel);
        let Some(text) = read_small(&path, scratch)? else { continue };
        for (col, v) in parse_stat_table(&text, &path)? {
            out.push((format!("{prefix}.{col}"), v));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn read(root: &Path) -> Result<BTreeMap<String, f64>, TelemetryError> {
        let mut out = Vec::new();
        read_limits(root, &mut Scratch::new(), &mut out)?;
        Ok(out.into_iter().collect())
    }

    #[test]
    fn inotify_limit_is_the_smaller_of_the_two_namespaces() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "sys/fs/inotify/max_user_watches", "192540\n");
        write(d.path(), "sys/user/max_inotify_watches", "16\n");
        write(d.path(), "sys/fs/inotify/max_user_instances", "128\n");
        let m = read(d.path()).unwrap();
        assert_eq!(m["inotify.limit.watches"], 16.0);
        assert_eq!(m["inotify.limit.instances"], 128.0);
        assert_eq!(m["sysctl.fs.inotify.max_user_watches"], 192540.0);
    }

    #[test]
    fn conntrack_absent_gives_no_metric_present_gives_count_and_drops() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "sys/vm/max_map_count", "65530\n");
        let m = read(d.path()).unwrap();
        assert!(m.keys().all(|k| !k.starts_with("conntrack.")), "{m:?}");
        assert_eq!(m["sysctl.vm.max_map_count"], 65530.0);
        write(d.path(), "sys/net/netfilter/nf_conntrack_count", "250\n");
        write(d.path(), "sys/net/netfilter/nf_conntrack_max", "262144\n");
        write(d.path(), "net/stat/nf_conntrack", "entries  clashres drop early_drop\n000000fa 00000000 00000002 00000001\n000000fa 00000000 00000003 00000000\n");
        let m = read(d.path()).unwrap();
        assert_eq!((m["conntrack.count"], m["sysctl.net.netfilter.nf_conntrack_max"]), (250.0, 262144.0));
        assert_eq!((m["conntrack.stat.drop"], m["conntrack.stat.early_drop"], m["conntrack.stat.entries"]), (5.0, 1.0, 250.0));
    }

    #[test]
    fn file_nr_and_a_malformed_limit_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "sys/fs/file-nr", "836\t0\t2466239\n");
        assert_eq!(read(d.path()).unwrap()["filenr.allocated"], 836.0);
        write(d.path(), "sys/kernel/pid_max", "lots\n");
        let e = read(d.path()).unwrap_err().to_string();
        assert!(e.contains("sys/kernel/pid_max") && e.contains("expected one number"), "{e}");
    }
}
