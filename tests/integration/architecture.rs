//! Architecture invariants from ARCHITECTURE.md, checked on the source.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    crate::support::files_under(dir).into_iter().filter(|p| p.extension().is_some_and(|x| x == "rs")).collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The reasoning engine sees findings, the KB and current values: never the simulator.
#[test]
fn reasoning_imports_nothing_from_sim() {
    for f in rust_files(&src().join("reasoning")) {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            assert!(!code.contains("sim::") && !code.contains("crate::sim"), "{}:{}: reasoning must not use the simulator: {line}", f.display(), i + 1);
        }
    }
}

/// Only the apply path writes to a sysctl store (stores themselves forward writes).
#[test]
fn only_apply_writes_to_a_sysctl_store() {
    let allowed = [src().join("apply"), src().join("sysctl")];
    for f in rust_files(&src()) {
        if allowed.iter().any(|a| f.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            // A store write is `<expr>.write(&key, &value)`: two arguments, the first a key.
            let suspicious = code.contains(".write(&") && code.contains(", &") && !code.contains("write_atomic");
            assert!(!suspicious, "{}:{}: only src/apply may write to a sysctl store: {line}", f.display(), i + 1);
        }
    }
}

/// The guardrails and the reasoning engine do no I/O: no std::fs, no process, no clock.
#[test]
fn pure_stages_do_no_io() {
    for dir in ["reasoning", "safety"] {
        for f in rust_files(&src().join(dir)) {
            if f.ends_with("plan.rs") {
                // Plan files are loaded here (Plan::load); the rest of the module stays pure.
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let body = text.split("#[cfg(test)]").next().unwrap();
            for bad in ["std::fs", "std::process", "SystemTime", "Instant::now", "thread_rng", "rand::"] {
                assert!(!body.contains(bad), "{}: a pure stage uses {bad}", f.display());
            }
        }
    }
}
