//! Calm by construction: hysteresis on every symptom (it opens after N windows in a row, closes
//! after M clear ones), a minimum dwell time between change sets and a daily change budget. TuneD
//! turned its dynamic tuning off by default because it flapped; these are the three brakes. Pure:
//! the caller passes the windows' verdicts and the clock.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What happened to a symptom in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Held for `open_after` windows in a row: now open.
    Opened(String),
    /// Clear for `close_after` windows in a row: now closed.
    Closed(String),
}

#[derive(Debug, Clone, Default)]
struct Track {
    open: bool,
    /// Windows in a row that disagree with `open` (present while closed, clear while open).
    against: u32,
}

/// Per-symptom hysteresis.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    open_after: u32,
    close_after: u32,
    tracks: BTreeMap<String, Track>,
}

impl Hysteresis {
    /// Opens after `open_after` windows present in a row, closes after `close_after` clear.
    pub fn new(open_after: u32, close_after: u32) -> Self {
        Hysteresis { open_after: open_after.max(1), close_after: close_after.max(1), tracks: BTreeMap::new() }
    }

    /// One window's present symptoms; returns what opened and closed.
    pub fn update(&mut self, present: &BTreeSet<String>) -> Vec<Transition> {
        for s in present {
            self.tracks.entry(s.clone()).or_default();
        }
        let mut out = Vec::new();
        for (s, t) in self.tracks.iter_mut() {
            let here = present.contains(s);
            if here == t.open {
                t.against = 0;
                continue;
            }
            t.against += 1;
            let need = if t.open { self.close_after } else { self.open_after };
            if t.against >= need {
                t.open = here;
                t.against = 0;
                out.push(if here { Transition::Opened(s.clone()) } else { Transition::Closed(s.clone()) });
            }
        }
        self.tracks.retain(|_, t| t.open || t.against > 0);
        out
    }

    /// The open symptoms.
    pub fn open(&self) -> BTreeSet<String> {
        self.tracks.iter().filter(|(_, t)| t.open).map(|(s, _)| s.clone()).collect()
    }

    /// Whether no symptom is open or on its way to open or close (no window has shown one since
    /// the last transition): then none can open in the next window unless `open_after` is 1.
    pub fn quiet(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Forgets `symptom`'s history: it must hold `open_after` windows again to open (a workload
    /// change re-opens the diagnosis; an open symptom stays open until its windows say otherwise).
    pub fn restart(&mut self, symptom: &str) {
        if let Some(t) = self.tracks.get_mut(symptom) {
            t.against = 0;
        }
    }
}

/// The change sets made, for the dwell time and the daily budget; kept in the agent's state so a
/// restart does not reset either.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// When each change set was applied, seconds since the epoch (the last few days only).
    pub changes_s: Vec<u64>,
}

/// Why a change set may not be made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The last change was less than the dwell time ago; seconds left.
    Dwell(u64),
    /// The day's budget is spent; seconds until the next UTC day.
    Budget(u32, u64),
}

impl Wait {
    /// For the decision line.
    pub fn describe(&self) -> String {
        match self {
            Wait::Dwell(s) => format!("minimum dwell time: {s} s until the next change may be made"),
            Wait::Budget(n, s) => format!("daily change budget of {n} spent: {s} s until the next UTC day"),
        }
    }
}

impl Ledger {
    /// May a change set be made at `now_s` with `dwell_s` between changes and `budget` per UTC day?
    pub fn may_change(&self, now_s: u64, dwell_s: u64, budget: u32) -> Result<(), Wait> {
        if let Some(last) = self.changes_s.iter().max() {
            let since = now_s.saturating_sub(*last);
            if since < dwell_s {
                return Err(Wait::Dwell(dwell_s - since));
            }
        }
        let day = now_s / 86400;
        let today = self.changes_s.iter().filter(|t| **t / 86400 == day).count() as u32;
        if today >= budget {
            return Err(Wait::Budget(budget, (day + 1) * 86400 - now_s));
        }
        Ok(())
    }

    /// Records a change set at `now_s` (and forgets those older than two days).
    pub fn record(&mut self, now_s: u64) {
        self.changes_s.retain(|t| now_s.saturating_sub(*t) < 2 * 86400);
        self.changes_s.push(now_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    /// Feeds presence per window (1 present, 0 clear) and returns the windows at which it opened and closed.
    fn check(open_after: u32, close_after: u32, windows: &str) -> Vec<String> {
        let mut h = Hysteresis::new(open_after, close_after);
        let mut out = Vec::new();
        for (i, c) in windows.chars().enumerate() {
            let present = if c == '1' { set(&["s"]) } else { set(&[]) };
            for t in h.update(&present) {
                out.push(match t {
                    Transition::Opened(_) => format!("+{i}"),
                    Transition::Closed(_) => format!("-{i}"),
                });
            }
        }
        out
    }

    #[test]
    fn a_flickering_symptom_never_opens_and_a_sustained_one_opens_and_closes_once() {
        assert_eq!(check(3, 3, "1010101101101"), Vec::<String>::new());
        assert_eq!(check(3, 3, "0111111000111"), vec!["+3", "-9", "+12"]);
        // One clear window inside an open episode does not close it.
        assert_eq!(check(2, 3, "11110110000"), vec!["+1", "-9"]);
    }

    #[test]
    fn a_symptom_opens_only_after_a_window_that_left_the_hysteresis_not_quiet() {
        let mut h = Hysteresis::new(2, 2);
        assert!(h.quiet());
        h.update(&set(&[]));
        assert!(h.quiet());
        assert!(h.update(&set(&["s"])).is_empty());
        assert!(!h.quiet(), "one window present: on its way to open");
        assert_eq!(h.update(&set(&["s"])), vec![Transition::Opened("s".into())]);
        h.update(&set(&[]));
        assert!(!h.quiet());
        h.update(&set(&[]));
        assert!(h.quiet(), "closed and clear");
    }

    #[test]
    fn dwell_and_budget_hold_across_a_day_boundary() {
        let mut l = Ledger::default();
        let day = 20_000 * 86400;
        assert_eq!(l.may_change(day + 10, 600, 2), Ok(()));
        l.record(day + 10);
        assert_eq!(l.may_change(day + 100, 600, 2), Err(Wait::Dwell(510)));
        l.record(day + 700);
        assert!(matches!(l.may_change(day + 2000, 600, 2), Err(Wait::Budget(2, _))));
        assert_eq!(l.may_change(day + 86400, 600, 2), Ok(()));
        assert!(matches!(l.may_change(day + 86400, 600, 0), Err(Wait::Budget(0, _))));
    }
}
