//! `semantos rollout`: parse the flags into one validated configuration,
//! check the plan on the controller, then hand the fleet to the controller
//! (`rollout::fleet` for ssh, `rollout::ansible` for Ansible) and print the
//! per-host table (or `--json`).
//!
//! Exit codes (`cli::exit`): 0 every wave passed (or a dry run / a clean
//! fleet rollback); 4 a wave failed and it and every earlier wave were
//! rolled back; 5 a host could not be restored (NEEDS ATTENTION); 1 the
//! rollout is unfinished or failed otherwise; 2 invalid input (inventory,
//! flags, a plan refused before any connection); 3 another controller holds
//! the state file's lock.

use super::common::{self, CliError, invalid, load_kb};
use super::exit;
use super::flags::{HealthTimeoutArg, IntentArg, JsonArg, KbDirArg, PlanArg, PolicyArg, WatchArgs};
use crate::apply::lock::Lock;
use crate::kb::Intent;
use crate::reasoning::Plan;
use crate::rollout::ansible::{self, AnsibleRollout, AnsibleSettings, Batch, PlaybookOptions};
use crate::rollout::fleet::{self, Controller};
use crate::rollout::inventory::{Host, Inventory};
use crate::rollout::precheck::{self, Target};
use crate::rollout::ssh::{RemoteSettings, SshEngine, SshSettings, program_exists};
use crate::rollout::state_check;
use crate::rollout::state::{EngineKind, HostState, Phase, RolloutState, STATE_SCHEMA_VERSION, Settings, StateFile, Status};
use crate::rollout::waves::WaveSpec;
use crate::safety::Policy;
use crate::sysctl::store::MemStore;
use crate::sysctl::{SysctlKey, Value};
use anyhow::{Context, Result};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `semantos rollout`. The plan comes from `--plan FILE`
/// (or `--intent I`: the first canary recommends it from its own telemetry);
/// `--policy`, `--monitor-seconds`, `--health-cmd`, `--interval` and `--persist`
/// are passed to every host.
#[derive(Debug, Clone, Args)]
#[command(after_help = ROLLOUT_HELP)]
pub struct RolloutArgs {
    /// Hosts: SemantOS YAML (`hosts:` list of name, address, port, user, labels, groups) or an Ansible inventory (INI or YAML).
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Engine: `ssh` runs `semantos apply` on each host over OpenSSH; `ansible` runs a generated playbook with ansible.posix.sysctl.
    #[arg(long, value_enum, default_value = "ssh")]
    pub engine: EngineKind,
    /// First wave: a host count or a percentage of the fleet (canary hosts: group `canary` or label canary=true go first).
    #[arg(long, default_value = "1", value_name = "N|N%")]
    pub canary: String,
    /// Ramp waves as cumulative sizes after each (`25%,50%`: a quarter done, then half); the last wave takes the rest. Empty: canary then rest.
    #[arg(long, default_value = "25%,50%", value_name = "LIST")]
    pub steps: String,
    /// Hosts worked on at once inside a wave.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub parallel: usize,
    /// Seconds one host may take for one step (apply, gate, restore); the remote command is stopped there too.
    #[arg(long, default_value_t = 300.0, value_name = "S")]
    pub host_timeout: f64,
    /// State file: progress of the rollout, for --resume and --rollback-fleet [default: <state dir>/rollout/state.json,
    /// experiments/rollout/state.json in a checkout; see FILES in semantos(1)].
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// State directory the default --state lives in.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Resume the rollout recorded in --state (a controller that died): finish the current wave, then the rest.
    #[arg(long, conflicts_with = "rollback_fleet")]
    pub resume: bool,
    /// Restore every host the rollout recorded in --state touched, from each host's backup.
    #[arg(long)]
    pub rollback_fleet: bool,
    /// Connect and apply. Without it: validate the plan and inventory, print the waves, touch nothing.
    #[arg(long)]
    pub run: bool,
    /// Only these hosts: names, group names or label key=value (comma-separated; any match).
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    pub limit: Vec<String>,
    /// Path of `semantos` on the hosts.
    #[arg(long, default_value = "semantos", value_name = "PATH")]
    pub remote_semantos: String,
    /// Copy this binary to <remote-dir>/semantos on each host (over the same ssh connection) and run that.
    #[arg(long)]
    pub copy_binary: bool,
    /// Working directory on each host: backup (rollout-backup.json), journal, lock, audit log. `{host}` is replaced by the host's name.
    #[arg(long, default_value = "/var/lib/semantos", value_name = "DIR")]
    pub remote_dir: String,
    /// ssh config file (`ssh -F`); default: the user's own ~/.ssh/config, known_hosts and agent.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Extra ssh option (`-o KEY=VALUE`), repeatable.
    #[arg(long = "ssh-option", value_name = "KEY=VALUE")]
    pub ssh_options: Vec<String>,
    /// ssh ConnectTimeout, seconds.
    #[arg(long, default_value_t = 10, value_name = "S")]
    pub connect_timeout: u32,
    /// ansible-playbook to run with --engine ansible.
    #[arg(long, env = "SEMANTOS_ANSIBLE_PLAYBOOK", default_value = "ansible-playbook", value_name = "PATH")]
    pub ansible_playbook: String,
    /// Where --engine ansible writes playbook.yml, inventory.yml and ansible.cfg (default: `ansible/` beside --state).
    #[arg(long, value_name = "DIR")]
    pub ansible_dir: Option<PathBuf>,
    /// Python on the hosts for --engine ansible (`ansible_python_interpreter`); default: Ansible discovers it.
    #[arg(long, value_name = "PATH")]
    pub ansible_python: Option<String>,
    /// Seconds between the two telemetry snapshots each host's apply diagnoses from.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    pub interval: f64,
    #[command(flatten)]
    pub plan: PlanArg,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub health_timeout: HealthTimeoutArg,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

const ROLLOUT_HELP: &str = "Examples:
  semantos rollout --inventory hosts.yaml --plan plan.json        dry run: waves and checks
  semantos rollout --inventory hosts.yaml --plan plan.json --policy policy.yaml --run
  semantos rollout --inventory hosts.yaml --plan plan.json --run --steps 25%,50% --canary 2
  semantos rollout --inventory hosts.yaml --plan plan.json --run --health-cmd 'curl -fsS ok/'
  semantos rollout --inventory inventory.ini --plan plan.json --engine ansible --run
  semantos rollout --resume            the controller died: finish the rollout in --state
  semantos rollout --rollback-fleet    restore every host the rollout in --state touched

Each host runs `semantos apply --plan -` (the plan on standard input) with its own backup,
journal, read-back, monitor window and health command; a wave passes only if every host in it
did and is still healthy afterwards. Otherwise that wave and every earlier one are restored and
later waves are never touched. See docs/fleet.md.";

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The state file: `--state`, else the default state directory's (see `cli::state`).
fn state_path(a: &RolloutArgs) -> PathBuf {
    super::state::resolve(a.state_dir.as_deref(), None, None, a.state.as_deref(), &super::state::Env::read()).rollout_state
}

fn policy_of(a: &RolloutArgs) -> Result<(Policy, Option<String>)> {
    match &a.policy.policy {
        Some(p) => {
            let pol = common::policy(&a.policy, &common::load_kb(&a.kb)?)?;
            let text = std::fs::read_to_string(p).with_context(|| format!("reading policy {}", p.display()))?;
            Ok((pol, Some(text)))
        }
        None => Ok((Policy::default(), None)),
    }
}

/// The validated writes of a plan already in a state file.
fn targets_of(plan: &Plan) -> Vec<Target> {
    plan.changes.iter().filter_map(|c| Some(Target { key: SysctlKey::parse(&c.key).ok()?, value: Value::from_kernel(&c.to) })).collect()
}

/// The plan every host receives: validated values in canonical form, no controller-side `from`.
fn canonical(plan: &Plan, targets: &[Target]) -> Plan {
    let mut p = plan.clone();
    p.changes = targets
        .iter()
        .filter_map(|t| {
            let mut c = plan.changes.iter().find(|c| SysctlKey::parse(&c.key).ok().as_ref() == Some(&t.key))?.clone();
            c.key = t.key.to_string();
            c.to = t.value.to_string();
            c.from = None;
            Some(c)
        })
        .collect();
    p
}

/// The controller's `--kb DIR` files (the ones `Kb::with_overrides` merges), for upload to the hosts.
fn kb_files(a: &RolloutArgs) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(dir) = &a.kb.kb else { return Ok(out) };
    for (p, text) in crate::kb::override_files(dir)? {
        let name = p.file_name().and_then(|n| n.to_str()).with_context(|| format!("{}: a file name that is not UTF-8", p.display()))?.to_string();
        out.insert(name, text);
    }
    Ok(out)
}

fn settings_of(a: &RolloutArgs, state: &Path, policy_text: Option<String>, spec: WaveSpec) -> Result<Settings> {
    if a.parallel == 0 {
        return Err(invalid("--parallel 0 is invalid; use 1 or more hosts at once"));
    }
    state_check::check_ssh_options(&a.ssh_options).map_err(|e| invalid(format!("--ssh-option: {e}")))?;
    let copy_binary = if a.copy_binary { Some(std::env::current_exe().context("finding this binary to copy it")?) } else { None };
    let remote = RemoteSettings {
        semantos: a.remote_semantos.clone(),
        dir: a.remote_dir.trim_end_matches('/').to_string(),
        copy_binary,
        policy: policy_text,
        monitor_seconds: a.watch.monitor_seconds,
        health_cmd: a.watch.health_cmd.clone(),
        health_timeout_s: a.health_timeout.health_timeout,
        persist: a.watch.persist.as_ref().map(|p| p.display().to_string()),
        interval: a.interval,
        host_timeout_s: a.host_timeout,
        kb: kb_files(a)?,
    };
    remote.validate().map_err(invalid)?;
    if let Some(m) = remote.monitor_seconds
        && !(m.is_finite() && (0.0..=86400.0).contains(&m))
    {
        return Err(invalid(format!("--monitor-seconds {m} is invalid; use 0 to 86400 seconds")));
    }
    // Absolute: a resume may run elsewhere, and ansible-playbook runs in its own directory.
    let ssh_config = match &a.ssh_config {
        Some(p) => Some(p.canonicalize().map_err(|e| invalid(format!("--ssh-config {}: {e}", p.display())))?),
        None => None,
    };
    if let Some(py) = &a.ansible_python
        && !state_check::check_python(py)
    {
        return Err(invalid(format!("--ansible-python {py:?} is invalid; use an absolute path such as /usr/bin/python3")));
    }
    let ansible = match a.engine {
        EngineKind::Ansible => Some(AnsibleSettings {
            program: a.ansible_playbook.clone(),
            dir: a.ansible_dir.clone().unwrap_or_else(|| state.parent().map(Path::to_path_buf).unwrap_or_default().join("ansible")),
            python: a.ansible_python.clone(),
        }),
        EngineKind::Ssh => None,
    };
    Ok(Settings {
        engine: a.engine,
        waves: spec,
        parallel: a.parallel,
        host_timeout_s: a.host_timeout,
        ssh: SshSettings { program: "ssh".into(), config: ssh_config, options: a.ssh_options.clone(), connect_timeout_s: a.connect_timeout.max(1) },
        remote,
        ansible,
    })
}

/// `semantos rollout`.
pub fn run(a: &RolloutArgs) -> Result<i32> {
    let state = state_path(a);
    if a.resume || a.rollback_fleet {
        return continue_recorded(a, &state);
    }
    let kb = load_kb(&a.kb)?;
    let spec = WaveSpec::parse(&a.canary, &a.steps).map_err(invalid)?;
    let inv_path = a.inventory.as_ref().ok_or_else(|| invalid("--inventory FILE is required (or --resume / --rollback-fleet with --state)"))?;
    let (inv, _) = Inventory::load(inv_path).map_err(|e| invalid(e.to_string()))?;
    let hosts = inv.select(&a.limit).map_err(invalid)?;
    let (policy, policy_text) = policy_of(a)?;
    let settings = settings_of(a, &state, policy_text, spec.clone())?;
    if !program_exists(Path::new(&settings.ssh.program)) {
        return Err(invalid("no `ssh` client on PATH: install openssh-client"));
    }
    let plan = match (&a.plan.plan, a.intent.intent) {
        (Some(p), _) => common::load_plan(p, common::intent(&a.intent), &MemStore::new([]))?,
        (None, Some(intent)) => {
            if !a.run {
                return Err(invalid("--intent without --plan asks the first canary host for a plan, which connects to it: add --run, or make a plan first with `semantos recommend --intent I --out plan.json`"));
            }
            let plan = recommend_on_canary(&settings, &hosts[0], intent)?;
            if plan.changes.is_empty() {
                eprintln!("{}'s telemetry calls for no change (intent {}): nothing to roll out", hosts[0].name, intent.name());
                return Ok(0);
            }
            plan
        }
        (None, None) => return Err(invalid("give --plan FILE (JSON or sysctl.d), or --intent I to have the canary recommend one")),
    };
    // Nothing leaves this machine before the whole plan passes here.
    let targets = precheck::validate(&plan, &kb, &policy).map_err(|e| invalid(e.to_string()))?;
    let plan = canonical(&plan, &targets);
    let waves = spec.waves(hosts.len());
    let run_id = format!("rollout-{}-{}", now_s(), std::process::id());
    let mut host_states = Vec::new();
    for (w, r) in waves.iter().enumerate() {
        for h in &hosts[r.clone()] {
            host_states.push(HostState { host: h.clone(), wave: w, phase: Phase::Pending, touched: false, before: None, written: Default::default(), after: None, reason: String::new(), seconds: 0.0 });
        }
    }
    let rollout = RolloutState {
        schema_version: STATE_SCHEMA_VERSION,
        run_id,
        created_at: now_s(),
        status: Status::Running,
        current_wave: None,
        failed_wave: None,
        keys: targets.iter().map(|t| t.key.to_string()).collect(),
        plan,
        settings,
        hosts: host_states,
    };
    // The same check a resume or a fleet rollback applies to the state file, so the two
    // cannot drift: what a fresh rollout records, a resume accepts.
    state_check::check_recorded(&rollout).map_err(|e| invalid(format!("the rollout was refused before any connection: {e}")))?;
    if !a.run {
        print_dry_run(a, &rollout, &targets)?;
        return Ok(exit::OK);
    }
    let _lock = lock_state(&state)?;
    if let Ok(old) = RolloutState::load(&state)
        && !old.status.finished()
    {
        return Err(invalid(format!(
            "{} records an unfinished rollout ({}, status {:?}): finish it with --resume, undo it with --rollback-fleet, or pass another --state",
            state.display(),
            old.run_id,
            old.status
        )));
    }
    let file = StateFile::create(&state, rollout)?;
    drive(a, &file, false)
}

fn lock_state(path: &Path) -> Result<Lock> {
    Lock::acquire(&path.with_extension("lock")).map_err(|e| common::refused(format!("{e:#}: another controller is driving this rollout")))
}

fn recommend_on_canary(settings: &Settings, host: &Host, intent: Intent) -> Result<Plan> {
    let engine = SshEngine::new(settings.ssh.clone(), settings.remote.clone())?;
    eprintln!("asking {} for a plan (intent {})", host.name, intent.name());
    engine.recommend(host, intent).map_err(|e| anyhow::Error::new(CliError { code: exit::FAILED, message: format!("recommend on the canary failed: {}", e.message) }))
}

fn continue_recorded(a: &RolloutArgs, state: &Path) -> Result<i32> {
    if !state.exists() {
        // Before the lock: a mistyped --state creates nothing.
        return Err(invalid(format!("--state {} does not exist: there is no rollout to resume or roll back", state.display())));
    }
    let _lock = lock_state(state)?;
    let file = StateFile::open(state).map_err(|e| invalid(format!("{e:#}")))?;
    let s = file.snapshot();
    // A state file is input: checked as a fresh rollout's plan, inventory and flags are.
    state_check::check_recorded(&s).map_err(|e| invalid(format!("{}: {e}; nothing was contacted (fix or remove the state file)", state.display())))?;
    if a.resume && s.status.finished() {
        eprintln!("the rollout {} already ended ({:?}); nothing to resume", s.run_id, s.status);
        print_report(a, &file.snapshot(), &file)?;
        return Ok(exit_code(s.status));
    }
    drive(a, &file, a.rollback_fleet)
}

/// The exit code of a rollout's status (`cli::exit`).
fn exit_code(s: Status) -> i32 {
    match s {
        Status::Passed | Status::RolledBack => exit::OK,
        Status::Failed => exit::ROLLED_BACK,
        Status::NeedsAttention => exit::PARTIAL,
        Status::Running | Status::RollingBack => exit::FAILED,
    }
}

/// Runs the engine on the state in `file` (`rollback`: restore every touched host instead).
fn drive(a: &RolloutArgs, file: &StateFile, rollback: bool) -> Result<i32> {
    let s = file.snapshot();
    let log = |line: String| eprintln!("{line}");
    let engine = SshEngine::new(s.settings.ssh.clone(), s.settings.remote.clone())?.with_rollout_id(&s.run_id);
    let status = match s.settings.engine {
        EngineKind::Ssh => {
            let c = Controller { remote: &engine, state: file, log: &log };
            if rollback { c.rollback_fleet()? } else { c.run()? }
        }
        EngineKind::Ansible => {
            let settings = s.settings.ansible.clone().context("the state file has no ansible settings")?;
            let workdir = ansible_workdir(&s, &settings)?;
            ansible::syntax_check(&settings.program, &workdir)?;
            let r = AnsibleRollout { settings: &settings, reader: &engine, state: file, workdir: &workdir, log: &log };
            if rollback { r.restore(None, "rolled back with --rollback-fleet")? } else { r.run()? }
        }
    };
    drop(engine);
    print_report(a, &file.snapshot(), file)?;
    Ok(exit_code(status))
}

/// Playbook options of a rollout: `serial` is exactly its waves.
pub fn playbook_options(s: &RolloutState) -> PlaybookOptions {
    PlaybookOptions {
        run_id: s.run_id.clone(),
        serial: (0..s.wave_count()).map(|w| Batch::Count(s.wave(w).len())).collect(),
        remote_dir: s.settings.remote.dir.clone(),
        sysctl_file: common::sysctl_file(s.settings.remote.persist.as_deref()),
        monitor_seconds: s.settings.remote.monitor_seconds.unwrap_or(0.0),
        health_cmd: s.settings.remote.health_cmd.clone(),
        health_timeout_s: s.settings.remote.health_timeout_s.unwrap_or(crate::safety::policy::DEFAULT_HEALTH_TIMEOUT_S),
        header: vec![format!("rollout {} of plan {} (intent {})", s.run_id, s.plan.created_by, s.plan.intent.name())],
    }
}

fn ansible_workdir(s: &RolloutState, a: &AnsibleSettings) -> Result<ansible::Workdir> {
    let targets = targets_of(&s.plan);
    let o = playbook_options(s);
    let hosts: Vec<Host> = s.hosts.iter().map(|h| h.host.clone()).collect();
    let control = a.dir.join("cp");
    std::fs::create_dir_all(&control).with_context(|| format!("creating {}", control.display()))?;
    let control = control.canonicalize().unwrap_or(control);
    let inv = ansible::inventory(&hosts, &s.settings.remote, &o.sysctl_file, a.python.as_deref())?;
    let cfg = ansible::config(&s.settings.ssh, s.settings.parallel, s.settings.host_timeout_s, &control);
    // The hosts run semantos itself (one backup format and restore logic on both engines).
    let e = ansible::EngineOptions { rollout_id: s.run_id.clone(), serial: o.serial, remote: s.settings.remote.clone(), plan_json: serde_json::to_string(&s.plan)?, changes: targets.len(), header: o.header };
    ansible::write_workdir(&a.dir, &ansible::engine_playbook(&e), &inv, &cfg)
}

fn values_cell(keys: &[String], v: &std::collections::BTreeMap<String, Option<String>>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    keys.iter().map(|k| v.get(k).cloned().flatten().unwrap_or_else(|| "?".into())).collect::<Vec<_>>().join(" | ")
}

/// The per-host table: host, wave, before, after, verdict, reason.
pub fn table(s: &RolloutState, state_file: &str) -> String {
    let r = fleet::report(s, state_file);
    let mut out = String::new();
    let headline = match s.status {
        Status::Passed => format!("PASSED: every wave ({}) passed", r.waves.len()),
        Status::Failed => format!("FAILED at wave {} of {}: that wave and every earlier wave were rolled back; later waves were never touched", r.failed_wave.unwrap_or(0), r.waves.len()),
        Status::RolledBack => "ROLLED BACK: every touched host was restored".into(),
        Status::NeedsAttention => "NEEDS ATTENTION: some host could not be restored (see ROLLBACK-FAILED rows)".into(),
        Status::Running | Status::RollingBack => "UNFINISHED: resume with --resume or undo with --rollback-fleet".into(),
    };
    let _ = writeln!(out, "Rollout {} ({:?} engine): {headline}", r.run_id, s.settings.engine);
    let _ = writeln!(out, "values are: {}", r.keys.join(" | "));
    let rows: Vec<[String; 6]> = r.hosts.iter().map(|h| [h.host.clone(), h.wave.to_string(), values_cell(&r.keys, &h.before), values_cell(&r.keys, &h.after), h.verdict.label().to_string(), h.reason.clone()]).collect();
    let head = ["HOST", "WAVE", "BEFORE", "AFTER", "VERDICT", "REASON"];
    let mut w = head.map(str::len);
    for row in &rows {
        for (i, c) in row.iter().enumerate().take(5) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |c: &[String; 6]| format!("{:<w0$}  {:>w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}", c[0], c[1], c[2], c[3], c[4], c[5], w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4]);
    let _ = writeln!(out, "{}", line(&head.map(str::to_string)));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row).trim_end());
    }
    let _ = writeln!(out, "state: {state_file}");
    out
}

fn print_report(a: &RolloutArgs, s: &RolloutState, file: &StateFile) -> Result<()> {
    let path = file.path().display().to_string();
    if a.json.json {
        super::output::print("rollout", &fleet::report(s, &path))?;
    } else {
        print!("{}", table(s, &path));
    }
    Ok(())
}

fn print_dry_run(a: &RolloutArgs, s: &RolloutState, targets: &[Target]) -> Result<()> {
    if a.json.json {
        let waves: Vec<Vec<String>> = (0..s.wave_count()).map(|w| s.wave(w).into_iter().map(|i| s.hosts[i].host.name.clone()).collect()).collect();
        super::output::print("rollout_dry_run", &serde_json::json!({ "dry_run": true, "engine": s.settings.engine, "waves": waves, "changes": targets.iter().map(|t| serde_json::json!({"key": t.key.to_string(), "to": t.value.to_string()})).collect::<Vec<_>>() }))?;
        return Ok(());
    }
    println!("DRY RUN ({:?} engine) — nothing was contacted; add --run to apply.", s.settings.engine);
    println!("Plan ({}, intent {}), checked against the KB and policy:", s.plan.created_by, s.plan.intent.name());
    for t in targets {
        println!("  {} = {}", t.key, t.value);
    }
    for w in 0..s.wave_count() {
        let names: Vec<String> = s.wave(w).into_iter().map(|i| s.hosts[i].host.name.clone()).collect();
        println!("wave {} ({} host(s)): {}", w + 1, names.len(), names.join(", "));
    }
    println!("each host: {} apply --plan - (backup {}/rollout-backup.json)", s.settings.remote.semantos, s.settings.remote.dir);
    Ok(())
}
