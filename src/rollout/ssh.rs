//! The ssh engine: the system OpenSSH client runs the same `semantos`
//! binary on each host (`semantos apply --plan -`, `semantos rollback`), so
//! every host gets the single-host transaction — lock, journal, backup on
//! that host in the same format, batched writes with read-back, monitor
//! window, health command, restore on failure. No agent protocol of our own.
//!
//! What ssh is given:
//! * the user's own config, known_hosts and agent (or `--ssh-config FILE`),
//!   with `BatchMode=yes` (never prompt), `ConnectTimeout`, and connection
//!   multiplexing (`ControlMaster=auto`, `ControlPersist`) through sockets
//!   in a private 0700 directory that is removed at the end;
//! * one remote command line built only from validated pieces, each quoted:
//!   keys (`SysctlKey`), paths, the remote binary path and the operator's
//!   health command. The plan itself travels on standard input as JSON,
//!   never on a command line.

use super::fleet::{Applied, Failure, HostError, Remote, Restored};
use super::inventory::Host;
use crate::eval::process::{self, Finished};
pub use super::settings::{RemoteSettings, SshSettings};
use super::state::Values;
use crate::kb::Intent;
use crate::reasoning::Plan;
use crate::sysctl::SysctlKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// Quotes one word for a POSIX shell: bare when it only holds safe characters, else in single quotes.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The part of stdout from the first line that opens a JSON object (login scripts may print before it).
/// The message of a remote `semantos` error from the last line of its stderr: the `error` document
/// it prints under `--json` (message and causes), else the plain line without its prefix.
fn remote_error(line: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
        && v["kind"] == "error"
        && let Some(m) = v["message"].as_str()
    {
        let causes = v["causes"].as_array().into_iter().flatten().filter_map(|c| c.as_str());
        return std::iter::once(m).chain(causes).collect::<Vec<_>>().join(": ");
    }
    line.strip_prefix("semantos: error: ").unwrap_or(line).to_string()
}

fn json_of(stdout: &str) -> Option<serde_json::Value> {
    let start = stdout.lines().scan(0usize, |off, l| {
        let here = *off;
        *off += l.len() + 1;
        Some((here, l))
    });
    for (off, line) in start {
        if line.trim_start().starts_with('{') {
            let mut it = serde_json::Deserializer::from_str(&stdout[off..]).into_iter::<serde_json::Value>();
            if let Some(Ok(v)) = it.next() {
                return Some(v);
            }
        }
    }
    None
}

/// Marks the health command's exit status in a combined gate check's output.
const HEALTH_RC: &str = "__semantos_health_rc=";

/// A POSIX sh loop printing one line per key: path, tab, value with newlines folded
/// (arrays come back tab-separated); a missing key prints an empty value.
fn read_script(keys: &[SysctlKey]) -> String {
    let list = keys.iter().map(|k| sh_quote(&format!("/proc/sys/{}", k.rel_path().display()))).collect::<Vec<_>>().join(" ");
    format!("for f in {list}; do printf '%s\\t' \"$f\"; tr '\\n' ' ' 2>/dev/null < \"$f\"; echo; done")
}

/// The values in `read_script`'s output (lines from login scripts are ignored).
fn parse_values(keys: &[SysctlKey], stdout: &str) -> Values {
    let got: BTreeMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('\t')).filter(|(p, _)| p.starts_with("/proc/sys/")).collect();
    keys.iter()
        .map(|k| {
            let p = format!("/proc/sys/{}", k.rel_path().display());
            let v = got.get(p.as_str()).map(|v| crate::sysctl::Value::from_kernel(v).to_string()).filter(|v| !v.is_empty());
            (k.to_string(), v)
        })
        .collect()
}

/// A monitor verdict without its `batch N [keys]: ` prefix (the table already names the keys).
fn short_detail(d: &str) -> &str {
    if d.starts_with("batch ") && let Some((_, rest)) = d.split_once("]: ") { rest } else { d }
}

/// The engine.
pub struct SshEngine {
    ssh: SshSettings,
    remote: RemoteSettings,
    control_dir: PathBuf,
    contacted: Mutex<Vec<Host>>,
    rollout_id: Option<String>,
}

impl SshEngine {
    /// An engine with its private control-socket directory (mode 0700, removed on drop).
    pub fn new(ssh: SshSettings, remote: RemoteSettings) -> std::io::Result<SshEngine> {
        use std::os::unix::fs::DirBuilderExt;
        // A Unix socket path must fit in 108 bytes: the directory, `/%C` (41) and the
        // 17-byte suffix ssh adds while creating the socket. A long $TMPDIR falls back to /tmp.
        let base = Some(std::env::temp_dir()).filter(|d| d.as_os_str().len() <= 40).unwrap_or_else(|| PathBuf::from("/tmp"));
        let mut n = 0u32;
        let control_dir = loop {
            let d = base.join(format!("semantos-ssh-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&d) {
                Ok(()) => break d,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(e),
            }
        };
        Ok(SshEngine { ssh, remote, control_dir, contacted: Mutex::new(Vec::new()), rollout_id: None })
    }

    /// Tags every apply with rollout `id` and fences it on each host a final rollback restores.
    pub fn with_rollout_id(mut self, id: &str) -> SshEngine {
        self.rollout_id = Some(id.to_string());
        self
    }

    /// The remote settings.
    pub fn remote_settings(&self) -> &RemoteSettings {
        &self.remote
    }

    /// `ssh` with every option, ready for a remote command.
    fn base(&self, host: &Host) -> Command {
        let mut c = Command::new(&self.ssh.program);
        c.arg("-T");
        if let Some(cfg) = &self.ssh.config {
            c.arg("-F").arg(cfg);
        }
        // Command-line options win over the config file: these are the ones a
        // non-interactive, multiplexed controller cannot do without.
        for o in [
            "BatchMode=yes".to_string(),
            format!("ConnectTimeout={}", self.ssh.connect_timeout_s),
            "ControlMaster=auto".to_string(),
            format!("ControlPath={}/%C", self.control_dir.display()),
            "ControlPersist=60".to_string(),
            "ServerAliveInterval=10".to_string(),
            "ServerAliveCountMax=3".to_string(),
            "LogLevel=ERROR".to_string(),
        ]
        .iter()
        .chain(&self.ssh.options)
        {
            c.arg("-o").arg(o);
        }
        if let Some(p) = host.port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &host.user {
            c.arg("-l").arg(u);
        }
        if let Some(i) = &host.identity_file {
            c.arg("-i").arg(i);
        }
        c
    }

    /// Runs shell `script` on `host` with `stdin`; maps connection failures and timeouts. Every
    /// remote command goes through here, and here it is put under the remote `timeout`
    /// (`remote_line`): an upload whose input never ends, a hung `mkdir` on a dead NFS mount or a
    /// stuck read stops on the host too, not only the ssh client on the controller.
    fn call(&self, host: &Host, script: &str, stdin: Option<&[u8]>) -> Result<Finished, HostError> {
        {
            let mut seen = self.contacted.lock().unwrap_or_else(|p| p.into_inner());
            if !seen.iter().any(|h| h.name == host.name) {
                seen.push(host.clone());
            }
        }
        let mut c = self.base(host);
        let address = host.address.trim_start_matches('[').trim_end_matches(']');
        tracing::debug!(host = %host.name, %address, command = %script, "ssh");
        c.arg("--").arg(address).arg(self.remote_line(script));
        // The remote bound, its kill grace, and time for the connection and the answer.
        let timeout = Duration::from_secs(self.outer_bound_s() + 5 + 10);
        let f = process::run(c, stdin, timeout).map_err(|e| HostError::new(Failure::Failed, format!("{}: cannot run {}: {e}", host.name, self.ssh.program)))?;
        if f.timed_out() {
            return Err(HostError::new(Failure::TimedOut, format!("{}: no answer within {:.0} s (--host-timeout)", host.name, timeout.as_secs_f64())));
        }
        if f.code() == Some(255) {
            return Err(HostError::new(Failure::Unreachable, format!("{}: ssh to {} failed: {}", host.name, host.address, f.stderr_tail())));
        }
        Ok(f)
    }

    /// The bound of a whole remote command line: `--host-timeout` plus a margin, so that the
    /// `semantos` or health command inside it, bounded by `--host-timeout` itself, reports its own
    /// timeout (exit 124) before the outer bound cuts the line short.
    fn outer_bound_s(&self) -> u64 {
        self.remote.host_timeout_s.ceil() as u64 + 10
    }

    /// `script` as the remote command line, under the remote `timeout`.
    fn remote_line(&self, script: &str) -> String {
        format!("timeout -k 5 {} sh -c {}", self.outer_bound_s(), sh_quote(script))
    }

    /// `words` under `timeout --host-timeout`: the `semantos` run or health command inside a remote line.
    fn bounded(&self, words: &[String]) -> String {
        let t = self.remote.host_timeout_s.ceil() as u64;
        let mut s = format!("timeout -k 5 {t}");
        for w in words {
            s.push(' ');
            s.push_str(&sh_quote(w));
        }
        s
    }

    /// The health command under its bound: `--health-timeout` when the controller was given one (never
    /// above `--host-timeout`), else `--host-timeout`; a command still running then fails the check.
    fn health_line(&self, cmd: &str) -> String {
        let words = ["sh".to_string(), "-c".into(), cmd.to_string()];
        match self.remote.health_timeout_s {
            Some(t) => {
                let t = t.min(self.remote.host_timeout_s).ceil().max(1.0) as u64;
                let mut s = format!("timeout -k 5 {t}");
                for w in &words {
                    s.push(' ');
                    s.push_str(&sh_quote(w));
                }
                s
            }
            None => self.bounded(&words),
        }
    }

    fn semantos_words(&self, host: &Host, sub: &str) -> Vec<String> {
        let dir = self.remote.dir_on(host);
        let mut w = vec![self.remote.semantos_on(host), "--json".into(), sub.into(), "--sysctl-root".into(), "/proc/sys".into()];
        // `recommend` writes nothing and takes no state flags (a flag a command does not use is a usage error).
        if sub != "recommend" {
            w.extend(["--audit-log".into(), format!("{dir}/audit.jsonl"), "--backup".into(), self.remote.backup_on(host)]);
        }
        // A restore passes the same KB and policy checks as the apply (a backup's keys are not trusted):
        // it needs the files the apply used, which live in the same directory as the backup.
        if let Some(kb) = self.remote.kb_on(host) {
            w.extend(["--kb".into(), kb]);
        }
        if self.remote.policy.is_some() {
            w.extend(["--policy".into(), format!("{dir}/rollout-policy.yaml")]);
        }
        if sub != "rollback" {
            w.extend(["--interval".into(), format!("{}", self.remote.interval)]);
        }
        w
    }

    /// Classifies a failed `semantos` run on a host.
    fn semantos_error(&self, host: &Host, what: &str, f: &Finished) -> HostError {
        let tail = f.stderr_tail();
        let msg = remote_error(&tail);
        let code = f.code().unwrap_or(-1);
        let (kind, text) = match code {
            124 | 137 => (Failure::TimedOut, format!("{what} passed --host-timeout ({:.0} s) and was stopped on the host; its transaction is restored by rollback", self.remote.host_timeout_s)),
            126 | 127 => (Failure::Failed, format!("`{}` cannot be run there ({}); install it, point --remote-semantos at it, or pass --copy-binary", self.remote.semantos_on(host), if tail.is_empty() { format!("exit {code}") } else { tail.clone() })),
            2 => (Failure::Refused, format!("the host's guardrails rejected the plan, nothing written: {msg}")),
            _ if msg.contains("holds the lock") => (Failure::Busy, msg),
            _ if msg.contains("was interrupted") => (Failure::Interrupted, msg),
            _ => (Failure::Failed, if msg.is_empty() { format!("{what} exited with {code}") } else { msg }),
        };
        HostError::new(kind, format!("{}: {text}", host.name))
    }

    /// Asks `host` for a plan for `intent` (its own telemetry, KB and policy); the caller validates it.
    pub fn recommend(&self, host: &Host, intent: Intent) -> Result<Plan, HostError> {
        self.prepare(host)?;
        let mut words = self.semantos_words(host, "recommend");
        words.extend(["--intent".into(), intent.name().into()]);
        let f = self.call(host, &self.bounded(&words), None)?;
        let Some(v) = json_of(&f.stdout) else { return Err(self.semantos_error(host, "recommend", &f)) };
        let plan = v.get("plan").cloned().ok_or_else(|| HostError::new(Failure::Failed, format!("{}: recommend printed no plan", host.name)))?;
        Plan::from_json(&plan.to_string(), &format!("plan recommended on {}", host.name)).map_err(|e| HostError::new(Failure::Failed, format!("{e:#}")))
    }

    fn upload(&self, host: &Host, bytes: &[u8], dest: &str, mode: &str) -> Result<(), HostError> {
        let tmp = format!("{dest}.tmp-semantos");
        let cmd = format!("umask 077 && mkdir -p -- {dir} && cat > {tmp} && chmod {mode} {tmp} && mv -f -- {tmp} {dest}", dir = sh_quote(&self.remote.dir_on(host)), tmp = sh_quote(&tmp), dest = sh_quote(dest));
        let f = self.call(host, &cmd, Some(bytes))?;
        if f.code() != Some(0) {
            return Err(HostError::new(Failure::Failed, format!("{}: uploading {dest} failed: {}", host.name, f.stderr_tail())));
        }
        Ok(())
    }
}

impl Remote for SshEngine {
    fn prepare(&self, host: &Host) -> Result<(), HostError> {
        let dir = self.remote.dir_on(host);
        if let Some(bin) = &self.remote.copy_binary {
            let bytes = std::fs::read(bin).map_err(|e| HostError::new(Failure::Failed, format!("reading {} to copy it to {}: {e}", bin.display(), host.name)))?;
            self.upload(host, &bytes, &format!("{dir}/semantos"), "755")?;
        }
        if let Some(kb) = self.remote.kb_on(host) {
            // A fresh directory each time: a file left from an earlier rollout must not be merged.
            let f = self.call(host, &format!("umask 077 && mkdir -p -- {d} && rm -rf -- {k} && mkdir -- {k}", d = sh_quote(&dir), k = sh_quote(&kb)), None)?;
            if f.code() != Some(0) {
                return Err(HostError::new(Failure::Failed, format!("{}: creating {kb} failed: {}", host.name, f.stderr_tail())));
            }
            for (name, text) in &self.remote.kb {
                self.upload(host, text.as_bytes(), &format!("{kb}/{name}"), "600")?;
            }
        }
        match &self.remote.policy {
            Some(p) => self.upload(host, p.as_bytes(), &format!("{dir}/rollout-policy.yaml"), "600"),
            None => {
                let f = self.call(host, &format!("umask 077 && mkdir -p -- {}", sh_quote(&dir)), None)?;
                if f.code() != Some(0) {
                    return Err(HostError::new(Failure::Failed, format!("{}: creating {dir} failed: {}", host.name, f.stderr_tail())));
                }
                Ok(())
            }
        }
    }

    fn read(&self, host: &Host, keys: &[SysctlKey]) -> Result<Values, HostError> {
        let f = self.call(host, &read_script(keys), None)?;
        if f.code() != Some(0) {
            return Err(HostError::new(Failure::Failed, format!("{}: reading values failed: {}", host.name, f.stderr_tail())));
        }
        Ok(parse_values(keys, &f.stdout))
    }

    fn prepare_and_read(&self, host: &Host, keys: &[SysctlKey]) -> Result<Values, HostError> {
        // One round trip: working directory, policy upload, values.
        if self.remote.copy_binary.is_some() || !self.remote.kb.is_empty() {
            self.prepare(host)?;
            return self.read(host, keys);
        }
        let dir = self.remote.dir_on(host);
        let mut cmd = format!("umask 077 && mkdir -p -- {}", sh_quote(&dir));
        if self.remote.policy.is_some() {
            let dest = format!("{dir}/rollout-policy.yaml");
            let tmp = format!("{dest}.tmp-semantos");
            cmd.push_str(&format!(" && cat > {t} && mv -f -- {t} {d}", t = sh_quote(&tmp), d = sh_quote(&dest)));
        }
        cmd.push_str(" && { ");
        cmd.push_str(&read_script(keys));
        cmd.push_str("; }");
        let f = self.call(host, &cmd, self.remote.policy.as_deref().map(str::as_bytes))?;
        if f.code() != Some(0) {
            return Err(HostError::new(Failure::Failed, format!("{}: preparing {dir} failed: {}", host.name, f.stderr_tail())));
        }
        Ok(parse_values(keys, &f.stdout))
    }

    fn read_and_check_health(&self, host: &Host, keys: &[SysctlKey]) -> Result<(Values, Result<(), HostError>), HostError> {
        let Some(hc) = &self.remote.health_cmd else { return Ok((self.read(host, keys)?, Ok(()))) };
        // One round trip: the values, then the health command's exit status and last words.
        let health = self.health_line(hc);
        let cmd = format!("{}; out=$({health} 2>&1 </dev/null); rc=$?; printf '{HEALTH_RC}%s\\n' \"$rc\"; printf '%s\\n' \"$out\" | tail -n 2", read_script(keys));
        let f = self.call(host, &cmd, None)?;
        let values = parse_values(keys, &f.stdout);
        let Some((_, after)) = f.stdout.split_once(HEALTH_RC) else {
            return Err(HostError::new(Failure::Failed, format!("{}: the gate check printed no health status: {}", host.name, f.stderr_tail())));
        };
        let (rc, tail) = after.split_once('\n').unwrap_or((after, ""));
        let tail = tail.split_whitespace().collect::<Vec<_>>().join(" ");
        let verdict = match rc.trim() {
            "0" => Ok(()),
            rc => Err(HostError::new(Failure::Unhealthy, format!("{}: health command {hc:?} exited with {rc} {tail}", host.name))),
        };
        Ok((values, verdict))
    }

    fn apply(&self, host: &Host, plan_json: &str) -> Result<Applied, HostError> {
        let mut words = self.semantos_words(host, "apply");
        words.extend(["--plan".into(), "-".into()]);
        if let Some(id) = &self.rollout_id {
            words.extend(["--rollout-id".into(), id.clone()]);
        }
        if let Some(s) = self.remote.monitor_seconds {
            words.extend(["--monitor-seconds".into(), format!("{s}")]);
        }
        if let Some(c) = &self.remote.health_cmd {
            words.extend(["--health-cmd".into(), c.clone()]);
        }
        if let Some(t) = self.remote.health_timeout_s {
            // The controller's flag wins over the uploaded policy's health_timeout_seconds, as it does locally.
            words.extend(["--health-timeout".into(), format!("{t}")]);
        }
        if let Some(p) = &self.remote.persist {
            words.push(format!("--persist={}", p.replace("{host}", &host.name)));
        }
        let f = self.call(host, &self.bounded(&words), Some(plan_json.as_bytes()))?;
        let json = json_of(&f.stdout);
        let outcome = json.as_ref().and_then(|v| v.get("outcome")).and_then(|o| o.as_str()).unwrap_or("").to_string();
        match (f.code(), outcome.as_str()) {
            (Some(0), "nothing_to_do") => Ok(Applied { unchanged: true, written: BTreeMap::new(), detail: "values already as planned".into() }),
            (Some(0), "committed") => {
                let v = json.expect("outcome came from the JSON");
                let written = v["applied"].as_array().into_iter().flatten().filter(|a| a["kept"].as_bool() == Some(true)).filter_map(|a| Some((a["key"].as_str()?.to_string(), a["to"].as_str()?.to_string()))).collect();
                let detail = v["batches"].as_array().into_iter().flatten().filter_map(|b| b["detail"].as_str()).map(short_detail).collect::<Vec<_>>().join("; ");
                Ok(Applied { unchanged: false, written, detail })
            }
            (_, "rolled_back" | "partly_committed") => {
                let v = json.expect("outcome came from the JSON");
                let detail = v["batches"].as_array().into_iter().flatten().filter(|b| b["kept"].as_bool() == Some(false)).filter_map(|b| b["detail"].as_str()).map(short_detail).collect::<Vec<_>>().join("; ");
                Err(HostError::new(Failure::Failed, format!("{}: the host's monitor rolled the change back: {detail}", host.name)))
            }
            _ => Err(self.semantos_error(host, "apply", &f)),
        }
    }

    fn health(&self, host: &Host) -> Result<(), HostError> {
        let Some(cmd) = &self.remote.health_cmd else { return Ok(()) };
        let f = self.call(host, &self.health_line(cmd), None)?;
        match f.code() {
            Some(0) => Ok(()),
            code => Err(HostError::new(Failure::Unhealthy, format!("{}: health command {cmd:?} exited with {} {}", host.name, code.map(|c| c.to_string()).unwrap_or("a signal".into()), f.stderr_tail()))),
        }
    }

    fn rollback(&self, host: &Host, fence: bool) -> Result<Restored, HostError> {
        let mut words = self.semantos_words(host, "rollback");
        if let Some(id) = self.rollout_id.as_ref().filter(|_| fence) {
            words.extend(["--fence-rollout".into(), id.clone()]);
        }
        let f = self.call(host, &self.bounded(&words), None)?;
        if f.code() == Some(0)
            && let Some(v) = json_of(&f.stdout)
        {
            let restored: Vec<(String, Option<String>, String)> = v["restored"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| Some((r[0].as_str()?.to_string(), r[1].as_str().map(str::to_string), r[2].as_str()?.to_string())))
                .collect();
            let already = v["already_restored"].as_bool() == Some(true);
            return Ok(Restored { nothing_to_do: already || restored.is_empty(), restored });
        }
        if f.stderr_tail().contains("nothing to roll back") {
            // No backup: this host never got as far as its first write.
            return Ok(Restored { restored: Vec::new(), nothing_to_do: true });
        }
        Err(self.semantos_error(host, "rollback", &f))
    }
}

impl Drop for SshEngine {
    fn drop(&mut self) {
        // Close every multiplexing master we opened, then the socket directory.
        let hosts = std::mem::take(&mut *self.contacted.lock().unwrap_or_else(|p| p.into_inner()));
        for h in hosts {
            let mut c = self.base(&h);
            c.arg("-O").arg("exit").arg("--").arg(h.address.trim_start_matches('[').trim_end_matches(']'));
            let _ = process::run(c, None, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.control_dir);
    }
}

/// Whether `path` names an executable the engine can run (a bare name is looked up on PATH).
pub fn program_exists(path: &Path) -> bool {
    if path.components().count() > 1 {
        return path.is_file();
    }
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(path).is_file()))
}

#[cfg(test)]
mod tests;
