//! `train_map`: learn (or fix) the coarse-graining map, and map the trajectory.
//!
//! The model is [`crate::nn::map_model::MapModel`]: P (N atoms x n beads) from an EGNN
//! over a reference frame (`map: learned`) or a hard map on named atoms
//! (`map: fixed`, or `map: calpha`: one bead per residue on its CA atom), beads
//! z = P^T (x - x_centre), a decoder of the seed atoms from the
//! beads, and the loss L = L_r + lambda (L_link + L_ent + L_assign) + lambda lambda_mf
//! L_mf (evaluated in Å and kcal/mol, the paper's units for its default weights).
//!
//! Schedule (the paper's alternation): `epochs` of joint training of map, decoder and a
//! small CG potential on the whole loss; then `decoder_epochs` with the map frozen,
//! training the decoder on L_r alone, keeping the decoder of the epoch with the lowest
//! validation reconstruction error. A fixed map trains only the decoder, for
//! `epochs + decoder_epochs` epochs, so learned and fixed maps get the same decoder
//! budget and their reconstruction errors compare. With `initial_temperature` tau_0 > 1
//! the learned P is softmax((scores + prior) / tau) with tau lowered geometrically from
//! tau_0 in the first joint epoch to 1 in the last (annealing: beads start spread over
//! their neighbourhoods instead of settling on single atoms at once). The default,
//! tau_0 = 20, matters: on alanine dipeptide without annealing the map settles on single
//! atoms within a few epochs, chosen by the mean-force term, and reconstructs worse than
//! the fixed backbone map; annealed from 20 it finds methyl-group centroids and
//! carbonyl/amide atoms and reconstructs better (see the README).
//!
//! Frames at `temperature_index` are split into contiguous blocks for training and
//! validation ([`crate::nn::training::block_split`]). Every weight, the split and the
//! batch order come from the node's generator.
//!
//! Outputs:
//! - `trajectory` (trajectory): every input frame mapped: bead positions
//!   z = P^T (x - x_centre) (nm) and the instantaneous mean force
//!   F_inst = (M M^T)^-1 M f (kJ/mol/nm), M = P^T; potential and kinetic temperature NaN
//!   (unknown at the CG level); the other columns copied.
//! - `beads` (atoms): one row per bead `B<I>`, residue `CG` (with `map: calpha`: `CA`
//!   in its residue, with the atom's element, so that `protein_observables` reads CG
//!   chains as atoms), with the mass
//!   M_I = (sum_i P_iI^2 / m_i)^-1 (amu), the effective mass of the coordinate
//!   z_I = sum_i P_iI x_i (the total mass for a centre-of-mass map).
//! - `assignment` (table): atom (int32), atom_name (utf8), residue_index (int32),
//!   bead (int32), weight (float64): P in full, N x n rows.
//! - `parameters` (model parameters): `map.*` (EGNN, learned maps only) and
//!   `decoder.*`.
//! - `losses` (table): phase (utf8: joint | decoder), epoch (int64, counted over both
//!   phases), total, reconstruction_a2 (Å^2), link, entropy, assignment, mean_force
//!   ((kcal/mol/Å)^2): training means per epoch; validation_rmsd_nm: the decoder's
//!   root-mean-square error on the validation frames (nm), the number to compare maps by.

use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::assignment::CG_ASSIGNMENT;
use crate::artifact::atoms::{ATOMS, AtomRow, to_table as atoms_table};
use crate::artifact::kind::MODEL_PARAMETERS;
use crate::artifact::tensors::to_table as tensors_table;
use crate::artifact::trajectory::TRAJECTORY;
use crate::nn::cg_map::map_trajectory;
use crate::nn::training::block_split;

mod history;
mod params;
mod restart;

use history::{EpochRecord, MAP_LOSSES, assignment_table, losses_table};
pub use params::{MapKind, SeedAtoms, TrainMapParams};
use restart::{Attempt, train_restart};

pub struct TrainMap;

pub(super) fn failed(e: candle_core::Error) -> StageError {
    StageError::Failed(format!("training: {e}"))
}

impl Stage for TrainMap {
    type Params = TrainMapParams;
    const NAME: &'static str = "train_map";
    // 2: the mean-force potential has no torsion network.
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "Learn the CG map (EGNN assignment + decoder + mean-force term) or fix it \
         on named atoms; map the trajectory to beads and instantaneous mean forces";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "fine-grained frames with positions and forces; a list (segments of one \
                    chained run, or runs) is joined in its order",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the trajectory's atoms",
        },
    ];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "the mapped trajectory: bead positions (nm) and instantaneous mean forces (kJ/mol/nm)",
        },
        Port {
            name: "beads",
            kind: ATOMS,
            about: "one row per bead, mass from the map",
        },
        Port {
            name: "assignment",
            kind: CG_ASSIGNMENT,
            about: "P: atom, atom_name, residue_index, bead, weight",
        },
        Port {
            name: "parameters",
            kind: MODEL_PARAMETERS,
            about: "map (EGNN) and decoder weights",
        },
        Port {
            name: "losses",
            kind: MAP_LOSSES,
            about: "per epoch: phase, loss terms, validation reconstruction RMSD (nm)",
        },
    ];
    const PARAMS: &'static [ParamDoc] = params::PARAM_DOCS;

    fn check(p: &Self::Params) -> Result<(), ParamProblem> {
        params::check(p)
    }

    fn run(
        p: &TrainMapParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let (trajectory, atoms) = inputs.trajectory_with_atoms("trajectory", "atoms")?;
        let n_atoms = trajectory.n_atoms;
        let rows: Vec<usize> = (0..trajectory.len())
            .filter(|&i| trajectory.temperature_index[i] == p.temperature_index)
            .collect();
        if rows.len() < 2 * p.validation_blocks {
            return Err(StageError::BadInput {
                input: "trajectory".into(),
                message: format!(
                    "{} frames at temperature_index {}; training needs at least {} \
                     (2 per validation block)",
                    rows.len(),
                    p.temperature_index,
                    2 * p.validation_blocks
                ),
            });
        }
        let selected = trajectory.select(&rows);

        let (train, validation) = block_split(
            selected.len(),
            p.validation_blocks,
            p.validation_fraction,
            &mut ctx.rng,
        );
        let mut kept: Option<Attempt> = None;
        let mut all_history: Vec<EpochRecord> = Vec::new();
        for restart in 0..p.restarts {
            let (attempt, history) =
                train_restart(p, &selected, &atoms, &train, &validation, restart, ctx)?;
            all_history.extend(history);
            if kept
                .as_ref()
                .is_none_or(|k: &Attempt| attempt.score < k.score)
            {
                kept = Some(attempt);
            }
        }
        let Attempt {
            restart: kept_restart,
            frozen,
            parameters,
            n_beads,
            ..
        } = kept.expect("restarts >= 1");
        let history: Vec<EpochRecord> = all_history
            .into_iter()
            .map(|mut r| {
                r.kept = r.restart == kept_restart as i64;
                r
            })
            .collect();

        // Map every input frame with the final P.
        let weights = frozen.to_vec2::<f64>().map_err(failed)?;
        let mapped = map_trajectory(&trajectory, &frozen, n_beads).map_err(failed)?;
        let masses: Vec<f64> = (0..n_beads)
            .map(|b| {
                let inverse: f64 = (0..n_atoms)
                    .map(|i| weights[i][b] * weights[i][b] / atoms[i].mass_amu)
                    .sum();
                1.0 / inverse
            })
            .collect();
        // A C-alpha bead is its atom: named CA in its residue, so that protein observables
        // (RMSD to the native C-alphas, Rg, contacts) read CG chains as they read atoms.
        let calpha_atoms = calpha_atoms(&atoms);
        let bead_rows: Vec<AtomRow> = masses
            .iter()
            .enumerate()
            .map(|(b, &m)| match p.map {
                MapKind::Calpha => {
                    let a = &atoms[calpha_atoms[b]];
                    AtomRow {
                        name: a.name.clone(),
                        residue_name: a.residue_name.clone(),
                        residue_index: a.residue_index,
                        atomic_number: a.atomic_number,
                        mass_amu: m,
                        charge_e: 0.0,
                    }
                }
                _ => AtomRow {
                    name: format!("B{b}"),
                    residue_name: "CG".into(),
                    residue_index: b as i32,
                    atomic_number: 0,
                    mass_amu: m,
                    charge_e: 0.0,
                },
            })
            .collect();
        let mut out = Outputs::new();
        out.insert("trajectory".into(), Artifact::Table(mapped.to_table()));
        out.insert("beads".into(), Artifact::Table(atoms_table(&bead_rows)));
        out.insert(
            "assignment".into(),
            Artifact::Table(assignment_table(&atoms, &weights)),
        );
        out.insert(
            "parameters".into(),
            Artifact::Table(tensors_table(&parameters)),
        );
        out.insert("losses".into(), Artifact::Table(losses_table(&history)));
        Ok(out)
    }
}

/// The atoms named CA, in order: the beads of `map: calpha`.
fn calpha_atoms(atoms: &[AtomRow]) -> Vec<usize> {
    (0..atoms.len())
        .filter(|&i| atoms[i].name == "CA")
        .collect()
}
