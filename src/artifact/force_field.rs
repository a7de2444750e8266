//! The fine-grained force field an ensemble was sampled with, as an artifact: the
//! stages that sample or import FG frames write it, and the stages that evaluate FG
//! energies of those frames (`reweight`) read it, so that the target of the weights is
//! the ensemble the data came from, by construction of the graph. One row:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `topology_file` | utf8 | the prmtop's path as the workflow named it (for messages) |
//! | `topology_blake3` | utf8 | blake3 of the prmtop's bytes (hex) |
//! | `topology_prmtop` | utf8 | the prmtop itself |
//! | `solvent` | utf8 | `vacuum` or `obc2` |

use std::sync::Arc;

use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::ArtifactError;
use super::kind::ArtifactKind;
use super::trajectory::column;

pub const FORCE_FIELD: ArtifactKind = ArtifactKind::table(
    "force_field",
    schema,
    "the FG force field of an ensemble: the AMBER prmtop (text and blake3) and the solvent",
);

pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("topology_file", DataType::Utf8, false),
        Field::new("topology_blake3", DataType::Utf8, false),
        Field::new("topology_prmtop", DataType::Utf8, false),
        Field::new("solvent", DataType::Utf8, false),
    ])
}

/// A force field: a prmtop and a solvent model.
#[derive(Clone, Debug, PartialEq)]
pub struct ForceFieldRecord {
    pub topology_file: String,
    pub topology_blake3: String,
    pub topology_prmtop: String,
    /// `vacuum` or `obc2`.
    pub solvent: String,
}

impl ForceFieldRecord {
    /// The record of `prmtop` (its bytes, named `file` in the workflow) with `solvent`.
    pub fn new(file: &str, prmtop: &str, solvent: &str) -> Self {
        ForceFieldRecord {
            topology_file: file.to_string(),
            topology_blake3: blake3::hash(prmtop.as_bytes()).to_hex().to_string(),
            topology_prmtop: prmtop.to_string(),
            solvent: solvent.to_string(),
        }
    }

    pub fn to_table(&self) -> RecordBatch {
        let one = |s: &str| Arc::new(StringArray::from_iter_values([s])) as _;
        RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                one(&self.topology_file),
                one(&self.topology_blake3),
                one(&self.topology_prmtop),
                one(&self.solvent),
            ],
        )
        .expect("columns match the force-field schema")
    }

    pub fn from_table(batch: &RecordBatch) -> Result<Self, ArtifactError> {
        if batch.num_rows() != 1 {
            return Err(ArtifactError::Schema(format!(
                "force_field: expected one row, found {}",
                batch.num_rows()
            )));
        }
        let get = |name: &str| {
            column::<StringArray>(batch, name)
                .map(|c| c.value(0).to_string())
                .ok_or_else(|| {
                    ArtifactError::Schema(format!(
                        "force_field: no column `{name}` of the right type"
                    ))
                })
        };
        let record = ForceFieldRecord {
            topology_file: get("topology_file")?,
            topology_blake3: get("topology_blake3")?,
            topology_prmtop: get("topology_prmtop")?,
            solvent: get("solvent")?,
        };
        let hash = blake3::hash(record.topology_prmtop.as_bytes()).to_hex();
        if hash.as_str() != record.topology_blake3 {
            return Err(ArtifactError::Schema(
                "force_field: the prmtop does not match its recorded blake3".into(),
            ));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_its_table_and_a_tampered_one_does_not() {
        let r = ForceFieldRecord::new("a.prmtop", "%VERSION x\n", "obc2");
        assert_eq!(ForceFieldRecord::from_table(&r.to_table()).unwrap(), r);
        let tampered = ForceFieldRecord {
            topology_prmtop: "%VERSION y\n".into(),
            ..r
        };
        assert!(ForceFieldRecord::from_table(&tampered.to_table()).is_err());
    }
}
