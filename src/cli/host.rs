//! The read-only live-host commands: diagnose, recommend and dry run against
//! a sysctl tree (`/proc/sys`, a sandbox directory, or whatever network
//! namespace the process runs in). Nothing here writes a sysctl.

use super::common::{self, load_kb};
use super::exit;
use super::flags::{IntentArg, JsonArg, KbDirArg, PlanArg, PolicyArg, StateLoc, TelemetryArgs, TreeArg};
use super::propose::{Inputs, propose};
use super::reasoner::ReasonerArgs;
use super::render;
use super::writes;
use crate::apply;
use crate::reasoning;
use crate::sysctl::SysctlStore;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `diagnose`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  semantos diagnose                                   two live snapshots 2 s apart
  semantos diagnose --interval 10
  semantos diagnose --telemetry experiments/data/sample_telemetry.csv --json")]
pub struct DiagnoseArgs {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// Arguments of `recommend`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  semantos recommend --intent throughput
  semantos recommend --out plan.json --policy policy.yaml
  semantos recommend --telemetry snap.csv --sysctl-root /tmp/tree --json
  semantos recommend --reasoner llm --llm-url http://127.0.0.1:8080/v1 --llm-model smollm2

Exit status: 0 a plan the guardrails accept; 2 invalid input or a plan the guardrails reject;
1 other failure (see `semantos --help`).")]
pub struct RecommendArgs {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Write the plan (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub reasoner: ReasonerArgs,
    #[command(flatten)]
    pub plan: PlanArg,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub tree: TreeArg,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// Arguments of `dry-run`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  semantos dry-run
  semantos dry-run --plan plan.json --policy policy.yaml
  semantos dry-run --plan - < 90-tuning.conf
  semantos dry-run --sysctl-root /tmp/tree --telemetry snap.csv --json

Exit status: 0 the plan passes the guardrails; 2 invalid input or a plan they reject
(see `semantos --help`).")]
pub struct DryRunArgs {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub plan: PlanArg,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub tree: TreeArg,
    #[command(flatten)]
    pub state: StateLoc,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// `semantos diagnose`.
pub fn diagnose(a: &DiagnoseArgs) -> Result<i32> {
    let kb = load_kb(&a.kb)?;
    let (s0, s1) = common::telemetry(&a.telemetry)?;
    let f = reasoning::diagnose(&s0, &s1, &kb);
    if a.json.json {
        println!("{}", serde_json::to_string_pretty(&f)?);
    } else {
        print!("{}", render::findings(&f));
    }
    Ok(exit::OK)
}

/// `semantos recommend`.
pub fn recommend(a: &RecommendArgs) -> Result<i32> {
    let kb = load_kb(&a.kb)?;
    let store = common::store(&a.tree.sysctl_root);
    let pol = common::policy(&a.policy)?;
    let p = propose(&Inputs { telemetry: &a.telemetry, plan: &a.plan, intent: &a.intent }, &kb, &store, &pol, Some(&a.reasoner))?;
    if let Some(out) = &a.out {
        apply::files::write_atomic(out, p.checked.plan.to_json().as_bytes(), 0o644)?;
        eprintln!("wrote plan {}", out.display());
    }
    if a.json.json {
        println!("{}", serde_json::to_string_pretty(&p.checked)?);
    } else {
        print!("{}", render::findings(&p.findings));
        print!("{}", render::checked(&p.checked));
    }
    Ok(if p.checked.aborted.is_some() { exit::INVALID } else { exit::OK })
}

/// `semantos --applier sysctl` / `semantos dry-run`: nothing is written.
pub fn dry_run(a: &DryRunArgs) -> Result<i32> {
    let st = writes::resolve_loc(&a.state);
    if let Some(msg) = apply::pending_run(&writes::paths(&st))? {
        let line = writes::rollback_line(&a.tree.sysctl_root, &a.state, None, &st, &a.kb, &a.policy);
        eprintln!("semantos: warning: {}", writes::with_hint(&msg, &line));
    }
    let kb = load_kb(&a.kb)?;
    let store = common::store(&a.tree.sysctl_root);
    let pol = common::policy(&a.policy)?;
    let p = propose(&Inputs { telemetry: &a.telemetry, plan: &a.plan, intent: &a.intent }, &kb, &store, &pol, None)?;
    if a.json.json {
        println!("{}", serde_json::json!({ "dry_run": true, "store": store.describe(), "findings": p.findings, "checked": p.checked }));
    } else {
        println!("DRY RUN against {} — nothing is written.\n", store.describe());
        print!("{}", render::findings(&p.findings));
        print!("{}", render::checked(&p.checked));
    }
    Ok(if p.checked.aborted.is_some() { exit::INVALID } else { exit::OK })
}
