//! Live validation: every KB entry compared with what a store (normally the
//! running kernel's `/proc/sys`) actually has.
//!
//! For each entry it answers: does the key exist here, and should it on this
//! kernel (`since`, `removed_in`, `config`)? Is it writable? Does the current
//! value parse under the KB type and lie inside the KB range? Optionally,
//! given a view of a fresh network namespace, does a `net.*` key behave the
//! way its `scope` says (own writable copy, read-only mirror, or absent)?
//!
//! Differences are sorted into *mismatches* (the KB is wrong about this
//! kernel, or the host is configured outside the KB's sane range) and
//! *tolerated* differences the KB itself anticipates (a key that depends on
//! a build option or module this kernel lacks, a value only root may read, a
//! backported key). Keys marked `no_read` are never read: secrets must not
//! reach a report, and `vm.stat_refresh` acts when read.
//!
//! Everything here goes through `SysctlStore`, so tests use a `MemStore`;
//! the one function that touches the world directly is
//! [`probe_fresh_netns`], which lists `/proc/sys/net` from a throwaway
//! network namespace.

use super::entry::{NoRead, Param, Risk, Scope};
use super::validate::check_value;
use super::Kb;
use crate::sysctl::store::{MemStore, StoreError};
use crate::sysctl::{SysctlKey, SysctlStore, Value, ValueKind};
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

/// The running kernel's version, read from `kernel.osrelease` in `store`.
pub fn kernel_version(store: &dyn SysctlStore) -> Option<KernelVersion> {
    let key = SysctlKey::parse("kernel.osrelease").ok()?;
    KernelVersion::parse(store.read(&key).ok()?.as_str())
}

/// The verdict on one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Present and consistent with the KB.
    Ok,
    /// Absent, as the KB expects on this kernel (removed earlier, or added later).
    AbsentAsExpected,
    /// A difference the KB anticipates (build option missing, root-only value, backport): recorded, not a failure.
    Tolerated,
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
    /// Whether the KB expects the key on this kernel (`None`: cannot tell, the kernel version is unknown).
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
    /// Differences the KB anticipates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerated: Vec<String>,
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
    /// Entries with tolerated differences.
    pub tolerated: usize,
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

    /// Entries with tolerated differences.
    pub fn tolerated(&self) -> Vec<&LiveEntry> {
        self.entries.iter().filter(|e| e.status == Status::Tolerated).collect()
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
                Status::Tolerated => s.tolerated += 1,
                Status::Mismatch => s.mismatch += 1,
            }
        }
        s
    }
}

/// Compares every entry of `kb` with `store`, without a scope check.
pub fn validate_live(kb: &Kb, store: &dyn SysctlStore) -> LiveReport {
    validate_live_with(kb, store, None)
}

/// Compares every entry of `kb` with `store`; when `child_netns` is given
/// (a listing of a fresh network namespace, see [`probe_fresh_netns`]), the
/// scope of every `net.*` key is checked against it too.
pub fn validate_live_with(kb: &Kb, store: &dyn SysctlStore, child_netns: Option<&dyn SysctlStore>) -> LiveReport {
    let kernel = kernel_version(store);
    LiveReport {
        store: store.describe(),
        kernel: kernel.map(|k| k.to_string()),
        scope_checked: child_netns.is_some(),
        entries: kb.params.values().map(|p| check_entry(p, store, child_netns, kernel)).collect(),
    }
}

/// Whether the KB expects `p` to exist on `kernel`, and why not when it does not.
fn expectation(p: &Param, kernel: Option<KernelVersion>) -> (Option<bool>, Option<String>) {
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

/// Checks one entry against `store` (and, for `net.*` keys, `child_netns`).
pub fn check_entry(p: &Param, store: &dyn SysctlStore, child_netns: Option<&dyn SysctlStore>, kernel: Option<KernelVersion>) -> LiveEntry {
    let mut e = LiveEntry {
        key: p.key.clone(),
        status: Status::Ok,
        expected_present: None,
        exists: false,
        writable: None,
        value: None,
        child_netns: None,
        mismatches: Vec::new(),
        tolerated: Vec::new(),
        notes: Vec::new(),
    };
    let Ok(key) = SysctlKey::parse(&p.key) else {
        // check_param refuses such entries at load time; a hand-built Kb could still hold one.
        e.mismatches.push(Mismatch { kind: MismatchKind::Missing, message: format!("{}: not a valid sysctl key", p.key) });
        e.status = Status::Mismatch;
        return e;
    };
    let kernel_name = kernel.map(|k| k.to_string()).unwrap_or_else(|| "this kernel".into());
    let (expected, why_absent) = expectation(p, kernel);
    e.expected_present = expected;
    e.exists = store.exists(&key);
    let mismatch = |e: &mut LiveEntry, kind, message: String| e.mismatches.push(Mismatch { kind, message });

    match (e.exists, expected) {
        (false, Some(true)) => match &p.config {
            Some(c) => e.tolerated.push(format!("absent: the key depends on {c}, which this kernel lacks")),
            None => mismatch(
                &mut e,
                MismatchKind::Missing,
                format!(
                    "{}: the KB expects it on {kernel_name} but {} has no such key; give the entry `since`, `removed_in` or `config` if it depends on the version or the build",
                    p.key,
                    store.describe()
                ),
            ),
        },
        (false, _) => {}
        (true, Some(false)) => {
            let why = why_absent.unwrap_or_default();
            if p.removed_in.is_some() && why.starts_with("removed") {
                mismatch(
                    &mut e,
                    MismatchKind::PresentAfterRemoval,
                    format!("{}: the KB says it was {why}, yet it exists on {kernel_name}; correct `removed_in` (or the kernel carries it as a vendor patch)", p.key),
                );
            } else {
                e.tolerated.push(format!("present although the KB says it was {why}: a backport, or `since` is too late"));
            }
        }
        (true, _) => {}
    }

    if e.exists {
        let writable = store.writable(&key);
        e.writable = Some(writable);
        if !writable {
            if p.risk == Risk::Never {
                e.notes.push("read-only here".into());
            } else if let Some(c) = &p.config {
                e.tolerated.push(format!("read-only here: the KB notes it depends on {c}"));
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
    } else if !e.tolerated.is_empty() {
        Status::Tolerated
    } else if !e.exists {
        Status::AbsentAsExpected
    } else {
        Status::Ok
    };
    e
}

fn check_value_live(p: &Param, key: &SysctlKey, store: &dyn SysctlStore, e: &mut LiveEntry) {
    let value = match store.read(key) {
        Ok(v) => v,
        Err(err @ StoreError::Io { .. }) if matches!(err.errno(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            e.tolerated.push(format!("value not checked: {err} (run as root to read it)"));
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

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Global => "global",
        Scope::Netns => "netns",
        Scope::NetnsReadOnly => "netns_read_only",
        Scope::Ipcns => "ipcns",
        Scope::Utsns => "utsns",
        Scope::Pidns => "pidns",
        Scope::User => "user",
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
            message: format!("{}: the KB says scope {} but a fresh network namespace shows it {seen}; set scope = \"{}\"", p.key, scope_name(p.scope), scope_name(observed)),
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
mod tests {
    use super::*;
    use crate::sysctl::TreeStore;

    fn k(s: &str) -> SysctlKey {
        SysctlKey::parse(s).unwrap()
    }

    fn kb(text: &str) -> Kb {
        let mut kb = Kb::default();
        kb.merge_text(text, "t.toml").unwrap();
        kb
    }

    fn param(extra: &str) -> String {
        format!("[[param]]\ntype = \"int\"\nscope = \"global\"\nrisk = \"low\"\nrisk_reason = \"r\"\ncontrols = \"c\"\n{extra}\n")
    }

    fn store(values: &[(&str, &str)]) -> MemStore {
        let mut all = vec![(k("kernel.osrelease"), Value::from_kernel("6.18.44-fc-v669"))];
        all.extend(values.iter().map(|(key, v)| (k(key), Value::from_kernel(v))));
        MemStore::new(all)
    }

    /// The one place that calls the API: the status and mismatch kinds `key` gets.
    fn check(kb_text: &str, st: &MemStore, child: Option<&MemStore>, key: &str, status: Status, kinds: &[MismatchKind]) -> LiveEntry {
        let kb = kb(kb_text);
        let report = validate_live_with(&kb, st, child.map(|c| c as &dyn SysctlStore));
        let e = report.entries.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("{key} not in report")).clone();
        assert_eq!(e.status, status, "{e:#?}");
        assert_eq!(e.mismatches.iter().map(|m| m.kind).collect::<Vec<_>>(), kinds, "{e:#?}");
        e
    }

    #[test]
    fn kernel_versions_compare_numerically() {
        let v = |s| KernelVersion::parse(s).unwrap();
        assert!(v("6.9") < v("6.18"));
        assert!(v("6.18.44-fc-v669") >= v("6.18"));
        assert_eq!(v("2.6.39"), KernelVersion { major: 2, minor: 6, patch: 39 });
        assert_eq!(KernelVersion::parse("6"), None);
        assert_eq!(KernelVersion::parse("linux"), None);
    }

    #[test]
    fn present_in_range_is_ok() {
        let text = param("key = \"vm.swappiness\"\nmin = 0\nmax = 200");
        let e = check(&text, &store(&[("vm.swappiness", "60")]), None, "vm.swappiness", Status::Ok, &[]);
        assert_eq!(e.value.as_deref(), Some("60"));
        assert_eq!(e.writable, Some(true));
    }

    #[test]
    fn missing_key_is_a_mismatch_unless_config_dependent() {
        let text = param("key = \"vm.nope\"");
        let e = check(&text, &store(&[]), None, "vm.nope", Status::Mismatch, &[MismatchKind::Missing]);
        assert!(e.mismatches[0].message.contains("the KB expects it on 6.18.44"), "{e:#?}");
        let text = param("key = \"kernel.sysrq\"\nconfig = \"CONFIG_MAGIC_SYSRQ\"");
        let e = check(&text, &store(&[]), None, "kernel.sysrq", Status::Tolerated, &[]);
        assert!(e.tolerated[0].contains("CONFIG_MAGIC_SYSRQ"), "{e:#?}");
    }

    #[test]
    fn removed_and_future_keys() {
        let text = param("key = \"kernel.sched_latency_ns\"\nremoved_in = \"5.13\"");
        check(&text, &store(&[]), None, "kernel.sched_latency_ns", Status::AbsentAsExpected, &[]);
        check(&text, &store(&[("kernel.sched_latency_ns", "6000000")]), None, "kernel.sched_latency_ns", Status::Mismatch, &[MismatchKind::PresentAfterRemoval]);
        let text = param("key = \"net.ipv4.tcp_new\"\nsince = \"7.2\"");
        check(&text, &store(&[]), None, "net.ipv4.tcp_new", Status::AbsentAsExpected, &[]);
        let e = check(&text, &store(&[("net.ipv4.tcp_new", "1")]), None, "net.ipv4.tcp_new", Status::Tolerated, &[]);
        assert!(e.tolerated[0].contains("backport"), "{e:#?}");
        // Without a kernel version nothing can be said about versioned keys.
        let kb = kb(&param("key = \"kernel.sched_latency_ns\"\nremoved_in = \"5.13\""));
        let r = validate_live(&kb, &MemStore::new([]));
        assert_eq!(r.entries[0].status, Status::AbsentAsExpected);
        assert_eq!(r.entries[0].expected_present, None);
        assert_eq!(r.kernel, None);
    }

    #[test]
    fn no_op_keys_are_noted() {
        let text = param("key = \"net.ipv4.tcp_low_latency\"\nno_op = true");
        let e = check(&text, &store(&[("net.ipv4.tcp_low_latency", "0")]), None, "net.ipv4.tcp_low_latency", Status::Ok, &[]);
        assert!(e.notes.iter().any(|n| n.contains("no_op")), "{e:#?}");
    }

    #[test]
    fn values_outside_type_or_range_are_mismatches() {
        let text = param("key = \"net.ipv4.tcp_max_syn_backlog\"\nmin = 128\nmax = 262144");
        let e = check(&text, &store(&[("net.ipv4.tcp_max_syn_backlog", "-5")]), None, "net.ipv4.tcp_max_syn_backlog", Status::Mismatch, &[MismatchKind::OutOfRange]);
        assert!(e.mismatches[0].message.contains("-5 is outside the KB's sane range 128..=262144"), "{e:#?}");
        let text = "[[param]]\nkey = \"net.ipv4.tcp_rmem\"\ntype = \"ints\"\ncount = 3\nordered = true\nmin = 1\nscope = \"netns\"\nrisk = \"medium\"\nrisk_reason = \"r\"\ncontrols = \"c\"\n";
        check(text, &store(&[("net.ipv4.tcp_rmem", "8192\t4096\t2048")]), None, "net.ipv4.tcp_rmem", Status::Mismatch, &[MismatchKind::OutOfRange]);
        let e = check(text, &store(&[("net.ipv4.tcp_rmem", "4096 131072")]), None, "net.ipv4.tcp_rmem", Status::Mismatch, &[MismatchKind::Unparseable]);
        assert!(e.mismatches[0].message.contains("is not 3 integers"), "{e:#?}");
        let text = "[[param]]\nkey = \"net.core.default_qdisc\"\ntype = \"enum\"\nvalues = [\"fq\", \"fq_codel\"]\nscope = \"global\"\nrisk = \"medium\"\nrisk_reason = \"r\"\ncontrols = \"c\"\n";
        check(text, &store(&[("net.core.default_qdisc", "pfifo_fast")]), None, "net.core.default_qdisc", Status::Mismatch, &[MismatchKind::Unparseable]);
        // An empty string key is fine.
        let text = "[[param]]\nkey = \"net.ipv4.ip_local_reserved_ports\"\ntype = \"string\"\nscope = \"netns\"\nrisk = \"low\"\nrisk_reason = \"r\"\ncontrols = \"c\"\n";
        check(text, &store(&[("net.ipv4.ip_local_reserved_ports", "")]), None, "net.ipv4.ip_local_reserved_ports", Status::Ok, &[]);
    }

    #[test]
    fn read_only_keys() {
        let text = param("key = \"vm.x\"");
        let st = store(&[("vm.x", "1")]).with_read_only(k("vm.x"));
        check(&text, &st, None, "vm.x", Status::Mismatch, &[MismatchKind::NotWritable]);
        let text = param("key = \"kernel.nmi_watchdog\"\nconfig = \"a hard-lockup detector\"");
        let st = store(&[("kernel.nmi_watchdog", "0")]).with_read_only(k("kernel.nmi_watchdog"));
        check(&text, &st, None, "kernel.nmi_watchdog", Status::Tolerated, &[]);
        let text = "[[param]]\nkey = \"kernel.tainted\"\ntype = \"int\"\nscope = \"global\"\nrisk = \"never\"\nrisk_reason = \"r\"\ncontrols = \"c\"\n";
        let st = store(&[("kernel.tainted", "0")]).with_read_only(k("kernel.tainted"));
        check(text, &st, None, "kernel.tainted", Status::Ok, &[]);
    }

    #[test]
    fn secrets_and_actions_are_never_read() {
        // A store whose read of the secret would be caught: MemStore returns the value, so the report must not contain it.
        let text = "[[param]]\nkey = \"net.ipv4.tcp_fastopen_key\"\ntype = \"string\"\nscope = \"netns\"\nrisk = \"never\"\nrisk_reason = \"r\"\ncontrols = \"c\"\nno_read = \"secret\"\n";
        let e = check(text, &store(&[("net.ipv4.tcp_fastopen_key", "00000000-00000000-00000000-00000000")]), None, "net.ipv4.tcp_fastopen_key", Status::Ok, &[]);
        assert_eq!(e.value, None);
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("00000000"), "{json}");
    }

    #[test]
    fn scope_is_checked_for_net_keys_only() {
        let text = [
            param("key = \"net.core.netdev_max_backlog\""),
            param("key = \"net.core.somaxconn\"\nscope = \"netns\"").replace("scope = \"global\"\n", ""),
            param("key = \"net.core.rmem_max\"\nscope = \"netns_read_only\"").replace("scope = \"global\"\n", ""),
            param("key = \"net.ipv4.tcp_mem\"\nscope = \"netns\"").replace("scope = \"global\"\n", ""),
            param("key = \"vm.swappiness\""),
        ]
        .concat();
        let host = store(&[("net.core.netdev_max_backlog", "1000"), ("net.core.somaxconn", "4096"), ("net.core.rmem_max", "4194304"), ("net.ipv4.tcp_mem", "1"), ("vm.swappiness", "60")]);
        let child = store_from_listing("core/somaxconn 644\ncore/rmem_max 444\n", "net").unwrap();
        check(&text, &host, Some(&child), "net.core.netdev_max_backlog", Status::Ok, &[]);
        check(&text, &host, Some(&child), "net.core.somaxconn", Status::Ok, &[]);
        check(&text, &host, Some(&child), "net.core.rmem_max", Status::Ok, &[]);
        let e = check(&text, &host, Some(&child), "net.ipv4.tcp_mem", Status::Mismatch, &[MismatchKind::Scope]);
        assert!(e.mismatches[0].message.contains("set scope = \"global\""), "{e:#?}");
        let e = check(&text, &host, Some(&child), "vm.swappiness", Status::Ok, &[]);
        assert_eq!(e.child_netns, None);
    }

    #[test]
    fn listing_parse_errors_name_the_line() {
        assert!(store_from_listing("core/somaxconn\n", "net").unwrap_err().contains("line 1"));
        assert!(store_from_listing("core/somaxconn 6x4\n", "net").unwrap_err().contains("not octal"));
        let s = store_from_listing("ipv4/route/flush 200\n\n", "net").unwrap();
        assert!(s.writable(&k("net.ipv4.route.flush")));
    }

    /// The embedded KB against this machine's /proc/sys: every key must exist
    /// exactly when the KB says it should on the running kernel. Differences
    /// the KB anticipates (config-dependent keys) are printed, not failed.
    #[test]
    fn embedded_kb_matches_this_kernel() {
        let kb = Kb::embedded().unwrap();
        let report = validate_live(&kb, &TreeStore::kernel());
        for e in report.tolerated() {
            println!("tolerated {}: {}", e.key, e.tolerated.join("; "));
        }
        let existence: Vec<String> = report
            .mismatches()
            .iter()
            .flat_map(|e| e.mismatches.iter())
            .filter(|m| matches!(m.kind, MismatchKind::Missing | MismatchKind::PresentAfterRemoval | MismatchKind::Unparseable))
            .map(|m| m.message.clone())
            .collect();
        assert!(existence.is_empty(), "kernel {:?}:\n{}", report.kernel, existence.join("\n"));
        // Values outside the KB range are a property of the host, but on the
        // reference machine (kernel 6.18) every value must be in range.
        if report.kernel.as_deref().is_some_and(|k| k.starts_with("6.18.")) {
            let all: Vec<String> = report.mismatches().iter().flat_map(|e| e.mismatches.iter().map(|m| m.message.clone())).collect();
            assert!(all.is_empty(), "{}", all.join("\n"));
        }
    }
}
