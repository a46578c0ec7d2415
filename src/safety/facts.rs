//! The host quantities the step limit's sentinel conversions need
//! (`Facts`), read from a telemetry snapshot that the edge already took.
//! Pure: no I/O here.

use super::step::Facts;
use crate::kb::entry::Fact;
use crate::telemetry::Snapshot;

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
