//! `semantos tune`: closed-loop tuning against the user's own objective.
//! Checks every input and runs the objective once before anything is
//! written (a bad flag, a command that prints nothing, a key outside the KB
//! or a guard the command does not report is exit 2 with nothing written),
//! saves the state, then hands the loop (`tune::driver::run`) a
//! `LiveSystem`, the user's command and the candidate sources. `--resume`
//! and `--rollback` pick up a tune that was killed (or finished: `--rollback`
//! then undoes what it kept). The report, the figure and the JSON document
//! are in `tune_report`.

use super::common::{self, invalid, refused};
use super::exit;
use super::flags::{IntentArg, JsonArg, KbDirArg, PlanArg, PolicyArg, StateLoc, TelemetryArgs, TreeArg};
use super::propose::{Inputs, propose};
use super::reasoner::{LlmArgs, ReasonerArgs, ReasonerKind};
use super::state as places;
use super::tune_report::{self, Shown};
use super::writes;
use crate::apply::AuditLog;
use crate::eval::harness::UserCommand;
use crate::kb::{Kb, Risk};
use crate::safety::{CheckedPlan, Policy};
use crate::sysctl::SysctlStore;
use crate::tune::command::{CommandObjective, GUARDS};
use crate::tune::driver::{self, Loop, Settings};
use crate::tune::live::{self, LiveSystem, Target};
use crate::tune::state::{self, CommandConfig, STATE_SCHEMA_VERSION, Status, TuneState};
use crate::tune::trace::{self, Keeper, Recorded, Watched};
use crate::tune::{Candidate, CandidateSource, Direction, GuardLimit, ObjectiveSource, ObjectiveSpec, SearchSpace, Stat, System, Values, candidate::Once, optimiser::GpSearch, space};
use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// The rules plan from diagnosing the target now (or the `--plan` file), one candidate.
    Rules,
    /// The LLM backend's plan, one candidate (needs --llm-url and --llm-model).
    Llm,
    /// The optimiser (a Gaussian process) over the keys the findings implicate, or `--keys`, inside KB, policy and step limits.
    Optimiser,
}

/// Arguments of `tune`.
#[derive(Debug, Clone, Args)]
#[command(after_help = TUNE_HELP)]
pub struct TuneArgs {
    /// The measuring command (sh -c): prints one latency per line, a CSV (with --column), or one score (--stat value).
    #[arg(long, value_name = "CMD", required_unless_present_any = ["resume", "rollback", "scenario"])]
    pub objective_cmd: Option<String>,
    #[command(flatten)]
    pub scenario: super::scenario_run::ScenarioArgs,
    /// CSV column (header name or 1-based index) holding the samples.
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,
    /// The statistic of one run.
    #[arg(long, value_enum, default_value_t = Stat::P99)]
    pub stat: Stat,
    /// Which way is better [default: higher for throughput, lower otherwise].
    #[arg(long, value_enum)]
    pub goal: Option<Direction>,
    /// A guard objective and the worsening it tolerates, percent (errors, throughput, rss_mb); `errors:0` is always on unless given.
    #[arg(long = "guard", value_name = "NAME:MAX_WORSENING_PCT")]
    pub guards: Vec<String>,
    /// Smallest improvement kept, percent of the statistic (docs/tune.md says why 1 %).
    #[arg(long, value_name = "PCT", default_value_t = crate::tune::objective::DEFAULT_MIN_EFFECT_PCT)]
    pub min_effect: f64,
    /// Trials at most (a candidate the guardrails refuse counts).
    #[arg(long, default_value_t = 12, value_name = "N")]
    pub budget: usize,
    /// Wall-clock limit (90, 90s, 15m, 2h); the trial running then finishes first.
    #[arg(long, value_name = "DURATION")]
    pub max_time: Option<String>,
    /// Paired repeats per trial (incumbent and candidate interleaved), as many again when the candidate looks better but is not yet shown so; at least 2.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub repeats: usize,
    /// Unscored runs before each measured run of a configuration.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub warmup: usize,
    /// Seconds one run of the command may take; then its process group is killed and the trial fails.
    #[arg(long, default_value_t = 120.0, value_name = "S")]
    pub cmd_timeout: f64,
    /// Tune the net.* keys of this existing network namespace and run the command in it.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Candidate sources, asked in turn.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [SourceKind::Rules, SourceKind::Optimiser])]
    pub sources: Vec<SourceKind>,
    /// The keys the optimiser may change (instead of those the findings implicate).
    #[arg(long, value_name = "K1,K2", value_delimiter = ',')]
    pub keys: Vec<String>,
    /// Seed of the optimiser (the keep decision's t interval draws nothing).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Continue the tune that was interrupted (its incumbent is set again first).
    #[arg(long, conflicts_with_all = ["rollback", "objective_cmd"])]
    pub resume: bool,
    /// Put back the values in force before the last tune (interrupted or finished).
    #[arg(long, conflicts_with = "objective_cmd")]
    pub rollback: bool,
    #[command(flatten)]
    pub plan: PlanArg,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub tree: TreeArg,
    /// State directory: the tune's state, trace, figure and backup go in <DIR>/tune [default: as for apply].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Audit log (JSON lines) [default: <state dir>/audit.jsonl].
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    #[command(flatten)]
    pub owners: super::owners::OwnershipArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

const TUNE_HELP: &str = "Each trial sets a candidate through the apply transaction, runs the command under it and
under the incumbent in interleaved repeats, and keeps it only when the statistic improves
by at least --min-effect with a paired 95 % interval that excludes zero, and no guard
worsens past its limit. The interval is Student's t over the pairs' log-ratios; a candidate
that looks better but is not yet shown so is measured in as many pairs again (3 + 3 by
default) and judged on all: an identical candidate is kept at most 5 % of the time.

Examples:
  sudo semantos tune --objective-cmd './probe --print-latency-ms' --stat p99 --budget 12
  sudo semantos tune --netns app --objective-cmd 'curl -s localhost:9090/score' --stat value
  sudo semantos tune --objective-cmd 'cat lat.csv' --column ms --keys net.core.somaxconn
  sudo semantos tune --scenario bdp-transfer --budget 10   a bench scenario as the objective
  sudo semantos tune --resume          continue a tune that was killed
  sudo semantos tune --rollback        put back the values in force before the tune

Exit status: 0 success (whether or not a candidate was kept), 1 failure, 2 invalid input
(nothing written), 3 refused by the state (an unfinished tune to --resume or --rollback; root;
a key another owner manages: a sysctl.d file, TuneD's profile, bpftune; see --take-ownership).";

/// `semantos tune`.
pub fn run(a: &TuneArgs) -> Result<i32> {
    if let Some(id) = a.scenario.scenario {
        // Conflicts are checked here rather than by clap so that the message says what --scenario replaces.
        if a.objective_cmd.is_some() || a.netns.is_some() || a.resume || a.rollback || !a.keys.is_empty() || a.plan.plan.is_some() {
            return Err(invalid("--scenario is its own objective and target (the scenario's namespaces, workload and objective): drop --objective-cmd, --netns, --keys, --plan, --resume and --rollback"));
        }
        return super::scenario_run::tune(&a.scenario, id, a.budget, a.seed, &a.intent, &a.policy, &a.kb, a.json.json);
    }
    let st = places::resolve(a.state_dir.as_deref(), None, a.audit_log.as_deref(), None, &places::Env::read());
    let path = state::path(&st.dir);
    let found = TuneState::load(&path).map_err(|e| invalid(format!("{e:#}")))?;
    if let Some(s) = &found
        && s.unfinished()
        && state::alive(s.pid)
    {
        return Err(refused(format!("another tune (pid {}) is running with the state {}; wait for it, or stop it and run `{}`", s.pid, path.display(), again(a, "--rollback"))));
    }
    if a.rollback || a.resume {
        let Some(s) = found else { return Err(refused(format!("no tune to {}: no state at {}; nothing was written", if a.rollback { "roll back" } else { "resume" }, path.display()))) };
        let audit = AuditLog::to(a.audit_log.clone().unwrap_or(st.audit_log.clone()));
        return if a.rollback { rollback(a, s, &path, &audit) } else { resume(a, s, &path, &audit) };
    }
    if let Some(s) = found.filter(TuneState::unfinished) {
        let trial = s.in_progress.as_ref().map(|p| format!(", trial {} ({}) in progress", p.index, p.source)).unwrap_or_default();
        return Err(refused(format!(
            "refusing to tune: the tune started by pid {} did not finish ({} trial(s) done{trial}; state {}). Nothing was written. Continue it with `{}`, or put back its start values with `{}`",
            s.pid,
            s.trials.len(),
            path.display(),
            again(a, "--resume"),
            again(a, "--rollback")
        )));
    }
    start(a, &st, &path)
}

/// `semantos tune FLAG` with the flags that locate the same state.
fn again(a: &TuneArgs, flag: &str) -> String {
    let mut w = vec!["semantos".to_string(), "tune".to_string(), flag.to_string()];
    if let Some(d) = &a.state_dir {
        w.extend(["--state-dir".to_string(), common::shell_word(&d.display().to_string())]);
    }
    if let Some(l) = &a.audit_log {
        w.extend(["--audit-log".to_string(), common::shell_word(&l.display().to_string())]);
    }
    w.join(" ")
}

/// The objective from the flags: statistic, direction, guards (errors:0 unless given).
fn objective_spec(a: &TuneArgs) -> Result<ObjectiveSpec> {
    let mut guards: Vec<GuardLimit> = a.guards.iter().map(|g| parse_guard(g)).collect::<Result<_>>()?;
    if !guards.iter().any(|g| g.name == "errors") {
        guards.insert(0, GuardLimit { name: "errors".into(), direction: Direction::Lower, max_worsening_pct: 0.0 });
    }
    Ok(ObjectiveSpec { stat: a.stat, direction: a.goal.unwrap_or(a.stat.default_direction()), guards, min_effect_pct: min_effect(a.min_effect)? })
}

/// `--min-effect PCT`: a percentage in [0, 100).
fn min_effect(pct: f64) -> Result<f64> {
    if pct.is_finite() && (0.0..100.0).contains(&pct) {
        Ok(pct)
    } else {
        Err(invalid(format!("--min-effect {pct}: give a percentage from 0 to below 100 (default {}); nothing was written", crate::tune::objective::DEFAULT_MIN_EFFECT_PCT)))
    }
}

/// `NAME:MAX_WORSENING_PCT`.
fn parse_guard(g: &str) -> Result<GuardLimit> {
    let (name, pct) = g.split_once(':').ok_or_else(|| invalid(format!("--guard {g:?}: expected NAME:MAX_WORSENING_PCT, e.g. errors:0 or throughput:5")))?;
    let direction = match name {
        "throughput" => Direction::Higher,
        n if GUARDS.contains(&n) => Direction::Lower,
        _ => return Err(invalid(format!("--guard {g:?}: the objective command reports no guard {name:?}; it reports {} (see `semantos tune --help`)", GUARDS.join(", ")))),
    };
    let max_worsening_pct: f64 = pct.trim().trim_end_matches('%').parse().ok().filter(|p: &f64| p.is_finite() && *p >= 0.0).ok_or_else(|| invalid(format!("--guard {g:?}: {pct:?} is not a percentage ≥ 0")))?;
    Ok(GuardLimit { name: name.to_string(), direction, max_worsening_pct })
}

/// `90`, `90s`, `15m`, `2h`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let mult = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(invalid(format!("--max-time {s:?}: unknown unit {unit:?}; use seconds (90, 90s), minutes (15m) or hours (2h)"))),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Duration::from_secs_f64(v * mult)),
        _ => Err(invalid(format!("--max-time {s:?}: expected a positive duration such as 90s, 15m or 2h"))),
    }
}

/// The loop's settings from the flags.
fn settings(a: &TuneArgs) -> Result<Settings> {
    if a.budget == 0 {
        return Err(invalid("--budget 0 would try nothing; give the number of trials, at least 1"));
    }
    if a.repeats < 2 {
        return Err(invalid(format!("--repeats {}: at least 2 paired repeats are needed for an interval (default 3)", a.repeats)));
    }
    if !(a.cmd_timeout.is_finite() && a.cmd_timeout > 0.0 && a.cmd_timeout <= 86400.0) {
        return Err(invalid(format!("--cmd-timeout {}: use seconds in (0, 86400]", a.cmd_timeout)));
    }
    let max_time = a.max_time.as_deref().map(parse_duration).transpose()?;
    Ok(Settings { max_time, warmup_runs: a.warmup, ..Settings::new(a.budget, a.repeats, a.seed) })
}

/// The target from the flags, checked: the namespace exists, root where root is needed.
fn target(a: &TuneArgs) -> Result<Target> {
    let t = Target { sysctl_root: a.tree.sysctl_root.clone(), netns: a.netns.clone() };
    if let Some(ns) = &t.netns {
        crate::sysctl::netns::check(ns).map_err(|e| invalid(format!("--netns: {e:#}; nothing was written")))?;
    }
    writes::require_root(&t.store(), "tune")?;
    // SAFETY: geteuid has no preconditions.
    if t.netns.is_some() && unsafe { libc::geteuid() } != 0 {
        return Err(refused("tune --netns needs root: entering a network namespace needs CAP_SYS_ADMIN; re-run with sudo. Nothing was written."));
    }
    Ok(t)
}

/// One probe run of the objective before anything is written: the command must print what the
/// statistic needs and report every guard asked for.
fn probe(obj: &mut CommandObjective, spec: &ObjectiveSpec) -> Result<()> {
    let m = obj.measure().map_err(|e| invalid(format!("--objective-cmd: the probe run before any change failed: {e:#}. Nothing was written")))?;
    for g in &spec.guards {
        if !m.guards.contains_key(&g.name) {
            return Err(invalid(format!("--guard {}: the probe run of {:?} reported no {} figure (it reported {}); nothing was written", g.name, obj.command.cmd, g.name, m.guards.keys().cloned().collect::<Vec<_>>().join(", "))));
        }
    }
    Ok(())
}

/// `--keys`, each checked against the KB and the target.
fn named_keys(a: &TuneArgs, kb: &Kb, t: &Target) -> Result<Vec<(String, String)>> {
    a.keys
        .iter()
        .map(|k| {
            let p = kb.param(k).ok_or_else(|| invalid(format!("--keys: {k} is not in the knowledge base, so it has no safe range to search; `semantos kb list` shows the keys it knows. Nothing was written")))?;
            if p.risk == Risk::Never {
                return Err(invalid(format!("--keys: {k} is a never-touch key in the knowledge base; nothing was written")));
            }
            if let Some(why) = t.refusal(k, kb) {
                return Err(invalid(format!("--keys: {why}. Nothing was written")));
            }
            Ok((k.clone(), "named with --keys".to_string()))
        })
        .collect()
}

/// A checked plan's writes as one candidate of `source`; `None` when it writes nothing.
fn once_from(source: &str, checked: &CheckedPlan) -> Result<Option<Candidate>> {
    if let Some(why) = &checked.aborted {
        return Err(invalid(format!("the guardrails rejected the {source} plan; nothing was written:\n{why}")));
    }
    // The user's own plan is tried as written, so that what the guardrails refuse is recorded as a
    // refused trial with its reason; the rules' and the LLM's plans are tried as the guardrails left them.
    let values: Values = if source == "plan" {
        checked.changes.iter().filter(|c| !c.change.advice_only).map(|c| (c.change.key.clone(), crate::sysctl::Value::from_kernel(&c.change.to).to_string())).collect()
    } else {
        checked.writes().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    if values.is_empty() {
        return Ok(None);
    }
    let rationale = checked.changes.iter().filter(|c| values.contains_key(&c.change.key)).map(|c| format!("{}: {}", c.change.key, c.change.rationale)).collect::<Vec<_>>().join("; ");
    Ok(Some(Candidate { source: source.into(), values, rationale: Some(rationale), supported: None }))
}

/// The one-off candidates (the rules plan or `--plan`, the LLM's) and the optimiser's space.
fn candidates(a: &TuneArgs, kb: &Kb, pol: &Policy, named: Vec<(String, String)>, reader: &dyn SysctlStore) -> Result<(Vec<Candidate>, SearchSpace)> {
    let wants = |s: SourceKind| a.sources.contains(&s);
    let loc = StateLoc { state_dir: a.state_dir.clone(), backup: None };
    let inputs = Inputs { telemetry: &a.telemetry, plan: &a.plan, intent: &a.intent, sysctl_root: &a.tree.sysctl_root, state: &loc };
    let mut once = Vec::new();
    let mut findings = None;
    if wants(SourceKind::Rules) || a.plan.plan.is_some() || (wants(SourceKind::Optimiser) && a.keys.is_empty()) {
        let p = propose(&inputs, kb, reader, pol, None)?;
        let name = if a.plan.plan.is_some() { "plan" } else { "rules" };
        if wants(SourceKind::Rules) || a.plan.plan.is_some() {
            once.extend(once_from(name, &p.checked)?);
        }
        findings = Some(p.findings);
    }
    if wants(SourceKind::Llm) {
        let no_plan = PlanArg { plan: None };
        let r = ReasonerArgs { reasoner: ReasonerKind::Llm, llm: a.llm.clone() };
        let p = propose(&Inputs { plan: &no_plan, ..inputs }, kb, reader, pol, Some(&r))?;
        // An unsupported rationale is shown with its trial; the measurement alone decides.
        once.extend(once_from("llm", &p.checked)?.map(|c| Candidate { supported: p.supported, ..c }));
        findings.get_or_insert(p.findings);
    }
    for c in &mut once {
        // A key the target cannot take stays in the candidate: the guardrails refuse the trial, and say why.
        c.values.retain(|k, _| kb.param(k).is_some());
    }
    let mut implicated = named;
    if implicated.is_empty()
        && let Some(f) = &findings
    {
        implicated = space::implicated(kb, f);
    }
    let current: Values = common::current_values(reader, kb).into_iter().map(|(k, v)| (k, v.to_string())).collect();
    let space = if wants(SourceKind::Optimiser) { space::build_moving(kb, &implicated, pol, &current).map_err(|e| invalid(format!("the search space: {e:#}")))? } else { SearchSpace::default() };
    Ok((once, space))
}

/// Every key the tune may touch: the space's, `--keys`, and the one-off candidates'.
fn tuned_keys(a: &TuneArgs, space: &SearchSpace, once: &[Candidate]) -> Vec<String> {
    let mut keys: Vec<String> = space.keys().into_iter().chain(a.keys.iter().cloned()).chain(once.iter().flat_map(|c| c.values.keys().cloned())).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A fresh tune: check everything, save the state, run the loop.
fn start(a: &TuneArgs, st: &places::State, path: &Path) -> Result<i32> {
    let kb = common::load_kb(&a.kb)?;
    let pol = common::policy(&a.policy, &kb)?;
    let spec = objective_spec(a)?;
    let settings = settings(a)?;
    let t = target(a)?;
    let command = CommandConfig { cmd: a.objective_cmd.clone().unwrap_or_default(), column: a.column.clone(), timeout_s: a.cmd_timeout };
    let named = named_keys(a, &kb, &t)?;
    let mut objective = objective_of(&command, &t, spec.stat);
    probe(&mut objective, &spec)?;
    let reader = t.reader();
    let (once, space) = candidates(a, &kb, &pol, named, &reader)?;
    let keys = tuned_keys(a, &space, &once);
    if keys.is_empty() {
        return Err(invalid("nothing to tune: the diagnosis implicates no key and no --keys or --plan names one; name the keys with --keys K1,K2 (or give --plan FILE). Nothing was written"));
    }
    let audit = AuditLog::to(a.audit_log.clone().unwrap_or(st.audit_log.clone()));
    let run_dir = st.dir.join("tune").join(format!("run-{}-{}", common::now_ms() / 1000, std::process::id()));
    let system = LiveSystem::new(t.clone(), &kb, &pol, &run_dir.join("backup.json"), audit.clone());
    // Every key a trial may write, checked once before the first trial: another owner refuses the tune.
    let owned: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), String::new())).collect();
    super::owners::check_before_write(&a.owners, &t.sysctl_root, &owned, st, &audit, system.run_id())?;
    let start_values = system.read(&keys).map_err(|e| invalid(format!("{e:#}; nothing was written")))?;
    let s = TuneState {
        schema_version: STATE_SCHEMA_VERSION,
        status: Status::Running,
        pid: std::process::id(),
        run_dir,
        target: t,
        command,
        objective: spec,
        settings,
        intent: common::intent(&a.intent),
        policy: a.policy.policy.clone(),
        kb: a.kb.kb.clone(),
        sources: a.sources.iter().map(|s| format!("{s:?}").to_lowercase()).collect(),
        space,
        once,
        start: start_values.clone(),
        incumbent: start_values,
        trials: Vec::new(),
        in_progress: None,
        stop: None,
    };
    // Saved before the first write: from here on a kill leaves a state to resume or roll back.
    s.save(path)?;
    drive(a, s, path, &kb, &pol, system, objective)
}

/// The objective command of a state.
fn objective_of(c: &CommandConfig, t: &Target, stat: Stat) -> CommandObjective {
    CommandObjective::new(UserCommand { cmd: c.cmd.clone(), netns: t.netns.clone(), column: c.column.clone(), timeout: Duration::from_secs_f64(c.timeout_s) }, stat)
}

/// The KB and policy a saved tune ran with (flags given now win).
fn kb_and_policy(a: &TuneArgs, s: &TuneState) -> Result<(Kb, Policy)> {
    let kb = common::load_kb(&KbDirArg { kb: a.kb.kb.clone().or(s.kb.clone()) })?;
    let pol = common::policy(&PolicyArg { policy: a.policy.policy.clone().or(s.policy.clone()) }, &kb)?;
    Ok((kb, pol))
}

/// `--resume`: undo whatever the interrupted trial left, set the incumbent again, go on.
fn resume(a: &TuneArgs, mut s: TuneState, path: &Path, audit: &AuditLog) -> Result<i32> {
    if !s.unfinished() {
        return Err(refused(format!("the last tune ({}) is {:?}, not interrupted: nothing to resume. Start a new one", path.display(), s.status)));
    }
    let (kb, pol) = kb_and_policy(a, &s)?;
    writes::require_root(&s.target.store(), "tune --resume")?;
    let mut system = LiveSystem::new(s.target.clone(), &kb, &pol, &s.run_dir.join("backup.json"), audit.clone());
    system.restore().context("resuming: putting the start values back before setting the incumbent again")?;
    system.set(&s.incumbent).context("resuming: setting the incumbent again")?;
    if let Some(p) = s.in_progress.take() {
        eprintln!("semantos: trial {} ({}) was interrupted; its values were undone and it is measured again", p.index, p.source);
    }
    s.pid = std::process::id();
    s.save(path)?;
    let objective = objective_of(&s.command, &s.target, s.objective.stat);
    drive(a, s, path, &kb, &pol, system, objective)
}

/// `--rollback`: the start values back, from the tune's backup.
fn rollback(a: &TuneArgs, mut s: TuneState, path: &Path, audit: &AuditLog) -> Result<i32> {
    let (kb, _) = kb_and_policy(a, &s)?;
    writes::require_root(&s.target.store(), "tune --rollback")?;
    let paths = crate::apply::Paths::beside(&s.run_dir.join("backup.json"));
    live::restore(&s.target, &kb, &paths, audit)?;
    let keys: Vec<String> = s.start.keys().cloned().collect();
    let now = LiveSystem::new(s.target.clone(), &kb, &Policy::default(), &paths.backup, AuditLog::none()).read(&keys)?;
    let off: Vec<String> = keys.iter().filter(|k| now.get(*k).map(|v| crate::sysctl::Value::from_kernel(v)) != s.start.get(*k).map(|v| crate::sysctl::Value::from_kernel(v))).map(|k| format!("{k} is {:?}, started at {:?}", now.get(k), s.start.get(k))).collect();
    if !off.is_empty() {
        anyhow::bail!("rolled back the tune's backup {}, but {}; check `semantos rollback --backup {}`", paths.backup.display(), off.join("; "), paths.backup.display());
    }
    s.status = Status::RolledBack;
    s.in_progress = None;
    s.save(path)?;
    if a.json.json {
        super::output::print("tune_rollback", &serde_json::json!({ "restored": s.start, "target": s.target, "state": path }))?;
    } else {
        println!("Put back the values in force before the tune on {}: {}", s.target.describe(), live::show(&s.start));
        println!("state: {}", path.display());
    }
    Ok(exit::OK)
}

/// Runs the loop on a saved state and reports.
fn drive(a: &TuneArgs, s: TuneState, path: &Path, kb: &Kb, pol: &Policy, mut system: LiveSystem, mut objective: CommandObjective) -> Result<i32> {
    let others: BTreeMap<String, crate::sysctl::Value> = common::current_values(&s.target.reader(), kb).into_iter().filter(|(k, _)| !s.start.contains_key(k)).collect();
    let incumbent_now = RefCell::new(s.incumbent.clone());
    let (target, intent) = (s.target.clone(), s.intent);
    let check = |v: &Values| live::check(kb, pol, &target, &others, &incumbent_now.borrow(), v, intent);
    let mut sources: Vec<Box<dyn CandidateSource>> = s.unused_once().into_iter().map(|c| Box::new(Once::new(&c.source.clone(), Some(c))) as Box<dyn CandidateSource>).collect();
    if s.sources.iter().any(|x| x == "optimiser") {
        sources.push(Box::new(GpSearch::new(s.settings.seed)));
    }
    let seen = trace::recorder(s.settings.warmup_runs);
    let trace_path = s.run_dir.join("trace.jsonl");
    std::fs::create_dir_all(&s.run_dir).with_context(|| format!("creating {}", s.run_dir.display()))?;
    let (start, incumbent, history, space, spec, settings) = (s.start.clone(), s.incumbent.clone(), s.trials.clone(), s.space.clone(), s.objective.clone(), s.settings.clone());
    let keeper = Keeper::new(s, path, &trace_path, seen.clone());
    let mut shown = Shown::new(keeper, &incumbent_now, &spec);
    let result = {
        let mut watched = Watched { inner: &mut system, seen: seen.clone() };
        let mut recorded = Recorded { inner: &mut objective, seen };
        let l = Loop { system: &mut watched, objective: &mut recorded, sources, space: &space, spec: &spec, check: &check, settings };
        driver::run(l, start, incumbent, history, &mut shown)
    };
    shown.clear();
    let mut keeper = shown.into_inner();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return Err(failed(e, &mut system, &mut keeper, a)),
    };
    keeper.state.status = Status::Finished;
    keeper.state.stop = Some(outcome.stop);
    keeper.state.in_progress = None;
    keeper.state.save(path)?;
    let plot = tune_report::write_plot(&keeper.state)?;
    tune_report::print(&keeper.state, &outcome, path, &trace_path, &plot, a.json.json)?;
    Ok(exit::OK)
}

/// The loop stopped on an error: put the start values back (never leave a trial's values behind).
fn failed(e: anyhow::Error, system: &mut LiveSystem, keeper: &mut Keeper, a: &TuneArgs) -> anyhow::Error {
    match system.restore() {
        Ok(()) => {
            keeper.state.status = Status::RolledBack;
            keeper.state.in_progress = None;
            let _ = keeper.state.save(&keeper.path);
            e.context("the tune stopped; every value it set was put back to the start values")
        }
        Err(r) => e.context(format!("the tune stopped, and putting the start values back failed too ({r:#}); run `{}`", again(a, "--rollback"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_seconds() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("0").is_err() && parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn a_guard_names_a_figure_the_command_reports_and_a_limit() {
        assert_eq!(parse_guard("throughput:5").unwrap(), GuardLimit { name: "throughput".into(), direction: Direction::Higher, max_worsening_pct: 5.0 });
        assert_eq!(parse_guard("rss_mb:10%").unwrap().direction, Direction::Lower);
        assert!(parse_guard("latency:5").unwrap_err().to_string().contains("reports no guard"));
        assert!(parse_guard("errors").unwrap_err().to_string().contains("NAME:MAX_WORSENING_PCT"));
        assert!(parse_guard("errors:-1").is_err());
    }
}
