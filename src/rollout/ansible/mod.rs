//! The Ansible engine: Ansible does the waves and the connections, and each
//! host runs `semantos apply --rollout-id ID` itself (`engine_playbook`), so
//! both engines share one transaction, one backup format and one restore.
//!
//! The apply play runs with `serial` equal to our waves and
//! `max_fail_percentage: 0`, so Ansible stops after the first batch with a
//! failed host. On each host it prepares the working directory (binary with
//! `--copy-binary`, KB files, policy) and runs the apply with the plan on
//! standard input, under `timeout --host-timeout`; the apply restores its own
//! writes on any failure, and a failed apply fails the host. The second play
//! (tags `never, rollback`: it runs only with `--tags rollback`) runs
//! `semantos rollback --fence-rollout ID`: that rollout's changes only.
//!
//! `playbook` keeps the standalone playbook of `semantos export ansible`
//! (hosts without semantos: ansible.posix.sysctl and a version-1 backup).
//! Nothing from a plan is templated: keys and values are validated by
//! `precheck` (no `{`, `%`, `$`, quotes), and the plan, policy, KB files and
//! the operator's health command are tagged `!unsafe`.
//!
//! `semantos rollout --engine ansible --run` executes the playbook, reads
//! Ansible's JSON report to find the failed batch, and restores that batch
//! and every earlier one with the rollback play: the same decision as the
//! ssh engine's (a wave passes only if every host in it did).

mod engine_playbook;
mod playbook;
mod run;
#[cfg(test)]
mod tests;

pub use engine_playbook::{EngineOptions, engine_playbook};
pub use playbook::{Batch, PlaybookOptions, config, inventory, playbook};
pub use run::{PlayResult, Workdir, parse_json_report, run_playbook, syntax_check, write_workdir};

pub use super::settings::AnsibleSettings;
use super::fleet::Remote;
use super::ssh::SshEngine;
use super::state::{Phase, StateFile, Status, Values};
use crate::sysctl::SysctlKey;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::time::Duration;

/// Drives a rollout with Ansible: apply play in waves, then the same gate decision as the ssh engine.
pub struct AnsibleRollout<'a> {
    /// Settings.
    pub settings: &'a AnsibleSettings,
    /// Reads values before and after (the ssh engine, same connection settings).
    pub reader: &'a SshEngine,
    /// The state file.
    pub state: &'a StateFile,
    /// The written work directory.
    pub workdir: &'a Workdir,
    /// Progress lines.
    pub log: &'a (dyn Fn(String) + Sync),
}

impl AnsibleRollout<'_> {
    fn timeout(&self) -> Duration {
        let s = self.state.snapshot();
        Duration::from_secs_f64(s.settings.host_timeout_s * (s.wave_count().max(1) as f64) + 60.0)
    }

    fn keys(&self) -> Vec<SysctlKey> {
        self.state.snapshot().keys.iter().filter_map(|k| SysctlKey::parse(k).ok()).collect()
    }

    fn read_all(&self, idx: &[usize]) -> BTreeMap<usize, Option<Values>> {
        let s = self.state.snapshot();
        let keys = self.keys();
        let out = std::sync::Mutex::new(BTreeMap::new());
        super::fleet::for_each_parallel(idx, s.settings.parallel, |i| {
            let v = self.reader.read(&s.hosts[i].host, &keys).ok();
            out.lock().unwrap_or_else(|p| p.into_inner()).insert(i, v);
        });
        out.into_inner().unwrap_or_default()
    }

    /// Runs (or re-runs: every step is idempotent) the apply play, then restores the failed wave and earlier ones.
    pub fn run(&self) -> Result<Status> {
        let s = self.state.snapshot();
        if matches!(s.status, Status::RollingBack | Status::NeedsAttention) {
            return self.restore(s.failed_wave, "finishing an interrupted restore");
        }
        if s.status.finished() {
            return Ok(s.status);
        }
        let all: Vec<usize> = (0..s.hosts.len()).collect();
        let before = self.read_all(&all);
        // Ansible decides which hosts it reaches: every host may be touched from here on.
        self.state.update(|st| {
            st.status = Status::Running;
            for (i, h) in st.hosts.iter_mut().enumerate() {
                if h.before.is_none() {
                    h.before = before.get(&i).cloned().flatten();
                }
                if !matches!(h.phase, Phase::Committed | Phase::Unchanged) {
                    h.phase = Phase::Applying;
                }
                h.touched = true;
            }
        })?;
        (self.log)(format!("ansible-playbook {} (serial {:?})", self.workdir.playbook.display(), (0..s.wave_count()).map(|w| s.wave(w).len()).collect::<Vec<_>>()));
        let r = run_playbook(&self.settings.program, self.workdir, false, &[], self.timeout())?;
        (self.log)(format!("ansible-playbook finished in {:.2} s: {} ok, {} failed", r.seconds, r.ok.len(), r.failed.len()));
        let failed_wave = self.state.update(|st| {
            let mut failed_wave: Option<usize> = None;
            for h in st.hosts.iter_mut() {
                if let Some((unreachable, msg)) = r.failed.get(&h.host.name) {
                    h.phase = if *unreachable { Phase::Unreachable } else { Phase::Failed };
                    h.reason = msg.clone();
                    failed_wave = Some(failed_wave.map_or(h.wave, |w| w.min(h.wave)));
                } else if r.ok.contains(&h.host.name) {
                    h.phase = Phase::Committed;
                    h.written = st.keys.iter().cloned().zip(st.plan.changes.iter().map(|c| c.to.clone())).collect();
                } else if h.phase == Phase::Applying {
                    // Ansible stopped before this host's batch.
                    h.phase = Phase::Untouched;
                    h.touched = false;
                    h.reason = "never touched: an earlier batch failed".into();
                }
            }
            failed_wave
        })?;
        if r.failed.is_empty() && r.code != Some(0) {
            bail!("ansible-playbook exited with {:?} but reported no failed host", r.code);
        }
        match failed_wave {
            None => {
                let after = self.read_all(&all);
                self.state.update(|st| {
                    for (i, h) in st.hosts.iter_mut().enumerate() {
                        h.after = after.get(&i).cloned().flatten();
                    }
                    st.status = Status::Passed;
                })?;
                Ok(Status::Passed)
            }
            Some(w) => {
                self.state.update(|st| {
                    st.failed_wave = Some(w);
                    for h in st.hosts.iter_mut().filter(|h| h.wave > w) {
                        h.phase = Phase::Untouched;
                        h.touched = false;
                        h.reason = format!("never touched: wave {} failed", w + 1);
                    }
                })?;
                self.restore(Some(w), "")
            }
        }
    }

    /// Restores every touched host in waves ≤ `wave` (all touched hosts when `None`) with the rollback play.
    pub fn restore(&self, wave: Option<usize>, why: &str) -> Result<Status> {
        self.state.update(|s| s.status = Status::RollingBack)?;
        let s = self.state.snapshot();
        let idx: Vec<usize> = (0..s.hosts.len()).filter(|&i| s.hosts[i].touched && wave.is_none_or(|w| s.hosts[i].wave <= w)).collect();
        let names: Vec<String> = idx.iter().map(|&i| s.hosts[i].host.name.clone()).collect();
        let culprit = s.hosts.iter().find(|h| matches!(h.phase, Phase::Failed | Phase::Unreachable)).map(|h| format!("{}: {}", h.host.name, h.phase.label())).unwrap_or_else(|| why.to_string());
        (self.log)(format!("rollback play on {} host(s): {}", names.len(), names.join(", ")));
        let r = if names.is_empty() { PlayResult::default() } else { run_playbook(&self.settings.program, self.workdir, true, &names, self.timeout())? };
        let after = self.read_all(&idx);
        let status = self.state.update(|st| {
            for &i in &idx {
                let h = &mut st.hosts[i];
                h.after = after.get(&i).cloned().flatten();
                match r.failed.get(&h.host.name) {
                    Some((_, msg)) => {
                        h.phase = Phase::RollbackFailed;
                        h.reason = format!("{} restore failed: {msg}", if h.reason.is_empty() { String::new() } else { format!("{};", h.reason) });
                    }
                    None if matches!(h.phase, Phase::Failed | Phase::Unreachable) => h.reason = format!("{}; restored on the host", h.reason),
                    None => {
                        h.phase = Phase::RolledBack;
                        h.reason = match wave {
                            Some(w) => format!("wave {} failed ({culprit}); restored", w + 1),
                            None => "rolled back with --rollback-fleet".into(),
                        };
                    }
                }
            }
            st.status = if st.hosts.iter().any(|h| h.phase == Phase::RollbackFailed) {
                Status::NeedsAttention
            } else if wave.is_some() {
                Status::Failed
            } else {
                Status::RolledBack
            };
            st.status
        })?;
        Ok(status)
    }
}
