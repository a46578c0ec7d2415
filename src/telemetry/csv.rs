//! Telemetry as CSV: one row per snapshot, one column per metric.
//!
//! Columns: `timestamp_ms, hostname, kernel_release, boot_id, ncpus,
//! mem_total_kb, numa_nodes`, then one column per metric name in sorted
//! order. An empty cell means the metric was not present in that snapshot.
//! `experiments/data/README.md` documents the metric names.

use super::snapshot::{HostFacts, MetricKind, SNAPSHOT_SCHEMA_VERSION, Snapshot, metric_kind};
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::path::Path;

const FIXED: [&str; 7] = ["timestamp_ms", "hostname", "kernel_release", "boot_id", "ncpus", "mem_total_kb", "numa_nodes"];

/// Renders snapshots as CSV text.
pub fn to_csv(snaps: &[Snapshot]) -> Result<String> {
    let names: BTreeSet<&str> = snaps.iter().flat_map(|s| s.metrics.keys().map(String::as_str)).collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(FIXED.iter().copied().chain(names.iter().copied()))?;
    for s in snaps {
        let mut row = vec![
            s.timestamp_ms.to_string(),
            s.host.hostname.clone(),
            s.host.kernel_release.clone(),
            s.host.boot_id.clone(),
            s.host.ncpus.to_string(),
            s.host.mem_total_kb.to_string(),
            s.host.numa_nodes.to_string(),
        ];
        row.extend(names.iter().map(|n| s.get(n).map(fmt_num).unwrap_or_default()));
        w.write_record(&row)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// Parses CSV text produced by `to_csv` (or by hand, with the same columns); `file` names the source in errors.
pub fn from_csv(text: &str, file: &str) -> Result<Vec<Snapshot>> {
    let mut r = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = r.headers().with_context(|| format!("{file}: reading the header row"))?.clone();
    for (i, want) in FIXED.iter().enumerate() {
        if headers.get(i) != Some(want) {
            bail!("{file}: column {} must be {want:?}, found {:?}; the first columns are {}", i + 1, headers.get(i).unwrap_or(""), FIXED.join(", "));
        }
    }
    let mut names = BTreeSet::new();
    for h in headers.iter().skip(FIXED.len()) {
        // A repeated column would let its last cell silently win over the first.
        if !names.insert(h) {
            bail!("{file}: column {h:?} appears twice in the header; each metric has one column");
        }
    }
    let mut out = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let line = n + 2;
        let rec = rec.with_context(|| format!("{file}:{line}: malformed row"))?;
        let num = |i: usize| -> Result<u64> {
            let cell = rec.get(i).unwrap_or("");
            cell.parse::<u64>().with_context(|| format!("{file}:{line}: column {:?} must be a whole number, found {cell:?}", FIXED[i]))
        };
        // Host facts are printed in reports and terminals: a newline or ESC in them would forge output.
        let word = |i: usize| -> Result<String> {
            let cell = rec.get(i).unwrap_or("");
            if let Some(c) = cell.chars().find(|c| c.is_control()) {
                bail!("{file}:{line}: column {:?} holds the control character U+{:04X}; host facts are one line of plain text", FIXED[i], c as u32);
            }
            Ok(cell.to_string())
        };
        let host = HostFacts {
            hostname: word(1)?,
            kernel_release: word(2)?,
            boot_id: word(3)?,
            // Checked, not `as`: 4294967297 CPUs must not wrap to 1.
            ncpus: u32::try_from(num(4)?).ok().filter(|n| *n > 0).with_context(|| format!("{file}:{line}: column \"ncpus\" must be 1 to {}, found {:?}", u32::MAX, rec.get(4).unwrap_or("")))?,
            mem_total_kb: num(5)?,
            numa_nodes: u32::try_from(num(6)?).ok().with_context(|| format!("{file}:{line}: column \"numa_nodes\" must be at most {}, found {:?}", u32::MAX, rec.get(6).unwrap_or("")))?,
        };
        let mut s = Snapshot { schema_version: SNAPSHOT_SCHEMA_VERSION, timestamp_ms: num(0)?, host, metrics: Default::default() };
        for (i, name) in headers.iter().enumerate().skip(FIXED.len()) {
            let cell = rec.get(i).unwrap_or("");
            if cell.is_empty() {
                continue;
            }
            let v: f64 = cell.parse().map_err(|_| anyhow::anyhow!("{file}:{line}: metric {name:?} has value {cell:?}, which is not a number"))?;
            if !v.is_finite() {
                bail!("{file}:{line}: metric {name:?} has non-finite value {cell:?}");
            }
            // A kernel counter only counts up from 0; a negative one would turn into a huge rate.
            if v < 0.0 && metric_kind(name) == MetricKind::Counter {
                bail!("{file}:{line}: counter {name:?} has negative value {cell:?}; counters start at 0 and only grow");
            }
            s.set(name, v);
        }
        out.push(s);
    }
    if out.len() < 2 {
        bail!("{file}: {} snapshot row(s); at least 2 are needed, because rates come from two snapshots", out.len());
    }
    if out.windows(2).any(|w| w[1].timestamp_ms < w[0].timestamp_ms) {
        bail!("{file}: timestamp_ms must not decrease from one row to the next");
    }
    // Rates divide by the time between snapshots: two rows at one instant give none.
    if out.first().map(|s| s.timestamp_ms) == out.last().map(|s| s.timestamp_ms) {
        bail!("{file}: every row has timestamp_ms {}; rates need snapshots taken at different times", out[0].timestamp_ms);
    }
    Ok(out)
}

/// Reads a telemetry CSV file.
pub fn read_file(path: &Path) -> Result<Vec<Snapshot>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading telemetry {}", path.display()))?;
    from_csv(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let mut a = Snapshot::new(HostFacts { hostname: "h".into(), ncpus: 2, ..Default::default() }, 0);
        a.set("vmstat.nr_dirty", 5.0);
        let mut b = a.clone();
        b.timestamp_ms = 1000;
        b.set("psi.io.some.avg10", 1.5);
        let text = to_csv(&[a.clone(), b.clone()]).unwrap();
        let back = from_csv(&text, "t.csv").unwrap();
        assert_eq!(back, vec![a, b]);
        let e = from_csv("time,hostname\n", "bad.csv").unwrap_err().to_string();
        assert!(e.contains("bad.csv: column 1 must be \"timestamp_ms\""), "{e}");
        let bad = text.replace("1.5", "lots");
        let e = from_csv(&bad, "bad.csv").unwrap_err().to_string();
        assert!(e.contains("bad.csv:3: metric \"psi.io.some.avg10\" has value \"lots\""), "{e}");
    }

    fn two_rows(header_extra: &str, row1: &str, row2: &str) -> String {
        format!("timestamp_ms,hostname,kernel_release,boot_id,ncpus,mem_total_kb,numa_nodes{header_extra}\n{row1}\n{row2}\n")
    }

    #[test]
    fn ncpus_beyond_u32_is_refused_not_wrapped() {
        // Before: `as u32` made 4294967297 CPUs into 1.
        let t = two_rows("", "0,h,k,b,4294967297,1,1", "1000,h,k,b,2,1,1");
        let e = from_csv(&t, "t.csv").unwrap_err().to_string();
        assert!(e.contains("t.csv:2: column \"ncpus\" must be 1 to 4294967295, found \"4294967297\""), "{e}");
        let e = from_csv(&two_rows("", "0,h,k,b,0,1,1", "1000,h,k,b,0,1,1"), "t.csv").unwrap_err().to_string();
        assert!(e.contains("\"ncpus\" must be 1 to"), "{e}");
        let e = from_csv(&two_rows("", "0,h,k,b,2,1,4294967296", "1000,h,k,b,2,1,1"), "t.csv").unwrap_err().to_string();
        assert!(e.contains("\"numa_nodes\" must be at most"), "{e}");
    }

    #[test]
    fn negative_counter_is_refused_and_a_negative_gauge_kept() {
        let t = two_rows(",netstat.TcpExt.ListenOverflows,snmp.Tcp.MaxConn", "0,h,k,b,2,1,1,-5,-1", "1000,h,k,b,2,1,1,3,-1");
        let e = from_csv(&t, "t.csv").unwrap_err().to_string();
        assert!(e.contains("t.csv:2: counter \"netstat.TcpExt.ListenOverflows\" has negative value \"-5\""), "{e}");
        let t = two_rows(",snmp.Tcp.MaxConn", "0,h,k,b,2,1,1,-1", "1000,h,k,b,2,1,1,-1");
        assert_eq!(from_csv(&t, "t.csv").unwrap()[0].get("snmp.Tcp.MaxConn"), Some(-1.0));
    }

    #[test]
    fn duplicated_metric_column_is_refused() {
        // Before: the second column silently overwrote the first.
        let t = two_rows(",psi.cpu.some.avg10,psi.cpu.some.avg10", "0,h,k,b,2,1,1,1,2", "1000,h,k,b,2,1,1,1,2");
        let e = from_csv(&t, "t.csv").unwrap_err().to_string();
        assert!(e.contains("column \"psi.cpu.some.avg10\" appears twice"), "{e}");
    }

    #[test]
    fn control_character_in_host_facts_is_refused() {
        // Before: a quoted hostname with a newline (or ESC) went into every report verbatim.
        let e = from_csv(&two_rows("", "0,\"evil\nhost\",k,b,2,1,1", "1000,h,k,b,2,1,1"), "t.csv").unwrap_err().to_string();
        assert!(e.contains("t.csv:2: column \"hostname\" holds the control character U+000A"), "{e}");
        let e = from_csv(&two_rows("", "0,h,k\u{1b}[2J,b,2,1,1", "1000,h,k,b,2,1,1"), "t.csv").unwrap_err().to_string();
        assert!(e.contains("\"kernel_release\" holds the control character U+001B"), "{e}");
    }

    #[test]
    fn rows_all_at_one_instant_are_refused() {
        let e = from_csv(&two_rows("", "5,h,k,b,2,1,1", "5,h,k,b,2,1,1"), "t.csv").unwrap_err().to_string();
        assert!(e.contains("every row has timestamp_ms 5"), "{e}");
    }
}
