//! `semantos bench`: the real-workload proof. It runs a workload on the real
//! kernel inside two network namespaces it creates and removes, measures it
//! at the scenario's start values, hands the live telemetry (the `/proc`
//! counters and per-socket TCP state of both namespaces) to the same
//! `diagnose → recommend → guardrails` path a user runs, applies the plan
//! through the apply transaction inside the namespaces, measures again,
//! rolls back, and compares — against the start values, an A/A repeat of
//! them, TuneD's network profiles, the closed loop (`semantos:tune`) and a
//! grid over the KB range of the keys the symptoms implicate.
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
//! | `workload`, `accept_burst`, `transfer`, `syn_burst` | the network workloads, client and server in Rust |
//! | `inotify`, `userns` | the watcher that needs more inotify watches than its (throwaway) user namespace grants |
//! | `map_heavy` | the process that needs more mappings than `vm.max_map_count` |
//! | `scenario` | the built-in scenarios: stage, start values, workload sizes, how they are judged |
//! | `stage`, `target` | building each stage (namespaces, user-namespace limits tree, host with its restore guard) and what may be written there |
//! | `objective` | each scenario's objective and the tempting changes it must not see |
//! | `probe` | live telemetry from inside the namespaces while a workload runs |
//! | `pipeline` | the bench policy and the user's decision path |
//! | `configure` | every write, through the apply transaction, per namespace |
//! | `anchors`, `grid` | the TuneD profiles and the grid over the implicated keys' KB ranges, independent of SemantOS's choice |
//! | `tune` | the closed-loop arms (`semantos:tune`): `tune::driver::run` over the switcher and the scenario's workload |
//! | `reasoners` | a scenario as a tune's objective, and the reasoners compared on it at matched budget |
//! | `compare` | statistics and goals |
//! | `report` | the report and its exporters (CSV, JSON, SVG, table) |
//! | `runner` | one scenario run from start to report, and the loop and statistics `--cmd` shares |
//! | `command` | a user's `--cmd` |
//! | `workdir` | the run's backups, removed at the end unless a restore failed |
//!
//! Invariants: nothing outside the bench's namespaces is written (the store
//! refuses any key not scoped to the network namespace), except the sandbox
//! tree of a throwaway user namespace's limits and, only with `--allow-host`,
//! the global keys a host scenario names (restored after every arm and by a
//! guard at the end); the engine is never told which scenario runs; every
//! number in the report was measured.

pub mod accept_burst;
pub mod anchors;
pub mod arms;
pub mod command;
pub mod compare;
pub mod configure;
pub mod confirm;
pub mod grid;
pub mod inotify;
pub mod lock;
pub mod map_heavy;
pub mod netns;
pub mod objective;
pub mod pipeline;
pub mod probe;
pub mod reasoners;
pub mod relay;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sockets;
pub mod stage;
pub mod syn_burst;
pub mod target;
pub mod topology;
pub mod tune;
pub mod transfer;
pub mod userns;
pub mod workdir;
pub mod workload;

pub use report::{BenchReport, write_artifacts};
pub use command::{CommandSpec, run_command};
pub use grid::GridMode;
pub use reasoners::{ReasonerComparison, compare_reasoners, tune_scenario};
pub use runner::{Options, run_scenario};
pub use tune::Reasoner;
pub use scenario::ScenarioId;
