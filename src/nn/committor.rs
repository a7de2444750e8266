//! The committor model q_theta(x): the probability that dynamics from x reach state B
//! before state A, learned as a network of invariant features.
//!
//! ```text
//! f_p(x) = 1 / |x_i - x_j|      for every pair p = (i, j), i < j, of the chosen atoms (nm^-1)
//! g_p = (f_p - m_p) / s_p        (standardized: m, s the features' mean and standard deviation)
//! y = MLP(g),   q = sigmoid(y) = 1 / (1 + e^-y)
//! grad_x q = q (1 - q) sum_p (dy/dg_p / s_p) df_p/dx,   df_p/dx_i = -f_p^3 (x_i - x_j) = -df_p/dx_j
//! ```
//!
//! The standardization ([`CommittorConfig::standardized`], from training frames) puts
//! every feature on the scale the network's initial weights expect: without it, inverse
//! distances between bonded and distant atoms differ tenfold and training struggles
//! (measured on diffusion between two spheres, `nn::committor_training`).
//!
//! Inverse distances are invariant to translation and rotation and weigh close contacts
//! most; the atoms are the heavy atoms by default ([`heavy_atoms`]). The pair
//! differences are an incidence matrix E (pairs x atoms, +1 at i and -1 at j) times the
//! positions, and the gradient is E^T (c r) with c_p = -(dy/df_p) f_p^3: the whole
//! gradient is an ordinary candle graph ([`Committor::q_and_gradient`]), so a loss on
//! it (the Dirichlet form E|grad q|^2) backpropagates to the weights exactly. For MD the
//! same weights run on the host in f64 ([`HostCommittor`], a
//! [`crate::md::umbrella::CollectiveVariable`] for window biases).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::host_network::Network;
use super::mlp::{Activation, Mlp};
use super::priors::{SavedRows, scalar_row, vector_row};
use super::store::ParameterStore;
use crate::artifact::atoms::AtomRow;
use crate::artifact::tensors::NamedTensor;
use crate::md::umbrella::CollectiveVariable;

/// The prefix of the network's weights.
const PREFIX: &str = "committor";

/// Which atoms the features use and the network's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittorConfig {
    /// Atom indices (at least 2, distinct).
    pub atoms: Vec<usize>,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// Per pair: the mean m_p and scale s_p of the features (empty: 0 and 1).
    pub feature_mean: Vec<f64>,
    pub feature_scale: Vec<f64>,
}

impl CommittorConfig {
    /// Plain features (m = 0, s = 1) over `atoms`.
    pub fn new(atoms: Vec<usize>, hidden: Vec<usize>, activation: Activation) -> Self {
        CommittorConfig {
            atoms,
            hidden,
            activation,
            feature_mean: Vec::new(),
            feature_scale: Vec::new(),
        }
    }

    /// The same with m and s the mean and standard deviation (at least 1e-6 nm^-1) of
    /// each feature over `frames` (flat frames x atoms x 3, nm, `n_atoms` per frame).
    /// Without a whole frame the features stay plain.
    pub fn standardized(mut self, frames: &[f64], n_atoms: usize) -> Self {
        if n_atoms == 0 || frames.len() < 3 * n_atoms {
            return self;
        }
        let pairs = self.pairs();
        let count = (frames.len() / (3 * n_atoms)).max(1) as f64;
        let mut sum = vec![0.0; pairs.len()];
        let mut sq = vec![0.0; pairs.len()];
        for frame in frames.chunks_exact(3 * n_atoms) {
            for (p, &(i, j)) in pairs.iter().enumerate() {
                let f = 1.0
                    / (0..3)
                        .map(|k| (frame[3 * i + k] - frame[3 * j + k]).powi(2))
                        .sum::<f64>()
                        .sqrt();
                sum[p] += f;
                sq[p] += f * f;
            }
        }
        self.feature_mean = sum.iter().map(|s| s / count).collect();
        self.feature_scale = sq
            .iter()
            .zip(&self.feature_mean)
            .map(|(q, m)| (q / count - m * m).max(0.0).sqrt().max(1e-6))
            .collect();
        self
    }

    /// The means and scales are empty or one per pair, the scales positive.
    pub fn check_standardization(&self) -> std::result::Result<(), String> {
        let n = self.pairs().len();
        for (name, v) in [
            ("feature_mean", &self.feature_mean),
            ("feature_scale", &self.feature_scale),
        ] {
            if !v.is_empty() && v.len() != n {
                return Err(format!("{name} has {} entries for {n} atom pairs", v.len()));
            }
        }
        if self
            .feature_scale
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err("every feature_scale must be finite and positive".into());
        }
        Ok(())
    }

    /// (m, s) per pair, the defaults filled in.
    fn standardization(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.pairs().len();
        let pick = |v: &Vec<f64>, default: f64| {
            if v.is_empty() {
                vec![default; n]
            } else {
                v.clone()
            }
        };
        (
            pick(&self.feature_mean, 0.0),
            pick(&self.feature_scale, 1.0),
        )
    }

    /// Pairs (i, j) of the chosen atoms, in order.
    pub fn pairs(&self) -> Vec<(usize, usize)> {
        let a = &self.atoms;
        (0..a.len())
            .flat_map(|u| (u + 1..a.len()).map(move |v| (a[u], a[v])))
            .collect()
    }

    fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.pairs().len()];
        sizes.extend(&self.hidden);
        sizes.push(1);
        sizes
    }
}

/// A trained committor as tensors: its weights (`committor.layer*`, from `store`)
/// followed by `config.*` rows: n_atoms, atoms, hidden, activation, feature_mean,
/// feature_scale.
pub fn save_committor(
    config: &CommittorConfig,
    n_atoms: usize,
    store: &ParameterStore,
) -> Result<Vec<NamedTensor>> {
    let mut tensors = store.to_tensors()?;
    let as_f64 = |v: &[usize]| v.iter().map(|&i| i as f64).collect::<Vec<f64>>();
    tensors.extend([
        scalar_row("n_atoms", n_atoms as f64),
        vector_row("atoms", &as_f64(&config.atoms)),
        vector_row("hidden", &as_f64(&config.hidden)),
        scalar_row("activation", config.activation.code()),
        vector_row("feature_mean", &config.feature_mean),
        vector_row("feature_scale", &config.feature_scale),
    ]);
    Ok(tensors)
}

/// The configuration, the atom count and the weights of a committor saved by
/// [`save_committor`].
pub fn committor_config(
    tensors: &[NamedTensor],
) -> std::result::Result<(CommittorConfig, usize, Vec<NamedTensor>), String> {
    let rows = SavedRows::new(tensors);
    let whole = |name: &str| -> std::result::Result<Vec<usize>, String> {
        rows.get(name)
            .ok_or_else(|| format!("saved committor has no `config.{name}`"))?
            .iter()
            .map(|&v| {
                if v >= 0.0 && v.fract() == 0.0 && v < 1e9 {
                    Ok(v as usize)
                } else {
                    Err(format!("`config.{name}` holds {v}, not a count"))
                }
            })
            .collect()
    };
    let n_atoms = *whole("n_atoms")?
        .first()
        .ok_or("`config.n_atoms` is empty")?;
    let code = rows.scalar("activation").map_err(|e| e.to_string())?;
    let activation =
        Activation::from_code(code).ok_or_else(|| format!("unknown activation code {code}"))?;
    let config = CommittorConfig {
        atoms: whole("atoms")?,
        hidden: whole("hidden")?,
        activation,
        feature_mean: rows.vector("feature_mean"),
        feature_scale: rows.vector("feature_scale"),
    };
    if config.atoms.len() < 2 || config.atoms.iter().any(|&a| a >= n_atoms) {
        return Err(format!(
            "`config.atoms` must name at least 2 of the {n_atoms} atoms"
        ));
    }
    config.check_standardization()?;
    let weights = tensors
        .iter()
        .filter(|t| !t.name.starts_with("config."))
        .cloned()
        .collect();
    Ok((config, n_atoms, weights))
}

/// The atoms other than hydrogen.
pub fn heavy_atoms(atoms: &[AtomRow]) -> Vec<usize> {
    (0..atoms.len())
        .filter(|&i| atoms[i].atomic_number != 1)
        .collect()
}

/// q_theta for training: batches of positions as candle tensors.
pub struct Committor {
    pub config: CommittorConfig,
    network: Mlp,
    /// Pairs x atoms: +1 at i, -1 at j.
    incidence: Tensor,
    /// (1, pairs): m and 1 / s.
    mean: Tensor,
    inverse_scale: Tensor,
}

impl Committor {
    /// A new network over `n_atoms`-atom positions, its weights from `vb`.
    pub fn new(config: CommittorConfig, n_atoms: usize, vb: VarBuilder) -> Result<Self> {
        let pairs = config.pairs();
        if let Err(e) = config.check_standardization() {
            candle_core::bail!("{e}")
        }
        let mut e = vec![0.0; pairs.len() * n_atoms];
        for (p, &(i, j)) in pairs.iter().enumerate() {
            e[p * n_atoms + i] = 1.0;
            e[p * n_atoms + j] = -1.0;
        }
        let incidence =
            Tensor::from_vec(e, (pairs.len(), n_atoms), vb.device())?.to_dtype(vb.dtype())?;
        let network = Mlp::new(&config.sizes(), config.activation, vb.pp(PREFIX))?;
        let (mean, scale) = config.standardization();
        let n = pairs.len();
        let inverse: Vec<f64> = scale.iter().map(|s| 1.0 / s).collect();
        let row = |v: Vec<f64>| -> Result<Tensor> {
            Tensor::from_vec(v, (1, n), vb.device())?.to_dtype(vb.dtype())
        };
        Ok(Committor {
            mean: row(mean)?,
            inverse_scale: row(inverse)?,
            config,
            network,
            incidence,
        })
    }

    /// Pair differences r (batch, pairs, 3) and features f = 1/|r| (batch, pairs).
    fn features(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let batch = x.dim(0)?;
        let r = self
            .incidence
            .broadcast_as((batch, self.incidence.dim(0)?, self.incidence.dim(1)?))?
            .matmul(x)?;
        let f = r.sqr()?.sum(2)?.sqrt()?.recip()?;
        Ok((r, f))
    }

    /// The logit y(x) (batch) for positions (batch, atoms, 3), nm.
    pub fn logit(&self, x: &Tensor) -> Result<Tensor> {
        let (_, f) = self.features(x)?;
        self.logit_of_features(&f)
    }

    /// The features 1/|r| (batch, pairs), nm^-1, of positions (batch, atoms, 3), nm.
    pub fn inverse_distances(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.features(x)?.1)
    }

    /// The logit y (batch) from features (batch, pairs) of [`Self::inverse_distances`]:
    /// training on features computed once is the same function as [`Self::logit`].
    pub fn logit_of_features(&self, f: &Tensor) -> Result<Tensor> {
        self.network.forward(&self.standardize(f)?)?.squeeze(1)
    }

    fn standardize(&self, f: &Tensor) -> Result<Tensor> {
        f.broadcast_sub(&self.mean)?
            .broadcast_mul(&self.inverse_scale)
    }

    /// q (batch) and grad_x q (batch, atoms, 3), per nm.
    pub fn q_and_gradient(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (r, f) = self.features(x)?;
        let (y, dy_dg) = self
            .network
            .forward_with_input_gradient(&self.standardize(&f)?)?;
        let dy_df = dy_dg.broadcast_mul(&self.inverse_scale)?;
        let q = candle_nn::ops::sigmoid(&y.squeeze(1)?)?;
        // c_p = -(dy/df_p) f_p^3, then grad_x y = E^T (c r).
        let c = (dy_df * f.powf(3.0)?)?.neg()?;
        let cr = r.broadcast_mul(&c.unsqueeze(2)?)?;
        let batch = x.dim(0)?;
        let et = self.incidence.t()?.contiguous()?;
        let grad_y = et
            .broadcast_as((batch, et.dim(0)?, et.dim(1)?))?
            .matmul(&cr)?;
        let slope = (&q * (1.0 - &q)?)?;
        let grad = grad_y.broadcast_mul(&slope.unsqueeze(1)?.unsqueeze(2)?)?;
        Ok((q, grad))
    }
}

/// q_theta on the host in f64, for MD: one configuration at a time.
pub struct HostCommittor {
    pairs: Vec<(usize, usize)>,
    activation: Activation,
    network: Network,
    /// Standardized features g (the network's input) and the inverse distances f.
    features: Vec<f64>,
    inverse_distances: Vec<f64>,
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl HostCommittor {
    /// The network saved from a [`Committor`] (its `committor.layer*` tensors).
    pub fn load(
        weights: &[NamedTensor],
        config: &CommittorConfig,
    ) -> std::result::Result<Self, String> {
        config.check_standardization()?;
        let pairs = config.pairs();
        let network = Network::load(
            weights,
            PREFIX,
            &config.sizes(),
            pairs.len(),
            1,
            &config.hidden,
        )?;
        let (mean, scale) = config.standardization();
        Ok(HostCommittor {
            mean,
            scale,
            features: vec![0.0; pairs.len()],
            inverse_distances: vec![0.0; pairs.len()],
            pairs,
            activation: config.activation,
            network,
        })
    }

    /// q at positions (atoms x 3, flat, nm), without its gradient: the value
    /// [`CollectiveVariable::value_and_gradient`] gives, bit for bit.
    pub fn value_at(&mut self, positions_nm: &[f64]) -> f64 {
        for (p, &(i, j)) in self.pairs.iter().enumerate() {
            let r: [f64; 3] =
                std::array::from_fn(|k| positions_nm[3 * i + k] - positions_nm[3 * j + k]);
            let f = 1.0 / (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
            self.inverse_distances[p] = f;
            self.features[p] = (f - self.mean[p]) / self.scale[p];
        }
        self.network.evaluate(self.activation, &self.features);
        1.0 / (1.0 + (-self.network.output[0]).exp())
    }
}

impl HostCommittor {
    /// q (or with `logit`, y = ln(q / (1 - q)), the network's output) and its gradient
    /// in x.
    fn evaluate_with_gradient(
        &mut self,
        x: &[[f64; 3]],
        gradient: &mut [[f64; 3]],
        logit: bool,
    ) -> f64 {
        for (p, &(i, j)) in self.pairs.iter().enumerate() {
            let r: [f64; 3] = std::array::from_fn(|k| x[i][k] - x[j][k]);
            let f = 1.0 / (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
            self.inverse_distances[p] = f;
            self.features[p] = (f - self.mean[p]) / self.scale[p];
        }
        self.network.evaluate(self.activation, &self.features);
        let y = self.network.output[0];
        let q = 1.0 / (1.0 + (-y).exp());
        let slope = if logit { 1.0 } else { q * (1.0 - q) };
        gradient.iter_mut().for_each(|g| *g = [0.0; 3]);
        for (p, &(i, j)) in self.pairs.iter().enumerate() {
            let f = self.inverse_distances[p];
            let c = -self.network.grad[p] / self.scale[p] * f * f * f * slope;
            for k in 0..3 {
                let d = c * (x[i][k] - x[j][k]);
                gradient[i][k] += d;
                gradient[j][k] -= d;
            }
        }
        if logit { y } else { q }
    }

    /// y = ln(q / (1 - q)) of the last evaluation (exact where q rounds to 0 or 1).
    pub fn last_logit(&self) -> f64 {
        self.network.output[0]
    }
}

impl CollectiveVariable for HostCommittor {
    fn value_and_gradient(&mut self, x: &[[f64; 3]], gradient: &mut [[f64; 3]]) -> f64 {
        self.evaluate_with_gradient(x, gradient, false)
    }
}

/// The committor's logit y = ln(q / (1 - q)) as a collective variable: windows on it
/// stratify q over orders of magnitude near the cores, where q itself is too steep for
/// a window to hold, and its gradient (grad q / (q (1 - q))) stays bounded there.
pub struct CommittorLogit(pub HostCommittor);

impl CollectiveVariable for CommittorLogit {
    fn value_and_gradient(&mut self, x: &[[f64; 3]], gradient: &mut [[f64; 3]]) -> f64 {
        self.0.evaluate_with_gradient(x, gradient, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Positions (frames x atoms x 3, flat) as a (frames, atoms, 3) f64 tensor on the CPU.
    fn positions_tensor(flat: &[f64], n_atoms: usize) -> Result<Tensor> {
        Tensor::from_vec(
            flat.to_vec(),
            (flat.len() / (3 * n_atoms), n_atoms, 3),
            &Device::Cpu,
        )?
        .to_dtype(DType::F64)
    }

    fn model() -> (ParameterStore, Committor) {
        let store = ParameterStore::new([3; 32]);
        // Means from the frames; a scale of 0.5 nm^-1 (two frames' own spread is tiny,
        // and would make q too steep for finite differences).
        let mut config = CommittorConfig::new(vec![0, 1, 3, 4], vec![8, 8], Activation::Tanh)
            .standardized(&frames(), 5);
        assert!(config.feature_mean.iter().all(|&m| m > 1.0));
        config.feature_scale = vec![0.5; config.pairs().len()];
        let vb = store.var_builder(DType::F64, &Device::Cpu);
        let model = Committor::new(config, 5, vb).unwrap();
        (store, model)
    }

    fn frames() -> Vec<f64> {
        // Two frames of five atoms, no two atoms closer than 0.1 nm.
        vec![
            0.0, 0.0, 0.0, 0.15, 0.02, 0.0, 0.21, 0.13, 0.05, 0.33, 0.1, -0.08, 0.41, 0.22, 0.02,
            0.01, -0.02, 0.03, 0.12, 0.06, 0.01, 0.25, 0.11, 0.1, 0.3, 0.15, -0.1, 0.45, 0.18,
            0.05,
        ]
    }

    #[test]
    fn the_gradient_is_the_derivative_of_q_and_the_host_agrees() {
        let (store, model) = model();
        let x = frames();
        let (q, grad) = model
            .q_and_gradient(&positions_tensor(&x, 5).unwrap())
            .unwrap();
        let q = q.to_vec1::<f64>().unwrap();
        let grad = grad.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let q_of = |x: &[f64]| {
            model
                .logit(&positions_tensor(x, 5).unwrap())
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
                .iter()
                .map(|y| 1.0 / (1.0 + (-y).exp()))
                .collect::<Vec<_>>()
        };
        let h = 1e-6;
        for c in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[c] += h;
            xm[c] -= h;
            let frame = c / 15;
            let numeric = (q_of(&xp)[frame] - q_of(&xm)[frame]) / (2.0 * h);
            assert!(
                (numeric - grad[c]).abs() < 1e-7 * (1.0 + numeric.abs()),
                "coordinate {c}: {numeric} vs {}",
                grad[c]
            );
        }
        // The host network gives the same q and gradient (to rounding).
        let mut host = HostCommittor::load(&store.to_tensors().unwrap(), &model.config).unwrap();
        for frame in 0..2 {
            let xf: Vec<[f64; 3]> = x[frame * 15..(frame + 1) * 15]
                .chunks(3)
                .map(|c| [c[0], c[1], c[2]])
                .collect();
            let mut g = vec![[0.0; 3]; 5];
            let qh = host.value_and_gradient(&xf, &mut g);
            assert!((qh - q[frame]).abs() < 1e-13, "{qh} vs {}", q[frame]);
            // The value alone, from flat positions, is the same bits.
            assert_eq!(host.value_at(&x[frame * 15..(frame + 1) * 15]), qh);
            for (a, ga) in g.iter().enumerate() {
                for k in 0..3 {
                    assert!((ga[k] - grad[frame * 15 + a * 3 + k]).abs() < 1e-11);
                }
            }
        }
        // Atom 2 is not among the features' atoms: no gradient on it.
        assert!(grad[6..9].iter().chain(&grad[21..24]).all(|&g| g == 0.0));
    }

    /// The logit as a collective variable: y = ln(q / (1 - q)) of the same network, and
    /// its gradient against finite differences of that y.
    #[test]
    fn the_logit_variable_is_the_log_odds_of_q_with_its_gradient() {
        let (store, model) = model();
        let weights = store.to_tensors().unwrap();
        let x = frames();
        let xf: Vec<[f64; 3]> = x[..15].chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
        let mut host = HostCommittor::load(&weights, &model.config).unwrap();
        let q = host.value_and_gradient(&xf, &mut [[0.0; 3]; 5]);
        let mut logit = CommittorLogit(HostCommittor::load(&weights, &model.config).unwrap());
        let mut g = vec![[0.0; 3]; 5];
        let y = logit.value_and_gradient(&xf, &mut g);
        assert!((y - (q / (1.0 - q)).ln()).abs() < 1e-9, "{y} vs q {q}");
        assert_eq!(host.last_logit(), y);
        let h = 1e-6;
        for a in 0..5 {
            for k in 0..3 {
                let (mut xp, mut xm) = (xf.clone(), xf.clone());
                xp[a][k] += h;
                xm[a][k] -= h;
                let mut scratch = vec![[0.0; 3]; 5];
                let numeric = (logit.value_and_gradient(&xp, &mut scratch)
                    - logit.value_and_gradient(&xm, &mut scratch))
                    / (2.0 * h);
                assert!(
                    (numeric - g[a][k]).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "atom {a}, axis {k}: {numeric} vs {}",
                    g[a][k]
                );
            }
        }
    }

    #[test]
    fn a_saved_committor_loads_with_its_standardization() {
        let (store, model) = model();
        let saved = save_committor(&model.config, 5, &store).unwrap();
        let (config, n_atoms, weights) = committor_config(&saved).unwrap();
        assert_eq!((config.clone(), n_atoms), (model.config.clone(), 5));
        let mut host = HostCommittor::load(&weights, &config).unwrap();
        let x = frames();
        let (q, _) = model
            .q_and_gradient(&positions_tensor(&x, 5).unwrap())
            .unwrap();
        let xf: Vec<[f64; 3]> = x[..15].chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
        let qh = host.value_and_gradient(&xf, &mut [[0.0; 3]; 5]);
        assert!((qh - q.to_vec1::<f64>().unwrap()[0]).abs() < 1e-13);
        // A scale that does not fit the pairs is refused.
        let mut broken = saved.clone();
        let row = broken
            .iter_mut()
            .find(|t| t.name == "config.feature_scale")
            .unwrap();
        row.values.pop();
        row.shape = vec![row.values.len()];
        assert!(
            committor_config(&broken)
                .unwrap_err()
                .contains("feature_scale")
        );
    }

    #[test]
    fn a_loss_on_the_gradient_backpropagates_to_the_weights() {
        // d/dtheta of the Dirichlet form mean |grad q|^2 against finite differences in
        // one weight.
        let (store, model) = model();
        let x = positions_tensor(&frames(), 5).unwrap();
        let loss = |m: &Committor| -> Tensor {
            let (_, g) = m.q_and_gradient(&x).unwrap();
            g.sqr().unwrap().sum_all().unwrap()
        };
        let grads = loss(&model).backward().unwrap();
        let (name, var) = store
            .vars()
            .into_iter()
            .find(|(n, _)| n == "committor.layer1.weight")
            .unwrap();
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[3];
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let value_at = |delta: f64| {
            let mut w = base.clone();
            w[3] += delta;
            var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            loss(&model).to_scalar::<f64>().unwrap()
        };
        let h = 1e-6;
        let numeric = (value_at(h) - value_at(-h)) / (2.0 * h);
        value_at(0.0);
        assert!(
            (numeric - analytic).abs() < 1e-6 * numeric.abs().max(1e-3),
            "{name}[3]: {numeric} vs {analytic}"
        );
    }
}
