//! Finite-difference checks of training gradients: every loss that trains gets one.
//!
//! For a few entries theta_k of every parameter, the central difference
//! (L(theta_k + h) - L(theta_k - h)) / 2h is compared with the gradient of one
//! `backward()` of L; a parameter the loss does not reach must have a zero difference.
//! Use f64 parameters so that h = 1e-6 leaves ~1e-9 relative truncation and rounding.

use candle_core::{Result, Tensor};

use super::store::ParameterStore;

/// A gradient entry that disagrees with its finite difference.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    pub parameter: String,
    pub index: usize,
    pub finite_difference: f64,
    pub backward: f64,
}

/// Compares backward gradients of `loss` with central differences on the first,
/// middle and last entry of every parameter in `store`; returns the entries where
/// |fd - backward| > tolerance (1 + |fd|). Parameters are restored afterwards.
pub fn check_parameter_gradients(
    store: &ParameterStore,
    loss: impl Fn() -> Result<Tensor>,
    h: f64,
    tolerance: f64,
) -> Result<Vec<Mismatch>> {
    let grads = loss()?.backward()?;
    let scalar = |t: Tensor| t.to_scalar::<f64>();
    let mut mismatches = Vec::new();
    for (name, var) in store.vars() {
        let backward = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
            None => vec![0.0; var.elem_count()],
        };
        let values = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        let mut indices = vec![0, values.len() / 2, values.len() - 1];
        indices.dedup();
        for k in indices {
            let set = |v: f64| -> Result<()> {
                let mut w = values.clone();
                w[k] = v;
                var.set(&Tensor::from_vec(w, var.shape(), var.device())?.to_dtype(var.dtype())?)
            };
            set(values[k] + h)?;
            let up = scalar(loss()?)?;
            set(values[k] - h)?;
            let down = scalar(loss()?)?;
            set(values[k])?;
            let fd = (up - down) / (2.0 * h);
            if !((fd - backward[k]).abs() <= tolerance * (1.0 + fd.abs())) {
                mismatches.push(Mismatch {
                    parameter: name.clone(),
                    index: k,
                    finite_difference: fd,
                    backward: backward[k],
                });
            }
        }
    }
    Ok(mismatches)
}
