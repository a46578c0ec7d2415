//! What `recommend`, `dry-run` and `apply` share: the telemetry, the plan (a
//! file, standard input, or a fresh recommendation by the rules or the LLM)
//! and the guardrails' verdict on it.

use super::common::{self, invalid};
use super::flags::{IntentArg, PlanArg, StateLoc, TelemetryArgs};
use super::reasoner::{self, ReasonerArgs};
use super::sampling;
use super::writes;
use crate::apply;
use crate::kb::Kb;
use crate::reasoning::{self, Context, Findings, Reasoner, RulesEngine};
use crate::safety::{self, CheckedPlan, Policy};
use crate::sysctl::SysctlStore;
use crate::telemetry::{Snapshot, Window};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The findings and the checked plan.
pub struct Proposal {
    /// What the telemetry shows.
    pub findings: Findings,
    /// The plan and the guardrails' verdict on each change.
    pub checked: CheckedPlan,
    /// For the LLM's plan: whether every claim its rationales cite matched the evidence (`None`: not an LLM's plan).
    pub supported: Option<bool>,
}

/// Where the plan comes from: the telemetry, `--plan`, `--intent`.
pub struct Inputs<'a> {
    /// Telemetry source.
    pub telemetry: &'a TelemetryArgs,
    /// `--plan`.
    pub plan: &'a PlanArg,
    /// `--intent`.
    pub intent: &'a IntentArg,
    /// `--sysctl-root`: the tree the plan is for (its limits are read with the telemetry).
    pub sysctl_root: &'a Path,
    /// Where the state lives: the host plan (changes refused for their scope) is written beside the backup.
    pub state: &'a StateLoc,
}

/// Diagnoses, loads or recommends the plan, and checks it; `reasoner` chooses the backend
/// when no `--plan` is given (`recommend --reasoner llm`).
pub fn propose(i: &Inputs, kb: &Kb, store: &dyn SysctlStore, pol: &Policy, reasoner: Option<&ReasonerArgs>) -> Result<Proposal> {
    if let (Some(p), Some(_)) = (&i.plan.plan, reasoner.filter(|r| r.uses_llm())) {
        // Either the model proposes the plan or the file is the plan: never one silently instead of the other.
        return Err(invalid(format!("--plan {} and --reasoner llm both name where the plan comes from; drop one", p.display())));
    }
    let snaps = sampling::telemetry(i.telemetry, i.sysctl_root, kb, sampling::DEFAULT_SAMPLES)?;
    let (a, b) = (&snaps[0], &snaps[snaps.len() - 1]);
    let findings = reasoning::diagnose_series(&snaps, kb);
    let current = common::current_values(store, kb);
    let intent = common::intent(i.intent);
    let plan = match &i.plan.plan {
        Some(p) => common::load_plan(p, intent, store)?,
        None => {
            let ctx = Context { kb, intent, current: &current, window: Window::new(a, b) };
            if let Some(r) = reasoner.filter(|r| r.uses_llm()) {
                // The LLM path runs the guardrails itself: a rejected LLM plan may fall back to the rules.
                let (checked, supported) = reasoner::llm_checked_supported(r, &findings, &ctx, pol)?;
                return Ok(Proposal { findings, checked, supported });
            }
            RulesEngine.recommend(&findings, &ctx)?
        }
    };
    let host_plan = host_plan_path(i.state);
    let checked = safety::check_with(&plan, kb, pol, &current, &facts(i, &host_plan, b));
    write_host_plan(&host_plan, &checked);
    Ok(Proposal { findings, checked, supported: None })
}

/// Where the changes refused for their scope are written, as a plan to run on the host: beside the backup.
pub fn host_plan_path(state: &StateLoc) -> PathBuf {
    let st = writes::resolve_loc(state);
    st.backup.parent().map(Path::to_path_buf).unwrap_or_default().join("host-plan.conf")
}

/// The guardrails' host facts: memory from the snapshot, and the network namespace when the
/// store is the kernel's (a sandbox tree is in no namespace).
fn facts(i: &Inputs, host_plan: &Path, b: &Snapshot) -> safety::Facts {
    with_netns(i.sysctl_root, &i.telemetry.proc_root, host_plan, safety::facts::from_snapshot(b))
}

/// `f` judged for the network namespace the kernel store at `sysctl_root` lives in (unchanged for
/// a sandbox tree); `host_plan` is where the changes refused for their scope are written.
pub fn with_netns(sysctl_root: &Path, proc_root: &Path, host_plan: &Path, f: safety::Facts) -> safety::Facts {
    if !common::store(sysctl_root).root().starts_with("/proc") {
        return f;
    }
    let place = crate::telemetry::netns::detect(proc_root);
    if let crate::telemetry::netns::NetnsPlace::Unknown(_) = &place {
        eprintln!("semantos: note: running in {}; keys a child namespace cannot write are not refused in advance", place.describe());
    }
    f.in_netns(place).with_host_plan(host_plan.to_path_buf())
}

/// Writes the changes refused for their scope to `path`, so the message's command works as shown.
fn write_host_plan(path: &Path, c: &CheckedPlan) {
    let Some(text) = safety::scope::host_plan(&c.refused_for_scope()) else { return };
    if let Err(e) = apply::files::write_atomic(path, text.as_bytes(), 0o644) {
        eprintln!("semantos: warning: could not write the host plan {}: {e:#}; the refused changes are listed below", path.display());
    }
}
