//! The one write outside a transaction: putting back a value that a guard
//! saved before anything changed, when the guard is dropped (the bench's
//! `HostValuesRestoredOnDrop` for a global key no namespace isolates). It
//! writes only a value the caller read from the same store earlier, reads it
//! back, and is named here so the write seal keeps every door to a store in
//! `apply`.

use super::token::WriteToken;
use crate::sysctl::{SysctlKey, SysctlStore, Value};
use anyhow::{Context, Result, bail};

/// Writes `saved` (read from `store` before a change) back to `key` and reads it back.
pub fn put_back(store: &dyn SysctlStore, key: &SysctlKey, saved: &Value) -> Result<()> {
    store.write(&WriteToken::new(), key, saved).with_context(|| format!("{key}: putting back {saved}"))?;
    let back = store.read(key).with_context(|| format!("{key}: reading back after putting back {saved}"))?;
    if back != *saved {
        bail!("{key}: put back {saved:?} but read back {back:?}");
    }
    Ok(())
}
