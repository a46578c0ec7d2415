//! Workload change detection: a two-sided CUSUM per signal (Page, 1954). Each signal learns its
//! level and spread (Welford, over every window since the last change), and accumulates
//! standardised deviations beyond a slack of `K` spreads; a sum past `H` spreads is a change. On a
//! change the detector relearns from the new level, so one shift is reported once. Pure: fed one
//! value per window.

use std::collections::BTreeMap;

/// Windows a signal is learned over before it is judged.
const WARMUP: u32 = 10;
/// Slack, in spreads: deviations smaller than this never accumulate.
const K: f64 = 0.5;
/// Decision threshold, in spreads: with K = 0.5 the textbook 4 or 5 alarms every few hundred windows
/// of Gaussian noise (minutes at 1 Hz); 8 alarmed about once in 8,600 windows in a simulation of
/// Gaussian noise (about once in ten hours with 4 s windows), and a shift of several spreads still
/// crosses it within a window or two.
const H: f64 = 8.0;

#[derive(Debug, Clone, Default)]
struct Cusum {
    n: u32,
    mean: f64,
    m2: f64,
    hi: f64,
    lo: f64,
}

impl Cusum {
    /// Feeds one value; true when a change is detected (the detector then relearns).
    fn push(&mut self, x: f64) -> bool {
        if self.n < WARMUP {
            self.n += 1;
            let d = x - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (x - self.mean);
            return false;
        }
        let var = self.m2 / (self.n - 1) as f64;
        // A flat signal (a counter that never moves) gets a spread of 5 % of its level, at least 1e-3,
        // so its first real move is a change and float noise is not.
        let sd = var.sqrt().max(self.mean.abs() * 0.05).max(1e-3);
        let z = (x - self.mean) / sd;
        self.hi = (self.hi + z - K).max(0.0);
        self.lo = (self.lo - z - K).max(0.0);
        if self.hi > H || self.lo > H {
            *self = Cusum { n: 1, mean: x, ..Cusum::default() };
            return true;
        }
        // In control: the level and spread keep learning.
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        false
    }
}

/// One detector per named signal.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    signals: BTreeMap<String, Cusum>,
}

impl Detector {
    /// Feeds one window's values; returns the signals that changed. A missing value skips the signal.
    pub fn push(&mut self, values: &BTreeMap<String, f64>) -> Vec<String> {
        values.iter().filter(|(_, v)| v.is_finite()).filter_map(|(k, v)| self.signals.entry(k.clone()).or_default().push(*v).then(|| k.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `xs` as one signal; returns the indexes at which a change was detected.
    fn check(xs: &[f64]) -> Vec<usize> {
        let mut d = Detector::default();
        xs.iter().enumerate().filter(|(_, x)| !d.push(&BTreeMap::from([("s".to_string(), **x)])).is_empty()).map(|(i, _)| i).collect()
    }

    #[test]
    fn a_level_shift_is_detected_once_and_noise_is_not() {
        // Deterministic noise around 10 (±1), then around 20.
        let noise = |i: usize| ((i * 7919) % 13) as f64 / 6.0 - 1.0;
        let calm: Vec<f64> = (0..200).map(|i| 10.0 + noise(i)).collect();
        assert_eq!(check(&calm), Vec::<usize>::new());
        let mut shifted = calm[..50].to_vec();
        shifted.extend((50..120).map(|i| 20.0 + noise(i)));
        let hits = check(&shifted);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!((50..53).contains(&hits[0]), "{hits:?}");
        // A flat counter that starts moving.
        let mut flat = vec![0.0; 20];
        flat.extend(vec![3.0; 10]);
        assert_eq!(check(&flat), vec![20]);
    }
}
