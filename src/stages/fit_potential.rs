//! `fit_potential`: the CG potential U_hat(z) by force matching on a mapped trajectory.
//!
//! Data: the frames at `temperature_index` of a CG trajectory (e.g. `train_map`'s
//! mapped output), bead positions z (nm) and the instantaneous mean force F_inst
//! (kJ/mol/nm) per frame; the `potential_kj_per_mol` column is not used (NaN for mapped
//! data). The model ([`crate::nn::cg_potential::CgPotential`]) is
//!
//! ```text
//! U_hat(z) = sum_{i<j} [ NN(phi(d_ij), e_ij) + eps (sigma / d_ij)^6 ]
//!          + sum_i k_i / 2 (d_{i,i+1} - r0_i)^2
//!          + sum_I k_I / 2 (theta_I - theta0_I(psi))^2
//!          + sum_I sum_m a_Im cos(m psi_I) + b_Im sin(m psi_I)
//!          + U_pairs(psi_0, psi_1, ...)
//!          + sum_{I=0..n-4} T(cos psi_I, sin psi_I, e_I)                  (kJ/mol)
//! ```
//!
//! a pair network on a radial basis of each bead-pair distance; with `torsions` (and at
//! least 4 beads) a torsion network T on the cosine and sine of the signed dihedral
//! psi_I of beads I, I+1, I+2, I+3 and a one-hot of I, which lets U_hat tell a chiral
//! chain from its mirror image (distances alone cannot); and priors:
//! - a short-range repulsion, eps = `repulsion_kj_per_mol`, sigma = `repulsion_sigma_nm`
//!   or, when that is null, 0.9 times the smallest bead-pair distance in the training
//!   frames;
//! - with `bond_prior`, harmonic bonds between consecutive beads by Boltzmann inversion
//!   of the training frames: r0_i = mean of d_{i,i+1}, k_i = k_B T / var(d_{i,i+1})
//!   (kJ/mol/nm^2, T = `temperature_k`);
//! - with `theta_prior` (the default), harmonic priors on the bead angles theta_I of
//!   (I, I+1, I+2) by Boltzmann inversion: theta0_I = mean, k_I = k_B T / var(theta_I)
//!   (kJ/mol/rad^2): the stiff angles of a chain are hard for a smooth network on a
//!   radial basis to learn, and without a prior CG chains come out with angles several
//!   times too broad;
//! - with `angle_prior` instead, the bond prior's form for the distances d_{i,i+2} (an
//!   angle prior in Urey-Bradley form). Measured on alanine dipeptide's backbone map
//!   (10,000 frames at 300 K, the study's network): it leaves the bead angles 1.4-1.6
//!   times too broad (std 4.6-5.0 degrees against 2.8-3.6, JS 0.03-0.05) although every
//!   bond and 1-3 distance on its own matches, because independent harmonic distances
//!   lose the correlation that keeps the angle tight; the theta prior gives std within
//!   2 % and JS 0.0002-0.0008 (noise floor 0.0002-0.0003). Unlike the pair-distance
//!   priors, the pair network cannot cancel a theta prior: it assumes frames
//!   Boltzmann-distributed at `temperature_k`, as MD frames are;
//! - with `theta_dihedral_order` L > 0 as well, each bead angle's centre theta0_I is a
//!   Fourier series of order L in the dihedrals next to it (least squares), and k_I =
//!   k_B T over the residual variance ([`crate::nn::angle_dihedral_prior`]): on alanine
//!   dipeptide the N-CA-C angle is 111.8 degrees in C7eq and 116.8 in C7ax, and atoms
//!   backmapped onto CG samples whose angles keep the overall mean are strained;
//! - with `dihedral_prior_order` M > 0 (default 6), a prior on each dihedral psi_I of
//!   consecutive beads: the order-M Fourier series of -k_B T ln p(psi_I) from a 36-bin
//!   histogram of the training frames (one pseudo-count per bin), sum_m a_m cos(m psi) +
//!   b_m sin(m psi). It brings the CG dihedrals and basin populations close to the FG
//!   ones (same data: dihedral JS 0.16-0.22 to 0.05-0.07); a larger network trained
//!   longer moves them away again;
//! - with `dihedral_pair_order` M > 0 instead (then `dihedral_prior_order` must be 0),
//!   U_pairs: -k_B T ln of the kernel density estimate of each pair of consecutive
//!   dihedrals (psi_I, psi_(I+1)) on the torus, a Fourier series of order M, with the
//!   density floor `dihedral_pair_floor` (a fraction of the uniform density) where the
//!   frames never go ([`crate::nn::dihedral_pairs`]). The one-dimensional priors give
//!   each dihedral's marginal, and on alanine dipeptide's backbone beads their product
//!   puts phi > 0 with psi > 0, where the FG frames have psi < 0; the pair prior gives
//!   the joint distribution.
//!
//! Loss (force matching), minimised by Adam over minibatches B of training frames:
//!
//! ```text
//! L(theta) = 1 / (3 n |B|) sum_{t in B} sum_{i=1..n} | -grad_{z_i} U_hat(z_t) - F_inst,i(t) |^2
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
//!   kJ/mol/nm; repulsion_sigma_nm, the sigma used (float64, nm).
//! - `split` (table): frame (int64, row of the input trajectory), validation (bool).
//! - `learning_curve_plot` / `learning_curve_svg`: force RMSE per epoch (log scale) with
//!   the zero-model and priors-only references and the kept epoch, and the training loss.

use std::sync::Arc;

use arrow_array::{BooleanArray, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use candle_core::{DType, Device};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::line_plot::{Figure, Panel, Series};
use crate::analysis::plot::Drawing;
use crate::artifact::Artifact;
use crate::artifact::kind::{CG_POTENTIAL, PNG, SVG, TABLE};
use crate::artifact::tensors::{NamedTensor, to_table as tensors_table};
use crate::artifact::trajectory::{TRAJECTORY, Trajectory};
use crate::geometry::angle::bond_angle_rad;
use crate::geometry::dihedral::dihedral_deg;
use crate::md::units::BOLTZMANN;
use crate::nn::cg_potential::{CgPotential, CgPotentialConfig, save_potential};
use crate::nn::training::{adam, block_split, gather_frames, minibatches, step};
use crate::nn::{Activation, ParameterStore};
use crate::nn::{angle_dihedral_prior, dihedral_pairs};

/// Fewer frames than this at the chosen temperature is an error.
pub const MIN_FRAMES: usize = 10;

/// Frames per forward pass when evaluating (bounds memory on long trajectories).
const EVAL_CHUNK: usize = 256;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitPotentialParams {
    pub temperature_index: i32,
    /// Temperature of the Boltzmann-inverted bond prior, K.
    pub temperature_k: f64,
    pub basis: usize,
    pub cutoff_nm: f64,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub repulsion_kj_per_mol: f64,
    /// `None`: 0.9 times the smallest bead-pair distance in the training frames.
    pub repulsion_sigma_nm: Option<f64>,
    pub bond_prior: bool,
    pub angle_prior: bool,
    /// Harmonic priors on the bead angles theta (Boltzmann inversion).
    pub theta_prior: bool,
    /// Fourier order of the bead-angle centres in the neighbouring dihedrals (0: fixed).
    pub theta_dihedral_order: usize,
    /// Weight, as a fraction of the training frames, of pseudo-observations spread over
    /// the dihedrals' torus at the mean bead angle (the centres' shrinkage).
    pub theta_dihedral_shrinkage: f64,
    /// Fourier order of the Boltzmann-inverted dihedral prior (0: none).
    pub dihedral_prior_order: usize,
    /// Fourier order of the dihedral-pair prior (0: none; exclusive with the above).
    pub dihedral_pair_order: usize,
    /// Density floor of the dihedral-pair prior, a fraction of the uniform density.
    pub dihedral_pair_floor: f64,
    /// The torsion network over consecutive bead quadruples.
    pub torsions: bool,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub validation_fraction: f64,
    pub validation_blocks: usize,
}

impl Default for FitPotentialParams {
    fn default() -> Self {
        FitPotentialParams {
            temperature_index: 0,
            temperature_k: 300.0,
            basis: 16,
            cutoff_nm: 1.2,
            hidden: vec![64, 64],
            activation: Activation::Silu,
            repulsion_kj_per_mol: 1.0,
            repulsion_sigma_nm: None,
            bond_prior: true,
            angle_prior: false,
            theta_prior: true,
            theta_dihedral_order: 0,
            theta_dihedral_shrinkage: 1e-3,
            dihedral_prior_order: 6,
            dihedral_pair_order: 0,
            dihedral_pair_floor: 0.01,
            torsions: true,
            epochs: 50,
            batch_size: 64,
            learning_rate: 1e-3,
            validation_fraction: 0.2,
            validation_blocks: 10,
        }
    }
}

pub struct FitPotential;

impl Stage for FitPotential {
    type Params = FitPotentialParams;
    const NAME: &'static str = "fit_potential";
    /// 2: bead-angle centres that follow the dihedrals shrink towards the mean angle
    /// where the frames never go (`theta_dihedral_shrinkage`).
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "CG potential U_hat (pair network on bead distances + torsion \
         network on bead dihedrals + harmonic bond and repulsion priors) by force matching on \
         mapped frames; keeps the epoch with the lowest validation force RMSE";
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
            kind: TABLE,
            about: "per epoch: epoch, train_loss, train_force_rmse, validation_force_rmse \
                    (kJ/mol/nm), best",
        },
        Port {
            name: "summary",
            kind: TABLE,
            about: "one row: frames, best epoch, its force RMSEs, and the references: force \
                    RMS, zero-model and priors-only validation RMSE (kJ/mol/nm)",
        },
        Port {
            name: "split",
            kind: TABLE,
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
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "temperature_index",
            about: "rung of the temperature ladder to train on (0: the lowest)",
        },
        ParamDoc {
            name: "temperature_k",
            about: "temperature of the bond prior's Boltzmann inversion k = k_B T / var(d), K",
        },
        ParamDoc {
            name: "basis",
            about: "Gaussian radial basis functions per bead-pair distance",
        },
        ParamDoc {
            name: "cutoff_nm",
            about: "largest radial basis centre, nm",
        },
        ParamDoc {
            name: "hidden",
            about: "hidden layer widths of the pair network",
        },
        ParamDoc {
            name: "activation",
            about: "activation of the pair network: silu, tanh or softplus",
        },
        ParamDoc {
            name: "repulsion_kj_per_mol",
            about: "eps of the repulsion prior eps (sigma/d)^6, kJ/mol (0: none)",
        },
        ParamDoc {
            name: "repulsion_sigma_nm",
            about: "sigma of the repulsion prior, nm; null: 0.9 x the smallest bead-pair \
                    distance in the training frames",
        },
        ParamDoc {
            name: "bond_prior",
            about: "harmonic bonds between consecutive beads, by Boltzmann inversion of the \
                    training frames",
        },
        ParamDoc {
            name: "angle_prior",
            about: "harmonic priors on the distances between beads i and i+2 (angles in \
                    Urey-Bradley form) by Boltzmann inversion (default false; exclusive with \
                    theta_prior)",
        },
        ParamDoc {
            name: "theta_prior",
            about: "harmonic priors on the bead angles theta_(i,i+1,i+2) by Boltzmann inversion, \
                    k = k_B T / var(theta) (default true; unlike angle_prior it keeps the bonds' \
                    and 1-3 distances' fluctuations coupled as in the data)",
        },
        ParamDoc {
            name: "dihedral_prior_order",
            about: "a prior on each consecutive bead dihedral psi: the Fourier series of order M \
                    (at most 8) of -k_B T ln p(psi) from a 36-bin histogram of the training \
                    frames (one pseudo-count per bin); default 6, 0: none",
        },
        ParamDoc {
            name: "theta_dihedral_order",
            about: "with theta_prior: each bead angle's centre as a Fourier series of order L \
                    (at most 4) in the dihedrals next to it, fitted by least squares, k = k_B T \
                    over the residual variance; bead angles then follow the basins as the FG \
                    ones do. Default 0 (a fixed centre)",
        },
        ParamDoc {
            name: "theta_dihedral_shrinkage",
            about: "with theta_dihedral_order: pseudo-observations at the mean bead angle,                     spread evenly over the torus of the dihedrals, of this total weight as a                     fraction of the training frames (default 0.001): where the frames never                     go the centres stay near the mean angle instead of following the series                     out of range (a ridge penalty in the Fourier basis)",
        },
        ParamDoc {
            name: "dihedral_pair_order",
            about: "a prior on each pair of consecutive bead dihedrals (psi_q, psi_q+1): -k_B T \
                    ln of their kernel density estimate on the torus (wrapped Gaussian of width \
                    sqrt(8)/M rad), as a Fourier series of order M (at most 24); it gives the \
                    joint distribution, where dihedral_prior_order gives each marginal alone. \
                    Default 0 (none); set dihedral_prior_order to 0 with it",
        },
        ParamDoc {
            name: "dihedral_pair_floor",
            about: "the dihedral-pair prior's density floor, a fraction of the uniform density \
                    1/(4 pi^2) (default 0.01): where the frames never go the prior is flat at \
                    about -k_B T ln(floor) above the uniform level, which bounds the barriers \
                    between basins",
        },
        ParamDoc {
            name: "torsions",
            about: "add a torsion network on cos and sin of the dihedral of each consecutive \
                    bead quadruple (needs 4 beads; distances alone cannot tell a chiral chain \
                    from its mirror image)",
        },
        ParamDoc {
            name: "epochs",
            about: "passes over the training frames; 0 trains nothing: the networks' weights \
                    are zero and the potential is its priors alone",
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
            name: "validation_fraction",
            about: "fraction of the blocks held out for validation, in (0, 1)",
        },
        ParamDoc {
            name: "validation_blocks",
            about: "contiguous blocks the frames are cut into for the split (at least 2)",
        },
    ];

    fn check(p: &FitPotentialParams) -> Result<(), ParamProblem> {
        let positive = ParamProblem::positive;
        if p.temperature_index < 0 {
            return Err(ParamProblem::new("temperature_index", "must be 0 or more"));
        }
        positive("temperature_k", p.temperature_k)?;
        if p.dihedral_prior_order > 8 {
            return Err(ParamProblem::new(
                "dihedral_prior_order",
                format!(
                    "at most 8 (a 36-bin histogram), got {}",
                    p.dihedral_prior_order
                ),
            ));
        }
        ParamProblem::at_most(
            "theta_dihedral_order",
            p.theta_dihedral_order,
            angle_dihedral_prior::MAX_ORDER,
        )?;
        if !(p.theta_dihedral_shrinkage.is_finite()
            && (0.0..1.0).contains(&p.theta_dihedral_shrinkage))
        {
            return Err(ParamProblem::new(
                "theta_dihedral_shrinkage",
                format!("must be in [0, 1), got {}", p.theta_dihedral_shrinkage),
            ));
        }
        if p.theta_dihedral_order > 0 && !p.theta_prior {
            return Err(ParamProblem::new(
                "theta_dihedral_order",
                "moves the centres of the theta prior: set theta_prior: true with it",
            ));
        }
        ParamProblem::at_most(
            "dihedral_pair_order",
            p.dihedral_pair_order,
            dihedral_pairs::MAX_ORDER,
        )?;
        if p.dihedral_pair_order > 0 && p.dihedral_prior_order > 0 {
            return Err(ParamProblem::new(
                "dihedral_pair_order",
                "the dihedral-pair prior holds each dihedral's marginal too; set \
                 dihedral_prior_order: 0 with it",
            ));
        }
        if !(p.dihedral_pair_floor > 0.0 && p.dihedral_pair_floor <= 1.0) {
            return Err(ParamProblem::new(
                "dihedral_pair_floor",
                format!(
                    "must be in (0, 1] (a fraction of the uniform density), got {}",
                    p.dihedral_pair_floor
                ),
            ));
        }
        if p.angle_prior && p.theta_prior {
            return Err(ParamProblem::new(
                "theta_prior",
                "angle_prior and theta_prior both hold the bead angles (each alone is a full \
                 Boltzmann inversion); set one of them to false",
            ));
        }
        if !(2..=1024).contains(&p.basis) {
            return Err(ParamProblem::new(
                "basis",
                format!("must be between 2 and 1024, got {}", p.basis),
            ));
        }
        positive("cutoff_nm", p.cutoff_nm)?;
        if let Some(&h) = p.hidden.iter().find(|&&h| !(1..=8192).contains(&h)) {
            return Err(ParamProblem::new(
                "hidden",
                format!("layer widths must be between 1 and 8192, got {h}"),
            ));
        }
        if !(p.repulsion_kj_per_mol.is_finite() && p.repulsion_kj_per_mol >= 0.0) {
            return Err(ParamProblem::new(
                "repulsion_kj_per_mol",
                format!("must be 0 or more, got {}", p.repulsion_kj_per_mol),
            ));
        }
        if let Some(s) = p.repulsion_sigma_nm {
            positive("repulsion_sigma_nm", s)?;
        }
        if p.batch_size == 0 {
            return Err(ParamProblem::new("batch_size", "must be at least 1"));
        }
        if !(p.learning_rate.is_finite() && p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            return Err(ParamProblem::new(
                "learning_rate",
                format!("must be in (0, 1], got {}", p.learning_rate),
            ));
        }
        if !(p.validation_fraction > 0.0 && p.validation_fraction < 1.0) {
            return Err(ParamProblem::new(
                "validation_fraction",
                format!("must be in (0, 1), got {}", p.validation_fraction),
            ));
        }
        if p.validation_blocks < 2 {
            return Err(ParamProblem::new(
                "validation_blocks",
                "must be at least 2 (one for training, one for validation)",
            ));
        }
        Ok(())
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
        let repulsion_sigma_nm = match p.repulsion_sigma_nm {
            Some(s) => s,
            None => 0.9 * data.smallest_distance(&train),
        };
        let kt = BOLTZMANN * p.temperature_k;
        let (bond_k, bond_r0_nm) = if p.bond_prior {
            data.boltzmann_inverted_pairs(&train, kt, 1, "bond_prior")?
        } else {
            (Vec::new(), Vec::new())
        };
        let (angle_k, angle_r0_nm) = if p.angle_prior && n >= 3 {
            data.boltzmann_inverted_pairs(&train, kt, 2, "angle_prior")?
        } else {
            (Vec::new(), Vec::new())
        };
        let (theta_k, theta0_rad, theta_dihedral) = if p.theta_prior && n >= 3 {
            if p.theta_dihedral_order > 0 && n >= 4 {
                data.dihedral_dependent_angles(
                    &train,
                    kt,
                    p.theta_dihedral_order,
                    p.theta_dihedral_shrinkage,
                )?
            } else {
                let (k, theta0) = data.boltzmann_inverted_angles(&train, kt)?;
                (k, theta0, Vec::new())
            }
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        let dihedral_fourier = if p.dihedral_prior_order > 0 && n >= 4 {
            data.boltzmann_inverted_dihedrals(&train, kt, p.dihedral_prior_order)
        } else {
            Vec::new()
        };
        if p.dihedral_pair_order > 0 && n.saturating_sub(3) > dihedral_pairs::MAX_DIHEDRALS {
            return Err(bad_input(format!(
                "{n} beads have {} dihedrals; the dihedral-pair prior takes at most {} (set \
                 dihedral_pair_order: 0)",
                n - 3,
                dihedral_pairs::MAX_DIHEDRALS
            )));
        }
        let (dihedral_pairs, dihedral_pair_kt, dihedral_pair_floor) =
            if p.dihedral_pair_order > 0 && n >= 5 {
                let uniform = 1.0 / (4.0 * std::f64::consts::PI * std::f64::consts::PI);
                (
                    data.dihedral_pair_densities(&train, p.dihedral_pair_order),
                    kt,
                    p.dihedral_pair_floor * uniform,
                )
            } else {
                (Vec::new(), 0.0, 0.0)
            };
        let config = CgPotentialConfig {
            basis: p.basis,
            cutoff_nm: p.cutoff_nm,
            hidden: p.hidden.clone(),
            activation: p.activation,
            repulsion_kj_per_mol: p.repulsion_kj_per_mol,
            repulsion_sigma_nm,
            bond_k,
            bond_r0_nm,
            angle_k,
            angle_r0_nm,
            torsions: p.torsions,
            theta_k,
            theta0_rad,
            theta_dihedral,
            dihedral_fourier,
            dihedral_pairs,
            dihedral_pair_kt,
            dihedral_pair_floor,
        };
        tracing::info!(
            "{n} beads, {} training and {} validation frames; repulsion sigma {:.4} nm; \
             bond prior r0 {:?} nm, k {:?} kJ/mol/nm^2",
            train.len(),
            validation.len(),
            repulsion_sigma_nm,
            config.bond_r0_nm,
            config.bond_k
        );
        let mut seed = [0u8; 32];
        ctx.rng.fill_bytes(&mut seed);
        let store = ParameterStore::new(seed);
        let device = Device::Cpu;
        let potential = CgPotential::new(n, config.clone(), store.var_builder(DType::F64, &device))
            .map_err(nn_error)?;

        // References a user judges the fit by.
        let force_rms = data.force_rms(&(0..data.len()).collect::<Vec<_>>());
        let zero_model_rmse = data.force_rms(&validation);
        let prior_rmse = {
            let prior_store = ParameterStore::new([0; 32]);
            let prior = CgPotential::new(
                n,
                config.clone(),
                prior_store.var_builder(DType::F64, &device),
            )
            .map_err(nn_error)?;
            zero_weights(&prior_store).map_err(nn_error)?;
            force_rmse(&prior, &data, &validation).map_err(nn_error)?
        };
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
        let mut best: Option<(usize, Vec<NamedTensor>)> = None;
        if p.epochs == 0 {
            // No training: the networks' weights are zero, so they add nothing and the
            // potential is its priors alone (epoch 0 of the curve).
            let zeros = zero_weights(&store).map_err(nn_error)?;
            let train_rmse = force_rmse(&potential, &data, &train).map_err(nn_error)?;
            curve.train_loss.push(train_rmse * train_rmse);
            curve.train.push(train_rmse);
            curve.validation.push(prior_rmse);
            best = Some((0, zeros));
        }
        ctx.progress.start("epochs", p.epochs as u64);
        for epoch in 1..=p.epochs {
            let mut loss_sum = 0.0;
            for batch in minibatches(&train, p.batch_size, &mut batch_rng) {
                let z = data.positions(&batch, &device).map_err(nn_error)?;
                let f = data.forces(&batch, &device).map_err(nn_error)?;
                let loss = potential.force_matching_loss(&z, &f).map_err(nn_error)?;
                loss_sum += step(&mut optimizer, &loss).map_err(nn_error)? * batch.len() as f64;
            }
            let train_loss = loss_sum / train.len() as f64;
            let train_rmse = force_rmse(&potential, &data, &train).map_err(nn_error)?;
            let validation_rmse = force_rmse(&potential, &data, &validation).map_err(nn_error)?;
            let improved = validation_rmse.is_finite()
                && best
                    .as_ref()
                    .is_none_or(|(b, _)| validation_rmse < curve.validation[b - 1]);
            if improved {
                best = Some((epoch, store.to_tensors().map_err(nn_error)?));
            }
            tracing::info!(
                "epoch {epoch}/{}: train loss {train_loss:.4} (kJ/mol/nm)^2, force RMSE train \
                 {train_rmse:.4}, validation {validation_rmse:.4} kJ/mol/nm{}",
                p.epochs,
                if improved { " (best)" } else { "" }
            );
            curve.train_loss.push(train_loss);
            curve.train.push(train_rmse);
            curve.validation.push(validation_rmse);
            ctx.progress.advance(1);
        }
        let Some((best_epoch, best_weights)) = best else {
            return Err(StageError::Failed(format!(
                "force matching diverged: the validation force RMSE was not finite in any of \
                 the {} epochs (try a smaller learning_rate)",
                p.epochs
            )));
        };
        store.load(&best_weights).map_err(nn_error)?;
        let saved = save_potential(n, &config, &store).map_err(nn_error)?;
        let best_row = best_epoch - curve.first_epoch;
        tracing::info!(
            "kept epoch {best_epoch}: validation force RMSE {:.4} kJ/mol/nm (zero model \
             {zero_model_rmse:.4}, priors alone {prior_rmse:.4})",
            curve.validation[best_row]
        );

        let summary = Summary {
            train_frames: train.len(),
            validation_frames: validation.len(),
            best_epoch,
            train_force_rmse: curve.train[best_row],
            validation_force_rmse: curve.validation[best_row],
            force_rms,
            zero_model_validation_force_rmse: zero_model_rmse,
            prior_validation_force_rmse: prior_rmse,
            repulsion_sigma_nm,
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

/// The frames trained on: positions and forces, 3n values each per frame.
struct Frames {
    n: usize,
    positions: Vec<f64>,
    forces: Vec<f64>,
}

impl Frames {
    fn new(
        trajectory: &Trajectory,
        rows: &[usize],
        temperature_index: i32,
    ) -> Result<Self, StageError> {
        let n = trajectory.n_atoms;
        if n < 2 {
            return Err(bad_input(format!(
                "{n} bead(s) per frame; a CG potential needs at least 2"
            )));
        }
        if rows.len() < MIN_FRAMES {
            let mut present = trajectory.temperature_index.clone();
            present.sort_unstable();
            present.dedup();
            return Err(bad_input(format!(
                "{} frames at temperature_index {temperature_index} (present: {present:?}); \
                 force matching needs at least {MIN_FRAMES}",
                rows.len()
            )));
        }
        let selected = trajectory.select(rows);
        let frames = Frames {
            n,
            positions: selected.positions_nm,
            forces: selected.forces,
        };
        let width = 3 * n;
        for (what, values) in [("positions", &frames.positions), ("forces", &frames.forces)] {
            if let Some(k) = values.iter().position(|v| !v.is_finite()) {
                return Err(bad_input(format!(
                    "frame {} has a non-finite value in its {what}",
                    rows[k / width]
                )));
            }
        }
        for (t, &row) in rows.iter().enumerate() {
            for (i, j) in pairs(n) {
                if frames.distance(t, i, j) == 0.0 {
                    return Err(bad_input(format!(
                        "frame {row}: beads {i} and {j} coincide"
                    )));
                }
            }
        }
        Ok(frames)
    }

    fn len(&self) -> usize {
        self.positions.len() / (3 * self.n)
    }

    fn bead(&self, frame: usize, i: usize) -> &[f64] {
        let at = 3 * (frame * self.n + i);
        &self.positions[at..at + 3]
    }

    fn point(&self, frame: usize, i: usize) -> [f64; 3] {
        let v = self.bead(frame, i);
        [v[0], v[1], v[2]]
    }

    fn distance(&self, frame: usize, i: usize, j: usize) -> f64 {
        let (a, b) = (self.bead(frame, i), self.bead(frame, j));
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    }

    fn positions(
        &self,
        frames: &[usize],
        device: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        gather_frames(&self.positions, 3 * self.n, frames, DType::F64, device)
    }

    fn forces(
        &self,
        frames: &[usize],
        device: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        gather_frames(&self.forces, 3 * self.n, frames, DType::F64, device)
    }

    /// The smallest bead-pair distance over `frames`, nm.
    fn smallest_distance(&self, frames: &[usize]) -> f64 {
        frames
            .iter()
            .flat_map(|&t| pairs(self.n).map(move |(i, j)| (t, i, j)))
            .map(|(t, i, j)| self.distance(t, i, j))
            .fold(f64::INFINITY, f64::min)
    }

    /// Harmonic priors on the pairs (i, i + separation) from the distance statistics
    /// over `frames`: (k = kT / var, r0 = mean); `what` and `param` name the prior in
    /// errors.
    fn boltzmann_inverted_pairs(
        &self,
        frames: &[usize],
        kt: f64,
        separation: usize,
        param: &str,
    ) -> Result<(Vec<f64>, Vec<f64>), StageError> {
        let count = self.n.saturating_sub(separation);
        let mut k = Vec::with_capacity(count);
        let mut r0 = Vec::with_capacity(count);
        for i in 0..count {
            let j = i + separation;
            let d: Vec<f64> = frames.iter().map(|&t| self.distance(t, i, j)).collect();
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d.len() as f64;
            if var <= 1e-12 * mean * mean {
                return Err(bad_input(format!(
                    "the distance between beads {i} and {j} does not vary over the training \
                     frames ({mean} nm): no harmonic prior by Boltzmann inversion (set \
                     {param}: false)"
                )));
            }
            k.push(kt / var);
            r0.push(mean);
        }
        Ok((k, r0))
    }

    /// Harmonic priors on the bead angles theta_(i,i+1,i+2) by Boltzmann inversion over
    /// `frames`: theta0 the mean (rad), k = k_B T / var(theta) (kJ/mol/rad^2).
    fn boltzmann_inverted_angles(
        &self,
        frames: &[usize],
        kt: f64,
    ) -> Result<(Vec<f64>, Vec<f64>), StageError> {
        let mut k = Vec::with_capacity(self.n.saturating_sub(2));
        let mut theta0 = Vec::with_capacity(k.capacity());
        for i in 0..self.n.saturating_sub(2) {
            let theta: Vec<f64> = frames
                .iter()
                .map(|&t| {
                    bond_angle_rad(self.point(t, i), self.point(t, i + 1), self.point(t, i + 2))
                })
                .collect();
            let mean = theta.iter().sum::<f64>() / theta.len() as f64;
            let var = theta.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / theta.len() as f64;
            if var <= 1e-12 {
                return Err(bad_input(format!(
                    "the angle of beads {i}, {}, {} does not vary over the training frames: no \
                     harmonic prior by Boltzmann inversion (set theta_prior: false)",
                    i + 1,
                    i + 2
                )));
            }
            k.push(kt / var);
            theta0.push(mean);
        }
        Ok((k, theta0))
    }

    /// Fourier priors on the dihedrals psi_q of consecutive bead quadruples by Boltzmann
    /// inversion over `frames`: F_k = -kT ln p_k on 36 bins of (-pi, pi] (counts plus one,
    /// normalized), then a_m = (2/B) sum_k F_k cos(m psi_k), b_m likewise with sin, m =
    /// 1..order (the least-squares Fourier fit on a uniform grid; the constant is
    /// dropped). Layout as `CgPotentialConfig::dihedral_fourier`.
    fn boltzmann_inverted_dihedrals(&self, frames: &[usize], kt: f64, order: usize) -> Vec<f64> {
        const BINS: usize = 36;
        let width = 2.0 * std::f64::consts::PI / BINS as f64;
        let mut out = Vec::new();
        for q in 0..self.n.saturating_sub(3) {
            let mut counts = [1.0f64; BINS];
            for &t in frames {
                let x = |b: usize| self.point(t, b);
                let psi = dihedral_deg(x(q), x(q + 1), x(q + 2), x(q + 3)).to_radians();
                if psi.is_finite() {
                    let k = ((psi + std::f64::consts::PI) / width) as usize;
                    counts[k.min(BINS - 1)] += 1.0;
                }
            }
            let total: f64 = counts.iter().sum();
            let free: Vec<f64> = counts.iter().map(|c| -kt * (c / total).ln()).collect();
            for m in 1..=order {
                let (mut a, mut b) = (0.0, 0.0);
                for (k, f) in free.iter().enumerate() {
                    let psi = -std::f64::consts::PI + (k as f64 + 0.5) * width;
                    a += f * (m as f64 * psi).cos();
                    b += f * (m as f64 * psi).sin();
                }
                out.push(2.0 * a / BINS as f64);
                out.push(2.0 * b / BINS as f64);
            }
        }
        out
    }

    /// Bead-angle priors whose centres follow the neighbouring dihedrals
    /// ([`crate::nn::angle_dihedral_prior`]): per angle, least squares of theta on the
    /// Fourier basis of order `order` in its dihedrals, k = kT / var(residual). Returns
    /// (k, theta0 = the constant term, the other coefficients with entry (0, 0) zero).
    ///
    /// The frames cover a small part of the torus, and an unconstrained series is free
    /// to leave the range of angles there (one fit reached -930 degrees at phi > 0 where
    /// 3,000 frames had none, and CG chains that went there blew up). So the fit adds
    /// pseudo-observations at the frames' mean angle theta_bar, spread evenly over the
    /// torus, of total weight `shrinkage` n: with the basis orthogonal over the torus
    /// that is the ridge term shrinkage n sum_r <f_r^2> (c_r - theta_bar [r = 0])^2
    /// (<f_r^2> the basis function's mean square: 1, 1/2 or 1/4). A small ridge, 1e-10
    /// of the diagonal, keeps the normal equations solvable.
    fn dihedral_dependent_angles(
        &self,
        frames: &[usize],
        kt: f64,
        order: usize,
        shrinkage: f64,
    ) -> Result<AnglePriors, StageError> {
        let side = 2 * order + 1;
        let width = side * side;
        let dihedrals = self.n.saturating_sub(3);
        let dihedral = |t: usize, q: usize| {
            let x = |b: usize| self.point(t, b);
            let psi = dihedral_deg(x(q), x(q + 1), x(q + 2), x(q + 3)).to_radians();
            psi.is_finite().then_some(psi)
        };
        let (mut k, mut theta0, mut coefficients) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..self.n.saturating_sub(2) {
            let mut normal = vec![0.0; width * width];
            let mut rhs = vec![0.0; width];
            let mut rows = Vec::with_capacity(frames.len());
            for &t in frames {
                let a = if i >= 1 && i - 1 < dihedrals {
                    dihedral(t, i - 1)
                } else {
                    None
                };
                let b = if i < dihedrals { dihedral(t, i) } else { None };
                let row = angle_dihedral_prior::design_row(a, b, order);
                let theta =
                    bond_angle_rad(self.point(t, i), self.point(t, i + 1), self.point(t, i + 2));
                for r in 0..width {
                    rhs[r] += row[r] * theta;
                    for c in 0..width {
                        normal[r * width + c] += row[r] * row[c];
                    }
                }
                rows.push((row, theta));
            }
            let weight = shrinkage * frames.len() as f64;
            let theta_bar =
                rows.iter().map(|(_, theta)| theta).sum::<f64>() / rows.len().max(1) as f64;
            for r in 0..width {
                let (j, l) = (r / side, r % side);
                let mean_square = |i: usize| if i == 0 { 1.0 } else { 0.5 };
                let d = normal[r * width + r];
                if d > 0.0 {
                    normal[r * width + r] += weight * mean_square(j) * mean_square(l);
                }
            }
            rhs[0] += weight * theta_bar;
            // Basis functions of an absent dihedral are zero: pin their coefficients.
            for r in 0..width {
                let d = normal[r * width + r];
                normal[r * width + r] = if d > 0.0 { d * (1.0 + 1e-10) } else { 1.0 };
            }
            let c = solve_symmetric(&mut normal, &mut rhs, width).ok_or_else(|| {
                bad_input(format!(
                    "the bead angle {i}, {}, {} cannot be fitted to its dihedrals (set \
                     theta_dihedral_order: 0)",
                    i + 1,
                    i + 2
                ))
            })?;
            let var = rows
                .iter()
                .map(|(row, theta)| {
                    let fit: f64 = row.iter().zip(&c).map(|(f, w)| f * w).sum();
                    (theta - fit).powi(2)
                })
                .sum::<f64>()
                / rows.len() as f64;
            if var <= 1e-12 {
                return Err(bad_input(format!(
                    "the angle of beads {i}, {}, {} does not vary about its fit over the \
                     training frames: no harmonic prior (set theta_prior: false)",
                    i + 1,
                    i + 2
                )));
            }
            k.push(kt / var);
            theta0.push(c[0]);
            coefficients.push(0.0);
            coefficients.extend(&c[1..]);
        }
        Ok((k, theta0, coefficients))
    }

    /// The dihedral-pair prior's coefficients ([`crate::nn::dihedral_pairs`]) from the
    /// bead dihedrals of `frames`, each consecutive pair in turn.
    fn dihedral_pair_densities(&self, frames: &[usize], order: usize) -> Vec<f64> {
        let dihedral = |t: usize, q: usize| {
            let x = |b: usize| self.point(t, b);
            dihedral_deg(x(q), x(q + 1), x(q + 2), x(q + 3)).to_radians()
        };
        let mut out = Vec::new();
        for q in 0..self.n.saturating_sub(4) {
            let samples: Vec<(f64, f64)> = frames
                .iter()
                .map(|&t| (dihedral(t, q), dihedral(t, q + 1)))
                .collect();
            // Frames are checked finite on load; a degenerate dihedral in every frame
            // leaves a uniform density.
            out.extend(
                dihedral_pairs::fit_pair(&samples, order).unwrap_or_else(|| {
                    let mut uniform = vec![0.0; 2 * (2 * order + 1).pow(2)];
                    uniform[2 * (2 * order + 1) * order + 2 * order] =
                        1.0 / (4.0 * std::f64::consts::PI * std::f64::consts::PI);
                    uniform
                }),
            );
        }
        out
    }

    /// sqrt(mean over `frames`, beads and components of F_inst^2).
    fn force_rms(&self, frames: &[usize]) -> f64 {
        let width = 3 * self.n;
        let sum: f64 = frames
            .iter()
            .flat_map(|&t| &self.forces[t * width..(t + 1) * width])
            .map(|f| f * f)
            .sum();
        (sum / (frames.len() * width) as f64).sqrt()
    }
}

/// (k, theta0, Fourier coefficients) of the bead-angle priors.
type AnglePriors = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Solves A x = b for a symmetric positive-definite A (row-major n x n) by Cholesky,
/// overwriting A; None when A is not positive definite.
fn solve_symmetric(a: &mut [f64], b: &mut [f64], n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // L y = b, then L^T x = y.
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    Some(b.to_vec())
}

/// Bead pairs (i, j), i < j.
fn pairs(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).flat_map(move |i| (i + 1..n).map(move |j| (i, j)))
}

/// sqrt(mean over `frames`, beads and components of (F_model - F_inst)^2), kJ/mol/nm,
/// evaluated in chunks of frames.
fn force_rmse(
    potential: &CgPotential,
    data: &Frames,
    frames: &[usize],
) -> candle_core::Result<f64> {
    let device = Device::Cpu;
    let mut sum = 0.0;
    for chunk in frames.chunks(EVAL_CHUNK) {
        let z = data.positions(chunk, &device)?;
        let f = data.forces(chunk, &device)?;
        let (_, model) = potential.energy_and_forces(&z)?;
        sum += (model - f)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    }
    Ok((sum / (frames.len() * 3 * data.n) as f64).sqrt())
}

/// Per-epoch numbers.
#[derive(Default)]
struct Curve {
    /// Epoch of the first row: 1, or 0 for the priors alone (`epochs: 0`).
    first_epoch: usize,
    train_loss: Vec<f64>,
    train: Vec<f64>,
    validation: Vec<f64>,
}

struct Summary {
    train_frames: usize,
    validation_frames: usize,
    best_epoch: usize,
    train_force_rmse: f64,
    validation_force_rmse: f64,
    force_rms: f64,
    zero_model_validation_force_rmse: f64,
    prior_validation_force_rmse: f64,
    repulsion_sigma_nm: f64,
}

impl Curve {
    fn table(&self, best_epoch: usize) -> RecordBatch {
        let (first, last) = (self.first_epoch, self.first_epoch + self.train.len());
        let schema = Schema::new(vec![
            Field::new("epoch", DataType::Int64, false),
            Field::new("train_loss", DataType::Float64, false),
            Field::new("train_force_rmse", DataType::Float64, false),
            Field::new("validation_force_rmse", DataType::Float64, false),
            Field::new("best", DataType::Boolean, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(first as i64..last as i64)),
                Arc::new(Float64Array::from(self.train_loss.clone())),
                Arc::new(Float64Array::from(self.train.clone())),
                Arc::new(Float64Array::from(self.validation.clone())),
                Arc::new(BooleanArray::from(
                    (first..last).map(|e| e == best_epoch).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("columns match the learning-curve schema")
    }

    fn figure(&self, s: &Summary, beads: usize) -> Figure {
        let per_epoch = |values: &[f64]| -> Vec<(f64, f64)> {
            values
                .iter()
                .enumerate()
                .map(|(e, &v)| ((e + self.first_epoch) as f64, v))
                .collect()
        };
        let (first, last) = (
            self.first_epoch as f64,
            (self.first_epoch + self.train.len()).saturating_sub(1) as f64,
        );
        let flat = |v: f64| vec![(first, v), (last, v)];
        let rmse = Panel {
            title: "Force RMSE".into(),
            x_label: "epoch".into(),
            y_label: "RMSE (kJ/mol/nm)".into(),
            log_y: true,
            series: vec![
                Series {
                    label: "train".into(),
                    points: per_epoch(&self.train),
                    color: 0,
                    ..Default::default()
                },
                Series {
                    label: "validation".into(),
                    points: per_epoch(&self.validation),
                    color: 1,
                    ..Default::default()
                },
                Series {
                    label: "zero model (validation)".into(),
                    points: flat(s.zero_model_validation_force_rmse),
                    color: 7,
                    ..Default::default()
                },
                Series {
                    label: "priors only (validation)".into(),
                    points: flat(s.prior_validation_force_rmse),
                    color: 2,
                    ..Default::default()
                },
                Series {
                    label: format!("kept: epoch {}", s.best_epoch),
                    points: vec![(s.best_epoch as f64, s.validation_force_rmse)],
                    color: 3,
                    ..Default::default()
                },
            ],
        };
        let loss = Panel {
            title: "Training loss".into(),
            x_label: "epoch".into(),
            y_label: "loss ((kJ/mol/nm)²)".into(),
            log_y: true,
            series: vec![Series {
                label: "minibatch mean".into(),
                points: per_epoch(&self.train_loss),
                color: 0,
                ..Default::default()
            }],
        };
        Figure {
            title: format!(
                "fit_potential: {beads} beads, {} training / {} validation frames",
                s.train_frames, s.validation_frames
            ),
            columns: 2,
            panel_size: (600, 440),
            panels: vec![rmse, loss],
        }
    }
}

impl Summary {
    fn table(&self) -> RecordBatch {
        let f = |name: &str| Field::new(name, DataType::Float64, false);
        let i = |name: &str| Field::new(name, DataType::Int64, false);
        let schema = Schema::new(vec![
            i("train_frames"),
            i("validation_frames"),
            i("best_epoch"),
            f("train_force_rmse"),
            f("validation_force_rmse"),
            f("force_rms"),
            f("zero_model_validation_force_rmse"),
            f("prior_validation_force_rmse"),
            f("repulsion_sigma_nm"),
        ]);
        let int =
            |v: usize| Arc::new(Int64Array::from(vec![v as i64])) as Arc<dyn arrow_array::Array>;
        let float = |v: f64| Arc::new(Float64Array::from(vec![v])) as Arc<dyn arrow_array::Array>;
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                int(self.train_frames),
                int(self.validation_frames),
                int(self.best_epoch),
                float(self.train_force_rmse),
                float(self.validation_force_rmse),
                float(self.force_rms),
                float(self.zero_model_validation_force_rmse),
                float(self.prior_validation_force_rmse),
                float(self.repulsion_sigma_nm),
            ],
        )
        .expect("columns match the summary schema")
    }
}

fn split_table(rows: &[usize], is_validation: &[bool]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("frame", DataType::Int64, false),
        Field::new("validation", DataType::Boolean, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|&r| r as i64))),
            Arc::new(BooleanArray::from(is_validation.to_vec())),
        ],
    )
    .expect("columns match the split schema")
}
