//! `semantos compare`: the side-by-side comparison of reasoning backends
//! on the simulator. The reasoner flags are `cli::reasoner`'s.

use super::common::{self, invalid, load_kb};
use super::flags::{IntentArg, JsonArg, KbDirArg, PolicyArg, ReproArgs, ResultsArgs};
use super::reasoner::{LlmArgs, settings_over};
use crate::compare::closed::{self, Tuner};
use crate::compare::{self, Contender};
use crate::llm::{self, LlmReasoner};
use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Arguments of `compare`.
#[derive(Debug, Clone, Args)]
#[command(after_help = COMPARE_HELP)]
pub struct CompareArgs {
    /// Backends to compare, comma-separated, in table order (optimiser: only with --budget).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "rules,llm")]
    pub reasoners: Vec<CompareReasoner>,
    /// Race the reasoners in closed loop on the simulator, N trials each, against an exhaustive grid's optimum.
    #[arg(long, value_name = "N")]
    pub budget: Option<usize>,
    /// Points per dimension of the exhaustive grid (with --budget; a choice takes all its values).
    #[arg(long, value_name = "N", default_value_t = 3, requires = "budget")]
    pub grid_points: usize,
    #[command(flatten)]
    pub scenario: super::scenario_run::ScenarioArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub repro: ReproArgs,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub results: ResultsArgs,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// A backend `compare` can race.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareReasoner {
    /// The deterministic, KB-driven rule engine.
    Rules,
    /// An LLM over an OpenAI-compatible chat-completions API (--llm-url, --llm-model).
    Llm,
    /// The optimisers over the KB-safe space (with --budget only).
    Optimiser,
}

const COMPARE_HELP: &str = "Examples:
  semantos compare --reasoners rules --trials 5
  semantos compare --reasoners rules,llm,optimiser --budget 20
  sudo semantos compare --reasoners rules,optimiser --budget 5 --scenario accept-burst
  semantos compare --reasoners rules,llm --llm-url http://127.0.0.1:8080/v1 --llm-model smollm2
  semantos compare --reasoners rules,llm --llm-config llm.yaml --llm-replay rec/ --json";

/// `semantos compare`.
pub fn run(a: &CompareArgs) -> Result<i32> {
    if a.reasoners.is_empty() {
        return Err(invalid("--reasoners: name at least one of rules, llm"));
    }
    for (i, r) in a.reasoners.iter().enumerate() {
        if a.reasoners[..i].contains(r) {
            return Err(invalid(format!("--reasoners: {r:?} is named twice")));
        }
    }
    if let Some(id) = a.scenario.scenario {
        let Some(budget) = a.budget else { return Err(invalid("--scenario races the reasoners in closed loop: add --budget N (trials each)")) };
        let reasoners: Vec<crate::bench::tune::Reasoner> = a
            .reasoners
            .iter()
            .map(|r| match r {
                CompareReasoner::Rules => crate::bench::tune::Reasoner::Rules,
                CompareReasoner::Optimiser => crate::bench::tune::Reasoner::Optimiser,
                CompareReasoner::Llm => crate::bench::tune::Reasoner::Llm,
            })
            .collect();
        return super::scenario_run::compare(&a.scenario, id, &reasoners, budget, a.repro.seed.unwrap_or(1), &a.intent, &a.policy, &a.kb, a.json.json);
    }
    let kb = load_kb(&a.kb)?;
    let cfg = common::experiment(&a.repro, &a.policy, &a.intent, &kb)?;
    if let Some(budget) = a.budget {
        return race(a, &cfg, &kb, budget);
    }
    if a.reasoners.contains(&CompareReasoner::Optimiser) {
        return Err(invalid("--reasoners optimiser: the optimiser needs a budget of trials; add --budget N (a closed-loop race at matched budget)"));
    }
    let mut contenders = Vec::new();
    let mut calibration = None;
    for r in &a.reasoners {
        contenders.push(match r {
            CompareReasoner::Rules | CompareReasoner::Optimiser => Contender::Rules,
            CompareReasoner::Llm => {
                let s = settings_over(&a.llm, cfg.llm.clone().unwrap_or_default())?;
                calibration = s.calibration.clone();
                Contender::Llm(Box::new(LlmReasoner::new(s, &cfg.policy).map_err(|e| invalid(format!("{e:#}")))?))
            }
        });
    }
    let results = compare::default_dir(&a.results.results_dir);
    let work = a.results.sandbox_dir.join("compare");
    let bar = ProgressBar::with_draw_target(Some(cfg.trials as u64), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} trials {elapsed}").unwrap().progress_chars("=> "));
    let c = compare::compare(&cfg, &kb, &contenders, &work, &results, &|name, done, _| {
        bar.set_prefix(format!("evaluating {name}"));
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let c = c?;
    crate::apply::files::write_atomic(&results.join("compare.json"), serde_json::to_string_pretty(&c)?.as_bytes(), 0o644)?;
    crate::apply::files::write_atomic(&results.join("compare.csv"), compare::to_csv(&c).as_bytes(), 0o644)?;
    if let Some(path) = &calibration
        && let Err(e) = llm::calibration::append(path, &c.calibration)
    {
        eprintln!("semantos: warning: {e:#}");
    }
    if a.json.json {
        super::output::print("comparison", &c)?;
    } else {
        print!("{}", compare::to_table(&c));
        println!("\nwrote {}, {}", results.join("compare.csv").display(), results.join("compare.json").display());
    }
    Ok(0)
}

/// Whether an LLM is configured at all: a URL or a replay directory from flags, environment, the settings file or the config.
fn llm_configured(a: &LlmArgs, cfg: &crate::config::ExperimentConfig) -> bool {
    let file = a.llm_config.as_ref().and_then(|p| crate::llm::Partial::load(p).ok()).unwrap_or_default();
    let lowest = cfg.llm.clone().unwrap_or_default();
    a.llm_url.is_some() || a.llm_replay.is_some() || file.url.is_some() || file.replay.is_some() || lowest.url.is_some() || lowest.replay.is_some()
}

/// `compare --budget N`: the closed-loop race at matched budget.
fn race(a: &CompareArgs, cfg: &crate::config::ExperimentConfig, kb: &crate::kb::Kb, budget: usize) -> Result<i32> {
    if !(1..=1000).contains(&budget) {
        return Err(invalid(format!("--budget {budget}: use 1 to 1000 trials")));
    }
    if !(2..=64).contains(&a.grid_points) {
        return Err(invalid(format!("--grid-points {}: use 2 to 64 points per dimension", a.grid_points)));
    }
    let mut tuners = Vec::new();
    for r in &a.reasoners {
        tuners.push(match r {
            CompareReasoner::Rules => Tuner::Rules,
            CompareReasoner::Optimiser => Tuner::Optimiser,
            CompareReasoner::Llm if !llm_configured(&a.llm, cfg) => Tuner::Llm(None),
            CompareReasoner::Llm => {
                let s = settings_over(&a.llm, cfg.llm.clone().unwrap_or_default())?;
                Tuner::Llm(Some(Box::new(LlmReasoner::new(s, &cfg.policy).map_err(|e| invalid(format!("{e:#}")))?)))
            }
        });
    }
    let r = closed::closed_loop(cfg, kb, &tuners, budget, a.grid_points).map_err(|e| invalid(format!("{e:#}")))?;
    let results = compare::default_dir(&a.results.results_dir);
    crate::apply::files::write_atomic(&results.join("race.json"), serde_json::to_string_pretty(&r)?.as_bytes(), 0o644)?;
    crate::apply::files::write_atomic(&results.join("race.csv"), closed::to_csv(&r).as_bytes(), 0o644)?;
    if a.json.json {
        super::output::print("closed_loop_comparison", &r)?;
    } else {
        print!("{}", closed::to_table(&r));
        println!("\nwrote {}, {}", results.join("race.csv").display(), results.join("race.json").display());
    }
    Ok(0)
}
