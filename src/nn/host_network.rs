//! A small MLP evaluated on the host in f64 for many rows at once, with its input
//! gradient: the CG potential's pair and torsion networks
//! ([`super::cg_potential_host`]), whose rows are bead pairs or quadruples and whose
//! first layer's one-hot columns fold into a bias per row.
//!
//! Layers are register-blocked products (`gemm_acc`) that accumulate every entry as
//! c + x_0 m_0 + x_1 m_1 + ... in that order whatever the blocking, without fused
//! multiply-add, and the exponentials of the basis, SiLU and softplus use a branch-free
//! `exp` of its own that vectorizes; so the caller may compile it for any instruction
//! set ([`crate::cpu::InstructionSet`]) and get the same bits (tanh and softplus's ln_1p
//! come from the platform's libm).

use super::mlp::Activation;
use crate::artifact::tensors::NamedTensor;

/// One dense layer: weight (out, in) row-major, its transpose (in, out), and bias.
#[derive(Clone, Debug)]
struct Dense {
    inputs: usize,
    outputs: usize,
    weight: Vec<f64>,
    weight_t: Vec<f64>,
    bias: Vec<f64>,
}

/// An MLP with a scalar output whose input is `features` per row plus a one-hot of the
/// row (pair or quadruple), evaluated on all rows at once, with its input gradient.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    pub(crate) rows: usize,
    /// Layers; the first one's `inputs` is the number of features only (its one-hot
    /// columns live in `row_bias`).
    layers: Vec<Dense>,
    /// Per row r: first-layer bias plus the first layer's column for e_r (rows x out_0).
    row_bias: Vec<f64>,
    /// Hidden layers' activations sigma(a) and derivatives sigma'(a) (rows x width each).
    hidden: Vec<Vec<f64>>,
    slope: Vec<Vec<f64>>,
    /// The output per row (rows).
    pub(crate) output: Vec<f64>,
    /// Back-propagated gradients (rows x widest), two buffers used in turn; after
    /// [`Network::evaluate`], `grad` holds d output / d features (rows x features).
    pub(crate) grad: Vec<f64>,
    grad_next: Vec<f64>,
}

/// e^x for the network, branch-free so loops over it vectorize, and the same bits on
/// every instruction set (no fused multiply-add): x = n ln 2 + r with |r| <= ln(2)/2
/// (Cody–Waite, ln 2 split in two), e^r by its Taylor series to degree 13 (truncation
/// below 1e-17 relative), times 2^n built in the exponent bits. Within 2 ulp of e^x for
/// -708 <= x <= 709; 0 below, infinity above (where e^x is within 3e-308 of 0 or
/// within a factor 2.2 of overflowing), NaN for NaN.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
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
    /// `features` inputs are features and the rest a one-hot of the `rows` rows; or, with
    /// `sizes[0]` = features and one row, a plain MLP of the features. A layer beyond
    /// `sizes` is an error.
    pub(crate) fn load(
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
                // Without one-hot columns (a single row of features alone), the bias.
                let one_hot = inputs > kept;
                row_bias = Vec::with_capacity(rows * outputs);
                for p in 0..rows {
                    for i in 0..outputs {
                        row_bias.push(if one_hot {
                            bias.values[i] + weight.values[i * inputs + kept + p]
                        } else {
                            bias.values[i]
                        });
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
    pub(crate) fn evaluate(&mut self, activation: Activation, input: &[f64]) {
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
