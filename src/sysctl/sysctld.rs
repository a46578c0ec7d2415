//! The sysctl.d file format (systemd `sysctl.d(5)`, procps `sysctl.conf(5)`):
//! parsing a file into assignments and rendering assignments into a file that
//! `sysctl -p` and `systemd-sysctl` both accept.
//!
//! Parsing is stricter than either tool: a line that is not an assignment is
//! an error (procps only warns), inline `#` comments and quotes are refused
//! (both tools would write them to the kernel), and globs are refused because
//! a plan must name every key it touches.

use super::key::{KeyError, SysctlKey};
use std::path::Path;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The key.
    pub key: SysctlKey,
    /// The value text after `=`, trimmed.
    pub value: String,
    /// 1-based line number in the file.
    pub line: usize,
    /// The line started with `-`: failures to apply it are to be ignored.
    pub ignore_failure: bool,
}

/// A line that is not an acceptable assignment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct SysctldError {
    /// File name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong and what would be valid.
    pub problem: String,
}

/// Parses sysctl.d text; `file` names the source in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Assignment>, SysctldError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |problem: String| SysctldError { file: file.to_string(), line, problem };
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            return Err(err(format!("{t:?} is not an assignment; expected `key = value`")));
        };
        let mut k = k.trim();
        let ignore_failure = k.starts_with('-');
        if ignore_failure {
            k = k[1..].trim_start();
        }
        if k.contains('*') || k.contains('?') || k.contains('[') {
            return Err(err(format!("key {k:?} is a glob; name every key explicitly")));
        }
        let key = SysctlKey::parse(k).map_err(|e: KeyError| err(e.to_string()))?;
        let value = v.trim();
        if value.is_empty() {
            return Err(err(format!("{key} has an empty value")));
        }
        if value.contains('#') {
            return Err(err(format!("{key} = {value:?}: inline comments are not stripped by sysctl; the kernel would receive the `#` text")));
        }
        if value.starts_with('"') || value.starts_with('\'') {
            return Err(err(format!("{key} = {value}: quotes are not stripped by sysctl; write the value bare")));
        }
        out.push(Assignment { key, value: value.to_string(), line, ignore_failure });
    }
    Ok(out)
}

/// Reads and parses a sysctl.d file.
pub fn parse_file(path: &Path) -> anyhow::Result<Vec<Assignment>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    Ok(parse(&text, &path.display().to_string())?)
}

/// Renders assignments as a sysctl.d file: `header` lines become `# ` comments.
pub fn render(header: &[String], entries: &[(SysctlKey, String)]) -> String {
    let mut s = String::new();
    for h in header {
        if h.is_empty() {
            s.push_str("#\n");
        } else {
            s.push_str("# ");
            s.push_str(h);
            s.push('\n');
        }
    }
    if !header.is_empty() {
        s.push('\n');
    }
    for (k, v) in entries {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_assignments_comments_and_flags() {
        let text = "# c\n; c\n\nvm.swappiness = 10\n-net.core.somaxconn=4096\nnet.ipv4.tcp_rmem = 4096\t131072 33554432\n";
        let a = parse(text, "x.conf").unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].key.to_string(), "vm.swappiness");
        assert_eq!(a[0].line, 4);
        assert!(a[1].ignore_failure);
        assert_eq!(a[2].value, "4096\t131072 33554432");
    }

    #[test]
    fn refuses_what_sysctl_would_mangle() {
        for (text, frag) in [
            ("vm.swappiness\n", "x.conf:1: \"vm.swappiness\" is not an assignment"),
            ("net.ipv4.tcp_rmem = 4096 87380 6291456 # c\n", "inline comments"),
            ("vm.swappiness = \"10\"\n", "quotes"),
            ("net.ipv4.conf.*.rp_filter = 2\n", "glob"),
            ("../etc = 1\n", "path component"),
            ("vm.swappiness =\n", "empty value"),
        ] {
            let e = parse(text, "x.conf").unwrap_err().to_string();
            assert!(e.contains(frag), "{text:?}: {e}");
        }
    }

    #[test]
    fn render_then_parse_round_trips() {
        let entries = vec![(SysctlKey::parse("vm.swappiness").unwrap(), "10".to_string())];
        let text = render(&["made by test".into()], &entries);
        assert!(text.starts_with("# made by test\n\nvm.swappiness = 10\n"));
        assert_eq!(parse(&text, "t").unwrap()[0].value, "10");
    }
}
