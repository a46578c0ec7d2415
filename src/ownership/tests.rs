//! The readers over real files in a temporary tree laid out like `/`.

use super::*;
use std::path::Path;

/// A file under the fake root.
fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The one place that calls the API: the owner of `key` under `root` as `kind source=value`, and the shadowed lines.
fn check(root: &Path, key: &str) -> (Vec<String>, Vec<String>) {
    let r = owners(&Roots::at(root), &SemantosRecords::default(), &[key.to_string()]).unwrap();
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let owners = r.of(key).iter().map(|o| format!("{} {}={}", o.kind.name(), o.source.replace(&root.display().to_string(), ""), o.value.clone().unwrap_or_default())).collect();
    let shadows = r.of(key).iter().flat_map(|o| o.shadows.iter().map(|l| format!("{}:{}", rel(&l.file), l.line))).collect();
    (owners, shadows)
}

#[test]
fn the_same_file_name_in_etc_overrides_the_one_in_usr_lib() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "usr/lib/sysctl.d/50-net.conf", "net.core.somaxconn = 1024\n");
    put(d.path(), "etc/sysctl.d/50-net.conf", "# local\nnet.core.somaxconn = 2048\n");
    let (o, s) = check(d.path(), "net.core.somaxconn");
    assert_eq!(o, vec!["sysctl.d /etc/sysctl.d/50-net.conf:2=2048"]);
    // The /usr/lib file is not read at all: it does not even shadow.
    assert!(s.is_empty(), "{s:?}");
}

#[test]
fn a_later_file_name_wins_and_shadows_the_earlier_whatever_its_directory() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "etc/sysctl.d/10-a.conf", "vm.swappiness = 10\n");
    put(d.path(), "usr/lib/sysctl.d/90-b.conf", "vm.swappiness = 90\n");
    let (o, s) = check(d.path(), "vm.swappiness");
    assert_eq!(o, vec!["sysctl.d /usr/lib/sysctl.d/90-b.conf:1=90"]);
    assert_eq!(s, vec!["etc/sysctl.d/10-a.conf:1"]);
}

#[test]
fn sysctl_conf_is_read_after_every_sysctl_d_file() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "etc/sysctl.conf", "vm.swappiness = 1\n");
    put(d.path(), "etc/sysctl.d/99-zz.conf", "vm.swappiness = 99\n");
    // Debian's link to it is not read a second time in its lexical place.
    std::os::unix::fs::symlink("../sysctl.conf", d.path().join("etc/sysctl.d/99-sysctl.conf")).unwrap();
    let (o, s) = check(d.path(), "vm.swappiness");
    assert_eq!(o, vec!["sysctl.d /etc/sysctl.conf:1=1"]);
    assert_eq!(s, vec!["etc/sysctl.d/99-zz.conf:1"]);
}

#[test]
fn an_explicit_key_beats_a_later_glob_and_a_link_to_dev_null_masks_a_name() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "etc/sysctl.d/10-rp.conf", "net.ipv4.conf.eth0.rp_filter = 1\n");
    put(d.path(), "usr/lib/sysctl.d/50-default.conf", "-net.ipv4.conf.*.rp_filter = 2\nvm.swappiness = 5\n");
    let (o, s) = check(d.path(), "net.ipv4.conf.eth0.rp_filter");
    assert_eq!((o, s), (vec!["sysctl.d /etc/sysctl.d/10-rp.conf:1=1".to_string()], vec!["usr/lib/sysctl.d/50-default.conf:1".to_string()]));
    let (o, _) = check(d.path(), "net.ipv4.conf.lo.rp_filter");
    assert_eq!(o, vec!["sysctl.d /usr/lib/sysctl.d/50-default.conf:1=2"]);
    std::os::unix::fs::symlink("/dev/null", d.path().join("etc/sysctl.d/50-default.conf")).unwrap();
    assert_eq!(check(d.path(), "vm.swappiness").0, Vec::<String>::new());
}

#[test]
fn a_tuned_profile_and_its_include_chain_own_their_sysctl_keys() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "etc/tuned/active_profile", "my-web\n");
    put(d.path(), "usr/lib/tuned/throughput-performance/tuned.conf", "[main]\nsummary=t\n\n[sysctl]\nnet.core.somaxconn=2048\nvm.swappiness=10\n");
    put(d.path(), "etc/tuned/my-web/tuned.conf", "[main]\ninclude=throughput-performance\n\n[net]\ntype=sysctl\nnet.core.somaxconn=8192\n");
    let (o, s) = check(d.path(), "net.core.somaxconn");
    assert_eq!(o, vec!["tuned profile my-web (/etc/tuned/my-web/tuned.conf:6)=8192"]);
    assert_eq!(s, vec!["usr/lib/tuned/throughput-performance/tuned.conf:5"]);
    assert_eq!(check(d.path(), "vm.swappiness").0, vec!["tuned profile throughput-performance (/usr/lib/tuned/throughput-performance/tuned.conf:6)=10"]);
    // A loop in include= is reported, not followed for ever.
    put(d.path(), "usr/lib/tuned/throughput-performance/tuned.conf", "[main]\ninclude=my-web\n");
    let r = owners(&Roots::at(d.path()), &SemantosRecords::default(), &["vm.swappiness".into()]).unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("includes itself")), "{:?}", r.warnings);
}

#[test]
fn a_running_bpftune_owns_its_tuners_keys_and_kubelet_is_reported_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "proc/4242/comm", "bpftune\n");
    put(d.path(), "proc/77/comm", "bash\n");
    put(d.path(), "var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\nallowedUnsafeSysctls:\n  - net.core.somaxconn\n  - kernel.msg*\n");
    put(d.path(), "etc/kubernetes/manifests/web.yaml", "metadata:\n  name: web\nspec:\n  securityContext:\n    sysctls:\n      - name: net.ipv4.tcp_rmem\n        value: \"4096 87380 6291456\"\n");
    let r = owners(&Roots::at(d.path()), &SemantosRecords::default(), &["net.ipv4.tcp_rmem".into(), "net.core.somaxconn".into(), "kernel.msgmax".into()]).unwrap();
    let rmem: Vec<String> = r.of("net.ipv4.tcp_rmem").iter().map(|o| o.describe()).collect();
    assert!(rmem[0].starts_with("bpftune pid 4242 (tcp_buffer_tuner)"), "{rmem:?}");
    assert!(rmem[1].contains("static pod web") && rmem[1].contains("4096 87380 6291456"), "{rmem:?}");
    assert_eq!(r.foreign("net.ipv4.tcp_rmem").len(), 1, "only bpftune blocks");
    assert!(r.foreign("net.core.somaxconn").is_empty() && r.of("net.core.somaxconn")[0].kind == OwnerKind::Kubelet);
    assert!(r.of("kernel.msgmax")[0].source.ends_with("allowedUnsafeSysctls kernel.msg*"));
    assert!(r.refusal(&["net.core.somaxconn".into()]).is_none());
    let why = r.refusal(&["net.ipv4.tcp_rmem".into()]).unwrap();
    assert!(why.contains("net.ipv4.tcp_rmem: managed by bpftune pid 4242") && why.contains("--take-ownership"), "{why}");
    assert_eq!(r.conflicts().len(), 1);
}

#[test]
fn semantos_own_drop_in_and_runs_are_ours_not_a_conflict() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "etc/sysctl.d/99-semantos.conf", "# Written by semantos run apply-1-2\n\nvm.swappiness = 30\n");
    let ours = SemantosRecords {
        values: vec![Ours { key: "vm.swappiness".into(), value: "30".into(), run_id: "apply-1-2".into(), run_kind: "apply".into(), source: "b.json".into() }],
        dropins: vec![d.path().join("etc/sysctl.d/99-semantos.conf")],
    };
    let r = owners(&Roots::at(d.path()), &ours, &["vm.swappiness".into()]).unwrap();
    assert_eq!(r.of("vm.swappiness").iter().map(|o| o.kind).collect::<Vec<_>>(), vec![OwnerKind::Semantos, OwnerKind::Semantos]);
    assert!(r.refusal(&["vm.swappiness".into()]).is_none());
    assert!(owners(&Roots::at(d.path()), &ours, &["../etc".into()]).unwrap_err().to_string().contains("not a sysctl name"));
}
