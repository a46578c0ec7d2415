//! The service's lifecycle: enter the namespace, take the one-agent lock, roll back a killed
//! agent's in-flight change, then sample on the interval until SIGTERM/SIGINT, and on the way out
//! keep or roll back what it applied (`on_exit`). Each tick reads one sample into the window; each
//! full window re-reads the settings, checks the managed keys for drift, goes to `decide` and, in
//! apply mode, to `act`, and refreshes the metrics (docs/agent.md, "Cost": what is read when). One `tracing` line per decision, with its advice ID.

use super::act::Actor;
use super::advice;
use super::calm::Transition;
use super::config::{AgentConfig, Mode, OnExit};
use super::decide::{Diagnosis, Verdicts};
use super::sampler::{self, Sampler};
use super::selfstat::SelfStat;
use super::window::Compact;
use super::state::{Files, now_ms};
use crate::apply::lock::Lock;
use crate::kb::Kb;
use crate::metrics::AgentMetrics;
use crate::telemetry::Snapshot;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How the service ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The signal that stopped it.
    pub signal: String,
    /// Keys put back on exit (`on_exit: rollback`).
    pub restored: Vec<String>,
    /// Managed keys another writer changed, left at its value on exit (`on_exit: rollback`).
    pub left: Vec<String>,
}

/// Runs the agent until a signal; `metrics` is refreshed every sample for whoever publishes it.
/// The KB is the agent's one copy, shared with its actor (~600 KB each copy was a third of its heap).
pub fn run(cfg: &AgentConfig, files: &Files, kb: Kb, metrics: Arc<Mutex<AgentMetrics>>) -> Result<Ended> {
    let kb = Arc::new(kb);
    let kb = &kb;
    // Bound before entering the namespace: the endpoint is the host's, where Prometheus scrapes.
    let _server = match cfg.metrics_addr {
        Some(addr) => {
            let s = crate::metrics::serve(addr, metrics.clone()).map_err(|e| anyhow::anyhow!("{e}; set metrics_addr: or --metrics-addr to a free address"))?;
            tracing::info!(addr = %s.local_addr(), "metrics at http://{}/metrics", s.local_addr());
            Some(s)
        }
        None => None,
    };
    if let Some(ns) = &cfg.netns {
        // The whole agent moves (this thread, before any other exists): /proc/net, sock_diag and
        // /proc/sys/net then all show the namespace, and files kept open stay its.
        crate::sysctl::netns::check(ns)?;
        crate::sysctl::netns::enter(ns)?;
    }
    std::fs::create_dir_all(&files.dir).with_context(|| format!("creating the agent's state directory {}; set state_dir: or --state-dir to a writable directory", files.dir.display()))?;
    let _lock = Lock::acquire(&files.lock).map_err(|e| anyhow::anyhow!("{e:#}: one agent per host (state directory {}); stop the other one (systemctl stop semantos-agent) or give this one another --state-dir", files.dir.display()))?;
    super::signals::install();
    let mut actor = Actor::open(cfg, files, kb)?;
    let enabled: Vec<String> = kb.symptoms.keys().filter(|s| cfg.symptom_enabled(s)).cloned().collect();
    let needs = sampler::needs(kb, &enabled);
    // In KB order, as `diagnose` lists its findings.
    let symptoms: Vec<&crate::kb::entry::Symptom> = kb.symptoms.values().filter(|s| cfg.symptom_enabled(&s.id)).collect();
    let mut sampler = Sampler::open(&cfg.proc_root, cfg.store(), &needs, cfg.ebpf, cfg.scan_every)?;
    let mut advice = advice::Store::open(&files.advice)?;
    let mut diagnosis = Diagnosis::new(cfg);
    tracing::info!(mode = cfg.mode.name(), config = %cfg.source, state_dir = %files.dir.display(), interval_s = cfg.interval.as_secs_f64(), netns = cfg.netns.as_deref().unwrap_or("-"), "agent started");
    if let (Mode::Apply, Some(o)) = (cfg.mode, &cfg.objective) {
        tracing::info!(objective = %o.describe(), "apply mode: each change set is one trial measured against the values before; kept only when the objective improves with an interval excluding zero, after a {} s dwell and within {} change sets a day", cfg.min_dwell.as_secs(), cfg.daily_change_budget);
    }
    // The window holds what the symptoms read, as numbers; the full snapshots at its ends are kept
    // for the advice (one copy a window) while a symptom is open or on its way.
    let mut window = Compact::new(&needs.signals);
    let mut start: Option<Snapshot> = None;
    let mut episode: BTreeSet<String> = BTreeSet::new();
    let mut samples = 0u64;
    let selfstat = SelfStat::open(std::path::Path::new("/proc/self"));
    let mut saved = actor.state().clone();
    let released = super::selfstat::release_startup_memory();
    tracing::debug!(bytes = released, "start-up memory given back");
    publish(cfg, &metrics, &diagnosis, &advice, &episode, &actor, &selfstat);
    let signal = loop {
        if let Some(s) = super::signals::received() {
            // Counts not written yet (advice::COUNTS_EVERY) are written on the way out.
            advice.flush()?;
            break s.to_string();
        }
        let t0 = Instant::now();
        let t_ms = now_ms();
        // Consecutive windows share their end sample: the window ends at its `cfg.window`th.
        let end = window.len() + 1 >= cfg.window;
        sampler.sample(t_ms, end)?;
        window.push(t_ms, sampler.host(), &sampler.maps());
        if samples == 0 && diagnosis.may_advise(cfg) {
            start = Some(sampler.snapshot()?);
        }
        samples += 1;
        if end {
            // The settings read at this end stand for the window's samples.
            window.hold(sampler::is_setting);
            // Once a window, not each sample: drift of the managed keys (found within a window,
            // 4 s at the defaults) and the agent's own figures.
            actor.check_drift(&mut advice);
            let b = diagnosis.may_advise(cfg).then(|| sampler.snapshot()).transpose()?;
            let v = diagnosis.window(cfg, kb, &window, (start.as_ref(), b.as_ref()), &cfg.store(), &symptoms);
            report(&v, &mut advice, &mut episode, &mut actor);
            if cfg.mode == Mode::Apply {
                actor.act(&v, &diagnosis.open(), &mut advice);
            }
            advice.save()?;
            // The state file is rewritten when it changed, not every window.
            if actor.state() != &saved {
                actor.save()?;
                saved = actor.state().clone();
            }
            publish(cfg, &metrics, &diagnosis, &advice, &episode, &actor, &selfstat);
            textfile(cfg, &metrics);
            window.keep_last();
            start = if diagnosis.may_advise(cfg) { b.map(Ok).unwrap_or_else(|| sampler.snapshot()).map(Some)? } else { None };
        }
        tick(&metrics, samples, t0);
        super::signals::sleep(cfg.interval.saturating_sub(t0.elapsed()));
    };
    let back = if cfg.on_exit == OnExit::Rollback { actor.restore_on_exit(&format!("on_exit: rollback ({signal})"))? } else { Default::default() };
    advice.save()?;
    actor.save()?;
    tracing::info!(signal = %signal, on_exit = ?cfg.on_exit, restored = back.restored.len(), left = back.left.len(), managed = actor.state().managed.len(), "agent stopped");
    Ok(Ended { signal, restored: back.restored, left: back.left })
}

/// Logs the window's transitions and advice: a piece of advice is logged when it is new to the
/// store or first seen again in this episode (its symptom closed in between), never on repeats.
fn report(v: &Verdicts, store: &mut advice::Store, episode: &mut BTreeSet<String>, actor: &mut Actor) {
    for t in &v.transitions {
        match t {
            Transition::Opened(s) => tracing::info!(symptom = %s, "symptom opened (held for open_after windows)"),
            Transition::Closed(s) => {
                tracing::info!(symptom = %s, "symptom closed (clear for close_after windows)");
                episode.retain(|id| store.advice.get(id).is_none_or(|r| !r.symptom.split(',').any(|x| x == s)));
            }
        }
    }
    for s in &v.workload_changes {
        actor.workload_changed(s);
    }
    let now = now_ms();
    for a in &v.advice {
        let new = store.seen(&a.id, a.record.clone(), now);
        if episode.insert(a.id.clone()) || new {
            let r = &a.record;
            tracing::info!(advice_id = %a.id, symptom = %r.symptom, key = %r.key, proposal = %r.proposal, verdict = %r.verdict, first = new, "advice");
        }
    }
}

/// Rewrites the node_exporter textfile, when configured; a failure is logged, not fatal.
fn textfile(cfg: &AgentConfig, m: &Mutex<AgentMetrics>) {
    let (Some(path), Ok(m)) = (&cfg.textfile, m.lock()) else { return };
    if let Err(e) = crate::metrics::write_textfile(path, &m) {
        tracing::warn!("textfile {}: {e}", path.display());
    }
}

/// Counts a sample in the published metrics (each sample: no allocation, no read).
fn tick(m: &Mutex<AgentMetrics>, samples: u64, t0: Instant) {
    if let Ok(mut m) = m.lock() {
        m.samples_total = samples;
        m.last_sample_seconds = t0.elapsed().as_secs_f64();
    }
}

/// Refreshes the published metrics, once a window (the samples' count and latency: `tick`).
fn publish(cfg: &AgentConfig, m: &Mutex<AgentMetrics>, d: &Diagnosis, store: &advice::Store, episode: &BTreeSet<String>, actor: &Actor, selfstat: &SelfStat) {
    let (cpu, rss) = selfstat.read();
    let advice = episode.iter().filter_map(|id| store.advice.get(id).map(|r| crate::metrics::Advice { id: id.clone(), symptom: r.symptom.clone(), key: r.key.clone(), count: r.count })).collect();
    let s = actor.state();
    let Ok(mut m) = m.lock() else { return };
    *m = AgentMetrics {
        mode: cfg.mode.name().into(),
        findings: d.open().into_iter().collect(),
        advice,
        changes_applied_total: s.changes_applied_total,
        changes_rolled_back_total: s.changes_rolled_back_total,
        managed: actor.managed_live(),
        drift_total: s.drift_total,
        workload_changes_total: s.workload_changes_total,
        conflicts: actor.conflicts().to_vec(),
        samples_total: m.samples_total,
        cpu_seconds_total: cpu,
        rss_bytes: rss,
        last_sample_seconds: m.last_sample_seconds,
        advice_held_back: actor.held_back_now(),
        advice_rolled_back_by_measurement_total: s.advice_rolled_back_by_measurement_total,
    };
}
