//! The LLM reasoner: prompt → k samples → strict parsing → self-consistency
//! → a `Plan` of the same type the rule engine makes, each change carrying
//! its uncertainty (and marked advice only when u ≥ τ). Then [`propose`]
//! runs the same guardrails as for every plan and, when the LLM gives no
//! usable plan, fails or falls back to the rule engine as configured, saying
//! which and why.

use super::claims::{self, Support};
use super::consistency::{self, Agreed};
use super::failure::Failure;
use super::prompt;
use super::reply::{self, Reply};
use super::settings::{Fallback, FormatMode, Settings};
use super::transport::{self, Backend, request_hash};
use super::wire::{self, ChatRequest};
use crate::reasoning::{Change, Consideration, Context, Findings, Plan, Reasoner, RulesEngine};
use crate::safety::{self, CheckedPlan, Policy};
use serde::Serialize;
use std::cell::Cell;
use std::collections::BTreeSet;

/// HTTP statuses with which a server says it does not take this `response_format`.
const FORMAT_REFUSED: [u16; 4] = [400, 415, 422, 501];

/// Whether the server refused the request's `response_format` (llama-cpp-python answers
/// an unknown `type` with a 500 whose body names the field).
fn format_refused(http: &super::wire::HttpReply) -> bool {
    FORMAT_REFUSED.contains(&http.status) || (http.status >= 400 && http.status != 429 && http.body.contains("response_format"))
}

/// What happened to one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleReport {
    /// 0-based sample index (also the request's seed).
    pub index: usize,
    /// The `response_format` mode of the request that was answered.
    pub format: String,
    /// `ok`, or the failure's rule (`truncated`, `injection`...).
    pub verdict: String,
    /// The failure's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Changes in a valid reply that cite correctly.
    pub changes: usize,
    /// Changes in a valid reply refused for their citation.
    pub refused: usize,
    /// Hash of the request (the recording's file name).
    pub request: String,
}

/// Everything one LLM recommendation did.
#[derive(Debug, Clone, Serialize)]
pub struct LlmRun {
    /// Model name.
    pub model: String,
    /// Endpoint.
    pub endpoint: String,
    /// Candidate parameters offered in the prompt.
    pub candidates: Vec<String>,
    /// Samples asked for (k).
    pub k: usize,
    /// The advice threshold τ.
    pub tau: f64,
    /// Per sample, in order; samples not sent (after a failure that stops sampling) are absent.
    pub samples: Vec<SampleReport>,
    /// Plan-level agreement (mean pairwise Jaccard of the samples' changes); absent for k = 1.
    pub agreement: Option<f64>,
    /// The merged changes with their votes.
    pub agreed: Vec<Agreed>,
    /// Per merged change, whether its rationale's claims match the evidence (`claims`).
    pub claims: Vec<Support>,
    /// The plan, or why there is none.
    #[serde(skip)]
    pub result: Result<Plan, Failure>,
}

impl LlmRun {
    /// Counts of sample verdicts (`ok`, `not-json`...).
    pub fn sample_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for s in &self.samples {
            *m.entry(s.verdict.clone()).or_insert(0) += 1;
        }
        m
    }

    /// Whether every rationale's claims match the evidence; `None` when the run has no plan.
    pub fn supported(&self) -> Option<bool> {
        self.result.as_ref().ok().map(|_| self.claims.iter().all(Support::supported))
    }

    /// The rationales with a claim that does not match the evidence.
    pub fn unsupported(&self) -> Vec<&Support> {
        self.claims.iter().filter(|c| !c.supported()).collect()
    }

    /// One line for humans: `llm:m at URL: 3 of 3 sample(s) sent (not-json 1, ok 2), agreement 0.67; 4 change(s), 1 advice only`.
    pub fn summary(&self) -> String {
        let mut counts: Vec<String> = self.sample_counts().iter().map(|(k, v)| format!("{k} {v}")).collect();
        let refused: usize = self.samples.iter().map(|s| s.refused).sum();
        if refused > 0 {
            counts.push(format!("{refused} change(s) refused for citation"));
        }
        let agreement = self.agreement.map(|a| format!(", agreement {a:.2}")).unwrap_or_default();
        let unsupported = self.unsupported().len();
        if unsupported > 0 {
            counts.push(format!("{unsupported} rationale(s) unsupported by the evidence"));
        }
        let plan = match &self.result {
            Ok(p) => format!("{} change(s), {} advice only (u ≥ τ = {})", p.changes.len(), p.changes.iter().filter(|c| c.advice_only).count(), self.tau),
            Err(f) => format!("no plan: [{}]", f.rule()),
        };
        format!("llm:{} at {}: {} of {} sample(s) sent ({}){agreement}; {plan}", self.model, self.endpoint, self.samples.len(), self.k, counts.join(", "))
    }
}

/// The LLM backend behind the `Reasoner` trait.
pub struct LlmReasoner {
    settings: Settings,
    backend: Box<dyn Backend>,
    /// The `response_format` that works with this server; `auto` steps down once per reasoner, not once per sample.
    format: Cell<FormatMode>,
    /// The policy's step limit, stated in the prompt.
    max_step: f64,
}

impl LlmReasoner {
    /// A reasoner over the backend the settings call for (HTTP, recorded, or replayed).
    pub fn new(settings: Settings, policy: &Policy) -> anyhow::Result<LlmReasoner> {
        let backend = transport::from_settings(&settings)?;
        Ok(LlmReasoner::with_backend(settings, backend, policy))
    }

    /// A reasoner over any backend (tests use doubles).
    pub fn with_backend(settings: Settings, backend: Box<dyn Backend>, policy: &Policy) -> LlmReasoner {
        let start = if settings.format == FormatMode::Auto { FormatMode::JsonSchema } else { settings.format };
        LlmReasoner { settings, backend, format: Cell::new(start), max_step: policy.max_step_ratio }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One sample: send (stepping `response_format` down if the server refuses it), unwrap the envelope, parse.
    fn sample(&self, index: usize, p: &prompt::Prompt, findings: &BTreeSet<String>) -> (SampleReport, Result<Reply, Failure>) {
        let s = &self.settings;
        loop {
            let mode = self.format.get();
            let req = ChatRequest {
                model: s.model.clone(),
                messages: p.messages.clone(),
                temperature: s.temperature,
                max_tokens: s.max_tokens,
                seed: index as u64,
                stream: false,
                response_format: wire::response_format(mode, &p.schema),
            };
            let report = |verdict: &str, detail: Option<String>, changes: usize, refused: usize| SampleReport { index, format: mode.name().into(), verdict: verdict.into(), detail, changes, refused, request: request_hash(&req) };
            let exchange = self.backend.send(&s.endpoint, &req).and_then(|x| x.into_reply(&s.endpoint));
            if let Ok(http) = &exchange
                && s.format == FormatMode::Auto
                && format_refused(http)
                && let Some(next) = mode.step_down()
            {
                // The server does not take this response_format: ask the same sample again, one step plainer.
                self.format.set(next);
                continue;
            }
            let result = exchange.and_then(|http| wire::completion(&s.endpoint, &http, s.max_tokens)).and_then(|c| reply::parse(&s.endpoint, &c.content, findings));
            return match result {
                Ok(r) => (report("ok", None, r.changes.len(), r.refused.len()), Ok(r)),
                Err(f) => (report(f.rule(), Some(f.to_string()), 0, 0), Err(f)),
            };
        }
    }

    /// Asks k samples and merges them. Never panics on any reply.
    pub fn run(&self, findings: &Findings, ctx: &Context) -> LlmRun {
        let s = &self.settings;
        let p = prompt::build(findings, ctx, self.max_step);
        let mut plan = Plan::new(format!("llm:{}", s.model), ctx.intent);
        plan.snapshot_digest = Some(findings.snapshot_digest.clone());
        // Until a sample says otherwise the plan is empty: with no findings (or no candidate
        // parameter) nothing is asked and the plan is empty, like the rule engine's.
        let mut run = LlmRun { model: s.model.clone(), endpoint: s.endpoint.clone(), candidates: p.keys.clone(), k: s.samples, tau: s.tau, samples: Vec::new(), agreement: None, agreed: Vec::new(), claims: Vec::new(), result: Ok(plan.clone()) };
        if findings.findings.is_empty() || p.keys.is_empty() {
            return run;
        }
        let ids: BTreeSet<String> = p.finding_ids.iter().cloned().collect();
        let mut replies: Vec<Option<Reply>> = vec![None; s.samples];
        let mut failures: Vec<Failure> = Vec::new();
        for (i, slot) in replies.iter_mut().enumerate() {
            let (report, result) = self.sample(i, &p, &ids);
            run.samples.push(report);
            match result {
                Ok(r) => *slot = Some(r),
                Err(f) => {
                    let stop = f.stops_sampling();
                    failures.push(f);
                    if stop {
                        break;
                    }
                }
            }
        }
        // One hostile sample taints the run: whoever wrote it also wrote the others. A missing
        // recording taints a replay: a partial replay is not the recorded run.
        if let Some(f) = failures.iter().find(|f| matches!(f, Failure::Injection { .. } | Failure::Replay { .. })) {
            run.result = Err(f.clone());
            return run;
        }
        if replies.iter().all(Option::is_none) {
            run.result = Err(failures.into_iter().next().expect("a failure for every sample"));
            return run;
        }
        // Changes refused for their citation are shown as considered, once per key and reason.
        for r in replies.iter().flatten() {
            for x in &r.refused {
                let reason = format!("proposed by the LLM and refused: {}", x.failure.verdict());
                if !plan.considered.iter().any(|c| c.key == x.change.key && c.reason == reason) {
                    plan.considered.push(Consideration { key: x.change.key.clone(), finding_id: x.change.finding_id.clone(), reason });
                }
            }
        }
        let refs: Vec<Option<&Reply>> = replies.iter().map(Option::as_ref).collect();
        let (agreed, agreement) = consistency::merge(&refs);
        run.agreement = agreement;
        for a in &agreed {
            let measurements: Vec<_> = a.finding_ids.iter().filter_map(|id| findings.get(id)).flat_map(|f| f.evidence.iter().cloned()).collect();
            let evidence = measurements.iter().map(|e| e.describe()).collect();
            let others = if a.others.is_empty() { String::new() } else { format!("; other values proposed: {}", a.others.iter().map(|(v, n)| format!("{v} ×{n}")).collect::<Vec<_>>().join(", ")) };
            // Checked on the model's own words, before the bracket below adds figures of ours.
            let support = claims::check(&a.rationale, &a.key, &a.value, findings, ctx, self.max_step);
            let others = if support.supported() { others } else { format!("{others}; unsupported: {}", support.failed.join("; ")) };
            run.claims.push(support);
            plan.changes.push(Change {
                key: a.key.clone(),
                from: ctx.current.get(&a.key).map(|v| v.to_string()),
                to: a.value.clone(),
                rationale: format!("{} [LLM {}: {} of {} samples agree, u = {:.2}{others}]", a.rationale, s.model, a.votes, a.k, a.u),
                evidence,
                measurements,
                finding_ids: a.finding_ids.clone(),
                kb_key: Some(a.key.clone()),
                effect: ctx.kb.param(&a.key).map(|p| p.effect).unwrap_or_default(),
                uncertainty: Some(a.u),
                advice_only: a.u >= s.tau,
            });
        }
        run.agreed = agreed;
        run.result = Ok(plan);
        run
    }
}

impl Reasoner for LlmReasoner {
    fn name(&self) -> String {
        format!("llm:{}", self.settings.model)
    }
    fn recommend(&self, findings: &Findings, ctx: &Context) -> anyhow::Result<Plan> {
        self.run(findings, ctx).result.map_err(|f| anyhow::anyhow!("{}", f.verdict()))
    }
}

/// Which plan a run ended with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Source {
    /// The LLM's plan (an aborted one too, when `--llm-fallback fail`: the guardrails' verdicts are the answer).
    Llm,
    /// The rule engine's plan, because the LLM failed.
    FellBack {
        /// Why.
        because: Failure,
    },
}

/// A checked plan from the LLM reasoner, or from the rule engine in its place.
#[derive(Debug, Clone)]
pub struct LlmProposal {
    /// The LLM exchange.
    pub run: LlmRun,
    /// The guardrails' verdicts on the LLM's own plan, when it had one (kept even after a fall back).
    pub llm_checked: Option<CheckedPlan>,
    /// The plan to use.
    pub checked: CheckedPlan,
    /// Where it came from.
    pub source: Source,
}

/// Runs the LLM, checks its plan with the guardrails, and on failure falls
/// back to the rule engine or fails, as `--llm-fallback` says. `Err` carries
/// the failure and the run (for the report) when the run must fail.
pub fn propose(llm: &LlmReasoner, findings: &Findings, ctx: &Context, policy: &Policy) -> Result<LlmProposal, Box<(Failure, LlmRun)>> {
    let run = llm.run(findings, ctx);
    let (failure, llm_checked) = match &run.result {
        Ok(plan) => {
            let checked = safety::check(plan, ctx.kb, policy, ctx.current);
            match &checked.aborted {
                None => return Ok(LlmProposal { run, llm_checked: Some(checked.clone()), checked, source: Source::Llm }),
                // With no fall back, an aborted plan is the answer, exactly as for a rejected rules or file plan.
                Some(_) if llm.settings.fallback == Fallback::Fail => return Ok(LlmProposal { run, llm_checked: Some(checked.clone()), checked, source: Source::Llm }),
                Some(why) => (Failure::Guardrails { aborted: why.clone() }, Some(checked)),
            }
        }
        Err(f) => (f.clone(), None),
    };
    match llm.settings.fallback {
        Fallback::Fail => Err(Box::new((failure, run))),
        Fallback::Rules => {
            let mut plan = crate::reasoning::recommend(findings, ctx);
            plan.created_by = format!("{} (fallback: llm:{} gave no usable plan [{}])", RulesEngine.name(), llm.settings.model, failure.rule());
            let checked = safety::check(&plan, ctx.kb, policy, ctx.current);
            Ok(LlmProposal { run, llm_checked, checked, source: Source::FellBack { because: failure } })
        }
    }
}
