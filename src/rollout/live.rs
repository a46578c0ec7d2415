//! The monitor on a real host: after each batch it watches telemetry for a
//! window and runs the user's health command. A failing health command is a
//! regression; so is a symptom that was not present before the apply and
//! that the KB links to a key changed so far (by default: the policy's
//! `monitor_new_symptoms: any` counts every new symptom).
//!
//! Why attribution: PSI, memory and load are host-wide, and on a busy host
//! they flap around their thresholds whatever we do. Rolling back a
//! namespace's `somaxconn` because the CPU pressure of the whole machine
//! read 10.8 instead of 9.9 makes the tool useless without making anything
//! safer; the unrelated symptom is still reported in the batch's verdict.

use crate::apply::{Health, Monitor};
use crate::kb::Kb;
use crate::reasoning::diagnose;
use crate::safety::NewSymptoms;
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
    scope: NewSymptoms,
    changed: BTreeSet<String>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Symptoms a change of `keys` can plausibly cause: each key's symptoms and counter-symptoms, and those of its KB edge partners.
pub fn attributable<'k>(kb: &Kb, keys: impl IntoIterator<Item = &'k String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for k in keys {
        let partners = kb.edges_of(k).map(|e| if &e.from == k { e.to.as_str() } else { e.from.as_str() });
        for p in std::iter::once(k.as_str()).chain(partners).filter_map(|key| kb.param(key)) {
            out.extend(p.symptoms.iter().chain(&p.counter_symptoms).cloned());
        }
    }
    out
}

impl<'a> LiveMonitor<'a> {
    /// A monitor that treats `known` findings (present before the apply) as not new, and judges new ones by `scope`.
    pub fn new(reader: ProcReader, kb: &'a Kb, window: Duration, health_cmd: Option<String>, known: BTreeSet<String>, scope: NewSymptoms) -> Self {
        Self { reader, kb, window, health_cmd, known, scope, changed: BTreeSet::new() }
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
        // Batches accumulate: a symptom after batch 2 may come from batch 1's keys.
        self.changed.extend(keys.iter().cloned());
        let before = self.reader.snapshot(now_ms())?;
        std::thread::sleep(self.window);
        let after = self.reader.snapshot(now_ms())?;
        let f = diagnose(&before, &after, self.kb);
        let related = attributable(self.kb, &self.changed);
        let (mut blamed, mut unrelated) = (Vec::new(), Vec::new());
        for x in f.findings.iter().filter(|x| !self.known.contains(&x.id)) {
            let line = format!("{} ({})", x.id, x.evidence.iter().map(|e| e.describe()).collect::<Vec<_>>().join("; "));
            if self.scope == NewSymptoms::Any || related.contains(&x.id) {
                blamed.push(line);
            } else {
                unrelated.push(line);
            }
        }
        let batch = format!("batch {index} [{}]", keys.join(", "));
        if let Some(failed) = self.run_health_cmd()? {
            return Ok(Health::Regressed(format!("{batch}: {failed}")));
        }
        if !blamed.is_empty() {
            return Ok(Health::Regressed(format!("{batch}: new symptom(s) after the change: {}", blamed.join(", "))));
        }
        let also = if unrelated.is_empty() { String::new() } else { format!("; also seen, not linked to the changed keys by the KB: {}", unrelated.join(", ")) };
        Ok(Health::Healthy(format!("{batch}: no new symptom linked to the change over {:.1} s{}{also}", self.window.as_secs_f64(), if self.health_cmd.is_some() { ", health command passed" } else { "" })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_answers_for_its_own_symptoms_and_its_partners_but_not_for_cpu_pressure() {
        let kb = Kb::embedded().unwrap();
        let keys = ["net.core.somaxconn".to_string()];
        let a = attributable(&kb, &keys);
        let own = kb.param("net.core.somaxconn").unwrap();
        assert!(!own.symptoms.is_empty());
        for s in own.symptoms.iter().chain(&own.counter_symptoms) {
            assert!(a.contains(s), "{s} missing from {a:?}");
        }
        assert!(!a.contains("cpu_runqueue_delay"), "{a:?}");
        // A partner's symptoms count too.
        let partner_syms: BTreeSet<String> = kb.edges_of("net.core.somaxconn").flat_map(|e| [e.from.clone(), e.to.clone()]).filter_map(|k| kb.param(&k)).flat_map(|p| p.symptoms.clone()).collect();
        assert!(partner_syms.is_subset(&a));
        assert!(attributable(&kb, &["kernel.sched_latency_ns".to_string()]).contains("cpu_runqueue_delay"));
        assert!(attributable(&kb, &[]).is_empty());
    }
}
