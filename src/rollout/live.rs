//! The monitor on a real host: after each batch it watches telemetry for a
//! window and runs the user's health command. A symptom that was not present
//! before the apply, or a failing health command, is a regression.

use crate::apply::{Health, Monitor};
use crate::kb::Kb;
use crate::reasoning::diagnose;
use crate::telemetry::procfs::ProcReader;
use std::collections::BTreeSet;
use std::time::Duration;

/// Watches live telemetry and an optional health command.
pub struct LiveMonitor<'a> {
    reader: ProcReader,
    kb: &'a Kb,
    window: Duration,
    health_cmd: Option<String>,
    known: BTreeSet<String>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl<'a> LiveMonitor<'a> {
    /// A monitor that treats `known` findings (present before the apply) as not new.
    pub fn new(reader: ProcReader, kb: &'a Kb, window: Duration, health_cmd: Option<String>, known: BTreeSet<String>) -> Self {
        Self { reader, kb, window, health_cmd, known }
    }

    fn run_health_cmd(&self) -> anyhow::Result<Option<String>> {
        let Some(cmd) = &self.health_cmd else { return Ok(None) };
        let out = std::process::Command::new("sh").arg("-c").arg(cmd).output().map_err(|e| anyhow::anyhow!("running health command {cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(None)
        } else {
            let tail = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").to_string();
            Ok(Some(format!("health command {cmd:?} exited with {} {tail}", out.status)))
        }
    }
}

impl Monitor for LiveMonitor<'_> {
    fn after_batch(&mut self, index: usize, keys: &[String]) -> anyhow::Result<Health> {
        let before = self.reader.snapshot(now_ms())?;
        std::thread::sleep(self.window);
        let after = self.reader.snapshot(now_ms())?;
        let f = diagnose(&before, &after, self.kb);
        let new: Vec<String> = f.findings.iter().filter(|x| !self.known.contains(&x.id)).map(|x| format!("{} ({})", x.id, x.evidence.iter().map(|e| e.describe()).collect::<Vec<_>>().join("; "))).collect();
        if let Some(failed) = self.run_health_cmd()? {
            return Ok(Health::Regressed(format!("batch {index} [{}]: {failed}", keys.join(", "))));
        }
        if !new.is_empty() {
            return Ok(Health::Regressed(format!("batch {index} [{}]: new symptom(s) after the change: {}", keys.join(", "), new.join(", "))));
        }
        Ok(Health::Healthy(format!("batch {index} [{}]: no new symptom over {:.1} s{}", keys.join(", "), self.window.as_secs_f64(), if self.health_cmd.is_some() { ", health command passed" } else { "" })))
    }
}
