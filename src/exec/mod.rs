//! The executor and the store: plans a validated workflow against the content-addressed
//! store, runs what is not cached, and publishes each node atomically.

pub mod export;
pub mod manifest;
pub mod plan;
pub mod progress;
pub mod run;
pub mod store;
pub mod structures;
pub mod verify;

pub use plan::{KeyedNode, NodeState, PlannedNode, compute_keys};
pub use run::{ExecError, NodeReport, Outcome, RunOptions, RunReport, plan_run, run};
pub use store::{Store, StoreError};
