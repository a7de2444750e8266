//! The dihedral-pair prior of the CG potential: a smoothed Boltzmann inversion of the
//! joint distribution of each pair of consecutive bead dihedrals.
//!
//! One-dimensional priors on each dihedral psi_q reproduce its marginal but not how
//! consecutive dihedrals go together: on alanine dipeptide's backbone beads (psi_0 and
//! psi_1 are the atoms' phi and psi) a product of marginals puts phi > 0 with psi > 0
//! (alpha_L), where the all-atom force field in vacuum has almost nothing, instead of
//! with psi < 0 (C7ax). This prior is the joint free energy of (psi_q, psi_(q+1)):
//!
//! ```text
//! p_q(a, b) = sum_{m,n=-M..M} A_qmn cos(m a + n b) + B_qmn sin(m a + n b)      (rad^-2)
//! A_qmn = g_m g_n / (4 pi^2) <cos(m psi_q + n psi_(q+1))>_frames,   B_qmn with sin
//! g_m   = exp(-m^2 sigma^2 / 2),   sigma = sqrt(8) / M                          (rad)
//! U     = -kT sum_{q=0..Q-2} ln(max(p_q(psi_q, psi_(q+1)), 0) + rho)
//!         +kT sum_{q=1..Q-2} ln(max(r_q(psi_q), 0) + 2 pi rho)                  (kJ/mol)
//! r_q(a) = 2 pi sum_{m=-M..M} A_qm0 cos(m a) + B_qm0 sin(m a)
//! ```
//!
//! p_q is the kernel density estimate of the frames' (psi_q, psi_(q+1)) with a wrapped
//! Gaussian kernel of width sigma on the torus, written exactly as its Fourier series
//! (the empirical characteristic function damped by the kernel's coefficients g_m) and
//! cut at order M, where g_M = e^-4; the floor rho (a density, rad^-2) keeps the free
//! energy finite where the frames never go, and so sets the height of the barriers the
//! CG chains must cross. With Q dihedrals in a chain the pair terms count each interior
//! dihedral twice; the second sum takes its marginal r_q (the b-integral of p_q, the
//! same for both pairs it belongs to) off once: the joint density of a Markov chain,
//! p(psi_0..psi_(Q-1)) = prod_q p(psi_q, psi_(q+1)) / prod_(interior) p(psi_q).
//!
//! Coefficients of pair q: (A_qmn, B_qmn) interleaved for m = -M..M (outer), n = -M..M
//! (inner), so (2M + 1)^2 pairs of numbers per dihedral pair. Forces: -dU/dpsi through
//! the dihedrals' gradients (Blondel & Karplus, as the torsion term). Units: nm, rad,
//! kJ/mol.

use std::any::Any;
use std::sync::Arc;

use super::{BeadFrames, Prior, PriorError, PriorKind, SavedRows, scalar_row, vector_row};
use crate::artifact::tensors::NamedTensor;
use crate::geometry::dihedral::Quadruple;

/// Most dihedrals in a chain (scratch space on the stack).
pub const MAX_DIHEDRALS: usize = 64;

/// Highest Fourier order (scratch space on the stack: an evaluation allocates nothing).
pub const MAX_ORDER: usize = 24;

/// The Fourier order M of `coefficients` for `dihedrals` dihedrals, or None when the
/// length is not 2 (2M + 1)^2 per consecutive pair, M > [`MAX_ORDER`] or the chain has
/// more than [`MAX_DIHEDRALS`] dihedrals.
pub fn order(coefficients: usize, dihedrals: usize) -> Option<usize> {
    if !(2..=MAX_DIHEDRALS).contains(&dihedrals)
        || coefficients == 0
        || !coefficients.is_multiple_of(2 * (dihedrals - 1))
    {
        return None;
    }
    let per_pair = coefficients / (2 * (dihedrals - 1));
    let side = (per_pair as f64).sqrt().round() as usize;
    let order = (side - 1) / 2;
    (side * side == per_pair && side % 2 == 1 && order <= MAX_ORDER).then_some(order)
}

/// The kernel width sigma (rad) of order M: g_M = exp(-M^2 sigma^2 / 2) = e^-4.
pub fn kernel_width(order: usize) -> f64 {
    8f64.sqrt() / order as f64
}

/// Coefficients of one dihedral pair from its (a, b) samples (rad; non-finite ones
/// skipped), layout as in the module docs. None when no sample is finite.
pub fn fit_pair(samples: &[(f64, f64)], order: usize) -> Option<Vec<f64>> {
    let finite: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    if finite.is_empty() {
        return None;
    }
    let m_max = order as i64;
    let sigma = kernel_width(order);
    let g = |m: i64| (-0.5 * (m * m) as f64 * sigma * sigma).exp();
    let norm = 1.0 / (4.0 * std::f64::consts::PI * std::f64::consts::PI * finite.len() as f64);
    let mut out = Vec::with_capacity(2 * (2 * order + 1).pow(2));
    for m in -m_max..=m_max {
        for n in -m_max..=m_max {
            let (mut c, mut s) = (0.0, 0.0);
            for &(a, b) in &finite {
                let theta = m as f64 * a + n as f64 * b;
                c += theta.cos();
                s += theta.sin();
            }
            let scale = g(m) * g(n) * norm;
            out.push(scale * c);
            out.push(scale * s);
        }
    }
    Some(out)
}

/// e^{i k x} for k = 0..=M from (cos x, sin x), as (cos, sin) pairs.
fn powers(cos: f64, sin: f64, order: usize, out: &mut [(f64, f64)]) {
    out[0] = (1.0, 0.0);
    for k in 1..=order {
        let (c, s) = out[k - 1];
        out[k] = (c * cos - s * sin, s * cos + c * sin);
    }
}

/// e^{i k x} for k = -M..=M from the powers 0..=M.
#[inline(always)]
fn power(p: &[(f64, f64)], k: i64) -> (f64, f64) {
    let (c, s) = p[k.unsigned_abs() as usize];
    if k < 0 { (c, -s) } else { (c, s) }
}

/// p(a, b), dp/da, dp/db of one pair's coefficients at the powers of a and b.
fn density(coefficients: &[f64], order: usize, pa: &[(f64, f64)], pb: &[(f64, f64)]) -> [f64; 3] {
    let m_max = order as i64;
    let side = 2 * order + 1;
    let (mut p, mut dp_da, mut dp_db) = (0.0, 0.0, 0.0);
    for (row, m) in (-m_max..=m_max).enumerate() {
        // w = sum_n (A - iB) e^{inb}, v = sum_n n (A - iB) e^{inb}
        let (mut wr, mut wi, mut vr, mut vi) = (0.0, 0.0, 0.0, 0.0);
        let c = &coefficients[2 * side * row..2 * side * (row + 1)];
        for (col, n) in (-m_max..=m_max).enumerate() {
            let (a, b) = (c[2 * col], c[2 * col + 1]);
            let (cn, sn) = power(pb, n);
            let (re, im) = (a * cn + b * sn, a * sn - b * cn);
            wr += re;
            wi += im;
            vr += n as f64 * re;
            vi += n as f64 * im;
        }
        // Re(w e^{ima}), Re(i m w e^{ima}), Re(i v e^{ima}).
        let (cm, sm) = power(pa, m);
        let (re_w, im_w) = (wr * cm - wi * sm, wr * sm + wi * cm);
        p += re_w;
        dp_da -= m as f64 * im_w;
        dp_db -= vr * sm + vi * cm;
    }
    [p, dp_da, dp_db]
}

/// r(a) = 2 pi sum_m A_m0 cos(m a) + B_m0 sin(m a) and dr/da, the b-marginal of a pair.
fn marginal(coefficients: &[f64], order: usize, pa: &[(f64, f64)]) -> [f64; 2] {
    let m_max = order as i64;
    let side = 2 * order + 1;
    let (mut r, mut dr) = (0.0, 0.0);
    for (row, m) in (-m_max..=m_max).enumerate() {
        let k = 2 * (side * row + order);
        let (a, b) = (coefficients[k], coefficients[k + 1]);
        let (cm, sm) = power(pa, m);
        r += a * cm + b * sm;
        dr += m as f64 * (b * cm - a * sm);
    }
    let tau = 2.0 * std::f64::consts::PI;
    [tau * r, tau * dr]
}

/// -kT ln(max(p, 0) + floor) and its derivative in p.
#[inline(always)]
fn free_energy(p: f64, kt: f64, floor: f64) -> (f64, f64) {
    let clipped = p.max(0.0) + floor;
    let slope = if p > 0.0 { -kt / clipped } else { 0.0 };
    (-kt * clipped.ln(), slope)
}

/// U of the module docs for bead positions `z` (nm), adding -dU/dz to `forces`
/// (kJ/mol/nm); returns U (kJ/mol). `floor` is rho (rad^-2). Nothing for fewer than 5
/// beads or empty coefficients; a degenerate dihedral (three collinear beads) makes its
/// pairs contribute nothing. Panics if the coefficients do not fit the chain
/// ([`order`] is None) or the chain has more than 64 dihedrals.
pub fn dihedral_pairs(
    z: &[[f64; 3]],
    coefficients: &[f64],
    kt: f64,
    floor: f64,
    forces: &mut [[f64; 3]],
) -> f64 {
    let n_dihedrals = z.len().saturating_sub(3);
    if n_dihedrals < 2 || coefficients.is_empty() {
        return 0.0;
    }
    assert!(
        n_dihedrals <= MAX_DIHEDRALS,
        "at most {MAX_DIHEDRALS} dihedrals"
    );
    let order = order(coefficients.len(), n_dihedrals)
        .expect("dihedral-pair coefficients: 2 (2M + 1)^2 per consecutive dihedral pair");
    let per_pair = 2 * (2 * order + 1).pow(2);
    let mut cos_sin = [(f64::NAN, f64::NAN); MAX_DIHEDRALS];
    for (q, cs) in cos_sin.iter_mut().enumerate().take(n_dihedrals) {
        *cs = Quadruple::new(z, q).cos_sin();
    }
    let finite = |q: usize| cos_sin[q].0.is_finite() && cos_sin[q].1.is_finite();
    let mut de_dpsi = [0.0; MAX_DIHEDRALS];
    let mut pa = [(0.0, 0.0); MAX_ORDER + 1];
    let mut pb = [(0.0, 0.0); MAX_ORDER + 1];
    let mut energy = 0.0;
    for (q, c) in coefficients.chunks_exact(per_pair).enumerate() {
        if !(finite(q) && finite(q + 1)) {
            continue;
        }
        powers(cos_sin[q].0, cos_sin[q].1, order, &mut pa);
        powers(cos_sin[q + 1].0, cos_sin[q + 1].1, order, &mut pb);
        let [p, dp_da, dp_db] = density(c, order, &pa, &pb);
        let (e, de_dp) = free_energy(p, kt, floor);
        energy += e;
        de_dpsi[q] += de_dp * dp_da;
        de_dpsi[q + 1] += de_dp * dp_db;
        // The interior dihedral q (first of this pair, second of the one before) had
        // its marginal counted twice: take it off once.
        if q > 0 && finite(q - 1) {
            let [r, dr] = marginal(c, order, &pa);
            let (e, de_dr) = free_energy(r, kt, 2.0 * std::f64::consts::PI * floor);
            energy -= e;
            de_dpsi[q] -= de_dr * dr;
        }
    }
    for (q, &d) in de_dpsi.iter().enumerate().take(n_dihedrals) {
        if d != 0.0 {
            Quadruple::new(z, q).add_forces(d, forces);
        }
    }
    energy
}

/// The prior of the module docs: coefficients of each consecutive dihedral pair, kT and
/// the floor rho.
#[derive(Clone, Debug, PartialEq)]
pub struct DihedralPairs {
    pub coefficients: Vec<f64>,
    /// kJ/mol.
    pub kt: f64,
    /// rad^-2.
    pub floor: f64,
}

pub const KIND: PriorKind = PriorKind {
    name: "dihedral_pairs",
    load,
    absent_rows: Vec::new,
};

impl DihedralPairs {
    /// Order `order` fit over `frames` at k_B T = `kt` (kJ/mol), with the floor
    /// `floor_fraction` of the uniform density 1 / (4 pi^2); None for fewer than 5 beads.
    pub fn fit(
        data: &BeadFrames<'_>,
        frames: &[usize],
        kt: f64,
        order: usize,
        floor_fraction: f64,
    ) -> Result<Option<Self>, PriorError> {
        if order == 0 || data.beads < 5 {
            return Ok(None);
        }
        let dihedrals = data.beads - 3;
        if dihedrals > MAX_DIHEDRALS {
            return Err(PriorError(format!(
                "{} beads have {dihedrals} dihedrals; the dihedral-pair prior takes at most \
                 {MAX_DIHEDRALS} (set dihedral_pair_order: 0)",
                data.beads
            )));
        }
        let uniform = 1.0 / (4.0 * std::f64::consts::PI * std::f64::consts::PI);
        let mut out = Vec::new();
        for q in 0..dihedrals - 1 {
            let samples: Vec<(f64, f64)> = frames
                .iter()
                .map(|&t| (data.dihedral(t, q), data.dihedral(t, q + 1)))
                .collect();
            // A degenerate dihedral in every frame leaves a uniform density.
            out.extend(fit_pair(&samples, order).unwrap_or_else(|| {
                let mut flat = vec![0.0; 2 * (2 * order + 1).pow(2)];
                flat[2 * (2 * order + 1) * order + 2 * order] = uniform;
                flat
            }));
        }
        Ok(Some(DihedralPairs {
            coefficients: out,
            kt,
            floor: floor_fraction * uniform,
        }))
    }
}

fn load(rows: &SavedRows<'_>, beads: usize) -> Result<Option<Arc<dyn Prior>>, PriorError> {
    let coefficients = rows.vector("dihedral_pairs");
    if coefficients.is_empty() {
        return Ok(None);
    }
    let dihedrals = beads.saturating_sub(3);
    if order(coefficients.len(), dihedrals).is_none() {
        return Err(PriorError(format!(
            "saved potential has {} dihedral-pair coefficients for {dihedrals} bead dihedrals \
             (expected 2 (2M + 1)^2 for each consecutive pair)",
            coefficients.len()
        )));
    }
    let (kt, floor) = (
        rows.scalar("dihedral_pair_kt")?,
        rows.scalar("dihedral_pair_floor")?,
    );
    if !(kt > 0.0 && floor > 0.0) {
        return Err(PriorError(format!(
            "saved potential's dihedral-pair prior has kT {kt} and floor {floor} (both must be \
             positive)"
        )));
    }
    Ok(Some(Arc::new(DihedralPairs {
        coefficients,
        kt,
        floor,
    })))
}

impl Prior for DihedralPairs {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn on_positions(&self, z: &[[f64; 3]], energy: &mut f64, forces: &mut [[f64; 3]]) {
        *energy += dihedral_pairs(z, &self.coefficients, self.kt, self.floor, forces);
    }

    fn save(&self) -> Vec<NamedTensor> {
        vec![
            vector_row("dihedral_pairs", &self.coefficients),
            scalar_row("dihedral_pair_kt", self.kt),
            scalar_row("dihedral_pair_floor", self.floor),
        ]
    }

    fn describe(&self) -> String {
        format!(
            "dihedral-pair prior, {} coefficients, floor {:.3e} rad^-2",
            self.coefficients.len(),
            self.floor
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
