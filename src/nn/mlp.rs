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
//! (never candle's fused kernels that lack one), except SiLU on the CPU: its value and
//! derivative come from one pass on the host and enter the graph as custom operations
//! whose backward passes are written out (g silu'(a), g silu''(a)). The unfused graph
//! cost about ten tensors per layer forward and more backward, and dominated a training
//! step (benches/nn.rs). The values round exactly as the unfused graph's did
//! (sigma = 1 / (e^{-a} + 1), value a sigma, derivative sigma + a sigma (1 - sigma));
//! gradients agree with it to rounding. The backward factors are constants, so under
//! second-order autodiff (`CANDLE_GRAD_DO_NOT_DETACH`) the unfused graph is used.

use std::sync::{Mutex, OnceLock};

use candle_core::{
    CpuStorage, CustomOp1, Layout, Module, Result, Shape, Storage, Tensor, WithDType,
};
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
            Activation::Silu => match fused_silu(a, true)? {
                Some((value, Some(slope))) => Ok((value, slope)),
                _ => {
                    let s = sigmoid(a)?;
                    let value = (a * &s)?;
                    // s + a s (1 - s)
                    let d = (&s + (a * &s)?.mul(&(1.0 - &s)?)?)?;
                    Ok((value, d))
                }
            },
            Activation::Softplus => {
                // ln(1 + e^a) = max(a, 0) + ln(1 + e^{-|a|}), stable for large |a|.
                let value = (a.relu()? + (a.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                Ok((value, sigmoid(a)?))
            }
        }
    }

    pub fn apply(self, a: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Silu => match fused_silu(a, false)? {
                Some((value, _)) => Ok(value),
                None => Ok(self.value_and_derivative(a)?.0),
            },
            _ => Ok(self.value_and_derivative(a)?.0),
        }
    }
}

/// SiLU's value, and its derivative when `derivative` is set, computed on the host in one
/// pass (one exponential per element) and attached to the graph of `a`; `None` off the
/// CPU, for dtypes other than f64 and f32, or under second-order autodiff (the caller
/// falls back to the unfused graph).
///
/// The value's backward pass is g silu'(a) and the derivative's is g silu''(a), each a
/// product with a factor computed in the same pass ([`Precomputed`]). Values round
/// exactly as the unfused graph's did; gradients agree with it to rounding.
fn fused_silu(a: &Tensor, derivative: bool) -> Result<Option<(Tensor, Option<Tensor>)>> {
    if !a.device().is_cpu() || second_order_autodiff() {
        return Ok(None);
    }
    let a = a.contiguous()?;
    let want = Wanted {
        // silu' is an output, or the value's backward factor.
        slope: derivative || a.track_op(),
        // silu'' is only the derivative's backward factor.
        curvature: derivative && a.track_op(),
    };
    let (storage, layout) = a.storage_and_layout();
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Ok(None);
    };
    let parts = match &*storage {
        Storage::Cpu(CpuStorage::F64(v)) => SiluParts::Double(silu_parts(&v[start..end], want)),
        Storage::Cpu(CpuStorage::F32(v)) => SiluParts::Single(silu_parts(&v[start..end], want)),
        _ => return Ok(None),
    };
    drop(storage);
    match parts {
        SiluParts::Double(p) => p.attach(&a, derivative).map(Some),
        SiluParts::Single(p) => p.attach(&a, derivative).map(Some),
    }
}

/// Whether candle keeps the graph of its backward pass (`CANDLE_GRAD_DO_NOT_DETACH`, read
/// as candle reads it): the fused SiLU's backward factors are constants, so second-order
/// autodiff through it would be wrong, and the unfused graph is used instead.
fn second_order_autodiff() -> bool {
    static SET: OnceLock<bool> = OnceLock::new();
    *SET.get_or_init(|| {
        std::env::var("CANDLE_GRAD_DO_NOT_DETACH").is_ok_and(|s| !s.is_empty() && s != "0")
    })
}

/// Float element types of the fused SiLU.
trait Real: WithDType + std::ops::Neg<Output = Self> {
    fn exp(self) -> Self;
}

impl Real for f64 {
    fn exp(self) -> f64 {
        f64::exp(self)
    }
}

impl Real for f32 {
    fn exp(self) -> f32 {
        f32::exp(self)
    }
}

/// Which of silu' and silu'' to compute besides silu.
#[derive(Clone, Copy)]
struct Wanted {
    slope: bool,
    curvature: bool,
}

enum SiluParts {
    Double(SiluValues<f64>),
    Single(SiluValues<f32>),
}

/// silu(a), and silu'(a) and silu''(a) when wanted.
struct SiluValues<T> {
    value: Vec<T>,
    slope: Option<Vec<T>>,
    curvature: Option<Vec<T>>,
}

/// sigma = 1 / (e^{-a} + 1) (rounded as candle's neg, exp, affine and recip round it),
/// silu = a sigma, silu' = sigma + a sigma (1 - sigma),
/// silu'' = sigma (1 - sigma) (2 + a (1 - 2 sigma)).
fn silu_parts<T: Real>(a: &[T], want: Wanted) -> SiluValues<T> {
    let (one, two) = (T::one(), T::one() + T::one());
    // The exponentials first (library calls), then arithmetic loops that vectorize.
    let sigma: Vec<T> = a.iter().map(|&a| (-a).exp()).collect();
    let sigma: Vec<T> = sigma.into_iter().map(|e| one / (e + one)).collect();
    let value: Vec<T> = a.iter().zip(&sigma).map(|(&a, &s)| a * s).collect();
    let slope = want.slope.then(|| {
        value
            .iter()
            .zip(&sigma)
            .map(|(&v, &s)| s + v * (one - s))
            .collect()
    });
    let curvature = want.curvature.then(|| {
        a.iter()
            .zip(&sigma)
            .map(|(&a, &s)| s * (one - s) * (two + a * (one - two * s)))
            .collect()
    });
    SiluValues {
        value,
        slope,
        curvature,
    }
}

impl<T: Real> SiluValues<T> {
    /// (value, derivative if asked): functions of `a` in its graph when it has one.
    fn attach(self, a: &Tensor, derivative: bool) -> Result<(Tensor, Option<Tensor>)> {
        let (shape, device) = (a.shape(), a.device());
        let host = |values: Vec<T>| Tensor::from_vec(values, shape, device);
        let SiluValues {
            value,
            slope,
            curvature,
        } = self;
        if !a.track_op() {
            // No gradient flows through `a`: plain tensors.
            let slope = match slope {
                Some(slope) if derivative => Some(host(slope)?),
                _ => None,
            };
            return Ok((host(value)?, slope));
        }
        let slope = slope.expect("silu' is computed whenever gradients flow");
        let value = T::to_cpu_storage_owned(value);
        match curvature {
            Some(curvature) => {
                let slope = T::to_cpu_storage_owned(slope);
                let slope =
                    a.apply_op1(Precomputed::new("silu-derivative", slope, host(curvature)?))?;
                let value = a.apply_op1(Precomputed::new("silu", value, slope.detach()))?;
                Ok((value, Some(slope)))
            }
            None => Ok((
                a.apply_op1(Precomputed::new("silu", value, host(slope)?))?,
                None,
            )),
        }
    }
}

/// A result computed beforehand on the host, attached to the graph as a function of its
/// argument whose backward pass is `grad * factor` (an elementwise derivative).
struct Precomputed {
    name: &'static str,
    values: Mutex<Option<CpuStorage>>,
    factor: Tensor,
}

impl Precomputed {
    fn new(name: &'static str, values: CpuStorage, factor: Tensor) -> Self {
        Precomputed {
            name,
            values: Mutex::new(Some(values)),
            factor,
        }
    }
}

impl CustomOp1 for Precomputed {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, _storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let values = self
            .values
            .lock()
            .expect("precomputed values poisoned")
            .take();
        match values {
            Some(values) => Ok((values, layout.shape().clone())),
            None => candle_core::bail!("{}: evaluated twice", self.name),
        }
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.mul(&self.factor)?))
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
        // dy/dh_{L-1}: the last weight row, for every sample (broadcast into the first
        // product rather than copied).
        let w_last = self.layers[last].weight();
        let mut g: Option<Tensor> = None;
        for (layer, d) in self.layers[..last].iter().zip(&derivatives).rev() {
            let scaled = match &g {
                Some(g) => (g * d)?,
                None => d.broadcast_mul(w_last)?,
            };
            g = Some(scaled.matmul(layer.weight())?);
        }
        let g = match g {
            Some(g) => g,
            None => w_last.broadcast_as((batch, w_last.dim(1)?))?.contiguous()?,
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// The unfused graph that the fused SiLU replaces.
    fn unfused(a: &Tensor) -> Result<(Tensor, Tensor)> {
        let s = sigmoid(a)?;
        let value = (a * &s)?;
        let d = (&s + (a * &s)?.mul(&(1.0 - &s)?)?)?;
        Ok((value, d))
    }

    fn arguments(dtype: DType) -> Var {
        let values: Vec<f64> = (0..301).map(|i| (i as f64 - 150.0) * 0.173).collect();
        let t = Tensor::from_vec(values, (7, 43), &Device::Cpu).unwrap();
        Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
    }

    #[test]
    fn fused_silu_rounds_as_the_unfused_graph_and_has_its_gradients() {
        for dtype in [DType::F64, DType::F32] {
            let a = arguments(dtype);
            let (v, d) = Activation::Silu
                .value_and_derivative(a.as_tensor())
                .unwrap();
            let (rv, rd) = unfused(a.as_tensor()).unwrap();
            let bits = |t: &Tensor| -> Vec<u64> {
                t.flatten_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect()
            };
            assert_eq!(bits(&v), bits(&rv), "{dtype:?} value");
            assert_eq!(bits(&d), bits(&rd), "{dtype:?} derivative");
            assert_eq!(
                bits(&Activation::Silu.apply(a.as_tensor()).unwrap()),
                bits(&rv)
            );
            // Gradients of a loss on both outputs.
            let w = Tensor::ones((7, 43), dtype, &Device::Cpu).unwrap();
            let loss = |v: &Tensor, d: &Tensor| {
                ((v * &w).unwrap().sum_all().unwrap()
                    + (d.sqr().unwrap() * 3.0).unwrap().sum_all().unwrap())
                .unwrap()
            };
            let g = loss(&v, &d).backward().unwrap();
            let rg = loss(&rv, &rd).backward().unwrap();
            let as_f64 = |g: &candle_core::backprop::GradStore| -> Vec<f64> {
                g.get(a.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            let tolerance = if dtype == DType::F64 { 1e-14 } else { 1e-5 };
            for (x, y) in as_f64(&g).iter().zip(as_f64(&rg)) {
                assert!(
                    (x - y).abs() <= tolerance * (1.0 + y.abs()),
                    "{dtype:?} gradient {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn fused_silu_without_a_graph_gives_plain_tensors() {
        let a = arguments(DType::F64).as_tensor().detach();
        let (v, d) = Activation::Silu.value_and_derivative(&a).unwrap();
        let (rv, rd) = unfused(&a).unwrap();
        assert!(!v.track_op() && !d.track_op());
        let diff = |x: &Tensor, y: &Tensor| {
            (x - y)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        assert_eq!(diff(&v, &rv), 0.0);
        assert_eq!(diff(&d, &rd), 0.0);
    }
}
