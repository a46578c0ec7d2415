//! SemantOS: safe, explainable, transactional tuning of Linux sysctls.
//!
//! The pipeline is data flowing through pure stages:
//! `telemetry` (Snapshot) → `reasoning` (Findings, Plan) → `safety`
//! (CheckedPlan) → `apply` (Transaction, Receipt) → `eval` (Outcome).
//! Only `telemetry` sources read the world and only `apply` writes it.
//! See ARCHITECTURE.md for the code map and invariants.

pub mod bench;
pub mod eval;
pub mod metrics;
pub mod kb;
pub mod sysctl;
pub mod telemetry;
pub mod sim;
pub mod ownership;
pub mod reasoning;
pub mod safety;
pub mod apply;
pub mod config;
pub mod rollout;
pub mod agent;
pub mod export;
pub mod repro;
pub mod llm;
pub mod compare;
pub mod tune;
pub mod cli;
