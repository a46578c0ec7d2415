//! How a symptom signal is judged over a window of several snapshots, so
//! that repeated diagnoses under the same steady load agree and one burst
//! or one quiet moment does not decide.
//!
//! The rule (README, "diagnose"):
//!
//! * `n` snapshots in time order give `n − 1` sub-intervals.
//! * A `gauge` or `ratio` is read at the end of each sub-interval. Its signal
//!   holds when it holds in at least ⌈2/3 · m⌉ of the `m` sub-intervals in
//!   which it could be read: a level must be sustained. The value shown is
//!   the median reading.
//! * A `rate` or `delta` is read per sub-interval. With three or more, the
//!   highest and the lowest are dropped and the rest averaged (a rate as kept
//!   increase over kept seconds): one burst cannot make a finding, and
//!   sparse but steady events (one overflow a second, seen in half of the
//!   short sub-intervals) still count. With one or two sub-intervals it is
//!   the plain rate over the window, as from two snapshots.
//! * A signal that cannot be read in more than half of the sub-intervals (a
//!   metric absent, a limit of 0, no listener) is *no data*, never a pass or
//!   a fail.
//!
//! With two snapshots (one sub-interval) every rule reduces to the plain
//! two-snapshot reading, so the simulator's rounds are judged as before.

use crate::kb::entry::{Measure, Op, Signal};
use crate::kb::metric::match_metric;
use crate::telemetry::Window;

/// One sub-interval as the window rule reads it: the values of two consecutive samples and the
/// time between. Two snapshots (`Window`) are one; two rows of the agent's columns
/// (`reasoning::columns`) are another, so both are judged by this one rule and cannot disagree.
pub trait Interval {
    /// Seconds between the two samples.
    fn seconds(&self) -> f64;
    /// The later sample's timestamp (ms).
    fn end_ms(&self) -> u64;
    /// A metric's value in the earlier sample.
    fn before(&self, name: &str) -> Option<f64>;
    /// A metric's value in the later sample.
    fn after(&self, name: &str) -> Option<f64>;
    /// Each metric of the later sample whose name starts with `prefix`, in name order.
    fn after_prefixed(&self, prefix: &str, each: &mut dyn FnMut(&str, f64));
}

impl Interval for Window<'_> {
    fn seconds(&self) -> f64 {
        Window::seconds(self)
    }

    fn end_ms(&self) -> u64 {
        self.after.timestamp_ms
    }

    fn before(&self, name: &str) -> Option<f64> {
        self.before.get(name)
    }

    fn after(&self, name: &str) -> Option<f64> {
        self.after.get(name)
    }

    fn after_prefixed(&self, prefix: &str, each: &mut dyn FnMut(&str, f64)) {
        for (k, v) in self.after.metrics.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded)).take_while(|(k, _)| k.starts_with(prefix)) {
            each(k, *v);
        }
    }
}

/// Increase of a counter over `w`; a counter that went backwards (reset, wrap) counts from zero
/// (`Window::delta`'s rule).
fn delta(w: &impl Interval, name: &str) -> Option<f64> {
    let a = w.after(name)?;
    match w.before(name) {
        Some(b) if a >= b => Some(a - b),
        _ => Some(a),
    }
}

/// Per-second rate of a counter over `w` (`Window::rate`'s rule).
fn rate(w: &impl Interval, name: &str) -> Option<f64> {
    let s = w.seconds();
    if s <= 0.0 {
        return None;
    }
    Some(delta(w, name)? / s)
}

/// A signal's readings over a window and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// What was read, for evidence (`a / b` for a ratio, the worst instance for a pattern).
    pub label: String,
    /// One reading per sub-interval; `None` where it could not be read.
    pub samples: Vec<Option<f64>>,
    /// The window's value: median of a level, trimmed mean of a rate; `None` when no data.
    pub value: Option<f64>,
    /// Whether the signal holds over the window (false when no data).
    pub holds: bool,
}

impl Judged {
    /// Whether the signal could not be judged: read in fewer than half of the sub-intervals.
    pub fn no_data(&self) -> bool {
        self.value.is_none()
    }

    /// Whether the reading of sub-interval `i` alone passes the threshold.
    pub fn held_at(&self, i: usize, s: &Signal) -> bool {
        self.samples.get(i).copied().flatten().is_some_and(|v| s.op.holds(v, s.value))
    }
}

/// Judges `s` over `windows` (the consecutive sub-intervals of a diagnosis window).
pub fn judge<I: Interval>(windows: &[I], s: &Signal) -> Judged {
    // Labels are made for the one reading the evidence shows, not for every sub-interval's.
    let reads: Vec<Option<(f64, Option<String>)>> = windows.iter().map(|w| reading(w, s)).collect();
    let samples: Vec<Option<f64>> = reads.iter().map(|r| r.as_ref().map(|(v, _)| *v)).collect();
    let readable = samples.iter().flatten().count();
    let label = reads.iter().rev().flatten().find(|(v, _)| s.op.holds(*v, s.value)).or_else(|| reads.iter().rev().flatten().next()).map(|(_, l)| l.clone().unwrap_or_else(|| own_label(s)));
    let label = label.unwrap_or_else(|| default_label(s));
    if readable == 0 || readable * 2 < windows.len() {
        return Judged { label, samples, value: None, holds: false };
    }
    let (value, holds) = match s.measure {
        Measure::Gauge | Measure::Ratio => {
            let held = samples.iter().flatten().filter(|v| s.op.holds(**v, s.value)).count();
            let need = (2 * readable).div_ceil(3);
            (median(samples.iter().flatten().copied().collect()), held >= need)
        }
        Measure::Rate | Measure::Delta => {
            let v = trimmed(windows, &samples, s.measure);
            (v, s.op.holds(v, s.value))
        }
    };
    Judged { label, samples, value: Some(value), holds }
}

fn default_label(s: &Signal) -> String {
    match &s.per {
        Some(per) => format!("{} / {per}", s.metric),
        None => s.metric.clone(),
    }
}

/// One sub-interval's reading of `s` and what it names; `None` when a metric it needs is absent.
pub fn read(w: &impl Interval, s: &Signal) -> Option<(f64, String)> {
    reading(w, s).map(|(v, l)| (v, l.unwrap_or_else(|| own_label(s))))
}

/// One sub-interval's reading of `s`, with what it names when that is not `own_label(s)` (the
/// instance of a pattern ratio).
fn reading(w: &impl Interval, s: &Signal) -> Option<(f64, Option<String>)> {
    let v = match s.measure {
        Measure::Rate => rate(w, &s.metric)?,
        Measure::Delta => delta(w, &s.metric)?,
        Measure::Gauge => w.after(&s.metric)?,
        Measure::Ratio => return ratio(w, &s.metric, s.per.as_deref()?, s.op),
    };
    Some((v, None))
}

/// What a reading of `s` names unless it is a pattern's instance: the metric, or `num / den`.
fn own_label(s: &Signal) -> String {
    match (s.measure, &s.per) {
        (Measure::Ratio, Some(per)) => format!("{} / {per}", s.metric),
        _ => s.metric.clone(),
    }
}

/// `num / den` at the end of `w`. With a `*` in both, per instance, and the
/// instance that passes the threshold most easily counts (the fullest queue
/// for `>`, the emptiest for `<`): a limit binds where it is closest.
fn ratio(w: &impl Interval, num: &str, den: &str, op: Op) -> Option<(f64, Option<String>)> {
    if !num.contains('*') {
        let (n, d) = (w.after(num)?, w.after(den)?);
        return (d != 0.0).then_some((n / d, None));
    }
    let prefix = &num[..num.find('*')?];
    let mut worst: Option<(f64, String)> = None;
    w.after_prefixed(prefix, &mut |name, n| {
        let Some(inst) = match_metric(num, name) else { return };
        let den_name = den.replacen('*', inst, 1);
        let Some(d) = w.after(&den_name).filter(|d| *d != 0.0) else { return };
        let r = n / d;
        let better = match (&worst, op) {
            (None, _) => true,
            (Some((b, _)), Op::Gt | Op::Ge) => r > *b,
            (Some((b, _)), Op::Lt | Op::Le) => r < *b,
            (Some(_), Op::Eq | Op::Ne) => false,
        };
        if better {
            worst = Some((r, format!("{name} / {den_name}")));
        }
    });
    worst.map(|(r, l)| (r, Some(l)))
}

/// Median of the values (mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The trimmed mean of a counter's per-sub-interval readings: with three
/// or more, the highest and the lowest are left out; a rate is the kept
/// increase over the kept seconds, a delta the mean kept increase.
fn trimmed<I: Interval>(windows: &[I], samples: &[Option<f64>], measure: Measure) -> f64 {
    let mut kept: Vec<(f64, f64)> = windows.iter().zip(samples).filter_map(|(w, v)| v.map(|v| (v, w.seconds()))).collect();
    if kept.len() >= 3 {
        kept.sort_by(|a, b| a.0.total_cmp(&b.0));
        kept = kept[1..kept.len() - 1].to_vec();
    }
    let secs: f64 = kept.iter().map(|(_, s)| s).sum();
    match measure {
        Measure::Rate if secs > 0.0 => kept.iter().map(|(r, s)| r * s).sum::<f64>() / secs,
        _ => kept.iter().map(|(v, _)| v).sum::<f64>() / kept.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{HostFacts, Snapshot};

    /// Snapshots one second apart with `metric` at the given values (`None`: absent).
    fn series(metric: &str, values: &[Option<f64>]) -> Vec<Snapshot> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut s = Snapshot::new(HostFacts::default(), 1000 * i as u64);
                if let Some(v) = v {
                    s.set(metric, *v);
                }
                s
            })
            .collect()
    }

    fn signal(metric: &str, measure: Measure, per: Option<&str>, op: Op, value: f64) -> Signal {
        Signal { metric: metric.into(), measure, per: per.map(String::from), op, value }
    }

    fn check(snaps: &[Snapshot], s: &Signal) -> Judged {
        judge(&Window::sub_intervals(snaps), s)
    }

    #[test]
    fn one_burst_does_not_make_a_rate_finding() {
        let s = signal("netstat.TcpExt.ListenOverflows", Measure::Rate, None, Op::Gt, 0.2);
        // 40 overflows in one of four seconds: the plain window rate (10/s) would fire.
        let j = check(&series(&s.metric, &[Some(0.0), Some(0.0), Some(40.0), Some(40.0), Some(40.0)]), &s);
        assert_eq!((j.value, j.holds), (Some(0.0), false));
        assert_eq!(j.samples, vec![Some(0.0), Some(40.0), Some(0.0), Some(0.0)]);
    }

    #[test]
    fn sparse_steady_events_still_count() {
        let s = signal("netstat.TcpExt.ListenOverflows", Measure::Rate, None, Op::Gt, 0.2);
        // One event every other second: half of the sub-intervals see none.
        let j = check(&series(&s.metric, &[Some(0.0), Some(1.0), Some(1.0), Some(2.0), Some(2.0), Some(3.0)]), &s);
        assert!(j.holds && j.value.unwrap() > 0.2, "{j:?}");
    }

    #[test]
    fn a_level_must_hold_in_two_thirds_of_the_sub_intervals() {
        let s = signal("psi.io.some.avg10", Measure::Gauge, None, Op::Gt, 5.0);
        let at = |v: &[f64]| check(&series(&s.metric, &v.iter().map(|x| Some(*x)).collect::<Vec<_>>()), &s).holds;
        assert!(at(&[0.0, 9.0, 9.0, 1.0]), "2 of 3");
        assert!(!at(&[0.0, 9.0, 1.0, 1.0]), "1 of 3");
        assert!(at(&[0.0, 9.0, 9.0, 9.0, 1.0]), "3 of 4");
        assert!(!at(&[0.0, 9.0, 9.0, 1.0, 1.0]), "2 of 4");
        assert!(at(&[0.0, 9.0]), "two snapshots: the later one decides, as before");
    }

    #[test]
    fn a_missing_limit_is_no_data_not_a_pass_or_a_fail() {
        let s = signal("vmstat.nr_dirty", Measure::Ratio, Some("vmstat.nr_dirty_threshold"), Op::Gt, 0.5);
        let j = check(&series("vmstat.nr_dirty", &[Some(9.0), Some(9.0), Some(9.0)]), &s);
        assert!(j.no_data() && !j.holds, "{j:?}");
        let mut snaps = series("vmstat.nr_dirty", &[Some(9.0), Some(9.0), Some(9.0)]);
        snaps[1].set("vmstat.nr_dirty_threshold", 10.0);
        snaps[2].set("vmstat.nr_dirty_threshold", 0.0);
        // Readable in one of two sub-intervals: half is enough to judge.
        let j = check(&snaps, &s);
        assert_eq!((j.value, j.holds), (Some(0.9), true), "{j:?}");
        snaps.push(snaps[2].clone());
        snaps[3].timestamp_ms = 3000;
        assert!(check(&snaps, &s).no_data(), "one of three is not enough");
    }

    #[test]
    fn a_pattern_ratio_is_judged_per_instance() {
        let s = signal("listen.*.queue.max", Measure::Ratio, Some("listen.*.backlog"), Op::Ge, 1.0);
        let mut a = Snapshot::new(HostFacts::default(), 0);
        let mut b = Snapshot::new(HostFacts::default(), 1000);
        for snap in [&mut a, &mut b] {
            // A big listener nearly empty and a small one full: the maxima (10 of 4096) would hide it.
            snap.set("listen.22.queue.max", 0.0);
            snap.set("listen.22.backlog", 4096.0);
            snap.set("listen.8080.queue.max", 10.0);
            snap.set("listen.8080.backlog", 8.0);
            snap.set("listen.queue.max", 10.0);
            snap.set("listen.backlog.max", 4096.0);
        }
        let j = check(&[a, b], &s);
        assert_eq!((j.value, j.holds), (Some(1.25), true));
        assert_eq!(j.label, "listen.8080.queue.max / listen.8080.backlog");
    }
}
