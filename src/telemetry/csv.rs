//! Telemetry as CSV: one row per snapshot, one column per metric.
//!
//! Columns: `timestamp_ms, hostname, kernel_release, boot_id, ncpus,
//! mem_total_kb, numa_nodes`, then one column per metric name in sorted
//! order. An empty cell means the metric was not present in that snapshot.
//! `experiments/data/README.md` documents the metric names.

use super::snapshot::{HostFacts, SNAPSHOT_SCHEMA_VERSION, Snapshot};
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
    let mut out = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let line = n + 2;
        let rec = rec.with_context(|| format!("{file}:{line}: malformed row"))?;
        let num = |i: usize| -> Result<u64> {
            let cell = rec.get(i).unwrap_or("");
            cell.parse::<u64>().with_context(|| format!("{file}:{line}: column {:?} must be a whole number, found {cell:?}", FIXED[i]))
        };
        let host = HostFacts {
            hostname: rec.get(1).unwrap_or("").to_string(),
            kernel_release: rec.get(2).unwrap_or("").to_string(),
            boot_id: rec.get(3).unwrap_or("").to_string(),
            ncpus: num(4)? as u32,
            mem_total_kb: num(5)?,
            numa_nodes: num(6)? as u32,
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
}
