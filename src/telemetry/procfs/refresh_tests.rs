//! `ProcReader::refresh` against fresh snapshots of the same files: equal after every change a
//! host or a caller can make between two refreshes.

use super::tests::{TestProcfs, fixture};
use super::*;
use std::fs;

/// Refreshes `snap` at `t` and checks it equals a fresh snapshot by a new reader of the same files.
fn check(t: &TestProcfs, r: &ProcReader, snap: &mut Snapshot, ts: u64) {
    r.refresh(snap, ts).unwrap();
    let fresh = t.reader().snapshot(ts).unwrap();
    assert_eq!(*snap, fresh, "refreshed snapshot differs from a fresh one; only in refreshed: {:?}, only in fresh: {:?}", diff(snap, &fresh), diff(&fresh, snap));
}

/// The metrics of `a` that `b` lacks or holds with another value.
fn diff(a: &Snapshot, b: &Snapshot) -> Vec<(String, f64)> {
    a.metrics.iter().filter(|(k, v)| b.metrics.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), *v)).take(10).collect()
}

/// The address of each metric name's bytes: unchanged when a refresh reused the names.
fn name_addresses(s: &Snapshot) -> Vec<usize> {
    s.metrics.keys().map(|k| k.as_ptr() as usize).collect()
}

#[test]
fn refresh_equals_a_fresh_snapshot_on_both_fixtures_open_or_kept_open() {
    for name in ["6.18-live", "4.19-nopsi"] {
        let root = fixture(name);
        for kept in [false, true] {
            let mut r = ProcReader::with_roots(root.join("proc"), root.join("sys"));
            if kept {
                r = r.keep_open().unwrap();
            }
            let fresh = ProcReader::with_roots(root.join("proc"), root.join("sys")).snapshot(7).unwrap();
            let mut snap = Snapshot::default();
            for ts in [7, 7, 7] {
                r.refresh(&mut snap, ts).unwrap();
                assert_eq!(snap, fresh, "{name}, kept open {kept}");
            }
        }
    }
}

#[test]
fn steady_refresh_writes_values_into_the_names_it_allocated_before() {
    let t = TestProcfs::from_fixture("6.18-live");
    let r = t.reader();
    let mut snap = Snapshot::default();
    check(&t, &r, &mut snap, 1);
    let before = name_addresses(&snap);
    t.write("vmstat", &fs::read_to_string(t.proc().join("vmstat")).unwrap().replace("nr_dirty ", "nr_dirty 9"));
    t.write("loadavg", "9.50 0.50 0.25 3/300 1234\n");
    check(&t, &r, &mut snap, 2);
    assert_eq!(name_addresses(&snap), before, "a refresh with no layout change rebuilt the map");
    assert_eq!(snap.get("loadavg.1"), Some(9.5));
    assert_eq!(snap.timestamp_ms, 2);
}

#[test]
fn refresh_follows_a_field_added_removed_or_renamed_between_refreshes() {
    let t = TestProcfs::from_fixture("6.18-live");
    let r = t.reader().keep_open().unwrap();
    let mut snap = Snapshot::default();
    check(&t, &r, &mut snap, 1);
    // keep_open reads the file it opened: change its content in place, never replace it.
    let edit = |text: &str| fs::OpenOptions::new().write(true).truncate(true).open(t.proc().join("vmstat")).unwrap().write_all(text.as_bytes()).unwrap();
    use std::io::Write;
    edit("pgfault 5\nnr_dirty 7\n");
    check(&t, &r, &mut snap, 2);
    edit("pgfault 5\nnr_dirty 7\nnr_new_counter 3\n");
    check(&t, &r, &mut snap, 3);
    assert_eq!(snap.get("vmstat.nr_new_counter"), Some(3.0));
    edit("pgfault 6\nnr_dirtx 8\nnr_new_counter 3\n");
    check(&t, &r, &mut snap, 4);
    assert_eq!((snap.get("vmstat.nr_dirty"), snap.get("vmstat.nr_dirtx")), (None, Some(8.0)));
    edit("nr_dirtx 8\n");
    check(&t, &r, &mut snap, 5);
    assert_eq!(snap.get("vmstat.pgfault"), None, "a removed field left a stale value");
    check(&t, &r, &mut snap, 6);
}

#[test]
fn refresh_drops_the_metrics_of_a_file_that_vanished_and_takes_them_back_when_it_returns() {
    let t = TestProcfs::from_fixture("6.18-live");
    let r = t.reader();
    let mut snap = Snapshot::default();
    check(&t, &r, &mut snap, 1);
    let io = fs::read_to_string(t.proc().join("pressure/io")).unwrap();
    t.remove("pressure/io");
    check(&t, &r, &mut snap, 2);
    assert!(snap.metrics.keys().all(|k| !k.starts_with("psi.io.")), "a vanished file left stale values");
    check(&t, &r, &mut snap, 3);
    t.write("pressure/io", &io);
    check(&t, &r, &mut snap, 4);
    t.remove("net/softnet_stat");
    check(&t, &r, &mut snap, 5);
}

#[test]
fn refresh_of_an_unreadable_file_fails_naming_it_and_leaves_the_snapshot_as_it_was() {
    let t = TestProcfs::from_fixture("6.18-live");
    let r = t.reader();
    let mut snap = Snapshot::default();
    check(&t, &r, &mut snap, 1);
    let before = snap.clone();
    // A directory opens but does not read (EISDIR): root reads a chmod 000 file, so that cannot stand in.
    t.remove("net/snmp");
    fs::create_dir(t.proc().join("net/snmp")).unwrap();
    let e = r.refresh(&mut snap, 2).unwrap_err().to_string();
    assert!(e.contains("net/snmp") && e.contains("read failed"), "{e}");
    assert_eq!(snap, before);
    t.remove("net/snmp");
    t.write("vmstat", "pgfault 5 extra\n");
    let e = r.refresh(&mut snap, 3).unwrap_err().to_string();
    assert!(e.contains("vmstat:1"), "{e}");
    assert_eq!(snap, before);
    t.write("vmstat", "pgfault 5\n");
    check(&t, &r, &mut snap, 4);
}

#[test]
fn refresh_removes_metrics_the_caller_added_and_restores_ones_it_took_out() {
    let t = TestProcfs::from_fixture("6.18-live");
    let r = t.reader();
    let mut snap = Snapshot::default();
    check(&t, &r, &mut snap, 1);
    snap.set("listen.queue.max", 5.0);
    snap.set("aaa.first", 1.0);
    snap.set("zzz.last", 1.0);
    check(&t, &r, &mut snap, 2);
    snap.metrics.remove("vmstat.nr_dirty");
    check(&t, &r, &mut snap, 3);
    // Taken out and put back: another allocation of the same name, with a value of the caller's.
    let (k, _) = snap.metrics.remove_entry("meminfo.Dirty").unwrap();
    snap.metrics.insert(k.clone(), -1.0);
    check(&t, &r, &mut snap, 4);
    for v in snap.metrics.values_mut() {
        *v = f64::NAN;
    }
    snap.host = HostFacts::default();
    snap.schema_version = 0;
    check(&t, &r, &mut snap, 5);
}

#[test]
fn refresh_of_a_snapshot_from_another_reader_or_the_other_fixture_is_rebuilt() {
    let t = TestProcfs::from_fixture("6.18-live");
    let old = TestProcfs::from_fixture("4.19-nopsi");
    let r = t.reader();
    let mut snap = old.reader().snapshot(1).unwrap();
    check(&t, &r, &mut snap, 2);
    let mut other = Snapshot::default();
    check(&t, &r, &mut other, 3);
    // Two snapshots refreshed in turn: each is checked against the names the last refresh left.
    check(&t, &r, &mut snap, 4);
    check(&t, &r, &mut other, 5);
    let mut copy = snap.clone();
    check(&t, &r, &mut copy, 6);
    check(&t, &r, &mut snap, 7);
}

#[test]
fn refresh_follows_the_limits_in_force_appearing_changing_and_vanishing() {
    let t = TestProcfs::from_fixture("6.18-live");
    let r = t.reader();
    let mut snap = Snapshot::default();
    check(&t, &r, &mut snap, 1);
    t.write("sys/vm/max_map_count", "65530\n");
    t.write("sys/fs/file-nr", "1000 0 9000\n");
    check(&t, &r, &mut snap, 2);
    assert_eq!(snap.get("sysctl.vm.max_map_count"), Some(65530.0));
    t.write("sys/vm/max_map_count", "70000\n");
    check(&t, &r, &mut snap, 3);
    t.remove("sys/vm/max_map_count");
    check(&t, &r, &mut snap, 4);
    assert_eq!(snap.get("sysctl.vm.max_map_count"), None, "a vanished limit left a stale value");
    let without = t.reader().without_limits();
    snap.set("sysctl.vm.max_map_count", 1.0);
    without.refresh(&mut snap, 5).unwrap();
    assert_eq!(snap, t.reader().without_limits().snapshot(5).unwrap());
}

#[test]
fn refresh_of_the_live_proc_keeps_the_names_of_a_fresh_snapshot() {
    // Values move between two reads of the live host; the names and host facts do not.
    let r = ProcReader::new().without_process_scan().keep_open().unwrap();
    let mut snap = Snapshot::default();
    for ts in 0..3 {
        r.refresh(&mut snap, ts).unwrap();
        let fresh = r.snapshot(ts).unwrap();
        assert_eq!(snap.metrics.keys().collect::<Vec<_>>(), fresh.metrics.keys().collect::<Vec<_>>());
        assert_eq!((&snap.host, snap.timestamp_ms, snap.schema_version), (&fresh.host, fresh.timestamp_ms, fresh.schema_version));
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// One change between two refreshes, by the host or by the caller.
    #[derive(Debug, Clone)]
    enum Change {
        Value(u8, u32),
        AddField(u8),
        RemoveField(u8),
        RemoveFile(u8),
        RestoreFile(u8),
        CallerInsert(u8),
        CallerRemove(u8),
        Limit(Option<u32>),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (any::<u8>(), any::<u32>()).prop_map(|(a, b)| Change::Value(a, b)),
            any::<u8>().prop_map(Change::AddField),
            any::<u8>().prop_map(Change::RemoveField),
            any::<u8>().prop_map(Change::RemoveFile),
            any::<u8>().prop_map(Change::RestoreFile),
            any::<u8>().prop_map(Change::CallerInsert),
            any::<u8>().prop_map(Change::CallerRemove),
            proptest::option::of(any::<u32>()).prop_map(Change::Limit),
        ]
    }

    /// The files a change may touch: small enough to rewrite, each of another format.
    const FILES: [&str; 4] = ["vmstat", "pressure/io", "net/sockstat", "loadavg"];

    fn apply(t: &TestProcfs, snap: &mut Snapshot, vm: &mut Vec<(String, u32)>, c: &Change) {
        let pick = |n: u8, len: usize| n as usize % len.max(1);
        let write_vm = |vm: &Vec<(String, u32)>| t.write("vmstat", &vm.iter().map(|(k, v)| format!("{k} {v}\n")).collect::<String>());
        match c {
            Change::Value(i, v) if !vm.is_empty() => {
                let i = pick(*i, vm.len());
                vm[i].1 = *v;
                write_vm(vm);
            }
            Change::AddField(i) => {
                vm.insert(pick(*i, vm.len() + 1), (format!("nr_field_{i}"), *i as u32));
                write_vm(vm);
            }
            Change::RemoveField(i) if !vm.is_empty() => {
                vm.remove(pick(*i, vm.len()));
                write_vm(vm);
            }
            Change::RemoveFile(i) => {
                let f = FILES[pick(*i, FILES.len())];
                if t.proc().join(f).exists() {
                    t.remove(f);
                }
            }
            Change::RestoreFile(i) => {
                let f = FILES[pick(*i, FILES.len())];
                let from = fixture("6.18-live").join("proc").join(f);
                t.write(f, &fs::read_to_string(from).unwrap());
                if f == "vmstat" {
                    *vm = vmstat_fields(t);
                }
            }
            Change::CallerInsert(i) => snap.set(format!("{}.caller", ["aaa", "meminfo", "sysctl", "zzz"][pick(*i, 4)]), 1.0),
            Change::CallerRemove(i) if !snap.metrics.is_empty() => {
                let k = snap.metrics.keys().nth(pick(*i, snap.metrics.len())).unwrap().clone();
                snap.metrics.remove(&k);
            }
            Change::Limit(Some(v)) => t.write("sys/vm/max_map_count", &format!("{v}\n")),
            Change::Limit(None) if t.proc().join("sys/vm/max_map_count").exists() => t.remove("sys/vm/max_map_count"),
            _ => {}
        }
    }

    fn vmstat_fields(t: &TestProcfs) -> Vec<(String, u32)> {
        let text = fs::read_to_string(t.proc().join("vmstat")).unwrap();
        text.lines().take(20).filter_map(|l| l.split_once(' ')).map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0))).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn refresh_equals_a_fresh_snapshot_after_any_changes(changes in proptest::collection::vec(proptest::collection::vec(change(), 0..3), 1..6)) {
            let t = TestProcfs::from_fixture("6.18-live");
            let mut vm = vmstat_fields(&t);
            t.write("vmstat", &vm.iter().map(|(k, v)| format!("{k} {v}\n")).collect::<String>());
            let r = t.reader();
            let mut snap = Snapshot::default();
            for (ts, step) in changes.iter().enumerate() {
                for c in step {
                    apply(&t, &mut snap, &mut vm, c);
                }
                check(&t, &r, &mut snap, ts as u64);
            }
        }
    }
}

mod reread {
    //! The numbers-only re-read (`Skeleton`) against the full parse of the same new text.
    use super::super::layout::LayoutCache;
    use super::super::sources::SOURCES;
    use super::*;
    use proptest::prelude::*;

    /// Parses `old` in full as file `rel`, then `new` by its numbers alone: `None` when the
    /// re-read refused it, else its metrics, checked equal to a full parse of `new`.
    fn check(rel: &str, old: &str, new: &str) -> Option<Vec<(String, f64)>> {
        let src = SOURCES.iter().find(|s| s.rel == rel).unwrap();
        let path = Path::new(rel);
        let mut l = LayoutCache::default();
        l.parse(src, old, path).unwrap();
        if !l.reread(new.as_bytes()) {
            return None;
        }
        let mut got = Vec::new();
        l.emit(&mut got);
        let mut full = LayoutCache::default();
        full.parse(src, new, path).unwrap_or_else(|e| panic!("re-read accepted a text the full parse refuses: {e}\n{new}"));
        let mut want = Vec::new();
        full.emit(&mut want);
        assert_eq!(got, want, "re-read of {new:?}");
        Some(got)
    }

    #[test]
    fn numbers_that_moved_are_reread_without_the_full_parse() {
        let got = check("vmstat", "nr_dirty 7\npgfault 5\n", "nr_dirty 12345\npgfault 0\n").unwrap();
        assert_eq!(got, [("vmstat.nr_dirty".to_string(), 12345.0), ("vmstat.pgfault".to_string(), 0.0)]);
        let psi = "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n";
        assert!(check("pressure/io", psi, &psi.replace("avg10=0.00 avg60", "avg10=12.50 avg60")).is_some());
        // meminfo pads numbers to 8 columns: a number one digit longer comes with a space fewer.
        let mem = "MemTotal:        1000000 kB\nDirty:                 0 kB\n";
        let got = check("meminfo", mem, "MemTotal:       10000000 kB\nDirty:              1000 kB\n").unwrap();
        assert_eq!(got, [("meminfo.Dirty".to_string(), 1000.0), ("meminfo.MemTotal".to_string(), 1e7)]);
        let snmp = "Tcp: RtoMin MaxConn ActiveOpens\nTcp: 200 -1 5\n";
        assert_eq!(check("net/snmp", snmp, "Tcp: RtoMin MaxConn ActiveOpens\nTcp: 200 -1 123456\n").unwrap()[0].1, 123456.0);
    }

    #[test]
    fn text_that_changed_outside_the_numbers_goes_to_the_full_parse() {
        for (rel, old, new) in [
            ("vmstat", "nr_dirty 7\npgfault 5\n", "nr_dirty 7\npgfaulx 5\n"),
            ("vmstat", "nr_dirty 7\npgfault 5\n", "nr_dirty 7\npgfault 5\nnew 1\n"),
            ("vmstat", "nr_dirty 7\npgfault 5\n", "nr_dirty 7\n"),
            ("vmstat", "nr_dirty 7\npgfault 5\n", "nr_dirty 7 8\npgfault 5\n"),
            ("vmstat", "nr_dirty 7\npgfault 5\n", "nr_dirty x\npgfault 5\n"),
            ("vmstat", "nr_dirty 7\npgfault 5\n", "nr_dirty \npgfault 5\n"),
            ("vmstat", "nr_dirty 7\npgfault 5\n", "nr_dirty inf\npgfault 5\n"),
            ("meminfo", "MemTotal:        1000000 kB\nDirty:              1000 kB\n", "MemTotal:1000000 kB\nDirty:              1000 kB\n"),
            ("meminfo", "MemTotal:        1000000 kB\nDirty:              1000 kB\n", "MemTotal:\t1000000 kB\nDirty:              1000 kB\n"),
            ("meminfo", "MemTotal:        1000000 kB\nDirty:              1000 kB\n", "MemTotal:        1000000  kB\nDirty:              1000 kB\n"),
            ("net/snmp", "Tcp: RtoMin MaxConn\nTcp: 200 -1\n", "Tcp: RtoMin MaxConn\nUdp: 200 -1\n"),
        ] {
            assert_eq!(check(rel, old, new), None, "{rel}: {new:?}");
        }
    }

    #[test]
    fn files_whose_values_are_not_tokens_are_always_parsed_in_full() {
        for (rel, text) in [("loadavg", "1.00 0.50 0.25 3/300 1234\n"), ("net/softnet_stat", &format!("{}\n", ["00000001"; 13].join(" ")))] {
            let src = SOURCES.iter().find(|s| s.rel == rel).unwrap();
            let mut l = LayoutCache::default();
            l.parse(src, text, Path::new(rel)).unwrap();
            assert!(!l.has_skeleton() && !l.reread(text.as_bytes()), "{rel}");
        }
    }

    /// One edit of a file's text.
    #[derive(Debug, Clone)]
    enum Edit {
        Replace(usize, u8),
        Insert(usize, u8),
        Delete(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let byte = proptest::sample::select(b" \n\t0123456789-.=:akB".to_vec());
        prop_oneof![
            (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Delete),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn a_reread_never_differs_from_the_full_parse(file in 0usize..6, edits in proptest::collection::vec(edit(), 1..4)) {
            let rel = ["meminfo", "vmstat", "net/netstat", "net/snmp", "net/sockstat", "pressure/memory"][file];
            let old = fs::read_to_string(fixture("6.18-live").join("proc").join(rel)).unwrap();
            let mut new = old.clone().into_bytes();
            for e in &edits {
                match *e {
                    Edit::Replace(i, b) => { let i = i % new.len(); new[i] = b; }
                    Edit::Insert(i, b) => { let i = i % (new.len() + 1); new.insert(i, b); }
                    Edit::Delete(i) => { let i = i % new.len(); new.remove(i); }
                }
            }
            check(rel, &old, &String::from_utf8(new).unwrap());
        }
    }
}
