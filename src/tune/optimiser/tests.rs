use super::proving::{self, Landscape, Synthetic};
use super::{RandomSearch, Tpe};
use crate::tune::candidate::CandidateSource;

/// Median regret of `make`'s source over `seeds` landscapes at `budget`.
fn median_regret(dims: usize, seeds: std::ops::Range<u64>, budget: usize, make: &dyn Fn(u64) -> Box<dyn CandidateSource>) -> f64 {
    let regrets: Vec<f64> = seeds
        .map(|s| {
            let land = Synthetic::new(dims, s);
            let opt = proving::grid_optimum(&land);
            proving::tune(&land, make(s), budget, s, opt).unwrap().regret_pct
        })
        .collect();
    if std::env::var("SHOW").is_ok() {
        eprintln!("{:?}", regrets.iter().map(|r| r.round()).collect::<Vec<_>>());
    }
    proving::summary(&regrets).0
}

fn compare(dims: usize, seeds: std::ops::Range<u64>) {
    for budget in [5, 10, 20] {
        let tpe = median_regret(dims, seeds.clone(), budget, &|s| Box::new(Tpe::new(s)));
        let random = median_regret(dims, seeds.clone(), budget, &|s| Box::new(RandomSearch::new(s)));
        eprintln!("budget {budget}: tpe {tpe:.2} % random {random:.2} %");
    }
}

/// A tune over a synthetic landscape with `source`, returning every trial.
fn trials(land: &Synthetic, source: Box<dyn CandidateSource>, budget: usize, seed: u64) -> Vec<crate::tune::Trial> {
    use crate::tune::driver::{self, Loop, Settings, Silent};
    let mut system = proving::MapSystem::new(land.start());
    let mut probe = proving::Probe::new(land, system.handle(), seed);
    let space = land.space();
    let check = |v: &crate::tune::Values| space.admits(v);
    let spec = proving::spec();
    let settings = Settings { budget, max_time: None, repeats: 3, warmup_runs: 0, seed };
    let l = Loop { system: &mut system, objective: &mut probe, sources: vec![source], space, spec: &spec, check: &check, settings };
    driver::run(l, land.start(), land.start(), Vec::new(), &mut Silent).unwrap().trials
}

#[test]
fn the_same_seed_proposes_the_same_trials_and_another_seed_others() {
    let land = Synthetic::new(4, 3);
    for make in [|s| Box::new(Tpe::new(s)) as Box<dyn CandidateSource>, |s| Box::new(RandomSearch::new(s)) as Box<dyn CandidateSource>] {
        let a: Vec<_> = trials(&land, make(1), 8, 1).into_iter().map(|t| t.values).collect();
        let b: Vec<_> = trials(&land, make(1), 8, 1).into_iter().map(|t| t.values).collect();
        let c: Vec<_> = trials(&land, make(2), 8, 1).into_iter().map(|t| t.values).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 8);
    }
}

#[test]
fn a_resumed_tpe_proposes_what_the_uninterrupted_one_would() {
    use crate::tune::candidate::Proposal;
    let land = Synthetic::new(3, 5);
    let all = trials(&land, Box::new(Tpe::new(9)), 8, 4);
    // A fresh optimiser (the process was killed) given the first five trials and the incumbent they left.
    let history = &all[..5];
    let incumbent = history.iter().rev().find(|t| t.judgement.decision == crate::tune::Decision::Kept).map(|t| t.values.clone()).unwrap_or_else(|| land.start());
    let spec = proving::spec();
    let p = Proposal { space: land.space(), incumbent: &incumbent, history, objective: &spec };
    let next = Tpe::new(9).propose(&p).unwrap().unwrap();
    assert_eq!(next.values, all[5].values);
}

#[test]
fn tpe_never_moves_a_key_past_the_step_limit_from_the_incumbent() {
    for seed in 0..6 {
        let land = Synthetic::new(2, seed);
        let ts = trials(&land, Box::new(Tpe::new(seed)), 12, seed);
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

#[test]
fn no_optimiser_proposes_an_assignment_the_kb_orders_forbid_or_one_already_tried() {
    use crate::tune::space::{Dim, DimKind, Order, SearchSpace};
    // Two percentages that must keep background < foreground (dirty_background_ratio < dirty_ratio).
    let dim = |k: &str| Dim { key: k.into(), field: None, kind: DimKind::Int { min: 1, max: 40, log: false }, why: String::new() };
    let order = Order { from: "bg".into(), from_field: None, to: "fg".into(), to_field: None, strict: true, unless_from: vec![], unless_to: vec![0], why: "test".into() };
    let space = SearchSpace { dims: vec![dim("bg"), dim("fg")], max_step_ratio: Some(8.0), orders: vec![order], ..SearchSpace::default() };
    let start: crate::tune::Values = [("bg", "10"), ("fg", "20")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let spec = proving::spec();
    for make in [|s| Box::new(Tpe::new(s)) as Box<dyn CandidateSource>, |s| Box::new(RandomSearch::new(s)) as Box<dyn CandidateSource>] {
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
    assert!(RandomSearch::new(1).propose(&p).unwrap().is_none());
}


/// The claim the issue makes of the optimiser. It holds on seeds 0..24 (median regret 25.4 % vs
/// 37.0 %) but not on seeds 1000..1024 (49.2 % vs 23.4 %: TPE's final incumbent is trapped below
/// the backlog cliff in about 10 of 24 landscapes), so it is not yet true in general and is
/// ignored rather than kept green on a lucky ensemble: run it with `--ignored` after changing the optimiser.
#[test]
#[ignore]
fn tpe_median_regret_is_at_most_random_searchs_at_budget_ten_on_a_synthetic_landscape() {
    let tpe = median_regret(3, 0..24, 10, &|s| Box::new(Tpe::new(s)));
    let random = median_regret(3, 0..24, 10, &|s| Box::new(RandomSearch::new(s)));
    assert!(tpe <= random, "median regret at budget 10: tpe {tpe:.1} %, random {random:.1} %");
}

#[test]
#[ignore]
fn explore() {
    let from: u64 = std::env::var("FROM").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let dims: usize = std::env::var("DIMS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    compare(dims, from..from + 24);
}
