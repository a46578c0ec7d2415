//! The man pages, generated from the same definitions as `--help`: one page
//! per command and subcommand (semantos(1), semantos-apply(1),
//! semantos-kb-show(1), ...), each with EXAMPLES (its after_help), EXIT
//! STATUS (`cli::exit`), FILES, ENVIRONMENT and a SEE ALSO that names only
//! pages generated here.

use super::exit;
use clap::Command;

/// (file name, roff text) of every page: the top command's first, then every subcommand's, depth first.
pub fn pages(mut cmd: Command) -> Vec<(String, Vec<u8>)> {
    cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut all = Vec::new();
    collect(&cmd, &mut all);
    let names: Vec<String> = all.iter().map(page_name).collect();
    all.iter().map(|c| (format!("{}.1", page_name(c)), page(c, &names))).collect()
}

fn collect(cmd: &Command, out: &mut Vec<Command>) {
    out.push(cmd.clone());
    for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(s, out);
    }
}

/// `semantos`, `semantos-apply`, `semantos-kb-show`: clap's display name once built.
fn page_name(c: &Command) -> String {
    c.get_display_name().unwrap_or_else(|| c.get_name()).to_string()
}

/// Text escaped for roff: backslashes, and a leading dot or quote that would start a request.
fn esc(line: &str) -> String {
    let s = line.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

fn page(c: &Command, names: &[String]) -> Vec<u8> {
    let name = page_name(c);
    // Our own EXAMPLES section replaces the generic "EXTRA" heading clap_mangen gives after_help.
    let man = clap_mangen::Man::new(c.clone().after_help("").after_long_help("")).title(name.to_uppercase()).section("1").source(format!("semantos {}", super::args::VERSION)).manual("SemantOS");
    let mut out = Vec::new();
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    if c.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(&mut out);
    }
    if c.has_subcommands() {
        let _ = man.render_subcommands_section(&mut out);
    }
    let mut s = String::new();
    let help = c.get_after_help().map(|h| h.to_string()).unwrap_or_default();
    let examples: Vec<&str> = help.split("\n\n").filter(|b| !b.starts_with("Exit status")).collect();
    if !examples.iter().all(|b| b.trim().is_empty()) {
        s.push_str(".SH EXAMPLES\n.nf\n");
        for line in examples.join("\n\n").lines() {
            s.push_str(&esc(line));
            s.push('\n');
        }
        s.push_str(".fi\n");
    }
    s.push_str(".SH \"EXIT STATUS\"\n");
    for (code, what) in exit::ROWS {
        s.push_str(&format!(".TP\n.B {code}\n{}\n", esc(what)));
    }
    s.push_str(FILES);
    s.push_str(ENVIRONMENT);
    let mut see: Vec<String> = Vec::new();
    let parent = name.rsplit_once('-').map(|(p, _)| p.to_string());
    for n in names {
        let is_child = n.strip_prefix(&format!("{name}-")).is_some_and(|rest| !rest.contains('-') || c.find_subcommand(rest).is_some());
        if (Some(n) == parent.as_ref() || is_child || (n == "semantos" && name != "semantos")) && !see.contains(n) {
            see.push(n.clone());
        }
    }
    if !see.is_empty() {
        s.push_str(".SH \"SEE ALSO\"\n");
        let refs: Vec<String> = see.iter().map(|n| format!(".BR {} (1)", esc(n))).collect();
        s.push_str(&refs.join(",\n"));
        s.push('\n');
    }
    out.extend_from_slice(s.as_bytes());
    out
}

const FILES: &str = r#".SH FILES
.TP
.I /var/lib/semantos/
State directory when run as root outside a checkout: sysctl_backup.json (original values), sysctl_backup.journal (an unfinished run), semantos.lock, rollout fences, audit.jsonl (audit log, JSON lines), rollout/state.json.
.TP
.I $XDG_STATE_HOME/semantos/ \fRor\fP ~/.local/state/semantos/
The same, for a user other than root.
.TP
.I experiments/backup/sysctl_backup.json \fRand\fP logs/semantos\-audit.jsonl
Backup and audit log when run from a SemantOS checkout (a Cargo.toml whose package is named semantos), as the experiments/*.sh scripts do.
.TP
.I /etc/sysctl.d/99\-semantos.conf
Drop\-in written with \-\-persist (committed values only), removed again by rollback.
.TP
.I /proc/sys/
The live sysctl tree (\-\-sysctl\-root).
.TP
.I /proc/config.gz
The running kernel's build configuration, read to tell a key the kernel lacks by design from one that is missing.
"#;

const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
.B SEMANTOS_STATE_DIR
State directory instead of the default (\-\-state\-dir wins over it; \-\-backup and \-\-audit\-log win over both).
.TP
.B SEMANTOS_LLM_URL\fR, \fBSEMANTOS_LLM_MODEL\fR, \fBSEMANTOS_LLM_CONFIG\fR, \fBSEMANTOS_LLM_CA_FILE
Defaults for \-\-llm\-url, \-\-llm\-model, \-\-llm\-config and \-\-llm\-ca\-file.
.TP
.B SEMANTOS_LLM_API_KEY
API key of the LLM server; read only from the environment, never from a flag or file.
.TP
.B SEMANTOS_ANSIBLE_PLAYBOOK
The ansible\-playbook program of rollout \-\-engine ansible.
.TP
.B NO_COLOR
When set, no colour in the output.
.TP
.B RUST_LOG
Log filter for diagnostic logging (for example RUST_LOG=semantos=debug).
.TP
.B XDG_STATE_HOME\fR, \fBHOME
Where a user other than root keeps state.
"#;
