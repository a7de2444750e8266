//! Refining the networks by relative entropy (Shell 2008; Carmichael & Shell 2012):
//! after force matching, minimise S_rel = <beta U_hat>_map - <beta U_hat>_model + const
//! (the Kullback-Leibler divergence of the mapped FG distribution from the CG model's),
//! whose gradient in the network weights theta is
//!
//! ```text
//! dS_rel/dtheta = beta ( <dU_hat/dtheta>_mapped frames - <dU_hat/dtheta>_CG model )
//! ```
//!
//! The first average is over a minibatch of training frames, the second over persistent
//! Langevin chains on the current U_hat (priors included; the chains continue from
//! iteration to iteration, so each sees a model that moved a little since its last
//! samples: persistent contrastive divergence). Force matching cannot see an error of a
//! few kJ/mol per radian along the slow coordinates under per-frame forces of hundreds;
//! S_rel is the free-energy error itself, so it can. The chains run at `temperature_k`
//! with 12 amu per bead (masses do not change the configurational distribution), a 2 fs
//! step and friction 10/ps, on the host potential as `cg_sample` runs them.

use candle_core::{DType, Device, Tensor};
use rand_core::RngCore;
use rayon::prelude::*;

use super::frames::Frames;
use crate::md::dynamics::LangevinParams;
use crate::md::langevin::LangevinIntegrator;
use crate::md::units::BOLTZMANN;
use crate::nn::ParameterStore;
use crate::nn::cg_potential::{CgPotential, CgPotentialConfig, save_potential};
use crate::nn::cg_potential_host::HostCgPotential;
use crate::nn::priors::PriorSet;
use crate::nn::training::{adam, step};
use crate::stages::{Context, StageError};

/// Settings of the refinement.
pub(super) struct Refinement {
    pub iterations: usize,
    pub chains: usize,
    /// Steps each chain runs per iteration (4 samples per chain, evenly spaced).
    pub steps: u64,
    pub learning_rate: f64,
    pub temperature_k: f64,
    /// Mapped frames per iteration.
    pub batch_size: usize,
}

const SAMPLES_PER_CHAIN: u64 = 4;
const EQUILIBRATION_STEPS: u64 = 2_000;

fn failed(e: impl std::fmt::Display) -> StageError {
    StageError::Failed(format!("relative entropy: {e}"))
}

/// Refines the weights in `store` in place; returns S_rel's estimate (up to its
/// constant, in k_B T) per iteration.
#[allow(clippy::too_many_arguments)]
pub(super) fn refine(
    settings: &Refinement,
    n: usize,
    config: &CgPotentialConfig,
    priors: &PriorSet,
    store: &ParameterStore,
    potential: &CgPotential,
    data: &Frames,
    train: &[usize],
    ctx: &mut Context<'_>,
) -> Result<Vec<f64>, StageError> {
    let device = Device::Cpu;
    let beta = 1.0 / (BOLTZMANN * settings.temperature_k);
    let host = || -> Result<HostCgPotential, StageError> {
        let saved = save_potential(n, config, priors, store).map_err(failed)?;
        HostCgPotential::from_tensors(&saved).map_err(failed)
    };
    let params = LangevinParams::new(settings.temperature_k, 10.0, 0.002);
    let masses = vec![12.0; n];
    let mut pick = ctx.stream(40);
    let current = host()?;
    let mut chains = Vec::with_capacity(settings.chains);
    for c in 0..settings.chains {
        let row = train[(pick.next_u64() % train.len() as u64) as usize];
        let z = data.positions(&[row], &device).map_err(failed)?;
        let flat = z
            .flatten_all()
            .map_err(failed)?
            .to_vec1::<f64>()
            .map_err(failed)?;
        let positions: Vec<[f64; 3]> = flat.chunks_exact(3).map(|x| [x[0], x[1], x[2]]).collect();
        let rng = ctx.stream(41 + c as u64);
        let mut md =
            LangevinIntegrator::new(current.clone(), &masses, &positions, &[], params, rng)
                .map_err(failed)?;
        md.initialize_velocities().map_err(failed)?;
        chains.push(md);
    }
    chains
        .par_iter_mut()
        .try_for_each(|md| md.run(EQUILIBRATION_STEPS, 0, |_| {}))
        .map_err(failed)?;
    let mut optimizer = adam(store, settings.learning_rate).map_err(failed)?;
    let mut batch_rng = ctx.stream(42);
    let mut history = Vec::with_capacity(settings.iterations);
    ctx.progress
        .start("relative entropy iterations", settings.iterations as u64);
    let every = (settings.steps / SAMPLES_PER_CHAIN).max(1);
    for iteration in 0..settings.iterations {
        let samples: Vec<Vec<f64>> = chains
            .par_iter_mut()
            .map(|md| {
                let mut out = Vec::with_capacity((SAMPLES_PER_CHAIN as usize) * 3 * n);
                for _ in 0..SAMPLES_PER_CHAIN {
                    md.run(every, 0, |_| {})?;
                    out.extend(md.positions().iter().flatten());
                }
                Ok(out)
            })
            .collect::<Result<_, crate::md::dynamics::DynamicsError>>()
            .map_err(failed)?;
        let model_frames = samples.len() * SAMPLES_PER_CHAIN as usize;
        let z_model =
            Tensor::from_vec(samples.concat(), (model_frames, n, 3), &device).map_err(failed)?;
        let rows: Vec<usize> = (0..settings.batch_size)
            .map(|_| train[(batch_rng.next_u64() % train.len() as u64) as usize])
            .collect();
        let z_data = data.positions(&rows, &device).map_err(failed)?;
        let (u_data, _) = potential.energy_and_forces(&z_data).map_err(failed)?;
        let (u_model, _) = potential.energy_and_forces(&z_model).map_err(failed)?;
        let loss = ((u_data.mean_all().map_err(failed)? - u_model.mean_all().map_err(failed)?)
            .map_err(failed)?
            * beta)
            .map_err(failed)?
            .to_dtype(DType::F64)
            .map_err(failed)?;
        let value = step(&mut optimizer, &loss).map_err(failed)?;
        history.push(value);
        if (iteration + 1) % 10 == 0 || iteration == 0 {
            tracing::info!(
                "relative entropy iteration {}/{}: <beta U>_map - <beta U>_model {value:.4}",
                iteration + 1,
                settings.iterations
            );
        }
        // The chains go on with the updated potential (forces recomputed at their
        // current positions).
        let updated = host()?;
        chains
            .par_iter_mut()
            .try_for_each(|md| {
                *md.potential_mut() = updated.clone();
                let here = md.positions().to_vec();
                md.set_positions(&here)
            })
            .map_err(failed)?;
        ctx.progress.advance(1);
    }
    Ok(history)
}
