//! `semantos apply` (and the seed's `--applier sysctl --apply`): checks every
//! input, then hands the checked plan to the transaction (backup, journal,
//! batches with read-back, monitor, automatic rollback) and maps its outcome
//! to an exit code.

use super::common::{self, invalid, load_kb};
use super::exit;
use super::flags::{ForceArg, HealthTimeoutArg, IntentArg, JsonArg, KbDirArg, PlanArg, PolicyArg, StateArgs, TelemetryArgs, TreeArg, WatchArgs};
use super::propose::{Inputs, propose};
use super::render;
use super::watch::HealthOnly;
use super::writes;
use crate::apply::{self, ApplyOptions, AuditLog, HostIdentity, Monitor, OnRegression, Outcome};
use crate::safety::guard::guarded;
use crate::rollout::live::LiveMonitor;
use crate::rollout::objective_gate::{Objective, ObjectiveGate};
use crate::safety::Policy;
use crate::sysctl::store::FaultyStore;
use crate::tune::{Direction, ObjectiveSpec, Stat};
use anyhow::Result;
use clap::Args;
use std::time::Duration;

/// `apply`'s objective gate: the user's own metric, measured before the writes and after each batch.
#[derive(Debug, Clone, Args)]
pub struct ObjectiveGateArgs {
    /// Gate the apply on your own metric: run CMD (it prints one number per line, or CSV with --column) --repeats times before the writes and again after each batch's monitor window; roll back (exit 4) when it is worse with its 95 % interval excluding zero, or fails only after the change.
    #[arg(long, value_name = "CMD")]
    pub objective_cmd: Option<String>,
    /// The statistic of one run's numbers that is the objective.
    #[arg(long, value_enum, default_value_t = Stat::P99, requires = "objective_cmd")]
    pub stat: Stat,
    /// Whether lower or higher is better (default: higher for throughput, lower otherwise).
    #[arg(long, value_enum, requires = "objective_cmd")]
    pub goal: Option<Direction>,
    /// CSV column (header name or 1-based index) of --objective-cmd's output holding the number.
    #[arg(long, value_name = "NAME|N", requires = "objective_cmd")]
    pub column: Option<String>,
    /// Runs of --objective-cmd before the writes, and again after each batch (2 to 100).
    #[arg(long, default_value_t = 5, value_name = "N", requires = "objective_cmd")]
    pub repeats: usize,
    /// Seconds one run of --objective-cmd may take; then it is killed with its process group and counts as failed.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS", requires = "objective_cmd")]
    pub cmd_timeout: f64,
}

impl Default for ObjectiveGateArgs {
    fn default() -> Self {
        Self { objective_cmd: None, stat: Stat::P99, goal: None, column: None, repeats: 5, cmd_timeout: 60.0 }
    }
}

/// The objective `o` asks for, checked; `None` without --objective-cmd. The command runs where `apply` runs (its network namespace).
fn objective(o: &ObjectiveGateArgs) -> Result<Option<Objective>> {
    let Some(cmd) = &o.objective_cmd else { return Ok(None) };
    if cmd.trim().is_empty() {
        return Err(invalid("--objective-cmd is empty; give the shell command that prints your metric"));
    }
    if !(2..=100).contains(&o.repeats) {
        return Err(invalid(format!("--repeats {} is invalid; use 2 to 100 (an interval needs at least two paired runs)", o.repeats)));
    }
    if !(o.cmd_timeout.is_finite() && o.cmd_timeout > 0.0 && o.cmd_timeout <= 86400.0) {
        return Err(invalid(format!("--cmd-timeout {} is invalid; use seconds in (0, 86400] (the default is 60)", o.cmd_timeout)));
    }
    let command = crate::eval::harness::UserCommand { cmd: cmd.clone(), netns: None, column: o.column.clone(), timeout: Duration::from_secs_f64(o.cmd_timeout) };
    let spec = ObjectiveSpec { stat: o.stat, direction: o.goal.unwrap_or(o.stat.default_direction()), guards: Vec::new() };
    Ok(Some(Objective { cmd: command, spec, repeats: o.repeats }))
}

/// Arguments of `apply`.
#[derive(Debug, Clone, Args)]
#[command(after_help = APPLY_HELP)]
pub struct ApplyArgs {
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
    pub watch: WatchArgs,
    #[command(flatten)]
    pub health_timeout: HealthTimeoutArg,
    #[command(flatten)]
    pub objective: ObjectiveGateArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub force: ForceArg,
    #[command(flatten)]
    pub owners: super::owners::OwnershipArgs,
    /// This apply belongs to fleet rollout ID and is refused once ID is fenced here (set by `semantos rollout`).
    #[arg(long, value_name = "ID")]
    pub rollout_id: Option<String>,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

const APPLY_HELP: &str = "Examples:
  sudo semantos apply                                  recommend from live telemetry and apply
  sudo semantos apply --plan plan.json --policy policy.yaml
  sudo semantos apply --plan 90-tuning.conf --health-cmd 'curl -fsS localhost/health'
  sudo semantos apply --plan plan.conf --objective-cmd './probe --latency-ms' --stat p99
  sudo semantos apply --plan - --monitor-seconds 0 < plan.json
  sudo semantos apply --plan plan.conf --take-ownership   write keys a sysctl.d file or TuneD sets
  semantos apply --sysctl-root /tmp/tree --state-dir /tmp/state --plan plan.conf";

/// The health command's limit: `--health-timeout`, else the policy's `health_timeout_seconds`.
fn health_timeout(h: &HealthTimeoutArg, pol: &Policy) -> Result<Duration> {
    let s = h.health_timeout.unwrap_or(pol.health_timeout_seconds);
    if !(s.is_finite() && s > 0.0 && s <= 86400.0) {
        return Err(invalid(format!("--health-timeout {s} is invalid; use seconds in (0, 86400] (the default is {})", crate::safety::policy::DEFAULT_HEALTH_TIMEOUT_S)));
    }
    Ok(Duration::from_secs_f64(s))
}

/// The exit code of an apply's outcome.
pub fn outcome_code(o: Outcome) -> i32 {
    match o {
        Outcome::Committed | Outcome::NothingToDo => exit::OK,
        Outcome::RolledBack => exit::ROLLED_BACK,
        Outcome::PartlyCommitted => exit::PARTIAL,
    }
}

/// A fleet resuming rollout `id` on this host: when the unfinished run the journal shows is this
/// rollout's own interrupted attempt, undo only what it wrote (from its journal) so the apply can
/// start afresh. The fleet used to restore the whole backup here, which also undid an earlier
/// rollout's values; another run's leftovers still refuse the apply (see `pending_run`).
fn finish_own_interrupted(a: &ApplyArgs, kb: &crate::kb::Kb, tree: &crate::sysctl::store::TreeStore, st: &super::state::State, id: &str) -> Result<()> {
    let p = writes::paths(st);
    let Some(entries) = apply::journal::pending(&p.journal)? else { return Ok(()) };
    let ours = entries.iter().any(|e| matches!(e, apply::journal::Entry::Begin { rollout_id: Some(r), .. } if r == id));
    if !ours {
        return Ok(());
    }
    let given = a.policy.policy.is_some();
    let pol = if given { common::policy(&a.policy, kb)? } else { Policy { whitelist: vec!["*".into()], ..Policy::default() } };
    let store = FaultyStore::new(guarded(tree.clone(), kb, &pol), writes::faults()?);
    let now = common::now_ms();
    let opts = apply::RollbackOptions { force: a.force.force, run_id: format!("undo-{}-{}", now / 1000, std::process::id()), now_s: now / 1000, policy: given.then_some(&pol) };
    let r = apply::rollout_undo::rollback_rollout(&store, kb, &p, &HostIdentity::read(tree.root()), id, &opts, &AuditLog::to(&st.audit_log))?;
    eprintln!("semantos: finished the interrupted apply of rollout {id} here by undoing its {} partial write(s); applying afresh", r.restored.len());
    Ok(())
}

/// `semantos --applier sysctl --apply` / `semantos apply`.
pub fn apply(a: &ApplyArgs) -> Result<i32> {
    // Inputs first (exit 2), then the host's state (exit 3), then the plan.
    let kb = load_kb(&a.kb)?;
    if let Some(id) = &a.rollout_id {
        apply::fence::validate_id(id).map_err(|e| invalid(format!("--rollout-id: {e:#}")))?;
    }
    let pol = common::policy(&a.policy, &kb)?;
    let health_limit = health_timeout(&a.health_timeout, &pol)?;
    let window = common::monitor_seconds(a.watch.monitor_seconds.unwrap_or(pol.monitor_seconds))?;
    let gate = objective(&a.objective)?;
    let tree = common::store(&a.tree.sysctl_root);
    writes::require_root(&tree, "apply")?;
    let st = writes::resolve(&a.state);
    let line = writes::rollback_line(&a.tree.sysctl_root, &a.state.loc, a.state.audit_log.as_deref(), &st, &a.kb, &a.policy);
    if let Some(id) = &a.rollout_id {
        finish_own_interrupted(a, &kb, &tree, &st, id)?;
    }
    // An interrupted run must be rolled back first; a live one holds the lock.
    if let Some(msg) = apply::pending_run(&writes::paths(&st))? {
        return Err(common::refused(format!("refusing to apply: {}", writes::with_hint(&msg, &line))));
    }
    let p = propose(&Inputs { telemetry: &a.telemetry, plan: &a.plan, intent: &a.intent, sysctl_root: &a.tree.sysctl_root, state: &a.state.loc }, &kb, &tree, &pol, None)?;
    if let Some(why) = &p.checked.aborted {
        if !a.json.json {
            print!("{}", render::checked(&p.checked));
        }
        return Err(invalid(format!("the guardrails rejected the plan; nothing was written:\n{why}")));
    }
    let writes_ = p.checked.writes();
    let for_host = p.checked.refused_for_scope();
    if writes_.is_empty() && !for_host.is_empty() {
        // The plan asked for keys that can only be set on the host: say so with an error, not "nothing to apply".
        if !a.json.json {
            print!("{}", render::checked(&p.checked));
        }
        let keys = for_host.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ");
        return Err(apply::Refused(format!("refusing to apply: {keys} cannot be written from this network namespace; nothing was written. Run `semantos apply --plan {}` on the host (initial namespace)", super::propose::host_plan_path(&a.state.loc).display())).into());
    }
    if writes_.is_empty() {
        if a.json.json {
            super::output::print("apply", &serde_json::json!({ "outcome": "nothing_to_do", "checked": p.checked }))?;
        } else {
            print!("{}", render::checked(&p.checked));
            println!("Nothing to apply.");
        }
        return Ok(exit::OK);
    }
    // Another owner (a sysctl.d file, TuneD, bpftune) would put its value back: refused before any write.
    let now = common::now_ms();
    let run_id = format!("apply-{}-{}", now / 1000, std::process::id());
    let keys: Vec<(String, String)> = writes_.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    super::owners::check_before_write(&a.owners, &a.tree.sysctl_root, &keys, &st, &AuditLog::to(&st.audit_log), &run_id)?;
    let store = FaultyStore::new(guarded(tree.clone(), &kb, &pol), writes::faults()?);
    let mut monitor: Box<dyn Monitor> = if window == 0.0 {
        Box::new(HealthOnly { cmd: a.watch.health_cmd.clone(), limit: health_limit })
    } else {
        // The window `diagnose` takes, from the same sampler: listeners and the limits the KB's ratios divide by.
        let mut live = super::sampling::LiveSampler::open(&a.telemetry, &a.tree.sysctl_root, &kb)?;
        let window_of = Box::new(move |span: Duration| live.window(span, super::sampling::DEFAULT_SAMPLES));
        Box::new(LiveMonitor::new(window_of, &kb, Duration::from_secs_f64(window), a.watch.health_cmd.clone(), p.findings.clone(), pol.monitor_new_symptoms, pol.monitor_worsening_factor).with_health_timeout(health_limit))
    };
    if let Some(o) = gate {
        // The baseline is measured now, before anything is written; a command that fails here stops the apply.
        let baseline = crate::rollout::objective_gate::measure(&o).map_err(|e| invalid(format!("{e:#}")))?;
        monitor = Box::new(ObjectiveGate::new(o, baseline, monitor));
    }
    let opts = ApplyOptions {
        paths: writes::paths(&st),
        batch_size: pol.batch_size,
        on_regression: OnRegression::RollbackAll,
        persist: a.watch.persist.clone(),
        run_id,
        now_s: now / 1000,
        force: a.force.force,
        rollout_id: a.rollout_id.clone(),
    };
    let host = HostIdentity::read(tree.root());
    let mut shown = super::progress::Shown::new(monitor.as_mut(), Duration::from_secs_f64(window));
    let receipt = apply::apply(&store, &kb, &writes_, serde_json::to_value(&p.checked)?, &host, &opts, Some(&mut shown), &AuditLog::to(&st.audit_log)).map_err(|e| writes::classify(e, &line))?;
    if a.json.json {
        super::output::print("apply", &receipt)?;
    } else {
        print!("{}", render::checked(&p.checked));
        print!("{}", render::receipt(&receipt));
        println!("backup: {}", st.backup.display());
    }
    Ok(outcome_code(receipt.outcome))
}
