//! The optimisers against random search at equal budgets (5, 10, 20 trials) on
//! synthetic landscapes shaped like sysctl responses (a cliff below a limit
//! with a plateau above it, a log-scale optimum, a percentage with an
//! interior optimum, a switch) over 2–4 dimensions, each drawn afresh from a
//! seed. Every tune runs the real loop (`tune::driver::run`, 3 paired repeats
//! per trial, the step limit judged against the incumbent as the guardrails
//! do). Prints, per budget, the median, mean and p90 regret (percent above
//! the best point of an exhaustive grid) of the GP optimiser, TPE and random
//! search, and the GP/random ratio of the medians.
//!
//! `cargo bench --bench optimiser` (SEEDS=n to change the ensemble, 24 by default; FROM=s for
//! the first seed, 0 by default: the optimisers were developed on 0..24, so check them on others).

use semantos::tune::CandidateSource;
use semantos::tune::optimiser::proving::{self, Landscape, Synthetic};
use semantos::tune::optimiser::{GpSearch, RandomSearch, Tpe};

type Make = fn(u64) -> Box<dyn CandidateSource>;

const SOURCES: [(&str, Make); 3] = [("gp", |s| Box::new(GpSearch::new(s))), ("tpe", |s| Box::new(Tpe::new(s))), ("random", |s| Box::new(RandomSearch::new(s)))];
const BUDGETS: [usize; 3] = [5, 10, 20];

/// Regrets by source and budget, one per seed.
fn regrets(dims: usize, seeds: std::ops::Range<u64>) -> Vec<Vec<Vec<f64>>> {
    let mut out = vec![vec![Vec::new(); BUDGETS.len()]; SOURCES.len()];
    for s in seeds {
        let land = Synthetic::new(dims, s);
        let opt = proving::grid_optimum(&land);
        for (i, (_, make)) in SOURCES.iter().enumerate() {
            for (j, &budget) in BUDGETS.iter().enumerate() {
                out[i][j].push(proving::tune(&land, make(s), budget, s, opt).expect("the proving ground cannot fail").regret_pct);
            }
        }
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// TRACE=dims,budget,seed: the trials of the GP optimiser on that landscape, one line each.
fn trace(spec: &str) {
    use semantos::tune::driver::{self, Loop, Settings, Silent};
    let n: Vec<u64> = spec.split(',').filter_map(|x| x.parse().ok()).collect();
    let (dims, budget, seed) = (n[0] as usize, n[1] as usize, n[2]);
    let land = Synthetic::new(dims, seed);
    let opt = proving::grid_optimum(&land);
    let mut system = proving::MapSystem::new(land.start());
    let held = system.handle();
    let mut probe = proving::Probe::new(&land, system.handle(), seed);
    let check = |v: &semantos::tune::Values| proving::guardrails(land.space(), &held.borrow(), v);
    let spec = proving::spec();
    let settings = Settings::new(budget, 3, seed);
    let l = Loop { system: &mut system, objective: &mut probe, sources: vec![Box::new(GpSearch::new(seed))], space: land.space(), spec: &spec, check: &check, settings };
    let out = driver::run(l, land.start(), land.start(), Vec::new(), &mut Silent).expect("runs");
    println!("{land:?} optimum {opt:.2}, start {:.2}", land.truth(&land.start()));
    for t in out.trials {
        println!("{:>2} {:?} {:?} truth {:.2} {:+.1} % [{:+.1}, {:+.1}] | {}", t.index, t.values.values().collect::<Vec<_>>(), t.judgement.decision, land.truth(&t.values), t.judgement.improvement_pct, t.judgement.ci95_pct.0, t.judgement.ci95_pct.1, t.rationale.unwrap_or_default());
    }
}

fn main() {
    if let Ok(spec) = std::env::var("TRACE") {
        return trace(&spec);
    }
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d);
    let (seeds, from) = (env("SEEDS", 24), env("FROM", 0));
    print!("{:<26} {:>6}", "landscape", "budget");
    for (name, _) in SOURCES {
        print!("  {:>17}", format!("{name} median/mean"));
    }
    println!("  {:>10}  {:>8}", "random p90", "gp/rand");
    for dims in [2, 3, 4] {
        let name = Synthetic::new(dims, 0).name();
        let all = regrets(dims, from..from + seeds);
        for (j, budget) in BUDGETS.iter().enumerate() {
            print!("{name:<26} {budget:>6}");
            for per_source in &all {
                let (m, _) = proving::summary(&per_source[j]);
                print!("  {:>17}", format!("{m:.1} / {:.1} %", mean(&per_source[j])));
            }
            let (gm, (rm, rp)) = (proving::summary(&all[0][j]).0, proving::summary(&all[SOURCES.len() - 1][j]));
            let ratio = if rm > 0.0 { format!("{:.2}", gm / rm) } else { "-".into() };
            println!("  {rp:>8.1} %  {ratio:>8}");
        }
    }
    println!("regret: percent above the exhaustive grid's optimum (33 points per integer dimension), seeds {from}..{}", from + seeds);
}
