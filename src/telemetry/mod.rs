//! Telemetry: the `Snapshot` every source produces, readers of the live
//! host's `/proc` and cgroups, and CSV import/export. A reader never decides
//! anything; it only reports what it saw.

pub mod cgroup;
pub mod csv;
pub mod ebpf;
pub mod fnv;
pub mod limits;
pub mod proc_scan;
pub mod netns;
pub mod procfs;
pub mod snapshot;
pub mod sockdiag;

pub use snapshot::{HostFacts, MetricKind, Snapshot, Window, metric_kind};
