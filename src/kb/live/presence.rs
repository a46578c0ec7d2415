//! Whether the KB expects a key on this kernel: by version (`since`,
//! `removed_in`) and by build (`requires_config` against the kernel's own
//! config). Pure: the kernel version and config are passed in.

use super::kconfig::{BuildConfig, Setting};
use crate::kb::entry::Param;
use serde::Serialize;
use std::fmt;

/// A kernel version, compared numerically (`6.9 < 6.18`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KernelVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Patch level (0 when not given).
    pub patch: u32,
}

impl KernelVersion {
    /// Parses the leading `major.minor[.patch]` of a release string such as
    /// `6.18.44-fc-v669` or a KB version such as `5.13`; `None` without at
    /// least a major and a minor number.
    pub fn parse(s: &str) -> Option<Self> {
        let numeric: String = s.trim().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let mut parts = numeric.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Self { major, minor, patch })
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What the kernel's build says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildPresence {
    /// Every required option is built in (or the entry requires none): the key should exist.
    Expected,
    /// An option is not set: the key is legitimately absent. Why, naming the option and the config file.
    NotBuilt(String),
    /// No config to look at, or an option is a module that may not be loaded. Why.
    CannotTell(String),
}

/// Whether the KB expects `p` to exist on `kernel` by version, and why not when it does not.
pub fn by_version(p: &Param, kernel: Option<KernelVersion>) -> (Option<bool>, Option<String>) {
    let Some(k) = kernel else {
        return if p.removed_in.is_some() || p.since.is_some() { (None, None) } else { (Some(true), None) };
    };
    if let Some(r) = p.removed_in.as_deref().and_then(|r| KernelVersion::parse(r).map(|v| (r, v)))
        && k >= r.1
    {
        return (Some(false), Some(format!("removed in {}", r.0)));
    }
    if let Some(s) = p.since.as_deref().and_then(|s| KernelVersion::parse(s).map(|v| (s, v)))
        && k < s.1
    {
        return (Some(false), Some(format!("added in {}", s.0)));
    }
    (Some(true), None)
}

/// Whether `p`'s `requires_config` options (all of them) are built into the kernel `build` describes.
pub fn by_build(p: &Param, build: &BuildConfig) -> BuildPresence {
    if p.requires_config.is_empty() {
        return BuildPresence::Expected;
    }
    let config = match build {
        BuildConfig::Known(c) => c,
        BuildConfig::Unknown(why) => return BuildPresence::CannotTell(format!("needs {}; {why}", p.requires_config.join(" and "))),
    };
    let with = |s: Setting| p.requires_config.iter().filter(|o| config.setting(o) == s).map(String::as_str).collect::<Vec<_>>();
    let (unset, modules) = (with(Setting::NotSet), with(Setting::Module));
    if !unset.is_empty() {
        return BuildPresence::NotBuilt(format!("kernel built without {} ({})", unset.join(", "), config.source));
    }
    if !modules.is_empty() {
        return BuildPresence::CannotTell(format!(
            "{} built as a module (=m in {}): the key exists only while the module is loaded",
            modules.join(", "),
            config.source
        ));
    }
    BuildPresence::Expected
}
