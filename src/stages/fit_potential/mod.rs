//! `fit_potential`: the CG potential U_hat(z) by force matching on a mapped trajectory
//! (and, when asked, refined by relative entropy).
//!
//! Data: the frames at `temperature_index` of a CG trajectory (e.g. `train_map`'s
//! mapped output), bead positions z (nm) and the instantaneous mean force F_inst
//! (kJ/mol/nm) per frame; the `potential_kj_per_mol` column is not used (NaN for mapped
//! data). The model ([`crate::nn::cg_potential::CgPotential`]) is
//!
//! ```text
//! U_hat(z) = sum_{i<j} NN(phi(d_ij), e_ij) + sum_{I=0..n-4} T(cos psi_I, sin psi_I, e_I)
//!          + sum_priors U_prior(z)                                        (kJ/mol)
//! ```
//!
//! a pair network on a radial basis of each bead-pair distance; with `torsions` (and at
//! least 4 beads) a torsion network T on the cosine and sine of the signed dihedral
//! psi_I of beads I, I+1, I+2, I+3 and a one-hot of I, which lets U_hat tell a chiral
//! chain from its mirror image (distances alone cannot); and priors fitted to the
//! training frames first ([`crate::nn::priors`], one file each, with why each exists and
//! what it was measured to do):
//! - `repulsion_kj_per_mol` eps (sigma / d)^6 between every bead pair, sigma =
//!   `repulsion_sigma_nm` or, when that is null, 0.9 times the smallest bead-pair
//!   distance in the training frames ([`crate::nn::priors::repulsion`]);
//! - `excluded_volume_kj_per_mol` (off unless set): the same form on pairs at least
//!   `excluded_volume_separation` beads apart, each with 0.9 times its own closest
//!   approach as sigma ([`crate::nn::priors::excluded_volume`]), for protein chains;
//! - `bond_prior`: harmonic bonds between consecutive beads by Boltzmann inversion
//!   (T = `temperature_k`); `angle_prior`: the same for the distances d_{i,i+2}, an
//!   angle prior in Urey-Bradley form that leaves the bead angles too broad
//!   ([`crate::nn::priors::harmonic_distances`]);
//! - `theta_prior` (the default): harmonic bead angles by Boltzmann inversion
//!   ([`crate::nn::priors::bead_angles`]); with `theta_dihedral_order` L > 0 as well,
//!   centres that are a Fourier series of order L in the dihedrals next to them, shrunk
//!   towards the mean angle by `theta_dihedral_shrinkage` where the frames never go
//!   ([`crate::nn::priors::angle_dihedral`]);
//! - `dihedral_prior_order` M > 0 (default 6): an order-M Fourier series of -k_B T ln
//!   p(psi_I) per dihedral ([`crate::nn::priors::dihedral_fourier`]);
//! - `dihedral_pair_order` M > 0 instead (then `dihedral_prior_order` must be 0): the
//!   joint free energy of each pair of consecutive dihedrals, with the density floor
//!   `dihedral_pair_floor` (a fraction of the uniform density) where the frames never
//!   go ([`crate::nn::priors::dihedral_pairs`]).
//!
//! The priors do not train: their forces are taken off F_inst once per frame, and the
//! networks are fitted to the rest. The fitted potential is then scanned where CG chains
//! can go and the frames may not ([`scan`]: every bead dihedral swept over the circle);
//! a force above `max_force_kj_per_mol_nm` there fails the node, naming the place and
//! each term's share, instead of a chain blowing up thousands of steps in.
//!
//! Loss (force matching), minimised by Adam over minibatches B of training frames:
//!
//! ```text
//! L(theta) = 1 / (3 n |B|) sum_{t in B} sum_{i=1..n} | F_net,i(z_t) - (F_inst,i(t) - F_prior,i(z_t)) |^2
//! ```
//!
//! in (kJ/mol/nm)^2. The forces -grad U_hat are analytic candle operations, so one
//! backward pass gives exact parameter gradients (DESIGN.md §6). Since F_inst is the mean
//! force plus zero-mean noise, the minimiser over all functions is the mean force and
//! the loss cannot go below the noise variance.
//!
//! Split: frames are cut into `validation_blocks` contiguous blocks and a fraction
//! `validation_fraction` of the blocks (at least one) is held out
//! ([`crate::nn::training::block_split`]); the priors see only the training frames.
//! After every epoch the force RMSE, sqrt(mean over frames, beads and components of
//! (F_model - F_inst)^2) in kJ/mol/nm, is computed on the validation frames and, with the
//! epoch's final parameters and no gradients, on the training frames. The parameters of
//! the epoch with the lowest validation RMSE (the earliest on a tie) are the output.
//!
//! With `relative_entropy_iterations` > 0 the kept weights are then refined by relative
//! entropy ([`relative_entropy`]): U_hat on mapped frames against U_hat on persistent CG
//! chains, a loss that is the free-energy error itself, where force matching on noisy
//! single-frame forces is flat along the slow coordinates (docs/studies/alanine_dipeptide.md
//! sections 2.4-2.5). The learning curve and summary stay those of force matching.
//!
//! Randomness: the weights come from a [`ParameterStore`] seeded from the node's
//! generator, the split from sub-stream 1 and the batch order from sub-stream 2, so the
//! outputs are a pure function of (trajectory, params, node seed).
//!
//! Outputs:
//! - `potential` (cg_potential): the best epoch's weights with the architecture and the
//!   resolved priors ([`crate::nn::cg_potential::save_potential`]).
//! - `learning_curve` (table): epoch (int64, 1-based), train_loss (float64: the mean of
//!   the epoch's minibatch losses weighted by batch size, taken while the parameters
//!   change), train_force_rmse and validation_force_rmse (float64, kJ/mol/nm, end of
//!   epoch), best (bool: the kept epoch, exactly one row).
//! - `summary` (table, one row): train_frames, validation_frames, best_epoch (int64);
//!   train_force_rmse and validation_force_rmse at the best epoch; force_rms (RMS of
//!   F_inst over all frames used: the force scale); zero_model_validation_force_rmse
//!   (the RMSE of F = 0 on the validation frames, i.e. their RMS force);
//!   prior_validation_force_rmse (the priors alone, network output 0): float64,
//!   kJ/mol/nm; repulsion_sigma_nm, the sigma used (float64, nm);
//!   scan_max_force_kj_per_mol_nm, the largest |F| of the fit-time force scan
//!   ([`scan`]; float64, NaN without a scan).
//! - `split` (table): frame (int64, row of the input trajectory), validation (bool).
//! - `learning_curve_plot` / `learning_curve_svg`: force RMSE per epoch (log scale) with
//!   the zero-model and priors-only references and the kept epoch, and the training loss.

use candle_core::{DType, Device};
use rand_core::RngCore;

mod curve;
mod frames;
mod params;
mod priors;
mod relative_entropy;
pub mod scan;

use curve::{Curve, FIT_SUMMARY, FORCE_LEARNING_CURVE, FRAME_SPLIT, Summary, split_table};
use frames::{Frames, force_rmse};
pub use params::FitPotentialParams;
use priors::fit_priors;

use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::plot::Drawing;
use crate::artifact::Artifact;
use crate::artifact::kind::{CG_POTENTIAL, PNG, SVG};
use crate::artifact::tensors::{NamedTensor, to_table as tensors_table};
use crate::artifact::trajectory::{TRAJECTORY, Trajectory};
use crate::nn::ParameterStore;
use crate::nn::cg_potential::{CgPotential, CgPotentialConfig, save_potential};
use crate::nn::priors::BeadFrames;
use crate::nn::priors::repulsion::Repulsion;
use crate::nn::training::{
    BestEpoch, EpochReport, adam, block_split, minibatches, step, train_keeping_best,
};

/// Fewer frames than this at the chosen temperature is an error.
pub const MIN_FRAMES: usize = 10;

/// Frames per forward pass when evaluating (bounds memory on long trajectories).
const EVAL_CHUNK: usize = 256;

pub struct FitPotential;

impl Stage for FitPotential {
    type Params = FitPotentialParams;
    const NAME: &'static str = "fit_potential";
    /// 2: bead-angle centres that follow the dihedrals shrink towards the mean angle
    /// where the frames never go (`theta_dihedral_shrinkage`).
    const VERSION: u32 = 4;
    const ABOUT: &'static str = "CG potential U_hat (pair network on bead distances + torsion \
         network on bead dihedrals + priors fitted by Boltzmann inversion: repulsion, bonds, \
         bead angles, dihedrals) by force matching on mapped frames; keeps the epoch with the \
         lowest validation force RMSE and fails a potential whose forces would blow CG chains up";
    const INPUTS: &'static [Port] = &[Port {
        name: "trajectory",
        kind: TRAJECTORY,
        about: "CG frames: bead positions (nm) and instantaneous mean forces (kJ/mol/nm)",
    }];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "potential",
            kind: CG_POTENTIAL,
            about: "the CG potential of the best epoch: weights and architecture",
        },
        Port {
            name: "learning_curve",
            kind: FORCE_LEARNING_CURVE,
            about: "per epoch: epoch, train_loss, train_force_rmse, validation_force_rmse \
                    (kJ/mol/nm), best",
        },
        Port {
            name: "summary",
            kind: FIT_SUMMARY,
            about: "one row: frames, best epoch, its force RMSEs, and the references: force \
                    RMS, zero-model and priors-only validation RMSE (kJ/mol/nm)",
        },
        Port {
            name: "split",
            kind: FRAME_SPLIT,
            about: "per frame used: frame (row of the input trajectory), validation (bool)",
        },
        Port {
            name: "learning_curve_plot",
            kind: PNG,
            about: "force RMSE and training loss per epoch",
        },
        Port {
            name: "learning_curve_svg",
            kind: SVG,
            about: "the same plot as SVG",
        },
    ];
    const PARAMS: &'static [ParamDoc] = params::DOCS;

    fn check(p: &FitPotentialParams) -> Result<(), ParamProblem> {
        params::check(p)
    }

    fn run(
        p: &FitPotentialParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        Self::check(p).map_err(|e| {
            StageError::Failed(format!("param `{}`: {}", e.path.join("."), e.message))
        })?;
        let trajectory = Trajectory::from_table(inputs.table("trajectory")?)?;
        let rows: Vec<usize> = (0..trajectory.len())
            .filter(|&i| trajectory.temperature_index[i] == p.temperature_index)
            .collect();
        let data = Frames::new(&trajectory, &rows, p.temperature_index)?;
        let n = data.n;

        // Split, priors, model.
        let (train, validation) = block_split(
            data.len(),
            p.validation_blocks,
            p.validation_fraction,
            &mut ctx.stream(1),
        );
        if train.is_empty() || validation.is_empty() {
            return Err(StageError::BadInput {
                input: "trajectory".into(),
                message: format!(
                    "{} frames give {} training and {} validation frames",
                    data.len(),
                    train.len(),
                    validation.len()
                ),
            });
        }
        let priors = fit_priors(p, &data, &train)?;
        let repulsion_sigma_nm = priors.get::<Repulsion>().map_or(0.0, |r| r.sigma);
        let config = CgPotentialConfig {
            basis: p.basis,
            cutoff_nm: p.cutoff_nm,
            hidden: p.hidden.clone(),
            activation: p.activation,
            torsions: p.torsions,
            torsion_window: p.torsion_window,
        };
        tracing::info!(
            "{n} beads, {} training and {} validation frames",
            train.len(),
            validation.len(),
        );
        for prior in priors.iter() {
            tracing::info!("{}", prior.describe());
        }
        // The priors do not train: the networks learn what is left of the force.
        let mut data = data;
        data.subtract_priors(&priors);
        let mut seed = [0u8; 32];
        ctx.rng.fill_bytes(&mut seed);
        let store = ParameterStore::new(seed);
        let device = Device::Cpu;
        let potential = CgPotential::new(n, config.clone(), store.var_builder(DType::F64, &device))
            .map_err(nn_error)?;

        // References a user judges the fit by.
        let force_rms = data.force_rms(&(0..data.len()).collect::<Vec<_>>());
        let zero_model_rmse = data.force_rms(&validation);
        let prior_rmse = data.residual_rms(&validation);
        tracing::info!(
            "force RMS {force_rms:.3} kJ/mol/nm; validation RMSE of the zero model \
             {zero_model_rmse:.3}, of the priors alone {prior_rmse:.3}"
        );

        // Training.
        let mut optimizer = adam(&store, p.learning_rate).map_err(nn_error)?;
        let mut batch_rng = ctx.stream(2);
        let mut curve = Curve {
            first_epoch: if p.epochs == 0 { 0 } else { 1 },
            ..Curve::default()
        };
        let mut start = None;
        if p.epochs == 0 {
            // No training: the networks' weights are zero, so they add nothing and the
            // potential is its priors alone (epoch 0 of the curve).
            let zeros = zero_weights(&store).map_err(nn_error)?;
            let train_rmse = force_rmse(&potential, &data, &train).map_err(nn_error)?;
            curve.train_loss.push(train_rmse * train_rmse);
            curve.train.push(train_rmse);
            curve.validation.push(prior_rmse);
            let epoch_zero = BestEpoch {
                epoch: 0,
                validation: prior_rmse,
            };
            start = Some((epoch_zero, zeros));
        }
        ctx.progress.start("epochs", p.epochs as u64);
        let kept = train_keeping_best(p.epochs, &store, start, nn_error, |_| {
            let mut loss_sum = 0.0;
            for batch in minibatches(&train, p.batch_size, &mut batch_rng) {
                let z = data.positions(&batch, &device).map_err(nn_error)?;
                let f = data.targets(&batch, &device).map_err(nn_error)?;
                let loss = potential.force_matching_loss(&z, &f).map_err(nn_error)?;
                loss_sum += step(&mut optimizer, &loss).map_err(nn_error)? * batch.len() as f64;
            }
            let train_loss = loss_sum / train.len() as f64;
            let train_rmse = force_rmse(&potential, &data, &train).map_err(nn_error)?;
            let validation_rmse = force_rmse(&potential, &data, &validation).map_err(nn_error)?;
            curve.train_loss.push(train_loss);
            curve.train.push(train_rmse);
            curve.validation.push(validation_rmse);
            ctx.progress.advance(1);
            Ok(EpochReport {
                validation: validation_rmse,
                summary: format!(
                    "train loss {train_loss:.4} (kJ/mol/nm)^2, force RMSE train \
                     {train_rmse:.4}, validation {validation_rmse:.4} kJ/mol/nm"
                ),
            })
        })?;
        let Some(BestEpoch {
            epoch: best_epoch, ..
        }) = kept
        else {
            return Err(StageError::Failed(format!(
                "force matching diverged: the validation force RMSE was not finite in any of \
                 the {} epochs (try a smaller learning_rate)",
                p.epochs
            )));
        };
        if p.relative_entropy_iterations > 0 {
            let settings = relative_entropy::Refinement {
                iterations: p.relative_entropy_iterations,
                chains: p.relative_entropy_chains,
                steps: p.relative_entropy_steps,
                learning_rate: p.relative_entropy_learning_rate,
                temperature_k: p.temperature_k,
                batch_size: p.batch_size.max(512),
            };
            relative_entropy::refine(
                &settings, n, &config, &priors, &store, &potential, &data, &train, ctx,
            )?;
            let validation_rmse = force_rmse(&potential, &data, &validation).map_err(nn_error)?;
            tracing::info!(
                "after relative entropy: validation force RMSE {validation_rmse:.4} kJ/mol/nm"
            );
        }
        let saved = save_potential(n, &config, &priors, &store).map_err(nn_error)?;
        let scan_max_force = match p.max_force_kj_per_mol_nm {
            Some(limit) => {
                let beads = BeadFrames::new(n, &data.positions);
                let found = scan::scan(&saved, &beads, &train, &rows)
                    .map_err(|e| StageError::Failed(format!("force scan: {e}")))?;
                if let Some(worst) = found.worst.as_ref().filter(|_| !(found.max_force <= limit)) {
                    return Err(StageError::Failed(format!(
                        "the fitted potential would blow CG chains up: {} (max_force_kj_per_mol_nm \
                         is {limit}). Its priors or networks were fitted where the frames are \
                         thin: give more frames, shrink the bead-angle centres more \
                         (theta_dihedral_shrinkage), raise dihedral_pair_floor, train fewer \
                         epochs, or set max_force_kj_per_mol_nm to what cg_sample will allow",
                        worst.describe(found.max_force)
                    )));
                }
                tracing::info!(
                    "force scan: largest |F| {:.3e} kJ/mol/nm{}",
                    found.max_force,
                    found
                        .worst
                        .as_ref()
                        .map(|w| format!(" ({})", w.describe(found.max_force)))
                        .unwrap_or_default()
                );
                found.max_force
            }
            None => f64::NAN,
        };
        let best_row = best_epoch - curve.first_epoch;
        tracing::info!(
            "kept epoch {best_epoch}: validation force RMSE {:.4} kJ/mol/nm (zero model \
             {zero_model_rmse:.4}, priors alone {prior_rmse:.4})",
            curve.validation[best_row]
        );

        let summary = Summary {
            train_frames: train.len() as i64,
            validation_frames: validation.len() as i64,
            best_epoch: best_epoch as i64,
            train_force_rmse: curve.train[best_row],
            validation_force_rmse: curve.validation[best_row],
            force_rms,
            zero_model_validation_force_rmse: zero_model_rmse,
            prior_validation_force_rmse: prior_rmse,
            repulsion_sigma_nm,
            scan_max_force,
        };
        let figure = curve.figure(&summary, n);
        let png = figure
            .to_png()
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let svg = figure
            .to_svg()
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let mut is_validation = vec![false; data.len()];
        for &v in &validation {
            is_validation[v] = true;
        }
        Ok(Outputs::from([
            (
                "potential".to_string(),
                Artifact::Table(tensors_table(&saved)),
            ),
            (
                "learning_curve".to_string(),
                Artifact::Table(curve.table(best_epoch)),
            ),
            ("summary".to_string(), Artifact::Table(summary.table())),
            (
                "split".to_string(),
                Artifact::Table(split_table(&rows, &is_validation)),
            ),
            ("learning_curve_plot".to_string(), Artifact::File(png)),
            (
                "learning_curve_svg".to_string(),
                Artifact::File(svg.into_bytes()),
            ),
        ]))
    }
}

/// Sets every weight of `store` to zero (the networks then add nothing) and returns
/// those weights.
fn zero_weights(store: &ParameterStore) -> candle_core::Result<Vec<NamedTensor>> {
    let zeros: Vec<NamedTensor> = store
        .to_tensors()?
        .into_iter()
        .map(|t| NamedTensor {
            values: vec![0.0; t.values.len()],
            ..t
        })
        .collect();
    store.load(&zeros)?;
    Ok(zeros)
}

fn nn_error(e: candle_core::Error) -> StageError {
    StageError::Failed(format!("force matching: {e}"))
}

fn bad_input(message: String) -> StageError {
    StageError::BadInput {
        input: "trajectory".into(),
        message,
    }
}
