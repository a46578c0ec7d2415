//! Limit-saturation symptoms on the real kernel, each driven to its limit by
//! a throwaway workload that changes no global setting: a process run as a
//! throwaway uid that opens inotify instances until the per-user limit
//! refuses one (EMFILE); a process that splits its own mappings until
//! `vm.max_map_count` refuses (ENOMEM); a process that lowers its own
//! `RLIMIT_NOFILE` and opens files to it; SYN floods from a raw socket
//! inside a throwaway network namespace against listeners whose SYN queue
//! fills at the listener's backlog or at `tcp_max_syn_backlog` (per
//! namespace); threads up to `kernel.pid_max` in a throwaway PID namespace
//! (per PID namespace since 6.14). The reader must find each, name who is
//! at the limit, and the engine must propose the key that binds — and not
//! the one that does not.
//!
//! Privileged: skips without root unless SEMANTOS_REQUIRE_PRIVILEGED=1.

use crate::support::{Netns, bin, privileged, text};
use semantos::kb::{Intent, Kb};
use semantos::reasoning::{Context, Findings, Plan, diagnose, recommend};
use semantos::sysctl::Value;
use semantos::telemetry::proc_scan::{ScanCaps, scan};
use semantos::telemetry::procfs::ProcReader;
use semantos::telemetry::{Snapshot, Window};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A Python workload that prints one line when it is at its limit and holds
/// it until its standard input closes; killed on drop.
struct Workload {
    child: Child,
    /// The line it printed.
    report: String,
}

impl Workload {
    fn start(script: &str, args: &[&str]) -> Workload {
        let mut child = Command::new("python3").arg("-c").arg(script).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        Workload { child, report: line.trim().to_string() }
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const INOTIFY: &str = r#"
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(15, b"semantos-inotif", 0, 0, 0)
uid = int(sys.argv[1])
os.setgroups([]); os.setgid(uid); os.setuid(uid)
fds, err = [], 0
while True:
    fd = libc.inotify_init1(0)
    if fd < 0:
        err = ctypes.get_errno()
        break
    fds.append(fd)
    libc.inotify_add_watch(fd, b"/", 2)
print(len(fds), errno.errorcode.get(err, err), flush=True)
sys.stdin.read()
"#;

const MAPS: &str = r#"
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(15, b"semantos-maps", 0, 0, 0)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
n = int(sys.argv[1]) // 2 + 64
step = 2 << 20
# One PROT_NONE reservation (no memory committed), then every other page made
# readable: each mprotect splits the area, two more mappings each time.
base = libc.mmap(None, step * n, 0, 0x02 | 0x20 | 0x4000, -1, 0)
assert base and base != ctypes.c_void_p(-1).value, "mmap failed"
done, err = 0, 0
for i in range(n):
    if libc.mprotect(base + i * step, 4096, 1) != 0:
        err = ctypes.get_errno()
        break
    done += 1
print(done, errno.errorcode.get(err, err), flush=True)
sys.stdin.read()
"#;

const FDS: &str = r#"
import ctypes, errno, os, resource, sys
ctypes.CDLL(None).prctl(15, b"semantos-fds", 0, 0, 0)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
fds, err = [], 0
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    err = e.errno
print(len(fds), errno.errorcode.get(err, err), flush=True)
sys.stdin.read()
"#;

fn host_number(key: &str) -> u64 {
    crate::support::host_value(key).parse().unwrap_or_else(|_| panic!("{key} is not a number on this host"))
}

/// Two live snapshots of this machine's /proc, a moment apart.
fn live_window() -> (Snapshot, Snapshot) {
    let r = ProcReader::new();
    let a = r.snapshot(0).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let b = r.snapshot(200).unwrap();
    (a, b)
}

/// The rules engine's plan for `findings` with the host's current value of each of `keys`.
fn plan_for(findings: &Findings, a: &Snapshot, b: &Snapshot, kb: &Kb, keys: &[&str]) -> Plan {
    let current: BTreeMap<String, Value> = keys.iter().map(|k| (k.to_string(), Value::from_kernel(&crate::support::host_value(k)))).collect();
    recommend(findings, &Context { kb, intent: Intent::Latency, current: &current, window: Window::new(a, b) })
}

fn evidence(findings: &Findings, id: &str) -> String {
    let f = findings.get(id).unwrap_or_else(|| panic!("{id} not found; found {:?}, no data {:?}", findings.findings.iter().map(|f| &f.id).collect::<Vec<_>>(), findings.no_data));
    f.evidence.iter().map(|e| e.describe()).collect::<Vec<_>>().join("; ")
}

#[test]
fn inotify_instances_at_the_per_user_limit_are_found_and_name_the_uid_and_the_process() {
    if !privileged("inotify_instances_at_the_per_user_limit_are_found_and_name_the_uid_and_the_process") {
        return;
    }
    // A uid nobody uses: the per-user count we exhaust is that user's alone.
    let uid = 61000 + std::process::id() % 4000;
    let w = Workload::start(INOTIFY, &[&uid.to_string()]);
    let limit = host_number("fs.inotify.max_user_instances");
    assert_eq!(w.report, format!("{limit} EMFILE"), "the kernel refuses the instance past the per-user limit");
    let r = scan(Path::new("/proc"), &ScanCaps::default(), None).unwrap();
    let u = &r.inotify[&uid];
    assert_eq!((u.instances, u.watches), (limit, limit), "every instance and watch of the throwaway user is counted");
    assert_eq!((u.top_instances.0.pid, u.top_instances.0.comm.as_str()), (w.pid(), "semantos-inotif"));
    let (a, b) = live_window();
    assert_eq!(b.get("inotify.limit.instances"), Some(limit as f64));
    let kb = Kb::embedded().unwrap();
    let f = diagnose(&a, &b, &kb);
    let ev = evidence(&f, "inotify_instances_near_limit");
    assert!(ev.contains(&format!("inotify.instances.top.uid = {uid}")) && ev.contains(&format!("inotify.instances.top.pid = {}", w.pid())), "{ev}");
    let plan = plan_for(&f, &a, &b, &kb, &["fs.inotify.max_user_instances", "fs.inotify.max_user_watches"]);
    let c = plan.changes.iter().find(|c| c.key == "fs.inotify.max_user_instances").unwrap_or_else(|| panic!("{plan:#?}"));
    assert!(c.to.parse::<u64>().unwrap() > limit, "raised: {c:?}");
}

#[test]
fn a_process_at_max_map_count_is_found_and_named() {
    if !privileged("a_process_at_max_map_count_is_found_and_named") {
        return;
    }
    let limit = host_number("vm.max_map_count");
    let w = Workload::start(MAPS, &[&limit.to_string()]);
    assert!(w.report.ends_with("ENOMEM"), "the kernel refuses the split past max_map_count: {}", w.report);
    let r = scan(Path::new("/proc"), &ScanCaps::default(), Some(limit)).unwrap();
    let m = r.maps.iter().find(|m| m.who.pid == w.pid()).unwrap_or_else(|| panic!("the workload's maps were not counted: {:?}", r.maps));
    assert!(m.complete && m.maps + 2 >= limit && m.maps <= limit + 1, "{} mappings against a limit of {limit}", m.maps);
    assert_eq!(m.who.comm, "semantos-maps");
    assert!(r.maps.len() <= ScanCaps::default().max_maps_procs, "the maps pre-filter holds its cap");
    let (a, b) = live_window();
    let kb = Kb::embedded().unwrap();
    let f = diagnose(&a, &b, &kb);
    let ev = evidence(&f, "map_count_near_limit");
    assert!(ev.contains(&format!("proc.maps.top.pid = {}", w.pid())), "{ev}");
    let plan = plan_for(&f, &a, &b, &kb, &["vm.max_map_count"]);
    let c = plan.changes.iter().find(|c| c.key == "vm.max_map_count").unwrap_or_else(|| panic!("{plan:#?}"));
    assert!(c.to.parse::<u64>().unwrap() >= 2 * (limit - 2), "sized from the measured count: {c:?}");
}

#[test]
fn a_process_at_its_own_open_file_limit_is_not_answered_with_fs_file_max() {
    if !privileged("a_process_at_its_own_open_file_limit_is_not_answered_with_fs_file_max") {
        return;
    }
    let w = Workload::start(FDS, &[]);
    assert!(w.report.ends_with("EMFILE"), "the kernel refuses the descriptor past the process's own limit: {}", w.report);
    let r = scan(Path::new("/proc"), &ScanCaps::default(), None).unwrap();
    let me = r.fds.iter().find(|f| f.who.pid == w.pid()).unwrap();
    // Descriptors opened before the limit was lowered stay open: at least the limit.
    assert!(me.open >= me.limit.soft && me.limit.soft == 64 && me.who.comm == "semantos-fds", "{me:?}");
    assert!(r.fd_top().unwrap().fill() >= 1.0);
    let (a, b) = live_window();
    let kb = Kb::embedded().unwrap();
    let f = diagnose(&a, &b, &kb);
    evidence(&f, "process_fd_limit_near");
    assert!(f.get("file_handles_near_max").is_none(), "the host-wide table is far from full");
    let plan = plan_for(&f, &a, &b, &kb, &["fs.file-max", "fs.nr_open"]);
    assert!(plan.changes.iter().all(|c| c.key != "fs.file-max" && c.key != "fs.nr_open"), "the per-process limit binds, no sysctl does: {plan:#?}");
}

/// A throwaway namespace with a listener on 10.9.0.1 and a raw-socket SYN
/// flood from peers on a veth link that nobody answers (no address on the
/// other end): their SYN-ACKs wait for ARP and are lost, so the requests stay
/// in the SYN queue. (A blackhole route would not do: the SYN is then
/// dropped for want of a route back, before any queue.)
const SYN_FLOOD: &str = r#"
import socket, struct, sys, time
backlog, rate = int(sys.argv[1]), float(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("10.9.0.1", 8080))
srv.listen(backlog)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
def syn(src, sport, seq):
    s, d = socket.inet_aton(src), socket.inet_aton("10.9.0.1")
    tcp = struct.pack("!HHIIBBHHH", sport, 8080, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    c = csum(s + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, s, d)
    return ip + tcp
print("ready", flush=True)
i = 0
while True:
    i += 1
    raw.sendto(syn("10.9.1.%d" % (2 + i % 8), 1024 + i % 60000, i * 7919), ("10.9.0.1", 0))
    time.sleep(1.0 / rate)
"#;

fn ns_sh(ns: &Netns, cmd: &str) {
    let o = Command::new("ip").args(["netns", "exec", &ns.name, "sh", "-c", cmd]).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Runs a flood against a listener with `backlog` in a namespace set up by `sysctls`, then `semantos recommend --json` there.
fn flood_and_recommend(tag: &str, sysctls: &str, backlog: u32) -> (serde_json::Value, Netns) {
    let ns = Netns::create(tag);
    ns_sh(&ns, &format!("ip link set lo up && ip addr add 10.9.0.1/32 dev lo && ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up && ip route add 10.9.1.0/24 dev v0 && {sysctls}"));
    let mut flood = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", SYN_FLOOD, &backlog.to_string(), "300"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(flood.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    // Let the SYN queue fill before the window opens.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let dir = tempfile::tempdir().unwrap();
    let o = ns.semantos(dir.path(), &["recommend", "--interval", "1", "--json"], &[]);
    let _ = flood.kill();
    let _ = flood.wait();
    let (out, err) = text(&o);
    assert!(o.status.success(), "recommend: {err}");
    (serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")), ns)
}

/// Keys the plan changes.
fn changed(checked: &serde_json::Value) -> Vec<String> {
    checked["plan"]["changes"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_syn_queue_full_at_the_listener_backlog_is_not_answered_with_tcp_max_syn_backlog() {
    if !privileged("a_syn_queue_full_at_the_listener_backlog_is_not_answered_with_tcp_max_syn_backlog") {
        return;
    }
    // Cookies off, listen(8): the queue is full at the listener's backlog
    // (TCPReqQFullDrop), long before tcp_max_syn_backlog's three quarters.
    let (checked, _ns) = flood_and_recommend("synq", "sysctl -qw net.ipv4.tcp_syncookies=0", 8);
    let text = checked.to_string();
    assert!(text.contains("\"syn_queue_drops\""), "the drops are diagnosed: {text}");
    let keys = changed(&checked);
    assert!(!keys.contains(&"net.ipv4.tcp_max_syn_backlog".to_string()), "tcp_max_syn_backlog does not bind at a listener's backlog of 8: {keys:?}");
}

#[test]
fn syn_drops_at_tcp_max_syn_backlog_without_cookies_propose_it() {
    if !privileged("syn_drops_at_tcp_max_syn_backlog_without_cookies_propose_it") {
        return;
    }
    // Cookies off, listen(4096), tcp_max_syn_backlog 128: unproven peers are
    // dropped once 96 requests wait, with no TCPReqQFullDrop.
    let (checked, ns) = flood_and_recommend("synb", "sysctl -qw net.ipv4.tcp_syncookies=0 net.ipv4.tcp_max_syn_backlog=128", 4096);
    let text = checked.to_string();
    assert!(text.contains("\"syn_backlog_drops_without_cookies\""), "{text}");
    let keys = changed(&checked);
    assert!(keys.contains(&"net.ipv4.tcp_max_syn_backlog".to_string()) && !keys.contains(&"net.core.somaxconn".to_string()), "{keys:?}");
    assert_eq!(ns.read("net.ipv4.tcp_max_syn_backlog"), "128", "recommend writes nothing");
}

#[test]
fn syn_cookies_sent_at_a_full_queue_are_diagnosed() {
    if !privileged("syn_cookies_sent_at_a_full_queue_are_diagnosed") {
        return;
    }
    let (checked, _ns) = flood_and_recommend("sync", "sysctl -qw net.ipv4.tcp_syncookies=1", 8);
    let text = checked.to_string();
    assert!(text.contains("\"syn_queue_full_cookies\""), "{text}");
    let keys = changed(&checked);
    assert!(!keys.contains(&"net.ipv4.tcp_max_syn_backlog".to_string()), "with cookies on tcp_max_syn_backlog is never consulted: {keys:?}");
}

#[test]
fn threads_near_pid_max_of_a_child_pid_namespace_are_counted_there_not_on_the_host() {
    if !privileged("threads_near_pid_max_of_a_child_pid_namespace_are_counted_there_not_on_the_host") {
        return;
    }
    // pid_max is per PID namespace since 6.14: lower it in a throwaway one
    // (with its own /proc) and start threads to 92 % of it; the host is
    // untouched. PIDs freed below 300 are not reused in a child namespace,
    // so the interpreter runs directly (a shim's helpers would use some up).
    let script = r#"
import subprocess, sys, threading
with open("/proc/sys/kernel/pid_max", "w") as f:
    f.write("1000")
threading.stack_size(256 << 10)
stop = threading.Event()
for _ in range(915):
    threading.Thread(target=stop.wait, daemon=True).start()
out = subprocess.run([sys.argv[1], "diagnose", "--interval", "0.3", "--json"], capture_output=True, text=True)
print(out.stdout)
sys.stderr.write(out.stderr)
"#;
    let host_pid_max = crate::support::host_value("kernel.pid_max");
    let py = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    let py = String::from_utf8(py.stdout).unwrap().trim().to_string();
    let o = Command::new("unshare").args(["--pid", "--fork", "--mount-proc", &py, "-c", script]).arg(bin()).output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(crate::support::host_value("kernel.pid_max"), host_pid_max, "the host's pid_max is untouched");
    let f: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let found = f["findings"].as_array().unwrap().iter().find(|x| x["id"] == "tasks_near_pid_max").unwrap_or_else(|| panic!("{out}"));
    let ratio = found["evidence"][0]["value"].as_f64().unwrap();
    assert!((0.9..1.0).contains(&ratio), "threads of the child namespace over its pid_max of 400: {ratio}");
}

#[test]
fn conntrack_is_data_where_built_in_and_no_data_where_not() {
    if !privileged("conntrack_is_data_where_built_in_and_no_data_where_not") {
        return;
    }
    let ns = Netns::create("ct");
    let dir = tempfile::tempdir().unwrap();
    let o = ns.semantos(dir.path(), &["diagnose", "--interval", "0.1", "--json"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let f: serde_json::Value = serde_json::from_str(&out).unwrap();
    let no_data: Vec<&str> = f["no_data"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    let built_in = Path::new("/proc/sys/net/netfilter/nf_conntrack_count").exists();
    assert_eq!(!no_data.contains(&"conntrack_table_near_full"), built_in, "conntrack present here: {built_in}; no data for: {no_data:?}");
}

#[test]
fn neighbour_tables_are_data_on_the_host_and_no_data_in_a_child_namespace() {
    if !privileged("neighbour_tables_are_data_on_the_host_and_no_data_in_a_child_namespace") {
        return;
    }
    // gc_thresh* cap one host-wide table and exist only in the initial
    // namespace: read there, a ratio; from a child namespace, "no data"
    // rather than a ratio against a limit that namespace cannot see.
    let (_, host) = live_window();
    assert!(host.get("neigh.arp_cache.entries").is_some() && host.get("sysctl.net.ipv4.neigh.default.gc_thresh3").is_some());
    let ns = Netns::create("neigh");
    let dir = tempfile::tempdir().unwrap();
    let o = ns.semantos(dir.path(), &["diagnose", "--interval", "0.1", "--json"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let f: serde_json::Value = serde_json::from_str(&out).unwrap();
    let no_data: Vec<&str> = f["no_data"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(no_data.contains(&"arp_table_near_gc_thresh3") && no_data.contains(&"ndisc_table_near_gc_thresh3"), "{no_data:?}");
    let kb = Kb::embedded().unwrap();
    let (a, b) = live_window();
    let host_findings = diagnose(&a, &b, &kb);
    assert!(!host_findings.no_data.iter().any(|s| s == "arp_table_near_gc_thresh3"), "{:?}", host_findings.no_data);
}
