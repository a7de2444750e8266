//! The graph and params passes: stages looked up, inputs connected and type-checked,
//! cycles found, params validated with defaults filled in, data files located.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;

use super::diagnostic::{Diagnostic, ErrorKind};
use super::overrides::{Overrides, ParamOverride};
use super::resources::Resources;
use super::spec::{WorkflowSpec, join};
use super::yaml::{Location, Yaml};
use crate::stages::{DynStage, Registry, split_list_element};

/// A data file named in a node's params.
#[derive(Clone, Debug, PartialEq)]
pub struct FileParam {
    /// The param that names it.
    pub param: String,
    /// The path as written in the workflow (the stage asks for the bytes by it).
    pub written: String,
    /// Where it was found.
    pub path: PathBuf,
}

/// An input connection: `name` takes `output` of node `from` (an index into the nodes).
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub name: String,
    pub from: usize,
    pub output: String,
}

/// A validated node.
#[derive(Clone)]
pub struct Node {
    pub id: String,
    pub stage: Arc<dyn DynStage>,
    /// Params with every default written out.
    pub params: serde_json::Value,
    pub files: Vec<FileParam>,
    /// Sorted by input name.
    pub inputs: Vec<Edge>,
    /// The node's seed, derived from the workflow seed and the node id.
    pub seed: [u8; 32],
    /// Params set from the command line (`--set`), by name.
    pub overridden: Vec<String>,
    /// Cluster requests: the node's own over its stage's (not part of the key).
    pub resources: Resources,
}

/// A validated workflow, ready to plan and run.
#[derive(Clone)]
pub struct Workflow {
    pub file: PathBuf,
    pub name: String,
    pub seed: u64,
    pub nodes: Vec<Node>,
    /// Node indices in an order where every node comes after its inputs.
    pub order: Vec<usize>,
    /// Whether `seed` came from `--seed` rather than the file.
    pub seed_overridden: bool,
}

impl Workflow {
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The nodes that `targets` need, themselves included.
    pub fn ancestors(&self, targets: &[usize]) -> Vec<bool> {
        let mut needed = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(i) = stack.pop() {
            if !needed[i] {
                needed[i] = true;
                stack.extend(self.nodes[i].inputs.iter().map(|e| e.from));
            }
        }
        needed
    }
}

/// The seed of node `id` in a workflow seeded with `seed`.
pub fn node_seed(seed: u64, id: &str) -> [u8; 32] {
    let mut material = seed.to_le_bytes().to_vec();
    material.extend_from_slice(id.as_bytes());
    blake3::derive_key("cgloop node seed v1", &material)
}

pub(crate) fn resolve(
    mut spec: WorkflowSpec,
    file: &Path,
    registry: &Registry,
    overrides: &Overrides,
) -> Result<Workflow, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    if let Some(seed) = overrides.seed {
        spec.seed = seed;
    }
    let stage_names =
        || -> Vec<String> { registry.names().iter().map(|s| s.to_string()).collect() };
    let ids: HashMap<&str, usize> = spec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let node_ids = || -> Vec<String> {
        let mut ids: Vec<String> = spec.nodes.iter().map(|n| n.id.clone()).collect();
        ids.sort();
        ids
    };
    for o in &overrides.params {
        if !ids.contains_key(o.node.as_str()) {
            errors.push(
                Diagnostic::new(
                    ErrorKind::BadOverride,
                    file,
                    "",
                    None,
                    format!("--set {}: no node `{}` in this workflow", o.text, o.node),
                )
                .with_choices("nodes", node_ids()),
            );
        }
    }
    let stages: Vec<Option<&Arc<dyn DynStage>>> = spec
        .nodes
        .iter()
        .map(|n| {
            let stage = registry.get(&n.stage);
            if stage.is_none() {
                errors.push(
                    Diagnostic::new(
                        ErrorKind::UnknownStage,
                        file,
                        join(&join("nodes", &n.id), "stage"),
                        Some(n.stage_location),
                        format!("unknown stage `{}`", n.stage),
                    )
                    .with_choices("stages", stage_names()),
                );
            }
            stage
        })
        .collect();
    let mut defaults: BTreeMap<&str, &Yaml> = BTreeMap::new();
    for d in &spec.defaults {
        if registry.get(&d.stage).is_none() {
            errors.push(
                Diagnostic::new(
                    ErrorKind::UnknownStage,
                    file,
                    join("defaults", &d.stage),
                    Some(d.stage_location),
                    format!("defaults for unknown stage `{}`", d.stage),
                )
                .with_choices("stages", stage_names()),
            );
        }
        defaults.insert(&d.stage, &d.params);
    }
    for (stage, location, _) in &spec.resources {
        if registry.get(stage).is_none() {
            errors.push(
                Diagnostic::new(
                    ErrorKind::UnknownStage,
                    file,
                    join("resources", stage),
                    Some(*location),
                    format!("resources for unknown stage `{stage}`"),
                )
                .with_choices("stages", stage_names()),
            );
        }
    }

    // Connections.
    let mut edges: Vec<Vec<Edge>> = vec![Vec::new(); spec.nodes.len()];
    for (i, node) in spec.nodes.iter().enumerate() {
        let node_path = join("nodes", &node.id);
        let Some(stage) = stages[i] else { continue };
        for input in &node.inputs {
            let (base, k) = split_list_element(&input.name);
            let mut path = join(&join(&node_path, "inputs"), base);
            if input.name != base {
                path = join(&path, &k.to_string());
            }
            let Some(port) = stage.inputs().iter().find(|p| p.name == base) else {
                errors.push(
                    Diagnostic::new(
                        ErrorKind::UnknownInput,
                        file,
                        &path,
                        Some(input.name_location),
                        format!("stage `{}` has no input `{base}`", stage.name()),
                    )
                    .with_choices(
                        format!("inputs of `{}`", stage.name()),
                        stage.inputs().iter().map(|p| p.name.to_string()).collect(),
                    ),
                );
                continue;
            };
            if k > 0 && !stage.is_list_input(base) {
                errors.push(Diagnostic::new(
                    ErrorKind::WrongType,
                    file,
                    &path,
                    Some(input.location),
                    format!(
                        "input `{base}` of stage `{}` takes one `node.output`, not a list",
                        stage.name()
                    ),
                ));
                continue;
            }
            let Some(&from) = ids.get(input.node.as_str()) else {
                errors.push(
                    Diagnostic::new(
                        ErrorKind::DanglingInput,
                        file,
                        &path,
                        Some(input.location),
                        format!("no node `{}` in this workflow", input.node),
                    )
                    .with_choices("nodes", node_ids()),
                );
                continue;
            };
            let Some(upstream) = stages[from] else {
                continue;
            };
            let Some(out) = upstream.outputs().iter().find(|p| p.name == input.output) else {
                errors.push(
                    Diagnostic::new(
                        ErrorKind::UnknownOutput,
                        file,
                        &path,
                        Some(input.location),
                        format!(
                            "node `{}` (stage `{}`) has no output `{}`",
                            input.node,
                            upstream.name(),
                            input.output
                        ),
                    )
                    .with_choices(
                        format!("outputs of `{}`", input.node),
                        upstream
                            .outputs()
                            .iter()
                            .map(|p| p.name.to_string())
                            .collect(),
                    ),
                );
                continue;
            };
            if out.kind != port.kind {
                errors.push(Diagnostic::new(
                    ErrorKind::TypeMismatch,
                    file,
                    &path,
                    Some(input.location),
                    format!(
                        "`{}.{}` is a `{}` but input `{}` of stage `{}` takes a `{}`",
                        input.node,
                        input.output,
                        out.kind.name,
                        base,
                        stage.name(),
                        port.kind.name
                    ),
                ));
                continue;
            }
            edges[i].push(Edge {
                name: input.name.clone(),
                from,
                output: input.output.clone(),
            });
        }
        let missing: Vec<&str> = stage
            .inputs()
            .iter()
            .filter(|p| !stage.is_optional_input(p.name))
            .filter(|p| {
                !node
                    .inputs
                    .iter()
                    .any(|i| split_list_element(&i.name).0 == p.name)
            })
            .map(|p| p.name)
            .collect();
        if !missing.is_empty() {
            errors.push(Diagnostic::new(
                ErrorKind::MissingInput,
                file,
                &node_path,
                Some(node.id_location),
                format!(
                    "stage `{}` needs input{} {} connected",
                    stage.name(),
                    if missing.len() > 1 { "s" } else { "" },
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        edges[i].sort_by(|a, b| a.name.cmp(&b.name));
    }

    // Cycles.
    let mut graph = DiGraph::<usize, ()>::with_capacity(spec.nodes.len(), 0);
    let indices: Vec<_> = (0..spec.nodes.len()).map(|i| graph.add_node(i)).collect();
    for (i, ins) in edges.iter().enumerate() {
        for e in ins {
            graph.add_edge(indices[e.from], indices[i], ());
        }
    }
    let mut cyclic = false;
    for component in tarjan_scc(&graph) {
        let self_loop = component.len() == 1
            && edges[graph[component[0]]]
                .iter()
                .any(|e| e.from == graph[component[0]]);
        if component.len() > 1 || self_loop {
            cyclic = true;
            let mut members: Vec<usize> = component.iter().map(|&n| graph[n]).collect();
            members.sort();
            let first = members[0];
            let names: Vec<&str> = members.iter().map(|&m| spec.nodes[m].id.as_str()).collect();
            errors.push(Diagnostic::new(
                ErrorKind::Cycle,
                file,
                join("nodes", &spec.nodes[first].id),
                Some(spec.nodes[first].id_location),
                format!(
                    "these nodes depend on each other in a cycle: {}",
                    names.join(", ")
                ),
            ));
        }
    }

    // Params and files.
    let base = file.parent().unwrap_or(Path::new("."));
    let mut nodes = Vec::with_capacity(spec.nodes.len());
    for (i, node) in spec.nodes.iter().enumerate() {
        let Some(stage) = stages[i] else { continue };
        let node_path = join("nodes", &node.id);
        let prefixes = [join("defaults", &node.stage), join(&node_path, "params")];
        let node_overrides = overrides.for_node(&node.id);
        let merged = match node_params(
            node.params.as_ref(),
            defaults.get(node.stage.as_str()).copied(),
            &prefixes,
            &node_overrides,
        ) {
            Err(diagnostic) => {
                errors.push(diagnostic.into_diagnostic(file));
                continue;
            }
            Ok(merged) => merged,
        };
        let resolved = stage.check_params(&merged.value);
        for problem in &resolved.problems {
            errors.push(
                merged
                    .locate(&problem.path, &prefixes[1], node.id_location)
                    .diagnostic(ErrorKind::InvalidParam, file, problem.message.clone()),
            );
        }
        let mut files = Vec::new();
        for (param, written) in resolved.files {
            match locate_file(&written, base) {
                Some(path) => files.push(FileParam {
                    param,
                    written,
                    path,
                }),
                None => errors.push(
                    merged
                        .locate(std::slice::from_ref(&param), &prefixes[1], node.id_location)
                        .diagnostic(
                            ErrorKind::MissingFile,
                            file,
                            format!(
                                "file `{written}` not found (looked in the current directory and in {})",
                                base.display()
                            ),
                        ),
                ),
            }
        }
        if let Some(value) = resolved.value {
            nodes.push(Node {
                id: node.id.clone(),
                stage: stage.clone(),
                params: value,
                files,
                inputs: edges[i].clone(),
                seed: node_seed(spec.seed, &node.id),
                overridden: node_overrides.iter().map(|o| o.param.clone()).collect(),
                resources: node.resources.or(spec
                    .resources
                    .iter()
                    .rev()
                    .find(|(stage, _, _)| *stage == node.stage)
                    .map_or_else(Resources::default, |(_, _, r)| *r)),
            });
        }
    }

    if !errors.is_empty() {
        errors.sort_by_key(|d| d.location.map(|l| (l.line, l.column)));
        return Err(errors);
    }
    debug_assert!(!cyclic);
    let order = topological_order(&nodes);
    Ok(Workflow {
        file: file.to_path_buf(),
        name: spec.name,
        seed: spec.seed,
        nodes,
        order,
        seed_overridden: overrides.seed.is_some(),
    })
}

/// Kahn's algorithm, taking ready nodes in document order so the order is stable.
fn topological_order(nodes: &[Node]) -> Vec<usize> {
    let mut waiting: Vec<usize> = nodes.iter().map(|n| n.inputs.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for e in &n.inputs {
            dependents[e.from].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.insert(d);
            }
        }
    }
    order
}

fn locate_file(written: &str, workflow_dir: &Path) -> Option<PathBuf> {
    let as_given = PathBuf::from(written);
    if as_given.is_file() {
        return Some(as_given);
    }
    let beside = workflow_dir.join(written);
    beside.is_file().then_some(beside)
}

/// Where a param was written: under a YAML path of the workflow file, or by a `--set`
/// argument.
#[derive(Clone, Copy)]
enum Origin<'a> {
    File(&'a str),
    CommandLine(&'a ParamOverride),
}

/// The place of a problem in the params, ready to become a diagnostic.
struct Place {
    yaml_path: String,
    location: Option<Location>,
    set: Option<String>,
}

impl Place {
    fn diagnostic(self, kind: ErrorKind, file: &Path, message: String) -> Diagnostic {
        match self.set {
            // The file did not say it: name the argument that did.
            Some(text) => Diagnostic::new(
                kind,
                file,
                self.yaml_path,
                None,
                format!("{message} (from --set {text})"),
            ),
            None => Diagnostic::new(kind, file, self.yaml_path, self.location, message),
        }
    }
}

/// A node's params merged over the stage's shared defaults and under the command line's
/// overrides, remembering where each top-level key was written.
struct MergedParams<'a> {
    value: serde_json::Value,
    /// Param name -> the mapping it was written in (none for `--set`) and its origin.
    sources: BTreeMap<String, (Option<&'a Yaml>, Origin<'a>)>,
}

/// A problem found while merging (a value with no JSON form).
struct MergeProblem {
    place: Place,
    message: String,
}

impl MergeProblem {
    fn into_diagnostic(self, file: &Path) -> Diagnostic {
        self.place
            .diagnostic(ErrorKind::InvalidParam, file, self.message)
    }
}

/// `prefixes`: the YAML paths of the defaults and of the node's params.
fn node_params<'a>(
    params: Option<&'a Yaml>,
    defaults: Option<&'a Yaml>,
    prefixes: &'a [String; 2],
    overrides: &[&'a ParamOverride],
) -> Result<MergedParams<'a>, MergeProblem> {
    let mut value = serde_json::Map::new();
    let mut sources = BTreeMap::new();
    let written = [
        (defaults, Origin::File(prefixes[0].as_str())),
        (params, Origin::File(prefixes[1].as_str())),
    ];
    let entries = written
        .into_iter()
        .flat_map(|(yaml, origin)| {
            yaml.and_then(|y| y.as_map())
                .unwrap_or_default()
                .iter()
                .map(move |(k, v)| (k.as_str().unwrap_or_default(), v, yaml, origin))
        })
        .chain(
            overrides
                .iter()
                .map(|o| (o.param.as_str(), &o.value, None, Origin::CommandLine(o))),
        );
    for (name, v, container, origin) in entries {
        let json = v.to_json().map_err(|e| MergeProblem {
            place: match origin {
                Origin::File(prefix) => Place {
                    yaml_path: join(prefix, name),
                    location: Some(e.location),
                    set: None,
                },
                Origin::CommandLine(o) => Place {
                    yaml_path: join(&prefixes[1], name),
                    location: None,
                    set: Some(o.text.clone()),
                },
            },
            message: e.message,
        })?;
        value.insert(name.to_string(), json);
        sources.insert(name.to_string(), (container, origin));
    }
    Ok(MergedParams {
        value: serde_json::Value::Object(value),
        sources,
    })
}

impl MergedParams<'_> {
    /// The YAML path and location of a problem at `path` inside the merged params.
    /// `params_path` is the node's `nodes.<id>.params`; `fallback` is used for a
    /// param that was not written at all.
    fn locate(&self, path: &[String], params_path: &str, fallback: Location) -> Place {
        let place = |yaml_path: String, location: Location| Place {
            yaml_path,
            location: Some(location),
            set: None,
        };
        let Some(first) = path.first() else {
            return place(params_path.to_string(), fallback);
        };
        let Some(&(container, origin)) = self.sources.get(first) else {
            return place(join(params_path, &path.join(".")), fallback);
        };
        let (prefix, yaml) = match (origin, container) {
            (Origin::File(prefix), Some(yaml)) => (prefix, yaml),
            (Origin::File(prefix), None) => {
                return place(join(prefix, &path.join(".")), fallback);
            }
            (Origin::CommandLine(o), _) => {
                return Place {
                    yaml_path: join(params_path, &path.join(".")),
                    location: None,
                    set: Some(o.text.clone()),
                };
            }
        };
        let mut at = yaml.location;
        let mut node = Some(yaml);
        for (depth, segment) in path.iter().enumerate() {
            let next = node.and_then(|n| n.lookup([segment.as_str()]));
            if depth == path.len() - 1 {
                // Point at the key of a mapping entry when there is one.
                if let Some((k, _)) = node.and_then(|n| n.entry(segment)) {
                    at = k.location;
                } else if let Some(v) = next {
                    at = v.location;
                }
            } else if let Some(v) = next {
                at = v.location;
            }
            node = next;
        }
        place(join(prefix, &path.join(".")), at)
    }
}
