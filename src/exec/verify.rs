//! `cgloop verify` and `cgloop gc`: rehash the store; delete what no kept workflow
//! reaches.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::store::{Store, StoreError, io_error};
use crate::workflow::Key;

/// A problem found in a published node.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub key: Key,
    pub message: String,
}

/// Rehashes every output of every published node, checks that each manifest's
/// ingredients still give its key, and returns the problems (empty when clean).
pub fn verify(store: &Store) -> Result<(usize, Vec<Problem>), StoreError> {
    let keys = store.keys()?;
    let mut problems = Vec::new();
    for key in &keys {
        let problem = |message: String| Problem { key: *key, message };
        let manifest = match store.read_manifest(key) {
            Ok(m) => m,
            Err(e) => {
                problems.push(problem(e.to_string()));
                continue;
            }
        };
        if manifest.key != key.to_string() || manifest.ingredients.key() != *key {
            problems.push(problem(
                "the manifest's ingredients do not hash to the folder's key".into(),
            ));
        }
        for output in manifest.outputs.keys() {
            if let Err(e) = store.read_output_bytes(key, &manifest, output) {
                problems.push(problem(e.to_string()));
            }
        }
    }
    Ok((keys.len(), problems))
}

/// What `gc` removed (or would remove, on a dry run).
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    pub removed: Vec<(Key, u64)>,
    pub kept: usize,
    pub temporary: Vec<PathBuf>,
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Removes every published node not in `keep`, and leftovers of killed runs.
/// Run it when no `cgloop run` is active on the store.
pub fn gc(store: &Store, keep: &BTreeSet<Key>, dry_run: bool) -> Result<GcReport, StoreError> {
    let mut report = GcReport::default();
    for key in store.keys()? {
        if keep.contains(&key) {
            report.kept += 1;
            continue;
        }
        let size = dir_size(&store.node_dir(&key));
        if !dry_run {
            store.remove(&key)?;
        }
        report.removed.push((key, size));
    }
    for tmp in store.temporary_entries()? {
        if !dry_run {
            std::fs::remove_dir_all(&tmp).map_err(io_error(&tmp))?;
        }
        report.temporary.push(tmp);
    }
    Ok(report)
}
