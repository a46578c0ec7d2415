//! The command line: parse, build one validated configuration, call the
//! library, print. Holds no logic the library lacks.
//!
//! Exit codes are one table for every command: `exit` (also in `--help` and
//! the man pages). The files form no circle: `common`, `flags`, `exit`,
//! `state`, `reasoner`, `propose`, `writes`, `watch` and `render` are
//! plumbing that imports no command; each `*_cmd` / `host` / `reproduce`
//! module imports plumbing only; `args` names every command's arguments, and
//! this module dispatches.

pub mod agent_cmd;
pub mod apply_cmd;
pub mod args;
pub mod bench_cmd;
pub mod collect_cmd;
pub mod common;
pub mod entry;
pub mod compare_cmd;
pub mod exit;
pub mod export_cmd;
pub mod flags;
pub mod host;
pub mod kb_cmd;
pub mod man;
pub mod output;
pub mod owners;
pub mod progress;
pub mod propose;
pub mod reasoner;
pub mod render;
pub mod reproduce;
pub mod rollback_cmd;
pub mod rollout_cmd;
pub mod scenario_run;
pub mod sampling;
pub mod state;
pub mod status_cmd;
pub mod style;
pub mod tune_cmd;
pub mod tune_report;
pub mod verify_cmd;
pub mod watch;
pub mod writes;

pub use args::Cli;
pub use common::{CliError, invalid};
use args::{Applier, Command};

use anyhow::{Context as _, Result};

/// Exit code for invalid input (nothing written); `exit::INVALID`.
pub const EXIT_INVALID: i32 = exit::INVALID;
/// Exit code for a run that failed otherwise; `exit::FAILED`.
pub const EXIT_FAILED: i32 = exit::FAILED;

/// The seed's `--applier sysctl [--apply | --rollback]`, as the subcommand it stands for.
fn seed_applier(cli: &Cli) -> Result<i32> {
    if cli.rollback {
        return rollback_cmd::rollback(&rollback_cmd::RollbackArgs {
            last: false,
            run: None,
            tree: cli.tree.clone(),
            policy: cli.policy.clone(),
            state: cli.state.clone(),
            force: cli.force.clone(),
            fence_rollout: None,
            kb: cli.kb.clone(),
            json: cli.json.clone(),
        });
    }
    if cli.apply {
        return apply_cmd::apply(&apply_cmd::ApplyArgs {
            telemetry: cli.telemetry.clone(),
            plan: cli.plan.clone(),
            policy: cli.policy.clone(),
            intent: cli.intent.clone(),
            tree: cli.tree.clone(),
            watch: cli.watch.clone(),
            health_timeout: cli.health_timeout.clone(),
            objective: Default::default(),
            state: cli.state.clone(),
            force: cli.force.clone(),
            rollout_id: None,
            owners: Default::default(),
            kb: cli.kb.clone(),
            json: cli.json.clone(),
        });
    }
    host::dry_run(&host::DryRunArgs {
        telemetry: cli.telemetry.clone(),
        plan: cli.plan.clone(),
        policy: cli.policy.clone(),
        intent: cli.intent.clone(),
        tree: cli.tree.clone(),
        state: cli.state.loc.clone(),
        kb: cli.kb.clone(),
        json: cli.json.clone(),
    })
}

/// The bare `semantos [--seed N --trials N ...]`: the reproduction.
fn seed_reproduction(cli: &Cli) -> Result<i32> {
    reproduce::run(&reproduce::ReproduceArgs {
        repro: cli.repro.clone(),
        plan: cli.plan.clone(),
        policy: cli.policy.clone(),
        intent: cli.intent.clone(),
        results: cli.results.clone(),
        out: cli.repro_out.clone(),
        audit_log: cli.state.audit_log.clone(),
        kb: cli.kb.clone(),
        json: cli.json.clone(),
    })
}

/// `semantos man [--dir DIR]`.
fn man_pages(a: &args::ManArgs) -> Result<i32> {
    let pages = man::pages(args::command());
    match &a.dir {
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&pages[0].1)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in &pages {
                crate::apply::files::write_atomic(&dir.join(name), text, 0o644)?;
            }
            eprintln!("wrote {} man pages to {}", pages.len(), dir.display());
        }
    }
    Ok(exit::OK)
}

/// Runs the parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    if let Some(Applier::Sysctl) = cli.applier {
        if cli.command.is_some() {
            return Err(invalid("--applier sysctl is the seed's interface and takes no subcommand; use `semantos apply` / `rollback` / `dry-run` instead"));
        }
        return seed_applier(&cli);
    }
    match &cli.command {
        None => seed_reproduction(&cli),
        Some(Command::Reproduce(a)) => reproduce::run(a),
        Some(Command::Diagnose(a)) => host::diagnose(a),
        Some(Command::Recommend(a)) => host::recommend(a),
        Some(Command::DryRun(a)) => host::dry_run(a),
        Some(Command::Apply(a)) => apply_cmd::apply(a),
        Some(Command::Rollback(a)) => rollback_cmd::rollback(a),
        Some(Command::Simulate(a)) => reproduce::simulate(a),
        Some(Command::Compare(a)) => compare_cmd::run(a),
        Some(Command::Collect(a)) => collect_cmd::run(a),
        Some(Command::Bench(a)) => bench_cmd::run(a),
        Some(Command::Rollout(a)) => rollout_cmd::run(a),
        Some(Command::Export(a)) => export_cmd::run(a),
        Some(Command::Tune(a)) => tune_cmd::run(a),
        Some(Command::Agent(a)) => agent_cmd::run(a),
        Some(Command::Status(a)) => status_cmd::run(a),
        Some(Command::Verify(a)) => verify_cmd::run(a, cli.style.verbose > 0),
        Some(Command::Kb(a)) => {
            let kb = common::load_kb(a.kb_dir())?;
            kb_cmd::run(a, &kb, &common::store(a.sysctl_root()))
        }
        Some(Command::Completions { shell }) => {
            let mut cmd = args::command();
            clap_complete::generate(*shell, &mut cmd, "semantos", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Some(Command::Man(a)) => man_pages(a),
    }
}
