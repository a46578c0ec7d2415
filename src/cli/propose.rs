//! What `recommend`, `dry-run` and `apply` share: the telemetry, the plan (a
//! file, standard input, or a fresh recommendation by the rules or the LLM)
//! and the guardrails' verdict on it.

use super::common::{self, invalid};
use super::flags::{IntentArg, PlanArg, TelemetryArgs};
use super::reasoner::{self, ReasonerArgs};
use crate::kb::Kb;
use crate::reasoning::{self, Context, Findings, Reasoner, RulesEngine};
use crate::safety::{self, CheckedPlan, Policy};
use crate::sysctl::SysctlStore;
use crate::telemetry::Window;
use anyhow::Result;

/// The findings and the checked plan.
pub struct Proposal {
    /// What the telemetry shows.
    pub findings: Findings,
    /// The plan and the guardrails' verdict on each change.
    pub checked: CheckedPlan,
}

/// Where the plan comes from: the telemetry, `--plan`, `--intent`.
pub struct Inputs<'a> {
    /// Telemetry source.
    pub telemetry: &'a TelemetryArgs,
    /// `--plan`.
    pub plan: &'a PlanArg,
    /// `--intent`.
    pub intent: &'a IntentArg,
}

/// Diagnoses, loads or recommends the plan, and checks it; `reasoner` chooses the backend
/// when no `--plan` is given (`recommend --reasoner llm`).
pub fn propose(i: &Inputs, kb: &Kb, store: &dyn SysctlStore, pol: &Policy, reasoner: Option<&ReasonerArgs>) -> Result<Proposal> {
    if let (Some(p), Some(_)) = (&i.plan.plan, reasoner.filter(|r| r.uses_llm())) {
        // Either the model proposes the plan or the file is the plan: never one silently instead of the other.
        return Err(invalid(format!("--plan {} and --reasoner llm both name where the plan comes from; drop one", p.display())));
    }
    let (a, b) = common::telemetry(i.telemetry)?;
    let findings = reasoning::diagnose(&a, &b, kb);
    let current = common::current_values(store, kb);
    let intent = common::intent(i.intent);
    let plan = match &i.plan.plan {
        Some(p) => common::load_plan(p, intent, store)?,
        None => {
            let ctx = Context { kb, intent, current: &current, window: Window::new(&a, &b) };
            if let Some(r) = reasoner.filter(|r| r.uses_llm()) {
                // The LLM path runs the guardrails itself: a rejected LLM plan may fall back to the rules.
                let checked = reasoner::llm_checked(r, &findings, &ctx, pol)?;
                return Ok(Proposal { findings, checked });
            }
            RulesEngine.recommend(&findings, &ctx)?
        }
    };
    let checked = safety::check_with(&plan, kb, pol, &current, &safety::facts::from_snapshot(&b));
    Ok(Proposal { findings, checked })
}
