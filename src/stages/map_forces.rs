//! `map_forces`: the mapped trajectory again, with bead forces from a chosen force map.
//!
//! Inputs are the fine-grained frames (positions and forces of N atoms) and the CG map P
//! (N x n) of a `train_map` node (its `assignment`). The beads are z = P^T (x - x_centre)
//! (nm), computed exactly as `train_map` computes them, so a `map_forces` trajectory
//! differs from the `train_map` one only in its forces; the bead forces are F = B f
//! (kJ/mol/nm) with the force map B of [`crate::nn::force_map`]:
//!
//! - `optimal` (default): among all B with B P = I (every such B has the mean force as
//!   its conditional mean), the one with the smallest mean squared bead force over the
//!   frames at `temperature_index`, with one shared weight per group of atoms linked by
//!   constrained bonds (found from the frames: a pair distance whose standard deviation
//!   is below `constraint_tolerance_nm`), so that the constraint forces, absent from the
//!   recorded forces, cancel;
//! - `basic`: B = (P^T P)^-1 P^T, `train_map`'s own (for comparison; with constrained
//!   hydrogens on bead atoms it misses their constraint forces, and the node says so in
//!   its log and its `force_map` table).
//!
//! The covariance C_ij = <f_i . f_j> is estimated from every frame at
//! `temperature_index` (the map has about n x N weights and the frames 3 x N x frames
//! numbers, so it does not fit their noise); B is then applied to every frame.
//!
//! Outputs:
//! - `trajectory` (trajectory): bead positions as `train_map`'s, forces B f; potential and
//!   kinetic temperature NaN; the other columns copied.
//! - `force_map` (table): bead (int32), atom (int32), atom_name (utf8, from the
//!   assignment), group (int32: constraint group of the atom), weight (float64): B in
//!   full, n x N rows.
//! - `summary` (table), one row per bead: bead (int32), rms_basic, rms_mapped (kJ/mol/nm:
//!   root-mean-square of the bead force over the fitted frames, per component, under the
//!   basic map and under this node's map), variance_ratio (rms_mapped^2 / rms_basic^2),
//!   consistency_error (max_J |(B P)_IJ - delta_IJ|), split_constraint_groups (bool: the
//!   bead's weights differ inside a constraint group).

use arrow_array::{Int32Array, RecordBatch, StringArray};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::assignment::CG_ASSIGNMENT;
use crate::artifact::kind::ArtifactKind;
use crate::artifact::rows::{self, schema_of};
use crate::artifact::trajectory::TRAJECTORY;
use crate::nn::cg_map::map_trajectory;
use crate::nn::force_map::{ForceMap, constrained_pairs, constraint_groups};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForceMapKind {
    Optimal,
    Basic,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MapForcesParams {
    pub force_map: ForceMapKind,
    pub temperature_index: i32,
    pub constraint_tolerance_nm: f64,
    pub l2_regularization: f64,
}

impl Default for MapForcesParams {
    fn default() -> Self {
        MapForcesParams {
            force_map: ForceMapKind::Optimal,
            temperature_index: 0,
            constraint_tolerance_nm: 1e-4,
            l2_regularization: 0.0,
        }
    }
}

pub struct MapForces;

pub const FORCE_MAP: ArtifactKind = ArtifactKind::table(
    "force_map",
    schema_of::<ForceMapRow>,
    "the force map B in full: bead, atom, atom_name, group (constraint group), weight",
);

pub const FORCE_MAP_SUMMARY: ArtifactKind = ArtifactKind::table(
    "force_map_summary",
    schema_of::<ForceMapSummary>,
    "per bead: rms_basic, rms_mapped (kJ/mol/nm), variance_ratio, consistency_error, \
     split_constraint_groups",
);

/// A row of the force map.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForceMapRow {
    pub bead: i32,
    pub atom: i32,
    pub atom_name: String,
    pub group: i32,
    pub weight: f64,
}

/// A row of the summary, one per bead.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForceMapSummary {
    pub bead: i32,
    pub rms_basic: f64,
    pub rms_mapped: f64,
    pub variance_ratio: f64,
    pub consistency_error: f64,
    pub split_constraint_groups: bool,
}

impl Stage for MapForces {
    type Params = MapForcesParams;
    const NAME: &'static str = "map_forces";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "Map atom forces to beads with the statistically optimal force map \
         (the smallest-variance valid map; constrained bonds handled): a trajectory for fit_potential";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "fine-grained frames with positions and forces (the ones train_map mapped); \
                    a list is joined in its order",
        },
        Port {
            name: "assignment",
            kind: CG_ASSIGNMENT,
            about: "the CG map P: train_map's assignment (atom, atom_name, bead, weight)",
        },
    ];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "bead positions (nm, as train_map's) and bead forces B f (kJ/mol/nm)",
        },
        Port {
            name: "force_map",
            kind: FORCE_MAP,
            about: "B in full: bead, atom, atom_name, group (constraint group), weight",
        },
        Port {
            name: "summary",
            kind: FORCE_MAP_SUMMARY,
            about: "per bead: rms_basic, rms_mapped (kJ/mol/nm), variance_ratio, \
                    consistency_error, split_constraint_groups",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "force_map",
            about: "optimal (smallest-variance valid map, Kramer et al. 2023) | basic \
                    ((P^T P)^-1 P^T, as train_map)",
        },
        ParamDoc {
            name: "temperature_index",
            about: "rung whose frames estimate the force covariance (0: the lowest)",
        },
        ParamDoc {
            name: "constraint_tolerance_nm",
            about: "a pair of atoms whose distance has a standard deviation below this (nm) over \
                    those frames is constrained (flexible C-H bonds: ~3e-3 nm at 300 K)",
        },
        ParamDoc {
            name: "l2_regularization",
            about: "ridge on the weights, as a multiple of the mean force variance per atom \
                    (0: the exact optimum)",
        },
    ];

    fn check(p: &MapForcesParams) -> Result<(), ParamProblem> {
        if p.temperature_index < 0 {
            return Err(ParamProblem::new("temperature_index", "must be 0 or more"));
        }
        if !(p.constraint_tolerance_nm.is_finite() && p.constraint_tolerance_nm >= 0.0) {
            return Err(ParamProblem::new(
                "constraint_tolerance_nm",
                format!("must be 0 or more, got {}", p.constraint_tolerance_nm),
            ));
        }
        if !(p.l2_regularization.is_finite() && p.l2_regularization >= 0.0) {
            return Err(ParamProblem::new(
                "l2_regularization",
                format!("must be 0 or more, got {}", p.l2_regularization),
            ));
        }
        Ok(())
    }

    fn run(
        p: &MapForcesParams,
        inputs: &Inputs,
        _ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let trajectory = inputs.joined_trajectory("trajectory")?;
        let n_atoms = trajectory.n_atoms;
        let (assignment, n_beads) = inputs.assignment("assignment", n_atoms)?;
        let names = atom_names(inputs, n_atoms)?;
        let frames: Vec<usize> = (0..trajectory.len())
            .filter(|&i| trajectory.temperature_index[i] == p.temperature_index)
            .collect();
        if frames.is_empty() {
            return Err(StageError::bad_input(
                "trajectory",
                format!("no frames at temperature_index {}", p.temperature_index),
            ));
        }
        if trajectory.forces.iter().any(|f| !f.is_finite()) {
            return Err(StageError::bad_input(
                "trajectory",
                "forces are missing or not finite (an imported trajectory without forces?)",
            ));
        }

        let pairs = constrained_pairs(
            &trajectory.positions_nm,
            n_atoms,
            &frames,
            p.constraint_tolerance_nm,
        );
        let groups = constraint_groups(n_atoms, &pairs);
        if !pairs.is_empty() {
            let shown: Vec<String> = pairs
                .iter()
                .take(8)
                .map(|&(i, j)| format!("{}-{}", names[i], names[j]))
                .collect();
            tracing::info!(
                pairs = pairs.len(),
                first = shown.join(", "),
                "map_forces: constrained pairs found in the frames"
            );
        }
        let map_error = |e| StageError::Failed(format!("map_forces: {e}"));
        let basic = ForceMap::basic(&assignment, n_atoms, n_beads).map_err(map_error)?;
        let map = match p.force_map {
            ForceMapKind::Basic => basic.clone(),
            ForceMapKind::Optimal => ForceMap::optimal(
                &assignment,
                n_atoms,
                n_beads,
                &trajectory.forces,
                &frames,
                &groups,
                p.l2_regularization,
            )
            .map_err(map_error)?,
        };
        let split: Vec<(usize, f64)> = map.split_groups(&groups);
        if !split.is_empty() {
            tracing::warn!(
                beads = ?split.iter().map(|s| s.0).collect::<Vec<_>>(),
                "map_forces: these beads weigh constrained atoms unequally; their forces miss \
                 part of the constraint forces (use force_map: optimal)"
            );
        }

        // Positions exactly as train_map's, then the forces replaced.
        let p_tensor = Tensor::from_vec(assignment.clone(), (n_atoms, n_beads), &Device::Cpu)
            .map_err(|e| StageError::Failed(format!("map_forces: {e}")))?;
        let mut mapped = map_trajectory(&trajectory, &p_tensor, n_beads)
            .map_err(|e| StageError::Failed(format!("map_forces: {e}")))?;
        let width = 3 * n_atoms;
        mapped.forces = (0..trajectory.len())
            .flat_map(|f| map.apply(&trajectory.forces[f * width..(f + 1) * width]))
            .collect();

        let rms_basic = basic.rms_per_bead(&trajectory.forces, &frames);
        let rms_mapped = map.rms_per_bead(&trajectory.forces, &frames);
        let consistency = map.consistency_error(&assignment);
        for b in 0..n_beads {
            tracing::info!(
                bead = b,
                rms_basic = rms_basic[b],
                rms_mapped = rms_mapped[b],
                "map_forces: bead force"
            );
        }

        let mut out = Outputs::new();
        out.insert("trajectory".into(), Artifact::Table(mapped.to_table()));
        out.insert(
            "force_map".into(),
            Artifact::Table(force_map_table(&map, &names, &groups)),
        );
        out.insert(
            "summary".into(),
            Artifact::Table(summary_table(
                &rms_basic,
                &rms_mapped,
                consistency,
                &map,
                &split,
            )),
        );
        Ok(out)
    }
}

/// Atom names from the assignment table, by atom index.
fn atom_names(inputs: &Inputs, n_atoms: usize) -> Result<Vec<String>, StageError> {
    let atom = inputs.column::<Int32Array>("assignment", "atom")?;
    let name = inputs.column::<StringArray>("assignment", "atom_name")?;
    let mut names = vec![String::new(); n_atoms];
    for k in 0..atom.len() {
        // Indices were checked by Inputs::assignment.
        names[atom.value(k) as usize] = name.value(k).to_string();
    }
    Ok(names)
}

fn force_map_table(map: &ForceMap, names: &[String], groups: &[usize]) -> RecordBatch {
    let mut table = Vec::with_capacity(map.n_beads * map.n_atoms);
    for b in 0..map.n_beads {
        for i in 0..map.n_atoms {
            table.push(ForceMapRow {
                bead: b as i32,
                atom: i as i32,
                atom_name: names[i].clone(),
                group: groups[i] as i32,
                weight: map.weight(b, i),
            });
        }
    }
    rows::table(&table)
}

fn summary_table(
    rms_basic: &[f64],
    rms_mapped: &[f64],
    consistency: f64,
    map: &ForceMap,
    split: &[(usize, f64)],
) -> RecordBatch {
    let table: Vec<ForceMapSummary> = (0..map.n_beads)
        .map(|b| ForceMapSummary {
            bead: b as i32,
            rms_basic: rms_basic[b],
            rms_mapped: rms_mapped[b],
            variance_ratio: (rms_mapped[b] / rms_basic[b]).powi(2),
            consistency_error: consistency,
            split_constraint_groups: split.iter().any(|s| s.0 == b),
        })
        .collect();
    rows::table(&table)
}
