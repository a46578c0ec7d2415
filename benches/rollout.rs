//! SemantOS's ssh engine against `ansible-playbook` with ansible.posix.sysctl:
//! the same 3-key change across the same real hosts (network namespaces,
//! each with its own sshd: tests/integration/fleet/hosts.rs), in the same
//! waves (canary 1, then 50 %, then the rest), measured side by side in one
//! run with the arms interleaved round by round (the machine is shared and
//! noisy: only figures from the same run compare). Every run changes all
//! three keys on every host: rounds alternate between two target sets.
//!
//! Arms:
//! 1. `semantos rollout --engine ssh`: per host a transaction (backup,
//!    journal, read-back, telemetry monitor), a wave gate, a state file;
//! 2. `ansible-playbook`, the plain way: three ansible.posix.sysctl tasks,
//!    `serial` = the waves, `max_fail_percentage: 0`, no backup, no check;
//! 3. `ansible-playbook` of the playbook SemantOS generates (backup in
//!    SemantOS's format, read-back, restore on failure), i.e. arm 1's
//!    guarantees done the Ansible way.
//!
//! Both Ansible arms use pipelining and ControlPersist with a fresh control
//! directory per run, so every arm pays its own connection set-up.
//!
//! Needs root, sshd (scripts/setup/20-ssh.sh) and Ansible
//! (scripts/setup/30-ansible.sh); prints why and exits 0 otherwise.
//! Run: `cargo bench --bench rollout` (`-- --quick`: one round;
//! SEMANTOS_BENCH_HOSTS=N: fleet size, default 6).

#[path = "../tests/integration/fleet/hosts.rs"]
mod hosts;

use hosts::TestFleet;
use semantos::rollout::ansible::{self, Batch, PlaybookOptions};
use semantos::rollout::inventory::Host;
use semantos::rollout::precheck::Target;
use semantos::rollout::ssh::{RemoteSettings, SshSettings};
use semantos::rollout::waves::WaveSpec;
use semantos::sysctl::{SysctlKey, Value};
use std::time::{Duration, Instant};

const KEYS: [&str; 3] = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_slow_start_after_idle"];
const SETS: [[&str; 3]; 2] = [["8192", "4096", "0"], ["4096", "2048", "1"]];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn targets(set: usize) -> Vec<Target> {
    KEYS.iter().zip(SETS[set]).map(|(k, v)| Target { key: SysctlKey::parse(k).unwrap(), value: Value::from_kernel(v) }).collect()
}

fn plain_playbook(set: usize, serial: &[usize]) -> String {
    let mut s = format!("- hosts: all\n  gather_facts: false\n  serial: {serial:?}\n  max_fail_percentage: 0\n  tasks:\n");
    for t in targets(set) {
        s.push_str(&format!("    - ansible.posix.sysctl:\n        name: {}\n        value: \"{}\"\n        state: present\n        sysctl_set: true\n        reload: true\n        sysctl_file: \"{{{{ semantos_sysctl_file_path }}}}\"\n", t.key, t.value));
    }
    s
}

fn check(f: &TestFleet, set: usize, arm: &str) {
    for i in 0..f.hosts.len() {
        let got: Vec<String> = KEYS.iter().map(|k| f.read(i, k)).collect();
        assert_eq!(got, SETS[set], "{arm}: h{} does not hold the target values", i + 1);
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if let Some(why) = hosts::missing() {
        println!("rollout bench skipped: {why}");
        return;
    }
    let Some(playbook_bin) = hosts::ansible_playbook() else {
        println!("rollout bench skipped: no ansible-playbook (scripts/setup/30-ansible.sh)");
        return;
    };
    let n: usize = std::env::var("SEMANTOS_BENCH_HOSTS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let rounds = if quick { 1 } else { 3 };
    let f = TestFleet::start("bench", n).expect("building the bench fleet");
    let dir = f.dir.path().to_path_buf();
    let bin = env!("CARGO_BIN_EXE_semantos");
    let policy = f.policy(&KEYS);
    let spec = WaveSpec::parse("1", "50%").unwrap();
    let serial = spec.serial(n);
    let hosts: Vec<Host> = (0..n).map(|i| Host { user: Some("root".into()), ..Host::new(f.hosts[i].name.clone(), f.hosts[i].addr.clone()) }).collect();
    let remote = RemoteSettings { semantos: bin.into(), dir: f.remote_dir(), copy_binary: None, policy: None, monitor_seconds: Some(0.0), health_cmd: None, health_timeout_s: None, persist: None, interval: 0.05, host_timeout_s: 120.0, kb: Default::default() };
    let sysctl_file = format!("{}/remote/{{host}}/99-semantos.conf", dir.display());
    let inventory = ansible::inventory(&hosts, &remote, &sysctl_file, Some("/usr/bin/python3")).unwrap();
    let ssh = SshSettings { config: Some(f.ssh_config.clone()), ..SshSettings::default() };
    for (set, values) in SETS.iter().enumerate() {
        let plan = dir.join(format!("plan{set}.json"));
        let changes: Vec<serde_json::Value> = KEYS.iter().zip(values).map(|(k, v)| serde_json::json!({"key": k, "to": v, "rationale": "bench"})).collect();
        std::fs::write(&plan, serde_json::json!({"schema_version": 1, "created_by": "bench", "intent": "latency", "changes": changes}).to_string()).unwrap();
    }
    let mut run_no = 0usize;
    // Each Ansible run gets its own directory: no warm ControlPersist sockets from a previous run.
    let mut ansible_run = |text: &str| -> Duration {
        run_no += 1;
        let d = dir.join(format!("ansible-{run_no}"));
        let cp = d.join("cp");
        std::fs::create_dir_all(&cp).unwrap();
        let w = ansible::write_workdir(&d, text, &inventory, &ansible::config(&ssh, n, 120.0, &cp)).unwrap();
        let t = Instant::now();
        let o = f.in_ctl(&playbook_bin).arg(&w.playbook).current_dir(&w.dir).env("ANSIBLE_CONFIG", &w.config).env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json").output().unwrap();
        let e = t.elapsed();
        assert!(o.status.success(), "ansible-playbook failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        e
    };
    let semantos_run = |set: usize, round: usize| -> Duration {
        let t = Instant::now();
        let o = f
            .in_ctl(bin)
            .current_dir(&dir)
            .env("TMPDIR", &dir)
            .args(["rollout", "--run", "--inventory"])
            .arg(&f.inventory)
            .arg("--plan")
            .arg(dir.join(format!("plan{set}.json")))
            .arg("--policy")
            .arg(&policy)
            .arg("--ssh-config")
            .arg(&f.ssh_config)
            .args(["--remote-semantos", bin, "--remote-dir", &f.remote_dir(), "--state", &format!("state-{round}-{set}.json")])
            .args(["--interval", "0.05", "--monitor-seconds", "0", "--canary", "1", "--steps", "50%", "--parallel", &n.to_string()])
            .output()
            .unwrap();
        let e = t.elapsed();
        assert!(o.status.success(), "semantos rollout failed: {}", String::from_utf8_lossy(&o.stderr));
        e
    };
    let names = [
        "semantos rollout --engine ssh (transaction per host, gate)",
        "ansible-playbook, 3 x ansible.posix.sysctl (plain)",
        "ansible-playbook, SemantOS-generated (backup, read-back)",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); 3];
    let mut set = 0;
    // Warm-up: page cache for the binaries and Python, the first sshd fork.
    semantos_run(set, 99);
    check(&f, set, "warm-up");
    for round in 0..rounds {
        for arm in 0..3 {
            set = 1 - set;
            let e = match arm {
                0 => semantos_run(set, round),
                1 => ansible_run(&plain_playbook(set, &serial)),
                _ => {
                    let o = PlaybookOptions { run_id: format!("bench-{round}"), serial: serial.iter().map(|s| Batch::Count(*s)).collect(), remote_dir: f.remote_dir(), sysctl_file: sysctl_file.clone(), monitor_seconds: 0.0, health_cmd: None, health_timeout_s: 30.0, header: vec![] };
                    ansible_run(&ansible::playbook(&targets(set), &o))
                }
            };
            check(&f, set, names[arm]);
            eprintln!("round {}: {:<58} {:>8.2} s", round + 1, names[arm], e.as_secs_f64());
            samples[arm].push(e);
        }
    }
    let med: Vec<Duration> = samples.into_iter().map(median).collect();
    println!("\nRollout of a 3-key change to {n} hosts in waves {serial:?} (median of {rounds} round(s), arms interleaved)");
    println!("  {:<58} {:>9} {:>10} {:>8}", "engine", "wall", "per host", "vs ssh");
    for (name, m) in names.iter().zip(&med) {
        println!("  {:<58} {:>7.2} s {:>8.0} ms {:>7.2}x", name, m.as_secs_f64(), m.as_secs_f64() * 1000.0 / n as f64, m.as_secs_f64() / med[0].as_secs_f64());
    }
}
