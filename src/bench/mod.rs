//! `semantos bench`: the real-workload proof. It runs a workload on the real
//! kernel inside two network namespaces it creates and removes, measures it
//! at the scenario's start values, hands the live telemetry (the `/proc`
//! counters and per-socket TCP state of both namespaces) to the same
//! `diagnose → recommend → guardrails` path a user runs, applies the plan
//! through the apply transaction inside the namespaces, measures again,
//! rolls back, and compares — against the start values, an A/A repeat of
//! them, TuneD's network profiles and a grid around SemantOS's choice.
//!
//! Code map:
//!
//! | module | holds |
//! |---|---|
//! | `lock` | one benchmark at a time on a machine |
//! | `netns` | namespaces (create, delete on drop, stale cleanup) and running code inside one |
//! | `relay` | the userspace TUN link emulator (delay, rate, drop-tail queue) |
//! | `topology` | client and server namespaces joined by veth, netem, or the relay |
//! | `sockets` | listener backlog, per-socket congestion control, non-blocking connect |
//! | `workload`, `accept_burst`, `transfer` | the workloads, client and server in Rust |
//! | `scenario` | the built-in scenarios: link, start values, workload sizes |
//! | `probe` | live telemetry from inside the namespaces while a workload runs |
//! | `pipeline` | the bench policy and the user's decision path |
//! | `configure` | every write, through the apply transaction, per namespace |
//! | `anchors`, `grid` | the TuneD profiles and the grid around SemantOS's choice |
//! | `compare` | statistics and goals |
//! | `report` | the report and its exporters (CSV, JSON, SVG, table) |
//! | `runner` | one run from start to report; a user's `--cmd` |
//! | `workdir` | the run's backups, removed at the end unless a restore failed |
//!
//! Invariants: nothing outside the bench's namespaces is written (the store
//! refuses any key not scoped to the network namespace); the engine is
//! never told which scenario runs; every number in the report was measured.

pub mod accept_burst;
pub mod anchors;
pub mod compare;
pub mod configure;
pub mod grid;
pub mod lock;
pub mod netns;
pub mod pipeline;
pub mod probe;
pub mod relay;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sockets;
pub mod topology;
pub mod transfer;
pub mod workdir;
pub mod workload;

pub use report::{BenchReport, write_artifacts};
pub use runner::{CommandSpec, Options, run_command, run_scenario};
pub use scenario::ScenarioId;
