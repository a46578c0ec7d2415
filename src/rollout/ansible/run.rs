//! Running `ansible-playbook`: the working directory, the syntax check, the
//! run itself (with a deadline), and Ansible's JSON report read per host.

use crate::eval::process;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
                    // A failed command's `msg` is only "non-zero return code": semantos says why on stderr.
                    let stderr = res["stderr"].as_str().map(str::trim).filter(|e| !e.is_empty()).map(|e| e.lines().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" "));
                    let msg = stderr.or_else(|| res["msg"].as_str().map(str::to_string)).unwrap_or_else(|| "failed".to_string());
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
