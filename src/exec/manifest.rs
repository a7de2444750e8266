//! The manifest of a published node: `<store>/<key>/manifest.json`.
//!
//! It lists the node's outputs with their blake3 content hashes (checked whenever an
//! output is read, and by `cgloop verify`), the key's ingredients (so `cgloop plan` can
//! say what changed and `verify` can recompute the key), the files the params named,
//! and how long the node took. Only the outputs are deterministic bytes; the manifest
//! also records when and where.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::workflow::Ingredients;

pub const MANIFEST_FILE: &str = "manifest.json";
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// File name inside the node's folder.
    pub file: String,
    /// The artifact kind (see `cgloop stages`).
    pub kind: String,
    pub blake3: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The path as written in the workflow that first computed the node.
    pub path: String,
    pub blake3: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub key: String,
    pub ingredients: Ingredients,
    /// The workflow and node id that computed it (informational: not in the key).
    pub workflow: String,
    pub node: String,
    pub files: BTreeMap<String, FileRecord>,
    pub outputs: BTreeMap<String, OutputRecord>,
    pub cgloop_version: String,
    /// Seconds since the Unix epoch when the node started.
    pub started_unix_s: u64,
    pub wall_s: f64,
}
