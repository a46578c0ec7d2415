use super::*;
use crate::agent::window::Compact;
use crate::reasoning::columns;
use std::time::Duration;

#[test]
fn only_the_enabled_symptoms_decide_what_is_read() {
    let kb = Kb::embedded().unwrap();
    let n = needs(&kb, &["accept_queue_full".into()]);
    assert!(n.listeners && n.listeners_each_sample && !n.process_scan, "{n:?}");
    assert!(n.window_end.limits.contains(&"sysctl.net.core.somaxconn".to_string()), "the listeners' binding limit, a setting: {n:?}");
    // Its signals are the listeners' queues: no /proc file beyond meminfo, which is always read.
    assert!(n.each_sample.files.is_empty() && n.signals.iter().all(|m| m.starts_with("listen.")), "{n:?}");
    let n = needs(&kb, &["timewait_port_pressure".into(), "inotify_watches_near_limit".into()]);
    assert!(!n.listeners && n.process_scan, "{n:?}");
    // The listen overflow counter is the signal; the listeners are the advice's evidence only.
    let o = needs(&kb, &["accept_queue_overflow".into()]);
    assert!(o.listeners && !o.listeners_each_sample && o.each_sample.files == vec!["net/netstat"], "{o:?}");
    let end = &n.window_end.limits;
    assert!(end.contains(&"sysctl.net.ipv4.tcp_max_tw_buckets".to_string()) && end.contains(&"sysctl.vm.max_map_count".to_string()), "{n:?}");
    let all = n.all();
    assert!(all.limits.iter().all(|m| is_limit(m)) && !all.limits.contains(&"sysctl.fs.file-max".to_string()), "{n:?}");
    assert_eq!(needs(&kb, &[]), Needs::default());
    // Every symptom: every file a signal names is read each sample, every setting a signal
    // divides by at each window's end, and nothing is read twice.
    let every: Vec<String> = kb.symptoms.keys().cloned().collect();
    let n = needs(&kb, &every);
    for m in &n.signals {
        if let Some((_, f)) = FILES.iter().find(|(pre, _)| m.starts_with(pre)) {
            assert!(n.each_sample.files.contains(f), "{m} needs {f} each sample: {n:?}");
        }
        if is_setting(m) && readable_key(&kb, m) {
            assert!(n.window_end.limits.contains(m), "{m} is read at each window's end: {n:?}");
        } else if is_limit(m) {
            assert!(n.each_sample.limits.contains(m), "{m} is measured each sample: {n:?}");
        }
    }
    assert!(n.each_sample.limits.iter().all(|m| !is_setting(m)) && n.window_end.limits.iter().all(|m| is_setting(m)), "{n:?}");
    for m in &n.advise.limits {
        assert!(!n.each_sample.limits.contains(m) && !n.window_end.limits.contains(m), "{m} read twice: {n:?}");
    }
    assert!(n.advise.files.iter().all(|f| !n.each_sample.files.contains(f)), "{n:?}");
}

/// Whether the KB lets the agent read `sysctl.<key>` (a `no_read` key is never read).
fn readable_key(kb: &Kb, m: &str) -> bool {
    m.strip_prefix("sysctl.").is_none_or(|k| kb.param(k).is_some_and(|p| p.no_read.is_none()))
}

#[test]
fn the_agent_read_every_snapshot_file_and_limit_for_a_symptom_that_reads_two() {
    let kb = Kb::embedded().unwrap();
    let n = needs(&kb, &["timewait_port_pressure".into()]);
    let mut s = Sampler::open(Path::new("/proc"), TreeStore::kernel(), &n, false, SCAN_EVERY).unwrap();
    s.sample(0, false).unwrap();
    let names: Vec<&String> = s.maps().iter().flat_map(|m| m.keys()).collect();
    // What the symptom reads is there (the setting from the read at open); files and limits it does not read are not.
    assert!(names.iter().any(|k| k.starts_with("sockstat.")) && names.iter().any(|k| *k == "sysctl.net.ipv4.tcp_max_tw_buckets"), "{names:?}");
    assert!(!names.iter().any(|k| k.starts_with("vmstat.") || k.starts_with("psi.") || k.starts_with("softnet.") || k.starts_with("filenr.") || *k == "sysctl.fs.file-max"), "{names:?}");
}

#[test]
fn the_process_scan_runs_once_per_scan_every_of_sample_time_and_its_figures_stand_between() {
    let kb = Kb::embedded().unwrap();
    let n = needs(&kb, &["inotify_watches_near_limit".into()]);
    let mut s = Sampler::open(Path::new("/proc"), TreeStore::kernel(), &n, false, Duration::from_secs(10)).unwrap();
    let mut scans = Vec::new();
    // 21 samples a second apart: scans at 0 s, 10 s and 20 s.
    for t in 0..=20u64 {
        let before = s.scan.as_ref().unwrap().next_ms;
        s.sample(t * 1000, t % 4 == 0).unwrap();
        assert!(s.maps()[0].keys().any(|k| k.starts_with("scan.")), "sample {t} lacks the scan's figures");
        assert!(s.snapshot().unwrap().metrics.keys().any(|k| k.starts_with("scan.")));
        if s.scan.as_ref().unwrap().next_ms != before {
            scans.push(t);
        }
    }
    assert_eq!(scans, vec![0, 10, 20]);
}

/// A `/proc` of the fixture with `tw` sockets in TIME-WAIT, and a sandbox sysctl tree whose
/// `tcp_max_tw_buckets` is `limit`.
fn timewait_host(dir: &Path, tw: u64, limit: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc/6.18-live/proc");
    let proc_root = dir.join("proc");
    std::fs::create_dir_all(proc_root.join("net")).unwrap();
    std::fs::copy(fixture.join("meminfo"), proc_root.join("meminfo")).unwrap();
    std::fs::write(proc_root.join("net/sockstat"), format!("sockets: used 12\nTCP: inuse 1 orphan 0 tw {tw} alloc 1 mem 63\nUDP: inuse 0 mem 0\n")).unwrap();
    let sys = dir.join("sys");
    set_limit(&sys, limit);
    (proc_root, sys)
}

fn set_limit(sys: &Path, limit: u64) {
    std::fs::create_dir_all(sys.join("net/ipv4")).unwrap();
    std::fs::write(sys.join("net/ipv4/tcp_max_tw_buckets"), format!("{limit}\n")).unwrap();
}

/// Samples one 5-sample window of `timewait_port_pressure` (the limit raised to `raised` before
/// the third sample when given), holds its settings when `hold`, and says whether it was found.
fn timewait_window(raised: Option<u64>, hold: bool) -> bool {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    // 600 of 1000 buckets: at the limit (the symptom holds above a quarter).
    let (proc_root, sys) = timewait_host(d.path(), 600, 1000);
    let n = needs(&kb, &["timewait_port_pressure".into()]);
    let mut s = Sampler::open(&proc_root, TreeStore::sandbox(&sys), &n, false, SCAN_EVERY).unwrap();
    let mut w = Compact::new(&n.signals);
    for i in 0..5u64 {
        if let (2, Some(l)) = (i, raised) {
            set_limit(&sys, l);
        }
        let end = i == 4;
        s.sample(i * 1000, end).unwrap();
        w.push(i * 1000, s.host(), &s.maps());
        if end && hold {
            w.hold(is_setting);
        }
    }
    let sym = &kb.symptoms["timewait_port_pressure"];
    columns::judge(&w.table(), &[sym]).findings.iter().any(|f| f.id == sym.id)
}

#[test]
fn a_limit_raised_mid_window_leaves_no_stale_at_the_limit_finding() {
    // The limit as it was: the symptom is found (the test can see it).
    assert!(timewait_window(None, true));
    // Raised a thousandfold before the window's third sample: the setting read at the window's
    // end stands for all of its samples, and the window is judged against the limit in force.
    assert!(!timewait_window(Some(1_000_000), true), "a stale limit made a finding");
    // Without `hold`, the samples before the end would keep the limit read at the last window's
    // end: 3 of 4 sub-intervals "at the limit", a finding the raised limit no longer supports.
    assert!(timewait_window(Some(1_000_000), false), "the control: without hold the stale limit is judged");
}

/// Counts the allocations made on the thread that turned counting on (other tests run on their
/// own threads and are not counted).
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    /// The system allocator, counting.
    pub struct Counting;

    // SAFETY: every call is passed to the system allocator unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            if ON.with(Cell::get) {
                COUNT.with(|c| c.set(c.get() + 1));
            }
            // SAFETY: the caller's layout, as GlobalAlloc requires.
            unsafe { System.alloc(l) }
        }

        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: `p` came from `alloc` with `l`.
            unsafe { System.dealloc(p, l) }
        }

        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            if ON.with(Cell::get) {
                COUNT.with(|c| c.set(c.get() + 1));
            }
            // SAFETY: `p` came from `alloc` with `l`.
            unsafe { System.realloc(p, l, n) }
        }
    }

    #[global_allocator]
    static A: Counting = Counting;

    /// The allocations `f` makes on this thread.
    pub fn allocations(f: impl FnOnce()) -> u64 {
        COUNT.with(|c| c.set(0));
        ON.with(|o| o.set(true));
        f();
        ON.with(|o| o.set(false));
        COUNT.with(Cell::get)
    }
}

#[test]
fn a_steady_sample_and_its_window_row_allocate_nothing() {
    let kb = Kb::embedded().unwrap();
    let every: Vec<String> = kb.symptoms.keys().cloned().collect();
    let mut n = needs(&kb, &every);
    // The listeners' dump allocates in `telemetry::sockdiag` (its records and metrics): not counted
    // here. The scan runs once, at the first sample, and not again within `SCAN_EVERY`.
    n.listeners = false;
    n.listeners_each_sample = false;
    let mut s = Sampler::open(Path::new("/proc"), TreeStore::kernel(), &n, false, SCAN_EVERY).unwrap();
    let mut w = Compact::new(&n.signals);
    // Allocations by part: the /proc files, the measured limits, the settings (at a window's end),
    // the rest of the sample (scan, probes), the window's row and its end (hold, keep_last).
    let mut parts = [0u64; 6];
    let step = |s: &mut Sampler, w: &mut Compact, t: u64, parts: &mut [u64; 6]| {
        let end = t.is_multiple_of(4);
        parts[0] += counting::allocations(|| s.reader.refresh(&mut s.full, t * 1000).unwrap());
        parts[1] += counting::allocations(|| s.limits.read_into(&mut s.extra.metrics));
        if end {
            parts[2] += counting::allocations(|| s.settings.read_into(&mut s.extra.metrics));
        }
        // What `sample` does besides (the scan, not due; the files and limits again).
        parts[3] += counting::allocations(|| s.sample(t * 1000, end).unwrap());
        parts[4] += counting::allocations(|| w.push(t * 1000, s.host(), &s.maps()));
        if end {
            parts[5] += counting::allocations(|| {
                w.hold(is_setting);
                w.keep_last();
            });
        }
    };
    // Two windows to settle (columns, spare rows, layouts), then two counted.
    let mut warm = [0u64; 6];
    for t in 0..9 {
        step(&mut s, &mut w, t, &mut warm);
    }
    for t in 9..17 {
        step(&mut s, &mut w, t, &mut parts);
    }
    assert_eq!(parts, [0; 6], "allocations in 8 steady samples by part: /proc files, measured limits, settings, sample, window row, window end");
}
