//! LLM backend settings: where the OpenAI-compatible server is, which model,
//! how long to wait, how many samples, the advice threshold τ, what to do on
//! failure, and where recordings and calibration records go.
//!
//! Values come in layers, highest first: command-line flags, the
//! `SEMANTOS_LLM_*` environment (clap reads those for the flags), the LLM
//! settings file (`--llm-config FILE`, YAML), then defaults. Every layer is a
//! [`Partial`]; [`Settings::resolve`] validates the merged result once, before
//! anything is sent. The API key comes only from the environment
//! (`SEMANTOS_LLM_API_KEY`): a settings file that names one is refused, and
//! [`ApiKey`] never prints its value.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable the API key is read from (and the only place it is read from).
pub const API_KEY_ENV: &str = "SEMANTOS_LLM_API_KEY";

/// What a run does when the LLM gives no usable plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Use the deterministic rule engine instead, and say so.
    #[default]
    Rules,
    /// Fail the run (exit 1); nothing is proposed.
    Fail,
}

/// How the reply is asked to be JSON (`response_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FormatMode {
    /// `json_schema`, then `json_object`, then none, stepping down when the server answers 400/422/501.
    #[default]
    Auto,
    /// `{"type": "json_schema", ...}` with the reply schema (constrained decoding where the server has it).
    JsonSchema,
    /// `{"type": "json_object", "schema": ...}`: JSON mode; servers that know the `schema` extension (llama-cpp-python) constrain to it.
    JsonObject,
    /// No `response_format`: the schema is only in the prompt.
    Plain,
}

impl FormatMode {
    /// The wire name (`json_schema`).
    pub fn name(self) -> &'static str {
        match self {
            FormatMode::Auto => "auto",
            FormatMode::JsonSchema => "json_schema",
            FormatMode::JsonObject => "json_object",
            FormatMode::Plain => "plain",
        }
    }

    /// The next mode to try when the server refuses this one (`auto` starts at `json_schema`).
    pub fn step_down(self) -> Option<FormatMode> {
        match self {
            FormatMode::Auto => Some(FormatMode::JsonSchema),
            FormatMode::JsonSchema => Some(FormatMode::JsonObject),
            FormatMode::JsonObject => Some(FormatMode::Plain),
            FormatMode::Plain => None,
        }
    }
}

/// A secret that never appears in `Debug`, `Display`, logs, recordings or plans.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key read from the environment; empty means none.
    pub fn new(raw: String) -> Option<ApiKey> {
        let raw = raw.trim().to_string();
        (!raw.is_empty()).then_some(ApiKey(raw))
    }

    /// The `Authorization` header value. The only way to reach the secret.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// One layer of settings; every field optional. Also the YAML settings-file format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    /// Base URL of the OpenAI-compatible API (`http://127.0.0.1:8080/v1`) or its `/chat/completions` endpoint.
    pub url: Option<String>,
    /// Model name sent in every request.
    pub model: Option<String>,
    /// Whole-request timeout, seconds.
    pub timeout_s: Option<f64>,
    /// Connection timeout, seconds.
    pub connect_timeout_s: Option<f64>,
    /// Samples per recommendation (self-consistency k).
    pub samples: Option<usize>,
    /// Uncertainty at or above which a change is advice only (τ).
    pub tau: Option<f64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Largest reply, in tokens (`max_tokens`).
    pub max_tokens: Option<u32>,
    /// What to do when the LLM gives no usable plan.
    pub fallback: Option<Fallback>,
    /// How the reply is asked to be JSON.
    pub response_format: Option<FormatMode>,
    /// Record every exchange into this directory.
    pub record: Option<PathBuf>,
    /// Answer from recordings in this directory instead of the server.
    pub replay: Option<PathBuf>,
    /// Append (uncertainty, outcome) records to this JSON-lines file.
    pub calibration: Option<PathBuf>,
    /// PEM file of the only CAs trusted for an https server (an internal gateway); default: the Mozilla roots built in.
    pub ca_file: Option<PathBuf>,
    /// Refused with a clear message: keys come only from the environment.
    #[serde(default, skip_serializing)]
    pub api_key: Option<serde::de::IgnoredAny>,
}

impl Partial {
    /// Fills every field unset here from `lower`.
    pub fn or(self, lower: Partial) -> Partial {
        Partial {
            url: self.url.or(lower.url),
            model: self.model.or(lower.model),
            timeout_s: self.timeout_s.or(lower.timeout_s),
            connect_timeout_s: self.connect_timeout_s.or(lower.connect_timeout_s),
            samples: self.samples.or(lower.samples),
            tau: self.tau.or(lower.tau),
            temperature: self.temperature.or(lower.temperature),
            max_tokens: self.max_tokens.or(lower.max_tokens),
            fallback: self.fallback.or(lower.fallback),
            response_format: self.response_format.or(lower.response_format),
            record: self.record.or(lower.record),
            replay: self.replay.or(lower.replay),
            calibration: self.calibration.or(lower.calibration),
            ca_file: self.ca_file.or(lower.ca_file),
            api_key: None,
        }
    }

    /// Parses a settings file; errors name the file and the field.
    pub fn from_yaml(text: &str, file: &str) -> Result<Partial> {
        let p: Partial = serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{file}: {}", e.to_string().replace("<input>", file)))?;
        if p.api_key.is_some() {
            bail!("{file}: api_key: an API key is never read from a file (files get copied, committed and logged); set {API_KEY_ENV} in the environment instead");
        }
        Ok(p)
    }

    /// Loads a settings file.
    pub fn load(path: &Path) -> Result<Partial> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading LLM settings {}", path.display()))?;
        Partial::from_yaml(&text, &path.display().to_string())
    }
}

/// Validated settings of one LLM backend.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The chat-completions endpoint requests are POSTed to.
    pub endpoint: String,
    /// Model name.
    pub model: String,
    /// Bearer token, from the environment only.
    pub api_key: Option<ApiKey>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Samples per recommendation (k ≥ 1).
    pub samples: usize,
    /// Advice threshold τ ∈ [0, 1].
    pub tau: f64,
    /// Sampling temperature.
    pub temperature: f64,
    /// `max_tokens` per reply.
    pub max_tokens: u32,
    /// What to do on failure.
    pub fallback: Fallback,
    /// How the reply is asked to be JSON.
    pub format: FormatMode,
    /// Recording directory.
    pub record: Option<PathBuf>,
    /// Replay directory (no server is contacted).
    pub replay: Option<PathBuf>,
    /// Calibration JSON-lines file.
    pub calibration: Option<PathBuf>,
    /// CAs trusted for https instead of the built-in roots (from `ca_file`).
    pub ca_certs: Vec<ureq::tls::Certificate<'static>>,
}

/// Defaults, chosen for a small local model on a laptop CPU.
pub mod defaults {
    /// Whole-request timeout, seconds (a 135M model on 2 cores answers in seconds; a 70B one may not).
    pub const TIMEOUT_S: f64 = 120.0;
    /// Connection timeout, seconds.
    pub const CONNECT_TIMEOUT_S: f64 = 5.0;
    /// Self-consistency samples.
    pub const SAMPLES: usize = 3;
    /// Advice threshold: a change fewer than half the samples agree on is advice only.
    pub const TAU: f64 = 0.5;
    /// Enough diversity for the samples to disagree when the model is unsure.
    pub const TEMPERATURE: f64 = 0.7;
    /// Room for a dozen changes with rationales.
    pub const MAX_TOKENS: u32 = 1024;
}

impl Settings {
    /// Validates the merged layers; `api_key` is what the environment held.
    pub fn resolve(p: Partial, api_key: Option<ApiKey>) -> Result<Settings> {
        let replaying = p.replay.is_some();
        let url = match (p.url, replaying) {
            (Some(u), _) => u,
            // A replay never reaches a server; the endpoint only labels the plan.
            (None, true) => "http://replay.invalid/v1".to_string(),
            (None, false) => bail!("the LLM reasoner needs a server: give --llm-url URL (or SEMANTOS_LLM_URL, or `url:` in --llm-config), e.g. http://127.0.0.1:8080/v1"),
        };
        let endpoint = endpoint(&url)?;
        if api_key.is_some() && !replaying && endpoint.starts_with("http://") && !is_loopback(&endpoint) {
            bail!("refusing to send {API_KEY_ENV} in clear text to {endpoint}: use an https:// URL, or a server on 127.0.0.1, ::1 or localhost");
        }
        let ca_certs = match &p.ca_file {
            Some(f) if endpoint.starts_with("http://") => bail!("--llm-ca-file {}: the URL {endpoint} is plain http; a CA file applies to https URLs only", f.display()),
            Some(f) => load_ca_file(f)?,
            None => Vec::new(),
        };
        let model = match p.model {
            Some(m) if !m.trim().is_empty() && m.len() <= 256 && !m.chars().any(char::is_control) => m,
            Some(m) => bail!("--llm-model {m:?}: give the model name the server serves (1 to 256 printable characters)"),
            None => bail!("the LLM reasoner needs a model name: give --llm-model NAME (or SEMANTOS_LLM_MODEL, or `model:` in --llm-config)"),
        };
        let secs = |name: &str, v: Option<f64>, d: f64| -> Result<Duration> {
            let v = v.unwrap_or(d);
            if !(v.is_finite() && (0.05..=3600.0).contains(&v)) {
                bail!("{name} {v}: use 0.05 to 3600 seconds");
            }
            Ok(Duration::from_secs_f64(v))
        };
        let samples = p.samples.unwrap_or(defaults::SAMPLES);
        if !(1..=16).contains(&samples) {
            bail!("--llm-samples {samples}: use 1 to 16 (k = 1 gives no agreement signal, so every change is advice only)");
        }
        let tau = p.tau.unwrap_or(defaults::TAU);
        if !(tau.is_finite() && (0.0..=1.0).contains(&tau)) {
            bail!("--llm-tau {tau}: use a number in [0, 1]");
        }
        let temperature = p.temperature.unwrap_or(defaults::TEMPERATURE);
        if !(temperature.is_finite() && (0.0..=2.0).contains(&temperature)) {
            bail!("--llm-temperature {temperature}: use 0 to 2");
        }
        let max_tokens = p.max_tokens.unwrap_or(defaults::MAX_TOKENS);
        if !(16..=32768).contains(&max_tokens) {
            bail!("--llm-max-tokens {max_tokens}: use 16 to 32768");
        }
        if p.record.is_some() && replaying {
            bail!("--llm-record and --llm-replay exclude each other: a replay sends nothing to record");
        }
        Ok(Settings {
            endpoint,
            model,
            api_key,
            timeout: secs("--llm-timeout", p.timeout_s, defaults::TIMEOUT_S)?,
            connect_timeout: secs("--llm-connect-timeout", p.connect_timeout_s, defaults::CONNECT_TIMEOUT_S)?,
            samples,
            tau,
            temperature,
            max_tokens,
            fallback: p.fallback.unwrap_or_default(),
            format: p.response_format.unwrap_or_default(),
            record: p.record,
            replay: p.replay,
            calibration: p.calibration,
            ca_certs,
        })
    }

    /// Settings for tests and tools: `url`, `model`, every other value at its default.
    pub fn for_url(url: &str, model: &str) -> Result<Settings> {
        Settings::resolve(Partial { url: Some(url.into()), model: Some(model.into()), ..Partial::default() }, None)
    }
}

/// Reads the certificates of a PEM file; one at least, or an error naming the file.
fn load_ca_file(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("--llm-ca-file {}: cannot read it", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => bail!("--llm-ca-file {}: not a PEM file ({e})", path.display()),
        }
    }
    if certs.is_empty() {
        bail!("--llm-ca-file {}: holds no `BEGIN CERTIFICATE` block", path.display());
    }
    Ok(certs)
}

/// `host[:port]` (with any `user@`) of a URL after its `scheme://`.
fn authority(rest: &str) -> &str {
    rest.split(['/', '?', '#']).next().unwrap_or("")
}

/// Whether the endpoint's host is this machine (where a bearer token over plain http stays local).
fn is_loopback(endpoint: &str) -> bool {
    let authority = authority(endpoint.split_once("://").map_or(endpoint, |(_, r)| r));
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The chat-completions endpoint for a base URL (`http://` or `https://`).
pub fn endpoint(url: &str) -> Result<String> {
    let u = url.trim();
    if u.chars().any(|c| c.is_control() || c.is_whitespace()) {
        bail!("--llm-url {url:?}: a URL has no spaces or control characters");
    }
    let Some(rest) = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://")) else {
        bail!("--llm-url {u}: give an http:// or https:// URL such as http://127.0.0.1:8080/v1");
    };
    let host = authority(rest);
    if host.is_empty() || host.contains('@') {
        bail!("--llm-url {u}: give host[:port] after the scheme (credentials in the URL are refused: use {API_KEY_ENV})");
    }
    let u = u.trim_end_matches('/');
    Ok(if u.ends_with("/chat/completions") { u.to_string() } else { format!("{u}/chat/completions") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_merge_flags_over_file_and_validate() {
        let file = Partial::from_yaml("url: http://127.0.0.1:9/v1\nmodel: file-model\nsamples: 5\n", "llm.yaml").unwrap();
        let flags = Partial { model: Some("flag-model".into()), ..Partial::default() };
        let s = Settings::resolve(flags.or(file), None).unwrap();
        assert_eq!((s.endpoint.as_str(), s.model.as_str(), s.samples, s.tau), ("http://127.0.0.1:9/v1/chat/completions", "flag-model", 5, 0.5));
        let e = Partial::from_yaml("url: http://x/v1\napi_key: sk-123\n", "llm.yaml").unwrap_err().to_string();
        assert!(e.contains("llm.yaml: api_key") && e.contains(API_KEY_ENV) && !e.contains("sk-123"), "{e}");
        let e = Partial::from_yaml("urll: http://x\n", "llm.yaml").unwrap_err().to_string();
        assert!(e.contains("llm.yaml") && e.contains("urll"), "{e}");
        for (p, want) in [
            (Partial { url: Some("ftp://api.example/v1".into()), model: Some("m".into()), ..Partial::default() }, "give an http:// or https:// URL"),
            (Partial { url: Some("http://h/v1".into()), model: Some("m".into()), ca_file: Some("ca.pem".into()), ..Partial::default() }, "applies to https URLs only"),
            (Partial { url: Some("https://h/v1".into()), model: Some("m".into()), ca_file: Some("/nonexistent/ca.pem".into()), ..Partial::default() }, "--llm-ca-file /nonexistent/ca.pem: cannot read it"),
            (Partial { url: Some("http://u:p@h/v1".into()), model: Some("m".into()), ..Partial::default() }, "credentials"),
            (Partial { model: Some("m".into()), ..Partial::default() }, "--llm-url"),
            (Partial { url: Some("http://h".into()), ..Partial::default() }, "--llm-model"),
            (Partial { url: Some("http://h".into()), model: Some("m".into()), tau: Some(1.5), ..Partial::default() }, "--llm-tau 1.5"),
            (Partial { url: Some("http://h".into()), model: Some("m".into()), samples: Some(0), ..Partial::default() }, "--llm-samples 0"),
            (Partial { url: Some("http://h".into()), model: Some("m".into()), timeout_s: Some(0.0), ..Partial::default() }, "--llm-timeout 0"),
        ] {
            let e = Settings::resolve(p, None).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn a_key_goes_in_clear_text_only_to_this_machine() {
        let key = || ApiKey::new("sk-secret".into());
        let with = |url: &str| Settings::resolve(Partial { url: Some(url.into()), model: Some("m".into()), ..Partial::default() }, key());
        for local in ["http://127.0.0.1:8080/v1", "http://localhost/v1", "http://[::1]:9/v1", "https://api.example/v1"] {
            with(local).unwrap_or_else(|e| panic!("{local}: {e}"));
        }
        for remote in ["http://10.0.0.5:8080/v1", "http://api.example/v1", "http://127.0.0.1.example/v1"] {
            let e = with(remote).unwrap_err().to_string();
            assert!(e.contains("clear text") && !e.contains("sk-secret"), "{remote}: {e}");
        }
        // Without a key, plain http anywhere is the user's call.
        Settings::resolve(Partial { url: Some("http://10.0.0.5/v1".into()), model: Some("m".into()), ..Partial::default() }, None).unwrap();
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("ca.pem");
        std::fs::write(&f, "not a certificate\n").unwrap();
        let p = || Partial { url: Some("https://h/v1".into()), model: Some("m".into()), ca_file: Some(f.clone()), ..Partial::default() };
        let e = Settings::resolve(p(), None).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("BEGIN CERTIFICATE"), "{e}");
    }

    #[test]
    fn the_api_key_never_prints() {
        let s = Settings::resolve(Partial { url: Some("https://h/v1/chat/completions/".into()), model: Some("m".into()), ..Partial::default() }, ApiKey::new("sk-secret".into())).unwrap();
        assert_eq!(s.endpoint, "https://h/v1/chat/completions");
        assert!(!format!("{s:?}").contains("sk-secret"));
        assert_eq!(s.api_key.unwrap().bearer(), "Bearer sk-secret");
        assert!(ApiKey::new("  ".into()).is_none());
    }
}
