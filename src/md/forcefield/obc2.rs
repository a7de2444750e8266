//! Generalized Born implicit solvent, OBC model II, with the ACE surface-area term,
//! as OpenMM's `GBSAOBCForce` (reference kernel `ReferenceObc.cpp`). Units nm, kJ/mol, e.
//!
//! ```text
//! Born radii (Onufriev, Bashford, Case, Proteins 55:383, 2004):
//!   rho~_i = rho_i - 0.009 (dielectric offset),  s_j = screen_j rho~_j,
//!   I_i = 1/2 sum_{j != i} H(rho~_i, s_j, r_ij)  (HCT pair integral, Tinker's engulfed case),
//!   psi_i = rho~_i I_i,  R_i = 1 / (1/rho~_i - tanh(a psi - b psi^2 + g psi^3) / rho_i),
//!   (a, b, g) = (1.0, 0.8, 4.85).
//! Polar energy (Still): E_pol = -ke (1/eps_in - 1/eps_out) [ sum_{i<j} q_i q_j / f_ij
//!   + 1/2 sum_i q_i^2 / R_i ],  f_ij = sqrt(r^2 + R_i R_j exp(-r^2 / (4 R_i R_j))).
//! Surface (ACE, Ponder's sixth power):
//!   E_sa = sum_i 4 pi gamma (rho_i + 0.14)^2 (rho_i / R_i)^6,  gamma = 2.25936 kJ/mol/nm^2.
//! Forces: direct r-derivative of E_pol plus the chain rule through the Born radii,
//!   dE/dx = sum_i dE/dR_i dR_i/dI_i dI_i/dx.
//! ```
//!
//! Three passes over the N(N-1)/2 pairs: (1) pair integrals and their r-derivatives
//! (stored, so the logs are taken once); (2) E_pol and dE/dR; (3) the chain rule.

use crate::md::error::MdError;
use crate::md::forcefield::nonbonded::{GHOSTS, SoaBuffers, padded_len};
use crate::md::forcefield::simd::{Lanes, exp_neg, ln};
use crate::md::topology::Topology;
use crate::md::units::ONE_4PI_EPS0;

/// Widest lane type the pair loops may run on (AVX-512: 8 doubles).
const MAX_LANES: usize = 8;

/// OBC model II (alpha, beta, gamma).
const OBC_ALPHA: f64 = 1.0;
const OBC_BETA: f64 = 0.8;
const OBC_GAMMA: f64 = 4.85;
/// Dielectric offset, nm.
pub const DIELECTRIC_OFFSET: f64 = 0.009;
/// Solvent probe radius for the ACE term, nm.
pub const PROBE_RADIUS: f64 = 0.14;
/// ACE surface-area energy, kJ/mol/nm^2.
pub const SURFACE_AREA_ENERGY: f64 = 2.25936;
pub const SOLVENT_DIELECTRIC: f64 = 78.5;
pub const SOLUTE_DIELECTRIC: f64 = 1.0;

/// Per-atom parameters and scratch buffers of the OBC2 computation.
#[derive(Debug, Clone)]
pub(crate) struct Obc2 {
    n_atoms: usize,
    /// Charges times -ke (1/eps_in - 1/eps_out), so that q_i q_j / f is the energy.
    scaled_charge: Vec<f64>,
    inv_radius: Vec<f64>,
    offset_radius: Vec<f64>,
    inv_offset_radius: Vec<f64>,
    scaled_radius: Vec<f64>,
    scaled_radius2: Vec<f64>,
    /// 4 pi gamma (rho + probe)^2 rho^6: E_sa,i = surface_coefficient / R^6.
    surface_coefficient: Vec<f64>,
    // Scratch, reused between calls.
    integral: Vec<f64>,
    born_radius: Vec<f64>,
    inv_born_radius: Vec<f64>,
    chain: Vec<f64>,
    de_dborn: Vec<f64>,
    /// Per pair (i < j, row-major): -1/2 (dH_ij/dr)/r and -1/2 (dH_ji/dr)/r.
    gradient_ij: Vec<f64>,
    gradient_ji: Vec<f64>,
}

impl Obc2 {
    pub(crate) fn new(topology: &Topology) -> Result<Self, MdError> {
        let gb = topology.gb.as_ref().ok_or_else(|| {
            MdError::ForceField(
                "OBC2 needs GB radii and screening factors (RADII and SCREEN in the prmtop)".into(),
            )
        })?;
        if let Some((i, p)) = gb
            .iter()
            .enumerate()
            .find(|(_, p)| p.radius <= DIELECTRIC_OFFSET)
        {
            return Err(MdError::ForceField(format!(
                "atom {} has GB radius {} nm, not above the dielectric offset {DIELECTRIC_OFFSET} nm",
                i + 1,
                p.radius
            )));
        }
        let n = topology.n_atoms();
        let radius: Vec<f64> = gb.iter().map(|p| p.radius).collect();
        let offset_radius: Vec<f64> = radius.iter().map(|r| r - DIELECTRIC_OFFSET).collect();
        let surface_factor = 4.0 * std::f64::consts::PI * SURFACE_AREA_ENERGY;
        let prefactor = -ONE_4PI_EPS0 * (1.0 / SOLUTE_DIELECTRIC - 1.0 / SOLVENT_DIELECTRIC);
        // Pair buffers hold every row padded to whole chunks of the widest lanes.
        let scaled_radius: Vec<f64> = gb
            .iter()
            .zip(&offset_radius)
            .map(|(p, r)| p.screen * r)
            .collect();
        let n_pairs: usize = (0..n).map(|i| padded_len(n - i - 1, MAX_LANES)).sum();
        // Ghost atoms (see `nonbonded::GHOSTS`): no charge, no descreening, R = 1 nm.
        let with_ghosts = |mut column: Vec<f64>, ghost: f64| {
            column.resize(n + GHOSTS, ghost);
            column
        };
        Ok(Obc2 {
            n_atoms: n,
            scaled_charge: with_ghosts(
                topology
                    .atoms
                    .iter()
                    .map(|a| a.charge * prefactor.abs().sqrt())
                    .collect(),
                0.0,
            ),
            inv_radius: radius.iter().map(|r| 1.0 / r).collect(),
            inv_offset_radius: with_ghosts(offset_radius.iter().map(|r| 1.0 / r).collect(), 10.0),
            scaled_radius2: with_ghosts(scaled_radius.iter().map(|s| s * s).collect(), 0.0),
            scaled_radius: with_ghosts(scaled_radius, 0.0),
            surface_coefficient: radius
                .iter()
                .map(|&r| surface_factor * (r + PROBE_RADIUS).powi(2) * r.powi(6))
                .collect(),
            offset_radius: with_ghosts(offset_radius, 0.1),
            integral: vec![0.0; n + GHOSTS],
            born_radius: vec![1.0; n + GHOSTS],
            inv_born_radius: vec![1.0; n + GHOSTS],
            chain: vec![0.0; n],
            de_dborn: vec![0.0; n + GHOSTS],
            gradient_ij: vec![0.0; n_pairs],
            gradient_ji: vec![0.0; n_pairs],
        })
    }

    /// Born radii (nm) of the last call.
    pub(crate) fn born_radii(&self) -> &[f64] {
        &self.born_radius[..self.n_atoms]
    }

    /// Adds OBC2 + ACE forces into `soa`; returns their energy. `W` is the lane type of
    /// the pair loops; each row j > i runs in whole chunks of `W::LANES`, its last chunk
    /// reaching into the ghost atoms.
    #[inline(always)]
    pub(crate) fn compute<W: Lanes>(&mut self, soa: &mut SoaBuffers) -> f64 {
        self.born_radii_pass::<W>(soa);
        let energy = self.energy_pass::<W>(soa);
        self.chain_rule_pass::<W>(soa);
        energy
    }

    /// Pass 1: Born radii, dR/dI, and the pair-integral derivatives.
    #[inline(always)]
    fn born_radii_pass<W: Lanes>(&mut self, soa: &SoaBuffers) {
        let n = self.n_atoms;
        let padded = n + GHOSTS;
        let atoms = RadiusColumns {
            x: &soa.x[..padded],
            y: &soa.y[..padded],
            z: &soa.z[..padded],
            rho: &self.offset_radius[..padded],
            inv_rho: &self.inv_offset_radius[..padded],
            screened: &self.scaled_radius[..padded],
            screened2: &self.scaled_radius2[..padded],
        };
        let integral = &mut self.integral[..padded];
        integral.iter_mut().for_each(|v| *v = 0.0);
        let mut row = 0;
        for i in 0..n {
            let row_len = padded_len(n - i - 1, W::LANES);
            let mut sum = W::splat(0.0);
            for offset in (0..row_len).step_by(W::LANES) {
                sum += integral_lanes::<W>(
                    &atoms,
                    i,
                    i + 1 + offset,
                    row + offset,
                    integral,
                    &mut self.gradient_ij,
                    &mut self.gradient_ji,
                );
            }
            integral[i] += sum.sum();
            row += row_len;
        }
        for (i, &integral_i) in integral[..n].iter().enumerate() {
            let rho = self.offset_radius[i];
            let psi = 0.5 * integral_i * rho;
            let tanh_sum =
                (OBC_ALPHA * psi - OBC_BETA * psi * psi + OBC_GAMMA * psi * psi * psi).tanh();
            let born = 1.0 / (self.inv_offset_radius[i] - tanh_sum * self.inv_radius[i]);
            self.born_radius[i] = born;
            self.inv_born_radius[i] = 1.0 / born;
            self.chain[i] = rho
                * (OBC_ALPHA - 2.0 * OBC_BETA * psi + 3.0 * OBC_GAMMA * psi * psi)
                * (1.0 - tanh_sum * tanh_sum)
                * self.inv_radius[i];
        }
    }

    /// Pass 2: polar and surface energy, direct pair forces, dE/dR.
    #[inline(always)]
    fn energy_pass<W: Lanes>(&mut self, soa: &mut SoaBuffers) -> f64 {
        let n = self.n_atoms;
        let padded = n + GHOSTS;
        let SoaBuffers {
            x,
            y,
            z,
            fx,
            fy,
            fz,
        } = soa;
        let atoms = BornColumns {
            x: &x[..padded],
            y: &y[..padded],
            z: &z[..padded],
            born: &self.born_radius[..padded],
            inv_born: &self.inv_born_radius[..padded],
            charge: &self.scaled_charge[..padded],
        };
        let mut out = BornOutputs {
            fx: &mut fx[..padded],
            fy: &mut fy[..padded],
            fz: &mut fz[..padded],
            de_dborn: &mut self.de_dborn[..padded],
        };
        let mut energy = 0.0;
        for i in 0..n {
            // ACE surface term and the self energy -|pref| q_i^2 / (2 R_i)
            // (R > 0 always holds for OBC2 radii).
            let inv_born = atoms.inv_born[i];
            let surface = self.surface_coefficient[i] * inv_born.powi(6);
            let self_energy = -atoms.charge[i] * atoms.charge[i] * inv_born;
            energy += surface + 0.5 * self_energy;
            out.de_dborn[i] = (-6.0 * surface - 0.5 * self_energy) * inv_born;
        }
        // Ghost entries only ever receive exact zeros; reset them anyway.
        out.de_dborn[n..].iter_mut().for_each(|v| *v = 0.0);
        let mut pair_energy = W::splat(0.0);
        for i in 0..n {
            let mut row = RowSums::<W>::zero();
            for offset in (0..padded_len(n - i - 1, W::LANES)).step_by(W::LANES) {
                born_energy_lanes::<W>(&atoms, i, i + 1 + offset, &mut out, &mut row);
            }
            out.de_dborn[i] += row.de_dborn_i.sum();
            out.fx[i] += row.force_i[0].sum();
            out.fy[i] += row.force_i[1].sum();
            out.fz[i] += row.force_i[2].sum();
            pair_energy += row.energy;
        }
        energy + pair_energy.sum()
    }

    /// Pass 3: forces through the Born radii.
    #[inline(always)]
    fn chain_rule_pass<W: Lanes>(&mut self, soa: &mut SoaBuffers) {
        let n = self.n_atoms;
        let padded = n + GHOSTS;
        for i in 0..n {
            let born = self.born_radius[i];
            self.de_dborn[i] *= born * born * self.chain[i];
        }
        let SoaBuffers {
            x,
            y,
            z,
            fx,
            fy,
            fz,
        } = soa;
        let (x, y, z) = (&x[..padded], &y[..padded], &z[..padded]);
        let (fx, fy, fz) = (&mut fx[..padded], &mut fy[..padded], &mut fz[..padded]);
        let b = &self.de_dborn[..padded];
        let (gradient_ij, gradient_ji) = (&self.gradient_ij, &self.gradient_ji);
        let mut row = 0;
        for i in 0..n {
            let row_len = padded_len(n - i - 1, W::LANES);
            let (xi, yi, zi, b_i) = (
                W::splat(x[i]),
                W::splat(y[i]),
                W::splat(z[i]),
                W::splat(b[i]),
            );
            let mut fi = [W::splat(0.0); 3];
            for offset in (0..row_len).step_by(W::LANES) {
                let (j, p) = (i + 1 + offset, row + offset);
                let c = b_i * W::load(gradient_ij, p) + W::load(b, j) * W::load(gradient_ji, p);
                let vx = c * (xi - W::load(x, j));
                let vy = c * (yi - W::load(y, j));
                let vz = c * (zi - W::load(z, j));
                fi[0] += vx;
                fi[1] += vy;
                fi[2] += vz;
                vx.sub_from(fx, j);
                vy.sub_from(fy, j);
                vz.sub_from(fz, j);
            }
            fx[i] += fi[0].sum();
            fy[i] += fi[1].sum();
            fz[i] += fi[2].sum();
            row += row_len;
        }
    }
}

/// Inputs of pass 1.
struct RadiusColumns<'a> {
    x: &'a [f64],
    y: &'a [f64],
    z: &'a [f64],
    rho: &'a [f64],
    inv_rho: &'a [f64],
    screened: &'a [f64],
    /// screened^2.
    screened2: &'a [f64],
}

/// Pairs (i, j..j + S::LANES) of pass 1: adds H_ji to I_j, stores both derivatives at
/// pair index p, returns H_ij.
#[inline(always)]
fn integral_lanes<S: Lanes>(
    atoms: &RadiusColumns,
    i: usize,
    j: usize,
    p: usize,
    integral: &mut [f64],
    gradient_ij: &mut [f64],
    gradient_ji: &mut [f64],
) -> S {
    let dx = S::load(atoms.x, j) - S::splat(atoms.x[i]);
    let dy = S::load(atoms.y, j) - S::splat(atoms.y[i]);
    let dz = S::load(atoms.z, j) - S::splat(atoms.z[i]);
    let distance = PairDistance::new(dx * dx + dy * dy + dz * dz);
    let (h_ij, g_ij) = pair_integral(
        S::splat(atoms.rho[i]),
        S::splat(atoms.inv_rho[i]),
        S::load(atoms.screened, j),
        S::load(atoms.screened2, j),
        &distance,
    );
    let (h_ji, g_ji) = pair_integral(
        S::load(atoms.rho, j),
        S::load(atoms.inv_rho, j),
        S::splat(atoms.screened[i]),
        S::splat(atoms.screened2[i]),
        &distance,
    );
    h_ji.add_to(integral, j);
    g_ij.store(gradient_ij, p);
    g_ji.store(gradient_ji, p);
    h_ij
}

/// Inputs of pass 2.
struct BornColumns<'a> {
    x: &'a [f64],
    y: &'a [f64],
    z: &'a [f64],
    born: &'a [f64],
    inv_born: &'a [f64],
    /// sqrt(|pref|) q.
    charge: &'a [f64],
}

/// Outputs of pass 2.
struct BornOutputs<'a> {
    fx: &'a mut [f64],
    fy: &'a mut [f64],
    fz: &'a mut [f64],
    de_dborn: &'a mut [f64],
}

/// Per-row accumulators of pass 2.
struct RowSums<S> {
    energy: S,
    de_dborn_i: S,
    force_i: [S; 3],
}

impl<S: Lanes> RowSums<S> {
    fn zero() -> Self {
        RowSums {
            energy: S::splat(0.0),
            de_dborn_i: S::splat(0.0),
            force_i: [S::splat(0.0); 3],
        }
    }
}

/// Pairs (i, j..j + S::LANES) of pass 2: G_ij = -q~_i q~_j / f_ij, its r-derivative
/// as forces and its R-derivatives into dE/dR.
#[inline(always)]
fn born_energy_lanes<S: Lanes>(
    atoms: &BornColumns,
    i: usize,
    j: usize,
    out: &mut BornOutputs,
    sums: &mut RowSums<S>,
) {
    let c = S::splat;
    let dx = S::load(atoms.x, j) - c(atoms.x[i]);
    let dy = S::load(atoms.y, j) - c(atoms.y[i]);
    let dz = S::load(atoms.z, j) - c(atoms.z[i]);
    let r2 = dx * dx + dy * dy + dz * dz;
    let born_j = S::load(atoms.born, j);
    let alpha2 = c(atoms.born[i]) * born_j;
    let d_ij = r2 * c(0.25 * atoms.inv_born[i]) * S::load(atoms.inv_born, j);
    let exp_term = exp_neg(-d_ij);
    let inv_denominator = (r2 + alpha2 * exp_term).rsqrt();
    let inv_denominator2 = inv_denominator * inv_denominator;
    let gpol = c(-atoms.charge[i]) * S::load(atoms.charge, j) * inv_denominator;
    sums.energy += gpol;
    // (dG/dr)/r and dG/d(R_i R_j).
    let dgpol_dr = -gpol * (c(1.0) - c(0.25) * exp_term) * inv_denominator2;
    let dgpol_dalpha2 = c(-0.5) * gpol * exp_term * (c(1.0) + d_ij) * inv_denominator2;
    sums.de_dborn_i += dgpol_dalpha2 * born_j;
    (dgpol_dalpha2 * c(atoms.born[i])).add_to(out.de_dborn, j);
    let (vx, vy, vz) = (dgpol_dr * dx, dgpol_dr * dy, dgpol_dr * dz);
    sums.force_i[0] += vx;
    sums.force_i[1] += vy;
    sums.force_i[2] += vz;
    vx.sub_from(out.fx, j);
    vy.sub_from(out.fy, j);
    vz.sub_from(out.fz, j);
}

/// Per-pair quantities shared by the two directions of a pair integral.
struct PairDistance<S> {
    r: S,
    inv_r: S,
    inv_r2: S,
    half_inv_r: S,
    quarter_inv_r: S,
    quarter_r: S,
    quarter_inv_r2: S,
}

impl<S: Lanes> PairDistance<S> {
    #[inline(always)]
    fn new(r2: S) -> Self {
        let c = S::splat;
        let inv_r = r2.rsqrt();
        let inv_r2 = inv_r * inv_r;
        let r = r2 * inv_r;
        PairDistance {
            r,
            inv_r,
            inv_r2,
            half_inv_r: c(0.5) * inv_r,
            quarter_inv_r: c(0.25) * inv_r,
            quarter_r: c(0.25) * r,
            quarter_inv_r2: c(0.25) * inv_r2,
        }
    }
}

/// HCT pair integral H(rho_i, s_j, r) (atom i descreened by j) and
/// -1/2 (dH/dr) / r, the factor the chain rule multiplies with dE/dI_i:
///
/// ```text
/// H = (L - U) + (L^2 - U^2) (s^2/r - r)/4 + ln(U/L)/(2r) [+ 2 (1/rho - L) if engulfed]
/// -1/2 dH/dr = (1 + s^2/r^2) (L^2 - U^2)/8 + ln(U/L)/(4 r^2)
/// ```
///
/// with L = 1/max(rho_i, |r - s_j|), U = 1/(r + s_j) (OpenMM's ReferenceObc, regrouped).
/// Branch-free so that it runs on lanes.
#[inline(always)]
fn pair_integral<S: Lanes>(rho_i: S, inv_rho_i: S, s_j: S, s2_j: S, d: &PairDistance<S>) -> (S, S) {
    let c = S::splat;
    let r_plus_s = d.r + s_j;
    let lower = rho_i.max((d.r - s_j).abs());
    // Both inverse bounds from one reciprocal.
    let inv_product = (lower * r_plus_s).recip();
    let l = r_plus_s * inv_product;
    let u = lower * inv_product;
    let l_minus_u = l - u;
    let l2_minus_u2 = l_minus_u * (l + u);
    let log_ratio = ln(lower * u); // ln(U / L)
    let engulfed = S::select_lt(rho_i, s_j - d.r, c(2.0) * (inv_rho_i - l), c(0.0));
    let q = s2_j.mul_add(d.quarter_inv_r, -d.quarter_r);
    let h = l2_minus_u2.mul_add(q, d.half_inv_r.mul_add(log_ratio, l_minus_u + engulfed));
    let t3 = s2_j
        .mul_add(d.inv_r2, c(1.0))
        .mul_add(c(0.125) * l2_minus_u2, log_ratio * d.quarter_inv_r2);
    // No overlap when rho_i >= r + s_j (then lower * u >= 1, so the log above is finite).
    (
        S::select_lt(rho_i, r_plus_s, h, c(0.0)),
        S::select_lt(rho_i, r_plus_s, t3 * d.inv_r, c(0.0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::md::forcefield::test_support::{
        check_forces_by_finite_differences, random_molecule,
    };

    /// Energy, and forces added into `f`, through the struct-of-arrays buffers.
    fn evaluate(obc: &mut Obc2, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
        let mut soa = SoaBuffers::new(x.len());
        soa.load(x);
        let energy = obc.compute::<f64>(&mut soa);
        soa.store_add(f);
        energy
    }

    #[test]
    fn obc2_forces_match_finite_differences() {
        for seed in [7, 8] {
            let top = random_molecule(12, seed);
            let mut obc = Obc2::new(&top).unwrap();
            check_forces_by_finite_differences(&top, |x, f| evaluate(&mut obc, x, f), 1e-6);
        }
    }

    #[test]
    fn engulfed_atom_forces_match_finite_differences() {
        // A small atom very close to a big one exercises the Tinker engulfed branch.
        let mut top = random_molecule(3, 9);
        let gb = top.gb.as_mut().unwrap();
        gb[0].radius = 0.05;
        gb[1].radius = 0.3;
        gb[1].screen = 1.4;
        let x = vec![[0.0, 0.0, 0.0], [0.06, 0.01, 0.0], [0.5, 0.3, 0.1]];
        let mut obc = Obc2::new(&top).unwrap();
        crate::md::forcefield::test_support::check_forces_at(
            &x,
            |x, f| evaluate(&mut obc, x, f),
            1e-6,
        );
    }

    #[test]
    fn isolated_ion_has_born_energy() {
        // One atom: R = rho (no descreening), E = -ke (1 - 1/78.5) q^2 / (2 rho) + ACE.
        let mut top = random_molecule(1, 1);
        top.atoms[0].charge = 1.0;
        let rho = top.gb.as_ref().unwrap()[0].radius;
        let mut obc = Obc2::new(&top).unwrap();
        let e = evaluate(&mut obc, &[[0.0; 3]], &mut [[0.0; 3]]);
        let offset = rho - DIELECTRIC_OFFSET;
        let expected_polar = -0.5 * ONE_4PI_EPS0 * (1.0 - 1.0 / 78.5) / offset;
        let expected_surface = 4.0
            * std::f64::consts::PI
            * SURFACE_AREA_ENERGY
            * (rho + PROBE_RADIUS).powi(2)
            * (rho / offset).powi(6);
        assert!((obc.born_radii()[0] - offset).abs() < 1e-15);
        assert!((e - expected_polar - expected_surface).abs() < 1e-10, "{e}");
    }
}
