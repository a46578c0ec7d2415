//! Transaction tests on in-memory stores with injected faults: every
//! failure position restores the store; every message names key, value and
//! errno.

use super::*;
use crate::kb::Kb;
use crate::sysctl::store::{Fault, FaultyStore, MemStore};
use crate::sysctl::{SysctlKey, SysctlStore, Value};
use std::collections::BTreeMap;

fn k(s: &str) -> SysctlKey {
    SysctlKey::parse(s).unwrap()
}

fn originals() -> Vec<(SysctlKey, Value)> {
    vec![
        (k("vm.swappiness"), Value::int(60)),
        (k("vm.dirty_ratio"), Value::int(20)),
        (k("vm.dirty_background_ratio"), Value::int(10)),
        (k("vm.dirty_bytes"), Value::int(0)),
        (k("net.core.somaxconn"), Value::int(128)),
    ]
}

fn writes() -> Vec<(SysctlKey, Value)> {
    vec![(k("vm.swappiness"), Value::int(10)), (k("vm.dirty_ratio"), Value::int(10)), (k("net.core.somaxconn"), Value::int(1024))]
}

fn host() -> HostIdentity {
    HostIdentity { hostname: "h".into(), boot_id: "b1".into(), kernel_release: "6.18".into() }
}

fn opts(dir: &std::path::Path) -> ApplyOptions {
    ApplyOptions { paths: Paths::beside(&dir.join("backup/sysctl_backup.json")), batch_size: 2, on_regression: OnRegression::RollbackAll, persist: None, run_id: "t".into(), now_s: 1, force: false, rollout_id: None }
}

fn state(store: &dyn SysctlStore) -> BTreeMap<String, String> {
    store.list().unwrap().into_iter().map(|key| (key.to_string(), store.read(&key).unwrap().to_string())).collect()
}

#[test]
fn commit_then_rollback_restores_and_second_rollback_is_a_noop() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    let store = MemStore::new(originals());
    let before = state(&store);
    let o = opts(d.path());
    let r = apply(&store, &kb, &writes(), serde_json::json!({}), &host(), &o, None, &AuditLog::to(d.path().join("audit.jsonl"))).unwrap();
    assert_eq!(r.outcome, Outcome::Committed);
    assert_eq!(store.read(&k("net.core.somaxconn")).unwrap().as_str(), "1024");
    assert!(!o.paths.journal.exists(), "journal removed after commit");
    let rb = rollback(&store, &kb, &o.paths, &host(), false, "r", 2, &AuditLog::none()).unwrap();
    assert_eq!(rb.restored.len(), 3);
    assert_eq!(state(&store), before);
    let again = rollback(&store, &kb, &o.paths, &host(), false, "r2", 3, &AuditLog::none()).unwrap();
    assert!(again.already_restored);
    let audit = std::fs::read_to_string(d.path().join("audit.jsonl")).unwrap();
    assert!(audit.lines().count() >= 5 && audit.contains("\"event\":\"write\""));
}

#[test]
fn a_failing_write_at_every_position_restores_everything() {
    let kb = Kb::embedded().unwrap();
    for errno in ["EINVAL", "EPERM", "EIO"] {
        for nth in 1..=3 {
            let d = tempfile::tempdir().unwrap();
            let mem = MemStore::new(originals());
            let before = state(&mem);
            let store = FaultyStore::new(&mem, vec![Fault::parse(&format!("write#{nth}:{errno}")).unwrap()]);
            let err = apply(&store, &kb, &writes(), serde_json::json!({}), &host(), &opts(d.path()), None, &AuditLog::none()).unwrap_err();
            let msg = format!("{err:#}");
            let (key, value) = &writes()[nth - 1];
            assert!(msg.contains(&format!("writing {key} = {value} failed")) && msg.contains(errno), "{msg}");
            assert!(msg.contains("restored"), "{msg}");
            assert_eq!(state(&mem), before, "{errno} at write {nth}");
        }
    }
}

#[test]
fn read_back_mismatch_restores_everything() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    let mem = MemStore::new(originals());
    let before = state(&mem);
    let store = FaultyStore::new(&mem, vec![Fault::Mismatch { key: k("vm.dirty_ratio"), value: Value::int(15) }]);
    let err = apply(&store, &kb, &writes(), serde_json::json!({}), &host(), &opts(d.path()), None, &AuditLog::none()).unwrap_err();
    assert!(format!("{err:#}").contains("vm.dirty_ratio: wrote \"10\" but read back \"15\""), "{err:#}");
    assert_eq!(state(&mem), before);
}

#[test]
fn unwritable_backup_location_writes_nothing() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    let store = MemStore::new(originals());
    let before = state(&store);
    let mut o = opts(d.path());
    // The backup's directory is a regular file: it cannot be created (this holds even for root).
    std::fs::write(d.path().join("not-a-dir"), "x").unwrap();
    o.paths.backup = d.path().join("not-a-dir/sysctl_backup.json");
    o.paths.journal = d.path().join("j.journal");
    let err = apply(&store, &kb, &writes(), serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap_err();
    assert!(format!("{err:#}").contains("nothing was written"), "{err:#}");
    assert_eq!(state(&store), before);
}

struct Scripted(Vec<Health>);
impl Monitor for Scripted {
    fn after_batch(&mut self, index: usize, _keys: &[String]) -> anyhow::Result<Health> {
        Ok(self.0[index].clone())
    }
}

#[test]
fn monitor_regression_rolls_back_the_batch_or_everything() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    let store = MemStore::new(originals());
    let mut o = opts(d.path());
    o.on_regression = OnRegression::RollbackBatch;
    let mut m = Scripted(vec![Health::Healthy("ok".into()), Health::Regressed("web p95 +40%".into())]);
    let r = apply(&store, &kb, &writes(), serde_json::json!({}), &host(), &o, Some(&mut m), &AuditLog::none()).unwrap();
    assert_eq!(r.outcome, Outcome::PartlyCommitted);
    assert_eq!(store.read(&k("vm.swappiness")).unwrap().as_str(), "10");
    assert_eq!(store.read(&k("net.core.somaxconn")).unwrap().as_str(), "128");

    let d = tempfile::tempdir().unwrap();
    let store = MemStore::new(originals());
    let before = state(&store);
    let mut m = Scripted(vec![Health::Healthy("ok".into()), Health::Regressed("web p95 +40%".into())]);
    let r = apply(&store, &kb, &writes(), serde_json::json!({}), &host(), &opts(d.path()), Some(&mut m), &AuditLog::none()).unwrap();
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(state(&store), before);
}

#[test]
fn exclusive_pair_is_restored_through_the_nonzero_member() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    // A store that zeroes dirty_ratio when dirty_bytes is written and vice versa, as the kernel does.
    struct Pair(MemStore);
    impl SysctlStore for Pair {
        fn describe(&self) -> String { "pair".into() }
        fn read(&self, key: &SysctlKey) -> Result<Value, crate::sysctl::StoreError> { self.0.read(key) }
        fn write(&self, token: &super::token::WriteToken, key: &SysctlKey, value: &Value) -> Result<(), crate::sysctl::StoreError> {
            let name = key.to_string();
            if name == "vm.dirty_bytes" && value.as_str() == "0" {
                return Err(crate::sysctl::StoreError::Io { key: key.clone(), op: "write", path: key.rel_path(), source: std::io::Error::from_raw_os_error(libc::EINVAL) });
            }
            self.0.write(token, key, value)?;
            let other = if name == "vm.dirty_bytes" { "vm.dirty_ratio" } else if name == "vm.dirty_ratio" { "vm.dirty_bytes" } else { return Ok(()) };
            self.0.write(token, &k(other), &Value::int(0))
        }
        fn exists(&self, key: &SysctlKey) -> bool { self.0.exists(key) }
        fn writable(&self, key: &SysctlKey) -> bool { self.0.writable(key) }
        fn list(&self) -> Result<Vec<SysctlKey>, crate::sysctl::StoreError> { self.0.list() }
    }
    let store = Pair(MemStore::new(originals()));
    let before = state(&store);
    let o = opts(d.path());
    apply(&store, &kb, &[(k("vm.dirty_bytes"), Value::int(268435456))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    assert_eq!(store.read(&k("vm.dirty_ratio")).unwrap().as_str(), "0");
    rollback(&store, &kb, &o.paths, &host(), false, "r", 2, &AuditLog::none()).unwrap();
    assert_eq!(state(&store), before);
}

#[test]
fn second_apply_keeps_the_first_originals_and_foreign_backups_are_refused() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    let store = MemStore::new(originals());
    let before = state(&store);
    let o = opts(d.path());
    apply(&store, &kb, &[(k("vm.swappiness"), Value::int(30))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    apply(&store, &kb, &[(k("vm.swappiness"), Value::int(10))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    let other_boot = HostIdentity { boot_id: "b2".into(), ..host() };
    let e = rollback(&store, &kb, &o.paths, &other_boot, false, "r", 2, &AuditLog::none()).unwrap_err();
    assert!(e.to_string().contains("boot b1 and this is boot b2"), "{e}");
    rollback(&store, &kb, &o.paths, &other_boot, true, "r", 2, &AuditLog::none()).unwrap();
    assert_eq!(state(&store), before);
}

/// An apply that fails or regresses undoes its own writes only: a committed earlier change on
/// the same key stays, and the backup still rolls both back to the values before the first.
#[test]
fn a_failed_later_apply_undoes_only_itself() {
    let kb = Kb::embedded().unwrap();
    let somaxconn = |s: &dyn SysctlStore| s.read(&k("net.core.somaxconn")).unwrap().to_string();
    let second = [(k("net.core.somaxconn"), Value::int(2048)), (k("vm.swappiness"), Value::int(10))];
    for how in ["write fails", "monitor regresses"] {
        let d = tempfile::tempdir().unwrap();
        let mem = MemStore::new(originals());
        let before = state(&mem);
        let o = opts(d.path());
        apply(&mem, &kb, &[(k("net.core.somaxconn"), Value::int(1024))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
        let after_first = state(&mem);
        match how {
            "write fails" => {
                let store = FaultyStore::new(&mem, vec![Fault::parse("write#2:EIO").unwrap()]);
                let e = apply(&store, &kb, &second, serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap_err();
                assert!(format!("{e:#}").contains("restored"), "{e:#}");
            }
            _ => {
                let mut m = Scripted(vec![Health::Regressed("p95 +40%".into())]);
                let r = apply(&mem, &kb, &second, serde_json::json!({}), &host(), &o, Some(&mut m), &AuditLog::none()).unwrap();
                assert_eq!(r.outcome, Outcome::RolledBack);
                assert_eq!(r.applied[0].from.as_deref(), Some("1024"), "`from` is what this run found");
            }
        }
        assert_eq!(state(&mem), after_first, "{how}: the first apply's change was undone too");
        assert_eq!(somaxconn(&mem), "1024");
        let b = Backup::load(&o.paths.backup).unwrap();
        assert_eq!((b.state, b.originals["net.core.somaxconn"].as_deref()), (super::backup::BackupState::Committed, Some("128")), "{how}");
        rollback(&mem, &kb, &o.paths, &host(), false, "r", 2, &AuditLog::none()).unwrap();
        assert_eq!(state(&mem), before, "{how}");
    }
}

/// A valid backup of `vm.swappiness` (committed) in JSON, with `originals` given.
fn backup_json(schema: u32, originals: serde_json::Value) -> String {
    serde_json::json!({
        "schema_version": schema, "run_id": "old", "created_at": 1,
        "host": { "hostname": "h", "boot_id": "b1", "kernel_release": "6.18" },
        "store": "mem", "originals": originals, "state": "committed", "plan": {}
    })
    .to_string()
}

#[test]
fn a_corrupted_backup_is_refused_before_anything_starts() {
    use std::os::unix::fs::PermissionsExt;
    let kb = Kb::embedded().unwrap();
    let good = backup_json(1, serde_json::json!({ "vm.swappiness": "60" }));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let cases: Vec<(&str, String, &str)> = vec![
        ("bad JSON", "{\"schema_version\": 1, ]".into(), "not valid JSON"),
        ("truncated", good[..good.len() / 2].to_string(), "not valid JSON"),
        ("empty", String::new(), "empty (0 bytes)"),
        ("bad key", backup_json(1, serde_json::json!({ "../../../etc/shadow": "x" })), "is not a valid sysctl name"),
        ("bad value", backup_json(1, serde_json::json!({ "vm.swappiness": "60\nkernel.panic = 1" })), "a newline"),
        ("wrong schema_version", backup_json(9, serde_json::json!({ "vm.swappiness": "60" })), "schema_version 9 is not supported"),
        ("symlink", good.clone(), "symbolic link"),
        ("writable by others", good.clone(), "other users may write it"),
        ("foreign owner", good.clone(), "owned by uid 65534"),
    ];
    for (case, text, defect) in cases {
        if case == "foreign owner" && !root {
            continue;
        }
        let d = tempfile::tempdir().unwrap();
        let o = opts(d.path());
        std::fs::create_dir_all(o.paths.backup.parent().unwrap()).unwrap();
        let file = if case == "symlink" { d.path().join("elsewhere.json") } else { o.paths.backup.clone() };
        std::fs::write(&file, &text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(if case == "writable by others" { 0o666 } else { 0o600 })).unwrap();
        if case == "symlink" {
            std::os::unix::fs::symlink(&file, &o.paths.backup).unwrap();
        }
        if case == "foreign owner" {
            std::os::unix::fs::lchown(&file, Some(65534), Some(65534)).unwrap();
        }
        let mem = MemStore::new(originals());
        mem.write(&super::token::WriteToken::new(), &k("vm.swappiness"), &Value::int(10)).unwrap();
        let before = state(&mem);
        let rb = rollback(&mem, &kb, &o.paths, &host(), true, "r", 2, &AuditLog::none()).map(|_| ()).unwrap_err();
        let ap = apply(&mem, &kb, &writes(), serde_json::json!({}), &host(), &o, None, &AuditLog::none()).map(|_| ()).unwrap_err();
        for (what, e) in [("rollback", rb), ("apply", ap)] {
            let msg = format!("{e:#}");
            assert!(msg.contains(&o.paths.backup.display().to_string()) && msg.contains(defect), "{case}, {what}: {msg}");
            assert!(msg.contains("Nothing was started") && msg.contains(".damaged"), "{case}, {what}: says how to recover: {msg}");
            assert!(!o.paths.journal.exists(), "{case}, {what}: a journal was begun");
            assert_eq!(state(&mem), before, "{case}, {what}: something was written");
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text, "{case}: the damaged backup was replaced");
    }
}

/// Writes a committed v1 backup whose originals are `originals` (and `persisted_to`) at `o`'s backup path.
fn plant_backup(o: &ApplyOptions, originals: serde_json::Value, persisted_to: Option<&std::path::Path>) {
    let mut v: serde_json::Value = serde_json::from_str(&backup_json(1, originals)).unwrap();
    if let Some(p) = persisted_to {
        v["persisted_to"] = serde_json::json!(p.display().to_string());
    }
    std::fs::create_dir_all(o.paths.backup.parent().unwrap()).unwrap();
    super::files::write_atomic(&o.paths.backup, v.to_string().as_bytes(), 0o600).unwrap();
}

#[test]
fn rollback_refuses_a_backup_key_the_policy_forbids() {
    let kb = Kb::embedded().unwrap();
    let never_touch: crate::safety::Policy = serde_saphyr::from_str("never_touch: [\"vm.swappiness\"]\n").unwrap();
    let cases: Vec<(&str, serde_json::Value, Option<&crate::safety::Policy>, &str)> = vec![
        ("KB never", serde_json::json!({ "vm.dirty_ratio": "20", "kernel.randomize_va_space": "0" }), None, "kernel.randomize_va_space (original \"0\"), which is a never-touch key"),
        ("no KB entry", serde_json::json!({ "vm.dirty_ratio": "20", "dev.raid.speed_limit_min": "1" }), None, "dev.raid.speed_limit_min (original \"1\"), which has no knowledge-base entry"),
        ("policy never_touch", serde_json::json!({ "vm.dirty_ratio": "20", "vm.swappiness": "60" }), Some(&never_touch), "vm.swappiness (original \"60\"), which is on the policy's never_touch list"),
        ("outside the whitelist", serde_json::json!({ "vm.dirty_ratio": "20", "net.ipv4.tcp_fin_timeout": "60" }), Some(&never_touch), "which is not in the policy whitelist"),
    ];
    for (case, originals_json, policy, why) in cases {
        let d = tempfile::tempdir().unwrap();
        let o = opts(d.path());
        plant_backup(&o, originals_json, None);
        let mut init = originals();
        init.extend([(k("kernel.randomize_va_space"), Value::int(2)), (k("dev.raid.speed_limit_min"), Value::int(1000)), (k("net.ipv4.tcp_fin_timeout"), Value::int(30))]);
        let mem = MemStore::new(init);
        mem.write(&super::token::WriteToken::new(), &k("vm.dirty_ratio"), &Value::int(10)).unwrap();
        let before = state(&mem);
        let ro = RollbackOptions { force: false, run_id: "r".into(), now_s: 2, policy };
        let e = format!("{:#}", rollback_with(&mem, &kb, &o.paths, &host(), &ro, &AuditLog::none()).unwrap_err());
        assert!(e.contains(why) && e.contains("nothing was restored"), "{case}: {e}");
        assert_eq!(state(&mem), before, "{case}: something was written");
        assert!(!o.paths.journal.exists(), "{case}: a journal was begun");
    }
}

#[test]
fn rollback_leaves_a_foreign_persisted_to_file_alone() {
    let kb = Kb::embedded().unwrap();
    for case in ["foreign file", "symlink to one of ours", "ours"] {
        let d = tempfile::tempdir().unwrap();
        let o = opts(d.path());
        let ours = format!("{}{}\n\nvm.dirty_ratio = 10\n", super::dropin::HEADER_PREFIX, "old");
        let target = d.path().join("target.conf");
        let named = d.path().join("named.conf");
        match case {
            "foreign file" => std::fs::write(&named, "# the site's own settings\nvm.swappiness = 1\n").unwrap(),
            "symlink to one of ours" => {
                std::fs::write(&target, &ours).unwrap();
                std::os::unix::fs::symlink(&target, &named).unwrap();
            }
            _ => std::fs::write(&named, &ours).unwrap(),
        }
        plant_backup(&o, serde_json::json!({ "vm.dirty_ratio": "20" }), Some(&named));
        let mem = MemStore::new(originals());
        mem.write(&super::token::WriteToken::new(), &k("vm.dirty_ratio"), &Value::int(10)).unwrap();
        let r = rollback(&mem, &kb, &o.paths, &host(), false, "r", 2, &AuditLog::none()).unwrap();
        assert_eq!(mem.read(&k("vm.dirty_ratio")).unwrap().as_str(), "20", "{case}: values are restored either way");
        if case == "ours" {
            assert!(!named.exists() && r.removed_dropin.is_some() && r.dropin_left.is_none(), "{case}: {r:?}");
            continue;
        }
        assert!(std::fs::symlink_metadata(&named).is_ok(), "{case}: the file the backup named was deleted");
        assert!(r.removed_dropin.is_none(), "{case}: {r:?}");
        let why = r.dropin_left.unwrap_or_default();
        assert!(why.contains(&named.display().to_string()) && why.contains("left in place"), "{case}: {why}");
        if case.starts_with("symlink") {
            assert!(why.contains("symbolic link") && target.exists(), "{case}: {why}");
        }
    }
}

/// A monitor that runs `sabotage` after batch `at` (to break a file the run needs), or fails there.
struct Sabotage<F: FnMut()> {
    at: usize,
    sabotage: Option<F>,
}
impl<F: FnMut()> Monitor for Sabotage<F> {
    fn after_batch(&mut self, index: usize, _keys: &[String]) -> anyhow::Result<Health> {
        if index == self.at {
            match self.sabotage.as_mut() {
                Some(f) => f(),
                None => anyhow::bail!("health probe crashed: connection refused"),
            }
        }
        Ok(Health::Healthy("ok".into()))
    }
}

/// Applies `writes()` (two batches) with `o` and `monitor`; the error, after checking every value is back.
fn fails_and_restores(o: &ApplyOptions, monitor: &mut dyn Monitor) -> String {
    let kb = Kb::embedded().unwrap();
    let mem = MemStore::new(originals());
    let before = state(&mem);
    let e = format!("{:#}", apply(&mem, &kb, &writes(), serde_json::json!({}), &host(), o, Some(monitor), &AuditLog::none()).unwrap_err());
    assert_eq!(state(&mem), before, "the writes were left live: {e}");
    e
}

#[test]
fn a_monitor_error_restores_every_write() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(d.path());
    let e = fails_and_restores(&o, &mut Sabotage::<fn()> { at: 1, sabotage: None });
    assert!(e.contains("the monitor failed after batch 1") && e.contains("connection refused") && e.contains("was restored"), "{e}");
    assert!(!o.paths.journal.exists(), "the journal is closed once everything is restored");
    assert_eq!(Backup::load(&o.paths.backup).unwrap().state, super::backup::BackupState::Restored);
}

#[test]
fn a_journal_write_error_restores_every_write() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(d.path());
    let j = o.paths.journal.clone();
    // The journal becomes a directory: the next record fails (this holds even for root).
    let e = fails_and_restores(&o, &mut Sabotage { at: 0, sabotage: Some(|| {
        std::fs::remove_file(&j).unwrap();
        std::fs::create_dir(&j).unwrap();
    }) });
    assert!(e.contains(&j.display().to_string()) && e.contains("was restored"), "{e}");
}

#[test]
fn a_dropin_write_error_restores_every_write() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    let dropin = d.path().join("sysctl.d/99-semantos.conf");
    o.persist = Some(dropin.clone());
    // Something takes the drop-in's place during the run: writing it fails at commit.
    let e = fails_and_restores(&o, &mut Sabotage { at: 1, sabotage: Some(|| std::fs::create_dir_all(&dropin).unwrap()) });
    assert!(e.contains("writing drop-in") && e.contains(&dropin.display().to_string()), "{e}");
}

#[test]
fn a_backup_save_error_at_commit_restores_every_write_and_the_dropin() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    let dropin = d.path().join("99-semantos.conf");
    o.persist = Some(dropin.clone());
    let b = o.paths.backup.clone();
    let e = fails_and_restores(&o, &mut Sabotage { at: 1, sabotage: Some(|| {
        std::fs::remove_file(&b).unwrap();
        std::fs::create_dir(&b).unwrap();
    }) });
    assert!(!dropin.exists(), "the drop-in written at commit was left: {e}");
    assert!(e.contains("run `semantos rollback`"), "the backup could not be updated, so the journal is kept: {e}");
    assert!(o.paths.journal.exists(), "{e}");
}

/// (store, options with `--persist dropin`) for the persistence tests.
fn persisting(dir: &std::path::Path, dropin: &std::path::Path) -> (MemStore, ApplyOptions) {
    let mut o = opts(dir);
    o.persist = Some(dropin.to_path_buf());
    (MemStore::new(originals()), o)
}

fn dropin_values(path: &std::path::Path) -> Vec<(String, String)> {
    crate::sysctl::sysctld::parse_file(path).unwrap().into_iter().map(|a| (a.key.to_string(), a.value.to_string())).collect()
}

#[test]
fn persist_keeps_values_an_earlier_apply_persisted() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    let (p1, p2) = (d.path().join("99-semantos.conf"), d.path().join("98-other.conf"));
    let (mem, mut o) = persisting(d.path(), &p1);
    let before = state(&mem);
    apply(&mem, &kb, &[(k("vm.swappiness"), Value::int(30))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    apply(&mem, &kb, &[(k("net.core.somaxconn"), Value::int(1024))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    let both = vec![("net.core.somaxconn".to_string(), "1024".to_string()), ("vm.swappiness".to_string(), "30".to_string())];
    assert_eq!(dropin_values(&p1), both, "the first apply's persisted value was dropped");
    // A third apply persisting elsewhere: both files hold every committed value, and rollback removes both.
    o.persist = Some(p2.clone());
    apply(&mem, &kb, &[(k("vm.swappiness"), Value::int(20))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    let all = vec![("net.core.somaxconn".to_string(), "1024".to_string()), ("vm.swappiness".to_string(), "20".to_string())];
    assert_eq!((dropin_values(&p1), dropin_values(&p2)), (all.clone(), all));
    rollback(&mem, &kb, &o.paths, &host(), false, "r", 2, &AuditLog::none()).unwrap();
    assert_eq!(state(&mem), before);
    assert!(!p1.exists() && !p2.exists(), "a drop-in that did not exist before brings rolled-back values back at boot");
}

#[test]
fn rollback_puts_back_an_earlier_dropin_byte_for_byte() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("99-semantos.conf");
    let earlier = "# the site's file\r\nvm.swappiness=5\n\n  kernel.panic = 1  \n";
    std::fs::write(&p, earlier).unwrap();
    let (mem, o) = persisting(d.path(), &p);
    apply(&mem, &kb, &[(k("vm.swappiness"), Value::int(30))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    assert_eq!(dropin_values(&p), vec![("vm.swappiness".to_string(), "30".to_string())]);
    let r = rollback(&mem, &kb, &o.paths, &host(), false, "r", 2, &AuditLog::none()).unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), earlier, "{r:?}");
    assert_eq!(r.restored_dropins, vec![p.display().to_string()]);
}

#[test]
fn rollback_last_keeps_an_earlier_apply() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    let mem = MemStore::new(originals());
    let before = state(&mem);
    let mut o = opts(d.path());
    let ro = RollbackOptions { force: false, run_id: "r".into(), now_s: 2, policy: None };
    o.run_id = "a".into();
    apply(&mem, &kb, &[(k("vm.swappiness"), Value::int(30))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    let after_a = state(&mem);
    o.run_id = "b".into();
    apply(&mem, &kb, &[(k("net.core.somaxconn"), Value::int(1024))], serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    let r = rollback_layer(&mem, &kb, &o.paths, &host(), &super::rollback::Layer::Last, &ro, &AuditLog::none()).unwrap();
    assert_eq!(r.restored, vec![("net.core.somaxconn".to_string(), Some("1024".to_string()), "128".to_string())]);
    assert_eq!(state(&mem), after_a, "undoing the later apply undid the earlier one too");
    // Then everything: the earlier apply's original comes back.
    rollback(&mem, &kb, &o.paths, &host(), false, "r2", 3, &AuditLog::none()).unwrap();
    assert_eq!(state(&mem), before);
}

#[test]
fn undoing_a_middle_apply_whose_key_a_later_one_changed_is_refused_and_drift_is_reported() {
    let kb = Kb::embedded().unwrap();
    let d = tempfile::tempdir().unwrap();
    let mem = MemStore::new(originals());
    let mut o = opts(d.path());
    let ro = RollbackOptions { force: false, run_id: "r".into(), now_s: 2, policy: None };
    for (id, w) in [("a", vec![(k("vm.swappiness"), Value::int(30))]), ("b", vec![(k("net.core.somaxconn"), Value::int(1024))]), ("c", vec![(k("vm.swappiness"), Value::int(20))])] {
        o.run_id = id.into();
        apply(&mem, &kb, &w, serde_json::json!({}), &host(), &o, None, &AuditLog::none()).unwrap();
    }
    let middle = |id: &str| super::rollback::Layer::Run(id.into());
    let e = format!("{:#}", rollback_layer(&mem, &kb, &o.paths, &host(), &middle("a"), &ro, &AuditLog::none()).unwrap_err());
    assert!(e.contains("the later apply c changed vm.swappiness again"), "{e}");
    assert_eq!(mem.read(&k("vm.swappiness")).unwrap().as_str(), "20");
    // b's key is its own: it can go alone, unless someone changed it since.
    mem.write(&super::token::WriteToken::new(), &k("net.core.somaxconn"), &Value::int(4096)).unwrap();
    let e = format!("{:#}", rollback_layer(&mem, &kb, &o.paths, &host(), &middle("b"), &ro, &AuditLog::none()).unwrap_err());
    assert!(e.contains("net.core.somaxconn reads 4096 but apply b left 1024"), "{e}");
    let forced = RollbackOptions { force: true, ..ro.clone() };
    let r = rollback_layer(&mem, &kb, &o.paths, &host(), &middle("b"), &forced, &AuditLog::none()).unwrap();
    assert_eq!(r.drift.len(), 1, "{r:?}");
    assert_eq!((mem.read(&k("net.core.somaxconn")).unwrap().as_str(), mem.read(&k("vm.swappiness")).unwrap().as_str()), ("128", "20"));
}
