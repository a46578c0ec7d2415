//! Apply mode's `objective:` block: the user's command whose runs say whether a change set helped
//! (`tune`'s command objective), the statistic and direction, the guards, the paired repeats and
//! the minimum effect a kept change needs, and how long a rolled-back change is not proposed again.
//! Validated field by field like the rest of the file: unknown fields refused, every bad value an
//! error naming the file, `objective.<field>`, the value and what is valid.

use super::fields::{bad, choice, count, duration, string};
use crate::eval::harness::UserCommand;
use crate::tune::command::{CommandObjective, GUARDS};
use crate::tune::objective::DEFAULT_MIN_EFFECT_PCT;
use crate::tune::{Direction, GuardLimit, ObjectiveSpec, Stat};
use anyhow::{Result, bail};
use serde_json::Value as J;
use std::time::Duration;

/// The fields of the `objective:` block.
pub const FIELDS: [&str; 8] = ["cmd", "stat", "goal", "timeout", "repeats", "min_effect", "guards", "retry_after"];

/// The statistics a run may be scored by, as written.
const STATS: [&str; 6] = ["p50", "p95", "p99", "mean", "throughput", "value"];

/// The validated `objective:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// The shell command; one latency per line, or one score with `stat: value`.
    pub cmd: String,
    /// Statistic, direction, guards and minimum effect, as `tune` judges them.
    pub spec: ObjectiveSpec,
    /// How long one run may take before its process group is killed (a failed trial).
    pub timeout: Duration,
    /// Paired repeats per change set (incumbent and candidate interleaved).
    pub repeats: usize,
    /// How long a rolled-back change is not proposed again (unless the workload changes first).
    pub retry_after: Duration,
}

impl Objective {
    /// `tune`'s command objective for it. The agent has already entered `netns:`, so the command
    /// runs there without `ip netns exec`.
    pub fn source(&self) -> CommandObjective {
        CommandObjective::new(UserCommand { cmd: self.cmd.clone(), netns: None, column: None, timeout: self.timeout }, self.spec.stat)
    }

    /// One line for logs: what is measured and how a change is kept.
    pub fn describe(&self) -> String {
        let guards: Vec<String> = self.spec.guards.iter().map(|g| format!("{} ≤ +{} %", g.name, g.max_worsening_pct)).collect();
        format!("{:?} {} of {:?}, {} paired repeats, min effect {} %, guards {}", self.spec.stat, goal_name(self.spec.direction), self.cmd, self.repeats, self.spec.min_effect_pct, guards.join(", "))
    }
}

fn goal_name(d: Direction) -> &'static str {
    match d {
        Direction::Lower => "lower is better",
        Direction::Higher => "higher is better",
    }
}

/// A percentage in `[min, max)`: a number or a string such as `"1%"`.
fn percent(file: &str, field: &str, v: &J, max: f64, what: &str) -> Result<f64> {
    let n = match v {
        J::Number(n) => n.as_f64(),
        J::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(p) if p.is_finite() && p >= 0.0 && p < max => Ok(p),
        _ => Err(bad(file, field, v, &format!("is not valid; use {what}, a percentage from 0 to below {max} (a number, or a string such as \"1%\")"))),
    }
}

/// `guards: { errors: 0, throughput: 5 }`: each guard the command reports and the worsening it
/// tolerates, percent; `errors: 0` is on unless given (as `tune --guard`).
fn guards(file: &str, v: &J) -> Result<Vec<GuardLimit>> {
    let Some(map) = v.as_object() else {
        return Err(bad(file, "objective.guards", v, &format!("is not a map; write it as {{ errors: 0, throughput: 5 }} (a guard of {} and the worsening it tolerates, percent)", GUARDS.join(", "))));
    };
    let mut out = Vec::new();
    for (name, pct) in map {
        let field = format!("objective.guards.{name}");
        let direction = match name.as_str() {
            "throughput" => Direction::Higher,
            n if GUARDS.contains(&n) => Direction::Lower,
            _ => bail!("{file}: objective.guards: {name:?} is no guard the objective command reports; use {}", GUARDS.join(", ")),
        };
        let max_worsening_pct = percent(file, &field, pct, f64::INFINITY, "the largest tolerated worsening")?;
        out.push(GuardLimit { name: name.clone(), direction, max_worsening_pct });
    }
    if !out.iter().any(|g| g.name == "errors") {
        out.insert(0, GuardLimit { name: "errors".into(), direction: Direction::Lower, max_worsening_pct: 0.0 });
    }
    Ok(out)
}

/// Validates the `objective:` block of `file`.
pub fn parse(file: &str, v: &J) -> Result<Objective> {
    let Some(map) = v.as_object() else {
        return Err(bad(file, "objective", v, "is not a map; write it as `objective:` with `cmd:`, `stat:`, `goal:` ... below it (packaging/agent.yaml shows one)"));
    };
    if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        bail!("{file}: objective: unknown field `{k}`; the fields are {}", FIELDS.join(", "));
    }
    let field = |name: &str| map.get(name).filter(|v| !v.is_null());
    let Some(cmd) = field("cmd") else {
        bail!("{file}: objective: cmd is missing; give the command whose output measures what you care about (one latency per line, or one score with stat: value)");
    };
    let cmd = string(file, "objective.cmd", cmd)?;
    if cmd.trim().is_empty() || cmd.contains('\0') {
        return Err(bad(file, "objective.cmd", &J::String(cmd), "is not valid; give a shell command that prints one latency per line (or one score with stat: value)"));
    }
    let stat = match field("stat") {
        None => Stat::P99,
        Some(v) => match choice(file, "objective.stat", v, &STATS)? {
            "p50" => Stat::P50,
            "p95" => Stat::P95,
            "mean" => Stat::Mean,
            "throughput" => Stat::Throughput,
            "value" => Stat::Value,
            _ => Stat::P99,
        },
    };
    let direction = match field("goal") {
        None => stat.default_direction(),
        Some(v) => match choice(file, "objective.goal", v, &["lower", "higher"])? {
            "higher" => Direction::Higher,
            _ => Direction::Lower,
        },
    };
    let min_effect_pct = field("min_effect").map(|v| percent(file, "objective.min_effect", v, 100.0, "the smallest improvement worth a change")).transpose()?.unwrap_or(DEFAULT_MIN_EFFECT_PCT);
    let guards = field("guards").map(|v| guards(file, v)).transpose()?.unwrap_or_else(|| vec![GuardLimit { name: "errors".into(), direction: Direction::Lower, max_worsening_pct: 0.0 }]);
    Ok(Objective {
        cmd,
        spec: ObjectiveSpec { stat, direction, guards, min_effect_pct },
        timeout: field("timeout").map(|v| duration(file, "objective.timeout", v, 0.1, 3600.0)).transpose()?.unwrap_or(Duration::from_secs(60)),
        // Two pairs are the fewest an interval can be drawn from (`judge`).
        repeats: field("repeats").map(|v| count(file, "objective.repeats", v, 2, 100)).transpose()?.unwrap_or(5) as usize,
        retry_after: field("retry_after").map(|v| duration(file, "objective.retry_after", v, 60.0, 365.0 * 86400.0)).transpose()?.unwrap_or(Duration::from_secs(86400)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one place the tests call the parser: YAML text of the block's body.
    fn check(yaml: &str) -> std::result::Result<Objective, String> {
        let v: J = serde_saphyr::from_str(yaml).unwrap();
        parse("agent.yaml", &v).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn a_command_alone_is_a_p99_lower_is_better_objective_with_the_errors_guard() {
        let o = check("cmd: ./probe\n").unwrap();
        assert_eq!((o.spec.stat, o.spec.direction, o.repeats, o.timeout), (Stat::P99, Direction::Lower, 5, Duration::from_secs(60)));
        assert_eq!(o.spec.guards, vec![GuardLimit { name: "errors".into(), direction: Direction::Lower, max_worsening_pct: 0.0 }]);
        assert_eq!(o.spec.min_effect_pct, DEFAULT_MIN_EFFECT_PCT);
    }

    #[test]
    fn every_field_is_read_with_its_unit() {
        let o = check("cmd: ./probe\nstat: throughput\ngoal: higher\ntimeout: 90s\nrepeats: 7\nmin_effect: 2.5%\nguards: { errors: 0, rss_mb: \"10%\" }\nretry_after: 2h\n").unwrap();
        assert_eq!((o.spec.stat, o.spec.direction, o.repeats, o.timeout, o.retry_after), (Stat::Throughput, Direction::Higher, 7, Duration::from_secs(90), Duration::from_secs(7200)));
        assert_eq!(o.spec.min_effect_pct, 2.5);
        assert_eq!(o.spec.guards.iter().map(|g| (g.name.as_str(), g.max_worsening_pct)).collect::<Vec<_>>(), vec![("errors", 0.0), ("rss_mb", 10.0)]);
    }

    #[test]
    fn a_bad_objective_field_names_the_field_the_value_and_what_is_valid() {
        let e = check("cmd: ./probe\nrepeats: 1\n").unwrap_err();
        assert!(e.contains("objective.repeats: 1 is not valid") && e.contains("from 2 to 100"), "{e}");
        let e = check("cmd: ./probe\nguards: { latency: 5 }\n").unwrap_err();
        assert!(e.contains("\"latency\" is no guard") && e.contains("errors, throughput, rss_mb"), "{e}");
        let e = check("cmd: ./probe\nrepeat: 5\n").unwrap_err();
        assert!(e.contains("unknown field `repeat`") && e.contains("repeats"), "{e}");
        assert!(check("stat: p99\n").unwrap_err().contains("cmd is missing"));
    }
}
