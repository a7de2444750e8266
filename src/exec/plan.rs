//! Planning: each node's key, and whether the store already holds it; for a node to
//! run, the reason in words (which param, input, file or stage version differs from what
//! the store last held for this node).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;

use super::store::{Store, StoreError, io_error};
use crate::workflow::key::hex;
use crate::workflow::{Ingredients, InputRef, Key, Workflow};

/// A node's key and what went into it.
#[derive(Clone, Debug)]
pub struct KeyedNode {
    pub key: Key,
    pub ingredients: Ingredients,
    /// Content hashes of the files its params name: param -> (path, blake3 hex).
    pub files: BTreeMap<String, (PathBuf, String)>,
}

/// Computes every node's key (hashing the data files its params name).
pub fn compute_keys(workflow: &Workflow) -> Result<Vec<KeyedNode>, StoreError> {
    let mut file_hashes: HashMap<PathBuf, String> = HashMap::new();
    let mut keyed: Vec<Option<KeyedNode>> = vec![None; workflow.nodes.len()];
    for &i in &workflow.order {
        let node = &workflow.nodes[i];
        let mut params = node.params.clone();
        let mut files = BTreeMap::new();
        for f in &node.files {
            let hash = match file_hashes.get(&f.path) {
                Some(h) => h.clone(),
                None => {
                    let bytes = std::fs::read(&f.path).map_err(io_error(&f.path))?;
                    let h = blake3::hash(&bytes).to_hex().to_string();
                    file_hashes.insert(f.path.clone(), h.clone());
                    h
                }
            };
            if let Some(obj) = params.as_object_mut() {
                obj.insert(f.param.clone(), Value::String(format!("blake3:{hash}")));
            }
            files.insert(f.param.clone(), (f.path.clone(), hash));
        }
        let inputs = node
            .inputs
            .iter()
            .map(|e| {
                let upstream = keyed[e.from].as_ref().expect("inputs are keyed first");
                (
                    e.name.clone(),
                    InputRef {
                        key: upstream.key.to_string(),
                        output: e.output.clone(),
                    },
                )
            })
            .collect();
        let ingredients = Ingredients {
            stage: node.stage.name().to_string(),
            version: node.stage.version(),
            params,
            inputs,
            seed: hex(&node.seed),
        };
        keyed[i] = Some(KeyedNode {
            key: ingredients.key(),
            ingredients,
            files,
        });
    }
    Ok(keyed
        .into_iter()
        .map(|k| k.expect("every node keyed"))
        .collect())
}

/// Whether a node must run, and why.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeState {
    Cached,
    ToRun(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct PlannedNode {
    pub index: usize,
    pub id: String,
    pub key: Key,
    pub state: NodeState,
}

/// Plans the nodes `needed` (all when `None`), in topological order; `forced` nodes run
/// even when cached.
pub fn plan(
    workflow: &Workflow,
    keyed: &[KeyedNode],
    store: &Store,
    needed: Option<&[bool]>,
    forced: &[bool],
) -> Vec<PlannedNode> {
    let index = store.read_index(&workflow.name);
    let mut to_run = vec![false; workflow.nodes.len()];
    let mut planned = Vec::new();
    for &i in &workflow.order {
        if needed.is_some_and(|n| !n[i]) {
            continue;
        }
        let node = &workflow.nodes[i];
        let key = keyed[i].key;
        let state = if forced[i] {
            NodeState::ToRun(vec!["forced with --force".into()])
        } else if store.contains(&key) {
            NodeState::Cached
        } else {
            let upstream: Vec<String> = node
                .inputs
                .iter()
                .filter(|e| to_run[e.from])
                .map(|e| {
                    format!(
                        "input `{}`: upstream node `{}` runs",
                        e.name, workflow.nodes[e.from].id
                    )
                })
                .collect();
            let previous = index
                .get(&node.id)
                .and_then(|k| Key::parse(k))
                .and_then(|k| store.read_manifest(&k).ok());
            let mut reasons = match previous {
                Some(m) if m.key == key.to_string() => {
                    vec!["not in the store (removed, or never finished)".into()]
                }
                Some(m) => differences(&m.ingredients, &keyed[i].ingredients, &upstream)
                    .into_iter()
                    .map(|r| annotate(r, node, workflow.seed_overridden))
                    .collect(),
                None => vec!["not computed before".into()],
            };
            if !node.overridden.is_empty()
                && !reasons.iter().any(|r| r.ends_with(SET_BY_COMMAND_LINE))
            {
                reasons.push(format!(
                    "param{} {} set on the command line{}",
                    if node.overridden.len() > 1 { "s" } else { "" },
                    node.overridden
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    SET_BY_COMMAND_LINE
                ));
            }
            if reasons.is_empty() {
                reasons.push("key differs from the stored node".into());
            }
            NodeState::ToRun(reasons)
        };
        to_run[i] = matches!(state, NodeState::ToRun(_));
        planned.push(PlannedNode {
            index: i,
            id: node.id.clone(),
            key,
            state,
        });
    }
    planned
}

const SET_BY_COMMAND_LINE: &str = " (--set)";

/// Marks a reason that a command-line override explains: a param set with `--set`, the
/// seed replaced with `--seed`.
fn annotate(reason: String, node: &crate::workflow::Node, seed_overridden: bool) -> String {
    let set = node
        .overridden
        .iter()
        .any(|p| reason.starts_with(&format!("param `{p}` ")));
    if set {
        format!("{reason}{SET_BY_COMMAND_LINE}")
    } else if seed_overridden && reason.starts_with("seed changed") {
        "seed changed (--seed)".to_string()
    } else {
        reason
    }
}

/// A value for a one-line reason: at most 60 characters, cut at a character boundary.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// What differs between the ingredients the store holds and the current ones.
fn differences(old: &Ingredients, new: &Ingredients, upstream: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if old.stage != new.stage {
        out.push(format!("stage changed: {} -> {}", old.stage, new.stage));
    } else if old.version != new.version {
        out.push(format!(
            "stage `{}` version changed: {} -> {}",
            new.stage, old.version, new.version
        ));
    }
    let empty = serde_json::Map::new();
    let old_params = old.params.as_object().unwrap_or(&empty);
    let new_params = new.params.as_object().unwrap_or(&empty);
    let names: std::collections::BTreeSet<&String> =
        old_params.keys().chain(new_params.keys()).collect();
    for name in names {
        match (old_params.get(name), new_params.get(name)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(Value::String(a)), Some(Value::String(b)))
                if a.starts_with("blake3:") && b.starts_with("blake3:") =>
            {
                out.push(format!("file `{name}` changed content"))
            }
            (Some(a), Some(b)) => out.push(format!(
                "param `{name}` changed: {} -> {}",
                short(a),
                short(b)
            )),
            (None, Some(b)) => out.push(format!("param `{name}` is new: {}", short(b))),
            (Some(_), None) => out.push(format!("param `{name}` was removed")),
            (None, None) => {}
        }
    }
    out.extend(upstream.iter().cloned());
    for (name, input) in &new.inputs {
        let changed = old.inputs.get(name) != Some(input);
        let explained = upstream
            .iter()
            .any(|u| u.starts_with(&format!("input `{name}`")));
        if changed && !explained {
            match old.inputs.get(name) {
                Some(prev) if prev.output != input.output => out.push(format!(
                    "input `{name}` now takes output `{}` (was `{}`)",
                    input.output, prev.output
                )),
                Some(_) => out.push(format!("input `{name}` changed upstream")),
                None => out.push(format!("input `{name}` is new")),
            }
        }
    }
    if old.seed != new.seed {
        out.push("seed changed (workflow seed or node id)".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        // A title whose 57th byte falls inside a multi-byte character.
        let title = format!("{}é and more text after it", "a".repeat(56));
        let cut = short(&Value::String(title));
        assert!(cut.ends_with('…'));
        assert_eq!(cut.chars().count(), 58);
        assert_eq!(short(&Value::from(5)), "5");
    }
}
