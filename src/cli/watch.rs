//! The monitor an apply runs after each batch. `--monitor-seconds 0` and a
//! policy's `monitor_seconds: 0` mean the same: no telemetry window (two
//! snapshots a few microseconds apart would turn counter noise into "new
//! symptoms"), and the health command, when given, still runs and still
//! rolls back on failure.

use crate::apply::{Health, Monitor};
use crate::rollout::live::health_check;
use std::time::Duration;

/// Runs only the health command after each batch (a zero monitor window).
pub struct HealthOnly {
    /// The command, if any; without one every batch is healthy.
    pub cmd: Option<String>,
    /// How long it may run.
    pub limit: Duration,
}

impl Monitor for HealthOnly {
    fn after_batch(&mut self, index: usize, keys: &[String]) -> anyhow::Result<Health> {
        let batch = format!("batch {index} [{}]", keys.join(", "));
        let Some(cmd) = &self.cmd else { return Ok(Health::Healthy(format!("{batch}: monitor window 0 s, no health command: not watched"))) };
        Ok(match health_check(cmd, self.limit)? {
            Some(failed) => Health::Regressed(format!("{batch}: monitor window 0 s, {failed}")),
            None => Health::Healthy(format!("{batch}: monitor window 0 s, health command passed")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_window_still_runs_the_health_command() {
        let mut ok = HealthOnly { cmd: Some("true".into()), limit: Duration::from_secs(5) };
        assert!(matches!(ok.after_batch(0, &["vm.swappiness".into()]).unwrap(), Health::Healthy(d) if d.contains("health command passed")));
        let mut bad = HealthOnly { cmd: Some("exit 3".into()), limit: Duration::from_secs(5) };
        assert!(matches!(bad.after_batch(0, &["vm.swappiness".into()]).unwrap(), Health::Regressed(d) if d.contains("exit")));
        let mut none = HealthOnly { cmd: None, limit: Duration::from_secs(5) };
        assert!(matches!(none.after_batch(1, &[]).unwrap(), Health::Healthy(_)));
    }
}
