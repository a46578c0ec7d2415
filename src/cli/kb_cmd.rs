//! `semantos kb`: look into the knowledge base.
//!
//! * `kb list [--subsystem S] [--risk R] [--intent I]` — the parameters, filtered.
//! * `kb show KEY` — everything the KB knows about one key, its edges and
//!   symptoms, and what the store (normally `/proc/sys`) has for it now.
//! * `kb validate [--live]` — schema, cross-references and lint; with
//!   `--live`, every entry against the running kernel (existence by version
//!   and by its build config, scope, writability, current value).
//! * `kb graph [--format dot|mermaid]` — the typed edges as a graph.
//!
//! Every subcommand takes `--json`. Exit codes: 0 success (for `validate`:
//! consistent); 1 `validate` found errors or live mismatches; 2 `show` was
//! given a key that is not a valid name or has no KB entry. The logic lives
//! in `kb::{query, live, graph, validate}`; this file only parses and prints.

use super::flags::{KbDirArg, TreeArg};
use crate::kb::entry::{Direction, NoRead, Param};
use crate::kb::graph::{self, GraphFormat};
use crate::kb::live::{self, LiveEntry, LiveReport, Status};
use crate::kb::query::{self, ListFilter};
use crate::kb::validate;
use crate::kb::{Intent, Kb, Risk};
use crate::sysctl::{SysctlKey, SysctlStore};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// Exit code: success, or the KB is consistent.
pub const EXIT_OK: i32 = 0;
/// Exit code: `kb validate` found schema errors or live mismatches.
pub const EXIT_INCONSISTENT: i32 = 1;
/// Exit code: `kb show` got an invalid key or one without a KB entry.
pub const EXIT_UNKNOWN_KEY: i32 = 2;

/// Arguments of `semantos kb`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Look into the knowledge base: list, show, validate (also against this kernel), graph",
    long_about = "Look into the knowledge base of sysctl parameters: what each controls, its valid range, scope, risk, \
                  the symptoms that call for it and the typed edges between parameters.",
    after_help = "Examples:\n  semantos kb list --subsystem net.ipv4 --intent latency\n  semantos kb show vm.swappiness\n  \
                  semantos kb validate --live\n  semantos kb graph --format mermaid > kb.mmd\n\n\
                  Exit status: 0 success; 1 kb validate found problems; 2 usage error, or an unknown key for kb show."
)]
pub struct KbArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KbCommand,
}

/// The `kb` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KbCommand {
    /// List parameters, optionally filtered by subsystem, risk and intent.
    List(ListArgs),
    /// Show everything known about one parameter, and its value on this host.
    Show(ShowArgs),
    /// Check the KB (schema, references, lint); with --live, against the running kernel.
    Validate(ValidateArgs),
    /// Draw the typed edges between parameters (Graphviz DOT or Mermaid).
    Graph(GraphArgs),
}

/// Arguments of `kb list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only keys at or below this dotted prefix: vm, net, net.ipv4, net.ipv4.neigh...
    #[arg(long, value_name = "PREFIX")]
    pub subsystem: Option<String>,
    /// Only parameters with this risk.
    #[arg(long, value_enum)]
    pub risk: Option<Risk>,
    /// Only parameters the KB wants moved (direction other than keep) for this intent; adds DIRECTION and SUGGEST columns.
    #[arg(long, value_enum)]
    pub intent: Option<Intent>,
    /// Print the matching entries as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kb: KbDirArg,
}

/// Arguments of `kb show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The key, dotted (vm.swappiness) or slashed (vm/swappiness).
    pub key: String,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub tree: TreeArg,
}

/// Arguments of `kb validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Also compare every entry with the running kernel: existence, writability, current value, and (as root) the scope of net.* keys in a fresh network namespace.
    #[arg(long)]
    pub live: bool,
    /// With --live, skip the network-namespace scope check (it needs root and `unshare`).
    #[arg(long, requires = "live")]
    pub no_scope: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub tree: TreeArg,
}

/// Arguments of `kb graph`.
#[derive(Debug, Clone, clap::Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// Print nodes, edges and the rendered text as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kb: KbDirArg,
}

impl KbArgs {
    /// `--kb DIR` of whichever subcommand was given.
    pub fn kb_dir(&self) -> &KbDirArg {
        match &self.command {
            KbCommand::List(a) => &a.kb,
            KbCommand::Show(a) => &a.kb,
            KbCommand::Validate(a) => &a.kb,
            KbCommand::Graph(a) => &a.kb,
        }
    }

    /// `--sysctl-root` of `show` and `validate`; the others read no sysctl (/proc/sys, unused).
    pub fn sysctl_root(&self) -> &std::path::Path {
        match &self.command {
            KbCommand::Show(a) => &a.tree.sysctl_root,
            KbCommand::Validate(a) => &a.tree.sysctl_root,
            KbCommand::List(_) | KbCommand::Graph(_) => std::path::Path::new("/proc/sys"),
        }
    }

    /// Whether the given subcommand prints JSON.
    pub fn json(&self) -> bool {
        match &self.command {
            KbCommand::List(a) => a.json,
            KbCommand::Show(a) => a.json,
            KbCommand::Validate(a) => a.json,
            KbCommand::Graph(a) => a.json,
        }
    }

    /// The `--json` of whichever subcommand was given (the top-level `semantos --json kb …` sets it).
    pub fn json_mut(&mut self) -> &mut bool {
        match &mut self.command {
            KbCommand::List(a) => &mut a.json,
            KbCommand::Show(a) => &mut a.json,
            KbCommand::Validate(a) => &mut a.json,
            KbCommand::Graph(a) => &mut a.json,
        }
    }
}

/// Runs `semantos kb ...`, printing to stdout (errors about the key to
/// stderr); returns the exit code. A closed pipe (`| head`) is not an error.
pub fn run(args: &KbArgs, kb: &Kb, store: &dyn SysctlStore) -> Result<i32> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run_to(args, kb, store, &mut out, &mut std::io::stderr()) {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => Ok(EXIT_OK),
        other => other,
    }
}

/// [`run`] with explicit output streams (tests capture them).
pub fn run_to(args: &KbArgs, kb: &Kb, store: &dyn SysctlStore, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    match &args.command {
        KbCommand::List(a) => list(a, kb, out),
        KbCommand::Show(a) => show(a, kb, store, out, err),
        KbCommand::Validate(a) => validate_cmd(a, kb, store, out),
        KbCommand::Graph(a) => graph_cmd(a, kb, out),
    }
}

fn json_to(out: &mut dyn Write, kind: &str, value: &impl Serialize) -> Result<()> {
    super::output::write(out, kind, value)
}

fn lower<T: std::fmt::Debug>(x: T) -> String {
    // The serde names of Scope/Effect/Direction are the snake_case of their Debug names.
    let mut s = String::new();
    for (i, c) in format!("{x:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}

/// One word for where a key stands across kernel versions.
fn availability(p: &Param) -> String {
    match (&p.since, &p.removed_in, p.no_op) {
        (_, Some(r), _) => format!("removed {r}"),
        (_, _, true) => "no-op".into(),
        (Some(s), None, false) => format!("since {s}"),
        (None, None, false) => String::new(),
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

fn list(a: &ListArgs, kb: &Kb, out: &mut dyn Write) -> Result<i32> {
    let filter = ListFilter { subsystem: a.subsystem.clone(), risk: a.risk, intent: a.intent };
    let params = query::list(kb, &filter);
    if a.json {
        json_to(out, "kb_list", &serde_json::json!({ "params": params }))?;
        return Ok(EXIT_OK);
    }
    match a.intent {
        Some(_) => writeln!(out, "{:<46} {:<15} {:<6} {:<6} {:<20} {:<9} {:<20} KERNEL", "KEY", "SCOPE", "RISK", "TYPE", "DEFAULT", "DIRECTION", "SUGGEST")?,
        None => writeln!(out, "{:<46} {:<15} {:<6} {:<6} {:<20} KERNEL", "KEY", "SCOPE", "RISK", "TYPE", "DEFAULT")?,
    };
    for p in &params {
        let default = cut(p.default.as_deref().unwrap_or("-"), 20);
        let head = format!("{:<46} {:<15} {:<6} {:<6} {:<20}", p.key, lower(p.scope), query::risk_name(p.risk), lower(p.kind), default);
        match a.intent {
            Some(i) => {
                let dir = p.direction.get(i).map(|d| lower(*d)).unwrap_or_default();
                let sug = cut(p.suggest.get(i).map(String::as_str).unwrap_or("-"), 20);
                writeln!(out, "{head} {dir:<9} {sug:<20} {}", availability(p))?;
            }
            None => writeln!(out, "{head} {}", availability(p))?,
        }
    }
    let mut what = Vec::new();
    if let Some(s) = &a.subsystem {
        what.push(format!("subsystem {s}"));
    }
    if let Some(r) = a.risk {
        what.push(format!("risk {}", query::risk_name(r)));
    }
    if let Some(i) = a.intent {
        what.push(format!("moved for intent {}", i.name()));
    }
    let suffix = if what.is_empty() { String::new() } else { format!(" ({})", what.join(", ")) };
    writeln!(out, "{} of {} parameters{suffix}", params.len(), kb.params.len())?;
    Ok(EXIT_OK)
}

/// What `kb show --json` prints.
#[derive(Serialize)]
struct ShowReport<'a> {
    param: &'a Param,
    origin: Option<&'a str>,
    edges: Vec<&'a crate::kb::Edge>,
    symptoms: Vec<&'a crate::kb::Symptom>,
    counter_symptoms: Vec<&'a crate::kb::Symptom>,
    live: LiveEntry,
}

fn show(a: &ShowArgs, kb: &Kb, store: &dyn SysctlStore, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    let key = match SysctlKey::parse(&a.key) {
        Ok(k) => k.dotted(),
        Err(e) if a.json => {
            writeln!(err, "{}", super::output::ErrorDoc::of(EXIT_UNKNOWN_KEY, &anyhow::anyhow!("kb show: {e}")).line())?;
            return Ok(EXIT_UNKNOWN_KEY);
        }
        Err(e) => {
            writeln!(err, "kb show: {e}")?;
            return Ok(EXIT_UNKNOWN_KEY);
        }
    };
    let Some(p) = kb.param(&key) else {
        let last = key.rsplit('.').next().unwrap_or(&key);
        let typo = crate::reasoning::plan::did_you_mean(&key, kb.params.keys().map(String::as_str));
        let near: Vec<&str> = typo.into_iter().chain(kb.params.keys().filter(|k| k.contains(last) && Some(k.as_str()) != typo).map(String::as_str)).take(8).collect();
        if a.json {
            let causes = if near.is_empty() { vec!["list the entries with `semantos kb list`".to_string()] } else { vec![format!("similar keys: {}", near.join(", "))] };
            let doc = super::output::ErrorDoc { exit_code: EXIT_UNKNOWN_KEY, message: format!("kb show: the knowledge base has no entry for {key}; a key without an entry cannot be proposed or applied"), causes };
            writeln!(err, "{}", doc.line())?;
            return Ok(EXIT_UNKNOWN_KEY);
        }
        writeln!(err, "kb show: the knowledge base has no entry for {key}; a key without an entry cannot be proposed or applied")?;
        if !near.is_empty() {
            writeln!(err, "  similar keys: {}", near.join(", "))?;
        }
        writeln!(err, "  list the entries with `semantos kb list`")?;
        return Ok(EXIT_UNKNOWN_KEY);
    };
    let child = None;
    let entry = live::check_entry(p, store, child, live::kernel_version(store), &live::build_config_for(store));
    let report = ShowReport {
        param: p,
        origin: kb.origin.get(&p.key).map(String::as_str),
        edges: kb.edges_of(&p.key).collect(),
        symptoms: p.symptoms.iter().filter_map(|s| kb.symptoms.get(s)).collect(),
        counter_symptoms: p.counter_symptoms.iter().filter_map(|s| kb.symptoms.get(s)).collect(),
        live: entry,
    };
    if a.json {
        json_to(out, "kb_entry", &report)?;
        return Ok(EXIT_OK);
    }
    write!(out, "{}", render_show(&report, store))?;
    Ok(EXIT_OK)
}

/// The `type` row: kind, allowed values, unit, the KB's range.
fn type_text(p: &Param) -> String {
    let mut shape = lower(p.kind);
    if p.kind == crate::sysctl::ValueKind::Ints {
        shape.push_str(&format!(" x{}", p.count));
    }
    if !p.values.is_empty() {
        shape.push_str(&format!(" of {}", p.values.join(" | ")));
    }
    if let Some(u) = &p.unit {
        shape.push_str(&format!(", {u}"));
    }
    let range = match (p.min, p.max) {
        (Some(lo), Some(hi)) => format!(", KB range {lo}..={hi}"),
        (Some(lo), None) => format!(", KB range >= {lo}"),
        (None, Some(hi)) => format!(", KB range <= {hi}"),
        (None, None) => String::new(),
    };
    shape.push_str(&range);
    if p.ordered {
        shape.push_str(", elements non-decreasing");
    }
    shape
}

/// The `kernel` row: since, removed, moved, no-op, needed config.
fn kernel_text(p: &Param) -> String {
    let mut kernel = Vec::new();
    if let Some(v) = &p.since {
        kernel.push(format!("since {v}"));
    }
    if let Some(v) = &p.removed_in {
        kernel.push(format!("removed from /proc/sys in {v}"));
    }
    if let Some(v) = &p.moved_to {
        kernel.push(format!("moved to {v}"));
    }
    if p.no_op {
        kernel.push("present but has no effect".into());
    }
    if !p.requires_config.is_empty() {
        kernel.push(format!("needs a kernel built with {}", p.requires_config.join(" and ")));
    }
    if let Some(c) = &p.config {
        kernel.push(format!("needs {c}"));
    }
    kernel.join("; ")
}

/// The `direction` row: each intent's direction and suggestion.
fn direction_text(p: &Param) -> String {
    let dirs: Vec<String> = Intent::ALL
        .iter()
        .filter_map(|i| {
            let d = p.direction.get(*i)?;
            let sug = p.suggest.get(*i).filter(|_| *d != Direction::Keep).map(|v| format!(" ({v})")).unwrap_or_default();
            Some(format!("{} {}{sug}", i.name(), lower(*d)))
        })
        .collect();
    dirs.join(", ")
}

/// The `here` row: whether the key exists on this host and its value (unless reading it is unsafe).
fn here_text(l: &LiveEntry, p: &Param) -> String {
    if !l.exists {
        match (&l.why_absent, l.expected_present) {
            (Some(why), _) => format!("absent, as the KB expects: {why}"),
            (None, Some(false)) => "absent, as the KB expects on this kernel".to_string(),
            _ => "absent".to_string(),
        }
    } else {
        let value = match (&l.value, p.no_read) {
            (_, Some(NoRead::Secret)) => "value not shown (secret)".to_string(),
            (_, Some(NoRead::SideEffect)) => "value not read (reading it acts)".to_string(),
            (_, Some(NoRead::WriteOnly)) => "write-only action file".to_string(),
            (Some(v), None) => format!("value {v}"),
            (None, None) => "value unreadable".to_string(),
        };
        format!("exists, {}, {value}", if l.writable == Some(true) { "writable" } else { "read-only" })
    }
}

/// The text of `kb show`: one labelled row per fact, then the live check.
fn render_show(r: &ShowReport<'_>, store: &dyn SysctlStore) -> String {
    use std::fmt::Write as _;
    let p = r.param;
    let mut s = String::new();
    let _ = writeln!(s, "{}{}", p.key, r.origin.map(|o| format!("  ({o})")).unwrap_or_default());
    let row = |s: &mut String, label: &str, text: &str| {
        if !text.is_empty() {
            let _ = writeln!(s, "  {label:<12} {text}");
        }
    };
    row(&mut s, "controls", &p.controls);
    let shape = type_text(p);
    row(&mut s, "type", &shape);
    row(&mut s, "default", p.default.as_deref().unwrap_or("(none fixed)"));
    row(&mut s, "scope", &lower(p.scope));
    row(&mut s, "risk", &format!("{} — {}", query::risk_name(p.risk), p.risk_reason));
    row(&mut s, "effect", &format!("{}{}", lower(p.effect), p.effect_note.as_ref().map(|n| format!(" — {n}")).unwrap_or_default()));
    if p.rounding != crate::sysctl::value::Rounding::Exact {
        row(&mut s, "read-back", &format!("may differ: {}", lower(p.rounding)));
    }
    let kernel = kernel_text(p);
    row(&mut s, "kernel", &kernel);
    for (label, list) in [("symptoms", &r.symptoms), ("too far", &r.counter_symptoms)] {
        for sym in list.iter() {
            row(&mut s, label, &format!("{} — {}", sym.id, sym.title));
        }
    }
    let dirs = direction_text(p);
    row(&mut s, "direction", &dirs);
    for c in &p.conditions {
        let what = c.sysctl.as_deref().or(c.metric.as_deref()).unwrap_or("?");
        row(&mut s, "condition", &format!("{what} {} {} — {}", c.op.symbol(), c.value, c.because));
    }
    for e in &r.edges {
        let other = if e.from == p.key { format!("-> {}", e.to) } else { format!("<- {}", e.from) };
        row(&mut s, "edge", &format!("{} {other}: {}", graph::edge_label(e), e.note));
    }
    for x in &p.references {
        row(&mut s, "reference", x);
    }
    let l = &r.live;
    let here = here_text(l, p);
    row(&mut s, "here", &format!("{} ({})", here, store.describe()));
    for m in &l.mismatches {
        row(&mut s, "MISMATCH", &m.message);
    }
    // "value not read" notes repeat what the `here` row already says.
    for t in l.cannot_tell.iter().chain(l.notes.iter().filter(|n| !n.starts_with("value not read"))) {
        row(&mut s, "note", t);
    }
    s
}

/// What `kb validate --json` prints.
#[derive(Serialize)]
struct ValidateReport {
    parameters: usize,
    symptoms: usize,
    edges: usize,
    by_subsystem: BTreeMap<String, usize>,
    by_risk: BTreeMap<String, usize>,
    by_edge_kind: BTreeMap<String, usize>,
    /// Schema and cross-reference errors: these make the KB inconsistent.
    errors: Vec<String>,
    /// Lint findings: the KB loads but an entry cannot work as written (reported, not fatal).
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<LiveReport>,
    /// Why the scope of net.* keys was not checked, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope_not_checked: Option<String>,
    consistent: bool,
}

fn validate_cmd(a: &ValidateArgs, kb: &Kb, store: &dyn SysctlStore, out: &mut dyn Write) -> Result<i32> {
    let mut errors: Vec<String> = kb
        .params
        .values()
        .filter_map(|p| validate::check_param(p).err().map(|e| format!("{}: {}: {e}", kb.origin.get(&p.key).map(String::as_str).unwrap_or("?"), p.key)))
        .collect();
    if let Err(errs) = validate::check_consistency(kb) {
        errors.extend(errs);
    }
    let warnings = validate::lint(kb);
    let (live, scope_not_checked) = if a.live {
        // The scope probe lists /proc/sys/net from a new network namespace: it
        // only says something about the kernel that also backs `store`.
        let (child, why) = if a.no_scope {
            (None, Some("--no-scope".to_string()))
        } else if store.describe() != "/proc/sys" {
            (None, Some(format!("the store is {}, not the running kernel", store.describe())))
        } else {
            match live::probe_fresh_netns() {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(e)),
            }
        };
        let build = live::build_config_for(store);
        (Some(live::validate_live_with(kb, store, child.as_ref().map(|c| c as &dyn SysctlStore), &build)), why)
    } else {
        (None, None)
    };
    let consistent = errors.is_empty() && live.as_ref().is_none_or(LiveReport::is_consistent);
    let report = ValidateReport {
        parameters: kb.params.len(),
        symptoms: kb.symptoms.len(),
        edges: kb.edges.len(),
        by_subsystem: query::count_by_subsystem(kb),
        by_risk: query::count_by_risk(kb).into_iter().map(|(r, n)| (query::risk_name(r).to_string(), n)).collect(),
        by_edge_kind: query::count_edges_by_kind(kb).into_iter().map(|(k, n)| (query::edge_kind_name(k).to_string(), n)).collect(),
        errors,
        warnings,
        live,
        scope_not_checked,
        consistent,
    };
    if a.json {
        json_to(out, "kb_validation", &report)?;
    } else {
        write!(out, "{}", render_validate(&report))?;
    }
    Ok(if consistent { EXIT_OK } else { EXIT_INCONSISTENT })
}

fn render_validate(r: &ValidateReport) -> String {
    use std::fmt::Write as _;
    let join = |m: &BTreeMap<String, usize>| m.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ");
    let mut s = String::new();
    let _ = writeln!(s, "Knowledge base: {} parameters, {} symptoms, {} edges", r.parameters, r.symptoms, r.edges);
    let _ = writeln!(s, "  by subsystem: {}", join(&r.by_subsystem));
    let _ = writeln!(s, "  by risk:      {}", join(&r.by_risk));
    let _ = writeln!(s, "  edges:        {}", join(&r.by_edge_kind));
    if r.errors.is_empty() {
        let _ = writeln!(s, "Schema and cross-references: ok");
    } else {
        let _ = writeln!(s, "Schema and cross-references: {} error(s)", r.errors.len());
        for e in &r.errors {
            let _ = writeln!(s, "  ERROR {e}");
        }
    }
    if r.warnings.is_empty() {
        let _ = writeln!(s, "Lint: ok");
    } else {
        let _ = writeln!(s, "Lint: {} warning(s)", r.warnings.len());
        for w in &r.warnings {
            let _ = writeln!(s, "  warning {w}");
        }
    }
    if let Some(l) = &r.live {
        let sum = l.summary();
        let _ = writeln!(
            s,
            "Live against {} (kernel {}): {} ok, {} absent as expected, {} cannot tell, {} mismatch(es)",
            l.store,
            l.kernel.as_deref().unwrap_or("unknown"),
            sum.ok,
            sum.absent_as_expected,
            sum.cannot_tell,
            sum.mismatch
        );
        let _ = writeln!(s, "  kernel config: {}", l.build_config);
        match &r.scope_not_checked {
            None => {
                let _ = writeln!(s, "  net.* scopes checked against a fresh network namespace");
            }
            Some(why) => {
                let _ = writeln!(s, "  net.* scopes not checked: {why}");
            }
        }
        for e in l.entries.iter().filter(|e| e.status == Status::Mismatch) {
            for m in &e.mismatches {
                let _ = writeln!(s, "  MISMATCH {}", m.message);
            }
        }
        for e in l.entries.iter().filter(|e| e.status == Status::AbsentAsExpected) {
            let _ = writeln!(s, "  absent as expected {}: {}", e.key, e.why_absent.as_deref().unwrap_or("the kernel version is unknown"));
        }
        for e in l.entries.iter().filter(|e| e.status == Status::CannotTell) {
            let _ = writeln!(s, "  cannot tell {}: {}", e.key, e.cannot_tell.join("; "));
        }
    }
    let _ = writeln!(s, "{}", if r.consistent { "consistent" } else { "NOT consistent" });
    s
}

/// What `kb graph --json` prints.
#[derive(Serialize)]
struct GraphReport<'a> {
    format: GraphFormat,
    nodes: Vec<&'a str>,
    edges: &'a [crate::kb::Edge],
    text: String,
}

fn graph_cmd(a: &GraphArgs, kb: &Kb, out: &mut dyn Write) -> Result<i32> {
    let text = graph::render(kb, a.format);
    if a.json {
        json_to(out, "kb_graph", &GraphReport { format: a.format, nodes: graph::nodes(kb), edges: &kb.edges, text })?;
    } else {
        out.write_all(text.as_bytes())?;
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysctl::store::MemStore;
    use crate::sysctl::Value;
    use clap::Parser;

    #[derive(Parser)]
    #[command(name = "kb")]
    struct T {
        #[command(flatten)]
        args: KbArgs,
    }

    fn k(s: &str) -> SysctlKey {
        SysctlKey::parse(s).unwrap()
    }

    fn store() -> MemStore {
        MemStore::new([
            (k("kernel.osrelease"), Value::from_kernel("6.18.44-fc-v669")),
            (k("vm.swappiness"), Value::int(60)),
            (k("net.ipv4.tcp_fastopen_key"), Value::from_kernel("deadbeef-deadbeef-deadbeef-deadbeef")),
            (k("net.ipv4.tcp_max_syn_backlog"), Value::int(-5)),
        ])
    }

    /// The one place that calls `run_to`: parses `argv`, returns (exit code, stdout, stderr).
    fn check(argv: &[&str], st: &MemStore) -> (i32, String, String) {
        let t = T::try_parse_from(std::iter::once("kb").chain(argv.iter().copied())).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let kb = Kb::embedded().unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_to(&t.args, &kb, st, &mut out, &mut err).unwrap();
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn list_filters_and_counts() {
        let (code, out, _) = check(&["list", "--risk", "never", "--subsystem", "fs"], &store());
        assert_eq!(code, 0);
        assert!(out.contains("fs.protected_symlinks") && !out.contains("fs.file-max"), "{out}");
        assert!(out.lines().last().unwrap().contains("(subsystem fs, risk never)"), "{out}");
        let (_, out, _) = check(&["list", "--intent", "latency", "--subsystem", "vm"], &store());
        assert!(out.starts_with("KEY") && out.contains("DIRECTION") && out.contains("vm.swappiness"), "{out}");
        assert!(!out.contains("vm.drop_caches"), "{out}");
        let (_, out, _) = check(&["list", "--json", "--subsystem", "net.unix"], &store());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!((v["schema_version"].as_u64(), v["kind"].as_str()), (Some(1), Some("kb_list")), "{v}");
        assert_eq!(v["params"].as_array().unwrap().len(), 1);
        assert_eq!(v["params"][0]["key"], "net.unix.max_dgram_qlen");
    }

    #[test]
    fn show_prints_the_entry_and_the_live_value() {
        let (code, out, _) = check(&["show", "vm/swappiness"], &store());
        assert_eq!(code, 0);
        assert!(out.starts_with("vm.swappiness  (kb/vm.toml)"), "{out}");
        assert!(out.contains("here         exists, writable, value 60 (memory)"), "{out}");
        assert!(out.contains("symptoms     swap_in_stalls"), "{out}");
        let (_, out, _) = check(&["show", "net.ipv4.tcp_max_syn_backlog"], &store());
        assert!(out.contains("MISMATCH") && out.contains("-5 is outside"), "{out}");
        let (_, out, _) = check(&["show", "kernel.sched_latency_ns", "--json"], &store());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["live"]["status"], "absent_as_expected");
        assert_eq!(v["param"]["removed_in"], "5.13");
    }

    #[test]
    fn show_never_prints_a_secret() {
        for argv in [&["show", "net.ipv4.tcp_fastopen_key"][..], &["show", "net.ipv4.tcp_fastopen_key", "--json"]] {
            let (code, out, _) = check(argv, &store());
            assert_eq!(code, 0);
            assert!(!out.contains("deadbeef"), "{out}");
        }
    }

    #[test]
    fn show_unknown_or_invalid_key_exits_2() {
        let (code, out, err) = check(&["show", "vm.swapiness"], &store());
        assert_eq!((code, out.as_str()), (EXIT_UNKNOWN_KEY, ""));
        assert!(err.contains("no entry for vm.swapiness"), "{err}");
        let (code, _, err) = check(&["show", "../etc/passwd"], &store());
        assert_eq!(code, EXIT_UNKNOWN_KEY);
        assert!(err.contains("path component"), "{err}");
    }

    #[test]
    fn validate_offline_is_consistent_and_live_reports_mismatches() {
        let (code, out, _) = check(&["validate"], &store());
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("Schema and cross-references: ok") && out.contains("Lint: ok") && out.ends_with("consistent\n"), "{out}");
        let (code, out, _) = check(&["validate", "--live"], &store());
        assert_eq!(code, EXIT_INCONSISTENT, "{out}");
        assert!(out.contains("MISMATCH net.ipv4.tcp_max_syn_backlog: current value -5"), "{out}");
        assert!(out.contains("net.* scopes not checked: the store is memory"), "{out}");
        // A store that is not the running kernel has no build config: build-dependent absences cannot be told.
        assert!(out.contains("kernel config: the store is memory") && out.contains("cannot tell net.core.flow_limit_table_len: absent: needs CONFIG_NET_FLOW_LIMIT"), "{out}");
        assert!(out.contains("absent as expected kernel.sched_latency_ns: removed in 5.13"), "{out}");
        let (code, out, _) = check(&["validate", "--live", "--json"], &store());
        assert_eq!(code, EXIT_INCONSISTENT);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["consistent"], false);
        assert!(v["parameters"].as_u64().unwrap() >= 160);
        assert!(!out.contains("deadbeef"));
    }

    #[test]
    fn graph_in_both_formats() {
        let (code, out, _) = check(&["graph"], &store());
        assert_eq!(code, 0);
        assert!(out.starts_with("digraph kb {"), "{out}");
        let (_, out, _) = check(&["graph", "--format", "mermaid"], &store());
        assert!(out.starts_with("flowchart LR"), "{out}");
        let (_, out, _) = check(&["graph", "--json"], &store());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["format"], "dot");
        assert!(v["edges"].as_array().unwrap().len() >= 40);
    }

    #[test]
    fn no_scope_requires_live() {
        assert!(T::try_parse_from(["kb", "validate", "--no-scope"]).is_err());
    }
}
