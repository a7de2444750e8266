//! Energy training of the inverse map: the conditional reverse Kullback-Leibler
//! divergence of p(q | z) from the Boltzmann conditional, estimated from the flow's own
//! reparameterized draws and the FG force field's energies and forces.
//!
//! For CG coordinates s (the beads' internal coordinates) the target conditional is
//! pi(q | s) = exp(-beta U(x(q))) J(q) / Z(s) over the drawn coordinates (the pinned
//! ones are s itself). With u = T^-1(v; s), v uniform, q = q(u) (the unit box) and
//!
//! ```text
//! l(q) = beta U(x(q)) - ln J(q) + ln p(q | s)          (nats; = -ln w, w the weight)
//! KL(p(. | s) || pi(. | s)) = E_{q ~ p(. | s)} l(q) + ln Z(s)
//! ```
//!
//! ln Z(s) does not depend on the flow, so E l is the loss and needs no free energy. Its
//! gradient goes through the draw (reparameterization). The energy enters through its
//! forces F_a = -dU/dx_a, held fixed in a surrogate whose gradient is beta dU/dtheta:
//! beta sum_a (-F_a) . x_a(q(u(theta))), with x(q) the NeRF as a candle graph
//! ([`crate::nn::zmatrix_graph`]). ln p is evaluated by the frozen flow at the draw
//! ("sticking the landing", Roeder et al. 2017: the score term, zero in expectation,
//! is left out, and the gradient vanishes draw by draw where p equals the target).
//!
//! Stabilisers, as Boltzmann generators use them (Noe et al. 2019; the settings in
//! `docs/studies/alanine_dipeptide.md`): above `energy_cut` kT the energy is taken as
//! cut + ln(1 + beta U - cut) (its force scaled by 1 / (1 + beta U - cut)); the
//! `drop_worst` draws of a batch with the largest l, and any with a non-finite energy,
//! are left out of the loss.

use candle_core::{DType, Device, Result, Tensor};

use super::inverse_map::InverseMap;
use super::zmatrix_graph;

/// FG energies (kJ/mol) and forces (kJ/mol/nm, flat N x 3) of rows of atom positions
/// (flat rows x N x 3, nm).
pub type EnergyFn<'a> = dyn Fn(&[f64]) -> Vec<(f64, Vec<f64>)> + Sync + 'a;

/// The settings of the energy loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EnergyLoss {
    /// 1 / (k_B T), mol/kJ.
    pub beta: f64,
    /// Reduced energy (kT) above which energies are taken in log scale.
    pub energy_cut: f64,
    /// Draws of a batch with the largest l left out of the loss.
    pub drop_worst: usize,
}

/// The draws of one batch: the surrogate loss (its gradient is that of the mean l over
/// the kept draws, with the energy in log scale above the cut) and each draw's l as is
/// (nats, the energy not cut; infinite where it was not finite), by which the worst are
/// ranked.
pub struct EnergyBatch {
    pub loss: Tensor,
    pub losses: Vec<f64>,
    pub kept: usize,
}

/// Full q rows (pinned entries from s, the rest from the unit box) as values.
fn full_rows(model: &InverseMap, s: &[f64], u: &[f64]) -> Vec<f64> {
    let d = model.unit_box.dims();
    let c = model.beads.n_dof();
    let drawn = model.unit_box.from_unit(u);
    let mut q = Vec::with_capacity(drawn.len() / d.max(1) * (model.pinned + d));
    for (k, row) in drawn.chunks_exact(d).enumerate() {
        q.extend_from_slice(&s[c * k..c * k + model.pinned]);
        q.extend_from_slice(row);
    }
    q
}

/// q (rows, 3N - 6) as a graph of u: pinned columns constant, the rest the box's affine
/// map (a narrow torsion's centre added without wrapping: only its cosine and sine enter
/// the NeRF).
fn full_graph(model: &InverseMap, s: &[f64], u: &Tensor) -> Result<Tensor> {
    let rows = u.dim(0)?;
    let b = &model.unit_box;
    let span: Vec<f64> = b.lo.iter().zip(&b.hi).map(|(lo, hi)| hi - lo).collect();
    let offset: Vec<f64> = (0..b.dims())
        .map(|k| b.lo[k] + b.centre[k].unwrap_or(0.0))
        .collect();
    let dims = b.dims();
    let span = Tensor::from_vec(span, (1, dims), &Device::Cpu)?;
    let offset = Tensor::from_vec(offset, (1, dims), &Device::Cpu)?;
    let drawn = u.broadcast_mul(&span)?.broadcast_add(&offset)?;
    if model.pinned == 0 {
        return Ok(drawn);
    }
    let c = model.beads.n_dof();
    let pinned: Vec<f64> = s
        .chunks_exact(c)
        .flat_map(|row| row[..model.pinned].iter().copied())
        .collect();
    let pinned = Tensor::from_vec(pinned, (rows, model.pinned), &Device::Cpu)?;
    Tensor::cat(&[&pinned, &drawn], 1)
}

/// One draw per row of s (flat rows x (3n - 6)) from `base` (rows, D) with the graph to
/// the flow's parameters, its energies from `energy`, and the surrogate loss.
pub fn energy_batch(
    model: &InverseMap,
    s: &[f64],
    base: &Tensor,
    settings: EnergyLoss,
    energy: &EnergyFn<'_>,
) -> Result<EnergyBatch> {
    let rows = base.dim(0)?;
    let context = model.context(s)?;
    let u = model.flow.sample_with_graph(base, &context)?;
    let u_values = u.flatten_all()?.to_vec1::<f64>()?;
    let q = full_rows(model, s, &u_values);
    let x = model.zmatrix.to_cartesian_frames(&q);
    let evaluated = energy(&x);
    let d = model.zmatrix.n_dof();
    // ln p at the draw, through u only (frozen parameters).
    let log_p = (model.flow.frozen().log_prob(&u, &context)? - model.unit_box.log_volume())?;
    let log_p_values = log_p.to_vec1::<f64>()?;
    let mut losses = Vec::with_capacity(rows);
    for k in 0..rows {
        let beta_u = settings.beta * evaluated[k].0;
        let log_j = model.zmatrix.log_jacobian(&q[k * d..(k + 1) * d]);
        losses.push(if beta_u.is_finite() {
            beta_u - log_j + log_p_values[k]
        } else {
            f64::INFINITY
        });
    }
    // Keep all but the drop_worst largest losses (and the non-finite ones).
    let mut order: Vec<usize> = (0..rows).collect();
    order.sort_by(|&a, &b| losses[a].total_cmp(&losses[b]).then(a.cmp(&b)));
    let mut keep = vec![false; rows];
    for &k in order.iter().take(rows.saturating_sub(settings.drop_worst)) {
        keep[k] = losses[k].is_finite();
    }
    let kept = keep.iter().filter(|&&k| k).count();
    let n_atoms = model.zmatrix.n_atoms();
    // Per row: -beta f F (f the lin-log factor), zero for rows left out.
    let mut coefficients = vec![0.0; rows * 3 * n_atoms];
    let mut mask = vec![0.0; rows];
    for k in 0..rows {
        if !keep[k] {
            continue;
        }
        let beta_u = settings.beta * evaluated[k].0;
        let factor = if beta_u > settings.energy_cut {
            1.0 / (1.0 + beta_u - settings.energy_cut)
        } else {
            1.0
        };
        let scale = -settings.beta * factor / kept as f64;
        for (c, f) in coefficients[k * 3 * n_atoms..(k + 1) * 3 * n_atoms]
            .iter_mut()
            .zip(&evaluated[k].1)
        {
            *c = scale * f;
        }
        mask[k] = 1.0 / kept as f64;
    }
    let q_graph = full_graph(model, s, &u)?;
    let positions = zmatrix_graph::positions(&model.zmatrix, &q_graph)?;
    let coefficients = Tensor::from_vec(coefficients, (rows, n_atoms, 3), &Device::Cpu)?;
    let mask = Tensor::from_vec(mask, rows, &Device::Cpu)?;
    let energy_term = (positions * coefficients)?.sum_all()?;
    let rest =
        ((log_p - zmatrix_graph::log_jacobian(&model.zmatrix, &q_graph)?)? * mask)?.sum_all()?;
    let loss = if kept == 0 {
        Tensor::zeros((), DType::F64, &Device::Cpu)?
    } else {
        (energy_term + rest)?
    };
    Ok(EnergyBatch { loss, losses, kept })
}

/// ln w = -l for draws of the frozen flow from `base`, one per row of s (evaluation: no
/// graph). -inf where the energy is not finite.
pub fn log_weights(
    model: &InverseMap,
    s: &[f64],
    base: &Tensor,
    beta: f64,
    energy: &EnergyFn<'_>,
) -> Result<Vec<f64>> {
    let context = model.context(s)?;
    let frozen = model.flow.frozen();
    let u = frozen.sample(base, &context)?;
    let log_p = (frozen.log_prob(&u, &context)? - model.unit_box.log_volume())?.to_vec1::<f64>()?;
    let q = full_rows(model, s, &u.flatten_all()?.to_vec1::<f64>()?);
    let x = model.zmatrix.to_cartesian_frames(&q);
    let d = model.zmatrix.n_dof();
    Ok(energy(&x)
        .iter()
        .enumerate()
        .map(|(k, (e, _))| {
            let log_j = model.zmatrix.log_jacobian(&q[k * d..(k + 1) * d]);
            let lw = -beta * e + log_j - log_p[k];
            if lw.is_finite() {
                lw
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect())
}

/// Kish ESS of weights given as logs, as a fraction of their number (0 when none is
/// finite).
pub fn ess_fraction(log_w: &[f64]) -> f64 {
    let top = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return 0.0;
    }
    let w: Vec<f64> = log_w.iter().map(|l| (l - top).exp()).collect();
    let sum: f64 = w.iter().sum();
    let sq: f64 = w.iter().map(|v| v * v).sum();
    sum * sum / sq / log_w.len() as f64
}
