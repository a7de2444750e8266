//! `reweight`: importance weights that make backmapped samples Boltzmann-distributed.
//!
//! Each backmapped frame i pairs a CG sample z_i (from the CG chains, distributed as
//! exp(-beta U_hat(z))) with internal coordinates q_i ~ p(q | z_i). The FG target in
//! internal coordinates is rho(q) = exp(-beta U(x(q))) J(q) / Z. With s(z) the beads'
//! internal coordinates (a chain; J_cg its Jacobian) and beta = 1 / (k_B T):
//!
//! ```text
//! marginal:  ln w = -beta U(x(q)) + ln J(q) - ln p(q | z)
//! extended:  ln w = -beta U(x(q)) + ln J(q) + ln r(s(z) | q) - ln p(q | z)
//!                   + beta U_hat(z) - ln J_cg(s(z))
//! ```
//!
//! The marginal estimator is unbiased for every z but its variance is large when
//! p(q | z) is narrow (the CG configuration then pins down part of q). The extended one
//! (the default) targets rho(q) r(s | q) on the joint space, whose q-marginal is rho for
//! any normalized kernel r; its proposal is the CG chain density times p(q | z). Here r
//! is a product of normals over the CG coordinates centred on s(P^T x(q)), the CG image
//! of the rebuilt atoms: for bonds and angles N(s; s_x, sigma^2), for torsions the
//! normal of the difference wrapped to (-pi, pi] (normalized to within
//! exp(-pi^2 / 2 sigma^2); widths are capped at 0.5 rad). With `kernel_width: auto`
//! each coordinate's sigma is the root-mean-square residual s(z) - s(P^T x(q)) over the
//! samples (at least 1e-4), i.e. r is as wide as the flow's own scatter around z.
//!
//! When the map pins the first atoms' coordinates to the beads (a fixed map onto the
//! Z-matrix's seed atoms, [`crate::nn::inverse_map`]), s(z) is part of q itself and the
//! extended estimator needs no kernel: the proposal density of q = (s, q_rest) is
//! p_cg(s) p(q_rest | s), p_cg(s) = exp(-beta U_hat(z(s))) J_cg(s) / Z_cg, and
//! ln w = -beta U(x(q)) + ln J(q) - ln p(q_rest | s) + beta U_hat(z) - ln J_cg(s).
//!
//! The target's force field (prmtop and solvent) is the optional input `force_field`,
//! the FG node's record of what it sampled, so the weights cannot silently target
//! another force field than the data's; params `topology` and `solvent` name it only
//! when that input is not connected (and must agree with it when it is).
//!
//! Weights are self-normalized, w_i / sum_j w_j; frames whose FG energy is not finite
//! get weight 0 and are counted. ESS = (sum w)^2 / sum w^2.
//!
//! Outputs:
//! - `trajectory` (trajectory): the backmapped frames with FG forces and potential
//!   filled in (feed it to `ramachandran` with `weights`).
//! - `weights` (table): frame (int64), fg_potential_kj_per_mol, log_weight
//!   (unnormalized), weight (normalized, sums to 1).
//! - `summary` (table, one row): estimator (utf8), samples, finite_samples (int64),
//!   ess, ess_fraction, max_weight, temperature_k, pareto_k (the tail's k-hat, NaN
//!   under 20 weights; above 0.7 the weights are not to be trusted, see
//!   [`crate::analysis::weight_tail`]), ess_without_top5 (float64).
//!
//! The stage draws no random numbers.

use std::f64::consts::PI;

use arrow_array::{Float64Array, Int64Array};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::fg_sample::SolventModel;
use super::stage::DataFile;
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::weight_tail::WeightTail;
use crate::artifact::Artifact;
use crate::artifact::backmap_densities::BACKMAP_DENSITIES;
use crate::artifact::force_field::{FORCE_FIELD, ForceFieldRecord};
use crate::artifact::frame_weights::{FRAME_WEIGHTS, FrameWeight};
use crate::artifact::kind::ArtifactKind;
use crate::artifact::kind::INVERSE_MAP;
use crate::artifact::rows::{self, schema_of};
use crate::artifact::tensors::from_table as tensors_from_table;
use crate::artifact::trajectory::{TRAJECTORY, Trajectory};
use crate::geometry::zmatrix::{CoordinateKind, wrap_angle};
use crate::md::forcefield::{ForceField, Solvent};
use crate::md::io::prmtop::parse_prmtop;
use crate::md::units::BOLTZMANN;
use crate::nn::inverse_map::InverseMap;

/// The largest weights left out of the summary's `ess_without_top5`.
const TOP_WEIGHTS_DROPPED: usize = 5;

/// Largest torsion kernel width, rad.
const MAX_TORSION_WIDTH: f64 = 0.5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimator {
    Extended,
    Marginal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KernelWidth {
    /// `auto`: root-mean-square residuals.
    Auto(String),
    /// One width per CG coordinate (nm for bonds, rad for angles and torsions).
    Fixed(Vec<f64>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReweightParams {
    /// The FG topology (AMBER prmtop) whose energy defines the target: only to
    /// reweight without the `force_field` input (or to check that input).
    pub topology: DataFile,
    pub solvent: Option<SolventModel>,
    /// Target temperature, K; default: the frames' `temperature_k`.
    pub temperature_k: Option<f64>,
    pub estimator: Estimator,
    pub kernel_width: KernelWidth,
}

impl Default for ReweightParams {
    fn default() -> Self {
        ReweightParams {
            topology: DataFile::default(),
            solvent: None,
            temperature_k: None,
            estimator: Estimator::Extended,
            kernel_width: KernelWidth::Auto("auto".into()),
        }
    }
}

pub struct Reweight;

pub const REWEIGHT_SUMMARY: ArtifactKind = ArtifactKind::table(
    "reweight_summary",
    schema_of::<ReweightSummary>,
    "one row: estimator, samples, finite_samples, ess, ess_fraction, max_weight, \
     temperature_k, pareto_k, ess_without_top5",
);

/// The summary's one row (see the module doc).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReweightSummary {
    pub estimator: String,
    pub samples: i64,
    pub finite_samples: i64,
    pub ess: f64,
    pub ess_fraction: f64,
    pub max_weight: f64,
    pub temperature_k: f64,
    pub pareto_k: f64,
    pub ess_without_top5: f64,
}

impl Stage for Reweight {
    type Params = ReweightParams;
    const NAME: &'static str = "reweight";
    // 2: FG energies from the force field with the 1-4 pairs in the rows (last bits).
    // 3: the force field's same bits on every instruction set (last bits).
    // 4: the force field from the optional `force_field` input; `topology` and
    // `solvent` optional.
    // 5: the summary's pareto_k and ess_without_top5.
    const VERSION: u32 = 5;
    const ABOUT: &'static str = "Importance weights exp(-beta U) J r / (p(q | z) exp(-beta U_hat) J_cg) that \
         make backmapped samples Boltzmann-distributed; ESS";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "backmapped frames from backmap",
        },
        Port {
            name: "densities",
            kind: BACKMAP_DENSITIES,
            about: "log p(q | z), log J(q), U_hat(z) per frame from backmap",
        },
        Port {
            name: "samples",
            kind: TRAJECTORY,
            about: "the CG frames backmap drew from (bead positions)",
        },
        Port {
            name: "flow",
            kind: INVERSE_MAP,
            about: "the inverse map (for the CG map P)",
        },
        Port {
            name: "force_field",
            kind: FORCE_FIELD,
            about: "the force field the FG frames were sampled with (fg_sample's \
                    `force_field`): the target of the weights",
        },
    ];
    const OPTIONAL_INPUTS: &'static [&'static str] = &["force_field"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "the backmapped frames with FG forces and potential",
        },
        Port {
            name: "weights",
            kind: FRAME_WEIGHTS,
            about: "per frame: FG potential, log weight, normalized weight",
        },
        Port {
            name: "summary",
            kind: REWEIGHT_SUMMARY,
            about: "estimator, samples, finite samples, ESS, its fraction, largest weight",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "topology",
            about: "AMBER prmtop of the FG target, when the `force_field` input is not \
                    connected (connected, it must agree with it)",
        },
        ParamDoc {
            name: "solvent",
            about: "vacuum | obc2, with `topology` (connected, it must agree with \
                    `force_field`)",
        },
        ParamDoc {
            name: "temperature_k",
            about: "target temperature (K); default the frames' temperature",
        },
        ParamDoc {
            name: "estimator",
            about: "extended (default, lower variance) | marginal",
        },
        ParamDoc {
            name: "kernel_width",
            about: "extended estimator's kernel: auto, or one width per CG coordinate \
                    (nm for bonds, rad for angles and torsions)",
        },
    ];

    fn data_files(p: &ReweightParams) -> Vec<(&'static str, &DataFile)> {
        if p.topology.0.is_empty() {
            return Vec::new();
        }
        vec![("topology", &p.topology)]
    }

    fn check(p: &ReweightParams) -> Result<(), ParamProblem> {
        if let Some(t) = p.temperature_k {
            ParamProblem::positive("temperature_k", t)?;
        }
        match &p.kernel_width {
            KernelWidth::Auto(s) if s != "auto" => Err(ParamProblem::new(
                "kernel_width",
                format!("`auto` or a list of widths, got `{s}`"),
            )),
            KernelWidth::Fixed(w) => match w.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
                Some(bad) => Err(ParamProblem::new(
                    "kernel_width",
                    format!("widths must be finite and positive, got {bad}"),
                )),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn run(
        p: &ReweightParams,
        inputs: &Inputs,
        _ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let mut trajectory = Trajectory::from_table(inputs.table("trajectory")?)?;
        let densities = inputs.table("densities")?;
        let cg = Trajectory::from_table(inputs.table("samples")?)?;
        let model = InverseMap::load(&tensors_from_table(inputs.table("flow")?)?)
            .map_err(|e| StageError::bad_input("flow", e))?;
        if model.pinned > 0 && p.estimator == Estimator::Marginal {
            return Err(StageError::Failed(
                "param `estimator`: the marginal estimator needs a density over all of q, but \
                 this inverse map pins the first coordinates to the beads (a fixed map onto \
                 atoms); use `extended`"
                    .into(),
            ));
        }
        let frames = trajectory.len();
        if densities.num_rows() != frames {
            return Err(StageError::bad_input(
                "densities",
                format!("{} rows for {frames} frames", densities.num_rows()),
            ));
        }
        let cg_frame = inputs.column::<Int64Array>("densities", "cg_frame")?;
        let log_q = inputs.column::<Float64Array>("densities", "log_q_given_z")?;
        let log_j = inputs.column::<Float64Array>("densities", "log_jacobian")?;
        let u_hat = inputs.column::<Float64Array>("densities", "cg_potential_kj_per_mol")?;
        if let Some(&f) = cg_frame
            .values()
            .iter()
            .find(|&&f| f < 0 || f as usize >= cg.len())
        {
            return Err(StageError::bad_input(
                "densities",
                format!("cg_frame {f} is not a row of `samples`"),
            ));
        }

        // FG energies and forces, frames in parallel (each frame on its own).
        let target = target_force_field(p, inputs)?;
        let topology = parse_prmtop(&target.topology_prmtop, &target.topology_file)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        if topology.n_atoms() != trajectory.n_atoms {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "{} atoms per frame, the topology {} has {}",
                    trajectory.n_atoms,
                    target.topology_file,
                    topology.n_atoms()
                ),
            ));
        }
        let solvent = match SolventModel::from_name(&target.solvent) {
            Some(SolventModel::Vacuum) => Solvent::Vacuum,
            Some(SolventModel::Obc2) => Solvent::Obc2,
            None => {
                return Err(StageError::bad_input(
                    "force_field",
                    format!("unknown solvent `{}`", target.solvent),
                ));
            }
        };
        ForceField::new(&topology, solvent).map_err(|e| StageError::Failed(e.to_string()))?;
        let n_atoms = trajectory.n_atoms;
        let width = 3 * n_atoms;
        let chunk = 256;
        let evaluated: Vec<(Vec<f64>, Vec<f64>)> = trajectory
            .positions_nm
            .par_chunks(chunk * width)
            .map(|block| {
                let mut ff = ForceField::new(&topology, solvent).expect("checked above");
                let mut forces = vec![[0.0; 3]; n_atoms];
                let mut energies = Vec::new();
                let mut all_forces = Vec::with_capacity(block.len());
                for frame in block.chunks_exact(width) {
                    let x: Vec<[f64; 3]> =
                        frame.chunks_exact(3).map(|a| [a[0], a[1], a[2]]).collect();
                    energies.push(ff.compute(&x, &mut forces).total());
                    all_forces.extend(forces.iter().flatten());
                }
                (energies, all_forces)
            })
            .collect();
        let mut energy = Vec::with_capacity(frames);
        trajectory.forces.clear();
        for (e, f) in evaluated {
            energy.extend(e);
            trajectory.forces.extend(f);
        }
        trajectory.potential = energy.clone();

        let temperature_k = p
            .temperature_k
            .unwrap_or_else(|| trajectory.temperature_k.first().copied().unwrap_or(300.0));
        let beta = 1.0 / (BOLTZMANN * temperature_k);

        // The CG coordinates of each CG sample and of each rebuilt frame's image.
        let z: Vec<f64> = cg_frame
            .values()
            .iter()
            .flat_map(|&f| cg.positions(f as usize).iter().copied())
            .collect();
        let s_z = model.cg_coordinates(&z);
        let s_x = model.cg_coordinates(&model.bead_positions(&trajectory.positions_nm));
        let kinds = model.beads.kinds();
        let widths = match &p.kernel_width {
            _ if model.pinned > 0 || p.estimator == Estimator::Marginal => Vec::new(),
            KernelWidth::Fixed(w) if w.len() != kinds.len() => {
                return Err(StageError::Failed(format!(
                    "param `kernel_width`: {} widths for {} CG coordinates",
                    w.len(),
                    kinds.len()
                )));
            }
            KernelWidth::Fixed(w) => w.clone(),
            KernelWidth::Auto(_) => rms_residuals(&s_z, &s_x, &kinds),
        };
        let widths: Vec<f64> = widths
            .iter()
            .zip(&kinds)
            .map(|(&w, k)| match k {
                CoordinateKind::Torsion => w.min(MAX_TORSION_WIDTH),
                _ => w,
            })
            .collect();
        if !widths.is_empty() {
            tracing::info!("kernel widths {widths:?} (nm for bonds, rad otherwise)");
        }

        let c = kinds.len();
        let mut log_w = Vec::with_capacity(frames);
        for i in 0..frames {
            let mut lw = -beta * energy[i] + log_j.value(i) - log_q.value(i);
            if p.estimator == Estimator::Extended && model.pinned > 0 {
                let sz = &s_z[c * i..c * (i + 1)];
                lw += beta * u_hat.value(i) - model.beads.log_jacobian(sz);
            } else if p.estimator == Estimator::Extended {
                let sz = &s_z[c * i..c * (i + 1)];
                let sx = &s_x[c * i..c * (i + 1)];
                lw += log_kernel(sz, sx, &widths, &kinds) + beta * u_hat.value(i)
                    - model.beads.log_jacobian(sz);
            }
            log_w.push(if lw.is_finite() {
                lw
            } else {
                f64::NEG_INFINITY
            });
        }
        let finite = log_w.iter().filter(|w| w.is_finite()).count();
        if finite == 0 {
            return Err(StageError::Failed(format!(
                "none of the {frames} frames has a finite weight (FG energies not finite?)"
            )));
        }
        let max = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let raw: Vec<f64> = log_w.iter().map(|&l| (l - max).exp()).collect();
        let total: f64 = raw.iter().sum();
        let weight: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let ess = 1.0 / weight.iter().map(|w| w * w).sum::<f64>();
        let max_weight = weight.iter().copied().fold(0.0, f64::max);
        let tail = WeightTail::of(&weight, TOP_WEIGHTS_DROPPED);
        tracing::info!(
            "{finite} of {frames} frames with finite weight; ESS {ess:.1} ({:.4} of the frames), \
             largest weight {max_weight:.4}, Pareto k-hat {:.2}, ESS without the {} largest \
             weights {:.1}",
            ess / frames as f64,
            tail.pareto_k,
            TOP_WEIGHTS_DROPPED,
            tail.ess_without_largest
        );

        let weights = rows::table(
            &(0..frames)
                .map(|k| FrameWeight {
                    frame: k as i64,
                    fg_potential_kj_per_mol: energy[k],
                    log_weight: log_w[k],
                    weight: weight[k],
                })
                .collect::<Vec<_>>(),
        );
        let summary = rows::table(&[ReweightSummary {
            estimator: match p.estimator {
                Estimator::Extended => "extended",
                Estimator::Marginal => "marginal",
            }
            .to_string(),
            samples: frames as i64,
            finite_samples: finite as i64,
            ess,
            ess_fraction: ess / frames as f64,
            max_weight,
            temperature_k,
            pareto_k: tail.pareto_k,
            ess_without_top5: tail.ess_without_largest,
        }]);
        Ok(Outputs::from([
            (
                "trajectory".to_string(),
                Artifact::Table(trajectory.to_table()),
            ),
            ("weights".to_string(), Artifact::Table(weights)),
            ("summary".to_string(), Artifact::Table(summary)),
        ]))
    }
}

/// a - b, wrapped to (-pi, pi] for torsions.
fn residual(a: f64, b: f64, kind: &CoordinateKind) -> f64 {
    match kind {
        CoordinateKind::Torsion => wrap_angle(a - b),
        _ => a - b,
    }
}

/// Root-mean-square residual per CG coordinate, at least 1e-4.
fn rms_residuals(s_z: &[f64], s_x: &[f64], kinds: &[CoordinateKind]) -> Vec<f64> {
    let c = kinds.len();
    let rows = (s_z.len() / c).max(1) as f64;
    let mut sum = vec![0.0; c];
    for (a, b) in s_z.chunks_exact(c).zip(s_x.chunks_exact(c)) {
        for k in 0..c {
            sum[k] += residual(a[k], b[k], &kinds[k]).powi(2);
        }
    }
    sum.iter().map(|s| (s / rows).sqrt().max(1e-4)).collect()
}

/// ln r(s | centre): a product of normals (wrapped differences for torsions).
pub fn log_kernel(s: &[f64], centre: &[f64], widths: &[f64], kinds: &[CoordinateKind]) -> f64 {
    let mut total = 0.0;
    for k in 0..kinds.len() {
        let d = residual(s[k], centre[k], &kinds[k]) / widths[k];
        total += -0.5 * d * d - widths[k].ln() - 0.5 * (2.0 * PI).ln();
    }
    total
}

/// The force field the weights target. With the `force_field` input connected, the one
/// the FG frames were sampled with; `topology` and `solvent`, where also set, must name
/// the same (an error says which differs). Without it, the params' (an explicit choice
/// of another target, which the workflow file shows).
fn target_force_field(p: &ReweightParams, inputs: &Inputs) -> Result<ForceFieldRecord, StageError> {
    let from_params = || -> Result<Option<String>, StageError> {
        if p.topology.0.is_empty() {
            return Ok(None);
        }
        String::from_utf8(inputs.file(&p.topology)?.to_vec())
            .map(Some)
            .map_err(|_| StageError::BadInput {
                input: p.topology.0.clone(),
                message: "not UTF-8 text".into(),
            })
    };
    if !inputs.has("force_field") {
        let Some(prmtop) = from_params()? else {
            return Err(StageError::Failed(
                "no FG force field to reweight to: connect input `force_field` to the FG \
                 node's `force_field` (the force field its frames were sampled with), or set \
                 params `topology` and `solvent`"
                    .into(),
            ));
        };
        let Some(solvent) = p.solvent else {
            return Err(StageError::Failed(
                "param `solvent`: required with `topology` when input `force_field` is not \
                 connected (vacuum or obc2)"
                    .into(),
            ));
        };
        return Ok(ForceFieldRecord::new(
            &p.topology.0,
            &prmtop,
            solvent.name(),
        ));
    }
    let sampled = ForceFieldRecord::from_table(inputs.table("force_field")?)
        .map_err(|e| StageError::bad_input("force_field", e.to_string()))?;
    if let Some(prmtop) = from_params()?
        && blake3::hash(prmtop.as_bytes()).to_hex().as_str() != sampled.topology_blake3
    {
        return Err(StageError::Failed(format!(
            "param `topology`: {} is not the topology the FG frames were sampled with \
                 ({}, from input `force_field`); leave `topology` out to reweight to the \
                 sampled force field, or disconnect `force_field` to reweight to another",
            p.topology.0, sampled.topology_file
        )));
    }
    if let Some(solvent) = p.solvent
        && solvent.name() != sampled.solvent
    {
        return Err(StageError::Failed(format!(
            "param `solvent`: {} is not the solvent the FG frames were sampled in ({}, \
                 from input `force_field`); leave `solvent` out, or disconnect `force_field` \
                 to reweight to another",
            solvent.name(),
            sampled.solvent
        )));
    }
    Ok(sampled)
}
