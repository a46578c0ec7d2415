//! The built-in scenarios: a topology, the values the namespaces start
//! from, a workload, and how many repetitions a full or a quick run makes.
//! The sizes follow the reference workloads measured on this machine kind
//! (`reference/workloads/README.md`). Nothing here tells the engine what to
//! change: the scenario only sets the stage. What it says about the right
//! fix (`avoid`, `grid_keys`) is for judging the engine afterwards.
//!
//! Three stages: the network namespaces (every `net.*` limit is per
//! namespace); a fresh user namespace per run (the inotify limits are per
//! user namespace since 5.11: a child namespace has its own
//! `/proc/sys/user/max_inotify_watches`, and the host's is untouched); and
//! the host itself, for a limit that exists only globally
//! (`vm.max_map_count`), which the bench writes only with `--allow-host`.

use super::accept_burst::AcceptBurst;
use super::inotify::{INOTIFY_KEYS, InotifyWatchers};
use super::map_heavy::MapHeavy;
use super::objective::{Avoid, Bad, Objective};
use super::syn_burst::SynBurst;
use super::relay::LinkShape;
use super::topology::Link;
use super::transfer::{BdpTransfer, IdleSlowStart};
use super::workload::Workload;
use serde::Serialize;
use std::time::Duration;

/// A built-in scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioId {
    /// Bursts of 600 concurrent connects against 4 accepting workers, somaxconn 128.
    AcceptBurst,
    /// 32 MiB objects over a 100 ms, 500 Mbit/s path with the kernel's default buffer maxima.
    BdpTransfer,
    /// 1 MiB responses after 1 s idle gaps over a 100 ms path, cubic, slow start after idle on.
    IdleSlowStart,
    /// Bursts of 600 connects timed to the handshake; somaxconn 128, tcp_max_syn_backlog 128, syncookies off.
    SynBurst,
    /// A watcher needing 12288 inotify watches in a user namespace allowed 8192 (the host's limit untouched).
    InotifyWatchers,
    /// A process needing 1.25 × vm.max_map_count mappings (global: needs --allow-host).
    MapHeavy,
}

impl ScenarioId {
    /// Every scenario, in the order the CI tests run them.
    pub const ALL: [ScenarioId; 6] = [ScenarioId::AcceptBurst, ScenarioId::BdpTransfer, ScenarioId::IdleSlowStart, ScenarioId::SynBurst, ScenarioId::InotifyWatchers, ScenarioId::MapHeavy];

    /// The command-line name (`accept-burst`).
    pub fn name(self) -> &'static str {
        match self {
            ScenarioId::AcceptBurst => "accept-burst",
            ScenarioId::BdpTransfer => "bdp-transfer",
            ScenarioId::IdleSlowStart => "idle-slow-start",
            ScenarioId::SynBurst => "syn-burst",
            ScenarioId::InotifyWatchers => "inotify-watchers",
            ScenarioId::MapHeavy => "map-heavy",
        }
    }
}

/// Where a scenario runs and what the bench may write for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Client and server network namespaces joined by this link; only per-namespace keys are written.
    Netns(Link),
    /// A fresh user namespace per run; the keys (per user namespace) live in a sandbox tree the
    /// apply transaction writes, and each run creates its namespace with them.
    UserNs {
        /// The KB keys of the tree and the file under `/proc/sys` of the user namespace each sets.
        keys: &'static [(&'static str, &'static str)],
    },
    /// The host's own global limits: read as they are, never lowered, written only with `--allow-host`.
    Host {
        /// The only global keys the bench may write for this scenario.
        keys: &'static [&'static str],
    },
}

/// Everything one scenario run needs.
pub struct Scenario {
    /// Which one.
    pub id: ScenarioId,
    /// Where it runs.
    pub stage: Stage,
    /// Values both namespaces start from (written in a transaction before anything runs).
    pub start: Vec<(String, String)>,
    /// The workload.
    pub workload: Box<dyn Workload>,
    /// Repetitions per arm.
    pub reps: usize,
    /// Interval of the socket sampler while the workload runs.
    pub sample_every: Duration,
    /// How its results are judged.
    pub judge: Judging,
}

/// How a scenario's results are judged (never shown to the engine).
#[derive(Debug, Clone)]
pub struct Judging {
    /// What the scenario is judged by besides p95.
    pub objective: Objective,
    /// Tempting changes that cannot help here; the engine proposing one fails the goals.
    pub avoid: Vec<Avoid>,
    /// The keys its symptoms implicate: the grid spans their KB range (empty: the grid around SemantOS's choice).
    pub grid_keys: Vec<&'static str>,
}


/// The 100 ms RTT, 500 Mbit/s path with a one-BDP drop-tail queue of the two long-path scenarios.
pub fn long_path() -> LinkShape {
    LinkShape::new(50.0, 500.0, 1.0)
}

/// The judging fields of the first three scenarios: p95, no avoid list, the grid around SemantOS's choice.
fn network() -> Judging {
    Judging { objective: Objective::P95Ms, avoid: vec![], grid_keys: vec![] }
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The scenario `id`, in quick (CI smoke test) or full size.
pub fn scenario(id: ScenarioId, quick: bool) -> Scenario {
    match id {
        ScenarioId::AcceptBurst => accept_burst(quick),
        ScenarioId::BdpTransfer => bdp_transfer(quick),
        ScenarioId::IdleSlowStart => idle_slow_start(quick),
        ScenarioId::SynBurst => syn_burst(quick),
        ScenarioId::InotifyWatchers => inotify_watchers(quick),
        ScenarioId::MapHeavy => map_heavy(quick),
    }
}

fn accept_burst(quick: bool) -> Scenario {
    Scenario {
        id: ScenarioId::AcceptBurst,
        stage: Stage::Netns(Link::Direct),
        // tcp_max_syn_backlog is held at 4096 in every arm, as in the reference run
        // (with syncookies on it is not consulted; holding it keeps that true).
        start: kv(&[("net.core.somaxconn", "128"), ("net.ipv4.tcp_max_syn_backlog", "4096")]),
        workload: Box::new(AcceptBurst {
            conc: 600,
            bursts: if quick { 2 } else { 4 },
            gap: Duration::from_millis(2500),
            timeout: Duration::from_secs(10),
            workers: 4,
            work: Duration::from_millis(2),
            port: 8080,
        }),
        reps: if quick { 2 } else { 5 },
        sample_every: Duration::from_millis(50),
        judge: network(),
    }
}

fn bdp_transfer(quick: bool) -> Scenario {
    Scenario {
        id: ScenarioId::BdpTransfer,
        stage: Stage::Netns(Link::Shaped(long_path())),
        // The kernel's defaults (a host may have raised its own, and a namespace copies the host's at creation).
        start: kv(&[("net.ipv4.tcp_rmem", "4096 131072 6291456"), ("net.ipv4.tcp_wmem", "4096 16384 4194304"), ("net.ipv4.tcp_no_metrics_save", "1")]),
        workload: Box::new(BdpTransfer { object_bytes: 32 << 20, objects: if quick { 2 } else { 6 }, warmup: 1, cc: "cubic".into(), port: 9090 }),
        reps: if quick { 2 } else { 5 },
        sample_every: Duration::from_millis(25),
        // A bulk transfer is judged by its goodput, the mean time of its equal objects. Its p95 over
        // six objects is their slowest: it moves in steps of a cubic loss episode (~7 %, 733–748 ms
        // against 802–804 ms at one configuration), too coarse for a 2 % goal (docs/bench.md).
        judge: Judging { objective: Objective::MeanMs, ..network() },
    }
}

fn idle_slow_start(quick: bool) -> Scenario {
    Scenario {
        id: ScenarioId::IdleSlowStart,
        stage: Stage::Netns(Link::Shaped(long_path())),
        // Buffers large enough not to be the limit in any arm, as in the reference run.
        start: kv(&[
            ("net.ipv4.tcp_slow_start_after_idle", "1"),
            ("net.ipv4.tcp_rmem", "4096 131072 33554432"),
            ("net.ipv4.tcp_wmem", "4096 16384 33554432"),
            ("net.ipv4.tcp_no_metrics_save", "1"),
        ]),
        workload: Box::new(IdleSlowStart {
            response_bytes: 1 << 20,
            requests: if quick { 3 } else { 12 },
            warmup: if quick { 1 } else { 3 },
            idle: Duration::from_secs(1),
            cc: "cubic".into(),
            port: 9191,
        }),
        reps: if quick { 2 } else { 5 },
        sample_every: Duration::from_millis(25),
        judge: network(),
    }
}

fn syn_burst(quick: bool) -> Scenario {
    Scenario {
        id: ScenarioId::SynBurst,
        stage: Stage::Netns(Link::Direct),
        // The application asks for a large backlog; the kernel's caps are small and SYN cookies are off,
        // so the drops could be read as either queue's: which one binds is what the scenario is about.
        start: kv(&[("net.core.somaxconn", "128"), ("net.ipv4.tcp_max_syn_backlog", "128"), ("net.ipv4.tcp_syncookies", "0")]),
        workload: Box::new(SynBurst {
            conc: 600,
            bursts: if quick { 2 } else { 3 },
            gap: Duration::from_millis(2000),
            timeout: Duration::from_secs(10),
            listen_backlog: 4096,
            workers: 4,
            work: Duration::from_millis(2),
            port: 8181,
        }),
        reps: if quick { 2 } else { 5 },
        sample_every: Duration::from_millis(50),
        judge: Judging {
            objective: Objective::P99Ms,
            avoid: vec![
                // Not tcp_max_syn_backlog: with cookies off, half-open connections whose final ACK the full
                // accept queue dropped pile up past 3/4 of it, so it binds too (the full run's grid: p99 7.1 s → 5.1 s).
                Avoid { key: "net.ipv4.tcp_abort_on_overflow", bad: Bad::Set("1"), why: "turns every delayed connect into a reset one: the failed-connect guard, not a latency fix" },
                Avoid { key: "net.ipv4.tcp_syncookies", bad: Bad::Set("2"), why: "2 answers every SYN with a cookie, a testing mode; it helps no more than 1 (full run: p99 1032 ms both) and still leaves the accept queue full" },
                Avoid { key: "net.ipv4.tcp_synack_retries", bad: Bad::Any, why: "the server's SYN-ACKs are not lost; fewer retries only fail handshakes sooner" },
            ],
            grid_keys: vec!["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies"],
        },
    }
}

fn inotify_watchers(quick: bool) -> Scenario {
    Scenario {
        id: ScenarioId::InotifyWatchers,
        stage: Stage::UserNs { keys: &INOTIFY_KEYS },
        // The KB's floor for watches; 128 instances is the kernel default.
        start: kv(&[("fs.inotify.max_user_watches", "8192"), ("fs.inotify.max_user_instances", "128")]),
        workload: Box::new(InotifyWatchers::new(12288, if quick { 100 } else { 300 }, Duration::from_millis(10), Duration::from_millis(500))),
        reps: if quick { 2 } else { 5 },
        sample_every: Duration::from_millis(500),
        judge: Judging {
            objective: Objective::AchievedShare,
            avoid: vec![
                Avoid { key: "fs.inotify.max_user_instances", bad: Bad::Raise, why: "the watcher holds one instance of the 128 allowed: the instance limit does not bind" },
                Avoid { key: "fs.inotify.max_queued_events", bad: Bad::Any, why: "no queue overflowed (IN_Q_OVERFLOW never came): a watch that was never added has no event to queue" },
                Avoid { key: "fs.file-max", bad: Bad::Any, why: "ENOSPC from inotify_add_watch is the watch limit; no open() failed with ENFILE" },
            ],
            grid_keys: vec!["fs.inotify.max_user_watches", "fs.inotify.max_user_instances"],
        },
    }
}

fn map_heavy(quick: bool) -> Scenario {
    Scenario {
        id: ScenarioId::MapHeavy,
        stage: Stage::Host { keys: &["vm.max_map_count"] },
        // None written: a global limit is never lowered; the process needs more than the host grants.
        start: vec![],
        workload: Box::new(MapHeavy::new(1.25, 1024, Duration::from_secs(120))),
        reps: if quick { 2 } else { 5 },
        sample_every: Duration::from_millis(500),
        judge: Judging {
            objective: Objective::AchievedShare,
            avoid: vec![
                Avoid { key: "vm.overcommit_memory", bad: Bad::Any, why: "mmap fails at the mapping count, not for lack of commit (the pages are never touched); 2 would make allocation strict" },
                Avoid { key: "vm.overcommit_ratio", bad: Bad::Any, why: "commit accounting does not bind; only consulted with overcommit_memory 2" },
                Avoid { key: "vm.min_free_kbytes", bad: Bad::Any, why: "no memory pressure: the regions are never touched" },
            ],
            grid_keys: vec!["vm.max_map_count"],
        },
    }
}
