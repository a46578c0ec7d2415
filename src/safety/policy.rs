//! The policy: which keys may be changed, how far in one step, what risk is
//! acceptable, and the health thresholds the monitor watches. Loaded from
//! YAML (`--policy FILE` or the `policy:` section of an experiment config).

use crate::kb::Risk;
use serde::{Deserialize, Serialize};

/// The seed's whitelist: the keys SemantOS may change unless a policy says otherwise.
pub const DEFAULT_WHITELIST: &[&str] = &[
    "vm.dirty_*",
    "vm.swappiness",
    "net.core.somaxconn",
    "net.core.netdev_max_backlog",
    "kernel.sched_latency_ns",
    "kernel.sched_min_granularity_ns",
    "kernel.numa_balancing",
];

/// Guardrail settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Key patterns that may be changed (`*` matches within and across components).
    #[serde(default = "default_whitelist")]
    pub whitelist: Vec<String>,
    /// Extra patterns added to the whitelist (so a policy can extend the default instead of replacing it).
    #[serde(default)]
    pub extend_whitelist: Vec<String>,
    /// Key patterns that are refused even if whitelisted (KB `never` entries are always refused).
    #[serde(default)]
    pub never_touch: Vec<String>,
    /// Largest factor by which one change may move a numeric value (e.g. 8: 128 → at most 1024).
    #[serde(default = "default_max_step")]
    pub max_step_ratio: f64,
    /// Highest KB risk a change may carry.
    #[serde(default = "default_max_risk")]
    pub max_risk: Risk,
    /// Monitor: relative p95 regression of a watched workload that triggers rollback (0.05 = 5 %).
    #[serde(default = "default_regression")]
    pub max_p95_regression: f64,
    /// Monitor window in seconds; 0, as `--monitor-seconds 0`, watches no telemetry (the health command still runs).
    #[serde(default = "default_window")]
    pub monitor_seconds: f64,
    /// Changes per batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Which new symptoms during a live monitor window roll back.
    #[serde(default)]
    pub monitor_new_symptoms: NewSymptoms,
    /// A symptom already present before the apply rolls back when the window shows it this many
    /// times worse (its counters' rates, else its gauges); 0 turns the check off.
    #[serde(default = "default_worsening")]
    pub monitor_worsening_factor: f64,
    /// Seconds the health command may run after a batch before it is killed (with its process
    /// group) and counts as failed; `--health-timeout` overrides it.
    #[serde(default = "default_health_timeout")]
    pub health_timeout_seconds: f64,
}

/// Which symptoms that appear during a live monitor window count as a regression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewSymptoms {
    /// Only those the KB links to a changed key (its symptoms, counter-symptoms, or an edge
    /// partner's): a host-wide signal flapping around its threshold on a busy machine does
    /// not undo an unrelated change. Others are reported, not acted on.
    #[default]
    Attributed,
    /// Every new symptom, related or not (strictest; noisy on shared hosts).
    Any,
}

fn default_whitelist() -> Vec<String> {
    DEFAULT_WHITELIST.iter().map(|s| s.to_string()).collect()
}
fn default_max_step() -> f64 {
    8.0
}
fn default_max_risk() -> Risk {
    Risk::Medium
}
fn default_regression() -> f64 {
    0.05
}
fn default_window() -> f64 {
    30.0
}
fn default_batch() -> usize {
    2
}
fn default_worsening() -> f64 {
    2.0
}
/// The health command's default limit: long enough for a real probe, short enough that a hung
/// one does not keep the values written and the lock held for long.
pub const DEFAULT_HEALTH_TIMEOUT_S: f64 = 30.0;
fn default_health_timeout() -> f64 {
    DEFAULT_HEALTH_TIMEOUT_S
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            whitelist: default_whitelist(),
            extend_whitelist: Vec::new(),
            never_touch: Vec::new(),
            max_step_ratio: default_max_step(),
            max_risk: default_max_risk(),
            max_p95_regression: default_regression(),
            monitor_seconds: default_window(),
            batch_size: default_batch(),
            monitor_new_symptoms: NewSymptoms::default(),
            monitor_worsening_factor: default_worsening(),
            health_timeout_seconds: default_health_timeout(),
        }
    }
}

impl Policy {
    /// Checks the settings; the message names the field, the value and what is valid.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.max_step_ratio.is_finite() && self.max_step_ratio >= 1.0) {
            return Err(format!("policy.max_step_ratio: {} is invalid; use a number ≥ 1 (1 forbids any numeric change, 8 allows ×8 or ÷8)", self.max_step_ratio));
        }
        if !(self.max_p95_regression.is_finite() && (0.0..=10.0).contains(&self.max_p95_regression)) {
            return Err(format!("policy.max_p95_regression: {} is invalid; use a fraction between 0 and 10 (0.05 = 5 %)", self.max_p95_regression));
        }
        if !(self.monitor_seconds.is_finite() && self.monitor_seconds >= 0.0 && self.monitor_seconds <= 86400.0) {
            return Err(format!("policy.monitor_seconds: {} is invalid; use seconds in [0, 86400] (0: no telemetry window, the health command still runs)", self.monitor_seconds));
        }
        if !(self.monitor_worsening_factor == 0.0 || (self.monitor_worsening_factor.is_finite() && self.monitor_worsening_factor >= 1.1)) {
            return Err(format!("policy.monitor_worsening_factor: {} is invalid; use 1.1 or more (2 = twice as bad), or 0 to turn the check off", self.monitor_worsening_factor));
        }
        if !(self.health_timeout_seconds.is_finite() && self.health_timeout_seconds > 0.0 && self.health_timeout_seconds <= 86400.0) {
            return Err(format!("policy.health_timeout_seconds: {} is invalid; use seconds in (0, 86400] (the default is {DEFAULT_HEALTH_TIMEOUT_S})", self.health_timeout_seconds));
        }
        if self.batch_size == 0 {
            return Err("policy.batch_size: 0 is invalid; use 1 or more changes per batch".into());
        }
        if self.max_risk == Risk::Never {
            return Err("policy.max_risk: never is invalid; `never` entries are refused under every policy (use low, medium or high)".into());
        }
        for (field, list) in [("whitelist", &self.whitelist), ("extend_whitelist", &self.extend_whitelist), ("never_touch", &self.never_touch)] {
            for p in list {
                check_pattern(p).map_err(|e| format!("policy.{field}: policy pattern {p:?} is invalid, it can never match a key: {e}; use a sysctl key with optional `*`, e.g. vm.dirty_*"))?;
            }
        }
        Ok(())
    }

    /// Parses and validates the bytes of a policy file (the caller reads it: this stage does no
    /// I/O); every failure (not UTF-8, not YAML, bad field) names `file`, so the caller reports
    /// it as invalid input.
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Policy, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("{file}: the policy is not valid UTF-8 (first bad byte at offset {}); save it as UTF-8 YAML", e.valid_up_to()))?;
        Policy::parse(text, file)
    }

    /// Parses and validates policy YAML; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Policy, String> {
        let p: Policy = serde_saphyr::from_str(text).map_err(|e| format!("{file}: {}", e.to_string().replace("<input>", file)))?;
        p.validate().map_err(|e| format!("{file}: {e}"))?;
        Ok(p)
    }

    /// Checks every pattern against the keys the KB knows (`known`, with the user's `--kb`
    /// overrides): a pattern that matches none of them is a typo or a key without an entry. In
    /// `whitelist` and `extend_whitelist` it is an error, because those lists grant writes: a grant
    /// that names nothing today would silently become live the day the KB gains the key, without
    /// anyone reviewing it. In `never_touch` it is a warning (returned), because that list only
    /// narrows: naming nothing takes nothing away. Each message names `file`, the list and the
    /// pattern, with the near key when there is one.
    pub fn check_keys(&self, file: &str, known: &[&str]) -> Result<Vec<String>, String> {
        let unmatched = |list: &[String]| -> Vec<String> { list.iter().filter(|p| !known.iter().any(|k| glob(p, k))).cloned().collect() };
        let say = |field: &str, p: &str| {
            let hint = crate::reasoning::plan::unknown_key_hint(p, known.iter().copied());
            format!("{file}: policy.{field}: {p:?} matches no key of the knowledge base; {hint}")
        };
        let mut errors = Vec::new();
        for (field, list) in [("whitelist", &self.whitelist), ("extend_whitelist", &self.extend_whitelist)] {
            errors.extend(unmatched(list).iter().map(|p| format!("{} (a whitelist entry grants writes, so it must name a key; fix or remove it)", say(field, p))));
        }
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        Ok(unmatched(&self.never_touch).iter().map(|p| format!("{} (ignored: it narrows nothing)", say("never_touch", p))).collect())
    }

    /// Whether `key` is whitelisted.
    pub fn allows(&self, key: &str) -> bool {
        self.whitelist.iter().chain(&self.extend_whitelist).any(|p| glob(p, key))
    }

    /// Whether `key` is on the policy's never-touch list.
    pub fn forbids(&self, key: &str) -> bool {
        self.never_touch.iter().any(|p| glob(p, key))
    }
}

/// Checks a whitelist or never-touch pattern: a sysctl key (`SysctlKey` syntax, dotted or
/// slashed) in which `*` may stand for any run of characters. A pattern that is not a key
/// (`../../etc/passwd`, `/proc/sys/vm/x`, `vm..x`, 300 bytes) can never match one, so it is
/// a mistake in the policy, not a harmless no-op.
pub fn check_pattern(p: &str) -> Result<(), String> {
    // `*` stands in for one key character so the key rules (length, separators, `..`) apply
    // to the rest of the pattern unchanged.
    let as_key = p.replace('*', "x");
    crate::sysctl::SysctlKey::parse(&as_key).map(|_| ()).map_err(|e| if as_key == p { e.to_string() } else { e.to_string().replace(&format!("{as_key:?}"), &format!("{p:?}")) })
}

/// Shell-style match with `*` only.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing_and_default_whitelist() {
        let p = Policy::default();
        assert!(p.allows("vm.dirty_ratio"));
        assert!(p.allows("net.core.somaxconn"));
        assert!(!p.allows("net.ipv4.tcp_rmem"));
        assert!(!p.allows("vm.dirty"));
        assert!(glob("net.*.rmem_max", "net.core.rmem_max"));
        assert!(!glob("net.core.*", "net.ipv4.tcp_rmem"));
    }

    #[test]
    fn invalid_settings_are_named() {
        let p = Policy { max_step_ratio: 0.5, ..Policy::default() };
        assert!(p.validate().unwrap_err().contains("policy.max_step_ratio: 0.5"));
        let p = Policy { batch_size: 0, ..Policy::default() };
        assert!(p.validate().unwrap_err().contains("policy.batch_size"));
        let p = Policy { whitelist: vec!["vm.$x".into()], ..Policy::default() };
        assert!(p.validate().unwrap_err().contains("\"vm.$x\""));
        let p = Policy { health_timeout_seconds: 0.0, ..Policy::default() };
        assert!(p.validate().unwrap_err().contains("policy.health_timeout_seconds: 0"));
    }

    #[test]
    fn patterns_that_can_never_match_a_key_are_refused() {
        let refused = |field: &str, p: Policy, frag: &str| {
            let e = p.validate().unwrap_err();
            assert!(e.contains(&format!("policy.{field}: policy pattern")) && e.contains(frag), "{e}");
        };
        let long = format!("vm.{}", "a".repeat(300));
        refused("extend_whitelist", Policy { extend_whitelist: vec!["../../etc/passwd".into()], ..Policy::default() }, "`..`");
        refused("never_touch", Policy { never_touch: vec!["/proc/sys/vm/swappiness".into()], ..Policy::default() }, "absolute paths");
        refused("whitelist", Policy { whitelist: vec!["vm..x".into()], ..Policy::default() }, "\"vm..x\"");
        refused("never_touch", Policy { never_touch: vec![long], ..Policy::default() }, "longer than 256 bytes");
        refused("whitelist", Policy { whitelist: vec!["vm.*.".into()], ..Policy::default() }, "\"vm.*.\" has an empty component");
        // Globs in every place the matcher honours them stay valid.
        let ok = Policy { whitelist: vec!["*".into(), "net.*.rmem_max".into(), "vm/dirty_*".into()], never_touch: vec!["kernel.*".into()], ..Policy::default() };
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn unknown_whitelist_key_is_an_error_and_unknown_never_touch_key_a_warning() {
        let known = ["vm.swappiness", "vm.dirty_ratio", "net.core.somaxconn", "net.core.netdev_max_backlog", "kernel.numa_balancing", "kernel.sched_latency_ns", "kernel.sched_min_granularity_ns"];
        let p = Policy::parse("extend_whitelist: [net.core.somaxcon]\n", "p.yaml").unwrap();
        let e = p.check_keys("p.yaml", &known).unwrap_err();
        assert!(e.contains("p.yaml: policy.extend_whitelist: \"net.core.somaxcon\" matches no key") && e.contains("did you mean net.core.somaxconn?"), "{e}");
        let p = Policy::parse("whitelist: [vm.nothing_like_this]\n", "p.yaml").unwrap();
        assert!(p.check_keys("p.yaml", &known).unwrap_err().contains("semantos kb list"));
        let p = Policy::parse("never_touch: [vm.swapines, kernel.*]\n", "p.yaml").unwrap();
        let w = p.check_keys("p.yaml", &known).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("policy.never_touch: \"vm.swapines\"") && w[0].contains("did you mean vm.swappiness?"), "{w:?}");
        // The default whitelist and globs that match something pass, against the real KB too.
        assert_eq!(Policy::default().check_keys("p.yaml", &known), Ok(vec![]));
        let kb = crate::kb::Kb::embedded().unwrap();
        let all: Vec<&str> = kb.params.keys().map(String::as_str).collect();
        assert_eq!(Policy::default().check_keys("p.yaml", &all), Ok(vec![]));
    }

    #[test]
    fn policy_file_that_is_not_utf8_is_an_input_error_naming_the_file() {
        let e = Policy::from_bytes(b"whitelist: [vm.swappiness]\nnever_touch: [\xff\xfe]\n", "policy.yaml").unwrap_err();
        assert!(e.contains("policy.yaml") && e.contains("not valid UTF-8"), "{e}");
    }
}
