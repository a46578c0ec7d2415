//! OpenShift Node Tuning Operator: a `Tuned` custom resource
//! (`apiVersion: tuned.openshift.io/v1`, `kind: Tuned`) whose
//! `spec.profile[].data` holds a TuneD profile with the plan's `[sysctl]`
//! section, and whose `spec.recommend` selects the nodes by label. Pure.

use super::{one_line, sysctl_section};
use crate::rollout::precheck::Target;

/// Settings of the resource.
#[derive(Debug, Clone, PartialEq)]
pub struct NtoOptions {
    /// `metadata.name` and the profile name (DNS-1123 label).
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// Parent TuneD profile (`openshift-node` for workers).
    pub include: String,
    /// Node label the profile is recommended for (`node-role.kubernetes.io/worker`), with an optional value.
    pub node_label: String,
    /// Optional label value.
    pub node_label_value: Option<String>,
    /// `spec.recommend[].priority` (lower wins).
    pub priority: u32,
    /// Profile summary.
    pub summary: String,
}

impl NtoOptions {
    /// Defaults for workers.
    pub fn workers(name: &str, summary: &str) -> NtoOptions {
        NtoOptions { name: name.into(), namespace: "openshift-cluster-node-tuning-operator".into(), include: "openshift-node".into(), node_label: "node-role.kubernetes.io/worker".into(), node_label_value: None, priority: 20, summary: summary.into() }
    }

    /// Checks the names; the message names the field, the value and what is valid.
    pub fn validate(&self) -> Result<(), String> {
        let dns = |s: &str| !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && !s.starts_with('-') && !s.ends_with('-');
        if !dns(&self.name) {
            return Err(format!("--name {:?} is invalid; a Tuned name is a DNS-1123 label: lowercase letters, digits and `-`, at most 63, not starting or ending with `-`", self.name));
        }
        if !dns(&self.namespace) {
            return Err(format!("--namespace {:?} is invalid; use a DNS-1123 label", self.namespace));
        }
        if !super::tuned::valid_profile_name(&self.include) {
            return Err(format!("--include {:?} is invalid; use a TuneD profile name such as openshift-node", self.include));
        }
        let label_ok = |s: &str| !s.is_empty() && s.len() <= 253 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if !label_ok(&self.node_label) || self.node_label_value.as_deref().is_some_and(|v| !label_ok(v)) {
            return Err(format!("--node-label {:?} is invalid; use a Kubernetes label key such as node-role.kubernetes.io/worker, optionally =value", self.node_label));
        }
        Ok(())
    }
}

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// Renders the `Tuned` resource as YAML.
pub fn tuned_resource(targets: &[Target], o: &NtoOptions, header: &[String]) -> String {
    let mut s = String::new();
    for h in header {
        s.push_str(&format!("# {}\n", one_line(h)));
    }
    s.push_str("apiVersion: tuned.openshift.io/v1\nkind: Tuned\nmetadata:\n");
    s.push_str(&format!("  name: {}\n  namespace: {}\nspec:\n  profile:\n  - name: {}\n    data: |\n", o.name, o.namespace, o.name));
    let data = format!("[main]\nsummary={}\ninclude={}\n\n[sysctl]\n{}", one_line(&o.summary).replace('$', ""), o.include, sysctl_section(targets));
    for l in data.lines() {
        if l.is_empty() {
            s.push('\n');
        } else {
            s.push_str(&format!("      {l}\n"));
        }
    }
    s.push_str("  recommend:\n  - match:\n");
    s.push_str(&format!("    - label: {}\n", q(&o.node_label)));
    if let Some(v) = &o.node_label_value {
        s.push_str(&format!("      value: {}\n", q(v)));
    }
    s.push_str(&format!("    priority: {}\n    profile: {}\n", o.priority, o.name));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_is_yaml_with_profile_data_and_recommend() {
        let o = NtoOptions::workers("semantos-latency", "SemantOS plan");
        o.validate().unwrap();
        let y = tuned_resource(&crate::export::tests::targets(), &o, &[]);
        let v: serde_json::Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(v["apiVersion"], "tuned.openshift.io/v1");
        assert_eq!(v["kind"], "Tuned");
        assert_eq!(v["spec"]["profile"][0]["name"], "semantos-latency");
        let data = v["spec"]["profile"][0]["data"].as_str().unwrap();
        assert!(data.starts_with("[main]\nsummary=SemantOS plan\ninclude=openshift-node\n\n[sysctl]\nnet.core.somaxconn=4096\n"), "{data}");
        assert_eq!(v["spec"]["recommend"][0]["match"][0]["label"], "node-role.kubernetes.io/worker");
        assert_eq!(v["spec"]["recommend"][0]["profile"], "semantos-latency");
        assert!(NtoOptions { name: "Bad_Name".into(), ..o.clone() }.validate().unwrap_err().contains("DNS-1123"));
    }
}
