//! The OpenAI chat-completions wire format, as much of it as SemantOS uses:
//! the request it sends and the envelope of the response. The envelope is
//! read tolerantly (servers add `usage`, `timings`, `system_fingerprint`...)
//! but what is needed must be there and well-typed; the model's own text
//! inside it is parsed strictly elsewhere (`reply`).

use super::failure::{Failure, excerpt};
use super::reply::ReplySchema;
use super::settings::FormatMode;
use serde::{Deserialize, Serialize};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `system` or `user`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// A chat-completions request. Field order is fixed, so the serialised
/// request is canonical and its hash keys recordings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// System prompt, then the user prompt.
    pub messages: Vec<Message>,
    /// Sampling temperature.
    pub temperature: f64,
    /// Largest reply.
    pub max_tokens: u32,
    /// Per-sample seed (the sample index), so samples differ and a recording is reproducible.
    pub seed: u64,
    /// Always false: one JSON body back.
    pub stream: bool,
    /// How the reply is asked to be JSON; absent in plain mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
}

/// The `response_format` field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// OpenAI structured outputs: `{"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`.
    JsonSchema {
        /// The named schema.
        json_schema: NamedSchema,
    },
    /// JSON mode. `schema` beside it is the llama-cpp-python / Anyscale extension
    /// that turns the schema into a grammar; a server that refuses the extra
    /// field answers 400 and `auto` steps down to plain.
    JsonObject {
        /// The reply schema.
        schema: ReplySchema,
    },
}

/// A schema with the name and strictness OpenAI's `json_schema` wants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedSchema {
    /// `semantos_plan`.
    pub name: &'static str,
    /// Always true: no field beyond the schema.
    pub strict: bool,
    /// The reply schema.
    pub schema: ReplySchema,
}

/// The `response_format` value for a mode (`None` for plain).
pub fn response_format(mode: FormatMode, schema: &ReplySchema) -> Option<ResponseFormat> {
    match mode {
        FormatMode::Auto | FormatMode::JsonSchema => Some(ResponseFormat::JsonSchema { json_schema: NamedSchema { name: "semantos_plan", strict: true, schema: schema.clone() } }),
        FormatMode::JsonObject => Some(ResponseFormat::JsonObject { schema: schema.clone() }),
        FormatMode::Plain => None,
    }
}

/// What the transport got back: an HTTP status and body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// `Retry-After`, when the server sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// The body as text.
    pub body: String,
}

/// The assistant's text of the first choice, once the envelope is known to be sound.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// `choices[0].message.content`.
    pub content: String,
    /// `choices[0].finish_reason`, when given.
    pub finish_reason: Option<String>,
}

/// Turns an HTTP reply into the assistant's text, or the failure it is.
pub fn completion(url: &str, reply: &HttpReply, max_tokens: u32) -> Result<Completion, Failure> {
    let body = &reply.body;
    if reply.status == 429 {
        let retry = reply.retry_after.as_ref().map(|r| format!(" (Retry-After: {})", excerpt(r))).unwrap_or_default();
        return Err(Failure::RateLimited { url: url.into(), retry, body: excerpt(body) });
    }
    if !(200..300).contains(&reply.status) {
        return Err(Failure::HttpStatus { url: url.into(), status: reply.status, body: excerpt(body) });
    }
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| Failure::NotJson { url: url.into(), what: "response body".into(), detail: e.to_string(), excerpt: excerpt(body) })?;
    let envelope = |field: &str, detail: String| Failure::Envelope { url: url.into(), field: field.into(), detail };
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(envelope("error", format!("the server reported an error with status {}: {}", reply.status, excerpt(&err.to_string()))));
    }
    let choices = match v.get("choices") {
        Some(serde_json::Value::Array(a)) => a,
        Some(other) => return Err(envelope("choices", format!("expected an array, got {}", excerpt(&other.to_string())))),
        None => return Err(envelope("choices", "missing".into())),
    };
    let Some(first) = choices.first() else {
        return Err(Failure::EmptyChoices { url: url.into() });
    };
    let finish_reason = match first.get("finish_reason") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(envelope("choices[0].finish_reason", format!("expected a string, got {}", excerpt(&other.to_string())))),
    };
    match finish_reason.as_deref() {
        Some("length") => return Err(Failure::Truncated { url: url.into(), max_tokens }),
        // `stop` (and `eos` from some llama.cpp builds) is a complete reply; anything else
        // (`content_filter`, `tool_calls`) is not a plan.
        None | Some("stop") | Some("eos") => {}
        Some(other) => return Err(envelope("choices[0].finish_reason", format!("\"{}\" is not a complete answer (expected \"stop\")", excerpt(other)))),
    }
    let content = match first.get("message").and_then(|m| m.get("content")) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => return Err(envelope("choices[0].message.content", "missing or null (a refusal or a tool call is not a plan)".into())),
        Some(other) => return Err(envelope("choices[0].message.content", format!("expected a string, got {}", excerpt(&other.to_string())))),
    };
    Ok(Completion { content, finish_reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> HttpReply {
        HttpReply { status: 200, retry_after: None, body: body.into() }
    }

    #[test]
    fn envelope_failures_have_their_rule() {
        let u = "http://127.0.0.1:1/v1/chat/completions";
        for (reply, rule) in [
            (ok("<html>"), "not-json"),
            (ok(r#"{"choices": []}"#), "empty-choices"),
            (ok(r#"{"choices": [{"finish_reason": "length", "message": {"content": "{\"sch"}}]}"#), "truncated"),
            (ok(r#"{"object": "chat.completion"}"#), "envelope"),
            (ok(r#"{"error": {"message": "model not found"}}"#), "envelope"),
            (ok(r#"{"choices": [{"finish_reason": "stop", "message": {"content": null}}]}"#), "envelope"),
            (ok(r#"{"choices": [{"finish_reason": "content_filter", "message": {"content": "x"}}]}"#), "envelope"),
            (HttpReply { status: 500, retry_after: None, body: "boom".into() }, "http-status"),
            (HttpReply { status: 429, retry_after: Some("20".into()), body: "slow down".into() }, "rate-limited"),
        ] {
            let e = completion(u, &reply, 64).unwrap_err();
            assert_eq!(e.rule(), rule, "{e}");
            assert!(e.to_string().contains("127.0.0.1:1") || rule == "schema", "{e}");
        }
        let c = completion(u, &ok(r#"{"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "{}"}}], "usage": {}}"#), 64).unwrap();
        assert_eq!(c.content, "{}");
    }
}
