//! The step limit: how far one change may move a numeric value. A step is
//! judged by the value *in force*, not the raw number: a KB `sentinel`
//! (0 = off, 0 = auto, 0 = "the partner key is in force") is first turned
//! into what the kernel actually uses, so `vm.dirty_bytes` 0 → 1 TiB is a
//! step from `dirty_ratio` × dirtyable memory, not a free move from 0.
//!
//! The rule (documented in docs/policy.md):
//! * values are compared as max(value, 1), so a step from or to 0 is bounded
//!   like any other (0 → at most r; 60 → 0 only once the value is ≤ r);
//! * a move *to* an `off` sentinel (or an `auto` one whose value is unknown)
//!   is a mode switch, not a step: the KB range and risk govern it;
//! * a move *to* a `partner` sentinel is refused: it does not hand control
//!   back to the partner (the kernel refuses it or zeroes both keys);
//! * a move *from* a sentinel whose value in force cannot be computed here
//!   (a host fact was not measured) is skipped: it cannot be bounded;
//! * negative values (−1 = unlimited) carry a sentinel or are not steps.
//!
//! Pure: host quantities arrive as `Facts`.

use crate::kb::Param;
use crate::kb::entry::{Convert, Sentinel};
use crate::sysctl::Value;
use std::collections::BTreeMap;

pub use super::facts::Facts;

/// What the step limit says about one change.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Within the limit (or not a step at all).
    Within,
    /// Too far: these elements are the nearest allowed; `in_force` describes a sentinel's value in force.
    Clamp { to: Vec<i64>, in_force: Option<String> },
    /// Cannot be bounded here; not written (the reason).
    Unbounded(String),
    /// Writing the sentinel would not do what it seems to (the reason).
    Refuse(String),
}

/// The value in force of a scalar, or why it is unknown.
enum InForce {
    Known(f64, Option<String>),
    Unknown(String),
}

/// The step limit for `key` moving from `cur` to `to` (same element count), under `ratio`.
pub fn bound(key: &str, p: &Param, cur: &[i64], to: &[i64], ratio: f64, current: &BTreeMap<String, Value>, facts: &Facts) -> Step {
    if cur.len() != to.len() {
        return Step::Within;
    }
    if let (Some(s), [c], [t]) = (&p.sentinel, cur, to) {
        return bound_scalar(key, s, *c, *t, ratio, current, facts);
    }
    let clamped: Vec<i64> = cur.iter().zip(to).map(|(&c, &t)| clamp_one(c as f64, t, ratio).unwrap_or(t)).collect();
    if clamped == to { Step::Within } else { Step::Clamp { to: clamped, in_force: None } }
}

/// `t` clamped into the step window around `c` (values compared as max(v, 1)); None when not a step (negatives).
fn clamp_one(c: f64, t: i64, ratio: f64) -> Option<i64> {
    if c < 0.0 || t < 0 {
        return None;
    }
    let base = c.max(1.0);
    let (lo, hi) = ((base / ratio).ceil() as i64, (base * ratio).floor() as i64);
    Some(if t.max(1) < lo { lo } else if t > hi { hi } else { t })
}

fn bound_scalar(key: &str, s: &Sentinel, c: i64, t: i64, ratio: f64, current: &BTreeMap<String, Value>, facts: &Facts) -> Step {
    let mut target = t;
    if t == s.value() {
        match s {
            Sentinel::Off { .. } | Sentinel::Auto { equals: None, .. } => return Step::Within,
            Sentinel::Auto { equals: Some(e), .. } => target = *e,
            Sentinel::Partner { partner, .. } => {
                return Step::Refuse(format!(
                    "{key} = {t} would not hand control back to {partner} ({}): the kernel refuses it or zeroes both keys; to use {partner}, write {partner} instead",
                    s.note()
                ));
            }
        }
    }
    let (c_eff, in_force) = if c == s.value() {
        match in_force(key, s, current, facts) {
            InForce::Known(v, why) => (v, why),
            InForce::Unknown(why) => return Step::Unbounded(format!("{key}: {c} ({}) → {t}: {why}, so the step cannot be bounded; not written", s.note())),
        }
    } else {
        (c as f64, None)
    };
    match clamp_one(c_eff, target, ratio) {
        Some(v) if v != target => Step::Clamp { to: vec![v], in_force },
        _ => Step::Within,
    }
}

/// The value in force while `key` holds its `partner` sentinel (dirty_ratio 0 → dirty_bytes as a
/// percentage), from `values` and `facts`; None when it is not such a sentinel or cannot be computed.
pub fn partner_in_force(key: &str, s: &Sentinel, v: i64, values: &BTreeMap<String, Value>, facts: &Facts) -> Option<f64> {
    if !matches!(s, Sentinel::Partner { .. }) || v != s.value() {
        return None;
    }
    match in_force(key, s, values, facts) {
        InForce::Known(x, _) => Some(x),
        InForce::Unknown(_) => None,
    }
}

fn in_force(key: &str, s: &Sentinel, current: &BTreeMap<String, Value>, facts: &Facts) -> InForce {
    match s {
        Sentinel::Off { .. } => InForce::Known(0.0, None),
        Sentinel::Auto { equals: Some(e), .. } => InForce::Known(*e as f64, Some(format!("in force {e}"))),
        Sentinel::Auto { equals: None, .. } => InForce::Unknown("the value in force is chosen by the kernel and not known here".into()),
        Sentinel::Partner { partner, convert, fact, .. } => {
            let Some(pv) = current.get(partner).and_then(|v| v.ints()).and_then(|v| v.first().copied()) else {
                return InForce::Unknown(format!("{partner}, which is in force instead of {key}, was not read"));
            };
            if pv <= 0 {
                // Neither member is in force (overcommit_ratio = overcommit_kbytes = 0): nothing is.
                return InForce::Known(0.0, Some(format!("in force 0: {partner} is {pv} too")));
            }
            let Some(&f) = facts.get(fact).filter(|f| f.is_finite() && **f > 0.0) else {
                return InForce::Unknown(format!("its value in force is {partner} {pv} converted with {}, which was not measured", fact.name()));
            };
            let v = match convert {
                Convert::FromPercent => pv as f64 * f / 100.0,
                Convert::ToPercent => pv as f64 * 100.0 / f,
            };
            InForce::Known(v, Some(format!("in force ≈ {} from {partner} {pv} and {} {}", v.round() as i64, fact.name(), f.round() as i64)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partner_sentinel_points_at_an_exclusive_partner_that_points_back() {
        let kb = crate::kb::Kb::embedded().unwrap();
        let mut n = 0;
        for (key, p) in &kb.params {
            let Some(Sentinel::Partner { partner, fact, .. }) = &p.sentinel else { continue };
            n += 1;
            let back = kb.param(partner).and_then(|q| q.sentinel.as_ref());
            assert!(matches!(back, Some(Sentinel::Partner { partner: b, fact: f, .. }) if b == key && f == fact), "{key} -> {partner}: {back:?}");
            assert!(kb.edges.iter().any(|e| e.kind == crate::kb::EdgeKind::MutuallyExclusive && [e.from.as_str(), e.to.as_str()].contains(&key.as_str()) && e.other(key) == partner), "{key} / {partner}: no mutually_exclusive edge");
        }
        assert_eq!(n, 6);
    }

    #[test]
    fn zero_is_compared_as_one() {
        assert_eq!(clamp_one(60.0, 0, 4.0), Some(15));
        assert_eq!(clamp_one(60.0, 0, 8.0), Some(8));
        assert_eq!(clamp_one(8.0, 0, 8.0), Some(0));
        assert_eq!(clamp_one(0.0, 1_099_511_627_776, 8.0), Some(8));
        assert_eq!(clamp_one(128.0, 4096, 8.0), Some(1024));
        assert_eq!(clamp_one(-1.0, 5, 8.0), None);
    }
}
