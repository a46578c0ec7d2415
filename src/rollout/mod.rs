//! Rollout: applying a plan in stages and gating each stage on health. In
//! sandbox mode the stages are batches on one simulated host; the fleet
//! engines drive many real hosts with the same gate logic.

pub mod live;
pub mod sandbox;

pub use sandbox::SimMonitor;
