//! `semantos agent`: the continuous service in the foreground (systemd runs it; see
//! `packaging/semantos-agent.service`). Loads and checks the configuration before anything runs
//! (a bad field is exit 2), resolves the state directory by the usual rule (`--state-dir`, the
//! file's `state_dir:`, `SEMANTOS_STATE_DIR`, /var/lib/semantos for root), then hands over to
//! `agent::run` until SIGTERM or SIGINT.

use super::common::{self, invalid, refused};
use super::exit;
use super::flags::{JsonArg, KbDirArg};
use super::state as places;
use crate::agent::{self, AgentConfig, Files};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Arguments of `agent`.
#[derive(Debug, Clone, Args)]
#[command(after_help = AGENT_HELP)]
pub struct AgentArgs {
    /// The configuration (YAML; every field in packaging/agent.yaml) [default: /etc/semantos/agent.yaml, defaults when absent].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory: advice store, agent state, lock, the apply backup [default: the config's state_dir, $SEMANTOS_STATE_DIR,
    /// /var/lib/semantos as root, else ~/.local/state/semantos].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (GET /metrics), e.g. 127.0.0.1:9464 [default: the config's metrics_addr].
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

const AGENT_HELP: &str = "Samples every interval, opens a symptom after open_after windows and closes it after
close_after clear ones, and records advice under stable IDs (advice.json in the state
directory). mode: apply needs an objective: block (a command measuring the workload) and
makes one change set at a time through the apply transaction, after a minimum dwell and
within a daily budget, each measured against the values before in interleaved repeats and
kept only when the objective improves (else rolled back and not retried until the workload
changes). SIGTERM/SIGINT: on_exit keep or rollback (a key another writer changed is left).
Decision lines are logged at info: run with -v or RUST_LOG=semantos=info. The service runs
the same agent as `semantos-agent`, which takes these flags without the word `agent`.

Examples:
  sudo semantos -v agent                          /etc/semantos/agent.yaml, /var/lib/semantos
  sudo semantos -v agent --config ./agent.yaml --state-dir /tmp/agent-state
  systemctl enable --now semantos-agent           the unit in packaging/

Exit status: 0 stopped by SIGTERM/SIGINT, 1 failure, 2 invalid configuration (nothing
written), 3 another agent holds the lock or the namespace cannot be entered
(see `semantos --help`).";

/// The help's closing text of `semantos-agent`, the service's own executable.
pub const SERVICE_HELP: &str = "The same agent as `semantos agent`, in an executable that holds only its code (a smaller
resident set for a process that runs for months). The service runs it.

Examples:
  sudo semantos-agent -v                          /etc/semantos/agent.yaml, /var/lib/semantos
  sudo semantos-agent -v --config ./agent.yaml --state-dir /tmp/agent-state
  systemctl enable --now semantos-agent           the unit in packaging/

Exit status: 0 stopped by SIGTERM/SIGINT, 1 failure, 2 invalid configuration or usage (nothing
written), 3 another agent holds the lock or the namespace cannot be entered.";

/// `semantos agent`.
pub fn run(a: &AgentArgs) -> Result<i32> {
    let kb = common::load_kb(&a.kb)?;
    let (path, optional) = match &a.config {
        Some(p) => (p.clone(), false),
        None => (PathBuf::from(agent::config::DEFAULT_CONFIG), true),
    };
    let mut cfg = AgentConfig::load(&path, optional, &kb).map_err(|e| invalid(format!("{e:#}")))?;
    if let Some(addr) = &a.metrics_addr {
        let v = serde_json::Value::String(addr.clone());
        cfg.metrics_addr = Some(agent::config::metrics_addr("semantos agent", "--metrics-addr", &v).map_err(|e| invalid(format!("{e:#}")))?);
    }
    let env = places::Env::read();
    let flag = a.state_dir.as_deref().or(cfg.state_dir.as_deref());
    let (dir, origin) = places::default_dir(flag, &env);
    // In a checkout the seed's layout keeps state under experiments/, not in the checkout's root.
    let dir = if origin == places::Origin::Checkout { dir.join("experiments/agent") } else { dir };
    if let Some(ns) = &cfg.netns {
        crate::sysctl::netns::check(ns).map_err(|e| refused(format!("{}: netns: {e:#}", cfg.source)))?;
    }
    let files = Files::under(&dir);
    let metrics = Arc::new(Mutex::new(crate::metrics::AgentMetrics::default()));
    let ended = agent::run(&cfg, &files, kb, metrics).map_err(|e| {
        let text = format!("{e:#}");
        if text.contains("holds the lock") || text.contains("setns failed") { refused(text) } else { e }
    })?;
    if a.json.json {
        super::output::print("agent", &serde_json::json!({ "signal": ended.signal, "restored": ended.restored, "left": ended.left, "state_dir": dir }))?;
    } else {
        eprintln!("semantos agent: stopped by {}; {} value(s) restored; state in {}", ended.signal, ended.restored.len(), dir.display());
        for l in &ended.left {
            eprintln!("  not restored: {l}");
        }
    }
    Ok(exit::OK)
}
