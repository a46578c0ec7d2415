//! TPE against random search at equal budgets (5, 10, 20 trials) on synthetic
//! landscapes shaped like sysctl responses (a cliff below a limit with a
//! plateau above it, a log-scale optimum, a percentage with an interior
//! optimum, a switch) over 2–4 dimensions, each drawn afresh from a seed.
//! Every tune runs the real loop (`tune::driver::run`, 3 paired repeats per
//! trial, the step limit judged against the incumbent as the guardrails do).
//! Prints, per budget, the median and p90 regret (percent above the best
//! point of an exhaustive grid) of each optimiser and the TPE/random ratio.
//!
//! `cargo bench --bench optimiser` (SEEDS=n to change the ensemble, 24 by default).

use semantos::tune::CandidateSource;
use semantos::tune::optimiser::proving::{self, Landscape, Synthetic};
use semantos::tune::optimiser::{RandomSearch, Tpe};

fn regrets(dims: usize, seeds: u64, budget: usize, make: &dyn Fn(u64) -> Box<dyn CandidateSource>) -> Vec<f64> {
    (0..seeds)
        .map(|s| {
            let land = Synthetic::new(dims, s);
            let opt = proving::grid_optimum(&land);
            proving::tune(&land, make(s), budget, s, opt).expect("the proving ground cannot fail").regret_pct
        })
        .collect()
}

fn main() {
    let seeds: u64 = std::env::var("SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(24);
    println!("landscape                  budget  tpe median  tpe p90  random median  random p90  median ratio");
    for dims in [2, 3, 4] {
        let name = Synthetic::new(dims, 0).name();
        for budget in [5, 10, 20] {
            let (tm, tp) = proving::summary(&regrets(dims, seeds, budget, &|s| Box::new(Tpe::new(s))));
            let (rm, rp) = proving::summary(&regrets(dims, seeds, budget, &|s| Box::new(RandomSearch::new(s))));
            let ratio = if rm > 0.0 { format!("{:.2}", tm / rm) } else { "-".into() };
            println!("{name:<26} {budget:>6}  {tm:>9.1} %  {tp:>5.1} %  {rm:>11.1} %  {rp:>8.1} %  {ratio:>12}");
        }
    }
    println!("regret: percent above the exhaustive grid's optimum (33 points per integer dimension), {seeds} seeds");
}
