//! `semantos export FORMAT --plan FILE`: the plan, checked by the very
//! guardrails `apply` runs (`safety::check_with`, with the values read from
//! `--sysctl-root`, the policy, the KB and host facts), written as an
//! Ansible playbook, a TuneD profile, a sysctl.d drop-in or an OpenShift
//! Node Tuning Operator `Tuned` resource (stdout, or `--out FILE` written
//! atomically). Clamped changes are exported at the clamped value; refused
//! and skipped ones are left out with apply's message; a rejected plan
//! exports nothing. A change skipped because the value is already in force
//! is exported: a drop-in must keep what the host already has.

use super::common::{self, invalid, load_kb};
use super::flags::{HealthTimeoutArg, IntentArg, JsonArg, KbDirArg, PlanArg, PolicyArg, StateLoc, TreeArg, WatchArgs};
use super::propose;
use crate::apply::files::write_atomic;
use crate::export::{self, Format, nto::NtoOptions, tuned};
use crate::rollout::ansible::{self, Batch, PlaybookOptions};
use crate::rollout::inventory::Inventory;
use crate::rollout::precheck::{self, Target};
use crate::rollout::waves::{Size, WaveSpec};
use crate::safety::{self, CheckedPlan, Verdict};
use crate::sysctl::Value;
use crate::telemetry::procfs::ProcReader;
use anyhow::Result;
use clap::Args;
use crate::sysctl::{SysctlKey, SysctlStore};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `semantos export`. `--plan FILE` (or `-`) is the plan;
/// `--policy` checks it; `--monitor-seconds`, `--health-cmd`, `--health-timeout`
/// and `--persist` shape the Ansible playbook.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXPORT_HELP)]
pub struct ExportArgs {
    /// What to write.
    #[arg(value_enum)]
    pub format: Format,
    /// Write to this file (atomically) instead of standard output; tuned: a directory (e.g. /etc/tuned) gets NAME/tuned.conf.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// ansible: size `serial` exactly for this inventory's hosts (without it, batches are percentages).
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// ansible: first batch, a host count or a percentage [default: 1].
    #[arg(long, value_name = "N|N%")]
    pub canary: Option<String>,
    /// ansible: cumulative ramp sizes after each batch; the last batch takes the rest [default: 25%,50%].
    #[arg(long, value_name = "LIST")]
    pub steps: Option<String>,
    /// ansible: directory on each host for the backup (`{host}` → inventory host name) [default: /var/lib/semantos].
    #[arg(long, value_name = "DIR")]
    pub remote_dir: Option<String>,
    /// tuned / nto: profile name (tuned: the profile's directory; nto: a DNS-1123 label) [default: semantos].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// tuned / nto: parent profile (`include=`); nto defaults to openshift-node.
    #[arg(long, value_name = "PROFILE")]
    pub include: Option<String>,
    /// nto: node label the profile is recommended for, KEY or KEY=VALUE [default: node-role.kubernetes.io/worker].
    #[arg(long, value_name = "LABEL")]
    pub node_label: Option<String>,
    /// nto: recommend priority (lower wins) [default: 20].
    #[arg(long)]
    pub priority: Option<u32>,
    /// nto: namespace of the Tuned resource [default: openshift-cluster-node-tuning-operator].
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub plan: PlanArg,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub intent: IntentArg,
    #[command(flatten)]
    pub tree: TreeArg,
    /// The /proc host facts (dirtyable memory) are read from, as apply would.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: std::path::PathBuf,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub health_timeout: HealthTimeoutArg,
    #[command(flatten)]
    pub kb: KbDirArg,
    #[command(flatten)]
    pub json: JsonArg,
}

const EXPORT_HELP: &str = "Examples:
  semantos export sysctl.d --plan plan.json --out /etc/sysctl.d/90-semantos.conf
  semantos export tuned --plan plan.json --name web --out /etc/tuned
  semantos export tuned --plan plan.json --include throughput-performance --out tuned.conf
  semantos export nto --plan plan.json --name semantos-web | oc apply -f -
  semantos export ansible --plan plan.json --inventory inventory.ini --out site.yml
  semantos export sysctl.d --plan - < plan.json";

/// The format-specific flags given, each with the formats it applies to.
fn format_flags(a: &ExportArgs) -> Vec<(&'static str, bool, &'static [Format])> {
    use Format::*;
    vec![
        ("--inventory", a.inventory.is_some(), &[Ansible]),
        ("--canary", a.canary.is_some(), &[Ansible]),
        ("--steps", a.steps.is_some(), &[Ansible]),
        ("--remote-dir", a.remote_dir.is_some(), &[Ansible]),
        ("--name", a.name.is_some(), &[Tuned, Nto]),
        ("--include", a.include.is_some(), &[Tuned, Nto]),
        ("--node-label", a.node_label.is_some(), &[Nto]),
        ("--priority", a.priority.is_some(), &[Nto]),
        ("--namespace", a.namespace.is_some(), &[Nto]),
        ("--monitor-seconds", a.watch.monitor_seconds.is_some(), &[Ansible]),
        ("--health-cmd", a.watch.health_cmd.is_some(), &[Ansible]),
        ("--health-timeout", a.health_timeout.health_timeout.is_some(), &[Ansible]),
        ("--persist", a.watch.persist.is_some(), &[Ansible]),
    ]
}

/// A flag given for a format it does nothing for is a usage error: `export
/// sysctl.d --name web` used to exit 0 and ignore the name.
fn check_flags_apply(a: &ExportArgs) -> Result<()> {
    for (flag, given, formats) in format_flags(a) {
        if given && !formats.contains(&a.format) {
            let names: Vec<String> = formats.iter().map(|f| clap::ValueEnum::to_possible_value(f).map(|v| v.get_name().to_string()).unwrap_or_default()).collect();
            let this = clap::ValueEnum::to_possible_value(&a.format).map(|v| v.get_name().to_string()).unwrap_or_default();
            return Err(invalid(format!("{flag} applies to `export {}` only, not to `export {this}`; nothing was exported", names.join("` / `export "))));
        }
    }
    Ok(())
}

/// Where a TuneD profile goes: `--out DIR` (an existing directory, such as
/// /etc/tuned) means DIR/NAME/tuned.conf, as tuned-adm looks for it.
fn tuned_out(out: &std::path::Path, name: &str) -> PathBuf {
    if out.is_dir() { out.join(name).join("tuned.conf") } else { out.to_path_buf() }
}

/// Ansible `serial` without an inventory: the canary, then each step's share as a percentage, then the rest.
fn serial_without_inventory(spec: &WaveSpec) -> Vec<Batch> {
    let mut out = vec![match spec.canary {
        Size::Count(n) => Batch::Count(n),
        Size::Percent(p) => Batch::Percent(p),
    }];
    let mut prev: Option<Size> = None;
    for s in &spec.steps {
        out.push(match (prev, *s) {
            (Some(Size::Percent(a)), Size::Percent(b)) => Batch::Percent(b - a),
            (Some(Size::Count(a)), Size::Count(b)) => Batch::Count(b - a),
            (_, Size::Percent(b)) => Batch::Percent(b),
            (_, Size::Count(b)) => Batch::Count(b),
        });
        prev = Some(*s);
    }
    out.push(Batch::Percent(100.0));
    out
}

/// The writes of a checked plan, for export: apply's writes (clamped values
/// included), plus changes already in force here; every other change is left
/// out with its verdict on stderr. A rejected plan, an unsafe value or an
/// empty result is an error: nothing is exported.
fn exported(checked: &CheckedPlan, current: &BTreeMap<String, Value>, store: &str) -> Result<Vec<Target>> {
    if let Some(why) = &checked.aborted {
        return Err(invalid(format!("the guardrails rejected the plan (checked against {store}); nothing was exported:\n{why}")));
    }
    let mut targets = Vec::new();
    for c in &checked.changes {
        let key = &c.change.key;
        let already = matches!(c.verdict, Verdict::Skip { .. }) && !c.change.advice_only && current.get(key).is_some_and(|v| *v == Value::from_kernel(&c.change.to));
        let value = match (&c.write, already) {
            (Some(w), _) => w.clone(),
            (None, true) => current[key].to_string(),
            (None, false) => {
                eprintln!("semantos: export: {key} left out: {} {}", c.verdict.label(), c.verdict.reason());
                continue;
            }
        };
        if let Verdict::Clamp { .. } = c.verdict {
            eprintln!("semantos: export: {key} = {value} instead of {}: {}", c.change.to, c.verdict.reason());
        }
        precheck::safe_value_text(&value).map_err(|e| invalid(format!("{key} = {value:?}: the value {e}; nothing was exported")))?;
        let key = SysctlKey::parse(key).map_err(|e| invalid(format!("{key}: {e}")))?;
        targets.push(Target { key, value: Value::from_kernel(&value) });
    }
    if targets.is_empty() {
        return Err(invalid(format!("nothing to export: the guardrails (checked against {store}) left no change of the plan; see the reasons above")));
    }
    Ok(targets)
}

/// `semantos export`.
pub fn run(a: &ExportArgs) -> Result<i32> {
    check_flags_apply(a)?;
    let kb = load_kb(&a.kb)?;
    let path = a.plan.plan.as_ref().ok_or_else(|| invalid("--plan FILE is required (make one with `semantos recommend --out plan.json`)"))?;
    let store = common::store(&a.tree.sysctl_root);
    let plan = common::load_plan(path, common::intent(&a.intent), &store)?;
    let policy = common::policy(&a.policy, &kb)?;
    let current = common::current_values(&store, &kb);
    // The facts a sentinel's value in force needs (dirtyable memory); without /proc they are
    // absent and such a step is skipped, exactly as apply would.
    let facts = ProcReader::with_roots(&a.proc_root, "/sys").snapshot(0).map(|s| safety::facts::from_snapshot(&s)).unwrap_or_default();
    // Values read from this namespace's /proc/sys: a key it cannot write is refused here as in apply.
    let facts = propose::with_netns(&a.tree.sysctl_root, &a.proc_root, &propose::host_plan_path(&StateLoc::default()), facts);
    let checked = safety::check_with(&plan, &kb, &policy, &current, &facts);
    let targets = exported(&checked, &current, &store.describe())?;
    let prov = export::Provenance::of(&plan, &path.display().to_string(), a.intent.intent, targets.len());
    let (bytes, out) = match a.format {
        Format::SysctlD => (export::sysctl_d(&targets, &prov.header()), a.out.clone()),
        Format::Tuned => tuned_profile(a, &targets, &prov)?,
        Format::Nto => (nto_resource(a, &targets, &prov)?, a.out.clone()),
        Format::Ansible => (ansible_playbook(a, &targets, &prov)?, a.out.clone()),
    };
    let json = a.json.json;
    match &out {
        Some(out) => {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
            }
            write_atomic(out, bytes.as_bytes(), 0o644)?;
            if !json {
                eprintln!("wrote {}", out.display());
            }
        }
        None if !json => std::io::stdout().write_all(bytes.as_bytes())?,
        None => {}
    }
    if json {
        super::output::print("export", &serde_json::json!({ "format": clap::ValueEnum::to_possible_value(&a.format).map(|v| v.get_name().to_string()), "out": out, "changes": targets.len(), "content": bytes }))?;
    }
    Ok(super::exit::OK)
}

/// A TuneD profile named `--name`, and where it goes.
fn tuned_profile(a: &ExportArgs, targets: &[Target], prov: &export::Provenance) -> Result<(String, Option<PathBuf>)> {
    let name = a.name.as_deref().unwrap_or("semantos");
    if !tuned::valid_profile_name(name) {
        return Err(invalid(format!("--name {name:?} is invalid; a TuneD profile name starts with a letter or digit and holds letters, digits, `-`, `_` and `.` (at most 64), e.g. semantos-web")));
    }
    if let Some(i) = &a.include
        && !tuned::valid_profile_name(i)
    {
        return Err(invalid(format!("--include {i:?} is invalid; use a TuneD profile name such as throughput-performance")));
    }
    let mut header = prov.header();
    header.push(format!("TuneD profile {name}: place as /etc/tuned/{name}/tuned.conf, then `tuned-adm profile {name}`"));
    let text = tuned::profile(targets, &prov.summary(name), a.include.as_deref(), &header);
    Ok((text, a.out.as_deref().map(|o| tuned_out(o, name))))
}

/// An OpenShift Node Tuning Operator `Tuned` resource.
fn nto_resource(a: &ExportArgs, targets: &[Target], prov: &export::Provenance) -> Result<String> {
    let name = a.name.clone().unwrap_or_else(|| "semantos".into());
    let label = a.node_label.clone().unwrap_or_else(|| "node-role.kubernetes.io/worker".into());
    let (label, value) = match label.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (label, None),
    };
    let o = NtoOptions {
        summary: prov.summary(&name),
        name,
        namespace: a.namespace.clone().unwrap_or_else(|| "openshift-cluster-node-tuning-operator".into()),
        include: a.include.clone().unwrap_or_else(|| "openshift-node".into()),
        node_label: label,
        node_label_value: value,
        priority: a.priority.unwrap_or(20),
    };
    o.validate().map_err(invalid)?;
    Ok(export::nto::tuned_resource(targets, &o, &prov.header()))
}

/// An Ansible playbook: waves as `serial`, with the health gate and rollback play.
fn ansible_playbook(a: &ExportArgs, targets: &[Target], prov: &export::Provenance) -> Result<String> {
    let spec = WaveSpec::parse(a.canary.as_deref().unwrap_or("1"), a.steps.as_deref().unwrap_or("25%,50%")).map_err(invalid)?;
    let serial = match &a.inventory {
        Some(i) => {
            let (inv, _) = Inventory::load(i).map_err(|e| invalid(e.to_string()))?;
            spec.serial(inv.hosts.len()).into_iter().map(Batch::Count).collect()
        }
        None => serial_without_inventory(&spec),
    };
    let remote = crate::rollout::ssh::RemoteSettings {
        semantos: "semantos".into(),
        dir: a.remote_dir.as_deref().unwrap_or("/var/lib/semantos").trim_end_matches('/').to_string(),
        copy_binary: None,
        policy: None,
        monitor_seconds: a.watch.monitor_seconds.map(common::monitor_seconds).transpose()?,
        health_cmd: a.watch.health_cmd.clone(),
        health_timeout_s: a.health_timeout.health_timeout,
        persist: a.watch.persist.as_ref().map(|p| p.display().to_string()),
        interval: 2.0,
        host_timeout_s: 300.0,
        kb: Default::default(),
    };
    remote.validate().map_err(invalid)?;
    let o = PlaybookOptions {
        run_id: format!("export-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
        serial,
        remote_dir: remote.dir.clone(),
        sysctl_file: common::sysctl_file(remote.persist.as_deref()),
        monitor_seconds: remote.monitor_seconds.unwrap_or(0.0),
        health_cmd: remote.health_cmd.clone(),
        health_timeout_s: remote.health_timeout_s.unwrap_or(crate::safety::policy::DEFAULT_HEALTH_TIMEOUT_S),
        header: prov.header(),
    };
    Ok(ansible::playbook(targets, &o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        a: ExportArgs,
    }

    fn args(format: Format) -> ExportArgs {
        let a = <Cmd as clap::Parser>::parse_from(["export", "sysctl.d"]).a;
        ExportArgs { format, ..a }
    }

    #[test]
    fn a_flag_for_another_format_is_a_usage_error() {
        // Before: `export sysctl.d --name web` exited 0 and ignored the name.
        let e = check_flags_apply(&ExportArgs { name: Some("web".into()), ..args(Format::SysctlD) }).unwrap_err().to_string();
        assert!(e.contains("--name applies to `export tuned` / `export nto` only, not to `export sysctl.d`"), "{e}");
        let e = check_flags_apply(&ExportArgs { canary: Some("2".into()), ..args(Format::Tuned) }).unwrap_err().to_string();
        assert!(e.contains("--canary applies to `export ansible` only"), "{e}");
        assert!(check_flags_apply(&ExportArgs { name: Some("web".into()), include: Some("x".into()), ..args(Format::Tuned) }).is_ok());
        assert!(check_flags_apply(&ExportArgs { priority: Some(3), ..args(Format::Nto) }).is_ok());
    }

    #[test]
    fn a_tuned_profile_into_a_directory_lands_in_its_named_subdirectory() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(tuned_out(d.path(), "web"), d.path().join("web").join("tuned.conf"));
        assert_eq!(tuned_out(&d.path().join("x.conf"), "web"), d.path().join("x.conf"));
    }

    #[test]
    fn serial_without_inventory_follows_the_steps() {
        let b = serial_without_inventory(&WaveSpec::parse("1", "25%,50%").unwrap());
        assert_eq!(b, vec![Batch::Count(1), Batch::Percent(25.0), Batch::Percent(25.0), Batch::Percent(100.0)]);
    }
}
