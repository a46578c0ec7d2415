//! Ownership on real files: a sysctl.d file and a simulated TuneD profile under a temporary root
//! (`--owners-root`) owning a key are reported by `status` / `verify` and block `apply` (exit 3,
//! nothing written) until `--take-ownership`, which is audited; `tune` refuses the same way; a
//! key changed behind SemantOS's back makes `verify` exit 1. Sandbox trees and temp state
//! directories, and a throwaway network namespace for a net.* key (root).

use crate::support::{self, run_in, text};
use std::path::PathBuf;
use std::process::Output;

/// A temp dir with a sandbox tree, a fake host root and a state directory.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        for (k, v) in [("net/core/somaxconn", "128"), ("vm/swappiness", "60")] {
            let p = dir.path().join("tree").join(k);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("{v}\n")).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        std::fs::write(dir.path().join("plan.conf"), "net.core.somaxconn = 1024\nvm.swappiness = 10\n").unwrap();
        Host { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A file under the fake host root.
    fn own(&self, rel: &str, text: &str) {
        let p = self.path("root").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn value(&self, k: &str) -> String {
        std::fs::read_to_string(self.path("tree").join(k)).unwrap().trim().to_string()
    }

    /// `semantos CMD` on the sandbox tree, with the state directory and the fake root.
    fn run(&self, cmd: &str, extra: &[&str]) -> Output {
        let (tree, state, root) = (self.path("tree"), self.path("state"), self.path("root"));
        let mut args = vec![cmd, "--sysctl-root", tree.to_str().unwrap(), "--state-dir", state.to_str().unwrap(), "--owners-root", root.to_str().unwrap()];
        args.extend(extra);
        run_in(self.dir.path(), &args)
    }

    fn apply(&self, extra: &[&str]) -> Output {
        self.run("apply", &[&["--plan", "plan.conf", "--monitor-seconds", "0", "--interval", "0.05"][..], extra].concat())
    }
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&text(o).0).unwrap_or_else(|e| panic!("{e}: {}", text(o).0))
}

fn audit_events(h: &Host, event: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(h.path("state/audit.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|v| v["event"] == event).collect()
}

#[test]
fn a_sysctl_d_file_owning_a_key_blocks_the_apply_until_take_ownership_which_is_audited() {
    let h = Host::new();
    h.own("etc/sysctl.d/60-local.conf", "# the site's own\nvm.swappiness = 60\n");
    let o = h.apply(&[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("vm.swappiness: managed by sysctl.d") && err.contains("etc/sysctl.d/60-local.conf:2") && err.contains("--take-ownership"), "{err}");
    assert_eq!((h.value("vm/swappiness"), h.value("net/core/somaxconn")), ("60".into(), "128".into()), "nothing written");
    assert!(!h.path("state/sysctl_backup.json").exists(), "no backup: the transaction never started");

    let o = h.apply(&["--take-ownership"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(h.value("vm/swappiness"), "10");
    let taken = audit_events(&h, "take-ownership");
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!((taken[0]["key"].as_str(), taken[0]["to"].as_str()), (Some("vm.swappiness"), Some("10")));
    assert!(taken[0]["detail"].as_str().unwrap().contains("60-local.conf:2"), "{taken:?}");

    // status: what SemantOS changed, by which run, live now.
    let o = h.run("status", &["--json"]);
    let s = json(&o);
    assert_eq!(s["kind"], "status");
    let rows = s["managed"].as_array().unwrap();
    let swap = rows.iter().find(|r| r["key"] == "vm.swappiness").unwrap();
    assert_eq!((swap["intended"].as_str(), swap["live"].as_str(), swap["run_kind"].as_str()), (Some("10"), Some("10"), Some("apply")));
    assert_eq!(swap["run_id"], taken[0]["run_id"], "the run that took ownership is the run that wrote it");
    assert!(swap["other_owners"][0].as_str().unwrap().contains("60-local.conf:2 (sets 60)"), "{swap}");

    // verify: the sysctl.d file would put 60 back at boot, so the key is not in agreement.
    let o = h.run("verify", &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("DIFFERS  vm.swappiness") && out.contains("60-local.conf:2 (sets 60) would put its own value back"), "{out}");
    assert!(!out.contains("net.core.somaxconn"), "a key that agrees is listed only with --verbose:\n{out}");
    let v = json(&h.run("verify", &["--json"]));
    assert_eq!(v["all_agree"], false);
    let k = v["keys"].as_array().unwrap().iter().find(|k| k["key"] == "net.core.somaxconn").unwrap();
    assert_eq!(k["in_agreement"], true, "{k}");
}

#[test]
fn a_tuned_profile_owning_a_key_is_reported_by_verify_and_blocks_the_apply() {
    let h = Host::new();
    h.own("etc/tuned/active_profile", "site-web\n");
    h.own("usr/lib/tuned/latency-performance/tuned.conf", "[main]\nsummary=x\n\n[sysctl]\nnet.core.somaxconn=2048\n");
    h.own("etc/tuned/site-web/tuned.conf", "[main]\ninclude=latency-performance\n\n[sysctl]\nvm.dirty_ratio=10\n");
    let o = h.apply(&[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("net.core.somaxconn: managed by tuned profile latency-performance") && err.contains("latency-performance/tuned.conf:5"), "{err}");
    assert_eq!(h.value("net/core/somaxconn"), "128", "nothing written");

    assert_eq!(h.apply(&["--take-ownership"]).status.code(), Some(0));
    let (out, _) = text(&h.run("status", &[]));
    assert!(out.contains("also managed by tuned profile latency-performance"), "{out}");
    let o = h.run("verify", &["--verbose"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("owner: tuned profile latency-performance") && out.contains("looked at: tuned active profile site-web"), "{out}");
    assert!(out.contains("ok       vm.swappiness"), "verbose lists the keys that agree too:\n{out}");
}

#[test]
fn verify_exits_0_when_every_key_agrees_and_1_when_one_is_changed_behind_our_back() {
    let h = Host::new();
    let o = h.run("verify", &[]);
    assert_eq!((o.status.code(), text(&o).0.contains("manages no key")), (Some(0), true), "{}", text(&o).0);
    assert_eq!(h.apply(&[]).status.code(), Some(0));
    let o = h.run("verify", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).0);
    assert!(text(&o).0.contains("All 2 managed key(s) agree."));
    std::fs::write(h.path("tree/net/core/somaxconn"), "4096\n").unwrap();
    let o = h.run("verify", &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("live is 4096, SemantOS applied 1024: changed since by someone else"), "{out}");
    let s = json(&h.run("status", &["--json"]));
    let k = s["managed"].as_array().unwrap().iter().find(|r| r["key"] == "net.core.somaxconn").unwrap().clone();
    assert_eq!((k["live"].as_str(), k["live_matches"].as_bool()), (Some("4096"), Some(false)));
}

#[test]
fn our_own_persist_drop_in_is_not_another_owner() {
    let h = Host::new();
    let dropin = h.path("root/etc/sysctl.d/99-semantos.conf");
    std::fs::create_dir_all(dropin.parent().unwrap()).unwrap();
    assert_eq!(h.apply(&["--persist", dropin.to_str().unwrap()]).status.code(), Some(0));
    std::fs::write(h.path("plan.conf"), "vm.swappiness = 20\n").unwrap();
    let o = h.apply(&[]);
    assert_eq!(o.status.code(), Some(0), "the drop-in SemantOS wrote does not block its next apply: {}", text(&o).1);
    assert_eq!(h.value("vm/swappiness"), "20");
}

#[test]
fn tune_refuses_a_key_another_owner_manages_before_any_write() {
    let h = Host::new();
    h.own("run/sysctl.d/10-x.conf", "net.core.somaxconn = 512\n");
    let o = h.run("tune", &["--objective-cmd", "echo 1", "--keys", "net.core.somaxconn", "--budget", "1"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("net.core.somaxconn: managed by sysctl.d") && err.contains("run/sysctl.d/10-x.conf:1"), "{err}");
    assert_eq!(h.value("net/core/somaxconn"), "128");
    let state = h.path("state");
    assert!(!state.exists() || !support::files_under(&state).iter().any(|p| p.ends_with("backup.json")), "no tune backup: nothing was written");
}

/// In a network namespace, on the real kernel's `/proc/sys`: the owner blocks, the override writes.
#[test]
fn a_net_key_in_a_namespace_is_refused_while_a_sysctl_d_file_owns_it() {
    if !support::privileged("a_net_key_in_a_namespace_is_refused_while_a_sysctl_d_file_owns_it") {
        return;
    }
    let h = Host::new();
    h.own("etc/sysctl.d/50-net.conf", "net.core.somaxconn = 4096\n");
    std::fs::write(h.path("plan.conf"), "net.core.somaxconn = 1024\n").unwrap();
    let ns = support::Netns::create("owners");
    let before = ns.read("net.core.somaxconn");
    let (state, root) = (h.path("state"), h.path("root"));
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["apply", "--plan", "plan.conf", "--monitor-seconds", "0", "--interval", "0.05", "--state-dir", state.to_str().unwrap(), "--owners-root", root.to_str().unwrap()];
        a.extend(extra);
        a.into_iter().map(String::from).collect()
    };
    let o = ns.semantos(h.dir.path(), &args(&[]).iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o).1);
    assert_eq!(ns.read("net.core.somaxconn"), before, "nothing written in the namespace");
    let o = ns.semantos(h.dir.path(), &args(&["--take-ownership"]).iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(ns.read("net.core.somaxconn"), "1024");
    assert_eq!(audit_events(&h, "take-ownership").len(), 1);
}
