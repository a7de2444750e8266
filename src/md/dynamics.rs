//! Shared types of the dynamics engine ([`crate::md::langevin`],
//! [`crate::md::replica_exchange`]): thermostat parameters, the typed errors, saved
//! frames, and the per-step force check.
//!
//! Units: nm, ps, kJ/mol, K, amu; k_B = 0.00831446261815324 kJ/mol/K (OpenMM's BOLTZ).
//! A force evaluation passes the check when the energy is finite and every atomic force
//! |F_i| is finite and at most `max_force` (default 1e6 kJ/mol/nm, far above anything a
//! sane biomolecular configuration produces and far below what overlapping atoms give);
//! otherwise [`DynamicsError::ForceBlowUp`] names the step and the offending atoms.

use thiserror::Error;

use crate::md::constraints::ConstraintError;

/// Boltzmann's constant in kJ/mol/K (OpenMM's BOLTZ), from [`crate::md::units`].
pub use crate::md::units::BOLTZMANN as BOLTZ;
/// Default force magnitude (kJ/mol/nm) above which a step counts as blown up.
pub const DEFAULT_MAX_FORCE: f64 = 1e6;
/// Atoms listed at most in a blow-up error.
const MAX_REPORTED_ATOMS: usize = 16;

/// Thermostat and step parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LangevinParams {
    pub temperature_k: f64,
    /// Collision rate gamma (1/ps); 0 gives velocity Verlet (NVE).
    pub friction_per_ps: f64,
    pub timestep_ps: f64,
    /// Remove centre-of-mass motion before every this many steps; 0 never.
    pub remove_com_every: u64,
    /// |F_i| (kJ/mol/nm) above which the run stops.
    pub max_force: f64,
}

impl LangevinParams {
    /// Parameters with COM removal every step (OpenMM's default CMMotionRemover) and the
    /// default force limit.
    pub fn new(temperature_k: f64, friction_per_ps: f64, timestep_ps: f64) -> Self {
        Self {
            temperature_k,
            friction_per_ps,
            timestep_ps,
            remove_com_every: 1,
            max_force: DEFAULT_MAX_FORCE,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), DynamicsError> {
        let bad = |name, value, reason| {
            Err(DynamicsError::InvalidParameter {
                name,
                value,
                reason,
            })
        };
        if !(self.temperature_k.is_finite() && self.temperature_k >= 0.0) {
            return bad(
                "temperature_k",
                self.temperature_k,
                "must be finite and >= 0",
            );
        }
        if !(self.friction_per_ps.is_finite() && self.friction_per_ps >= 0.0) {
            return bad(
                "friction_per_ps",
                self.friction_per_ps,
                "must be finite and >= 0",
            );
        }
        if !(self.timestep_ps.is_finite() && self.timestep_ps > 0.0) {
            return bad("timestep_ps", self.timestep_ps, "must be finite and > 0");
        }
        if self.max_force.is_nan() || self.max_force <= 0.0 {
            return bad("max_force", self.max_force, "must be > 0");
        }
        Ok(())
    }
}

/// Why dynamics could not start or had to stop.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DynamicsError {
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: f64,
        reason: &'static str,
    },
    #[error("{what} has {got} entries but the system has {expected} atoms")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error(
        "force blow-up at step {step}: atoms {atoms:?} have |F| above {limit:e} kJ/mol/nm or \
         non-finite (largest {largest:e}, potential energy {energy:e} kJ/mol)"
    )]
    ForceBlowUp {
        step: u64,
        atoms: Vec<usize>,
        largest: f64,
        limit: f64,
        energy: f64,
    },
    #[error("non-finite potential energy {energy} at step {step}")]
    NonFiniteEnergy { step: u64, energy: f64 },
    #[error("constraints failed at step {step}: {source}")]
    Constraint { step: u64, source: ConstraintError },
    #[error("invalid constraints: {0}")]
    ConstraintSetup(#[from] ConstraintError),
}

/// A saved frame, borrowed from the integrator.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub step: u64,
    pub time_ps: f64,
    pub positions: &'a [[f64; 3]],
    pub velocities: &'a [[f64; 3]],
    pub forces: &'a [[f64; 3]],
    pub potential_energy: f64,
    /// 1/2 sum m v^2 of the on-step velocities: U + K is the energy velocity Verlet
    /// conserves (kJ/mol).
    pub kinetic_energy: f64,
    /// Kinetic energy of the half-step velocities, as OpenMM reports for
    /// LangevinMiddleIntegrator: the estimator of (n_dof / 2) k_B T (kJ/mol).
    pub half_step_kinetic_energy: f64,
    /// 2 K_half / (n_dof k_B) (K).
    pub temperature_k: f64,
}

/// Checks one force evaluation; `step` names it in the error.
pub(crate) fn check_forces(
    step: u64,
    energy: f64,
    forces: &[[f64; 3]],
    limit: f64,
) -> Result<(), DynamicsError> {
    let limit_sq = limit * limit;
    let mut bad = false;
    for f in forces {
        let norm_sq = f[0] * f[0] + f[1] * f[1] + f[2] * f[2];
        bad |= norm_sq.is_nan() || norm_sq > limit_sq;
    }
    if !bad {
        return if energy.is_finite() {
            Ok(())
        } else {
            Err(DynamicsError::NonFiniteEnergy { step, energy })
        };
    }
    let norms = forces
        .iter()
        .map(|f| (f[0] * f[0] + f[1] * f[1] + f[2] * f[2]).sqrt());
    let atoms: Vec<usize> = norms
        .clone()
        .enumerate()
        .filter(|&(_, n)| n.is_nan() || n > limit)
        .map(|(i, _)| i)
        .take(MAX_REPORTED_ATOMS)
        .collect();
    let largest = norms.fold(0.0, |m: f64, n| {
        if n.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(n)
        }
    });
    Err(DynamicsError::ForceBlowUp {
        step,
        atoms,
        largest,
        limit,
        energy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_named() {
        let err = LangevinParams::new(300.0, 1.0, -1.0)
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            DynamicsError::InvalidParameter {
                name: "timestep_ps",
                ..
            }
        ));
        let err = LangevinParams::new(f64::NAN, 1.0, 0.002)
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            DynamicsError::InvalidParameter {
                name: "temperature_k",
                ..
            }
        ));
        assert!(LangevinParams::new(300.0, 0.0, 0.002).validate().is_ok());
    }

    #[test]
    fn force_check_names_step_and_atoms() {
        let mut forces = vec![[1.0, 2.0, 3.0]; 5];
        assert!(check_forces(3, -1.0, &forces, 1e6).is_ok());
        assert!(matches!(
            check_forces(3, f64::NAN, &forces, 1e6),
            Err(DynamicsError::NonFiniteEnergy { step: 3, .. })
        ));
        forces[1][2] = 2e6;
        forces[4][0] = f64::NAN;
        match check_forces(9, 0.0, &forces, 1e6) {
            Err(DynamicsError::ForceBlowUp {
                step,
                atoms,
                largest,
                ..
            }) => {
                assert_eq!((step, atoms), (9, vec![1, 4]));
                assert!(largest.is_nan());
            }
            other => panic!("{other:?}"),
        }
    }
}
