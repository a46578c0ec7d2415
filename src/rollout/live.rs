//! The monitor on a real host: after each batch it watches telemetry for a
//! window and runs the user's health command. The window is the one
//! `diagnose` takes (the caller's `WindowSource`: in the CLI the same live
//! sampler, with the listening sockets and the `sysctl.<key>` limits the
//! KB's ratios divide by) and it is judged by the same window rules
//! (`reasoning::window`, through `diagnose_series`), so a limit-relative
//! symptom that appears or worsens after the apply is seen as `diagnose`
//! would see it. A failing health command is a
//! regression; so is a symptom that the KB links to a key changed so far and
//! that either was not present before the apply, or was and got
//! `monitor_worsening_factor` times worse (policy; `monitor_new_symptoms:
//! any` judges every symptom, linked or not).
//!
//! The health command runs in its own process group under a limit
//! (`health_timeout_seconds`, `--health-timeout`): a command that hangs is
//! killed with everything it started and counts as a failed check, so the
//! batch rolls back instead of the values staying written and the lock held.
//!
//! Why attribution: PSI, memory and load are host-wide, and on a busy host
//! they flap around their thresholds whatever we do. Rolling back a
//! namespace's `somaxconn` because the CPU pressure of the whole machine
//! read 10.8 instead of 9.9 makes the tool useless without making anything
//! safer; the unrelated symptom is still reported in the batch's verdict.

use crate::apply::{Health, Monitor};
use crate::kb::Kb;
use crate::kb::entry::{Measure, Op};
use crate::reasoning::{Finding, Findings, diagnose_series};
use crate::safety::NewSymptoms;
use crate::telemetry::Snapshot;
use std::collections::BTreeSet;
use std::time::Duration;

/// Takes the telemetry window of the given length: snapshots in time order, as a diagnosis takes them.
pub type WindowSource<'a> = Box<dyn FnMut(Duration) -> anyhow::Result<Vec<Snapshot>> + 'a>;

/// Watches live telemetry and an optional health command.
pub struct LiveMonitor<'a> {
    window_of: WindowSource<'a>,
    kb: &'a Kb,
    window: Duration,
    health_cmd: Option<String>,
    health_timeout: Duration,
    baseline: Findings,
    scope: NewSymptoms,
    worsening: f64,
    changed: BTreeSet<String>,
}

/// Symptoms a change of `keys` can plausibly cause: each key's symptoms and counter-symptoms, and those of its KB edge partners.
pub fn attributable<'k>(kb: &Kb, keys: impl IntoIterator<Item = &'k String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for k in keys {
        let partners = kb.edges_of(k).map(|e| e.other(k));
        for p in std::iter::once(k.as_str()).chain(partners).filter_map(|key| kb.param(key)) {
            out.extend(p.symptoms.iter().chain(&p.counter_symptoms).cloned());
        }
    }
    out
}

/// How much worse `now` is than `before` (the same symptom), or `None` when it is not `factor` times worse.
///
/// The symptom's counter signals (rates, deltas per second) are compared when it has any, else
/// its gauges and ratios: context gates such as PSI beside a counter do not decide. Every
/// compared signal must be worse by the factor, in the direction its threshold points.
pub fn worsened(kb: &Kb, before: &Finding, before_s: f64, now: &Finding, now_s: f64, factor: f64) -> Option<String> {
    let sym = kb.symptoms.get(&now.id)?;
    if factor <= 0.0 || before.evidence.len() != sym.when.len() || now.evidence.len() != sym.when.len() {
        return None;
    }
    let counter = |m: Measure| matches!(m, Measure::Rate | Measure::Delta);
    let any_counter = sym.when.iter().any(|s| counter(s.measure));
    let per_s = |v: f64, m: Measure, secs: f64| if m == Measure::Delta && secs > 0.0 { v / secs } else { v };
    let mut parts = Vec::new();
    for (i, sig) in sym.when.iter().enumerate().filter(|(_, s)| counter(s.measure) == any_counter) {
        let (a, b) = (per_s(before.evidence[i].value, sig.measure, before_s), per_s(now.evidence[i].value, sig.measure, now_s));
        let worse = match sig.op {
            Op::Gt | Op::Ge => a > 0.0 && b >= a * factor,
            Op::Lt | Op::Le => b > 0.0 && b * factor <= a,
            Op::Eq | Op::Ne => false,
        };
        if !worse {
            return None;
        }
        let ratio = if b >= a { b / a } else { a / b };
        parts.push(format!("{} {} → {}, ×{ratio:.1}", now.evidence[i].metric, fmt(a), fmt(b)));
    }
    (!parts.is_empty()).then(|| format!("{} got worse ({}; the limit is ×{factor})", now.id, parts.join("; ")))
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

impl<'a> LiveMonitor<'a> {
    /// A monitor that judges each `window` taken by `window_of` against `baseline` (the findings before the apply), by `scope` and `worsening` (the policy's).
    pub fn new(window_of: WindowSource<'a>, kb: &'a Kb, window: Duration, health_cmd: Option<String>, baseline: Findings, scope: NewSymptoms, worsening: f64) -> Self {
        let health_timeout = Duration::from_secs_f64(crate::safety::policy::DEFAULT_HEALTH_TIMEOUT_S);
        Self { window_of, kb, window, health_cmd, health_timeout, baseline, scope, worsening, changed: BTreeSet::new() }
    }

    /// The health command's limit (the default is the policy's default, 30 s).
    pub fn with_health_timeout(mut self, limit: Duration) -> Self {
        self.health_timeout = limit;
        self
    }

    fn run_health_cmd(&self) -> anyhow::Result<Option<String>> {
        let Some(cmd) = &self.health_cmd else { return Ok(None) };
        health_check(cmd, self.health_timeout)
    }
}

/// Runs health command `cmd` under `limit`: `None` when it passed, else why it failed.
pub fn health_check(cmd: &str, limit: Duration) -> anyhow::Result<Option<String>> {
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(cmd);
    let out = crate::eval::process::run_group(c, None, limit).map_err(|e| anyhow::anyhow!("running health command {cmd:?}: {e}"))?;
    Ok(match out.status {
        Some(s) if s.success() => None,
        Some(s) => Some(format!("health command {cmd:?} exited with {s} {}", out.stderr_tail())),
        None => Some(format!(
            "health command {cmd:?} did not finish within {} s and was killed with its process group (raise --health-timeout or the policy's health_timeout_seconds if it needs longer)",
            limit.as_secs_f64()
        )),
    })
}

impl Monitor for LiveMonitor<'_> {
    fn after_batch(&mut self, index: usize, keys: &[String]) -> anyhow::Result<Health> {
        // Batches accumulate: a symptom after batch 2 may come from batch 1's keys.
        self.changed.extend(keys.iter().cloned());
        let snaps = (self.window_of)(self.window)?;
        let f = diagnose_series(&snaps, self.kb);
        let related = attributable(self.kb, &self.changed);
        let (mut blamed, mut unrelated) = (Vec::new(), Vec::new());
        for x in &f.findings {
            let judged = self.scope == NewSymptoms::Any || related.contains(&x.id);
            if let Some(was) = self.baseline.get(&x.id) {
                if judged && let Some(why) = worsened(self.kb, was, self.baseline.window_s, x, f.window_s, self.worsening) {
                    blamed.push(why);
                }
                continue;
            }
            let line = format!("{} ({})", x.id, x.evidence.iter().map(|e| e.describe()).collect::<Vec<_>>().join("; "));
            if judged {
                blamed.push(format!("new symptom {line}"));
            } else {
                unrelated.push(line);
            }
        }
        let batch = format!("batch {index} [{}]", keys.join(", "));
        if let Some(failed) = self.run_health_cmd()? {
            return Ok(Health::Regressed(format!("{batch}: {failed}")));
        }
        if !blamed.is_empty() {
            return Ok(Health::Regressed(format!("{batch}: after the change: {}", blamed.join(", "))));
        }
        let also = if unrelated.is_empty() { String::new() } else { format!("; also seen, not linked to the changed keys by the KB: {}", unrelated.join(", ")) };
        Ok(Health::Healthy(format!("{batch}: no new or worse symptom linked to the change over {:.1} s{}{also}", self.window.as_secs_f64(), if self.health_cmd.is_some() { ", health command passed" } else { "" })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_health_command_fails_the_check_at_its_limit() {
        let t0 = std::time::Instant::now();
        let why = health_check("sleep 5", Duration::from_millis(200)).unwrap().expect("a hung check fails");
        assert!(t0.elapsed() < Duration::from_secs(3), "waited {:?} for a hung health command", t0.elapsed());
        assert!(why.contains("\"sleep 5\"") && why.contains("within 0.2 s") && why.contains("--health-timeout"), "{why}");
        assert_eq!(health_check("true", Duration::from_secs(10)).unwrap(), None);
        assert!(health_check("echo sick >&2; exit 3", Duration::from_secs(10)).unwrap().unwrap().contains("sick"));
    }

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

    fn finding(id: &str, values: &[f64]) -> Finding {
        let kb = Kb::embedded().unwrap();
        let evidence = kb.symptoms[id].when.iter().zip(values).map(|(s, &value)| crate::reasoning::Evidence { metric: s.metric.clone(), measure: s.measure, value, threshold: String::new(), samples: Vec::new() }).collect();
        Finding { id: id.into(), title: String::new(), explain: String::new(), evidence, presence: Default::default() }
    }

    #[test]
    fn a_known_symptom_counts_when_its_counters_get_factor_times_worse() {
        let kb = Kb::embedded().unwrap();
        let q = |v| finding("accept_queue_overflow", &[v]);
        let why = worsened(&kb, &q(10.0), 2.0, &q(25.0), 30.0, 2.0).expect("2.5 times the overflow rate");
        assert!(why.contains("accept_queue_overflow got worse") && why.contains("10.00 → 25.00"), "{why}");
        assert_eq!(worsened(&kb, &q(10.0), 2.0, &q(15.0), 30.0, 2.0), None, "1.5 times is noise at factor 2");
        assert_eq!(worsened(&kb, &q(10.0), 2.0, &q(5.0), 30.0, 2.0), None, "better is not worse");
        assert_eq!(worsened(&kb, &q(10.0), 2.0, &q(100.0), 30.0, 0.0), None, "factor 0 turns it off");
        // Swap-in stalls: the swap-in rate decides, not the PSI gate beside it.
        let s = |rate, psi| finding("swap_in_stalls", &[rate, psi]);
        assert!(worsened(&kb, &s(30.0, 5.0), 2.0, &s(90.0, 2.0), 2.0, 2.0).is_some());
        assert_eq!(worsened(&kb, &s(30.0, 2.0), 2.0, &s(40.0, 9.0), 2.0, 2.0), None);
        // Gauge-only symptoms compare their gauges.
        let r = |v| finding("receive_window_limited", &[v]);
        assert!(worsened(&kb, &r(25.0), 2.0, &r(60.0), 2.0, 2.0).is_some());
        assert_eq!(worsened(&kb, &r(25.0), 2.0, &r(40.0), 2.0, 2.0), None);
    }
}
