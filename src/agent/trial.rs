//! One change set as one `tune` trial: the same driver `semantos tune` runs (`tune::driver::run`
//! with the change set as its only candidate, a budget of one), so the incumbent and the candidate
//! are set through the apply transaction and measured in interleaved pairs, and `tune::judge`
//! keeps the candidate only when the objective improves by at least the minimum effect with a
//! paired t interval excluding zero (`tune::interval`) and no guard worsens past its limit. Whatever the
//! decision, the driver leaves the values it chose in force: the candidate when kept, else the
//! incumbent.

use super::signals;
use crate::tune::candidate::{Candidate, Once};
use crate::tune::driver::{self, Loop, Settings, Silent};
use crate::tune::space::SearchSpace;
use crate::tune::{Judgement, Measurement, ObjectiveSource, ObjectiveSpec, System, Values};
use anyhow::{Result, anyhow, bail};

/// The objective, cut short by SIGTERM/SIGINT: no run starts once a signal has arrived, so a
/// stopping agent fails the trial (the driver puts the incumbent back) instead of measuring on.
struct Interruptible<'a> {
    inner: &'a mut dyn ObjectiveSource,
}

impl ObjectiveSource for Interruptible<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn measure(&mut self) -> Result<Measurement> {
        if let Some(s) = signals::received() {
            bail!("stopped by {s} in the middle of the measurement");
        }
        self.inner.measure()
    }
}

/// How one change set is measured.
pub struct Trial<'a> {
    /// The objective and how it is judged.
    pub spec: &'a ObjectiveSpec,
    /// Paired repeats.
    pub repeats: usize,
}

impl Trial<'_> {
    /// Measures `candidate` against `incumbent` (the values in force now, same keys) on `system`
    /// with `objective`. `Err` only when a value could not be set: what is in force is then
    /// unknown and the caller puts the incumbent back.
    pub fn run(&self, system: &mut dyn System, objective: &mut dyn ObjectiveSource, incumbent: &Values, candidate: &Values) -> Result<Judgement> {
        let space = SearchSpace::default();
        let once = Once::new("rules", Some(Candidate { source: "rules".into(), values: candidate.clone(), rationale: None, supported: None }));
        let mut objective = Interruptible { inner: objective };
        // The guardrails judged the advice already (`decide`), and the store checks the whitelist
        // again at the moment of writing.
        let check = |_: &Values| Ok(());
        let l = Loop {
            system,
            objective: &mut objective,
            sources: vec![Box::new(once)],
            space: &space,
            spec: self.spec,
            check: &check,
            // The seed feeds only optimisers that draw candidates; this trial's one candidate is given.
            settings: Settings::new(1, self.repeats, 0),
        };
        let out = driver::run(l, incumbent.clone(), incumbent.clone(), Vec::new(), &mut Silent)?;
        out.trials.into_iter().next().map(|t| t.judgement).ok_or_else(|| anyhow!("the trial of {} was not run", crate::tune::live::show(candidate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::AuditLog;
    use crate::kb::Kb;
    use crate::safety::Policy;
    use crate::sysctl::{SysctlKey, TreeStore, Value};
    use crate::tune::command::CommandObjective;
    use crate::tune::live::{LiveSystem, Target};
    use crate::tune::{Decision, Direction, Stat};
    use crate::eval::harness::UserCommand;
    use std::path::Path;
    use std::time::Duration;

    /// A sandbox tree holding `net.core.somaxconn = 4096`, its LiveSystem, and a `value` objective
    /// that reads the key's file as the live score (higher is better when `goal` says so).
    fn check(dir: &Path, goal: Direction, candidate: &str) -> (Judgement, String) {
        let kb = Kb::embedded().unwrap();
        let tree = dir.join("tree");
        TreeStore::sandbox(&tree).seed(&SysctlKey::parse("net.core.somaxconn").unwrap(), &Value::from_kernel("4096")).unwrap();
        let policy = Policy { whitelist: vec!["net.core.somaxconn".into()], ..Policy::default() };
        let mut system = LiveSystem::new(Target { sysctl_root: tree.clone(), netns: None }, &kb, &policy, &dir.join("state/backup.json"), AuditLog::none());
        let cmd = format!("cat {}", tree.join("net/core/somaxconn").display());
        let mut objective = CommandObjective::new(UserCommand { cmd, netns: None, column: None, timeout: Duration::from_secs(10) }, Stat::Value);
        let spec = ObjectiveSpec::new(Stat::Value, goal, vec![]);
        let values = |v: &str| Values::from([("net.core.somaxconn".to_string(), v.to_string())]);
        let j = Trial { spec: &spec, repeats: 3 }.run(&mut system, &mut objective, &values("4096"), &values(candidate)).unwrap();
        let live = std::fs::read_to_string(tree.join("net/core/somaxconn")).unwrap().trim().to_string();
        (j, live)
    }

    #[test]
    fn a_change_set_that_helps_the_objective_is_kept_and_left_in_force() {
        let d = tempfile::tempdir().unwrap();
        let (j, live) = check(d.path(), Direction::Higher, "8192");
        assert_eq!(j.decision, Decision::Kept, "{}", j.reason);
        assert_eq!((j.incumbent.len(), j.candidate.len(), live.as_str()), (3, 3, "8192"));
    }

    #[test]
    fn a_change_set_that_hurts_the_objective_is_rolled_back_with_its_figures() {
        let d = tempfile::tempdir().unwrap();
        let (j, live) = check(d.path(), Direction::Lower, "8192");
        assert_eq!(j.decision, Decision::Reverted, "{}", j.reason);
        assert!(j.reason.contains("4096 → 8192") && j.reason.contains("CI"), "{}", j.reason);
        assert_eq!(live, "4096");
    }
}
