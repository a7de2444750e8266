//! Physical constants and AMBER unit conversions, matching OpenMM 8 exactly.
//!
//! cgloop works in nm, ps, kJ/mol, K, amu and elementary charges. AMBER files use Å,
//! kcal/mol and charges pre-multiplied by 18.2223 (so that q_i q_j / r is in kcal/mol
//! with r in Å); the readers convert with the factors here and nowhere else.
//!
//! The electrostatic constant is computed as OpenMM's `SimTKOpenMMRealType.h` does:
//! `ONE_4PI_EPS0 = 1 / (4 pi eps0)` with eps0 in e^2 mol / (kJ nm) from the 2019 SI
//! values (elementary charge, Avogadro constant, vacuum permittivity 8.8541878128e-12 F/m),
//! which gives 138.935457... kJ mol^-1 nm e^-2.

use std::f64::consts::PI;

/// kcal -> kJ (thermochemical calorie).
pub const KCAL_TO_KJ: f64 = 4.184;
/// Å -> nm.
pub const ANGSTROM_TO_NM: f64 = 0.1;
/// nm -> Å.
pub const NM_TO_ANGSTROM: f64 = 10.0;
/// AMBER stores charges as q * 18.2223 (sqrt of 332.0522 kcal Å mol^-1 e^-2).
pub const AMBER_CHARGE_FACTOR: f64 = 18.2223;
/// AMBER restart velocities are in Å per (1/20.455 ps).
pub const AMBER_VELOCITY_FACTOR: f64 = 20.455;

/// Elementary charge, C (exact in the 2019 SI).
pub const ELEMENTARY_CHARGE: f64 = 1.602176634e-19;
/// Avogadro constant, 1/mol (exact).
pub const AVOGADRO: f64 = 6.02214076e23;
/// Boltzmann constant, J/K (exact).
pub const BOLTZMANN_SI: f64 = 1.380649e-23;
/// Molar gas constant k_B N_A in kJ/(mol K), 0.008314462618...
pub const BOLTZMANN: f64 = BOLTZMANN_SI * AVOGADRO / 1e3;
/// Vacuum permittivity in e^2 mol / (kJ nm), as OpenMM's `EPSILON0`.
pub const EPSILON0: f64 =
    1e-6 * 8.8541878128e-12 / (ELEMENTARY_CHARGE * ELEMENTARY_CHARGE * AVOGADRO);
/// Coulomb constant 1/(4 pi eps0) in kJ mol^-1 nm e^-2, as OpenMM's `ONE_4PI_EPS0`.
pub const ONE_4PI_EPS0: f64 = 1.0 / (4.0 * PI * EPSILON0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_openmm_values() {
        assert!(
            (ONE_4PI_EPS0 - 138.935_457_8).abs() < 1e-6,
            "{ONE_4PI_EPS0}"
        );
        assert!((BOLTZMANN - 0.008_314_462_618).abs() < 1e-12, "{BOLTZMANN}");
        // 18.2223^2 is AMBER's 332.0522 kcal Å / (mol e^2); in kJ nm that is close to
        // the SI Coulomb constant (AMBER's value is slightly rounded).
        let amber_coulomb = AMBER_CHARGE_FACTOR * AMBER_CHARGE_FACTOR * KCAL_TO_KJ * ANGSTROM_TO_NM;
        assert!((amber_coulomb / ONE_4PI_EPS0 - 1.0).abs() < 1e-4);
    }
}
