//! The seed reproduction's artifacts are byte-identical to the recorded ones (issue 13, "done
//! when": behaviour unchanged by the reshape). `semantos --seed 7 --trials 20`, the seed's own
//! spelling, runs in a temp dir; its three artifacts are compared by MD5 with the sums recorded
//! when the seed's results were published. A change to any of them is a change of behaviour:
//! make it on purpose, and update the sum here in the same commit saying why.

use crate::support::{bin, text};
use std::path::Path;
use std::process::Command;

/// (artifact, MD5 of `semantos --seed 7 --trials 20`'s output).
const RECORDED: &[(&str, &str)] = &[
    ("experiments/results/summary.csv", "948767082d31db6a43c1ecb263fa3af3"),
    ("experiments/results/trials.csv", "78e688b1de21b8b5108880ad19af3e3a"),
    ("experiments/sandbox/sysctl.conf", "60003193851d2d7d162d3d0848c5345c"),
];

/// `md5sum FILE`'s sum (coreutils; no hashing crate is a dependency).
fn md5(file: &Path) -> String {
    let o = Command::new("md5sum").arg(file).output().expect("md5sum (coreutils)");
    assert!(o.status.success(), "md5sum {}: {}", file.display(), text(&o).1);
    text(&o).0.split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn the_seed_reproduction_writes_the_recorded_bytes() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(bin()).args(["--seed", "7", "--trials", "20"]).current_dir(d.path()).env_remove("SEMANTOS_FAULT").env_remove("SEMANTOS_STATE_DIR").output().unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let changed: Vec<String> = RECORDED
        .iter()
        .filter_map(|(rel, want)| {
            let got = md5(&d.path().join(rel));
            (got != *want).then(|| format!("{rel}: md5 {got}, recorded {want}"))
        })
        .collect();
    assert!(changed.is_empty(), "the reproduction's artifacts changed (a behaviour change; if intended, update RECORDED and say why):\n  {}", changed.join("\n  "));
}
