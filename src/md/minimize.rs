//! Local energy minimization before dynamics: limited-memory BFGS (Nocedal, Math. Comp.
//! 35, 773, 1980; Liu & Nocedal, Math. Prog. 45, 503, 1989) on the constraint manifold,
//! with OpenMM's `LocalEnergyMinimizer` stopping rule (RMS force, default 10 kJ/mol/nm).
//!
//! Positions stay on the distance constraints throughout: each trial point x + alpha p is
//! moved back onto them by SHAKE (reference x), and the force is projected onto the
//! tangent space, F_t = F - G^T (G G^T)^-1 G F (G the constraint gradients; the RATTLE
//! projection with unit weights). OpenMM instead adds a stiffening harmonic restraint and
//! constrains at the end; both stop at a constrained local minimum. The search direction
//! is the two-loop L-BFGS product with the projected force, projected again; step lengths
//! satisfy the Armijo condition U(x_new) <= U(x) - 1e-4 alpha F_t . p by backtracking,
//! with no atom moving more than `max_step_nm` in one iteration (steepest-descent steps,
//! after a reset, move the hardest-pushed atom 0.01 nm). Atoms of zero mass stay put.
//!
//! Converged when the root mean square of the projected force components over mobile
//! atoms, sqrt(|F_t|^2 / (3 N_mobile)), is at most `tolerance` (kJ/mol/nm), the measure
//! OpenMM documents for its tolerance. Running out of iterations or of line-search
//! progress is reported (`converged: false`), not an error.

use std::collections::VecDeque;

use thiserror::Error;

use crate::md::constraints::{ConstraintError, Constraints, DistanceConstraint};
use crate::md::potential::Potential;

/// Minimizer settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinimizeOptions {
    /// RMS projected force (kJ/mol/nm) at which to stop.
    pub tolerance: f64,
    pub max_iterations: usize,
    /// L-BFGS history length.
    pub history: usize,
    /// Largest displacement of any atom in one iteration (nm).
    pub max_step_nm: f64,
}

impl Default for MinimizeOptions {
    fn default() -> Self {
        Self {
            tolerance: 10.0,
            max_iterations: 10_000,
            history: 8,
            max_step_nm: 0.05,
        }
    }
}

/// What the minimizer did.
#[derive(Debug, Clone, PartialEq)]
pub struct MinimizeReport {
    pub initial_energy: f64,
    pub final_energy: f64,
    pub iterations: usize,
    pub energy_evaluations: usize,
    /// RMS projected force component at the end (kJ/mol/nm).
    pub rms_force: f64,
    /// Largest projected atomic force at the end (kJ/mol/nm).
    pub max_force: f64,
    pub converged: bool,
}

/// Why minimization could not run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MinimizeError {
    #[error("{what} has {got} entries but the system has {expected} atoms")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("constraints: {0}")]
    Constraint(#[from] ConstraintError),
    #[error("non-finite energy {energy} or forces at the starting positions")]
    NonFiniteStart { energy: f64 },
}

/// One L-BFGS correction pair (s = x_new - x, y = grad_new - grad, 1 / (s . y)).
type Correction = (Vec<[f64; 3]>, Vec<[f64; 3]>, f64);

fn dot(a: &[[f64; 3]], b: &[[f64; 3]]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x[0] * y[0] + x[1] * y[1] + x[2] * y[2])
        .sum()
}

fn axpy(y: &mut [[f64; 3]], alpha: f64, x: &[[f64; 3]]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        for k in 0..3 {
            yi[k] += alpha * xi[k];
        }
    }
}

/// Evaluates U and the projected force at `x` into `force`.
fn evaluate<P: Potential>(
    potential: &mut P,
    cons: &Constraints,
    mobile: &[bool],
    x: &[[f64; 3]],
    force: &mut [[f64; 3]],
) -> Result<f64, ConstraintError> {
    let u = potential.energy_forces(x, force);
    for (f, &m) in force.iter_mut().zip(mobile) {
        if !m {
            *f = [0.0; 3];
        }
    }
    cons.apply_velocities(x, force)?;
    Ok(u)
}

/// Minimizes `potential` from `positions` (nm, overwritten with the result) keeping the
/// `constraints`; `masses` only mark immobile atoms (mass 0).
pub fn minimize<P: Potential>(
    potential: &mut P,
    positions: &mut [[f64; 3]],
    masses: &[f64],
    constraints: &[DistanceConstraint],
    options: MinimizeOptions,
) -> Result<MinimizeReport, MinimizeError> {
    let n = potential.n_atoms();
    for (what, got) in [("positions", positions.len()), ("masses", masses.len())] {
        if got != n {
            return Err(MinimizeError::LengthMismatch {
                what,
                expected: n,
                got,
            });
        }
    }
    let mobile: Vec<bool> = masses.iter().map(|&m| m > 0.0).collect();
    let weights: Vec<f64> = mobile.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
    let cons = Constraints::new(constraints, &weights)?;
    let n_components = 3.0 * mobile.iter().filter(|&&m| m).count().max(1) as f64;

    let reference = positions.to_vec();
    cons.apply_positions(&reference, positions)?;
    let mut force = vec![[0.0; 3]; n];
    let mut energy = evaluate(potential, &cons, &mobile, positions, &mut force)?;
    let mut evaluations = 1;
    if !energy.is_finite() || force.iter().flatten().any(|f| !f.is_finite()) {
        return Err(MinimizeError::NonFiniteStart { energy });
    }
    let initial_energy = energy;

    let mut history: VecDeque<Correction> = VecDeque::with_capacity(options.history);
    let (mut direction, mut trial, mut trial_force) =
        (vec![[0.0; 3]; n], vec![[0.0; 3]; n], vec![[0.0; 3]; n]);
    let mut alphas = vec![0.0; options.history];
    let rms = |f: &[[f64; 3]]| (dot(f, f) / n_components).sqrt();
    let mut iterations = 0;
    let mut converged = rms(&force) <= options.tolerance;

    while !converged && iterations < options.max_iterations {
        // Two-loop recursion: direction = H * force (= -H grad U).
        direction.copy_from_slice(&force);
        for (j, (s, y, rho)) in history.iter().enumerate().rev() {
            alphas[j] = rho * dot(s, &direction);
            axpy(&mut direction, -alphas[j], y);
        }
        if let Some((s, y, _)) = history.back() {
            let gamma = dot(s, y) / dot(y, y);
            direction.iter_mut().flatten().for_each(|d| *d *= gamma);
        }
        for (j, (s, y, rho)) in history.iter().enumerate() {
            let beta = -rho * dot(y, &direction);
            axpy(&mut direction, alphas[j] - beta, s);
        }
        cons.apply_velocities(positions, &mut direction)?;
        let mut slope = dot(&force, &direction);
        if slope.is_nan() || slope <= 0.0 {
            history.clear();
            direction.copy_from_slice(&force);
            slope = dot(&force, &direction);
        }
        let longest = direction
            .iter()
            .map(|d| dot(&[*d], &[*d]).sqrt())
            .fold(0.0, f64::max);
        let mut alpha = if history.is_empty() {
            0.01f64.min(options.max_step_nm) / longest
        } else {
            (options.max_step_nm / longest).min(1.0)
        };

        let mut accepted = None;
        for _ in 0..40 {
            trial.copy_from_slice(positions);
            axpy(&mut trial, alpha, &direction);
            // A step too long for SHAKE to follow counts as a failed trial.
            let on_manifold = cons.apply_positions(positions, &mut trial).is_ok();
            let u = if on_manifold {
                evaluations += 1;
                evaluate(potential, &cons, &mobile, &trial, &mut trial_force)?
            } else {
                f64::NAN
            };
            if u.is_finite() && u <= energy - 1e-4 * alpha * slope {
                accepted = Some(u);
                break;
            }
            alpha *= 0.5;
        }
        let Some(u) = accepted else {
            if history.is_empty() {
                break;
            }
            history.clear();
            continue;
        };
        iterations += 1;
        // s = x_new - x, y = grad_new - grad = force - force_new.
        let (mut s, mut y) = if history.len() == options.history {
            history.pop_front().map(|(s, y, _)| (s, y)).unwrap()
        } else {
            (vec![[0.0; 3]; n], vec![[0.0; 3]; n])
        };
        for i in 0..n {
            for k in 0..3 {
                s[i][k] = trial[i][k] - positions[i][k];
                y[i][k] = force[i][k] - trial_force[i][k];
            }
        }
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() && options.history > 0 {
            history.push_back((s, y, 1.0 / sy));
        }
        positions.copy_from_slice(&trial);
        force.copy_from_slice(&trial_force);
        energy = u;
        converged = rms(&force) <= options.tolerance;
    }

    Ok(MinimizeReport {
        initial_energy,
        final_energy: energy,
        iterations,
        energy_evaluations: evaluations,
        rms_force: rms(&force),
        max_force: force
            .iter()
            .map(|f| dot(&[*f], &[*f]).sqrt())
            .fold(0.0, f64::max),
        converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock-like valley in the x coordinates of two atoms.
    struct Valley;

    impl Potential for Valley {
        fn n_atoms(&self) -> usize {
            2
        }
        fn energy_forces(&mut self, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
            let (a, b) = (x[0][0], x[1][0]);
            let u = (1.0 - a).powi(2)
                + 100.0 * (b - a * a).powi(2)
                + x[0][1].powi(2)
                + x[1][1].powi(2)
                + x[0][2].powi(2)
                + x[1][2].powi(2);
            f[0] = [
                2.0 * (1.0 - a) + 400.0 * a * (b - a * a),
                -2.0 * x[0][1],
                -2.0 * x[0][2],
            ];
            f[1] = [-200.0 * (b - a * a), -2.0 * x[1][1], -2.0 * x[1][2]];
            u
        }
    }

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let mut x = [[-1.2, 0.3, -0.2], [1.0, 0.1, 0.4]];
        let options = MinimizeOptions {
            tolerance: 1e-8,
            max_step_nm: 1.0,
            ..Default::default()
        };
        let report = minimize(&mut Valley, &mut x, &[1.0, 1.0], &[], options).unwrap();
        assert!(report.converged, "{report:?}");
        assert!(
            (x[0][0] - 1.0).abs() < 1e-6 && (x[1][0] - 1.0).abs() < 1e-6,
            "{x:?}"
        );
    }

    #[test]
    fn immobile_atoms_stay() {
        let mut x = [[-1.2, 0.3, -0.2], [1.0, 0.1, 0.4]];
        let report = minimize(
            &mut Valley,
            &mut x,
            &[1.0, 0.0],
            &[],
            MinimizeOptions {
                tolerance: 1e-6,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(report.converged, "{report:?}");
        assert_eq!(x[1], [1.0, 0.1, 0.4]);
        // With b = 1 fixed, U(a) = (1 - a)^2 + 100 (1 - a^2)^2 has a local minimum at
        // a = -0.99497 (U' = -2 (1 - a) - 400 a (1 - a^2) = 0), the one downhill from -1.2.
        assert!((x[0][0] + 0.994975).abs() < 1e-5, "{x:?}");
    }
}
