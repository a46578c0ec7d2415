//! TuneD's active profile and the sysctls it sets. `/etc/tuned/active_profile` names one profile
//! or several separated by spaces (TuneD merges them, a later one winning); a profile `P` is
//! `/etc/tuned/P/tuned.conf`, else `/usr/lib/tuned/P/tuned.conf` (TuneD 2.23 and later also look
//! in `profiles/` below each directory: both are read). `include=` in `[main]` names parents
//! (comma- or space-separated) applied before the profile itself; a `[sysctl]` section, or any
//! section with `type=sysctl`, holds `key=value` lines. TuneD applies them whenever it (re)loads
//! the profile, so a key found here is owned by TuneD whether or not the daemon runs right now.

use super::model::{Line, Roots};
use crate::sysctl::SysctlKey;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where TuneD names its active profile.
pub const ACTIVE_PROFILE: &str = "/etc/tuned/active_profile";
/// Profile directories, highest precedence first.
const PROFILE_DIRS: &[&str] = &["/etc/tuned", "/etc/tuned/profiles", "/usr/lib/tuned", "/usr/lib/tuned/profiles"];
/// How deep `include=` chains are followed (TuneD itself stops at a loop).
const MAX_DEPTH: usize = 16;

/// One key as the active profiles leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The profile whose line wins (a parent when the child does not set the key).
    pub profile: String,
    /// The winning line.
    pub line: Line,
    /// Lines it overrides (parents, earlier merged profiles).
    pub shadows: Vec<Line>,
}

/// The active profiles and the sysctls they set.
#[derive(Debug, Clone, Default)]
pub struct Active {
    /// The profile names in `active_profile` (empty: no TuneD profile is active).
    pub profiles: Vec<String>,
    /// Key → its setting.
    pub sysctls: BTreeMap<String, Setting>,
    /// What could not be read.
    pub warnings: Vec<String>,
}

/// Reads the active profile under `roots` (nothing when `active_profile` is absent or empty).
pub fn read(roots: &Roots) -> Active {
    let mut a = Active::default();
    let Ok(text) = std::fs::read_to_string(roots.path(ACTIVE_PROFILE)) else { return a };
    a.profiles = text.split_whitespace().map(str::to_string).collect();
    for p in a.profiles.clone() {
        load(roots, &p, 0, &mut Vec::new(), &mut a);
    }
    a
}

/// The file of profile `name`, the first that exists.
fn profile_file(roots: &Roots, name: &str) -> Option<PathBuf> {
    PROFILE_DIRS.iter().map(|d| roots.path(&format!("{d}/{name}/tuned.conf"))).find(|p| p.is_file())
}

/// Applies profile `name` into `a`: its parents first, then its own `[sysctl]` lines.
fn load(roots: &Roots, name: &str, depth: usize, chain: &mut Vec<String>, a: &mut Active) {
    if name.contains('/') || name.starts_with('.') {
        a.warnings.push(format!("TuneD profile name {name:?} is not a plain name; not followed"));
        return;
    }
    if chain.iter().any(|c| c == name) || depth > MAX_DEPTH {
        a.warnings.push(format!("TuneD profile {name} includes itself ({} → {name}); the loop is not followed", chain.join(" → ")));
        return;
    }
    let Some(file) = profile_file(roots, name) else {
        a.warnings.push(format!("TuneD profile {name} is named but no tuned.conf for it exists under {}", PROFILE_DIRS.join(", ")));
        return;
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            a.warnings.push(format!("{}: cannot read it ({e})", file.display()));
            return;
        }
    };
    let sections = sections(&text);
    chain.push(name.to_string());
    for (sec, lines) in &sections {
        if sec == "main" {
            for (_, k, v) in lines {
                if k == "include" {
                    for parent in v.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
                        load(roots, parent, depth + 1, chain, a);
                    }
                }
            }
        }
    }
    chain.pop();
    for (sec, lines) in &sections {
        let is_sysctl = sec == "sysctl" || lines.iter().any(|(_, k, v)| k == "type" && v == "sysctl");
        if !is_sysctl {
            continue;
        }
        for (n, k, v) in lines {
            if k == "type" || k == "replace" || k == "devices" {
                continue;
            }
            let Ok(key) = SysctlKey::parse(k) else {
                a.warnings.push(format!("{}:{n}: {k:?} is not a sysctl name; skipped", file.display()));
                continue;
            };
            let line = Line { file: file.clone(), line: *n, pattern: k.clone(), value: v.clone() };
            let setting = Setting { profile: name.to_string(), line, shadows: Vec::new() };
            let key = key.to_string();
            let shadows = a.sysctls.remove(&key).map(|old| { let mut s = old.shadows; s.push(old.line); s }).unwrap_or_default();
            a.sysctls.insert(key, Setting { shadows, ..setting });
        }
    }
}

/// The INI sections of a tuned.conf: name → (line number, key, value) in order.
fn sections(text: &str) -> Vec<(String, Vec<(usize, String, String)>)> {
    let mut out: Vec<(String, Vec<(usize, String, String)>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            out.push((name.trim().to_string(), Vec::new()));
            continue;
        }
        if let (Some((k, v)), Some(last)) = (t.split_once('='), out.last_mut()) {
            last.1.push((i + 1, k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}
