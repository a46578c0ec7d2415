//! The Ansible engine's playbook: Ansible does the waves (`serial`,
//! `max_fail_percentage: 0`) and the connections, and on each host runs the
//! same `semantos apply --rollout-id ID` the ssh engine runs; its rollback
//! play runs `semantos rollback --fence-rollout ID`. Why not the pure-Ansible
//! playbook (`playbook::playbook`, kept for `semantos export ansible`): one
//! backup format and one restore logic on every engine — per-apply layers,
//! so that restoring rollout B leaves an earlier rollout A in place, the
//! journal that undoes an interrupted apply alone, the fence against a late
//! apply, the host's own guardrails and a bounded health command — instead
//! of a second, Jinja-written copy of each. Pure: text from settings.

use super::playbook::{Batch, comment, q, serial_yaml, sq_jinja, unsafe_q};
use crate::rollout::settings::RemoteSettings;
use std::fmt::Write as _;

/// What the engine's playbook needs besides the hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// The rollout's id: every apply carries it, the rollback play fences and undoes it.
    pub rollout_id: String,
    /// `serial` batches (our waves).
    pub serial: Vec<Batch>,
    /// What runs on each host and where (the same settings as the ssh engine's).
    pub remote: RemoteSettings,
    /// The checked plan as JSON, given to each host's apply on standard input.
    pub plan_json: String,
    /// Number of changes in the plan (for the play's name).
    pub changes: usize,
    /// Comment lines at the top.
    pub header: Vec<String>,
}

/// A flow-sequence item: a literal (quoted) or a Jinja expression over the play's variables.
enum Word {
    Lit(String),
    Var(&'static str),
    Unsafe(String),
}

/// One argv item as YAML.
fn word(w: &Word) -> String {
    match w {
        Word::Lit(s) => q(s),
        Word::Var(expr) => q(&format!("{{{{ {expr} }}}}")),
        Word::Unsafe(s) => unsafe_q(s),
    }
}

/// An argv flow sequence.
fn argv(words: &[Word]) -> String {
    format!("[{}]", words.iter().map(word).collect::<Vec<_>>().join(", "))
}

/// `semantos SUB` on the host under `timeout --host-timeout`, with the files the ssh engine passes.
fn semantos_argv(o: &EngineOptions, sub: &str) -> Vec<Word> {
    let r = &o.remote;
    let t = r.host_timeout_s.ceil() as u64;
    let mut w: Vec<Word> = ["timeout", "-k", "5", &t.to_string()].iter().map(|s| Word::Lit(s.to_string())).collect();
    w.push(Word::Var("semantos_bin"));
    w.extend(["--json", sub, "--sysctl-root", "/proc/sys", "--audit-log"].map(|s| Word::Lit(s.into())));
    w.push(Word::Var("semantos_dir ~ '/audit.jsonl'"));
    w.push(Word::Lit("--backup".into()));
    w.push(Word::Var("semantos_dir ~ '/rollout-backup.json'"));
    // A restore passes the same KB and policy checks as the apply: the files live beside the backup.
    if !r.kb.is_empty() {
        w.push(Word::Lit("--kb".into()));
        w.push(Word::Var("semantos_dir ~ '/kb'"));
    }
    if r.policy.is_some() {
        w.push(Word::Lit("--policy".into()));
        w.push(Word::Var("semantos_dir ~ '/rollout-policy.yaml'"));
    }
    w
}

/// The apply's flags after the common ones: plan on stdin, rollout id, monitor, health, persist.
fn apply_flags(o: &EngineOptions, w: &mut Vec<Word>) {
    let r = &o.remote;
    w.extend(["--interval".to_string(), format!("{}", r.interval), "--plan".into(), "-".into(), "--rollout-id".into(), o.rollout_id.clone()].map(Word::Lit));
    if let Some(s) = r.monitor_seconds {
        w.extend(["--monitor-seconds".to_string(), format!("{s}")].map(Word::Lit));
    }
    if let Some(c) = &r.health_cmd {
        w.push(Word::Lit("--health-cmd".into()));
        w.push(Word::Unsafe(c.clone()));
    }
    if let Some(t) = r.health_timeout_s {
        w.extend(["--health-timeout".to_string(), format!("{t}")].map(Word::Lit));
    }
    if r.persist.is_some() {
        w.push(Word::Var("'--persist=' ~ semantos_sysctl_file_path"));
    }
}

/// A play's opening lines (both plays share them).
fn play_head(s: &mut String, name: &str) {
    let _ = writeln!(s, "- name: {}", q(name));
    s.push_str("  hosts: \"{{ semantos_hosts | default('all') }}\"\n  gather_facts: false\n  become: \"{{ semantos_become | default(false) }}\"\n");
}

/// The variables both plays share: the rollout id, the working directory and the binary on the host.
fn play_vars(s: &mut String, o: &EngineOptions) {
    let r = &o.remote;
    let dir = sq_jinja(&r.dir.replace("{host}", "{{ inventory_hostname }}"));
    s.push_str("  vars:\n");
    let _ = writeln!(s, "    semantos_rollout_id: {}", q(&o.rollout_id));
    let _ = writeln!(s, "    semantos_dir: \"{{{{ semantos_remote_dir | default({dir}) }}}}\"");
    match &r.copy_binary {
        Some(_) => s.push_str("    semantos_bin: \"{{ semantos_dir }}/semantos\"\n"),
        None => {
            let _ = writeln!(s, "    semantos_bin: {}", unsafe_q(&r.semantos));
        }
    }
}

/// Upload `text` to `dest` (a Jinja expression) atomically, mode 0600, in one module run.
fn upload_task(name: &str, dest: &str, text: &str) -> String {
    format!(
        "- name: {}\n  ansible.builtin.command:\n    argv: [\"sh\", \"-c\", \"umask 077 && cat > \\\"$1.tmp\\\" && mv -f \\\"$1.tmp\\\" \\\"$1\\\"\", \"semantos-upload\", \"{{{{ {dest} }}}}\"]\n    stdin: {}\n    stdin_add_newline: false\n  changed_when: false\n",
        q(name),
        unsafe_q(text)
    )
}

/// The tasks that put the binary, the KB and the policy in the host's working directory.
fn prepare_tasks(o: &EngineOptions) -> String {
    let r = &o.remote;
    let mut t = String::from("- name: \"working directory (0700)\"\n  ansible.builtin.command:\n    argv: [\"sh\", \"-c\", \"umask 077 && mkdir -p -- \\\"$1\\\"\", \"semantos-prepare\", \"{{ semantos_dir }}\"]\n  changed_when: false\n");
    if let Some(bin) = &r.copy_binary {
        let _ = write!(t, "- name: \"copy semantos to the host\"\n  ansible.builtin.copy:\n    src: {}\n    dest: \"{{{{ semantos_dir }}}}/semantos\"\n    mode: \"0755\"\n", unsafe_q(&bin.display().to_string()));
    }
    if !r.kb.is_empty() {
        // A fresh directory each time: a file left from an earlier rollout must not be merged.
        t.push_str("- name: \"replace the knowledge-base directory\"\n  ansible.builtin.command:\n    argv: [\"sh\", \"-c\", \"rm -rf -- \\\"$1\\\" && mkdir -m 700 -- \\\"$1\\\"\", \"semantos-prepare\", \"{{ semantos_dir }}/kb\"]\n  changed_when: false\n");
        for (name, text) in &r.kb {
            t.push_str(&upload_task(&format!("upload kb/{name}"), &format!("semantos_dir ~ '/kb/{name}'"), text));
        }
    }
    if let Some(p) = &r.policy {
        t.push_str(&upload_task("upload the policy", "semantos_dir ~ '/rollout-policy.yaml'", p));
    }
    t
}

/// The apply task and its rescue: a failed apply has restored its own writes on the host (or left
/// its journal for the rollback play), and failing the host stops Ansible after this batch.
fn apply_block(o: &EngineOptions) -> String {
    let mut words = semantos_argv(o, "apply");
    apply_flags(o, &mut words);
    format!(
        r#"- name: "semantos: apply"
  tags: [apply]
  block:
    - name: "semantos apply --rollout-id (lock, journal, backup, batched writes with read-back, monitor, health; restores itself on failure)"
      ansible.builtin.command:
        argv: {argv}
        stdin: {plan}
      register: semantos_apply
      changed_when: "'nothing_to_do' not in semantos_apply.stdout"
  rescue:
    - name: "fail this host: the batch stops here (max_fail_percentage: 0)"
      ansible.builtin.fail:
        msg: "semantos apply exited with {{{{ ansible_failed_result.rc | default('?') }}}}: {{{{ (ansible_failed_result.stderr_lines | default([ansible_failed_result.msg | default('a task failed')]))[-2:] | join(' ') }}}}"
"#,
        argv = argv(&words),
        plan = unsafe_q(&o.plan_json),
    )
}

/// The rollback task: fence rollout ID on the host, then undo its changes only (or refuse, writing nothing).
fn rollback_task(o: &EngineOptions) -> String {
    let mut words = semantos_argv(o, "rollback");
    words.extend(["--fence-rollout".to_string(), o.rollout_id.clone()].map(Word::Lit));
    format!(
        r#"- name: "semantos rollback --fence-rollout (this rollout's changes only; an earlier rollout's stay)"
  ansible.builtin.command:
    argv: {argv}
  register: semantos_rollback
  changed_when: "semantos_rollback.rc == 0 and '\"already_restored\": true' not in semantos_rollback.stdout"
  failed_when: "semantos_rollback.rc != 0 and 'nothing to roll back' not in semantos_rollback.stderr"
"#,
        argv = argv(&words)
    )
}

/// `text` with every non-empty line indented by `by`.
fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| if l.is_empty() { String::new() } else { format!("{by}{l}\n") }).collect()
}

/// The engine's playbook: an apply play in waves running `semantos apply` on each host, and a
/// rollback play (tags `never, rollback`) running `semantos rollback --fence-rollout`. Pure.
pub fn engine_playbook(o: &EngineOptions) -> String {
    let mut s = String::from("---\n# Generated by semantos rollout --engine ansible: each host runs `semantos apply` (the ssh engine's transaction).\n");
    for h in &o.header {
        let _ = writeln!(s, "# {}", comment(h));
    }
    let _ = writeln!(s, "#\n# Apply:     ansible-playbook -i inventory.yml playbook.yml\n# Roll back: ansible-playbook -i inventory.yml playbook.yml --tags rollback [--limit HOSTS]\n#            (undoes rollout {} only: a host's earlier rollouts stay)\n", comment(&o.rollout_id));
    play_head(&mut s, &format!("semantos: apply {} sysctl change(s) of rollout {} in {} wave(s)", o.changes, o.rollout_id, o.serial.len()));
    let _ = writeln!(s, "  serial: {}\n  max_fail_percentage: 0", serial_yaml(&o.serial));
    play_vars(&mut s, o);
    s.push_str("  tasks:\n");
    s.push_str(&indent(&prepare_tasks(o), "    "));
    s.push_str(&indent(&apply_block(o), "    "));
    s.push('\n');
    play_head(&mut s, &format!("semantos: undo rollout {} on each host", o.rollout_id));
    s.push_str("  tags: [never, rollback]\n");
    play_vars(&mut s, o);
    s.push_str("  tasks:\n");
    s.push_str(&indent(&rollback_task(o), "    "));
    s
}
