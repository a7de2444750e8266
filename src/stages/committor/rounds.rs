//! The rounds of adaptive importance sampling of the committor (Rotskoff, Mitchell and
//! Vanden-Eijnden, arXiv:2008.06334), as a pure function of the input frames, the
//! settings and the node's streams.
//!
//! ```text
//! round r = 0..R:
//!   fit q_r on the pool (warm start from q_{r-1}): Dirichlet form over the pool's
//!     samples between the cores with their unbiased weights, boundary terms on those
//!     inside them (nn::committor_training)
//!   if r < R, for each window l (centre u_l = (l + 1/2) / L):
//!     seed: the pooled sample whose q_r is nearest u_l
//!     Langevin dynamics on U(x) + (k/2)(q_r(x) - u_l)^2 (md::umbrella), its own stream
//!   MBAR over every window of every round so far (and the input, when it is a Boltzmann
//!     sample): u_{r,l}(x) = k (q_r(x) - u_l)^2 / (2 k_B T) for every pooled x, giving
//!     each sample's weight in the unbiased ensemble (analysis::mbar)
//! ```
//!
//! Each window's biased dynamics uses the network it was sampled with, so every pooled
//! sample keeps its q under every round's network, and MBAR sees each window's true
//! bias. Windows of a round run in parallel, each from its own ChaCha stream, so the
//! result does not depend on the thread count.

use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::analysis::mbar::mbar;
use crate::artifact::tensors::NamedTensor;
use crate::md::constraints::DistanceConstraint;
use crate::md::dynamics::LangevinParams;
use crate::md::forcefield::{ForceField, Solvent};
use crate::md::langevin::LangevinIntegrator;
use crate::md::topology::Topology;
use crate::md::umbrella::{CollectiveVariable, Umbrella};
use crate::nn::committor::{CommittorConfig, HostCommittor};
use crate::nn::committor_training::Region;
use crate::stages::StageError;

/// One pooled configuration.
#[derive(Clone, Debug)]
pub(super) struct PooledSample {
    /// -1 for input frames.
    pub round: i64,
    pub window: i64,
    /// nm, flat atoms x 3.
    pub positions: Vec<f64>,
    /// The MD step (of the window's run, or of the input frame).
    pub step: i64,
    pub region: Region,
    pub phi_deg: f64,
    pub psi_deg: f64,
}

/// Everything the windows' dynamics needs.
pub(super) struct Dynamics<'a> {
    pub topology: &'a Topology,
    pub solvent: Solvent,
    pub masses: &'a [f64],
    pub constraints: &'a [DistanceConstraint],
    pub params: LangevinParams,
    /// kJ/mol per unit q squared.
    pub force_constant: f64,
    pub equilibration_steps: u64,
    pub steps: u64,
    pub save_every: u64,
}

/// A window's frames: (step, positions flat).
pub(super) type WindowFrames = Vec<(i64, Vec<f64>)>;

/// Runs one window: biased Langevin dynamics from `seed` (flat positions).
pub(super) fn run_window(
    dynamics: &Dynamics<'_>,
    committor: impl CollectiveVariable,
    centre: f64,
    seed: &[f64],
    rng: ChaCha20Rng,
) -> Result<WindowFrames, StageError> {
    let (forcefield, _) = ForceField::new(dynamics.topology, dynamics.solvent)
        .map_err(|e| StageError::Failed(e.to_string()))?
        .without_constrained_bonds(dynamics.constraints);
    let potential = Umbrella::new(forcefield, committor, centre, dynamics.force_constant);
    let positions: Vec<[f64; 3]> = seed.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    let failed = |e: crate::md::dynamics::DynamicsError| {
        StageError::Failed(format!("window at q = {centre:.3}: {e}"))
    };
    let mut md = LangevinIntegrator::new(
        potential,
        dynamics.masses,
        &positions,
        dynamics.constraints,
        dynamics.params,
        rng,
    )
    .map_err(failed)?;
    md.initialize_velocities().map_err(failed)?;
    md.run(dynamics.equilibration_steps, 0, |_| {})
        .map_err(failed)?;
    let mut frames = Vec::new();
    md.run(dynamics.steps, dynamics.save_every, |f| {
        frames.push((
            f.step as i64,
            f.positions.iter().flatten().copied().collect(),
        ))
    })
    .map_err(failed)?;
    Ok(frames)
}

/// q of every sample under one network, |grad q| (per nm, over all atoms), and the
/// logit y = ln(q / (1 - q)).
pub(super) fn evaluate(
    weights: &[NamedTensor],
    config: &CommittorConfig,
    samples: &[PooledSample],
) -> Result<Evaluated, StageError> {
    let chunk = 256;
    let parts: Vec<Result<Vec<(f64, f64, f64)>, StageError>> = samples
        .par_chunks(chunk)
        .map(|part| {
            let mut host = HostCommittor::load(weights, config).map_err(StageError::Failed)?;
            let n = part.first().map_or(0, |s| s.positions.len() / 3);
            let mut gradient = vec![[0.0; 3]; n];
            Ok(part
                .iter()
                .map(|s| {
                    let x: Vec<[f64; 3]> =
                        s.positions.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
                    let q = host.value_and_gradient(&x, &mut gradient);
                    let norm = gradient.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
                    (q, norm, host.last_logit())
                })
                .collect())
        })
        .collect();
    let mut out = Evaluated::default();
    for part in parts {
        for (q, g, y) in part? {
            out.q.push(q);
            out.gradient_norms.push(g);
            out.logit.push(y);
        }
    }
    Ok(out)
}

/// What [`evaluate`] gives per sample.
#[derive(Default)]
pub(super) struct Evaluated {
    pub q: Vec<f64>,
    pub gradient_norms: Vec<f64>,
    pub logit: Vec<f64>,
}

/// The index of the sample whose q is nearest `centre` (the first of equals).
pub(super) fn nearest(q: &[f64], centre: f64) -> usize {
    let mut best = 0;
    for (i, v) in q.iter().enumerate() {
        if (v - centre).abs() < (q[best] - centre).abs() {
            best = i;
        }
    }
    best
}

/// A sampled state of MBAR: the round whose network biased it (None: the unbiased
/// input) and its centre.
#[derive(Clone, Copy, Debug)]
pub(super) struct State {
    pub round: Option<usize>,
    pub centre: f64,
    pub count: usize,
}

/// The unbiased weights of the pooled samples that belong to `states` (in pool order,
/// the rest weight 0) and the states' free energies (k_B T), by MBAR. `q_by_round[r][n]`
/// is round r's windowed variable (q_r, or its logit) at sample n; `member[n]` says whether sample n was drawn in one of `states`.
pub(super) fn unbiased_weights(
    states: &[State],
    q_by_round: &[Vec<f64>],
    member: &[bool],
    force_constant_over_kt: f64,
) -> Result<(Vec<f64>, Vec<f64>, usize), StageError> {
    let rows: Vec<usize> = (0..member.len()).filter(|&n| member[n]).collect();
    let reduced: Vec<Vec<f64>> = rows
        .iter()
        .map(|&n| {
            states
                .iter()
                .map(|s| match s.round {
                    None => 0.0,
                    Some(r) => 0.5 * force_constant_over_kt * (q_by_round[r][n] - s.centre).powi(2),
                })
                .collect()
        })
        .collect();
    let counts: Vec<usize> = states.iter().map(|s| s.count).collect();
    let solution = mbar(&reduced, &counts, 1e-8, 100_000)
        .map_err(|e| StageError::Failed(format!("MBAR over the windows: {e}")))?;
    let mut weights = vec![0.0; member.len()];
    for (k, &n) in rows.iter().enumerate() {
        weights[n] = solution.weights[k];
    }
    Ok((weights, solution.free_energies, solution.iterations))
}
