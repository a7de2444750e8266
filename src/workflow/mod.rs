//! Workflows: a study written as YAML, validated completely before anything runs.
//!
//! Validation runs in passes, each collecting every error it finds: YAML syntax
//! ([`yaml`]), the schema with unknown keys rejected ([`spec`]), then the graph and the
//! params ([`resolve`]): unknown stages, dangling or mistyped inputs, cycles, duplicate
//! ids, each stage's params with defaults filled in, and the data files they name. Every
//! error names the file, the YAML path, the line and the column ([`diagnostic`]). The
//! command line's `--seed` and `--set` ([`overrides`]) are applied before the params pass.
//! Keys ([`key`]) are computed from the validated workflow.

pub mod diagnostic;
pub mod key;
pub mod overrides;
pub mod resolve;
pub mod resources;
pub mod spec;
pub mod yaml;

use std::path::Path;

pub use diagnostic::{Diagnostic, ErrorKind, WorkflowErrors};
pub use key::{Ingredients, InputRef, Key};
pub use overrides::{Overrides, ParamOverride};
pub use resolve::{Edge, FileParam, Node, Workflow, node_seed};
pub use resources::Resources;

use crate::stages::Registry;

/// Reads and validates a workflow file.
pub fn load(file: &Path, registry: &Registry) -> Result<Workflow, WorkflowErrors> {
    load_with(file, registry, &Overrides::default())
}

/// Reads and validates a workflow file with the command line's overrides applied.
pub fn load_with(
    file: &Path,
    registry: &Registry,
    overrides: &Overrides,
) -> Result<Workflow, WorkflowErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        WorkflowErrors(vec![Diagnostic::new(
            ErrorKind::Io,
            file,
            "",
            None,
            format!("cannot read the workflow: {e}"),
        )])
    })?;
    parse_with(&text, file, registry, overrides)
}

/// Validates workflow text; `file` names it in errors and anchors relative data paths.
pub fn parse(text: &str, file: &Path, registry: &Registry) -> Result<Workflow, WorkflowErrors> {
    parse_with(text, file, registry, &Overrides::default())
}

/// [`parse`] with the command line's overrides applied.
pub fn parse_with(
    text: &str,
    file: &Path,
    registry: &Registry,
    overrides: &Overrides,
) -> Result<Workflow, WorkflowErrors> {
    let doc = yaml::parse(text).map_err(|e| {
        WorkflowErrors(vec![Diagnostic::new(
            ErrorKind::Syntax,
            file,
            "",
            Some(e.location),
            e.message,
        )])
    })?;
    let spec = spec::check(&doc, file).map_err(WorkflowErrors)?;
    resolve::resolve(spec, file, registry, overrides).map_err(WorkflowErrors)
}
