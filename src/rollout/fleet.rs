//! The fleet controller: waves, gates and fleet-wide rollback, the same
//! code for every engine that can work one host at a time (`Remote`).
//!
//! For each wave, every host (at most `parallel` at once) is read, then
//! asked to apply the plan transactionally; when all have, the wave's gate
//! reads every host again (the written values must still be there) and runs
//! the health command. A wave passes only if every host in it succeeded and
//! stayed healthy. Otherwise that wave and every earlier wave are restored,
//! later waves are never touched, and the rollout ends `Failed`.
//!
//! Every transition is written to the state file before the step it
//! announces (`Applying` before the first byte is sent), so a controller
//! killed anywhere can be resumed (`resume`) or undone (`rollback_fleet`).

use super::inventory::Host;
use super::state::{HostState, Phase, RolloutState, StateFile, Status, Values};
use crate::sysctl::SysctlKey;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How a step on a host failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The host could not be reached (nothing was done by this step).
    Unreachable,
    /// The step passed the host timeout.
    TimedOut,
    /// Another semantos run holds the host's lock: try again shortly.
    Busy,
    /// The host has an unfinished transaction from an interrupted run.
    Interrupted,
    /// The host's guardrails rejected the plan (nothing written).
    Refused,
    /// The health command failed, or a written value did not stay.
    Unhealthy,
    /// Anything else: the message says what.
    Failed,
}

/// A failed step on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// Kind.
    pub kind: Failure,
    /// What happened, naming the host.
    pub message: String,
}

impl HostError {
    /// Shorthand.
    pub fn new(kind: Failure, message: impl Into<String>) -> HostError {
        HostError { kind, message: message.into() }
    }
}

/// What a host reported after applying the plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The plan changed nothing there.
    pub unchanged: bool,
    /// Key → value written and kept.
    pub written: BTreeMap<String, String>,
    /// The host's own words (monitor verdicts).
    pub detail: String,
}

/// What a host reported after a restore.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restored {
    /// (key, value found, original restored).
    pub restored: Vec<(String, Option<String>, String)>,
    /// Nothing needed restoring (no backup, or already restored).
    pub nothing_to_do: bool,
}

/// One host's side of a rollout: the work an engine does on a single host.
pub trait Remote: Sync {
    /// Connects and gets the host ready (working directory, policy upload).
    fn prepare(&self, host: &Host) -> Result<(), HostError>;
    /// Current values of `keys` on the host.
    fn read(&self, host: &Host, keys: &[SysctlKey]) -> Result<Values, HostError>;
    /// Applies `plan_json` transactionally on the host (backup, journal, read-back, monitor).
    fn apply(&self, host: &Host, plan_json: &str) -> Result<Applied, HostError>;
    /// Runs the health check on the host; `Err(Unhealthy)` when it fails.
    fn health(&self, host: &Host) -> Result<(), HostError>;
    /// Restores the host from its backup. With `fence`, this rollout is over on the host: an
    /// apply of it still in flight (from a controller that died) must be refused when it
    /// arrives; without, the controller restores only to apply again.
    fn rollback(&self, host: &Host, fence: bool) -> Result<Restored, HostError>;
    /// `prepare` then `read`; an engine may do both in one round trip.
    fn prepare_and_read(&self, host: &Host, keys: &[SysctlKey]) -> Result<Values, HostError> {
        self.prepare(host)?;
        self.read(host, keys)
    }
    /// `read` then `health` (the wave gate); an engine may do both in one round trip.
    fn read_and_check_health(&self, host: &Host, keys: &[SysctlKey]) -> Result<(Values, Result<(), HostError>), HostError> {
        let v = self.read(host, keys)?;
        Ok((v, self.health(host)))
    }
}

/// Runs `f(i)` for every index, at most `parallel` at once.
pub fn for_each_parallel(indices: &[usize], parallel: usize, f: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    let workers = parallel.clamp(1, indices.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&i) = indices.get(n) else { break };
                    f(i);
                }
            });
        }
    });
}

/// The controller of one rollout.
pub struct Controller<'a> {
    /// The engine.
    pub remote: &'a dyn Remote,
    /// The state file.
    pub state: &'a StateFile,
    /// Progress lines (to stderr in the CLI).
    pub log: &'a (dyn Fn(String) + Sync),
}

impl Controller<'_> {
    fn settings(&self) -> (usize, Duration) {
        let s = self.state.snapshot();
        (s.settings.parallel, Duration::from_secs_f64(s.settings.host_timeout_s))
    }

    fn keys(&self) -> Vec<SysctlKey> {
        self.state.snapshot().keys.iter().filter_map(|k| SysctlKey::parse(k).ok()).collect()
    }

    /// Runs (or resumes) the waves until every wave passed or one failed and was restored.
    pub fn run(&self) -> Result<Status> {
        let s = self.state.snapshot();
        match s.status {
            Status::RollingBack | Status::NeedsAttention => {
                // A controller died while restoring: finish the restore, never re-apply.
                return match s.failed_wave {
                    Some(w) => self.stop(w, None),
                    None => self.rollback_fleet(),
                };
            }
            st if st.finished() => return Ok(st),
            _ => {}
        }
        self.state.update(|s| s.status = Status::Running)?;
        let waves = s.wave_count();
        for w in 0..waves {
            let todo: Vec<usize> = self.state.snapshot().wave(w).into_iter().filter(|&i| !matches!(self.state.snapshot().hosts[i].phase, Phase::Committed | Phase::Unchanged)).collect();
            if todo.is_empty() {
                continue;
            }
            // A failure recorded before the controller died is final: restore, never retry it into passing.
            if let Some(why) = self.first_failure_recorded(w) {
                return self.stop(w, Some(why));
            }
            self.state.update(|s| s.current_wave = Some(w))?;
            (self.log)(format!("wave {}/{waves}: {} host(s): {}", w + 1, todo.len(), todo.iter().map(|&i| s.hosts[i].host.name.clone()).collect::<Vec<_>>().join(", ")));
            let (parallel, _) = self.settings();
            for_each_parallel(&todo, parallel, |i| self.apply_host(i));
            let all: Vec<usize> = self.state.snapshot().wave(w);
            if self.first_failure(&all).is_none() {
                // The gate: every host of the wave still holds its values and is healthy.
                for_each_parallel(&all, parallel, |i| self.gate_host(i));
            }
            if let Some(why) = self.first_failure(&all) {
                (self.log)(format!("wave {}/{waves} failed at {why}", w + 1));
                return self.stop(w, Some(why));
            }
            self.state.update(|s| {
                for i in s.wave(w) {
                    if s.hosts[i].phase == Phase::Applied {
                        s.hosts[i].phase = Phase::Committed;
                    }
                }
            })?;
            (self.log)(format!("wave {}/{waves} passed", w + 1));
        }
        self.state.update(|s| {
            s.status = Status::Passed;
            s.current_wave = None;
        })?;
        Ok(Status::Passed)
    }

    /// The first host of `wave` that did not pass, as `host: VERDICT` (its row holds the whole reason).
    fn first_failure(&self, wave: &[usize]) -> Option<String> {
        let s = self.state.snapshot();
        wave.iter().map(|&i| &s.hosts[i]).find(|h| !matches!(h.phase, Phase::Applied | Phase::Committed | Phase::Unchanged)).map(|h| format!("{}: {}", h.host.name, h.phase.label()))
    }

    fn first_failure_recorded(&self, w: usize) -> Option<String> {
        let s = self.state.snapshot();
        s.wave(w).into_iter().map(|i| &s.hosts[i]).find(|h| matches!(h.phase, Phase::Failed | Phase::Unreachable | Phase::TimedOut)).map(|h| format!("{}: {}", h.host.name, h.phase.label()))
    }

    fn fail(&self, i: usize, e: &HostError, started: Instant) {
        let phase = match e.kind {
            Failure::Unreachable => Phase::Unreachable,
            Failure::TimedOut => Phase::TimedOut,
            _ => Phase::Failed,
        };
        let _ = self.state.host(i, |h| {
            h.phase = phase;
            h.reason = e.message.clone();
            h.seconds = started.elapsed().as_secs_f64();
        });
        (self.log)(format!("  {}: {} {}", self.state.snapshot().hosts[i].host.name, phase.label(), e.message));
    }

    /// Calls `f` until it stops answering `Busy` or `timeout` passes.
    fn retry_busy<T>(&self, timeout: Duration, mut f: impl FnMut() -> Result<T, HostError>) -> Result<T, HostError> {
        let deadline = Instant::now() + timeout;
        loop {
            match f() {
                Err(e) if e.kind == Failure::Busy && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
                Err(e) if e.kind == Failure::Busy => return Err(HostError::new(Failure::TimedOut, format!("{} (still busy after {:.0} s)", e.message, timeout.as_secs_f64()))),
                other => return other,
            }
        }
    }

    fn apply_host(&self, i: usize) {
        let started = Instant::now();
        let snap = self.state.snapshot();
        let hs = snap.hosts[i].clone();
        let host = &hs.host;
        let (_, timeout) = self.settings();
        let keys = self.keys();
        // Nothing is written by prepare and read: a failure here leaves the host untouched.
        let before = match self.remote.prepare_and_read(host, &keys) {
            Ok(v) => v,
            Err(e) => return self.fail(i, &e, started),
        };
        // A resumed host keeps the values read before its first write.
        let was_touched = hs.touched;
        if self
            .state
            .host(i, |h| {
                h.before.get_or_insert(before);
                h.phase = Phase::Applying;
                h.touched = true;
                h.reason.clear();
            })
            .is_err()
        {
            return self.fail(i, &HostError::new(Failure::Failed, "cannot write the state file; not applying"), started);
        }
        let plan = serde_json::to_string(&snap.plan).expect("plans serialise");
        let mut result = self.retry_busy(timeout, || self.remote.apply(host, &plan));
        if let Err(e) = &mut result
            && e.kind == Failure::Interrupted
        {
            // The host's apply undoes this rollout's own interrupted attempt by itself (from its
            // journal), so what is left is another run's: restoring the whole backup here would
            // also undo the other rollouts' values. The host stays as it is, and says why.
            e.message = format!("{}; an unfinished run that is not this rollout's is pending on the host: restore it there (`semantos rollback`) and resume", e.message);
        }
        match result {
            Ok(a) => {
                // A resumed host reporting "unchanged" most likely holds the values its interrupted
                // apply wrote: it counts as applied by this rollout, and the gate checks the plan's values.
                let resumed = a.unchanged && was_touched;
                let phase = if a.unchanged && !resumed { Phase::Unchanged } else { Phase::Applied };
                let planned: BTreeMap<String, String> = snap.plan.changes.iter().map(|c| (c.key.clone(), c.to.clone())).collect();
                let _ = self.state.host(i, |h| {
                    h.phase = phase;
                    if a.unchanged && !resumed {
                        // Nothing of this rollout is on the host: a fleet rollback must not
                        // restore an older backup there.
                        h.touched = false;
                    }
                    h.written = if resumed { planned } else { a.written.clone() };
                    h.reason = if resumed { "applied by the interrupted attempt; values verified by the gate".into() } else { a.detail.clone() };
                    h.seconds = started.elapsed().as_secs_f64();
                });
                (self.log)(format!("  {}: {} ({} key(s)) in {:.2} s", host.name, phase.label(), a.written.len(), started.elapsed().as_secs_f64()));
            }
            Err(e) => self.fail(i, &e, started),
        }
    }

    fn gate_host(&self, i: usize) {
        let started = Instant::now();
        let hs = self.state.snapshot().hosts[i].clone();
        let keys = self.keys();
        let check = || -> Result<Values, HostError> {
            let (after, health) = self.remote.read_and_check_health(&hs.host, &keys)?;
            for (k, want) in &hs.written {
                let got = after.get(k).cloned().flatten();
                if got.as_deref().map(crate::sysctl::Value::from_kernel) != Some(crate::sysctl::Value::from_kernel(want)) {
                    return Err(HostError::new(Failure::Unhealthy, format!("{k} reads {} after the wave, but {want} was written and verified (something changed it back)", got.as_deref().unwrap_or("(absent)"))));
                }
            }
            health?;
            Ok(after)
        };
        match check() {
            Ok(after) => {
                let _ = self.state.host(i, |h| h.after = Some(after));
            }
            Err(e) => self.fail(i, &HostError::new(e.kind, format!("wave gate: {}", e.message)), started),
        }
    }

    /// Restores wave `w` and every earlier wave; later waves are marked untouched.
    fn stop(&self, w: usize, why: Option<String>) -> Result<Status> {
        let why = why.or_else(|| self.state.snapshot().hosts.iter().find(|h| h.wave <= w && matches!(h.phase, Phase::Failed | Phase::Unreachable | Phase::TimedOut)).map(|h| format!("{}: {}", h.host.name, h.phase.label()))).unwrap_or_default();
        self.state.update(|s| {
            s.status = Status::RollingBack;
            s.failed_wave = Some(w);
            for h in s.hosts.iter_mut().filter(|h| h.wave > w && h.phase == Phase::Pending) {
                h.phase = Phase::Untouched;
                h.reason = format!("never touched: wave {} failed", w + 1);
            }
        })?;
        let s = self.state.snapshot();
        let targets: Vec<usize> = (0..s.hosts.len()).filter(|&i| s.hosts[i].wave <= w && s.hosts[i].touched).collect();
        (self.log)(format!("restoring {} host(s) of waves 1..={}", targets.len(), w + 1));
        let reason = format!("wave {} failed ({why})", w + 1);
        let (parallel, _) = self.settings();
        for_each_parallel(&targets, parallel, |i| self.restore_host(i, &reason));
        let status = if self.state.snapshot().hosts.iter().any(|h| h.phase == Phase::RollbackFailed) { Status::NeedsAttention } else { Status::Failed };
        self.state.update(|s| s.status = status)?;
        Ok(status)
    }

    /// Restores every host the rollout touched (`--rollback-fleet`).
    pub fn rollback_fleet(&self) -> Result<Status> {
        self.state.update(|s| {
            s.status = Status::RollingBack;
            for h in s.hosts.iter_mut().filter(|h| h.phase == Phase::Pending) {
                h.phase = Phase::Untouched;
                h.reason = "never touched: the rollout was rolled back".into();
            }
        })?;
        let s = self.state.snapshot();
        let targets: Vec<usize> = (0..s.hosts.len()).filter(|&i| s.hosts[i].touched).collect();
        (self.log)(format!("rolling back {} touched host(s)", targets.len()));
        let (parallel, _) = self.settings();
        for_each_parallel(&targets, parallel, |i| self.restore_host(i, "rolled back with --rollback-fleet"));
        let status = if self.state.snapshot().hosts.iter().any(|h| h.phase == Phase::RollbackFailed) { Status::NeedsAttention } else { Status::RolledBack };
        self.state.update(|s| s.status = status)?;
        Ok(status)
    }

    fn restore_host(&self, i: usize, reason: &str) {
        let started = Instant::now();
        let hs = self.state.snapshot().hosts[i].clone();
        let (_, timeout) = self.settings();
        // A host that failed keeps its own verdict; the reason says it was restored.
        let culprit = matches!(hs.phase, Phase::Failed | Phase::Unreachable | Phase::TimedOut);
        let _ = self.state.host(i, |h| {
            if !culprit {
                h.phase = Phase::RollingBack;
            }
        });
        let result = self.retry_busy(timeout, || self.remote.rollback(&hs.host, true));
        let after = self.remote.read(&hs.host, &self.keys()).ok();
        let _ = self.state.host(i, |h| {
            h.seconds = started.elapsed().as_secs_f64();
            if after.is_some() {
                h.after = after;
            }
            match &result {
                Ok(r) => {
                    let what = if r.nothing_to_do { "nothing needed restoring".to_string() } else { format!("{} key(s) restored", r.restored.len()) };
                    if culprit {
                        h.reason = format!("{}; restored on the host ({what})", h.reason);
                    } else {
                        h.phase = Phase::RolledBack;
                        h.reason = format!("{reason}; {what}");
                    }
                }
                Err(e) => {
                    h.phase = Phase::RollbackFailed;
                    h.reason = format!("{}{}restore failed: {} — re-run `semantos rollout --rollback-fleet` or run `semantos rollback` on the host", if culprit { &h.reason } else { "" }, if culprit { "; " } else { "" }, e.message);
                }
            }
        });
        let h = &self.state.snapshot().hosts[i];
        (self.log)(format!("  {}: {} {}", h.host.name, h.phase.label(), h.reason));
    }
}

/// One row of the per-host report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRow {
    /// Host name.
    pub host: String,
    /// 1-based wave.
    pub wave: usize,
    /// Values before.
    pub before: Values,
    /// Values after.
    pub after: Values,
    /// Verdict.
    pub verdict: Phase,
    /// Why.
    pub reason: String,
}

/// The report of a rollout (`--json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Format version.
    pub schema_version: u32,
    /// Rollout id.
    pub run_id: String,
    /// Overall status.
    pub status: Status,
    /// 1-based failed wave.
    pub failed_wave: Option<usize>,
    /// Keys in plan order.
    pub keys: Vec<String>,
    /// Hosts of each wave.
    pub waves: Vec<Vec<String>>,
    /// One row per host, wave by wave.
    pub hosts: Vec<HostRow>,
    /// State file.
    pub state_file: String,
}

/// The report of a state.
pub fn report(s: &RolloutState, state_file: &str) -> Report {
    let row = |h: &HostState| HostRow {
        host: h.host.name.clone(),
        wave: h.wave + 1,
        before: h.before.clone().unwrap_or_default(),
        after: h.after.clone().unwrap_or_default(),
        verdict: h.phase,
        reason: h.reason.clone(),
    };
    Report {
        schema_version: 1,
        run_id: s.run_id.clone(),
        status: s.status,
        failed_wave: s.failed_wave.map(|w| w + 1),
        keys: s.keys.clone(),
        waves: (0..s.wave_count()).map(|w| s.wave(w).into_iter().map(|i| s.hosts[i].host.name.clone()).collect()).collect(),
        hosts: s.hosts.iter().map(row).collect(),
        state_file: state_file.to_string(),
    }
}

#[cfg(test)]
mod tests;
