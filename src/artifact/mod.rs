//! Artifacts: what stages produce and the store keeps.
//!
//! Every table is Parquet, written by the one configuration in [`parquet_io`], with
//! provenance (key, stage, version, params, inputs, seed, crate version) in the file's
//! key-value metadata, so pyarrow, polars and DuckDB open everything and equal data gives
//! equal bytes. Plots and reports are plain files beside the tables. Each kind of
//! artifact, with its Arrow schema, is declared once in [`kind`].

pub mod assignment;
pub mod atoms;
pub mod backmap_densities;
pub mod force_field;
pub mod frame_weights;
pub mod kind;
pub mod md_state;
pub mod parquet_io;
pub mod protein_frames;
pub mod ramachandran;
pub mod rows;
pub mod tensors;
pub mod tica;
pub mod trajectory;

pub use kind::{ArtifactKind, Format};
pub use parquet_io::{ArtifactError, decode_table, encode_table};

use arrow_array::RecordBatch;

/// One output of a stage.
#[derive(Clone, Debug, PartialEq)]
pub enum Artifact {
    /// A table, stored as `<output>.parquet`.
    Table(RecordBatch),
    /// Bytes stored as they are (a plot, a report), as `<output>.<extension>`.
    File(Vec<u8>),
}

impl Artifact {
    pub fn as_table(&self) -> Option<&RecordBatch> {
        match self {
            Artifact::Table(batch) => Some(batch),
            Artifact::File(_) => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Artifact::File(bytes) => Some(bytes),
            Artifact::Table(_) => None,
        }
    }
}
