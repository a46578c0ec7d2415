//! The command line: parse, build one validated configuration, call the
//! library, print. Holds no logic the library lacks.
//!
//! Exit codes: 0 success; 1 the run failed or was rolled back (nothing is
//! left half-applied); 2 invalid input (bad flag, config, plan, or a plan the
//! guardrails rejected: nothing was written).

pub mod args;
pub mod bench_cmd;
pub mod collect_cmd;
pub mod export_cmd;
pub mod compare_cmd;
pub mod host;
pub mod kb_cmd;
pub mod output;
pub mod progress;
pub mod render;
pub mod reproduce;
pub mod rollout_cmd;
pub mod style;

pub use args::Cli;
use args::{Applier, Command};

use crate::kb::Kb;
use anyhow::Result;

/// Exit code for invalid input (nothing written).
pub const EXIT_INVALID: i32 = 2;
/// Exit code for a failed or rolled-back run.
pub const EXIT_FAILED: i32 = 1;

/// An error that carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// Message.
    pub message: String,
}

/// Shorthand for an invalid-input error.
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    CliError { code: EXIT_INVALID, message: message.into() }.into()
}

/// Loads the knowledge base, with the user's overrides when given.
pub fn load_kb(cli: &Cli) -> Result<Kb> {
    match &cli.kb {
        Some(dir) => Kb::with_overrides(dir).map_err(|e| invalid(format!("{e:#}"))),
        None => Kb::embedded(),
    }
}

/// Runs the parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    if let Some(Applier::Sysctl) = cli.applier {
        if cli.command.is_some() {
            return Err(invalid("--applier sysctl is the seed's interface and takes no subcommand; use `semantos apply` / `rollback` / `dry-run` instead"));
        }
        return if cli.rollback {
            host::rollback(&cli, &args::RollbackArgs::default())
        } else if cli.apply {
            host::apply(&cli, None)
        } else {
            host::dry_run(&cli, None)
        };
    }
    match &cli.command {
        None | Some(Command::Reproduce) => reproduce::run(&cli),
        Some(Command::Diagnose(d)) => host::diagnose(&cli, d),
        Some(Command::Recommend(r)) => host::recommend(&cli, r),
        Some(Command::DryRun(t)) => host::dry_run(&cli, Some(t)),
        Some(Command::Apply(t)) => host::apply(&cli, Some(t)),
        Some(Command::Rollback(r)) => host::rollback(&cli, r),
        Some(Command::Simulate(a)) => reproduce::simulate(&cli, a),
        Some(Command::Compare(a)) => compare_cmd::run(&cli, a),
        Some(Command::Collect(a)) => collect_cmd::run(a),
        Some(Command::Bench(a)) => bench_cmd::run(&cli, a),
        Some(Command::Rollout(a)) => rollout_cmd::run(&cli, a),
        Some(Command::Export(a)) => export_cmd::run(&cli, a),
        Some(Command::Kb(a)) => {
            let kb = load_kb(&cli)?;
            kb_cmd::run(a, &kb, &host::store(&cli))
        }
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "semantos", &mut std::io::stdout());
            Ok(0)
        }
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(0)
        }
    }
}
