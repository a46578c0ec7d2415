//! Owners that are services rather than files: a running bpftune, and kubelet.
//!
//! bpftune is found by its process (`/proc/<pid>/comm`, else the basename of `argv[0]` in
//! `cmdline`). Which keys its tuners write is taken from the tuners' tunable tables in bpftune's
//! sources and man pages (oracle/bpftune, `src/*_tuner.c`, `docs/bpftune-*.rst`): tcp_buffer,
//! udp_buffer, net_buffer, ip_frag, route_table and neigh_table. Its `sysctl_tuner` watches
//! writes by others and switches the owning tuner off, so a SemantOS write silently stops
//! bpftune tuning that key: the note says so. Its congestion-control and connection tuners act
//! per socket through BPF, not through sysctls, and are not listed.
//!
//! kubelet: `/var/lib/kubelet/config.yaml`'s `allowedUnsafeSysctls` (names, or a prefix ending
//! in `*`) lets pods set those keys, and static pod manifests in `/etc/kubernetes/manifests`
//! show the `securityContext.sysctls` of those pods. What this cannot see: pods created through
//! the API server (their specs are not on the node's disk) and CNI plugins' per-pod settings.
//! Either way the values land in each pod's own network namespace, not the host's, so kubelet
//! is reported but does not block a write.

use super::model::{Line, Roots};
use std::path::PathBuf;

/// Keys bpftune's tuners write, with the tuner (see the module comment for the source).
pub const BPFTUNE_KEYS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_rmem", "tcp_buffer_tuner"),
    ("net.ipv4.tcp_wmem", "tcp_buffer_tuner"),
    ("net.ipv4.tcp_mem", "tcp_buffer_tuner"),
    ("net.ipv4.tcp_max_orphans", "tcp_buffer_tuner"),
    ("net.ipv4.udp_mem", "udp_buffer_tuner"),
    ("net.core.rmem_max", "udp_buffer_tuner"),
    ("net.core.rmem_default", "udp_buffer_tuner"),
    ("net.core.netdev_max_backlog", "net_buffer_tuner"),
    ("net.core.flow_limit_cpu_bitmap", "net_buffer_tuner"),
    ("net.core.netdev_budget", "net_buffer_tuner"),
    ("net.core.netdev_budget_usecs", "net_buffer_tuner"),
    ("net.ipv4.ipfrag_high_thresh", "ip_frag_tuner"),
    ("net.ipv6.ip6frag_high_thresh", "ip_frag_tuner"),
    ("net.ipv6.route.max_size", "route_table_tuner"),
    ("net.ipv4.neigh.default.gc_thresh3", "neigh_table_tuner"),
    ("net.ipv6.neigh.default.gc_thresh3", "neigh_table_tuner"),
];

/// The pids of running bpftune processes under `roots`' `/proc`.
pub fn bpftune_pids(roots: &Roots) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(roots.path("/proc")) else { return Vec::new() };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()).map(|pid| (pid, e.path())))
        .filter(|(_, dir)| is_bpftune(dir))
        .map(|(pid, _)| pid)
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether the process at `/proc/<pid>` is bpftune (a process may be gone between listing and reading).
fn is_bpftune(dir: &std::path::Path) -> bool {
    if std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "bpftune") {
        return true;
    }
    let Ok(cmd) = std::fs::read(dir.join("cmdline")) else { return false };
    let argv0 = cmd.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(argv0).rsplit('/').next() == Some("bpftune")
}

/// The tuner of bpftune that writes `key`, if one does.
pub fn bpftune_tuner(key: &str) -> Option<&'static str> {
    BPFTUNE_KEYS.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

/// What kubelet lets pods set, and what visible pods set.
#[derive(Debug, Clone, Default)]
pub struct Kubelet {
    /// `allowedUnsafeSysctls` patterns, with the config file.
    pub allowed: Vec<(String, PathBuf)>,
    /// `securityContext.sysctls` of static pods: the line is the manifest (line 0: YAML gives none), pod name in `pattern`.
    pub pods: Vec<(String, Line)>,
    /// What was found present.
    pub looked_at: Vec<String>,
    /// What could not be read.
    pub warnings: Vec<String>,
}

/// kubelet's configuration file.
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// Static pod manifests.
pub const STATIC_PODS: &str = "/etc/kubernetes/manifests";

/// Reads kubelet's allowance and the static pods' sysctls under `roots`.
pub fn kubelet(roots: &Roots) -> Kubelet {
    let mut k = Kubelet::default();
    let cfg = roots.path(KUBELET_CONFIG);
    if let Ok(text) = std::fs::read_to_string(&cfg) {
        k.looked_at.push(format!("kubelet config {}", cfg.display()));
        match serde_saphyr::from_str::<serde_json::Value>(&text) {
            Ok(v) => {
                for p in v["allowedUnsafeSysctls"].as_array().into_iter().flatten().filter_map(|p| p.as_str()) {
                    k.allowed.push((p.to_string(), cfg.clone()));
                }
            }
            Err(e) => k.warnings.push(format!("{}: not YAML kubelet can read ({e}); its allowedUnsafeSysctls are not reported", cfg.display())),
        }
    }
    let Ok(entries) = std::fs::read_dir(roots.path(STATIC_PODS)) else { return k };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json")).collect();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        let Ok(v) = serde_saphyr::from_str::<serde_json::Value>(&text) else {
            k.warnings.push(format!("{}: not a pod manifest this can read; skipped", f.display()));
            continue;
        };
        let pod = v["metadata"]["name"].as_str().unwrap_or("?").to_string();
        for s in v["spec"]["securityContext"]["sysctls"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (s["name"].as_str(), s["value"].as_str().map(str::to_string).or_else(|| s["value"].as_i64().map(|n| n.to_string()))) {
                k.pods.push((name.to_string(), Line { file: f.clone(), line: 0, pattern: pod.clone(), value }));
            }
        }
    }
    k
}

/// Whether kubelet's `allowedUnsafeSysctls` pattern `p` covers `key` (a name, or a prefix ending in `*`).
pub fn allowed_by(p: &str, key: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => p == key,
    }
}
