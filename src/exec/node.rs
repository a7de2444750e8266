//! Computing one node: read its inputs from the store (hashes checked), run its stage,
//! and publish its outputs with the manifest. The local executor's threads and a Slurm
//! job (`cgloop exec-node`) both come here, so a node gives the same bytes wherever it
//! runs.
//!
//! The node's key lock (an OS file lock) keeps two processes on one machine from
//! computing it twice. Where the file system has no working locks (some cluster file
//! systems), the node computes without one: publishing by rename stays correct, since
//! the first complete copy to land wins and a later one is dropped.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, info_span, warn};

use super::manifest::{FORMAT, FileRecord, Manifest, OutputRecord};
use super::plan::KeyedNode;
use super::progress::NodeBar;
use super::run::Outcome;
use super::store::{Published, Store};
use crate::artifact::{Artifact, Format, encode_table};
use crate::stages::{Context, Inputs};
use crate::workflow::Workflow;

/// Computes one node and publishes it; the error text names what failed.
pub fn compute_node(
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
    let _lock = match store.try_lock(&key) {
        Ok(Some(lock)) => Some(lock),
        Ok(None) => {
            info!(
                "waiting for another cgloop process computing node `{}`",
                node.id
            );
            store.lock(&key).ok()
        }
        Err(e) => {
            warn!("no key lock ({e}); computing without one");
            None
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
                let expected = schema();
                if batch.schema().fields() != expected.fields() {
                    return Err(format!(
                        "output `{}` does not have the `{}` schema (a bug in the stage): got {:?}",
                        port.name,
                        port.kind.name,
                        batch.schema()
                    ));
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
    match store
        .publish(&key, &manifest, &files, force)
        .map_err(|e| format!("publishing: {e}"))?
    {
        Published::Ours => {
            info!(wall_s, "published {key}");
            Ok(Outcome::Ran { wall_s })
        }
        Published::Theirs => {
            info!("another process published {key} first; its copy is kept");
            Ok(Outcome::Cached)
        }
    }
}
