//! `semantos collect`: takes snapshots of the live host (or of a tree laid
//! out like `/proc` and `/sys`) and prints the main gauges and the
//! per-second rates between the first and the last snapshot; `--json` prints
//! the snapshots and every rate, `--out` writes the snapshots as telemetry
//! CSV for `diagnose --telemetry`. The module owns the argument checks and the
//! rendering only: reading is `telemetry::procfs` and `telemetry::cgroup`.

use super::common::invalid;
use crate::telemetry::cgroup::CgroupReader;
use crate::telemetry::ebpf::{Probes, netns_inode};
use crate::telemetry::procfs::ProcReader;
use crate::telemetry::{MetricKind, Snapshot, Window, metric_kind};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Version of the `collect --json` document.
pub const COLLECT_JSON_VERSION: u32 = 1;

/// Arguments of `semantos collect`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  semantos collect                                    two snapshots 1 s apart: gauges and rates
  semantos collect --interval 5 --count 3 --json
  semantos collect --interval 10 --out snap.csv && semantos diagnose --telemetry snap.csv
  semantos collect --proc-root tests/fixtures/proc/6.18-live --interval 0
  semantos collect --ebpf --interval 5                + drop reasons, retransmits, latencies")]
pub struct CollectArgs {
    /// Seconds between two snapshots.
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    pub interval: f64,
    /// Number of snapshots; rates need at least 2 (they come from the first and the last).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub count: usize,
    /// Print the snapshots and the rates as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The /proc to read (a directory laid out like /proc, e.g. a captured fixture).
    #[arg(long, value_name = "PATH", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// The /sys to read (CPU and NUMA node counts, cgroups).
    #[arg(long, value_name = "PATH", default_value = "/sys")]
    pub sys_root: PathBuf,
    /// Also write the snapshots to FILE as telemetry CSV (read back by `diagnose --telemetry FILE`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also attach the eBPF tracepoint probes (root or CAP_BPF): ebpf.* drop reasons, retransmits,
    /// socket state changes, run-queue and block I/O latency. Missing probes are named, never fatal.
    #[arg(long)]
    pub ebpf: bool,
}

/// Checked arguments: what `run` does, decided before anything is read.
#[derive(Debug, Clone, PartialEq)]
struct Config {
    interval: Duration,
    count: usize,
}

/// Longest accepted interval: a day. Longer is almost surely a unit mistake (ms for s).
const MAX_INTERVAL_S: f64 = 86_400.0;

/// Checks the flags; a refusal is invalid input (exit code 2, nothing read).
fn validate(args: &CollectArgs) -> Result<Config> {
    if !args.interval.is_finite() || args.interval < 0.0 || args.interval > MAX_INTERVAL_S {
        return Err(invalid(format!("--interval {} is not a number of seconds between 0 and {MAX_INTERVAL_S} (e.g. --interval 0.5)", args.interval)));
    }
    if args.count == 0 {
        return Err(invalid("--count 0 takes no snapshot; use --count 2 or more (rates need two snapshots)"));
    }
    if args.out.is_some() && args.count < 2 {
        return Err(invalid("--out needs --count 2 or more: a telemetry CSV holds at least two snapshots, because rates come from two"));
    }
    Ok(Config { interval: Duration::from_secs_f64(args.interval), count: args.count })
}

/// Takes the snapshots and prints them; returns the exit code (0).
pub fn run(args: &CollectArgs) -> Result<i32> {
    let text = execute(args)?;
    print_stdout(&text)?;
    Ok(0)
}

/// Everything `run` does except printing: returns the text for stdout.
fn execute(args: &CollectArgs) -> Result<String> {
    let cfg = validate(args)?;
    let reader = ProcReader::with_roots(&args.proc_root, &args.sys_root)
        .keep_open()
        .with_context(|| format!("opening the telemetry files under {}", args.proc_root.display()))?;
    let cgroups = CgroupReader::with_roots(&args.proc_root, &args.sys_root);
    let total = cfg.interval.mul_f64((cfg.count - 1) as f64);
    if total >= Duration::from_secs(2) {
        eprintln!("collecting {} snapshots {:.3} s apart ({:.1} s)...", cfg.count, cfg.interval.as_secs_f64(), total.as_secs_f64());
    }
    // Attached before the first snapshot; the network namespace collect reads /proc/net in is the one counted.
    let mut probes = args.ebpf.then(|| Probes::start(&args.sys_root));
    for note in probes.iter().flat_map(|p| p.notes()) {
        eprintln!("{note}");
    }
    let netns = netns_inode(&args.proc_root);
    let snaps = collect(&reader, &cgroups, probes.as_mut().map(|p| (p, netns)), &cfg)?;
    if let Some(path) = &args.out {
        let csv = crate::telemetry::csv::to_csv(&snaps)?;
        crate::apply::files::write_atomic(path, csv.as_bytes(), 0o644).with_context(|| format!("writing telemetry CSV {}", path.display()))?;
    }
    if args.json { render_json(&snaps) } else { Ok(render_table(&snaps)) }
}

/// `count` snapshots `interval` apart, on a fixed schedule (no drift from the reading time).
fn collect(reader: &ProcReader, cgroups: &CgroupReader, mut probes: Option<(&mut Probes, Option<u32>)>, cfg: &Config) -> Result<Vec<Snapshot>> {
    let start = Instant::now();
    let mut snaps = Vec::with_capacity(cfg.count);
    for i in 0..cfg.count {
        let due = start + cfg.interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut s = reader.snapshot(now_ms)?;
        cgroups.collect_into(&mut s)?;
        if let Some((p, netns)) = probes.as_mut() {
            p.read_into(&mut s, *netns);
        }
        snaps.push(s);
    }
    Ok(snaps)
}

/// Prints to stdout; a closed pipe (`| head`) is not an error.
fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

/// Per-second rates of every counter, between the first and the last snapshot.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rates {
    /// `timestamp_ms` of the first snapshot.
    pub from_ms: u64,
    /// `timestamp_ms` of the last snapshot.
    pub to_ms: u64,
    /// Seconds between them.
    pub seconds: f64,
    /// Counter name → increase per second (a counter that went backwards counts from zero).
    pub per_second: BTreeMap<String, f64>,
}

/// The `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct CollectReport<'a> {
    /// Format version (`COLLECT_JSON_VERSION`).
    pub schema_version: u32,
    /// The snapshots, oldest first.
    pub snapshots: &'a [Snapshot],
    /// Rates between the first and the last snapshot; `null` with a single snapshot.
    pub rates: Option<Rates>,
}

/// Rates of every counter present in the last snapshot, or `None` with fewer than two snapshots or no time between them.
pub fn rates(snaps: &[Snapshot]) -> Option<Rates> {
    let (first, last) = (snaps.first()?, snaps.last()?);
    if snaps.len() < 2 {
        return None;
    }
    let w = Window::new(first, last);
    if w.seconds() <= 0.0 {
        return None;
    }
    let per_second = last.metrics.keys().filter(|k| metric_kind(k) == MetricKind::Counter).filter_map(|k| w.rate(k).map(|r| (k.clone(), r))).collect();
    Some(Rates { from_ms: first.timestamp_ms, to_ms: last.timestamp_ms, seconds: w.seconds(), per_second })
}

fn render_json(snaps: &[Snapshot]) -> Result<String> {
    let report = CollectReport { schema_version: COLLECT_JSON_VERSION, snapshots: snaps, rates: rates(snaps) };
    let mut s = super::output::document("collection", &report)?;
    s.push('\n');
    Ok(s)
}

/// How a value is shown.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// KiB, shown as KiB/MiB/GiB.
    Kib,
    /// 4 KiB pages, shown as a count and a size.
    Pages,
    /// A plain number.
    Count,
    /// Percent.
    Pct,
}

/// The gauges of the human table: (metric, label, unit).
const GAUGES: &[(&str, &str, Unit)] = &[
    ("loadavg.1", "load average, 1 min", Unit::Count),
    ("loadavg.runnable", "runnable tasks", Unit::Count),
    ("meminfo.MemAvailable", "memory available", Unit::Kib),
    ("meminfo.Dirty", "dirty page cache", Unit::Kib),
    ("meminfo.Writeback", "under writeback", Unit::Kib),
    ("meminfo.SwapFree", "swap free", Unit::Kib),
    ("meminfo.Committed_AS", "committed", Unit::Kib),
    ("snmp.Tcp.CurrEstab", "TCP established", Unit::Count),
    ("sockstat.TCP.inuse", "TCP sockets in use", Unit::Count),
    ("sockstat.TCP.tw", "TCP TIME-WAIT", Unit::Count),
    ("sockstat.TCP.mem", "TCP buffer memory", Unit::Pages),
    ("psi.cpu.some.avg10", "CPU pressure (some, 10 s)", Unit::Pct),
    ("psi.memory.some.avg10", "memory pressure (some, 10 s)", Unit::Pct),
    ("psi.memory.full.avg10", "memory pressure (full, 10 s)", Unit::Pct),
    ("psi.io.some.avg10", "I/O pressure (some, 10 s)", Unit::Pct),
    ("psi.io.full.avg10", "I/O pressure (full, 10 s)", Unit::Pct),
];

/// The rates of the human table: (counter, label, scale to apply, unit label).
const RATES: &[(&str, &str, f64, &str)] = &[
    ("snmp.Tcp.InSegs", "TCP segments in", 1.0, "/s"),
    ("snmp.Tcp.OutSegs", "TCP segments out", 1.0, "/s"),
    ("snmp.Tcp.RetransSegs", "TCP retransmits", 1.0, "/s"),
    ("netstat.TcpExt.ListenOverflows", "accept-queue overflows", 1.0, "/s"),
    ("netstat.TcpExt.ListenDrops", "listen drops", 1.0, "/s"),
    ("netstat.TcpExt.TCPTimeouts", "TCP timeouts", 1.0, "/s"),
    ("snmp.Udp.RcvbufErrors", "UDP receive-buffer errors", 1.0, "/s"),
    ("softnet.processed", "packets processed (softnet)", 1.0, "/s"),
    ("softnet.dropped", "backlog drops (softnet)", 1.0, "/s"),
    ("softnet.time_squeeze", "budget squeezes (softnet)", 1.0, "/s"),
    ("vmstat.pgmajfault", "major faults", 1.0, "/s"),
    ("vmstat.pswpin", "swap-ins (pages)", 1.0, "/s"),
    ("vmstat.pswpout", "swap-outs (pages)", 1.0, "/s"),
    ("vmstat.pgscan_direct", "direct-reclaim scans (pages)", 1.0, "/s"),
    ("vmstat.allocstall_normal", "allocation stalls", 1.0, "/s"),
    // PSI totals are microseconds of stall: per second / 10^4 = percent of the time.
    ("psi.cpu.some.total", "CPU stalled (some)", 1e-4, "% of time"),
    ("psi.memory.some.total", "memory stalled (some)", 1e-4, "% of time"),
    ("psi.io.some.total", "I/O stalled (some)", 1e-4, "% of time"),
];

fn fmt_kib(kib: f64) -> String {
    if kib >= 1024.0 * 1024.0 {
        format!("{:.1} GiB", kib / (1024.0 * 1024.0))
    } else if kib >= 1024.0 {
        format!("{:.1} MiB", kib / 1024.0)
    } else {
        format!("{kib:.0} KiB")
    }
}

fn fmt_count(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.2}") }
}

fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Kib => fmt_kib(v),
        Unit::Pages => format!("{} pages ({})", fmt_count(v), fmt_kib(v * 4.0)),
        Unit::Count => fmt_count(v),
        Unit::Pct => format!("{v:.2} %"),
    }
}

fn render_table(snaps: &[Snapshot]) -> String {
    let mut s = String::new();
    let Some(last) = snaps.last() else { return s };
    let h = &last.host;
    let nodes = if h.numa_nodes == 1 { "node" } else { "nodes" };
    let _ = writeln!(
        s,
        "host {}  kernel {}  {} CPUs  {} NUMA {nodes}  {} memory",
        if h.hostname.is_empty() { "?" } else { &h.hostname },
        if h.kernel_release.is_empty() { "?" } else { &h.kernel_release },
        h.ncpus,
        h.numa_nodes,
        fmt_kib(h.mem_total_kb as f64)
    );
    let _ = writeln!(s, "{} snapshot(s), {} metrics in the last", snaps.len(), last.metrics.len());
    let _ = writeln!(s, "\ngauges (last snapshot)");
    for (name, label, unit) in GAUGES {
        if *name == "meminfo.SwapFree" && last.get("meminfo.SwapTotal") == Some(0.0) {
            continue; // no swap configured: "0 KiB free" would read as an alarm
        }
        if let Some(v) = last.get(name) {
            let _ = writeln!(s, "  {label:<30} {:>24}   {name}", fmt_value(v, *unit));
        }
    }
    match rates(snaps) {
        Some(r) => {
            let _ = writeln!(s, "\nrates (first to last snapshot, {:.2} s)", r.seconds);
            for (name, label, scale, unit) in RATES {
                if let Some(v) = r.per_second.get(*name) {
                    let _ = writeln!(s, "  {label:<30} {:>14.2} {unit:<9}   {name}", v * scale);
                }
            }
            let cg: Vec<_> = r.per_second.iter().filter(|(k, _)| k.ends_with(":cpu.stat.throttled_usec") && **k != "cgroup.:cpu.stat.throttled_usec").collect();
            let throttled: Vec<_> = cg.into_iter().filter(|(_, v)| **v > 0.0).collect();
            if !throttled.is_empty() {
                let _ = writeln!(s, "\nthrottled cgroups (CPU quota)");
                for (k, v) in throttled {
                    let _ = writeln!(s, "  {:<44} {:>8.2} % of time", k, v * 1e-4);
                }
            }
            render_ebpf(&mut s, last, &r);
            let _ = writeln!(s, "\n{} counters have rates; --json prints them all.", r.per_second.len());
        }
        None => {
            let _ = writeln!(s, "\nno rates: they need two snapshots some time apart (--count 2 or more, --interval above 0)");
        }
    }
    s
}

/// The eBPF section: drop reasons, retransmits and state changes per second, then the latency percentiles.
fn render_ebpf(s: &mut String, last: &Snapshot, r: &Rates) {
    let events: Vec<_> = r.per_second.iter().filter(|(k, v)| k.starts_with("ebpf.") && **v > 0.0).collect();
    let levels: Vec<_> = last.metrics.iter().filter(|(k, _)| k.starts_with("ebpf.") && metric_kind(k) == MetricKind::Gauge).collect();
    if events.is_empty() && levels.is_empty() {
        return;
    }
    let _ = writeln!(s, "\neBPF (drops by reason, retransmits by state, state changes; latencies since the previous snapshot)");
    for (k, v) in events {
        let _ = writeln!(s, "  {k:<52} {v:>12.2} /s");
    }
    for (k, v) in levels {
        let _ = writeln!(s, "  {k:<52} {v:>12.1} µs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn args(extra: &[&str]) -> CollectArgs {
        use clap::{Args, FromArgMatches};
        let cmd = CollectArgs::augment_args(clap::Command::new("collect"));
        let m = cmd.try_get_matches_from(std::iter::once("collect").chain(extra.iter().copied())).unwrap();
        CollectArgs::from_arg_matches(&m).unwrap()
    }

    fn fixture_args(name: &str, extra: &[&str]) -> CollectArgs {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc").join(name);
        let mut a = args(extra);
        a.proc_root = root.join("proc");
        a.sys_root = root.join("sys");
        a
    }

    #[test]
    fn defaults_and_checks() {
        let a = args(&[]);
        assert_eq!((a.interval, a.count, a.json, a.out.is_none(), a.ebpf), (1.0, 2, false, true, false));
        assert_eq!(a.proc_root, PathBuf::from("/proc"));
        assert_eq!(a.sys_root, PathBuf::from("/sys"));
        assert_eq!(validate(&args(&["--count", "0"])).unwrap_err().downcast_ref::<crate::cli::CliError>().map(|e| e.code), Some(crate::cli::EXIT_INVALID));
        for (bad, want) in [
            (&["--interval=-1"][..], "--interval -1 is not a number of seconds"),
            (&["--interval", "NaN"][..], "is not a number of seconds"),
            (&["--count", "0"][..], "--count 0 takes no snapshot"),
            (&["--count", "1", "--out", "x.csv"][..], "--out needs --count 2 or more"),
        ] {
            let e = validate(&args(bad)).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        assert_eq!(validate(&args(&["--interval", "0.25", "--count", "3"])).unwrap(), Config { interval: Duration::from_millis(250), count: 3 });
    }

    fn snaps_with(values: &[(u64, &[(&str, f64)])]) -> Vec<Snapshot> {
        values
            .iter()
            .map(|(t, ms)| {
                let mut s = Snapshot::new(Default::default(), *t);
                for (k, v) in *ms {
                    s.set(*k, *v);
                }
                s
            })
            .collect()
    }

    #[test]
    fn rates_come_from_first_and_last() {
        let snaps = snaps_with(&[
            (1_000, &[("softnet.dropped", 10.0), ("meminfo.Dirty", 5.0), ("psi.io.some.total", 0.0)]),
            (2_000, &[("softnet.dropped", 11.0)]),
            (3_000, &[("softnet.dropped", 30.0), ("meminfo.Dirty", 9.0), ("psi.io.some.total", 500_000.0)]),
        ]);
        let r = rates(&snaps).unwrap();
        assert_eq!(r.seconds, 2.0);
        assert_eq!(r.per_second.get("softnet.dropped"), Some(&10.0));
        assert_eq!(r.per_second.get("meminfo.Dirty"), None, "gauges have no rate");
        let t = render_table(&snaps);
        assert!(t.contains("backlog drops (softnet)"), "{t}");
        assert!(t.contains("25.00 % of time"), "250 ms of stall per second is 25 % of the time: {t}");
        assert!(rates(&snaps[..1]).is_none());
        assert!(render_table(&snaps[..1]).contains("no rates: they need two snapshots"));
    }

    #[test]
    fn collects_fixture_as_table_json_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("t/telemetry.csv");
        let mut a = fixture_args("6.18-live", &["--interval", "0.01", "--count", "3"]);
        a.out = Some(out.clone());
        let cfg = validate(&a).unwrap();
        let reader = ProcReader::with_roots(&a.proc_root, &a.sys_root).keep_open().unwrap();
        let snaps = collect(&reader, &CgroupReader::with_roots(&a.proc_root, &a.sys_root), None, &cfg).unwrap();
        assert_eq!(snaps.len(), 3);
        assert!(snaps[0].get("cgroup.:cpu.stat.usage_usec").is_some());
        assert!(snaps.windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
        let t = render_table(&snaps);
        assert!(t.contains("kernel 6.18.44-fc-v669  2 CPUs  1 NUMA node"), "{t}");
        assert!(t.contains("memory available"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&render_json(&snaps).unwrap()).unwrap();
        assert_eq!(j["schema_version"], 1);
        assert_eq!(j["snapshots"].as_array().unwrap().len(), 3);
        assert!(j["rates"]["per_second"]["softnet.processed"].is_number());
        assert!(execute(&a).unwrap().starts_with("host vm  kernel 6.18.44-fc-v669"));
        let back = crate::telemetry::csv::read_file(&out).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].get("meminfo.MemTotal"), snaps[0].get("meminfo.MemTotal"));
    }

    #[test]
    fn older_kernel_fixture_renders_without_psi() {
        let a = fixture_args("4.19-nopsi", &["--interval", "0", "--count", "2"]);
        let reader = ProcReader::with_roots(&a.proc_root, &a.sys_root);
        let snaps = collect(&reader, &CgroupReader::with_roots(&a.proc_root, &a.sys_root), None, &validate(&a).unwrap()).unwrap();
        let t = render_table(&snaps);
        assert!(t.contains("4 CPUs  2 NUMA nodes"), "{t}");
        assert!(!t.contains("pressure"), "{t}");
    }

    #[test]
    fn ebpf_section_lists_drop_rates_and_latencies() {
        let snaps = snaps_with(&[
            (1_000, &[("ebpf.drop.socket_rcvbuff", 10.0), ("ebpf.drop.netfilter_drop", 3.0)]),
            (3_000, &[("ebpf.drop.socket_rcvbuff", 30.0), ("ebpf.drop.netfilter_drop", 3.0), ("ebpf.runq.p99_us", 812.5)]),
        ]);
        let t = render_table(&snaps);
        assert!(t.contains("ebpf.drop.socket_rcvbuff") && t.contains("10.00 /s"), "{t}");
        assert!(!t.contains("netfilter_drop"), "reasons with no drop in the window are left out: {t}");
        assert!(t.contains("812.5 µs"), "{t}");
        assert!(!render_table(&snaps_with(&[(1_000, &[]), (2_000, &[])])).contains("eBPF"));
    }

    #[test]
    fn live_host_two_snapshots() {
        let a = args(&["--interval", "0.05", "--count", "2"]);
        let reader = ProcReader::new().keep_open().unwrap();
        let snaps = collect(&reader, &CgroupReader::new(), None, &validate(&a).unwrap()).unwrap();
        let r = rates(&snaps).unwrap();
        assert!(r.seconds > 0.0);
        assert!(r.per_second.contains_key("vmstat.pgfault"));
    }
}
