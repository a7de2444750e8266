//! A multilayer perceptron with smooth activations, and its exact input gradient.
//!
//! h_0 = x, a_l = h_{l-1} W_l^T + b_l, h_l = sigma(a_l) for hidden layers, y = a_L.
//! Shapes: x (batch, d_in), y (batch, d_out).
//!
//! For a scalar output (d_out = 1), [`Mlp::forward_with_input_gradient`] also returns
//! dy/dx (batch, d_in) by the chain rule written as candle operations:
//! g_{L-1} = W_L, g_{l-1} = (g_l * sigma'(a_l)) W_l, dy/dx = g_0. Since it is an
//! ordinary candle graph, one backward pass of a loss on dy/dx (force matching) gives
//! exact parameter gradients: no second-order autodiff, no `CANDLE_GRAD_DO_NOT_DETACH`.
//! Activations are built from primitive operations that all have backward passes
//! (never the fused kernels that lack one).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use serde::{Deserialize, Serialize};

/// A smooth activation (force matching differentiates through it twice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
    /// x sigmoid(x) (swish).
    Silu,
    /// ln(1 + e^x).
    Softplus,
}

fn sigmoid(a: &Tensor) -> Result<Tensor> {
    // 1 / (1 + e^{-a})
    (a.neg()?.exp()? + 1.0)?.recip()
}

impl Activation {
    /// sigma(a) and sigma'(a).
    pub fn value_and_derivative(self, a: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Activation::Tanh => {
                let t = a.tanh()?;
                let d = (1.0 - t.sqr()?)?;
                Ok((t, d))
            }
            Activation::Silu => {
                let s = sigmoid(a)?;
                let value = (a * &s)?;
                // s + a s (1 - s)
                let d = (&s + (a * &s)?.mul(&(1.0 - &s)?)?)?;
                Ok((value, d))
            }
            Activation::Softplus => {
                // ln(1 + e^a) = max(a, 0) + ln(1 + e^{-|a|}), stable for large |a|.
                let value = (a.relu()? + (a.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                Ok((value, sigmoid(a)?))
            }
        }
    }

    pub fn apply(self, a: &Tensor) -> Result<Tensor> {
        Ok(self.value_and_derivative(a)?.0)
    }
}

/// Linear layers `layer0`, `layer1`, ... with an activation between them.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
}

impl Mlp {
    /// `sizes` = [d_in, hidden..., d_out]; parameters `layer{i}.weight` and `.bias`.
    pub fn new(sizes: &[usize], activation: Activation, vb: VarBuilder) -> Result<Self> {
        assert!(sizes.len() >= 2, "an MLP needs input and output sizes");
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| linear(w[0], w[1], vb.pp(format!("layer{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Mlp { layers, activation })
    }

    /// The output and, for a scalar output, its gradient with respect to the input.
    pub fn forward_with_input_gradient(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        let mut derivatives = Vec::with_capacity(self.layers.len() - 1);
        let last = self.layers.len() - 1;
        for layer in &self.layers[..last] {
            let a = layer.forward(&h)?;
            let (value, d) = self.activation.value_and_derivative(&a)?;
            derivatives.push(d);
            h = value;
        }
        let y = self.layers[last].forward(&h)?;
        assert_eq!(y.dim(1)?, 1, "the input gradient needs a scalar output");
        let batch = x.dim(0)?;
        // dy/dh_{L-1}: the last weight row, for every sample.
        let w_last = self.layers[last].weight();
        let mut g = w_last.broadcast_as((batch, w_last.dim(1)?))?.contiguous()?;
        for (layer, d) in self.layers[..last].iter().zip(&derivatives).rev() {
            g = (g * d)?.matmul(layer.weight())?;
        }
        Ok((y, g))
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for layer in &self.layers[..last] {
            h = self.activation.apply(&layer.forward(&h)?)?;
        }
        self.layers[last].forward(&h)
    }
}
