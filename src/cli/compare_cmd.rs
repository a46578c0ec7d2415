//! `semantos compare`: the side-by-side comparison of reasoning backends
//! on the simulator. The reasoner flags are `cli::reasoner`'s.

use super::common::{self, invalid, load_kb};
use super::flags::{IntentArg, JsonArg, KbDirArg, PolicyArg, ReproArgs, ResultsArgs};
use super::reasoner::{LlmArgs, ReasonerKind, settings_over};
use crate::compare::{self, Contender};
use crate::llm::{self, LlmReasoner};
use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Arguments of `compare`.
#[derive(Debug, Clone, Args)]
#[command(after_help = COMPARE_HELP)]
pub struct CompareArgs {
    /// Backends to compare, comma-separated, in table order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "rules,llm")]
    pub reasoners: Vec<ReasonerKind>,
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

const COMPARE_HELP: &str = "Examples:
  semantos compare --reasoners rules --trials 5
  semantos compare --reasoners rules,llm --llm-url http://127.0.0.1:8080/v1 --llm-model smollm2
  semantos compare --reasoners rules,llm --llm-config llm.yaml --llm-replay rec/ --json";

/// `semantos compare`.
pub fn run(a: &CompareArgs) -> Result<i32> {
    if a.reasoners.is_empty() {
        return Err(invalid("--reasoners: name at least one of rules, llm"));
    }
    let kb = load_kb(&a.kb)?;
    let cfg = common::experiment(&a.repro, &a.policy, &a.intent, &kb)?;
    let mut contenders = Vec::new();
    let mut calibration = None;
    for (i, r) in a.reasoners.iter().enumerate() {
        if a.reasoners[..i].contains(r) {
            return Err(invalid(format!("--reasoners: {r:?} is named twice")));
        }
        contenders.push(match r {
            ReasonerKind::Rules => Contender::Rules,
            ReasonerKind::Llm => {
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
