//! Where nodes compute: the driver keeps the DAG and the cache, and hands nodes that are
//! ready and not cached to an [`Executor`], which reports each one's [`Outcome`].
//!
//! Two executors: [`super::local::LocalExecutor`] (threads in this process) and
//! [`super::slurm::SlurmExecutor`] (one Slurm job per node, or one job array per group
//! of nodes ready together). Both end in [`super::node::compute_node`], so a node's
//! bytes do not depend on where it ran.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{NodeState, PlannedNode};
use super::run::Outcome;
use crate::workflow::Workflow;

/// A node to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submission {
    /// The node's index in the workflow.
    pub index: usize,
    /// Recompute even if the store holds it (`--force`).
    pub force: bool,
}

/// Computes nodes somewhere and reports when each ends.
pub trait Executor {
    /// Nodes in flight at most.
    fn capacity(&self) -> usize;
    /// Starts these nodes (all ready now; their inputs are published).
    fn submit(&mut self, batch: Vec<Submission>);
    /// Blocks until at least one node in flight ends; returns every node that ended.
    fn wait(&mut self) -> Vec<(usize, Outcome)>;
    /// Whether the run was interrupted (Ctrl-C, SIGTERM): nothing more is submitted.
    fn interrupted(&self) -> bool {
        false
    }
}

/// Runs the planned nodes on `executor` in dependency order, each as soon as its inputs
/// are done; a failed node's dependents are not run. Returns each planned node's
/// outcome (by workflow index; `None` for nodes outside the plan).
pub fn drive(
    workflow: &Workflow,
    planned: &[PlannedNode],
    executor: &mut dyn Executor,
) -> Vec<Option<Outcome>> {
    let n = workflow.nodes.len();
    let mut outcome: Vec<Option<Outcome>> = vec![None; n];
    let mut in_plan = vec![false; n];
    let mut forced = vec![false; n];
    let mut cached = vec![false; n];
    for p in planned {
        in_plan[p.index] = true;
        match &p.state {
            NodeState::ToRun(reasons) => {
                forced[p.index] = reasons.iter().any(|r| r.starts_with("forced"));
            }
            NodeState::Cached => cached[p.index] = true,
        }
    }
    let mut waiting = vec![0usize; n];
    let mut dependents = vec![Vec::new(); n];
    for p in planned {
        for e in &workflow.nodes[p.index].inputs {
            waiting[p.index] += 1;
            dependents[e.from].push(p.index);
        }
    }
    let position: BTreeMap<usize, usize> = workflow
        .order
        .iter()
        .enumerate()
        .map(|(pos, &i)| (i, pos))
        .collect();
    let mut ready: BTreeSet<(usize, usize)> = planned
        .iter()
        .filter(|p| waiting[p.index] == 0)
        .map(|p| (position[&p.index], p.index))
        .collect();
    let mut finish = |i: usize,
                      result: Outcome,
                      ready: &mut BTreeSet<(usize, usize)>,
                      outcome: &mut Vec<Option<Outcome>>| {
        let ok = matches!(result, Outcome::Ran { .. } | Outcome::Cached);
        outcome[i] = Some(result);
        if ok {
            for &d in &dependents[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.insert((position[&d], d));
                }
            }
        }
    };
    let capacity = executor.capacity().max(1);
    let mut running = 0usize;
    loop {
        let mut batch = Vec::new();
        while let Some(&(pos, i)) = ready.iter().next() {
            if cached[i] {
                ready.remove(&(pos, i));
                finish(i, Outcome::Cached, &mut ready, &mut outcome);
                continue;
            }
            if running + batch.len() >= capacity || executor.interrupted() {
                break;
            }
            ready.remove(&(pos, i));
            batch.push(Submission {
                index: i,
                force: forced[i],
            });
        }
        if !batch.is_empty() {
            running += batch.len();
            executor.submit(batch);
        }
        if running == 0 {
            break;
        }
        for (i, result) in executor.wait() {
            running -= 1;
            finish(i, result, &mut ready, &mut outcome);
        }
    }

    // Nodes never reached: an input failed somewhere upstream, or the run was
    // interrupted before they started.
    for &i in &workflow.order {
        if in_plan[i] && outcome[i].is_none() {
            let culprit = workflow.nodes[i]
                .inputs
                .iter()
                .find_map(|e| match &outcome[e.from] {
                    Some(Outcome::Failed(_)) => Some(workflow.nodes[e.from].id.clone()),
                    Some(Outcome::Skipped { failed_upstream }) => Some(failed_upstream.clone()),
                    _ => None,
                });
            outcome[i] = Some(match culprit {
                Some(failed_upstream) => Outcome::Skipped { failed_upstream },
                None => Outcome::Failed("not started: the run was interrupted".into()),
            });
        }
    }
    outcome
}
