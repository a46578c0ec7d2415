//! [`AgentMetrics`] as the Prometheus text format 0.0.4: a fresh registry per render, filled from
//! the data and encoded by the `prometheus` crate (which escapes label values and HELP text).
//!
//! A fresh registry each time, rather than long-lived metric objects the agent increments, keeps
//! the agent's state the single source: the counters here are its persisted totals, so they
//! survive a restart, and a render can never disagree with [`AgentMetrics`].

use super::{AgentMetrics, ManagedKey};
use prometheus::core::Collector;
use prometheus::{Counter, Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::collections::BTreeSet;

/// The content type of what [`render`] emits: the Prometheus text format 0.0.4, in UTF-8.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the agent's metrics in the Prometheus text exposition format (see [`CONTENT_TYPE`]).
pub fn render(m: &AgentMetrics) -> String {
    let reg = Registry::new();
    agent(&reg, m);
    changes(&reg, m);
    managed(&reg, &m.managed);
    let mut buf = Vec::new();
    // Encoding our own well-formed families into a Vec cannot fail: names and labels are
    // constants checked when the collectors were built.
    TextEncoder::new().encode(&reg.gather(), &mut buf).expect("text encoding into memory");
    String::from_utf8(buf).expect("the text encoder writes UTF-8")
}

/// Registers a collector built from constant names; a clash would be a bug here, not bad input.
fn add(reg: &Registry, c: impl Collector + 'static) {
    reg.register(Box::new(c)).expect("metric names are unique constants");
}

fn int_gauge(reg: &Registry, name: &str, help: &str, v: u64) {
    let g = IntGauge::new(name, help).expect("valid metric name");
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    add(reg, g);
}

fn int_counter(reg: &Registry, name: &str, help: &str, v: u64) {
    let c = IntCounter::new(name, help).expect("valid metric name");
    c.inc_by(v);
    add(reg, c);
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), labels).expect("valid metric and label names")
}

/// A float that a counter may carry: finite and not negative (anything else reads as 0).
fn counter_value(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}

/// The agent's mode, findings, advice and its own cost.
fn agent(reg: &Registry, m: &AgentMetrics) {
    let mode = gauge_vec("semantos_agent_mode_info", "The agent's mode (observe or apply), as a label; always 1.", &["mode"]);
    mode.with_label_values(&[m.mode.as_str()]).set(1.0);
    add(reg, mode);

    let findings: BTreeSet<&str> = m.findings.iter().map(String::as_str).collect();
    int_gauge(reg, "semantos_findings", "KB symptoms present now (sustained over the window).", findings.len() as u64);
    let present = gauge_vec("semantos_finding_present", "1 for each KB symptom present now.", &["symptom"]);
    for f in &findings {
        present.with_label_values(&[*f]).set(1.0);
    }
    add(reg, present);

    int_gauge(reg, "semantos_advice_open", "Open advice items.", m.advice.len() as u64);
    let seen = IntCounterVec::new(
        Opts::new("semantos_advice_seen_total", "Times each open advice was seen, under its stable ID."),
        &["id", "symptom", "key"],
    )
    .expect("valid metric and label names");
    let mut ids = BTreeSet::new();
    for a in &m.advice {
        // One series per ID: a repeated ID would otherwise add its counts together.
        if ids.insert(a.id.as_str()) {
            seen.with_label_values(&[a.id.as_str(), a.symptom.as_str(), a.key.as_str()]).inc_by(a.count);
        }
    }
    add(reg, seen);

    int_counter(reg, "semantos_samples_total", "Samples taken.", m.samples_total);
    let cpu = Counter::new("semantos_agent_cpu_seconds_total", "The agent's own CPU time, user + system (updated once per window).").expect("valid metric name");
    cpu.inc_by(counter_value(m.cpu_seconds_total));
    add(reg, cpu);
    int_gauge(reg, "semantos_agent_resident_memory_bytes", "The agent's resident set size (updated once per window).", m.rss_bytes);
    let last = Gauge::new("semantos_last_sample_duration_seconds", "How long the last sample took: its reads, and the window's diagnosis when it ended one.").expect("valid metric name");
    last.set(m.last_sample_seconds);
    add(reg, last);
}

/// Changes applied and rolled back, advice held back, drift, workload changes and ownership conflicts.
fn changes(reg: &Registry, m: &AgentMetrics) {
    int_counter(reg, "semantos_changes_applied_total", "Change sets applied and kept.", m.changes_applied_total);
    int_counter(reg, "semantos_changes_rolled_back_total", "Change sets rolled back (by measurement, monitor or on exit).", m.changes_rolled_back_total);
    int_gauge(reg, "semantos_advice_held_back", "Advice rolled back by its measurement and not proposed again until a workload change or objective.retry_after.", m.advice_held_back);
    int_counter(reg, "semantos_advice_rolled_back_by_measurement_total", "Advice rolled back by its measurement (one per advice ID of each change set).", m.advice_rolled_back_by_measurement_total);
    int_counter(reg, "semantos_drift_total", "Managed keys found changed behind the agent's back, once per change (checked once per window).", m.drift_total);
    int_counter(reg, "semantos_workload_changes_total", "Workload changes detected on the symptom and objective signals.", m.workload_changes_total);
    let pairs: BTreeSet<(&str, &str)> = m.conflicts.iter().map(|c| (c.key.as_str(), c.owner.as_str())).collect();
    int_gauge(reg, "semantos_ownership_conflicts", "Keys another owner manages.", pairs.len() as u64);
    let info = gauge_vec("semantos_ownership_conflict_info", "1 for each key and the other owner that manages it.", &["key", "owner"]);
    for (k, o) in &pairs {
        info.with_label_values(&[*k, *o]).set(1.0);
    }
    add(reg, info);
}

/// Managed keys: agreement, the raw values as labels, and each numeric field as a value.
fn managed(reg: &Registry, keys: &[ManagedKey]) {
    int_gauge(reg, "semantos_managed_keys", "Keys SemantOS manages.", keys.len() as u64);
    let agree = gauge_vec("semantos_managed_key_in_agreement", "1 when the live value equals the intended one, else 0.", &["key"]);
    let info = gauge_vec(
        "semantos_managed_key_info",
        "The intended and live values as written (live is empty when unreadable); always 1.",
        &["key", "intended", "live"],
    );
    // Sysctl values can hold several numbers (net.ipv4.tcp_rmem = "4096 131072 6291456"): one
    // series per field, so a dashboard can graph each; a non-numeric field has no series.
    let intended = gauge_vec("semantos_managed_key_intended_value", "Each numeric field of the intended value.", &["key", "field"]);
    let live = gauge_vec("semantos_managed_key_live_value", "Each numeric field of the live value (read once per window).", &["key", "field"]);
    let mut seen = BTreeSet::new();
    for k in keys {
        if !seen.insert(k.key.as_str()) {
            continue; // one series set per key; the first entry wins
        }
        agree.with_label_values(&[k.key.as_str()]).set(if k.in_agreement { 1.0 } else { 0.0 });
        info.with_label_values(&[k.key.as_str(), k.intended.as_str(), k.live.as_deref().unwrap_or("")]).set(1.0);
        fields(&intended, &k.key, &k.intended);
        if let Some(v) = &k.live {
            fields(&live, &k.key, v);
        }
    }
    for v in [agree, info, intended, live] {
        add(reg, v);
    }
}

fn fields(vec: &GaugeVec, key: &str, value: &str) {
    for (i, f) in value.split_whitespace().enumerate() {
        if let Ok(x) = f.parse::<f64>() {
            vec.with_label_values(&[key, i.to_string().as_str()]).set(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_is_the_text_format_the_encoder_writes() {
        assert!(CONTENT_TYPE.starts_with(prometheus::TEXT_FORMAT), "{CONTENT_TYPE} vs {}", prometheus::TEXT_FORMAT);
    }

    #[test]
    fn empty_metrics_render_every_scalar_with_help_and_type() {
        let text = render(&AgentMetrics::default());
        for name in ["semantos_samples_total", "semantos_changes_applied_total", "semantos_agent_resident_memory_bytes"] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} HELP missing:\n{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} TYPE missing:\n{text}");
            assert!(text.contains(&format!("\n{name} 0\n")), "{name} sample missing:\n{text}");
        }
    }

    #[test]
    fn advice_held_back_and_rolled_back_by_measurement_are_published_with_help() {
        let text = render(&AgentMetrics { advice_held_back: 2, advice_rolled_back_by_measurement_total: 3, ..Default::default() });
        for (name, kind, v) in [("semantos_advice_held_back", "gauge", 2), ("semantos_advice_rolled_back_by_measurement_total", "counter", 3)] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} HELP missing:\n{text}");
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name} TYPE missing:\n{text}");
            assert!(text.contains(&format!("\n{name} {v}\n")), "{name} sample missing:\n{text}");
        }
    }

    #[test]
    fn negative_or_nan_cpu_seconds_render_as_zero_not_a_decreasing_counter() {
        for v in [-1.0, f64::NAN, f64::INFINITY] {
            let text = render(&AgentMetrics { cpu_seconds_total: v, ..Default::default() });
            assert!(text.contains("\nsemantos_agent_cpu_seconds_total 0\n"), "{v}:\n{text}");
        }
    }

    #[test]
    fn multi_field_values_get_one_series_per_numeric_field() {
        let m = AgentMetrics {
            managed: vec![ManagedKey { key: "net.ipv4.tcp_rmem".into(), intended: "4096 131072 6291456".into(), live: Some("4096 x 1".into()), in_agreement: false }],
            ..Default::default()
        };
        let text = render(&m);
        assert!(text.contains("semantos_managed_key_intended_value{field=\"2\",key=\"net.ipv4.tcp_rmem\"} 6291456"), "{text}");
        assert!(text.contains("semantos_managed_key_live_value{field=\"2\",key=\"net.ipv4.tcp_rmem\"} 1"), "{text}");
        assert!(!text.contains("semantos_managed_key_live_value{field=\"1\""), "{text}");
    }
}
