//! The fleet inventory: which hosts a rollout may touch and how to reach
//! them. Three formats are read, chosen by content:
//!
//! * ours (YAML): `hosts:` is a list of `{name, address, port, user, labels,
//!   groups, identity_file}`, with optional `defaults:` for port, user and
//!   identity file;
//! * an Ansible YAML inventory (`all: {hosts, vars, children}`), honouring
//!   `ansible_host`, `ansible_port`, `ansible_user` and
//!   `ansible_ssh_private_key_file`, group vars below host vars;
//! * an Ansible INI inventory (`[group]`, `[group:vars]`,
//!   `[group:children]`, `web[01:03].example.com` ranges).
//!
//! Every name, address and user is validated here, before any connection:
//! they end up as ssh arguments and in generated playbooks, so an address
//! such as `-oProxyCommand=...` or a user with a space is refused with the
//! host, the field, the value and what would be valid.

mod ansible;
mod check;
mod model;
mod node;
mod ours;
#[cfg(test)]
mod tests;

pub use model::{Format, Host, Inventory, InventoryError};

use ansible::{parse_ansible_ini, parse_ansible_yaml};
use node::Node;
use ours::parse_ours;
use std::path::Path;

impl Inventory {
    /// Reads and validates an inventory file in any of the three formats.
    pub fn load(path: &Path) -> Result<(Inventory, Format), InventoryError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError { file: file.clone(), problem: format!("cannot read: {e}") })?;
        Inventory::parse(&text, &file)
    }

    /// Parses inventory text; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<(Inventory, Format), InventoryError> {
        let err = |problem: String| InventoryError { file: file.to_string(), problem };
        let (inv, format) = match detect(text) {
            Format::Semantos => (parse_ours(text).map_err(err)?, Format::Semantos),
            Format::AnsibleYaml => (parse_ansible_yaml(text).map_err(err)?, Format::AnsibleYaml),
            Format::AnsibleIni => (parse_ansible_ini(text).map_err(err)?, Format::AnsibleIni),
        };
        inv.validate().map_err(err)?;
        Ok((inv, format))
    }
}

/// The format of inventory text, by content: ours has a `hosts:` list, Ansible YAML is another mapping, anything else is read as INI.
fn detect(text: &str) -> Format {
    match serde_saphyr::from_str::<Node>(text) {
        Ok(n @ Node::Map(_)) if matches!(n.get("hosts"), Some(Node::Seq(_))) => Format::Semantos,
        Ok(Node::Map(_)) => Format::AnsibleYaml,
        // INI text (`[web]`, `host key=value`) is not a YAML mapping.
        _ => Format::AnsibleIni,
    }
}
