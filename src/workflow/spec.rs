//! The workflow file's schema, checked in one pass that collects every error.
//!
//! ```yaml
//! name: alanine_dipeptide          # required: names the study
//! seed: 20260101                   # required: the root of all randomness
//! description: ...                 # optional
//! defaults:                        # optional: params shared by every node of a stage
//!   fg_sample: {temperature_k: 300}
//! resources:                       # optional: cluster requests per stage (Slurm)
//!   fg_sample: {cpus: 2, time_min: 60}
//! nodes:                           # required: node id -> node
//!   fg:
//!     stage: fg_sample             # required: a registered stage
//!     inputs: {trajectory: other.trajectory}   # input name -> node.output
//!     params: {...}                # the stage's params; omitted ones take defaults
//!     resources: {memory_gb: 8}    # optional: this node's cluster requests
//! ```

use std::path::Path;

use super::diagnostic::{Diagnostic, ErrorKind};
use super::resources::{Resources, parse_resources};
use super::yaml::{Location, Yaml, YamlValue};
use crate::stages::list_element_name;

/// A node as written, before stages and connections are checked.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub id: String,
    pub id_location: Location,
    pub stage: String,
    pub stage_location: Location,
    pub inputs: Vec<InputSpec>,
    /// The params mapping, if any.
    pub params: Option<Yaml>,
    /// Cluster requests written on the node.
    pub resources: Resources,
}

/// `name: node.output` under a node's `inputs`; a list `name: [a.x, b.x]` gives one
/// per element, named as [`list_element_name`] says.
#[derive(Clone, Debug)]
pub struct InputSpec {
    pub name: String,
    pub name_location: Location,
    pub node: String,
    pub output: String,
    pub location: Location,
}

/// Shared params for every node of one stage.
#[derive(Clone, Debug)]
pub struct DefaultsSpec {
    pub stage: String,
    pub stage_location: Location,
    pub params: Yaml,
}

#[derive(Clone, Debug)]
pub struct WorkflowSpec {
    pub name: String,
    pub seed: u64,
    pub defaults: Vec<DefaultsSpec>,
    /// Cluster requests per stage name.
    pub resources: Vec<(String, Location, Resources)>,
    pub nodes: Vec<NodeSpec>,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "seed",
    "description",
    "defaults",
    "resources",
    "nodes",
];
const NODE_KEYS: &[&str] = &["stage", "inputs", "params", "resources", "description"];

struct Checker<'a> {
    file: &'a Path,
    errors: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, kind: ErrorKind, path: &str, at: Location, message: String) {
        self.errors
            .push(Diagnostic::new(kind, self.file, path, Some(at), message));
    }

    /// The entries of a mapping, or an error saying what was expected.
    fn mapping<'y>(&mut self, node: &'y Yaml, path: &str, what: &str) -> &'y [(Yaml, Yaml)] {
        match &node.value {
            YamlValue::Map(entries) => {
                for (i, (key, _)) in entries.iter().enumerate() {
                    let name = key.as_str().unwrap_or_default();
                    if let Some((first, _)) =
                        entries[..i].iter().find(|(k, _)| k.as_str() == Some(name))
                    {
                        let (kind, what) = if path == "nodes" {
                            (ErrorKind::DuplicateId, "node id")
                        } else {
                            (ErrorKind::DuplicateKey, "key")
                        };
                        self.error(
                            kind,
                            &join(path, name),
                            key.location,
                            format!(
                                "duplicate {what} `{name}` (first at line {})",
                                first.location.line
                            ),
                        );
                    }
                }
                entries
            }
            YamlValue::Null => &[],
            other => {
                self.error(
                    ErrorKind::WrongType,
                    path,
                    node.location,
                    format!("expected {what} (a mapping), found {}", other.kind()),
                );
                &[]
            }
        }
    }

    fn unknown_keys(&mut self, entries: &[(Yaml, Yaml)], path: &str, known: &[&str]) {
        for (key, _) in entries {
            let name = key.as_str().unwrap_or_default();
            if !known.contains(&name) {
                let at = join(path, name);
                self.errors.push(
                    Diagnostic::new(
                        ErrorKind::UnknownKey,
                        self.file,
                        at,
                        Some(key.location),
                        format!("unknown key `{name}`"),
                    )
                    .with_choices("keys", known.iter().map(|s| s.to_string()).collect()),
                );
            }
        }
    }

    fn string(&mut self, node: &Yaml, path: &str) -> Option<String> {
        match &node.value {
            YamlValue::Str(s) => Some(s.clone()),
            other => {
                self.error(
                    ErrorKind::WrongType,
                    path,
                    node.location,
                    format!("expected a string, found {}", other.kind()),
                );
                None
            }
        }
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks the document against the workflow schema.
pub fn check(doc: &Yaml, file: &Path) -> Result<WorkflowSpec, Vec<Diagnostic>> {
    let mut c = Checker {
        file,
        errors: Vec::new(),
    };
    let top = c.mapping(doc, "", "a workflow");
    c.unknown_keys(top, "", TOP_KEYS);
    let required = |c: &mut Checker, key: &str| {
        let found = doc.get(key);
        if found.is_none() && doc.as_map().is_some() {
            c.error(
                ErrorKind::MissingKey,
                key,
                doc.location,
                format!("missing required key `{key}`"),
            );
        }
        found
    };

    let name = required(&mut c, "name")
        .and_then(|n| c.string(n, "name"))
        .unwrap_or_default();
    let seed = match required(&mut c, "seed") {
        Some(Yaml {
            value: YamlValue::Int(s),
            ..
        }) if *s >= 0 => *s as u64,
        Some(other) => {
            c.error(
                ErrorKind::WrongType,
                "seed",
                other.location,
                format!(
                    "expected a non-negative integer, found {}",
                    other.value.kind()
                ),
            );
            0
        }
        None => 0,
    };
    if let Some(d) = doc.get("description") {
        c.string(d, "description");
    }

    let mut defaults = Vec::new();
    if let Some(d) = doc.get("defaults") {
        for (stage, params) in c.mapping(d, "defaults", "stage -> params") {
            let stage_name = stage.as_str().unwrap_or_default().to_string();
            let path = join("defaults", &stage_name);
            c.mapping(params, &path, "params");
            defaults.push(DefaultsSpec {
                stage: stage_name,
                stage_location: stage.location,
                params: params.clone(),
            });
        }
    }

    let mut resources = Vec::new();
    if let Some(r) = doc.get("resources") {
        for (stage, requests) in c.mapping(r, "resources", "stage -> resources") {
            let stage_name = stage.as_str().unwrap_or_default().to_string();
            let path = join("resources", &stage_name);
            let parsed = parse_resources(requests, c.file, &path, &mut c.errors);
            resources.push((stage_name, stage.location, parsed));
        }
    }

    let mut nodes = Vec::new();
    if let Some(n) = required(&mut c, "nodes") {
        for (id, body) in c.mapping(n, "nodes", "node id -> node") {
            if let Some(node) = check_node(&mut c, id, body) {
                nodes.push(node);
            }
        }
    }

    if c.errors.is_empty() {
        Ok(WorkflowSpec {
            name,
            seed,
            defaults,
            resources,
            nodes,
        })
    } else {
        Err(c.errors)
    }
}

fn check_node(c: &mut Checker, id: &Yaml, body: &Yaml) -> Option<NodeSpec> {
    let id_text = id.as_str().unwrap_or_default().to_string();
    let path = join("nodes", &id_text);
    if !valid_id(&id_text) {
        c.error(
            ErrorKind::WrongType,
            &path,
            id.location,
            format!(
                "node id `{id_text}` may contain only letters, digits, `_` and `-` \
                 (a `.` separates node and output in inputs)"
            ),
        );
    }
    let entries = c.mapping(body, &path, "a node");
    c.unknown_keys(entries, &path, NODE_KEYS);
    let stage = match body.get("stage") {
        Some(s) => c
            .string(s, &join(&path, "stage"))
            .map(|name| (name, s.location)),
        None => {
            if body.as_map().is_some() {
                c.error(
                    ErrorKind::MissingKey,
                    &path,
                    body.location,
                    "missing required key `stage`".into(),
                );
            }
            None
        }
    };
    let mut inputs = Vec::new();
    if let Some(ins) = body.get("inputs") {
        let ins_path = join(&path, "inputs");
        for (name, reference) in c.mapping(ins, &ins_path, "input -> node.output") {
            let name_text = name.as_str().unwrap_or_default().to_string();
            let at = join(&ins_path, &name_text);
            // One `node.output`, or a list of them (for a list input).
            let (references, list): (Vec<&Yaml>, bool) = match &reference.value {
                YamlValue::Seq(items) if items.is_empty() => {
                    c.error(
                        ErrorKind::WrongType,
                        &at,
                        reference.location,
                        "expected `node.output` or a list of them, found an empty list".into(),
                    );
                    continue;
                }
                YamlValue::Seq(items) => (items.iter().collect(), true),
                _ => (vec![reference], false),
            };
            for (k, reference) in references.into_iter().enumerate() {
                let at = if list {
                    join(&at, &k.to_string())
                } else {
                    at.clone()
                };
                let Some(text) = c.string(reference, &at) else {
                    continue;
                };
                match text.split_once('.') {
                    Some((node, output)) if !node.is_empty() && !output.is_empty() => {
                        inputs.push(InputSpec {
                            name: list_element_name(&name_text, k),
                            name_location: name.location,
                            node: node.to_string(),
                            output: output.to_string(),
                            location: reference.location,
                        })
                    }
                    _ => c.error(
                        ErrorKind::WrongType,
                        &at,
                        reference.location,
                        format!("expected `node.output`, found `{text}`"),
                    ),
                }
            }
        }
    }
    let params = body.get("params").cloned();
    if let Some(p) = &params {
        c.mapping(p, &join(&path, "params"), "params");
    }
    let resources = match body.get("resources") {
        Some(r) => parse_resources(r, c.file, &join(&path, "resources"), &mut c.errors),
        None => Resources::default(),
    };
    let (stage, stage_location) = stage?;
    Some(NodeSpec {
        id: id_text,
        id_location: id.location,
        stage,
        stage_location,
        inputs,
        params,
        resources,
    })
}
