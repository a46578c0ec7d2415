//! The LLM reasoning backend: a model behind an OpenAI-compatible
//! chat-completions API (llama.cpp, vLLM, Ollama, a hosted API behind a local
//! proxy) proposes a plan of the same `Plan` type the rule engine makes.
//!
//! This is an edge module: it does HTTP and files, so it lives outside the
//! pure `reasoning` and `safety` stages and feeds them plain data.
//!
//! Architecture invariant: LLM output is untrusted input. The reply is parsed
//! strictly (`reply`), checked for injection and citations, merged over k
//! samples (`consistency`), and then passes the same guardrails
//! (`safety::check`) as every other plan; a change the samples do not agree
//! on is advice only and is never written. The API key comes only from the
//! environment and is never printed, logged or recorded.
//!
//! * `settings` — flags / environment / file layers, validated once.
//! * `prompt` — findings + candidate KB entries + current values + intent → messages and schema.
//! * `wire` — the chat-completions request and the response envelope.
//! * `transport` — HTTP (ureq), recording and replay.
//! * `reply` — the reply schema and its strict parser.
//! * `failure` — one verdict per way an exchange can fail.
//! * `consistency` — agreement and uncertainty over k samples.
//! * `claims` — every figure a rationale cites, checked against the evidence it was given.
//! * `reasoner` — `LlmReasoner` (the `Reasoner` trait) and `propose` (guardrails, fall back).
//! * `calibration` — (u, outcome) records, JSON lines.

pub mod calibration;
pub mod claims;
pub mod consistency;
pub mod failure;
pub mod prompt;
pub mod reasoner;
pub mod reply;
pub mod settings;
pub mod transport;
pub mod wire;

pub use failure::Failure;
pub use reasoner::{LlmProposal, LlmReasoner, LlmRun, Source, propose};
pub use settings::{Fallback, FormatMode, Partial, Settings};
