//! A bench scenario as the objective of a tune (`semantos tune --scenario
//! NAME`) and the reasoners compared on it at matched budget (`semantos
//! compare --reasoners rules,optimiser,llm --scenario NAME`): each reasoner
//! drives its own closed-loop arm over the same stage, and every arm is then
//! measured with the grid, interleaved, so that the distances to the grid
//! optimum are measured alike.

use super::report::BenchReport;
use super::runner::{Options, Progress, run_scenario_with};
use super::scenario::ScenarioId;
use super::tune::{LlmCandidate, Reasoner, TuneArmSpec};
use crate::kb::Kb;
use anyhow::{Result, bail};
use serde::Serialize;
use std::fmt::Write as _;

/// Runs scenario `id` with the `semantos:tune` arm at `budget` trials (the rules plan first, then the optimiser).
pub fn tune_scenario(kb: &Kb, id: ScenarioId, options: &Options, budget: usize, progress: Progress) -> Result<BenchReport> {
    if budget == 0 {
        bail!("a tune budget of 0 trials measures nothing; give --budget 1 or more (the bench's default is 10)");
    }
    run_scenario_with(kb, id, options, &[TuneArmSpec::semantos(budget)], None, progress)
}

/// One reasoner's closed loop on a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ReasonerRow {
    /// The reasoner.
    pub reasoner: Reasoner,
    /// The arm that measured its best configuration.
    pub arm: String,
    /// Trials it ran (a one-candidate reasoner stops after its candidate).
    pub trials: usize,
    /// The first trial after which it was within 2 % of the grid optimum (`None`: never, or no grid in quick mode).
    pub trials_to_within: Option<usize>,
    /// Its best configuration's distance from the grid optimum, percent (`None` without a grid).
    pub final_distance_pct: Option<f64>,
    /// Trials measured worse than the incumbent (interval excluding zero) or that broke a guard.
    pub harmful_trials: usize,
    /// Wall-clock seconds of its loop.
    pub wall_s: f64,
    /// Its best configuration, relative to the start values.
    pub best: Vec<(String, String)>,
}

/// The reasoners compared on one scenario at matched budget.
#[derive(Debug, Clone, Serialize)]
pub struct ReasonerComparison {
    /// The scenario.
    pub scenario: String,
    /// Trials each reasoner was allowed.
    pub budget: usize,
    /// One row per reasoner, in the order asked.
    pub rows: Vec<ReasonerRow>,
    /// The full bench report the rows come from (grid, arms, trials).
    pub report: BenchReport,
}

/// Runs scenario `id` once with one closed-loop arm per reasoner (`reasoner:<name>`), each at `budget` trials.
/// `llm` is the configured LLM backend's candidate; asking for `llm` without one is refused before anything runs.
pub fn compare_reasoners(kb: &Kb, id: ScenarioId, options: &Options, reasoners: &[Reasoner], budget: usize, llm: Option<LlmCandidate>, progress: Progress) -> Result<ReasonerComparison> {
    if reasoners.is_empty() || budget == 0 {
        bail!("comparing reasoners needs at least one of rules, optimiser, llm and a budget of 1 or more trials; nothing was run");
    }
    if reasoners.contains(&Reasoner::Llm) && llm.is_none() {
        bail!("--reasoners names llm but no LLM backend is configured; configure one (docs/llm.md) or leave llm out; nothing was run");
    }
    let specs: Vec<TuneArmSpec> = reasoners.iter().map(|r| TuneArmSpec { name: format!("reasoner:{}", r.name()), reasoners: vec![*r], budget }).collect();
    let report = run_scenario_with(kb, id, options, &specs, llm, progress)?;
    let rows = reasoners
        .iter()
        .zip(&specs)
        .filter_map(|(r, spec)| {
            let t = report.tune.iter().find(|t| t.arm == spec.name)?;
            Some(ReasonerRow {
                reasoner: *r,
                arm: t.arm.clone(),
                trials: t.trials.len(),
                trials_to_within: t.vs_grid.as_ref().and_then(|v| v.trials_to_within),
                final_distance_pct: t.vs_grid.as_ref().map(|v| v.final_distance_pct),
                harmful_trials: t.harmful_trials,
                wall_s: t.wall_s,
                best: t.best.clone(),
            })
        })
        .collect();
    Ok(ReasonerComparison { scenario: id.name().into(), budget, rows, report })
}

/// The comparison as a terminal table.
pub fn table(c: &ReasonerComparison) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "reasoners on {} at {} trials each (distance: percent of the grid optimum's objective)", c.scenario, c.budget);
    let _ = writeln!(o, "{:<11} {:>6} {:>16} {:>10} {:>8} {:>8}  best", "reasoner", "trials", "trials to ≤ 2 %", "distance", "harmful", "wall s");
    for r in &c.rows {
        let within = r.trials_to_within.map_or_else(|| if r.final_distance_pct.is_some() { "never".to_string() } else { "—".to_string() }, |n| n.to_string());
        let dist = r.final_distance_pct.map_or_else(|| "—".to_string(), |d| format!("{d:.1} %"));
        let best = if r.best.is_empty() { "no change".to_string() } else { r.best.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ") };
        let _ = writeln!(o, "{:<11} {:>6} {:>16} {:>10} {:>8} {:>8.0}  {best}", r.reasoner.name(), r.trials, within, dist, r.harmful_trials, r.wall_s);
    }
    o
}
