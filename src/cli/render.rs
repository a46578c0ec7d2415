//! Human-readable renderings of findings, checked plans and receipts.

use crate::apply::{Outcome, Receipt};
use crate::reasoning::Findings;
use crate::safety::CheckedPlan;
use super::style::{Tone, paint, verdict_tone};
use std::fmt::Write;

/// Findings with their evidence.
pub fn findings(f: &Findings) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Findings on {} (kernel {}, window {:.1} s):", f.host.hostname, f.host.kernel_release, f.window_s);
    if f.findings.is_empty() {
        let _ = writeln!(s, "  no symptom found");
    }
    for x in &f.findings {
        let _ = writeln!(s, "  [{}] {}", x.id, x.title);
        let _ = writeln!(s, "      {}", x.presence.describe());
        for e in &x.evidence {
            let _ = writeln!(s, "      evidence: {}", e.describe());
        }
    }
    if !f.no_data.is_empty() {
        let _ = writeln!(s, "  no data for: {}", f.no_data.join(", "));
    }
    s.push('\n');
    s
}

/// `HH:MM:SSZ` of a millisecond timestamp (UTC; simulated time for the simulator's CSVs).
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}Z", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// A checked plan: one row per change with its verdict, then rationales and what was left out.
pub fn checked(c: &CheckedPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Plan ({}, intent {}):", c.plan.created_by, c.plan.intent.name());
    let _ = writeln!(s, "  {:<40} {:>24} {:>24}  VERDICT", "KEY", "CURRENT", "PROPOSED");
    for x in &c.changes {
        let proposed = x.write.clone().unwrap_or_else(|| x.change.to.clone());
        // `from` is the value read from the target; a `*` marks drift from what the plan was made against.
        let from = format!("{}{}", x.change.from.as_deref().unwrap_or("-"), if x.plan_from.is_some() { " *" } else { "" });
        let _ = writeln!(s, "  {:<40} {:>24} {:>24}  {}", x.change.key, from, proposed, paint(x.verdict.label(), verdict_tone(x.verdict.label())));
    }
    let drifted: Vec<_> = c.changes.iter().filter_map(|x| x.plan_from.as_ref().map(|p| (x, p))).collect();
    if !drifted.is_empty() {
        let _ = writeln!(s, "\n  * DRIFT: the plan was made against other values than the ones read now:");
        for (x, p) in drifted {
            let _ = writeln!(s, "    {}: the plan says from {p}, the live value is {}", x.change.key, x.change.from.as_deref().unwrap_or("-"));
        }
    }
    if c.changes.is_empty() {
        let _ = writeln!(s, "  (no change proposed)");
    }
    for x in &c.changes {
        let _ = writeln!(s, "\n  {}: {}", x.change.key, x.change.rationale);
        for e in &x.change.evidence {
            let _ = writeln!(s, "      evidence: {e}");
        }
        let r = x.verdict.reason();
        if !r.is_empty() {
            let _ = writeln!(s, "      verdict: {} {r}", paint(x.verdict.label(), verdict_tone(x.verdict.label())));
        }
        for w in &x.warnings {
            let _ = writeln!(s, "      warning: {w}");
        }
    }
    if !c.plan.considered.is_empty() {
        let _ = writeln!(s, "\n  Considered and not proposed:");
        for k in &c.plan.considered {
            let _ = writeln!(s, "    {} ({}): {}", k.key, k.finding_id, k.reason);
        }
    }
    if let Some(a) = &c.aborted {
        let _ = writeln!(s, "\n  {} by the guardrails:\n    {}", paint("PLAN ABORTED", Tone::Bad), a.replace('\n', "\n    "));
    }
    s.push('\n');
    s
}

/// What an apply did.
pub fn receipt(r: &Receipt) -> String {
    let mut s = String::new();
    let tone = if r.outcome == Outcome::Committed { Tone::Good } else { Tone::Bad };
    let _ = writeln!(s, "Apply {}: {}", r.run_id, paint(&format!("{:?}", r.outcome), tone));
    for b in &r.batches {
        let _ = writeln!(s, "  batch {} [{}]: {} — {}", b.index, b.keys.join(", "), if b.kept { paint("kept", Tone::Good) } else { paint("ROLLED BACK", Tone::Bad) }, b.detail);
    }
    for a in &r.applied {
        let _ = writeln!(s, "  {}: {} → {} ({})", a.key, a.from.as_deref().unwrap_or("-"), a.to, if a.kept { paint("kept", Tone::Good) } else { paint("restored", Tone::Bad) });
    }
    if let Some(p) = &r.persisted_to {
        let _ = writeln!(s, "  persisted to {p}");
    }
    s
}
