//! The kinds of artifact a stage can declare for its inputs and outputs.
//!
//! A workflow may connect an output to an input only when their kinds have the same
//! name; the executor checks that every table a stage returns has its kind's schema.
//! Every table kind declares its schema: the kinds that connect stages and the model
//! kinds live here and in the artifact modules beside their row types; a stage's own
//! report tables (summaries, learning curves) are declared in the stage, beside the row
//! type or schema function that defines them ([`super::rows`]).

use arrow_schema::{DataType, Field, Schema};

#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// A Parquet table with exactly these columns.
    Parquet(fn() -> Schema),
    /// A file stored as it is, with this extension (`png`, `svg`, `md`).
    File(&'static str),
}

/// A named kind of artifact, with a one-line description for `cgloop stages`.
#[derive(Clone, Copy, Debug)]
pub struct ArtifactKind {
    pub name: &'static str,
    pub format: Format,
    pub about: &'static str,
}

impl ArtifactKind {
    pub const fn table(name: &'static str, schema: fn() -> Schema, about: &'static str) -> Self {
        ArtifactKind {
            name,
            format: Format::Parquet(schema),
            about,
        }
    }

    pub const fn file(name: &'static str, extension: &'static str, about: &'static str) -> Self {
        ArtifactKind {
            name,
            format: Format::File(extension),
            about,
        }
    }

    /// The file name of an output of this kind in a store folder.
    pub fn file_name(&self, output: &str) -> String {
        match self.format {
            Format::Parquet(_) => format!("{output}.parquet"),
            Format::File(extension) => format!("{output}.{extension}"),
        }
    }

    pub fn schema(&self) -> Option<Schema> {
        match self.format {
            Format::Parquet(schema) => Some(schema()),
            _ => None,
        }
    }
}

impl PartialEq for ArtifactKind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Model parameters: one row per tensor (see [`super::tensors`]).
pub const MODEL_PARAMETERS: ArtifactKind = ArtifactKind::table(
    "model_parameters",
    super::tensors::schema,
    "network weights: name (utf8), shape (list<int64>), values (list<float64>, row-major)",
);

/// A trained CG potential U_hat: its weights and its architecture as `config.*` rows
/// (see [`crate::nn::cg_potential::save_potential`]), in the model-parameters schema.
pub const CG_POTENTIAL: ArtifactKind = ArtifactKind::table(
    "cg_potential",
    super::tensors::schema,
    "a CG potential: weights and `config.*` architecture rows (name, shape, values)",
);

/// A trained inverse map p(q | z): flow weights and `config.*` rows (Z-matrix, CG map,
/// box, context scaling; see [`crate::nn::inverse_map::InverseMap::save`]), in the
/// model-parameters schema.
pub const INVERSE_MAP: ArtifactKind = ArtifactKind::table(
    "inverse_map",
    super::tensors::schema,
    "an inverse map p(q | z): flow weights and `config.*` rows (Z-matrix, map, box)",
);

pub const PNG: ArtifactKind = ArtifactKind::file("png", "png", "a PNG image");
pub const SVG: ArtifactKind = ArtifactKind::file("svg", "svg", "an SVG image");
pub const MARKDOWN: ArtifactKind = ArtifactKind::file("markdown", "md", "a Markdown report");

/// `list<float64>`, the column type of per-frame vectors (positions, forces).
pub fn float64_list() -> DataType {
    DataType::List(Field::new("item", DataType::Float64, false).into())
}
