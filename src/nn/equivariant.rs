//! E(n)-equivariant message passing over atoms (EGNN, Satorras, Hoogeboom & Welling,
//! ICML 2021), giving the invariant per-atom scores of the learned CG map
//! (DESIGN.md §4 `train_map`).
//!
//! One layer, for node features h (N, d), positions x (N, 3) in nm and the directed edges
//! (i <- j) of an [`AtomGraph`] (both directions of every bond and of every pair closer
//! than a cutoff), with a_ij = 1 for bonded pairs and 0 otherwise:
//!
//! ```text
//! m_ij = silu(phi_e(h_i, h_j, |x_i - x_j|^2, a_ij))         (E, m)
//! x_i' = x_i + 1/(N - 1) sum_j (x_i - x_j) phi_x(m_ij)       (N, 3)
//! h_i' = h_i + phi_h(h_i, sum_j m_ij)                        (N, d)
//! ```
//!
//! phi_e, phi_x, phi_h are two-layer SiLU MLPs ([`Mlp`]). The edges' messages enter only
//! through the distances, so h' is invariant and x' equivariant under rotations,
//! reflections and translations of x, and both are equivariant under permutations of the
//! atoms. Sums over neighbours are products with a dense (N, E) incidence matrix: exact,
//! order-fixed (deterministic) and differentiable.
//!
//! [`Egnn`] embeds per-atom input features (N, d_in) linearly to d, applies L layers and
//! maps the final features linearly to scores (N, n_beads), the input of
//! [`crate::nn::cg_map::soft_assignment`]. The graph is built on the host from one
//! configuration (its cutoff is not differentiable); the map shares one P across frames,
//! so the scores come from a reference configuration or are averaged over frames.

use std::collections::BTreeSet;

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use super::mlp::{Activation, Mlp};

/// The directed edges of a molecule: bonds plus pairs within a cutoff.
#[derive(Clone, Debug)]
pub struct AtomGraph {
    n_atoms: usize,
    /// Unordered pairs (i < j), sorted.
    pairs: Vec<[usize; 2]>,
    receivers: Tensor,
    senders: Tensor,
    bonded: Tensor,
    incidence: Tensor,
}

impl AtomGraph {
    /// Edges for every bond (i, j) and every pair with |x_i - x_j| < cutoff (nm) in the
    /// configuration `positions`; each pair gives the edges i <- j and j <- i.
    pub fn new(
        bonds: &[[usize; 2]],
        positions: &[[f64; 3]],
        cutoff: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let n_atoms = positions.len();
        let bond_set: BTreeSet<[usize; 2]> =
            bonds.iter().map(|&[i, j]| [i.min(j), i.max(j)]).collect();
        if let Some(&[_, j]) = bond_set.iter().find(|&&[i, j]| j >= n_atoms || i == j) {
            return Err(candle_core::Error::Msg(format!(
                "bond to atom {j} in a graph of {n_atoms} atoms (or a self bond)"
            )));
        }
        let mut pairs = bond_set.clone();
        for i in 0..n_atoms {
            for j in i + 1..n_atoms {
                let r2: f64 = (0..3)
                    .map(|a| (positions[i][a] - positions[j][a]).powi(2))
                    .sum();
                if r2 < cutoff * cutoff {
                    pairs.insert([i, j]);
                }
            }
        }
        let pairs: Vec<[usize; 2]> = pairs.into_iter().collect();
        let edges = 2 * pairs.len();
        let (mut receivers, mut senders, mut bonded) = (
            Vec::with_capacity(edges),
            Vec::with_capacity(edges),
            Vec::with_capacity(edges),
        );
        let mut incidence = vec![0.0; n_atoms * edges];
        for pair in &pairs {
            let a = if bond_set.contains(pair) { 1.0 } else { 0.0 };
            for (i, j) in [(pair[0], pair[1]), (pair[1], pair[0])] {
                incidence[i * edges + receivers.len()] = 1.0;
                receivers.push(i as u32);
                senders.push(j as u32);
                bonded.push(a);
            }
        }
        Ok(AtomGraph {
            n_atoms,
            pairs,
            receivers: Tensor::from_vec(receivers, edges, device)?,
            senders: Tensor::from_vec(senders, edges, device)?,
            bonded: Tensor::from_vec(bonded, (edges, 1), device)?.to_dtype(dtype)?,
            incidence: Tensor::from_vec(incidence, (n_atoms, edges), device)?.to_dtype(dtype)?,
        })
    }

    pub fn n_atoms(&self) -> usize {
        self.n_atoms
    }

    /// The unordered pairs (i < j), sorted; the graph has two edges per pair.
    pub fn pairs(&self) -> &[[usize; 2]] {
        &self.pairs
    }

    /// sum over the edges i <- j of values (E, k) -> (N, k).
    fn aggregate(&self, values: &Tensor) -> Result<Tensor> {
        self.incidence.matmul(values)
    }
}

/// One EGNN layer with features of width d and messages of width m.
#[derive(Clone, Debug)]
pub struct EgnnLayer {
    edge: Mlp,
    coordinate: Mlp,
    node: Mlp,
}

impl EgnnLayer {
    /// Parameters `edge.*`, `coordinate.*`, `node.*`.
    pub fn new(features: usize, messages: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let silu = Activation::Silu;
        Ok(EgnnLayer {
            edge: Mlp::new(&[2 * features + 2, hidden, messages], silu, vb.pp("edge"))?,
            coordinate: Mlp::new(&[messages, hidden, 1], silu, vb.pp("coordinate"))?,
            node: Mlp::new(
                &[features + messages, hidden, features],
                silu,
                vb.pp("node"),
            )?,
        })
    }

    /// (h', x') for features h (N, d) and positions x (N, 3).
    pub fn forward(&self, graph: &AtomGraph, h: &Tensor, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h_i = h.index_select(&graph.receivers, 0)?;
        let h_j = h.index_select(&graph.senders, 0)?;
        let separation =
            (x.index_select(&graph.receivers, 0)? - x.index_select(&graph.senders, 0)?)?;
        let r2 = separation.sqr()?.sum_keepdim(D::Minus1)?;
        let input = Tensor::cat(&[&h_i, &h_j, &r2, &graph.bonded], D::Minus1)?;
        let messages = Activation::Silu.apply(&self.edge.forward(&input)?)?;
        let weights = self.coordinate.forward(&messages)?;
        let scale = 1.0 / (graph.n_atoms.max(2) - 1) as f64;
        let shift = (graph.aggregate(&separation.broadcast_mul(&weights)?)? * scale)?;
        let x_new = (x + shift)?;
        let summed = graph.aggregate(&messages)?;
        let h_new = (h + self.node.forward(&Tensor::cat(&[h, &summed], D::Minus1)?)?)?;
        Ok((h_new, x_new))
    }
}

/// Input embedding, EGNN layers, and a linear read-out of per-atom bead scores.
#[derive(Clone, Debug)]
pub struct Egnn {
    embedding: Linear,
    layers: Vec<EgnnLayer>,
    readout: Linear,
}

/// Sizes of an [`Egnn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EgnnSizes {
    /// Per-atom input features (e.g. one-hot element and residue type).
    pub inputs: usize,
    pub features: usize,
    pub messages: usize,
    pub hidden: usize,
    pub layers: usize,
    /// Scores per atom: the number of beads.
    pub outputs: usize,
}

impl Egnn {
    /// Parameters `embedding.*`, `layer{k}.*`, `readout.*`.
    pub fn new(sizes: EgnnSizes, vb: VarBuilder) -> Result<Self> {
        let layers = (0..sizes.layers)
            .map(|k| {
                EgnnLayer::new(
                    sizes.features,
                    sizes.messages,
                    sizes.hidden,
                    vb.pp(format!("layer{k}")),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Egnn {
            embedding: linear(sizes.inputs, sizes.features, vb.pp("embedding"))?,
            layers,
            readout: linear(sizes.features, sizes.outputs, vb.pp("readout"))?,
        })
    }

    /// As [`Egnn::new`], with the read-out weights and bias starting at zero: the scores
    /// start at 0 everywhere, so a model that adds them to a prior starts at the prior.
    pub fn with_zero_readout(sizes: EgnnSizes, vb: VarBuilder) -> Result<Self> {
        // Created first, so that `linear` in `new` finds them and keeps their zeros.
        let zero = candle_nn::Init::Const(0.0);
        let readout = vb.pp("readout");
        readout.get_with_hints((sizes.outputs, sizes.features), "weight", zero)?;
        readout.get_with_hints(sizes.outputs, "bias", zero)?;
        Egnn::new(sizes, vb)
    }

    /// Invariant scores (N, outputs) and the equivariant final positions (N, 3) for
    /// input features (N, inputs) and positions x (N, 3).
    pub fn forward(
        &self,
        graph: &AtomGraph,
        features: &Tensor,
        x: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let mut h = self.embedding.forward(features)?;
        let mut x = x.clone();
        for layer in &self.layers {
            (h, x) = layer.forward(graph, &h, &x)?;
        }
        Ok((self.readout.forward(&h)?, x))
    }
}
