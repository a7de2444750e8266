//! The stage trait, its type-erased form, and what a stage receives and returns.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow_array::{Float64Array, Int32Array, RecordBatch};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::artifact::atoms::AtomRow;
use crate::artifact::trajectory::Trajectory;
use crate::artifact::{Artifact, ArtifactError, ArtifactKind};

/// An input or output of a stage.
#[derive(Clone, Copy, Debug)]
pub struct Port {
    pub name: &'static str,
    pub kind: ArtifactKind,
    pub about: &'static str,
}

/// One line of documentation for a parameter, shown by `cgloop stages`.
#[derive(Clone, Copy, Debug)]
pub struct ParamDoc {
    pub name: &'static str,
    pub about: &'static str,
}

/// A file named in a stage's params (a topology, a structure). Its content hash, not its
/// path, enters the node's key; the stage reads its bytes through [`Inputs::file`].
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataFile(pub String);

/// The outputs of a stage, by output name.
pub type Outputs = BTreeMap<String, Artifact>;

/// What the executor hands a stage: upstream artifacts by input name, and the bytes of
/// the files named in its params (by the path as written in the workflow).
#[derive(Default)]
pub struct Inputs {
    pub artifacts: BTreeMap<String, Arc<Artifact>>,
    pub files: BTreeMap<String, Arc<Vec<u8>>>,
}

/// The name under which element `k` of a list connected to input `input` is handed to
/// the stage (and enters the node's key): the input's own name for the first element,
/// `input#k` for the others, so a list of one is the same node as a single connection.
pub fn list_element_name(input: &str, k: usize) -> String {
    if k == 0 {
        input.to_string()
    } else {
        format!("{input}#{k}")
    }
}

/// The input and the list position of an element name (see [`list_element_name`]).
pub fn split_list_element(name: &str) -> (&str, usize) {
    match name.split_once('#') {
        Some((input, k)) => (input, k.parse().unwrap_or(0)),
        None => (name, 0),
    }
}

impl Inputs {
    /// The tables connected to input `name`, a list input, in the list's order (one for
    /// a single connection, none when unconnected).
    pub fn tables(&self, name: &str) -> Result<Vec<&RecordBatch>, StageError> {
        let mut found: Vec<(usize, &RecordBatch)> = Vec::new();
        for (element, artifact) in &self.artifacts {
            let (input, k) = split_list_element(element);
            if input == name {
                let table = artifact
                    .as_table()
                    .ok_or_else(|| StageError::MissingInput(element.clone()))?;
                found.push((k, table));
            }
        }
        found.sort_by_key(|&(k, _)| k);
        Ok(found.into_iter().map(|(_, t)| t).collect())
    }

    /// The trajectories connected to list input `name`, appended in the list's order
    /// into one, checked to be of one system (the error names the element).
    pub fn joined_trajectory(&self, name: &str) -> Result<Trajectory, StageError> {
        let tables = self.tables(name)?;
        let Some(first) = tables.first() else {
            return Err(StageError::MissingInput(name.to_string()));
        };
        let mut joined = Trajectory::from_table(first)?;
        for (k, table) in tables.iter().enumerate().skip(1) {
            let more = Trajectory::from_table(table)?;
            if more.n_atoms != joined.n_atoms {
                return Err(StageError::BadInput {
                    input: format!("{name} (list element {k})"),
                    message: format!(
                        "{} atoms per frame, but the first element has {}",
                        more.n_atoms, joined.n_atoms
                    ),
                });
            }
            joined.append(&more);
        }
        Ok(joined)
    }

    /// Weights of the analysed frames `rows` of a trajectory of `trajectory_frames`
    /// frames: the float64 column `weight` of optional input `input` (one per trajectory
    /// frame, or one per analysed frame), or all 1 when it is not connected.
    pub fn frame_weights(
        &self,
        input: &str,
        trajectory_frames: usize,
        rows: &[usize],
    ) -> Result<Vec<f64>, StageError> {
        if !self.has(input) {
            return Ok(vec![1.0; rows.len()]);
        }
        let bad = |message: String| StageError::BadInput {
            input: input.into(),
            message,
        };
        let column = self.column::<arrow_array::Float64Array>(input, "weight")?;
        let nulls = arrow_array::Array::null_count(column);
        if nulls > 0 {
            return Err(bad(format!("{nulls} null weights")));
        }
        let values = column.values();
        if values.len() == trajectory_frames {
            Ok(rows.iter().map(|&i| values[i]).collect())
        } else if values.len() == rows.len() {
            Ok(values.to_vec())
        } else {
            Err(bad(format!(
                "{} weights, but the trajectory has {trajectory_frames} frames ({} analysed)",
                values.len(),
                rows.len()
            )))
        }
    }

    /// The table connected to input `name`.
    pub fn table(&self, name: &str) -> Result<&RecordBatch, StageError> {
        self.artifacts
            .get(name)
            .and_then(|a| a.as_table())
            .ok_or_else(|| StageError::MissingInput(name.to_string()))
    }

    /// Column `column` of the table connected to input `input`, as array type `T`
    /// (e.g. `Float64Array`); an error names the input, the column and the type wanted.
    pub fn column<T: arrow_array::Array + 'static>(
        &self,
        input: &str,
        column: &str,
    ) -> Result<&T, StageError> {
        self.table(input)?
            .column_by_name(column)
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| StageError::BadInput {
                input: input.to_string(),
                message: format!(
                    "no column `{column}` of type {}",
                    std::any::type_name::<T>()
                        .rsplit("::")
                        .next()
                        .unwrap_or("?")
                ),
            })
    }

    /// The trajectory connected to input `trajectory` (the list's trajectories joined,
    /// for a list input) and the atom table connected to `atoms`, checked to have the
    /// same number of atoms (the error names `atoms`).
    pub fn trajectory_with_atoms(
        &self,
        trajectory: &str,
        atoms: &str,
    ) -> Result<(Trajectory, Vec<AtomRow>), StageError> {
        let t = self.joined_trajectory(trajectory)?;
        let a = crate::artifact::atoms::from_table(self.table(atoms)?)?;
        if a.len() != t.n_atoms {
            return Err(StageError::BadInput {
                input: atoms.to_string(),
                message: format!(
                    "{} atoms, but `{trajectory}` has {} per frame",
                    a.len(),
                    t.n_atoms
                ),
            });
        }
        Ok((t, a))
    }

    /// Appends the frames of the optional trajectory input `name`, when connected, to
    /// `trajectory` (the input `onto`), checked to be of the same number of atoms (the
    /// error names `name`). Returns how many frames were appended (0 when unconnected).
    pub fn append_optional_trajectory(
        &self,
        name: &str,
        trajectory: &mut Trajectory,
        onto: &str,
    ) -> Result<usize, StageError> {
        if !self.has(name) {
            return Ok(0);
        }
        let more = Trajectory::from_table(self.table(name)?)?;
        if more.n_atoms != trajectory.n_atoms {
            return Err(StageError::BadInput {
                input: name.to_string(),
                message: format!(
                    "{} atoms per frame, but `{onto}` has {}",
                    more.n_atoms, trajectory.n_atoms
                ),
            });
        }
        trajectory.append(&more);
        Ok(more.len())
    }

    /// The CG map P (row-major N x n) and n from input `input`, an assignment table of
    /// `train_map` (atom, bead, weight), checked against `n_atoms` and for each bead's
    /// weights to sum to 1.
    pub fn assignment(&self, input: &str, n_atoms: usize) -> Result<(Vec<f64>, usize), StageError> {
        let atom = self.column::<Int32Array>(input, "atom")?;
        let bead = self.column::<Int32Array>(input, "bead")?;
        let weight = self.column::<Float64Array>(input, "weight")?;
        let n_beads = bead
            .values()
            .iter()
            .map(|&b| b + 1)
            .max()
            .unwrap_or(0)
            .max(0) as usize;
        if n_beads == 0 {
            return Err(StageError::bad_input(input, "no beads"));
        }
        let mut p = vec![0.0; n_atoms * n_beads];
        for k in 0..atom.len().min(bead.len()).min(weight.len()) {
            let (i, b) = (atom.value(k), bead.value(k));
            if i < 0 || i as usize >= n_atoms || b < 0 {
                return Err(StageError::bad_input(
                    input,
                    format!("row {k}: atom {i}, bead {b} out of range ({n_atoms} atoms)"),
                ));
            }
            p[i as usize * n_beads + b as usize] = weight.value(k);
        }
        for b in 0..n_beads {
            let total: f64 = (0..n_atoms).map(|i| p[i * n_beads + b]).sum();
            if (total - 1.0).abs() > 1e-6 {
                return Err(StageError::bad_input(
                    input,
                    format!("the weights of bead {b} sum to {total}, not 1"),
                ));
            }
        }
        Ok((p, n_beads))
    }

    /// Whether optional input `name` is connected.
    pub fn has(&self, name: &str) -> bool {
        self.artifacts.contains_key(name)
    }

    /// The bytes of a file named in params.
    pub fn file(&self, file: &DataFile) -> Result<&[u8], StageError> {
        self.files
            .get(&file.0)
            .map(|b| b.as_slice())
            .ok_or_else(|| StageError::MissingInput(format!("file {}", file.0)))
    }
}

/// Reports progress of long work (a progress bar in the terminal, nothing in tests).
pub trait Progress: Send + Sync {
    /// Starts a phase of `total` units (steps, epochs, frames).
    fn start(&self, phase: &str, total: u64);
    /// Advances the current phase by `n` units.
    fn advance(&self, n: u64);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
}

/// The seeded randomness and progress reporting of one node run.
pub struct Context<'a> {
    /// The node's generator, seeded from (workflow seed, node id).
    pub rng: ChaCha20Rng,
    seed: [u8; 32],
    pub progress: &'a dyn Progress,
}

impl<'a> Context<'a> {
    pub fn new(seed: [u8; 32], progress: &'a dyn Progress) -> Self {
        Context {
            rng: ChaCha20Rng::from_seed(seed),
            seed,
            progress,
        }
    }

    /// An independent generator for sub-stream `id` (a chain, a replica, a batch), the
    /// same whatever order or thread the sub-streams are used in.
    pub fn stream(&self, id: u64) -> ChaCha20Rng {
        let mut rng = ChaCha20Rng::from_seed(self.seed);
        rng.set_stream(id.wrapping_add(1));
        rng
    }
}

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("input `{0}` is missing")]
    MissingInput(String),
    #[error("input `{input}`: {message}")]
    BadInput { input: String, message: String },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("{0}")]
    Failed(String),
}

impl StageError {
    /// [`StageError::BadInput`] for input `input`.
    pub fn bad_input(input: &str, message: impl Into<String>) -> Self {
        StageError::BadInput {
            input: input.to_string(),
            message: message.into(),
        }
    }
}

/// A parameter value the stage rejects: the path within the params (`ladder[2]`) and why.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamProblem {
    pub path: Vec<String>,
    pub message: String,
}

impl ParamProblem {
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        ParamProblem {
            path: vec![param.to_string()],
            message: message.into(),
        }
    }

    /// Ok when `value` is finite and above zero, else a problem naming `param`.
    pub fn positive(param: &str, value: f64) -> Result<(), ParamProblem> {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(ParamProblem::new(
                param,
                format!("must be finite and positive, got {value}"),
            ))
        }
    }

    /// Ok when `value` is at most `max`, else a problem naming `param` and the bound.
    pub fn at_most(param: &str, value: usize, max: usize) -> Result<(), ParamProblem> {
        if value <= max {
            Ok(())
        } else {
            Err(ParamProblem::new(
                param,
                format!("at most {max}, got {value}"),
            ))
        }
    }
}

/// A stage, written with typed params. Implement this; the registry erases the type.
pub trait Stage: Send + Sync + 'static {
    /// Params with defaults: `#[serde(default, deny_unknown_fields)]` on the struct.
    type Params: Serialize + DeserializeOwned + Default;
    const NAME: &'static str;
    /// Bumped by hand whenever the stage's results change for the same params.
    const VERSION: u32;
    const ABOUT: &'static str;
    const INPUTS: &'static [Port];
    /// Names of the inputs in [`Stage::INPUTS`] a workflow may leave unconnected; the
    /// stage asks [`Inputs::has`] before reading one.
    const OPTIONAL_INPUTS: &'static [&'static str] = &[];
    /// Names of the inputs a workflow may connect to a list of outputs
    /// (`inputs: {trajectory: [a.trajectory, b.trajectory]}`); the stage reads them all
    /// with [`Inputs::tables`], in the list's order.
    const LIST_INPUTS: &'static [&'static str] = &[];
    const OUTPUTS: &'static [Port];
    const PARAMS: &'static [ParamDoc];

    /// The files named in params, by param name.
    fn data_files(_params: &Self::Params) -> Vec<(&'static str, &DataFile)> {
        Vec::new()
    }

    /// Checks that go beyond types (positive step counts, known names).
    fn check(_params: &Self::Params) -> Result<(), ParamProblem> {
        Ok(())
    }

    fn run(
        params: &Self::Params,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError>;
}

/// Params after validation: the canonical JSON (every default written out) and the
/// files it names (param name, path as written).
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedParams {
    pub value: serde_json::Value,
    pub files: Vec<(String, String)>,
}

/// Every problem found in a node's params, and what could be resolved despite them.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamReport {
    /// The canonical params, when there is no problem.
    pub value: Option<serde_json::Value>,
    /// The files named in the params that typed (param name, path as written), so that
    /// a missing file is reported beside the other problems.
    pub files: Vec<(String, String)>,
    /// In the order found: unknown keys, values of the wrong type (each key on its
    /// own), then the stage's first check that fails.
    pub problems: Vec<ParamProblem>,
}

/// A stage with its params type erased, as the registry and executor hold it.
pub trait DynStage: Send + Sync {
    fn name(&self) -> &'static str;
    fn version(&self) -> u32;
    fn about(&self) -> &'static str;
    fn inputs(&self) -> &'static [Port];
    /// Whether input `name` may be left unconnected.
    fn is_optional_input(&self, name: &str) -> bool;
    /// Whether input `name` may be connected to a list of outputs.
    fn is_list_input(&self, name: &str) -> bool;
    fn outputs(&self) -> &'static [Port];
    fn param_docs(&self) -> &'static [ParamDoc];
    /// All params with their defaults.
    fn default_params(&self) -> serde_json::Value;
    /// Validates params given as a JSON object and fills in defaults; the first problem.
    fn resolve_params(&self, given: &serde_json::Value) -> Result<ResolvedParams, ParamProblem> {
        let report = self.check_params(given);
        match (report.problems.into_iter().next(), report.value) {
            (Some(problem), _) => Err(problem),
            (None, Some(value)) => Ok(ResolvedParams {
                value,
                files: report.files,
            }),
            (None, None) => unreachable!("params without problems resolve"),
        }
    }
    /// Validates params given as a JSON object, collecting every problem it can find.
    fn check_params(&self, given: &serde_json::Value) -> ParamReport;
    /// Runs on params returned by [`DynStage::resolve_params`].
    fn run(
        &self,
        params: &serde_json::Value,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError>;
}

/// The type-erasing wrapper the registry stores.
pub(crate) struct Erased<S>(pub(crate) PhantomData<S>);

impl<S: Stage> Erased<S> {
    fn typed(given: &serde_json::Value) -> Result<S::Params, ParamProblem> {
        serde_path_to_error::deserialize::<_, S::Params>(given).map_err(|e| {
            let path = e
                .path()
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                    serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect();
            ParamProblem {
                path,
                message: e.into_inner().to_string(),
            }
        })
    }
}

impl<S: Stage> DynStage for Erased<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }
    fn version(&self) -> u32 {
        S::VERSION
    }
    fn about(&self) -> &'static str {
        S::ABOUT
    }
    fn inputs(&self) -> &'static [Port] {
        S::INPUTS
    }
    fn is_optional_input(&self, name: &str) -> bool {
        S::OPTIONAL_INPUTS.contains(&name)
    }
    fn is_list_input(&self, name: &str) -> bool {
        S::LIST_INPUTS.contains(&name)
    }
    fn outputs(&self) -> &'static [Port] {
        S::OUTPUTS
    }
    fn param_docs(&self) -> &'static [ParamDoc] {
        S::PARAMS
    }

    fn default_params(&self) -> serde_json::Value {
        serde_json::to_value(S::Params::default()).expect("params serialize to JSON")
    }

    fn check_params(&self, given: &serde_json::Value) -> ParamReport {
        let defaults = self.default_params();
        let empty = serde_json::Map::new();
        let known = defaults.as_object().unwrap_or(&empty);
        let mut problems = Vec::new();
        let mut accepted = given.clone();
        if let Some(given) = accepted.as_object_mut() {
            // A documented param may be left out of the defaults (an optional one that
            // skips serializing when unset, so that adding it kept every key).
            let documented = |k: &str| S::PARAMS.iter().any(|d| d.name == k);
            let unknown: Vec<String> = given
                .keys()
                .filter(|k| !known.contains_key(*k) && !documented(k))
                .cloned()
                .collect();
            for key in unknown {
                let mut valid: Vec<&str> = known.keys().map(String::as_str).collect();
                valid.extend(
                    S::PARAMS
                        .iter()
                        .map(|d| d.name)
                        .filter(|n| !known.contains_key(*n)),
                );
                valid.sort_unstable();
                problems.push(ParamProblem::new(
                    &key,
                    format!(
                        "unknown parameter `{key}` for stage `{}`; valid parameters: {}",
                        S::NAME,
                        valid.join(", ")
                    ),
                ));
                given.remove(&key);
            }
        }
        let mut dropped: Vec<String> = Vec::new();
        let params = match Self::typed(&accepted) {
            Ok(params) => Some(params),
            Err(first) => {
                // Each key on its own over the defaults, so that every mistyped value is
                // named; the rest still typed to check files.
                let keys: Vec<(String, serde_json::Value)> = accepted
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                for (key, value) in keys {
                    let mut alone = known.clone();
                    alone.insert(key.clone(), value);
                    if let Err(problem) = Self::typed(&serde_json::Value::Object(alone)) {
                        problems.push(problem);
                        dropped.push(key);
                    }
                }
                if dropped.is_empty() {
                    problems.push(first);
                    None
                } else {
                    if let Some(m) = accepted.as_object_mut() {
                        m.retain(|k, _| !dropped.contains(k));
                    }
                    Self::typed(&accepted).ok()
                }
            }
        };
        let Some(params) = params else {
            return ParamReport {
                value: None,
                files: Vec::new(),
                problems,
            };
        };
        if let Err(problem) = S::check(&params) {
            // A check that fails only because a mistyped value was left out says nothing new.
            let about_dropped = problem.path.first().is_some_and(|p| dropped.contains(p));
            if !about_dropped {
                problems.push(problem);
            }
        }
        let files = S::data_files(&params)
            .into_iter()
            .filter(|(_, file)| !file.0.is_empty())
            .map(|(name, file)| (name.to_string(), file.0.clone()))
            .collect();
        let value = problems
            .is_empty()
            .then(|| serde_json::to_value(&params).expect("params serialize to JSON"));
        ParamReport {
            value,
            files,
            problems,
        }
    }

    fn run(
        &self,
        params: &serde_json::Value,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let params = Self::typed(params).map_err(|p| StageError::Failed(p.message))?;
        S::run(&params, inputs, ctx)
    }
}
