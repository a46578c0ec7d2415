//! `semantos reproduce` (and the bare `semantos --seed N --trials N`).

use super::common::{self, PlanFile, invalid, load_kb};
use super::flags::{IntentArg, JsonArg, KbDirArg, PlanArg, PolicyArg, ReproArgs, ReproOutArgs, ResultsArgs};
use crate::eval::summary;
use crate::repro::{self, ReproPaths};
use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::PathBuf;

/// Arguments of `reproduce` (and of the bare `semantos --seed N --trials N`).
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  semantos reproduce --seed 7 --trials 20          same as `semantos --seed 7 --trials 20`
  semantos reproduce --config experiments/configs/default.yaml
  semantos reproduce --plan my-plan.conf --results-dir /tmp/results --json")]
pub struct ReproduceArgs {
    #[command(flatten)]
    pub repro: ReproArgs,
    #[command(flatten)]
    pub plan: PlanArg,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub results: ResultsArgs,
    #[command(flatten)]
    pub out: ReproOutArgs,
    /// Audit log of the sandbox applies (JSON lines) [default: logs/semantos-audit.jsonl].
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// Arguments of `simulate`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  semantos simulate --out sim.csv
  semantos simulate --out sim.csv --windows 10 --seconds 30 --seed 3
  semantos simulate --config experiments/configs/throughput.yaml --out sim.csv")]
pub struct SimulateArgs {
    /// Output CSV.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Number of windows (the CSV has one more row than windows).
    #[arg(long, default_value_t = 3)]
    pub windows: usize,
    /// Simulated seconds per window.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    #[command(flatten)]
    pub repro: ReproArgs,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// Runs the reproduction and prints the summary.
pub fn run(a: &ReproduceArgs) -> Result<i32> {
    let kb = load_kb(&a.kb)?;
    let cfg = common::experiment(&a.repro, &a.policy, &a.intent, &kb)?;
    let plan = PlanFile::new(a.plan.plan.as_deref())?;
    let mut paths = ReproPaths::defaults(std::path::Path::new("."));
    paths.sandbox = a.results.sandbox_dir.clone();
    paths.sysctl_conf = a.out.sysctl_conf.clone().unwrap_or_else(|| a.results.sandbox_dir.join("sysctl.conf"));
    paths.results = a.results.results_dir.clone();
    if let Some(audit) = &a.audit_log {
        paths.audit = audit.clone();
    }
    let bar = ProgressBar::with_draw_target(Some(cfg.trials as u64), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} trials {elapsed}").unwrap().progress_chars("=> "));
    bar.set_prefix("evaluating");
    let label = a.repro.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in defaults".into());
    let report = repro::run(&cfg, &kb, &paths, &label, plan.path(), &|done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    let report = report.map_err(|e| if e.downcast_ref::<repro::ReproError>().is_some() { invalid(format!("{e:#}")) } else { e })?;
    if a.json.json {
        super::output::print("reproduction", &report)?;
        return Ok(0);
    }
    println!("SemantOS sandbox reproduction — seed {}, {} trials, intent {}\n", cfg.seed, cfg.trials, cfg.intent.name());
    for r in &report.rounds {
        let ids: Vec<&str> = r.findings.findings.iter().map(|f| f.id.as_str()).collect();
        println!("round {}: findings [{}]", r.round, ids.join(", "));
        for c in &r.checked.changes {
            println!("  {} {} {} → {}  {}", super::style::paint(&format!("{:<7}", c.verdict.label()), super::style::verdict_tone(c.verdict.label())), c.change.key, c.change.from.as_deref().unwrap_or("?"), c.write.as_deref().unwrap_or(&c.change.to), c.verdict.reason());
        }
        for m in &r.monitor {
            println!("  monitor: {m}");
        }
    }
    println!("\nkept changes:");
    if report.changes.is_empty() {
        println!("  (none)");
    }
    for (k, from, to) in &report.changes {
        println!("  {k}: {from} → {to}");
    }
    println!("\n{}", summary::to_table(&report.summary));
    if let Some(t) = &report.tune {
        println!("{}", repro::tune::to_table(t));
        println!("wrote {}, {}, {}", paths.results.join("tune_summary.csv").display(), paths.results.join("tune_sysctl.conf").display(), paths.results.join("tune_trace.json").display());
    }
    println!("wrote {}, {}, {}, {}", paths.sysctl_conf.display(), paths.results.join("summary.csv").display(), paths.results.join("summary.svg").display(), paths.results.join("trace.json").display());
    Ok(0)
}

/// `semantos simulate --out FILE`: telemetry of the simulated host at its starting values.
pub fn simulate(a: &SimulateArgs) -> Result<i32> {
    let kb = load_kb(&a.kb)?;
    let cfg = common::experiment(&a.repro, &a.policy, &a.intent, &kb)?;
    if !((1..=1000).contains(&a.windows) && a.seconds.is_finite() && (15.0..=3600.0).contains(&a.seconds)) {
        return Err(invalid(format!("--windows {} / --seconds {}: use 1 to 1000 windows of 15 to 3600 seconds", a.windows, a.seconds)));
    }
    let params = crate::sim::starting_params(&cfg.host);
    let snaps = crate::sim::telemetry_series(&cfg.host, &params, &cfg.workloads, cfg.seed, a.windows, a.seconds);
    crate::apply::files::write_atomic(&a.out, crate::telemetry::csv::to_csv(&snaps)?.as_bytes(), 0o644)?;
    if a.json.json {
        super::output::print("simulation", &serde_json::json!({ "out": a.out, "snapshots": snaps.len(), "metrics": snaps[0].metrics.len() }))?;
    } else {
        eprintln!("wrote {} snapshots of {} metrics to {}", snaps.len(), snaps[0].metrics.len(), a.out.display());
    }
    Ok(0)
}
