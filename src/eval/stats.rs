//! Pure statistics over latency samples: percentiles, location and spread,
//! relative improvement, a paired bootstrap confidence interval, effect sizes
//! and a Mann–Whitney U test.
//!
//! Everything here is a pure function of its arguments. The only randomness
//! (the bootstrap) comes from a seed the caller passes in and a generator we
//! name explicitly ([`rand_pcg::Pcg64Mcg`]), so the same inputs and seed give
//! the same interval bit for bit on every run and every machine.
//!
//! Conventions:
//! * Inputs are assumed NaN-free (they are measured latencies).
//! * Where a statistic is undefined (empty input, a single sample for a
//!   standard deviation, a zero baseline for a relative change) the result
//!   is `NaN`, never a made-up number; callers print it as `NaN`.
//! * Percentiles are given in percent (`95.0`, not `0.95`); confidence
//!   levels as fractions (`0.95`), as is customary for each.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// The `p`-th percentile of `samples` (`p` in percent, `0.0..=100.0`),
/// by linear interpolation between closest ranks: Hyndman & Fan's
/// "type 7", the default of R, NumPy and Excel's `PERCENTILE.INC`.
///
/// With the `n` samples sorted ascending as `x[0] ≤ … ≤ x[n-1]`, let
/// `h = (n - 1) · p / 100`; the result is
/// `x[⌊h⌋] + (h - ⌊h⌋) · (x[⌊h⌋ + 1] - x[⌊h⌋])`.
/// So `p = 0` is the minimum, `p = 100` the maximum, `p = 50` the median,
/// and the 95th percentile of `1, 2, …, 10` is `9.55`.
///
/// Sorts a copy; the input is left untouched. Returns `NaN` for empty input
/// or for `p` outside `0..=100` (or `NaN`). Input is assumed NaN-free.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() || !(0.0..=100.0).contains(&p) {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_sorted(&sorted, p)
}

/// Type-7 percentile of an already sorted, non-empty slice; `p` in `0..=100`.
fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p / 100.0;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = h - lo as f64;
    // Written as a + f·(b − a) so that f = 0 returns x[lo] exactly and a run
    // of equal values interpolates to exactly that value.
    sorted[lo] + frac * (sorted[hi] - sorted[lo])
}

/// The median: the 50th [`percentile`] (the mean of the two middle values
/// for an even count). `NaN` for empty input.
pub fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

/// Arithmetic mean. `NaN` for empty input.
pub fn mean(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.iter().sum::<f64>() / samples.len() as f64
}

/// Sample standard deviation (with Bessel's correction, dividing by
/// `n - 1`). `NaN` for fewer than two samples.
pub fn std_dev(samples: &[f64]) -> f64 {
    if samples.len() < 2 {
        return f64::NAN;
    }
    let m = mean(samples);
    let ss: f64 = samples.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (samples.len() - 1) as f64).sqrt()
}

/// Relative improvement of `tuned` over `baseline`, in percent:
/// `(baseline - tuned) / baseline · 100`.
///
/// Positive means tuned is lower (for latency: faster); `-25.0` means
/// tuned is 25 % slower. `NaN` when `baseline` is zero, since a change
/// relative to nothing is undefined.
pub fn improvement_pct(baseline: f64, tuned: f64) -> f64 {
    if baseline == 0.0 {
        return f64::NAN;
    }
    (baseline - tuned) / baseline * 100.0
}

/// Paired percentile-bootstrap confidence interval for
/// `improvement_pct(stat(baseline), stat(tuned))`.
///
/// `baseline[i]` and `tuned[i]` are the two arms of trial `i` and share its
/// seed, so they are resampled *jointly*: each of the `resamples` rounds
/// draws `n` trial indices with replacement and evaluates `stat` on the
/// baseline and tuned values at those indices. Keeping pairs together keeps
/// the between-trial correlation, which makes the interval narrower than an
/// unpaired bootstrap would, and honestly so.
///
/// Returns the `(1 - level) / 2` and `(1 + level) / 2` type-7 percentiles of
/// the resampled improvements, e.g. the 2.5th and 97.5th for `level = 0.95`.
///
/// Deterministic: indices come from [`Pcg64Mcg`] seeded with `seed`, so the
/// same inputs and seed give the same interval bit for bit.
///
/// Returns `(NaN, NaN)` for empty arms, `resamples == 0`, `level` outside
/// the open interval `(0, 1)`, or when any resampled improvement is not
/// finite (e.g. a resample whose baseline statistic is zero): an interval
/// computed from the rounds that happened to work would overstate what we
/// know.
///
/// # Panics
///
/// If the arms have different lengths: they are paired by construction, so
/// a mismatch is a bug in the caller.
pub fn bootstrap_ci(
    baseline: &[f64],
    tuned: &[f64],
    stat: fn(&[f64]) -> f64,
    resamples: usize,
    seed: u64,
    level: f64,
) -> (f64, f64) {
    assert_eq!(
        baseline.len(),
        tuned.len(),
        "bootstrap_ci needs paired arms: baseline has {} trials, tuned has {}",
        baseline.len(),
        tuned.len()
    );
    let n = baseline.len();
    if n == 0 || resamples == 0 || !(level > 0.0 && level < 1.0) {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut b = vec![0.0; n];
    let mut t = vec![0.0; n];
    let mut improvements = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for k in 0..n {
            let i = rng.random_range(0..n);
            b[k] = baseline[i];
            t[k] = tuned[i];
        }
        let imp = improvement_pct(stat(&b), stat(&t));
        if !imp.is_finite() {
            return (f64::NAN, f64::NAN);
        }
        improvements.push(imp);
    }
    improvements.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    (percentile_sorted(&improvements, alpha * 100.0), percentile_sorted(&improvements, (1.0 - alpha) * 100.0))
}

/// Cohen's d for two independent samples: `(mean(a) - mean(b)) / s_pooled`,
/// with `s_pooled² = ((n_a - 1)·s_a² + (n_b - 1)·s_b²) / (n_a + n_b - 2)`.
///
/// With `a = baseline` and `b = tuned`, positive means tuned is lower.
/// Rough conventional reading: 0.2 small, 0.5 medium, 0.8 large.
/// `NaN` if either sample has fewer than two values or the pooled standard
/// deviation is zero.
pub fn cohens_d(a: &[f64], b: &[f64]) -> f64 {
    if a.len() < 2 || b.len() < 2 {
        return f64::NAN;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let pooled_var = ((na - 1.0) * std_dev(a).powi(2) + (nb - 1.0) * std_dev(b).powi(2)) / (na + nb - 2.0);
    if pooled_var == 0.0 {
        return f64::NAN;
    }
    (mean(a) - mean(b)) / pooled_var.sqrt()
}

/// Hodges–Lehmann estimate of the location shift between `a` and `b`: the
/// median of all `n_a · n_b` pairwise differences `a[i] - b[j]`.
///
/// A robust effect size in the data's own unit (ms for latencies): with
/// `a = baseline` and `b = tuned`, `2.0` means tuned is typically 2 ms lower.
/// Unlike a difference of means it ignores a few wild trials. `NaN` if
/// either sample is empty.
pub fn hodges_lehmann_shift(a: &[f64], b: &[f64]) -> f64 {
    let diffs: Vec<f64> = a.iter().flat_map(|x| b.iter().map(move |y| x - y)).collect();
    median(&diffs)
}

/// Two-sided p-value of the Mann–Whitney U test (Wilcoxon rank-sum) that
/// `a` and `b` come from the same distribution, by the normal approximation
/// with a tie correction and a continuity correction.
///
/// Meant as an A/A noise check: run the same configuration in both arms and
/// the p-value should usually be large; a small one means the harness itself
/// separates the arms (ordering, warm-up, thermal drift).
///
/// Tied values get their average rank; `U = R_a - n_a(n_a + 1)/2`,
/// `μ = n_a n_b / 2`,
/// `σ² = n_a n_b / 12 · ((n + 1) - Σ(t³ - t) / (n(n - 1)))` over tie groups
/// of size `t`, and `z = max(|U - μ| - ½, 0) / σ`; `p = erfc(z / √2)`.
/// The approximation is fair from about eight values per arm.
///
/// Returns `1.0` when every value is equal (`σ = 0`: nothing separates the
/// arms) and `NaN` if either sample is empty.
pub fn mann_whitney_u_p(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let (na, nb) = (a.len(), b.len());
    let n = na + nb;
    // (value, is_from_a), sorted by value.
    let mut all: Vec<(f64, bool)> = a.iter().map(|&x| (x, true)).chain(b.iter().map(|&x| (x, false))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));

    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && all[j].0 == all[i].0 {
            j += 1;
        }
        // Positions i..j (0-based) hold ranks i+1..=j; their average:
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        let from_a = all[i..j].iter().filter(|e| e.1).count();
        rank_sum_a += avg_rank * from_a as f64;
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }

    let (na_f, nb_f, n_f) = (na as f64, nb as f64, n as f64);
    let u = rank_sum_a - na_f * (na_f + 1.0) / 2.0;
    let mu = na_f * nb_f / 2.0;
    let var = na_f * nb_f / 12.0 * ((n_f + 1.0) - tie_term / (n_f * (n_f - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((u - mu).abs() - 0.5).max(0.0) / var.sqrt();
    erfc(z / std::f64::consts::SQRT_2).min(1.0)
}

/// Complementary error function, via the Chebyshev fit of Numerical Recipes
/// (`erfcc`, fractional error below 1.2e-7 everywhere): ample for p-values,
/// and std's `erfc` is not stable yet.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Asserts `got` is within `tol` of `want`, treating NaN as equal to NaN.
    #[track_caller]
    fn check(got: f64, want: f64, tol: f64) {
        if want.is_nan() {
            assert!(got.is_nan(), "expected NaN, got {got}");
        } else {
            assert!((got - want).abs() <= tol, "expected {want} ± {tol}, got {got}");
        }
    }

    const ONE_TO_TEN: [f64; 10] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];

    #[test]
    fn percentile_type7_hand_computed() {
        // h = 9 · 0.95 = 8.55 → x[8] + 0.55 · (x[9] − x[8]) = 9 + 0.55.
        check(percentile(&ONE_TO_TEN, 95.0), 9.55, 1e-12);
        check(percentile(&ONE_TO_TEN, 0.0), 1.0, 0.0);
        check(percentile(&ONE_TO_TEN, 100.0), 10.0, 0.0);
        check(percentile(&ONE_TO_TEN, 50.0), 5.5, 1e-12);
        // h = 9 · 0.25 = 2.25 → 3 + 0.25.
        check(percentile(&ONE_TO_TEN, 25.0), 3.25, 1e-12);
        // Order of the input does not matter, and it is not modified.
        let shuffled = [7.0, 1.0, 10.0, 3.0, 5.0, 2.0, 9.0, 4.0, 8.0, 6.0];
        check(percentile(&shuffled, 95.0), 9.55, 1e-12);
        assert_eq!(shuffled[0], 7.0);
        // A single sample is every percentile.
        check(percentile(&[4.2], 99.0), 4.2, 0.0);
    }

    #[test]
    fn percentile_undefined_is_nan() {
        check(percentile(&[], 50.0), f64::NAN, 0.0);
        check(percentile(&ONE_TO_TEN, -1.0), f64::NAN, 0.0);
        check(percentile(&ONE_TO_TEN, 100.5), f64::NAN, 0.0);
        check(percentile(&ONE_TO_TEN, f64::NAN), f64::NAN, 0.0);
    }

    #[test]
    fn location_and_spread_hand_computed() {
        check(median(&[3.0, 1.0, 2.0]), 2.0, 0.0);
        check(median(&[4.0, 1.0, 3.0, 2.0]), 2.5, 0.0);
        check(mean(&ONE_TO_TEN), 5.5, 1e-12);
        // Σ(x − 5)² over 2,4,4,4,5,5,7,9 = 32; 32 / 7 = 4.571428…
        check(std_dev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), (32.0f64 / 7.0).sqrt(), 1e-12);
        check(median(&[]), f64::NAN, 0.0);
        check(mean(&[]), f64::NAN, 0.0);
        check(std_dev(&[1.0]), f64::NAN, 0.0);
    }

    #[test]
    fn improvement_sign_and_zero_baseline() {
        check(improvement_pct(10.0, 8.0), 20.0, 1e-12);
        check(improvement_pct(10.0, 12.5), -25.0, 1e-12);
        check(improvement_pct(10.0, 10.0), 0.0, 0.0);
        check(improvement_pct(0.0, 1.0), f64::NAN, 0.0);
    }

    /// Twenty paired trials where tuned is about 20 % lower, with trial noise.
    fn paired_arms() -> (Vec<f64>, Vec<f64>) {
        let baseline: Vec<f64> = (0..20).map(|i| 10.0 + (i * 7 % 5) as f64 * 0.4).collect();
        let tuned: Vec<f64> = baseline.iter().enumerate().map(|(i, b)| b * 0.8 + (i % 3) as f64 * 0.1).collect();
        (baseline, tuned)
    }

    #[test]
    fn bootstrap_ci_contains_point_estimate() {
        let (b, t) = paired_arms();
        let point = improvement_pct(median(&b), median(&t));
        let (lo, hi) = bootstrap_ci(&b, &t, median, 2000, 42, 0.95);
        assert!(lo <= point && point <= hi, "{lo} ≤ {point} ≤ {hi}");
        assert!(lo > 0.0, "a clear 20 % improvement should exclude 0: {lo}");
        let (lo_m, hi_m) = bootstrap_ci(&b, &t, mean, 2000, 42, 0.95);
        let point_m = improvement_pct(mean(&b), mean(&t));
        assert!(lo_m <= point_m && point_m <= hi_m);
    }

    #[test]
    fn bootstrap_ci_is_deterministic_per_seed() {
        let (b, t) = paired_arms();
        let a = bootstrap_ci(&b, &t, median, 500, 7, 0.95);
        let again = bootstrap_ci(&b, &t, median, 500, 7, 0.95);
        assert_eq!(a.0.to_bits(), again.0.to_bits());
        assert_eq!(a.1.to_bits(), again.1.to_bits());
        let other = bootstrap_ci(&b, &t, mean, 500, 8, 0.95);
        let other_again = bootstrap_ci(&b, &t, mean, 500, 8, 0.95);
        assert_eq!((other.0.to_bits(), other.1.to_bits()), (other_again.0.to_bits(), other_again.1.to_bits()));
    }

    #[test]
    fn bootstrap_ci_of_identical_arms_is_zero() {
        // Paired resampling of identical arms gives exactly 0 every round.
        let (b, _) = paired_arms();
        let (lo, hi) = bootstrap_ci(&b, &b, median, 1000, 1, 0.95);
        check(lo, 0.0, 0.0);
        check(hi, 0.0, 0.0);
    }

    #[test]
    fn bootstrap_ci_of_same_distribution_straddles_zero() {
        // Two arms from the same distribution but not paired value by value.
        let b: Vec<f64> = (0..30).map(|i| 10.0 + (i * 7 % 11) as f64 * 0.3).collect();
        let t: Vec<f64> = (0..30).map(|i| 10.0 + (i * 5 % 11) as f64 * 0.3).collect();
        let (lo, hi) = bootstrap_ci(&b, &t, median, 2000, 3, 0.95);
        assert!(lo < 0.0 && 0.0 < hi, "[{lo}, {hi}] should straddle 0");
    }

    #[test]
    fn bootstrap_ci_undefined_is_nan() {
        let nan = |(lo, hi): (f64, f64)| lo.is_nan() && hi.is_nan();
        assert!(nan(bootstrap_ci(&[], &[], median, 100, 0, 0.95)));
        assert!(nan(bootstrap_ci(&[1.0, 2.0], &[1.0, 2.0], median, 0, 0, 0.95)));
        assert!(nan(bootstrap_ci(&[1.0, 2.0], &[1.0, 2.0], median, 10, 0, 1.0)));
        assert!(nan(bootstrap_ci(&[0.0, 0.0], &[1.0, 2.0], median, 10, 0, 0.95)));
    }

    #[test]
    #[should_panic(expected = "paired arms")]
    fn bootstrap_ci_rejects_unpaired_arms() {
        bootstrap_ci(&[1.0, 2.0], &[1.0], median, 10, 0, 0.95);
    }

    #[test]
    fn effect_sizes_hand_computed() {
        // Means 3 and 2; both variances 2.5 → pooled sd √2.5; d = 1 / 1.5811…
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [0.0, 1.0, 2.0, 3.0, 4.0];
        check(cohens_d(&a, &b), 1.0 / 2.5f64.sqrt(), 1e-12);
        check(cohens_d(&b, &a), -1.0 / 2.5f64.sqrt(), 1e-12);
        check(cohens_d(&[1.0, 1.0], &[1.0, 1.0]), f64::NAN, 0.0);
        // Differences of [10, 20] − [1, 2]: 9, 8, 19, 18 → median 13.5.
        check(hodges_lehmann_shift(&[10.0, 20.0], &[1.0, 2.0]), 13.5, 1e-12);
        check(hodges_lehmann_shift(&a, &b), 1.0, 1e-12);
        check(hodges_lehmann_shift(&[], &b), f64::NAN, 0.0);
    }

    #[test]
    fn mann_whitney_hand_computed() {
        // Fully separated: U = 0, μ = 4.5, σ² = 9/12 · 7 = 5.25,
        // z = (4.5 − 0.5) / √5.25 = 1.745743…, p = erfc(z/√2) = 0.080856…
        check(mann_whitney_u_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 0.080856, 1e-5);
        // Symmetric in the arms.
        check(mann_whitney_u_p(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]), 0.080856, 1e-5);
        // With ties: ranks of a = 1, 2.5, 4.5 → R = 8, U = 2, μ = 4.5,
        // tie groups of 2 and 2: Σ(t³ − t) = 12, σ² = 0.75 · (7 − 12/30) = 4.95,
        // z = (2.5 − 0.5) / √4.95 = 0.898933…, p = 0.368688…
        check(mann_whitney_u_p(&[1.0, 2.0, 3.0], &[2.0, 3.0, 4.0]), 0.368688, 1e-5);
        // Interleaved identically: U = μ → p = 1.
        check(mann_whitney_u_p(&[1.0, 4.0], &[2.0, 3.0]), 1.0, 1e-12);
        check(mann_whitney_u_p(&[5.0, 5.0], &[5.0, 5.0, 5.0]), 1.0, 0.0);
        check(mann_whitney_u_p(&[], &[1.0]), f64::NAN, 0.0);
    }

    #[test]
    fn erfc_matches_known_values() {
        check(erfc(0.0), 1.0, 1e-7);
        check(erfc(1.0), 0.157_299_207, 1e-7);
        check(erfc(-1.0), 1.842_700_793, 1e-7);
        check(erfc(2.0), 0.004_677_735, 1e-8);
    }

    proptest! {
        #[test]
        fn percentile_is_monotone_and_bounded(
            samples in prop::collection::vec(-1e6f64..1e6, 1..50),
            p in 0.0f64..=100.0,
            q in 0.0f64..=100.0,
        ) {
            let (lo_p, hi_p) = if p <= q { (p, q) } else { (q, p) };
            let a = percentile(&samples, lo_p);
            let b = percentile(&samples, hi_p);
            prop_assert!(a <= b, "percentile({lo_p}) = {a} > percentile({hi_p}) = {b}");
            let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
            let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(min <= a && b <= max);
        }
    }
}
