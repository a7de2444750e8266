//! A CG map P as a table (`train_map`'s `assignment`; read by `map_forces`,
//! `train_flow` and the stages that map atoms to beads): one row per (atom, bead), the
//! bead's position is sum_i P_ib x_i, so each bead's weights sum to 1.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `atom` | int32 | atom index in the topology |
//! | `atom_name` | utf8 | its name (N, CA, ...) |
//! | `residue_index` | int32 | its residue, 0-based |
//! | `bead` | int32 | bead index |
//! | `weight` | float64 | P_ib |

use serde::{Deserialize, Serialize};

use super::kind::ArtifactKind;
use super::rows::schema_of;

pub const CG_ASSIGNMENT: ArtifactKind = ArtifactKind::table(
    "cg_assignment",
    schema_of::<AssignmentRow>,
    "a CG map P: atom, atom_name, residue_index, bead, weight (each bead's weights sum to 1)",
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignmentRow {
    pub atom: i32,
    pub atom_name: String,
    pub residue_index: i32,
    pub bead: i32,
    pub weight: f64,
}
