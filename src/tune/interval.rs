//! The interval a keep decision rests on: a Student t interval of the mean
//! paired log-ratio (candidate over incumbent), which has its stated
//! coverage at the small numbers of pairs a tune can afford.
//!
//! Why not the percentile bootstrap it replaced: over 3 pairs a resample
//! can only re-use those 3 values, so the interval is no wider than their
//! spread, and when all three pairs favour the candidate (1 time in 8 for
//! identical configurations) it excludes zero. On `bdp-transfer` that kept
//! a trial at +34.6 % [+5.9, +54.2] that measured equal afterwards. The t
//! interval widens with the few degrees of freedom (×4.3 at 3 pairs), and
//! for the symmetric, heavy-tailed differences of identical arms it errs
//! on the side of not keeping. A ratio, not a difference: the noise of a
//! latency scales with it, so the log-ratios of pairs measured minutes
//! apart on a loaded machine are comparable.

use super::objective::Direction;
use crate::eval::median;

/// Two-sided 95 % quantiles of Student's t for 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (past 30: 1.96 + 2.4/df, within 0.002).
pub fn t975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        d if d <= T975.len() => T975[d - 1],
        d => 1.96 + 2.4 / d as f64,
    }
}

/// A paired improvement: the point estimate and its 95 % interval, percent, positive when the candidate is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// The improvement at the mean log-ratio (the geometric mean of the pairs' ratios).
    pub improvement_pct: f64,
    /// The 95 % interval of that improvement.
    pub ci95_pct: (f64, f64),
}

/// The paired improvement of `cand` over `inc` (pair `i` ran back to back) in `direction`, or `None`
/// with fewer than 2 pairs or a value that is not finite. Positive values are compared as log-ratios;
/// a pair with a value ≤ 0 (a score, not a time) makes it relative differences over the incumbent's median.
pub fn paired(direction: Direction, inc: &[f64], cand: &[f64]) -> Option<Paired> {
    let n = inc.len().min(cand.len());
    if n < 2 || !inc[..n].iter().chain(&cand[..n]).all(|v| v.is_finite()) {
        return None;
    }
    let sign = match direction {
        Direction::Lower => -1.0,
        Direction::Higher => 1.0,
    };
    let logs = inc[..n].iter().chain(&cand[..n]).all(|v| *v > 0.0);
    let scale = median(&inc[..n]).abs();
    if !logs && scale == 0.0 {
        return None;
    }
    // Each pair's gain in the objective's direction: log(cand/inc), or (cand − inc) / |median(inc)|.
    let d: Vec<f64> = (0..n).map(|i| sign * if logs { (cand[i] / inc[i]).ln() } else { (cand[i] - inc[i]) / scale }).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    let pct = |g: f64| if !logs { g * 100.0 } else if sign < 0.0 { (1.0 - (-g).exp()) * 100.0 } else { (g.exp() - 1.0) * 100.0 };
    Some(Paired { improvement_pct: pct(mean), ci95_pct: (pct(mean - half), pct(mean + half)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_pairs_all_favouring_the_candidate_by_noise_alone_do_not_exclude_zero() {
        // The bootstrap excluded zero here (every resample of three pairs that all lean one way leans that way).
        let p = paired(Direction::Lower, &[1000.0, 1100.0, 950.0], &[900.0, 1050.0, 800.0]).unwrap();
        assert!(p.ci95_pct.0 < 0.0 && p.improvement_pct > 5.0, "{p:?}");
        let boot = crate::eval::bootstrap_ci(&[1000.0, 1100.0, 950.0], &[900.0, 1050.0, 800.0], median, 4000, 1, 0.95);
        assert!(boot.0 > 0.0, "the old interval, for the record: {boot:?}");
    }

    #[test]
    fn a_consistent_ratio_is_its_own_point_and_interval_in_either_direction() {
        let p = paired(Direction::Lower, &[100.0, 200.0, 50.0], &[80.0, 160.0, 40.0]).unwrap();
        assert!((p.improvement_pct - 20.0).abs() < 1e-9 && (p.ci95_pct.0 - 20.0).abs() < 1e-9, "{p:?}");
        let h = paired(Direction::Higher, &[100.0, 200.0], &[110.0, 220.0]).unwrap();
        assert!((h.improvement_pct - 10.0).abs() < 1e-9, "{h:?}");
        let z = paired(Direction::Higher, &[0.0, 1.0, 2.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((z.improvement_pct - 100.0).abs() < 1e-9, "a score through zero is compared by differences: {z:?}");
        assert_eq!(paired(Direction::Lower, &[1.0], &[2.0]), None);
        assert_eq!(paired(Direction::Lower, &[1.0, f64::NAN], &[2.0, 2.0]), None);
    }

    #[test]
    fn t_quantiles_fall_towards_the_normal_one() {
        assert_eq!(t975(2), 4.303);
        assert!((t975(60) - 2.000).abs() < 0.002 && (t975(120) - 1.980).abs() < 0.002);
        assert!(t975(0).is_infinite());
    }
}
