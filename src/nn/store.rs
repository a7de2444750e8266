//! Seeded parameters: a candle `VarBuilder` backend whose every tensor is drawn from a
//! ChaCha20 stream keyed by (store seed, parameter name).
//!
//! Because each parameter's stream depends only on its name, the values do not depend
//! on the order in which a model creates its layers, and two builds with one seed give
//! identical bits. Parameters are kept in a `BTreeMap` (sorted by name) so saving and
//! hashing never see `HashMap` order. Initialisations follow candle-nn's `Init`
//! semantics (constant, normal, uniform, Kaiming with fan and gain); normals use the
//! ziggurat sampler of [`crate::random`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::artifact::tensors::NamedTensor;
use crate::random::{normal, uniform};

/// The trainable parameters of a model, created on first use from a seed.
#[derive(Clone)]
pub struct ParameterStore {
    inner: Arc<Inner>,
}

struct Inner {
    seed: [u8; 32],
    vars: Mutex<BTreeMap<String, Var>>,
}

impl ParameterStore {
    pub fn new(seed: [u8; 32]) -> Self {
        ParameterStore {
            inner: Arc::new(Inner {
                seed,
                vars: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// A `VarBuilder` that creates (or returns) parameters in this store.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// Every parameter, sorted by name (what an optimizer trains).
    pub fn vars(&self) -> Vec<(String, Var)> {
        let vars = self.inner.vars.lock().expect("parameter store poisoned");
        vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The parameters as named f64 tensors (for a `model_parameters` artifact).
    pub fn to_tensors(&self) -> candle_core::Result<Vec<NamedTensor>> {
        self.vars()
            .into_iter()
            .map(|(name, var)| {
                let t = var.as_tensor();
                Ok(NamedTensor {
                    name,
                    shape: t.dims().to_vec(),
                    values: t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?,
                })
            })
            .collect()
    }

    /// Overwrites parameters with saved values; every saved tensor must exist with the
    /// same shape (build the model first).
    pub fn load(&self, tensors: &[NamedTensor]) -> candle_core::Result<()> {
        let vars = self.inner.vars.lock().expect("parameter store poisoned");
        for t in tensors {
            let var = vars.get(&t.name).ok_or_else(|| {
                candle_core::Error::Msg(format!("no parameter `{}` in the model", t.name))
            })?;
            if var.dims() != t.shape.as_slice() {
                return Err(candle_core::Error::Msg(format!(
                    "parameter `{}` has shape {:?}, the saved one {:?}",
                    t.name,
                    var.dims(),
                    t.shape
                )));
            }
            let value = Tensor::from_vec(t.values.clone(), t.shape.clone(), var.device())?
                .to_dtype(var.dtype())?;
            var.set(&value)?;
        }
        Ok(())
    }

    fn draw(&self, shape: &Shape, name: &str, init: &Init) -> Vec<f64> {
        let mut material = self.inner.seed.to_vec();
        material.extend_from_slice(name.as_bytes());
        let mut rng =
            ChaCha20Rng::from_seed(blake3::derive_key("cgloop parameter init v1", &material));
        let n = shape.elem_count();
        let uniform_in = |rng: &mut ChaCha20Rng, lo: f64, up: f64| lo + (up - lo) * uniform(rng);
        match init {
            Init::Const(c) => vec![*c; n],
            Init::Randn { mean, stdev } => {
                (0..n).map(|_| mean + stdev * normal(&mut rng)).collect()
            }
            Init::Uniform { lo, up } => (0..n).map(|_| uniform_in(&mut rng, *lo, *up)).collect(),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    candle_nn::init::NormalOrUniform::Uniform => {
                        let bound = 3f64.sqrt() * std;
                        (0..n)
                            .map(|_| uniform_in(&mut rng, -bound, bound))
                            .collect()
                    }
                    candle_nn::init::NormalOrUniform::Normal => {
                        (0..n).map(|_| std * normal(&mut rng)).collect()
                    }
                }
            }
        }
    }
}

impl SimpleBackend for ParameterStore {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut vars = self.inner.vars.lock().expect("parameter store poisoned");
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                return Err(candle_core::Error::Msg(format!(
                    "parameter `{name}` requested with shape {shape:?}, created with {:?}",
                    var.shape()
                )));
            }
            return Ok(var.as_tensor().clone());
        }
        let values = self.draw(&shape, name, &init);
        let tensor = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _device: &Device,
    ) -> candle_core::Result<Tensor> {
        let vars = self.inner.vars.lock().expect("parameter store poisoned");
        vars.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::Msg(format!("no parameter `{name}`")))
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner
            .vars
            .lock()
            .expect("parameter store poisoned")
            .contains_key(name)
    }
}
