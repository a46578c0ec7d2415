//! `semantos verify [--verbose]`: for every key SemantOS manages, the value it intends, the value
//! live now, who else owns the key, and whether they agree. Exit 0 when every key agrees, 1 when
//! any differs (as `tuned-adm verify` and `diff`: 1 means "not the same"; the exit table's other
//! codes mean a write was refused, undone or invalid, and verify writes nothing). A key agrees
//! when its live value is the intended one and no other owner that would put a value back (a
//! sysctl.d file or TuneD profile with another value, a running bpftune tuner) manages it.

use super::exit;
use super::flags::{JsonArg, StateArgs, TreeArg};
use super::owners::{self, OwnersRootArg};
use crate::ownership::{Owner, OwnerKind};
use anyhow::Result;
use clap::Args;
use serde::Serialize;

/// Arguments of `verify`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  semantos verify                            exit 0 when every managed key agrees
  semantos verify --verbose                  also every owner, the lines it shadows, files read
  semantos verify --sysctl-root /tmp/tree --state-dir /tmp/state --owners-root /tmp/host --json

Exit status: 0 every managed key agrees (also when SemantOS manages nothing here); 1 a key
differs: its live value is not the intended one, or another owner sets it; 2 invalid input such
as a damaged backup (see `semantos --help`).")]
pub struct VerifyArgs {
    #[command(flatten)]
    pub tree: TreeArg,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub owners: OwnersRootArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// One managed key's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The dotted key.
    pub key: String,
    /// What SemantOS applied (the newest run's value).
    pub intended: String,
    /// The value read now.
    pub live: Option<String>,
    /// The run that applied it.
    pub run_id: String,
    /// Whether live, intended and every other owner agree.
    pub in_agreement: bool,
    /// Why not, one reason each.
    pub reasons: Vec<String>,
    /// Every owner found, SemantOS included.
    pub owners: Vec<Owner>,
}

/// The `verify` document.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// Whether every managed key agrees (the exit code says the same).
    pub all_agree: bool,
    /// One per managed key.
    pub keys: Vec<Checked>,
    /// Files and services looked at (empty without an owners root: a sandbox tree).
    pub looked_at: Vec<String>,
    /// What could not be read or understood.
    pub warnings: Vec<String>,
}

/// Why `key` (intended `intended`, live `live`) is not in agreement, given its owners.
pub fn reasons(intended: &str, live: Option<&str>, owners: &[Owner]) -> Vec<String> {
    let mut why = Vec::new();
    match live {
        None => why.push("its live value cannot be read".to_string()),
        Some(l) if !owners::same(Some(l), intended) => why.push(format!("live is {l}, SemantOS applied {intended}: changed since by someone else")),
        Some(_) => {}
    }
    for o in owners.iter().filter(|o| o.blocks && o.kind != OwnerKind::Semantos) {
        match &o.value {
            Some(v) if owners::same(Some(v), intended) => {}
            Some(_) => why.push(format!("{} would put its own value back", o.describe())),
            None => why.push(format!("{} may change it at any time", o.describe())),
        }
    }
    why
}

/// `semantos verify`; `verbose` is the global `-v`/`--verbose`: every key, owner, shadowed line and file read.
pub fn run(a: &VerifyArgs, verbose: bool) -> Result<i32> {
    let owners::ManagedView { records: recs, store, report, .. } = owners::managed_view(&a.state, &a.tree.sysctl_root, &a.owners)?;
    let keys = recs.keys();
    let checked: Vec<Checked> = keys
        .iter()
        .map(|k| {
            // The newest run's value is the one intended (records are per backup: a tune's may be newer).
            let r = recs.records.iter().filter(|r| &r.key == k).max_by_key(|r| r.at_ms).expect("a managed key has a record");
            let live = owners::live(&store, k);
            let owners = report.of(k).to_vec();
            let why = reasons(&r.intended, live.as_deref(), &owners);
            Checked { key: k.clone(), intended: r.intended.clone(), live, run_id: r.run_id.clone(), in_agreement: why.is_empty(), reasons: why, owners }
        })
        .collect();
    let v = Verified { all_agree: checked.iter().all(|c| c.in_agreement), keys: checked, looked_at: report.looked_at.clone(), warnings: report.warnings.clone() };
    if a.json.json {
        super::output::print("verify", &v)?;
    } else {
        for w in &v.warnings {
            eprintln!("semantos: warning: ownership: {w}");
        }
        print!("{}", render(&v, verbose));
    }
    Ok(if v.all_agree { exit::OK } else { exit::FAILED })
}

/// The human report: one line per key (only the ones that differ unless verbose), then a verdict.
fn render(v: &Verified, verbose: bool) -> String {
    let mut out = String::new();
    if v.keys.is_empty() {
        return "SemantOS manages no key here: nothing to verify.\n".to_string();
    }
    for c in v.keys.iter().filter(|c| verbose || !c.in_agreement) {
        let live = c.live.clone().unwrap_or_else(|| "(unreadable)".into());
        let state = if c.in_agreement { "ok" } else { "DIFFERS" };
        out.push_str(&format!("{state:<8} {}  intended {}  live {live}  (run {})\n", c.key, c.intended, c.run_id));
        for r in &c.reasons {
            out.push_str(&format!("         - {r}\n"));
        }
        if verbose {
            for o in &c.owners {
                out.push_str(&format!("         owner: {}\n", o.describe()));
                for l in &o.shadows {
                    out.push_str(&format!("           shadows {} ({} = {})\n", l.at(), l.pattern, l.value));
                }
                if let Some(n) = &o.note {
                    out.push_str(&format!("           note: {n}\n"));
                }
            }
        }
    }
    if verbose {
        for l in &v.looked_at {
            out.push_str(&format!("looked at: {l}\n"));
        }
    }
    let differ = v.keys.iter().filter(|c| !c.in_agreement).count();
    if differ == 0 {
        out.push_str(&format!("All {} managed key(s) agree.\n", v.keys.len()));
    } else {
        out.push_str(&format!("{differ} of {} managed key(s) differ.\n", v.keys.len()));
    }
    out
}
