//! Reasoning backends side by side on the simulator (`semantos compare`): the same findings
//! (one observation of the configured simulated host) go through each
//! backend; each plan passes the same guardrails; then each is applied to a
//! fresh sandbox and evaluated by the sandbox reproduction (`repro::run`
//! with the plan as a one-round user plan), over the same seeded, paired
//! trials, so the p95 columns differ only by the plan.
//!
//! The LLM row is always the LLM's own plan: `--llm-fallback` does not apply
//! here (a fall back would only copy the rules row). A plan the guardrails
//! abort, or an LLM that gives none, is evaluated as the empty plan: nothing
//! applied, p95 unchanged, and the row says why.
//!
//! A room of its own above both the LLM backend and the reproduction: it
//! drives backends (`llm`, `reasoning`) and evaluates with `repro`, and
//! neither of them knows it exists. The optimiser's comparisons belong here
//! too.

pub mod closed;

use crate::config::ExperimentConfig;
use crate::eval::summary::{OVERALL, SummaryRow};
use crate::kb::Kb;
use crate::llm::calibration::{self, Record};
use crate::llm::reasoner::{LlmReasoner, LlmRun};
use crate::reasoning::{self, Context, Findings, Plan};
use crate::repro::{self, ReproPaths};
use crate::safety::{self, CheckedPlan};
use crate::sim::{self, params::HostParams, rng::trial_seed};
use crate::sysctl::{SysctlKey, SysctlStore, Value};
use anyhow::{Context as _, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A backend to compare.
pub enum Contender {
    /// The deterministic rule engine.
    Rules,
    /// An LLM.
    Llm(Box<LlmReasoner>),
}

impl Contender {
    /// Row label (`rules`, `llm:model`).
    pub fn name(&self) -> String {
        match self {
            Contender::Rules => "rules".into(),
            Contender::Llm(l) => format!("llm:{}", l.settings().model),
        }
    }
}

/// One backend's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `rules` or `llm:model`.
    pub reasoner: String,
    /// Changes proposed.
    pub proposals: usize,
    /// Verdict counts (`accept`, `clamp`, `skip`, `refuse`, `REJECT`).
    pub verdicts: BTreeMap<String, usize>,
    /// Accepted or clamped: would be written.
    pub accepted: usize,
    /// Advice only (u ≥ τ): shown, not written.
    pub advice_only: usize,
    /// Refused or rejected by the guardrails.
    pub refused: usize,
    /// The guardrails aborted the plan (nothing applied).
    pub aborted: bool,
    /// Why nothing was evaluated, when that is so.
    pub note: Option<String>,
    /// The LLM exchange, for LLM rows.
    pub llm: Option<LlmRun>,
    /// The checked plan (absent when the LLM gave none).
    pub checked: Option<CheckedPlan>,
    /// Keys whose value changed in the sandbox: (key, from, to).
    pub kept: Vec<(String, String, String)>,
    /// The evaluation: p95 baseline vs tuned per workload and overall.
    pub summary: Vec<SummaryRow>,
}

impl Row {
    /// The overall summary row.
    pub fn overall(&self) -> Option<&SummaryRow> {
        self.summary.iter().find(|r| r.workload == OVERALL)
    }
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Seed of the observation and the trials.
    pub seed: u64,
    /// Paired trials per evaluation.
    pub trials: usize,
    /// The findings every backend saw.
    pub findings: Findings,
    /// One row per backend, in the order asked.
    pub rows: Vec<Row>,
    /// Calibration records of the LLM rows, with the simulator's outcome.
    #[serde(skip)]
    pub calibration: Vec<Record>,
}

fn current_values(store: &dyn SysctlStore, kb: &Kb) -> BTreeMap<String, Value> {
    kb.params.keys().filter_map(|k| SysctlKey::parse(k).ok()).filter_map(|k| store.read(&k).ok().map(|v| (k.to_string(), v))).collect()
}

/// Runs every contender on the same findings and evaluates each plan. `work`
/// holds the sandboxes and `results` each evaluation's files (`<results>/<name>/`).
pub fn compare(cfg: &ExperimentConfig, kb: &Kb, contenders: &[Contender], work: &Path, results: &Path, progress: &dyn Fn(&str, usize, usize)) -> Result<Comparison> {
    crate::config::check_start_values(cfg, kb)?;
    // The observation repro::run's first round makes (same seed, same bytes): the findings every backend gets.
    let tree = sim::seed_sandbox(&cfg.host, &work.join("observe/proc_sys"))?;
    let current = current_values(&tree, kb);
    let params = HostParams::from_store(&tree);
    let out = sim::run(&cfg.host, &params, &cfg.workloads, trial_seed(cfg.seed, 100_000), cfg.observe_seconds);
    let findings = reasoning::diagnose(&out.before, &out.after, kb);
    let ctx = Context { kb, intent: cfg.intent, current: &current, window: crate::telemetry::Window::new(&out.before, &out.after) };
    let mut rows = Vec::new();
    let mut records = Vec::new();
    for c in contenders {
        let name = c.name();
        let (plan, llm) = match c {
            Contender::Rules => (Some(reasoning::recommend(&findings, &ctx)), None),
            Contender::Llm(l) => {
                let run = l.run(&findings, &ctx);
                (run.result.clone().ok(), Some(run))
            }
        };
        let checked = plan.as_ref().map(|p| safety::check(p, kb, &cfg.policy, &current));
        let mut note = None;
        if let Some(run) = &llm
            && let Err(f) = &run.result
        {
            note = Some(format!("no plan: {}", f.verdict()));
        }
        let evaluated = match &checked {
            Some(ch) if ch.aborted.is_some() => {
                note = Some(format!("aborted by the guardrails, nothing applied: {}", ch.aborted.as_deref().unwrap_or_default().replace('\n', "; ")));
                Plan::new(name.clone(), cfg.intent)
            }
            Some(ch) => ch.plan.clone(),
            None => Plan::new(name.clone(), cfg.intent),
        };
        let slug: String = name.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' { ch } else { '_' }).collect();
        let dir = results.join(&slug);
        let plan_file = dir.join("plan.json");
        crate::apply::files::write_atomic(&plan_file, evaluated.to_json().as_bytes(), 0o644)?;
        let paths = ReproPaths { sandbox: work.join(&slug), sysctl_conf: dir.join("sysctl.conf"), results: dir.clone(), audit: dir.join("audit.jsonl") };
        let report = repro::run(cfg, kb, &paths, &format!("compare ({name})"), Some(&plan_file), &|d, t| progress(&name, d, t)).with_context(|| format!("evaluating the {name} plan on the simulator"))?;
        let counts = checked.as_ref().map(|c| c.counts()).unwrap_or_default();
        let n = |l: &str| counts.get(l).copied().unwrap_or(0);
        let advice_only = checked.as_ref().map(|c| c.changes.iter().filter(|x| x.change.advice_only).count()).unwrap_or(0);
        if let (Some(run), Some(ch)) = (&llm, &checked) {
            let improvement = report.summary.iter().find(|r| r.workload == OVERALL).map(|r| r.improvement_pct);
            let applied: BTreeMap<&str, bool> = report.rounds.iter().filter_map(|r| r.receipt.as_ref()).flat_map(|r| r.applied.iter().map(|a| (a.key.as_str(), a.kept))).collect();
            for mut rec in calibration::records_of(ch, &run.model, run.k, run.tau, false) {
                if let Some(kept) = applied.get(rec.key.as_str()) {
                    rec.outcome = if *kept { "kept".into() } else { "rolled_back".into() };
                }
                rec.p95_improvement_pct = improvement;
                records.push(rec);
            }
        }
        rows.push(Row {
            reasoner: name,
            proposals: checked.as_ref().map(|c| c.changes.len()).unwrap_or(0),
            accepted: n("accept") + n("clamp"),
            advice_only,
            refused: n("refuse") + n("REJECT"),
            aborted: checked.as_ref().is_some_and(|c| c.aborted.is_some()),
            verdicts: counts.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            note,
            llm,
            checked,
            kept: report.changes,
            summary: report.summary,
        });
    }
    Ok(Comparison { seed: cfg.seed, trials: cfg.trials, findings, rows, calibration: records })
}

/// The side-by-side tables: counts and overall p95, then p95 per workload.
pub fn to_table(c: &Comparison) -> String {
    let mut s = String::new();
    let ids: Vec<&str> = c.findings.findings.iter().map(|f| f.id.as_str()).collect();
    let _ = writeln!(s, "Same findings through each backend (seed {}, {} paired trials): [{}]\n", c.seed, c.trials, ids.join(", "));
    let _ = writeln!(s, "{:<22} {:>9} {:>8} {:>6} {:>7} {:>7}  {:>10} {:>10} {:>8}  {:>17}", "reasoner", "proposals", "accepted", "advice", "refused", "aborted", "p95 base", "p95 tuned", "Δp95", "95% CI");
    for r in &c.rows {
        let (b, t, d, ci) = match r.overall() {
            Some(o) => (format!("{:.2}", o.baseline_p95_ms), format!("{:.2}", o.tuned_p95_ms), format!("{:+.1}%", o.improvement_pct), format!("[{:+.1}, {:+.1}]", o.ci95_low_pct, o.ci95_high_pct)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(s, "{:<22} {:>9} {:>8} {:>6} {:>7} {:>7}  {:>10} {:>10} {:>8}  {:>17}", r.reasoner, r.proposals, r.accepted, r.advice_only, r.refused, if r.aborted { "yes" } else { "no" }, b, t, d, ci);
    }
    let _ = writeln!(s, "\np95 per workload (ms; baseline is the same for every backend):");
    let mut header = format!("{:<12} {:>10}", "workload", "baseline");
    for r in &c.rows {
        let _ = write!(header, " {:>22}", r.reasoner);
    }
    let _ = writeln!(s, "{header}");
    let workloads: Vec<&str> = c.rows.first().map(|r| r.summary.iter().map(|x| x.workload.as_str()).collect()).unwrap_or_default();
    for w in workloads {
        let base = c.rows[0].summary.iter().find(|x| x.workload == w).map(|x| x.baseline_p95_ms).unwrap_or(f64::NAN);
        let mut line = format!("{w:<12} {base:>10.2}");
        for r in &c.rows {
            let cell = r.summary.iter().find(|x| x.workload == w).map(|x| format!("{:.2} ({:+.1}%)", x.tuned_p95_ms, x.improvement_pct)).unwrap_or("-".into());
            let _ = write!(line, " {cell:>22}");
        }
        let _ = writeln!(s, "{line}");
    }
    for r in &c.rows {
        let _ = writeln!(s, "\n{}: verdicts {}", r.reasoner, r.verdicts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "));
        if let Some(run) = &r.llm {
            let _ = writeln!(s, "  {}", run.summary());
        }
        if let Some(ch) = &r.checked {
            for x in &ch.changes {
                let u = x.change.uncertainty.map(|u| format!(" u={u:.2}")).unwrap_or_default();
                let _ = writeln!(s, "  {:<7} {} {} → {}{u}  {}", x.verdict.label(), x.change.key, x.change.from.as_deref().unwrap_or("?"), x.write.as_deref().unwrap_or(&x.change.to), x.verdict.reason());
            }
        }
        if let Some(n) = &r.note {
            let _ = writeln!(s, "  note: {n}");
        }
    }
    s
}

/// One CSV line per backend: counts and the overall p95.
pub fn to_csv(c: &Comparison) -> String {
    let mut s = String::from("reasoner,proposals,accepted,advice_only,refused,aborted,baseline_p95_ms,tuned_p95_ms,improvement_pct,ci95_low_pct,ci95_high_pct\n");
    for r in &c.rows {
        let o = r.overall();
        let f = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            r.reasoner,
            r.proposals,
            r.accepted,
            r.advice_only,
            r.refused,
            r.aborted,
            f(o.map(|o| o.baseline_p95_ms)),
            f(o.map(|o| o.tuned_p95_ms)),
            f(o.map(|o| o.improvement_pct)),
            f(o.map(|o| o.ci95_low_pct)),
            f(o.map(|o| o.ci95_high_pct))
        );
    }
    s
}

/// Where a comparison writes by default under a results directory.
pub fn default_dir(results: &Path) -> PathBuf {
    results.join("compare")
}
