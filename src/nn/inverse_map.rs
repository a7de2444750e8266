//! The inverse of the CG map: p(q | z), a density over all internal coordinates q of the
//! atoms given the bead positions z, and the means to sample it and rebuild atoms.
//!
//! Pieces, each saved with the model (so a saved model alone backmaps):
//! - the atoms' Z-matrix ([`ZMatrix`]): q = q(x), x = x(q) (NeRF), log J(q);
//! - the map P (N atoms x n beads, columns summing to 1): z = P^T x;
//! - the beads' own internal coordinates s(z) as a chain 0-1-...-(n-1) (n - 1 bonds,
//!   n - 2 angles, n - 3 torsions): the invariant description of a CG configuration;
//! - the context c(s): bonds and angles standardized with the training data's mean and
//!   standard deviation, each torsion as (cos, sin);
//! - the unit box ([`UnitBox`]) and the flow ([`ConditionalFlow`]) on it.
//!
//! ```text
//! log p(q | z) = log p_flow(u(q) | c(s(z))) - sum_d ln(hi_d - lo_d)
//! ```
//!
//! in units of nm^-1 per bond and rad^-1 per angle or torsion.
//!
//! **Pinned coordinates.** When the map is a hard map whose beads are exactly the
//! Z-matrix's first n atoms in order (a fixed map onto atoms such as the backbone, with
//! those atoms as seeds), the first 3n - 6 entries of q are the beads' own internal
//! coordinates: q_k = s_k. They are then not drawn but copied from s (`pinned` = 3n - 6),
//! the flow models only the rest, and p(q | z) is the density of the rest:
//! log p(q | z) = log p_flow(u(q_rest) | c(s)) - sum_rest ln(hi - lo).

use candle_core::{DType, Device, Result, Tensor};
use rand_core::RngCore;

use super::flow::{ConditionalFlow, FlowConfig, uniform_base};
use super::store::ParameterStore;
use super::unit_box::UnitBox;
use crate::artifact::tensors::NamedTensor;
use crate::geometry::zmatrix::{CoordinateKind, ZEntry, ZMatrix};

/// Prefix of the rows that describe the model rather than train.
const CONFIG: &str = "config.";

/// Mean and standard deviation of the non-torsion CG coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextScaling {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// The Z-matrix of `n` beads as a chain (bead i bonded to i + 1).
pub fn bead_chain(n: usize) -> std::result::Result<ZMatrix, String> {
    let bonds: Vec<[usize; 2]> = (1..n).map(|i| [i - 1, i]).collect();
    let seeds: Vec<usize> = (0..n).collect();
    ZMatrix::from_bonds(n, &bonds, &seeds, &vec![true; n]).map_err(|e| e.to_string())
}

/// z = P^T x for frames of atom positions (flat F x N x 3, P row-major N x n) -> flat
/// F x n x 3.
pub fn bead_positions(assignment: &[f64], n_beads: usize, x: &[f64]) -> Vec<f64> {
    let n_atoms = assignment.len() / n_beads;
    let mut z = Vec::with_capacity(x.len() / n_atoms * n_beads);
    for frame in x.chunks_exact(3 * n_atoms) {
        for b in 0..n_beads {
            let mut p = [0.0; 3];
            for i in 0..n_atoms {
                let w = assignment[i * n_beads + b];
                for k in 0..3 {
                    p[k] += w * frame[3 * i + k];
                }
            }
            z.extend(p);
        }
    }
    z
}

/// The inverse map.
pub struct InverseMap {
    pub zmatrix: ZMatrix,
    pub beads: ZMatrix,
    /// P, row-major N x n.
    pub assignment: Vec<f64>,
    /// Leading entries of q copied from s rather than drawn (see the module docs).
    pub pinned: usize,
    /// The box of the drawn entries q[pinned..].
    pub unit_box: UnitBox,
    pub scaling: ContextScaling,
    pub config: FlowConfig,
    pub flow: ConditionalFlow,
    pub store: ParameterStore,
}

/// 3n - 6 when P is a hard map whose bead b is the atom placed b-th by `zmatrix` and
/// the first n atoms are placed as a chain (each from the one, two and three before), so
/// that q starts with the beads' internal coordinates; else 0.
pub fn pinned_coordinates(zmatrix: &ZMatrix, assignment: &[f64], n_beads: usize) -> usize {
    let entries = zmatrix.entries();
    if n_beads < 3 || entries.len() < n_beads {
        return 0;
    }
    for (b, entry) in entries.iter().take(n_beads).enumerate() {
        let hard = (0..zmatrix.n_atoms()).all(|i| {
            let w = assignment[i * n_beads + b];
            if i == entry.atom { w == 1.0 } else { w == 0.0 }
        });
        let previous = |k: usize| (b >= k).then(|| entries[b - k].atom);
        let chain = entry.bond == previous(1)
            && entry.angle == previous(2)
            && entry.torsion == previous(3)
            && entry.torsion_offset_of.is_none();
        if !hard || !chain {
            return 0;
        }
    }
    3 * n_beads - 6
}

impl InverseMap {
    /// A new (untrained) model; `scaling` from [`InverseMap::fit_scaling`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        zmatrix: ZMatrix,
        n_beads: usize,
        assignment: Vec<f64>,
        pinned: usize,
        unit_box: UnitBox,
        scaling: ContextScaling,
        config: FlowConfig,
        store: ParameterStore,
    ) -> std::result::Result<Self, String> {
        let beads = bead_chain(n_beads)?;
        if assignment.len() != zmatrix.n_atoms() * n_beads {
            return Err(format!(
                "assignment has {} entries, expected {} atoms x {n_beads} beads",
                assignment.len(),
                zmatrix.n_atoms()
            ));
        }
        if pinned + unit_box.dims() != zmatrix.n_dof() {
            return Err(format!(
                "{pinned} pinned and {} drawn coordinates, the Z-matrix has {}",
                unit_box.dims(),
                zmatrix.n_dof()
            ));
        }
        let context = context_width(&beads.kinds());
        let flow = ConditionalFlow::new(
            &config,
            &unit_box.circular,
            context,
            store.var_builder(DType::F64, &Device::Cpu),
        )
        .map_err(|e| e.to_string())?;
        Ok(InverseMap {
            zmatrix,
            beads,
            assignment,
            pinned,
            unit_box,
            scaling,
            config,
            flow,
            store,
        })
    }

    pub fn n_atoms(&self) -> usize {
        self.zmatrix.n_atoms()
    }

    pub fn n_beads(&self) -> usize {
        self.beads.n_atoms()
    }

    /// z = P^T x for frames of atom positions (flat F x N x 3) -> flat F x n x 3.
    pub fn bead_positions(&self, x: &[f64]) -> Vec<f64> {
        bead_positions(&self.assignment, self.n_beads(), x)
    }

    /// s(z): the beads' internal coordinates, flat F x (3n - 6).
    pub fn cg_coordinates(&self, z: &[f64]) -> Vec<f64> {
        self.beads.to_internal_frames(z)
    }

    /// Mean and standard deviation of the bonds and angles among rows of s.
    pub fn fit_scaling(beads: &ZMatrix, s: &[f64]) -> ContextScaling {
        let kinds = beads.kinds();
        let d = kinds.len();
        let rows = (s.len() / d).max(1) as f64;
        let mut mean = vec![0.0; d];
        let mut var = vec![0.0; d];
        for row in s.chunks_exact(d) {
            for k in 0..d {
                mean[k] += row[k] / rows;
            }
        }
        for row in s.chunks_exact(d) {
            for k in 0..d {
                var[k] += (row[k] - mean[k]).powi(2) / rows;
            }
        }
        let std = var.iter().map(|v| v.sqrt().max(1e-6)).collect();
        ContextScaling { mean, std }
    }

    /// c(s) (rows, C) for rows of s.
    pub fn context(&self, s: &[f64]) -> Result<Tensor> {
        let kinds = self.beads.kinds();
        let d = kinds.len();
        let width = context_width(&kinds);
        let rows = s.len() / d.max(1);
        let mut c = Vec::with_capacity(rows * width);
        for row in s.chunks_exact(d) {
            for (k, kind) in kinds.iter().enumerate() {
                match kind {
                    CoordinateKind::Torsion => c.extend([row[k].cos(), row[k].sin()]),
                    _ => c.push((row[k] - self.scaling.mean[k]) / self.scaling.std[k]),
                }
            }
        }
        Tensor::from_vec(c, (rows, width), &Device::Cpu)
    }

    /// The drawn part q[pinned..] of each row of q.
    pub fn drawn(&self, q: &[f64]) -> Vec<f64> {
        let d = self.zmatrix.n_dof();
        q.chunks_exact(d)
            .flat_map(|row| row[self.pinned..].iter().copied())
            .collect()
    }

    /// log p(q | z) (rows,) for rows of q and the matching rows of s, with the graph to
    /// the flow's parameters (the training loss is its negative mean).
    pub fn log_prob(&self, q: &[f64], s: &[f64]) -> Result<Tensor> {
        self.log_prob_of(&self.flow, q, s)
    }

    /// [`InverseMap::log_prob`] without the graph: the same numbers, for evaluation
    /// (a validation loss), freeing every intermediate as it goes.
    pub fn log_prob_frozen(&self, q: &[f64], s: &[f64]) -> Result<Tensor> {
        self.log_prob_of(&self.flow.frozen(), q, s)
    }

    fn log_prob_of(&self, flow: &ConditionalFlow, q: &[f64], s: &[f64]) -> Result<Tensor> {
        let d = self.unit_box.dims();
        let drawn = self.drawn(q);
        let rows = drawn.len() / d;
        let u = Tensor::from_vec(self.unit_box.to_unit(&drawn), (rows, d), &Device::Cpu)?;
        let log_p = flow.log_prob(&u, &self.context(s)?)?;
        log_p - self.unit_box.log_volume()
    }

    /// One draw q ~ p(q | z) per row of s, and log p(q | z) of each draw evaluated by the
    /// flow's density pass at the returned q.
    pub fn sample(&self, s: &[f64], rng: &mut impl RngCore) -> Result<(Vec<f64>, Vec<f64>)> {
        self.sample_scaled(s, 1.0, rng)
    }

    /// Like [`InverseMap::sample`], from a base concentrated toward the middle of the
    /// cube on the bounded (bond and angle) coordinates: b = sigmoid(scale logit(w)),
    /// w uniform, so scale = 1 is the flow itself and scale < 1 draws each bond and
    /// angle closer to its conditional median (torsions, often multimodal, keep the
    /// uniform base). The returned log-density is that of the draws' actual
    /// distribution, log p_flow(q | z) + sum_bounded ln p_B(b_d) with
    ///
    /// ```text
    /// ln p_B(b) = -ln scale + ln sig(t) + ln sig(-t) - ln sig(v) - ln sig(-v),
    /// v = logit(b), t = v / scale,
    /// ```
    ///
    /// the density of b when v is logistic with scale `scale`, so importance weights
    /// against it stay exact.
    pub fn sample_scaled(
        &self,
        s: &[f64],
        scale: f64,
        rng: &mut impl RngCore,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let d = self.unit_box.dims();
        let c = self.beads.n_dof();
        let context = self.context(s)?;
        let rows = context.dim(0)?;
        let mut base = uniform_base(rows, d, rng)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let mut log_base = vec![0.0; rows];
        if scale != 1.0 {
            for (k, row) in base.chunks_exact_mut(d).enumerate() {
                for (j, b) in row.iter_mut().enumerate() {
                    if self.unit_box.circular[j] {
                        continue;
                    }
                    let w = b.clamp(1e-300, 1.0 - 1e-16);
                    let v = scale * (w / (1.0 - w)).ln();
                    *b = sigmoid(v);
                    let t = v / scale;
                    log_base[k] += -scale.ln() + log_sigmoid(t) + log_sigmoid(-t)
                        - log_sigmoid(v)
                        - log_sigmoid(-v);
                }
            }
        }
        let base = Tensor::from_vec(base, (rows, d), &Device::Cpu)?;
        let u = self.flow.sample(&base, &context)?;
        let drawn = self.unit_box.from_unit(&u.flatten_all()?.to_vec1::<f64>()?);
        let mut q = Vec::with_capacity(rows * (self.pinned + d));
        for (k, row) in drawn.chunks_exact(d).enumerate() {
            q.extend_from_slice(&s[c * k..c * k + self.pinned]);
            q.extend_from_slice(row);
        }
        let log_p = self.log_prob_frozen(&q, s)?.to_vec1::<f64>()?;
        let log_p = log_p.iter().zip(&log_base).map(|(a, b)| a + b).collect();
        Ok((q, log_p))
    }

    /// The model as named tensors: the flow's weights and `config.*` rows (flow
    /// architecture, Z-matrix, P, box, context scaling; `levels` only when not 0).
    pub fn save(&self) -> Result<Vec<NamedTensor>> {
        let mut tensors = self.store.to_tensors()?;
        let idx = |v: Option<usize>| v.map_or(-1.0, |i| i as f64);
        let e = self.zmatrix.entries();
        let column = |f: &dyn Fn(&ZEntry) -> f64| e.iter().map(f).collect::<Vec<f64>>();
        let hidden: Vec<f64> = self.config.hidden.iter().map(|&h| h as f64).collect();
        let circular: Vec<f64> = self
            .unit_box
            .circular
            .iter()
            .map(|&c| if c { 1.0 } else { 0.0 })
            .collect();
        // NaN: no centre (not a narrow torsion).
        let centre: Vec<f64> = self
            .unit_box
            .centre
            .iter()
            .map(|c| c.unwrap_or(f64::NAN))
            .collect();
        let (n, b) = (self.n_atoms(), self.n_beads());
        tensors.extend([
            row("layers", vec![1], vec![self.config.layers as f64]),
            row("hidden", vec![hidden.len()], hidden),
            row("bins", vec![1], vec![self.config.bins as f64]),
            row("pinned", vec![1], vec![self.pinned as f64]),
            row("zmatrix.atom", vec![n], column(&|z| z.atom as f64)),
            row("zmatrix.bond", vec![n], column(&|z| idx(z.bond))),
            row("zmatrix.angle", vec![n], column(&|z| idx(z.angle))),
            row("zmatrix.torsion", vec![n], column(&|z| idx(z.torsion))),
            row(
                "zmatrix.offset_of",
                vec![n],
                column(&|z| idx(z.torsion_offset_of)),
            ),
            row("assignment", vec![n, b], self.assignment.clone()),
            row(
                "box.lo",
                vec![self.unit_box.dims()],
                self.unit_box.lo.clone(),
            ),
            row(
                "box.hi",
                vec![self.unit_box.dims()],
                self.unit_box.hi.clone(),
            ),
            row("box.circular", vec![self.unit_box.dims()], circular),
            row("box.centre", vec![self.unit_box.dims()], centre),
            row(
                "context.mean",
                vec![self.scaling.mean.len()],
                self.scaling.mean.clone(),
            ),
            row(
                "context.std",
                vec![self.scaling.std.len()],
                self.scaling.std.clone(),
            ),
        ]);
        if self.config.levels != 0 {
            // Written only when set, so that fully autoregressive models keep their bytes.
            tensors.push(row("levels", vec![1], vec![self.config.levels as f64]));
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tensors)
    }

    /// A model saved by [`InverseMap::save`], for drawing and evaluating: its flow is
    /// frozen (no graph to the weights, intermediates freed as it goes).
    pub fn load(tensors: &[NamedTensor]) -> std::result::Result<InverseMap, String> {
        let mut model = Self::load_trainable(tensors)?;
        model.flow = model.flow.frozen();
        Ok(model)
    }

    /// A model saved by [`InverseMap::save`] whose flow is tied to its store's variables,
    /// to be trained further (`refine_flow`).
    pub fn load_trainable(tensors: &[NamedTensor]) -> std::result::Result<InverseMap, String> {
        let get = |name: &str| -> std::result::Result<&NamedTensor, String> {
            tensors
                .iter()
                .find(|t| t.name == format!("{CONFIG}{name}"))
                .ok_or_else(|| format!("saved inverse map has no `{CONFIG}{name}` row"))
        };
        let values = |name: &str| get(name).map(|t| t.values.clone());
        let one = |name: &str| -> std::result::Result<usize, String> {
            Ok(*values(name)?
                .first()
                .ok_or(format!("`{CONFIG}{name}` is empty"))? as usize)
        };
        let config = FlowConfig {
            layers: one("layers")?,
            hidden: values("hidden")?.iter().map(|&h| h as usize).collect(),
            bins: one("bins")?,
            levels: if get("levels").is_ok() {
                one("levels")?
            } else {
                0
            },
        };
        let opt = |v: f64| (v >= 0.0).then_some(v as usize);
        let (atom, bond, angle, torsion, offset) = (
            values("zmatrix.atom")?,
            values("zmatrix.bond")?,
            values("zmatrix.angle")?,
            values("zmatrix.torsion")?,
            values("zmatrix.offset_of")?,
        );
        let entries: Vec<ZEntry> = (0..atom.len())
            .map(|k| ZEntry {
                atom: atom[k] as usize,
                bond: opt(bond[k]),
                angle: opt(angle[k]),
                torsion: opt(torsion[k]),
                torsion_offset_of: opt(offset[k]),
            })
            .collect();
        let zmatrix = ZMatrix::from_entries(entries).map_err(|e| e.to_string())?;
        let p = get("assignment")?;
        let n_beads = *p
            .shape
            .get(1)
            .ok_or("`config.assignment` is not a matrix")?;
        let unit_box = UnitBox {
            lo: values("box.lo")?,
            hi: values("box.hi")?,
            circular: values("box.circular")?.iter().map(|&c| c != 0.0).collect(),
            centre: values("box.centre")?
                .iter()
                .map(|&c| (!c.is_nan()).then_some(c))
                .collect(),
        };
        let scaling = ContextScaling {
            mean: values("context.mean")?,
            std: values("context.std")?,
        };
        let store = ParameterStore::new([0; 32]);
        let model = InverseMap::new(
            zmatrix,
            n_beads,
            p.values.clone(),
            one("pinned")?,
            unit_box,
            scaling,
            config,
            store,
        )?;
        let weights: Vec<NamedTensor> = tensors
            .iter()
            .filter(|t| !t.name.starts_with(CONFIG))
            .cloned()
            .collect();
        model.store.load(&weights).map_err(|e| e.to_string())?;
        Ok(model)
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// ln sigmoid(x) = -ln(1 + e^-x), stable for large |x|.
fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

fn row(name: &str, shape: Vec<usize>, values: Vec<f64>) -> NamedTensor {
    NamedTensor {
        name: format!("{CONFIG}{name}"),
        shape,
        values,
    }
}

/// Context width: one per bond or angle, two per torsion.
fn context_width(kinds: &[CoordinateKind]) -> usize {
    kinds
        .iter()
        .map(|k| match k {
            CoordinateKind::Torsion => 2,
            _ => 1,
        })
        .sum()
}
