//! Getting a request to the model and its answer back: over HTTP (ureq,
//! blocking, with connect and whole-request timeouts), or from recordings.
//! A [`Backend`] turns a request into an [`Exchange`]; the recorder writes
//! each exchange to `DIR/<hash>.json`, keyed by a hash of the canonical
//! request (the API key is a header, never part of it), and the replayer
//! answers from those files, so a run is reproducible without the server.
//! A replayed file must hold exactly the request asked for: a changed prompt
//! (other findings, KB or settings) is reported, never answered with a stale
//! reply.

use super::failure::Failure;
use super::settings::{ApiKey, Settings};
use super::wire::{ChatRequest, HttpReply};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest response body read, in bytes: a plan is a few kilobytes.
pub const MAX_BODY: u64 = 4 << 20;
/// Version of the recording file format.
pub const RECORDING_SCHEMA_VERSION: u32 = 1;

/// What one request came to at the transport level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Exchange {
    /// An HTTP response (any status).
    Http(HttpReply),
    /// No complete response in time.
    Timeout {
        /// The whole-request timeout, seconds.
        after_s: f64,
    },
    /// No connection, or it broke.
    Transport {
        /// What the client said.
        detail: String,
    },
}

impl Exchange {
    /// The failure it is, if it is not an HTTP response.
    pub fn into_reply(self, url: &str) -> Result<HttpReply, Failure> {
        match self {
            Exchange::Http(r) => Ok(r),
            Exchange::Timeout { after_s } => Err(Failure::Timeout { url: url.into(), timeout_s: after_s }),
            Exchange::Transport { detail } => Err(Failure::Transport { url: url.into(), detail }),
        }
    }
}

/// Something that answers chat requests: the HTTP client, a recorder around it, a replayer, or a test double.
pub trait Backend {
    /// Sends `req` to `endpoint`. A missing recording is the only error: everything else is an [`Exchange`].
    fn send(&self, endpoint: &str, req: &ChatRequest) -> Result<Exchange, Failure>;
}

/// The real thing: blocking HTTP/1.1 with ureq.
pub struct HttpBackend {
    agent: ureq::Agent,
    api_key: Option<ApiKey>,
    timeout_s: f64,
}

impl HttpBackend {
    /// A client with the settings' timeouts. Redirects are not followed (the
    /// bearer token must not travel to another host) and proxies in the
    /// environment are not used. https verifies the server against the
    /// built-in Mozilla roots, or only against the settings' CA file.
    pub fn new(s: &Settings) -> HttpBackend {
        let roots = if s.ca_certs.is_empty() { ureq::tls::RootCerts::WebPki } else { ureq::tls::RootCerts::new_with_certs(&s.ca_certs) };
        let config = ureq::Agent::config_builder()
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .timeout_global(Some(s.timeout))
            .timeout_connect(Some(s.connect_timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("semantos/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpBackend { agent: ureq::Agent::new_with_config(config), api_key: s.api_key.clone(), timeout_s: s.timeout.as_secs_f64() }
    }
}

fn is_timeout(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock),
        _ => false,
    }
}

impl Backend for HttpBackend {
    fn send(&self, endpoint: &str, req: &ChatRequest) -> Result<Exchange, Failure> {
        let body = serde_json::to_string(req).expect("requests serialise");
        let mut r = self.agent.post(endpoint).header("content-type", "application/json").header("accept", "application/json");
        if let Some(k) = &self.api_key {
            r = r.header("authorization", k.bearer());
        }
        let mut resp = match r.send(body.as_str()) {
            Ok(resp) => resp,
            Err(e) if is_timeout(&e) => return Ok(Exchange::Timeout { after_s: self.timeout_s }),
            Err(e) => return Ok(Exchange::Transport { detail: e.to_string() }),
        };
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut bytes = Vec::new();
        let read = resp.body_mut().with_config().limit(MAX_BODY).reader().read_to_end(&mut bytes);
        match read {
            Ok(_) => Ok(Exchange::Http(HttpReply { status, retry_after, body: String::from_utf8_lossy(&bytes).into_owned() })),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => Ok(Exchange::Timeout { after_s: self.timeout_s }),
            Err(e) => {
                // ureq reports its own timeouts inside an io::Error while streaming the body.
                let text = e.to_string();
                if text.contains("timeout") { Ok(Exchange::Timeout { after_s: self.timeout_s }) } else { Ok(Exchange::Transport { detail: format!("reading the response body: {text}") }) }
            }
        }
    }
}

/// The key of a request: FNV-1a (64 bit) of its canonical JSON, as 16 hex digits.
pub fn request_hash(req: &ChatRequest) -> String {
    crate::telemetry::fnv::fnv1a64_hex(&serde_json::to_string(req).expect("requests serialise"))
}

/// One recorded exchange, as stored in `DIR/<hash>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Format version.
    pub schema_version: u32,
    /// The request, in full: a replay checks it is the one asked for.
    pub request: serde_json::Value,
    /// What came back.
    pub exchange: Exchange,
}

fn recording_path(dir: &Path, req: &ChatRequest) -> PathBuf {
    dir.join(format!("{}.json", request_hash(req)))
}

/// Sends through `inner` and writes every exchange to a directory.
pub struct Recorder<B> {
    inner: B,
    dir: PathBuf,
}

impl<B: Backend> Recorder<B> {
    /// Records into `dir` (created if needed).
    pub fn new(inner: B, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating LLM recording directory {}", dir.display()))?;
        Ok(Recorder { inner, dir: dir.to_path_buf() })
    }
}

impl<B: Backend> Backend for Recorder<B> {
    fn send(&self, endpoint: &str, req: &ChatRequest) -> Result<Exchange, Failure> {
        let exchange = self.inner.send(endpoint, req)?;
        let rec = Recording { schema_version: RECORDING_SCHEMA_VERSION, request: serde_json::to_value(req).expect("requests serialise"), exchange: exchange.clone() };
        let path = recording_path(&self.dir, req);
        let text = serde_json::to_string_pretty(&rec).expect("recordings serialise");
        // A recording that cannot be written makes the run unreproducible: say so, but do not lose the answer.
        if let Err(e) = crate::apply::files::write_atomic(&path, text.as_bytes(), 0o644) {
            eprintln!("semantos: warning: could not record the LLM exchange to {}: {e:#}", path.display());
        }
        Ok(exchange)
    }
}

/// Answers from recordings; never opens a connection.
pub struct Replayer {
    dir: PathBuf,
}

impl Replayer {
    /// Replays from `dir`, which must exist.
    pub fn new(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            anyhow::bail!("--llm-replay {}: no such directory; record one first with --llm-record {}", dir.display(), dir.display());
        }
        Ok(Replayer { dir: dir.to_path_buf() })
    }
}

impl Backend for Replayer {
    fn send(&self, _endpoint: &str, req: &ChatRequest) -> Result<Exchange, Failure> {
        let path = recording_path(&self.dir, req);
        let miss = |why: String| Failure::Replay {
            detail: format!("--llm-replay {}: {why}; the prompt differs from the recorded run (findings, KB, current values, intent or LLM settings changed): record again with --llm-record", self.dir.display()),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| miss(format!("no recording {} for this request ({e})", path.display())))?;
        let rec: Recording = serde_json::from_str(&text).map_err(|e| miss(format!("{} is not a recording: {e}", path.display())))?;
        if rec.schema_version != RECORDING_SCHEMA_VERSION {
            return Err(miss(format!("{} has recording schema_version {} (this build reads {RECORDING_SCHEMA_VERSION})", path.display(), rec.schema_version)));
        }
        if rec.request != serde_json::to_value(req).expect("requests serialise") {
            return Err(miss(format!("{} holds another request with the same hash", path.display())));
        }
        Ok(rec.exchange)
    }
}

/// The backend the settings call for: replay, or HTTP (recorded when asked).
pub fn from_settings(s: &Settings) -> Result<Box<dyn Backend>> {
    if let Some(dir) = &s.replay {
        return Ok(Box::new(Replayer::new(dir)?));
    }
    let http = HttpBackend::new(s);
    Ok(match &s.record {
        Some(dir) => Box::new(Recorder::new(http, dir)?),
        None => Box::new(http),
    })
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn send(&self, endpoint: &str, req: &ChatRequest) -> Result<Exchange, Failure> {
        (**self).send(endpoint, req)
    }
}
