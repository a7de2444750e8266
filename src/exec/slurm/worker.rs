//! `cgloop exec-node`: what a Slurm job runs. It validates the same workflow as the
//! driver (same file, same `--seed`/`--set`), finds its node by the key in its batch
//! line, computes it into the store like a local thread would, and writes the record the
//! driver waits for. A workflow edited after the driver planned gives other keys: the
//! job then fails with that reason instead of computing something else.

use std::path::Path;

use super::record::{JobRecord, read_batch_line, write_record};
use crate::exec::node::compute_node;
use crate::exec::plan::compute_keys;
use crate::exec::run::Outcome;
use crate::exec::store::{Store, host_name};
use crate::workflow::Workflow;

/// Computes line `index` of `batch` and writes its record into `run_dir`. Returns the
/// node's outcome; `Err` when not even a record could be written.
pub fn exec_node(
    workflow: &Workflow,
    store: &Store,
    run_dir: &Path,
    batch: &Path,
    index: usize,
) -> Result<Outcome, String> {
    let line = read_batch_line(batch, index)?;
    let job = match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(a), Ok(t)) => format!("{a}_{t}"),
        _ => std::env::var("SLURM_JOB_ID").unwrap_or_default(),
    };
    let outcome = match compute_keys(workflow) {
        Err(e) => Outcome::Failed(e.to_string()),
        Ok(keyed) => match keyed.iter().position(|k| k.key.to_string() == line.key) {
            None => Outcome::Failed(format!(
                "the workflow {} has no node with key {} any more (node `{}` was planned \
                 with it): was the workflow or a data file edited while the run was going?",
                workflow.file.display(),
                &line.key[..12.min(line.key.len())],
                line.node
            )),
            Some(i) => compute_node(workflow, i, &keyed, store, line.force, false),
        },
    };
    let (status, message, wall_s) = match &outcome {
        Outcome::Ran { wall_s } => ("ran", String::new(), *wall_s),
        Outcome::Cached => ("cached", String::new(), 0.0),
        Outcome::Failed(m) => ("failed", m.clone(), 0.0),
        Outcome::Skipped { failed_upstream } => (
            "failed",
            format!("upstream node `{failed_upstream}` failed"),
            0.0,
        ),
    };
    let record = JobRecord {
        key: line.key.clone(),
        node: line.node.clone(),
        status: status.into(),
        message,
        wall_s,
        job,
        host: host_name(),
    };
    write_record(run_dir, &record).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    Ok(outcome)
}
