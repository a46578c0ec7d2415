//! The agent's configuration values as written (untyped YAML, read as JSON values) to typed ones:
//! each helper names the file, the field and the value in its error, and says what is valid.
//! Shared by `config` (the file) and `objective` (its `objective:` block).

use anyhow::{Result, anyhow};
use serde_json::Value as J;
use std::path::PathBuf;
use std::time::Duration;

/// `file: field: value: why; use what`.
pub fn bad(file: &str, field: &str, v: &J, why: &str) -> anyhow::Error {
    anyhow!("{file}: {field}: {v} {why}")
}

/// A string.
pub fn string(file: &str, field: &str, v: &J) -> Result<String> {
    v.as_str().map(str::to_string).ok_or_else(|| bad(file, field, v, "is not a string"))
}

/// One of `allowed`.
pub fn choice<'a>(file: &str, field: &str, v: &J, allowed: &[&'a str]) -> Result<&'a str> {
    let s = v.as_str().unwrap_or("");
    allowed.iter().find(|a| **a == s).copied().ok_or_else(|| bad(file, field, v, &format!("is not valid; use one of {}", allowed.join(", "))))
}

/// A whole number from `min` to `max`.
pub fn count(file: &str, field: &str, v: &J, min: u64, max: u64) -> Result<u64> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(file, field, v, &format!("is not valid; use a whole number from {min} to {max}"))),
    }
}

/// Seconds as a number, or a string with a unit: `500ms`, `30s`, `10m`, `2h`, `1d`.
pub fn duration(file: &str, field: &str, v: &J, min_s: f64, max_s: f64) -> Result<Duration> {
    let secs = match v {
        J::Number(n) => n.as_f64(),
        J::String(s) => {
            let s = s.trim();
            let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
            let factor = match unit {
                "ms" => Some(0.001),
                "" | "s" => Some(1.0),
                "m" => Some(60.0),
                "h" => Some(3600.0),
                "d" => Some(86400.0),
                _ => None,
            };
            factor.and_then(|f| num.trim().parse::<f64>().ok().map(|n| n * f))
        }
        _ => None,
    };
    match secs {
        Some(s) if s.is_finite() && s >= min_s && s <= max_s => Ok(Duration::from_secs_f64(s)),
        _ => Err(bad(file, field, v, &format!("is not valid; use seconds from {min_s} to {max_s} (a number, or a string such as \"30s\", \"10m\", \"1h\")"))),
    }
}

/// A list of strings.
pub fn list(file: &str, field: &str, v: &J) -> Result<Vec<String>> {
    let items = v.as_array().ok_or_else(|| bad(file, field, v, "is not a list; write it as [a, b] or one `- item` per line"))?;
    items.iter().map(|x| x.as_str().map(str::to_string).ok_or_else(|| bad(file, field, x, "is not a string"))).collect()
}

/// A path: a non-empty string without NUL.
pub fn path(file: &str, field: &str, v: &J) -> Result<PathBuf> {
    let s = string(file, field, v)?;
    if s.is_empty() || s.contains('\0') {
        return Err(bad(file, field, v, "is not a path"));
    }
    Ok(PathBuf::from(s))
}
