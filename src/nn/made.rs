//! MADE: a masked autoencoder for distribution estimation (Germain et al. 2015), with a
//! context: the conditioner of an autoregressive flow.
//!
//! Inputs u (batch, D) and context c (batch, C); output theta (batch, D, P), where the P
//! parameters of dimension d depend only on the dimensions before d in the layer's
//! order, and on all of c:
//!
//! ```text
//! h_1 = sigma((W_1 o M_1) u + V_1 c + b_1)
//! h_l = sigma((W_l o M_l) h_{l-1} + b_l)                  l = 2..L
//! theta = (W_o o M_o) h_L + V_o c + b_o
//! ```
//!
//! Degrees: input d has degree m(d) = 1 + its level (`levels[d]`, 0..K), hidden unit k of
//! every layer m_h(k) = 1 + (k mod (K - 1)). Masks: M_1[k, d] = [m_h(k) >= m(d)], hidden
//! to hidden [m'(k) >= m(j)], hidden to output unit (d, p) [m(d) > m_h(j)]. The
//! dimensions of level 0 see only the context (through V_o), those of the last level all
//! lower levels; dimensions of one level do not see each other. Levels that are a
//! permutation of 0..D (K = D) are the fully autoregressive MADE of the paper; fewer
//! levels (several dimensions each) make a block-autoregressive one, which an inverse
//! pass samples in K passes instead of D. The output weights W_o, V_o and b_o start at
//! zero, so an untrained MADE gives theta = 0 for every input (a spline flow built on it
//! starts at the identity).
//!
//! The output layer's D x P units are computed in blocks of whole dimensions of at most
//! [`MAX_PRODUCT_DEPTH`] units, so that the gradient with respect to h_L, a sum over the
//! units, is a sum of products of bounded depth: the same bits on any machine (see
//! [`super::product_depth`]). The forward values are those of the whole product (each
//! is a sum over the H hidden units, whatever the blocks).

use candle_core::{Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::mlp::Activation;
use super::product_depth::{MAX_PRODUCT_DEPTH, output_blocks};

/// One masked dense layer: y = x (W o M)^T + b (the product W o M in [`Made::prepare`]).
struct MaskedLinear {
    weight: Tensor,
    mask: Tensor,
    bias: Tensor,
}

impl MaskedLinear {
    fn frozen(&self) -> MaskedLinear {
        MaskedLinear {
            weight: self.weight.detach(),
            mask: self.mask.detach(),
            bias: self.bias.detach(),
        }
    }

    fn new(
        inputs: usize,
        outputs: usize,
        mask: Vec<f64>,
        init: Init,
        vb: &VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints((outputs, inputs), "weight", init)?;
        let bias = vb.get_with_hints(outputs, "bias", Init::Const(0.0))?;
        let mask =
            Tensor::from_vec(mask, (outputs, inputs), &Device::Cpu)?.to_dtype(weight.dtype())?;
        Ok(MaskedLinear { weight, mask, bias })
    }
}

/// The MADE conditioner.
pub struct Made {
    dims: usize,
    /// by_level[l]: the dimensions of level l, ascending.
    by_level: Vec<Vec<usize>>,
    params_per_dim: usize,
    hidden: Vec<MaskedLinear>,
    context_in: Tensor,
    output: MaskedLinear,
    context_out: Tensor,
    activation: Activation,
}

/// The u-independent parts of a [`Made`] for one context ([`Made::prepare`]).
pub struct PreparedMade {
    hidden: Vec<Tensor>,
    context_in: Option<Tensor>,
    /// Per level: the output rows of its dimensions (masked weights, bias, context term).
    levels: Vec<PreparedLevel>,
}

struct PreparedLevel {
    weight: Tensor,
    bias: Tensor,
    context: Option<Tensor>,
}

/// Kaiming-uniform bound for a layer with `fan_in` inputs (SiLU is close to ReLU).
fn kaiming(fan_in: usize) -> Init {
    let bound = (6.0 / fan_in.max(1) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

impl Made {
    /// `levels[d]` is the level (0-based) of dimension d: every level from 0 to the
    /// largest used; a permutation of 0..dims is the fully autoregressive order.
    /// Parameters live under `vb` as `layer{l}.weight/bias`, `context_in`,
    /// `output.weight/bias` and `context_out`.
    pub fn new(
        levels: &[usize],
        context: usize,
        hidden: &[usize],
        params_per_dim: usize,
        activation: Activation,
        vb: VarBuilder,
    ) -> Result<Self> {
        let dims = levels.len();
        let count = levels.iter().max().map_or(0, |&l| l + 1);
        let by_level: Vec<Vec<usize>> = (0..count)
            .map(|l| (0..dims).filter(|&d| levels[d] == l).collect())
            .collect();
        if by_level.iter().any(Vec::is_empty) || hidden.is_empty() || dims == 0 {
            candle_core::bail!(
                "MADE needs levels that use every value from 0 to the largest, and at least \
                 one hidden layer"
            )
        }
        if let Some(&wide) = hidden.iter().find(|&&h| h > MAX_PRODUCT_DEPTH) {
            candle_core::bail!(
                "hidden width {wide}: at most {MAX_PRODUCT_DEPTH}, so that training's products \
                 give the same bits on every machine"
            )
        }
        if params_per_dim > MAX_PRODUCT_DEPTH {
            candle_core::bail!(
                "{params_per_dim} parameters per dimension: at most {MAX_PRODUCT_DEPTH}"
            )
        }
        let input_degrees: Vec<usize> = levels.iter().map(|&l| l + 1).collect();
        let hidden_degree = |k: usize| 1 + k % (count - 1).max(1);
        let mut layers = Vec::new();
        let mut previous = input_degrees.clone();
        for (l, &width) in hidden.iter().enumerate() {
            let degrees: Vec<usize> = (0..width).map(hidden_degree).collect();
            let mut mask = Vec::with_capacity(width * previous.len());
            for &mk in &degrees {
                mask.extend(previous.iter().map(|&mj| if mk >= mj { 1.0 } else { 0.0 }));
            }
            let fan_in = previous.len() + if l == 0 { context } else { 0 };
            layers.push(MaskedLinear::new(
                previous.len(),
                width,
                mask,
                kaiming(fan_in),
                &vb.pp(format!("layer{l}")),
            )?);
            previous = degrees;
        }
        let context_in =
            vb.get_with_hints((hidden[0], context), "context_in", kaiming(dims + context))?;
        let outputs = dims * params_per_dim;
        let mut mask = Vec::with_capacity(outputs * previous.len());
        for d in 0..dims {
            for _ in 0..params_per_dim {
                mask.extend(
                    previous
                        .iter()
                        .map(|&mj| if input_degrees[d] > mj { 1.0 } else { 0.0 }),
                );
            }
        }
        let zero = Init::Const(0.0);
        let output = MaskedLinear::new(previous.len(), outputs, mask, zero, &vb.pp("output"))?;
        let context_out = vb.get_with_hints((outputs, context), "context_out", zero)?;
        Ok(Made {
            dims,
            by_level,
            params_per_dim,
            hidden: layers,
            context_in,
            output,
            context_out,
            activation,
        })
    }

    /// The same conditioner with its parameters detached from the training graph: the
    /// same numbers, but no operation on it records its inputs, so a density or
    /// sampling pass frees each intermediate as soon as it is used (for inference; at
    /// chignolin's size the recorded graph of one density pass held gigabytes).
    pub fn frozen(&self) -> Made {
        Made {
            dims: self.dims,
            by_level: self.by_level.clone(),
            params_per_dim: self.params_per_dim,
            hidden: self.hidden.iter().map(MaskedLinear::frozen).collect(),
            context_in: self.context_in.detach(),
            output: self.output.frozen(),
            context_out: self.context_out.detach(),
            activation: self.activation,
        }
    }

    /// The number of levels K: an inverse pass takes K passes.
    pub fn levels(&self) -> usize {
        self.by_level.len()
    }

    /// The dimensions of `level`, ascending (level 0 sees only the context).
    pub fn level_dims(&self, level: usize) -> &[usize] {
        &self.by_level[level]
    }

    /// What [`Made::forward_level`] needs that does not depend on u: the masked weights
    /// and the context's terms, cut per level, computed once for the K passes of an
    /// autoregressive inverse.
    pub fn prepare(&self, context: &Tensor) -> Result<PreparedMade> {
        let mut prepared = self.prepare_hidden(context)?;
        let context_out = if self.context_out.dim(1)? > 0 {
            Some(context.matmul(&self.context_out.t()?)?)
        } else {
            None
        };
        let output = (&self.output.weight * &self.output.mask)?;
        let p = self.params_per_dim;
        prepared.levels = self
            .by_level
            .iter()
            .map(|dims| {
                let rows: Vec<u32> = dims
                    .iter()
                    .flat_map(|&d| (d * p..(d + 1) * p).map(|r| r as u32))
                    .collect();
                let rows = Tensor::from_vec(rows, dims.len() * p, output.device())?;
                Ok(PreparedLevel {
                    weight: output.index_select(&rows, 0)?,
                    bias: self.output.bias.index_select(&rows, 0)?,
                    context: match &context_out {
                        Some(c) => Some(c.index_select(&rows, 1)?),
                        None => None,
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok(prepared)
    }

    /// The hidden layers' masked weights and the context's input term (no output rows).
    fn prepare_hidden(&self, context: &Tensor) -> Result<PreparedMade> {
        let masked = |layer: &MaskedLinear| &layer.weight * &layer.mask;
        let context_in = if self.context_in.dim(1)? > 0 {
            Some(context.matmul(&self.context_in.t()?)?)
        } else {
            None
        };
        Ok(PreparedMade {
            hidden: self.hidden.iter().map(masked).collect::<Result<_>>()?,
            context_in,
            levels: Vec::new(),
        })
    }

    /// The last hidden layer's activations h_L (batch, H) for u (batch, D).
    fn hidden_state(&self, prepared: &PreparedMade, u: &Tensor) -> Result<Tensor> {
        let mut h = u
            .matmul(&prepared.hidden[0].t()?)?
            .broadcast_add(&self.hidden[0].bias)?;
        if let Some(c) = &prepared.context_in {
            h = h.add(c)?;
        }
        h = self.activation.apply(&h)?;
        for (layer, w) in self.hidden[1..].iter().zip(&prepared.hidden[1..]) {
            h = self
                .activation
                .apply(&h.matmul(&w.t()?)?.broadcast_add(&layer.bias)?)?;
        }
        Ok(h)
    }

    /// theta (batch, n, P) of the n dimensions of `level` alone ([`Made::level_dims`]
    /// order): the same numbers as `forward(u, context)` gives for them (the same
    /// products and sums, only their output rows), at n / D of the output layer's cost.
    pub fn forward_level(
        &self,
        prepared: &PreparedMade,
        u: &Tensor,
        level: usize,
    ) -> Result<Tensor> {
        let batch = u.dim(0)?;
        let rows = &prepared.levels[level];
        let h = self.hidden_state(prepared, u)?;
        let mut theta = h.matmul(&rows.weight.t()?)?.broadcast_add(&rows.bias)?;
        if let Some(c) = &rows.context {
            theta = theta.add(c)?;
        }
        theta.reshape((batch, self.by_level[level].len(), self.params_per_dim))
    }

    /// theta (batch, D, P) from u (batch, D) and context (batch, C).
    pub fn forward(&self, u: &Tensor, context: &Tensor) -> Result<Tensor> {
        let batch = u.dim(0)?;
        let prepared = self.prepare_hidden(context)?;
        let h = self.hidden_state(&prepared, u)?;
        let masked = |layer: &MaskedLinear| &layer.weight * &layer.mask;
        let output = masked(&self.output)?;
        let blocks = output_blocks(self.dims, self.params_per_dim)
            .into_iter()
            .map(|(first, len)| h.matmul(&output.narrow(0, first, len)?.t()?))
            .collect::<Result<Vec<_>>>()?;
        let mut theta = Tensor::cat(&blocks, 1)?.broadcast_add(&self.output.bias)?;
        if self.context_out.dim(1)? > 0 {
            theta = theta.add(&context.matmul(&self.context_out.t()?)?)?;
        }
        theta.reshape((batch, self.dims, self.params_per_dim))
    }
}
