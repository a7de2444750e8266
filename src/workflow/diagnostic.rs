//! Validation errors that name the file, the YAML path, the line and the column, and
//! list the valid choices where there are some.

use std::fmt;
use std::path::PathBuf;

use super::yaml::Location;

/// What went wrong, for tests and tools that act on the kind of error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file cannot be read.
    Io,
    /// Not YAML, or YAML the workflow format does not accept (a duplicate key).
    Syntax,
    /// A key the schema does not know.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong type (a list where a mapping belongs).
    WrongType,
    /// A `stage:` that is not registered.
    UnknownStage,
    /// Two nodes with one id.
    DuplicateId,
    /// A key written twice in one mapping.
    DuplicateKey,
    /// An input that names a node the workflow does not have.
    DanglingInput,
    /// An input that names an output the upstream stage does not produce.
    UnknownOutput,
    /// An input name the stage does not take.
    UnknownInput,
    /// A required input of the stage is not connected.
    MissingInput,
    /// An output connected to an input of another kind.
    TypeMismatch,
    /// Nodes that depend on each other in a cycle.
    Cycle,
    /// A parameter the stage rejects.
    InvalidParam,
    /// A file named in params that does not exist.
    MissingFile,
    /// A `--set` that names no node of the workflow.
    BadOverride,
}

/// One validation error.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    pub file: PathBuf,
    /// Dotted path into the document, e.g. `nodes.fg.params.temperature_k`.
    pub yaml_path: String,
    pub location: Option<Location>,
    pub message: String,
    /// Valid choices, with what they are (`stages`, `outputs of node fg`).
    pub choices: Option<(String, Vec<String>)>,
}

impl Diagnostic {
    pub fn new(
        kind: ErrorKind,
        file: impl Into<PathBuf>,
        yaml_path: impl Into<String>,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            kind,
            file: file.into(),
            yaml_path: yaml_path.into(),
            location,
            message: message.into(),
            choices: None,
        }
    }

    pub fn with_choices(mut self, what: impl Into<String>, choices: Vec<String>) -> Self {
        self.choices = Some((what.into(), choices));
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.location {
            write!(f, ":{at}")?;
        }
        if !self.yaml_path.is_empty() {
            write!(f, ": {}", self.yaml_path)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some((what, choices)) = &self.choices {
            if choices.is_empty() {
                write!(f, "\n    (there are no {what})")?;
            } else {
                write!(f, "\n    valid {what}: {}", choices.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Every error found in a workflow, in document order.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct WorkflowErrors(pub Vec<Diagnostic>);

impl fmt::Display for WorkflowErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl WorkflowErrors {
    pub fn kinds(&self) -> Vec<ErrorKind> {
        self.0.iter().map(|d| d.kind).collect()
    }
}
