//! Live-host commands: diagnose, recommend, dry run, apply and rollback
//! against a sysctl tree (`/proc/sys`, a sandbox directory, or whatever
//! network namespace the process runs in).

use super::{Cli, EXIT_FAILED, invalid, load_kb};
use super::args::{DiagnoseArgs, RecommendArgs, RollbackArgs, TelemetryArgs};
use super::render;
use crate::apply::{self, ApplyOptions, AuditLog, HostIdentity, OnRegression, Outcome, Paths};
use crate::kb::{Intent, Kb};
use crate::reasoning::{self, Context, Findings, Plan, Reasoner, RulesEngine};
use crate::safety::guard::guarded;
use crate::rollout::live::LiveMonitor;
use crate::safety::{self, CheckedPlan, Policy};
use crate::sysctl::store::{Fault, FaultyStore};
use crate::sysctl::{SysctlKey, SysctlStore, TreeStore, Value};
use crate::telemetry::procfs::ProcReader;
use crate::telemetry::sockdiag::BufferCaps;
use crate::telemetry::{Snapshot, Window};
use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Loads and validates a policy file.
pub fn load_policy(path: &Path) -> Result<Policy> {
    // Every way the file can be wrong is invalid input (exit 2): nothing was written yet.
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| invalid(format!("{file}: cannot read the policy: {e}")))?;
    Policy::from_bytes(&bytes, &file).map_err(invalid)
}

/// The policy the flags name (`--policy FILE`, else the default), its keys checked against the
/// KB the flags name (an unknown whitelist key is invalid input; an unknown never_touch key is
/// warned about once per run).
pub fn policy(cli: &Cli) -> Result<Policy> {
    let Some(path) = &cli.host.policy else { return Ok(Policy::default()) };
    let pol = load_policy(path)?;
    let kb = load_kb(cli)?;
    let known: Vec<&str> = kb.params.keys().map(String::as_str).collect();
    let warnings = pol.check_keys(&path.display().to_string(), &known).map_err(invalid)?;
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| warnings.iter().for_each(|w| eprintln!("semantos: warning: {w}")));
    Ok(pol)
}

fn intent(cli: &Cli) -> Intent {
    cli.host.intent.unwrap_or(Intent::Latency)
}

/// The store the flags name: kernel semantics under /proc, sandbox semantics elsewhere.
pub fn store(cli: &Cli) -> TreeStore {
    let root = &cli.host.sysctl_root;
    if root.starts_with("/proc") { TreeStore::kernel_at(root) } else { TreeStore::sandbox(root) }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Snapshots a live diagnosis spreads over its `--interval` window unless
/// `diagnose --samples` says otherwise: four sub-intervals, so a window
/// costs no more wall time than the two snapshots it replaced.
pub const DEFAULT_SAMPLES: usize = 5;

/// The window a diagnosis judges: every row of a CSV (in time order), or
/// `samples` live reads spread evenly over `--interval`.
pub fn telemetry(cli: &Cli, t: Option<&TelemetryArgs>, kb: &Kb, samples: usize) -> Result<Vec<Snapshot>> {
    if let Some(path) = t.and_then(|t| t.telemetry.as_ref()) {
        return crate::telemetry::csv::read_file(path).map_err(|e| invalid(format!("{e:#}")));
    }
    let mut live = LiveSampler::open(cli, kb)?;
    let n = samples.max(2);
    let step = Duration::from_secs_f64(cli.host.interval / (n - 1) as f64);
    // The live host's sockets over the window (sock_diag, every 50 ms): which limit each runs on.
    // Not for a fixture /proc or a sandbox tree, whose sockets these are not.
    let on_host = cli.host.proc_root == Path::new("/proc") && store(cli).root().starts_with("/proc");
    let caps = BufferCaps::read(store(cli).root());
    let mut snaps = vec![live.sample()?];
    for _ in 1..n {
        // Each sub-interval's sockets are sampled over that sub-interval (every 50 ms) and join the
        // snapshot that closes it, so a per-socket signal is judged per sub-interval like the rest.
        let socks = if on_host { crate::telemetry::sockdiag::sample_window(step, Duration::from_millis(50), caps).ok() } else { None };
        if socks.is_none() {
            std::thread::sleep(step);
        }
        let mut snap = live.sample()?;
        for (k, v) in socks.map(|a| a.metrics()).unwrap_or_default() {
            // The per-sample listener gauges stay as sampled.
            snap.metrics.entry(k).or_insert(v);
        }
        snaps.push(snap);
    }
    Ok(snaps)
}

/// Reads one live snapshot at a time: `/proc`, the listening sockets of this
/// network namespace over `sock_diag` (listeners only: their number, not the
/// host's connection count, bounds the cost), and the `sysctl.<key>` limits
/// the KB's symptoms divide by, from the sysctl tree, so a ratio's limit is
/// the one in force when the count was read.
struct LiveSampler {
    reader: ProcReader,
    diag: Option<crate::telemetry::sockdiag::SockDiag>,
    store: TreeStore,
    limits: Vec<(String, SysctlKey)>,
}

impl LiveSampler {
    fn open(cli: &Cli, kb: &Kb) -> Result<LiveSampler> {
        if !(cli.host.interval.is_finite() && (0.05..=3600.0).contains(&cli.host.interval)) {
            return Err(invalid(format!("--interval {}: use 0.05 to 3600 seconds", cli.host.interval)));
        }
        let named = kb.symptoms.values().flat_map(|s| &s.when).flat_map(|s| std::iter::once(&s.metric).chain(&s.per));
        // Only keys the KB knows and may read: a secret or a key whose read acts (vm.stat_refresh) never is.
        let readable = |k: &str| kb.param(k).is_some_and(|p| p.no_read.is_none());
        let mut limits: Vec<(String, SysctlKey)> = named
            .chain(kb.limits.iter().flat_map(|l| &l.limits))
            .filter_map(|m| m.strip_prefix("sysctl.").filter(|k| readable(k)).and_then(|k| Some((m.clone(), SysctlKey::parse(k).ok()?))))
            .collect();
        limits.sort_by(|a, b| a.0.cmp(&b.0));
        limits.dedup_by(|a, b| a.0 == b.0);
        // No sock_diag (a kernel without it, a seccomp profile): listener symptoms say "no data".
        let diag = crate::telemetry::sockdiag::SockDiag::open().ok();
        Ok(LiveSampler { reader: ProcReader::with_roots(&cli.host.proc_root, "/sys"), diag, store: store(cli), limits })
    }

    fn sample(&mut self) -> Result<Snapshot> {
        let t = now_ms();
        let mut snap = self.reader.snapshot(t)?;
        if let Some(recs) = self.diag.as_mut().and_then(|d| d.dump(crate::telemetry::sockdiag::States::LISTEN).ok()) {
            let mut agg = crate::telemetry::sockdiag::SockAggregator::new(Vec::<String>::new());
            agg.observe(0, &recs);
            snap.metrics.extend(agg.metrics().into_iter().filter(|(k, _)| k.starts_with("listen.")));
        }
        for (metric, key) in &self.limits {
            // A single number only; a key absent here (a netns without it) leaves the ratio "no data".
            if let Some(v) = self.store.read(key).ok().and_then(|v| v.as_str().trim().parse::<f64>().ok()) {
                snap.set(metric.clone(), v);
            }
        }
        Ok(snap)
    }
}

/// Current values of every KB key present in `store`.
pub fn current_values(store: &dyn SysctlStore, kb: &Kb) -> BTreeMap<String, Value> {
    kb.params
        .iter()
        .filter(|(_, p)| p.risk != crate::kb::Risk::Never)
        .filter_map(|(k, _)| SysctlKey::parse(k).ok())
        .filter_map(|k| store.read(&k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

struct Proposal {
    findings: Findings,
    checked: CheckedPlan,
}

fn propose(cli: &Cli, t: Option<&TelemetryArgs>, kb: &Kb, store: &dyn SysctlStore) -> Result<Proposal> {
    propose_with(cli, t, kb, store, None)
}

/// `reasoner` chooses the backend when no `--plan` is given (`recommend --reasoner llm`).
fn propose_with(cli: &Cli, t: Option<&TelemetryArgs>, kb: &Kb, store: &dyn SysctlStore, reasoner: Option<&super::compare_cmd::ReasonerArgs>) -> Result<Proposal> {
    if let (Some(p), Some(_)) = (&cli.plan, reasoner.filter(|r| r.uses_llm())) {
        // Either the model proposes the plan or the file is the plan: never one silently instead of the other.
        return Err(invalid(format!("--plan {} and --reasoner llm both name where the plan comes from; drop one", p.display())));
    }
    let snaps = telemetry(cli, t, kb, DEFAULT_SAMPLES)?;
    let (a, b) = (&snaps[0], &snaps[snaps.len() - 1]);
    let findings = reasoning::diagnose_series(&snaps, kb);
    let current = current_values(store, kb);
    let plan = match &cli.plan {
        Some(p) => load_plan(p, intent(cli), store).map_err(|e| invalid(format!("{e:#}")))?,
        None => {
            let ctx = Context { kb, intent: intent(cli), current: &current, window: Window::new(a, b) };
            if let Some(r) = reasoner.filter(|r| r.uses_llm()) {
                // The LLM path runs the guardrails itself: a rejected LLM plan may fall back to the rules.
                let checked = super::compare_cmd::llm_checked(r, &findings, &ctx, &policy(cli)?)?;
                return Ok(Proposal { findings, checked });
            }
            RulesEngine.recommend(&findings, &ctx)?
        }
    };
    let checked = safety::check_with(&plan, kb, &policy(cli)?, &current, &facts(cli, b));
    write_host_plan(cli, &checked);
    Ok(Proposal { findings, checked })
}

/// Where the changes refused for their scope are written, as a plan to run on the host.
fn host_plan_path(cli: &Cli) -> std::path::PathBuf {
    cli.out.backup.parent().map(Path::to_path_buf).unwrap_or_default().join("host-plan.conf")
}

/// The guardrails' host facts: memory from the snapshot, and the network namespace when the
/// store is the kernel's (a sandbox tree is in no namespace).
fn facts(cli: &Cli, b: &Snapshot) -> safety::Facts {
    with_netns(cli, safety::facts::from_snapshot(b))
}

/// `f` judged for the network namespace the kernel store lives in (unchanged for a sandbox tree).
pub(super) fn with_netns(cli: &Cli, f: safety::Facts) -> safety::Facts {
    if !store(cli).root().starts_with("/proc") {
        return f;
    }
    let place = crate::telemetry::netns::detect(&cli.host.proc_root);
    if let crate::telemetry::netns::NetnsPlace::Unknown(_) = &place {
        eprintln!("semantos: note: running in {}; keys a child namespace cannot write are not refused in advance", place.describe());
    }
    f.in_netns(place).with_host_plan(host_plan_path(cli))
}

/// Writes the changes refused for their scope to `host_plan_path`, so the message's command works as shown.
fn write_host_plan(cli: &Cli, c: &CheckedPlan) {
    let Some(text) = safety::scope::host_plan(&c.refused_for_scope()) else { return };
    let path = host_plan_path(cli);
    if let Err(e) = apply::files::write_atomic(&path, text.as_bytes(), 0o644) {
        eprintln!("semantos: warning: could not write the host plan {}: {e:#}; the refused changes are listed below", path.display());
    }
}

/// Loads `--plan FILE`; `--plan -` reads a JSON plan from standard input
/// (how `semantos rollout` hands each host its plan without a command line).
fn load_plan(path: &Path, intent: Intent, store: &dyn SysctlStore) -> Result<Plan> {
    if path != Path::new("-") {
        return Plan::load(path, intent, store);
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading the plan from standard input")?;
    if !text.trim_start().starts_with('{') {
        anyhow::bail!("--plan - reads a JSON plan from standard input; for sysctl.d syntax pass the file's path");
    }
    Plan::from_json(&text, "<stdin>")
}

fn paths(cli: &Cli) -> Paths {
    Paths::beside(&cli.out.backup)
}

fn warn_pending(cli: &Cli) -> Result<()> {
    if let Some(msg) = apply::pending_run(&paths(cli))? {
        eprintln!("semantos: warning: {msg}");
    }
    Ok(())
}

/// `semantos diagnose`: one window, or `--watch N` windows back to back
/// with one line per finding that appears or clears.
pub fn diagnose(cli: &Cli, d: &DiagnoseArgs) -> Result<i32> {
    let kb = load_kb(cli)?;
    if d.samples < 2 {
        return Err(invalid(format!("--samples {}: a window needs at least 2 snapshots (one sub-interval)", d.samples)));
    }
    if let Some(rounds) = d.watch {
        return watch(cli, d, &kb, rounds);
    }
    let snaps = telemetry(cli, Some(&d.telemetry), &kb, d.samples)?;
    let f = reasoning::diagnose_series(&snaps, &kb);
    if cli.json {
        super::output::print("findings", &f)?;
    } else {
        print!("{}", render::findings(&f));
    }
    Ok(0)
}

/// `diagnose --watch N`: N windows (0: until interrupted; a CSV: until its
/// rows run out), each starting where the last ended, reporting changes only.
fn watch(cli: &Cli, d: &DiagnoseArgs, kb: &Kb, rounds: u32) -> Result<i32> {
    let csv = d.telemetry.telemetry.is_some();
    let mut rows = if csv { telemetry(cli, Some(&d.telemetry), kb, d.samples)? } else { Vec::new() };
    let mut live = if csv { None } else { Some(LiveSampler::open(cli, kb)?) };
    let step = Duration::from_secs_f64(cli.host.interval / (d.samples - 1) as f64);
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
        for line in changes(&present, &f, at, cli.json)? {
            println!("{line}");
        }
        present = f.findings.into_iter().map(|x| (x.id.clone(), x)).collect();
        round += 1;
        if window.len() < d.samples {
            break;
        }
    }
    Ok(0)
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
pub fn recommend(cli: &Cli, r: &RecommendArgs) -> Result<i32> {
    let kb = load_kb(cli)?;
    let store = store(cli);
    let p = propose_with(cli, Some(&r.telemetry), &kb, &store, Some(&r.reasoner))?;
    if let Some(out) = &r.out {
        apply::files::write_atomic(out, p.checked.plan.to_json().as_bytes(), 0o644)?;
        eprintln!("wrote plan {}", out.display());
    }
    if cli.json {
        super::output::print("recommendation", &p.checked)?;
    } else {
        print!("{}", render::findings(&p.findings));
        print!("{}", render::checked(&p.checked));
    }
    Ok(if p.checked.aborted.is_some() { super::EXIT_INVALID } else { 0 })
}

/// `semantos --applier sysctl` / `semantos dry-run`: nothing is written.
pub fn dry_run(cli: &Cli, t: Option<&TelemetryArgs>) -> Result<i32> {
    warn_pending(cli)?;
    let kb = load_kb(cli)?;
    let store = store(cli);
    let p = propose(cli, t, &kb, &store)?;
    if cli.json {
        super::output::print("dry_run", &serde_json::json!({ "dry_run": true, "store": store.describe(), "findings": p.findings, "checked": p.checked }))?;
    } else {
        println!("DRY RUN against {} — nothing is written.\n", store.describe());
        print!("{}", render::findings(&p.findings));
        print!("{}", render::checked(&p.checked));
    }
    Ok(if p.checked.aborted.is_some() { super::EXIT_INVALID } else { 0 })
}

/// The store faults `SEMANTOS_FAULT` asks for. Only a build with the `fault-injection` feature
/// (the test suite's, scripts/test.sh) reads the variable: in a default build no environment can
/// make the binary fail its writes or SIGKILL itself mid-apply.
fn faults() -> Result<Vec<Fault>> {
    let spec = if cfg!(feature = "fault-injection") { std::env::var("SEMANTOS_FAULT").ok() } else { None };
    faults_from(spec.as_deref())
}

/// Parses a `SEMANTOS_FAULT` value (comma-separated faults; empty or absent: none).
fn faults_from(spec: Option<&str>) -> Result<Vec<Fault>> {
    match spec {
        Some(spec) if !spec.is_empty() => spec.split(',').map(|s| Fault::parse(s.trim()).map_err(|e| invalid(format!("SEMANTOS_FAULT: {e}")))).collect(),
        _ => Ok(Vec::new()),
    }
}

fn require_root(store: &TreeStore, what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if store.root().starts_with("/proc") && euid != 0 {
        return Err(anyhow::Error::new(super::CliError {
            code: EXIT_FAILED,
            message: format!("{what} needs root: writing {} requires root (CAP_SYS_ADMIN / CAP_NET_ADMIN); re-run with sudo. Nothing was written.", store.root().display()),
        }));
    }
    Ok(())
}

/// The health command's limit: `--health-timeout`, else the policy's `health_timeout_seconds`.
fn health_timeout(cli: &Cli, pol: &Policy) -> Result<Duration> {
    let s = cli.host.health_timeout.unwrap_or(pol.health_timeout_seconds);
    if !(s.is_finite() && s > 0.0 && s <= 86400.0) {
        return Err(invalid(format!("--health-timeout {s} is invalid; use seconds in (0, 86400] (the default is {})", crate::safety::policy::DEFAULT_HEALTH_TIMEOUT_S)));
    }
    Ok(Duration::from_secs_f64(s))
}

/// `semantos --applier sysctl --apply` / `semantos apply`.
/// A fleet resuming rollout `id` on this host: when the unfinished run the journal shows is this
/// rollout's own interrupted attempt, undo only what it wrote (from its journal) so the apply can
/// start afresh. The fleet used to restore the whole backup here, which also undid an earlier
/// rollout's values; another run's leftovers still refuse the apply (see `pending_run`).
fn finish_own_interrupted(cli: &Cli, kb: &Kb, tree: &TreeStore, id: &str) -> Result<()> {
    let p = paths(cli);
    let Some(entries) = apply::journal::pending(&p.journal)? else { return Ok(()) };
    let ours = entries.iter().any(|e| matches!(e, apply::journal::Entry::Begin { rollout_id: Some(r), .. } if r == id));
    if !ours {
        return Ok(());
    }
    let given = cli.host.policy.is_some();
    let pol = if given { policy(cli)? } else { safety::Policy { whitelist: vec!["*".into()], ..Policy::default() } };
    let store = FaultyStore::new(guarded(tree.clone(), kb, &pol), faults()?);
    let now = now_ms();
    let opts = apply::RollbackOptions { force: cli.host.force, run_id: format!("undo-{}-{}", now / 1000, std::process::id()), now_s: now / 1000, policy: given.then_some(&pol) };
    let r = apply::rollout_undo::rollback_rollout(&store, kb, &p, &HostIdentity::read(tree.root()), id, &opts, &AuditLog::to(&cli.out.audit_log))?;
    eprintln!("semantos: finished the interrupted apply of rollout {id} here by undoing its {} partial write(s); applying afresh", r.restored.len());
    Ok(())
}

pub fn apply(cli: &Cli, t: Option<&TelemetryArgs>) -> Result<i32> {
    let kb = load_kb(cli)?;
    if let Some(id) = &cli.host.rollout_id {
        apply::fence::validate_id(id).map_err(|e| invalid(format!("--rollout-id: {e:#}")))?;
    }
    let tree = store(cli);
    require_root(&tree, "apply")?;
    if let Some(id) = &cli.host.rollout_id {
        finish_own_interrupted(cli, &kb, &tree, id)?;
    }
    // An interrupted run must be rolled back first; a live one holds the lock.
    if let Some(msg) = apply::pending_run(&paths(cli))? {
        return Err(anyhow::anyhow!("refusing to apply: {msg}"));
    }
    let pol = policy(cli)?;
    let health_limit = health_timeout(cli, &pol)?;
    let p = propose(cli, t, &kb, &tree)?;
    if let Some(why) = &p.checked.aborted {
        if !cli.json {
            print!("{}", render::checked(&p.checked));
        }
        return Err(invalid(format!("the guardrails rejected the plan; nothing was written:\n{why}")));
    }
    let writes = p.checked.writes();
    let for_host = p.checked.refused_for_scope();
    if writes.is_empty() && !for_host.is_empty() {
        // The plan asked for keys that can only be set on the host: say so with an error, not "nothing to apply".
        if !cli.json {
            print!("{}", render::checked(&p.checked));
        }
        let keys = for_host.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ");
        return Err(apply::Refused(format!("refusing to apply: {keys} cannot be written from this network namespace; nothing was written. Run `semantos apply --plan {}` on the host (initial namespace)", host_plan_path(cli).display())).into());
    }
    if writes.is_empty() {
        if cli.json {
            super::output::print("apply", &serde_json::json!({ "outcome": "nothing_to_do", "checked": p.checked }))?;
        } else {
            print!("{}", render::checked(&p.checked));
            println!("Nothing to apply.");
        }
        return Ok(0);
    }
    let store = FaultyStore::new(guarded(tree.clone(), &kb, &pol), faults()?);
    let window = Duration::from_secs_f64(cli.host.monitor_seconds.unwrap_or(pol.monitor_seconds).clamp(0.0, 86400.0));
    let mut monitor = LiveMonitor::new(ProcReader::with_roots(&cli.host.proc_root, "/sys"), &kb, window, cli.host.health_cmd.clone(), p.findings.clone(), pol.monitor_new_symptoms, pol.monitor_worsening_factor)
        .with_health_timeout(health_limit);
    let now = now_ms();
    let opts = ApplyOptions {
        paths: paths(cli),
        batch_size: pol.batch_size,
        on_regression: OnRegression::RollbackAll,
        persist: cli.host.persist.clone(),
        run_id: format!("apply-{}-{}", now / 1000, std::process::id()),
        now_s: now / 1000,
        force: cli.host.force,
        rollout_id: cli.host.rollout_id.clone(),
    };
    let host = HostIdentity::read(tree.root());
    let mut shown = super::progress::Shown::new(&mut monitor, window);
    let receipt = apply::apply(&store, &kb, &writes, serde_json::to_value(&p.checked)?, &host, &opts, Some(&mut shown), &AuditLog::to(&cli.out.audit_log))?;
    if cli.json {
        super::output::print("apply", &receipt)?;
    } else {
        print!("{}", render::checked(&p.checked));
        print!("{}", render::receipt(&receipt));
        println!("backup: {}", cli.out.backup.display());
    }
    Ok(if receipt.outcome == Outcome::Committed { 0 } else { EXIT_FAILED })
}

/// `semantos --applier sysctl --rollback` / `semantos rollback`.
pub fn rollback(cli: &Cli, which: &RollbackArgs) -> Result<i32> {
    let kb = load_kb(cli)?;
    if let Some(id) = &cli.host.fence_rollout {
        apply::fence::validate_id(id).map_err(|e| invalid(format!("--fence-rollout: {e:#}")))?;
    }
    let tree = store(cli);
    require_root(&tree, "rollback")?;
    if let Some(id) = &cli.host.fence_rollout {
        // Before restoring: an apply of this rollout that arrives later must find the fence.
        apply::fence::fence(&paths(cli), id)?;
    }
    let host = HostIdentity::read(tree.root());
    // The backup's keys pass the same checks as a plan's, again at the moment of writing: the KB's
    // always, a policy's whitelist and never_touch when one is given. Without --policy the built-in
    // whitelist is not applied: it would strand a value an apply under a site policy changed.
    let given = cli.host.policy.is_some();
    let pol = if given { policy(cli)? } else { safety::Policy { whitelist: vec!["*".into()], ..Policy::default() } };
    let store = FaultyStore::new(guarded(tree.clone(), &kb, &pol), faults()?);
    let now = now_ms();
    let opts = apply::RollbackOptions { force: cli.host.force, run_id: format!("rollback-{}-{}", now / 1000, std::process::id()), now_s: now / 1000, policy: given.then_some(&pol) };
    let layer = match (&which.run, which.last) {
        (Some(id), _) => Some(apply::rollback::Layer::Run(id.clone())),
        (None, true) => Some(apply::rollback::Layer::Last),
        (None, false) => None,
    };
    let audit = AuditLog::to(&cli.out.audit_log);
    let r = match &layer {
        Some(l) => apply::rollback_layer(&store, &kb, &paths(cli), &host, l, &opts, &audit)?,
        None => match &cli.host.fence_rollout {
            // A fleet's final restore of one rollout undoes that rollout's changes only, or refuses.
            Some(id) => apply::rollout_undo::rollback_rollout(&store, &kb, &paths(cli), &host, id, &opts, &audit)?,
            None => apply::rollback_with(&store, &kb, &paths(cli), &host, &opts, &audit)?,
        },
    };
    for d in &r.drift {
        eprintln!("semantos: warning: changed since by someone else (restored anyway with --force): {d}");
    }
    if let Some(why) = &r.dropin_left {
        eprintln!("semantos: warning: {why}");
    }
    if cli.json {
        super::output::print("rollback", &r)?;
    } else if let Some(id) = cli.host.fence_rollout.as_ref().filter(|_| r.restored.is_empty()) {
        // Not "already restored": there may be no backup at all, or only other rollouts' layers.
        eprintln!("semantos: nothing to roll back for rollout {id} on this host (no committed change of it in {}); it is fenced here, so a late apply of it is refused", cli.out.backup.display());
    } else if r.already_restored {
        println!("Nothing to do: the backup {} was already restored.", cli.out.backup.display());
    } else {
        println!("Restored and verified {} key(s) from {}:", r.restored.len(), cli.out.backup.display());
        for (k, was, orig) in &r.restored {
            println!("  {k}: {} → {orig}", was.as_deref().unwrap_or("(absent)"));
        }
        if let Some(d) = &r.removed_dropin {
            println!("removed drop-in {d}");
        }
        for d in &r.restored_dropins {
            println!("put back the earlier content of drop-in {d}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod fault_tests {
    use super::*;

    #[test]
    fn semantos_fault_values_parse_or_name_the_variable() {
        // Parsing only: whether the binary reads the variable at all is checked on the binary
        // (tests/integration/monitor.rs, semantos_fault_is_obeyed_only_by_a_fault_injection_build).
        assert_eq!(faults_from(Some("kill-before#1, write#2:EIO")).unwrap(), vec![Fault::KillBeforeWrite { nth: 1 }, Fault::FailWrite { nth: 2, errno: libc::EIO }]);
        assert!(faults_from(Some("explode")).unwrap_err().to_string().contains("SEMANTOS_FAULT"));
        assert_eq!(faults_from(Some("")).unwrap(), vec![]);
    }
}
