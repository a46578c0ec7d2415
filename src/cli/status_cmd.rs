//! `semantos status`: what SemantOS changed on this host, when, by which run (apply, rollout,
//! tune, agent), and what is live now. Reads the state directory's backups and audit log and the
//! sysctl tree; writes nothing, creates nothing.

use super::exit;
use super::flags::{JsonArg, StateArgs, TreeArg};
use super::owners::{self, OwnersRootArg};
use crate::apply::records::Record;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `status`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  semantos status                            what SemantOS keeps on this host
  semantos status --json
  semantos status --sysctl-root /tmp/tree --state-dir /tmp/state --owners-root /tmp/host

Exit status: 0 success (also when SemantOS manages nothing here), 1 failure, 2 invalid input
such as a damaged backup (see `semantos --help`).")]
pub struct StatusArgs {
    #[command(flatten)]
    pub tree: TreeArg,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub owners: OwnersRootArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// One managed key in the status document.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What SemantOS recorded.
    #[serde(flatten)]
    pub record: Record,
    /// The value read now (None: unreadable or absent).
    pub live: Option<String>,
    /// Whether live equals the intended value (as sysctl values: whitespace normalised).
    pub live_matches: bool,
    /// Other owners that block a write of the key (`verify` says whether they agree).
    pub other_owners: Vec<String>,
}

/// The `status` document.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The sysctl tree read.
    pub sysctl_root: PathBuf,
    /// The state directory and the backups found in it.
    pub state_dir: PathBuf,
    /// Backups read.
    pub backups: Vec<PathBuf>,
    /// Drop-ins SemantOS wrote (`--persist`).
    pub dropins: Vec<PathBuf>,
    /// Every committed, unrestored value.
    pub managed: Vec<Row>,
}

/// `semantos status`.
pub fn run(a: &StatusArgs) -> Result<i32> {
    let owners::ManagedView { state: st, records: recs, store, report } = owners::managed_view(&a.state, &a.tree.sysctl_root, &a.owners)?;
    let managed = recs
        .records
        .iter()
        .map(|r| {
            let live = owners::live(&store, &r.key);
            let other_owners = report.foreign(&r.key).iter().map(|o| o.describe()).collect();
            Row { live_matches: owners::same(live.as_deref(), &r.intended), record: r.clone(), live, other_owners }
        })
        .collect();
    let s = Status { sysctl_root: a.tree.sysctl_root.clone(), state_dir: st.dir.clone(), backups: recs.backups, dropins: recs.dropins, managed };
    if a.json.json {
        super::output::print("status", &s)?;
    } else {
        print!("{}", render(&s, st.origin.describe()));
    }
    Ok(exit::OK)
}

/// The human table.
fn render(s: &Status, origin: &str) -> String {
    let mut out = String::new();
    if s.managed.is_empty() {
        let looked = if s.backups.is_empty() { "no backup".to_string() } else { format!("nothing committed and unrestored in {}", show(&s.backups)) };
        out.push_str(&format!("SemantOS manages no key here: {looked} (state directory {}, from {origin}).\n", s.state_dir.display()));
        return out;
    }
    out.push_str(&format!("SemantOS keeps {} value(s) on {} (state directory {}, from {origin}):\n", s.managed.len(), s.sysctl_root.display(), s.state_dir.display()));
    out.push_str(&format!("  {:<34} {:>18} {:>18}  {:<8} {:<20} RUN\n", "KEY", "INTENDED", "LIVE", "BY", "WHEN (UTC)"));
    for r in &s.managed {
        let live = r.live.clone().unwrap_or_else(|| "(unreadable)".into());
        let mark = if r.live_matches { " " } else { "*" };
        out.push_str(&format!("  {:<34} {:>18} {:>18}{mark} {:<8} {:<20} {}\n", r.record.key, r.record.intended, live, r.record.run_kind, utc(r.record.at_ms), r.record.run_id));
        for o in &r.other_owners {
            out.push_str(&format!("    also managed by {o}\n"));
        }
    }
    if s.managed.iter().any(|r| !r.live_matches) {
        out.push_str("  * live differs from what SemantOS applied: `semantos verify --verbose` says who else sets it\n");
    }
    if !s.dropins.is_empty() {
        out.push_str(&format!("drop-ins: {}\n", show(&s.dropins)));
    }
    out
}

fn show(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC; days to a civil date as in Howard Hinnant's `civil_from_days`).
pub fn utc(ms: u64) -> String {
    let s = ms / 1000;
    let (days, rem) = ((s / 86400) as i64, s % 86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_shown_as_utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_796_599_801_000), "2026-12-06 23:30:01");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00");
    }
}
