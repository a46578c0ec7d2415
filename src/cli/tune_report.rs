//! What `semantos tune` shows: the progress while trials run (a bar on a
//! terminal, one line per trial otherwise, nothing under `--quiet`/`--json`),
//! the closing table, the kept values, where the state, trace and figure
//! are, and the `--json` document. Imports no command module.

use super::output;
use super::style::{self, ProgressMode, Tone};
use crate::eval::median;
use crate::eval::plot::{TunePoint, render_tune_svg};
use crate::tune::driver::{Observer, Outcome};
use crate::tune::live;
use crate::tune::state::TuneState;
use crate::tune::trace::{Keeper, changed};
use crate::tune::{Decision, Direction, ObjectiveSpec, Trial, Values};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// The loop's observer as the user sees it: the state keeper, plus progress on stderr.
pub struct Shown<'a> {
    keeper: Keeper,
    incumbent: &'a RefCell<Values>,
    spec: ObjectiveSpec,
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    last: Option<(f64, f64, f64)>,
}

impl<'a> Shown<'a> {
    /// Shows the trials `keeper` records; keeps `incumbent` (what the guardrails judge from) current.
    pub fn new(keeper: Keeper, incumbent: &'a RefCell<Values>, spec: &ObjectiveSpec) -> Self {
        Shown { keeper, incumbent, spec: spec.clone(), mode: style::progress(), bar: None, last: None }
    }

    /// Removes the bar.
    pub fn clear(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    /// The keeper, with the state as last written.
    pub fn into_inner(self) -> Keeper {
        self.keeper
    }

    /// The incumbent's statistic and its range over the last trial's repeats.
    fn incumbent_line(&self) -> String {
        match self.last {
            Some((m, lo, hi)) => format!("incumbent {} {} [{} … {}]", stat_name(&self.spec), num(m), num(lo), num(hi)),
            None => "incumbent not measured yet".into(),
        }
    }
}

impl Observer for Shown<'_> {
    fn started(&mut self, index: usize, budget: usize, source: &str, values: &Values) -> Result<()> {
        self.keeper.started(index, budget, source, values)?;
        let what = format!("trial {index}/{budget} ({source}: {})", changed(&self.incumbent.borrow(), values).join(", "));
        match self.mode {
            ProgressMode::Off => {}
            ProgressMode::Lines => eprintln!("semantos: {what}; measuring; {}", self.incumbent_line()),
            ProgressMode::Bar => {
                let msg = format!("{what}; {}", self.incumbent_line());
                let bar = self.bar.get_or_insert_with(|| {
                    let b = ProgressBar::with_draw_target(Some(budget as u64), ProgressDrawTarget::stderr());
                    b.set_style(ProgressStyle::with_template("[{bar:20}] {pos}/{len} {msg}").expect("a valid template").progress_chars("=> "));
                    b
                });
                bar.set_position(index as u64 - 1);
                bar.set_message(msg);
            }
        }
        Ok(())
    }

    fn finished(&mut self, trial: &Trial, incumbent: &Values) -> Result<()> {
        self.keeper.finished(trial, incumbent)?;
        *self.incumbent.borrow_mut() = incumbent.clone();
        let j = &trial.judgement;
        let kept_side = if j.decision == Decision::Kept { &j.candidate } else { &j.incumbent };
        if !kept_side.is_empty() {
            let lo = kept_side.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = kept_side.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            self.last = Some((median(kept_side), lo, hi));
        }
        let line = format!("trial {} ({}{}): {} — {}", trial.index, trial.source, support_tag(trial), decision_word(j.decision), j.reason);
        match (&self.bar, self.mode) {
            (Some(b), _) => b.println(line),
            (None, ProgressMode::Lines) => eprintln!("semantos: {line}"),
            _ => {}
        }
        Ok(())
    }
}

/// The statistic as the flag names it (`p99`).
fn stat_name(spec: &ObjectiveSpec) -> String {
    format!("{:?}", spec.stat).to_lowercase()
}

/// `, rationale unsupported` (or `supported`) for an LLM candidate whose rationale was checked.
fn support_tag(t: &Trial) -> &'static str {
    match t.supported {
        Some(false) => ", rationale unsupported",
        Some(true) => ", rationale supported",
        None => "",
    }
}

fn decision_word(d: Decision) -> &'static str {
    match d {
        Decision::Kept => "kept",
        Decision::Reverted => "rolled back",
        Decision::Refused => "refused",
        Decision::Failed => "failed, rolled back",
    }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The figure's points: each trial's candidate statistic with the interval its paired improvement allows, and the best so far.
pub fn points(s: &TuneState) -> Vec<TunePoint> {
    let mut best = f64::NAN;
    s.trials
        .iter()
        .map(|t| {
            let j = &t.judgement;
            let (inc, cand) = (median(&j.incumbent), median(&j.candidate));
            let (a, b) = (j.ci95_pct.0 / 100.0, j.ci95_pct.1 / 100.0);
            // improvement = (inc − cand)/inc when lower is better, (cand − inc)/inc when higher is.
            let interval = match s.objective.direction {
                Direction::Lower => (inc * (1.0 - b), inc * (1.0 - a)),
                Direction::Higher => (inc * (1.0 + a), inc * (1.0 + b)),
            };
            let kept = j.decision == Decision::Kept;
            if kept && cand.is_finite() {
                best = cand;
            } else if inc.is_finite() {
                best = inc;
            }
            TunePoint { trial: t.index, value: cand, interval, best, kept }
        })
        .collect()
}

/// Writes `plot.svg` into the run directory; returns its path.
pub fn write_plot(s: &TuneState) -> Result<PathBuf> {
    let title = format!("semantos tune: {} of {}", stat_name(&s.objective), s.command.cmd);
    let svg = render_tune_svg(&points(s), &title, &format!("{} ({} is better)", stat_name(&s.objective), if s.objective.direction == Direction::Lower { "lower" } else { "higher" }))?;
    let p = s.run_dir.join("plot.svg");
    crate::apply::files::write_atomic(&p, svg.as_bytes(), 0o644)?;
    Ok(p)
}

/// The `--json` document of a finished tune.
#[derive(Serialize)]
struct Report<'a> {
    target: String,
    objective: &'a ObjectiveSpec,
    command: &'a str,
    stop: &'a crate::tune::driver::Stop,
    start: &'a Values,
    best: &'a Values,
    changed: Vec<String>,
    trials: &'a [Trial],
    state: &'a Path,
    trace: &'a Path,
    plot: &'a Path,
}

/// The closing table, the kept values and where the files are (or the JSON document).
pub fn print(s: &TuneState, o: &Outcome, state: &Path, trace: &Path, plot: &Path, json: bool) -> Result<()> {
    let kept = changed(&o.start, &o.best);
    if json {
        let r = Report { target: s.target.describe(), objective: &s.objective, command: &s.command.cmd, stop: &o.stop, start: &o.start, best: &o.best, changed: kept, trials: &s.trials, state, trace, plot };
        return output::print("tune", &r);
    }
    print!("{}", table(s));
    if kept.is_empty() {
        println!("Nothing was kept: the start values are in force on {}.", s.target.describe());
    } else {
        let vals: Values = o.best.iter().filter(|(k, _)| kept.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        println!("Kept on {}: {}", s.target.describe(), live::show(&vals));
    }
    println!("stopped: {} · state: {} · trace: {} · plot: {}", format!("{:?}", o.stop).to_lowercase(), state.display(), trace.display(), plot.display());
    Ok(())
}

/// One row per trial: source, changed keys, statistic incumbent → candidate, improvement and CI, decision.
pub fn table(s: &TuneState) -> String {
    let mut out = format!("{:>5}  {:<10} {:<40} {:>23}  {:>26}  {}\n", "trial", "source", "changed", format!("{} inc → cand", stat_name(&s.objective)), "improvement [95 % CI]", "decision");
    let mut before = s.start.clone();
    for t in &s.trials {
        let j = &t.judgement;
        let ch: Vec<String> = changed(&before, &t.values).iter().map(|k| format!("{k}={}", t.values[k])).collect();
        let stat = format!("{} → {}", num(median(&j.incumbent)), num(median(&j.candidate)));
        let imp = if j.improvement_pct.is_finite() { format!("{:+.1} % [{:+.1}, {:+.1}]", j.improvement_pct, j.ci95_pct.0, j.ci95_pct.1) } else { "n/a".into() };
        let tone = match j.decision {
            Decision::Kept => Tone::Good,
            Decision::Reverted => Tone::Warn,
            _ => Tone::Bad,
        };
        out.push_str(&format!("{:>5}  {:<10} {:<40} {:>23}  {:>26}  {}\n", t.index, t.source, ch.join(" "), stat, imp, style::paint(decision_word(j.decision), tone)));
        if t.supported == Some(false) {
            out.push_str("       the LLM's rationale cites figures that do not match the evidence it was given (unsupported); only the measurement decides\n");
        }
        if j.decision != Decision::Kept {
            out.push_str(&format!("       {}\n", j.reason));
        }
        if j.decision == Decision::Kept {
            before = t.values.clone();
        }
    }
    out
}
