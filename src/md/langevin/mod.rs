//! Langevin dynamics by the BAOAB splitting (Leimkuhler & Matthews, Appl. Math. Res.
//! Express. 2013, 34; J. Chem. Phys. 138, 174102, 2013), as OpenMM's
//! `LangevinMiddleIntegrator` (Zhang, Liu, Leimkuhler & Tuckerman, J. Phys. Chem. B 123,
//! 6120, 2019), with H-bond constraints and centre-of-mass motion removal.
//!
//! One step of length dt (ps) with forces F (kJ/mol/nm), inverse masses w = 1/m (1/amu),
//! friction gamma (1/ps), a = exp(-gamma dt), kT = k_B T (kJ/mol):
//!
//! ```text
//! B  v <- v + (dt/2) w F(x);             RATTLE on v
//! A  x' = x + (dt/2) v
//! O  v <- a v + sqrt((1 - a^2) kT w) xi,  xi ~ N(0, 1) per component
//! A  x' <- x' + (dt/2) v
//!    SHAKE x' onto the constraints (reference x);  v <- v + (x'_constrained - x') / dt
//!    x <- x'_constrained;  F <- F(x)
//! B  v <- v + (dt/2) w F(x);             RATTLE on v
//! ```
//!
//! OpenMM stores the half-step velocity and merges the closing B of one step with the
//! opening B of the next into one full kick followed by one velocity projection
//! (`ReferenceLangevinMiddleDynamics::update`); projection is linear, so the positions
//! here are those of OpenMM for the same noise (a test replays OpenMM's update and
//! agrees to 1e-13 nm over 500 steps), and the velocities are the synchronous ones
//! (OpenMM's plus the last half kick). [`LangevinIntegrator::run`] likewise projects
//! once per step and only projects after the closing kick when a frame is due.
//!
//! A run may stop between any two steps and go on later without changing a bit:
//! [`LangevinIntegrator::state`] is positions, velocities, the step count, the random
//! stream's position and whether the closing projection is still pending (a run ended
//! by [`LangevinIntegrator::run_segment`] with `close` false leaves it to the next
//! step, as an unbroken run would); [`LangevinIntegrator::restore`] puts it back and
//! recomputes the forces, a deterministic function of the positions.
//!
//! Two kinetic energies: K of the synchronous velocities, which with U is the energy
//! conserved without friction, and K_half of the half-step velocities
//! P(v - (dt/2) w F), which is what OpenMM reports and which is Maxwell–Boltzmann
//! exactly for harmonic forces; the synchronous velocities run cold by about
//! (omega dt)^2 / 4 per stiff mode (3 % at 2 fs for a molecule with hydrogen angle
//! bends). The temperature is taken from K_half.
//!
//! Centre-of-mass motion is removed before every `remove_com_every`-th step, as OpenMM's
//! `CMMotionRemover` (v <- v - P / M over atoms of nonzero mass). The instantaneous
//! temperature is T = 2 K_half / (n_dof k_B) with n_dof = 3 N_mobile - n_constraints - 3
//! (the 3 only when COM motion is removed), k_B = 0.00831446261815324 kJ/mol/K
//! (OpenMM's BOLTZ). Atoms of zero mass do not move.
//!
//! Every force evaluation is checked: a non-finite energy or any |F_i| above `max_force`
//! (default 1e6 kJ/mol/nm) stops the run with [`DynamicsError::ForceBlowUp`] naming the
//! step and the atoms. The step allocates nothing.

use rand_chacha::ChaCha20Rng;

use crate::md::constraints::{Constraints, DistanceConstraint};
use crate::md::dynamics::check_forces;
pub use crate::md::dynamics::{BOLTZ, DEFAULT_MAX_FORCE, DynamicsError, Frame, LangevinParams};
use crate::md::potential::Potential;
use crate::md::step_loops;
use crate::random::chacha::ChaChaStream;
use crate::random::{fill_normals, normal};

/// BAOAB Langevin integrator owning its potential, state and random stream.
#[derive(Debug, Clone)]
pub struct LangevinIntegrator<P: Potential> {
    potential: P,
    params: LangevinParams,
    mass: Vec<f64>,
    inv_mass: Vec<f64>,
    constraints: Constraints,
    /// The stream of the `ChaCha20Rng` given to [`Self::new`], made 16 blocks at a time.
    rng: ChaChaStream,
    positions: Vec<[f64; 3]>,
    velocities: Vec<[f64; 3]>,
    forces: Vec<[f64; 3]>,
    potential_energy: f64,
    step: u64,
    /// sqrt((1 - a^2) kT / m_i) per coordinate.
    noise_amplitude: Vec<f64>,
    /// (dt/2) / m_i per coordinate (0 for atoms of zero mass).
    kick_scale: Vec<f64>,
    /// Atoms of zero mass, which the flat loops of a step move and which are then put
    /// back ([`Self::save_immobile`]).
    immobile: Vec<usize>,
    /// Their velocities before a flat loop.
    saved_velocities: Vec<[f64; 3]>,
    velocity_scale: f64,
    drift: Vec<[f64; 3]>,
    unconstrained: Vec<[f64; 3]>,
    noise: Vec<f64>,
    dof: usize,
    /// The velocities still await the projection after the closing kick (the next
    /// step's opening projection does it).
    projection_pending: bool,
}

/// What an integrator needs to go on from where it stopped, bit for bit: the
/// potential, masses, constraints, parameters and the random stream's key are the
/// integrator's own and are not part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegratorState {
    /// Steps taken.
    pub step: u64,
    /// nm.
    pub positions: Vec<[f64; 3]>,
    /// nm/ps; not yet projected onto the constraints when `projection_pending`.
    pub velocities: Vec<[f64; 3]>,
    pub projection_pending: bool,
    /// Offset of the thermostat's random stream, in 32-bit words.
    pub rng_word_pos: u128,
}

impl<P: Potential> LangevinIntegrator<P> {
    /// Sets up dynamics of `potential` from `positions` (nm; moved onto the constraints
    /// first) at rest; draw velocities with [`Self::initialize_velocities`].
    pub fn new(
        potential: P,
        masses: &[f64],
        positions: &[[f64; 3]],
        constraints: &[DistanceConstraint],
        params: LangevinParams,
        rng: ChaCha20Rng,
    ) -> Result<Self, DynamicsError> {
        params.validate()?;
        let n = potential.n_atoms();
        for (what, got) in [("masses", masses.len()), ("positions", positions.len())] {
            if got != n {
                return Err(DynamicsError::LengthMismatch {
                    what,
                    expected: n,
                    got,
                });
            }
        }
        if let Some(&m) = masses.iter().find(|m| !(m.is_finite() && **m >= 0.0)) {
            return Err(DynamicsError::InvalidParameter {
                name: "mass",
                value: m,
                reason: "must be finite and >= 0",
            });
        }
        let constraints = Constraints::new(constraints, masses)?;
        let n_mobile = masses.iter().filter(|&&m| m > 0.0).count();
        let com = if params.remove_com_every > 0 { 3 } else { 0 };
        let dof = (3 * n_mobile).saturating_sub(constraints.len() + com);
        let mut out = Self {
            potential,
            params,
            mass: masses.to_vec(),
            inv_mass: masses
                .iter()
                .map(|&m| if m > 0.0 { 1.0 / m } else { 0.0 })
                .collect(),
            constraints,
            rng: ChaChaStream::continuing(&rng),
            positions: positions.to_vec(),
            velocities: vec![[0.0; 3]; n],
            forces: vec![[0.0; 3]; n],
            potential_energy: 0.0,
            step: 0,
            noise_amplitude: vec![0.0; 3 * n],
            kick_scale: masses
                .iter()
                .flat_map(|&m| {
                    let w = if m > 0.0 { 1.0 / m } else { 0.0 };
                    [0.5 * params.timestep_ps * w; 3]
                })
                .collect(),
            immobile: (0..n).filter(|&i| masses[i] == 0.0).collect(),
            saved_velocities: vec![[0.0; 3]; masses.iter().filter(|&&m| m == 0.0).count()],
            velocity_scale: 1.0,
            drift: vec![[0.0; 3]; n],
            unconstrained: vec![[0.0; 3]; n],
            noise: vec![0.0; 3 * n],
            dof,
            projection_pending: false,
        };
        out.set_temperature(params.temperature_k)?;
        out.set_positions(positions)?;
        Ok(out)
    }

    /// Replaces the positions (moved onto the constraints) and recomputes the forces.
    pub fn set_positions(&mut self, positions: &[[f64; 3]]) -> Result<(), DynamicsError> {
        let n = self.mass.len();
        if positions.len() != n {
            return Err(DynamicsError::LengthMismatch {
                what: "positions",
                expected: n,
                got: positions.len(),
            });
        }
        self.positions.copy_from_slice(positions);
        self.drift.copy_from_slice(positions);
        let step = self.step;
        self.constraints
            .apply_positions(&self.drift, &mut self.positions)
            .map_err(|source| DynamicsError::Constraint { step, source })?;
        self.compute_forces()
    }

    /// Forces and energy at the current positions, checked for a blow-up at the current
    /// step.
    #[inline(always)]
    fn compute_forces(&mut self) -> Result<(), DynamicsError> {
        self.potential_energy = self
            .potential
            .energy_forces(&self.positions, &mut self.forces);
        check_forces(
            self.step,
            self.potential_energy,
            &self.forces,
            self.params.max_force,
        )
    }

    /// Replaces the velocities (nm/ps), projected onto the constraints.
    pub fn set_velocities(&mut self, velocities: &[[f64; 3]]) -> Result<(), DynamicsError> {
        let n = self.mass.len();
        if velocities.len() != n {
            return Err(DynamicsError::LengthMismatch {
                what: "velocities",
                expected: n,
                got: velocities.len(),
            });
        }
        self.velocities.copy_from_slice(velocities);
        self.project_velocities()
    }

    /// Draws velocities from the Maxwell–Boltzmann distribution at the thermostat
    /// temperature (v_ik = sqrt(kT/m_i) xi), removes COM motion if enabled, and projects
    /// onto the constraints.
    pub fn initialize_velocities(&mut self) -> Result<(), DynamicsError> {
        let kt = BOLTZ * self.params.temperature_k;
        for (v, &w) in self.velocities.iter_mut().zip(&self.inv_mass) {
            let s = (kt * w).sqrt();
            *v = [
                s * normal(&mut self.rng),
                s * normal(&mut self.rng),
                s * normal(&mut self.rng),
            ];
        }
        if self.params.remove_com_every > 0 {
            self.remove_com_motion();
        }
        self.project_velocities()
    }

    /// Changes the thermostat temperature (K).
    pub fn set_temperature(&mut self, temperature_k: f64) -> Result<(), DynamicsError> {
        LangevinParams {
            temperature_k,
            ..self.params
        }
        .validate()?;
        self.params.temperature_k = temperature_k;
        let gdt = self.params.friction_per_ps * self.params.timestep_ps;
        self.velocity_scale = (-gdt).exp();
        let one_minus_a2 = -(-2.0 * gdt).exp_m1();
        let kt = BOLTZ * temperature_k;
        for (amp, &w) in self.noise_amplitude.chunks_exact_mut(3).zip(&self.inv_mass) {
            amp.fill((one_minus_a2 * kt * w).sqrt());
        }
        Ok(())
    }

    /// Subtracts the centre-of-mass velocity from every atom of nonzero mass.
    pub fn remove_com_motion(&mut self) {
        if let Some(vcm) = self.com_velocity() {
            for (v, &m) in self.velocities.iter_mut().zip(&self.mass) {
                if m > 0.0 {
                    for k in 0..3 {
                        v[k] -= vcm[k];
                    }
                }
            }
        }
    }

    /// P / M, `None` when the total mass is zero.
    #[inline]
    fn com_velocity(&self) -> Option<[f64; 3]> {
        let (mut p, mut total) = ([0.0; 3], 0.0);
        for (v, &m) in self.velocities.iter().zip(&self.mass) {
            for k in 0..3 {
                p[k] += m * v[k];
            }
            total += m;
        }
        (total > 0.0).then(|| [p[0] / total, p[1] / total, p[2] / total])
    }

    fn project_velocities(&mut self) -> Result<(), DynamicsError> {
        self.projection_pending = false;
        if self.constraints.is_empty() {
            return Ok(());
        }
        let step = self.step;
        self.constraints
            .apply_velocities(&self.positions, &mut self.velocities)
            .map_err(|source| DynamicsError::Constraint { step, source })
    }

    /// Half kick v <- v + (dt/2) w F, without the RATTLE projection.
    fn half_kick(&mut self) {
        step_loops::kick(
            self.velocities.as_flattened_mut(),
            self.forces.as_flattened(),
            &self.kick_scale,
            None,
        );
    }

    /// Keeps the velocities of the atoms of zero mass before a flat loop moves them.
    fn save_immobile(&mut self) {
        for (saved, &i) in self.saved_velocities.iter_mut().zip(&self.immobile) {
            *saved = self.velocities[i];
        }
    }

    /// After the opening kick: atoms of zero mass get their saved velocities plus their
    /// kick, which is (+0 f) (no COM removal for them; the kick is kept, though it adds
    /// zero, because it turns a -0 into +0 as the per-atom code did).
    fn restore_immobile_after_kick(&mut self) {
        for (&i, &saved) in self.immobile.iter().zip(&self.saved_velocities) {
            let (v, f) = (&mut self.velocities[i], self.forces[i]);
            *v = saved;
            for k in 0..3 {
                v[k] += self.kick_scale[3 * i + k] * f[k];
            }
        }
    }

    /// After the A-O-A loop: atoms of zero mass keep their velocities and stay where
    /// they are.
    fn restore_immobile_after_drift(&mut self) {
        for (&i, &saved) in self.immobile.iter().zip(&self.saved_velocities) {
            self.velocities[i] = saved;
            self.drift[i] = self.positions[i];
            self.unconstrained[i] = self.positions[i];
        }
    }

    /// Advances one BAOAB step.
    pub fn step(&mut self) -> Result<(), DynamicsError> {
        self.advance(true)
    }

    /// One step; `project_last` false leaves out the RATTLE projection after the
    /// closing half kick, for [`Self::run`] to merge it into the next step's opening
    /// projection. Projection is linear at fixed positions and preserves momentum, so
    /// P(P(v + k) + k) = P(v + 2k) and COM removal commutes with it: the trajectory is
    /// the same, with one velocity projection per step instead of two.
    fn advance(&mut self, project_last: bool) -> Result<(), DynamicsError> {
        let every = self.params.remove_com_every;
        if every > 0 && self.step.is_multiple_of(every) {
            // COM removal (atoms of nonzero mass) and the opening half kick in one pass.
            let vcm = self.com_velocity();
            self.save_immobile();
            step_loops::kick(
                self.velocities.as_flattened_mut(),
                self.forces.as_flattened(),
                &self.kick_scale,
                vcm,
            );
            self.restore_immobile_after_kick();
        } else {
            self.half_kick();
        }
        self.project_velocities()?;

        let h = 0.5 * self.params.timestep_ps;
        let thermostat = self.params.friction_per_ps > 0.0;
        if thermostat {
            fill_normals(&mut self.rng, &mut self.noise);
        }
        self.save_immobile();
        step_loops::drift_thermostat_drift(
            self.positions.as_flattened(),
            self.velocities.as_flattened_mut(),
            thermostat.then_some((
                self.velocity_scale,
                &self.noise_amplitude[..],
                &self.noise[..],
            )),
            h,
            self.drift.as_flattened_mut(),
            self.unconstrained.as_flattened_mut(),
        );
        self.restore_immobile_after_drift();

        let next = self.step + 1;
        if !self.constraints.is_empty() {
            self.constraints
                .apply_positions(&self.positions, &mut self.drift)
                .map_err(|source| DynamicsError::Constraint { step: next, source })?;
            step_loops::constraint_velocity(
                self.velocities.as_flattened_mut(),
                self.drift.as_flattened(),
                self.unconstrained.as_flattened(),
                1.0 / self.params.timestep_ps,
            );
        }
        std::mem::swap(&mut self.positions, &mut self.drift);
        self.step = next;

        self.compute_forces()?;
        self.half_kick();
        if project_last {
            self.project_velocities()?;
        } else {
            self.projection_pending = true;
        }
        Ok(())
    }

    /// Runs `steps` steps, calling `on_frame` after every step whose index is a multiple
    /// of `save_every` (0: never).
    pub fn run(
        &mut self,
        steps: u64,
        save_every: u64,
        on_frame: impl FnMut(&Frame<'_>),
    ) -> Result<(), DynamicsError> {
        self.run_segment(steps, save_every, true, on_frame)
    }

    /// As [`Self::run`]; with `close` false the velocities after the last step are
    /// left unprojected (unless a frame was saved there), as they are between any two
    /// steps of a run, so that a later run continues exactly as one unbroken run would.
    pub fn run_segment(
        &mut self,
        steps: u64,
        save_every: u64,
        close: bool,
        mut on_frame: impl FnMut(&Frame<'_>),
    ) -> Result<(), DynamicsError> {
        for n in 1..=steps {
            let save = save_every > 0 && (self.step + 1).is_multiple_of(save_every);
            self.advance(save || (close && n == steps))?;
            if save {
                on_frame(&self.frame());
            }
        }
        Ok(())
    }

    /// Where the run stands: enough to continue it bit for bit with [`Self::restore`].
    pub fn state(&self) -> IntegratorState {
        IntegratorState {
            step: self.step,
            positions: self.positions.clone(),
            velocities: self.velocities.clone(),
            projection_pending: self.projection_pending,
            rng_word_pos: self.rng.word_pos(),
        }
    }

    /// Continues from `state` (of an integrator of the same system, parameters and
    /// random stream): positions and velocities as they are (no projection), the step
    /// count, the stream's position, and the forces recomputed.
    pub fn restore(&mut self, state: &IntegratorState) -> Result<(), DynamicsError> {
        let n = self.mass.len();
        for (what, got) in [
            ("positions", state.positions.len()),
            ("velocities", state.velocities.len()),
        ] {
            if got != n {
                return Err(DynamicsError::LengthMismatch {
                    what,
                    expected: n,
                    got,
                });
            }
        }
        self.step = state.step;
        self.positions.copy_from_slice(&state.positions);
        self.velocities.copy_from_slice(&state.velocities);
        self.projection_pending = state.projection_pending;
        self.rng.seek(state.rng_word_pos);
        self.compute_forces()
    }

    /// The current state as a frame.
    pub fn frame(&mut self) -> Frame<'_> {
        let half_step_kinetic_energy = self.half_step_kinetic_energy();
        Frame {
            step: self.step,
            time_ps: self.time_ps(),
            positions: &self.positions,
            velocities: &self.velocities,
            forces: &self.forces,
            potential_energy: self.potential_energy,
            kinetic_energy: self.kinetic_energy(),
            half_step_kinetic_energy,
            temperature_k: self.temperature_from(half_step_kinetic_energy),
        }
    }

    fn kinetic_energy_of(&self, velocities: &[[f64; 3]]) -> f64 {
        0.5 * velocities
            .iter()
            .zip(&self.mass)
            .map(|(v, &m)| m * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]))
            .sum::<f64>()
    }

    /// Kinetic energy 1/2 sum m v^2 of the on-step velocities (kJ/mol); with U it is
    /// the energy conserved without friction.
    pub fn kinetic_energy(&self) -> f64 {
        self.kinetic_energy_of(&self.velocities)
    }

    /// Kinetic energy of the half-step velocities P(v - (dt/2) w F) (P the RATTLE
    /// projection), which are OpenMM's stored LangevinMiddle velocities after its
    /// constraint projection, so this is the kinetic energy OpenMM reports. They are the
    /// velocities between the O step and the closing kick, Maxwell–Boltzmann exactly for
    /// harmonic forces, whereas the on-step velocities have <v^2> = (kT/m)(1 - (omega
    /// dt)^2 / 4) there (measured: 0.9375 kT/m at omega dt = 0.5, against 1.0000 for
    /// these). Use it for the temperature.
    pub fn half_step_kinetic_energy(&mut self) -> f64 {
        let h = 0.5 * self.params.timestep_ps;
        for (((u, v), f), &w) in self
            .unconstrained
            .iter_mut()
            .zip(&self.velocities)
            .zip(&self.forces)
            .zip(&self.inv_mass)
        {
            let s = h * w;
            *u = [v[0] - s * f[0], v[1] - s * f[1], v[2] - s * f[2]];
        }
        if !self.constraints.is_empty()
            && self
                .constraints
                .apply_velocities(&self.positions, &mut self.unconstrained)
                .is_err()
        {
            return f64::NAN;
        }
        self.kinetic_energy_of(&self.unconstrained)
    }

    fn temperature_from(&self, kinetic_energy: f64) -> f64 {
        if self.dof == 0 {
            0.0
        } else {
            2.0 * kinetic_energy / (self.dof as f64 * BOLTZ)
        }
    }

    /// Instantaneous temperature 2 K_half / (n_dof k_B) (K), K_half from
    /// [`Self::half_step_kinetic_energy`].
    pub fn temperature(&mut self) -> f64 {
        let k = self.half_step_kinetic_energy();
        self.temperature_from(k)
    }

    /// 3 N_mobile - n_constraints - (3 if COM motion is removed).
    pub fn degrees_of_freedom(&self) -> usize {
        self.dof
    }

    pub fn positions(&self) -> &[[f64; 3]] {
        &self.positions
    }

    /// The velocities (nm/ps); not yet projected onto the constraints after a
    /// [`Self::run_segment`] that did not `close`.
    pub fn velocities(&self) -> &[[f64; 3]] {
        &self.velocities
    }

    pub fn forces(&self) -> &[[f64; 3]] {
        &self.forces
    }

    pub fn potential_energy(&self) -> f64 {
        self.potential_energy
    }

    pub fn masses(&self) -> &[f64] {
        &self.mass
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn time_ps(&self) -> f64 {
        self.step as f64 * self.params.timestep_ps
    }

    pub fn params(&self) -> &LangevinParams {
        &self.params
    }

    pub fn constraints(&self) -> &Constraints {
        &self.constraints
    }

    pub fn potential(&self) -> &P {
        &self.potential
    }

    pub fn potential_mut(&mut self) -> &mut P {
        &mut self.potential
    }

    /// Exchanges configurations (positions, velocities, forces, energy) with `other`,
    /// which must hold the same system; the random streams stay.
    pub(crate) fn swap_configuration(&mut self, other: &mut Self) {
        std::mem::swap(&mut self.positions, &mut other.positions);
        std::mem::swap(&mut self.velocities, &mut other.velocities);
        std::mem::swap(&mut self.forces, &mut other.forces);
        std::mem::swap(&mut self.potential_energy, &mut other.potential_energy);
    }

    /// Multiplies every velocity by `factor`.
    pub fn scale_velocities(&mut self, factor: f64) {
        for v in &mut self.velocities {
            for c in v.iter_mut() {
                *c *= factor;
            }
        }
    }
}

#[cfg(test)]
mod tests;
