//! The tables of a Ramachandran analysis (stage `ramachandran`).
//!
//! `dihedrals` (kind `dihedrals`): one row per analysed frame.
//!
//! | column | type | unit / meaning |
//! |---|---|---|
//! | `frame` | int64 | row of the frame in the input trajectory |
//! | `phi_deg` | float64 | first dihedral (phi), degrees in (-180, 180] |
//! | `psi_deg` | float64 | second dihedral (psi), degrees in (-180, 180] |
//! | `weight` | float64 | the frame's weight (1 without a `weights` input) |
//! | `basin` | utf8 | `C7eq/beta`, `alpha_R` or `C7ax/alpha_L` |
//!
//! `basin_populations` (kind `basin_populations`): one row per basin, in that order.
//!
//! | column | type | unit / meaning |
//! |---|---|---|
//! | `basin` | utf8 | basin name |
//! | `population` | float64 | weighted fraction of frames in the basin (sums to 1) |
//! | `std_error` | float64 | block-bootstrap standard error of `population` |
//! | `frames` | int64 | frames in the basin (unweighted count) |
//!
//! `free_energy_2d` (kind `free_energy_2d`): one row per histogram bin, phi-major
//! (row `i * psi_bins + j` is phi bin `i`, psi bin `j`; bins cover [-180, 180) from -180).
//!
//! | column | type | unit / meaning |
//! |---|---|---|
//! | `phi_center_deg` | float64 | centre of the phi bin, degrees |
//! | `psi_center_deg` | float64 | centre of the psi bin, degrees |
//! | `frames` | int64 | frames in the bin (unweighted) |
//! | `weight` | float64 | sum of the frames' weights in the bin |
//! | `probability` | float64 | `weight` / total weight |
//! | `free_energy_kj_per_mol` | float64, nullable | -kT ln(p / p_max), kJ/mol (0 at the most populated bin); **null for an empty bin** |
//!
//! E.g. in DuckDB: `SELECT * FROM 'free_energy.parquet' WHERE free_energy_kj_per_mol < 10`.

use arrow_schema::{DataType, Field, Schema};

use super::kind::ArtifactKind;

pub const DIHEDRALS: ArtifactKind = ArtifactKind::table(
    "dihedrals",
    dihedrals_schema,
    "per frame: frame, phi_deg, psi_deg, weight, basin",
);

pub const BASIN_POPULATIONS: ArtifactKind = ArtifactKind::table(
    "basin_populations",
    basin_populations_schema,
    "per basin: basin, population, std_error (block bootstrap), frames",
);

pub const FREE_ENERGY_2D: ArtifactKind = ArtifactKind::table(
    "free_energy_2d",
    free_energy_2d_schema,
    "per (phi, psi) bin: centres (deg), frames, weight, probability, free energy (kJ/mol, null if empty)",
);

pub fn dihedrals_schema() -> Schema {
    Schema::new(vec![
        Field::new("frame", DataType::Int64, false),
        Field::new("phi_deg", DataType::Float64, false),
        Field::new("psi_deg", DataType::Float64, false),
        Field::new("weight", DataType::Float64, false),
        Field::new("basin", DataType::Utf8, false),
    ])
}

pub fn basin_populations_schema() -> Schema {
    Schema::new(vec![
        Field::new("basin", DataType::Utf8, false),
        Field::new("population", DataType::Float64, false),
        Field::new("std_error", DataType::Float64, false),
        Field::new("frames", DataType::Int64, false),
    ])
}

pub fn free_energy_2d_schema() -> Schema {
    Schema::new(vec![
        Field::new("phi_center_deg", DataType::Float64, false),
        Field::new("psi_center_deg", DataType::Float64, false),
        Field::new("frames", DataType::Int64, false),
        Field::new("weight", DataType::Float64, false),
        Field::new("probability", DataType::Float64, false),
        Field::new("free_energy_kj_per_mol", DataType::Float64, true),
    ])
}
