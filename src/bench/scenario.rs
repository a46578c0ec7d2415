//! The built-in scenarios: a topology, the values the namespaces start
//! from, a workload, and how many repetitions a full or a quick run makes.
//! The sizes follow the reference workloads measured on this machine kind
//! (`reference/workloads/README.md`). Nothing here tells the engine what to
//! change: the scenario only sets the stage.

use super::accept_burst::AcceptBurst;
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
}

impl ScenarioId {
    /// Every scenario, in the order the CI test runs them.
    pub const ALL: [ScenarioId; 3] = [ScenarioId::AcceptBurst, ScenarioId::BdpTransfer, ScenarioId::IdleSlowStart];

    /// The command-line name (`accept-burst`).
    pub fn name(self) -> &'static str {
        match self {
            ScenarioId::AcceptBurst => "accept-burst",
            ScenarioId::BdpTransfer => "bdp-transfer",
            ScenarioId::IdleSlowStart => "idle-slow-start",
        }
    }
}

/// Everything one scenario run needs.
pub struct Scenario {
    /// Which one.
    pub id: ScenarioId,
    /// How the namespaces are joined.
    pub link: Link,
    /// Values both namespaces start from (written in a transaction before anything runs).
    pub start: Vec<(String, String)>,
    /// The workload.
    pub workload: Box<dyn Workload>,
    /// Repetitions per arm.
    pub reps: usize,
    /// Interval of the socket sampler while the workload runs.
    pub sample_every: Duration,
}

/// The 100 ms RTT, 500 Mbit/s path with a one-BDP drop-tail queue of the two long-path scenarios.
pub fn long_path() -> LinkShape {
    LinkShape::new(50.0, 500.0, 1.0)
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The scenario `id`, in quick (CI smoke test) or full size.
pub fn scenario(id: ScenarioId, quick: bool) -> Scenario {
    match id {
        ScenarioId::AcceptBurst => Scenario {
            id,
            link: Link::Direct,
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
        },
        ScenarioId::BdpTransfer => Scenario {
            id,
            link: Link::Shaped(long_path()),
            // The kernel's defaults (a host may have raised its own, and a namespace copies the host's at creation).
            start: kv(&[("net.ipv4.tcp_rmem", "4096 131072 6291456"), ("net.ipv4.tcp_wmem", "4096 16384 4194304"), ("net.ipv4.tcp_no_metrics_save", "1")]),
            workload: Box::new(BdpTransfer { object_bytes: 32 << 20, objects: if quick { 2 } else { 6 }, warmup: 1, cc: "cubic".into(), port: 9090 }),
            reps: if quick { 2 } else { 5 },
            sample_every: Duration::from_millis(25),
        },
        ScenarioId::IdleSlowStart => Scenario {
            id,
            link: Link::Shaped(long_path()),
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
        },
    }
}
