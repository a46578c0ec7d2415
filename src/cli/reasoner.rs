//! The reasoner choice shared by `recommend` and `compare`: the `--reasoner` /
//! `--reasoners` and `--llm-*` flags, the LLM settings built from flags,
//! environment (`SEMANTOS_LLM_*`) and the settings file, and the LLM path of
//! `recommend`. Imports no command module.

use super::common::{CliError, invalid};
use super::exit;
use crate::llm::settings::{API_KEY_ENV, ApiKey};
use crate::llm::{self, Fallback, FormatMode, LlmReasoner, Partial, Settings, Source};
use crate::reasoning::{Context, Findings};
use crate::safety::{CheckedPlan, Policy};
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Default calibration log (JSON lines), beside the audit log.
pub const DEFAULT_CALIBRATION: &str = "logs/llm-calibration.jsonl";

/// A reasoning backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ReasonerKind {
    /// The deterministic, KB-driven rule engine.
    #[default]
    Rules,
    /// An LLM over an OpenAI-compatible chat-completions API (--llm-url, --llm-model).
    Llm,
}

/// How the LLM backend is reached and used. Flags win over the environment,
/// which wins over `--llm-config`. The API key is read only from
/// SEMANTOS_LLM_API_KEY.
#[derive(Debug, Clone, Default, Args)]
pub struct LlmArgs {
    /// Base URL of the OpenAI-compatible API, http or https, e.g. http://127.0.0.1:8080/v1.
    #[arg(long, value_name = "URL", env = "SEMANTOS_LLM_URL")]
    pub llm_url: Option<String>,
    /// Model name the server serves.
    #[arg(long, value_name = "NAME", env = "SEMANTOS_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// LLM settings file (YAML): url, model, timeout_s, connect_timeout_s, samples, tau,
    /// temperature, max_tokens, fallback, response_format, record, replay, calibration.
    #[arg(long, value_name = "FILE", env = "SEMANTOS_LLM_CONFIG")]
    pub llm_config: Option<PathBuf>,
    /// Whole-request timeout, seconds [default: 120].
    #[arg(long, value_name = "S")]
    pub llm_timeout: Option<f64>,
    /// Connection timeout, seconds [default: 5].
    #[arg(long, value_name = "S")]
    pub llm_connect_timeout: Option<f64>,
    /// Samples per recommendation (self-consistency k) [default: 3].
    #[arg(long, value_name = "K")]
    pub llm_samples: Option<usize>,
    /// Uncertainty at or above which a change is advice only, never applied (τ) [default: 0.5].
    #[arg(long, value_name = "TAU")]
    pub llm_tau: Option<f64>,
    /// Sampling temperature [default: 0.7].
    #[arg(long, value_name = "T")]
    pub llm_temperature: Option<f64>,
    /// Largest reply, in tokens [default: 1024].
    #[arg(long, value_name = "N")]
    pub llm_max_tokens: Option<u32>,
    /// When the LLM gives no usable plan: fall back to the rule engine, or fail (exit 1) [default: rules].
    #[arg(long, value_enum, value_name = "WHAT")]
    pub llm_fallback: Option<Fallback>,
    /// How the reply is asked to be JSON; auto steps down when the server refuses [default: auto].
    #[arg(long, value_enum, value_name = "MODE")]
    pub llm_response_format: Option<FormatMode>,
    /// Record every exchange (request and reply) into DIR, keyed by a hash of the request.
    #[arg(long, value_name = "DIR")]
    pub llm_record: Option<PathBuf>,
    /// Answer from recordings in DIR instead of the server (a reproducible run).
    #[arg(long, value_name = "DIR")]
    pub llm_replay: Option<PathBuf>,
    /// Append (uncertainty, outcome) calibration records to FILE [default: logs/llm-calibration.jsonl].
    #[arg(long, value_name = "FILE")]
    pub llm_calibration: Option<PathBuf>,
    /// Trust only the CAs in this PEM file for an https --llm-url (an internal gateway); default: the built-in Mozilla roots.
    #[arg(long, value_name = "FILE", env = "SEMANTOS_LLM_CA_FILE")]
    pub llm_ca_file: Option<PathBuf>,
}

/// `--reasoner` and the LLM flags, as `recommend` takes them.
#[derive(Debug, Clone, Default, Args)]
pub struct ReasonerArgs {
    /// Reasoning backend that proposes the plan.
    #[arg(long, value_enum, default_value_t = ReasonerKind::Rules)]
    pub reasoner: ReasonerKind,
    #[command(flatten)]
    pub llm: LlmArgs,
}

impl ReasonerArgs {
    /// Whether the LLM proposes the plan.
    pub fn uses_llm(&self) -> bool {
        self.reasoner == ReasonerKind::Llm
    }
}

/// Validated LLM settings from flags (and environment), the settings file, and the API key from the environment.
pub fn settings(a: &LlmArgs) -> Result<Settings> {
    settings_over(a, Partial::default())
}

/// Like `settings`, with `lowest` (the experiment config's `llm:` section) below the settings file.
pub fn settings_over(a: &LlmArgs, lowest: Partial) -> Result<Settings> {
    let flags = Partial {
        url: a.llm_url.clone(),
        model: a.llm_model.clone(),
        timeout_s: a.llm_timeout,
        connect_timeout_s: a.llm_connect_timeout,
        samples: a.llm_samples,
        tau: a.llm_tau,
        temperature: a.llm_temperature,
        max_tokens: a.llm_max_tokens,
        fallback: a.llm_fallback,
        response_format: a.llm_response_format,
        record: a.llm_record.clone(),
        replay: a.llm_replay.clone(),
        calibration: a.llm_calibration.clone(),
        ca_file: a.llm_ca_file.clone(),
        api_key: None,
    };
    let file = match &a.llm_config {
        Some(p) => Partial::load(p).map_err(|e| invalid(format!("{e:#}")))?,
        None => Partial::default(),
    };
    let mut merged = flags.or(file).or(lowest);
    if merged.calibration.is_none() {
        merged.calibration = Some(PathBuf::from(DEFAULT_CALIBRATION));
    }
    let key = std::env::var(API_KEY_ENV).ok().and_then(ApiKey::new);
    Settings::resolve(merged, key).map_err(|e| invalid(format!("{e:#}")))
}

fn report_run(run: &llm::LlmRun) {
    eprintln!("semantos: {}", run.summary());
    for s in run.samples.iter().filter(|s| s.verdict != "ok") {
        eprintln!("semantos:   sample {} ({}): {}", s.index, s.format, s.detail.as_deref().unwrap_or(&s.verdict).replace('\n', "\n             "));
    }
    for c in run.unsupported() {
        eprintln!("semantos:   unsupported: the rationale for {} {}", c.key, c.failed.join("; "));
    }
}

/// The LLM path of `recommend`: the checked plan to show, after the guardrails
/// and the configured fall back; calibration records are appended.
pub fn llm_checked(r: &ReasonerArgs, findings: &Findings, ctx: &Context, policy: &Policy) -> Result<CheckedPlan> {
    llm_checked_supported(r, findings, ctx, policy).map(|(c, _)| c)
}

/// `llm_checked`, with whether every claim of the LLM's rationales matched the evidence
/// (`None` when the plan is the rule engine's, after a fall back).
pub fn llm_checked_supported(r: &ReasonerArgs, findings: &Findings, ctx: &Context, policy: &Policy) -> Result<(CheckedPlan, Option<bool>)> {
    let s = settings(&r.llm)?;
    let calibration = s.calibration.clone();
    let reasoner = LlmReasoner::new(s, policy).map_err(|e| invalid(format!("{e:#}")))?;
    match llm::propose(&reasoner, findings, ctx, policy) {
        Ok(p) => {
            report_run(&p.run);
            let supported = match &p.source {
                Source::FellBack { because } => {
                    eprintln!("semantos: the LLM gave no usable plan: {}", because.verdict().replace('\n', "\n  "));
                    eprintln!("semantos: falling back to the rule engine (--llm-fallback rules); the plan below is the rule engine's");
                    None
                }
                Source::Llm => p.run.supported(),
            };
            if let Some(path) = &calibration
                && let Err(e) = llm::calibration::append(path, &llm::calibration::records(&p))
            {
                eprintln!("semantos: warning: {e:#}");
            }
            Ok((p.checked, supported))
        }
        Err(b) => {
            let (failure, run) = *b;
            report_run(&run);
            Err(CliError { code: exit::FAILED, message: format!("the LLM gave no usable plan and --llm-fallback is fail; nothing was proposed:\n{}", failure.verdict()) }.into())
        }
    }
}

