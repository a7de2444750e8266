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

use candle_core::{DType, Device, Tensor};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use super::atom_ref::AtomRef;
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::atoms::{ATOMS, AtomRow, to_table as atoms_table};
use crate::artifact::kind::{MODEL_PARAMETERS, TABLE};
use crate::artifact::tensors::{NamedTensor, to_table as tensors_table};
use crate::artifact::trajectory::TRAJECTORY;
use crate::md::covalent::infer_bonds;
use crate::nn::ParameterStore;
use crate::nn::cg_map::{FixedMap, map_trajectory, rms_distance_matrix};
use crate::nn::decoder::BeadDecoder;
use crate::nn::equivariant::EgnnSizes;
use crate::nn::map_model::{
    Assignment, MapLossWeights, MapModel, atom_features, mean_force_potential,
};
use crate::nn::training::{adam_over, block_split, gather_frames, minibatches, step};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapKind {
    Learned,
    Fixed,
    /// A fixed map with one bead per residue on its C-alpha atom (atoms named `CA`;
    /// caps without one, such as ACE and NME, get no bead).
    Calpha,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedAtoms {
    /// Every atom that is not hydrogen.
    Heavy,
    /// Every atom.
    All,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainMapParams {
    pub map: MapKind,
    pub beads: usize,
    pub fixed_beads: Vec<Vec<AtomRef>>,
    pub seed_atoms: SeedAtoms,
    pub temperature_index: i32,
    pub epochs: usize,
    pub decoder_epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub lambda: f64,
    pub lambda_mf: f64,
    pub validation_fraction: f64,
    pub validation_blocks: usize,
    pub graph_cutoff_nm: f64,
    pub prior_width_nm: f64,
    pub initial_temperature: f64,
    pub restarts: usize,
    pub egnn_features: usize,
    pub egnn_layers: usize,
    pub decoder_hidden: Vec<usize>,
}

/// Alanine dipeptide's backbone: C(ACE), N, CA, C (ALA), N(NME).
fn backbone_beads() -> Vec<Vec<AtomRef>> {
    [(0, "C"), (1, "N"), (1, "CA"), (1, "C"), (2, "N")]
        .iter()
        .map(|&(r, n)| vec![AtomRef::new(r, n)])
        .collect()
}

impl Default for TrainMapParams {
    fn default() -> Self {
        TrainMapParams {
            map: MapKind::Learned,
            beads: 5,
            fixed_beads: backbone_beads(),
            seed_atoms: SeedAtoms::Heavy,
            temperature_index: 0,
            epochs: 40,
            decoder_epochs: 20,
            batch_size: 64,
            learning_rate: 2e-3,
            lambda: 0.1,
            lambda_mf: 0.001,
            validation_fraction: 0.2,
            validation_blocks: 10,
            graph_cutoff_nm: 0.5,
            prior_width_nm: crate::nn::map_model::PRIOR_WIDTH_NM,
            initial_temperature: 20.0,
            restarts: 3,
            egnn_features: 32,
            egnn_layers: 2,
            decoder_hidden: vec![64, 64],
        }
    }
}

mod history;

use history::{EpochRecord, assignment_table, finite, log_epoch, losses_table};

pub struct TrainMap;

pub(super) fn failed(e: candle_core::Error) -> StageError {
    StageError::Failed(format!("training: {e}"))
}

fn seed32(rng: &mut impl RngCore) -> [u8; 32] {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    seed
}

/// One trained map, a candidate among the restarts.
struct Attempt {
    restart: usize,
    /// The best validation reconstruction RMSD of its decoder, nm.
    score: f64,
    frozen: Tensor,
    parameters: Vec<NamedTensor>,
    n_beads: usize,
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
            kind: TABLE,
            about: "P: atom, atom_name, residue_index, bead, weight",
        },
        Port {
            name: "parameters",
            kind: MODEL_PARAMETERS,
            about: "map (EGNN) and decoder weights",
        },
        Port {
            name: "losses",
            kind: TABLE,
            about: "per epoch: phase, loss terms, validation reconstruction RMSD (nm)",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "map",
            about: "learned (EGNN soft assignment) | fixed (hard map on fixed_beads) | calpha (a \
                    hard map with one bead per residue on its CA atom)",
        },
        ParamDoc {
            name: "beads",
            about: "number of beads of a learned map",
        },
        ParamDoc {
            name: "fixed_beads",
            about: "fixed map: per bead, its atoms as {residue, name} (default: alanine dipeptide's backbone C, N, CA, C, N)",
        },
        ParamDoc {
            name: "seed_atoms",
            about: "atoms the decoder reconstructs: heavy | all",
        },
        ParamDoc {
            name: "temperature_index",
            about: "train on frames at this rung of the temperature ladder",
        },
        ParamDoc {
            name: "epochs",
            about: "joint epochs (map, decoder, mean-force potential)",
        },
        ParamDoc {
            name: "decoder_epochs",
            about: "epochs with the map frozen, decoder only (best validation kept)",
        },
        ParamDoc {
            name: "batch_size",
            about: "frames per minibatch",
        },
        ParamDoc {
            name: "learning_rate",
            about: "Adam step size",
        },
        ParamDoc {
            name: "lambda",
            about: "weight of L_link + L_ent + L_assign (paper: 0.1)",
        },
        ParamDoc {
            name: "lambda_mf",
            about: "extra weight of the mean-force term, total lambda * lambda_mf (paper: 0.001)",
        },
        ParamDoc {
            name: "validation_fraction",
            about: "fraction of frame blocks held out for validation",
        },
        ParamDoc {
            name: "validation_blocks",
            about: "contiguous blocks the frames are cut into for the split",
        },
        ParamDoc {
            name: "graph_cutoff_nm",
            about: "EGNN edges: bonds plus atom pairs closer than this in the reference frame (nm)",
        },
        ParamDoc {
            name: "prior_width_nm",
            about: "learned map: width of the spatial-clustering prior the scores start from (nm); wider starts softer",
        },
        ParamDoc {
            name: "initial_temperature",
            about: "learned map: softmax temperature of P in the first joint epoch, lowered geometrically to 1 by the last (1 = no annealing; default 20)",
        },
        ParamDoc {
            name: "restarts",
            about: "train this many maps (and decoders) from different initial weights and batch orders; keep the one with the lowest validation reconstruction RMSD",
        },
        ParamDoc {
            name: "egnn_features",
            about: "EGNN feature width",
        },
        ParamDoc {
            name: "egnn_layers",
            about: "EGNN message-passing layers",
        },
        ParamDoc {
            name: "decoder_hidden",
            about: "hidden layer sizes of the decoder",
        },
    ];

    fn check(p: &Self::Params) -> Result<(), ParamProblem> {
        if p.map == MapKind::Learned && p.beads < 2 {
            return Err(ParamProblem::new("beads", "a map needs at least 2 beads"));
        }
        if p.map == MapKind::Fixed && p.fixed_beads.len() < 2 {
            return Err(ParamProblem::new(
                "fixed_beads",
                "a fixed map needs at least 2 beads",
            ));
        }
        if p.epochs + p.decoder_epochs == 0 {
            return Err(ParamProblem::new(
                "epochs",
                "epochs + decoder_epochs must be > 0",
            ));
        }
        if p.restarts == 0 {
            return Err(ParamProblem::new("restarts", "must be >= 1"));
        }
        if p.batch_size == 0 {
            return Err(ParamProblem::new("batch_size", "must be > 0"));
        }
        if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
            return Err(ParamProblem::new("learning_rate", "must be > 0"));
        }
        for (name, v) in [("lambda", p.lambda), ("lambda_mf", p.lambda_mf)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(ParamProblem::new(name, "must be >= 0"));
            }
        }
        if !(p.validation_fraction > 0.0 && p.validation_fraction < 1.0) {
            return Err(ParamProblem::new(
                "validation_fraction",
                "must be between 0 and 1 (exclusive)",
            ));
        }
        if p.validation_blocks < 2 {
            return Err(ParamProblem::new("validation_blocks", "must be >= 2"));
        }
        if !(p.prior_width_nm > 0.0 && p.prior_width_nm.is_finite()) {
            return Err(ParamProblem::new("prior_width_nm", "must be > 0"));
        }
        if !(p.initial_temperature >= 1.0 && p.initial_temperature.is_finite()) {
            return Err(ParamProblem::new("initial_temperature", "must be >= 1"));
        }
        if !(p.graph_cutoff_nm > 0.0) {
            return Err(ParamProblem::new("graph_cutoff_nm", "must be > 0"));
        }
        if p.egnn_features == 0 || p.egnn_layers == 0 {
            return Err(ParamProblem::new("egnn_features", "EGNN sizes must be > 0"));
        }
        Ok(())
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
        let dev = Device::Cpu;
        let dtype = DType::F64;
        let width = 3 * n_atoms;

        let (train, validation) = block_split(
            selected.len(),
            p.validation_blocks,
            p.validation_fraction,
            &mut ctx.rng,
        );
        let mut kept: Option<Attempt> = None;
        let mut all_history: Vec<EpochRecord> = Vec::new();
        for restart in 0..p.restarts {
            let map_store = ParameterStore::new(seed32(&mut ctx.rng));
            let decoder_store = ParameterStore::new(seed32(&mut ctx.rng));
            let potential_store = ParameterStore::new(seed32(&mut ctx.rng));
            let mut batch_rng = ctx.stream(restart as u64);

            // The map: learned from a reference frame, or fixed on named atoms.
            let reference: Vec<[f64; 3]> = selected
                .positions(train[0])
                .chunks(3)
                .map(|c| [c[0], c[1], c[2]])
                .collect();
            let atomic_numbers: Vec<i32> = atoms.iter().map(|a| a.atomic_number).collect();
            let (assignment, n_beads) = match p.map {
                MapKind::Learned => {
                    let features = atom_features(
                        &atomic_numbers,
                        &atoms.iter().map(|a| a.residue_index).collect::<Vec<_>>(),
                        &atoms.iter().map(|a| a.charge_e).collect::<Vec<_>>(),
                        &dev,
                    )
                    .map_err(failed)?;
                    let sizes = EgnnSizes {
                        inputs: features.dim(1).map_err(failed)?,
                        features: p.egnn_features,
                        messages: p.egnn_features / 2 + 1,
                        hidden: p.egnn_features,
                        layers: p.egnn_layers,
                        outputs: p.beads,
                    };
                    let bonds = infer_bonds(&atomic_numbers, &reference);
                    let vb = map_store.var_builder(dtype, &dev).pp("map");
                    let a = Assignment::learned_with_prior(
                        sizes,
                        &bonds,
                        &reference,
                        p.graph_cutoff_nm,
                        features,
                        p.prior_width_nm,
                        vb,
                    )
                    .map_err(failed)?;
                    (a, p.beads)
                }
                MapKind::Fixed | MapKind::Calpha => {
                    let beads: Vec<Vec<usize>> = if p.map == MapKind::Calpha {
                        let beads: Vec<Vec<usize>> =
                            calpha_atoms(&atoms).into_iter().map(|i| vec![i]).collect();
                        if beads.len() < 2 {
                            return Err(StageError::bad_input(
                                "atoms",
                                format!(
                                    "map: calpha needs at least 2 atoms named CA, found {}",
                                    beads.len()
                                ),
                            ));
                        }
                        beads
                    } else {
                        let mut beads = Vec::with_capacity(p.fixed_beads.len());
                        for (b, refs) in p.fixed_beads.iter().enumerate() {
                            let members = refs
                                .iter()
                                .map(|r| r.resolve(&atoms, &format!("fixed_beads[{b}]")))
                                .collect::<Result<Vec<_>, _>>()?;
                            beads.push(members);
                        }
                        beads
                    };
                    let map = FixedMap::new(n_atoms, beads).map_err(|e| StageError::BadInput {
                        input: "atoms".into(),
                        message: format!("fixed_beads: {e}"),
                    })?;
                    let matrix = map.assignment(dtype, &dev).map_err(failed)?;
                    (Assignment::Fixed(matrix), map.n_beads())
                }
            };
            let seed_atoms: Vec<usize> = (0..n_atoms)
                .filter(|&i| p.seed_atoms == SeedAtoms::All || atomic_numbers[i] != 1)
                .collect();
            let decoder = BeadDecoder::new(
                n_beads,
                seed_atoms.len(),
                &p.decoder_hidden,
                decoder_store.var_builder(dtype, &dev).pp("decoder"),
            )
            .map_err(failed)?;
            // The mean-force term needs a potential only when it counts.
            let potential = match p.map {
                MapKind::Learned if p.lambda * p.lambda_mf > 0.0 => Some(
                    mean_force_potential(n_beads, potential_store.var_builder(dtype, &dev))
                        .map_err(failed)?,
                ),
                _ => None,
            };
            let train_x = gather_frames(&selected.positions_nm, width, &train, dtype, &dev)
                .map_err(failed)?;
            let distances = rms_distance_matrix(&train_x).map_err(failed)?;
            let validation_x =
                gather_frames(&selected.positions_nm, width, &validation, dtype, &dev)
                    .map_err(failed)?;
            let model = MapModel::new(
                assignment,
                decoder,
                potential,
                &seed_atoms,
                &distances,
                MapLossWeights {
                    lambda: p.lambda,
                    lambda_mf: p.lambda_mf,
                },
            )
            .map_err(failed)?;

            let (joint_epochs, decoder_epochs) = match p.map {
                MapKind::Learned => (p.epochs, p.decoder_epochs),
                MapKind::Fixed | MapKind::Calpha => (0, p.epochs + p.decoder_epochs),
            };
            if restart == 0 {
                ctx.progress.start(
                    "epochs",
                    ((joint_epochs + decoder_epochs) * p.restarts) as u64,
                );
            }
            let mut history: Vec<EpochRecord> = Vec::new();
            let batch = |rows: &[usize]| -> Result<(Tensor, Tensor), StageError> {
                Ok((
                    gather_frames(&selected.positions_nm, width, rows, dtype, &dev)
                        .map_err(failed)?,
                    gather_frames(&selected.forces, width, rows, dtype, &dev).map_err(failed)?,
                ))
            };

            // Phase 1: map, decoder and mean-force potential together.
            if joint_epochs > 0 {
                let mut optimizer = adam_over(
                    &[&map_store, &decoder_store, &potential_store],
                    p.learning_rate,
                )
                .map_err(failed)?;
                for epoch in 0..joint_epochs {
                    // tau_e = tau_0^(1 - e / (E - 1)): tau_0 in the first epoch, 1 in the last.
                    let tau = if joint_epochs > 1 {
                        p.initial_temperature
                            .powf(1.0 - epoch as f64 / (joint_epochs - 1) as f64)
                    } else {
                        1.0
                    };
                    let mut sums = [0.0; 6];
                    let batches = minibatches(&train, p.batch_size, &mut batch_rng);
                    for rows in &batches {
                        let (x, f) = batch(rows)?;
                        let pm = model.assignment.matrix_at(tau).map_err(failed)?;
                        let losses = model.losses(&pm, &x, &f).map_err(failed)?;
                        let values = losses.values().map_err(failed)?;
                        finite(&values, history.len() + 1)?;
                        step(&mut optimizer, &losses.total).map_err(failed)?;
                        for (s, v) in sums.iter_mut().zip(values) {
                            *s += v * rows.len() as f64;
                        }
                    }
                    let pm = model.assignment.matrix_at(tau).map_err(failed)?;
                    let rmsd = model
                        .reconstruction_rmsd_nm(&pm, &validation_x)
                        .map_err(failed)?;
                    let record = EpochRecord {
                        restart: restart as i64,
                        kept: false,
                        phase: "joint",
                        epoch: history.len() as i64 + 1,
                        means: sums.map(|s| s / train.len() as f64),
                        validation_rmsd_nm: rmsd,
                    };
                    log_epoch(&record);
                    history.push(record);
                    ctx.progress.advance(1);
                }
            }

            // Phase 2: the map frozen, the decoder alone on L_r; the best epoch kept.
            let frozen = model.assignment.matrix().map_err(failed)?.detach();
            let decoder_only = MapModel::new(
                Assignment::Fixed(frozen.clone()),
                model.decoder.clone(),
                None,
                &seed_atoms,
                &distances,
                MapLossWeights {
                    lambda: p.lambda,
                    lambda_mf: p.lambda_mf,
                },
            )
            .map_err(failed)?;
            let mut best: Option<(f64, Vec<NamedTensor>)> = None;
            if decoder_epochs > 0 {
                let mut optimizer =
                    adam_over(&[&decoder_store], p.learning_rate).map_err(failed)?;
                for _ in 0..decoder_epochs {
                    let mut sums = [0.0; 6];
                    for rows in &minibatches(&train, p.batch_size, &mut batch_rng) {
                        let (x, f) = batch(rows)?;
                        let losses = decoder_only.losses(&frozen, &x, &f).map_err(failed)?;
                        let values = losses.values().map_err(failed)?;
                        finite(&values, history.len() + 1)?;
                        step(&mut optimizer, &losses.reconstruction).map_err(failed)?;
                        for (s, v) in sums.iter_mut().zip(values) {
                            *s += v * rows.len() as f64;
                        }
                    }
                    let rmsd = decoder_only
                        .reconstruction_rmsd_nm(&frozen, &validation_x)
                        .map_err(failed)?;
                    if best.as_ref().is_none_or(|(b, _)| rmsd < *b) {
                        best = Some((rmsd, decoder_store.to_tensors().map_err(failed)?));
                    }
                    let record = EpochRecord {
                        restart: restart as i64,
                        kept: false,
                        phase: "decoder",
                        epoch: history.len() as i64 + 1,
                        means: sums.map(|s| s / train.len() as f64),
                        validation_rmsd_nm: rmsd,
                    };
                    log_epoch(&record);
                    history.push(record);
                    ctx.progress.advance(1);
                }
            }
            if let Some((rmsd, tensors)) = &best {
                decoder_store.load(tensors).map_err(failed)?;
                tracing::info!(
                    validation_rmsd_nm = rmsd,
                    "train_map: kept the best decoder"
                );
            }

            let mut parameters = map_store.to_tensors().map_err(failed)?;
            parameters.extend(decoder_store.to_tensors().map_err(failed)?);
            let score = best
                .as_ref()
                .map(|(r, _)| *r)
                .or_else(|| history.last().map(|r| r.validation_rmsd_nm))
                .unwrap_or(f64::INFINITY);
            tracing::info!(
                restart,
                validation_rmsd_nm = score,
                "train_map: restart done"
            );
            all_history.extend(history);
            if kept.as_ref().is_none_or(|k: &Attempt| score < k.score) {
                kept = Some(Attempt {
                    restart,
                    score,
                    frozen,
                    parameters,
                    n_beads,
                });
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
