//! Why an LLM exchange gave no usable plan. One variant per way a reply can
//! be broken or hostile, each with a short rule name (the verdict label in
//! reports and tests) and a message that names the URL, the field and the
//! value. Values quoted from a reply are escaped and cut short: the reply is
//! untrusted, and a message must not carry its control characters to a
//! terminal or a log.

use serde::Serialize;

/// Longest excerpt of untrusted text quoted in a message.
const EXCERPT: usize = 120;

/// Quotes untrusted text for a message: control and invisible format
/// characters escaped (`\n`, `\u{1b}`), cut to a short excerpt.
pub fn excerpt(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(EXCERPT) {
        if c.is_control() || matches!(c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2069 | 0xFEFF) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().count() > EXCERPT {
        out.push('…');
    }
    out
}

/// A failed exchange or an unusable reply.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Failure {
    /// No complete reply within the timeout.
    #[error("{url}: no reply within {timeout_s} s (raise --llm-timeout, or use a smaller model)")]
    Timeout {
        /// Endpoint.
        url: String,
        /// The timeout that ran out.
        timeout_s: f64,
    },
    /// The connection failed (refused, reset, DNS).
    #[error("{url}: cannot reach the server: {detail} (is it running? check --llm-url)")]
    Transport {
        /// Endpoint.
        url: String,
        /// What the HTTP client said.
        detail: String,
    },
    /// The server answered 429: too many requests.
    #[error("{url}: HTTP 429 Too Many Requests{retry}: the server is rate limiting; retry later or lower --llm-samples. Body: {body}")]
    RateLimited {
        /// Endpoint.
        url: String,
        /// ` (Retry-After: 20)` when the server said when.
        retry: String,
        /// Start of the body, escaped.
        body: String,
    },
    /// The server answered with another non-2xx status.
    #[error("{url}: HTTP {status}: {body}")]
    HttpStatus {
        /// Endpoint.
        url: String,
        /// Status code.
        status: u16,
        /// Start of the body, escaped.
        body: String,
    },
    /// The body, or the message content, is not JSON.
    #[error("{url}: the {what} is not JSON ({detail}): {excerpt}")]
    NotJson {
        /// Endpoint.
        url: String,
        /// `response body` or `message content`.
        what: String,
        /// The parser's message.
        detail: String,
        /// Start of the text, escaped.
        excerpt: String,
    },
    /// The body is JSON but not a chat completion (`choices[0].message.content` missing, an `error` object...).
    #[error("{url}: not a chat completion: {field}: {detail}")]
    Envelope {
        /// Endpoint.
        url: String,
        /// The field that is missing or wrong.
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// `choices` is empty.
    #[error("{url}: the reply has no choices (an empty `choices` array): nothing to parse")]
    EmptyChoices {
        /// Endpoint.
        url: String,
    },
    /// `finish_reason: length`: the reply was cut off.
    #[error("{url}: the reply was truncated (finish_reason \"length\" at max_tokens {max_tokens}); a cut-off plan is never completed by guesswork: raise --llm-max-tokens")]
    Truncated {
        /// Endpoint.
        url: String,
        /// The limit that was hit.
        max_tokens: u32,
    },
    /// The reply's `schema_version` is not the one asked for.
    #[error("reply schema_version {found} is not supported; the prompt asks for version {expected}")]
    SchemaVersion {
        /// What the reply said (as text: it may not even be a number).
        found: String,
        /// The version this build reads.
        expected: u32,
    },
    /// The reply does not match the schema: unknown, missing or mistyped field.
    #[error("reply does not match the schema: {field}: {detail}")]
    Schema {
        /// JSON path of the field (`changes[2].value`).
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// A field carries an attempt to smuggle commands, control characters or instructions.
    #[error("injection attempt in {field}: {why}: \"{value}\"")]
    Injection {
        /// JSON path of the field.
        field: String,
        /// What gave it away.
        why: String,
        /// The value, escaped and cut short.
        value: String,
    },
    /// A change cites a finding this run does not have, or a KB entry other than its key.
    #[error("bad citation in {field} = \"{value}\": {detail}")]
    Citation {
        /// JSON path of the field.
        field: String,
        /// The cited value, escaped.
        value: String,
        /// What is wrong.
        detail: String,
    },
    /// `--llm-replay` has no recording for this request.
    #[error("{detail}")]
    Replay {
        /// Which request, which directory, and how to record it.
        detail: String,
    },
    /// The guardrails aborted the merged plan (every broken rule, one per line).
    #[error("the guardrails rejected the LLM's plan:\n{aborted}")]
    Guardrails {
        /// `CheckedPlan::aborted`.
        aborted: String,
    },
}

impl Failure {
    /// Short rule name: the verdict label of the exchange.
    pub fn rule(&self) -> &'static str {
        match self {
            Failure::Timeout { .. } => "timeout",
            Failure::Transport { .. } => "transport",
            Failure::RateLimited { .. } => "rate-limited",
            Failure::HttpStatus { .. } => "http-status",
            Failure::NotJson { .. } => "not-json",
            Failure::Envelope { .. } => "envelope",
            Failure::EmptyChoices { .. } => "empty-choices",
            Failure::Truncated { .. } => "truncated",
            Failure::SchemaVersion { .. } => "schema-version",
            Failure::Schema { .. } => "schema",
            Failure::Injection { .. } => "injection",
            Failure::Citation { .. } => "citation",
            Failure::Replay { .. } => "replay",
            Failure::Guardrails { .. } => "guardrails",
        }
    }

    /// Whether asking again is pointless (the server is down, refusing, or
    /// hostile): sampling stops at the first such failure.
    pub fn stops_sampling(&self) -> bool {
        matches!(self, Failure::Timeout { .. } | Failure::Transport { .. } | Failure::RateLimited { .. } | Failure::HttpStatus { .. } | Failure::Replay { .. } | Failure::Injection { .. })
    }

    /// `[rule] message`, one line per line of the message.
    pub fn verdict(&self) -> String {
        format!("[{}] {self}", self.rule())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_escape_and_cut() {
        assert_eq!(excerpt("a\nb\u{1b}[2J \"q\" \u{202e}"), "a\\nb\\u{1b}[2J \"q\" \\u{202e}");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT + 1);
    }
}
