//! `semantos export` on real files: what each format says about the plan,
//! where a named TuneD profile lands, and flags that do not apply.

use crate::support::{run_in, text};
use std::path::Path;

/// A sandbox sysctl tree under `dir/tree` holding `values`.
fn tree(dir: &Path, values: &[(&str, &str)]) {
    for (k, v) in values {
        let f = dir.join("tree").join(k.replace('.', "/"));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, format!("{v}\n")).unwrap();
    }
}

/// `semantos export FORMAT --plan plan.conf` against the sandbox tree (no /proc).
fn export(dir: &Path, format: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["export", format, "--plan", "plan.conf", "--sysctl-root", "tree", "--proc-root", "no-proc"];
    args.extend_from_slice(extra);
    run_in(dir, &args)
}

fn set_up() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &[("net.core.somaxconn", "4096")]);
    std::fs::write(d.path().join("plan.conf"), "net.core.somaxconn = 8192\n").unwrap();
    d
}

#[test]
fn a_sysctl_d_export_of_a_sysctl_d_plan_claims_no_intent() {
    // Before: "# SemantOS plan from plan.conf (file:plan.conf, intent latency)": the loader's
    // default, not anything the plan or the user said.
    let d = set_up();
    let o = export(d.path(), "sysctl.d", &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("# SemantOS plan from plan.conf (file:plan.conf, no intent stated): 1 change(s)\n"), "{out}");
    assert!(!out.contains("intent latency"), "{out}");
    let o = export(d.path(), "sysctl.d", &["--intent", "throughput"]);
    assert!(text(&o).0.contains("intent throughput (from --intent)"), "{}", text(&o).0);
}

#[test]
fn export_tuned_name_names_the_profile_and_its_directory() {
    // Before: `--name` had no effect on `export tuned`.
    let d = set_up();
    std::fs::create_dir(d.path().join("tuned")).unwrap();
    let o = export(d.path(), "tuned", &["--name", "web-latency", "--out", "tuned"]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let conf = std::fs::read_to_string(d.path().join("tuned/web-latency/tuned.conf")).unwrap();
    assert!(conf.contains("\n[main]\nsummary=web-latency: SemantOS plan file:plan.conf\n"), "{conf}");
    assert!(conf.contains("tuned-adm profile web-latency"), "{conf}");
    assert!(conf.ends_with("[sysctl]\nnet.core.somaxconn=8192\n"), "{conf}");
}

#[test]
fn export_tuned_refuses_a_name_that_leaves_the_profile_directory() {
    let d = set_up();
    std::fs::create_dir(d.path().join("tuned")).unwrap();
    for bad in ["..", ".x", "a/b", "a b"] {
        let o = export(d.path(), "tuned", &["--name", bad, "--out", "tuned"]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(&format!("--name {bad:?} is invalid")) && err.contains("e.g. semantos-web"), "{err}");
    }
    assert_eq!(std::fs::read_dir(d.path().join("tuned")).unwrap().count(), 0, "nothing written");
    assert!(!d.path().join("tuned.conf").exists());
}

#[test]
fn a_flag_of_another_format_is_refused_and_nothing_is_written() {
    // Before: `export sysctl.d --name web` exited 0 and ignored the name.
    let d = set_up();
    for (format, flag, value, only) in [("sysctl.d", "--name", "web", "`export tuned` / `export nto`"), ("tuned", "--canary", "2", "`export ansible`"), ("ansible", "--priority", "3", "`export nto`")] {
        let o = export(d.path(), format, &[flag, value, "--out", "out.txt"]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{format} {flag}: {err}");
        assert!(err.contains(&format!("{flag} applies to {only} only, not to `export {format}`")), "{err}");
        assert!(!d.path().join("out.txt").exists());
    }
}
