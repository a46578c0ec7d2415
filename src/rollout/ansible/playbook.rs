//! The standalone playbook (`semantos export ansible`, for hosts without
//! semantos: ansible.posix.sysctl, a version-1 backup written through Jinja,
//! a rollback play restoring that whole backup), and the inventory and
//! ansible.cfg both playbooks run with, as text: pure functions from the
//! plan's checked targets and the rollout's settings to bytes.

use crate::rollout::inventory::Host;
use crate::rollout::precheck::Target;
use crate::rollout::ssh::{RemoteSettings, SshSettings, sh_quote};
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

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
    /// Seconds the health command may run on a host (`timeout`); then it is killed and the check fails.
    pub health_timeout_s: f64,
    /// Comment lines at the top (the plan's rationale).
    pub header: Vec<String>,
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
pub(super) fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// A string Ansible must never template.
pub(super) fn unsafe_q(s: &str) -> String {
    format!("!unsafe {}", q(s))
}

/// `{host}` → the inventory host name, as a Jinja expression Ansible fills in.
fn host_template(path: &str) -> String {
    path.replace("{host}", "{{ inventory_hostname }}")
}

/// Comment text on one line, without anything YAML would read.
pub(super) fn comment(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

pub(super) fn serial_yaml(serial: &[Batch]) -> String {
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

/// The playbook's opening comments.
fn preamble(o: &PlaybookOptions) -> String {
    let mut s = String::from("---\n# Generated by semantos export ansible: a standalone playbook for hosts without semantos\n# (`semantos rollout --engine ansible` runs semantos on each host instead).\n");
    for h in &o.header {
        let _ = writeln!(s, "# {}", comment(h));
    }
    s.push_str("#\n# Preview:   ansible-playbook -i INVENTORY THIS.yml --check --diff   (writes nothing; shows each key's value now and after)\n");
    s.push_str("# Apply:     ansible-playbook -i INVENTORY THIS.yml\n# Roll back: ansible-playbook -i INVENTORY THIS.yml --tags rollback [--limit HOSTS]\n");
    s.push_str("# Needs the ansible.posix and ansible.utils collections (both in the `ansible` package).\n");
    s.push_str("# Per-host variables: semantos_remote_dir (backup directory), semantos_sysctl_file_path,\n# semantos_become (default true: sysctl writes need root; false when connecting as root without sudo).\n\n");
    s
}

/// The variables both plays share.
fn shared_vars(targets: &[Target], o: &PlaybookOptions) -> String {
    let keys: Vec<String> = targets.iter().map(|t| q(&t.key.to_string())).collect();
    let mut s = String::from("  vars:\n");
    let _ = writeln!(s, "    semantos_run_id: {}", q(&o.run_id));
    let _ = writeln!(s, "    semantos_backup: \"{{{{ semantos_remote_dir | default({}) }}}}/rollout-backup.json\"", sq_jinja(&host_template(&o.remote_dir)));
    let _ = writeln!(s, "    semantos_sysctl_file: \"{{{{ semantos_sysctl_file_path | default({}) }}}}\"", sq_jinja(&host_template(&o.sysctl_file)));
    let _ = writeln!(s, "    semantos_keys: [{}]", keys.join(", "));
    s
}

/// `/proc/sys` paths of the targets, quoted (from validated keys, `SysctlKey::rel_path`, never from templates).
fn proc_paths(targets: &[Target]) -> Vec<String> {
    targets.iter().map(|t| q(&format!("/proc/sys/{}", t.key.rel_path().display()))).collect()
}

/// Read the values and the host's identity, then write the backup before the first write.
fn backup_tasks(targets: &[Target]) -> String {
    let n = targets.len();
    let identity = ["\"/proc/sys/kernel/hostname\"", "\"/proc/sys/kernel/random/boot_id\"", "\"/proc/sys/kernel/osrelease\""];
    let paths = proc_paths(targets);
    format!(
        r#"- name: "read the values and the host identity before the first write"
  ansible.builtin.command:
    argv: ["cat", {all}]
  register: semantos_read
  changed_when: false
  check_mode: false
- name: "read an earlier backup, if any"
  ansible.builtin.command:
    argv: ["cat", "{{{{ semantos_backup }}}}"]
  register: semantos_old_raw
  changed_when: false
  failed_when: false
  check_mode: false
- name: "build the backup (an earlier unrestored backup's originals win)"
  ansible.builtin.set_fact:
    semantos_old: "{{{{ (semantos_old_raw.stdout | from_json) if semantos_old_raw.rc == 0 else {{'state': 'restored'}} }}}}"
    semantos_now: "{{{{ semantos_read.stdout_lines | map('split') | map('join', ' ') | list }}}}"
- name: "refuse an unrestored backup from another boot (its values were reset by the reboot)"
  ansible.builtin.fail:
    msg: "an unrestored backup {{{{ semantos_backup }}}} from boot {{{{ semantos_old.host.boot_id }}}} exists and this is boot {{{{ semantos_now[{boot}] }}}}: run `semantos rollback --force --backup {{{{ semantos_backup }}}}` or move it away"
  when: semantos_old.state != 'restored' and semantos_old.host.boot_id != semantos_now[{boot}]
- name: "each key's value now and after (shown with --diff)"
  ansible.utils.fact_diff:
    before: "{{{{ dict(semantos_keys | zip(semantos_now[:{n}])) }}}}"
    after: "{{{{ dict(semantos_keys | zip(semantos_values | map('string'))) }}}}"
  when: ansible_diff_mode
- name: "write the backup before the first write"
  ansible.builtin.set_fact:
    semantos_doc: "{{{{ {{'schema_version': 1, 'run_id': semantos_run_id, 'created_at': (semantos_old.created_at if semantos_old.state != 'restored' else (now(utc=true).timestamp() | int)), 'host': {{'hostname': semantos_now[{host}], 'boot_id': semantos_now[{boot}], 'kernel_release': semantos_now[{release}]}}, 'store': '/proc/sys', 'originals': (dict(semantos_keys | zip(semantos_now[:{n}])) | combine(semantos_old.originals if semantos_old.state != 'restored' else {{}})), 'state': 'in_progress', 'plan': {{'source': 'ansible', 'changes': dict(semantos_keys | zip(semantos_values | map('string')))}}, 'persisted_to': semantos_sysctl_file}} }}}}"
{write}"#,
        write = write_backup_task("save the backup (0600, atomically)", "semantos_doc | to_nice_json", None),
        all = paths.iter().map(String::as_str).chain(identity).collect::<Vec<_>>().join(", "),
        host = n,
        boot = n + 1,
        release = n + 2,
    )
}

/// Write each key, read every value back, wait the monitor window, run the bounded health command, commit.
fn write_and_check_tasks(targets: &[Target], o: &PlaybookOptions) -> String {
    let mut body = String::new();
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
  when: not ansible_check_mode
- name: "verify the kernel kept every value"
  ansible.builtin.assert:
    that: "(semantos_after.stdout_lines | map('split') | map('join', ' ') | list) == (semantos_values | map('string') | list)"
    fail_msg: "read back {{{{ semantos_after.stdout_lines }}}} after writing {{{{ semantos_values }}}} to {{{{ semantos_keys }}}}"
    quiet: true
  when: not ansible_check_mode
"#,
        paths = proc_paths(targets).join(", ")
    );
    if o.monitor_seconds > 0.0 {
        let _ = write!(body, "- name: \"monitor window\"\n  ansible.builtin.pause:\n    seconds: {}\n  when: not ansible_check_mode\n", o.monitor_seconds.ceil() as u64);
    }
    if let Some(cmd) = &o.health_cmd {
        // Bounded on the host: a hung command is killed (with its children: -k) and fails the check.
        let t = o.health_timeout_s.ceil().max(1.0) as u64;
        let _ = write!(body, "- name: \"health command (at most {t} s)\"\n  ansible.builtin.command:\n    argv: [\"timeout\", \"-k\", \"5\", \"{t}\", \"sh\", \"-c\", {}]\n  changed_when: false\n  when: not ansible_check_mode\n", unsafe_q(cmd));
    }
    body.push_str(&write_backup_task("mark the backup committed", "semantos_doc | combine({'state': 'committed'}) | to_nice_json", None));
    body
}

/// The apply block's rescue: restore only what this run wrote (without our backup, nothing was written), then fail the host.
fn rescue_tasks() -> String {
    let mut s = String::new();
    for l in restore_tasks("").lines() {
        let l = match l.strip_prefix("  when: ") {
            Some(cond) => format!("  when: semantos_doc is defined and ({cond})"),
            None => l.to_string(),
        };
        let l = if l.starts_with("  register: semantos_restore_raw") { format!("{l}\n  when: semantos_doc is defined") } else { l };
        let _ = writeln!(s, "{l}");
    }
    s.push_str("- name: \"fail this host: the batch stops here (max_fail_percentage: 0)\"\n  ansible.builtin.fail:\n    msg: \"semantos: {{ ansible_failed_result.msg | default('a task failed') }}; anything written on this host was restored from its backup\"\n");
    s
}

/// `text` with every line indented by `by`.
fn indented(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// The standalone playbook (`semantos export ansible`, no semantos on the hosts): an apply play in
/// waves and a rollback play that restores the whole backup. Pure.
pub fn playbook(targets: &[Target], o: &PlaybookOptions) -> String {
    let mut s = preamble(o);
    let _ = writeln!(s, "- name: \"semantos: apply {} sysctl change(s) in {} wave(s)\"", targets.len(), o.serial.len());
    s.push_str("  hosts: \"{{ semantos_hosts | default('all') }}\"\n  gather_facts: false\n  become: \"{{ semantos_become | default(true) }}\"\n");
    let _ = writeln!(s, "  serial: {}", serial_yaml(&o.serial));
    s.push_str("  max_fail_percentage: 0\n");
    s.push_str(&shared_vars(targets, o));
    let _ = writeln!(s, "    semantos_values: [{}]", targets.iter().map(|t| unsafe_q(t.value.as_str())).collect::<Vec<_>>().join(", "));
    s.push_str("  tasks:\n    - name: \"semantos: apply\"\n      tags: [apply]\n      block:\n");
    s.push_str(&indented(&backup_tasks(targets), "        "));
    s.push_str(&indented(&write_and_check_tasks(targets, o), "        "));
    s.push_str("      rescue:\n");
    s.push_str(&indented(&rescue_tasks(), "        "));
    s.push('\n');
    s.push_str("- name: \"semantos: roll back from the backup on each host\"\n  hosts: \"{{ semantos_hosts | default('all') }}\"\n  gather_facts: false\n  become: \"{{ semantos_become | default(true) }}\"\n  tags: [never, rollback]\n");
    s.push_str(&shared_vars(targets, o));
    s.push_str("  tasks:\n");
    s.push_str(&restore_tasks("    "));
    s
}

/// A Jinja single-quoted string literal of `s` whose `{{ inventory_hostname }}` stays an expression.
pub(super) fn sq_jinja(s: &str) -> String {
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
        // Above the `timeout --host-timeout` each host's semantos runs under, so that bound fires first
        // and the task reports the host's own timeout (and the host restores itself) rather than Ansible's.
        host_timeout_s.ceil() as u64 + 15,
        control_dir.display(),
        ssh_args.replace('%', "%%")
    )
}
