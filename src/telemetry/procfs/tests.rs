//! Parsers against hand-written text, both fixtures, and the live /proc.

use super::*;
use std::fs;
use std::io;

pub(super) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc").join(name)
}

fn read_fixture(name: &str) -> Snapshot {
    let root = fixture(name);
    ProcReader::with_roots(root.join("proc"), root.join("sys")).snapshot(1_000).unwrap()
}

/// A fake `/proc` + `/sys` in a temp dir, seeded from a fixture.
pub(super) struct TestProcfs {
    dir: tempfile::TempDir,
}

impl TestProcfs {
    pub(super) fn from_fixture(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&fixture(name), dir.path());
        Self { dir }
    }
    pub(super) fn proc(&self) -> PathBuf {
        self.dir.path().join("proc")
    }
    pub(super) fn write(&self, rel: &str, text: &str) {
        let p = self.proc().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    pub(super) fn remove(&self, rel: &str) {
        let p = self.proc().join(rel);
        if p.is_dir() { fs::remove_dir_all(p).unwrap() } else { fs::remove_file(p).unwrap() }
    }
    pub(super) fn reader(&self) -> ProcReader {
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
fn the_process_scan_runs_only_where_there_are_processes() {
    let root = fixture("6.18-live");
    let fixture_reader = || ProcReader::with_roots(root.join("proc"), root.join("sys"));
    let s = fixture_reader().snapshot(0).unwrap();
    assert!(s.metrics.keys().all(|k| !k.starts_with("scan.") && !k.starts_with("proc.") && !k.starts_with("inotify.")), "a fixture has no processes");
    // A view of /proc (the bench's per-namespace one) scans the real /proc when told to.
    let s = fixture_reader().with_process_scan_root("/proc").snapshot(0).unwrap();
    assert!(s.get("scan.procs").unwrap() >= 1.0 && s.get("proc.fd.top.pid").is_some());
    let live = ProcReader::new().without_process_scan().snapshot(0).unwrap();
    assert!(live.metrics.keys().all(|k| !k.starts_with("scan.") && !k.starts_with("proc.")));
    assert!(live.get("sysctl.vm.max_map_count").is_some() && live.get("filenr.allocated").is_some(), "the host-wide limits stay");
    let full = ProcReader::new().snapshot(0).unwrap();
    assert!(full.get("proc.threads.total").unwrap() >= full.get("scan.procs").unwrap());
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

#[test]
fn with_files_reads_only_the_named_files_and_meminfo_with_the_same_values() {
    let root = fixture("6.18-live");
    let reader = || ProcReader::with_roots(root.join("proc"), root.join("sys"));
    let all = reader().snapshot(7).unwrap();
    for kept in [false, true] {
        let r = reader().without_limits().with_files(&["net/netstat", "pressure/io"]).unwrap();
        let r = if kept { r.keep_open().unwrap() } else { r };
        let some = r.snapshot(7).unwrap();
        let prefixes = ["host.", "meminfo.", "netstat.", "psi.io."];
        assert!(some.metrics.keys().all(|k| prefixes.iter().any(|p| k.starts_with(p))), "kept={kept}: {:?}", some.metrics.keys().find(|k| !prefixes.iter().any(|p| k.starts_with(p))));
        for p in prefixes {
            let of = |s: &Snapshot| s.metrics.iter().filter(|(k, _)| k.starts_with(p)).map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>();
            assert!(!of(&some).is_empty() && of(&some) == of(&all), "kept={kept}: {p} differs from the full snapshot");
        }
        assert_eq!(some.host, all.host, "kept={kept}: host facts come from meminfo and sysfs, read either way");
    }
}

#[test]
fn with_files_refuses_a_file_a_snapshot_does_not_read() {
    let e = ProcReader::new().with_files(&["net/netstat", "net/dev"]).unwrap_err().to_string();
    assert!(e.contains("\"net/dev\" is not a snapshot file") && e.contains("net/softnet_stat"), "{e}");
}

#[test]
fn without_limits_leaves_out_the_limits_and_nothing_else() {
    let t = TestProcfs::from_fixture("6.18-live");
    t.write("sys/vm/max_map_count", "65530\n");
    let with = t.reader().snapshot(0).unwrap();
    assert_eq!(with.get("sysctl.vm.max_map_count"), Some(65530.0));
    let without = t.reader().without_limits().snapshot(0).unwrap();
    let limit = |k: &String| ["sysctl.", "filenr.", "inotify.limit.", "conntrack.", "neigh."].iter().any(|p| k.starts_with(p));
    assert!(without.metrics.keys().all(|k| !limit(k)));
    let rest: std::collections::BTreeMap<_, _> = with.metrics.into_iter().filter(|(k, _)| !limit(k)).collect();
    assert_eq!(without.metrics, rest);
}
