//! The guardrails again at the moment of writing: a store wrapper that refuses a key without a
//! KB entry, of `never` risk, on the policy's never-touch list or outside its whitelist.
//!
//! It lives with the guardrails because it is one of them (the third safety layer of
//! DESIGN.md): the real-host apply, the sandbox reproduction, the bench and rollback all wrap
//! their store with it, and none of them may depend on another mode to get it. Building the
//! wrapper does no I/O; the wrapped store does the writing.

use super::policy::Policy;
use crate::kb::{Kb, Risk};
use crate::sysctl::store::{GuardedStore, SysctlStore};

/// A store that refuses, at the point of writing, keys outside the policy or with `never` risk.
pub fn guarded<S: SysctlStore>(inner: S, kb: &Kb, policy: &Policy) -> GuardedStore<S> {
    let kb = kb.clone();
    let policy = policy.clone();
    GuardedStore::new(inner, move |key| {
        let k = key.to_string();
        match kb.param(&k) {
            None => Err(format!("{k} has no knowledge-base entry")),
            Some(p) if p.risk == Risk::Never => Err(format!("{k} is a never-touch key")),
            Some(_) if policy.forbids(&k) => Err(format!("{k} is on the policy's never_touch list")),
            Some(_) if !policy.allows(&k) => Err(format!("{k} is not in the policy whitelist")),
            Some(_) => Ok(()),
        }
    })
}
