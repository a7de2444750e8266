//! Importance weights per frame (`reweight`'s `weights`; read by `compare`,
//! `cg_compare`, `ramachandran` and `protein_observables` to weigh a sample's frames).
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `frame` | int64 | the frame of the weighted trajectory |
//! | `fg_potential_kj_per_mol` | float64 | U(x), kJ/mol (NaN where not finite) |
//! | `log_weight` | float64 | ln w, unnormalized |
//! | `weight` | float64 | w normalized to sum 1 (0 where U is not finite) |

use serde::{Deserialize, Serialize};

use super::kind::ArtifactKind;
use super::rows::schema_of;

pub const FRAME_WEIGHTS: ArtifactKind = ArtifactKind::table(
    "frame_weights",
    schema_of::<FrameWeight>,
    "importance weights per frame: frame, fg_potential_kj_per_mol, log_weight, weight \
     (normalized)",
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameWeight {
    pub frame: i64,
    pub fg_potential_kj_per_mol: f64,
    pub log_weight: f64,
    pub weight: f64,
}
