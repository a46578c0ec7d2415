//! The simulator as a tune's system and objective: the closed loop of the
//! reproduction (`semantos --config experiments/configs/tune.yaml`) and of
//! `semantos compare --reasoners ... --budget N`.
//!
//! * [`SimHost`] holds the values in force on the simulated host; its
//!   [`SimSystem`] sets them and its [`SimObjective`] runs every workload
//!   of the reproduction under them (`sim::driver::run`).
//! * One run is scored by ONE number, the geometric mean of the workloads'
//!   p95 latencies (ms). Why the geometric mean: the workloads' tails differ
//!   by a factor of thirty (web ≈ 0.2 s, bulk ≈ 1.3 s after tuning), so an
//!   arithmetic mean (or a sum) would be bulk's p95 with noise from the rest;
//!   the ratio of two configurations' geometric means is the geometric mean
//!   of the per-workload ratios, so a 10 % gain on web counts as much as a
//!   10 % gain on bulk, whatever their scale. A gain on one workload must not
//!   be bought with another's: each workload's p95 is also a guard objective
//!   (`p95.<workload>`) that may worsen by at most the configured limit
//!   against the incumbent, so the loop never trades one tail for another.
//! * Seeds: the runs are fresh per pair and deterministic from the tune
//!   seed. The loop measures incumbent and candidate back to back in pairs;
//!   both runs of a pair get the same seed (the same arrivals: common random
//!   numbers, the simulator's counterpart of "back to back on one host"), so
//!   a pair's difference is the configuration's, not the arrivals'.
//! * [`space`] is the simulator's search space (`space::build` over the
//!   modelled keys the policy allows); [`Compass`] is a deterministic pattern
//!   search over any space, the optimiser the reproduction can always run;
//!   [`step_check`] refuses a candidate the guardrails would not write at
//!   once (a step past the policy's limit from the incumbent).

use super::candidate::{Candidate, CandidateSource, Proposal};
use super::decide::Decision;
use super::objective::{Direction, GuardLimit, Measurement, ObjectiveSpec, Stat};
use super::space::{self, DimKind, SearchSpace, field_of, with_field};
use super::{ObjectiveSource, System, Values};
use crate::kb::Kb;
use crate::reasoning::{Change, Plan};
use crate::safety::{self, Policy};
use crate::sim::{self, HostSpec, WorkloadSpec, params::HostParams, rng::trial_seed};
use crate::sysctl::{SysctlKey, Value, store::MemStore};
use anyhow::{Result, bail};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// The keys `HostParams` reads, with the field it reads of a multi-value key.
pub const MODELLED: [(&str, Option<usize>); 16] = [
    ("net.core.somaxconn", None),
    ("net.core.netdev_max_backlog", None),
    ("net.core.netdev_budget", None),
    ("net.ipv4.tcp_rmem", Some(2)),
    ("net.ipv4.tcp_wmem", Some(2)),
    ("net.ipv4.tcp_slow_start_after_idle", None),
    ("vm.dirty_ratio", None),
    ("vm.dirty_background_ratio", None),
    ("vm.dirty_bytes", None),
    ("vm.dirty_background_bytes", None),
    ("vm.dirty_expire_centisecs", None),
    ("vm.swappiness", None),
    ("vm.watermark_scale_factor", None),
    ("kernel.numa_balancing", None),
    ("kernel.sched_min_granularity_ns", None),
    ("kernel.sched_latency_ns", None),
];

/// Salt of the tune's measurement seeds (the reproduction's rounds use 100 000 and 200 000).
const MEASURE_SALT: usize = 300_000;

/// The values the simulated host starts with: kernel defaults plus the scenario's `start`.
pub fn start_values(host: &HostSpec) -> Values {
    let mut v = host.kernel_defaults();
    v.extend(host.start.clone());
    v
}

/// The simulator's parameters under `values` (a key absent takes the kernel default).
pub fn params_of(values: &Values) -> HostParams {
    let store = MemStore::new(values.iter().filter_map(|(k, v)| Some((SysctlKey::parse(k).ok()?, Value::from_kernel(v)))));
    HostParams::from_store(&store)
}

/// The simulated host a tune runs on: the values in force, shared by its system and its objective.
#[derive(Debug, Clone)]
pub struct SimHost {
    host: HostSpec,
    now: Rc<RefCell<Values>>,
}

impl SimHost {
    /// A host at its scenario's starting values.
    pub fn new(host: &HostSpec) -> Self {
        SimHost { host: host.clone(), now: Rc::new(RefCell::new(start_values(host))) }
    }

    /// Where values are set.
    pub fn system(&self) -> SimSystem {
        SimSystem { host: self.host.clone(), start: self.now.borrow().clone(), now: self.now.clone() }
    }

    /// What is measured: every workload for `seconds`, seeds from `seed`.
    pub fn objective(&self, workloads: &[WorkloadSpec], seconds: f64, seed: u64) -> SimObjective {
        SimObjective { host: self.host.clone(), now: self.now.clone(), workloads: workloads.to_vec(), seconds, seed, runs: 0 }
    }
}

/// The simulator's parameters as a tune's [`System`].
#[derive(Debug)]
pub struct SimSystem {
    host: HostSpec,
    start: Values,
    now: Rc<RefCell<Values>>,
}

impl System for SimSystem {
    fn describe(&self) -> String {
        format!("the simulator's parameters (simulated host {}, kernel {})", self.host.hostname, self.host.kernel_release)
    }

    fn read(&self, keys: &[String]) -> Result<Values> {
        let now = self.now.borrow();
        keys.iter()
            .map(|k| match now.get(k) {
                Some(v) => Ok((k.clone(), v.clone())),
                None => bail!("{k}: the simulated host has no such key (kernel {}); modelled keys: {}", self.host.kernel_release, now.keys().cloned().collect::<Vec<_>>().join(", ")),
            })
            .collect()
    }

    fn set(&mut self, values: &Values) -> Result<()> {
        // Checked whole before anything is set: on error nothing of this call is written.
        for (k, v) in values {
            if !self.now.borrow().contains_key(k) {
                bail!("{k} = {v:?}: the simulated host has no such key; nothing was set");
            }
            if Value::from_kernel(v).ints().is_none() && !is_word(v) {
                bail!("{k} = {v:?}: not a value the simulator can read (integers, or one word); nothing was set");
            }
        }
        self.now.borrow_mut().extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }

    fn restore(&mut self) -> Result<()> {
        *self.now.borrow_mut() = self.start.clone();
        Ok(())
    }
}

fn is_word(v: &str) -> bool {
    !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The reproduction's workloads on the simulator as a tune's [`ObjectiveSource`].
#[derive(Debug)]
pub struct SimObjective {
    host: HostSpec,
    now: Rc<RefCell<Values>>,
    workloads: Vec<WorkloadSpec>,
    seconds: f64,
    seed: u64,
    runs: usize,
}

/// The guard name of a workload's p95.
pub fn guard_name(workload: &str) -> String {
    format!("p95.{workload}")
}

/// The objective of a simulator tune: the geometric-mean p95 (one value per
/// run), lower is better, each workload's p95 guarded at `max_worsening_pct`.
pub fn spec(workloads: &[WorkloadSpec], max_worsening_pct: f64) -> ObjectiveSpec {
    let names: BTreeSet<&str> = workloads.iter().map(|w| w.class.name()).collect();
    let guards = names.into_iter().map(|w| GuardLimit { name: guard_name(w), direction: Direction::Lower, max_worsening_pct }).collect();
    ObjectiveSpec::new(Stat::Value, Direction::Lower, guards)
}

/// The geometric mean of `p95s` (every value positive; `NaN` otherwise).
pub fn geometric_mean(p95s: &[f64]) -> f64 {
    if p95s.is_empty() || p95s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return f64::NAN;
    }
    (p95s.iter().map(|v| v.ln()).sum::<f64>() / p95s.len() as f64).exp()
}

impl SimObjective {
    /// Each workload's p95 (ms) over one run under `values` with `seed`.
    pub fn p95s(&self, values: &Values, seed: u64) -> BTreeMap<String, f64> {
        let out = sim::run(&self.host, &params_of(values), &self.workloads, seed, self.seconds);
        out.latencies.iter().map(|(w, l)| (w.clone(), crate::eval::percentile(l, 95.0))).collect()
    }
}

impl ObjectiveSource for SimObjective {
    fn describe(&self) -> String {
        let names: Vec<&str> = self.workloads.iter().map(|w| w.class.name()).collect();
        format!("geometric mean of the p95 of {} over {} simulated seconds (seed {})", names.join(", "), self.seconds, self.seed)
    }

    fn measure(&mut self) -> Result<Measurement> {
        // Runs 2i and 2i+1 (a pair the loop measures back to back) share a seed.
        let seed = trial_seed(self.seed, MEASURE_SALT + self.runs / 2);
        self.runs += 1;
        let values = self.now.borrow().clone();
        let p95s = self.p95s(&values, seed);
        let score = geometric_mean(&p95s.values().copied().collect::<Vec<_>>());
        let guards = p95s.iter().map(|(w, v)| (guard_name(w), *v)).collect();
        Ok(Measurement { samples: vec![score], seconds: self.seconds, guards })
    }
}

/// The simulator's search space: `space::build` (the one builder `tune` uses
/// everywhere) over the modelled keys, from the start values: the KB range
/// within the policy's step window, the policy's whitelist and risk, the
/// field the KB adjusts of a multi-value key, log scale for byte and count
/// keys, one member of an exclusive pair (the one in force: a partner's
/// sentinel hands control to the other), the KB's invariants as orders.
pub fn space(kb: &Kb, policy: &Policy, start: &Values) -> Result<SearchSpace> {
    let modelled: Vec<(String, String)> = MODELLED.iter().map(|(k, _)| (k.to_string(), "modelled by the simulator".to_string())).collect();
    space::build(kb, &modelled, policy, start)
}

/// Refuses `values` unless every key that differs from `incumbent` is
/// written as proposed by the guardrails (`safety::check` against the
/// incumbent: whitelist, risk, KB range, the step limit). A clamp is a
/// refusal here: the loop measures what it proposes or nothing.
pub fn step_check(kb: &Kb, policy: &Policy, incumbent: &Values, values: &Values) -> std::result::Result<(), String> {
    let mut plan = Plan::new("tune", crate::kb::Intent::Latency);
    for (k, v) in values {
        if incumbent.get(k) != Some(v) {
            plan.changes.push(Change {
                key: k.clone(),
                from: incumbent.get(k).cloned(),
                to: v.clone(),
                rationale: "closed-loop candidate".into(),
                evidence: vec![],
                measurements: vec![],
                finding_ids: vec![],
                kb_key: Some(k.clone()),
                effect: kb.param(k).map(|p| p.effect).unwrap_or_default(),
                uncertainty: None,
                advice_only: false,
            });
        }
    }
    let current: BTreeMap<String, Value> = incumbent.iter().map(|(k, v)| (k.clone(), Value::from_kernel(v))).collect();
    let checked = safety::check(&plan, kb, policy, &current);
    if let Some(why) = &checked.aborted {
        return Err(why.replace('\n', "; "));
    }
    let refused: Vec<String> = checked.changes.iter().filter(|c| c.verdict.label() != "accept").map(|c| format!("{} → {}: {} ({})", c.change.key, c.change.to, c.verdict.label(), c.verdict.reason())).collect();
    if refused.is_empty() { Ok(()) } else { Err(refused.join("; ")) }
}

/// Compass (pattern) search: from the incumbent, move one dimension at a
/// time up, then down, by a step (a factor on log dimensions, a share of
/// the range on linear ones); after a kept move, repeat it; after a whole
/// sweep with nothing kept, halve the steps; stop when they are below one
/// unit. Deterministic, needs no model, and never proposes a point twice.
#[derive(Debug, Clone)]
pub struct Compass {
    /// Log dimensions: the factor of a move.
    factor: f64,
    /// Linear dimensions: the share of the range of a move.
    share: f64,
    /// Next (dimension, direction) to try, as an index into 2 × dims.
    cursor: usize,
    /// Moves tried since the last kept one.
    since_kept: usize,
    /// Trials of the history already read.
    seen: usize,
    /// The last move proposed, repeated after it is kept.
    last: Option<usize>,
    tried: BTreeSet<Values>,
    /// Largest factor of one move (the policy's step limit).
    max_factor: f64,
}

impl Compass {
    /// A compass search whose log moves are at most `max_factor` (the policy's `max_step_ratio`).
    pub fn new(max_factor: f64) -> Self {
        let max_factor = if max_factor.is_finite() && max_factor > 1.0 { max_factor } else { 2.0 };
        Compass { factor: max_factor.min(4.0), share: 0.25, cursor: 0, since_kept: 0, seen: 0, last: None, tried: BTreeSet::new(), max_factor }
    }

    /// `incumbent` with move `m` (dimension m / 2, up when m is even) applied; `None` when it stays put.
    fn moved(&self, space: &SearchSpace, incumbent: &Values, m: usize) -> Option<Values> {
        let d = space.dims.get(m / 2)?;
        let up = m.is_multiple_of(2);
        let text = incumbent.get(&d.key)?;
        let cur = field_of(text, d.field)?;
        let next = match &d.kind {
            DimKind::Choice { values } => {
                let i = values.iter().position(|v| *v == cur);
                let j = match (i, up) {
                    (Some(i), true) => i + 1,
                    (Some(i), false) => i.checked_sub(1)?,
                    (None, _) => 0,
                };
                values.get(j)?.clone()
            }
            DimKind::Int { min, max, log } => {
                let c: i64 = cur.parse().ok()?;
                let v = if *log {
                    let f = self.factor.min(self.max_factor);
                    if up { (c.max(1) as f64 * f).round() as i64 } else { (c as f64 / f).round() as i64 }
                } else {
                    let step = (((max - min) as f64 * self.share).round() as i64).max(1);
                    if up { c + step } else { c - step }
                };
                v.clamp(*min, *max).to_string()
            }
        };
        (next != cur).then(|| {
            let mut out = incumbent.clone();
            out.insert(d.key.clone(), with_field(text, d.field, &next));
            out
        })
    }

    /// Whether the steps can still be halved (a log factor above 1.05, a linear step of at least one unit).
    fn can_shrink(&self, space: &SearchSpace) -> bool {
        let linear = space.dims.iter().any(|d| matches!(d.kind, DimKind::Int { min, max, log: false } if ((max - min) as f64 * self.share / 2.0) >= 1.0));
        let logs = space.dims.iter().any(|d| matches!(d.kind, DimKind::Int { log: true, .. }));
        (logs && self.factor.sqrt() > 1.05) || linear
    }
}

impl CandidateSource for Compass {
    fn name(&self) -> String {
        "compass".into()
    }

    fn propose(&mut self, p: &Proposal) -> Result<Option<Candidate>> {
        let moves = p.space.dims.len() * 2;
        if moves == 0 {
            return Ok(None);
        }
        for t in &p.history[self.seen.min(p.history.len())..] {
            self.tried.insert(t.values.clone());
            if t.judgement.decision == Decision::Kept {
                self.since_kept = 0;
                if t.source == self.name() {
                    // Repeat a kept move once more before sweeping on.
                    if let Some(m) = self.last {
                        self.cursor = m;
                    }
                }
            }
        }
        self.seen = p.history.len();
        loop {
            if self.since_kept >= moves {
                if !self.can_shrink(p.space) {
                    return Ok(None);
                }
                self.factor = self.factor.sqrt();
                self.share /= 2.0;
                self.since_kept = 0;
            }
            let m = self.cursor % moves;
            self.cursor += 1;
            self.since_kept += 1;
            if let Some(v) = self.moved(p.space, p.incumbent, m)
                && !self.tried.contains(&v)
            {
                self.last = Some(m);
                self.tried.insert(v.clone());
                let d = &p.space.dims[m / 2];
                let why = format!("compass move: {} {} (factor {:.2}, linear share {:.3})", if m.is_multiple_of(2) { "raise" } else { "lower" }, d.key, self.factor, self.share);
                return Ok(Some(Candidate { source: self.name(), values: v, rationale: Some(why), supported: None }));
            }
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::decide::Judgement;
    use crate::tune::space::Dim;
    use crate::tune::{Trial, objective::ObjectiveSpec};

    fn host() -> HostSpec {
        HostSpec::default()
    }

    #[test]
    fn a_set_naming_an_unmodelled_key_sets_nothing() {
        let h = SimHost::new(&host());
        let mut s = h.system();
        let before = s.read(&["vm.swappiness".into()]).unwrap();
        let bad = Values::from([("vm.swappiness".to_string(), "10".to_string()), ("vm.nonesuch".to_string(), "1".to_string())]);
        let e = s.set(&bad).unwrap_err().to_string();
        assert!(e.contains("vm.nonesuch") && e.contains("nothing was set"), "{e}");
        assert_eq!(s.read(&["vm.swappiness".into()]).unwrap(), before);
    }

    #[test]
    fn restore_puts_back_the_start_values() {
        let h = SimHost::new(&host());
        let mut s = h.system();
        s.set(&Values::from([("vm.swappiness".to_string(), "10".to_string())])).unwrap();
        s.restore().unwrap();
        assert_eq!(s.read(&["vm.swappiness".into()]).unwrap()["vm.swappiness"], "60");
    }

    #[test]
    fn both_runs_of_a_pair_see_the_same_arrivals_and_the_next_pair_new_ones() {
        let h = SimHost::new(&host());
        let mut o = h.objective(&crate::config::ExperimentConfig::default().workloads, 15.0, 7);
        let (a, b, c) = (o.measure().unwrap(), o.measure().unwrap(), o.measure().unwrap());
        assert_eq!(a, b, "same values, same pair: the same run");
        assert_ne!(a.samples, c.samples, "a new pair gets a fresh seed");
        assert_eq!(a.guards.len(), 4, "one p95 guard per workload: {:?}", a.guards);
    }

    #[test]
    fn the_score_is_the_geometric_mean_so_each_workload_counts_by_its_ratio() {
        // Halving the small tail counts as much as halving the large one.
        assert!((geometric_mean(&[100.0, 4000.0]) - geometric_mean(&[200.0, 2000.0])).abs() < 1e-9);
        assert!(geometric_mean(&[1.0, 0.0]).is_nan());
    }

    #[test]
    fn the_space_tunes_only_the_member_of_an_exclusive_pair_in_force_and_never_to_its_sentinel() {
        let kb = Kb::embedded().unwrap();
        let policy = Policy::default();
        let start = start_values(&host());
        let sp = space(&kb, &policy, &start).unwrap();
        let keys: Vec<&str> = sp.dims.iter().map(|d| d.key.as_str()).collect();
        assert!(keys.contains(&"vm.dirty_ratio"), "{keys:?}");
        assert!(!keys.contains(&"vm.dirty_bytes"), "dirty_bytes is 0 (dirty_ratio in force): {keys:?}");
        let ratio = sp.dims.iter().find(|d| d.key == "vm.dirty_ratio").unwrap();
        assert!(matches!(ratio.kind, DimKind::Int { min, .. } if min >= 1), "{:?}", ratio.kind);
        for d in &sp.dims {
            assert!(policy.allows(&d.key), "{} is outside the policy", d.key);
        }
    }

    #[test]
    fn a_step_past_the_policy_limit_is_refused_and_one_within_it_passes() {
        let kb = Kb::embedded().unwrap();
        let policy = Policy::default();
        let inc = start_values(&host());
        let mut far = inc.clone();
        far.insert("net.core.somaxconn".into(), "65535".into());
        let e = step_check(&kb, &policy, &inc, &far).unwrap_err();
        assert!(e.contains("net.core.somaxconn"), "{e}");
        let mut near = inc.clone();
        near.insert("net.core.somaxconn".into(), "512".into());
        step_check(&kb, &policy, &inc, &near).unwrap();
    }

    fn trial(index: usize, values: &Values, decision: Decision) -> Trial {
        Trial { index, source: "compass".into(), values: values.clone(), rationale: None, supported: None, judgement: Judgement::unmeasured(decision, "test"), elapsed_s: 0.0 }
    }

    #[test]
    fn compass_never_proposes_a_point_twice_and_stops_when_its_steps_are_spent() {
        let space = SearchSpace { dims: vec![Dim { key: "vm.swappiness".into(), field: None, kind: DimKind::Int { min: 0, max: 200, log: false }, why: String::new() }], ..SearchSpace::default() };
        let inc = Values::from([("vm.swappiness".to_string(), "60".to_string())]);
        let spec = ObjectiveSpec::new(Stat::Value, Direction::Lower, vec![]);
        let mut c = Compass::new(8.0);
        let mut history = Vec::new();
        let mut seen = BTreeSet::new();
        while let Some(cand) = c.propose(&Proposal { space: &space, incumbent: &inc, history: &history, objective: &spec }).unwrap() {
            assert!(seen.insert(cand.values.clone()), "proposed twice: {:?}", cand.values);
            history.push(trial(history.len() + 1, &cand.values, Decision::Reverted));
            assert!(history.len() < 100, "never stops");
        }
        assert!(history.len() >= 4, "{history:?}");
    }
}
