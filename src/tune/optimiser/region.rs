//! What an optimiser learns from the trials, and where it may look next.
//!
//! * Each trial is scored on one scale: the log-ratio gain of its objective over
//!   the start values, chained through the incumbents (a trial is measured
//!   against the incumbent of its day, paired, so drift between trials cancels;
//!   the incumbent's own gain is the kept trial's). Refused and failed trials
//!   score as bad as can be.
//! * The trust region is a box of half-width `r` (unit-cube coordinates) around
//!   the incumbent: `r` doubles after a kept trial and shrinks after any other,
//!   between `FLOOR` and `CEILING`, and is cut to the policy's step limit around
//!   the incumbent, so no move it allows exceeds `max_step_ratio`.

use super::super::candidate::Proposal;
use super::super::decide::Decision;
use super::super::objective::Direction;
use super::super::{Trial, Values};

/// The half-width the trust region starts with.
pub const START: f64 = 0.5;
/// The half-width it never shrinks below (the search never stalls on one point).
pub const FLOOR: f64 = 0.05;
/// The half-width it never grows beyond (the step limit cuts it further).
pub const CEILING: f64 = 1.0;
/// How much a trial that was not kept shrinks it.
pub const SHRINK: f64 = 0.7;

/// One point of the unit cube with what was measured there.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The point (`SearchSpace::locate` of the values tried).
    pub point: Vec<f64>,
    /// Lower is better: minus the chained log-gain over the start values; infinite for a trial never measured.
    pub loss: f64,
    /// The variance of `loss` as the trial's 95 % interval shows it (log-ratio units); NaN when never measured.
    pub noise: f64,
}

/// The log-ratio gain (positive: better) of an improvement in percent, in the objective's direction.
pub fn gain(direction: Direction, improvement_pct: f64) -> Option<f64> {
    let ratio = match direction {
        // improvement = (inc − cand) / inc: cand / inc = 1 − improvement.
        Direction::Lower => 1.0 - improvement_pct / 100.0,
        Direction::Higher => 1.0 + improvement_pct / 100.0,
    };
    if !(ratio.is_finite() && ratio > 0.0) {
        return None;
    }
    Some(match direction {
        Direction::Lower => -ratio.ln(),
        Direction::Higher => ratio.ln(),
    })
}

/// Every trial as an observation in the space's unit cube.
pub fn observations(p: &Proposal) -> Vec<Observation> {
    let mut incumbent_gain = 0.0;
    let mut out = Vec::with_capacity(p.history.len() + 1);
    for t in p.history {
        let measured = matches!(t.judgement.decision, Decision::Kept | Decision::Reverted);
        let g = if measured { gain(p.objective.direction, t.judgement.improvement_pct) } else { None };
        let loss = match g {
            Some(g) => -(incumbent_gain + g),
            None => f64::INFINITY,
        };
        if t.judgement.decision == Decision::Kept
            && let Some(g) = g
        {
            incumbent_gain += g;
        }
        let (lo, hi) = t.judgement.ci95_pct;
        // A 95 % interval spans about four standard deviations.
        let noise = if loss.is_finite() { ((hi - lo) / 100.0 / 3.92).powi(2) } else { f64::NAN };
        out.push(Observation { point: p.space.locate(&t.values), loss, noise });
    }
    out
}

/// The incumbent's loss on the observations' scale: minus the chained gain of the trials kept.
pub fn incumbent_loss(obs: &[Observation], history: &[Trial]) -> f64 {
    history.iter().zip(obs).rfind(|(t, o)| t.judgement.decision == Decision::Kept && o.loss.is_finite()).map_or(0.0, |(_, o)| o.loss)
}

/// The trust region's half-width after `history` when it shrinks only after `patience` trials in a
/// row were not kept (one failure says little when each trial moves one key: the next key may help).
pub fn patient_radius(history: &[Trial], patience: usize) -> f64 {
    let (mut r, mut misses) = (START, 0);
    for t in history {
        if t.judgement.decision == Decision::Kept {
            (r, misses) = ((r * 2.0).min(CEILING), 0);
        } else {
            misses += 1;
            if misses >= patience.max(1) {
                (r, misses) = ((r * 0.5).max(FLOOR), 0);
            }
        }
    }
    r
}

/// The trust region's half-width after `history`.
pub fn radius(history: &[Trial]) -> f64 {
    history.iter().fold(START, |r, t| if t.judgement.decision == Decision::Kept { (r * 2.0).min(CEILING) } else { (r * SHRINK).max(FLOOR) })
}

/// The trust region around `incumbent`: per dimension a half-open box in [0,1] of half-width `r`,
/// cut to the step limit; switches and choices keep the whole [0,1] (their values have no order).
pub fn trust_box(p: &Proposal, incumbent: &Values, r: f64) -> Vec<(f64, f64)> {
    let centre = p.space.locate(incumbent);
    let steps = p.space.step_box(incumbent);
    p.space
        .dims
        .iter()
        .zip(centre.iter().zip(steps))
        .map(|(d, (&c, (slo, shi)))| match d.kind {
            super::super::space::DimKind::Choice { .. } => (0.0, 1.0),
            super::super::space::DimKind::Int { .. } => ((c - r).max(0.0).max(slo), (c + r).min(1.0).min(shi)),
        })
        .collect()
}
