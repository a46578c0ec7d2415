//! Everything about sysctl keys and values that is not knowledge: names,
//! values, stores that read and write them, and the sysctl.d file format.

pub mod key;
pub mod netns;
pub mod store;
pub mod sysctld;
pub mod value;

pub use key::SysctlKey;
pub use store::{SysctlStore, StoreError, TreeStore};
pub use value::{Value, ValueKind};
