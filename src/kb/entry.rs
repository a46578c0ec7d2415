//! The knowledge-base data types: parameters, edges between them and the
//! symptoms that call for them. These are the on-disk schema of the TOML
//! files under `kb/`; unknown fields are refused so a typo cannot silently
//! drop a range or a risk.

use crate::sysctl::value::{Rounding, ValueKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the operator wants the host to be good at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Lower tail latency.
    Latency,
    /// Higher throughput.
    Throughput,
    /// Smaller memory footprint.
    Memory,
    /// A compromise between the three.
    Balanced,
}

impl Intent {
    /// Every intent, in display order.
    pub const ALL: [Intent; 4] = [Intent::Latency, Intent::Throughput, Intent::Memory, Intent::Balanced];

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Intent::Latency => "latency",
            Intent::Throughput => "throughput",
            Intent::Memory => "memory",
            Intent::Balanced => "balanced",
        }
    }
}

/// How dangerous a change to a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Bounded and reversible.
    Low,
    /// Can clearly degrade performance; reversible.
    Medium,
    /// Can cause OOM, hangs, connection loss or data-loss windows.
    High,
    /// Security knob, one-way latch, action or secret: never applied.
    Never,
}

/// Where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One value for the whole machine.
    Global,
    /// Per network namespace and writable there.
    Netns,
    /// Visible in a child network namespace but read-only there (mirror of the global value).
    NetnsReadOnly,
    /// Per IPC namespace.
    Ipcns,
    /// Per UTS namespace.
    Utsns,
    /// Per PID namespace.
    Pidns,
    /// Per user (user-namespace ucount).
    User,
}

impl Scope {
    /// The name the KB files use (`scope = "netns_read_only"`).
    pub fn name(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Netns => "netns",
            Scope::NetnsReadOnly => "netns_read_only",
            Scope::Ipcns => "ipcns",
            Scope::Utsns => "utsns",
            Scope::Pidns => "pidns",
            Scope::User => "user",
        }
    }
}

/// When a written value starts to matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Immediately, for everything.
    #[default]
    Live,
    /// Only for sockets created afterwards.
    NewSockets,
    /// Only when the application re-opens (somaxconn is read at `listen()`).
    Reopen,
    /// Only after a reboot or remount.
    Reboot,
}

/// Which way a parameter should move for an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Increase it.
    Raise,
    /// Decrease it.
    Lower,
    /// Leave it alone.
    Keep,
    /// Set it to the suggested value (enums and booleans).
    Set,
}

/// A comparison operator used by conditions and symptom signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    /// Applies the operator to two numbers.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }

    /// Applies the operator to two strings (only `==` and `!=` are meaningful).
    pub fn holds_str(self, a: &str, b: &str) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            _ => false,
        }
    }

    /// The symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// Per-intent values; a missing intent falls back to `balanced`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>", serialize = "T: Serialize"))]
pub struct PerIntent<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balanced: Option<T>,
}

impl<T> Default for PerIntent<T> {
    fn default() -> Self {
        Self { latency: None, throughput: None, memory: None, balanced: None }
    }
}

impl<T> PerIntent<T> {
    /// The value for `intent`, falling back to `balanced`.
    pub fn get(&self, intent: Intent) -> Option<&T> {
        let v = match intent {
            Intent::Latency => self.latency.as_ref(),
            Intent::Throughput => self.throughput.as_ref(),
            Intent::Memory => self.memory.as_ref(),
            Intent::Balanced => self.balanced.as_ref(),
        };
        v.or(self.balanced.as_ref())
    }

    /// Whether no intent has a value.
    pub fn is_empty(&self) -> bool {
        self.latency.is_none() && self.throughput.is_none() && self.memory.is_none() && self.balanced.is_none()
    }
}

/// How to size a target from a measured quantity: `target = metric × factor`, clamped to the KB range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sizing {
    /// Telemetry metric (gauge) the size derives from, e.g. `sock.bdp_bytes.max`.
    pub metric: String,
    /// Multiplier applied to the metric.
    pub factor: f64,
    /// Round the result up to a power of two.
    #[serde(default)]
    pub pow2: bool,
}

/// A precondition for proposing a change: on another key's current value or on a telemetry gauge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Another sysctl key whose current value is compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctl: Option<String>,
    /// A telemetry metric (latest value, or rate for counters) compared instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Comparison.
    pub op: Op,
    /// Right-hand side: a number, or a word for string keys.
    pub value: String,
    /// Why the condition matters, quoted in rationales and refusals.
    pub because: String,
}

/// When this key is the limit in force for what shows a symptom: a telemetry gauge that
/// counts the sockets (processes, devices) held at this key's limit. Proposed only when it
/// holds; otherwise "considered, not proposed" with the reason and the cited readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The symptom this applies to (every symptom of the key when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptom: Option<String>,
    /// The telemetry gauge compared.
    pub metric: String,
    /// Comparison.
    pub op: Op,
    /// Right-hand side, a number.
    pub value: f64,
    /// Without the metric (no per-socket telemetry): true proposes as if it held (the key is the
    /// default limit, in force unless shown otherwise), false does not (an opt-in cap, in force only
    /// for what asked for it).
    #[serde(default)]
    pub presumed: bool,
    /// Why this reading decides whether the key binds, quoted in rationales and refusals.
    pub because: String,
    /// Further gauges quoted as evidence either way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cite: Vec<String>,
    /// Keys that may be the limit in force for the same symptom instead (tcp_rmem's rival is
    /// rmem_max): whenever this key is called for, each rival is judged by its own `binds_when`
    /// and proposed if it binds, else listed as considered with the evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rivals: Vec<String>,
}

/// One parameter of the knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// Dotted key (`vm.swappiness`).
    pub key: String,
    /// Value shape.
    #[serde(rename = "type")]
    pub kind: ValueKind,
    /// Number of elements for `ints`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: usize,
    /// Allowed words for `enum`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Unit of each element (`pages`, `bytes`, `percent`, `centiseconds`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Smallest valid element, by the KB's own judgement (the kernel often checks nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// Largest valid element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// For `ints`: elements must be non-decreasing (`tcp_rmem` min ≤ default ≤ max).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ordered: bool,
    /// Upstream default value, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A value with a meaning of its own (0 = off, auto, or "the partner key is in force"):
    /// the guardrails bound a step against the value in force, not against the sentinel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<Sentinel>,
    /// Namespace scope.
    pub scope: Scope,
    /// Risk of changing it.
    pub risk: Risk,
    /// Why it has that risk.
    pub risk_reason: String,
    /// One sentence on what it controls.
    pub controls: String,
    /// When a change takes effect.
    #[serde(default)]
    pub effect: Effect,
    /// Detail on the effect (who must re-open what).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect_note: Option<String>,
    /// First kernel version with the key, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Kernel version that removed it from /proc/sys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_in: Option<String>,
    /// Where it went (debugfs path, new name) or why it is inert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
    /// Present but has no effect on current kernels.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_op: bool,
    /// How read-back may differ from what was written.
    #[serde(default, skip_serializing_if = "is_exact")]
    pub rounding: Rounding,
    /// Symptom IDs (from `symptoms.toml`) that call for moving it in its `direction`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symptoms: Vec<String>,
    /// Symptom IDs that show it went too far: they call for the opposite direction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counter_symptoms: Vec<String>,
    /// Direction per intent.
    #[serde(default, skip_serializing_if = "PerIntent::is_empty")]
    pub direction: PerIntent<Direction>,
    /// Typical target value per intent.
    #[serde(default, skip_serializing_if = "PerIntent::is_empty")]
    pub suggest: PerIntent<String>,
    /// For `ints`: the element the engine adjusts (0-based); the others are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjust_index: Option<usize>,
    /// Size the target from telemetry instead of stepping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<Sizing>,
    /// Preconditions for proposing a change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When this key is the limit that binds (see `Binding`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds_when: Vec<Binding>,
    /// Documentation and commits this entry rests on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Kernel build options the key needs, all of them (`["CONFIG_NET_FLOW_LIMIT"]`;
    /// all-of: list every option, not alternatives). Live validation reads the
    /// kernel's config: an option not set explains an absent key; all set (`=y`)
    /// and the key absent is a KB error; `=m` means present only while loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires_config: Vec<String>,
    /// In words, what else the key's presence or writability depends on that no
    /// kernel config shows (an LSM enabled at boot, a hardware detector): with it
    /// an absent or read-only key is "cannot tell" instead of a mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Why tools must not read the key at all (secrets, reads that act,
    /// write-only action files). Absent for ordinary keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_read: Option<NoRead>,
}

/// What a parameter's special value means (KB field `sentinel`), so a step
/// from or to it is judged by the value in force. Examples:
/// `{ means = "off", value = 0, note = "..." }`,
/// `{ means = "auto", value = 0, equals = 8, note = "..." }`,
/// `{ means = "partner", value = 0, partner = "vm.dirty_ratio", convert = "from_percent", fact = "dirtyable_bytes", note = "..." }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "means", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sentinel {
    /// The value turns the feature off; in force is nothing (0).
    Off {
        /// The sentinel value.
        value: i64,
        /// What "off" means for this key, quoted in verdicts.
        note: String,
    },
    /// The kernel chooses; `equals` is what it chooses when that is fixed (tcp_orphan_retries 0 = 8).
    Auto {
        /// The sentinel value.
        value: i64,
        /// The value in force, when it does not depend on the host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        equals: Option<i64>,
        /// What the kernel does instead, quoted in verdicts.
        note: String,
    },
    /// The other member of a mutually exclusive pair is in force (dirty_bytes 0 = dirty_ratio applies).
    Partner {
        /// The sentinel value.
        value: i64,
        /// The key in force while this one holds the sentinel.
        partner: String,
        /// How the partner's value converts into this key's unit.
        convert: Convert,
        /// The host quantity the conversion needs (passed to the guardrails as data).
        fact: Fact,
        /// What the pairing means, quoted in verdicts.
        note: String,
    },
}

impl Sentinel {
    /// The special value.
    pub fn value(&self) -> i64 {
        match self {
            Sentinel::Off { value, .. } | Sentinel::Auto { value, .. } | Sentinel::Partner { value, .. } => *value,
        }
    }

    /// The note quoted in verdicts.
    pub fn note(&self) -> &str {
        match self {
            Sentinel::Off { note, .. } | Sentinel::Auto { note, .. } | Sentinel::Partner { note, .. } => note,
        }
    }
}

/// How a partner's value becomes this key's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convert {
    /// The partner is a percentage of the fact; this key is an amount: partner × fact / 100.
    FromPercent,
    /// The partner is an amount; this key is a percentage of the fact: partner × 100 / fact.
    ToPercent,
}

/// A host quantity a sentinel conversion needs; measured at the edge, passed to the guardrails as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact {
    /// Memory the dirty limits are a percentage of (free + file LRU pages), in bytes.
    DirtyableBytes,
    /// RAM minus huge pages, what overcommit_ratio is a percentage of, in KiB.
    CommitRamKbytes,
}

impl Fact {
    /// The name used in the KB and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Fact::DirtyableBytes => "dirtyable_bytes",
            Fact::CommitRamKbytes => "commit_ram_kbytes",
        }
    }
}

/// Why a key must not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoRead {
    /// The value is a secret (tcp_fastopen_key, stable_secret): never read, log or show it.
    Secret,
    /// Reading it performs an action (vm.stat_refresh flushes per-CPU counters).
    SideEffect,
    /// An action file with mode 0200 (drop_caches, route.flush): there is nothing to read.
    WriteOnly,
}

fn one() -> usize {
    1
}
fn is_one(n: &usize) -> bool {
    *n == 1
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_exact(r: &Rounding) -> bool {
    *r == Rounding::Exact
}

impl Param {
    /// Number of elements a value of this parameter has.
    pub fn elements(&self) -> usize {
        if self.kind == ValueKind::Ints { self.count.max(1) } else { 1 }
    }
}

/// The kinds of typed relation between two parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// Changing one helps only, or helps more, with the other changed too: a change pulls in its partner.
    SynergizesWith,
    /// Changing both in the directions proposed works against each other: refused together.
    ConflictsWith,
    /// `from` has effect only when `to` satisfies a condition.
    Requires,
    /// `from`'s effective value is capped by `to`.
    BoundedBy,
    /// Writing one zeroes the other (dirty_bytes vs dirty_ratio): change only one of the pair.
    MutuallyExclusive,
    /// A numeric order that must hold between the two (checked by the guardrails).
    Invariant,
}

/// How an invariant edge compares `from` with `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// from < to.
    LessThan,
    /// from ≤ to.
    LessEqual,
}

/// A typed edge between two parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// Kind of relation.
    pub kind: EdgeKind,
    /// First parameter.
    pub from: String,
    /// Second parameter.
    pub to: String,
    /// For invariants: the comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<Relation>,
    /// Element of `from` compared (for multi-value keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_index: Option<usize>,
    /// Element of `to` compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_index: Option<usize>,
    /// Values of `from` for which the invariant does not apply (`sched_rt_runtime_us = -1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unless_from: Vec<i64>,
    /// Values of `to` that disable the invariant (`dirty_ratio = 0` while dirty_bytes is in use).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unless_to: Vec<i64>,
    /// Why the edge exists, quoted in rationales and refusals.
    pub note: String,
}

impl Edge {
    /// The parameter at the other end from `key` (edges are looked up from either end).
    pub fn other(&self, key: &str) -> &str {
        if self.from == key { &self.to } else { &self.from }
    }
}

/// How a symptom signal reads a metric. A diagnosis judges it over every
/// sub-interval of its window (see `reasoning::window` for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Per-second rate of a counter, per sub-interval.
    Rate,
    /// Increase of a counter, per sub-interval.
    Delta,
    /// Level of a gauge at the end of each sub-interval.
    Gauge,
    /// A count against its limit: the gauge divided by the limit metric `per`,
    /// both read from the same snapshot, so the limit is the one in force on
    /// this host. With one `*` in both names (`listen.*.queue.max` per
    /// `listen.*.backlog`) it is judged per instance and the worst one counts.
    Ratio,
}

/// One measurable condition of a symptom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// Metric name (`netstat.TcpExt.ListenOverflows`).
    pub metric: String,
    /// How the metric is read.
    pub measure: Measure,
    /// Denominator metric for `ratio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// Comparison.
    pub op: Op,
    /// Threshold.
    pub value: f64,
}

/// A symptom the diagnosis can report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Symptom {
    /// Stable ID, used as the finding ID.
    pub id: String,
    /// Short title.
    pub title: String,
    /// What it means for the workload, in one or two sentences.
    pub explain: String,
    /// All of these must hold.
    pub when: Vec<Signal>,
}

/// A usage metric and the limits it runs into on the same host
/// (`[[limit]]`, kb/limits.toml). The count alone means something different
/// on every host, so a symptom may judge it only as a ratio to one of these
/// limits (`kb validate` lints the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Usage metric, or a pattern with one `*` standing for an instance (`listen.*.queue.max`).
    pub usage: String,
    /// Metrics of the limits in force, in the same snapshot; with a `*` when `usage` has one.
    pub limits: Vec<String>,
    /// The kernel mechanism that makes the limit bind.
    pub note: String,
    /// Where the mechanism is documented.
    #[serde(default)]
    pub references: Vec<String>,
}

/// The TOML file layout: any file may hold any of the four tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbFile {
    #[serde(default)]
    pub param: Vec<Param>,
    #[serde(default)]
    pub edge: Vec<Edge>,
    #[serde(default)]
    pub symptom: Vec<Symptom>,
    #[serde(default)]
    pub limit: Vec<Limit>,
}

/// Parameters by key, in key order.
pub type ParamMap = BTreeMap<String, Param>;
