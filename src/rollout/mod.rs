//! Rollout: applying a plan in stages and gating each stage on health. In
//! sandbox mode the stages are batches on one simulated host; the fleet
//! engines drive many real hosts with the same gate logic.

pub mod ansible; // the Ansible engine: playbook (serial waves, rollback play), inventory, run
pub mod fleet; // the fleet controller: waves, gates, fleet-wide rollback over any `Remote`
pub mod inventory; // hosts: our YAML, Ansible YAML and INI inventories
pub mod live;
pub mod objective_gate; // apply --objective-cmd: the user's metric before and after the writes, as a monitor gate
pub mod precheck; // a plan checked on the controller before any connection
pub mod sandbox;
pub mod settings; // how hosts are reached and what runs there: below the engines and the state file
pub mod ssh; // the ssh engine: `semantos apply --plan -` on each host over OpenSSH
pub mod state; // the rollout state file: resume and fleet rollback after a crash
pub mod state_check; // a recorded rollout checked as a fresh one is, before --resume or --rollback-fleet
pub mod waves; // canary, ramp steps, rest

pub use sandbox::SimMonitor;
