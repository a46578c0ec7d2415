//! Optimisers over the search space (candidate sources that learn from the trials).
//!
//! All work in the unit cube of `SearchSpace` (log scale where a dimension is
//! log), are seeded and deterministic, and keep no state between calls beyond
//! their seed: everything they learn is read again from `Proposal::history`,
//! so a resumed tune proposes exactly what the uninterrupted one would have.
//! The random generator is `rand_pcg::Pcg64Mcg`, named (never `StdRng`), so
//! proposals reproduce across rand versions.

mod bayes;
mod draw;
mod gaussian;
mod parzen;
pub mod proving;
mod random;
pub mod region;

pub use bayes::GpSearch;
pub use parzen::Tpe;
pub use random::RandomSearch;

#[cfg(test)]
mod tests;
