//! Training the committor by its variational principle (Rotskoff, Mitchell and
//! Vanden-Eijnden, arXiv:2008.06334): q minimizes the Dirichlet form over the region
//! between the states, with q = 0 on A and q = 1 on B.
//!
//! ```text
//! L(theta) = sum_{i between} w_i sum_a |grad_a q(x_i)|^2 / m_a  /  sum_{i between} w_i
//!          + lambda [ mean_{i in A} q(x_i)^2 + mean_{i in B} (1 - q(x_i))^2 ]
//! ```
//!
//! w_i are the samples' weights in the unbiased ensemble (1 for Boltzmann samples, MBAR
//! weights for samples of biased windows), m_a the atoms' masses (amu; the diffusion of
//! overdamped Langevin dynamics goes as 1 / m), gradients in nm^-1. Samples inside the
//! cores A and B enter only the boundary terms: the Dirichlet form is taken over the
//! region between them, where q is harmonic, so the network is not asked to be flat
//! inside a core and steep at its edge at once (with the form taken over every sample,
//! the fit of free diffusion between two spheres was off by up to 0.09 at the inner
//! sphere's edge). The penalty leaves q a few hundredths off at the cores' edges
//! (about 0.03 on that test with lambda = 1e4; a larger lambda stiffens the fit
//! elsewhere): good for windows in q and the committor test, not for the small values
//! of q just outside A, where a rate from q alone needs relative accuracy.
//!
//! Minibatches hold samples of all three regions in the proportions drawn; each term is
//! the batch's own mean (weighted for the Dirichlet form). Adam; batch order from the
//! caller's stream, so training is a pure function of (samples, settings, seed).

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::Optimizer;
use rand_core::RngCore;

use super::committor::Committor;
use super::store::ParameterStore;
use super::training::{adam, minibatches};

/// Where a sample lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    A,
    B,
    Between,
}

/// Configurations to train on: positions (flat samples x atoms x 3, nm), their weights
/// in the unbiased ensemble and their regions.
pub struct CommittorSamples {
    pub positions: Vec<f64>,
    pub n_atoms: usize,
    pub weights: Vec<f64>,
    pub regions: Vec<Region>,
}

/// Settings of [`train_committor`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DirichletTraining {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// lambda, the weight of the boundary terms.
    pub boundary_weight: f64,
}

/// The loss of one batch (a graph to the weights).
pub fn batch_loss(
    model: &Committor,
    samples: &CommittorSamples,
    batch: &[usize],
    inverse_masses: &Tensor,
    boundary_weight: f64,
) -> Result<Tensor> {
    let n = samples.n_atoms;
    let x: Vec<f64> = batch
        .iter()
        .flat_map(|&i| {
            samples.positions[3 * n * i..3 * n * (i + 1)]
                .iter()
                .copied()
        })
        .collect();
    let x = Tensor::from_vec(x, (batch.len(), n, 3), &Device::Cpu)?;
    let (q, grad) = model.q_and_gradient(&x)?;
    // Per sample: sum_a |grad_a q|^2 / m_a.
    let dirichlet = grad.sqr()?.sum(2)?.broadcast_mul(inverse_masses)?.sum(1)?;
    let (mut between, mut in_a, mut in_b) = (
        vec![0.0; batch.len()],
        vec![0.0; batch.len()],
        vec![0.0; batch.len()],
    );
    let mut total = 0.0;
    let (mut count_a, mut count_b) = (0usize, 0usize);
    for (k, &i) in batch.iter().enumerate() {
        match samples.regions[i] {
            Region::Between => {
                between[k] = samples.weights[i];
                total += samples.weights[i];
            }
            Region::A => {
                in_a[k] = 1.0;
                count_a += 1;
            }
            Region::B => {
                in_b[k] = 1.0;
                count_b += 1;
            }
        }
    }
    let scale = |v: Vec<f64>, by: f64| -> Result<Tensor> {
        let v: Vec<f64> = v
            .iter()
            .map(|x| if by > 0.0 { x / by } else { 0.0 })
            .collect();
        Tensor::from_vec(v, batch.len(), &Device::Cpu)
    };
    let form = (dirichlet * scale(between, total)?)?.sum_all()?;
    let at_a = (q.sqr()? * scale(in_a, count_a as f64)?)?.sum_all()?;
    let at_b = ((1.0 - &q)?.sqr()? * scale(in_b, count_b as f64)?)?.sum_all()?;
    form + ((at_a + at_b)? * boundary_weight)?
}

/// Trains `model` (its weights in `store`) on `samples`; returns the mean batch loss of
/// each epoch.
pub fn train_committor(
    model: &Committor,
    store: &ParameterStore,
    samples: &CommittorSamples,
    masses: &[f64],
    settings: DirichletTraining,
    rng: &mut impl RngCore,
) -> Result<Vec<f64>> {
    let inverse: Vec<f64> = masses.iter().map(|m| 1.0 / m).collect();
    let inverse_masses = Tensor::from_vec(inverse, (1, masses.len()), &Device::Cpu)?;
    let mut optimizer = adam(store, settings.learning_rate)?;
    let all: Vec<usize> = (0..samples.regions.len()).collect();
    let mut curve = Vec::with_capacity(settings.epochs);
    for epoch in 0..settings.epochs {
        // Step decay: the last third at a tenth of the rate, so the minibatch noise
        // settles (at a constant rate the fit wanders by a few hundredths).
        if settings.epochs >= 3 && epoch == 2 * settings.epochs / 3 {
            optimizer.set_learning_rate(settings.learning_rate / 10.0);
        }
        let mut sum = 0.0;
        let batches = minibatches(&all, settings.batch_size, rng);
        for batch in &batches {
            let loss = batch_loss(
                model,
                samples,
                batch,
                &inverse_masses,
                settings.boundary_weight,
            )?;
            optimizer.backward_step(&loss)?;
            sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
        curve.push(sum / batches.len().max(1) as f64);
    }
    Ok(curve)
}

/// The test problem of the committor trainers: atom 1 moving freely around atom 0 at
/// the origin, A the ball r < R_A and B the outside r > R_B, whose committor is known.
#[cfg(test)]
pub(crate) mod two_spheres {
    use candle_core::{Device, Tensor};

    use super::Region;
    use crate::nn::committor::Committor;

    pub const R_A: f64 = 0.3;
    pub const R_B: f64 = 0.6;

    /// The exact committor of free diffusion between the spheres r = R_A and r = R_B.
    pub fn exact(r: f64) -> f64 {
        (1.0 / R_A - 1.0 / r) / (1.0 / R_A - 1.0 / R_B)
    }

    /// The region of atom 1 at `p` (nm).
    pub fn region(p: &[f64]) -> Region {
        let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
        if r < R_A {
            Region::A
        } else if r > R_B {
            Region::B
        } else {
            Region::Between
        }
    }

    /// The largest |q - q_exact| of `model` at 31 radii from R_A to R_B.
    pub fn max_error(model: &Committor) -> f64 {
        let radii: Vec<f64> = (0..=30)
            .map(|k| R_A + (R_B - R_A) * k as f64 / 30.0)
            .collect();
        let x: Vec<f64> = radii
            .iter()
            .flat_map(|&r| [0.0, 0.0, 0.0, r, 0.0, 0.0])
            .collect();
        let x = Tensor::from_vec(x, (radii.len(), 2, 3), &Device::Cpu).unwrap();
        let q = candle_nn::ops::sigmoid(&model.logit(&x).unwrap())
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        radii
            .iter()
            .zip(&q)
            .map(|(&r, &q)| (q - exact(r)).abs())
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::two_spheres::region;
    use super::*;
    use crate::nn::committor::CommittorConfig;
    use crate::nn::mlp::Activation;
    use crate::random::{stream, uniform};

    /// Atom 0 at the origin, atom 1 uniform in the ball of radius 0.7 outside r = 0.2
    /// (free diffusion: the Boltzmann density is uniform in space).
    fn shell_samples(count: usize, seed: u64) -> CommittorSamples {
        let mut rng = stream(seed, 1);
        let mut positions = Vec::with_capacity(6 * count);
        let mut regions = Vec::with_capacity(count);
        while regions.len() < count {
            let p: [f64; 3] = std::array::from_fn(|_| 1.4 * uniform(&mut rng) - 0.7);
            let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
            if !(0.2..=0.7).contains(&r) {
                continue;
            }
            positions.extend([0.0, 0.0, 0.0]);
            positions.extend(p);
            regions.push(region(&p));
        }
        CommittorSamples {
            positions,
            n_atoms: 2,
            weights: vec![1.0; count],
            regions,
        }
    }

    /// The largest error of the trained committor between the spheres.
    fn max_error(seed: u64) -> f64 {
        let samples = shell_samples(4000, seed);
        let store = ParameterStore::new([seed as u8; 32]);
        let config = CommittorConfig::new(vec![0, 1], vec![16, 16], Activation::Tanh)
            .standardized(&samples.positions, 2);
        let model = Committor::new(config, 2, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
        let settings = DirichletTraining {
            epochs: 300,
            batch_size: 250,
            learning_rate: 0.003,
            boundary_weight: 1e4,
        };
        let curve = train_committor(
            &model,
            &store,
            &samples,
            &[1.0, 1.0],
            settings,
            &mut stream(seed, 2),
        )
        .unwrap();
        assert!(curve.last().unwrap() < &curve[0], "{curve:?}");
        super::two_spheres::max_error(&model)
    }

    /// Measured: largest errors 0.033, 0.044, 0.028 on seeds 1-3, the largest at the
    /// inner sphere, where the penalty leaves q about 0.03 above 0 (lambda 1e5 pins it
    /// but the interior then misfits by up to 0.1; the Dirichlet form over every sample,
    /// cores included, gave up to 0.09).
    #[test]
    fn learns_the_committor_of_diffusion_between_two_spheres() {
        let errors: Vec<f64> = [1, 2, 3].iter().map(|&s| max_error(s)).collect();
        assert!(
            errors.iter().all(|&e| e < 0.05),
            "max |q - q_exact| per seed: {errors:?}"
        );
    }
}
