//! The Ansible engine: a playbook that does with `ansible.posix.sysctl`
//! what `semantos apply` does on one host, in the same waves.
//!
//! The apply play runs with `serial` equal to our waves and
//! `max_fail_percentage: 0`, so Ansible stops after the first batch with a
//! failed host. On each host it reads the current values, writes a backup
//! in SemantOS's own format (`rollout-backup.json`, restorable by
//! `semantos rollback --backup` too) before the first write, sets each key
//! with `ansible.posix.sysctl` (`sysctl_set: true`, `reload: true`, a
//! dedicated `sysctl_file`), reads every value back, waits the monitor
//! window, runs the health command and marks the backup committed. A
//! failure restores that host at once (block/rescue) and fails it. The
//! second play (tags `never, rollback`: it runs only with
//! `--tags rollback`) restores hosts from their backups and verifies.
//!
//! Nothing from a plan is templated: keys and values are validated by
//! `precheck` (no `{`, `%`, `$`, quotes) and values are also tagged
//! `!unsafe`, as is the operator's health command.
//!
//! `semantos rollout --engine ansible --run` executes the playbook, reads
//! Ansible's JSON report to find the failed batch, and restores that batch
//! and every earlier one with the rollback play: the same decision as the
//! ssh engine's (a wave passes only if every host in it did).

use super::fleet::Remote;
use super::inventory::Host;
use super::precheck::Target;
use super::process;
use super::ssh::{RemoteSettings, SshEngine, SshSettings, sh_quote};
use super::state::{Phase, StateFile, Status, Values};
use crate::sysctl::SysctlKey;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Settings of the Ansible engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnsibleSettings {
    /// `ansible-playbook` to run.
    pub program: String,
    /// Directory the playbook, inventory and ansible.cfg are written to.
    pub dir: PathBuf,
    /// Python on the hosts (`ansible_python_interpreter`); `None`: Ansible discovers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
}

/// One `serial` batch: a host count or a percentage.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    /// Hosts.
    Count(usize),
    /// Percentage of the play's hosts.
    Percent(f64),
}

/// What goes into a playbook besides the writes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaybookOptions {
    /// Identifier written into the backups.
    pub run_id: String,
    /// `serial` batches (our waves).
    pub serial: Vec<Batch>,
    /// Working directory on each host (`{host}` → the inventory host name).
    pub remote_dir: String,
    /// sysctl.d file `ansible.posix.sysctl` keeps the values in (`{host}` allowed).
    pub sysctl_file: String,
    /// Monitor window after the batch's writes, seconds.
    pub monitor_seconds: f64,
    /// Health command run on each host after the monitor window.
    pub health_cmd: Option<String>,
    /// Comment lines at the top (the plan's rationale).
    pub header: Vec<String>,
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// A string Ansible must never template.
fn unsafe_q(s: &str) -> String {
    format!("!unsafe {}", q(s))
}

/// `{host}` → the inventory host name, as a Jinja expression Ansible fills in.
fn host_template(path: &str) -> String {
    path.replace("{host}", "{{ inventory_hostname }}")
}

/// Comment text on one line, without anything YAML would read.
fn comment(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn serial_yaml(serial: &[Batch]) -> String {
    let items: Vec<String> = serial
        .iter()
        .map(|b| match b {
            Batch::Count(n) => n.to_string(),
            Batch::Percent(p) => q(&format!("{p}%")),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// Dotted key → path under /proc/sys, in Jinja (a `/` inside a dotted component is a literal dot).
const KEY_TO_PATH: &str = "map('replace', '/', '%') | map('replace', '.', '/') | map('replace', '%', '.') | map('regex_replace', '^', '/proc/sys/')";

/// A task writing `content` (a Jinja expression) to the backup atomically, mode 0600,
/// in one module run (ansible.builtin.copy costs several round trips per host).
fn write_backup_task(name: &str, content: &str, when: Option<&str>) -> String {
    let mut t = format!(
        "- name: {}\n  ansible.builtin.command:\n    argv: [\"sh\", \"-c\", \"umask 077 && mkdir -p \\\"$(dirname \\\"$1\\\")\\\" && cat > \\\"$1.tmp\\\" && mv -f \\\"$1.tmp\\\" \\\"$1\\\"\", \"semantos-backup\", \"{{{{ semantos_backup }}}}\"]\n    stdin: \"{{{{ {content} }}}}\"\n",
        q(name)
    );
    if let Some(w) = when {
        t.push_str(&format!("  when: {w}\n"));
    }
    t
}

fn restore_tasks(indent: &str) -> String {
    let t = format!(
        r#"- name: "restore: read the backup"
  ansible.builtin.command:
    argv: ["cat", "{{{{ semantos_backup }}}}"]
  register: semantos_restore_raw
  changed_when: false
  failed_when: false
- name: "restore: parse the backup"
  ansible.builtin.set_fact:
    semantos_restore: "{{{{ semantos_restore_raw.stdout | from_json }}}}"
    semantos_restore_items: "{{{{ (semantos_restore_raw.stdout | from_json).originals | dict2items | rejectattr('value', 'none') | list }}}}"
  when: semantos_restore_raw.rc == 0
- name: "restore: write every original value back"
  ansible.posix.sysctl:
    name: "{{{{ item.key }}}}"
    value: "{{{{ item.value | string }}}}"
    state: present
    sysctl_set: true
    reload: false
    sysctl_file: "{{{{ semantos_sysctl_file }}}}"
  loop: "{{{{ semantos_restore_items | default([]) }}}}"
  loop_control:
    label: "{{{{ item.key }}}}"
  when: semantos_restore is defined and semantos_restore.state != 'restored'
- name: "restore: drop the restored keys from the sysctl file"
  ansible.posix.sysctl:
    name: "{{{{ item.key }}}}"
    state: absent
    reload: false
    sysctl_file: "{{{{ semantos_sysctl_file }}}}"
  loop: "{{{{ semantos_restore_items | default([]) }}}}"
  loop_control:
    label: "{{{{ item.key }}}}"
  when: semantos_restore is defined and semantos_restore.state != 'restored'
- name: "restore: read every value back"
  ansible.builtin.command:
    argv: "{{{{ ['cat'] + (semantos_restore_items | map(attribute='key') | {KEY_TO_PATH} | list) }}}}"
  register: semantos_restored
  changed_when: false
  when: semantos_restore is defined and semantos_restore.state != 'restored' and semantos_restore_items | length > 0
- name: "restore: verify every original value is back"
  ansible.builtin.assert:
    that: "(semantos_restored.stdout_lines | map('split') | map('join', ' ') | list) == (semantos_restore_items | map(attribute='value') | map('string') | map('split') | map('join', ' ') | list)"
    fail_msg: "after the restore the values read {{{{ semantos_restored.stdout_lines }}}}, expected the originals {{{{ semantos_restore_items }}}}"
    quiet: true
  when: semantos_restored.stdout_lines is defined
{mark}"#,
        mark = write_backup_task("restore: mark the backup restored", "semantos_restore | combine({'state': 'restored', 'restored_at': (now(utc=true).timestamp() | int)}) | to_nice_json", Some("semantos_restore is defined and semantos_restore.state != 'restored'"))
    );
    t.lines().map(|l| if l.is_empty() { String::new() } else { format!("{indent}{l}") }).collect::<Vec<_>>().join("\n") + "\n"
}

/// The playbook: an apply play in waves and a rollback play. Pure.
pub fn playbook(targets: &[Target], o: &PlaybookOptions) -> String {
    let mut s = String::new();
    s.push_str("---\n# Generated by semantos (`semantos export ansible` / `semantos rollout --engine ansible`).\n");
    for h in &o.header {
        let _ = writeln!(s, "# {}", comment(h));
    }
    s.push_str("#\n# Apply:     ansible-playbook -i INVENTORY THIS.yml\n# Roll back: ansible-playbook -i INVENTORY THIS.yml --tags rollback [--limit HOSTS]\n");
    s.push_str("# Per-host variables: semantos_remote_dir (backup directory), semantos_sysctl_file_path, semantos_become.\n\n");
    let keys: Vec<String> = targets.iter().map(|t| t.key.to_string()).collect();
    let n = targets.len();
    let vars = |s: &mut String| {
        let _ = writeln!(s, "  vars:");
        let _ = writeln!(s, "    semantos_run_id: {}", q(&o.run_id));
        let _ = writeln!(s, "    semantos_backup: \"{{{{ semantos_remote_dir | default({}) }}}}/rollout-backup.json\"", sq_jinja(&host_template(&o.remote_dir)));
        let _ = writeln!(s, "    semantos_sysctl_file: \"{{{{ semantos_sysctl_file_path | default({}) }}}}\"", sq_jinja(&host_template(&o.sysctl_file)));
        let _ = writeln!(s, "    semantos_keys: [{}]", keys.iter().map(|k| q(k)).collect::<Vec<_>>().join(", "));
    };
    // Paths come from validated keys (SysctlKey::rel_path), never from templates.
    let paths: Vec<String> = targets.iter().map(|t| q(&format!("/proc/sys/{}", t.key.rel_path().display()))).collect();
    let identity = ["\"/proc/sys/kernel/hostname\"", "\"/proc/sys/kernel/random/boot_id\"", "\"/proc/sys/kernel/osrelease\""];
    // The apply play.
    let _ = writeln!(s, "- name: \"semantos: apply {} sysctl change(s) in {} wave(s)\"", n, o.serial.len());
    s.push_str("  hosts: \"{{ semantos_hosts | default('all') }}\"\n  gather_facts: false\n  become: \"{{ semantos_become | default(false) }}\"\n");
    let _ = writeln!(s, "  serial: {}", serial_yaml(&o.serial));
    s.push_str("  max_fail_percentage: 0\n");
    vars(&mut s);
    let _ = writeln!(s, "    semantos_values: [{}]", targets.iter().map(|t| unsafe_q(t.value.as_str())).collect::<Vec<_>>().join(", "));
    s.push_str("  tasks:\n    - name: \"semantos: apply\"\n      tags: [apply]\n      block:\n");
    let mut body = format!(
        r#"- name: "read the values and the host identity before the first write"
  ansible.builtin.command:
    argv: ["cat", {all}]
  register: semantos_read
  changed_when: false
- name: "read an earlier backup, if any"
  ansible.builtin.command:
    argv: ["cat", "{{{{ semantos_backup }}}}"]
  register: semantos_old_raw
  changed_when: false
  failed_when: false
- name: "build the backup (an earlier unrestored backup's originals win)"
  ansible.builtin.set_fact:
    semantos_old: "{{{{ (semantos_old_raw.stdout | from_json) if semantos_old_raw.rc == 0 else {{'state': 'restored'}} }}}}"
    semantos_now: "{{{{ semantos_read.stdout_lines | map('split') | map('join', ' ') | list }}}}"
- name: "refuse an unrestored backup from another boot (its values were reset by the reboot)"
  ansible.builtin.fail:
    msg: "an unrestored backup {{{{ semantos_backup }}}} from boot {{{{ semantos_old.host.boot_id }}}} exists and this is boot {{{{ semantos_now[{boot}] }}}}: run `semantos rollback --force --backup {{{{ semantos_backup }}}}` or move it away"
  when: semantos_old.state != 'restored' and semantos_old.host.boot_id != semantos_now[{boot}]
- name: "write the backup before the first write"
  ansible.builtin.set_fact:
    semantos_doc: "{{{{ {{'schema_version': 1, 'run_id': semantos_run_id, 'created_at': (semantos_old.created_at if semantos_old.state != 'restored' else (now(utc=true).timestamp() | int)), 'host': {{'hostname': semantos_now[{host}], 'boot_id': semantos_now[{boot}], 'kernel_release': semantos_now[{release}]}}, 'store': '/proc/sys', 'originals': (dict(semantos_keys | zip(semantos_now[:{n}])) | combine(semantos_old.originals if semantos_old.state != 'restored' else {{}})), 'state': 'in_progress', 'plan': {{'source': 'ansible', 'changes': dict(semantos_keys | zip(semantos_values | map('string')))}}, 'persisted_to': semantos_sysctl_file}} }}}}"
{write}"#,
        write = write_backup_task("save the backup (0600, atomically)", "semantos_doc | to_nice_json", None),
        all = paths.iter().map(String::as_str).chain(identity).collect::<Vec<_>>().join(", "),
        host = n,
        boot = n + 1,
        release = n + 2,
    );
    for t in targets {
        let _ = write!(
            body,
            "- name: {}\n  ansible.posix.sysctl:\n    name: {}\n    value: {}\n    state: present\n    sysctl_set: true\n    reload: true\n    sysctl_file: \"{{{{ semantos_sysctl_file }}}}\"\n",
            q(&format!("{} = {}", t.key, t.value)),
            q(&t.key.to_string()),
            unsafe_q(t.value.as_str())
        );
    }
    let _ = write!(
        body,
        r#"- name: "read every value back"
  ansible.builtin.command:
    argv: ["cat", {paths}]
  register: semantos_after
  changed_when: false
- name: "verify the kernel kept every value"
  ansible.builtin.assert:
    that: "(semantos_after.stdout_lines | map('split') | map('join', ' ') | list) == (semantos_values | map('string') | list)"
    fail_msg: "read back {{{{ semantos_after.stdout_lines }}}} after writing {{{{ semantos_values }}}} to {{{{ semantos_keys }}}}"
    quiet: true
"#,
        paths = paths.join(", ")
    );
    if o.monitor_seconds > 0.0 {
        let _ = write!(body, "- name: \"monitor window\"\n  ansible.builtin.pause:\n    seconds: {}\n", o.monitor_seconds.ceil() as u64);
    }
    if let Some(cmd) = &o.health_cmd {
        let _ = write!(body, "- name: \"health command\"\n  ansible.builtin.command:\n    argv: [\"sh\", \"-c\", {}]\n  changed_when: false\n", unsafe_q(cmd));
    }
    body.push_str(&write_backup_task("mark the backup committed", "semantos_doc | combine({'state': 'committed'}) | to_nice_json", None));
    for l in body.lines() {
        let _ = writeln!(s, "        {l}");
    }
    s.push_str("      rescue:\n");
    // Restore only what this run wrote: without our backup (semantos_doc), nothing was written.
    for l in restore_tasks("").lines() {
        let l = match l.strip_prefix("  when: ") {
            Some(cond) => format!("  when: semantos_doc is defined and ({cond})"),
            None => l.to_string(),
        };
        let l = if l.starts_with("  register: semantos_restore_raw") { format!("{l}\n  when: semantos_doc is defined") } else { l };
        for part in l.lines() {
            let _ = writeln!(s, "        {part}");
        }
    }
    s.push_str("        - name: \"fail this host: the batch stops here (max_fail_percentage: 0)\"\n          ansible.builtin.fail:\n            msg: \"semantos: {{ ansible_failed_result.msg | default('a task failed') }}; anything written on this host was restored from its backup\"\n\n");
    // The rollback play.
    s.push_str("- name: \"semantos: roll back from the backup on each host\"\n  hosts: \"{{ semantos_hosts | default('all') }}\"\n  gather_facts: false\n  become: \"{{ semantos_become | default(false) }}\"\n  tags: [never, rollback]\n");
    vars(&mut s);
    s.push_str("  tasks:\n");
    s.push_str(&restore_tasks("    "));
    s
}

/// A Jinja single-quoted string literal of `s` whose `{{ inventory_hostname }}` stays an expression.
fn sq_jinja(s: &str) -> String {
    // Split on the one template we produce and join the parts with `~`.
    let parts: Vec<String> = s.split("{{ inventory_hostname }}").map(|p| format!("'{}'", p.replace('\\', "\\\\").replace('\'', "\\'"))).collect();
    parts.join(" ~ inventory_hostname ~ ")
}

/// An Ansible YAML inventory of `hosts`, with the per-host paths of a rollout. Pure.
pub fn inventory(hosts: &[Host], remote: &RemoteSettings, sysctl_file: &str, python: Option<&str>) -> Result<String> {
    let mut s = String::from("# Generated by semantos rollout --engine ansible.\nall:\n  hosts:\n");
    for h in hosts {
        let _ = writeln!(s, "    {}:", q(&h.name));
        let _ = writeln!(s, "      ansible_host: {}", q(h.address.trim_start_matches('[').trim_end_matches(']')));
        if let Some(p) = h.port {
            let _ = writeln!(s, "      ansible_port: {p}");
        }
        if let Some(u) = &h.user {
            let _ = writeln!(s, "      ansible_user: {}", q(u));
        }
        if let Some(i) = &h.identity_file {
            let _ = writeln!(s, "      ansible_ssh_private_key_file: {}", unsafe_q(&i.display().to_string()));
        }
        let _ = writeln!(s, "      semantos_remote_dir: {}", unsafe_q(&remote.dir_on(h)));
        let _ = writeln!(s, "      semantos_sysctl_file_path: {}", unsafe_q(&sysctl_file.replace("{host}", &h.name)));
        if let Some(p) = python {
            let _ = writeln!(s, "      ansible_python_interpreter: {}", unsafe_q(p));
        }
    }
    Ok(s)
}

/// The ansible.cfg of a run: our ssh settings, JSON output, pipelining, private control sockets. Pure.
pub fn config(ssh: &SshSettings, forks: usize, host_timeout_s: f64, control_dir: &Path) -> String {
    let mut args = vec!["-o".to_string(), "ControlMaster=auto".into(), "-o".into(), "ControlPersist=60s".into(), "-o".into(), "BatchMode=yes".into()];
    if let Some(cfg) = &ssh.config {
        args.extend(["-F".into(), cfg.display().to_string()]);
    }
    for o in &ssh.options {
        args.extend(["-o".into(), o.clone()]);
    }
    let ssh_args = args.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ");
    format!(
        "# Generated by semantos rollout --engine ansible.\n[defaults]\ninventory = inventory.yml\nstdout_callback = ansible.posix.json\nhost_key_checking = True\nretry_files_enabled = False\nforks = {forks}\ninterpreter_python = auto_silent\ntimeout = {}\ntask_timeout = {}\n\n[ssh_connection]\npipelining = True\ncontrol_path_dir = {}\nssh_args = {}\n",
        ssh.connect_timeout_s,
        host_timeout_s.ceil() as u64,
        control_dir.display(),
        ssh_args.replace('%', "%%")
    )
}

/// The outcome of one `ansible-playbook` run, per host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlayResult {
    /// Hosts that ran and did not fail.
    pub ok: BTreeSet<String>,
    /// Hosts that failed or were unreachable, with the last message.
    pub failed: BTreeMap<String, (bool, String)>,
    /// Exit code.
    pub code: Option<i32>,
    /// Seconds.
    pub seconds: f64,
}

/// Reads the `ansible.posix.json` callback's report.
pub fn parse_json_report(stdout: &str) -> Result<PlayResult> {
    let start = stdout.find("\n{").map(|i| i + 1).or_else(|| stdout.starts_with('{').then_some(0)).context("ansible-playbook printed no JSON report (is the ansible.posix collection installed?)")?;
    let v: serde_json::Value = serde_json::Deserializer::from_str(&stdout[start..]).into_iter().next().context("no JSON report")?.context("ansible's JSON report does not parse")?;
    let mut r = PlayResult::default();
    let mut last_msg: BTreeMap<String, String> = BTreeMap::new();
    for play in v["plays"].as_array().into_iter().flatten() {
        for task in play["tasks"].as_array().into_iter().flatten() {
            for (h, res) in task["hosts"].as_object().into_iter().flatten() {
                if res["failed"].as_bool() == Some(true) || res["unreachable"].as_bool() == Some(true) {
                    let msg = res["msg"].as_str().map(str::to_string).unwrap_or_else(|| res["stderr"].as_str().unwrap_or("failed").to_string());
                    last_msg.insert(h.clone(), format!("{}: {}", task["task"]["name"].as_str().unwrap_or("task"), msg.trim()));
                }
            }
        }
    }
    for (h, st) in v["stats"].as_object().into_iter().flatten() {
        let n = |k: &str| st[k].as_u64().unwrap_or(0);
        if n("unreachable") > 0 {
            r.failed.insert(h.clone(), (true, last_msg.get(h).cloned().unwrap_or_else(|| "unreachable".into())));
        } else if n("failures") > 0 {
            r.failed.insert(h.clone(), (false, last_msg.get(h).cloned().unwrap_or_else(|| "failed".into())));
        } else {
            r.ok.insert(h.clone());
        }
    }
    Ok(r)
}

/// Files of one Ansible run.
pub struct Workdir {
    /// The directory.
    pub dir: PathBuf,
    /// playbook.yml.
    pub playbook: PathBuf,
    /// ansible.cfg.
    pub config: PathBuf,
}

/// Writes playbook, inventory and ansible.cfg into `dir` (atomically, each).
pub fn write_workdir(dir: &Path, playbook_text: &str, inventory_text: &str, config_text: &str) -> Result<Workdir> {
    use crate::apply::files::write_atomic;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Absolute: ansible-playbook runs inside the directory and must still find the files.
    let dir = &dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
    let w = Workdir { dir: dir.to_path_buf(), playbook: dir.join("playbook.yml"), config: dir.join("ansible.cfg") };
    write_atomic(&w.playbook, playbook_text.as_bytes(), 0o644)?;
    write_atomic(&dir.join("inventory.yml"), inventory_text.as_bytes(), 0o644)?;
    write_atomic(&w.config, config_text.as_bytes(), 0o644)?;
    Ok(w)
}

/// `ansible-playbook` in `w` with `args`.
fn command(program: &str, w: &Workdir, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.current_dir(&w.dir).env("ANSIBLE_CONFIG", &w.config).env("ANSIBLE_NOCOLOR", "1").env("ANSIBLE_FORCE_COLOR", "0").arg(&w.playbook).args(args);
    c
}

/// `ansible-playbook --syntax-check` on the written playbook.
pub fn syntax_check(program: &str, w: &Workdir) -> Result<()> {
    let mut c = command(program, w, &["--syntax-check"]);
    c.env("ANSIBLE_STDOUT_CALLBACK", "default");
    let f = process::run(c, None, Duration::from_secs(120)).with_context(|| format!("running {program} (install Ansible, e.g. scripts/setup/30-ansible.sh, or pass --ansible-playbook PATH)"))?;
    if f.code() != Some(0) {
        bail!("ansible-playbook --syntax-check {} failed: {}{}", w.playbook.display(), f.stderr.trim(), f.stdout.trim());
    }
    Ok(())
}

/// Runs the playbook (`tags` none: apply; `rollback`: the rollback play) on `limit`.
pub fn run_playbook(program: &str, w: &Workdir, rollback: bool, limit: &[String], timeout: Duration) -> Result<PlayResult> {
    let lim = limit.join(",");
    let mut args: Vec<&str> = Vec::new();
    if rollback {
        args.extend(["--tags", "rollback"]);
    }
    if !limit.is_empty() {
        args.extend(["--limit", &lim]);
    }
    let f = process::run(command(program, w, &args), None, timeout).with_context(|| format!("running {program}"))?;
    if f.timed_out() {
        bail!("ansible-playbook did not finish within {:.0} s", timeout.as_secs_f64());
    }
    let mut r = parse_json_report(&f.stdout).with_context(|| format!("ansible-playbook exited with {:?}: {}", f.code(), f.stderr.trim()))?;
    r.code = f.code();
    r.seconds = f.elapsed.as_secs_f64();
    Ok(r)
}

/// Drives a rollout with Ansible: apply play in waves, then the same gate decision as the ssh engine.
pub struct AnsibleRollout<'a> {
    /// Settings.
    pub settings: &'a AnsibleSettings,
    /// Reads values before and after (the ssh engine, same connection settings).
    pub reader: &'a SshEngine,
    /// The state file.
    pub state: &'a StateFile,
    /// The written work directory.
    pub workdir: &'a Workdir,
    /// Progress lines.
    pub log: &'a (dyn Fn(String) + Sync),
}

impl AnsibleRollout<'_> {
    fn timeout(&self) -> Duration {
        let s = self.state.snapshot();
        Duration::from_secs_f64(s.settings.host_timeout_s * (s.wave_count().max(1) as f64) + 60.0)
    }

    fn keys(&self) -> Vec<SysctlKey> {
        self.state.snapshot().keys.iter().filter_map(|k| SysctlKey::parse(k).ok()).collect()
    }

    fn read_all(&self, idx: &[usize]) -> BTreeMap<usize, Option<Values>> {
        let s = self.state.snapshot();
        let keys = self.keys();
        let out = std::sync::Mutex::new(BTreeMap::new());
        super::fleet::for_each_parallel(idx, s.settings.parallel, |i| {
            let v = self.reader.read(&s.hosts[i].host, &keys).ok();
            out.lock().unwrap_or_else(|p| p.into_inner()).insert(i, v);
        });
        out.into_inner().unwrap_or_default()
    }

    /// Runs (or re-runs: every step is idempotent) the apply play, then restores the failed wave and earlier ones.
    pub fn run(&self) -> Result<Status> {
        let s = self.state.snapshot();
        if matches!(s.status, Status::RollingBack | Status::NeedsAttention) {
            return self.restore(s.failed_wave, "finishing an interrupted restore");
        }
        if s.status.finished() {
            return Ok(s.status);
        }
        let all: Vec<usize> = (0..s.hosts.len()).collect();
        let before = self.read_all(&all);
        // Ansible decides which hosts it reaches: every host may be touched from here on.
        self.state.update(|st| {
            st.status = Status::Running;
            for (i, h) in st.hosts.iter_mut().enumerate() {
                if h.before.is_none() {
                    h.before = before.get(&i).cloned().flatten();
                }
                if !matches!(h.phase, Phase::Committed | Phase::Unchanged) {
                    h.phase = Phase::Applying;
                }
                h.touched = true;
            }
        })?;
        (self.log)(format!("ansible-playbook {} (serial {:?})", self.workdir.playbook.display(), (0..s.wave_count()).map(|w| s.wave(w).len()).collect::<Vec<_>>()));
        let r = run_playbook(&self.settings.program, self.workdir, false, &[], self.timeout())?;
        (self.log)(format!("ansible-playbook finished in {:.2} s: {} ok, {} failed", r.seconds, r.ok.len(), r.failed.len()));
        let failed_wave = self.state.update(|st| {
            let mut failed_wave: Option<usize> = None;
            for h in st.hosts.iter_mut() {
                if let Some((unreachable, msg)) = r.failed.get(&h.host.name) {
                    h.phase = if *unreachable { Phase::Unreachable } else { Phase::Failed };
                    h.reason = msg.clone();
                    failed_wave = Some(failed_wave.map_or(h.wave, |w| w.min(h.wave)));
                } else if r.ok.contains(&h.host.name) {
                    h.phase = Phase::Committed;
                    h.written = st.keys.iter().cloned().zip(st.plan.changes.iter().map(|c| c.to.clone())).collect();
                } else if h.phase == Phase::Applying {
                    // Ansible stopped before this host's batch.
                    h.phase = Phase::Untouched;
                    h.touched = false;
                    h.reason = "never touched: an earlier batch failed".into();
                }
            }
            failed_wave
        })?;
        if r.failed.is_empty() && r.code != Some(0) {
            bail!("ansible-playbook exited with {:?} but reported no failed host", r.code);
        }
        match failed_wave {
            None => {
                let after = self.read_all(&all);
                self.state.update(|st| {
                    for (i, h) in st.hosts.iter_mut().enumerate() {
                        h.after = after.get(&i).cloned().flatten();
                    }
                    st.status = Status::Passed;
                })?;
                Ok(Status::Passed)
            }
            Some(w) => {
                self.state.update(|st| {
                    st.failed_wave = Some(w);
                    for h in st.hosts.iter_mut().filter(|h| h.wave > w) {
                        h.phase = Phase::Untouched;
                        h.touched = false;
                        h.reason = format!("never touched: wave {} failed", w + 1);
                    }
                })?;
                self.restore(Some(w), "")
            }
        }
    }

    /// Restores every touched host in waves ≤ `wave` (all touched hosts when `None`) with the rollback play.
    pub fn restore(&self, wave: Option<usize>, why: &str) -> Result<Status> {
        self.state.update(|s| s.status = Status::RollingBack)?;
        let s = self.state.snapshot();
        let idx: Vec<usize> = (0..s.hosts.len()).filter(|&i| s.hosts[i].touched && wave.is_none_or(|w| s.hosts[i].wave <= w)).collect();
        let names: Vec<String> = idx.iter().map(|&i| s.hosts[i].host.name.clone()).collect();
        let culprit = s.hosts.iter().find(|h| matches!(h.phase, Phase::Failed | Phase::Unreachable)).map(|h| format!("{}: {}", h.host.name, h.phase.label())).unwrap_or_else(|| why.to_string());
        (self.log)(format!("rollback play on {} host(s): {}", names.len(), names.join(", ")));
        let r = if names.is_empty() { PlayResult::default() } else { run_playbook(&self.settings.program, self.workdir, true, &names, self.timeout())? };
        let after = self.read_all(&idx);
        let status = self.state.update(|st| {
            for &i in &idx {
                let h = &mut st.hosts[i];
                h.after = after.get(&i).cloned().flatten();
                match r.failed.get(&h.host.name) {
                    Some((_, msg)) => {
                        h.phase = Phase::RollbackFailed;
                        h.reason = format!("{} restore failed: {msg}", if h.reason.is_empty() { String::new() } else { format!("{};", h.reason) });
                    }
                    None if matches!(h.phase, Phase::Failed | Phase::Unreachable) => h.reason = format!("{}; restored on the host", h.reason),
                    None => {
                        h.phase = Phase::RolledBack;
                        h.reason = match wave {
                            Some(w) => format!("wave {} failed ({culprit}); restored", w + 1),
                            None => "rolled back with --rollback-fleet".into(),
                        };
                    }
                }
            }
            st.status = if st.hosts.iter().any(|h| h.phase == Phase::RollbackFailed) {
                Status::NeedsAttention
            } else if wave.is_some() {
                Status::Failed
            } else {
                Status::RolledBack
            };
            st.status
        })?;
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysctl::Value;

    fn targets() -> Vec<Target> {
        vec![Target { key: SysctlKey::parse("net.core.somaxconn").unwrap(), value: Value::from_kernel("4096") }, Target { key: SysctlKey::parse("net.ipv4.tcp_slow_start_after_idle").unwrap(), value: Value::from_kernel("0") }]
    }

    fn opts() -> PlaybookOptions {
        PlaybookOptions { run_id: "r1".into(), serial: vec![Batch::Count(1), Batch::Count(2), Batch::Count(3)], remote_dir: "/var/lib/semantos/{host}".into(), sysctl_file: "/etc/sysctl.d/99-semantos.conf".into(), monitor_seconds: 2.0, health_cmd: Some("curl -fsS http://127.0.0.1/ok && test \"$(id -u)\" = 0".into()), header: vec!["plan: rules\nsecond line".into()] }
    }

    #[test]
    fn playbook_has_waves_fail_fast_module_and_rollback_play() {
        let p = playbook(&targets(), &opts());
        for want in [
            "serial: [1, 2, 3]",
            "max_fail_percentage: 0",
            "ansible.posix.sysctl:",
            "sysctl_set: true",
            "reload: true",
            "state: present",
            "value: !unsafe \"4096\"",
            "tags: [never, rollback]",
            "rescue:",
            "argv: [\"sh\", \"-c\", !unsafe \"curl -fsS http://127.0.0.1/ok && test \\\"$(id -u)\\\" = 0\"]",
            "default('/var/lib/semantos/' ~ inventory_hostname ~ '')",
            "# plan: rules second line",
            "seconds: 2",
        ] {
            assert!(p.contains(want), "{want:?} missing:\n{p}");
        }
        // It is YAML: a list of two plays.
        let v: serde_json::Value = serde_saphyr::from_str(&p.replace("!unsafe ", "")).unwrap();
        assert_eq!(v.as_array().map(|a| a.len()), Some(2));
        assert_eq!(v[0]["serial"], serde_json::json!([1, 2, 3]));
    }

    #[test]
    fn json_report_gives_failed_and_ok_hosts() {
        let out = r#"noise
{"plays": [{"play": {"name": "x"}, "tasks": [{"task": {"name": "health command"}, "hosts": {"h2": {"failed": true, "msg": "non-zero return code"}, "h1": {"changed": false}}}]}],
 "stats": {"h1": {"ok": 5, "failures": 0, "unreachable": 0}, "h2": {"ok": 3, "failures": 1, "unreachable": 0, "rescued": 1}, "h3": {"ok": 0, "failures": 0, "unreachable": 1}}}"#;
        let r = parse_json_report(out).unwrap();
        assert_eq!(r.ok.iter().cloned().collect::<Vec<_>>(), ["h1"]);
        assert_eq!(r.failed["h2"], (false, "health command: non-zero return code".to_string()));
        assert!(r.failed["h3"].0);
    }
}
