//! Protein observables per analysed frame (`protein_observables`' `frames`; compared by
//! `protein_compare`). Lengths in nm.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `frame` | int64 | 0, 1, ... over the analysed frames |
//! | `trajectory_frame` | int64 | its row in the input trajectory |
//! | `weight` | float64 | its weight (1 without weights) |
//! | `rmsd_nm` | float64 | C-alpha RMSD to the native structure |
//! | `mirror_rmsd_nm` | float64 | the same to the native structure's mirror image |
//! | `q` | float64 | fraction of native contacts |
//! | `rg_nm` | float64 | radius of gyration |
//! | `end_to_end_nm` | float64 | first to last C-alpha |
//! | `tic1`, `tic2` | float64 | projection on the TICA model's first two components |
//! | `ca_distances_nm` | list<float64> | every C-alpha pair distance d(i, j), i < j, row-major |

use serde::{Deserialize, Serialize};

use super::kind::ArtifactKind;
use super::rows::schema_of;

pub const PROTEIN_FRAMES: ArtifactKind = ArtifactKind::table(
    "protein_frames",
    schema_of::<ProteinFrame>,
    "per analysed frame: frame, trajectory_frame, weight, rmsd_nm, mirror_rmsd_nm, q, rg_nm, \
     end_to_end_nm, tic1, tic2, ca_distances_nm",
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProteinFrame {
    pub frame: i64,
    pub trajectory_frame: i64,
    pub weight: f64,
    pub rmsd_nm: f64,
    pub mirror_rmsd_nm: f64,
    pub q: f64,
    pub rg_nm: f64,
    pub end_to_end_nm: f64,
    pub tic1: f64,
    pub tic2: f64,
    pub ca_distances_nm: Vec<f64>,
}
