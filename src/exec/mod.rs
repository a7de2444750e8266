//! The executor and the store: plans a validated workflow against the content-addressed
//! store, runs what is not cached (on local threads or as Slurm jobs), and publishes
//! each node atomically.

pub mod executor;
pub mod export;
pub mod local;
pub mod manifest;
pub mod node;
pub mod plan;
pub mod progress;
pub mod run;
pub mod slurm;
pub mod store;
pub mod structures;
pub mod verify;

pub use plan::{KeyedNode, NodeState, PlannedNode, compute_keys};
pub use run::{
    ExecError, ExecutorChoice, NodeReport, Outcome, RunOptions, RunReport, plan_run, run,
};
pub use slurm::{SchedulerLoad, SlurmOptions, WorkerCommand};
pub use store::{Store, StoreError};
