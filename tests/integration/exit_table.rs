//! The exit-code table (src/cli/exit.rs, printed by `--help` and the man pages) held row by row
//! on more than one command: 2 for a usage error or invalid input, 3 for a refusal by the
//! host's state before any write (needs root, lock held, an interrupted run, no backup), 4 for
//! a change applied and rolled back (an apply as a whole, never partly), 5 for a fleet left
//! partly restored, 1 for anything else.
//! Each case also runs under `--json` where running it twice changes nothing: the code stays
//! the same and the output is a versioned document (stdout) or error object (stderr).
//!
//! Sandbox trees and state directories in temp dirs; the fleet rows connect with the system
//! ssh client to a closed local port (nothing listens, nothing is touched). Nothing global
//! changes, so no case needs root except "needs root", which drops to `nobody` when it has it.

use crate::support::{bin, files_under, text};
use semantos::cli::exit::{FAILED, INVALID, OK, PARTIAL, REFUSED, ROLLED_BACK};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

const KEYS: &[(&str, &str)] = &[("net/core/somaxconn", "128"), ("vm/swappiness", "60"), ("vm/dirty_ratio", "20"), ("vm/dirty_background_ratio", "10")];

/// A temp dir with a sandbox tree, a plan for it, and an inventory of two hosts on a port
/// nothing listens on; every run gets `dir/state` as its state directory.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        for (k, v) in KEYS {
            let p = dir.path().join("tree").join(k);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("{v}\n")).unwrap();
        }
        std::fs::write(dir.path().join("plan.conf"), "net.core.somaxconn = 1024\nvm.swappiness = 10\n").unwrap();
        std::fs::write(dir.path().join("hosts.yaml"), "hosts:\n  - {name: web-1, address: 127.0.0.1, port: 1}\n  - {name: web-2, address: 127.0.0.1, port: 1}\n").unwrap();
        Sandbox { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).current_dir(self.path()).env_remove("SEMANTOS_FAULT").env_remove("NO_COLOR").env_remove("RUST_LOG").env("SEMANTOS_STATE_DIR", self.path().join("state"));
        c.envs(env.iter().copied());
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().expect("running semantos")
    }

    /// The sandbox tree's values, in `KEYS` order.
    fn tree(&self) -> Vec<String> {
        KEYS.iter().map(|(k, _)| std::fs::read_to_string(self.path().join("tree").join(k)).unwrap().trim().to_string()).collect()
    }

    fn originals(&self) -> Vec<String> {
        KEYS.iter().map(|(_, v)| v.to_string()).collect()
    }
}

/// An apply on the sandbox tree with no monitor window.
const APPLY: &[&str] = &["apply", "--sysctl-root", "tree", "--monitor-seconds", "0", "--interval", "0.05", "--plan", "plan.conf"];
/// The same apply in the seed's top-level spelling.
const SEED_APPLY: &[&str] = &["--applier", "sysctl", "--apply", "--sysctl-root", "tree", "--monitor-seconds", "0", "--interval", "0.05", "--plan", "plan.conf"];
/// A rollback of the sandbox tree.
const ROLLBACK: &[&str] = &["rollback", "--sysctl-root", "tree"];
/// A real rollout (ssh engine) of the plan to the inventory, isolated from the user's ssh config.
const ROLLOUT: &[&str] = &["rollout", "--inventory", "hosts.yaml", "--plan", "plan.conf", "--run", "--ssh-config", "/dev/null", "--connect-timeout", "5"];

/// Runs `args`, checks the exit code and that stderr says `says`; returns the output.
fn check(s: &Sandbox, what: &str, args: &[&str], env: &[(&str, &str)], want: i32, says: &str) -> Output {
    let o = s.run(args, env);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(want), "{what}: `semantos {}` exited {:?}, the table says {want}\n{out}\n{err}", args.join(" "), o.status.code());
    assert!(err.contains(says), "{what}: stderr does not say {says:?}:\n{err}");
    o
}

/// Runs `args` under `--json`: the same code, and a versioned document on stdout for a run that
/// did something (0, 4, 5) or one error object on stderr naming the code (1, 2, 3).
fn check_json(s: &Sandbox, what: &str, args: &[&str], env: &[(&str, &str)], want: i32) {
    let o = s.run(&[&["--json"], args].concat(), env);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(want), "{what} under --json: exited {:?}\n{out}\n{err}", o.status.code());
    if [OK, ROLLED_BACK, PARTIAL].contains(&want) {
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what} under --json: stdout is not one document ({e}):\n{out}"));
        assert!(v["schema_version"].as_u64().is_some_and(|n| n >= 1) && v["kind"].is_string(), "{what} under --json: unversioned document:\n{out}");
    } else {
        assert_eq!(out, "", "{what} under --json: stdout must stay empty on an error");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what} under --json: stderr must be one JSON object:\n{err}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{what} under --json: {e}:\n{err}"));
        assert_eq!((v["schema_version"].as_u64(), v["kind"].as_str(), v["exit_code"].as_i64()), (Some(1), Some("error"), Some(i64::from(want))), "{what}: {v}");
    }
}

/// Whether the system ssh client is there (the fleet rows need it, as `rollout` does).
fn have_ssh() -> bool {
    let ok = Command::new("ssh").arg("-V").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("SEMANTOS_REQUIRE_PRIVILEGED").as_deref() != Ok("1"), "no ssh client (scripts/setup/00-system.sh installs openssh-client)");
        eprintln!("skipping the fleet rows: no ssh client");
    }
    ok
}

/// A process holding `lock` with flock(1) until dropped (killed even when an assertion fails).
struct LockHolder(Child);

impl LockHolder {
    fn hold(lock: &Path) -> LockHolder {
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        // -o: the lock stays with flock itself (not with `sleep`), so killing flock releases it.
        let child = Command::new("flock").arg("-o").arg(lock).args(["sleep", "60"]).spawn().expect("flock (util-linux)");
        for _ in 0..100 {
            // Held once a non-blocking attempt fails.
            if !Command::new("flock").args(["-n", "-o"]).arg(lock).arg("true").status().is_ok_and(|s| s.success()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        LockHolder(child)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn usage_errors_and_invalid_input_exit_2_from_every_command_and_write_nothing() {
    let s = Sandbox::new();
    let before: Vec<PathBuf> = files_under(s.path());
    let cases: &[(&str, &[&str], &str)] = &[
        ("apply: a flag it does not take", &["apply", "--seed", "7"], "error"),
        ("rollback: a flag it does not take", &["rollback", "--plan", "plan.conf"], "error"),
        ("dry-run: an unknown flag", &["dry-run", "--no-such-flag"], "error"),
        ("diagnose: a missing telemetry file", &["diagnose", "--telemetry", "missing.csv"], "missing.csv"),
        ("apply: a missing plan", &["apply", "--sysctl-root", "tree", "--monitor-seconds", "0", "--plan", "missing.conf"], "missing.conf"),
        ("apply: a missing policy", &[APPLY, &["--policy", "missing.yaml"]].concat(), "missing.yaml"),
        ("dry-run: a missing plan", &["dry-run", "--sysctl-root", "tree", "--interval", "0.05", "--plan", "missing.conf"], "missing.conf"),
        ("export: a missing plan", &["export", "sysctl.d", "--sysctl-root", "tree", "--plan", "missing.conf"], "missing.conf"),
        ("rollout: a missing inventory", &["rollout", "--inventory", "missing.yaml", "--plan", "plan.conf"], "missing.yaml"),
        ("kb show: an unknown key", &["kb", "show", "vm.swapines"], "vm.swapines"),
        ("simulate: a flag it does not take", &["simulate", "--plan", "plan.conf"], "error"),
        ("the seed's applier: a reproduction flag", &["--applier", "sysctl", "--seed", "7"], "error"),
    ];
    for (what, args, says) in cases {
        check(&s, what, args, &[], INVALID, says);
        check_json(&s, what, args, &[], INVALID);
    }
    assert_eq!(files_under(s.path()), before, "an invalid command wrote a file");
    assert_eq!(s.tree(), s.originals());
}

#[test]
fn no_backup_and_lock_held_exit_3_from_apply_rollback_rollout_and_the_seed_spelling() {
    let s = Sandbox::new();
    // No backup: refused, and no state directory, lock or backup appears.
    for (what, args) in [("rollback", ROLLBACK), ("the seed's rollback", &["--applier", "sysctl", "--rollback", "--sysctl-root", "tree"][..])] {
        check(&s, &format!("{what} with no backup"), args, &[], REFUSED, "no backup at");
        check_json(&s, &format!("{what} with no backup"), args, &[], REFUSED);
        assert!(!s.path().join("state").exists(), "{what} with no backup created the state directory");
    }
    // Lock held by another process: refused before reading or writing anything. An apply first,
    // so that the rollback has a backup and reaches the lock.
    check(&s, "apply", APPLY, &[], OK, "");
    let applied = s.tree();
    let backup = std::fs::read(s.path().join("state/sysctl_backup.json")).unwrap();
    {
        let _held = LockHolder::hold(&s.path().join("state/semantos.lock"));
        // A plan with something left to change (an apply with nothing to do takes no lock).
        std::fs::write(s.path().join("more.conf"), "vm.dirty_ratio = 15\n").unwrap();
        let more = |args: &[&str]| -> Vec<String> { args.iter().map(|a| if *a == "plan.conf" { "more.conf" } else { a }.to_string()).collect() };
        for (what, args) in [("apply", more(APPLY)), ("the seed's apply", more(SEED_APPLY)), ("rollback", more(ROLLBACK))] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            check(&s, &format!("{what} with the lock held"), &args, &[], REFUSED, "holds the lock");
            check_json(&s, &format!("{what} with the lock held"), &args, &[], REFUSED);
        }
        assert_eq!(std::fs::read(s.path().join("state/sysctl_backup.json")).unwrap(), backup, "a refused run rewrote the backup");
        assert_eq!(s.tree(), applied, "a refused run wrote to the tree");
    }
    if have_ssh() {
        let _held = LockHolder::hold(&s.path().join("fleet.lock"));
        check(&s, "rollout with its state's lock held", &[ROLLOUT, &["--state", "fleet.json"]].concat(), &[], REFUSED, "holds the lock");
        assert!(!s.path().join("fleet.json").exists(), "a refused rollout wrote its state");
    }
    // Lock released: the same rollback goes through.
    check(&s, "rollback once the lock is free", ROLLBACK, &[], OK, "");
    assert_eq!(s.tree(), s.originals());
}

#[test]
fn needs_root_exits_3_from_apply_rollback_and_the_seed_spelling() {
    let s = Sandbox::new();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && Command::new("setpriv").arg("--version").output().is_err() {
        return eprintln!("skipping: running as root and no setpriv to drop to nobody");
    }
    // On the live /proc/sys: refused before anything is read, so nothing can change.
    let live: &[(&str, &[&str])] = &[("apply", &["apply", "--monitor-seconds", "0", "--plan", "plan.conf"]), ("rollback", &["rollback"]), ("the seed's apply", &["--applier", "sysctl", "--apply", "--monitor-seconds", "0", "--plan", "plan.conf"])];
    for (what, args) in live {
        for json in [false, true] {
            let args: Vec<&str> = if json { [&["--json"], *args].concat() } else { args.to_vec() };
            let o = if root {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(bin()).args(&args).current_dir(s.path()).env("SEMANTOS_STATE_DIR", s.path().join("nobody")).env_remove("SEMANTOS_FAULT");
                c.output().unwrap()
            } else {
                s.run(&args, &[])
            };
            let (_, err) = text(&o);
            assert_eq!(o.status.code(), Some(REFUSED), "{what} as a user: {err}");
            assert!(err.contains("needs root"), "{what} as a user: {err}");
            if json {
                let v: serde_json::Value = serde_json::from_str(err.trim()).unwrap_or_else(|e| panic!("{what}: {e}: {err}"));
                assert_eq!(v["exit_code"].as_i64(), Some(i64::from(REFUSED)), "{v}");
            }
        }
    }
}

/// A fault-injection build SIGKILLs itself after the first write: an interrupted run.
#[test]
#[cfg_attr(not(feature = "fault-injection"), ignore = "needs --features fault-injection")]
fn an_interrupted_run_exits_3_from_apply_and_the_seed_spelling_until_rolled_back() {
    let s = Sandbox::new();
    let o = s.run(APPLY, &[("SEMANTOS_FAULT", "kill-after#1")]);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(9), "{}", text(&o).1);
    let half = s.tree();
    for (what, args) in [("apply", APPLY), ("the seed's apply", SEED_APPLY)] {
        check(&s, &format!("{what} after an interrupted run"), args, &[], REFUSED, "interrupted");
        check_json(&s, &format!("{what} after an interrupted run"), args, &[], REFUSED);
        assert_eq!(s.tree(), half, "{what} wrote after refusing");
    }
    check(&s, "the rollback it asks for", ROLLBACK, &[], OK, "");
    assert_eq!(s.tree(), s.originals());
}

#[test]
fn a_change_rolled_back_exits_4_from_apply_the_seed_spelling_and_rollout() {
    let s = Sandbox::new();
    for (what, args) in [("apply", APPLY), ("the seed's apply", SEED_APPLY)] {
        let args = [args, &["--health-cmd", "exit 1"]].concat();
        check(&s, &format!("{what} whose health command fails"), &args, &[], ROLLED_BACK, "");
        assert_eq!(s.tree(), s.originals(), "{what}: not restored");
        check_json(&s, &format!("{what} whose health command fails"), &args, &[], ROLLED_BACK);
        assert_eq!(s.tree(), s.originals(), "{what} under --json: not restored");
    }
    // Two batches of one key, the second failing its health check: the whole run is rolled
    // back, the kept first batch too (apply never leaves a run partly applied: 4, never 5).
    std::fs::write(s.path().join("one.yaml"), "batch_size: 1\nwhitelist: [\"net.core.*\", \"vm.*\"]\n").unwrap();
    let second_fails = "test -e first-done || { touch first-done; exit 0; }; exit 1";
    check(&s, "apply whose second batch fails", &[APPLY, &["--policy", "one.yaml", "--health-cmd", second_fails]].concat(), &[], ROLLED_BACK, "");
    assert!(s.path().join("first-done").exists(), "the health command never passed a first batch");
    assert_eq!(s.tree(), s.originals(), "the first batch was kept");
    if have_ssh() {
        // The first wave's host cannot be reached: the wave fails and the rollout is rolled back.
        check(&s, "rollout whose first wave fails", &[ROLLOUT, &["--state", "fleet.json"]].concat(), &[], ROLLED_BACK, "UNREACHABLE");
        check_json(&s, "rollout whose first wave fails", &[ROLLOUT, &["--state", "fleet-json.json"]].concat(), &[], ROLLED_BACK);
    }
}

#[test]
fn a_fleet_left_partly_restored_exits_5() {
    if !have_ssh() {
        return;
    }
    let s = Sandbox::new();
    check(&s, "rollout whose first wave fails", &[ROLLOUT, &["--state", "fleet.json"]].concat(), &[], ROLLED_BACK, "");
    // Say the first host was touched (as a controller killed mid-apply leaves it): rolling the
    // fleet back must restore it, and cannot reach it.
    let path = s.path().join("fleet.json");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    state["hosts"][0]["touched"] = serde_json::Value::Bool(true);
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    let back = ["rollout", "--rollback-fleet", "--state", "fleet.json", "--ssh-config", "/dev/null", "--connect-timeout", "5"];
    let o = check(&s, "a fleet rollback that cannot reach a touched host", &back, &[], PARTIAL, "ROLLBACK-FAILED");
    assert!(text(&o).0.contains("NEEDS ATTENTION"), "{}", text(&o).0);
    // Re-running it, as the message says to, keeps saying so.
    check_json(&s, "the fleet rollback again", &back, &[], PARTIAL);
}

#[test]
#[cfg_attr(not(feature = "fault-injection"), ignore = "needs --features fault-injection")]
fn other_failures_exit_1_from_apply_rollback_and_simulate() {
    let s = Sandbox::new();
    // A write the kernel refuses: everything restored, but not by a check: exit 1.
    check(&s, "apply whose second write fails", APPLY, &[("SEMANTOS_FAULT", "write#2:EIO")], FAILED, "failed");
    assert_eq!(s.tree(), s.originals());
    check_json(&s, "apply whose second write fails", APPLY, &[("SEMANTOS_FAULT", "write#2:EIO")], FAILED);
    assert_eq!(s.tree(), s.originals());
    // A rollback that cannot finish keeps its journal for the next one.
    check(&s, "apply", APPLY, &[], OK, "");
    check(&s, "rollback whose first write fails", ROLLBACK, &[("SEMANTOS_FAULT", "write#1:EIO")], FAILED, "rollback incomplete");
    check(&s, "the next rollback", ROLLBACK, &[], OK, "");
    assert_eq!(s.tree(), s.originals());
    // An output path that cannot be created.
    std::fs::write(s.path().join("not-a-dir"), "x").unwrap();
    for args in [&["simulate", "--windows", "1", "--out", "not-a-dir/sim.csv"][..], &["collect", "--count", "2", "--interval", "0.05", "--out", "not-a-dir/t.csv"]] {
        check(&s, args[0], args, &[], FAILED, "not-a-dir");
        check_json(&s, args[0], args, &[], FAILED);
    }
}
