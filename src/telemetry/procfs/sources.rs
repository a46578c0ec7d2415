//! The files a snapshot reads: path under the proc root, metric prefix and format. Apart from
//! the reader so that its layout memory (`layout.rs`) can name them without importing the reader.

/// What to do with the text of each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Meminfo,
    Vmstat,
    HeaderPairs,
    Sockstat,
    Softnet,
    Psi,
    Loadavg,
}

/// One file of the snapshot: path under the proc root, metric prefix, format.
pub(super) struct Source {
    pub(super) rel: &'static str,
    pub(super) prefix: &'static str,
    pub(super) kind: Kind,
}

/// In the order of their metric prefixes, so that the metrics of a snapshot
/// come out already sorted (after the `host.*` ones) and the metric map is
/// built without a real sort.
pub(super) const SOURCES: [Source; 10] = [
    Source { rel: "loadavg", prefix: "loadavg", kind: Kind::Loadavg },
    Source { rel: "meminfo", prefix: "meminfo", kind: Kind::Meminfo },
    Source { rel: "net/netstat", prefix: "netstat", kind: Kind::HeaderPairs },
    Source { rel: "pressure/cpu", prefix: "psi.cpu", kind: Kind::Psi },
    Source { rel: "pressure/io", prefix: "psi.io", kind: Kind::Psi },
    Source { rel: "pressure/memory", prefix: "psi.memory", kind: Kind::Psi },
    Source { rel: "net/snmp", prefix: "snmp", kind: Kind::HeaderPairs },
    Source { rel: "net/sockstat", prefix: "sockstat", kind: Kind::Sockstat },
    Source { rel: "net/softnet_stat", prefix: "softnet", kind: Kind::Softnet },
    Source { rel: "vmstat", prefix: "vmstat", kind: Kind::Vmstat },
];

/// The files one snapshot reads, relative to the proc root (host facts aside); benchmarks read the same list.
pub const SNAPSHOT_FILES: [&str; 10] = {
    let mut out = [""; 10];
    let mut i = 0;
    while i < SOURCES.len() {
        out[i] = SOURCES[i].rel;
        i += 1;
    }
    out
};

