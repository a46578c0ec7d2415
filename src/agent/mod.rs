//! The continuous service (`semantos agent`): sampling on a schedule, an advice store with stable
//! IDs, a calm controller (hysteresis, minimum dwell, a daily change budget), workload change
//! detection, and the lifecycle on exit. It drives the same stages as the one-shot commands
//! (telemetry → diagnosis → plan → guardrails → `tune`/apply); it adds no second pipeline.
//!
//! Files: `config` (the YAML file, validated), `fields` (its values to typed ones, each error
//! naming the field), `objective` (apply mode's `objective:` block), `trial` (one change set as
//! one `tune` trial: interleaved repeats, `judge`), `sampler` (one cheap snapshot per tick),
//! `limit_files` (the limits in force from kept-open files), `window` (the diagnosis window as
//! numbers), `calm`
//! (hysteresis, dwell, daily budget), `change_point` (CUSUM), `advice` (stable IDs and their
//! store), `decide` (one window → transitions, workload changes, advice), `act` (managed keys:
//! drift, monitor, evidence gone, the one change set), `state` (what survives a restart),
//! `selfstat` (own CPU and RSS), `signals`, `service` (the lifecycle).

pub mod act;
pub mod advice;
pub mod calm;
pub mod change_point;
pub mod config;
pub mod decide;
pub mod fields;
pub mod limit_files;
pub mod objective;
pub mod sampler;
pub mod selfstat;
pub mod service;
pub mod signals;
pub mod state;
pub mod trial;
pub mod window;

pub use config::{AgentConfig, Mode, OnExit};
pub use service::{Ended, run};
pub use state::Files;
