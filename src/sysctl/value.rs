//! Sysctl values: strict parsing of what we will write, tolerant reading of
//! what the kernel returns.
//!
//! The kernel parses numbers with base 0 (`010` is 8, `0x10` is 16), ignores
//! trailing text (`300 # comment` writes 300) and stores array elements one by
//! one even when a later element fails. So nothing reaches a store unless it
//! is plain decimal, with exactly the expected number of elements and nothing
//! after them. Read-back is compared after splitting on whitespace, because
//! arrays come back tab-separated.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The shape of a parameter's value, as recorded in the knowledge base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// One signed decimal integer.
    Int,
    /// 0 or 1.
    Bool,
    /// One word out of a fixed set (KB `values`).
    Enum,
    /// Free text such as a congestion-control name.
    String,
    /// A fixed number of integers (`tcp_rmem`, `ip_local_port_range`).
    Ints,
}

/// A value in canonical form: decimal integers separated by one space, or trimmed text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Value(String);

/// Why a value cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("value {value:?} is empty")]
    Empty { value: String },
    #[error("value {value:?} contains {what}; a sysctl value is one line of plain text")]
    ControlChar { value: String, what: &'static str },
    #[error("value {value:?}: element {element:?} is not a plain decimal integer (no leading zeros, no '+', no hex: the kernel would read `010` as octal 8)")]
    NotDecimal { value: String, element: String },
    #[error("value {value:?}: element {element:?} does not fit a signed 64-bit integer (-9223372036854775808 to 9223372036854775807); no sysctl takes it")]
    OutOfRange { value: String, element: String },
    #[error("value {value:?} has {got} element(s), expected exactly {expected}")]
    WrongCount { value: String, got: usize, expected: usize },
    #[error("value {value:?} is not 0 or 1")]
    NotBool { value: String },
    #[error("value {value:?} is not one of {allowed}")]
    NotInEnum { value: String, allowed: String },
    #[error("value {value:?} is longer than {max} bytes")]
    TooLong { value: String, max: usize },
    #[error("value {value:?}: text after the value (`#` comments and extra words are not stripped by the kernel)")]
    TrailingText { value: String },
}

/// Longest string value we will write; kernel string sysctls are shorter still.
pub const MAX_VALUE_LEN: usize = 4096;

impl Value {
    /// Wraps text the kernel returned, normalising whitespace runs to one space.
    pub fn from_kernel(raw: &str) -> Self {
        Value(raw.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// A value made of integers.
    pub fn from_ints(ints: &[i64]) -> Self {
        Value(ints.iter().map(i64::to_string).collect::<Vec<_>>().join(" "))
    }

    /// A single integer.
    pub fn int(v: i64) -> Self {
        Value(v.to_string())
    }

    /// Strictly parses user- or model-supplied text as a value of `kind` with `count` elements.
    pub fn parse(raw: &str, kind: ValueKind, count: usize, allowed: &[String]) -> Result<Self, ValueError> {
        let value = raw.to_string();
        if let Some(what) = control_char(raw) {
            return Err(ValueError::ControlChar { value, what });
        }
        if raw.len() > MAX_VALUE_LEN {
            return Err(ValueError::TooLong { value: raw.chars().take(40).collect(), max: MAX_VALUE_LEN });
        }
        let words: Vec<&str> = raw.split_whitespace().collect();
        if words.is_empty() {
            return Err(ValueError::Empty { value });
        }
        match kind {
            ValueKind::Int | ValueKind::Bool | ValueKind::Ints => {
                let expected = if kind == ValueKind::Ints { count.max(1) } else { 1 };
                if words.iter().any(|w| w.starts_with('#') || w.starts_with(';')) {
                    return Err(ValueError::TrailingText { value });
                }
                for w in &words {
                    if parse_decimal(w).is_none() {
                        // Plain decimal digits that overflow i64 are a range problem, not a syntax one.
                        let digits = w.strip_prefix('-').unwrap_or(w);
                        let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
                        let element = w.to_string();
                        return Err(if plain { ValueError::OutOfRange { value, element } } else { ValueError::NotDecimal { value, element } });
                    }
                }
                if words.len() != expected {
                    return Err(ValueError::WrongCount { value, got: words.len(), expected });
                }
                if kind == ValueKind::Bool && !matches!(words[0], "0" | "1") {
                    return Err(ValueError::NotBool { value });
                }
                Ok(Value(words.join(" ")))
            }
            ValueKind::Enum => {
                if words.len() != 1 {
                    return Err(ValueError::TrailingText { value });
                }
                if !allowed.iter().any(|a| a == words[0]) {
                    return Err(ValueError::NotInEnum { value, allowed: allowed.join(", ") });
                }
                Ok(Value(words[0].to_string()))
            }
            ValueKind::String => {
                if words.iter().skip(1).any(|w| w.starts_with('#')) {
                    return Err(ValueError::TrailingText { value });
                }
                Ok(Value(words.join(" ")))
            }
        }
    }

    /// The canonical text, as written to the kernel.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// All elements as integers, when every element is one.
    pub fn ints(&self) -> Option<Vec<i64>> {
        self.0.split(' ').map(|w| w.parse::<i64>().ok()).collect()
    }

    /// The single integer, when the value is exactly one.
    pub fn as_int(&self) -> Option<i64> {
        match self.ints()?.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    }
}

/// Parses `w` as plain decimal: optional `-`, then `0` or digits without a leading zero.
pub fn parse_decimal(w: &str) -> Option<i64> {
    let digits = w.strip_prefix('-').unwrap_or(w);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    if w.starts_with('-') && digits == "0" {
        return None;
    }
    w.parse().ok()
}

fn control_char(raw: &str) -> Option<&'static str> {
    raw.chars().find_map(|c| match c {
        '\0' => Some("a NUL byte"),
        '\n' => Some("a newline"),
        '\r' => Some("a carriage return"),
        c if c.is_control() && c != '\t' => Some("a control character"),
        _ => None,
    })
}

/// How a value read back may legitimately differ from the value written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Must match exactly after whitespace normalisation.
    #[default]
    Exact,
    /// Millisecond value stored in jiffies: may come back rounded up to the tick (at most 10 ms at HZ=100).
    JiffiesMs,
    /// Rounded up to a power of two (rps_sock_flow_entries).
    PowerOfTwo,
}

/// Whether `read_back` is what the kernel returns after `written` was accepted.
pub fn read_back_matches(written: &Value, read_back: &Value, rounding: Rounding) -> bool {
    if written == read_back {
        return true;
    }
    let (Some(w), Some(r)) = (written.ints(), read_back.ints()) else {
        return false;
    };
    if w.len() != r.len() {
        return false;
    }
    w.iter().zip(&r).all(|(w, r)| match rounding {
        Rounding::Exact => w == r,
        Rounding::JiffiesMs => r >= w && r - w <= 10,
        Rounding::PowerOfTwo => *r >= *w && (*r as u64).is_power_of_two() && (*w <= 0 || *r < w.saturating_mul(2)),
    })
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, kind: ValueKind, count: usize, expected: Result<&str, &str>) {
        let allowed = vec!["bbr".to_string(), "cubic".to_string()];
        match (Value::parse(raw, kind, count, &allowed), expected) {
            (Ok(v), Ok(s)) => assert_eq!(v.as_str(), s),
            (Err(e), Err(frag)) => assert!(e.to_string().contains(frag), "{raw:?}: {e}"),
            (got, want) => panic!("{raw:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn accepts_plain_decimal_and_normalises_arrays() {
        check("300", ValueKind::Int, 1, Ok("300"));
        check(" -1 ", ValueKind::Int, 1, Ok("-1"));
        check("4096\t131072  33554432", ValueKind::Ints, 3, Ok("4096 131072 33554432"));
        check("bbr", ValueKind::Enum, 1, Ok("bbr"));
        check("1", ValueKind::Bool, 1, Ok("1"));
    }

    #[test]
    fn refuses_what_the_kernel_would_misread() {
        check("010", ValueKind::Int, 1, Err("octal"));
        check("0x10", ValueKind::Int, 1, Err("not a plain decimal"));
        check("+77", ValueKind::Int, 1, Err("not a plain decimal"));
        check("1.5", ValueKind::Int, 1, Err("not a plain decimal"));
        check("300 # comment", ValueKind::Int, 1, Err("text after the value"));
        check("300 400", ValueKind::Int, 1, Err("expected exactly 1"));
        check("8192 16384 abc", ValueKind::Ints, 3, Err("\"abc\""));
        check("8192", ValueKind::Ints, 3, Err("expected exactly 3"));
        check("99999999999999999999", ValueKind::Int, 1, Err("does not fit a signed 64-bit integer"));
        check("2", ValueKind::Bool, 1, Err("not 0 or 1"));
        check("reno", ValueKind::Enum, 1, Err("not one of bbr, cubic"));
        check("bbr # c", ValueKind::Enum, 1, Err("text after"));
        check("1\n2", ValueKind::Int, 1, Err("newline"));
        check("", ValueKind::Int, 1, Err("empty"));
        check("-0", ValueKind::Int, 1, Err("not a plain decimal"));
    }

    #[test]
    fn huge_integer_is_named_out_of_range_not_malformed() {
        // Before: "not a plain decimal integer", which it is; the problem is its size.
        check("99999999999999999999999", ValueKind::Int, 1, Err("\"99999999999999999999999\" does not fit a signed 64-bit integer"));
        check("4096 99999999999999999999999 1", ValueKind::Ints, 3, Err("does not fit a signed 64-bit integer"));
        check("-9223372036854775809", ValueKind::Int, 1, Err("does not fit"));
        check("-9223372036854775808", ValueKind::Int, 1, Ok("-9223372036854775808"));
        check("0099999999999999999999", ValueKind::Int, 1, Err("not a plain decimal"));
    }

    #[test]
    fn read_back_normalisation() {
        let w = Value::from_ints(&[4096, 131072, 33554432]);
        assert!(read_back_matches(&w, &Value::from_kernel("4096\t131072\t33554432\n"), Rounding::Exact));
        assert!(!read_back_matches(&w, &Value::from_kernel("4096\t131072\t6291456\n"), Rounding::Exact));
        assert!(read_back_matches(&Value::int(1), &Value::int(4), Rounding::JiffiesMs));
        assert!(!read_back_matches(&Value::int(1), &Value::int(40), Rounding::JiffiesMs));
        assert!(read_back_matches(&Value::int(1000), &Value::int(1024), Rounding::PowerOfTwo));
    }
}
