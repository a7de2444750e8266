//! `backmap`: atoms for every CG sample, with the exact density they were drawn from.
//!
//! For each frame z of the CG trajectory (every frame, every chain, in order) the stage
//! draws `samples_per_frame` internal-coordinate vectors q ~ p(q | z) from the trained
//! inverse map ([`crate::nn::inverse_map`]), rebuilds Cartesians x(q) by NeRF and records
//!
//! ```text
//! log p(q | z)   the log-density of the drawn q (nm^-1 per bond, rad^-1 per angle/torsion):
//!                the flow's, or with `base_scale` < 1 that of the concentrated draws
//!                ([`crate::nn::inverse_map::InverseMap::sample_scaled`])
//! log J(q)       ln |det dx/dq| = sum 2 ln r + sum ln sin(theta)  (nm^2 per bond)
//! ```
//!
//! With the optional `flow2` (a second inverse map of the same atoms, Z-matrix and CG
//! map, e.g. trained on other frames or for other epochs) the draws alternate between
//! the two flows (even output rows from `flow`, odd from `flow2`) and each records the
//! density of their equal mixture, log((p_1(q | z) + p_2(q | z)) / 2): the balance
//! heuristic of multiple importance sampling, which bounds every importance weight by
//! twice the smaller of the two flows' own weights, so one flow's too-light tails are
//! covered by the other's. (A draw outside a flow's box has density 0 under that flow.)
//! The estimate stays unbiased when each flow draws half the rows and the CG frames of
//! even and odd rows follow the same distribution, which holds for CG samples that
//! follow exp(-beta U_hat) (what the reweighting assumes of every sample anyway); with
//! an odd number of rows the first flow draws one more, an O(1/N) imbalance.
//!
//! x(q) is built in the Z-matrix's standard frame (first atom at the origin) and then
//! translated so that its beads' centroid, sum_I (P^T x)_I / n, sits on that of z; its
//! orientation is arbitrary (every quantity downstream is invariant).
//!
//! Outputs:
//! - `trajectory` (trajectory): the rebuilt atoms. `temperature_index`, `replica`
//!   (the CG chain), `temperature_k`, `step`, `time_ps` are copied from the CG frame;
//!   forces and potential are NaN (the FG energy is computed by `reweight`).
//! - `densities` (table): frame (int64, row of `trajectory`), cg_frame (int64, row of
//!   the CG trajectory), log_q_given_z, log_jacobian (float64), cg_potential_kj_per_mol
//!   (U_hat(z) as the CG trajectory recorded it).
//!
//! Randomness: batch k of `batch_size` draws uses the node's stream k (with `flow2`,
//! 2^32 + k for the second flow's draws), so the output does not depend on thread count.

use serde::{Deserialize, Serialize};

use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::backmap_densities::BACKMAP_DENSITIES;
use crate::artifact::backmap_densities::BackmapDensity;
use crate::artifact::kind::INVERSE_MAP;
use crate::artifact::rows;
use crate::artifact::tensors::from_table as tensors_from_table;
use crate::artifact::trajectory::{TRAJECTORY, Trajectory};
use crate::nn::inverse_map::InverseMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackmapParams {
    /// Draws of q per CG frame.
    pub samples_per_frame: usize,
    /// Draws per batch (one random stream each).
    pub batch_size: usize,
    /// Concentration of the flow's base on bonds and angles (1: the flow itself; below
    /// 1 draws closer to each conditional median, with the density recorded exactly).
    pub base_scale: f64,
}

impl Default for BackmapParams {
    fn default() -> Self {
        BackmapParams {
            samples_per_frame: 1,
            batch_size: 1024,
            base_scale: 1.0,
        }
    }
}

pub struct Backmap;

impl Stage for Backmap {
    type Params = BackmapParams;
    const NAME: &'static str = "backmap";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "Draw atoms for every CG sample from the inverse map p(q | z) and \
         record log p(q | z) and the internal-coordinate Jacobian";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "flow",
            kind: INVERSE_MAP,
            about: "the inverse map from train_flow",
        },
        Port {
            name: "samples",
            kind: TRAJECTORY,
            about: "CG frames (bead positions, U_hat) from cg_sample",
        },
        Port {
            name: "flow2",
            kind: INVERSE_MAP,
            about: "optional: a second inverse map of the same atoms and map; draws alternate \
                    between the two and record the mixture's density",
        },
    ];
    const OPTIONAL_INPUTS: &'static [&'static str] = &["flow2"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "the backmapped atoms (forces and potential NaN)",
        },
        Port {
            name: "densities",
            kind: BACKMAP_DENSITIES,
            about: "per frame: CG frame, log p(q | z), log J(q), U_hat(z)",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "samples_per_frame",
            about: "draws of the atoms per CG frame",
        },
        ParamDoc {
            name: "batch_size",
            about: "draws per batch (each batch has its own random stream)",
        },
        ParamDoc {
            name: "base_scale",
            about: "1: draw from the flow; below 1: bonds and angles drawn closer to their \
                    conditional medians (the recorded density is the draws' own, so \
                    reweighting stays exact)",
        },
    ];

    fn check(p: &BackmapParams) -> Result<(), ParamProblem> {
        if p.samples_per_frame == 0 {
            return Err(ParamProblem::new("samples_per_frame", "must be at least 1"));
        }
        if p.batch_size == 0 {
            return Err(ParamProblem::new("batch_size", "must be at least 1"));
        }
        if !(p.base_scale > 0.0 && p.base_scale <= 1.0) {
            return Err(ParamProblem::new(
                "base_scale",
                format!("must be in (0, 1], got {}", p.base_scale),
            ));
        }
        Ok(())
    }

    fn run(
        p: &BackmapParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let tensors = tensors_from_table(inputs.table("flow")?)?;
        let model = InverseMap::load(&tensors).map_err(|e| StageError::bad_input("flow", e))?;
        let second = if inputs.has("flow2") {
            let other = InverseMap::load(&tensors_from_table(inputs.table("flow2")?)?)
                .map_err(|e| StageError::bad_input("flow2", e))?;
            if other.zmatrix != model.zmatrix
                || other.beads != model.beads
                || other.assignment != model.assignment
                || other.pinned != model.pinned
            {
                return Err(StageError::bad_input(
                    "flow2",
                    "its Z-matrix, CG map or pinned coordinates differ from `flow`'s",
                ));
            }
            if p.base_scale != 1.0 {
                return Err(StageError::Failed(
                    "param `base_scale`: a mixture of two flows draws from the flows \
                     themselves (base_scale 1)"
                        .into(),
                ));
            }
            Some(other)
        } else {
            None
        };
        let cg = Trajectory::from_table(inputs.table("samples")?)?;
        let n = model.n_beads();
        if cg.n_atoms != n {
            return Err(StageError::bad_input(
                "samples",
                format!("{} beads per frame, the inverse map has {n}", cg.n_atoms),
            ));
        }
        // Draw k of CG frame f is row f * samples_per_frame + k.
        let cg_rows: Vec<usize> = (0..cg.len())
            .flat_map(|f| std::iter::repeat_n(f, p.samples_per_frame))
            .collect();
        let n_atoms = model.n_atoms();
        let d = model.zmatrix.n_dof();
        let mut out = Trajectory::new(n_atoms);
        let mut log_q = Vec::with_capacity(cg_rows.len());
        let mut log_j = Vec::with_capacity(cg_rows.len());
        let no_forces = vec![[f64::NAN; 3]; n_atoms];
        ctx.progress.start("frames", cg_rows.len() as u64);
        for (k, batch) in cg_rows.chunks(p.batch_size).enumerate() {
            let z: Vec<f64> = batch
                .iter()
                .flat_map(|&f| cg.positions(f).iter().copied())
                .collect();
            let s = model.cg_coordinates(&z);
            let (q, log_p) = match &second {
                None => model.sample_scaled(&s, p.base_scale, &mut ctx.stream(k as u64)),
                Some(other) => {
                    let start = k * p.batch_size;
                    mixture_draws(&model, other, &s, start, k as u64, ctx)
                }
            }
            .map_err(|e| StageError::Failed(format!("sampling the flow: {e}")))?;
            let mut x = model.zmatrix.to_cartesian_frames(&q);
            let zx = model.bead_positions(&x);
            for (b, &f) in batch.iter().enumerate() {
                let shift = centroid_shift(
                    &z[3 * n * b..3 * n * (b + 1)],
                    &zx[3 * n * b..3 * n * (b + 1)],
                );
                let frame = &mut x[3 * n_atoms * b..3 * n_atoms * (b + 1)];
                for atom in frame.chunks_exact_mut(3) {
                    for c in 0..3 {
                        atom[c] += shift[c];
                    }
                }
                let positions: Vec<[f64; 3]> =
                    frame.chunks_exact(3).map(|a| [a[0], a[1], a[2]]).collect();
                out.push(crate::artifact::trajectory::FrameRecord {
                    temperature_index: cg.temperature_index[f],
                    replica: cg.replica[f],
                    temperature_k: cg.temperature_k[f],
                    step: cg.step[f],
                    time_ps: cg.time_ps[f],
                    positions_nm: &positions,
                    forces: &no_forces,
                    potential: f64::NAN,
                    kinetic_temperature_k: f64::NAN,
                });
                log_j.push(model.zmatrix.log_jacobian(&q[d * b..d * (b + 1)]));
            }
            log_q.extend(log_p);
            ctx.progress.advance(batch.len() as u64);
        }
        let densities: Vec<BackmapDensity> = cg_rows
            .iter()
            .enumerate()
            .map(|(frame, &cg_frame)| BackmapDensity {
                frame: frame as i64,
                cg_frame: cg_frame as i64,
                log_q_given_z: log_q[frame],
                log_jacobian: log_j[frame],
                cg_potential_kj_per_mol: cg.potential[cg_frame],
            })
            .collect();
        let densities = rows::table(&densities);
        tracing::info!(
            "backmapped {} CG frames into {} atom frames",
            cg.len(),
            out.len()
        );
        Ok(Outputs::from([
            ("trajectory".to_string(), Artifact::Table(out.to_table())),
            ("densities".to_string(), Artifact::Table(densities)),
        ]))
    }
}

/// Draws for the rows of `s` (batch `k`, whose first row is row `start` of the output)
/// from the defensive mixture q_mix = (q_a + q_b) / 2 of two inverse maps: even rows
/// from `a` (stream k), odd rows from `b` (stream 2^32 + k), each recorded with
/// ln q_mix = ln((q_a + q_b) / 2) at the drawn point (the balance heuristic of multiple
/// importance sampling with equal counts: every weight is at most twice what either
/// flow alone would give it). A draw outside the other flow's box has density 0 there.
fn mixture_draws(
    a: &InverseMap,
    b: &InverseMap,
    s: &[f64],
    start: usize,
    k: u64,
    ctx: &Context<'_>,
) -> candle_core::Result<(Vec<f64>, Vec<f64>)> {
    let c = a.beads.n_dof();
    let d = a.zmatrix.n_dof();
    let rows = s.len() / c;
    let from_a: Vec<bool> = (0..rows).map(|r| (start + r).is_multiple_of(2)).collect();
    let pick = |want: bool| -> Vec<f64> {
        (0..rows)
            .filter(|&r| from_a[r] == want)
            .flat_map(|r| s[r * c..(r + 1) * c].iter().copied())
            .collect()
    };
    let (s_a, s_b) = (pick(true), pick(false));
    let density = |m: &InverseMap, q: &[f64], s: &[f64]| -> candle_core::Result<Vec<f64>> {
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let mut lp = m.log_prob(q, s)?.to_vec1::<f64>()?;
        for r in m.unit_box.rows_outside(&m.drawn(q)) {
            lp[r] = f64::NEG_INFINITY;
        }
        Ok(lp)
    };
    let draw = |m: &InverseMap, s: &[f64], id: u64| -> candle_core::Result<(Vec<f64>, Vec<f64>)> {
        if s.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        m.sample_scaled(s, 1.0, &mut ctx.stream(id))
    };
    let (q_a, own_a) = draw(a, &s_a, k)?;
    let (q_b, own_b) = draw(b, &s_b, (1u64 << 32) + k)?;
    let other_a = density(b, &q_a, &s_a)?;
    let other_b = density(a, &q_b, &s_b)?;
    let mix = |x: f64, y: f64| {
        let m = x.max(y);
        if m == f64::NEG_INFINITY {
            return m;
        }
        m + ((x - m).exp() + (y - m).exp()).ln() - std::f64::consts::LN_2
    };
    let (mut q, mut log_p) = (Vec::with_capacity(rows * d), Vec::with_capacity(rows));
    let (mut ia, mut ib) = (0, 0);
    for &take_a in &from_a {
        if take_a {
            q.extend_from_slice(&q_a[ia * d..(ia + 1) * d]);
            log_p.push(mix(own_a[ia], other_a[ia]));
            ia += 1;
        } else {
            q.extend_from_slice(&q_b[ib * d..(ib + 1) * d]);
            log_p.push(mix(own_b[ib], other_b[ib]));
            ib += 1;
        }
    }
    Ok((q, log_p))
}

/// The translation taking the centroid of beads `from` onto that of `to` (both n x 3).
fn centroid_shift(to: &[f64], from: &[f64]) -> [f64; 3] {
    let n = (to.len() / 3) as f64;
    let mut shift = [0.0; 3];
    for (a, b) in to.chunks_exact(3).zip(from.chunks_exact(3)) {
        for c in 0..3 {
            shift[c] += (a[c] - b[c]) / n;
        }
    }
    shift
}
