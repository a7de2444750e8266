//! The executor: runs a workflow's nodes in topological order, independent nodes in
//! parallel up to `jobs`, each computed at most once per store.
//!
//! A node runs under its key's lock, reads its inputs from the store (hashes checked),
//! and is published only when every output is written. A failed node stops its
//! dependents, which are reported with the node that failed; other branches go on.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, info_span, warn};

use super::manifest::{FORMAT, FileRecord, Manifest, OutputRecord};
use super::plan::{KeyedNode, NodeState, PlannedNode, compute_keys, plan};
use super::progress::NodeBar;
use super::store::{Store, StoreError};
use crate::artifact::{Artifact, Format, encode_table};
use crate::stages::{Context, Inputs};
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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: 1,
            until: Vec::new(),
            force: Vec::new(),
            progress: false,
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
    let n = workflow.nodes.len();
    let mut outcome: Vec<Option<Outcome>> = vec![None; n];
    let mut in_plan = vec![false; n];
    let mut forced = vec![false; n];
    for p in &planned {
        in_plan[p.index] = true;
        if let NodeState::ToRun(reasons) = &p.state {
            forced[p.index] = reasons.iter().any(|r| r.starts_with("forced"));
        }
    }
    let mut waiting = vec![0usize; n];
    let mut dependents = vec![Vec::new(); n];
    for p in &planned {
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
    let cached: Vec<bool> = {
        let mut c = vec![false; n];
        for p in &planned {
            c[p.index] = p.state == NodeState::Cached;
        }
        c
    };
    let jobs = options.jobs.max(1);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        let mut running = 0usize;
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
        loop {
            while let Some(&(pos, i)) = ready.iter().next() {
                if cached[i] {
                    ready.remove(&(pos, i));
                    finish(i, Outcome::Cached, &mut ready, &mut outcome);
                    continue;
                }
                if running >= jobs {
                    break;
                }
                ready.remove(&(pos, i));
                running += 1;
                let tx = tx.clone();
                let keyed = &keyed;
                let force = forced[i];
                let progress = options.progress;
                scope.spawn(move || {
                    let result = execute(workflow, i, keyed, store, force, progress);
                    let _ = tx.send((i, result));
                });
            }
            if running == 0 {
                break;
            }
            let (i, result) = rx.recv().expect("a worker reports before it ends");
            running -= 1;
            finish(i, result, &mut ready, &mut outcome);
        }
    });

    // Nodes never reached: an input failed somewhere upstream.
    for &i in &workflow.order {
        if in_plan[i] && outcome[i].is_none() {
            let culprit = workflow.nodes[i]
                .inputs
                .iter()
                .find_map(|e| match &outcome[e.from] {
                    Some(Outcome::Failed(_)) => Some(workflow.nodes[e.from].id.clone()),
                    Some(Outcome::Skipped { failed_upstream }) => Some(failed_upstream.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            outcome[i] = Some(Outcome::Skipped {
                failed_upstream: culprit,
            });
        }
    }

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
    })
}

/// Computes one node and publishes it; the error text names what failed.
fn execute(
    workflow: &Workflow,
    i: usize,
    keyed: &[KeyedNode],
    store: &Store,
    force: bool,
    progress: bool,
) -> Outcome {
    let node = &workflow.nodes[i];
    let span = info_span!("node", id = %node.id, stage = node.stage.name());
    let _enter = span.enter();
    match compute(workflow, i, keyed, store, force, progress) {
        Ok(outcome) => outcome,
        Err(message) => {
            warn!("node `{}` failed: {message}", node.id);
            Outcome::Failed(message)
        }
    }
}

fn compute(
    workflow: &Workflow,
    i: usize,
    keyed: &[KeyedNode],
    store: &Store,
    force: bool,
    progress: bool,
) -> Result<Outcome, String> {
    let node = &workflow.nodes[i];
    let key = keyed[i].key;
    let _lock = match store.try_lock(&key).map_err(|e| e.to_string())? {
        Some(lock) => lock,
        None => {
            info!(
                "waiting for another cgloop process computing node `{}`",
                node.id
            );
            store.lock(&key).map_err(|e| e.to_string())?
        }
    };
    if !force && store.contains(&key) {
        return Ok(Outcome::Cached);
    }
    let started = Instant::now();
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    let mut inputs = Inputs::default();
    for e in &node.inputs {
        let artifact = store
            .load_output(&keyed[e.from].key, &e.output)
            .map_err(|err| {
                format!(
                    "input `{}` ({}.{}): {err}",
                    e.name, workflow.nodes[e.from].id, e.output
                )
            })?;
        inputs.artifacts.insert(e.name.clone(), Arc::new(artifact));
    }
    for f in &node.files {
        let bytes = std::fs::read(&f.path).map_err(|e| format!("{}: {e}", f.path.display()))?;
        let expected = &keyed[i].files[&f.param].1;
        if blake3::hash(&bytes).to_hex().as_str() != expected {
            return Err(format!(
                "{} changed while the workflow was running; run again",
                f.path.display()
            ));
        }
        inputs.files.insert(f.written.clone(), Arc::new(bytes));
    }

    info!("running");
    let bar = NodeBar::new(&node.id, progress);
    let mut ctx = Context::new(node.seed, &bar);
    let result = catch_unwind(AssertUnwindSafe(|| {
        node.stage.run(&node.params, &inputs, &mut ctx)
    }));
    bar.finish();
    let outputs = match result {
        Ok(Ok(outputs)) => outputs,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            return Err(format!("stage `{}` panicked: {what}", node.stage.name()));
        }
    };

    let ingredients = &keyed[i].ingredients;
    let mut provenance = BTreeMap::from([
        ("cgloop.key".to_string(), key.to_string()),
        ("cgloop.stage".to_string(), ingredients.stage.clone()),
        (
            "cgloop.stage_version".to_string(),
            ingredients.version.to_string(),
        ),
        ("cgloop.params".to_string(), ingredients.params.to_string()),
        (
            "cgloop.inputs".to_string(),
            serde_json::to_string(&ingredients.inputs).expect("inputs serialize"),
        ),
        ("cgloop.seed".to_string(), ingredients.seed.clone()),
        (
            "cgloop.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ]);
    let mut files = Vec::new();
    let mut records = BTreeMap::new();
    let declared = node.stage.outputs();
    for extra in outputs.keys() {
        if !declared.iter().any(|p| p.name == extra) {
            return Err(format!(
                "stage `{}` returned an undeclared output `{extra}` (a bug in the stage)",
                node.stage.name()
            ));
        }
    }
    for port in declared {
        let artifact = outputs.get(port.name).ok_or_else(|| {
            format!(
                "stage `{}` did not return its output `{}` (a bug in the stage)",
                node.stage.name(),
                port.name
            )
        })?;
        let bytes = match (port.kind.format, artifact) {
            (Format::Parquet(schema), Artifact::Table(batch)) => {
                if let Some(schema) = schema {
                    let expected = schema();
                    if batch.schema().fields() != expected.fields() {
                        return Err(format!(
                            "output `{}` does not have the `{}` schema (a bug in the stage): got {:?}",
                            port.name,
                            port.kind.name,
                            batch.schema()
                        ));
                    }
                }
                provenance.insert("cgloop.output".to_string(), port.name.to_string());
                encode_table(batch, &provenance)
                    .map_err(|e| format!("output `{}`: {e}", port.name))?
            }
            (Format::File(_), Artifact::File(bytes)) => bytes.clone(),
            _ => {
                return Err(format!(
                    "output `{}` is declared as `{}` but the stage returned another form",
                    port.name, port.kind.name
                ));
            }
        };
        let file = port.kind.file_name(port.name);
        records.insert(
            port.name.to_string(),
            OutputRecord {
                file: file.clone(),
                kind: port.kind.name.to_string(),
                blake3: blake3::hash(&bytes).to_hex().to_string(),
                bytes: bytes.len() as u64,
            },
        );
        files.push((file, bytes));
    }
    let wall_s = started.elapsed().as_secs_f64();
    let manifest = Manifest {
        format: FORMAT,
        key: key.to_string(),
        ingredients: ingredients.clone(),
        workflow: workflow.name.clone(),
        node: node.id.clone(),
        files: keyed[i]
            .files
            .iter()
            .map(|(param, (path, hash))| {
                (
                    param.clone(),
                    FileRecord {
                        path: path.display().to_string(),
                        blake3: hash.clone(),
                    },
                )
            })
            .collect(),
        outputs: records,
        cgloop_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix_s,
        wall_s,
    };
    store
        .publish(&key, &manifest, &files)
        .map_err(|e| format!("publishing: {e}"))?;
    info!(wall_s, "published {key}");
    Ok(Outcome::Ran { wall_s })
}
