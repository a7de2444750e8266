//! The atom table that travels beside a trajectory: one row per atom, in topology order.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `index` | int32 | atom index (0-based) |
//! | `name` | utf8 | atom name (`CA`, `HB1`) |
//! | `residue_name` | utf8 | residue name (`ALA`) |
//! | `residue_index` | int32 | residue (0-based) |
//! | `atomic_number` | int32 | element |
//! | `mass_amu` | float64 | mass, amu |
//! | `charge_e` | float64 | partial charge, e |

use std::sync::Arc;

use arrow_array::{Float64Array, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::ArtifactError;
use super::kind::ArtifactKind;
use super::trajectory::column;

pub const ATOMS: ArtifactKind = ArtifactKind::table(
    "atoms",
    schema,
    "one row per atom: index, name, residue, element, mass (amu), charge (e)",
);

pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("index", DataType::Int32, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("residue_name", DataType::Utf8, false),
        Field::new("residue_index", DataType::Int32, false),
        Field::new("atomic_number", DataType::Int32, false),
        Field::new("mass_amu", DataType::Float64, false),
        Field::new("charge_e", DataType::Float64, false),
    ])
}

/// One atom's row.
#[derive(Clone, Debug, PartialEq)]
pub struct AtomRow {
    pub name: String,
    pub residue_name: String,
    pub residue_index: i32,
    pub atomic_number: i32,
    pub mass_amu: f64,
    pub charge_e: f64,
}

pub fn to_table(atoms: &[AtomRow]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(schema()),
        vec![
            Arc::new(Int32Array::from_iter_values(0..atoms.len() as i32)),
            Arc::new(StringArray::from_iter_values(atoms.iter().map(|a| &a.name))),
            Arc::new(StringArray::from_iter_values(
                atoms.iter().map(|a| &a.residue_name),
            )),
            Arc::new(Int32Array::from_iter_values(
                atoms.iter().map(|a| a.residue_index),
            )),
            Arc::new(Int32Array::from_iter_values(
                atoms.iter().map(|a| a.atomic_number),
            )),
            Arc::new(Float64Array::from_iter_values(
                atoms.iter().map(|a| a.mass_amu),
            )),
            Arc::new(Float64Array::from_iter_values(
                atoms.iter().map(|a| a.charge_e),
            )),
        ],
    )
    .expect("columns match the atom schema")
}

pub fn from_table(batch: &RecordBatch) -> Result<Vec<AtomRow>, ArtifactError> {
    let bad =
        |name: &str| ArtifactError::Schema(format!("atoms: no column `{name}` of the right type"));
    let names = column::<StringArray>(batch, "name").ok_or_else(|| bad("name"))?;
    let residues =
        column::<StringArray>(batch, "residue_name").ok_or_else(|| bad("residue_name"))?;
    let residue_index =
        column::<Int32Array>(batch, "residue_index").ok_or_else(|| bad("residue_index"))?;
    let z = column::<Int32Array>(batch, "atomic_number").ok_or_else(|| bad("atomic_number"))?;
    let mass = column::<Float64Array>(batch, "mass_amu").ok_or_else(|| bad("mass_amu"))?;
    let charge = column::<Float64Array>(batch, "charge_e").ok_or_else(|| bad("charge_e"))?;
    Ok((0..batch.num_rows())
        .map(|i| AtomRow {
            name: names.value(i).to_string(),
            residue_name: residues.value(i).to_string(),
            residue_index: residue_index.value(i),
            atomic_number: z.value(i),
            mass_amu: mass.value(i),
            charge_e: charge.value(i),
        })
        .collect())
}
