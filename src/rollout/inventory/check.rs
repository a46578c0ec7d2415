//! Validation of inventory hosts: every name, address, user, group and label checked before any
//! connection, since they end up as ssh arguments and in generated playbooks.

use super::model::{Host, Inventory};
use std::collections::BTreeMap;

impl Inventory {
    /// Checks every host; the message names the host, the field, the value and what is valid.
    pub fn validate(&self) -> Result<(), String> {
        if self.hosts.is_empty() {
            return Err("the inventory lists no host".into());
        }
        let mut seen = BTreeMap::new();
        for h in &self.hosts {
            if let Some(prev) = seen.insert(h.name.clone(), h.address.clone()) {
                return Err(format!("host {:?} is listed twice (addresses {prev} and {}); names must be unique", h.name, h.address));
            }
            validate_host(h)?;
        }
        Ok(())
    }
}

/// A group name (for `--limit` and `canary`): letters, digits, `_` and `-`.
pub(super) fn valid_group(g: &str) -> bool {
    !g.is_empty() && g.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A host name or inventory name: letters, digits, `.`, `_`, `-`, not starting with `-`.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && !s.starts_with(['-', '.']) && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// An address: a host name, an IPv4 address, or an IPv6 address (optionally in brackets).
fn valid_address(s: &str) -> bool {
    let inner = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(s);
    if inner.contains(':') {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    valid_name(inner)
}

/// A login user: letters, digits, `.`, `_`, `-`, starting with a letter, digit or `_`.
fn valid_user(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// One host's fields; the message names the host, the field, the value and what is valid.
fn validate_host(h: &Host) -> Result<(), String> {
    if !valid_name(&h.name) {
        return Err(format!("host name {:?} is invalid; use letters, digits, `.`, `_` and `-`, not starting with `-` or `.` (it names the host in reports and remote paths)", h.name));
    }
    if !valid_address(&h.address) {
        return Err(format!("host {:?}: address {:?} is invalid; use a host name, an IPv4 address or an IPv6 address (it is passed to ssh, so `-`-prefixed or spaced text is refused)", h.name, h.address));
    }
    if let Some(u) = &h.user
        && !valid_user(u)
    {
        return Err(format!("host {:?}: user {u:?} is invalid; use a login name of letters, digits, `.`, `_` and `-`", h.name));
    }
    if h.port == Some(0) {
        return Err(format!("host {:?}: port 0 is invalid; use 1 to 65535", h.name));
    }
    for g in &h.groups {
        if !valid_group(g) {
            return Err(format!("host {:?}: group {g:?} is invalid; use letters, digits, _ and -", h.name));
        }
    }
    for (k, v) in &h.labels {
        if k.is_empty() || k.contains('=') || k.chars().chain(v.chars()).any(|c| c.is_control()) {
            return Err(format!("host {:?}: label {k:?}: {v:?} is invalid; keys are non-empty without `=`, and neither side may hold control characters", h.name));
        }
    }
    if let Some(f) = &h.identity_file
        && f.to_string_lossy().chars().any(|c| c.is_control())
    {
        return Err(format!("host {:?}: identity_file {:?} contains a control character", h.name, f));
    }
    Ok(())
}
