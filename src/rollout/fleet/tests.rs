//! The controller against a deterministic double (`FakeFleet`): which
//! hosts are applied, gated, restored and never touched, wave by wave.

use super::*;
use crate::kb::Intent;
use crate::reasoning::Plan;
use crate::rollout::ssh::{RemoteSettings, SshSettings};
use crate::rollout::state::{EngineKind, STATE_SCHEMA_VERSION, Settings};
use crate::rollout::waves::WaveSpec;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Hosts whose values live in memory; failures are scripted per host.
#[derive(Default)]
struct FakeFleet {
    values: Mutex<BTreeMap<String, String>>,
    down: BTreeSet<String>,
    unhealthy: BTreeSet<String>,
    refuse: BTreeSet<String>,
    already: BTreeSet<String>,
    /// Hosts whose next apply finds an interrupted transaction (once).
    interrupted: Mutex<BTreeSet<String>>,
    calls: Mutex<Vec<String>>,
}

impl FakeFleet {
    fn call(&self, what: &str, h: &Host) {
        self.calls.lock().unwrap().push(format!("{what} {}", h.name));
    }
    fn calls_for(&self, host: &str) -> Vec<String> {
        self.calls.lock().unwrap().iter().filter(|c| c.ends_with(&format!(" {host}"))).cloned().collect()
    }
    fn value(&self, host: &str) -> String {
        self.values.lock().unwrap().get(host).cloned().unwrap_or_else(|| "128".into())
    }
    fn up(&self, h: &Host) -> Result<(), HostError> {
        if self.down.contains(&h.name) { Err(HostError::new(Failure::Unreachable, format!("{}: connection refused", h.name))) } else { Ok(()) }
    }
}

impl Remote for FakeFleet {
    fn prepare(&self, h: &Host) -> Result<(), HostError> {
        self.call("prepare", h);
        self.up(h)
    }
    fn read(&self, h: &Host, _keys: &[SysctlKey]) -> Result<Values, HostError> {
        self.up(h)?;
        Ok([("net.core.somaxconn".to_string(), Some(self.value(&h.name)))].into())
    }
    fn apply(&self, h: &Host, plan_json: &str) -> Result<Applied, HostError> {
        self.call("apply", h);
        self.up(h)?;
        if self.refuse.contains(&h.name) {
            return Err(HostError::new(Failure::Refused, format!("{}: guardrails said no", h.name)));
        }
        if self.interrupted.lock().unwrap().remove(&h.name) {
            return Err(HostError::new(Failure::Interrupted, format!("{}: the last run was interrupted", h.name)));
        }
        if self.already.contains(&h.name) {
            return Ok(Applied { unchanged: true, written: BTreeMap::new(), detail: "values already as planned".into() });
        }
        let plan: Plan = serde_json::from_str(plan_json).unwrap();
        let to = plan.changes[0].to.clone();
        self.values.lock().unwrap().insert(h.name.clone(), to.clone());
        Ok(Applied { unchanged: false, written: [("net.core.somaxconn".to_string(), to)].into(), detail: "ok".into() })
    }
    fn health(&self, h: &Host) -> Result<(), HostError> {
        self.call("health", h);
        if self.unhealthy.contains(&h.name) { Err(HostError::new(Failure::Unhealthy, format!("{}: health command exited 1", h.name))) } else { Ok(()) }
    }
    fn rollback(&self, h: &Host, fence: bool) -> Result<Restored, HostError> {
        self.call(if fence { "rollback+fence" } else { "rollback" }, h);
        self.up(h)?;
        self.values.lock().unwrap().insert(h.name.clone(), "128".into());
        Ok(Restored { restored: vec![("net.core.somaxconn".into(), Some("4096".into()), "128".into())], nothing_to_do: false })
    }
}

fn state(n: usize, dir: &std::path::Path) -> StateFile {
    let spec = WaveSpec::parse("1", "50%").unwrap();
    let mut plan = Plan::new("test", Intent::Latency);
    plan.changes.push(serde_json::from_value(serde_json::json!({"key": "net.core.somaxconn", "to": "4096", "rationale": ""})).unwrap());
    let mut hosts = Vec::new();
    for (w, r) in spec.waves(n).into_iter().enumerate() {
        for i in r {
            hosts.push(HostState { host: Host::new(format!("h{}", i + 1), format!("10.0.0.{}", i + 1)), wave: w, phase: Phase::Pending, touched: false, before: None, written: BTreeMap::new(), after: None, reason: String::new(), seconds: 0.0 });
        }
    }
    let remote = RemoteSettings { semantos: "semantos".into(), dir: "/var/lib/semantos".into(), copy_binary: None, policy: None, monitor_seconds: None, health_cmd: None, health_timeout_s: None, persist: None, interval: 2.0, host_timeout_s: 5.0, kb: BTreeMap::new() };
    let s = RolloutState {
        schema_version: STATE_SCHEMA_VERSION,
        run_id: "r".into(),
        created_at: 0,
        status: Status::Running,
        current_wave: None,
        failed_wave: None,
        plan,
        keys: vec!["net.core.somaxconn".into()],
        settings: Settings { engine: EngineKind::Ssh, waves: spec, parallel: 3, host_timeout_s: 5.0, ssh: SshSettings::default(), remote, ansible: None },
        hosts,
    };
    StateFile::create(&dir.join("state.json"), s).unwrap()
}

fn run(fleet: &FakeFleet, file: &StateFile) -> Status {
    Controller { remote: fleet, state: file, log: &|_| {} }.run().unwrap()
}

fn phases(file: &StateFile) -> Vec<(String, Phase)> {
    file.snapshot().hosts.iter().map(|h| (h.host.name.clone(), h.phase)).collect()
}

#[test]
fn clean_rollout_commits_every_wave() {
    let d = tempfile::tempdir().unwrap();
    let file = state(6, d.path());
    let fleet = FakeFleet::default();
    assert_eq!(run(&fleet, &file), Status::Passed);
    assert!(phases(&file).iter().all(|(_, p)| *p == Phase::Committed), "{:?}", phases(&file));
    let s = RolloutState::load(&d.path().join("state.json")).unwrap();
    assert_eq!(s.hosts[5].before.as_ref().unwrap()["net.core.somaxconn"].as_deref(), Some("128"));
    assert_eq!(s.hosts[5].after.as_ref().unwrap()["net.core.somaxconn"].as_deref(), Some("4096"));
}

#[test]
fn unreachable_host_in_wave_two_rolls_back_waves_one_and_two_only() {
    let d = tempfile::tempdir().unwrap();
    let file = state(6, d.path());
    // Waves: [h1], [h2, h3], [h4, h5, h6].
    let fleet = FakeFleet { down: ["h3".to_string()].into(), ..Default::default() };
    assert_eq!(run(&fleet, &file), Status::Failed);
    let p = phases(&file);
    assert_eq!(p[0].1, Phase::RolledBack);
    assert_eq!(p[1].1, Phase::RolledBack);
    assert_eq!(p[2].1, Phase::Unreachable);
    assert!(p[3..].iter().all(|(_, x)| *x == Phase::Untouched), "{p:?}");
    for h in ["h4", "h5", "h6"] {
        assert!(fleet.calls_for(h).is_empty(), "{h} was contacted: {:?}", fleet.calls_for(h));
        assert_eq!(fleet.value(h), "128");
    }
    // h3 was never touched: nothing to restore there.
    assert!(!fleet.calls_for("h3").iter().any(|c| c.starts_with("rollback")));
    assert_eq!(fleet.value("h1"), "128");
    assert_eq!(file.snapshot().failed_wave, Some(1));
    assert!(file.snapshot().hosts[0].reason.contains("wave 2 failed (h3: UNREACHABLE"), "{}", file.snapshot().hosts[0].reason);
}

#[test]
fn unhealthy_host_fails_its_wave_at_the_gate() {
    let d = tempfile::tempdir().unwrap();
    let file = state(6, d.path());
    let fleet = FakeFleet { unhealthy: ["h5".to_string()].into(), ..Default::default() };
    assert_eq!(run(&fleet, &file), Status::Failed);
    let p = phases(&file);
    assert_eq!(p[4], ("h5".to_string(), Phase::Failed));
    assert!(p.iter().filter(|(n, _)| n != "h5").all(|(_, x)| *x == Phase::RolledBack), "{p:?}");
    assert!((1..=6).all(|i| fleet.value(&format!("h{i}")) == "128"));
    assert!(file.snapshot().hosts[4].reason.contains("wave gate: h5: health command exited 1; restored on the host"), "{}", file.snapshot().hosts[4].reason);
}

#[test]
fn resume_finishes_an_interrupted_wave_and_keeps_the_first_before_values() {
    let d = tempfile::tempdir().unwrap();
    let file = state(6, d.path());
    // The controller died while h2 was applying: recorded as touched, value already written.
    file.update(|s| {
        s.hosts[0].phase = Phase::Committed;
        s.hosts[0].touched = true;
        s.hosts[1].phase = Phase::Applying;
        s.hosts[1].touched = true;
        s.hosts[1].before = Some([("net.core.somaxconn".to_string(), Some("128".to_string()))].into());
    })
    .unwrap();
    // Its host now reports the values as already planned.
    let fleet = FakeFleet { already: ["h2".to_string()].into(), ..Default::default() };
    fleet.values.lock().unwrap().insert("h2".into(), "4096".into());
    assert_eq!(run(&fleet, &file), Status::Passed);
    assert!(fleet.calls_for("h1").is_empty(), "a committed wave is not redone");
    let h2 = &file.snapshot().hosts[1];
    assert_eq!((h2.phase, h2.touched), (Phase::Committed, true), "the interrupted apply's change belongs to this rollout");
    assert_eq!(file.snapshot().hosts[1].before.as_ref().unwrap()["net.core.somaxconn"].as_deref(), Some("128"));
}

#[test]
fn fleet_rollback_restores_only_touched_hosts() {
    let d = tempfile::tempdir().unwrap();
    let file = state(6, d.path());
    file.update(|s| {
        for h in &mut s.hosts[..3] {
            h.phase = Phase::Committed;
            h.touched = true;
        }
    })
    .unwrap();
    let fleet = FakeFleet::default();
    let st = Controller { remote: &fleet, state: &file, log: &|_| {} }.rollback_fleet().unwrap();
    assert_eq!(st, Status::RolledBack);
    let p = phases(&file);
    assert!(p[..3].iter().all(|(_, x)| *x == Phase::RolledBack) && p[3..].iter().all(|(_, x)| *x == Phase::Untouched), "{p:?}");
    assert!(fleet.calls_for("h4").is_empty());
}

#[test]
fn a_host_refusing_the_plan_stops_the_canary() {
    let d = tempfile::tempdir().unwrap();
    let file = state(3, d.path());
    let fleet = FakeFleet { refuse: ["h1".to_string()].into(), ..Default::default() };
    assert_eq!(run(&fleet, &file), Status::Failed);
    assert!(fleet.calls_for("h2").is_empty() && fleet.calls_for("h3").is_empty());
}

#[test]
fn a_host_the_plan_left_unchanged_is_not_restored_by_a_later_failure() {
    let d = tempfile::tempdir().unwrap();
    let file = state(6, d.path());
    // h2 already holds the values (an earlier rollout committed them); h6 fails in wave 3.
    let fleet = FakeFleet { already: ["h2".to_string()].into(), unhealthy: ["h6".to_string()].into(), ..Default::default() };
    assert_eq!(run(&fleet, &file), Status::Failed);
    assert_eq!(phases(&file)[1], ("h2".to_string(), Phase::Unchanged));
    assert!(!fleet.calls_for("h2").iter().any(|c| c.starts_with("rollback")), "{:?}", fleet.calls_for("h2"));
    assert!(fleet.calls_for("h1").iter().any(|c| c.starts_with("rollback")));
}

#[test]
fn an_unfinished_run_on_a_host_is_never_restored_wholesale_by_the_fleet() {
    // Before: the fleet answered "the last run was interrupted" with a plain `semantos rollback`
    // (the whole backup) and applied again, which also undid an earlier rollout's values there.
    // Now the host's apply undoes this rollout's own interrupted attempt itself; what still reports
    // Interrupted is another run's, and the host fails with the reason, restored by no one.
    let d = tempfile::tempdir().unwrap();
    let file = state(6, d.path());
    file.host(1, |h| h.touched = true).unwrap();
    let fleet = FakeFleet { interrupted: Mutex::new(["h2".to_string()].into()), ..Default::default() };
    assert_eq!(run(&fleet, &file), Status::Failed);
    for host in ["h1", "h2", "h3", "h4", "h5", "h6"] {
        let calls = fleet.calls_for(host);
        assert!(calls.iter().filter(|c| c.starts_with("rollback")).all(|c| c.starts_with("rollback+fence")), "{host}: {calls:?}");
    }
    let snap = file.snapshot();
    let h2 = &snap.hosts[1];
    assert!(h2.reason.contains("not this rollout's is pending on the host") && h2.reason.contains("semantos rollback"), "{}", h2.reason);
}
