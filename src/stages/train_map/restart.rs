//! One restart of `train_map`: a map (learned from a reference frame, or fixed on named
//! atoms) with its decoder, trained in the two phases the stage's module doc describes;
//! the decoder of the best validation epoch kept.

use candle_core::{DType, Device, Tensor};
use rand_core::RngCore;

use super::history::{EpochRecord, finite, log_epoch};
use super::params::{MapKind, SeedAtoms, TrainMapParams};
use super::{calpha_atoms, failed};
use crate::artifact::atoms::AtomRow;
use crate::artifact::tensors::NamedTensor;
use crate::artifact::trajectory::Trajectory;
use crate::md::covalent::infer_bonds;
use crate::nn::ParameterStore;
use crate::nn::cg_map::{FixedMap, rms_distance_matrix};
use crate::nn::decoder::BeadDecoder;
use crate::nn::equivariant::EgnnSizes;
use crate::nn::map_model::{
    Assignment, MapLossWeights, MapModel, atom_features, mean_force_potential,
};
use crate::nn::training::{
    EpochReport, adam_over, gather_frames, minibatches, step, train_keeping_best,
};
use crate::stages::{Context, StageError};

fn seed32(rng: &mut impl RngCore) -> [u8; 32] {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    seed
}

/// One trained map, a candidate among the restarts.
pub(super) struct Attempt {
    pub(super) restart: usize,
    /// The best validation reconstruction RMSD of its decoder, nm.
    pub(super) score: f64,
    pub(super) frozen: Tensor,
    pub(super) parameters: Vec<NamedTensor>,
    pub(super) n_beads: usize,
}

/// Trains restart `restart` on the `train` rows of `selected` (validated on the
/// `validation` rows); returns the attempt and its epochs.
#[allow(clippy::too_many_arguments)]
pub(super) fn train_restart(
    p: &TrainMapParams,
    selected: &Trajectory,
    atoms: &[AtomRow],
    train: &[usize],
    validation: &[usize],
    restart: usize,
    ctx: &mut Context<'_>,
) -> Result<(Attempt, Vec<EpochRecord>), StageError> {
    let n_atoms = selected.n_atoms;
    let dev = Device::Cpu;
    let dtype = DType::F64;
    let width = 3 * n_atoms;
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
                    calpha_atoms(atoms).into_iter().map(|i| vec![i]).collect();
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
                        .map(|r| r.resolve(atoms, &format!("fixed_beads[{b}]")))
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
    let train_x =
        gather_frames(&selected.positions_nm, width, train, dtype, &dev).map_err(failed)?;
    let distances = rms_distance_matrix(&train_x).map_err(failed)?;
    let validation_x =
        gather_frames(&selected.positions_nm, width, validation, dtype, &dev).map_err(failed)?;
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
            gather_frames(&selected.positions_nm, width, rows, dtype, &dev).map_err(failed)?,
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
            let batches = minibatches(train, p.batch_size, &mut batch_rng);
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
    let mut best = None;
    if decoder_epochs > 0 {
        let mut optimizer = adam_over(&[&decoder_store], p.learning_rate).map_err(failed)?;
        best = train_keeping_best(decoder_epochs, &decoder_store, None, failed, |_| {
            let mut sums = [0.0; 6];
            for rows in &minibatches(train, p.batch_size, &mut batch_rng) {
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
            let record = EpochRecord {
                restart: restart as i64,
                kept: false,
                phase: "decoder",
                epoch: history.len() as i64 + 1,
                means: sums.map(|s| s / train.len() as f64),
                validation_rmsd_nm: rmsd,
            };
            let summary = format!(
                "restart {restart}, decoder alone: reconstruction {:.4e} A^2, validation RMSD \
                 {rmsd:.5} nm",
                record.means[1]
            );
            history.push(record);
            ctx.progress.advance(1);
            Ok(EpochReport {
                validation: rmsd,
                summary,
            })
        })?;
    }
    if let Some(kept) = best {
        tracing::info!(
            validation_rmsd_nm = kept.validation,
            "train_map: kept the best decoder"
        );
    }

    let mut parameters = map_store.to_tensors().map_err(failed)?;
    parameters.extend(decoder_store.to_tensors().map_err(failed)?);
    let score = best
        .map(|kept| kept.validation)
        .or_else(|| history.last().map(|r| r.validation_rmsd_nm))
        .unwrap_or(f64::INFINITY);
    tracing::info!(
        restart,
        validation_rmsd_nm = score,
        "train_map: restart done"
    );
    Ok((
        Attempt {
            restart,
            score,
            frozen,
            parameters,
            n_beads,
        },
        history,
    ))
}
