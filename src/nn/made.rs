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
//! Degrees: input d has degree m(d) = its rank in `order` (1..D), hidden unit k of every
//! layer m_h(k) = 1 + (k mod (D - 1)). Masks: M_1[k, d] = [m_h(k) >= m(d)], hidden to
//! hidden [m'(k) >= m(j)], hidden to output unit (d, p) [m(d) > m_h(j)]. The first
//! dimension in the order sees only the context (through V_o), the last all others. The
//! output weights W_o, V_o and b_o start at zero, so an untrained MADE gives theta = 0
//! for every input (a spline flow built on it starts at the identity).
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
    /// by_rank[r]: the dimension of rank r in the layer's order.
    by_rank: Vec<usize>,
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
    output: Tensor,
    context_in: Option<Tensor>,
    context_out: Option<Tensor>,
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
    /// `order[d]` is the rank (0-based) of dimension d: a permutation of 0..dims.
    /// Parameters live under `vb` as `layer{l}.weight/bias`, `context_in`,
    /// `output.weight/bias` and `context_out`.
    pub fn new(
        order: &[usize],
        context: usize,
        hidden: &[usize],
        params_per_dim: usize,
        activation: Activation,
        vb: VarBuilder,
    ) -> Result<Self> {
        let dims = order.len();
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        if sorted != (0..dims).collect::<Vec<_>>() || hidden.is_empty() || dims == 0 {
            candle_core::bail!("MADE needs a permutation order and at least one hidden layer")
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
        let input_degrees: Vec<usize> = order.iter().map(|&r| r + 1).collect();
        let mut by_rank = vec![0; dims];
        for (d, &r) in order.iter().enumerate() {
            by_rank[r] = d;
        }
        let hidden_degree = |k: usize| 1 + k % (dims - 1).max(1);
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
            by_rank,
            params_per_dim,
            hidden: layers,
            context_in,
            output,
            context_out,
            activation,
        })
    }

    /// The dimension of rank `rank` in this layer's order (rank 0 sees only the context).
    pub fn dim_of_rank(&self, rank: usize) -> usize {
        self.by_rank[rank]
    }

    /// What [`Made::forward_dim`] needs that does not depend on u: the masked weights and
    /// the context's terms, computed once for the D passes of an autoregressive inverse.
    pub fn prepare(&self, context: &Tensor) -> Result<PreparedMade> {
        let masked = |layer: &MaskedLinear| &layer.weight * &layer.mask;
        let context_in = if self.context_in.dim(1)? > 0 {
            Some(context.matmul(&self.context_in.t()?)?)
        } else {
            None
        };
        let context_out = if self.context_out.dim(1)? > 0 {
            Some(context.matmul(&self.context_out.t()?)?)
        } else {
            None
        };
        Ok(PreparedMade {
            hidden: self.hidden.iter().map(masked).collect::<Result<_>>()?,
            output: masked(&self.output)?,
            context_in,
            context_out,
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

    /// theta (batch, 1, P) of dimension `d` alone: the same numbers as
    /// `forward(u, context)` gives for d (the same products and sums, only the output
    /// rows of d), at a D-th of the output layer's cost.
    pub fn forward_dim(&self, prepared: &PreparedMade, u: &Tensor, d: usize) -> Result<Tensor> {
        let batch = u.dim(0)?;
        let p = self.params_per_dim;
        let h = self.hidden_state(prepared, u)?;
        let w = prepared.output.narrow(0, d * p, p)?;
        let mut theta =
            h.matmul(&w.t()?)?
                .broadcast_add(&self.output.bias.narrow(0, d * p, p)?)?;
        if let Some(c) = &prepared.context_out {
            theta = theta.add(&c.narrow(1, d * p, p)?)?;
        }
        theta.reshape((batch, 1, p))
    }

    /// theta (batch, D, P) from u (batch, D) and context (batch, C).
    pub fn forward(&self, u: &Tensor, context: &Tensor) -> Result<Tensor> {
        let batch = u.dim(0)?;
        let prepared = self.prepare(context)?;
        let h = self.hidden_state(&prepared, u)?;
        let blocks = output_blocks(self.dims, self.params_per_dim)
            .into_iter()
            .map(|(first, len)| h.matmul(&prepared.output.narrow(0, first, len)?.t()?))
            .collect::<Result<Vec<_>>>()?;
        let mut theta = Tensor::cat(&blocks, 1)?.broadcast_add(&self.output.bias)?;
        if let Some(c) = &prepared.context_out {
            theta = theta.add(c)?;
        }
        theta.reshape((batch, self.dims, self.params_per_dim))
    }
}
