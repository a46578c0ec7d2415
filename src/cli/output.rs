//! The one door every `--json` document goes out through.
//!
//! Every document is a JSON object whose first fields are `schema_version`
//! (the version of that kind of document) and `kind` (what the document is:
//! `findings`, `dry_run`, `apply`, `error`…), followed by the document's own
//! fields. A type that already carries its own `schema_version` (findings,
//! collect, bench and rollout reports) keeps it; every other kind is at
//! [`JSON_SCHEMA_VERSION`]. A consumer dispatches on `kind` and refuses a
//! `schema_version` it does not know. Errors under `--json` are an `error`
//! document on stderr (one line), never on stdout.

use anyhow::Result;
use serde::Serialize;
use std::io::Write;

/// Version of every `--json` document whose type has no version of its own.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// A document: version and kind first, then the body's fields.
#[derive(Serialize)]
struct Doc<'a, T: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<u32>,
    kind: &'a str,
    #[serde(flatten)]
    body: Body<'a, T>,
}

/// A body that is an object is flattened into the document; anything else (a list) goes under `items`.
#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a, T: Serialize> {
    Object(&'a T),
    Items { items: &'a T },
}

/// The pretty JSON text of a `kind` document with `body`'s fields.
pub fn document<T: Serialize>(kind: &str, body: &T) -> Result<String> {
    // Serialised once as a value to see its shape: whether it is an object and has its own version.
    let v = serde_json::to_value(body)?;
    let (schema_version, body) = match v.as_object() {
        Some(o) if o.contains_key("kind") => anyhow::bail!("internal error: a {kind} document has a field named `kind`"),
        Some(o) => (if o.contains_key("schema_version") { None } else { Some(JSON_SCHEMA_VERSION) }, Body::Object(body)),
        None => (Some(JSON_SCHEMA_VERSION), Body::Items { items: body }),
    };
    Ok(serde_json::to_string_pretty(&Doc { schema_version, kind, body })?)
}

/// Writes a `kind` document and a newline to `out`.
pub fn write<T: Serialize>(out: &mut dyn Write, kind: &str, body: &T) -> Result<()> {
    writeln!(out, "{}", document(kind, body)?)?;
    Ok(())
}

/// Prints a `kind` document on stdout.
pub fn print<T: Serialize>(kind: &str, body: &T) -> Result<()> {
    write(&mut std::io::stdout().lock(), kind, body)
}

/// What an error looks like under `--json`.
#[derive(Debug, Serialize)]
pub struct ErrorDoc {
    /// The process's exit code (the same as without `--json`).
    pub exit_code: i32,
    /// The error, as the plain-text line would say it (outermost context first).
    pub message: String,
    /// The underlying causes, outermost first (the plain text joins them with `: `).
    pub causes: Vec<String>,
}

impl ErrorDoc {
    /// The document of `e`, exiting with `code`.
    pub fn of(code: i32, e: &anyhow::Error) -> Self {
        Self { exit_code: code, message: e.to_string(), causes: e.chain().skip(1).map(|c| c.to_string()).collect() }
    }

    /// One line of JSON: a parent reading the last line of stderr (the rollout engine) gets all of it.
    pub fn line(&self) -> String {
        let doc = Doc { schema_version: Some(JSON_SCHEMA_VERSION), kind: "error", body: Body::Object(self) };
        serde_json::to_string(&doc).expect("an error document serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_lead_with_version_and_kind_and_keep_a_types_own_version() {
        #[derive(Serialize)]
        struct Plain {
            a: u32,
        }
        #[derive(Serialize)]
        struct Versioned {
            schema_version: u32,
            b: bool,
        }
        let d = document("plain", &Plain { a: 3 }).unwrap();
        assert!(d.starts_with("{\n  \"schema_version\": 1,\n  \"kind\": \"plain\",\n  \"a\": 3"), "{d}");
        let v: serde_json::Value = serde_json::from_str(&document("versioned", &Versioned { schema_version: 4, b: true }).unwrap()).unwrap();
        assert_eq!((v["schema_version"].as_u64(), v["kind"].as_str(), v["b"].as_bool()), (Some(4), Some("versioned"), Some(true)));
        let v: serde_json::Value = serde_json::from_str(&document("list", &vec![1, 2]).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"schema_version": 1, "kind": "list", "items": [1, 2]}));
    }

    #[test]
    fn an_error_document_is_one_line_with_its_causes_and_reads_back() {
        let e = anyhow::anyhow!("disk full").context("writing the backup");
        let line = ErrorDoc::of(1, &e).line();
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v, serde_json::json!({"schema_version": 1, "kind": "error", "exit_code": 1, "message": "writing the backup", "causes": ["disk full"]}));
    }
}
