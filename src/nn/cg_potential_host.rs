//! The CG potential U_hat of [`super::cg_potential`] evaluated in plain f64 Rust, one
//! configuration at a time, for Langevin dynamics on a handful of beads (5-20), where
//! candle's per-operation overhead would dominate the step.
//!
//! It computes the same function as
//! [`CgPotential::energy_and_forces_with`](super::cg_potential::CgPotential::energy_and_forces_with),
//! up to the order of floating-point sums:
//!
//! ```text
//! U_hat(z) = sum_{p=(i<j)} NN(phi(d_p), e_p)
//!          + sum_{q=0..n-4} T(cos psi_q, sin psi_q, e_q)                   (if torsions, n >= 4)
//!          + sum_priors U_prior(z)                                   ([`super::priors`])
//! phi_k(d) = exp(-gamma (d - mu_k)^2), mu_k = k c / (max(K, 2) - 1), gamma = 1 / spacing^2
//! ```
//!
//! with e_p the one-hot of pair p (pairs ordered (0,1), (0,2), ..., (1,2), ...) and NN the
//! MLP `pair_network.layer{i}` (candle's Linear: weight (out, in), y = x W^T + b, the
//! configured activation between layers). Because e_p is one-hot, the first layer's
//! columns for the pair features fold into a per-pair bias. Forces are analytic:
//! dNN/dphi by back-propagation through the layers, dU/dd_p from the basis derivative
//! -2 gamma (d - mu_k) phi_k plus the priors' terms on the pair (added in the three places
//! of [`super::priors`], in registry order), and F_i = -sum_p dU/dd_p (z_i - z_j) / d_p
//! for i the pair's first bead (+ for its second).
//!
//! The torsion term: psi_q is the signed (IUPAC) dihedral of beads (i, j, k, l) =
//! (q, q+1, q+2, q+3), e_q the one-hot of q, and T the MLP `torsion_network.layer{i}`
//! (the same activation; its first layer's one-hot columns likewise fold into a bias per
//! quadruple). With b1 = z_j - z_i, b2 = z_k - z_j, b3 = z_l - z_k, m = b1 x b2,
//! n = b2 x b3: cos psi = m.n / (|m| |n|), sin psi = |b2| b1.n / (|m| |n|);
//! dT/dpsi = dT/dcos (-sin psi) + dT/dsin cos psi by back-propagation; and
//! F_x = -dT/dpsi dpsi/dz_x with (Blondel & Karplus 1996)
//!
//! ```text
//! dpsi/dz_i = -|b2| / |m|^2 m,   dpsi/dz_l = |b2| / |n|^2 n,
//! dpsi/dz_j = -(1 + p) dpsi/dz_i + r dpsi/dz_l,   dpsi/dz_k = p dpsi/dz_i - (1 + r) dpsi/dz_l,
//! p = b1.b2 / |b2|^2,   r = b3.b2 / |b2|^2.
//! ```
//!
//! The n - 3 quadruples go through the torsion network together, with the same layer
//! products as the pairs (so the same bits on every instruction set).
//!
//! Units: nm, kJ/mol, kJ/mol/nm. All scratch space is allocated once, in
//! [`HostCgPotential::from_tensors`]; an evaluation allocates nothing.
//!
//! Speed: all pairs (and all quadruples) go through each layer together, as
//! register-blocked products compiled for AVX-512 or AVX when the CPU has them (chosen
//! at run time) and portable code otherwise, and the exponentials of the basis, SiLU
//! and softplus use a branch-free `exp` of its own that vectorizes. Every path performs
//! the same multiplications and additions in the same order, without fused multiply-add,
//! so the results are the same bits on every instruction set (tanh and softplus's ln_1p
//! come from the platform's libm). About 12 us per evaluation for 5 beads, 16 basis
//! functions and hidden [64, 64] without torsions on one core of a recent Xeon
//! (AVX-512); the torsion term (2 quadruples) adds about a third (15 us and 20 us
//! measured side by side on a busy shared machine).

use super::cg_potential::{CgPotentialConfig, potential_config};
use super::mlp::Activation;
use super::priors::{PriorSet, add_pair_forces};
use crate::artifact::tensors::NamedTensor;
use crate::geometry::dihedral::Quadruple;
use crate::md::potential::Potential;

/// One dense layer: weight (out, in) row-major, its transpose (in, out), and bias.
#[derive(Clone, Debug)]
struct Dense {
    inputs: usize,
    outputs: usize,
    weight: Vec<f64>,
    weight_t: Vec<f64>,
    bias: Vec<f64>,
}

/// Instruction set of the layer products (results are bit-identical on each: the same
/// multiplications and additions in the same order, no fused multiply-add).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lanes {
    Portable,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx512,
}

impl Lanes {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Lanes::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx") {
                return Lanes::Avx;
            }
        }
        Lanes::Portable
    }
}

/// U_hat for `beads` beads, with its own scratch buffers.
#[derive(Clone, Debug)]
pub struct HostCgPotential {
    beads: usize,
    config: CgPotentialConfig,
    pairs: Vec<(usize, usize)>,
    centres: Vec<f64>,
    gamma: f64,
    /// The pair network: one row per pair, inputs phi(d_p) (its pair one-hot columns
    /// folded into per-pair biases).
    pair: Network,
    priors: PriorSet,
    lanes: Lanes,
    /// The torsion network, with torsions and at least 4 beads: one row per quadruple,
    /// inputs (cos psi, sin psi) (its quadruple one-hot columns folded into biases).
    torsion: Option<Network>,
    // Scratch, one row per pair.
    distance: Vec<f64>,
    pair_energy: Vec<f64>,
    /// phi_k(d_p) (P x K).
    basis: Vec<f64>,
    de_dd: Vec<f64>,
    /// (cos psi_q, sin psi_q) per quadruple (Q x 2).
    angles: Vec<f64>,
}

/// An MLP with a scalar output whose input is `features` per row plus a one-hot of the
/// row (pair or quadruple), evaluated on all rows at once, with its input gradient.
#[derive(Clone, Debug)]
struct Network {
    rows: usize,
    /// Layers; the first one's `inputs` is the number of features only (its one-hot
    /// columns live in `row_bias`).
    layers: Vec<Dense>,
    /// Per row r: first-layer bias plus the first layer's column for e_r (rows x out_0).
    row_bias: Vec<f64>,
    /// Hidden layers' activations sigma(a) and derivatives sigma'(a) (rows x width each).
    hidden: Vec<Vec<f64>>,
    slope: Vec<Vec<f64>>,
    /// The output per row (rows).
    output: Vec<f64>,
    /// Back-propagated gradients (rows x widest), two buffers used in turn; after
    /// [`Network::evaluate`], `grad` holds d output / d features (rows x features).
    grad: Vec<f64>,
    grad_next: Vec<f64>,
}

/// e^x for the network, branch-free so loops over it vectorize, and the same bits on
/// every instruction set (no fused multiply-add): x = n ln 2 + r with |r| <= ln(2)/2
/// (Cody–Waite, ln 2 split in two), e^r by its Taylor series to degree 13 (truncation
/// below 1e-17 relative), times 2^n built in the exponent bits. Within 2 ulp of e^x for
/// -708 <= x <= 709; 0 below, infinity above (where e^x is within 3e-308 of 0 or
/// within a factor 2.2 of overflowing), NaN for NaN.
#[inline(always)]
fn exp(x: f64) -> f64 {
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    // 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    // fdlibm's ln2_hi (trailing zero bits, so n ln2_hi is exact) and ln2_lo.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // NaN stays NaN.
    let xc = x.clamp(-708.0, 709.0);
    let shifted = xc * LOG2_E + SHIFTER;
    let n = shifted - SHIFTER;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0; // 1/13!
    for c in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // n = bits(shifted) - bits(SHIFTER), exactly, for |n| < 2^51.
    let n_int = shifted.to_bits().wrapping_sub(SHIFTER.to_bits());
    let scale = f64::from_bits(n_int.wrapping_add(1023) << 52);
    let y = p * scale;
    if x < -708.0 {
        0.0
    } else if x > 709.0 {
        f64::INFINITY
    } else {
        y
    }
}

#[inline(always)]
fn sigmoid(a: f64) -> f64 {
    1.0 / (exp(-a) + 1.0)
}

/// sigma(a) and sigma'(a), as [`Activation::value_and_derivative`].
#[inline(always)]
fn activate(activation: Activation, a: f64) -> (f64, f64) {
    match activation {
        Activation::Tanh => {
            let t = a.tanh();
            (t, 1.0 - t * t)
        }
        Activation::Silu => {
            let s = sigmoid(a);
            (a * s, s + a * s * (1.0 - s))
        }
        Activation::Softplus => (a.max(0.0) + exp(-a.abs()).ln_1p(), sigmoid(a)),
    }
}

/// values <- sigma(values), slopes <- sigma'(values), one loop per activation so that
/// each vectorizes.
#[inline(always)]
fn activate_all(activation: Activation, values: &mut [f64], slopes: &mut [f64]) {
    #[inline(always)]
    fn each(values: &mut [f64], slopes: &mut [f64], f: impl Fn(f64) -> (f64, f64)) {
        for (h, s) in values.iter_mut().zip(slopes.iter_mut()) {
            (*h, *s) = f(*h);
        }
    }
    match activation {
        Activation::Tanh => each(values, slopes, |a| activate(Activation::Tanh, a)),
        Activation::Silu => each(values, slopes, |a| activate(Activation::Silu, a)),
        Activation::Softplus => each(values, slopes, |a| activate(Activation::Softplus, a)),
    }
}

/// c (rows x cols) += x (rows x inner) m (inner x cols), all row-major. Every entry is
/// accumulated as c + x_0 m_0 + x_1 m_1 + ... in that order, whatever the blocking.
#[inline(always)]
fn gemm_acc(rows: usize, inner: usize, cols: usize, x: &[f64], m: &[f64], c: &mut [f64]) {
    let (x, m, c) = (
        &x[..rows * inner],
        &m[..inner * cols],
        &mut c[..rows * cols],
    );
    let mut r0 = 0;
    while r0 < rows {
        let left = rows - r0;
        if left >= 4 {
            gemm_rows::<4>(r0, inner, cols, x, m, c);
            r0 += 4;
        } else if left >= 2 {
            gemm_rows::<2>(r0, inner, cols, x, m, c);
            r0 += 2;
        } else {
            gemm_rows::<1>(r0, inner, cols, x, m, c);
            r0 += 1;
        }
    }
}

#[inline(always)]
fn gemm_rows<const R: usize>(
    r0: usize,
    inner: usize,
    cols: usize,
    x: &[f64],
    m: &[f64],
    c: &mut [f64],
) {
    let mut c0 = 0;
    while c0 < cols {
        let left = cols - c0;
        // With one or two rows, wider blocks keep enough independent sums in flight
        // (each entry is still summed in the same order).
        if R <= 2 && left >= 16 {
            gemm_block::<R, 16>(r0, c0, inner, cols, x, m, c);
            c0 += 16;
        } else if left >= 8 {
            gemm_block::<R, 8>(r0, c0, inner, cols, x, m, c);
            c0 += 8;
        } else if left >= 4 {
            gemm_block::<R, 4>(r0, c0, inner, cols, x, m, c);
            c0 += 4;
        } else {
            gemm_block::<R, 1>(r0, c0, inner, cols, x, m, c);
            c0 += 1;
        }
    }
}

/// The R x B block of c at (r0, c0), accumulated in registers.
#[inline(always)]
fn gemm_block<const R: usize, const B: usize>(
    r0: usize,
    c0: usize,
    inner: usize,
    cols: usize,
    x: &[f64],
    m: &[f64],
    c: &mut [f64],
) {
    let mut acc = [[0.0f64; B]; R];
    for (r, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&c[(r0 + r) * cols + c0..][..B]);
    }
    let rows: [&[f64]; R] = std::array::from_fn(|r| &x[(r0 + r) * inner..][..inner]);
    for k in 0..inner {
        let w: &[f64; B] = m[k * cols + c0..][..B].try_into().expect("B columns");
        for r in 0..R {
            let xv = rows[r][k];
            for q in 0..B {
                acc[r][q] += xv * w[q];
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        c[(r0 + r) * cols + c0..][..B].copy_from_slice(a);
    }
}

/// A dense layer `{prefix}.layer{l}` of shape (outputs, inputs) from saved weights.
fn dense_tensors<'a>(
    weights: &'a [NamedTensor],
    prefix: &str,
    l: usize,
    inputs: usize,
    outputs: usize,
) -> Result<(&'a NamedTensor, &'a NamedTensor), String> {
    let find = |name: &str| -> Result<&'a NamedTensor, String> {
        weights
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("saved potential has no `{name}` tensor"))
    };
    let weight = find(&format!("{prefix}.layer{l}.weight"))?;
    let bias = find(&format!("{prefix}.layer{l}.bias"))?;
    if weight.shape != [outputs, inputs] || weight.values.len() != outputs * inputs {
        return Err(format!(
            "`{}` has shape {:?}, expected [{outputs}, {inputs}]",
            weight.name, weight.shape
        ));
    }
    if bias.shape != [outputs] || bias.values.len() != outputs {
        return Err(format!(
            "`{}` has shape {:?}, expected [{outputs}]",
            bias.name, bias.shape
        ));
    }
    Ok((weight, bias))
}

impl Network {
    /// The MLP `{prefix}.layer{l}` with `sizes` = [features + rows, hidden.., 1]: the first
    /// `features` inputs are features and the rest a one-hot of the `rows` rows. A layer
    /// beyond `sizes` is an error.
    fn load(
        weights: &[NamedTensor],
        prefix: &str,
        sizes: &[usize],
        features: usize,
        rows: usize,
        hidden: &[usize],
    ) -> Result<Self, String> {
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        let mut row_bias = Vec::new();
        for (l, w) in sizes.windows(2).enumerate() {
            let (inputs, outputs) = (w[0], w[1]);
            let (weight, bias) = dense_tensors(weights, prefix, l, inputs, outputs)?;
            // The first layer keeps only its feature columns; the one-hot columns become
            // a bias per row.
            let kept = if l == 0 { features } else { inputs };
            let mut w_rows = Vec::with_capacity(outputs * kept);
            for i in 0..outputs {
                w_rows.extend_from_slice(&weight.values[i * inputs..i * inputs + kept]);
            }
            let mut w_t = vec![0.0; outputs * kept];
            for i in 0..outputs {
                for j in 0..kept {
                    w_t[j * outputs + i] = w_rows[i * kept + j];
                }
            }
            if l == 0 {
                row_bias = Vec::with_capacity(rows * outputs);
                for p in 0..rows {
                    for i in 0..outputs {
                        row_bias.push(bias.values[i] + weight.values[i * inputs + kept + p]);
                    }
                }
            }
            layers.push(Dense {
                inputs: kept,
                outputs,
                weight: w_rows,
                weight_t: w_t,
                bias: bias.values.clone(),
            });
        }
        let extra = format!("{prefix}.layer{}.weight", sizes.len() - 1);
        if weights.iter().any(|t| t.name == extra) {
            return Err(format!(
                "saved potential has `{extra}`, more layers than its `config.hidden` {hidden:?}"
            ));
        }
        let widest = sizes[1..]
            .iter()
            .copied()
            .chain([features])
            .max()
            .unwrap_or(1);
        let per_row = |width: usize| vec![0.0; rows * width];
        Ok(Network {
            rows,
            layers,
            row_bias,
            hidden: hidden.iter().map(|&h| per_row(h)).collect(),
            slope: hidden.iter().map(|&h| per_row(h)).collect(),
            output: per_row(1),
            grad: per_row(widest),
            grad_next: per_row(widest),
        })
    }

    /// The network on `input` (rows x features): outputs in `self.output`,
    /// d output / d input (rows x features) in `self.grad`.
    #[inline(always)]
    fn evaluate(&mut self, activation: Activation, input: &[f64]) {
        let rows = self.rows;
        let last = self.layers.len() - 1;
        // Forward: a_l = h_{l-1} W_l^T + b_l, all rows together.
        for l in 0..=last {
            let layer = &self.layers[l];
            let (done, rest) = self.hidden.split_at_mut(l);
            let target: &mut [f64] = if l == last {
                &mut self.output
            } else {
                &mut rest[0]
            };
            if l == 0 {
                target.copy_from_slice(&self.row_bias);
            } else {
                for row in target.chunks_exact_mut(layer.outputs) {
                    row.copy_from_slice(&layer.bias);
                }
            }
            let input: &[f64] = if l == 0 { input } else { &done[l - 1] };
            gemm_acc(
                rows,
                layer.inputs,
                layer.outputs,
                input,
                &layer.weight_t,
                target,
            );
            if l < last {
                activate_all(activation, target, &mut self.slope[l]);
            }
        }
        // Backward: dy/dh_{last-1} = w_last; g_in = (g * sigma') W_l.
        let features = self.layers[0].inputs;
        if last == 0 {
            for row in self.grad[..rows * features].chunks_exact_mut(features) {
                row.copy_from_slice(&self.layers[0].weight);
            }
            return;
        }
        let width = self.layers[last].inputs;
        for (row, slope) in self.grad[..rows * width]
            .chunks_exact_mut(width)
            .zip(self.slope[last - 1].chunks_exact(width))
        {
            for ((g, &w), &s) in row.iter_mut().zip(&self.layers[last].weight).zip(slope) {
                *g = w * s;
            }
        }
        for l in (0..last).rev() {
            let layer = &self.layers[l];
            let next = &mut self.grad_next[..rows * layer.inputs];
            next.fill(0.0);
            gemm_acc(
                rows,
                layer.outputs,
                layer.inputs,
                &self.grad,
                &layer.weight,
                next,
            );
            if l > 0 {
                for (g, &s) in next.iter_mut().zip(&self.slope[l - 1]) {
                    *g *= s;
                }
            }
            std::mem::swap(&mut self.grad, &mut self.grad_next);
        }
    }
}

impl HostCgPotential {
    /// Builds the potential from a saved potential
    /// ([`super::cg_potential::save_potential`]): the `config.*` rows and the weights
    /// `pair_network.layer{i}.weight` (out, in) and `.bias` (out), and likewise
    /// `torsion_network.layer{i}` when `config.torsions` is set and there are at least 4
    /// beads (a torsion network without them is refused). A potential saved before the
    /// torsion term (no `config.torsions` row) has none.
    pub fn from_tensors(tensors: &[NamedTensor]) -> Result<Self, String> {
        let (beads, config, priors, weights) = potential_config(tensors)?;
        if beads < 2 {
            return Err(format!(
                "saved potential has {beads} beads, needs at least 2"
            ));
        }
        if config.basis == 0 {
            return Err("saved potential has no radial basis functions".into());
        }
        let pairs: Vec<(usize, usize)> = (0..beads)
            .flat_map(|i| (i + 1..beads).map(move |j| (i, j)))
            .collect();
        let n_pairs = pairs.len();
        let k = config.basis;
        let mut sizes = vec![k + n_pairs];
        sizes.extend(&config.hidden);
        sizes.push(1);
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(format!("layer sizes {sizes:?} contain a zero at {i}"));
        }
        let pair = Network::load(&weights, "pair_network", &sizes, k, n_pairs, &config.hidden)?;
        let quads = beads.saturating_sub(3);
        let torsion = if config.torsions && quads > 0 {
            let mut sizes = vec![2 + quads];
            sizes.extend(&config.hidden);
            sizes.push(1);
            Some(Network::load(
                &weights,
                "torsion_network",
                &sizes,
                2,
                quads,
                &config.hidden,
            )?)
        } else {
            if let Some(t) = weights
                .iter()
                .find(|t| t.name.starts_with("torsion_network."))
            {
                return Err(format!(
                    "saved potential has `{}` but no torsion term (config.torsions {}, \
                     {beads} beads)",
                    t.name,
                    u8::from(config.torsions)
                ));
            }
            None
        };
        let spacing = config.cutoff_nm / (config.basis.max(2) - 1) as f64;
        let centres: Vec<f64> = (0..k).map(|c| c as f64 * spacing).collect();
        let angles = vec![0.0; 2 * torsion.as_ref().map_or(0, |t| t.rows)];
        Ok(HostCgPotential {
            beads,
            gamma: 1.0 / (spacing * spacing),
            centres,
            pair,
            priors,
            lanes: Lanes::detect(),
            torsion,
            distance: vec![0.0; n_pairs],
            pair_energy: vec![0.0; n_pairs],
            basis: vec![0.0; n_pairs * k],
            de_dd: vec![0.0; n_pairs],
            angles,
            pairs,
            config,
        })
    }

    pub fn beads(&self) -> usize {
        self.beads
    }

    pub fn config(&self) -> &CgPotentialConfig {
        &self.config
    }

    pub fn priors(&self) -> &PriorSet {
        &self.priors
    }

    /// The radial basis of every pair distance in `self.distance` (into `self.basis`)
    /// and the pair network on it: outputs in `self.pair.output`, dNN/dphi (P x K) in
    /// `self.pair.grad`; and the torsion network on `self.angles` (outputs and
    /// (dT/dcos, dT/dsin) likewise in `self.torsion`).
    fn network(&mut self) {
        #[cfg(target_arch = "x86_64")]
        match self.lanes {
            // SAFETY: `lanes` names an instruction set only after a runtime check for it.
            Lanes::Avx512 => return unsafe { self.network_avx512() },
            // SAFETY: as above.
            Lanes::Avx => return unsafe { self.network_avx() },
            Lanes::Portable => {}
        }
        self.network_portable();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn network_avx512(&mut self) {
        self.network_portable();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn network_avx(&mut self) {
        self.network_portable();
    }

    #[inline(always)]
    fn network_portable(&mut self) {
        let activation = self.config.activation;
        let gamma = self.gamma;
        let k = self.config.basis;
        for (row, &d) in self.basis.chunks_exact_mut(k).zip(&self.distance) {
            for (phi, &mu) in row.iter_mut().zip(&self.centres) {
                let offset = d - mu;
                *phi = exp(-gamma * offset * offset);
            }
        }
        self.pair.evaluate(activation, &self.basis);
        if let Some(torsion) = &mut self.torsion {
            torsion.evaluate(activation, &self.angles);
        }
    }
}

impl Potential for HostCgPotential {
    fn n_atoms(&self) -> usize {
        self.beads
    }

    fn energy_forces(&mut self, positions: &[[f64; 3]], forces: &mut [[f64; 3]]) -> f64 {
        assert_eq!(positions.len(), self.beads, "one position per bead");
        assert_eq!(forces.len(), self.beads, "one force per bead");
        let k = self.config.basis;
        let gamma = self.gamma;
        for (p, &(i, j)) in self.pairs.iter().enumerate() {
            let (zi, zj) = (positions[i], positions[j]);
            let diff = [zi[0] - zj[0], zi[1] - zj[1], zi[2] - zj[2]];
            self.distance[p] = (diff[0] * diff[0] + diff[1] * diff[1] + diff[2] * diff[2]).sqrt();
        }
        if self.torsion.is_some() {
            for (q, angle) in self.angles.chunks_exact_mut(2).enumerate() {
                let (cos, sin) = Quadruple::new(positions, q).cos_sin();
                angle[0] = cos;
                angle[1] = sin;
            }
        }
        self.network();
        for p in 0..self.pairs.len() {
            let d = self.distance[p];
            let mut de_dd = 0.0;
            for ((&g, &phi), &mu) in self.pair.grad[p * k..(p + 1) * k]
                .iter()
                .zip(&self.basis[p * k..(p + 1) * k])
                .zip(&self.centres)
            {
                de_dd += g * (-2.0 * gamma * (d - mu) * phi);
            }
            self.pair_energy[p] = self.pair.output[p];
            self.de_dd[p] = de_dd;
        }
        // The priors in their three places (crate::nn::priors): per pair before the
        // pair sum, on the distances after it, on the positions after the pair forces.
        for prior in self.priors.iter() {
            prior.per_pair(&self.distance, &mut self.pair_energy, &mut self.de_dd);
        }
        let mut energy = 0.0;
        for &e in &self.pair_energy {
            energy += e;
        }
        for prior in self.priors.iter() {
            prior.on_distances(&self.distance, &mut energy, &mut self.de_dd);
        }
        for f in forces.iter_mut() {
            *f = [0.0; 3];
        }
        add_pair_forces(positions, &self.pairs, &self.distance, &self.de_dd, forces);
        for prior in self.priors.iter() {
            prior.on_positions(positions, &mut energy, forces);
        }
        if let Some(torsion) = &self.torsion {
            for (q, (&value, d)) in torsion
                .output
                .iter()
                .zip(torsion.grad.chunks_exact(2))
                .enumerate()
            {
                energy += value;
                let (cos, sin) = (self.angles[2 * q], self.angles[2 * q + 1]);
                // dT/dpsi = dT/dcos (-sin psi) + dT/dsin cos psi.
                let de_dpsi = d[1] * cos - d[0] * sin;
                Quadruple::new(positions, q).add_forces(de_dpsi, forces);
            }
        }
        energy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::cg_potential::save_potential;
    use crate::nn::priors::harmonic_distances::HarmonicDistances;
    use crate::nn::priors::repulsion::Repulsion;
    use crate::nn::store::ParameterStore;
    use crate::random::{normal, stream};
    use candle_core::{DType, Device};

    /// Every instruction set gives the same bits as the portable code.
    #[test]
    fn lanes_agree_bit_for_bit() {
        for hidden in [vec![], vec![13], vec![64, 64], vec![9, 17, 5]] {
            let config = CgPotentialConfig {
                basis: 11,
                hidden,
                ..CgPotentialConfig::default()
            };
            let priors = PriorSet::new(vec![
                std::sync::Arc::new(Repulsion {
                    eps: 1.0,
                    sigma: 0.2,
                }),
                std::sync::Arc::new(
                    HarmonicDistances::new(7, 1, vec![900.0; 6], vec![0.38; 6]).unwrap(),
                ),
            ]);
            let store = ParameterStore::new([4; 32]);
            crate::nn::CgPotential::new(
                7,
                config.clone(),
                store.var_builder(DType::F64, &Device::Cpu),
            )
            .unwrap();
            let tensors = save_potential(7, &config, &priors, &store).unwrap();
            let mut rng = stream(9, 0);
            let z: Vec<[f64; 3]> = (0..7)
                .map(|b| {
                    [
                        0.37 * b as f64 + 0.05 * normal(&mut rng),
                        0.05 * normal(&mut rng),
                        0.05 * normal(&mut rng),
                    ]
                })
                .collect();
            let mut reference = HostCgPotential::from_tensors(&tensors).unwrap();
            reference.lanes = Lanes::Portable;
            let mut f_ref = vec![[0.0; 3]; 7];
            let e_ref = reference.energy_forces(&z, &mut f_ref);
            let detected = Lanes::detect();
            for lanes in [Lanes::Avx, Lanes::Avx512] {
                let supported = matches!(
                    (lanes, detected),
                    (Lanes::Avx, Lanes::Avx | Lanes::Avx512) | (Lanes::Avx512, Lanes::Avx512)
                );
                if !supported {
                    continue;
                }
                let mut u = reference.clone();
                u.lanes = lanes;
                let mut f = vec![[0.0; 3]; 7];
                let e = u.energy_forces(&z, &mut f);
                assert_eq!(e.to_bits(), e_ref.to_bits(), "{lanes:?}");
                for (a, b) in f.iter().flatten().zip(f_ref.iter().flatten()) {
                    assert_eq!(a.to_bits(), b.to_bits(), "{lanes:?}");
                }
            }
        }
    }
}

#[cfg(test)]
mod exp_tests {
    use super::exp;

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut worst = 0.0f64;
        let mut x = -708.0;
        while x <= 709.0 {
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs() / f64::EPSILON);
            x += 0.0137;
        }
        for x in [-1e-300, 0.0, 1e-300, -0.5, 0.5, 1.0, -1.0] {
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs() / f64::EPSILON);
        }
        assert!(worst <= 2.0, "worst relative error {worst} eps");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-800.0), 0.0);
        assert_eq!(exp(800.0), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
    }
}
