//! The scan over fake proc trees built in a temp dir: who it names, what the
//! caps cut, and that a process provably far from `max_map_count` is not read.

use super::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

/// A fake `/proc` with processes written by hand.
struct FakeProc {
    dir: tempfile::TempDir,
}

/// One fake process.
struct P<'a> {
    pid: u32,
    comm: &'a str,
    euid: u32,
    vm_kb: Option<u64>,
    nofile: (u64, u64),
    /// Plain descriptors.
    files: u32,
    /// Watches of each inotify instance.
    inotify: &'a [u32],
    maps: u64,
}

impl FakeProc {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
    fn add(&self, p: &P) {
        let d = self.root().join(p.pid.to_string());
        fs::create_dir_all(d.join("fd")).unwrap();
        fs::create_dir_all(d.join("fdinfo")).unwrap();
        let vm = p.vm_kb.map(|kb| format!("VmSize:\t{kb:>8} kB\n")).unwrap_or_default();
        fs::write(d.join("status"), format!("Name:\t{}\nUmask:\t0022\nUid:\t{e}\t{e}\t{e}\t{e}\n{vm}Threads:\t1\n", p.comm, e = p.euid)).unwrap();
        let lim = |v: u64| if v == u64::MAX { "unlimited".to_string() } else { v.to_string() };
        fs::write(d.join("limits"), format!("Limit                     Soft Limit           Hard Limit           Units     \nMax open files            {:<20} {:<20} files     \n", lim(p.nofile.0), lim(p.nofile.1))).unwrap();
        let mut fd = 0;
        for _ in 0..p.files {
            symlink("/dev/null", d.join("fd").join(fd.to_string())).unwrap();
            fd += 1;
        }
        for &w in p.inotify {
            symlink("anon_inode:inotify", d.join("fd").join(fd.to_string())).unwrap();
            let mut info = String::from("pos:\t0\nflags:\t00\nmnt_id:\t16\nino:\t1057\n");
            for i in 0..w {
                info.push_str(&format!("inotify wd:{} ino:a0 sdev:800001 mask:fc6 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a000000000000000\n", i + 1));
            }
            fs::write(d.join("fdinfo").join(fd.to_string()), info).unwrap();
            fd += 1;
        }
        let line = "7f0000000000-7f0000001000 r--p 00000000 00:00 0 \n";
        fs::write(d.join("maps"), line.repeat(p.maps as usize)).unwrap();
    }
}

fn proc(pid: u32, comm: &str, euid: u32) -> P<'_> {
    P { pid, comm, euid, vm_kb: Some(10_000), nofile: (1024, 4096), files: 3, inotify: &[], maps: 20 }
}

#[test]
fn names_the_user_and_the_process_holding_the_most_inotify_watches() {
    let f = FakeProc::new();
    f.add(&P { inotify: &[3, 1], ..proc(100, "syncthing", 1000) });
    f.add(&P { inotify: &[5], ..proc(200, "code", 1000) });
    f.add(&P { inotify: &[7], ..proc(300, "systemd", 0) });
    f.add(&P { vm_kb: None, files: 0, ..proc(2, "kthreadd", 0) });
    let r = scan(&f.root(), &ScanCaps::default(), None).unwrap();
    assert_eq!(r.procs, 3, "the kernel thread is not a process with descriptors");
    let top = r.watches_top().unwrap();
    assert_eq!((top.uid, top.watches, top.instances), (1000, 9, 3));
    assert_eq!((top.top_watches.0.pid, top.top_watches.0.comm.as_str(), top.top_watches.1), (200, "code", 5));
    assert_eq!(r.instances_top().unwrap().top_instances.0.pid, 100);
    let mut m = Vec::new();
    r.metrics(&mut m);
    let m: BTreeMap<String, f64> = m.into_iter().collect();
    assert_eq!((m["inotify.watches.top.count"], m["inotify.watches.top.uid"], m["inotify.watches.top.pid"]), (9.0, 1000.0, 200.0));
    assert_eq!((m["inotify.instances.total"], m["inotify.watches.total"]), (4.0, 16.0));
}

#[test]
fn the_fd_top_is_the_process_nearest_its_own_limit_not_the_one_with_most_files() {
    let f = FakeProc::new();
    f.add(&P { files: 900, nofile: (100_000, 100_000), ..proc(100, "nginx", 33) });
    f.add(&P { files: 60, nofile: (64, 4096), ..proc(200, "java", 1000) });
    f.add(&P { files: 5, nofile: (u64::MAX, u64::MAX), ..proc(300, "odd", 0) });
    let r = scan(&f.root(), &ScanCaps::default(), None).unwrap();
    let top = r.fd_top().unwrap();
    assert_eq!((top.who.pid, top.who.comm.as_str(), top.open, top.limit.soft, top.limit.hard), (200, "java", 60, 64, 4096));
    assert!(r.fds.iter().all(|f| f.who.pid != 300), "an unlimited soft limit has no fill");
}

#[test]
fn maps_are_read_only_where_vmsize_allows_half_the_limit() {
    let f = FakeProc::new();
    // 65530 / 2 pages of 4 KiB = 131060 KiB: the small process cannot be near
    // the limit, whatever its (fake) maps file says, so it is not read.
    f.add(&P { vm_kb: Some(50_000), maps: 999, ..proc(100, "small", 0) });
    f.add(&P { vm_kb: Some(4_000_000), maps: 300, ..proc(200, "elasticsearch", 1000) });
    let r = scan(&f.root(), &ScanCaps::default(), Some(65530)).unwrap();
    assert_eq!(r.maps.len(), 1);
    let top = r.maps_top().unwrap();
    assert_eq!((top.who.pid, top.who.comm.as_str(), top.maps, top.complete), (200, "elasticsearch", 300, true));
    // Without a known limit every process is a candidate, largest VmSize first.
    let r = scan(&f.root(), &ScanCaps { max_maps_procs: 1, ..ScanCaps::default() }, None).unwrap();
    assert_eq!((r.maps.len(), r.maps_top().unwrap().who.pid, r.maps_skipped), (1, 200, 1));
}

#[test]
fn caps_cut_the_scan_and_say_so() {
    let f = FakeProc::new();
    for pid in 1..=5 {
        f.add(&P { inotify: &[2], maps: 1000, ..proc(pid, "p", 0) });
    }
    let full = scan(&f.root(), &ScanCaps::default(), None).unwrap();
    assert!(!full.truncated);
    assert_eq!((full.procs, full.inotify[&0].watches), (5, 10));
    let r = scan(&f.root(), &ScanCaps { max_procs: 2, ..ScanCaps::default() }, None).unwrap();
    assert!(r.truncated && r.procs == 2);
    let r = scan(&f.root(), &ScanCaps { max_fd_links: 4, ..ScanCaps::default() }, None).unwrap();
    assert!(r.truncated && r.fd_links == 4 && r.inotify[&0].instances == 1, "{r:?}");
    assert_eq!(r.fd_top().unwrap().open, 4, "descriptors are still counted past the readlink cap");
    let bytes = 51 * 1000 + 100;
    let r = scan(&f.root(), &ScanCaps { max_bytes: bytes, ..ScanCaps::default() }, None).unwrap();
    assert!(r.truncated && r.bytes == bytes);
    assert!(r.maps.iter().any(|m| !m.complete), "a cut maps read is marked a lower bound");
}

#[test]
fn prefix_lines_match_across_chunk_boundaries() {
    let text = b"pos:\t0\ninotify wd:1 ino:2\ninotify wd:2 ino:3\nnotinotify wd:3\n";
    for cut in 0..text.len() {
        let mut c = PrefixLines::new(b"inotify wd:");
        c.feed(&text[..cut]);
        c.feed(&text[cut..]);
        assert_eq!(c.count, 2, "cut at {cut}");
    }
}

#[test]
fn the_live_scan_finds_this_process_and_its_limit() {
    let r = scan(Path::new("/proc"), &ScanCaps::default(), None).unwrap();
    let me = std::process::id();
    assert!(r.procs >= 1);
    let own = r.fds.iter().find(|f| f.who.pid == me);
    // Without root another user's process may hide; this one never does.
    let own = own.expect("this test process has a finite RLIMIT_NOFILE and is listed");
    assert!(own.open >= 3 && own.limit.soft >= own.open, "{own:?}");
}

#[test]
fn nobody_at_a_limit_is_a_measured_zero_not_an_absence() {
    let f = FakeProc::new();
    f.add(&P { vm_kb: Some(1_000), ..proc(100, "small", 0) });
    let r = scan(&f.root(), &ScanCaps::default(), Some(65530)).unwrap();
    let mut m = Vec::new();
    r.metrics(&mut m);
    let m: BTreeMap<String, f64> = m.into_iter().collect();
    for name in ["inotify.instances.top.count", "inotify.instances.top.pid", "inotify.watches.top.count", "proc.maps.top.count", "proc.maps.top.pid"] {
        assert_eq!(m.get(name), Some(&0.0), "{name}");
    }
    assert_eq!(m["proc.fd.top.pid"], 100.0);
}
