//! SemantOS's own inventory format (YAML): `hosts:` with optional `defaults:`.

use super::model::{Host, Inventory};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Our YAML format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OursFile {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    defaults: OursDefaults,
    hosts: Vec<OursHost>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OursDefaults {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    identity_file: Option<PathBuf>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OursHost {
    name: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    identity_file: Option<PathBuf>,
}

/// Parses our format; defaults fill what a host leaves out.
pub(super) fn parse_ours(text: &str) -> Result<Inventory, String> {
    let f: OursFile = serde_saphyr::from_str(text).map_err(|e| format!("not a valid SemantOS inventory: {e}"))?;
    if let Some(v) = f.schema_version
        && v != 1
    {
        return Err(format!("inventory schema_version {v} is not supported; this build reads version 1"));
    }
    let hosts = f
        .hosts
        .into_iter()
        .map(|h| {
            let mut labels = f.defaults.labels.clone();
            labels.extend(h.labels);
            Host {
                address: h.address.unwrap_or_else(|| h.name.clone()),
                name: h.name,
                port: h.port.or(f.defaults.port),
                user: h.user.or_else(|| f.defaults.user.clone()),
                labels,
                groups: h.groups,
                identity_file: h.identity_file.or_else(|| f.defaults.identity_file.clone()),
            }
        })
        .collect();
    Ok(Inventory { hosts })
}
