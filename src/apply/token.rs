//! The write seal: `SysctlStore::write` takes a `WriteToken`, and only the apply
//! path can make one, so "only `apply` writes to a sysctl store" is a compile error
//! to break rather than a convention a text search looks for.
//!
//! The field is private and the constructor is `pub(super)`: visible in `apply` and
//! its children, nowhere else. A store receives the token in `write` and may forward
//! it to the store it wraps (`GuardedStore`, `FaultyStore`); it cannot keep it.
//! Unit tests of other modules get one from `for_tests`, compiled only under
//! `#[cfg(test)]`. This file imports nothing: the stores (the bottom layer) name the
//! type and depend on nothing else of `apply`.
//!
//! ```compile_fail
//! // Outside `apply`, a token cannot be made...
//! let t = semantos::apply::token::WriteToken::new();
//! ```
//!
//! ```compile_fail
//! // ...nor built from its parts.
//! let t = semantos::apply::token::WriteToken { _sealed: () };
//! ```

/// Permission to write one value to a sysctl store; made only by the apply path.
#[derive(Debug)]
pub struct WriteToken {
    _sealed: (),
}

impl WriteToken {
    /// A token for the transaction or rollback that is about to write.
    pub(super) fn new() -> Self {
        Self { _sealed: () }
    }

    /// A token for unit tests of the stores and their wrappers.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self { _sealed: () }
    }
}
