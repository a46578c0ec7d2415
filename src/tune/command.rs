//! The user's own objective: a shell command run through the real-workload
//! harness (`eval::harness`: a timeout on every run, its process group killed
//! at it, `ip netns exec` for a namespace), its printed numbers the samples.
//!
//! What one run reports:
//! * samples: one number per line, or one CSV column (`--column`); with
//!   `Stat::Value` the run must print exactly one number, its score;
//! * `seconds`: the run's wall time (throughput is samples per second);
//! * guard `errors`: the printed lines that held no number (a client that
//!   prints `ERR` or `timeout` for a failed request). A run that exits
//!   non-zero, times out or prints no number at all is not a run with many
//!   errors but a failed measurement: `measure` returns the error, and the
//!   loop counts the trial as failed and puts the incumbent back;
//! * guard `throughput`: samples per second of wall time;
//! * guard `rss_mb`: the peak resident set, MiB, of the shell and of every
//!   process it waited for (`wait4`'s `ru_maxrss`); a process the command left
//!   running in the background is not counted.
//!
//! How long one run measures (a `--duration` of the user's client) is the
//! command's own business; warm-up runs are the loop's (`Settings::warmup_runs`).

use super::objective::{Measurement, Stat};
use super::ObjectiveSource;
use crate::eval::harness::{self, UserCommand};
use anyhow::{Result, bail};
use std::collections::BTreeMap;

/// The guard figures every command run reports.
pub const GUARDS: &[&str] = &["errors", "throughput", "rss_mb"];

/// A user's command as the objective.
#[derive(Debug, Clone)]
pub struct CommandObjective {
    /// The command, its namespace, CSV column and per-run timeout.
    pub command: UserCommand,
    /// The statistic the runs are scored by (for `Value`, one number per run is required).
    pub stat: Stat,
}

impl CommandObjective {
    /// An objective running `command`, scored by `stat`.
    pub fn new(command: UserCommand, stat: Stat) -> Self {
        CommandObjective { command, stat }
    }
}

/// A run's measurement from what it printed (pure: the harness's figures in, the measurement out).
pub fn measurement(stat: Stat, cmd: &str, samples: Vec<f64>, ignored: usize, seconds: f64, peak_rss_mb: Option<f64>) -> Result<Measurement> {
    if stat == Stat::Value && samples.len() != 1 {
        bail!("{cmd:?} printed {} numbers, but --stat value scores a run by the one number it prints; print exactly one (the score), or choose p50/p95/p99/mean/throughput over per-request samples", samples.len());
    }
    let mut guards = BTreeMap::from([("errors".to_string(), ignored as f64)]);
    if seconds > 0.0 {
        guards.insert("throughput".into(), samples.len() as f64 / seconds);
    }
    if let Some(rss) = peak_rss_mb {
        guards.insert("rss_mb".into(), rss);
    }
    Ok(Measurement { samples, seconds, guards })
}

impl ObjectiveSource for CommandObjective {
    fn describe(&self) -> String {
        let place = self.command.netns.as_deref().map(|ns| format!(" in netns {ns}")).unwrap_or_default();
        let col = self.command.column.as_deref().map(|c| format!(", column {c}")).unwrap_or_default();
        format!("{:?} of {:?}{place}{col}", self.stat, self.command.cmd)
    }

    fn measure(&mut self) -> Result<Measurement> {
        let (run, rss) = harness::run_measured(&self.command)?;
        measurement(self.stat, &self.command.cmd, run.samples, run.ignored, run.seconds, rss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn objective(cmd: &str, stat: Stat) -> CommandObjective {
        CommandObjective::new(UserCommand { cmd: cmd.into(), netns: None, column: None, timeout: Duration::from_secs(10) }, stat)
    }

    #[test]
    fn a_run_reports_its_samples_and_every_guard() {
        let m = objective("echo 1.5; echo ERR; echo 2.5", Stat::P95).measure().unwrap();
        assert_eq!(m.samples, vec![1.5, 2.5]);
        assert_eq!(m.guards["errors"], 1.0, "the line without a number is an error");
        assert!(m.guards["throughput"] > 0.0 && m.guards["rss_mb"] > 0.0, "{:?}", m.guards);
    }

    #[test]
    fn a_value_objective_needs_exactly_one_number_per_run() {
        assert_eq!(objective("echo 42", Stat::Value).measure().unwrap().samples, vec![42.0]);
        let e = objective("echo 1; echo 2", Stat::Value).measure().unwrap_err().to_string();
        assert!(e.contains("exactly one"), "{e}");
    }

    #[test]
    fn a_failing_silent_or_hanging_command_is_a_failed_measurement() {
        assert!(objective("echo 1; exit 2", Stat::P50).measure().unwrap_err().to_string().contains("exited with"));
        assert!(format!("{:#}", objective("true", Stat::P50).measure().unwrap_err()).contains("no latency samples"));
        let mut o = objective("sleep 5", Stat::P50);
        o.command.timeout = Duration::from_millis(200);
        assert!(o.measure().unwrap_err().to_string().contains("did not finish"));
    }
}
