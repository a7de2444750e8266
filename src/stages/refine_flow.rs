//! `refine_flow`: fine-tune a trained inverse map p(q | z) on the FG energy, by the
//! conditional reverse KL mixed with maximum likelihood.
//!
//! A flow fitted by maximum likelihood alone is too broad or too thin where its frames
//! are few, and the reweighting pays for it in weight. After `train_flow`, each
//! iteration takes `batch_size` training frames, draws one q ~ p(. | s(z)) per frame's
//! CG image with the flow's graph kept, and descends
//!
//! ```text
//! L = ml_weight NLL + (1 - ml_weight) E[l],   l = beta U(x(q)) - ln J(q) + ln p(q | z)
//! ```
//!
//! (nats per frame; NLL on the same frames). E[l] is the conditional reverse KL up to
//! ln Z(s), which does not depend on the flow ([`crate::nn::reverse_kl`]: the
//! reparameterized gradient, energies above `energy_cut_kt` in log scale, the
//! `drop_worst` largest l of each batch left out). The gradient's global norm is clipped
//! to `max_gradient_norm`; Adam. U is the force field the FG frames were sampled with
//! (input `force_field`), at the frames' temperature.
//!
//! `checkpoints` times during the run (and once before it) the flow is evaluated on
//! held-out frames (contiguous blocks, as in `train_flow`): their NLL, and for
//! `validation_contexts` of them `validation_draws` draws each from fixed base points:
//! the mean l and the mean conditional ESS, the Kish ESS of the draws' weights
//! w = exp(-l) within each context as a fraction of the draws (1 when p(q | z) is the
//! Boltzmann conditional). The checkpoint with the lowest validation L is kept; the
//! starting flow counts as checkpoint 0, so a refinement that does not help returns the
//! flow it was given.
//!
//! Only maps that pin the beads' coordinates (the backbone map onto the Z-matrix's
//! seeds) have a conditional target the draws can reach exactly; other maps are
//! refused.
//!
//! Outputs:
//! - `flow` (inverse_map): the refined model (same Z-matrix, map, box and scaling).
//! - `learning_curve` (table): one row per checkpoint (see [`RefineRow`]).
//!
//! Randomness: the split (stream 1), the batches (2), the draws (3), the validation
//! base points (4).

use candle_core::{DType, Var};
use candle_nn::Optimizer;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::fg_sample::SolventModel;
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::force_field::{FORCE_FIELD, ForceFieldRecord};
use crate::artifact::kind::{ArtifactKind, INVERSE_MAP};
use crate::artifact::rows::{self, schema_of};
use crate::artifact::tensors::{from_table as tensors_from_table, to_table as tensors_table};
use crate::artifact::trajectory::TRAJECTORY;
use crate::md::forcefield::{ForceField, Solvent};
use crate::md::io::prmtop::parse_prmtop;
use crate::md::topology::Topology;
use crate::md::units::BOLTZMANN;
use crate::nn::flow::uniform_base;
use crate::nn::inverse_map::InverseMap;
use crate::nn::reverse_kl::{EnergyLoss, energy_batch, ess_fraction, log_weights};
use crate::nn::training::{
    BestEpoch, EpochReport, adam, block_split_sources, minibatches, train_keeping_best,
};

pub struct RefineFlow;

pub const REFINE_LEARNING_CURVE: ArtifactKind = ArtifactKind::table(
    "refine_learning_curve",
    schema_of::<RefineRow>,
    "per checkpoint: iteration, training and validation energy loss and NLL (nats per \
     frame), validation conditional ESS, the mixed validation loss, best",
);

/// A checkpoint of the refinement (checkpoint 0: the flow as given).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefineRow {
    pub checkpoint: i64,
    pub iteration: i64,
    /// Mean l of the kept draws since the previous checkpoint (NaN at 0).
    pub train_energy_loss: f64,
    /// Mean NLL of the batches since the previous checkpoint (NaN at 0).
    pub train_nll: f64,
    pub validation_nll: f64,
    /// Mean l of the validation draws whose energy is finite (NaN when none is).
    pub validation_energy_loss: f64,
    /// Validation draws whose energy was not finite (left out of the mean; weight 0 in
    /// the ESS).
    pub validation_nonfinite_draws: i64,
    /// Mean over validation contexts of the Kish ESS fraction of their draws.
    pub validation_conditional_ess: f64,
    /// ml_weight validation_nll + (1 - ml_weight) validation_energy_loss (the NLL alone at
    /// ml_weight 1).
    pub validation_loss: f64,
    pub best: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefineFlowParams {
    /// Rung of the frames' temperature ladder (its frames give the CG configurations
    /// and the ML term; its temperature the beta of the energy).
    pub temperature_index: i32,
    pub iterations: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub ml_weight: f64,
    pub drop_worst: usize,
    pub energy_cut_kt: f64,
    pub max_gradient_norm: f64,
    pub checkpoints: usize,
    pub validation_fraction: f64,
    pub validation_blocks: usize,
    pub validation_contexts: usize,
    pub validation_draws: usize,
}

impl Default for RefineFlowParams {
    fn default() -> Self {
        RefineFlowParams {
            temperature_index: 0,
            iterations: 400,
            batch_size: 128,
            learning_rate: 1e-4,
            ml_weight: 0.9,
            drop_worst: 4,
            energy_cut_kt: 1000.0,
            max_gradient_norm: 100.0,
            checkpoints: 10,
            validation_fraction: 0.2,
            validation_blocks: 10,
            validation_contexts: 64,
            validation_draws: 16,
        }
    }
}

const DOCS: &[ParamDoc] = &[
    ParamDoc {
        name: "temperature_index",
        about: "rung of the temperature ladder whose frames give the CG configurations and \
                the ML term, and whose temperature gives beta",
    },
    ParamDoc {
        name: "iterations",
        about: "optimizer steps",
    },
    ParamDoc {
        name: "batch_size",
        about: "frames per step: one draw per frame's CG configuration, and the NLL of the \
                frames",
    },
    ParamDoc {
        name: "learning_rate",
        about: "Adam step size (energy training wants it small: 1e-4 or less)",
    },
    ParamDoc {
        name: "ml_weight",
        about: "weight of the NLL in the loss, the reverse KL taking the rest (0.9: the \
                9:1 mix Boltzmann generators start from; 0: energy alone)",
    },
    ParamDoc {
        name: "drop_worst",
        about: "draws of each batch with the largest loss left out (a clash's forces \
                otherwise dominate the step)",
    },
    ParamDoc {
        name: "energy_cut_kt",
        about: "reduced energy above which the energy is taken in log scale, kT",
    },
    ParamDoc {
        name: "max_gradient_norm",
        about: "the gradient's global norm is clipped to this",
    },
    ParamDoc {
        name: "checkpoints",
        about: "evaluations on the held-out frames during the run (the best is kept, the \
                starting flow included)",
    },
    ParamDoc {
        name: "validation_fraction",
        about: "fraction of the frame blocks held out",
    },
    ParamDoc {
        name: "validation_blocks",
        about: "contiguous blocks the frames (of each trajectory) are cut into",
    },
    ParamDoc {
        name: "validation_contexts",
        about: "held-out CG configurations the conditional ESS is measured on",
    },
    ParamDoc {
        name: "validation_draws",
        about: "draws per held-out CG configuration",
    },
];

impl Stage for RefineFlow {
    type Params = RefineFlowParams;
    const NAME: &'static str = "refine_flow";
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "Fine-tune an inverse map p(q | z) on the FG energy: the conditional \
         reverse KL from the flow's own draws, mixed with maximum likelihood";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "flow",
            kind: INVERSE_MAP,
            about: "the inverse map to refine (from train_flow)",
        },
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "fine-grained frames of the flow's atoms (their CG images are the \
                    configurations the draws are conditioned on); a list is split per \
                    element and joined",
        },
        Port {
            name: "force_field",
            kind: FORCE_FIELD,
            about: "the force field the frames were sampled with (the FG node's \
                    `force_field`): the energy of the loss",
        },
    ];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "flow",
            kind: INVERSE_MAP,
            about: "the refined inverse map",
        },
        Port {
            name: "learning_curve",
            kind: REFINE_LEARNING_CURVE,
            about: "per checkpoint: energy loss, NLL, conditional ESS, best",
        },
    ];
    const PARAMS: &'static [ParamDoc] = DOCS;

    fn check(p: &RefineFlowParams) -> Result<(), ParamProblem> {
        if p.temperature_index < 0 {
            return Err(ParamProblem::new("temperature_index", "must be 0 or more"));
        }
        if p.iterations == 0 {
            return Err(ParamProblem::new("iterations", "must be at least 1"));
        }
        let depth = crate::nn::product_depth::MAX_PRODUCT_DEPTH;
        if p.batch_size < 2 || p.batch_size > depth {
            return Err(ParamProblem::new(
                "batch_size",
                format!("must be between 2 and {depth} (training replays bit for bit only then)"),
            ));
        }
        if p.drop_worst >= p.batch_size {
            return Err(ParamProblem::new(
                "drop_worst",
                "must be smaller than batch_size",
            ));
        }
        ParamProblem::positive("learning_rate", p.learning_rate)?;
        if !(0.0..=1.0).contains(&p.ml_weight) {
            return Err(ParamProblem::new("ml_weight", "must be between 0 and 1"));
        }
        ParamProblem::positive("energy_cut_kt", p.energy_cut_kt)?;
        ParamProblem::positive("max_gradient_norm", p.max_gradient_norm)?;
        if p.checkpoints == 0 || p.checkpoints > p.iterations {
            return Err(ParamProblem::new(
                "checkpoints",
                "must be between 1 and `iterations`",
            ));
        }
        if !(p.validation_fraction > 0.0 && p.validation_fraction < 1.0) {
            return Err(ParamProblem::new(
                "validation_fraction",
                "must be between 0 and 1 (exclusive)",
            ));
        }
        if p.validation_blocks < 2 {
            return Err(ParamProblem::new("validation_blocks", "must be at least 2"));
        }
        if p.validation_contexts == 0 {
            return Err(ParamProblem::new(
                "validation_contexts",
                "must be at least 1",
            ));
        }
        let draws = p.validation_draws.checked_mul(p.validation_contexts);
        if p.validation_draws < 2 || draws.is_none_or(|n| n > 1 << 20) {
            return Err(ParamProblem::new(
                "validation_draws",
                "must be at least 2, and validation_contexts x validation_draws at most 2^20",
            ));
        }
        Ok(())
    }

    fn run(
        p: &RefineFlowParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let tensors = tensors_from_table(inputs.table("flow")?)?;
        let model =
            InverseMap::load_trainable(&tensors).map_err(|e| StageError::bad_input("flow", e))?;
        if model.pinned == 0 {
            return Err(StageError::bad_input(
                "flow",
                "the map does not pin the beads' coordinates (a fixed map onto the \
                 Z-matrix's seed atoms): its draws cannot be conditioned on z exactly, so \
                 there is no conditional target to refine against",
            ));
        }
        let trajectory = inputs.joined_trajectory("trajectory")?;
        if trajectory.n_atoms != model.n_atoms() {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "{} atoms per frame, the flow has {}",
                    trajectory.n_atoms,
                    model.n_atoms()
                ),
            ));
        }
        // Rows at the rung, and how many come from each list element.
        let mut sources = Vec::new();
        let mut rows = Vec::new();
        let mut offset = 0;
        for table in inputs.tables("trajectory")? {
            let part = crate::artifact::trajectory::Trajectory::from_table(table)?;
            let before = rows.len();
            rows.extend(
                (0..part.len())
                    .filter(|&i| part.temperature_index[i] == p.temperature_index)
                    .map(|i| offset + i),
            );
            sources.push(rows.len() - before);
            offset += part.len();
        }
        if rows.len() < 2 * p.validation_blocks {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "{} frames at temperature_index {}; need at least {}",
                    rows.len(),
                    p.temperature_index,
                    2 * p.validation_blocks
                ),
            ));
        }
        let temperature_k = trajectory.temperature_k[rows[0]];
        if let Some(&r) = rows
            .iter()
            .find(|&&r| trajectory.temperature_k[r] != temperature_k)
        {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "frames at temperature_index {} are at {} K and {} K (frame {r}); refine \
                     on frames of one temperature",
                    p.temperature_index, temperature_k, trajectory.temperature_k[r]
                ),
            ));
        }
        let beta = 1.0 / (BOLTZMANN * temperature_k);
        let (topology, solvent) = force_field(inputs)?;
        if topology.n_atoms() != model.n_atoms() {
            return Err(StageError::bad_input(
                "force_field",
                format!(
                    "the topology has {} atoms, the flow {}",
                    topology.n_atoms(),
                    model.n_atoms()
                ),
            ));
        }
        ForceField::new(&topology, solvent).map_err(|e| StageError::Failed(e.to_string()))?;
        let energy = |x: &[f64]| -> Vec<(f64, Vec<f64>)> {
            let n = topology.n_atoms();
            x.par_chunks(16 * 3 * n)
                .flat_map_iter(|block| {
                    let mut ff = ForceField::new(&topology, solvent).expect("checked above");
                    let mut forces = vec![[0.0; 3]; n];
                    block
                        .chunks_exact(3 * n)
                        .map(|frame| {
                            let x: Vec<[f64; 3]> =
                                frame.chunks_exact(3).map(|a| [a[0], a[1], a[2]]).collect();
                            let u = ff.compute(&x, &mut forces).total();
                            (u, forces.iter().flatten().copied().collect())
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };

        // Frames' internal coordinates and their CG images.
        let x: Vec<f64> = rows
            .iter()
            .flat_map(|&r| trajectory.positions(r).iter().copied())
            .collect();
        let q = model.zmatrix.to_internal_frames(&x);
        let s = model.cg_coordinates(&model.bead_positions(&x));
        let (d, c) = (model.zmatrix.n_dof(), model.beads.n_dof());
        let pick = |values: &[f64], width: usize, frames: &[usize]| -> Vec<f64> {
            frames
                .iter()
                .flat_map(|&f| values[f * width..(f + 1) * width].iter().copied())
                .collect()
        };
        let (train, validation) = block_split_sources(
            &sources,
            p.validation_blocks,
            p.validation_fraction,
            &mut ctx.stream(1),
        );
        // Validation frames outside the flow's box have no density: left out.
        let drawn = |frames: &[usize]| -> Vec<f64> {
            frames
                .iter()
                .flat_map(|&f| q[f * d + model.pinned..(f + 1) * d].iter().copied())
                .collect()
        };
        let outside = model.unit_box.rows_outside(&drawn(&validation));
        let validation: Vec<usize> = validation
            .iter()
            .enumerate()
            .filter(|(k, _)| outside.binary_search(k).is_err())
            .map(|(_, &f)| f)
            .collect();
        let train_outside = model.unit_box.rows_outside(&drawn(&train));
        let train: Vec<usize> = train
            .iter()
            .enumerate()
            .filter(|(k, _)| train_outside.binary_search(k).is_err())
            .map(|(_, &f)| f)
            .collect();
        if train.len() < p.batch_size || validation.is_empty() {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "{} training and {} validation frames inside the flow's box; need a \
                     batch ({}) and one",
                    train.len(),
                    validation.len(),
                    p.batch_size
                ),
            ));
        }
        // Validation contexts: evenly spread over the held-out frames, each repeated.
        let v = p.validation_contexts.min(validation.len());
        let contexts: Vec<usize> = (0..v)
            .map(|k| validation[k * validation.len() / v])
            .collect();
        let repeated: Vec<usize> = contexts
            .iter()
            .flat_map(|&f| std::iter::repeat_n(f, p.validation_draws))
            .collect();
        let validation_s = pick(&s, c, &repeated);
        let validation_base =
            uniform_base(repeated.len(), model.unit_box.dims(), &mut ctx.stream(4))
                .map_err(failed)?;
        let settings = EnergyLoss {
            beta,
            energy_cut: p.energy_cut_kt,
            drop_worst: p.drop_worst,
        };
        tracing::info!(
            "{} training and {} validation frames at {temperature_k} K; {} contexts x {} draws \
             for the conditional ESS",
            train.len(),
            validation.len(),
            v,
            p.validation_draws
        );

        let evaluate = || -> candle_core::Result<(f64, f64, f64, i64)> {
            let mut nll = 0.0;
            for chunk in validation.chunks(1024) {
                let lp = model.log_prob_frozen(&pick(&q, d, chunk), &pick(&s, c, chunk))?;
                nll -= lp.sum_all()?.to_scalar::<f64>()?;
            }
            nll /= validation.len() as f64;
            let lw = log_weights(&model, &validation_s, &validation_base, beta, &energy)?;
            let finite: Vec<f64> = lw.iter().copied().filter(|l| l.is_finite()).collect();
            let energy_loss = if finite.is_empty() {
                f64::NAN
            } else {
                -finite.iter().sum::<f64>() / finite.len() as f64
            };
            let nonfinite = (lw.len() - finite.len()) as i64;
            let ess = lw.chunks(p.validation_draws).map(ess_fraction).sum::<f64>() / v as f64;
            Ok((nll, energy_loss, ess, nonfinite))
        };
        // At ml_weight 1 the energy has no say (not even a NaN one).
        let mixed = |nll: f64, energy_loss: f64| {
            if p.ml_weight == 1.0 {
                nll
            } else {
                p.ml_weight * nll + (1.0 - p.ml_weight) * energy_loss
            }
        };
        let mut curve: Vec<RefineRow> = Vec::new();
        let (nll0, energy0, ess0, nonfinite0) = evaluate().map_err(failed)?;
        let start = mixed(nll0, energy0);
        tracing::info!(
            "start: validation NLL {nll0:.3}, energy loss {energy0:.3} nats, conditional ESS {:.1} %",
            100.0 * ess0
        );
        curve.push(RefineRow {
            checkpoint: 0,
            iteration: 0,
            train_energy_loss: f64::NAN,
            train_nll: f64::NAN,
            validation_nll: nll0,
            validation_energy_loss: energy0,
            validation_nonfinite_draws: nonfinite0,
            validation_conditional_ess: ess0,
            validation_loss: start,
            best: false,
        });
        let start_weights = model.store.to_tensors().map_err(failed)?;
        let start = start.is_finite().then_some((
            BestEpoch {
                epoch: 0,
                validation: start,
            },
            start_weights,
        ));

        let mut optimizer = adam(&model.store, p.learning_rate).map_err(failed)?;
        let vars: Vec<Var> = model.store.vars().into_iter().map(|(_, v)| v).collect();
        let mut batch_rng = ctx.stream(2);
        let mut draw_rng = ctx.stream(3);
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut iteration = 0;
        ctx.progress.start("iterations", p.iterations as u64);
        let kept = train_keeping_best(p.checkpoints, &model.store, start, failed, |k| {
            let until = k * p.iterations / p.checkpoints;
            let (mut energy_sum, mut nll_sum, mut steps) = (0.0, 0.0, 0usize);
            while iteration < until {
                if batches.is_empty() {
                    batches = minibatches(&train, p.batch_size, &mut batch_rng);
                    batches.retain(|b| b.len() == p.batch_size);
                    batches.reverse();
                }
                let batch = batches
                    .pop()
                    .expect("a full batch: train holds batch_size frames");
                let batch_s = pick(&s, c, &batch);
                let nll = model
                    .log_prob(&pick(&q, d, &batch), &batch_s)
                    .and_then(|lp| lp.mean_all()?.neg())
                    .map_err(failed)?;
                let base = uniform_base(batch.len(), model.unit_box.dims(), &mut draw_rng)
                    .map_err(failed)?;
                let drawn =
                    energy_batch(&model, &batch_s, &base, settings, &energy).map_err(failed)?;
                let loss = ((&nll * p.ml_weight)
                    .and_then(|a| a + (&drawn.loss * (1.0 - p.ml_weight))?))
                .map_err(failed)?;
                let mut grads = loss.backward().map_err(failed)?;
                clip_gradients(&mut grads, &vars, p.max_gradient_norm).map_err(failed)?;
                optimizer.step(&grads).map_err(failed)?;
                let kept_losses: Vec<f64> = {
                    let mut l: Vec<f64> = drawn
                        .losses
                        .iter()
                        .copied()
                        .filter(|v| v.is_finite())
                        .collect();
                    l.sort_by(f64::total_cmp);
                    l.truncate(drawn.kept);
                    l
                };
                energy_sum += kept_losses.iter().sum::<f64>() / kept_losses.len().max(1) as f64;
                nll_sum += nll.to_scalar::<f64>().map_err(failed)?;
                steps += 1;
                iteration += 1;
                ctx.progress.advance(1);
            }
            let (validation_nll, validation_energy, ess, nonfinite) = evaluate().map_err(failed)?;
            let validation_loss = mixed(validation_nll, validation_energy);
            let train_energy = energy_sum / steps.max(1) as f64;
            let train_nll = nll_sum / steps.max(1) as f64;
            curve.push(RefineRow {
                checkpoint: k as i64,
                iteration: iteration as i64,
                train_energy_loss: train_energy,
                train_nll,
                validation_nll,
                validation_energy_loss: validation_energy,
                validation_nonfinite_draws: nonfinite,
                validation_conditional_ess: ess,
                validation_loss,
                best: false,
            });
            Ok(EpochReport {
                validation: validation_loss,
                summary: format!(
                    "iteration {iteration}: energy loss train {train_energy:.3}, validation \
                     {validation_energy:.3}; NLL train {train_nll:.3}, validation \
                     {validation_nll:.3} nats; conditional ESS {:.1} %",
                    100.0 * ess
                ),
            })
        })?;
        let Some(BestEpoch { epoch: best, .. }) = kept else {
            return Err(StageError::Failed(
                "the refinement diverged: no checkpoint had a finite validation loss (try a \
                 smaller learning_rate or a larger ml_weight)"
                    .into(),
            ));
        };
        curve[best].best = true;
        tracing::info!("kept checkpoint {best} of {}", p.checkpoints);
        let saved = model.save().map_err(failed)?;
        Ok(Outputs::from([
            ("flow".to_string(), Artifact::Table(tensors_table(&saved))),
            (
                "learning_curve".to_string(),
                Artifact::Table(rows::table(&curve)),
            ),
        ]))
    }
}

fn failed(e: candle_core::Error) -> StageError {
    StageError::Failed(format!("refining the flow: {e}"))
}

/// Scales every gradient by max_norm / |g| when the global norm |g| exceeds max_norm.
fn clip_gradients(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[Var],
    max_norm: f64,
) -> candle_core::Result<()> {
    let mut squared = 0.0;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            squared += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = squared.sqrt();
    if norm > max_norm {
        let factor = max_norm / norm;
        for var in vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                let scaled = (g * factor)?;
                grads.insert(var.as_tensor(), scaled);
            }
        }
    }
    Ok(())
}

/// The topology and solvent of input `force_field`.
pub(crate) fn force_field(inputs: &Inputs) -> Result<(Topology, Solvent), StageError> {
    let record = ForceFieldRecord::from_table(inputs.table("force_field")?)
        .map_err(|e| StageError::bad_input("force_field", e.to_string()))?;
    let topology = parse_prmtop(&record.topology_prmtop, &record.topology_file)
        .map_err(|e| StageError::bad_input("force_field", e.to_string()))?;
    let solvent = match SolventModel::from_name(&record.solvent) {
        Some(SolventModel::Vacuum) => Solvent::Vacuum,
        Some(SolventModel::Obc2) => Solvent::Obc2,
        None => {
            return Err(StageError::bad_input(
                "force_field",
                format!("unknown solvent `{}`", record.solvent),
            ));
        }
    };
    Ok((topology, solvent))
}
