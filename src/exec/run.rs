//! Running a workflow: plan it against the store, compute what is not cached on the
//! chosen executor (threads here, or Slurm jobs), and record the run.
//!
//! A node runs under its key's lock, reads its inputs from the store (hashes checked),
//! and is published only when every output is written ([`super::node`]). A failed node
//! stops its dependents, which are reported with the node that failed; other branches
//! go on.

use std::collections::BTreeMap;
use std::time::Instant;

use super::executor::drive;
use super::local::LocalExecutor;
use super::plan::{KeyedNode, PlannedNode, compute_keys, plan};
use super::slurm::{SchedulerLoad, SlurmExecutor, SlurmOptions};
use super::store::{Store, StoreError};
use crate::workflow::{Key, Workflow};

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Nodes run at once.
    pub jobs: usize,
    /// Run only these nodes and what they need (all when empty).
    pub until: Vec<String>,
    /// Recompute these nodes even if cached.
    pub force: Vec<String>,
    /// Draw progress bars (when stderr is a terminal).
    pub progress: bool,
    /// Where nodes compute.
    pub executor: ExecutorChoice,
}

/// Where nodes compute: threads here, or jobs on a Slurm cluster.
#[derive(Clone, Debug, Default)]
pub enum ExecutorChoice {
    #[default]
    Local,
    Slurm(SlurmOptions),
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: 1,
            until: Vec::new(),
            force: Vec::new(),
            progress: false,
            executor: ExecutorChoice::Local,
        }
    }
}

/// What happened to a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ran {
        wall_s: f64,
    },
    Cached,
    Failed(String),
    /// Not run because an input's node failed.
    Skipped {
        failed_upstream: String,
    },
}

#[derive(Clone, Debug)]
pub struct NodeReport {
    pub id: String,
    pub key: Key,
    pub outcome: Outcome,
}

#[derive(Clone, Debug)]
pub struct RunReport {
    pub nodes: Vec<NodeReport>,
    pub wall_s: f64,
    /// What the run asked of the Slurm scheduler (with `--executor slurm`).
    pub scheduler: Option<SchedulerLoad>,
}

impl RunReport {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.nodes.iter().filter(|n| f(&n.outcome)).count()
    }

    pub fn ran(&self) -> Vec<&str> {
        self.ids(|o| matches!(o, Outcome::Ran { .. }))
    }

    pub fn ids(&self, f: impl Fn(&Outcome) -> bool) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| f(&n.outcome))
            .map(|n| n.id.as_str())
            .collect()
    }

    pub fn succeeded(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| matches!(n.outcome, Outcome::Ran { .. } | Outcome::Cached))
    }

    /// One line: counts and wall time.
    pub fn summary(&self) -> String {
        format!(
            "{} nodes: {} ran, {} cached, {} failed, {} skipped in {:.2} s",
            self.nodes.len(),
            self.count(|o| matches!(o, Outcome::Ran { .. })),
            self.count(|o| matches!(o, Outcome::Cached)),
            self.count(|o| matches!(o, Outcome::Failed(_))),
            self.count(|o| matches!(o, Outcome::Skipped { .. })),
            self.wall_s
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Slurm(String),
    #[error("no node `{id}` in workflow `{workflow}`; nodes: {}", known.join(", "))]
    UnknownNode {
        id: String,
        workflow: String,
        known: Vec<String>,
    },
}

/// Node indices for ids given on the command line.
pub fn select(workflow: &Workflow, ids: &[String]) -> Result<Vec<usize>, ExecError> {
    ids.iter()
        .map(|id| {
            workflow.index_of(id).ok_or_else(|| ExecError::UnknownNode {
                id: id.clone(),
                workflow: workflow.name.clone(),
                known: workflow.nodes.iter().map(|n| n.id.clone()).collect(),
            })
        })
        .collect()
}

/// Plans a run: keys, and which nodes are cached or to run (and why).
pub fn plan_run(
    workflow: &Workflow,
    store: &Store,
    options: &RunOptions,
) -> Result<(Vec<KeyedNode>, Vec<PlannedNode>), ExecError> {
    let keyed = compute_keys(workflow)?;
    let needed = if options.until.is_empty() {
        None
    } else {
        Some(workflow.ancestors(&select(workflow, &options.until)?))
    };
    let mut forced = vec![false; workflow.nodes.len()];
    for i in select(workflow, &options.force)? {
        forced[i] = true;
    }
    let planned = plan(workflow, &keyed, store, needed.as_deref(), &forced);
    Ok((keyed, planned))
}

/// Runs a workflow against a store.
pub fn run(
    workflow: &Workflow,
    store: &Store,
    options: &RunOptions,
) -> Result<RunReport, ExecError> {
    let started = Instant::now();
    let (keyed, planned) = plan_run(workflow, store, options)?;
    let mut scheduler = None;
    let outcome = match &options.executor {
        ExecutorChoice::Local => std::thread::scope(|scope| {
            let mut executor = LocalExecutor::new(
                scope,
                workflow,
                &keyed,
                store,
                options.jobs,
                options.progress,
            );
            drive(workflow, &planned, &mut executor)
        }),
        ExecutorChoice::Slurm(slurm) => {
            let mut executor = SlurmExecutor::new(workflow, &keyed, store, slurm)?;
            let outcome = drive(workflow, &planned, &mut executor);
            scheduler = Some(executor.finish());
            outcome
        }
    };

    let mut index = BTreeMap::new();
    let mut nodes = Vec::with_capacity(planned.len());
    for p in &planned {
        let o = outcome[p.index]
            .clone()
            .expect("every planned node has an outcome");
        if matches!(o, Outcome::Ran { .. } | Outcome::Cached) {
            index.insert(p.id.clone(), p.key.to_string());
        }
        nodes.push(NodeReport {
            id: p.id.clone(),
            key: p.key,
            outcome: o,
        });
    }
    store.write_index(&workflow.name, &index)?;
    Ok(RunReport {
        nodes,
        wall_s: started.elapsed().as_secs_f64(),
        scheduler,
    })
}
