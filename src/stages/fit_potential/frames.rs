//! The frames a `fit_potential` node trains on, and the force errors it reports.

use candle_core::{DType, Device};

use super::{EVAL_CHUNK, MIN_FRAMES, bad_input};
use crate::artifact::trajectory::Trajectory;
use crate::nn::cg_potential::CgPotential;
use crate::nn::priors::{BeadFrames, PriorSet, bead_pairs};
use crate::nn::training::gather_frames;
use crate::stages::StageError;

/// The frames trained on: positions, forces and the networks' targets (the forces less
/// the priors'), 3n values each per frame.
pub(super) struct Frames {
    pub(super) n: usize,
    pub(super) positions: Vec<f64>,
    forces: Vec<f64>,
    targets: Vec<f64>,
}

impl Frames {
    pub(super) fn new(
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
            targets: selected.forces.clone(),
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
        let beads = BeadFrames::new(n, &frames.positions);
        for (t, &row) in rows.iter().enumerate() {
            for (i, j) in bead_pairs(n) {
                if beads.distance(t, i, j) == 0.0 {
                    return Err(bad_input(format!(
                        "frame {row}: beads {i} and {j} coincide"
                    )));
                }
            }
        }
        Ok(frames)
    }

    pub(super) fn len(&self) -> usize {
        self.positions.len() / (3 * self.n)
    }

    /// targets = forces - the priors' forces, frame by frame.
    pub(super) fn subtract_priors(&mut self, priors: &PriorSet) {
        let mut prior = vec![[0.0; 3]; self.n];
        let width = 3 * self.n;
        for (t, target) in self.targets.chunks_exact_mut(width).enumerate() {
            let (z, _) = self.positions[t * width..(t + 1) * width].as_chunks::<3>();
            priors.energy_and_forces(z, &mut prior);
            for (value, f) in target.iter_mut().zip(prior.as_flattened()) {
                *value -= f;
            }
        }
    }

    pub(super) fn positions(
        &self,
        frames: &[usize],
        device: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        gather_frames(&self.positions, 3 * self.n, frames, DType::F64, device)
    }

    pub(super) fn targets(
        &self,
        frames: &[usize],
        device: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        gather_frames(&self.targets, 3 * self.n, frames, DType::F64, device)
    }

    /// sqrt(mean over `frames`, beads and components of F_inst^2).
    pub(super) fn force_rms(&self, frames: &[usize]) -> f64 {
        rms(&self.forces, 3 * self.n, frames)
    }

    /// The same of the networks' targets: the force RMSE of the priors alone.
    pub(super) fn residual_rms(&self, frames: &[usize]) -> f64 {
        rms(&self.targets, 3 * self.n, frames)
    }
}

/// sqrt(mean of the squares of the rows `frames` of `values`, `width` per row).
fn rms(values: &[f64], width: usize, frames: &[usize]) -> f64 {
    let sum: f64 = frames
        .iter()
        .flat_map(|&t| &values[t * width..(t + 1) * width])
        .map(|f| f * f)
        .sum();
    (sum / (frames.len() * width) as f64).sqrt()
}

/// sqrt(mean over `frames`, beads and components of (F_model - F_inst)^2), kJ/mol/nm,
/// evaluated in chunks of frames.
pub(super) fn force_rmse(
    potential: &CgPotential,
    data: &Frames,
    frames: &[usize],
) -> candle_core::Result<f64> {
    let device = Device::Cpu;
    let mut sum = 0.0;
    for chunk in frames.chunks(EVAL_CHUNK) {
        let z = data.positions(chunk, &device)?;
        let f = data.targets(chunk, &device)?;
        let (_, model) = potential.energy_and_forces(&z)?;
        sum += (model - f)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    }
    Ok((sum / (frames.len() * 3 * data.n) as f64).sqrt())
}
