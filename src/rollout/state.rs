//! The rollout state file: everything a controller needs to resume or roll
//! back a rollout it did not finish — the plan, the hosts and their waves,
//! the engine settings, and each host's phase, values before and after, and
//! reason. Rewritten atomically (temp file, fsync, rename) at every host
//! transition, *before* the step it announces, so a controller killed at any
//! instant leaves a file that says which hosts may have been touched.
//! The content's types live in `model`, below this file and `state_check`.

pub mod model;

pub use model::{EngineKind, HostState, Phase, RolloutState, STATE_SCHEMA_VERSION, Settings, Status, Values};

use crate::apply::files::{read_versioned_json, write_atomic};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

impl RolloutState {
    /// Loads a state file and checks its form: not through a symbolic link, no field given
    /// twice, wave numbers within the fleet. `state_check::check_recorded` checks its content.
    pub fn load(path: &Path) -> Result<RolloutState> {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            anyhow::bail!("{}: the rollout state is a symbolic link; refusing to read or rewrite through it (point --state at the file itself)", path.display());
        }
        // The generic reader checks the version and refuses a field or key given twice in one
        // object (an edited file must not say two things), so the file is read and parsed once.
        let s: RolloutState = read_versioned_json(path, "rollout state", STATE_SCHEMA_VERSION)?;
        super::state_check::check_waves(&s).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(s)
    }
}

/// The state file, shared by the worker threads of one controller.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: Mutex<RolloutState>,
}

impl StateFile {
    /// Writes `state` to `path` now and keeps it for updates.
    pub fn create(path: &Path, state: RolloutState) -> Result<StateFile> {
        let f = StateFile { path: path.to_path_buf(), state: Mutex::new(state) };
        f.save(&f.lock())?;
        Ok(f)
    }

    /// Opens an existing state file.
    pub fn open(path: &Path) -> Result<StateFile> {
        Ok(StateFile { path: path.to_path_buf(), state: Mutex::new(RolloutState::load(path)?) })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, RolloutState> {
        // A worker that panicked mid-update left a whole (if stale) state: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, s: &RolloutState) -> Result<()> {
        let json = serde_json::to_string_pretty(s)?;
        write_atomic(&self.path, json.as_bytes(), 0o600).with_context(|| format!("writing rollout state {}", self.path.display()))
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> RolloutState {
        self.lock().clone()
    }

    /// Changes the state and writes it durably before returning.
    pub fn update<T>(&self, f: impl FnOnce(&mut RolloutState) -> T) -> Result<T> {
        let mut g = self.lock();
        let out = f(&mut g);
        self.save(&g)?;
        Ok(out)
    }

    /// Changes one host and writes the state durably before returning.
    pub fn host<T>(&self, i: usize, f: impl FnOnce(&mut HostState) -> T) -> Result<T> {
        self.update(|s| f(&mut s.hosts[i]))
    }
}
