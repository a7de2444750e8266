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

use candle_core::{Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::mlp::Activation;

/// One masked dense layer: y = x (W o M)^T + b.
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

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = (&self.weight * &self.mask)?;
        x.matmul(&w.t()?)?.broadcast_add(&self.bias)
    }
}

/// The MADE conditioner.
pub struct Made {
    dims: usize,
    params_per_dim: usize,
    hidden: Vec<MaskedLinear>,
    context_in: Tensor,
    output: MaskedLinear,
    context_out: Tensor,
    activation: Activation,
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
        let input_degrees: Vec<usize> = order.iter().map(|&r| r + 1).collect();
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
            params_per_dim,
            hidden: layers,
            context_in,
            output,
            context_out,
            activation,
        })
    }

    /// theta (batch, D, P) from u (batch, D) and context (batch, C).
    pub fn forward(&self, u: &Tensor, context: &Tensor) -> Result<Tensor> {
        let batch = u.dim(0)?;
        let mut h = self.hidden[0].forward(u)?;
        if self.context_in.dim(1)? > 0 {
            h = h.add(&context.matmul(&self.context_in.t()?)?)?;
        }
        h = self.activation.apply(&h)?;
        for layer in &self.hidden[1..] {
            h = self.activation.apply(&layer.forward(&h)?)?;
        }
        let mut theta = self.output.forward(&h)?;
        if self.context_out.dim(1)? > 0 {
            theta = theta.add(&context.matmul(&self.context_out.t()?)?)?;
        }
        theta.reshape((batch, self.dims, self.params_per_dim))
    }
}
