//! What the bench may write for a scenario: the kernel of its network
//! namespaces (per-namespace keys only), the host's kernel (only the global
//! keys the operator allowed with `--allow-host`), or a sandbox tree of a
//! user namespace's limits (only its keys). Both the plan check and the
//! store ask the same question here.

use crate::kb::Scope;
use std::path::PathBuf;

/// What a switcher writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The kernel seen from each namespace; per-network-namespace keys only.
    Netns,
    /// The host's kernel; only these (global) keys, allowed by `--allow-host`.
    Host(Vec<String>),
    /// A sandbox tree at this root; only these keys.
    Tree(PathBuf, Vec<String>),
}

impl Target {
    /// Why `key` (with KB scope `scope`) may not be written here, if it may not.
    pub fn refuses(&self, key: &str, scope: Scope) -> Option<String> {
        match self {
            Target::Netns if scope != Scope::Netns => Some(format!("{key} is not a per-network-namespace key; the bench never changes a global setting")),
            Target::Host(keys) if !keys.iter().any(|k| k == key) => Some(format!("{key} is not one of the host keys this scenario may change with --allow-host ({})", keys.join(", "))),
            Target::Tree(root, keys) if !keys.iter().any(|k| k == key) => Some(format!("{key} is not one of the keys of the limits tree {} ({})", root.display(), keys.join(", "))),
            _ => None,
        }
    }
}

