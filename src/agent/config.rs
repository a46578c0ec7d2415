//! The agent's configuration file (`/etc/semantos/agent.yaml`): raw YAML, then one validated
//! [`AgentConfig`] before anything runs. Every field is read as an untyped value first so that a
//! bad one is reported with the file, the field, the value and what would be valid (serde's own
//! messages name a line and column, not the field); unknown fields are refused by serde.
//! `packaging/agent.yaml` documents every field.

use super::fields::{bad, choice, count, duration, list, path, string};
use super::objective::{self, Objective};
use crate::kb::{Intent, Kb};
use crate::safety::Policy;
use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the agent's configuration lives by default.
pub const DEFAULT_CONFIG: &str = "/etc/semantos/agent.yaml";

/// `observe` (advice only) or `apply` (the closed loop, policy-gated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Findings and recommended plans, nothing written.
    Observe,
    /// One change set at a time, kept or rolled back by the gate.
    Apply,
}

impl Mode {
    /// The word used in the file and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Apply => "apply",
        }
    }
}

/// What the agent does with the values it applied when it is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    /// Leave them in force (TuneD's `rollback=not_on_exit`); the next start resumes managing them.
    Keep,
    /// Put back every value in force before the agent's first write.
    Rollback,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where it came from (for messages).
    pub source: String,
    /// observe or apply.
    pub mode: Mode,
    /// Time between samples.
    pub interval: Duration,
    /// Samples per diagnosis window (consecutive windows share their end sample).
    pub window: usize,
    /// Windows in a row a symptom must hold before it opens.
    pub open_after: u32,
    /// Windows in a row a symptom must be clear before it closes.
    pub close_after: u32,
    /// A named network namespace to sample and act in.
    pub netns: Option<String>,
    /// What to do on SIGTERM / SIGINT.
    pub on_exit: OnExit,
    /// State directory from the file (`--state-dir` wins).
    pub state_dir: Option<PathBuf>,
    /// The intent the recommendations serve.
    pub intent: Intent,
    /// The policy (whitelist, never-touch, step limit), from `policy:` or the default.
    pub policy: Policy,
    /// Key patterns the agent never advises on nor changes.
    pub disable_keys: Vec<String>,
    /// KB symptoms the agent ignores.
    pub disable_symptoms: Vec<String>,
    /// Least time between two change sets.
    pub min_dwell: Duration,
    /// Change sets allowed per UTC day.
    pub daily_change_budget: u32,
    /// Revert a kept change once the symptom behind it has closed (else only report it).
    pub revert_when_evidence_gone: bool,
    /// The /proc sampled (a fixture directory in tests).
    pub proc_root: PathBuf,
    /// The sysctl tree read and written (`/proc/sys`, or a sandbox tree).
    pub sysctl_root: PathBuf,
    /// Where the Prometheus endpoint listens (`--metrics-addr` wins).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// A node_exporter textfile (`*.prom`) rewritten after every window.
    pub textfile: Option<PathBuf>,
    /// Keys the agent may change although another owner (sysctl.d, TuneD, bpftune) manages them.
    pub take_ownership: Vec<String>,
    /// The directory that stands for `/` when looking for other owners (a test tree; `/` on a host).
    pub owners_root: PathBuf,
    /// Attach the eBPF tracepoint probes (`ebpf.*` metrics: drop reasons, retransmits, latencies).
    pub ebpf: bool,
    /// What a change set is measured by in apply mode (required there: no change is kept unmeasured).
    pub objective: Option<Objective>,
    /// Time between two per-process scans (fd, map and inotify counts), whose figures stand between.
    pub scan_every: Duration,
}

/// The file as written: every field untyped, unknown fields refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    mode: Option<J>,
    interval: Option<J>,
    window: Option<J>,
    open_after: Option<J>,
    close_after: Option<J>,
    netns: Option<J>,
    on_exit: Option<J>,
    state_dir: Option<J>,
    intent: Option<J>,
    policy: Option<J>,
    disable_keys: Option<J>,
    disable_symptoms: Option<J>,
    min_dwell: Option<J>,
    daily_change_budget: Option<J>,
    revert_when_evidence_gone: Option<J>,
    proc_root: Option<J>,
    sysctl_root: Option<J>,
    metrics_addr: Option<J>,
    textfile: Option<J>,
    take_ownership: Option<J>,
    owners_root: Option<J>,
    ebpf: Option<J>,
    objective: Option<J>,
    scan_every: Option<J>,
}

/// The fields a file may hold, for the unknown-field message.
pub const FIELDS: [&str; 24] = [
    "mode", "interval", "window", "open_after", "close_after", "netns", "on_exit", "state_dir", "intent", "policy", "disable_keys", "disable_symptoms", "min_dwell",
    "daily_change_budget", "revert_when_evidence_gone", "proc_root", "sysctl_root", "metrics_addr", "textfile", "take_ownership", "owners_root", "ebpf", "objective",
    "scan_every",
];

impl AgentConfig {
    /// The defaults, as if the file were empty.
    pub fn defaults(kb: &Kb) -> AgentConfig {
        validate(Raw::default(), "(defaults)", kb, Path::new(".")).expect("the defaults are valid")
    }

    /// Reads and validates `path`; a missing file is an error unless `optional` (the default path).
    pub fn load(path: &Path, optional: bool, kb: &Kb) -> Result<AgentConfig> {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(AgentConfig { source: format!("{file} (absent: defaults)"), ..AgentConfig::defaults(kb) }),
            Err(e) => bail!("{file}: cannot read the agent configuration: {e}; check the path given to --config"),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        AgentConfig::parse(&text, &file, kb, base)
    }

    /// Parses and validates YAML text; `file` names it in errors, `base` resolves a relative `policy:`.
    pub fn parse(text: &str, file: &str, kb: &Kb, base: &Path) -> Result<AgentConfig> {
        let raw: Raw = if text.trim().is_empty() {
            Raw::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| {
                let msg = e.to_string().replace("<input>", file);
                if msg.contains("unknown field") { anyhow!("{file}: {msg}; the fields are {}", FIELDS.join(", ")) } else { anyhow!("{file}: {msg}") }
            })?
        };
        validate(raw, file, kb, base)
    }
}

/// `HOST:PORT` with a numeric address (`127.0.0.1:9464`, `[::1]:9464`).
pub fn metrics_addr(file: &str, field: &str, v: &J) -> Result<std::net::SocketAddr> {
    v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| bad(file, field, v, "is not valid; use a numeric address and port such as \"127.0.0.1:9464\" or \"[::1]:9464\""))
}

/// `policy:`: the file, relative to the configuration's directory, its keys known to the KB.
fn policy(file: &str, v: &J, kb: &Kb, base: &Path) -> Result<Policy> {
    let p = base.join(path(file, "policy", v)?);
    let bytes = std::fs::read(&p).map_err(|e| bad(file, "policy", v, &format!("cannot be read ({}: {e}); name an existing policy file", p.display())))?;
    let pol = Policy::from_bytes(&bytes, &p.display().to_string()).map_err(|e| anyhow!("{file}: policy: {e}"))?;
    let known: Vec<&str> = kb.params.keys().map(String::as_str).collect();
    pol.check_keys(&p.display().to_string(), &known).map_err(|e| anyhow!("{file}: policy: {e}"))?;
    Ok(pol)
}

/// `objective:`, required in apply mode.
fn objective_for(file: &str, mode: Mode, v: Option<&J>) -> Result<Option<Objective>> {
    let objective = v.filter(|v| !v.is_null()).map(|v| objective::parse(file, v)).transpose()?;
    if mode == Mode::Apply && objective.is_none() {
        // A change kept without measuring what the user cares about can improve the symptom and
        // hurt the application (issue 12): apply mode is a closed loop or nothing.
        bail!("{file}: mode: \"apply\" needs an objective: add an `objective:` block with the command that measures your workload (`cmd:`, and `stat:`/`goal:`; packaging/agent.yaml shows one), or use mode: observe for advice only");
    }
    Ok(objective)
}

/// Every field checked; the first bad one is the error.
fn validate(r: Raw, file: &str, kb: &Kb, base: &Path) -> Result<AgentConfig> {
    let mode = match &r.mode {
        None => Mode::Observe,
        Some(v) => match choice(file, "mode", v, &["observe", "apply"])? {
            "apply" => Mode::Apply,
            _ => Mode::Observe,
        },
    };
    let on_exit = match &r.on_exit {
        None => OnExit::Keep,
        Some(v) => match choice(file, "on_exit", v, &["keep", "rollback"])? {
            "rollback" => OnExit::Rollback,
            _ => OnExit::Keep,
        },
    };
    let intent = match &r.intent {
        None => Intent::Latency,
        Some(v) => {
            let names: Vec<&str> = Intent::ALL.iter().map(|i| i.name()).collect();
            let s = choice(file, "intent", v, &names)?;
            *Intent::ALL.iter().find(|i| i.name() == s).expect("listed")
        }
    };
    let netns = match &r.netns {
        None => None,
        Some(v) => {
            let s = string(file, "netns", v)?;
            if s.is_empty() || s.contains('/') || s.starts_with('.') || s.len() > 255 {
                return Err(bad(file, "netns", v, "is not a namespace name; use the name `ip netns list` shows (no '/', not starting with '.')"));
            }
            Some(s)
        }
    };
    let policy = r.policy.as_ref().map(|v| policy(file, v, kb, base)).transpose()?.unwrap_or_default();
    let disable_symptoms = r.disable_symptoms.as_ref().map(|v| list(file, "disable_symptoms", v)).transpose()?.unwrap_or_default();
    for s in &disable_symptoms {
        if !kb.symptoms.contains_key(s) {
            let hint = crate::reasoning::plan::unknown_key_hint(s, kb.symptoms.keys().map(String::as_str));
            bail!("{file}: disable_symptoms: {s:?} is no symptom of the knowledge base; {hint}");
        }
    }
    let disable_keys = r.disable_keys.as_ref().map(|v| list(file, "disable_keys", v)).transpose()?.unwrap_or_default();
    for k in &disable_keys {
        if !kb.params.keys().any(|p| crate::safety::policy::glob(k, p)) {
            let hint = crate::reasoning::plan::unknown_key_hint(k, kb.params.keys().map(String::as_str));
            bail!("{file}: disable_keys: {k:?} matches no key of the knowledge base; {hint}");
        }
    }
    let take_ownership = r.take_ownership.as_ref().map(|v| list(file, "take_ownership", v)).transpose()?.unwrap_or_default();
    for k in &take_ownership {
        if kb.param(k).is_none() {
            let hint = crate::reasoning::plan::unknown_key_hint(k, kb.params.keys().map(String::as_str));
            bail!("{file}: take_ownership: {k:?} is no key of the knowledge base; {hint}");
        }
    }
    let metrics_addr = r.metrics_addr.as_ref().map(|v| metrics_addr(file, "metrics_addr", v)).transpose()?;
    let ebpf = match &r.ebpf {
        None => false,
        Some(v) => v.as_bool().ok_or_else(|| bad(file, "ebpf", v, "is not valid; use true or false"))?,
    };
    let revert_when_evidence_gone = match &r.revert_when_evidence_gone {
        None => false,
        Some(v) => v.as_bool().ok_or_else(|| bad(file, "revert_when_evidence_gone", v, "is not valid; use true or false"))?,
    };
    let objective = objective_for(file, mode, r.objective.as_ref())?;
    Ok(AgentConfig {
        source: file.to_string(),
        mode,
        interval: r.interval.as_ref().map(|v| duration(file, "interval", v, 0.05, 3600.0)).transpose()?.unwrap_or(Duration::from_secs(1)),
        window: r.window.as_ref().map(|v| count(file, "window", v, 2, 1000)).transpose()?.unwrap_or(5) as usize,
        open_after: r.open_after.as_ref().map(|v| count(file, "open_after", v, 1, 1000)).transpose()?.unwrap_or(3) as u32,
        close_after: r.close_after.as_ref().map(|v| count(file, "close_after", v, 1, 1000)).transpose()?.unwrap_or(3) as u32,
        netns,
        on_exit,
        state_dir: r.state_dir.as_ref().map(|v| path(file, "state_dir", v)).transpose()?,
        intent,
        policy,
        disable_keys,
        disable_symptoms,
        min_dwell: r.min_dwell.as_ref().map(|v| duration(file, "min_dwell", v, 0.0, 30.0 * 86400.0)).transpose()?.unwrap_or(Duration::from_secs(600)),
        daily_change_budget: r.daily_change_budget.as_ref().map(|v| count(file, "daily_change_budget", v, 0, 1000)).transpose()?.unwrap_or(4) as u32,
        revert_when_evidence_gone,
        proc_root: r.proc_root.as_ref().map(|v| path(file, "proc_root", v)).transpose()?.unwrap_or_else(|| PathBuf::from("/proc")),
        sysctl_root: r.sysctl_root.as_ref().map(|v| path(file, "sysctl_root", v)).transpose()?.unwrap_or_else(|| PathBuf::from("/proc/sys")),
        metrics_addr,
        textfile: r.textfile.as_ref().map(|v| path(file, "textfile", v)).transpose()?,
        take_ownership,
        owners_root: r.owners_root.as_ref().map(|v| path(file, "owners_root", v)).transpose()?.unwrap_or_else(|| PathBuf::from("/")),
        ebpf,
        objective,
        // At least a second (a scan costs 2-35 ms), at most a day (what it watches grows over hours).
        scan_every: r.scan_every.as_ref().map(|v| duration(file, "scan_every", v, 1.0, 86400.0)).transpose()?.unwrap_or(super::sampler::SCAN_EVERY),
    })
}

impl AgentConfig {
    /// The tree's store: kernel semantics under /proc, sandbox semantics elsewhere.
    pub fn store(&self) -> crate::sysctl::TreeStore {
        if self.sysctl_root.starts_with("/proc") { crate::sysctl::TreeStore::kernel_at(&self.sysctl_root) } else { crate::sysctl::TreeStore::sandbox(&self.sysctl_root) }
    }

    /// Whether the agent may advise on or change `key`.
    pub fn key_enabled(&self, key: &str) -> bool {
        !self.disable_keys.iter().any(|p| crate::safety::policy::glob(p, key))
    }

    /// Whether the agent watches `symptom`.
    pub fn symptom_enabled(&self, symptom: &str) -> bool {
        !self.disable_symptoms.iter().any(|s| s == symptom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one place the tests call the parser: `Ok` for a valid file, else the error text.
    fn check(text: &str) -> std::result::Result<AgentConfig, String> {
        AgentConfig::parse(text, "agent.yaml", &Kb::embedded().unwrap(), Path::new(".")).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn every_invalid_agent_config_names_the_file_the_field_the_value_and_what_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/agent/invalid");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let body = std::fs::read_to_string(&path).unwrap();
            let expect = body.lines().next().and_then(|l| l.strip_prefix("# expect: ")).unwrap_or_else(|| panic!("{} lacks `# expect:`", path.display()));
            let e = AgentConfig::load(&path, false, &Kb::embedded().unwrap()).map(|_| ()).map_err(|e| format!("{e:#}")).expect_err(&path.display().to_string());
            assert!(e.contains(&path.display().to_string()), "{}: the error does not name the file: {e}", path.display());
            assert!(e.contains(expect), "{}: expected {expect:?} in: {e}", path.display());
            n += 1;
        }
        assert!(n >= 8, "only {n} invalid agent configs");
    }

    #[test]
    fn the_packaged_example_is_valid_and_spells_out_the_defaults() {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/agent.yaml")).unwrap();
        let c = check(&text).unwrap();
        let d = check("").unwrap();
        assert_eq!((c.mode, c.interval, c.window, c.open_after, c.close_after, c.on_exit, c.min_dwell, c.daily_change_budget), (d.mode, d.interval, d.window, d.open_after, d.close_after, d.on_exit, d.min_dwell, d.daily_change_budget));
        // Every field the parser knows is documented in the example.
        for f in FIELDS {
            assert!(text.contains(&format!("{f}:")), "packaging/agent.yaml does not document {f}");
        }
    }

    #[test]
    fn the_packaged_objective_example_is_valid_apply_mode_and_documents_every_objective_field() {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/agent.yaml")).unwrap();
        let block: Vec<&str> = text.lines().skip_while(|l| *l != "# objective:").take_while(|l| l.starts_with('#')).map(|l| &l[2..]).filter(|l| !l.trim_start().starts_with('#')).collect();
        let c = check(&format!("mode: apply\n{}\n", block.join("\n"))).unwrap();
        assert_eq!(c.objective.unwrap().cmd, "curl -s localhost:9090/probe | jq .p99_ms");
        for f in super::objective::FIELDS {
            assert!(block.iter().any(|l| l.trim_start().starts_with(&format!("{f}:"))), "packaging/agent.yaml's objective example lacks {f}");
        }
    }

    #[test]
    fn apply_mode_without_an_objective_is_refused_and_says_what_to_add() {
        let e = check("mode: apply\n").unwrap_err();
        assert!(e.contains("needs an objective") && e.contains("mode: observe"), "{e}");
        assert!(check("mode: apply\nobjective: { cmd: ./probe }\n").unwrap().objective.is_some());
    }

    #[test]
    fn durations_take_units_and_switches_match_patterns() {
        let c = check("interval: 500ms\nmin_dwell: 10m\ndisable_keys: [\"vm.dirty_*\"]\ndisable_symptoms: [cpu_runqueue_delay]\n").unwrap();
        assert_eq!((c.interval, c.min_dwell), (Duration::from_millis(500), Duration::from_secs(600)));
        assert!(!c.key_enabled("vm.dirty_ratio") && c.key_enabled("vm.swappiness"));
        assert!(!c.symptom_enabled("cpu_runqueue_delay") && c.symptom_enabled("accept_queue_full"));
    }
}
