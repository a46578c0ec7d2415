//! Live validation against `MemStore`s, fixture kernel configs and this machine.

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

/// The one place that calls the API: the status and mismatch kinds `key` gets
/// on a kernel built as `build` says.
fn check_built(kb_text: &str, st: &MemStore, child: Option<&MemStore>, build: &BuildConfig, key: &str, status: Status, kinds: &[MismatchKind]) -> LiveEntry {
    let kb = kb(kb_text);
    let report = validate_live_with(&kb, st, child.map(|c| c as &dyn SysctlStore), build);
    let e = report.entries.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("{key} not in report")).clone();
    assert_eq!(e.status, status, "{e:#?}");
    assert_eq!(e.mismatches.iter().map(|m| m.kind).collect::<Vec<_>>(), kinds, "{e:#?}");
    e
}

/// [`check_built`] on a kernel whose config is unknown.
fn check(kb_text: &str, st: &MemStore, child: Option<&MemStore>, key: &str, status: Status, kinds: &[MismatchKind]) -> LiveEntry {
    check_built(kb_text, st, child, &BuildConfig::Unknown("no config in this test".into()), key, status, kinds)
}

/// A kernel config read the way the validator reads the machine's: `config`
/// gzipped into `<root>/proc/config.gz` of a fresh directory.
fn built(config: &str) -> BuildConfig {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(config.as_bytes()).unwrap();
    std::fs::write(dir.path().join("proc/config.gz"), gz.finish().unwrap()).unwrap();
    let build = kconfig::running_build(dir.path(), Some("6.18.44-fc-v669"));
    assert!(matches!(build, BuildConfig::Known(_)), "{build:?}");
    build
}

const FLOW_LIMIT: &str = "key = \"net.core.flow_limit_table_len\"\nrequires_config = [\"CONFIG_NET_FLOW_LIMIT\"]";

#[test]
fn flow_limit_absent_on_a_kernel_built_without_net_flow_limit_is_absent_as_expected() {
    let build = built("CONFIG_RPS=y\n# CONFIG_NET_FLOW_LIMIT is not set\n");
    let e = check_built(&param(FLOW_LIMIT), &store(&[]), None, &build, "net.core.flow_limit_table_len", Status::AbsentAsExpected, &[]);
    let why = e.why_absent.unwrap();
    assert!(why.starts_with("kernel built without CONFIG_NET_FLOW_LIMIT (") && why.ends_with("proc/config.gz)"), "{why}");
    assert_eq!(e.expected_present, Some(false));
    // A hidden option is not written at all when its dependencies are off: also "without".
    let build = built("# CONFIG_RPS is not set\n");
    check_built(&param(FLOW_LIMIT), &store(&[]), None, &build, "net.core.flow_limit_table_len", Status::AbsentAsExpected, &[]);
}

#[test]
fn option_built_in_but_key_absent_is_a_mismatch() {
    let build = built("CONFIG_NET_FLOW_LIMIT=y\n");
    let e = check_built(&param(FLOW_LIMIT), &store(&[]), None, &build, "net.core.flow_limit_table_len", Status::Mismatch, &[MismatchKind::Missing]);
    let m = &e.mismatches[0].message;
    assert!(m.contains("built with CONFIG_NET_FLOW_LIMIT") && m.contains("proc/config.gz") && m.contains("requires_config"), "{m}");
    // Present as the config says: ok.
    check_built(&param(FLOW_LIMIT), &store(&[("net.core.flow_limit_table_len", "4096")]), None, &build, "net.core.flow_limit_table_len", Status::Ok, &[]);
}

#[test]
fn key_present_although_its_option_is_not_set_is_a_mismatch() {
    let build = built("# CONFIG_NET_FLOW_LIMIT is not set\n");
    let st = store(&[("net.core.flow_limit_table_len", "4096")]);
    let e = check_built(&param(FLOW_LIMIT), &st, None, &build, "net.core.flow_limit_table_len", Status::Mismatch, &[MismatchKind::PresentWithoutConfig]);
    assert!(e.mismatches[0].message.contains("correct it"), "{e:#?}");
}

#[test]
fn without_a_kernel_config_a_build_dependent_absence_is_cannot_tell() {
    let dir = tempfile::tempdir().unwrap();
    let build = kconfig::running_build(dir.path(), Some("6.18.44-fc-v669"));
    let e = check_built(&param(FLOW_LIMIT), &store(&[]), None, &build, "net.core.flow_limit_table_len", Status::CannotTell, &[]);
    assert!(e.cannot_tell[0].contains("needs CONFIG_NET_FLOW_LIMIT; no kernel config found"), "{e:#?}");
    assert_eq!(e.expected_present, None);
    let report = validate_live_with(&kb(&param(FLOW_LIMIT)), &store(&[]), None, &build);
    assert!(report.is_consistent());
    assert_eq!(report.summary().cannot_tell, 1);
}

#[test]
fn module_option_is_cannot_tell_while_the_module_may_be_unloaded() {
    let text = param("key = \"net.netfilter.nf_conntrack_max\"\nrequires_config = [\"CONFIG_NF_CONNTRACK\"]");
    let build = built("CONFIG_NF_CONNTRACK=m\n");
    let e = check_built(&text, &store(&[]), None, &build, "net.netfilter.nf_conntrack_max", Status::CannotTell, &[]);
    assert!(e.cannot_tell[0].contains("CONFIG_NF_CONNTRACK built as a module (=m in"), "{e:#?}");
    // Loaded: the key is there and is judged like any other.
    check_built(&text, &store(&[("net.netfilter.nf_conntrack_max", "65536")]), None, &build, "net.netfilter.nf_conntrack_max", Status::Ok, &[]);
}

#[test]
fn every_required_option_must_be_set() {
    let text = param("key = \"kernel.timer_migration\"\nrequires_config = [\"CONFIG_SMP\", \"CONFIG_NO_HZ_COMMON\"]");
    let e = check_built(&text, &store(&[]), None, &built("CONFIG_SMP=y\n"), "kernel.timer_migration", Status::AbsentAsExpected, &[]);
    assert!(e.why_absent.unwrap().contains("without CONFIG_NO_HZ_COMMON ("));
    check_built(&text, &store(&[]), None, &built("CONFIG_SMP=y\nCONFIG_NO_HZ_COMMON=y\n"), "kernel.timer_migration", Status::Mismatch, &[MismatchKind::Missing]);
}

#[test]
fn built_in_but_needing_a_boot_time_condition_is_cannot_tell() {
    // Yama built in but not in the boot's LSM list: no config shows that, the entry's prose says so.
    let text = param("key = \"kernel.yama.ptrace_scope\"\nrequires_config = [\"CONFIG_SECURITY_YAMA\"]\nconfig = \"the Yama LSM enabled at boot\"");
    let e = check_built(&text, &store(&[]), None, &built("CONFIG_SECURITY_YAMA=y\n"), "kernel.yama.ptrace_scope", Status::CannotTell, &[]);
    assert!(e.cannot_tell[0].contains("also needs the Yama LSM enabled at boot"), "{e:#?}");
    check_built(&text, &store(&[]), None, &built("# CONFIG_SECURITY_YAMA is not set\n"), "kernel.yama.ptrace_scope", Status::AbsentAsExpected, &[]);
}

#[test]
fn removal_by_version_needs_no_config() {
    let text = param("key = \"kernel.sched_latency_ns\"\nremoved_in = \"5.13\"\nrequires_config = [\"CONFIG_SCHED_DEBUG\"]");
    let e = check_built(&text, &store(&[]), None, &built("CONFIG_SCHED_DEBUG=y\n"), "kernel.sched_latency_ns", Status::AbsentAsExpected, &[]);
    assert_eq!(e.why_absent.as_deref(), Some("removed in 5.13"));
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
    let text = param("key = \"kernel.sysrq\"\nrequires_config = [\"CONFIG_MAGIC_SYSRQ\"]");
    let e = check(&text, &store(&[]), None, "kernel.sysrq", Status::CannotTell, &[]);
    assert!(e.cannot_tell[0].contains("CONFIG_MAGIC_SYSRQ"), "{e:#?}");
    // Prose alone (a user's older KB file) still keeps an absence from failing.
    let text = param("key = \"kernel.sysrq\"\nconfig = \"CONFIG_MAGIC_SYSRQ\"");
    check(&text, &store(&[]), None, "kernel.sysrq", Status::CannotTell, &[]);
}

#[test]
fn removed_and_future_keys() {
    let text = param("key = \"kernel.sched_latency_ns\"\nremoved_in = \"5.13\"");
    check(&text, &store(&[]), None, "kernel.sched_latency_ns", Status::AbsentAsExpected, &[]);
    check(&text, &store(&[("kernel.sched_latency_ns", "6000000")]), None, "kernel.sched_latency_ns", Status::Mismatch, &[MismatchKind::PresentAfterRemoval]);
    let text = param("key = \"net.ipv4.tcp_new\"\nsince = \"7.2\"");
    check(&text, &store(&[]), None, "net.ipv4.tcp_new", Status::AbsentAsExpected, &[]);
    let e = check(&text, &store(&[("net.ipv4.tcp_new", "1")]), None, "net.ipv4.tcp_new", Status::CannotTell, &[]);
    assert!(e.cannot_tell[0].contains("backport"), "{e:#?}");
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
    check(&text, &st, None, "kernel.nmi_watchdog", Status::CannotTell, &[]);
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
/// exactly when the KB says it should on the running kernel and its build.
/// What cannot be judged (no config, a module, a boot-time condition) is
/// printed, not failed.
#[test]
fn embedded_kb_matches_this_kernel() {
    let kb = Kb::embedded().unwrap();
    let store = TreeStore::kernel();
    // The kernel's own config (/proc/config.gz or /boot/config-<release>) explains
    // build-dependent absences; without one they are "cannot tell", never a failure.
    let report = validate_live_with(&kb, &store, None, &build_config_for(&store));
    println!("build config: {}", report.build_config);
    for e in report.entries.iter().filter(|e| e.why_absent.is_some()) {
        println!("absent as expected {}: {}", e.key, e.why_absent.as_deref().unwrap_or_default());
    }
    for e in report.cannot_tell() {
        println!("cannot tell {}: {}", e.key, e.cannot_tell.join("; "));
    }
    let existence: Vec<String> = report
        .mismatches()
        .iter()
        .flat_map(|e| e.mismatches.iter())
        .filter(|m| matches!(m.kind, MismatchKind::Missing | MismatchKind::PresentAfterRemoval | MismatchKind::PresentWithoutConfig | MismatchKind::Unparseable))
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
