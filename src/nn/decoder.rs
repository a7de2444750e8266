//! The map's decoder: seed atoms predicted from bead positions, equivariantly.
//!
//! For bead positions z (F, n, 3), nm, with centroid z_bar and the invariant features
//! d (F, n(n-1)/2), every bead-pair distance softened as sqrt(r^2 + eps^2), eps = 0.01 nm,
//!
//! ```text
//! A = MLP(d)                              (F, S, n)
//! x_hat_s = z_bar + sum_I A_sI (z_I - z_bar)  (F, S, 3)
//! ```
//!
//! The coefficients depend only on distances, so the prediction rotates, reflects and
//! translates with the beads; S seed atoms (e.g. the heavy atoms) are predicted as
//! geometry-dependent combinations of bead displacements. With four or more beads not in
//! one plane these displacements span space, so any seed geometry is reachable.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::mlp::{Activation, Mlp};

/// Softening length of the distance features, nm.
const SOFTENING_NM: f64 = 0.01;

/// Predicts S seed atoms from n beads.
#[derive(Clone, Debug)]
pub struct BeadDecoder {
    beads: usize,
    seeds: usize,
    first: Tensor,
    second: Tensor,
    network: Mlp,
}

impl BeadDecoder {
    /// Parameters `network.layer{i}.*`, hidden sizes `hidden`.
    pub fn new(beads: usize, seeds: usize, hidden: &[usize], vb: VarBuilder) -> Result<Self> {
        assert!(beads >= 2, "a decoder needs two beads");
        let pairs: Vec<(u32, u32)> = (0..beads as u32)
            .flat_map(|i| (i + 1..beads as u32).map(move |j| (i, j)))
            .collect();
        let mut sizes = vec![pairs.len()];
        sizes.extend(hidden);
        sizes.push(seeds * beads);
        let device = vb.device().clone();
        Ok(BeadDecoder {
            beads,
            seeds,
            first: Tensor::from_vec(pairs.iter().map(|p| p.0).collect(), pairs.len(), &device)?,
            second: Tensor::from_vec(pairs.iter().map(|p| p.1).collect(), pairs.len(), &device)?,
            network: Mlp::new(&sizes, Activation::Silu, vb.pp("network"))?,
        })
    }

    pub fn seeds(&self) -> usize {
        self.seeds
    }

    /// Seed atoms (F, S, 3) for bead positions z (F, n, 3).
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let frames = z.dim(0)?;
        let diff = (z.index_select(&self.first, 1)? - z.index_select(&self.second, 1)?)?;
        // Softened distances sqrt(r^2 + eps^2), eps = 0.01 nm, so the features stay
        // differentiable when beads coincide (a fresh soft map puts every bead near the
        // centroid); x10 puts them at O(1) for the network.
        let d = ((diff.sqr()?.sum(D::Minus1)? + SOFTENING_NM * SOFTENING_NM)?.sqrt()? * 10.0)?;
        let coefficients = self
            .network
            .forward(&d)?
            .reshape((frames, self.seeds, self.beads))?;
        let centre = z.mean_keepdim(1)?;
        let displacement = z.broadcast_sub(&centre)?;
        coefficients
            .matmul(&displacement.contiguous()?)?
            .broadcast_add(&centre)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParameterStore;
    use candle_core::{DType, Device};

    fn rotation(angle: f64) -> [[f64; 3]; 3] {
        let (s, c) = angle.sin_cos();
        // About the axis (1, 1, 1)/sqrt(3) by Rodrigues' formula.
        let k = [1.0 / 3f64.sqrt(); 3];
        let mut r = [[0.0; 3]; 3];
        let cross = [[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]];
        for i in 0..3 {
            for j in 0..3 {
                r[i][j] = if i == j { c } else { 0.0 } + s * cross[i][j] + (1.0 - c) * k[i] * k[j];
            }
        }
        r
    }

    #[test]
    fn prediction_moves_with_the_beads() {
        let store = ParameterStore::new([3; 32]);
        let decoder =
            BeadDecoder::new(4, 3, &[16], store.var_builder(DType::F64, &Device::Cpu)).unwrap();
        let z = [
            [0.0, 0.0, 0.0],
            [0.38, 0.02, 0.0],
            [0.55, 0.33, 0.05],
            [0.9, 0.4, 0.31],
        ];
        let r = rotation(0.7);
        let t = [0.3, -1.2, 2.0];
        let moved: Vec<[f64; 3]> = z
            .iter()
            .map(|p| {
                let mut q = t;
                for i in 0..3 {
                    for j in 0..3 {
                        q[i] += r[i][j] * p[j];
                    }
                }
                q
            })
            .collect();
        let as_tensor = |z: &[[f64; 3]]| {
            Tensor::from_vec(
                z.iter().flatten().copied().collect::<Vec<f64>>(),
                (1, 4, 3),
                &Device::Cpu,
            )
            .unwrap()
        };
        let x = decoder.forward(&as_tensor(&z)).unwrap();
        let y = decoder.forward(&as_tensor(&moved)).unwrap();
        let x: Vec<Vec<f64>> = x.squeeze(0).unwrap().to_vec2().unwrap();
        let y: Vec<Vec<f64>> = y.squeeze(0).unwrap().to_vec2().unwrap();
        for (a, b) in x.iter().zip(&y) {
            for i in 0..3 {
                let expected: f64 = t[i] + (0..3).map(|j| r[i][j] * a[j]).sum::<f64>();
                assert!((expected - b[i]).abs() < 1e-12, "{expected} vs {}", b[i]);
            }
        }
    }
}
