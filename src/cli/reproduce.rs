//! `semantos reproduce` (and the bare `semantos --seed N --trials N`).

use super::{Cli, invalid, load_kb};
use crate::config::ExperimentConfig;
use crate::eval::summary;
use crate::repro::{self, ReproPaths};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Builds the experiment configuration from the config file and the flags that override it.
pub fn config(cli: &Cli) -> Result<ExperimentConfig> {
    let mut cfg = match &cli.config {
        Some(p) => ExperimentConfig::load(p).map_err(|e| invalid(format!("{e:#}")))?,
        None => ExperimentConfig::default(),
    };
    if let Some(s) = cli.seed {
        cfg.seed = s;
    }
    if let Some(t) = cli.trials {
        cfg.trials = t;
    }
    if let Some(i) = cli.host.intent {
        cfg.intent = i;
    }
    if cli.host.policy.is_some() {
        cfg.policy = super::host::policy(cli)?;
    }
    let source = cli.config.as_ref().map(|p| p.display().to_string()).unwrap_or("command line".into());
    cfg.validate().map_err(|e| invalid(format!("{source}: {e}")))?;
    let kb = load_kb(cli)?;
    crate::config::check_start_values(&cfg, &kb).map_err(|e| invalid(format!("{source}: {e:#}")))?;
    if cli.host.policy.is_none() {
        // The config's own policy section: its keys are checked like a policy file's.
        let known: Vec<&str> = kb.params.keys().map(String::as_str).collect();
        for w in cfg.policy.check_keys(&source, &known).map_err(invalid)? {
            eprintln!("semantos: warning: {w}");
        }
    }
    Ok(cfg)
}

/// Runs the reproduction and prints the summary.
pub fn run(cli: &Cli) -> Result<i32> {
    let cfg = config(cli)?;
    let kb = load_kb(cli)?;
    let mut paths = ReproPaths::defaults(std::path::Path::new("."));
    paths.sandbox = cli.out.sandbox_dir.clone();
    paths.sysctl_conf = cli.out.sysctl_conf.clone().unwrap_or_else(|| cli.out.sandbox_dir.join("sysctl.conf"));
    paths.results = cli.out.results_dir.clone();
    paths.audit = cli.out.audit_log.clone();
    let bar = ProgressBar::with_draw_target(Some(cfg.trials as u64), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} trials {elapsed}").unwrap().progress_chars("=> "));
    bar.set_prefix("evaluating");
    let label = cli.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in defaults".into());
    let report = repro::run(&cfg, &kb, &paths, &label, cli.plan.as_deref(), &|done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    let report = report.map_err(|e| if e.downcast_ref::<repro::ReproError>().is_some() { invalid(format!("{e:#}")) } else { e })?;
    if cli.json {
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
    println!("wrote {}, {}, {}, {}", paths.sysctl_conf.display(), paths.results.join("summary.csv").display(), paths.results.join("summary.svg").display(), paths.results.join("trace.json").display());
    Ok(0)
}

/// `semantos simulate --out FILE`: telemetry of the simulated host at its starting values.
pub fn simulate(cli: &Cli, a: &super::args::SimulateArgs) -> Result<i32> {
    let cfg = config(cli)?;
    if !((1..=1000).contains(&a.windows) && a.seconds.is_finite() && (15.0..=3600.0).contains(&a.seconds)) {
        return Err(invalid(format!("--windows {} / --seconds {}: use 1 to 1000 windows of 15 to 3600 seconds", a.windows, a.seconds)));
    }
    let params = crate::sim::starting_params(&cfg.host);
    let snaps = crate::sim::telemetry_series(&cfg.host, &params, &cfg.workloads, cfg.seed, a.windows, a.seconds);
    crate::apply::files::write_atomic(&a.out, crate::telemetry::csv::to_csv(&snaps)?.as_bytes(), 0o644)?;
    if cli.json {
        super::output::print("simulation", &serde_json::json!({ "out": a.out, "snapshots": snaps.len(), "metrics": snaps[0].metrics.len() }))?;
    } else {
        eprintln!("wrote {} snapshots of {} metrics to {}", snaps.len(), snaps[0].metrics.len(), a.out.display());
    }
    Ok(0)
}
