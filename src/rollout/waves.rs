//! Waves: how a fleet is cut into stages. A canary (a count or a
//! percentage), then ramp steps given as cumulative sizes (`25%,50%`: a
//! quarter of the fleet done after the first step, half after the second),
//! then the rest. Pure: hosts in, index ranges out.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// A number of hosts, absolute or as a share of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// This many hosts.
    Count(usize),
    /// This percentage of the fleet, rounded up (at least one host).
    Percent(f64),
}

impl Size {
    /// The number of hosts out of `n` (0 < result ≤ n when n > 0).
    pub fn of(self, n: usize) -> usize {
        let raw = match self {
            Size::Count(c) => c,
            Size::Percent(p) => ((n as f64) * p / 100.0 - 1e-9).ceil().max(0.0) as usize,
        };
        raw.clamp(1.min(n), n)
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| format!("{s:?} is not a size; write a host count (3) or a percentage (25%)"))?;
            if !(v.is_finite() && v > 0.0 && v <= 100.0) {
                return Err(format!("{s:?}: a percentage must be above 0% and at most 100%"));
            }
            return Ok(Size::Percent(v));
        }
        match t.parse::<usize>() {
            Ok(0) => Err(format!("{s:?}: a wave needs at least one host")),
            Ok(c) => Ok(Size::Count(c)),
            Err(_) => Err(format!("{s:?} is not a size; write a host count (3) or a percentage (25%)")),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Count(c) => write!(f, "{c}"),
            Size::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Canary and ramp steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveSpec {
    /// First wave.
    pub canary: Size,
    /// Cumulative sizes after each ramp wave; the last wave takes the rest.
    pub steps: Vec<Size>,
}

impl Default for WaveSpec {
    fn default() -> Self {
        WaveSpec { canary: Size::Count(1), steps: vec![Size::Percent(25.0), Size::Percent(50.0)] }
    }
}

impl WaveSpec {
    /// Parses `--canary` and `--steps` (comma-separated, may be empty for canary → rest).
    pub fn parse(canary: &str, steps: &str) -> Result<WaveSpec, String> {
        let canary: Size = canary.parse().map_err(|e| format!("--canary {e}"))?;
        let steps: Vec<Size> = steps.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.parse().map_err(|e| format!("--steps {e}"))).collect::<Result<_, _>>()?;
        for w in steps.windows(2) {
            let grows = match (w[0], w[1]) {
                (Size::Percent(a), Size::Percent(b)) => b > a,
                (Size::Count(a), Size::Count(b)) => b > a,
                _ => true,
            };
            if !grows {
                return Err(format!("--steps {}: each step is the cumulative size reached after it, so steps must grow (e.g. 25%,50%)", steps.iter().map(Size::to_string).collect::<Vec<_>>().join(",")));
            }
        }
        Ok(WaveSpec { canary, steps })
    }

    /// The waves over `n` hosts, as index ranges; empty waves (rounding on small fleets) are dropped.
    pub fn waves(&self, n: usize) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut done = 0;
        for target in std::iter::once(self.canary.of(n)).chain(self.steps.iter().map(|s| s.of(n))).chain(std::iter::once(n)) {
            let end = target.min(n);
            if end > done {
                out.push(done..end);
                done = end;
            }
        }
        out
    }

    /// Batch sizes for Ansible's `serial` over `n` hosts: exactly our waves.
    pub fn serial(&self, n: usize) -> Vec<usize> {
        self.waves(n).into_iter().map(|r| r.len()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(canary: &str, steps: &str, n: usize, expected: Result<&[usize], &str>) {
        match (WaveSpec::parse(canary, steps), expected) {
            (Ok(spec), Ok(sizes)) => assert_eq!(spec.serial(n), sizes, "--canary {canary} --steps {steps} over {n}"),
            (Err(e), Err(frag)) => assert!(e.contains(frag), "{e}"),
            (got, want) => panic!("--canary {canary} --steps {steps}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn canary_ramp_rest() {
        check("1", "25%,50%", 6, Ok(&[1, 1, 1, 3]));
        check("1", "50%", 6, Ok(&[1, 2, 3]));
        check("1", "", 6, Ok(&[1, 5]));
        check("10%", "25%,50%", 100, Ok(&[10, 15, 25, 50]));
        check("2", "4", 6, Ok(&[2, 2, 2]));
        check("1", "25%,50%", 1, Ok(&[1]));
        check("1", "25%,50%", 2, Ok(&[1, 1]));
        check("5", "50%", 3, Ok(&[3]));
        check("1", "50%", 0, Ok(&[]));
    }

    #[test]
    fn bad_sizes_say_what_is_valid() {
        check("0", "", 6, Err("at least one host"));
        check("1", "50%,25%", 6, Err("steps must grow"));
        check("1", "150%", 6, Err("at most 100%"));
        check("one", "", 6, Err("host count (3) or a percentage (25%)"));
    }
}
