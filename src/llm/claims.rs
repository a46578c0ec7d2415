//! Checked explanations: every metric, key and number an LLM rationale cites
//! is held against what the model was given — the findings' evidence, the
//! snapshot of the window, the keys' current values and the prompt's KB
//! facts. An audit of another LLM tuner found 41 of 97 claims misstating the
//! evidence; a rationale with any claim that does not match is marked
//! unsupported, with the claims that failed, so that people see it and such
//! a change is only ever kept by measurement.
//!
//! What is a claim, read from the text (no model, no grammar; a rationale
//! is one or two sentences):
//! * a dotted name whose first part is a telemetry family seen in the
//!   snapshot (`netstat.TcpExt.ListenOverflows`) is a metric: it must exist
//!   in the findings or the snapshot; the first number after it in the same
//!   clause is its value, and must match the evidence, the snapshot or the
//!   window's rate within the rounding it is written with;
//! * a dotted name that is a sysctl key (in the KB or on the host) must be
//!   one the host has; the first number after it in the same clause, unless
//!   it follows `to` (the proposed value), is its current value;
//! * any other number must match some figure the model was given (evidence,
//!   thresholds, snapshot, current values, the candidate keys' KB min, max,
//!   default and suggestion, host facts, window length, the step limit, the
//!   proposed value). Integers up to 10 are counts and factors ("2 samples",
//!   "x4") and are not checked.
//!
//! "Within rounding": `37` covers 36.5–37.5, `37.2` covers 37.15–37.25,
//! `1200` covers 1150–1250 (a number written with trailing zeros is taken as
//! rounded to its last non-zero digit, at most 5 % either way); a percentage
//! also matches the fraction (`85%` = 0.85).

use crate::reasoning::{Context, Findings};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The verdict on one rationale.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Support {
    /// The key of the change the rationale explains.
    pub key: String,
    /// Claims read from the rationale.
    pub checked: usize,
    /// Each claim that did not match the evidence, in words.
    pub failed: Vec<String>,
}

impl Support {
    /// Every claim matched (or there was none).
    pub fn supported(&self) -> bool {
        self.failed.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Number { text: String, value: f64, percent: bool },
    Word(String),
    /// A clause break: `.` `;` `,` `(` `)` and the like.
    Break,
}

fn tokens(text: &str) -> Vec<Token> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_ascii_alphabetic() || ch == '_' {
            let s = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || (c[i] == '.' && i + 1 < c.len() && (c[i + 1].is_ascii_alphanumeric() || c[i + 1] == '_'))) {
                i += 1;
            }
            let w: String = c[s..i].iter().collect();
            out.push(if w.contains('.') { Token::Name(w) } else { Token::Word(w.to_ascii_lowercase()) });
        } else if ch.is_ascii_digit() {
            let s = i;
            let mut digits = String::new();
            while i < c.len() {
                if c[i].is_ascii_digit() {
                    digits.push(c[i]);
                } else if c[i] == '.' && i + 1 < c.len() && c[i + 1].is_ascii_digit() && !digits.contains('.') {
                    digits.push('.');
                } else if c[i] == ',' && i + 3 < c.len() + 1 && c[i + 1..].iter().take(3).all(|d| d.is_ascii_digit()) && c.get(i + 4).is_none_or(|d| !d.is_ascii_digit()) && !digits.contains('.') {
                    // A thousands separator ("1,024"), not a list ("10, 20").
                } else {
                    break;
                }
                i += 1;
            }
            let percent = c.get(i) == Some(&'%');
            let text: String = c[s..i].iter().collect();
            if let Ok(value) = digits.parse::<f64>() {
                out.push(Token::Number { text, value, percent });
            }
            // A unit glued to the number ("16MB", "5s") is read as a word of its own.
        } else if ".;,()[]!?:".contains(ch) {
            out.push(Token::Break);
            i += 1;
        } else if ch == '→' || ch == '>' {
            out.push(Token::Word("to".into()));
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Half a unit of the last significant digit written (capped at 5 % for trailing zeros).
fn tolerance(text: &str, value: f64) -> f64 {
    let digits: String = text.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
    if let Some((_, frac)) = digits.split_once('.') {
        return 0.5 * 10f64.powi(-(frac.len() as i32));
    }
    let zeros = digits.chars().rev().take_while(|c| *c == '0').count().min(digits.len().saturating_sub(1));
    (0.5 * 10f64.powi(zeros as i32)).min((0.05 * value).max(0.5))
}

fn matches(text: &str, value: f64, percent: bool, actual: f64) -> bool {
    if !actual.is_finite() {
        return false;
    }
    let tol = tolerance(text, value);
    (value - actual).abs() <= tol + 1e-9 || (percent && (value / 100.0 - actual).abs() <= tol / 100.0 + 1e-12)
}

/// Everything the model was given, by what it is.
struct Evidence {
    /// Metric → the figures it was shown with (evidence, snapshot values, window rate).
    metrics: BTreeMap<String, Vec<f64>>,
    /// First parts of metric names (`netstat`, `softnet`...): a dotted name starting so is a metric.
    families: BTreeSet<String>,
    /// Key → its current value's numbers.
    keys: BTreeMap<String, Vec<f64>>,
    /// Every figure of the prompt.
    pool: Vec<f64>,
}

fn numbers_in(s: &str) -> Vec<f64> {
    tokens(s).into_iter().filter_map(|t| if let Token::Number { value, .. } = t { Some(value) } else { None }).collect()
}

fn gather(findings: &Findings, ctx: &Context, proposed: &str, max_step: f64) -> Evidence {
    let mut metrics: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (b, a) = (ctx.window.before, ctx.window.after);
    let dt = a.timestamp_ms.saturating_sub(b.timestamp_ms) as f64 / 1000.0;
    for (name, v) in &a.metrics {
        let e = metrics.entry(name.clone()).or_default();
        e.push(*v);
        if let Some(before) = b.metrics.get(name) {
            e.push(*before);
            if dt > 0.0 {
                e.push((v - before) / dt);
            }
            e.push(v - before);
        }
    }
    let mut pool = Vec::new();
    for f in &findings.findings {
        for ev in &f.evidence {
            let e = metrics.entry(ev.metric.clone()).or_default();
            e.push(ev.value);
            e.extend(ev.samples.iter().flatten());
            pool.push(ev.value);
            pool.extend(numbers_in(&ev.threshold));
            pool.extend(ev.samples.iter().flatten());
        }
    }
    let families = metrics.keys().filter_map(|m| m.split('.').next()).map(str::to_string).collect();
    let keys: BTreeMap<String, Vec<f64>> = ctx.current.iter().map(|(k, v)| (k.clone(), numbers_in(&v.to_string()))).collect();
    pool.extend(metrics.values().flatten());
    pool.extend(keys.values().flatten());
    for p in ctx.kb.params.values().filter(|p| ctx.current.contains_key(&p.key)) {
        pool.extend(p.min.map(|v| v as f64));
        pool.extend(p.max.map(|v| v as f64));
        pool.extend(p.default.iter().flat_map(|d| numbers_in(d)));
        pool.extend(p.suggest.get(ctx.intent).iter().flat_map(|d| numbers_in(d)));
    }
    let h = &findings.host;
    pool.extend([h.ncpus as f64, h.numa_nodes as f64, (h.mem_total_kb / (1024 * 1024)) as f64, findings.window_s, max_step]);
    pool.extend(numbers_in(proposed));
    Evidence { metrics, families, keys, pool }
}

/// Checks one rationale of a change of `key` to `proposed`, against what the
/// model was given (`max_step` is the step limit the prompt stated).
pub fn check(rationale: &str, key: &str, proposed: &str, findings: &Findings, ctx: &Context, max_step: f64) -> Support {
    let ev = gather(findings, ctx, proposed, max_step);
    let is_key = |n: &str| ev.keys.contains_key(n) || ctx.kb.param(n).is_some();
    let toks = tokens(rationale);
    let mut failed = Vec::new();
    let mut checked = 0;
    let mut attached = BTreeSet::new();
    for (i, t) in toks.iter().enumerate() {
        let Token::Name(name) = t else { continue };
        let family = name.split('.').next().unwrap_or_default();
        let key_like = is_key(name) || ["net", "vm", "kernel", "fs", "user", "abi", "dev", "debug", "crypto"].contains(&family);
        if !key_like && !ev.families.contains(family) {
            continue;
        }
        checked += 1;
        // The first number of the same clause, and the word before it.
        let next = toks[i + 1..].iter().enumerate().take_while(|(_, t)| !matches!(t, Token::Break | Token::Name(_))).find(|(_, t)| matches!(t, Token::Number { .. }));
        let before_word = |j: usize| toks[..i + 1 + j].iter().rev().find_map(|t| if let Token::Word(w) = t { Some(w.clone()) } else { None });
        if key_like {
            if !ev.keys.contains_key(name) {
                failed.push(format!("names {name}, which this host does not have"));
                continue;
            }
            if let Some((j, Token::Number { text, value, percent })) = next {
                attached.insert(i + 1 + j);
                checked += 1;
                if before_word(j).as_deref() == Some("to") {
                    if name == key && !matches(text, *value, *percent, numbers_in(proposed).first().copied().unwrap_or(f64::NAN)) {
                        failed.push(format!("says {name} goes to {text}; the change proposes {proposed}"));
                    }
                } else if !ev.keys[name].iter().any(|a| matches(text, *value, *percent, *a)) {
                    failed.push(format!("says {name} is {text}; it is {}", ctx.current.get(name).map(|v| v.to_string()).unwrap_or_default()));
                }
            }
        } else {
            let Some(figures) = ev.metrics.get(name) else {
                failed.push(format!("names metric {name}, which is in neither the findings nor the snapshot it was given"));
                continue;
            };
            if let Some((j, Token::Number { text, value, percent })) = next {
                attached.insert(i + 1 + j);
                checked += 1;
                if !figures.iter().any(|a| matches(text, *value, *percent, *a)) {
                    let shown: Vec<String> = findings.findings.iter().flat_map(|f| &f.evidence).filter(|e| &e.metric == name).map(|e| e.describe()).collect();
                    let said = if shown.is_empty() { format!("the snapshot has {}", fmt(figures[0])) } else { format!("the evidence says {}", shown.join("; ")) };
                    failed.push(format!("cites {name} at {text}; {said}"));
                }
            }
        }
    }
    for (i, t) in toks.iter().enumerate() {
        let Token::Number { text, value, percent } = t else { continue };
        if attached.contains(&i) || (value.fract() == 0.0 && *value <= 10.0 && !text.contains('.')) {
            continue;
        }
        checked += 1;
        if !ev.pool.iter().any(|a| matches(text, *value, *percent, *a)) {
            failed.push(format!("cites {text}{}, which matches no figure in the findings, the snapshot, the current values or the KB entries it was given", if *percent { "%" } else { "" }));
        }
    }
    Support { key: key.to_string(), checked, failed }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::{Intent, Kb};
    use crate::llm::transport::{Backend, Exchange};
    use crate::llm::wire::{ChatRequest, HttpReply};
    use crate::llm::{LlmReasoner, Partial, Settings};
    use crate::reasoning::Findings;
    use crate::safety::Policy;
    use crate::sim::{self, HostSpec, WorkloadClass, WorkloadSpec};
    use crate::sysctl::{SysctlKey, SysctlStore, Value};
    use crate::telemetry::{Snapshot, Window};

    /// The default simulated host's first observation: its findings, snapshots and current values.
    struct Seen {
        kb: Kb,
        findings: Findings,
        before: Snapshot,
        after: Snapshot,
        current: BTreeMap<String, Value>,
    }

    fn seen() -> Seen {
        let kb = Kb::embedded().unwrap();
        let host = HostSpec::default();
        let dir = tempfile::tempdir().unwrap();
        let tree = sim::seed_sandbox(&host, &dir.path().join("proc_sys")).unwrap();
        let current = kb.params.keys().filter_map(|k| SysctlKey::parse(k).ok()).filter_map(|k| tree.read(&k).ok().map(|v| (k.to_string(), v))).collect();
        let workloads: Vec<WorkloadSpec> = WorkloadClass::ALL.iter().map(|c| WorkloadSpec { class: *c, intensity: 1.0 }).collect();
        let out = sim::run(&host, &sim::params::HostParams::from_store(&tree), &workloads, 7, 60.0);
        let findings = crate::reasoning::diagnose(&out.before, &out.after, &kb);
        Seen { kb, findings, before: out.before, after: out.after, current }
    }

    fn check_in(s: &Seen, rationale: &str, key: &str, to: &str) -> Support {
        let ctx = Context { kb: &s.kb, intent: Intent::Latency, current: &s.current, window: Window::new(&s.before, &s.after) };
        check(rationale, key, to, &s.findings, &ctx, 8.0)
    }

    /// The evidence of the listen-overflow finding: (metric, value as the prompt printed it).
    fn overflow(s: &Seen) -> (String, f64) {
        let e = s.findings.findings.iter().flat_map(|f| &f.evidence).find(|e| e.metric.contains("ListenOverflows")).expect("the default host overflows its accept queue");
        (e.metric.clone(), e.value)
    }

    #[test]
    fn a_rationale_quoting_the_evidence_and_current_value_is_supported() {
        let s = seen();
        let (m, v) = overflow(&s);
        let r = format!("{m} is {v:.2}/s over the threshold; raise net.core.somaxconn from 128 to 1024 so bursts fit.");
        let c = check_in(&s, &r, "net.core.somaxconn", "1024");
        assert!(c.supported(), "{:?}", c.failed);
        assert!(c.checked >= 3, "{c:?}");
    }

    #[test]
    fn a_rationale_that_misstates_a_figure_is_unsupported_naming_the_evidence() {
        let s = seen();
        let (m, v) = overflow(&s);
        let r = format!("{m} is {:.1}/s, so raise net.core.somaxconn to 1024.", v * 10.0);
        let c = check_in(&s, &r, "net.core.somaxconn", "1024");
        assert!(!c.supported());
        assert!(c.failed[0].contains(&m) && c.failed[0].contains("evidence says"), "{:?}", c.failed);
    }

    #[test]
    fn a_rationale_that_invents_a_metric_is_unsupported() {
        let s = seen();
        let c = check_in(&s, "netstat.TcpExt.ListenQueueFullEvents shows the queue is full; raise net.core.somaxconn to 1024.", "net.core.somaxconn", "1024");
        assert!(c.failed.iter().any(|f| f.contains("ListenQueueFullEvents") && f.contains("neither")), "{:?}", c.failed);
    }

    #[test]
    fn a_rationale_that_misstates_a_keys_current_value_or_invents_a_key_is_unsupported() {
        let s = seen();
        let c = check_in(&s, "net.core.somaxconn is 512 today, raise it to 1024.", "net.core.somaxconn", "1024");
        assert!(c.failed.iter().any(|f| f.contains("is 512; it is 128")), "{:?}", c.failed);
        let c = check_in(&s, "Raise net.core.somaxconn_max as well.", "net.core.somaxconn", "1024");
        assert!(c.failed.iter().any(|f| f.contains("net.core.somaxconn_max")), "{:?}", c.failed);
    }

    #[test]
    fn a_free_number_must_be_one_the_model_was_given_within_rounding() {
        let s = seen();
        assert!(check_in(&s, "Drops cost 4437 retransmits a second.", "net.core.somaxconn", "1024").failed.len() == 1);
        assert!(check_in(&s, "On 8 CPUs and 64 GiB, with counts of 2 or 3 samples.", "net.core.somaxconn", "1024").supported());
        assert!(matches("37", 37.0, false, 37.4) && !matches("37", 37.0, false, 37.6));
        assert!(matches("1200", 1200.0, false, 1184.96) && !matches("1200", 1200.0, false, 1100.0));
        assert!(matches("85", 85.0, true, 0.851));
    }

    /// A backend that answers every request with `content` as the assistant's reply.
    struct CannedReply(String);

    impl Backend for CannedReply {
        fn send(&self, _endpoint: &str, _req: &ChatRequest) -> Result<Exchange, crate::llm::Failure> {
            let body = serde_json::json!({ "id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": self.0 }, "finish_reason": "stop" }] });
            Ok(Exchange::Http(HttpReply { status: 200, retry_after: None, body: body.to_string() }))
        }
    }

    fn llm_run(s: &Seen, rationale: &str) -> crate::llm::LlmRun {
        let finding = s.findings.findings.iter().find(|f| f.evidence.iter().any(|e| e.metric.contains("ListenOverflows"))).unwrap().id.clone();
        let reply = serde_json::json!({ "schema_version": 1, "changes": [{ "key": "net.core.somaxconn", "kb_key": "net.core.somaxconn", "finding_id": finding, "value": "1024", "rationale": rationale }] });
        let settings = Settings::resolve(Partial { url: Some("http://127.0.0.1:9/v1".into()), model: Some("fake".into()), samples: Some(1), ..Partial::default() }, None).unwrap();
        let llm = LlmReasoner::with_backend(settings, Box::new(CannedReply(reply.to_string())), &Policy::default());
        let ctx = Context { kb: &s.kb, intent: Intent::Latency, current: &s.current, window: Window::new(&s.before, &s.after) };
        llm.run(&s.findings, &ctx)
    }

    #[test]
    fn an_llm_plan_whose_rationale_misstates_the_evidence_says_unsupported_in_its_rationale_and_summary() {
        let s = seen();
        let (m, v) = overflow(&s);
        let bad = llm_run(&s, &format!("{m} is {:.0}/s; raise the backlog.", v * 7.0 + 50.0));
        assert_eq!(bad.supported(), Some(false));
        let plan = bad.result.as_ref().unwrap();
        assert!(plan.changes[0].rationale.contains("unsupported: cites"), "{}", plan.changes[0].rationale);
        assert!(bad.summary().contains("1 rationale(s) unsupported"), "{}", bad.summary());
        let good = llm_run(&s, &format!("{m} is {v:.2}/s; raise the backlog."));
        assert_eq!(good.supported(), Some(true), "{:?}", good.claims);
        assert!(!good.result.as_ref().unwrap().changes[0].rationale.contains("unsupported"));
    }
}
