//! Live validation: every KB entry compared with what a store (normally the
//! running kernel's `/proc/sys`) actually has.
//!
//! For each entry it answers: does the key exist here, and should it on this
//! kernel (`since`, `removed_in`; `requires_config` against the kernel's own
//! config, see [`kconfig`])? Is it writable? Does the current
//! value parse under the KB type and lie inside the KB range? Optionally,
//! given a view of a fresh network namespace, does a `net.*` key behave the
//! way its `scope` says (own writable copy, read-only mirror, or absent)?
//!
//! Differences are sorted into *mismatches* (the KB is wrong about this
//! kernel, or the host is configured outside the KB's sane range), keys
//! *absent as expected* (removed by this version, or an option this build
//! lacks, with the reason) and *cannot tell* (no kernel config to look at, an
//! option built as a module that may not be loaded, a value only root may
//! read, a backported key): recorded, never a failure, because the KB cannot
//! be shown wrong by them. Keys marked `no_read` are never read: secrets must
//! not reach a report, and `vm.stat_refresh` acts when read.
//!
//! Everything here goes through `SysctlStore`, so tests use a `MemStore`;
//! the one function that touches the world directly is
//! [`probe_fresh_netns`], which lists `/proc/sys/net` from a throwaway
//! network namespace.

pub mod kconfig;
pub mod presence;

pub use kconfig::BuildConfig;
pub use presence::KernelVersion;

use super::entry::{NoRead, Param, Risk, Scope};
use super::validate::check_value;
use super::Kb;
use crate::sysctl::store::{MemStore, StoreError};
use crate::sysctl::{SysctlKey, SysctlStore, Value, ValueKind};
use presence::BuildPresence;
use serde::Serialize;

/// The running kernel's version, read from `kernel.osrelease` in `store`.
pub fn kernel_version(store: &dyn SysctlStore) -> Option<KernelVersion> {
    KernelVersion::parse(&kernel_release(store)?)
}

/// The full release string (`6.18.44-fc-v1300`) from `kernel.osrelease` in `store`: it names `/boot/config-<release>`.
pub fn kernel_release(store: &dyn SysctlStore) -> Option<String> {
    let key = SysctlKey::parse("kernel.osrelease").ok()?;
    Some(store.read(&key).ok()?.as_str().trim().to_string())
}

/// The build config of the kernel behind `store`: read from the machine
/// (`/proc/config.gz`, `/boot/config-<release>`) only when `store` is this
/// machine's `/proc/sys`; a sandbox or remote store says so instead.
pub fn build_config_for(store: &dyn SysctlStore) -> BuildConfig {
    if store.describe() != "/proc/sys" {
        return BuildConfig::Unknown(format!("the store is {}, not the running kernel, so its build config is unknown", store.describe()));
    }
    kconfig::running_build(std::path::Path::new("/"), kernel_release(store).as_deref())
}

/// The verdict on one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Present and consistent with the KB.
    Ok,
    /// Absent, as the KB expects on this kernel (removed earlier, added later, or an option this build lacks).
    AbsentAsExpected,
    /// The KB cannot be judged here (no kernel config, a module that may not be loaded, a root-only value, a backport): recorded, not a failure.
    CannotTell,
    /// The KB and the store disagree.
    Mismatch,
}

/// What kind of disagreement a mismatch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// The KB expects the key on this kernel and it is not there.
    Missing,
    /// The KB says the key was removed by this kernel version, yet it exists.
    PresentAfterRemoval,
    /// The key exists although the kernel config lacks an option its `requires_config` names.
    PresentWithoutConfig,
    /// A key the KB treats as tunable is read-only here.
    NotWritable,
    /// Reading the value failed for a reason other than permissions.
    ReadFailed,
    /// The value does not parse under the KB type (kind, element count, enum words).
    Unparseable,
    /// The value parses but lies outside the KB range or order.
    OutOfRange,
    /// A fresh network namespace shows a different scope than the KB's.
    Scope,
}

/// One disagreement, with a message naming the key, the value and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// Kind of disagreement.
    pub kind: MismatchKind,
    /// Human explanation.
    pub message: String,
}

/// How a key looks from a fresh network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChildView {
    /// The key exists in the child namespace.
    pub exists: bool,
    /// Its mode allows writing there.
    pub writable: bool,
}

impl ChildView {
    /// The scope this view implies for a `net.*` key.
    pub fn observed_scope(self) -> Scope {
        match (self.exists, self.writable) {
            (false, _) => Scope::Global,
            (true, false) => Scope::NetnsReadOnly,
            (true, true) => Scope::Netns,
        }
    }
}

/// The result for one KB entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveEntry {
    /// Dotted key.
    pub key: String,
    /// Verdict.
    pub status: Status,
    /// Whether the KB expects the key on this kernel (`None`: cannot tell, the kernel version or build is unknown).
    pub expected_present: Option<bool>,
    /// Whether the key exists in the store.
    pub exists: bool,
    /// Whether its mode allows writing (`None` when absent).
    pub writable: Option<bool>,
    /// The current value (`None` when absent, unreadable or never read).
    pub value: Option<String>,
    /// The view from a fresh network namespace, for `net.*` keys when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_netns: Option<ChildView>,
    /// Disagreements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<Mismatch>,
    /// Why the KB expects the key to be absent here ("removed in 5.13", "kernel built without CONFIG_X (/proc/config.gz)").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_absent: Option<String>,
    /// Why the KB cannot be judged on this entry here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cannot_tell: Vec<String>,
    /// Plain observations (no-op key, value not read on purpose...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LiveSummary {
    /// Entries that are consistent.
    pub ok: usize,
    /// Entries absent as expected.
    pub absent_as_expected: usize,
    /// Entries the KB cannot be judged on here.
    pub cannot_tell: usize,
    /// Entries with mismatches.
    pub mismatch: usize,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveReport {
    /// The store compared against (`/proc/sys`).
    pub store: String,
    /// The kernel version read from the store, when it has `kernel.osrelease`.
    pub kernel: Option<String>,
    /// The kernel config the build-dependent keys were judged against (`/proc/config.gz`), or why there was none.
    pub build_config: String,
    /// Whether `net.*` scopes were checked against a fresh network namespace.
    pub scope_checked: bool,
    /// One result per KB entry, in key order.
    pub entries: Vec<LiveEntry>,
}

impl LiveReport {
    /// Entries with at least one mismatch.
    pub fn mismatches(&self) -> Vec<&LiveEntry> {
        self.entries.iter().filter(|e| e.status == Status::Mismatch).collect()
    }

    /// Entries the KB cannot be judged on here.
    pub fn cannot_tell(&self) -> Vec<&LiveEntry> {
        self.entries.iter().filter(|e| e.status == Status::CannotTell).collect()
    }

    /// True when no entry mismatches.
    pub fn is_consistent(&self) -> bool {
        self.entries.iter().all(|e| e.status != Status::Mismatch)
    }

    /// Counts per status.
    pub fn summary(&self) -> LiveSummary {
        let mut s = LiveSummary::default();
        for e in &self.entries {
            match e.status {
                Status::Ok => s.ok += 1,
                Status::AbsentAsExpected => s.absent_as_expected += 1,
                Status::CannotTell => s.cannot_tell += 1,
                Status::Mismatch => s.mismatch += 1,
            }
        }
        s
    }
}

/// Compares every entry of `kb` with `store`, without a scope check and
/// without a kernel config (build-dependent absences are "cannot tell").
pub fn validate_live(kb: &Kb, store: &dyn SysctlStore) -> LiveReport {
    validate_live_with(kb, store, None, &BuildConfig::Unknown("no kernel config was given".into()))
}

/// Compares every entry of `kb` with `store`; when `child_netns` is given
/// (a listing of a fresh network namespace, see [`probe_fresh_netns`]), the
/// scope of every `net.*` key is checked against it too. `build` is the
/// config of the kernel behind `store` (see [`build_config_for`]).
pub fn validate_live_with(kb: &Kb, store: &dyn SysctlStore, child_netns: Option<&dyn SysctlStore>, build: &BuildConfig) -> LiveReport {
    let kernel = kernel_version(store);
    LiveReport {
        store: store.describe(),
        kernel: kernel.map(|k| k.to_string()),
        build_config: match build {
            BuildConfig::Known(c) => c.source.clone(),
            BuildConfig::Unknown(why) => why.clone(),
        },
        scope_checked: child_netns.is_some(),
        entries: kb.params.values().map(|p| check_entry(p, store, child_netns, kernel, build)).collect(),
    }
}

/// Checks one entry against `store` (and, for `net.*` keys, `child_netns`), on `kernel` built as `build` says.
pub fn check_entry(p: &Param, store: &dyn SysctlStore, child_netns: Option<&dyn SysctlStore>, kernel: Option<KernelVersion>, build: &BuildConfig) -> LiveEntry {
    let mut e = LiveEntry {
        key: p.key.clone(),
        status: Status::Ok,
        expected_present: None,
        exists: false,
        writable: None,
        value: None,
        child_netns: None,
        mismatches: Vec::new(),
        why_absent: None,
        cannot_tell: Vec::new(),
        notes: Vec::new(),
    };
    let Ok(key) = SysctlKey::parse(&p.key) else {
        // check_param refuses such entries at load time; a hand-built Kb could still hold one.
        e.mismatches.push(Mismatch { kind: MismatchKind::Missing, message: format!("{}: not a valid sysctl key", p.key) });
        e.status = Status::Mismatch;
        return e;
    };
    e.exists = store.exists(&key);
    check_presence(p, store, kernel, build, &mut e);
    let mismatch = |e: &mut LiveEntry, kind, message: String| e.mismatches.push(Mismatch { kind, message });

    if e.exists {
        let writable = store.writable(&key);
        e.writable = Some(writable);
        if !writable {
            if p.risk == Risk::Never {
                e.notes.push("read-only here".into());
            } else if let Some(c) = &p.config {
                e.cannot_tell.push(format!("read-only here: the KB notes it depends on {c}"));
            } else {
                mismatch(&mut e, MismatchKind::NotWritable, format!("{}: the KB treats it as tunable (risk {:?}) but its mode on {} is read-only", p.key, p.risk, store.describe()));
            }
        }
        if p.no_op {
            e.notes.push("present but has no effect on current kernels (no_op)".into());
        }
        match p.no_read {
            Some(NoRead::Secret) => e.notes.push("value not read: it is a secret".into()),
            Some(NoRead::SideEffect) => e.notes.push("value not read: reading it acts (side effect)".into()),
            Some(NoRead::WriteOnly) => e.notes.push("value not read: write-only action file".into()),
            None => check_value_live(p, &key, store, &mut e),
        }
        if let Some(child) = child_netns
            && key.subsystem() == "net"
        {
            check_scope(p, &key, child, &mut e);
        }
    }

    e.status = if !e.mismatches.is_empty() {
        Status::Mismatch
    } else if !e.cannot_tell.is_empty() {
        Status::CannotTell
    } else if !e.exists {
        Status::AbsentAsExpected
    } else {
        Status::Ok
    };
    e
}

/// Sets `e.expected_present` and records what the key's existence says,
/// by version first (a removed key needs no config to explain it), then by
/// build (`requires_config` against `build`), then the KB's own prose
/// (`config`: a condition no config shows).
fn check_presence(p: &Param, store: &dyn SysctlStore, kernel: Option<KernelVersion>, build: &BuildConfig, e: &mut LiveEntry) {
    let kernel_name = kernel.map(|k| k.to_string()).unwrap_or_else(|| "this kernel".into());
    let (by_version, why_not) = presence::by_version(p, kernel);
    let by_build = presence::by_build(p, build);
    e.expected_present = match (by_version, &by_build) {
        (Some(false), _) | (_, BuildPresence::NotBuilt(_)) => Some(false),
        (Some(true), BuildPresence::Expected) => Some(true),
        _ => None,
    };
    let mismatch = |e: &mut LiveEntry, kind, message: String| e.mismatches.push(Mismatch { kind, message });
    if let (Some(false), Some(why)) = (by_version, why_not) {
        if !e.exists {
            e.why_absent = Some(why);
        } else if p.removed_in.is_some() && why.starts_with("removed") {
            let m = format!("{}: the KB says it was {why}, yet it exists on {kernel_name}; correct `removed_in` (or the kernel carries it as a vendor patch)", p.key);
            mismatch(e, MismatchKind::PresentAfterRemoval, m);
        } else {
            e.cannot_tell.push(format!("present although the KB says it was {why}: a backport, or `since` is too late"));
        }
        return;
    }
    let options = p.requires_config.join(", ");
    match (e.exists, by_build) {
        (false, BuildPresence::NotBuilt(why)) => e.why_absent = Some(why),
        (false, BuildPresence::CannotTell(why)) => e.cannot_tell.push(format!("absent: {why}")),
        (false, BuildPresence::Expected) if by_version.is_none() => {}
        (false, BuildPresence::Expected) => match (&p.config, build.config()) {
            (Some(c), _) => e.cannot_tell.push(format!("absent: the key also needs {c}, which no kernel config shows")),
            (None, Some(cfg)) if !p.requires_config.is_empty() => {
                let m = format!(
                    "{}: the kernel is built with {options} ({}) yet {} has no such key; correct the entry's `requires_config` (or `since`/`removed_in`)",
                    p.key,
                    cfg.source,
                    store.describe()
                );
                mismatch(e, MismatchKind::Missing, m);
            }
            (None, _) => {
                let m = format!(
                    "{}: the KB expects it on {kernel_name} but {} has no such key; give the entry `since`, `removed_in` or `requires_config` if it depends on the version or the build",
                    p.key,
                    store.describe()
                );
                mismatch(e, MismatchKind::Missing, m);
            }
        },
        (true, BuildPresence::NotBuilt(why)) => {
            let m = format!("{}: it exists although the {why}; `requires_config` names an option the key does not need: correct it", p.key);
            mismatch(e, MismatchKind::PresentWithoutConfig, m);
        }
        (true, _) => {}
    }
}

fn check_value_live(p: &Param, key: &SysctlKey, store: &dyn SysctlStore, e: &mut LiveEntry) {
    let value = match store.read(key) {
        Ok(v) => v,
        Err(err @ StoreError::Io { .. }) if matches!(err.errno(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            e.cannot_tell.push(format!("value not checked: {err} (run as root to read it)"));
            return;
        }
        Err(err) => {
            e.mismatches.push(Mismatch { kind: MismatchKind::ReadFailed, message: format!("{}: reading failed: {err}", p.key) });
            return;
        }
    };
    e.value = Some(value.to_string());
    // Kernel string keys may legitimately be empty (ip_local_reserved_ports, an unset hostname).
    if p.kind == ValueKind::String && value.as_str().is_empty() {
        return;
    }
    if let Err(why) = Value::parse(value.as_str(), p.kind, p.elements(), &p.values) {
        let shape = match p.kind {
            ValueKind::Ints => format!("{} integers", p.elements()),
            ValueKind::Enum => format!("one of {}", p.values.join(", ")),
            k => format!("{k:?}").to_lowercase(),
        };
        e.mismatches.push(Mismatch {
            kind: MismatchKind::Unparseable,
            message: format!("{}: current value {:?} is not {shape} as the KB says ({why})", p.key, value.as_str()),
        });
        return;
    }
    if let Err(why) = check_value(p, value.as_str()) {
        let range = match (p.min, p.max) {
            (Some(lo), Some(hi)) => format!("{lo}..={hi}"),
            (Some(lo), None) => format!(">= {lo}"),
            (None, Some(hi)) => format!("<= {hi}"),
            (None, None) => "any".into(),
        };
        e.mismatches.push(Mismatch {
            kind: MismatchKind::OutOfRange,
            message: format!("{}: current value {} is outside the KB's sane range {range}{}: {why}", p.key, value, if p.ordered { " (elements non-decreasing)" } else { "" }),
        });
    }
}

fn check_scope(p: &Param, key: &SysctlKey, child: &dyn SysctlStore, e: &mut LiveEntry) {
    let view = ChildView { exists: child.exists(key), writable: child.writable(key) };
    e.child_netns = Some(view);
    // Only the three network scopes can be told apart from a network namespace.
    if !matches!(p.scope, Scope::Global | Scope::Netns | Scope::NetnsReadOnly) {
        return;
    }
    let observed = view.observed_scope();
    if observed != p.scope {
        let seen = match observed {
            Scope::Global => "absent (so the key is global)",
            Scope::NetnsReadOnly => "present but read-only (netns_read_only)",
            _ => "present and writable (netns)",
        };
        e.mismatches.push(Mismatch {
            kind: MismatchKind::Scope,
            message: format!("{}: the KB says scope {} but a fresh network namespace shows it {seen}; set scope = \"{}\"", p.key, p.scope.name(), observed.name()),
        });
    }
}

/// Builds a store from a `find -printf '%P %m\n'` listing of a sysctl
/// subtree: one `relative/path octal-mode` line per key. Keys get an empty
/// value; modes without a write bit make the key read-only. `prefix` is the
/// subtree's own key prefix (`net`).
pub fn store_from_listing(text: &str, prefix: &str) -> Result<MemStore, String> {
    let mut keys = Vec::new();
    let mut read_only = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let (path, mode) = line.rsplit_once(' ').ok_or_else(|| format!("listing line {}: {line:?} is not `path mode`", n + 1))?;
        let mode = u32::from_str_radix(mode.trim(), 8).map_err(|_| format!("listing line {}: mode {mode:?} is not octal", n + 1))?;
        let parts = std::iter::once(prefix.to_string()).chain(path.split('/').map(str::to_string));
        // Names the key grammar refuses are skipped, as TreeStore::list does.
        let Ok(key) = SysctlKey::from_components(parts) else { continue };
        if mode & 0o222 == 0 {
            read_only.push(key.clone());
        }
        keys.push((key, Value::from_kernel("")));
    }
    let mut store = MemStore::new(keys);
    for k in read_only {
        store = store.with_read_only(k);
    }
    Ok(store)
}

/// Lists `/proc/sys/net` as seen from a brand-new network namespace
/// (`unshare --net`, which needs CAP_SYS_ADMIN) and returns it as a store of
/// existence and writability. The namespace lives only as long as the `find`
/// process, so nothing is left behind and no setting is written.
pub fn probe_fresh_netns() -> Result<MemStore, String> {
    let out = std::process::Command::new("unshare")
        .args(["--net", "--", "find", "/proc/sys/net", "-type", "f", "-printf", "%P %m\\n"])
        .output()
        .map_err(|e| format!("cannot run `unshare --net` (util-linux): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`unshare --net -- find /proc/sys/net` failed ({}): {}; creating a network namespace needs root (CAP_SYS_ADMIN)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    store_from_listing(&String::from_utf8_lossy(&out.stdout), "net")
}

#[cfg(test)]
mod tests;
