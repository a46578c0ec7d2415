//! sysctl.d files with the precedence of systemd-sysctl and `sysctl --system` (procps): the
//! directories `/etc/sysctl.d`, `/run/sysctl.d`, `/usr/local/lib/sysctl.d`, `/usr/lib/sysctl.d`,
//! `/lib/sysctl.d`; a file name found in several is read from the first only (so `/etc` overrides
//! `/run`, which overrides `/usr/lib`), and a link to `/dev/null` masks the name; the files are
//! read in lexical order of their names, a later assignment winning; `/etc/sysctl.conf` is read
//! last (procps; Debian's `99-sysctl.conf` link to it is read there once). An explicit key wins
//! over a glob whatever the order: systemd-sysctl skips a glob's match that a non-glob line names.
//!
//! Tolerant, unlike `sysctl::sysctld::parse` (a plan's strict parser, used here line by line for
//! its verdict): a line that parser refuses still manages its key at boot, so it is reported with
//! the parser's complaint as a note; a line without `=` is a warning naming the file and line.

use super::model::{Line, Roots};
use crate::sysctl::SysctlKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The sysctl.d directories, highest precedence first.
pub const DIRS: &[&str] = &["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"];
/// Read after every sysctl.d file.
pub const SYSCTL_CONF: &str = "/etc/sysctl.conf";

/// One assignment, in the order the files are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Where, and what it says.
    pub line: Line,
    /// The dotted key, or `None` for a glob.
    pub key: Option<String>,
    /// `-key = value`: failures to set it are ignored.
    pub ignore_failure: bool,
    /// What the strict parser says is wrong with the line, if anything.
    pub problem: Option<String>,
}

/// Every assignment of every file, in application order, and the warnings.
#[derive(Debug, Clone, Default)]
pub struct Files {
    /// Assignments in the order they are applied (later wins).
    pub assignments: Vec<Assignment>,
    /// The files read, in order.
    pub read: Vec<PathBuf>,
    /// Names masked by a link to /dev/null.
    pub masked: Vec<PathBuf>,
    /// Lines and files that could not be used.
    pub warnings: Vec<String>,
}

/// The files in application order under `roots`, with the masked names.
pub fn ordered(roots: &Roots) -> (Vec<PathBuf>, Vec<PathBuf>, Vec<String>) {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    let (mut masked, mut warnings) = (Vec::new(), Vec::new());
    let mut seen_dirs: Vec<PathBuf> = Vec::new();
    for d in DIRS {
        let dir = roots.path(d);
        // /lib is a link to /usr/lib on merged-/usr systems: one directory, read once.
        let canon = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
        if seen_dirs.contains(&canon) {
            continue;
        }
        seen_dirs.push(canon);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                warnings.push(format!("{}: cannot list the directory: {e}", dir.display()));
                continue;
            }
        };
        let mut names: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".conf")).collect();
        names.sort();
        for n in names {
            if by_name.contains_key(&n) {
                continue;
            }
            let p = dir.join(&n);
            if std::fs::read_link(&p).is_ok_and(|t| t == Path::new("/dev/null")) {
                masked.push(p.clone());
            }
            by_name.insert(n, p);
        }
    }
    let conf = roots.path(SYSCTL_CONF);
    let conf_canon = std::fs::canonicalize(&conf).ok();
    let mut files: Vec<PathBuf> = by_name.into_values().filter(|p| !masked.contains(p)).filter(|p| conf_canon.is_none() || std::fs::canonicalize(p).ok() != conf_canon).collect();
    if conf.exists() {
        files.push(conf);
    }
    (files, masked, warnings)
}

/// Reads every file under `roots` in application order.
pub fn read(roots: &Roots) -> Files {
    let (files, masked, mut warnings) = ordered(roots);
    let mut assignments = Vec::new();
    let mut read = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => {
                assignments.extend(parse(&text, &f, &mut warnings));
                read.push(f);
            }
            Err(e) => warnings.push(format!("{}: cannot read it ({e}); its keys are not reported", f.display())),
        }
    }
    Files { assignments, read, masked, warnings }
}

/// The assignments of one file's text; lines that are not assignments go to `warnings`.
pub fn parse(text: &str, file: &Path, warnings: &mut Vec<String>) -> Vec<Assignment> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            warnings.push(format!("{}:{}: {t:?} is not an assignment (`key = value`); systemd-sysctl skips it", file.display(), i + 1));
            continue;
        };
        let mut k = k.trim();
        let ignore_failure = k.starts_with('-');
        if ignore_failure {
            k = k[1..].trim_start();
        }
        let pattern = dotted(k);
        let glob = pattern.contains(['*', '?', '[']);
        let key = if glob { None } else { SysctlKey::parse(&pattern).ok().map(|k| k.to_string()) };
        if !glob && key.is_none() {
            warnings.push(format!("{}:{}: {k:?} is not a sysctl name; skipped", file.display(), i + 1));
            continue;
        }
        // The strict parser's verdict on this one line (its line number is then 1).
        let problem = if glob { None } else { crate::sysctl::sysctld::parse(t, "").err().map(|e| e.problem) };
        let line = Line { file: file.to_path_buf(), line: i + 1, pattern, value: v.trim().to_string() };
        out.push(Assignment { line, key, ignore_failure, problem });
    }
    out
}

/// A key as procps reads it: slashes are the separator when the first separator is a slash.
fn dotted(k: &str) -> String {
    match k.find(['.', '/']) {
        Some(i) if k.as_bytes()[i] == b'/' => k.replace('/', "."),
        _ => k.to_string(),
    }
}

/// Who wins for `key` and which assignments it shadows: the last explicit assignment, else the
/// last glob that matches; every other matching assignment is shadowed. `None`: no file names it.
pub fn winner<'a>(files: &'a Files, key: &str) -> Option<(&'a Assignment, Vec<&'a Assignment>)> {
    let matching: Vec<&Assignment> = files.assignments.iter().filter(|a| a.key.as_deref() == Some(key) || (a.key.is_none() && glob_match(&a.line.pattern, key))).collect();
    let win = matching.iter().rev().find(|a| a.key.is_some()).or_else(|| matching.last()).copied()?;
    let shadowed = matching.into_iter().filter(|a| !std::ptr::eq(*a, win)).collect();
    Some((win, shadowed))
}

/// fnmatch(3) without flags, as systemd-sysctl matches globs: `*` any run (dots too), `?` one
/// character, `[abc]`, `[a-z]`, `[!a]` one character of (or not of) a set.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    matches(&p, &t)
}

fn matches(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| matches(&p[1..], &t[i..])),
        Some('?') => !t.is_empty() && matches(&p[1..], &t[1..]),
        Some('[') => match (class(&p[1..]), t.first()) {
            (Some((set, negate, used)), Some(c)) => (set.iter().any(|(a, b)| a <= c && c <= b) != negate) && matches(&p[1 + used..], &t[1..]),
            // An unclosed bracket is a literal `[`.
            (None, Some('[')) => matches(&p[1..], &t[1..]),
            _ => false,
        },
        Some(c) => t.first() == Some(c) && matches(&p[1..], &t[1..]),
    }
}

/// A bracket class after its `[`: its ranges, whether negated, and how many characters it used (with `]`).
fn class(p: &[char]) -> Option<(Vec<(char, char)>, bool, usize)> {
    let negate = matches!(p.first(), Some('!') | Some('^'));
    let mut i = usize::from(negate);
    let mut set = Vec::new();
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((set, negate, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            set.push((p[i], p[i + 2]));
            i += 3;
        } else {
            set.push((p[i], p[i]));
            i += 1;
        }
        first = false;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_fnmatch_does() {
        for (p, t, want) in [
            ("net.ipv4.conf.*.rp_filter", "net.ipv4.conf.eth0.rp_filter", true),
            ("net.ipv4.conf.*.rp_filter", "net.ipv4.conf.a.b.rp_filter", true),
            ("net.ipv4.conf.*.rp_filter", "net.ipv4.conf.eth0.forwarding", false),
            ("vm.swappines?", "vm.swappiness", true),
            ("net.ipv4.conf.eth[0-9].rp_filter", "net.ipv4.conf.eth3.rp_filter", true),
            ("net.ipv4.conf.eth[!0-9].rp_filter", "net.ipv4.conf.eth3.rp_filter", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn a_tolerated_line_keeps_its_key_with_the_strict_parsers_complaint() {
        let mut w = Vec::new();
        let a = parse("net/core/somaxconn = 1024 # big\n-vm.swappiness=10\nnonsense\n", Path::new("/x.conf"), &mut w);
        assert_eq!(a[0].key.as_deref(), Some("net.core.somaxconn"));
        assert!(a[0].problem.as_deref().unwrap_or("").contains("inline comments"), "{:?}", a[0].problem);
        assert!(a[1].ignore_failure && a[1].problem.is_none());
        assert!(w[0].contains("/x.conf:3"), "{w:?}");
    }
}
