//! From per-trial results to one summary row per workload, and the
//! `summary.csv` / stdout table renderings of those rows.
//!
//! A trial runs one workload twice with the same seed, once on the baseline
//! sysctls and once on the tuned ones, and records each arm's p50 and p95
//! latency ([`TrialResult`]). [`summarize`] reduces the trials of each
//! workload to medians across trials, the relative improvement of the
//! median p95, and a 95 % paired-bootstrap interval for that improvement
//! ([`SummaryRow`]), then adds an `overall` row.
//!
//! The CSV is a file format: its column header (see [`CSV_HEADER`]) is its
//! schema, and [`from_csv`] refuses any other header rather than guess.
//! Numbers are written with a fixed number of decimals (3 for
//! milliseconds, 2 for percentages), so identical results give identical
//! bytes and a diff of two `summary.csv` files shows only real changes.

use super::stats::{bootstrap_ci, improvement_pct, median};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Name of the row that aggregates all workloads (see [`summarize`]).
pub const OVERALL: &str = "overall";

/// Bootstrap resamples behind each row's confidence interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The exact header line of `summary.csv`, which is also its schema.
pub const CSV_HEADER: &str = "workload,trials,baseline_p95_ms,tuned_p95_ms,improvement_pct,ci95_low_pct,ci95_high_pct,baseline_p50_ms,tuned_p50_ms";

/// One paired trial: a workload run on baseline and on tuned sysctls with
/// the same seed, and the latency percentiles each arm measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// Workload name, e.g. `"nginx-keepalive"`.
    pub workload: String,
    /// Trial index; the same index across workloads means the same seed and
    /// round, which is how [`summarize`] pairs workloads for the overall row.
    pub trial: usize,
    /// Median request latency of the baseline arm, in milliseconds.
    pub baseline_p50_ms: f64,
    /// 95th-percentile request latency of the baseline arm, in milliseconds.
    pub baseline_p95_ms: f64,
    /// Median request latency of the tuned arm, in milliseconds.
    pub tuned_p50_ms: f64,
    /// 95th-percentile request latency of the tuned arm, in milliseconds.
    pub tuned_p95_ms: f64,
}

/// One line of `summary.csv`: a workload (or [`OVERALL`]) summarised over
/// its trials. Fields are in CSV column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Workload name, or [`OVERALL`].
    pub workload: String,
    /// Number of paired trials summarised.
    pub trials: usize,
    /// Median across trials of the baseline arm's p95, in ms.
    pub baseline_p95_ms: f64,
    /// Median across trials of the tuned arm's p95, in ms.
    pub tuned_p95_ms: f64,
    /// `improvement_pct(baseline_p95_ms, tuned_p95_ms)`: positive is faster.
    pub improvement_pct: f64,
    /// Lower end of the 95 % paired-bootstrap interval of `improvement_pct`.
    pub ci95_low_pct: f64,
    /// Upper end of the 95 % paired-bootstrap interval of `improvement_pct`.
    pub ci95_high_pct: f64,
    /// Median across trials of the baseline arm's p50, in ms.
    pub baseline_p50_ms: f64,
    /// Median across trials of the tuned arm's p50, in ms.
    pub tuned_p50_ms: f64,
}

/// The four per-trial series a row is computed from, index-aligned (paired).
#[derive(Default)]
struct Arms {
    baseline_p50: Vec<f64>,
    baseline_p95: Vec<f64>,
    tuned_p50: Vec<f64>,
    tuned_p95: Vec<f64>,
}

impl Arms {
    fn push(&mut self, t: &TrialResult) {
        self.baseline_p50.push(t.baseline_p50_ms);
        self.baseline_p95.push(t.baseline_p95_ms);
        self.tuned_p50.push(t.tuned_p50_ms);
        self.tuned_p95.push(t.tuned_p95_ms);
    }

    fn row(&self, workload: &str, seed: u64) -> SummaryRow {
        let baseline_p95_ms = median(&self.baseline_p95);
        let tuned_p95_ms = median(&self.tuned_p95);
        let (ci95_low_pct, ci95_high_pct) =
            bootstrap_ci(&self.baseline_p95, &self.tuned_p95, median, BOOTSTRAP_RESAMPLES, seed, 0.95);
        SummaryRow {
            workload: workload.to_string(),
            trials: self.baseline_p95.len(),
            baseline_p95_ms,
            tuned_p95_ms,
            improvement_pct: improvement_pct(baseline_p95_ms, tuned_p95_ms),
            ci95_low_pct,
            ci95_high_pct,
            baseline_p50_ms: median(&self.baseline_p50),
            tuned_p50_ms: median(&self.tuned_p50),
        }
    }
}

/// Geometric mean: `exp(mean(ln x))`. `NaN` for empty input or any value
/// ≤ 0 (a latency of zero or less is not a measurement).
fn geometric_mean(xs: &[f64]) -> f64 {
    if xs.is_empty() || xs.iter().any(|&x| x <= 0.0) {
        return f64::NAN;
    }
    (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp()
}

/// Summarises paired trials into one row per workload, in order of first
/// appearance, followed by an [`OVERALL`] row. Empty input gives no rows.
///
/// Per workload: the p95 and p50 columns are medians across its trials;
/// `improvement_pct` compares the two median p95s; the interval is
/// [`bootstrap_ci`] of that improvement with the median as statistic,
/// [`BOOTSTRAP_RESAMPLES`] resamples, `seed` and level 0.95. Every row uses
/// the same `seed`, so adding a workload does not change the other rows.
///
/// Overall: for each trial index, the overall p95 of each arm is the
/// *geometric* mean of that trial's per-workload p95s (and the same for
/// p50). A geometric mean weighs relative changes equally, so a workload
/// measured in tens of milliseconds does not drown one measured in tens of
/// microseconds, and the overall improvement is a typical relative change
/// rather than the change of the slowest workload. These per-trial values
/// then get the same median and bootstrap treatment as a workload. Only
/// trial indices for which every workload has a result are counted (a
/// geometric mean over a different set of workloads would not be comparable);
/// they are taken in ascending order.
///
/// `(workload, trial)` pairs are expected to be unique. If one repeats, the
/// workload's row counts every entry and the overall row uses the first.
/// A workload literally named [`OVERALL`] would collide with the overall
/// row; workload names come from our own workload definitions, which do not
/// use it.
pub fn summarize(trials: &[TrialResult], seed: u64) -> Vec<SummaryRow> {
    if trials.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<&str> = Vec::new();
    let mut per_workload: BTreeMap<&str, Arms> = BTreeMap::new();
    // trial index → workload → first result seen for that pair.
    let mut by_trial: BTreeMap<usize, BTreeMap<&str, &TrialResult>> = BTreeMap::new();
    for t in trials {
        let name = t.workload.as_str();
        if !per_workload.contains_key(name) {
            order.push(name);
        }
        per_workload.entry(name).or_default().push(t);
        by_trial.entry(t.trial).or_default().entry(name).or_insert(t);
    }

    let mut rows: Vec<SummaryRow> = order.iter().map(|name| per_workload[name].row(name, seed)).collect();

    let mut overall = Arms::default();
    for results in by_trial.values().filter(|m| m.len() == order.len()) {
        let gm = |f: fn(&TrialResult) -> f64| geometric_mean(&results.values().map(|t| f(t)).collect::<Vec<_>>());
        overall.baseline_p50.push(gm(|t| t.baseline_p50_ms));
        overall.baseline_p95.push(gm(|t| t.baseline_p95_ms));
        overall.tuned_p50.push(gm(|t| t.tuned_p50_ms));
        overall.tuned_p95.push(gm(|t| t.tuned_p95_ms));
    }
    rows.push(overall.row(OVERALL, seed));
    rows
}

/// Fixed-decimal formatting; a value that rounds to zero is written `0.00`
/// rather than `-0.00`, so the sign of noise does not show up in diffs.
fn fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') { s[1..].to_string() } else { s }
}

/// The cells of a row as written to CSV: 3 decimals for ms, 2 for percent.
fn cells(r: &SummaryRow) -> [String; 9] {
    [
        r.workload.clone(),
        r.trials.to_string(),
        fixed(r.baseline_p95_ms, 3),
        fixed(r.tuned_p95_ms, 3),
        fixed(r.improvement_pct, 2),
        fixed(r.ci95_low_pct, 2),
        fixed(r.ci95_high_pct, 2),
        fixed(r.baseline_p50_ms, 3),
        fixed(r.tuned_p50_ms, 3),
    ]
}

/// Renders rows as `summary.csv` text: the [`CSV_HEADER`] line, then one
/// line per row, floats with 3 decimals (ms) or 2 (percent). Undefined
/// values are written `NaN`. Byte-identical for identical rows.
pub fn to_csv(rows: &[SummaryRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing into a Vec cannot fail, and every record has the header's
    // nine fields, so these expects guard invariants, not input.
    w.write_record(CSV_HEADER.split(',')).expect("write to Vec");
    for r in rows {
        w.write_record(cells(r)).expect("write to Vec");
    }
    String::from_utf8(w.into_inner().expect("flush to Vec")).expect("CSV of UTF-8 strings is UTF-8")
}

/// Parses `summary.csv` text as written by [`to_csv`].
///
/// The header must be exactly [`CSV_HEADER`]; errors name the offending
/// line. Values are read at the precision they were written with.
pub fn from_csv(text: &str) -> Result<Vec<SummaryRow>> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header = r.headers().context("reading the summary CSV header")?.iter().collect::<Vec<_>>().join(",");
    if header != CSV_HEADER {
        bail!(
            "summary CSV header is `{header}`; expected `{CSV_HEADER}` (this file was not written by this version of semantos; regenerate it from the trial results)"
        );
    }
    r.deserialize()
        .enumerate()
        // Line 1 is the header, so record i is on line i + 2.
        .map(|(i, rec)| rec.with_context(|| format!("summary CSV line {}", i + 2)))
        .collect()
}

/// Renders rows as an aligned plain-text table for a terminal: text
/// left-aligned, numbers right-aligned, the interval as `[low, high]`.
/// Ends with a newline.
pub fn to_table(rows: &[SummaryRow]) -> String {
    const HEAD: [&str; 8] =
        ["workload", "trials", "base p95 ms", "tuned p95 ms", "improv %", "95% CI %", "base p50 ms", "tuned p50 ms"];
    let lines: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.workload.clone(),
                r.trials.to_string(),
                fixed(r.baseline_p95_ms, 3),
                fixed(r.tuned_p95_ms, 3),
                fixed(r.improvement_pct, 2),
                format!("[{}, {}]", fixed(r.ci95_low_pct, 2), fixed(r.ci95_high_pct, 2)),
                fixed(r.baseline_p50_ms, 3),
                fixed(r.tuned_p50_ms, 3),
            ]
        })
        .collect();
    let mut widths = HEAD.map(|h| h.chars().count());
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let render = |cells: &[&str]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = " ".repeat(w - c.chars().count());
            // Column 0 is the workload name; the rest are numbers.
            if i == 0 {
                s.push_str(c);
                s.push_str(&pad);
            } else {
                s.push_str(&pad);
                s.push_str(c);
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = render(&HEAD);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&render(&rule.iter().map(String::as_str).collect::<Vec<_>>()));
    for l in &lines {
        out.push_str(&render(&l.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(workload: &str, trial: usize, b50: f64, b95: f64, t50: f64, t95: f64) -> TrialResult {
        TrialResult {
            workload: workload.into(),
            trial,
            baseline_p50_ms: b50,
            baseline_p95_ms: b95,
            tuned_p50_ms: t50,
            tuned_p95_ms: t95,
        }
    }

    /// Two workloads on very different scales, five trials each, interleaved
    /// as a runner would produce them; `web` improves 20 %, `db` 10 %.
    fn sample_trials() -> Vec<TrialResult> {
        let mut v = Vec::new();
        for i in 0..5 {
            let jitter = [0.0, 0.3, -0.2, 0.5, -0.4][i];
            v.push(trial("web", i, 5.0 + jitter, 10.0 + jitter, 4.0 + jitter, 8.0 + jitter * 0.8));
            v.push(trial("db", i, 0.05, 0.1 + jitter / 100.0, 0.045, 0.09 + jitter / 100.0 * 0.9));
        }
        v
    }

    #[test]
    fn one_row_per_workload_in_order_then_overall() {
        let rows = summarize(&sample_trials(), 1);
        let names: Vec<&str> = rows.iter().map(|r| r.workload.as_str()).collect();
        assert_eq!(names, ["web", "db", OVERALL]);
        assert!(rows.iter().all(|r| r.trials == 5));
    }

    #[test]
    fn workload_row_is_medians_and_their_improvement() {
        let rows = summarize(&sample_trials(), 1);
        let web = &rows[0];
        // Baseline p95s 10, 10.3, 9.8, 10.5, 9.6 → median 10; tuned 8 + 0.8·jitter → 8.
        assert_eq!(web.baseline_p95_ms, 10.0);
        assert_eq!(web.tuned_p95_ms, 8.0);
        assert!((web.improvement_pct - 20.0).abs() < 1e-9);
        assert_eq!(web.baseline_p50_ms, 5.0);
        assert_eq!(web.tuned_p50_ms, 4.0);
        assert!(web.ci95_low_pct <= web.improvement_pct && web.improvement_pct <= web.ci95_high_pct);
    }

    #[test]
    fn overall_is_geometric_mean_per_trial() {
        // One trial: web 10 → 8, db 0.1 → 0.09. Geometric means:
        // baseline √(10·0.1) = 1, tuned √(8·0.09) = √0.72.
        let trials = [trial("web", 0, 5.0, 10.0, 4.0, 8.0), trial("db", 0, 0.05, 0.1, 0.045, 0.09)];
        let overall = summarize(&trials, 0).pop().unwrap();
        assert_eq!(overall.workload, OVERALL);
        assert!((overall.baseline_p95_ms - 1.0).abs() < 1e-12);
        assert!((overall.tuned_p95_ms - 0.72f64.sqrt()).abs() < 1e-12);
        // 1 − √(0.8 · 0.9): the typical relative change, not web's 20 %.
        assert!((overall.improvement_pct - (1.0 - 0.72f64.sqrt()) * 100.0).abs() < 1e-9);
    }

    #[test]
    fn overall_skips_trials_missing_a_workload() {
        let mut trials = sample_trials();
        trials.push(trial("web", 5, 5.0, 10.0, 4.0, 8.0));
        let rows = summarize(&trials, 1);
        assert_eq!(rows[0].trials, 6);
        assert_eq!(rows[2].trials, 5);
    }

    #[test]
    fn empty_input_gives_no_rows() {
        assert!(summarize(&[], 1).is_empty());
    }

    #[test]
    fn csv_header_is_exact() {
        let csv = to_csv(&summarize(&sample_trials(), 1));
        assert_eq!(
            csv.lines().next().unwrap(),
            "workload,trials,baseline_p95_ms,tuned_p95_ms,improvement_pct,ci95_low_pct,ci95_high_pct,baseline_p50_ms,tuned_p50_ms"
        );
        assert!(csv.lines().any(|l| l.starts_with("overall,5,")));
    }

    #[test]
    fn csv_is_byte_identical_for_identical_input() {
        let a = to_csv(&summarize(&sample_trials(), 9));
        let b = to_csv(&summarize(&sample_trials(), 9));
        assert_eq!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn csv_uses_fixed_decimals() {
        let row = SummaryRow {
            workload: "w".into(),
            trials: 3,
            baseline_p95_ms: 10.0,
            tuned_p95_ms: 8.12345,
            improvement_pct: 18.7655,
            ci95_low_pct: -0.001,
            ci95_high_pct: 30.0,
            baseline_p50_ms: 5.0,
            tuned_p50_ms: f64::NAN,
        };
        let csv = to_csv(&[row]);
        assert_eq!(csv.lines().nth(1).unwrap(), "w,3,10.000,8.123,18.77,0.00,30.00,5.000,NaN");
    }

    #[test]
    fn csv_round_trips_at_written_precision() {
        let rows = summarize(&sample_trials(), 1);
        let csv = to_csv(&rows);
        let back = from_csv(&csv).unwrap();
        assert_eq!(back.len(), rows.len());
        assert_eq!(back[0].workload, "web");
        assert_eq!(back[0].baseline_p95_ms, 10.0);
        assert_eq!(to_csv(&back), csv);
    }

    #[test]
    fn from_csv_rejects_other_header() {
        let err = from_csv("workload,trials\nweb,3\n").unwrap_err().to_string();
        assert!(err.contains("expected `workload,trials,baseline_p95_ms"), "{err}");
    }

    #[test]
    fn from_csv_names_bad_line() {
        let text = format!("{CSV_HEADER}\nweb,3,1,1,0,0,0,1,1\ndb,x,1,1,0,0,0,1,1\n");
        let err = format!("{:#}", from_csv(&text).unwrap_err());
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn table_is_aligned() {
        let table = to_table(&summarize(&sample_trials(), 1));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + 3);
        assert!(lines[0].starts_with("workload"));
        assert!(lines[2].starts_with("web "));
        assert!(lines[4].starts_with("overall"));
        // Right-aligned numeric columns end at the same offset on every line.
        let ends: Vec<usize> = lines.iter().map(|l| l.len()).collect();
        assert!(ends.iter().all(|&e| e == ends[0]), "{table}");
    }
}
