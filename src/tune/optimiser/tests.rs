use super::proving::{self, Landscape, Synthetic};
use super::{GpSearch, RandomSearch, Tpe};
use crate::tune::candidate::CandidateSource;

/// Regrets of `make`'s source over the `seeds` landscapes of `dims` dimensions at `budget`.
fn regrets(dims: usize, seeds: std::ops::Range<u64>, budget: usize, make: &dyn Fn(u64) -> Box<dyn CandidateSource>) -> Vec<f64> {
    seeds
        .map(|s| {
            let land = Synthetic::new(dims, s);
            let opt = proving::grid_optimum(&land);
            proving::tune(&land, make(s), budget, s, opt).unwrap().regret_pct
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// A tune over a synthetic landscape with `source`, returning every trial.
fn trials(land: &Synthetic, source: Box<dyn CandidateSource>, budget: usize, seed: u64) -> Vec<crate::tune::Trial> {
    use crate::tune::driver::{self, Loop, Settings, Silent};
    let mut system = proving::MapSystem::new(land.start());
    let mut probe = proving::Probe::new(land, system.handle(), seed);
    let space = land.space();
    let check = |v: &crate::tune::Values| space.admits(v);
    let spec = proving::spec();
    let settings = Settings::new(budget, 3, seed);
    let l = Loop { system: &mut system, objective: &mut probe, sources: vec![source], space, spec: &spec, check: &check, settings };
    driver::run(l, land.start(), land.start(), Vec::new(), &mut Silent).unwrap().trials
}

/// Every optimiser, by seed.
const SOURCES: [fn(u64) -> Box<dyn CandidateSource>; 3] = [|s| Box::new(GpSearch::new(s)), |s| Box::new(Tpe::new(s)), |s| Box::new(RandomSearch::new(s))];

#[test]
fn the_same_seed_proposes_the_same_trials_and_another_seed_others() {
    let land = Synthetic::new(4, 3);
    for make in SOURCES {
        let a: Vec<_> = trials(&land, make(1), 8, 1).into_iter().map(|t| t.values).collect();
        let b: Vec<_> = trials(&land, make(1), 8, 1).into_iter().map(|t| t.values).collect();
        let c: Vec<_> = trials(&land, make(2), 8, 1).into_iter().map(|t| t.values).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 8);
    }
}

#[test]
fn a_resumed_optimiser_proposes_what_the_uninterrupted_one_would() {
    use crate::tune::candidate::Proposal;
    let land = Synthetic::new(3, 5);
    for make in SOURCES {
        let all = trials(&land, make(9), 8, 4);
        // A fresh optimiser (the process was killed) given the first five trials and the incumbent they left.
        let history = &all[..5];
        let incumbent = history.iter().rev().find(|t| t.judgement.decision == crate::tune::Decision::Kept).map(|t| t.values.clone()).unwrap_or_else(|| land.start());
        let spec = proving::spec();
        let p = Proposal { space: land.space(), incumbent: &incumbent, history, objective: &spec };
        let next = make(9).propose(&p).unwrap().unwrap();
        assert_eq!(next.values, all[5].values);
    }
}

#[test]
fn tpe_and_gp_never_move_a_key_past_the_step_limit_from_the_incumbent() {
    for seed in 0..6 {
        for make in [SOURCES[0], SOURCES[1]] {
            let land = Synthetic::new(2, seed);
            let ts = trials(&land, make(seed), 12, seed);
            let mut incumbent = land.start();
            for t in ts {
                for key in ["backlog", "buffer"] {
                    let (a, b) = (incumbent[key].parse::<f64>().unwrap().max(1.0), t.values[key].parse::<f64>().unwrap().max(1.0));
                    assert!(a / b <= 8.0 && b / a <= 8.0, "{key}: {a} → {b} exceeds ×8 (trial {})", t.index);
                }
                if t.judgement.decision == crate::tune::Decision::Kept {
                    incumbent = t.values.clone();
                }
            }
        }
    }
}

#[test]
fn no_optimiser_proposes_an_assignment_the_kb_orders_forbid_or_one_already_tried() {
    use crate::tune::space::{Dim, DimKind, Order, SearchSpace};
    // Two percentages that must keep background < foreground (dirty_background_ratio < dirty_ratio).
    let dim = |k: &str| Dim { key: k.into(), field: None, kind: DimKind::Int { min: 1, max: 40, log: false }, why: String::new() };
    let order = Order { from: "bg".into(), from_field: None, to: "fg".into(), to_field: None, strict: true, unless_from: vec![], unless_to: vec![0], why: "test".into() };
    let space = SearchSpace { dims: vec![dim("bg"), dim("fg")], max_step_ratio: Some(8.0), orders: vec![order], ..SearchSpace::default() };
    let start: crate::tune::Values = [("bg", "10"), ("fg", "20")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let spec = proving::spec();
    for make in SOURCES {
        for seed in 0..20 {
            let mut source = make(seed);
            let p = crate::tune::candidate::Proposal { space: &space, incumbent: &start, history: &[], objective: &spec };
            let c = source.propose(&p).unwrap().unwrap();
            space.admits(&c.values).unwrap();
            assert_ne!(c.values, start);
            let (bg, fg) = (c.values["bg"].parse::<i64>().unwrap(), c.values["fg"].parse::<i64>().unwrap());
            assert!(bg < fg, "{bg} {fg}");
        }
    }
}

#[test]
fn an_empty_space_offers_nothing() {
    let space = crate::tune::SearchSpace::default();
    let spec = proving::spec();
    let inc = crate::tune::Values::new();
    let p = crate::tune::candidate::Proposal { space: &space, incumbent: &inc, history: &[], objective: &spec };
    assert!(Tpe::new(1).propose(&p).unwrap().is_none());
    assert!(GpSearch::new(1).propose(&p).unwrap().is_none());
    assert!(RandomSearch::new(1).propose(&p).unwrap().is_none());
}


/// The claim the issue makes of the optimiser, on landscapes it was not developed on (seeds
/// 0..24 were; 1000..1100 and 5000..5100 checked it in `benches/optimiser.rs`): at equal budget
/// the GP optimiser's median regret is at most three quarters of random search's, and its mean
/// no worse. On these seeds the GP's is 8.9 % / 42.3 % (median / mean) at 3 keys and budget 10
/// against random's 29.2 % / 84.6 %; TPE, the optimiser before it, fails (23.1 % / 87.0 %).
#[test]
fn gp_regret_beats_random_searchs_at_equal_budget_on_landscapes_it_was_not_developed_on() {
    for (dims, budget) in [(3, 10), (4, 5)] {
        let gp = regrets(dims, 7000..7032, budget, &|s| Box::new(GpSearch::new(s)));
        let random = regrets(dims, 7000..7032, budget, &|s| Box::new(RandomSearch::new(s)));
        let (gm, rm) = (proving::summary(&gp).0, proving::summary(&random).0);
        assert!(gm <= 0.75 * rm, "{dims} dimensions, budget {budget}: median regret gp {gm:.1} %, random {rm:.1} %");
        assert!(mean(&gp) <= mean(&random), "{dims} dimensions, budget {budget}: mean regret gp {:.1} %, random {:.1} %", mean(&gp), mean(&random));
    }
}

/// A landscape whose optimum lies far outside the step box, so an optimiser wants moves the step
/// limit forbids: every proposal must still stay within ×2 of the incumbent of its day.
struct FarAway {
    space: crate::tune::SearchSpace,
}

impl Landscape for FarAway {
    fn name(&self) -> String {
        "far away".into()
    }
    fn space(&self) -> &crate::tune::SearchSpace {
        &self.space
    }
    fn start(&self) -> crate::tune::Values {
        [("a", "100"), ("b", "1000")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
    fn truth(&self, v: &crate::tune::Values) -> f64 {
        let x = |k: &str| v[k].parse::<f64>().unwrap().ln();
        1.0 + (x("a") - 1.0e5f64.ln()).powi(2) + (x("b") - 10f64.ln()).powi(2)
    }
    fn run(&self, v: &crate::tune::Values, _rng: &mut rand_pcg::Pcg64Mcg) -> Vec<f64> {
        vec![self.truth(v); 5]
    }
}

#[test]
fn no_optimiser_proposes_a_move_outside_the_step_box_of_the_incumbent() {
    use crate::tune::driver::{self, Loop, Settings, Silent};
    use crate::tune::space::{Dim, DimKind, SearchSpace};
    let dim = |k: &str| Dim { key: k.into(), field: None, kind: DimKind::Int { min: 1, max: 10_000_000, log: true }, why: String::new() };
    let land = FarAway { space: SearchSpace { dims: vec![dim("a"), dim("b")], max_step_ratio: Some(2.0), ..SearchSpace::default() } };
    for make in SOURCES[..2].iter() {
        let mut system = proving::MapSystem::new(land.start());
        let mut probe = proving::Probe::new(&land, system.handle(), 1);
        // No guardrail here: the optimiser alone must keep inside the step box.
        let check = |_: &crate::tune::Values| Ok(());
        let spec = proving::spec();
        let settings = Settings::new(12, 2, 1);
        let l = Loop { system: &mut system, objective: &mut probe, sources: vec![make(3)], space: &land.space, spec: &spec, check: &check, settings };
        let out = driver::run(l, land.start(), land.start(), Vec::new(), &mut Silent).unwrap();
        let mut incumbent = land.start();
        let mut kept = 0;
        for t in &out.trials {
            for key in ["a", "b"] {
                let (from, to) = (incumbent[key].parse::<f64>().unwrap(), t.values[key].parse::<f64>().unwrap());
                assert!(to / from <= 2.0 && from / to <= 2.0, "{}: {key} {from} → {to} leaves the ×2 step box", t.source);
            }
            if t.judgement.decision == crate::tune::Decision::Kept {
                incumbent = t.values.clone();
                kept += 1;
            }
        }
        // The optimum is reached, if at all, through kept points each within a step of the last.
        assert!(kept >= 2, "{}: only {kept} trial(s) kept on a landscape that improves all the way", out.trials[0].source);
    }
}

/// `accept-burst`'s shape over the real KB's space: p95 falls with `somaxconn` on a log scale
/// until a plateau at 2048, sixteen times the start's 128 (two steps of ×8 away).
struct Plateau {
    space: crate::tune::SearchSpace,
}

impl Landscape for Plateau {
    fn name(&self) -> String {
        "a plateau two steps away".into()
    }
    fn space(&self) -> &crate::tune::SearchSpace {
        &self.space
    }
    fn start(&self) -> crate::tune::Values {
        [("net.core.somaxconn", "128"), ("net.ipv4.tcp_max_syn_backlog", "4096")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
    fn truth(&self, v: &crate::tune::Values) -> f64 {
        let s = v["net.core.somaxconn"].parse::<f64>().unwrap();
        300.0 + 1500.0 * (1.0 - (s / 128.0).ln() / 16f64.ln()).clamp(0.0, 1.0)
    }
    fn run(&self, v: &crate::tune::Values, rng: &mut rand_pcg::Pcg64Mcg) -> Vec<f64> {
        use rand::RngExt;
        (0..5).map(|_| self.truth(v) * (1.0 + 0.02 * rng.random::<f64>())).collect()
    }
}

fn accept_burst_space(moving: bool) -> crate::tune::SearchSpace {
    use crate::reasoning::{Finding, Findings};
    let kb = crate::kb::Kb::embedded().unwrap();
    let f = Finding { id: "accept_queue_overflow".into(), title: String::new(), explain: String::new(), evidence: vec![], presence: Default::default() };
    let findings = Findings { schema_version: 2, host: Default::default(), snapshot_digest: String::new(), window_s: 1.0, samples: 2, findings: vec![f], no_data: vec![] };
    let implicated = crate::tune::space::implicated(&kb, &findings);
    let start = Plateau { space: Default::default() }.start();
    let build = if moving { crate::tune::space::build_moving } else { crate::tune::space::build };
    build(&kb, &implicated, &crate::safety::Policy::default(), &start).unwrap()
}

#[test]
fn an_optimum_beyond_one_step_of_the_start_is_reached_through_kept_trials_each_within_the_step_limit_of_the_live_incumbent() {
    use crate::tune::driver::{self, Loop, Settings, Silent};
    let land = Plateau { space: accept_burst_space(true) };
    let ratio = land.space.max_step_ratio.unwrap();
    // The space built once around the start stopped at one step: the plateau was out of reach.
    let once = accept_burst_space(false);
    let top = |s: &crate::tune::SearchSpace| s.assemble(&land.start(), &[1.0, 1.0])["net.core.somaxconn"].parse::<f64>().unwrap();
    assert!(top(&once) < 2048.0 && top(&land.space) >= 2048.0, "one step: {}, moving: {}", top(&once), top(&land.space));
    let mut system = proving::MapSystem::new(land.start());
    let live = system.handle();
    let mut probe = proving::Probe::new(&land, system.handle(), 7);
    let check = |_: &crate::tune::Values| Ok(());
    let spec = proving::spec();
    let settings = Settings::new(5, 3, 7);
    let l = Loop { system: &mut system, objective: &mut probe, sources: vec![Box::new(GpSearch::new(7))], space: &land.space, spec: &spec, check: &check, settings };
    let out = driver::run(l, land.start(), land.start(), Vec::new(), &mut Silent).unwrap();
    let mut incumbent = land.start();
    for t in &out.trials {
        for (key, to) in &t.values {
            let (from, to) = (incumbent[key].parse::<f64>().unwrap(), to.parse::<f64>().unwrap());
            assert!(to / from <= ratio && from / to <= ratio, "trial {}: {key} {from} → {to} is more than ×{ratio} from the live incumbent", t.index);
        }
        if t.judgement.decision == crate::tune::Decision::Kept {
            incumbent = t.values.clone();
        }
    }
    assert_eq!(*live.borrow(), out.best, "the loop leaves the incumbent live");
    let best = out.best["net.core.somaxconn"].parse::<f64>().unwrap();
    assert!(best >= 2048.0, "somaxconn {best} after {:?}", out.trials.iter().map(|t| (&t.values, t.judgement.decision)).collect::<Vec<_>>());
}
