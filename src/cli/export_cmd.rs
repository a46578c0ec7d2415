//! `semantos export FORMAT --plan FILE`: the plan, checked by the very
//! guardrails `apply` runs (`safety::check_with`, with the values read from
//! `--sysctl-root`, the policy, the KB and host facts), written as an
//! Ansible playbook, a TuneD profile, a sysctl.d drop-in or an OpenShift
//! Node Tuning Operator `Tuned` resource (stdout, or `--out FILE` written
//! atomically). Clamped changes are exported at the clamped value; refused
//! and skipped ones are left out with apply's message; a rejected plan
//! exports nothing. A change skipped because the value is already in force
//! is exported: a drop-in must keep what the host already has.

use super::{Cli, invalid, load_kb};
use crate::apply::files::write_atomic;
use crate::export::{self, Format, nto::NtoOptions, tuned};
use crate::kb::Intent;
use crate::reasoning::Plan;
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

/// Arguments of `semantos export`. The plan is the global `--plan FILE`;
/// `--policy` checks it; `--monitor-seconds`, `--health-cmd` and `--persist`
/// shape the Ansible playbook.
#[derive(Debug, Clone, Args)]
#[command(after_help = EXPORT_HELP)]
pub struct ExportArgs {
    /// What to write.
    #[arg(value_enum)]
    pub format: Format,
    /// Write to this file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// ansible: size `serial` exactly for this inventory's hosts (without it, batches are percentages).
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// ansible: first batch, a host count or a percentage.
    #[arg(long, default_value = "1", value_name = "N|N%")]
    pub canary: String,
    /// ansible: cumulative ramp sizes after each batch; the last batch takes the rest.
    #[arg(long, default_value = "25%,50%", value_name = "LIST")]
    pub steps: String,
    /// ansible: directory on each host for the backup (`{host}` → inventory host name).
    #[arg(long, default_value = "/var/lib/semantos", value_name = "DIR")]
    pub remote_dir: String,
    /// tuned / nto: profile name (nto: a DNS-1123 label).
    #[arg(long, default_value = "semantos", value_name = "NAME")]
    pub name: String,
    /// tuned / nto: parent profile (`include=`); nto defaults to openshift-node.
    #[arg(long, value_name = "PROFILE")]
    pub include: Option<String>,
    /// nto: node label the profile is recommended for, KEY or KEY=VALUE.
    #[arg(long, default_value = "node-role.kubernetes.io/worker", value_name = "LABEL")]
    pub node_label: String,
    /// nto: recommend priority (lower wins).
    #[arg(long, default_value_t = 20)]
    pub priority: u32,
    /// nto: namespace of the Tuned resource.
    #[arg(long, default_value = "openshift-cluster-node-tuning-operator", value_name = "NS")]
    pub namespace: String,
}

const EXPORT_HELP: &str = "Examples:
  semantos export sysctl.d --plan plan.json --out /etc/sysctl.d/90-semantos.conf
  semantos export tuned --plan plan.json --include throughput-performance --out /etc/tuned/semantos/tuned.conf
  semantos export nto --plan plan.json --name semantos-web --node-label node-role.kubernetes.io/web | oc apply -f -
  semantos export ansible --plan plan.json --inventory inventory.ini --policy policy.yaml --out site.yml";

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
pub fn run(cli: &Cli, a: &ExportArgs) -> Result<i32> {
    let kb = load_kb(cli)?;
    let path = cli.plan.as_ref().ok_or_else(|| invalid("--plan FILE is required (make one with `semantos recommend --out plan.json`)"))?;
    let store = super::host::store(cli);
    let plan = Plan::load(path, cli.host.intent.unwrap_or(Intent::Latency), &store).map_err(|e| invalid(format!("{e:#}")))?;
    let policy = super::host::policy(cli)?;
    let current = super::host::current_values(&store, &kb);
    // The facts a sentinel's value in force needs (dirtyable memory); without /proc they are
    // absent and such a step is skipped, exactly as apply would.
    let facts = ProcReader::with_roots(&cli.host.proc_root, "/sys").snapshot(0).map(|s| safety::facts::from_snapshot(&s)).unwrap_or_default();
    // Values read from this namespace's /proc/sys: a key it cannot write is refused here as in apply.
    let facts = super::host::with_netns(cli, facts);
    let checked = safety::check_with(&plan, &kb, &policy, &current, &facts);
    let targets = exported(&checked, &current, &store.describe())?;
    let header = vec![format!("SemantOS plan from {} ({}, intent {}): {} change(s)", path.display(), plan.created_by, plan.intent.name(), targets.len())];
    let summary = format!("SemantOS plan {} (intent {})", plan.created_by, plan.intent.name());
    let bytes = match a.format {
        Format::SysctlD => export::sysctl_d(&targets, &header),
        Format::Tuned => {
            if let Some(i) = &a.include
                && !tuned::valid_profile_name(i)
            {
                return Err(invalid(format!("--include {i:?} is invalid; use a TuneD profile name such as throughput-performance")));
            }
            tuned::profile(&targets, &summary, a.include.as_deref(), &header)
        }
        Format::Nto => {
            let (label, value) = match a.node_label.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (a.node_label.clone(), None),
            };
            let o = NtoOptions { name: a.name.clone(), namespace: a.namespace.clone(), include: a.include.clone().unwrap_or_else(|| "openshift-node".into()), node_label: label, node_label_value: value, priority: a.priority, summary };
            o.validate().map_err(invalid)?;
            export::nto::tuned_resource(&targets, &o, &header)
        }
        Format::Ansible => {
            let spec = WaveSpec::parse(&a.canary, &a.steps).map_err(invalid)?;
            let serial = match &a.inventory {
                Some(i) => {
                    let (inv, _) = Inventory::load(i).map_err(|e| invalid(e.to_string()))?;
                    spec.serial(inv.hosts.len()).into_iter().map(Batch::Count).collect()
                }
                None => serial_without_inventory(&spec),
            };
            let remote = crate::rollout::ssh::RemoteSettings {
                semantos: "semantos".into(),
                dir: a.remote_dir.trim_end_matches('/').to_string(),
                copy_binary: None,
                policy: None,
                monitor_seconds: cli.host.monitor_seconds,
                health_cmd: cli.host.health_cmd.clone(),
                health_timeout_s: cli.host.health_timeout,
                persist: cli.host.persist.as_ref().map(|p| p.display().to_string()),
                interval: 2.0,
                host_timeout_s: 300.0,
                kb: Default::default(),
            };
            remote.validate().map_err(invalid)?;
            let o = PlaybookOptions {
                run_id: format!("export-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
                serial,
                remote_dir: remote.dir.clone(),
                sysctl_file: super::rollout_cmd::sysctl_file(remote.persist.as_deref()),
                monitor_seconds: remote.monitor_seconds.unwrap_or(0.0),
                health_cmd: remote.health_cmd.clone(),
                health_timeout_s: remote.health_timeout_s.unwrap_or(crate::safety::policy::DEFAULT_HEALTH_TIMEOUT_S),
                header,
            };
            ansible::playbook(&targets, &o)
        }
    };
    match &a.out {
        Some(out) => {
            write_atomic(out, bytes.as_bytes(), 0o644)?;
            if !cli.json {
                eprintln!("wrote {}", out.display());
            }
        }
        None if !cli.json => std::io::stdout().write_all(bytes.as_bytes())?,
        None => {}
    }
    if cli.json {
        super::output::print("export", &serde_json::json!({ "format": clap::ValueEnum::to_possible_value(&a.format).map(|v| v.get_name().to_string()), "out": a.out, "changes": targets.len(), "content": bytes }))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_without_inventory_follows_the_steps() {
        let b = serial_without_inventory(&WaveSpec::parse("1", "25%,50%").unwrap());
        assert_eq!(b, vec![Batch::Count(1), Batch::Percent(25.0), Batch::Percent(25.0), Batch::Percent(100.0)]);
    }
}
