//! What the guardrails know of the host besides the values read from the
//! store (`Facts`): the quantities the step limit's sentinel conversions
//! need, read from a telemetry snapshot that the edge already took, and the
//! network namespace the target runs in (`telemetry::netns`), which decides
//! whether a key can be written from here (`scope`). Pure: no I/O here.

use crate::kb::entry::Fact;
use crate::telemetry::Snapshot;
use crate::telemetry::netns::NetnsPlace;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Host facts, measured at the edge and handed to `check_with`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    quantities: BTreeMap<Fact, f64>,
    /// The network namespace of the target; None when it does not apply (a sandbox tree) or was not looked at.
    pub netns: Option<NetnsPlace>,
    /// Where the edge writes the changes refused for their scope, as a plan to run on the host.
    pub host_plan: Option<PathBuf>,
}

impl Facts {
    /// No facts: sentinel values in force are unknown, the namespace is not judged.
    pub fn new() -> Self {
        Self::default()
    }

    /// A measured quantity.
    pub fn get(&self, f: &Fact) -> Option<&f64> {
        self.quantities.get(f)
    }

    /// Records a measured quantity.
    pub fn insert(&mut self, f: Fact, v: f64) {
        self.quantities.insert(f, v);
    }

    /// The same facts, judged for a target in `place`.
    pub fn in_netns(mut self, place: NetnsPlace) -> Self {
        self.netns = Some(place);
        self
    }

    /// The same facts, naming the file the refused-for-scope changes are written to.
    pub fn with_host_plan(mut self, path: PathBuf) -> Self {
        self.host_plan = Some(path);
        self
    }
}

impl<const N: usize> From<[(Fact, f64); N]> for Facts {
    fn from(v: [(Fact, f64); N]) -> Self {
        Facts { quantities: BTreeMap::from(v), ..Facts::default() }
    }
}

/// Facts from `/proc/meminfo` values in a snapshot; a quantity whose fields are missing is left out.
pub fn from_snapshot(s: &Snapshot) -> Facts {
    let kb = |f: &str| s.get(&format!("meminfo.{f}"));
    let mut out = Facts::new();
    // The kernel's global_dirtyable_memory(): free pages plus the file LRU lists.
    if let (Some(free), Some(active), Some(inactive)) = (kb("MemFree"), kb("Active(file)"), kb("Inactive(file)")) {
        out.insert(Fact::DirtyableBytes, (free + active + inactive) * 1024.0);
    }
    // CommitLimit = swap + (MemTotal − hugetlb) × overcommit_ratio / 100 (mm/util.c).
    if let Some(total) = kb("MemTotal") {
        out.insert(Fact::CommitRamKbytes, total - kb("Hugetlb").unwrap_or(0.0));
    }
    out
}
