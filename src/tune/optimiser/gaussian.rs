//! Gaussian-process regression over the unit cube, small enough to write out:
//! a tune has at most a few dozen trials, so the model is an exact GP (a
//! Cholesky factor of an n×n matrix), with each observation's own noise
//! (taken from its trial's measured interval) and the length scale chosen
//! by marginal likelihood from a short list. Pure: no I/O, no randomness.
//!
//! The kernel is mostly additive (a sum of one-dimensional squared
//! exponentials) with a product term beside it: what was learnt moving one
//! key carries over to a point that moves that key and another, which a
//! product kernel alone would forget; the product term keeps room for
//! interactions.

use crate::sim::web::normal_cdf;

/// Length scales (unit-cube coordinates) the fit chooses from by marginal likelihood.
const LENGTH_SCALES: [f64; 4] = [0.15, 0.25, 0.4, 0.7];
/// Share of the prior variance in the additive part (the rest is the product part).
const ADDITIVE: f64 = 0.7;
/// The prior's standard deviation when the observations do not yet show a spread (log-ratio units: ±10 %).
const PRIOR_SD: f64 = 0.1;

/// A fitted GP: predicts a mean and a variance anywhere in the unit cube.
#[derive(Debug, Clone)]
pub struct Gp {
    points: Vec<Vec<f64>>,
    /// K⁻¹ (y − mean).
    alpha: Vec<f64>,
    /// Lower Cholesky factor of K + noise.
    chol: Vec<Vec<f64>>,
    mean: f64,
    signal: f64,
    length: f64,
}

impl Gp {
    /// The GP through `points` with values `y` and per-point noise variances `noise`; `None` with
    /// no point (nothing to learn from) or when no length scale gives a positive-definite matrix.
    pub fn fit(points: &[Vec<f64>], y: &[f64], noise: &[f64]) -> Option<Gp> {
        if points.is_empty() || points.len() != y.len() || y.len() != noise.len() {
            return None;
        }
        let n = y.len() as f64;
        let mean = y.iter().sum::<f64>() / n;
        let spread = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let signal = spread.max(PRIOR_SD * PRIOR_SD);
        LENGTH_SCALES
            .iter()
            .filter_map(|&length| {
                let g = Gp::with(points, y, noise, mean, signal, length)?;
                let fit = g.log_likelihood(y);
                Some((fit, g))
            })
            // The first of equals wins: ties go to the shorter scale, the one that assumes less.
            .fold(None, |best: Option<(f64, Gp)>, (fit, g)| match &best {
                Some((b, _)) if *b >= fit => best,
                _ => Some((fit, g)),
            })
            .map(|(_, g)| g)
    }

    fn with(points: &[Vec<f64>], y: &[f64], noise: &[f64], mean: f64, signal: f64, length: f64) -> Option<Gp> {
        let n = points.len();
        let mut k = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..=i {
                k[i][j] = kernel(&points[i], &points[j], signal, length);
                k[j][i] = k[i][j];
            }
            // A little jitter beside the measured noise keeps a repeated point factorisable.
            k[i][i] += noise[i].max(0.0) + 1e-9 * signal;
        }
        let chol = cholesky(&k)?;
        let centred: Vec<f64> = y.iter().map(|v| v - mean).collect();
        let alpha = back(&chol, &forward(&chol, &centred));
        Some(Gp { points: points.to_vec(), alpha, chol, mean, signal, length })
    }

    /// Log marginal likelihood of `y` (up to the constant), the length scale's score.
    fn log_likelihood(&self, y: &[f64]) -> f64 {
        let fit: f64 = y.iter().zip(&self.alpha).map(|(v, a)| (v - self.mean) * a).sum();
        let det: f64 = self.chol.iter().enumerate().map(|(i, row)| row[i].ln()).sum();
        -0.5 * fit - det
    }

    /// The posterior mean and variance at `x`.
    pub fn predict(&self, x: &[f64]) -> (f64, f64) {
        let k: Vec<f64> = self.points.iter().map(|p| kernel(p, x, self.signal, self.length)).collect();
        let mean = self.mean + k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum::<f64>();
        let v = forward(&self.chol, &k);
        let var = (self.signal - v.iter().map(|a| a * a).sum::<f64>()).max(1e-12);
        (mean, var)
    }
}

/// Expected improvement (for a loss: lower is better) of a prediction over `target`.
pub fn expected_improvement(mean: f64, var: f64, target: f64) -> f64 {
    let sd = var.sqrt();
    if sd < 1e-12 {
        return (target - mean).max(0.0);
    }
    let z = (target - mean) / sd;
    let density = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    ((target - mean) * normal_cdf(z) + sd * density).max(0.0)
}

fn kernel(a: &[f64], b: &[f64], signal: f64, length: f64) -> f64 {
    let d = a.len().max(1) as f64;
    let each = a.iter().zip(b).map(|(x, y)| (-(x - y).powi(2) / (2.0 * length * length)).exp());
    let (sum, product) = each.fold((0.0, 1.0), |(s, p), k| (s + k, p * k));
    signal * (ADDITIVE * sum / d + (1.0 - ADDITIVE) * product)
}

/// The lower Cholesky factor of a symmetric matrix, or `None` when it is not positive definite.
fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves L x = b.
fn forward(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let mut x = vec![0.0; b.len()];
    for i in 0..b.len() {
        x[i] = (b[i] - (0..i).map(|k| l[i][k] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
}

/// Solves Lᵀ x = b.
fn back(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (b[i] - (i + 1..n).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_posterior_passes_near_quiet_observations_and_is_unsure_far_from_them() {
        let points = vec![vec![0.1, 0.5], vec![0.9, 0.5], vec![0.5, 0.5]];
        let y = [1.0, -1.0, 0.0];
        let gp = Gp::fit(&points, &y, &[1e-6; 3]).unwrap();
        for (p, want) in points.iter().zip(y) {
            let (m, v) = gp.predict(p);
            assert!((m - want).abs() < 0.05 && v < 0.01, "at {p:?}: {m} ± {v}");
        }
        let (_, far) = gp.predict(&[0.5, 0.0]);
        let (_, near) = gp.predict(&[0.5, 0.45]);
        assert!(far > near, "variance far {far} near {near}");
    }

    #[test]
    fn expected_improvement_rewards_a_lower_mean_and_more_doubt() {
        assert!(expected_improvement(-1.0, 0.01, 0.0) > expected_improvement(0.0, 0.01, 0.0));
        assert!(expected_improvement(0.0, 1.0, 0.0) > expected_improvement(0.0, 0.01, 0.0));
        assert_eq!(expected_improvement(1.0, 0.0, 0.0), 0.0);
    }
}
