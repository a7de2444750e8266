//! `train_flow`: learn the inverse of the CG map, p(q | z), by maximum likelihood.
//!
//! Every FG frame x at `temperature_index` (one rung of the temperature ladder or a list
//! of them; from `trajectory` and, when connected, the optional `more`) is paired with
//! its CG image z = P^T x (P from
//! the `assignment` table of `train_map`). The frame's internal coordinates q(x) follow
//! a Z-matrix built from the bond graph (bonds inferred from the first frame's geometry,
//! [`crate::md::covalent::infer_bonds`]) with the `seeds` atoms placed first; the beads'
//! own internal coordinates s(z) condition the flow ([`crate::nn::inverse_map`]). With
//! a fixed map onto the seed atoms (the default backbone map and seeds) the seeds'
//! coordinates equal s and are pinned, not learned. The loss is the negative log-likelihood per frame,
//!
//! ```text
//! NLL = -(1/|B|) sum_{frames in B} log p(q(x) | z(x))
//! ```
//!
//! in nats, with densities in nm^-1 per bond and rad^-1 per angle and torsion (so its
//! value depends on those units; differences between models do not). Frames are split
//! into contiguous blocks, a fraction of them held out for validation; the weights of the
//! epoch with the lowest validation NLL are kept. The unit box of the flow comes from the
//! training frames only, widened by `box_margin`; validation frames outside it (a bond or
//! angle beyond the widened range) are counted and left out of the validation NLL.
//!
//! `autoregressive_levels` makes the conditioners block-autoregressive ([`crate::nn::flow`]):
//! drawing, in `backmap`, inverts each layer in one pass per level instead of one per
//! coordinate, which is what makes a protein's few hundred coordinates affordable. Unset,
//! the flow is fully autoregressive, and its node key and bytes are what they were
//! before the param existed.
//!
//! Outputs:
//! - `flow` (inverse_map): the model, self-contained (weights, Z-matrix, P, box,
//!   context scaling; [`crate::nn::inverse_map::InverseMap::save`]).
//! - `learning_curve` (table): epoch (int64), train_nll, validation_nll (float64,
//!   nats per frame), best (bool).
//! - `coordinates` (table): one row per internal coordinate: index (int64), label
//!   (utf8, e.g. `phi(7-5-4-2)`), kind (utf8: bond | angle | torsion), atom (int32),
//!   lo, hi (float64: the box, nm or rad; NaN for coordinates pinned to the beads),
//!   centre (float64: the circular mean a narrow torsion's box is taken about, rad;
//!   NaN for other coordinates; [`crate::nn::unit_box`]).
//! - `learning_curve_plot` / `learning_curve_svg`: NLL per epoch.
//!
//! `more` adds frames of the same atoms and temperature from another run, such as plain
//! MD started in a state the main run rarely visits (alanine dipeptide's C7ax at 300 K
//! holds 1 % of the replica-exchange frames). The flow learns the conditional p(q | z),
//! which does not depend on how often each z was sampled, so such frames are valid
//! training data wherever they go: they add data where the main run has little, without
//! reweighting. (They must sample the same Boltzmann distribution: same force field,
//! temperature and constraints; a frame at a temperature the selected main frames do
//! not have is an error.) They are split on their own: the main frames and the added
//! ones are each cut into `validation_blocks` blocks with `validation_fraction` of each
//! held out ([`crate::nn::training::block_split_sources`]), so both sets hold both
//! sources.
//!
//! Randomness: weights, the split and the batch order come from the node's streams.

use arrow_array::RecordBatch;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

mod params;

pub use params::TrainFlowParams;

use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::line_plot::{Figure, Panel, learning_curve};
use crate::analysis::plot::Drawing;
use crate::artifact::Artifact;
use crate::artifact::assignment::CG_ASSIGNMENT;
use crate::artifact::atoms::ATOMS;
use crate::artifact::kind::{ArtifactKind, INVERSE_MAP, PNG, SVG};
use crate::artifact::rows::{self, schema_of};
use crate::artifact::tensors::to_table as tensors_table;
use crate::artifact::trajectory::TRAJECTORY;
use crate::geometry::zmatrix::{CoordinateKind, ZMatrix};
use crate::md::covalent::infer_bonds;
use crate::nn::ParameterStore;
use crate::nn::flow::FlowConfig;
use crate::nn::inverse_map::{InverseMap, bead_chain, bead_positions, pinned_coordinates};
use crate::nn::training::{
    BestEpoch, EpochReport, adam, block_split_sources, minibatches, step, train_keeping_best,
};
use crate::nn::unit_box::UnitBox;

pub struct TrainFlow;

pub const NLL_LEARNING_CURVE: ArtifactKind = ArtifactKind::table(
    "nll_learning_curve",
    schema_of::<NllRow>,
    "per epoch: epoch, train_nll, validation_nll (nats per frame), best",
);

pub const FLOW_COORDINATES: ArtifactKind = ArtifactKind::table(
    "flow_coordinates",
    schema_of::<CoordinateRow>,
    "the flow's internal coordinates: index, label, kind, atom, box lo, hi, centre",
);

/// A row of the learning curve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NllRow {
    pub epoch: i64,
    pub train_nll: f64,
    pub validation_nll: f64,
    pub best: bool,
}

/// An internal coordinate of the flow and its box (NaN for coordinates pinned to the
/// beads).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CoordinateRow {
    pub index: i64,
    pub label: String,
    pub kind: String,
    pub atom: i32,
    pub lo: f64,
    pub hi: f64,
    pub centre: f64,
}

impl Stage for TrainFlow {
    type Params = TrainFlowParams;
    const NAME: &'static str = "train_flow";
    /// 2: narrow torsions boxed around their circular mean. 3: frames from `more` split
    /// into validation blocks on their own (without `more`, the same split as 2). 4: the
    /// MADE output layer in blocks of at most 512 units, so that its gradient is the same
    /// bits on every machine (`nn::product_depth`; the same forward values).
    const VERSION: u32 = 4;
    const ABOUT: &'static str = "Learn p(q | z), the inverse of the CG map: an autoregressive spline \
         flow over all internal coordinates conditioned on the beads, by maximum likelihood";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "fine-grained frames (positions); a list (segments of one chained run, or \
                    runs) is joined in its order",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the fine-grained atoms (elements for the bond graph, names for `seeds`)",
        },
        Port {
            name: "assignment",
            kind: CG_ASSIGNMENT,
            about: "the CG map P from train_map (atom, bead, weight)",
        },
        Port {
            name: "more",
            kind: TRAJECTORY,
            about: "optional: more frames of the same atoms at the same temperature (e.g. MD \
                    started in a state `trajectory` rarely visits), appended to it",
        },
    ];
    const OPTIONAL_INPUTS: &'static [&'static str] = &["more"];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "flow",
            kind: INVERSE_MAP,
            about: "the trained inverse map (weights, Z-matrix, map, box)",
        },
        Port {
            name: "learning_curve",
            kind: NLL_LEARNING_CURVE,
            about: "train and validation NLL per epoch (nats per frame)",
        },
        Port {
            name: "coordinates",
            kind: FLOW_COORDINATES,
            about: "the internal coordinates: label, kind, atom, box bounds",
        },
        Port {
            name: "learning_curve_plot",
            kind: PNG,
            about: "NLL per epoch (PNG)",
        },
        Port {
            name: "learning_curve_svg",
            kind: SVG,
            about: "NLL per epoch (SVG)",
        },
    ];
    const PARAMS: &'static [ParamDoc] = params::DOCS;

    fn check(p: &TrainFlowParams) -> Result<(), ParamProblem> {
        params::check(p)
    }

    fn run(
        p: &TrainFlowParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let (mut trajectory, atoms) = inputs.trajectory_with_atoms("trajectory", "atoms")?;
        let n_atoms = atoms.len();
        // Rows of `trajectory` before `main_len` are its own; the rest came from `more`.
        let main_len = trajectory.len();
        inputs.append_optional_trajectory("more", &mut trajectory, "trajectory")?;
        let rows: Vec<usize> = (0..trajectory.len())
            .filter(|&i| {
                p.temperature_index
                    .contains(trajectory.temperature_index[i])
            })
            .collect();
        if inputs.has("more") {
            // The added frames must sample a temperature the main frames sample.
            let (main, added): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&r| r < main_len);
            if added.is_empty() {
                return Err(StageError::bad_input(
                    "more",
                    format!("no frame at temperature_index {}", p.temperature_index),
                ));
            }
            let known = |t: f64| main.iter().any(|&r| trajectory.temperature_k[r] == t);
            if let Some(&r) = added.iter().find(|&&r| !known(trajectory.temperature_k[r])) {
                return Err(StageError::bad_input(
                    "more",
                    format!(
                        "frame {} is at {} K, a temperature the selected frames of \
                         `trajectory` do not have",
                        r - main_len,
                        trajectory.temperature_k[r]
                    ),
                ));
            }
        }
        if rows.len() < 2 * p.validation_blocks {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "{} frames at temperature_index {}; need at least {} (2 per validation block)",
                    rows.len(),
                    p.temperature_index,
                    2 * p.validation_blocks
                ),
            ));
        }
        let (assignment, n_beads) = inputs.assignment("assignment", n_atoms)?;

        // Z-matrix from the bond graph of the first frame.
        let first: Vec<[f64; 3]> = trajectory
            .positions(rows[0])
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        let elements: Vec<i32> = atoms.iter().map(|a| a.atomic_number).collect();
        let bonds = infer_bonds(&elements, &first);
        let seeds = p
            .seeds
            .iter()
            .map(|s| s.resolve(&atoms, "seeds"))
            .collect::<Result<Vec<_>, _>>()?;
        let heavy: Vec<bool> = elements.iter().map(|&z| z > 1).collect();
        let zmatrix = ZMatrix::from_bonds(n_atoms, &bonds, &seeds, &heavy).map_err(|e| {
            StageError::bad_input(
                "atoms",
                format!("Z-matrix from the bonds of frame {}: {e}", rows[0]),
            )
        })?;

        // Internal coordinates of the frames and of their CG images.
        let x: Vec<f64> = rows
            .iter()
            .flat_map(|&r| trajectory.positions(r).iter().copied())
            .collect();
        let q = zmatrix.to_internal_frames(&x);
        let d = zmatrix.n_dof();
        let beads = bead_chain(n_beads).map_err(StageError::Failed)?;
        // The main frames come first in `rows`, then the added ones.
        let main_count = rows.iter().filter(|&&r| r < main_len).count();
        let (train, validation) = block_split_sources(
            &[main_count, rows.len() - main_count],
            p.validation_blocks,
            p.validation_fraction,
            &mut ctx.stream(1),
        );
        let pick = |values: &[f64], width: usize, frames: &[usize]| -> Vec<f64> {
            frames
                .iter()
                .flat_map(|&f| values[f * width..(f + 1) * width].iter().copied())
                .collect()
        };
        let pinned = pinned_coordinates(&zmatrix, &assignment, n_beads);
        let drawn = |frames: &[usize]| -> Vec<f64> {
            frames
                .iter()
                .flat_map(|&f| q[f * d + pinned..(f + 1) * d].iter().copied())
                .collect()
        };
        let unit_box = UnitBox::fit(&drawn(&train), &zmatrix.kinds()[pinned..], p.box_margin);
        let outside = unit_box.rows_outside(&drawn(&validation));
        let validation: Vec<usize> = validation
            .iter()
            .enumerate()
            .filter(|(k, _)| outside.binary_search(k).is_err())
            .map(|(_, &f)| f)
            .collect();
        if !outside.is_empty() {
            tracing::warn!(
                "{} validation frames have a bond or angle outside the training box; left out",
                outside.len()
            );
        }
        let config = FlowConfig {
            layers: p.layers,
            hidden: p.hidden.clone(),
            bins: p.bins,
            levels: p.autoregressive_levels.unwrap_or(0),
        };
        let mut seed = [0u8; 32];
        ctx.rng.fill_bytes(&mut seed);
        let z = bead_positions(&assignment, n_beads, &x);
        let s = beads.to_internal_frames(&z);
        let c = beads.n_dof();
        let scaling = InverseMap::fit_scaling(&beads, &pick(&s, c, &train));
        let model = InverseMap::new(
            zmatrix.clone(),
            n_beads,
            assignment,
            pinned,
            unit_box.clone(),
            scaling,
            config,
            ParameterStore::new(seed),
        )
        .map_err(StageError::Failed)?;
        tracing::info!(
            "{n_atoms} atoms ({d} internal coordinates, {pinned} of them pinned to the beads), \
             {n_beads} beads ({c} CG coordinates); {} training and {} validation frames",
            train.len(),
            validation.len()
        );

        // Training.
        let nll = |frames: &[usize]| -> candle_core::Result<f64> {
            let mut total = 0.0;
            for chunk in frames.chunks(1024) {
                let lp = model.log_prob_frozen(&pick(&q, d, chunk), &pick(&s, c, chunk))?;
                total -= lp.sum_all()?.to_scalar::<f64>()?;
            }
            Ok(total / frames.len().max(1) as f64)
        };
        let mut optimizer = adam(&model.store, p.learning_rate).map_err(failed)?;
        let mut batch_rng = ctx.stream(2);
        let mut curve = Curve::default();
        ctx.progress.start("epochs", p.epochs as u64);
        let kept = train_keeping_best(p.epochs, &model.store, None, failed, |_| {
            let mut sum = 0.0;
            for batch in minibatches(&train, p.batch_size, &mut batch_rng) {
                let lp = model
                    .log_prob(&pick(&q, d, &batch), &pick(&s, c, &batch))
                    .map_err(failed)?;
                let loss = lp.mean_all().and_then(|m| m.neg()).map_err(failed)?;
                sum += step(&mut optimizer, &loss).map_err(failed)? * batch.len() as f64;
            }
            let train_nll = sum / train.len() as f64;
            let validation_nll = nll(&validation).map_err(failed)?;
            curve.train.push(train_nll);
            curve.validation.push(validation_nll);
            ctx.progress.advance(1);
            Ok(EpochReport {
                validation: validation_nll,
                summary: format!("NLL train {train_nll:.3}, validation {validation_nll:.3} nats"),
            })
        })?;
        let Some(BestEpoch {
            epoch: best_epoch,
            validation: best_nll,
        }) = kept
        else {
            return Err(StageError::Failed(format!(
                "the flow diverged: the validation NLL was not finite in any of the {} epochs \
                 (try a smaller learning_rate)",
                p.epochs
            )));
        };
        tracing::info!("kept epoch {best_epoch}: validation NLL {best_nll:.3} nats per frame");
        let saved = model.save().map_err(failed)?;
        let figure = curve.figure(best_epoch, train.len(), validation.len());
        let png = figure
            .to_png()
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let svg = figure
            .to_svg()
            .map_err(|e| StageError::Failed(e.to_string()))?;
        Ok(Outputs::from([
            ("flow".to_string(), Artifact::Table(tensors_table(&saved))),
            (
                "learning_curve".to_string(),
                Artifact::Table(curve.table(best_epoch)),
            ),
            (
                "coordinates".to_string(),
                Artifact::Table(coordinates_table(&zmatrix, pinned, &unit_box)),
            ),
            ("learning_curve_plot".to_string(), Artifact::File(png)),
            (
                "learning_curve_svg".to_string(),
                Artifact::File(svg.into_bytes()),
            ),
        ]))
    }
}

fn failed(e: candle_core::Error) -> StageError {
    StageError::Failed(format!("training the flow: {e}"))
}

fn coordinates_table(zmatrix: &ZMatrix, pinned: usize, unit_box: &UnitBox) -> RecordBatch {
    let kinds = zmatrix.kinds();
    let atoms = zmatrix.dof_atoms();
    let labels = zmatrix.dof_labels();
    // Pinned coordinates (the first `pinned`) have no box.
    let bound = |values: &[f64], k: usize| {
        if k < pinned {
            f64::NAN
        } else {
            values[k - pinned]
        }
    };
    let centres: Vec<f64> = unit_box
        .centre
        .iter()
        .map(|c| c.unwrap_or(f64::NAN))
        .collect();
    let table: Vec<CoordinateRow> = (0..kinds.len())
        .map(|k| CoordinateRow {
            index: k as i64,
            label: labels[k].clone(),
            kind: match kinds[k] {
                CoordinateKind::Bond => "bond",
                CoordinateKind::Angle => "angle",
                CoordinateKind::Torsion => "torsion",
            }
            .to_string(),
            atom: atoms[k] as i32,
            lo: bound(&unit_box.lo, k),
            hi: bound(&unit_box.hi, k),
            centre: bound(&centres, k),
        })
        .collect();
    rows::table(&table)
}

#[derive(Default)]
struct Curve {
    train: Vec<f64>,
    validation: Vec<f64>,
}

impl Curve {
    fn table(&self, best_epoch: usize) -> RecordBatch {
        let table: Vec<NllRow> = (0..self.train.len())
            .map(|k| NllRow {
                epoch: k as i64 + 1,
                train_nll: self.train[k],
                validation_nll: self.validation[k],
                best: k + 1 == best_epoch,
            })
            .collect();
        rows::table(&table)
    }

    fn figure(&self, best_epoch: usize, train: usize, validation: usize) -> Figure {
        Figure {
            title: format!("train_flow: {train} training / {validation} validation frames"),
            columns: 1,
            panel_size: (640, 440),
            panels: vec![Panel {
                title: "Negative log-likelihood".into(),
                x_label: "epoch".into(),
                y_label: "NLL (nats per frame)".into(),
                log_y: false,
                series: learning_curve(
                    1,
                    &self.train,
                    &self.validation,
                    (best_epoch, self.validation[best_epoch - 1]),
                ),
            }],
        }
    }
}
