//! A bench scenario as the objective of a closed loop: `semantos tune
//! --scenario NAME` (the rules plan, then the optimiser, measured in the
//! scenario's own namespaces) and `semantos compare --reasoners … --budget N
//! --scenario NAME` (one closed loop per reasoner at matched budget). Shared
//! plumbing for the two commands; it imports neither.

use super::common::{self, invalid};
use super::flags::{IntentArg, PolicyArg};
use crate::bench::{self, GridMode, Options, ScenarioId};
use crate::kb::Kb;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// The flags that make a bench scenario the objective.
#[derive(Debug, Clone, Args)]
pub struct ScenarioArgs {
    /// A bench scenario as the objective (its own namespaces, workload, start values and grid) instead of --objective-cmd.
    #[arg(long, value_enum, value_name = "NAME")]
    pub scenario: Option<ScenarioId>,
    /// With --scenario: short CI mode (fewer requests and repeats, no grid).
    #[arg(long, requires = "scenario")]
    pub quick: bool,
    /// With --scenario: the grid the result is measured against (`full`: every combination, at most 64 points).
    #[arg(long, value_enum, default_value_t = GridMode::Axes, requires = "scenario")]
    pub grid: GridMode,
    /// With --scenario map-heavy: allow the host's global vm.max_map_count to change (restored at the end).
    #[arg(long, requires = "scenario")]
    pub allow_host: bool,
    /// With --scenario: directory for the report (bench_<scenario>.csv, .json, .svg, audit log).
    #[arg(long, value_name = "DIR", default_value = "experiments/results", requires = "scenario")]
    pub out_dir: PathBuf,
}

/// Refuses a host-global scenario without `--allow-host` and `--allow-host` on a namespaced one,
/// before anything runs; `applies_to` says where the flag does apply for the command asking.
pub fn check_allow_host(id: ScenarioId, allow_host: bool, applies_to: &str) -> Result<()> {
    let host = matches!(bench::scenario::scenario(id, true).stage, bench::scenario::Stage::Host { .. });
    if host && !allow_host {
        return Err(invalid(format!(
            "{} changes the host's global vm.max_map_count (no namespace has its own) and runs only with --allow-host; nothing was run or written. With --allow-host every arm raises it through the apply transaction and rolls it back, and the value read at the start is written back at the end whatever happens",
            id.name()
        )));
    }
    if !host && allow_host {
        return Err(invalid(format!("--allow-host applies to {applies_to}; {} writes only inside its own namespaces (drop --allow-host)", id.name())));
    }
    Ok(())
}

/// The bench options for `id`, checked: a host-global scenario needs --allow-host, a namespaced one refuses it.
pub fn options(a: &ScenarioArgs, id: ScenarioId, budget: usize, seed: u64, intent: &IntentArg, policy: &PolicyArg, kb: &Kb) -> Result<Options> {
    if budget == 0 {
        return Err(invalid("--budget 0 measures nothing; give 1 or more trials"));
    }
    check_allow_host(id, a.allow_host, "map-heavy only")?;
    let policy = match &policy.policy {
        Some(_) => Some(common::policy(policy, kb)?),
        None => None,
    };
    Ok(Options {
        quick: a.quick,
        reps: None,
        intent: common::intent(intent),
        policy,
        plan: None,
        out_dir: a.out_dir.clone(),
        seed,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        allow_host: a.allow_host,
        grid: a.grid,
        tune_budget: budget,
    })
}

/// `semantos tune --scenario NAME`: the scenario with its `semantos:tune` arm at `budget` trials; prints the bench report.
pub fn tune(a: &ScenarioArgs, id: ScenarioId, budget: usize, seed: u64, intent: &IntentArg, policy: &PolicyArg, kb_dir: &super::flags::KbDirArg, json: bool) -> Result<i32> {
    let kb = common::load_kb(kb_dir)?;
    let o = options(a, id, budget, seed, intent, policy, &kb)?;
    let progress = |line: &str| eprintln!("tune: {line}");
    let mut report = bench::reasoners::tune_scenario(&kb, id, &o, budget, &progress)?;
    bench::write_artifacts(&mut report, &o.out_dir)?;
    if json {
        super::output::print("bench", &report)?;
    } else {
        print!("{}", bench::report::table(&report));
    }
    Ok(super::exit::OK)
}

/// `semantos compare --reasoners … --budget N --scenario NAME`: one closed loop per reasoner on the scenario.
pub fn compare(a: &ScenarioArgs, id: ScenarioId, reasoners: &[bench::tune::Reasoner], budget: usize, seed: u64, intent: &IntentArg, policy: &PolicyArg, kb_dir: &super::flags::KbDirArg, json: bool) -> Result<i32> {
    if reasoners.contains(&bench::tune::Reasoner::Llm) {
        // The bench's LLM hook sees findings and values but not the telemetry window the LLM prompt is built from.
        return Err(invalid("--reasoners llm with --scenario: the LLM backend is not yet raced on bench scenarios (it is on the simulator: drop --scenario); nothing was run"));
    }
    let kb = common::load_kb(kb_dir)?;
    let o = options(a, id, budget, seed, intent, policy, &kb)?;
    let progress = |line: &str| eprintln!("compare: {line}");
    let mut c = bench::reasoners::compare_reasoners(&kb, id, &o, reasoners, budget, None, &progress)?;
    bench::write_artifacts(&mut c.report, &o.out_dir)?;
    if json {
        super::output::print("scenario_comparison", &c)?;
    } else {
        print!("{}", bench::reasoners::table(&c));
    }
    Ok(super::exit::OK)
}
