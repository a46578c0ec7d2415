//! Telemetry metric names as the KB writes them: the snapshot's naming
//! conventions, and patterns with one `*` standing for an instance (a
//! listening port, a process) so one symptom covers every instance.

/// Telemetry name prefixes a symptom signal may use (see the conventions in
/// `telemetry::snapshot`): the `/proc` files, host facts, the per-socket
/// and per-listener gauges the socket collector and the simulator emit, and
/// `sysctl.<key>`, a limit's value in force that a live diagnosis reads from
/// the sysctl tree beside each snapshot.
pub const METRIC_PREFIXES: &[&str] = &[
    "netstat.TcpExt.", "netstat.IpExt.", "snmp.", "vmstat.", "meminfo.", "sockstat.", "softnet.", "psi.", "loadavg.", "host.", "cgroup.", "sock.", "listen.",
    "sysctl.", "filenr.", "conntrack.", "neigh.", "inotify.", "proc.", "scan.", "ebpf.",
];

/// Whether a metric name follows one of the snapshot's naming conventions.
pub fn follows_conventions(metric: &str) -> bool {
    METRIC_PREFIXES.iter().any(|pre| metric.starts_with(pre))
}

/// Whether `name` matches `pattern` (at most one `*`, standing for a
/// non-empty run without dots): the instance the `*` matched (`""` without a
/// `*`), or `None`.
pub fn match_metric<'a>(pattern: &str, name: &'a str) -> Option<&'a str> {
    let Some((pre, post)) = pattern.split_once('*') else {
        return (pattern == name).then_some("");
    };
    let mid = name.strip_prefix(pre)?.strip_suffix(post)?;
    (!mid.is_empty() && !mid.contains('.')).then_some(mid)
}
