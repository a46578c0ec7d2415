//! What one diagnosis window decides: which symptoms open and close (hysteresis), whether the
//! workload changed (CUSUM on each enabled symptom's first signal), the advice for the open
//! symptoms (recommend → guardrails, each piece under its stable ID), and in apply mode the one
//! change set the calm gate lets through. Returns decisions; the service carries them out and logs
//! them, so this file touches nothing but the stores it is handed for reading.

use super::advice;
use super::calm::{Hysteresis, Transition};
use super::change_point::Detector;
use super::config::AgentConfig;
use super::window::Compact;
use crate::kb::Kb;
use crate::kb::entry::Symptom;
use crate::reasoning::window::Interval;
use crate::reasoning::{self, Context, Finding, Findings, columns};
use crate::safety::{self, CheckedPlan, Verdict};
use crate::sysctl::{SysctlKey, SysctlStore, Value};
use crate::telemetry::{Snapshot, Window};
use std::collections::{BTreeMap, BTreeSet};

/// One piece of advice from a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    /// Its stable ID.
    pub id: String,
    /// The record the store keeps.
    pub record: advice::Record,
    /// The value to write when the guardrails accept it (`None`: advice only).
    pub write: Option<String>,
}

/// What one window found.
#[derive(Debug, Clone, Default)]
pub struct Verdicts {
    /// Symptoms that opened or closed.
    pub transitions: Vec<Transition>,
    /// Signals whose level changed (`symptom` names).
    pub workload_changes: Vec<String>,
    /// Advice for the open symptoms.
    pub advice: Vec<Advice>,
}

/// Windows between two full reads of the current values the advice is computed from (a minute
/// at the default 1 s interval and 5-sample windows).
pub const VALUES_EVERY: u32 = 15;

/// The current values of the KB's keys, read once and kept (observe mode): a full read is ~300
/// `/proc/sys` files, most of a window's cost while a symptom is open, for values that change
/// when someone changes them. The keys the last advice named are re-read every window, and any
/// change there, a change of the open symptoms, or `VALUES_EVERY` windows reads them all again;
/// apply mode reads them all every window, since it writes from them.
#[derive(Debug, Default)]
pub struct Values {
    values: BTreeMap<String, Value>,
    /// The open symptoms they were read for.
    open: BTreeSet<String>,
    /// Windows since the full read (`None`: never read).
    age: Option<u32>,
    /// The keys the last advice named.
    watched: Vec<SysctlKey>,
}

impl Values {
    /// The values for this window: the kept ones when still good (`cache`), else a full read.
    pub fn get(&mut self, store: &dyn SysctlStore, kb: &Kb, open: &BTreeSet<String>, cache: bool) -> &BTreeMap<String, Value> {
        let fresh = cache && self.age.is_some_and(|a| a < VALUES_EVERY) && self.open == *open && self.watched.iter().all(|k| store.read(k).ok() == self.values.get(&k.to_string()).cloned());
        if fresh {
            self.age = self.age.map(|a| a + 1);
        } else {
            self.values = current_values(store, kb);
            self.open = open.clone();
            self.age = Some(1);
        }
        &self.values
    }

    /// Remembers the keys `checked` names, to re-read each window.
    fn watch(&mut self, checked: &CheckedPlan) {
        let mut keys: Vec<&str> = checked.changes.iter().map(|c| c.change.key.as_str()).chain(checked.plan.considered.iter().map(|c| c.key.as_str())).collect();
        keys.sort();
        keys.dedup();
        self.watched = keys.into_iter().filter_map(|k| SysctlKey::parse(k).ok()).collect();
    }
}

/// The diagnosis's memory between windows.
pub struct Diagnosis {
    hysteresis: Hysteresis,
    detector: Detector,
    /// The latest finding of each symptom, kept while it is open (a window in which an open
    /// symptom is briefly clear still advises on it).
    last: BTreeMap<String, Finding>,
    values: Values,
}

impl Diagnosis {
    /// Fresh, with the configuration's hysteresis.
    pub fn new(cfg: &AgentConfig) -> Self {
        Diagnosis { hysteresis: Hysteresis::new(cfg.open_after, cfg.close_after), detector: Detector::default(), last: BTreeMap::new(), values: Values::default() }
    }

    /// The open symptoms.
    pub fn open(&self) -> BTreeSet<String> {
        self.hysteresis.open()
    }

    /// Whether the next window may advise (a symptom is open, or on its way to open, or one
    /// window opens one): only then does the service keep the full snapshots at its ends, a copy
    /// of ~1000 metrics that a calm host has no use for.
    pub fn may_advise(&self, cfg: &AgentConfig) -> bool {
        !self.hysteresis.quiet() || cfg.open_after <= 1
    }

    /// Judges one window (`w`: its samples as columns, holding at least what `enabled` reads) read
    /// with `store`'s values in force; `ends` are the full snapshots at its start and end, which the
    /// advice is computed from (kept when `may_advise` said so; the window's own first and last
    /// samples stand in otherwise). Only the enabled symptoms are judged, from the columns in
    /// place (`reasoning::columns`): the findings `diagnose_series` gives for them on the same samples.
    pub fn window(&mut self, cfg: &AgentConfig, kb: &Kb, w: &Compact, ends: (Option<&Snapshot>, Option<&Snapshot>), store: &dyn SysctlStore, enabled: &[&Symptom]) -> Verdicts {
        let table = w.table();
        let judged = columns::judge(&table, enabled);
        let present: BTreeSet<String> = judged.findings.iter().map(|f| f.id.clone()).collect();
        let changed = table.whole().map(|whole| self.workload(&whole, enabled)).unwrap_or_default();
        for s in &changed {
            self.hysteresis.restart(s);
        }
        let transitions = self.hysteresis.update(&present);
        for f in &judged.findings {
            self.last.insert(f.id.clone(), f.clone());
        }
        let open = self.hysteresis.open();
        self.last.retain(|id, _| open.contains(id));
        if open.is_empty() || w.is_empty() {
            return Verdicts { transitions, workload_changes: changed, advice: Vec::new() };
        }
        // Only a window that advises builds snapshots from its rows: the last one's digest names
        // the plan's evidence (as `diagnose_series` has it), and the ends stand in when not kept.
        let (first, last) = (w.snapshot(0), w.snapshot(w.len() - 1));
        let found = Findings {
            schema_version: reasoning::findings::FINDINGS_SCHEMA_VERSION,
            host: w.host().clone(),
            snapshot_digest: last.digest(),
            window_s: Window::new(&first, &last).seconds(),
            samples: w.len(),
            findings: judged.findings,
            no_data: judged.no_data,
        };
        let ends = (ends.0.unwrap_or(&first), ends.1.unwrap_or(&last));
        let advice = self.advise(cfg, kb, &found, ends, store);
        Verdicts { transitions, workload_changes: changed, advice }
    }

    /// Feeds each enabled symptom's first signal, read over the whole window, to the
    /// change-point detector.
    fn workload(&mut self, whole: &impl Interval, enabled: &[&Symptom]) -> Vec<String> {
        let values: BTreeMap<String, f64> = enabled.iter().filter_map(|s| Some((s.id.clone(), reasoning::window::read(whole, s.when.first()?)?.0))).collect();
        self.detector.push(&values)
    }

    /// Recommends for the open symptoms and checks the plan; one [`Advice`] per change, and one per
    /// open symptom that leads to no change (with the engine's reason).
    fn advise(&mut self, cfg: &AgentConfig, kb: &Kb, found: &Findings, (a, b): (&Snapshot, &Snapshot), store: &dyn SysctlStore) -> Vec<Advice> {
        let open = Findings { findings: self.last.values().cloned().collect(), ..found.clone() };
        let open_ids: BTreeSet<String> = self.last.keys().cloned().collect();
        let current = self.values.get(store, kb, &open_ids, cfg.mode == super::config::Mode::Observe);
        let ctx = Context { kb, intent: cfg.intent, current, window: Window::new(a, b) };
        let plan = reasoning::recommend(&open, &ctx);
        let facts = match &cfg.netns {
            Some(_) => safety::facts::from_snapshot(b).in_netns(crate::telemetry::netns::NetnsPlace::Child),
            None => safety::facts::from_snapshot(b),
        };
        let checked = safety::check_with(&plan, kb, &cfg.policy, current, &facts);
        self.values.watch(&checked);
        let mut out = changes(cfg, &checked);
        let advised: BTreeSet<String> = out.iter().flat_map(|x| x.record.symptom.split(',').map(str::to_string)).collect();
        for f in open.findings.iter().filter(|f| !advised.contains(&f.id)) {
            let why = checked.plan.considered.iter().find(|c| c.finding_id == f.id).map(|c| format!("{}: {}", c.key, c.reason)).unwrap_or_else(|| "no key of the knowledge base is proposed for it".into());
            let rec = advice::Record { kind: "advice".into(), symptom: f.id.clone(), key: String::new(), proposal: "no change".into(), verdict: why, first_seen_ms: 0, last_seen_ms: 0, count: 0 };
            out.push(Advice { id: advice::id("advice", &f.id, "", "no change"), record: rec, write: None });
        }
        out
    }
}

/// The checked plan's changes as advice, the disabled keys left out.
fn changes(cfg: &AgentConfig, checked: &CheckedPlan) -> Vec<Advice> {
    let mut out = Vec::new();
    for c in checked.changes.iter().filter(|c| cfg.key_enabled(&c.change.key)) {
        let symptom = c.change.finding_ids.join(",");
        let verdict = match &c.verdict {
            Verdict::Accept => "accept".to_string(),
            v => format!("{}: {}", v.label(), v.reason()),
        };
        let write = matches!(c.verdict, Verdict::Accept).then(|| c.write.clone().unwrap_or_else(|| c.change.to.clone()));
        let rec = advice::Record { kind: "advice".into(), symptom: symptom.clone(), key: c.change.key.clone(), proposal: c.change.to.clone(), verdict, first_seen_ms: 0, last_seen_ms: 0, count: 0 };
        out.push(Advice { id: advice::id("advice", &symptom, &c.change.key, &c.change.to), record: rec, write });
    }
    out
}

/// Current values of every KB key present in `store` (what the engine and the guardrails judge from).
pub fn current_values(store: &dyn SysctlStore, kb: &Kb) -> BTreeMap<String, Value> {
    kb.params
        .iter()
        .filter(|(_, p)| p.risk != crate::kb::Risk::Never && p.no_read.is_none())
        .filter_map(|(k, _)| SysctlKey::parse(k).ok())
        .filter_map(|k| store.read(&k).ok().map(|v| (k.to_string(), v)))
        .collect()
}
