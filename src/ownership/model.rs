//! The data the ownership readers produce and the callers consume: where to look (`Roots`), who
//! manages a key (`Owner`), what SemantOS itself applied (`SemantosRecords`, passed in by the caller:
//! ownership sits below `apply` and cannot read its files), and the per-key `Report`. Below every
//! reader, so the readers and `mod.rs` import it and not each other.

use serde::Serialize;
use std::path::PathBuf;

/// Where the host's files are: `/` on a host, a temporary directory laid out like one in tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Roots {
    /// The directory that stands for `/` (holds `etc/`, `run/`, `usr/lib/`, `proc/`, `var/lib/`).
    pub root: PathBuf,
}

impl Roots {
    /// The running host: `/`.
    pub fn host() -> Roots {
        Roots { root: PathBuf::from("/") }
    }

    /// A tree laid out like `/` at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Roots {
        Roots { root: root.into() }
    }

    /// The file an absolute host path (`/etc/sysctl.d`) names under this root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
}

/// What kind of manager owns a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    /// A sysctl.d file or `/etc/sysctl.conf` (applied at boot by systemd-sysctl or `sysctl --system`).
    SysctlD,
    /// TuneD's active profile, its `[sysctl]` section (applied whenever TuneD (re)loads the profile).
    Tuned,
    /// A running bpftune daemon whose tuners write the key.
    Bpftune,
    /// kubelet: the key is in `allowedUnsafeSysctls`, or a pod spec visible here sets it.
    Kubelet,
    /// SemantOS itself: a committed apply, tune, rollout or agent run, or its `--persist` drop-in.
    Semantos,
}

impl OwnerKind {
    /// The name used in messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            OwnerKind::SysctlD => "sysctl.d",
            OwnerKind::Tuned => "tuned",
            OwnerKind::Bpftune => "bpftune",
            OwnerKind::Kubelet => "kubelet",
            OwnerKind::Semantos => "semantos",
        }
    }
}

/// One assignment of a key in a file (a line another line shadows, or the winning one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// The file read (under the root).
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The key or glob pattern as written (`net.ipv4.conf.*.rp_filter`).
    pub pattern: String,
    /// The value text.
    pub value: String,
}

impl Line {
    /// `file:line`.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Someone who manages a key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Owner {
    /// What kind of manager.
    pub kind: OwnerKind,
    /// Where it says so: `file:line`, `tuned profile P (file:line)`, `bpftune pid N (tuner)`.
    pub source: String,
    /// The value it sets, when it names one (bpftune and kubelet's allowance name none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whether a SemantOS write of the key is refused without `--take-ownership`. kubelet's
    /// allowance is not: pods set those keys in their own network namespaces, not the host's.
    pub blocks: bool,
    /// The assignments this one overrides (sysctl.d precedence, TuneD's include chain).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadows: Vec<Line>,
    /// Anything the user should know (ignore-errors `-` prefix, a glob, a line sysctl would mangle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Owner {
    /// One line for messages: `sysctl.d /etc/sysctl.d/99-net.conf:3 (sets 4096)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.kind.name(), self.source);
        if let Some(v) = &self.value {
            s.push_str(&format!(" (sets {v})"));
        }
        s
    }
}

/// One value SemantOS applied and keeps (from a backup the caller read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ours {
    /// The dotted key.
    pub key: String,
    /// The value committed.
    pub value: String,
    /// The run that committed it.
    pub run_id: String,
    /// What kind of run (`apply`, `tune`, `rollout`, `agent`).
    pub run_kind: String,
    /// The backup that records it.
    pub source: String,
}

/// What SemantOS applied, as data: the caller reads its backups (see `apply::records`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SemantosRecords {
    /// Every committed, unrestored value.
    pub values: Vec<Ours>,
    /// The drop-ins SemantOS wrote (`--persist`): a sysctl.d file here is SemantOS's, not a foreign owner.
    pub dropins: Vec<PathBuf>,
}

/// Every owner of one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyOwners {
    /// The dotted key.
    pub key: String,
    /// Its owners, SemantOS included; empty: nobody else manages it.
    pub owners: Vec<Owner>,
}

/// What the readers found for the keys asked about.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// One entry per key asked about, in the order given.
    pub keys: Vec<KeyOwners>,
    /// What was looked at and found present (`/etc/sysctl.d`, `tuned profile P`, `bpftune pid N`).
    pub looked_at: Vec<String>,
    /// What could not be read or understood (file and line, what is wrong); never fatal.
    pub warnings: Vec<String>,
}

impl Report {
    /// The owners of `key` (empty when it was not asked about or nobody manages it).
    pub fn of(&self, key: &str) -> &[Owner] {
        self.keys.iter().find(|k| k.key == key).map(|k| k.owners.as_slice()).unwrap_or(&[])
    }

    /// The owners of `key` other than SemantOS that block a write without `--take-ownership`.
    pub fn foreign(&self, key: &str) -> Vec<&Owner> {
        self.of(key).iter().filter(|o| o.blocks && o.kind != OwnerKind::Semantos).collect()
    }

    /// Every (key, foreign owner) pair, as the agent's metrics publish them.
    pub fn conflicts(&self) -> Vec<crate::metrics::Conflict> {
        self.keys.iter().flat_map(|k| self.foreign(&k.key).into_iter().map(|o| crate::metrics::Conflict { key: k.key.clone(), owner: o.describe() })).collect()
    }

    /// Why writing `keys` is refused, if another owner manages one of them: each key and owner
    /// (file and line, or profile) and how to override. `None`: nobody else manages them.
    pub fn refusal(&self, keys: &[String]) -> Option<String> {
        let lines: Vec<String> = keys.iter().flat_map(|k| self.foreign(k).into_iter().map(move |o| format!("  {k}: managed by {}", o.describe()))).collect();
        if lines.is_empty() {
            return None;
        }
        Some(format!(
            "refusing to write a key another owner manages; nothing was written:\n{}\nThat owner would put its own value back (at boot, on a profile reload, or at once). Change the value there, or re-run with --take-ownership to write it anyway (recorded in the audit log)",
            lines.join("\n")
        ))
    }
}
