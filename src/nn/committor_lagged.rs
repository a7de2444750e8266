//! Training the committor by its time-lagged variational principle. For reversible
//! dynamics with stationary density pi and transition operator T_tau over a lag tau,
//!
//! ```text
//! (1/2) E_pi[(q(X_0) - q(X_tau))^2] = <q, (I - T_tau) q>_pi ,
//! ```
//!
//! and among the functions with q = 0 on A and q = 1 on B it is smallest for the
//! committor of the chain observed every tau (q = T_tau q off the cores), which tends to
//! the committor of the dynamics as tau -> 0: the discrete-time Dirichlet form (e.g.
//! Strahan, Guo, Lorpaiboon, Dinner and Weare, arXiv:2208.01717). The loss is its
//! estimate on the frame pairs of unbiased runs:
//!
//! ```text
//! L(theta) = mean over pairs (t, t + tau) of (q~(x_t) - q~(x_{t+tau}))^2 ,
//! q~ = 0 in A, 1 in B, q_theta elsewhere.
//! ```
//!
//! Against the Dirichlet form of [`super::committor_training`] it needs no boundary
//! penalty (the cores' values are exact) and no gradient in x, and it weighs a region
//! by how often the dynamics cross it: a step of q costs what the pairs straddling it
//! cost, where the Dirichlet form on finite samples is smallest with the step moved
//! into a gap between samples. The price: unbiased runs with transitions (e.g. at a
//! raised temperature), and a lag short against the time to commit (a run that enters
//! a core and leaves it within one lag is not seen to commit). Pairs with both frames in
//! cores carry no parameter and are left out by [`lagged_pairs`].
//!
//! The pair terms never see the network inside the cores; the boundary terms of the
//! Dirichlet training, lambda [mean_{A} q^2 + mean_{B} (1 - q)^2] over the batch's core
//! frames, hold it there too, so that the saved q is near 0 and 1 in the cores as well.
//!
//! **Shots.** Pairs of saved frames seldom straddle a transition region the dynamics
//! cross within one lag, so the pair loss leaves q's shape there loose. Shots fill it:
//! from configurations x_n in that region (the windows' samples of the `committor`
//! stage), plain dynamics until a core or a cap, and the regression term
//!
//! ```text
//! mu mean over shots of (q_theta(x_n) - t_n)^2 ,
//! t_n = 0 (entered A first), 1 (B first), q_prev(end) (undecided at the cap),
//! ```
//!
//! with q_prev the network before the refit, held fixed. Whatever the distribution of
//! the x_n, it is smallest for q(x) = E[t | x], which for decided shots is the
//! committor (for an undecided one it is so where q_prev is, by the strong Markov
//! property), so the shots need no weights and shape q exactly where the pairs cannot; the pair loss keeps the
//! basins' rim, which the rate through the Hill relation depends on.
//!
//! The features (inverse distances, nm^-1) are computed once per frame
//! ([`Committor::inverse_distances`]); minibatches of pairs, Adam, and the step decay of
//! the Dirichlet training; batch order from the caller's stream.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::Optimizer;
use rand_core::RngCore;

use super::committor::Committor;
use super::committor_training::Region;
use super::store::ParameterStore;
use super::training::{adam, minibatches};

/// Frames as features (frames x `width`, nm^-1) with their regions, and the pairs
/// (t, t + tau) to train on.
pub struct LaggedPairs {
    pub features: Vec<f64>,
    pub width: usize,
    pub regions: Vec<Region>,
    pub pairs: Vec<(usize, usize)>,
}

/// Shot starts as features (shots x `width`, nm^-1), the shots' targets t_n, and mu, the
/// weight of their regression term.
pub struct ShotTargets {
    pub features: Vec<f64>,
    pub width: usize,
    pub targets: Vec<f64>,
    pub weight: f64,
}

impl ShotTargets {
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Settings of [`train_committor_lagged`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaggedTraining {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// lambda, the weight of the boundary terms on the network inside the cores. It
    /// must sit on the scale of the pair loss (a squared jump of q per lag, ~1e-3): at
    /// ~1 and above the boundary terms outweigh the pairs and bend q off the cores.
    pub boundary_weight: f64,
}

/// The pairs (i - lag, i) of frames `lag` apart within one run (a stretch of strictly
/// increasing `time_ps`: a time that does not increase starts a new run), without those
/// whose two frames both lie in cores.
pub fn lagged_pairs(time_ps: &[f64], regions: &[Region], lag: usize) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let mut run_start = 0;
    for i in 0..time_ps.len() {
        if i > 0 && time_ps[i] <= time_ps[i - 1] {
            run_start = i;
        }
        if lag == 0 || i - run_start < lag {
            continue;
        }
        let j = i - lag;
        if regions[j] == Region::Between || regions[i] == Region::Between {
            pairs.push((j, i));
        }
    }
    pairs
}

/// The loss of one batch of pairs (a graph to the weights).
pub fn batch_loss(
    model: &Committor,
    data: &LaggedPairs,
    batch: &[usize],
    boundary_weight: f64,
) -> Result<Tensor> {
    let w = data.width;
    let mut features = Vec::with_capacity(2 * batch.len() * w);
    let (mut free, mut fixed, mut in_a, mut in_b) = (
        Vec::with_capacity(2 * batch.len()),
        Vec::with_capacity(2 * batch.len()),
        Vec::with_capacity(2 * batch.len()),
        Vec::with_capacity(2 * batch.len()),
    );
    for &k in batch {
        let (s, t) = data.pairs[k];
        for f in [s, t] {
            features.extend_from_slice(&data.features[f * w..(f + 1) * w]);
            let (m, v) = match data.regions[f] {
                Region::A => (0.0, 0.0),
                Region::B => (0.0, 1.0),
                Region::Between => (1.0, 0.0),
            };
            free.push(m);
            fixed.push(v);
            in_a.push(f64::from(data.regions[f] == Region::A));
            in_b.push(f64::from(data.regions[f] == Region::B));
        }
    }
    let n = 2 * batch.len();
    let f = Tensor::from_vec(features, (n, w), &Device::Cpu)?;
    let q = candle_nn::ops::sigmoid(&model.logit_of_features(&f)?)?;
    let mean_over = |mask: Vec<f64>| -> Result<Tensor> {
        let count: f64 = mask.iter().sum();
        let scaled = mask
            .into_iter()
            .map(|m| if count > 0.0 { m / count } else { 0.0 })
            .collect();
        Tensor::from_vec(scaled, n, &Device::Cpu)
    };
    let at_a = (q.sqr()? * mean_over(in_a)?)?.sum_all()?;
    let at_b = ((1.0 - &q)?.sqr()? * mean_over(in_b)?)?.sum_all()?;
    let free = Tensor::from_vec(free, n, &Device::Cpu)?;
    let fixed = Tensor::from_vec(fixed, n, &Device::Cpu)?;
    let q = ((q * free)? + fixed)?.reshape((batch.len(), 2))?;
    let d = (q.narrow(1, 0, 1)? - q.narrow(1, 1, 1)?)?;
    d.sqr()?.mean_all()? + ((at_a + at_b)? * boundary_weight)?
}

/// The regression term of one batch of shots, mu mean (q(x_n) - t_n)^2.
pub fn shot_loss(model: &Committor, shots: &ShotTargets, batch: &[usize]) -> Result<Tensor> {
    let w = shots.width;
    let mut features = Vec::with_capacity(batch.len() * w);
    for &k in batch {
        features.extend_from_slice(&shots.features[k * w..(k + 1) * w]);
    }
    let f = Tensor::from_vec(features, (batch.len(), w), &Device::Cpu)?;
    let q = candle_nn::ops::sigmoid(&model.logit_of_features(&f)?)?.flatten_all()?;
    let t = Tensor::from_vec(
        batch
            .iter()
            .map(|&k| shots.targets[k])
            .collect::<Vec<f64>>(),
        batch.len(),
        &Device::Cpu,
    )?;
    (q - t)?.sqr()?.mean_all()? * shots.weight
}

/// Trains `model` (its weights in `store`) on the pairs of `data` and, if given, the
/// shots (each epoch's pair batches each take the next of as many shot batches);
/// returns the mean batch loss of each epoch.
pub fn train_committor_lagged(
    model: &Committor,
    store: &ParameterStore,
    data: &LaggedPairs,
    shots: Option<&ShotTargets>,
    settings: LaggedTraining,
    rng: &mut impl RngCore,
) -> Result<Vec<f64>> {
    let mut optimizer = adam(store, settings.learning_rate)?;
    let all: Vec<usize> = (0..data.pairs.len()).collect();
    let all_shots: Vec<usize> = (0..shots.map_or(0, ShotTargets::len)).collect();
    let mut curve = Vec::with_capacity(settings.epochs);
    for epoch in 0..settings.epochs {
        // The last third at a tenth of the rate, as in the Dirichlet training.
        if settings.epochs >= 3 && epoch == 2 * settings.epochs / 3 {
            optimizer.set_learning_rate(settings.learning_rate / 10.0);
        }
        let mut sum = 0.0;
        let batches = minibatches(&all, settings.batch_size, rng);
        let shot_batches = match shots {
            Some(s) if !s.is_empty() => minibatches(
                &all_shots,
                all_shots.len().div_ceil(batches.len().max(1)),
                rng,
            ),
            _ => Vec::new(),
        };
        for (b, batch) in batches.iter().enumerate() {
            let mut loss = batch_loss(model, data, batch, settings.boundary_weight)?;
            if let (Some(s), Some(shot_batch)) = (shots, shot_batches.get(b)) {
                loss = (loss + shot_loss(model, s, shot_batch)?)?;
            }
            optimizer.backward_step(&loss)?;
            sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
        curve.push(sum / batches.len().max(1) as f64);
    }
    Ok(curve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::committor::CommittorConfig;
    use crate::nn::committor_training::two_spheres::region;
    use crate::nn::mlp::Activation;
    use crate::random::{normal, stream, uniform};

    /// The inverse distance of each two-atom configuration (flat positions).
    fn features(model: &Committor, positions: Vec<f64>) -> Vec<f64> {
        let n = positions.len() / 6;
        let x = Tensor::from_vec(positions, (n, 2, 3), &Device::Cpu).unwrap();
        model
            .inverse_distances(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    }

    /// Pairs of one step of the Metropolis random walk of atom 1 (atom 0 at the
    /// origin) in the shell 0.2 < r < 0.7 with steps of `sigma` nm per coordinate: its
    /// stationary density is uniform, as for free diffusion, and it is reversible, so
    /// for small steps its committor is that of diffusion between the spheres.
    fn walk_pairs(model: &Committor, count: usize, sigma: f64, seed: u64) -> LaggedPairs {
        let mut rng = stream(seed, 1);
        let inside =
            |p: &[f64; 3]| (0.2..=0.7).contains(&(p.iter().map(|v| v * v).sum::<f64>()).sqrt());
        let mut positions = Vec::with_capacity(12 * count);
        let mut regions = Vec::with_capacity(2 * count);
        while regions.len() < 2 * count {
            let p: [f64; 3] = std::array::from_fn(|_| 1.4 * uniform(&mut rng) - 0.7);
            if !inside(&p) {
                continue;
            }
            let moved: [f64; 3] = std::array::from_fn(|k| p[k] + sigma * normal(&mut rng));
            let next = if inside(&moved) { moved } else { p };
            for x in [p, next] {
                positions.extend([0.0, 0.0, 0.0]);
                positions.extend(x);
                regions.push(region(&x));
            }
        }
        let features = features(model, positions);
        let pairs = (0..count)
            .map(|k| (2 * k, 2 * k + 1))
            .filter(|&(s, t)| regions[s] == Region::Between || regions[t] == Region::Between)
            .collect();
        LaggedPairs {
            features,
            width: 1,
            regions,
            pairs,
        }
    }

    fn max_error(seed: u64) -> f64 {
        let store = ParameterStore::new([seed as u8; 32]);
        // Standardized on a uniform sample of the shell's radii' inverse (as the stage
        // does on its input frames).
        let shell: Vec<f64> = (0..200)
            .flat_map(|k| [0.0, 0.0, 0.0, 0.2 + 0.5 * k as f64 / 199.0, 0.0, 0.0])
            .collect();
        let config = CommittorConfig::new(vec![0, 1], vec![16, 16], Activation::Tanh)
            .standardized(&shell, 2);
        let model = Committor::new(config, 2, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
        let data = walk_pairs(&model, 40_000, 0.003, seed);
        let settings = LaggedTraining {
            epochs: 200,
            batch_size: 500,
            learning_rate: 0.003,
            boundary_weight: 0.01,
        };
        let curve =
            train_committor_lagged(&model, &store, &data, None, settings, &mut stream(seed, 2))
                .unwrap();
        assert!(curve.last().unwrap() < &curve[0], "{curve:?}");
        crate::nn::committor_training::two_spheres::max_error(&model)
    }

    /// Measured: largest errors 0.0136, 0.0144, 0.0141 on seeds 1-3 with lambda = 0.01,
    /// the largest at the inner sphere (the chain's committor there is about
    /// 0.58 sigma |grad q| = 0.012 above the diffusion's, Siegmund's overshoot, and the
    /// smooth network rounds the kink); q inside the cores within 0.002 of 0 and 1.
    /// Without boundary terms: 0.016-0.020. lambda must be on the scale of the pair loss
    /// (~1e-3 here): at lambda = 1 the errors were 0.11-0.12, at 1e4 (the Dirichlet
    /// training's weight) 0.38-0.42. The Dirichlet training on the same geometry:
    /// 0.028-0.044. With steps of 0.005 nm the overshoot alone reached 0.04.
    #[test]
    fn learns_the_committor_of_a_random_walk_between_two_spheres() {
        let errors: Vec<f64> = [1, 2, 3].iter().map(|&s| max_error(s)).collect();
        assert!(
            errors.iter().all(|&e| e < 0.03),
            "max |q - q_exact| per seed: {errors:?}"
        );
    }

    /// Shots of the walk of `walk_pairs` from `count` points uniform in the shell's
    /// inner part R_A < r < 0.45 until r < R_A (t = 0) or r > R_B (t = 1).
    fn walk_shots(model: &Committor, count: usize, sigma: f64, seed: u64) -> ShotTargets {
        use crate::nn::committor_training::two_spheres::{R_A, R_B};
        let mut rng = stream(seed, 3);
        let radius = |p: &[f64; 3]| p.iter().map(|v| v * v).sum::<f64>().sqrt();
        let (mut positions, mut targets) = (Vec::new(), Vec::new());
        while targets.len() < count {
            let p: [f64; 3] = std::array::from_fn(|_| 0.9 * uniform(&mut rng) - 0.45);
            if !(R_A..0.45).contains(&radius(&p)) {
                continue;
            }
            let mut x = p;
            while (R_A..=R_B).contains(&radius(&x)) {
                x = std::array::from_fn(|k| x[k] + sigma * normal(&mut rng));
            }
            positions.extend([0.0, 0.0, 0.0]);
            positions.extend(p);
            targets.push(f64::from(radius(&x) > R_B));
        }
        let features = features(model, positions);
        ShotTargets {
            features,
            width: 1,
            targets,
            weight: 1.0,
        }
    }

    /// The walk's pairs with one in 200 of those touching the inner part of the shell
    /// (R_A < r < 0.45), with and without shots from there: the largest error over the
    /// shell, seeds 1-3.
    fn gap_errors(with_shots: bool) -> Vec<f64> {
        [1u64, 2, 3]
            .iter()
            .map(|&seed| {
                let store = ParameterStore::new([seed as u8; 32]);
                let shell: Vec<f64> = (0..200)
                    .flat_map(|k| [0.0, 0.0, 0.0, 0.2 + 0.5 * k as f64 / 199.0, 0.0, 0.0])
                    .collect();
                let config = CommittorConfig::new(vec![0, 1], vec![16, 16], Activation::Tanh)
                    .standardized(&shell, 2);
                let model =
                    Committor::new(config, 2, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
                let mut data = walk_pairs(&model, 40_000, 0.003, seed);
                let inner =
                    |f: usize| data.regions[f] == Region::Between && 1.0 / data.features[f] < 0.45;
                // One in 200 of the pairs touching the inner part is kept: a region
                // the runs seldom visit.
                let kept: Vec<(usize, usize)> = data
                    .pairs
                    .iter()
                    .enumerate()
                    .filter(|&(k, &(s, t))| (!inner(s) && !inner(t)) || k % 200 == 0)
                    .map(|(_, &pair)| pair)
                    .collect();
                data.pairs = kept;
                let shots = with_shots.then(|| walk_shots(&model, 8_000, 0.003, seed));
                let settings = LaggedTraining {
                    epochs: 200,
                    batch_size: 500,
                    learning_rate: 0.003,
                    boundary_weight: 0.01,
                };
                train_committor_lagged(
                    &model,
                    &store,
                    &data,
                    shots.as_ref(),
                    settings,
                    &mut stream(seed, 2),
                )
                .unwrap();
                crate::nn::committor_training::two_spheres::max_error(&model)
            })
            .collect()
    }

    /// Measured on seeds 1-3: with one in 200 of the inner part's pairs the largest
    /// error is 0.93 / 0.75 / 0.44; 8,000 shots from there (one each, mu = 1) bring it to
    /// 0.063 / 0.057 / 0.054, the largest at the inner sphere, where the smooth network
    /// rounds the kink (600 epochs: 0.048 / 0.031 / 0.054; 32,000 shots did not help, nor
    /// did mu = 0.1 or 0.01). Without any of the inner part's pairs, 0.45-0.57 against
    /// 0.053-0.063.
    #[test]
    fn shots_shape_q_where_the_pairs_are_missing() {
        let (without, with) = (gap_errors(false), gap_errors(true));
        assert!(
            with.iter()
                .zip(&without)
                .all(|(&w, &o)| w < 0.08 && w < o / 4.0),
            "max |q - q_exact| with shots: {with:?}, without: {without:?}"
        );
    }

    #[test]
    fn pairs_stay_within_runs_and_skip_core_to_core() {
        use Region::{A, B, Between};
        let time = [0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0];
        let regions = [A, Between, A, A, B, B, Between];
        assert_eq!(lagged_pairs(&time, &regions, 1), [(0, 1), (1, 2), (5, 6)]);
        assert_eq!(lagged_pairs(&time, &regions, 2), [(1, 3), (4, 6)]);
    }
}
