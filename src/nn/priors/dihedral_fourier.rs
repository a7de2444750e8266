//! A Fourier prior on each dihedral psi_q of consecutive beads (q, q+1, q+2, q+3), the
//! Boltzmann inversion of its marginal distribution:
//!
//! ```text
//! U = sum_q sum_{m=1..M} a_qm cos(m psi_q) + b_qm sin(m psi_q)                  (kJ/mol)
//! F_k = -k_B T ln p_k on 36 bins of (-pi, pi] (counts plus one, normalized)
//! a_m = (2/36) sum_k F_k cos(m psi_k),   b_m likewise with sin
//! ```
//!
//! (the least-squares Fourier fit on a uniform grid; the constant is dropped). On
//! alanine dipeptide's backbone beads it brings the CG dihedrals and basin populations
//! close to the FG ones (dihedral JS 0.16-0.22 to 0.05-0.07). Coefficients of dihedral q:
//! (a_q1, b_q1, ..., a_qM, b_qM). Forces through the dihedral's gradient
//! ([`Quadruple`]); a degenerate dihedral (three collinear beads) adds nothing.

use std::any::Any;
use std::sync::Arc;

use super::{BeadFrames, Prior, PriorError, PriorKind, SavedRows, vector_row};
use crate::artifact::tensors::NamedTensor;
use crate::geometry::dihedral::Quadruple;

#[derive(Clone, Debug, PartialEq)]
pub struct DihedralFourier {
    /// (a_q1, b_q1, ..., a_qM, b_qM) for q = 0, 1, ...
    pub coefficients: Vec<f64>,
}

pub const KIND: PriorKind = PriorKind {
    name: "dihedral_fourier",
    load,
    absent_rows: Vec::new,
};

const ROW: &str = "dihedral_fourier";

impl DihedralFourier {
    /// Order `order` fit over `frames` at k_B T = `kt` (kJ/mol); None for fewer than 4
    /// beads.
    pub fn fit(data: &BeadFrames<'_>, frames: &[usize], kt: f64, order: usize) -> Option<Self> {
        const BINS: usize = 36;
        if data.beads < 4 || order == 0 {
            return None;
        }
        let width = 2.0 * std::f64::consts::PI / BINS as f64;
        let mut out = Vec::new();
        for q in 0..data.beads - 3 {
            let mut counts = [1.0f64; BINS];
            for &t in frames {
                let psi = data.dihedral(t, q);
                if psi.is_finite() {
                    let k = ((psi + std::f64::consts::PI) / width) as usize;
                    counts[k.min(BINS - 1)] += 1.0;
                }
            }
            let total: f64 = counts.iter().sum();
            let free: Vec<f64> = counts.iter().map(|c| -kt * (c / total).ln()).collect();
            for m in 1..=order {
                let (mut a, mut b) = (0.0, 0.0);
                for (k, f) in free.iter().enumerate() {
                    let psi = -std::f64::consts::PI + (k as f64 + 0.5) * width;
                    a += f * (m as f64 * psi).cos();
                    b += f * (m as f64 * psi).sin();
                }
                out.push(2.0 * a / BINS as f64);
                out.push(2.0 * b / BINS as f64);
            }
        }
        Some(DihedralFourier { coefficients: out })
    }
}

fn load(rows: &SavedRows<'_>, beads: usize) -> Result<Option<Arc<dyn Prior>>, PriorError> {
    let coefficients = rows.vector(ROW);
    if coefficients.is_empty() {
        return Ok(None);
    }
    let quads = beads.saturating_sub(3);
    if quads == 0 || !coefficients.len().is_multiple_of(2 * quads) {
        return Err(PriorError(format!(
            "saved potential has {} dihedral prior coefficients for {quads} bead quadruples \
             (expected (a_m, b_m) pairs for each)",
            coefficients.len()
        )));
    }
    Ok(Some(Arc::new(DihedralFourier { coefficients })))
}

/// U of the module docs with `coefficients` at z (nm); returns U (kJ/mol) and adds
/// -dU/dz to `forces`.
pub fn fourier_dihedrals(z: &[[f64; 3]], coefficients: &[f64], forces: &mut [[f64; 3]]) -> f64 {
    let quads = z.len().saturating_sub(3);
    if quads == 0 || coefficients.is_empty() {
        return 0.0;
    }
    let order = coefficients.len() / (2 * quads);
    let mut energy = 0.0;
    for (q, c) in coefficients.chunks_exact(2 * order).enumerate() {
        let quad = Quadruple::new(z, q);
        let (cos, sin) = quad.cos_sin();
        if !(cos.is_finite() && sin.is_finite()) {
            continue;
        }
        let (mut cos_m, mut sin_m) = (1.0, 0.0);
        let mut de_dpsi = 0.0;
        for m in 0..order {
            (cos_m, sin_m) = (cos_m * cos - sin_m * sin, sin_m * cos + cos_m * sin);
            let (a, b) = (c[2 * m], c[2 * m + 1]);
            energy += a * cos_m + b * sin_m;
            de_dpsi += (m + 1) as f64 * (b * cos_m - a * sin_m);
        }
        quad.add_forces(de_dpsi, forces);
    }
    energy
}

impl Prior for DihedralFourier {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn on_positions(&self, z: &[[f64; 3]], energy: &mut f64, forces: &mut [[f64; 3]]) {
        *energy += fourier_dihedrals(z, &self.coefficients, forces);
    }

    fn save(&self) -> Vec<NamedTensor> {
        vec![vector_row(ROW, &self.coefficients)]
    }

    fn describe(&self) -> String {
        format!(
            "dihedral Fourier prior, {} coefficients",
            self.coefficients.len()
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
