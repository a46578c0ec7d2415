//! The prompt: the findings with their evidence, the KB entries of the
//! candidate parameters only, their current values, and the intent. A
//! candidate is a parameter whose `symptoms` or `counter_symptoms` name a
//! finding, plus its edge partners; `never`-risk keys, keys that must not be
//! read, and keys absent on this host are left out (they could not be
//! written anyway). Pure: the same inputs give the same text, byte for byte,
//! which is what makes recordings replayable.

use super::reply::{self, MAX_CHANGES, REPLY_SCHEMA_VERSION};
use super::wire::Message;
use crate::kb::entry::Direction;
use crate::kb::{Intent, Kb, Param, Risk};
use crate::reasoning::{Context, Findings};
use crate::sysctl::Value;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Most candidates in one prompt: a small model's context is a few thousand tokens.
pub const MAX_CANDIDATES: usize = 40;

/// What is sent, and what the reply may name.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// System prompt, then the user prompt.
    pub messages: Vec<Message>,
    /// Candidate keys (the schema's key enum).
    pub keys: Vec<String>,
    /// Finding IDs of this run (the schema's finding enum).
    pub finding_ids: Vec<String>,
    /// The reply's JSON schema.
    pub schema: reply::ReplySchema,
}

fn usable(p: &Param, current: &BTreeMap<String, Value>) -> bool {
    p.risk != Risk::Never && p.no_read.is_none() && !p.no_op && current.contains_key(&p.key)
}

/// The candidate parameters for `findings`, each with the findings a change
/// of it may cite: direct matches first (the findings their symptoms name),
/// then edge partners (the findings of the parameter that pulled them in),
/// at most [`MAX_CANDIDATES`].
pub fn candidates<'a>(findings: &Findings, kb: &'a Kb, current: &BTreeMap<String, Value>) -> Vec<(&'a Param, Vec<String>)> {
    let ids: Vec<&str> = findings.findings.iter().map(|f| f.id.as_str()).collect();
    let cited = |p: &Param| -> Vec<String> { ids.iter().filter(|id| p.symptoms.iter().chain(&p.counter_symptoms).any(|s| s == *id)).map(|id| id.to_string()).collect() };
    let direct: Vec<(&Param, Vec<String>)> = kb.params.values().map(|p| (p, cited(p))).filter(|(_, c)| !c.is_empty()).collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for (p, c) in &direct {
        if usable(p, current) && seen.insert(&p.key) {
            out.push((*p, c.clone()));
        }
    }
    for (p, c) in &direct {
        for e in kb.edges_of(&p.key) {
            let other = e.other(&p.key);
            if let Some(q) = kb.param(other)
                && usable(q, current)
                && seen.insert(&q.key)
            {
                out.push((q, c.clone()));
            }
        }
    }
    out.truncate(MAX_CANDIDATES);
    out
}

fn dir_word(d: Direction) -> &'static str {
    match d {
        Direction::Raise => "raise",
        Direction::Lower => "lower",
        Direction::Keep => "keep",
        Direction::Set => "set",
    }
}

fn flip(d: Direction) -> Direction {
    match d {
        Direction::Raise => Direction::Lower,
        Direction::Lower => Direction::Raise,
        other => other,
    }
}

/// The first sentence of a KB text, at most `max` characters: the prompt
/// carries every fact a small model needs, in as few tokens as it can
/// (prompt processing dominates a CPU model's time).
fn brief(s: &str, max: usize) -> String {
    let s = s.trim();
    let first = match s.find(". ") {
        Some(i) => &s[..=i],
        None => s,
    };
    if first.chars().count() <= max {
        return first.to_string();
    }
    let cut: String = first.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

/// A JSON object written in the given field order (serde_json's `Value` would sort it):
/// the key first, so a small model reads each line as "this parameter: its facts".
fn ordered(fields: Vec<(&str, serde_json::Value)>) -> String {
    let inner: Vec<String> = fields.into_iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
    format!("{{{}}}", inner.join(","))
}

/// One candidate as a compact JSON line: what the model needs to stay in range and in context.
fn entry(p: &Param, kb: &Kb, intent: Intent, ids: &BTreeSet<&str>, current: &BTreeMap<String, Value>) -> String {
    let mut calls_for = serde_json::Map::new();
    let dir = p.direction.get(intent).copied();
    for s in &p.symptoms {
        if ids.contains(s.as_str()) {
            calls_for.insert(s.clone(), json!(dir.map(dir_word).unwrap_or("no direction")));
        }
    }
    for s in &p.counter_symptoms {
        if ids.contains(s.as_str()) {
            calls_for.insert(s.clone(), json!(dir.map(|d| dir_word(flip(d))).unwrap_or("no direction")));
        }
    }
    let edges: Vec<String> = kb
        .edges_of(&p.key)
        .map(|e| {
            let (rel, other) = if e.from == p.key { (format!("{:?}", e.kind), &e.to) } else { (format!("{:?} (reverse)", e.kind), &e.from) };
            format!("{rel} {other}: {}", brief(&e.note, 110))
        })
        .collect();
    let mut f: Vec<(&str, serde_json::Value)> = vec![("key", json!(p.key)), ("now", json!(current.get(&p.key).map(|v| v.to_string())))];
    if !calls_for.is_empty() {
        f.push(("calls_for", serde_json::Value::Object(calls_for)));
    } else if let Some(d) = dir {
        f.push(("direction", json!(dir_word(d))));
    }
    if let Some(s) = p.suggest.get(intent) {
        f.push(("suggest", json!(s)));
    }
    f.push(("type", json!(p.kind)));
    if p.elements() > 1 {
        f.push(("elements", json!(p.elements())));
    }
    if !p.values.is_empty() {
        f.push(("allowed", json!(p.values)));
    }
    for (name, x) in [("unit", p.unit.as_ref().map(|u| json!(u))), ("min", p.min.map(|m| json!(m))), ("max", p.max.map(|m| json!(m))), ("default", p.default.as_ref().map(|d| json!(d)))] {
        if let Some(x) = x {
            f.push((name, x));
        }
    }
    f.push(("risk", json!(p.risk)));
    f.push(("risk_reason", json!(brief(&p.risk_reason, 120))));
    f.push(("controls", json!(brief(&p.controls, 150))));
    f.push(("effect", json!(p.effect)));
    if let Some(n) = &p.effect_note {
        f.push(("effect_note", json!(brief(n, 120))));
    }
    if !edges.is_empty() {
        f.push(("edges", json!(edges)));
    }
    ordered(f)
}

fn intent_words(i: Intent) -> &'static str {
    match i {
        Intent::Latency => "lower tail latency",
        Intent::Throughput => "higher throughput",
        Intent::Memory => "a smaller memory footprint",
        Intent::Balanced => "a balance of latency, throughput and memory",
    }
}

/// The system prompt: the job, the rules, the exact reply shape.
fn system(max_step: f64) -> String {
    let change = ordered(vec![
        ("key", json!("<a candidate key>")),
        ("kb_key", json!("<the same key>")),
        ("finding_id", json!("<a finding id>")),
        ("value", json!("<new value>")),
        ("rationale", json!("<why, citing the evidence>")),
    ]);
    let example = format!("{{\"schema_version\":{REPLY_SCHEMA_VERSION},\"changes\":[{change}]}}");
    format!(
        "You are the tuning advisor of SemantOS, a tool that tunes Linux kernel parameters (sysctls) safely. \
You propose changes; you never apply them. Every proposal is checked by guardrails and may be refused.\n\
Rules:\n\
1. Answer with ONE JSON object and nothing else, exactly of this shape: {example}\n\
2. key must be one of the CANDIDATES keys, and kb_key must equal key.\n\
3. finding_id must be the id of one of the FINDINGS that calls for the change.\n\
4. value is the new value as the kernel writes it: a decimal integer, or space-separated integers for vectors, \
within the candidate's min and max, different from its current value (now), and at most {max_step}x away from it.\n\
5. Follow calls_for: it says which way each finding wants the parameter moved for this intent.\n\
6. rationale: one or two plain sentences on why, citing the evidence. At most {} changes.\n\
7. If nothing should change, answer {{\"schema_version\": {REPLY_SCHEMA_VERSION}, \"changes\": []}}.",
        MAX_CHANGES
    )
}

/// Builds the prompt for `findings` in `ctx`; `max_step` is the policy's step limit, stated so the model can respect it.
pub fn build(findings: &Findings, ctx: &Context, max_step: f64) -> Prompt {
    let ids: BTreeSet<&str> = findings.findings.iter().map(|f| f.id.as_str()).collect();
    let cands = candidates(findings, ctx.kb, ctx.current);
    let h = &findings.host;
    let mut user = format!(
        "INTENT: {} ({}).\nHOST: kernel {}, {} CPUs, {} GiB memory, {} NUMA node(s).\nFINDINGS (measured over {:.0} s):\n",
        ctx.intent.name(),
        intent_words(ctx.intent),
        h.kernel_release,
        h.ncpus,
        h.mem_total_kb / (1024 * 1024),
        h.numa_nodes,
        findings.window_s
    );
    for f in &findings.findings {
        let ev: Vec<String> = f.evidence.iter().map(|e| e.describe()).collect();
        user.push_str(&format!("- id {}: {}. {} Evidence: {}\n", f.id, f.title, brief(&f.explain, 160), ev.join("; ")));
    }
    user.push_str("CANDIDATES (knowledge-base entries; now = current value):\n");
    for (p, _) in &cands {
        user.push_str(&entry(p, ctx.kb, ctx.intent, &ids, ctx.current));
        user.push('\n');
    }
    user.push_str("Reply with the JSON object now.");
    let keys: Vec<String> = cands.iter().map(|(p, _)| p.key.clone()).collect();
    let finding_ids: Vec<String> = findings.findings.iter().map(|f| f.id.clone()).collect();
    let citable: Vec<reply::Citable> = cands.iter().map(|(p, f)| reply::Citable { key: p.key.clone(), findings: f.clone() }).collect();
    let schema = reply::schema(&citable);
    Prompt {
        messages: vec![Message { role: "system".into(), content: system(max_step) }, Message { role: "user".into(), content: user }],
        keys,
        finding_ids,
        schema,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_keeps_the_first_sentence_within_the_limit() {
        assert_eq!(brief("One thing. Another thing.", 100), "One thing.");
        assert_eq!(brief("No stop here", 100), "No stop here");
        assert_eq!(brief("abcdefghij", 5), "abcd…");
        assert_eq!(brief("v1.2 is a version. Next.", 100), "v1.2 is a version.");
    }
}
