//! A throwaway fleet of real hosts for the rollout tests and the rollout
//! benchmark (benches/rollout.rs includes this file): one network namespace
//! per host, each running its own `sshd` (generated host key, a test user
//! key, a generated sshd_config) on an address inside a private subnet, and
//! one controller namespace holding the bridge the hosts hang off. Every
//! address lives only in namespaces this fixture creates: nothing is added
//! to the machine's own network, and net.* sysctls are per namespace, so
//! each namespace is a host with its own values.
//!
//! Drop kills every process left in those namespaces (sshd, sessions,
//! a killed controller's ssh masters) and deletes the namespaces.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One host: a namespace with an sshd.
pub struct TestHost {
    /// Inventory name (`h1`…).
    pub name: String,
    /// Network namespace.
    pub ns: String,
    /// Address sshd listens on.
    pub addr: String,
    /// Files of this host (sshd config, host key, log, pid file).
    pub home: PathBuf,
}

/// The fleet.
pub struct TestFleet {
    /// Everything on disk: keys, configs, inventories, remote directories.
    pub dir: tempfile::TempDir,
    /// The controller's namespace.
    pub ctl: String,
    /// Hosts.
    pub hosts: Vec<TestHost>,
    /// ssh client config (identity, known hosts, user root).
    pub ssh_config: PathBuf,
    /// SemantOS inventory of every host.
    pub inventory: PathBuf,
}

fn run(args: &[&str]) -> Result<Output, String> {
    let o = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !o.status.success() {
        return Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(o)
}

/// Why a fleet cannot be built here (not root, no sshd, no ip), if it cannot.
pub fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (network namespaces and sshd need root)".into());
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return Some("no /usr/sbin/sshd: run scripts/setup/20-ssh.sh (openssh-server)".into());
    }
    for tool in ["ip", "ssh", "ssh-keygen"] {
        if Command::new(tool).arg("-V").output().is_err() && Command::new("which").arg(tool).output().map(|o| !o.status.success()).unwrap_or(true) {
            return Some(format!("no `{tool}` command"));
        }
    }
    None
}

impl TestFleet {
    /// Starts `n` hosts (`h1`..`hn`) at 10.231.0.11.. behind a bridge in the controller namespace.
    pub fn start(tag: &str, n: usize) -> Result<TestFleet, String> {
        // A short path: ssh control sockets under it must fit in a Unix socket address.
        let dir = tempfile::Builder::new().prefix(&format!("sfl-{tag}-")).tempdir().map_err(|e| e.to_string())?;
        let base = format!("semantos-fl-{}-{tag}", std::process::id());
        let ctl = format!("{base}-c");
        let mut f = TestFleet { ssh_config: dir.path().join("ssh_config"), inventory: dir.path().join("hosts.yaml"), dir, ctl: ctl.clone(), hosts: Vec::new() };
        // A leftover of this very process (same pid in the name) is ours to remove.
        let _ = Command::new("ip").args(["netns", "del", &ctl]).output();
        run(&["ip", "netns", "add", &ctl])?;
        run(&["ip", "-n", &ctl, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &ctl, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &ctl, "addr", "add", "10.231.0.1/24", "dev", "br0"])?;
        run(&["ip", "-n", &ctl, "link", "set", "br0", "up"])?;
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let d = f.dir.path().to_path_buf();
        run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "semantos-test", "-f", d.join("id_ed25519").to_str().unwrap()])?;
        std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).map_err(|e| e.to_string())?;
        let mut known = String::new();
        let mut inv = String::from("# Test fleet: one network namespace per host.\nschema_version: 1\ndefaults: {user: root, port: 22}\nhosts:\n");
        for i in 0..n {
            let name = format!("h{}", i + 1);
            let ns = format!("{base}-{}", i + 1);
            let addr = format!("10.231.0.{}", 11 + i);
            let home = d.join(&name);
            std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            run(&["ip", "netns", "add", &ns])?;
            f.hosts.push(TestHost { name: name.clone(), ns: ns.clone(), addr: addr.clone(), home: home.clone() });
            let veth = format!("v{}", i + 1);
            run(&["ip", "link", "add", "name", &veth, "netns", &ctl, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            run(&["ip", "-n", &ctl, "link", "set", &veth, "master", "br0"])?;
            run(&["ip", "-n", &ctl, "link", "set", &veth, "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            run(&["ip", "-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            let key = home.join("ssh_host_ed25519_key");
            run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", &name, "-f", key.to_str().unwrap()])?;
            let pubkey = std::fs::read_to_string(home.join("ssh_host_ed25519_key.pub")).map_err(|e| e.to_string())?;
            let mut parts = pubkey.split_whitespace();
            known.push_str(&format!("{addr} {} {}\n", parts.next().unwrap_or(""), parts.next().unwrap_or("")));
            let cfg = format!(
                "ListenAddress {addr}\nPort 22\nHostKey {key}\nPidFile {pid}\nAuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\nMaxStartups 100\nMaxSessions 100\nSubsystem sftp internal-sftp\n",
                key = key.display(),
                pid = home.join("sshd.pid").display(),
                ak = d.join("authorized_keys").display()
            );
            std::fs::write(home.join("sshd_config"), cfg).map_err(|e| e.to_string())?;
            inv.push_str(&format!("  - {{name: {name}, address: {addr}, labels: {{ns: {ns}}}}}\n"));
        }
        for h in &f.hosts {
            run(&["ip", "netns", "exec", &h.ns, "/usr/sbin/sshd", "-f", h.home.join("sshd_config").to_str().unwrap(), "-E", h.home.join("sshd.log").to_str().unwrap()])?;
        }
        std::fs::write(d.join("known_hosts"), known).map_err(|e| e.to_string())?;
        std::fs::write(
            &f.ssh_config,
            format!(
                "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
                d.join("id_ed25519").display(),
                d.join("known_hosts").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(&f.inventory, inv).map_err(|e| e.to_string())?;
        f.wait_for_ssh()?;
        Ok(f)
    }

    fn wait_for_ssh(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        for h in &self.hosts {
            loop {
                let o = self.in_ctl("ssh").args(["-F", self.ssh_config.to_str().unwrap(), "-o", "ConnectTimeout=2", &h.addr, "true"]).output().map_err(|e| e.to_string())?;
                if o.status.success() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("sshd on {} ({}) did not answer: {}", h.name, h.addr, String::from_utf8_lossy(&o.stderr)));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// `program` run inside the controller namespace.
    pub fn in_ctl(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ctl]).arg(program);
        c
    }

    /// A sysctl inside host `i`'s namespace, whitespace-normalised.
    pub fn read(&self, i: usize, key: &str) -> String {
        let o = Command::new("ip").args(["netns", "exec", &self.hosts[i].ns, "cat", &format!("/proc/sys/{}", key.replace('.', "/"))]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Sets a sysctl inside host `i`'s namespace (test set-up only).
    pub fn write(&self, i: usize, key: &str, value: &str) {
        let o = Command::new("ip").args(["netns", "exec", &self.hosts[i].ns, "sh", "-c", "printf %s \"$1\" > \"$2\"", "sh", value, &format!("/proc/sys/{}", key.replace('.', "/"))]).output().unwrap();
        assert!(o.status.success(), "setting {key} on {}: {}", self.hosts[i].name, String::from_utf8_lossy(&o.stderr));
    }

    /// Stops host `i`'s listening sshd (existing sessions are left alone, as `systemctl stop ssh` would).
    pub fn stop_sshd(&self, i: usize) {
        if let Ok(pid) = std::fs::read_to_string(self.hosts[i].home.join("sshd.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            // SAFETY: a pid this fixture started (its pid file), signalled once.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.hosts[i].home.join("sshd.pid").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connections sshd of host `i` accepted, from its log.
    pub fn accepted(&self, i: usize) -> usize {
        std::fs::read_to_string(self.hosts[i].home.join("sshd.log")).unwrap_or_default().matches("Accepted publickey").count()
    }

    /// Connection attempts sshd of host `i` saw, from its log.
    pub fn connections(&self, i: usize) -> usize {
        std::fs::read_to_string(self.hosts[i].home.join("sshd.log")).unwrap_or_default().matches("Connection from").count()
    }

    /// Remote working directory template: one directory per host on this shared filesystem.
    pub fn remote_dir(&self) -> String {
        format!("{}/remote/{{host}}", self.dir.path().display())
    }

    /// The backup a rollout leaves on host `i`.
    pub fn backup(&self, i: usize) -> PathBuf {
        self.dir.path().join("remote").join(&self.hosts[i].name).join("rollout-backup.json")
    }

    /// Writes a policy that whitelists `keys` with a short monitor window and one batch.
    pub fn policy(&self, keys: &[&str]) -> PathBuf {
        let p = self.dir.path().join("policy.yaml");
        let list = keys.iter().map(|k| format!("  - {k}\n")).collect::<String>();
        std::fs::write(&p, format!("whitelist:\n{list}monitor_seconds: 0.2\nbatch_size: {}\n", keys.len().max(1))).unwrap();
        p
    }
}

fn kill_all_in(ns: &str) {
    let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() else { return };
    for pid in String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
        // SAFETY: every process in a namespace this fixture created was started by this test.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        kill_all_in(&self.ctl);
        for h in &self.hosts {
            kill_all_in(&h.ns);
        }
        std::thread::sleep(Duration::from_millis(50));
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).output();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ctl]).output();
    }
}

/// ansible-playbook from the test set-up's virtual environment, if installed.
pub fn ansible_playbook() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SEMANTOS_ANSIBLE_PLAYBOOK") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let cache = std::env::var("SEMANTOS_CACHE").unwrap_or_else(|_| "/var/cache/semantos".into());
    let p = Path::new(&cache).join("ansible-venv/bin/ansible-playbook");
    p.exists().then_some(p)
}
