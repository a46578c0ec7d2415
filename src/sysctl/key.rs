//! Sysctl key names: the only way a string becomes something a store will open.
//!
//! A key is accepted in two spellings, following procps's rule: dotted
//! (`net.ipv4.conf.eth0/100.rp_filter`, where a `/` inside a component stands
//! for a literal dot) or slashed (`net/ipv4/conf/eth0.100/rp_filter`, where
//! every `/` separates and dots are literal). Anything that could escape the
//! sysctl tree — `..`, absolute paths, NUL, newlines, whitespace — is refused
//! here, before any file is opened, so no store needs to re-check.

use std::fmt;
use std::path::PathBuf;

/// Longest key accepted, in bytes (procps and systemd use similar limits).
pub const MAX_KEY_LEN: usize = 256;

/// A validated sysctl key: the path components under `/proc/sys`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysctlKey {
    components: Vec<String>,
}

/// Why a string is not a sysctl key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("empty sysctl key")]
    Empty,
    #[error("sysctl key {0:?} is longer than {MAX_KEY_LEN} bytes")]
    TooLong(String),
    #[error("sysctl key {key:?} contains {what}; keys are dotted names such as vm.swappiness")]
    BadChar { key: String, what: String },
    #[error("sysctl key {0:?} has an empty component (leading, trailing or doubled separator); absolute paths such as /proc/sys/vm/swappiness are not keys, write vm.swappiness")]
    EmptyComponent(String),
    #[error("sysctl key {0:?} contains a `..` or `.` path component; keys name files under /proc/sys and cannot leave it")]
    DotComponent(String),
}

impl SysctlKey {
    /// Parses and validates a key in dotted or slashed form.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(truncate_for_error(raw)));
        }
        if let Some(c) = raw.chars().find(|c| !allowed_char(*c)) {
            return Err(KeyError::BadChar { key: truncate_for_error(raw), what: describe_char(c) });
        }
        if raw.contains("..") {
            return Err(KeyError::DotComponent(truncate_for_error(raw)));
        }
        let first_sep = raw.find(['.', '/']);
        let slashed = first_sep.map(|i| raw.as_bytes()[i] == b'/').unwrap_or(false);
        let components: Vec<String> = if slashed {
            raw.split('/').map(str::to_string).collect()
        } else {
            raw.split('.').map(|c| c.replace('/', ".")).collect()
        };
        if components.iter().any(|c| c.is_empty()) {
            return Err(KeyError::EmptyComponent(raw.to_string()));
        }
        if components.iter().any(|c| c == "." || c == ".." || (slashed && c.starts_with('.') && c.chars().all(|x| x == '.'))) {
            return Err(KeyError::DotComponent(raw.to_string()));
        }
        Ok(Self { components })
    }

    /// Builds a key from path components relative to `/proc/sys` (used when listing a tree).
    pub fn from_components<I: IntoIterator<Item = String>>(parts: I) -> Result<Self, KeyError> {
        let components: Vec<String> = parts.into_iter().collect();
        let joined = components.join("/");
        // Re-validate through the slashed spelling so every key obeys one rule.
        Self::parse(&joined)
    }

    /// The components under `/proc/sys`.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The path of this key relative to a sysctl root (`vm/swappiness`).
    pub fn rel_path(&self) -> PathBuf {
        self.components.iter().collect()
    }

    /// The first component: `vm`, `net`, `kernel`, `fs`...
    pub fn subsystem(&self) -> &str {
        &self.components[0]
    }

    /// Dotted spelling, with dots inside a component written as `/` (as `sysctl -a` prints).
    pub fn dotted(&self) -> String {
        self.components.iter().map(|c| c.replace('.', "/")).collect::<Vec<_>>().join(".")
    }
}

fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '@' | '+')
}

fn describe_char(c: char) -> String {
    match c {
        '\0' => "a NUL byte".into(),
        '\n' => "a newline".into(),
        '\r' => "a carriage return".into(),
        c if c.is_whitespace() => "whitespace".into(),
        c => format!("the character {c:?}"),
    }
}

fn truncate_for_error(raw: &str) -> String {
    let mut s: String = raw.chars().take(64).collect();
    if s.len() < raw.len() {
        s.push('…');
    }
    s
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted())
    }
}

impl fmt::Debug for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SysctlKey({})", self.dotted())
    }
}

impl std::str::FromStr for SysctlKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for SysctlKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.dotted())
    }
}

impl<'de> serde::Deserialize<'de> for SysctlKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<&str, &str>) {
        match (SysctlKey::parse(raw), expected) {
            (Ok(k), Ok(path)) => assert_eq!(k.rel_path().to_str().unwrap(), path, "{raw}"),
            (Err(e), Err(frag)) => assert!(e.to_string().contains(frag), "{raw}: {e}"),
            (got, want) => panic!("{raw:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn plain_and_swapped_spellings() {
        check("vm.swappiness", Ok("vm/swappiness"));
        check("vm/swappiness", Ok("vm/swappiness"));
        check("net.ipv4.conf.eth0/100.rp_filter", Ok("net/ipv4/conf/eth0.100/rp_filter"));
        check("net/ipv4/conf/eth0.100/rp_filter", Ok("net/ipv4/conf/eth0.100/rp_filter"));
        assert_eq!(SysctlKey::parse("net/ipv4/conf/eth0.100/rp_filter").unwrap().dotted(), "net.ipv4.conf.eth0/100.rp_filter");
    }

    #[test]
    fn hostile_keys_are_refused() {
        check("../../etc/passwd", Err("path component"));
        check("net.core.somaxconn\nkernel.x", Err("newline"));
        check("/proc/sys/vm/swappiness", Err("absolute paths"));
        check("vm..swappiness", Err("`..`"));
        check("vm.swappiness.", Err("empty component"));
        check("vm.swappiness\0", Err("NUL"));
        check("vm.swap piness", Err("whitespace"));
        check("", Err("empty"));
        check(&"a.".repeat(200), Err("longer than"));
        check("net/../../etc", Err("path component"));
        check("vm.*", Err("'*'"));
    }
}
