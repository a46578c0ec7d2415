//! The read-only live-host commands: diagnose, recommend and dry run against
//! a sysctl tree (`/proc/sys`, a sandbox directory, or whatever network
//! namespace the process runs in). Nothing here writes a sysctl.

use super::common::{self, invalid, load_kb};
use super::exit;
use super::flags::{IntentArg, JsonArg, KbDirArg, PlanArg, PolicyArg, StateLoc, TelemetryArgs, TreeArg};
use super::propose::{Inputs, propose};
use super::reasoner::ReasonerArgs;
use super::render;
use super::sampling::{self, LiveSampler};
use super::writes;
use crate::apply;
use crate::reasoning;
use crate::kb::Kb;
use crate::sysctl::SysctlStore;
use crate::reasoning::Findings;
use crate::telemetry::Snapshot;
use anyhow::Result;
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `diagnose`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  semantos diagnose                                   two live snapshots 2 s apart
  semantos diagnose --interval 10
  semantos diagnose --samples 9 --interval 8
  semantos diagnose --watch 0                          follow findings as they appear and clear
  semantos diagnose --telemetry experiments/data/sample_telemetry.csv --json")]
pub struct DiagnoseArgs {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Snapshots per window: spread evenly over --interval on a live host; with --watch, consecutive rows of a --telemetry CSV (without --watch a CSV is one window of all its rows). At least 2.
    #[arg(long, default_value_t = sampling::DEFAULT_SAMPLES, value_name = "N")]
    pub samples: usize,
    /// Diagnose N windows back to back (0: until interrupted; a CSV: until its rows run out) and print one line, with its time, per finding that appears or clears.
    #[arg(long, value_name = "N")]
    pub watch: Option<u32>,
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

/// Where `diagnose` reads the `sysctl.<key>` limits: the sysctl tree of the `/proc` it reads
/// (`/proc/sys` on a live host, `DIR/sys` of a `--proc-root DIR` fixture).
fn limits_root(t: &TelemetryArgs) -> PathBuf {
    t.proc_root.join("sys")
}

/// `semantos diagnose`: one window, or `--watch N` windows back to back
/// with one line per finding that appears or clears.
pub fn diagnose(a: &DiagnoseArgs) -> Result<i32> {
    let kb = load_kb(&a.kb)?;
    if a.samples < 2 {
        return Err(invalid(format!("--samples {}: a window needs at least 2 snapshots (one sub-interval)", a.samples)));
    }
    if let Some(rounds) = a.watch {
        return watch(a, &kb, rounds);
    }
    let snaps = sampling::telemetry(&a.telemetry, &limits_root(&a.telemetry), &kb, a.samples)?;
    let f = reasoning::diagnose_series(&snaps, &kb);
    if a.json.json {
        super::output::print("findings", &f)?;
    } else {
        print!("{}", render::findings(&f));
    }
    Ok(exit::OK)
}

/// `diagnose --watch N`: N windows (0: until interrupted; a CSV: until its
/// rows run out), each starting where the last ended, reporting changes only.
fn watch(d: &DiagnoseArgs, kb: &Kb, rounds: u32) -> Result<i32> {
    let csv = d.telemetry.telemetry.is_some();
    let mut rows = if csv { sampling::telemetry(&d.telemetry, &limits_root(&d.telemetry), kb, d.samples)? } else { Vec::new() };
    let mut live = if csv { None } else { Some(LiveSampler::open(&d.telemetry, &limits_root(&d.telemetry), kb)?) };
    let step = Duration::from_secs_f64(d.telemetry.interval / (d.samples - 1) as f64);
    let mut window: Vec<Snapshot> = Vec::new();
    let mut present: BTreeMap<String, reasoning::Finding> = BTreeMap::new();
    let mut round = 0u32;
    while rounds == 0 || round < rounds {
        // Each window starts with the last snapshot of the one before: no gap, no overlap.
        window = window.split_off(window.len().saturating_sub(1));
        while window.len() < d.samples {
            match live.as_mut() {
                Some(l) => {
                    if !window.is_empty() {
                        std::thread::sleep(step);
                    }
                    window.push(l.sample()?);
                }
                None if rows.is_empty() => break,
                None => window.push(rows.remove(0)),
            }
        }
        if window.len() < 2 {
            break;
        }
        let f = reasoning::diagnose_series(&window, kb);
        let at = window[window.len() - 1].timestamp_ms;
        for line in changes(&present, &f, at, d.json.json)? {
            println!("{line}");
        }
        present = f.findings.into_iter().map(|x| (x.id.clone(), x)).collect();
        round += 1;
        if window.len() < d.samples {
            break;
        }
    }
    Ok(exit::OK)
}

/// One line per finding that appeared or cleared since `before`, stamped with `at` (ms).
fn changes(before: &BTreeMap<String, reasoning::Finding>, now: &Findings, at: u64, json: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let appeared = now.findings.iter().filter(|x| !before.contains_key(&x.id));
    let cleared = before.values().filter(|x| now.get(&x.id).is_none());
    for (x, change) in appeared.map(|x| (x, "appeared")).chain(cleared.map(|x| (x, "cleared"))) {
        out.push(if json {
            serde_json::to_string(&serde_json::json!({ "schema_version": reasoning::findings::FINDINGS_SCHEMA_VERSION, "time_ms": at, "change": change, "finding": x }))?
        } else if change == "appeared" {
            let ev: Vec<String> = x.evidence.iter().map(|e| e.describe()).collect();
            format!("{}  + {}  {}: {}; {}", render::clock(at), x.id, x.title, ev.join("; "), x.presence.describe())
        } else {
            format!("{}  - {}  cleared", render::clock(at), x.id)
        });
    }
    Ok(out)
}

/// `semantos recommend`.
pub fn recommend(a: &RecommendArgs) -> Result<i32> {
    let kb = load_kb(&a.kb)?;
    let store = common::store(&a.tree.sysctl_root);
    let pol = common::policy(&a.policy, &kb)?;
    let p = propose(&Inputs { telemetry: &a.telemetry, plan: &a.plan, intent: &a.intent, sysctl_root: &a.tree.sysctl_root, state: &StateLoc::default() }, &kb, &store, &pol, Some(&a.reasoner))?;
    if let Some(out) = &a.out {
        apply::files::write_atomic(out, p.checked.plan.to_json().as_bytes(), 0o644)?;
        eprintln!("wrote plan {}", out.display());
    }
    if a.json.json {
        super::output::print("recommendation", &p.checked)?;
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
    let pol = common::policy(&a.policy, &kb)?;
    let p = propose(&Inputs { telemetry: &a.telemetry, plan: &a.plan, intent: &a.intent, sysctl_root: &a.tree.sysctl_root, state: &a.state }, &kb, &store, &pol, None)?;
    if a.json.json {
        super::output::print("dry_run", &serde_json::json!({ "dry_run": true, "store": store.describe(), "findings": p.findings, "checked": p.checked }))?;
    } else {
        println!("DRY RUN against {} — nothing is written.\n", store.describe());
        print!("{}", render::findings(&p.findings));
        print!("{}", render::checked(&p.checked));
    }
    Ok(if p.checked.aborted.is_some() { exit::INVALID } else { exit::OK })
}
