//! Harmonic priors on the bead angles theta_I of (I, I+1, I+2), by Boltzmann inversion:
//!
//! ```text
//! U = sum_I k_I / 2 (theta_I - theta0_I)^2,   theta0_I = <theta_I>,   k_I = k_B T / var(theta_I)
//! ```
//!
//! (kJ/mol, rad; theta = atan2(|u x v|, u . v), u = z_I - z_(I+1), v = z_(I+2) - z_(I+1)).
//! The stiff angles of a chain are hard for a smooth network on a radial basis to learn:
//! without a prior CG chains come out with angles several times too broad; with it, on
//! alanine dipeptide's backbone map, the bead angles' spread is within 2 % and JS
//! 0.0002-0.0008 (noise floor 0.0002-0.0003). A network on distances cannot cancel it, so
//! it assumes frames Boltzmann-distributed at the fit's temperature, as MD frames are.
//!
//! With centre coefficients the centres follow the neighbouring dihedrals
//! ([`super::angle_dihedral`]). Collinear triples get no force.

use std::any::Any;
use std::sync::Arc;

use super::angle_dihedral;
use super::{BeadFrames, Prior, PriorError, PriorKind, SavedRows, vector_row};
use crate::artifact::tensors::NamedTensor;
use crate::geometry::{cross, dot, sub};

#[derive(Clone, Debug, PartialEq)]
pub struct BeadAngles {
    /// kJ/mol/rad^2, one per angle.
    pub k: Vec<f64>,
    /// rad (with centre coefficients, the constant term of each centre).
    pub theta0: Vec<f64>,
    /// The Fourier coefficients that move each centre with the dihedrals next to it,
    /// (2L + 1)^2 per angle ([`super::angle_dihedral`]); empty for fixed centres.
    pub centre_coefficients: Vec<f64>,
}

pub const KIND: PriorKind = PriorKind {
    name: "bead_angles",
    load,
    absent_rows: Vec::new,
};

impl BeadAngles {
    /// Fixed centres by Boltzmann inversion over `frames` at k_B T = `kt` (kJ/mol); None
    /// for fewer than 3 beads.
    pub fn fit(
        data: &BeadFrames<'_>,
        frames: &[usize],
        kt: f64,
    ) -> Result<Option<Self>, PriorError> {
        if data.beads < 3 {
            return Ok(None);
        }
        let mut k = Vec::with_capacity(data.beads - 2);
        let mut theta0 = Vec::with_capacity(k.capacity());
        for i in 0..data.beads - 2 {
            let theta: Vec<f64> = frames.iter().map(|&t| data.angle(t, i)).collect();
            let mean = theta.iter().sum::<f64>() / theta.len() as f64;
            let var = theta.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / theta.len() as f64;
            if var <= 1e-12 {
                return Err(PriorError(format!(
                    "the angle of beads {i}, {}, {} does not vary over the training frames: no \
                     harmonic prior by Boltzmann inversion (set theta_prior: false)",
                    i + 1,
                    i + 2
                )));
            }
            k.push(kt / var);
            theta0.push(mean);
        }
        Ok(Some(BeadAngles {
            k,
            theta0,
            centre_coefficients: Vec::new(),
        }))
    }
}

fn load(rows: &SavedRows<'_>, beads: usize) -> Result<Option<Arc<dyn Prior>>, PriorError> {
    let (k, theta0) = (rows.vector("theta_k"), rows.vector("theta0_rad"));
    let centre_coefficients = rows.vector("theta_dihedral");
    let triples = beads.saturating_sub(2);
    if k.is_empty() {
        if !centre_coefficients.is_empty() {
            return Err(PriorError(format!(
                "saved potential has {} bead-angle Fourier coefficients but no theta prior",
                centre_coefficients.len()
            )));
        }
        return Ok(None);
    }
    if k.len() != triples || theta0.len() != triples {
        return Err(PriorError(format!(
            "saved potential has {} theta constants and {} theta0 for {beads} beads \
             (expected {triples} of each)",
            k.len(),
            theta0.len()
        )));
    }
    if !centre_coefficients.is_empty()
        && angle_dihedral::order(centre_coefficients.len(), triples).is_none()
    {
        return Err(PriorError(format!(
            "saved potential has {} bead-angle Fourier coefficients for {triples} bead angles \
             (expected (2L + 1)^2 for each, with the theta prior)",
            centre_coefficients.len()
        )));
    }
    Ok(Some(Arc::new(BeadAngles {
        k,
        theta0,
        centre_coefficients,
    })))
}

/// E = sum_I k_I / 2 (theta_I - theta0_I)^2 (module docs) at z (nm); returns E (kJ/mol)
/// and adds -dE/dz to `forces` (kJ/mol/nm).
pub fn harmonic_bead_angles(
    z: &[[f64; 3]],
    k: &[f64],
    theta0: &[f64],
    forces: &mut [[f64; 3]],
) -> f64 {
    let mut energy = 0.0;
    for (i, (&k, &theta0)) in k.iter().zip(theta0).enumerate() {
        energy += harmonic_angle(z, i, k, theta0, forces).0;
    }
    energy
}

/// One term k / 2 (theta - centre)^2 on the angle theta of beads (i, i+1, i+2): adds its
/// -dE/dz to `forces` (none for a collinear triple) and returns (E, dE/dtheta).
#[inline(always)]
pub(super) fn harmonic_angle(
    z: &[[f64; 3]],
    i: usize,
    k: f64,
    centre: f64,
    forces: &mut [[f64; 3]],
) -> (f64, f64) {
    let u = sub(z[i], z[i + 1]);
    let v = sub(z[i + 2], z[i + 1]);
    let n = cross(u, v);
    let n_len = dot(n, n).sqrt();
    let theta = n_len.atan2(dot(u, v));
    let de_dtheta = k * (theta - centre);
    let energy = 0.5 * de_dtheta * (theta - centre);
    if n_len < 1e-30 {
        return (energy, de_dtheta);
    }
    // d theta / d z_I = (u x n) / (|u|^2 |n|), d theta / d z_(I+2) = (n x v) / (|v|^2 |n|).
    let (fi, fk) = (cross(u, n), cross(n, v));
    let (si, sk) = (
        -de_dtheta / (dot(u, u) * n_len),
        -de_dtheta / (dot(v, v) * n_len),
    );
    for c in 0..3 {
        let (a, b) = (si * fi[c], sk * fk[c]);
        forces[i][c] += a;
        forces[i + 2][c] += b;
        forces[i + 1][c] -= a + b;
    }
    (energy, de_dtheta)
}

impl Prior for BeadAngles {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn on_positions(&self, z: &[[f64; 3]], energy: &mut f64, forces: &mut [[f64; 3]]) {
        *energy += if self.centre_coefficients.is_empty() {
            harmonic_bead_angles(z, &self.k, &self.theta0, forces)
        } else {
            angle_dihedral::angle_dihedral_prior(
                z,
                &self.k,
                &self.theta0,
                &self.centre_coefficients,
                forces,
            )
        };
    }

    fn save(&self) -> Vec<NamedTensor> {
        let mut rows = vec![
            vector_row("theta_k", &self.k),
            vector_row("theta0_rad", &self.theta0),
        ];
        // Written only when present, so potentials without them keep their bytes.
        if !self.centre_coefficients.is_empty() {
            rows.push(vector_row("theta_dihedral", &self.centre_coefficients));
        }
        rows
    }

    fn describe(&self) -> String {
        let degrees: Vec<f64> = self.theta0.iter().map(|t| t.to_degrees()).collect();
        format!(
            "bead-angle prior theta0 {degrees:.1?} deg, k {:.1?} kJ/mol/rad^2{}",
            self.k,
            if self.centre_coefficients.is_empty() {
                ""
            } else {
                ", centres following the dihedrals"
            }
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::priors::force_error;

    #[test]
    fn forces_are_minus_the_gradient() {
        let z = [
            [0.0, 0.0, 0.0],
            [0.15, 0.02, 0.0],
            [0.2, 0.16, 0.03],
            [0.36, 0.2, 0.1],
        ];
        let prior = BeadAngles {
            k: vec![400.0, 250.0],
            theta0: vec![1.9, 2.0],
            centre_coefficients: Vec::new(),
        };
        assert!(force_error(&prior, &z, 1e-6) < 1e-5);
    }
}
