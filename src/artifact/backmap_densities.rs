//! What `backmap` knows of each draw, for `reweight`: the density the draw came from.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `frame` | int64 | the backmapped frame |
//! | `cg_frame` | int64 | the CG frame z it was drawn for |
//! | `log_q_given_z` | float64 | ln p(q \| z), nats |
//! | `log_jacobian` | float64 | ln J(q) of the internal coordinates |
//! | `cg_potential_kj_per_mol` | float64 | U_hat(z), kJ/mol |

use serde::{Deserialize, Serialize};

use super::kind::ArtifactKind;
use super::rows::schema_of;

pub const BACKMAP_DENSITIES: ArtifactKind = ArtifactKind::table(
    "backmap_densities",
    schema_of::<BackmapDensity>,
    "per backmapped frame: frame, cg_frame, log_q_given_z, log_jacobian, \
     cg_potential_kj_per_mol",
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackmapDensity {
    pub frame: i64,
    pub cg_frame: i64,
    pub log_q_given_z: f64,
    pub log_jacobian: f64,
    pub cg_potential_kj_per_mol: f64,
}
