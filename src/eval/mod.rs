//! Evaluation: did the tuned sysctls make the workloads faster, and how sure
//! are we?
//!
//! `eval` owns everything between raw latency measurements and the numbers a
//! user reads:
//! * paired trials ([`TrialResult`]): each workload runs on the baseline and
//!   on the tuned sysctls with the same seed, so trial-to-trial noise cancels
//!   in the comparison;
//! * statistics ([`stats`]): type-7 percentiles, medians, relative
//!   improvement, paired bootstrap confidence intervals, effect sizes
//!   (Cohen's d, Hodges–Lehmann shift) and a Mann–Whitney U test for A/A
//!   noise checks;
//! * the summary ([`summary`]): one [`SummaryRow`] per workload plus an
//!   `overall` row, rendered as the byte-stable `summary.csv` and as a text
//!   table for the terminal;
//! * figures ([`plot`]): SVG bar charts of the summary and latency
//!   distribution plots.
//!
//! **Invariant: eval never reports a number it did not measure.** A value
//! that cannot be computed from the trials (no trials, a zero baseline, a
//! bootstrap that hit an undefined resample) is `NaN` and is printed as
//! `NaN` or `n/a`, never replaced by a default, zero or a guess.
//!
//! * the real-workload harness ([`harness`], [`process`]): a user's command
//!   run with a deadline (its whole process group killed at it), in a named
//!   network namespace when asked, its printed latencies parsed.
//!
//! Everything else here is pure: functions from numbers to numbers, text or
//! SVG. Randomness (the bootstrap) comes from a seed the caller passes; files
//! are written by the caller.

pub mod harness;
pub mod plot;
pub mod process;
pub mod stats;
pub mod summary;

pub use plot::{render_distributions_svg, render_svg};
pub use stats::{
    bootstrap_ci, cohens_d, hodges_lehmann_shift, improvement_pct, mann_whitney_u_p, mean, median, percentile, std_dev,
};
pub use summary::{CSV_HEADER, OVERALL, SummaryRow, TrialResult, from_csv, summarize, to_csv, to_table};
