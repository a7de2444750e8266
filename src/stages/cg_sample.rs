//! `cg_sample`: Langevin dynamics on the learned CG potential U_hat.
//!
//! Equation of motion, for bead positions z_i (nm), bead masses m_i (amu, the `mass_amu`
//! column of the bead table), friction gamma (1/ps) and temperature T (K):
//!
//! ```text
//! dz_i = v_i dt
//! m_i dv_i = -grad_i U_hat(z) dt - gamma m_i v_i dt + sqrt(2 gamma m_i k_B T) dW_i
//! ```
//!
//! integrated by the BAOAB splitting of [`crate::md::langevin`] (no constraints; the
//! centre-of-mass velocity is removed before every step, so the kinetic temperature has
//! 3 n - 3 degrees of freedom). U_hat is evaluated on the host in f64
//! ([`crate::nn::cg_potential_host`]), the same function as the trained
//! [`crate::nn::CgPotential`]. Units: nm, ps (the `timestep_fs` param is in fs), kJ/mol,
//! kJ/mol/nm, K, amu.
//!
//! `chains` independent chains start from frames of the input (mapped) trajectory whose
//! `temperature_index` equals the param: chain c from eligible frame
//! floor(c n_eligible / chains), with Maxwell–Boltzmann velocities. Each chain runs
//! `equilibration_steps` unsaved steps, then `steps` steps saving every `save_every`-th;
//! saved `step` and `time_ps` count from the end of equilibration.
//!
//! Determinism: chain c draws every random number (velocities, Langevin noise) from its
//! own ChaCha stream `ctx.stream(c)`, and chains share nothing, so the output is a fixed
//! function of (inputs, params, node seed), bit for bit, whatever the number of threads
//! or the order chains run in. Frames are ordered by chain, then step. U_hat gives the
//! same bits on every instruction set it dispatches to (see
//! [`crate::nn::cg_potential_host`]). The saved `kinetic_temperature_k` is that of the
//! half-step velocities, as in `fg_sample`.
//!
//! Blow-up: every force evaluation is checked (energy finite, every |F_i| finite and at
//! most `max_force_kj_per_mol_nm`) and every position must be finite and within
//! [`MAX_POSITION_NM`] of the origin; otherwise the stage fails naming the chain, the
//! step (counted from the start of equilibration) and the beads, and publishes nothing.
//! The first chain to fail stops the others; of the chains that failed, the error names
//! the lowest-numbered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::atoms::{ATOMS, AtomRow, from_table as atoms_from_table};
use crate::artifact::kind::CG_POTENTIAL;
use crate::artifact::tensors;
use crate::artifact::trajectory::{FrameRecord, TRAJECTORY, Trajectory};
use crate::md::dynamics::{DynamicsError, LangevinParams};
use crate::md::langevin::LangevinIntegrator;
use crate::md::potential::Potential;
use crate::nn::cg_potential_host::HostCgPotential;

/// A bead farther than this from the origin (nm) counts as blown up.
pub const MAX_POSITION_NM: f64 = 1e4;

/// Steps between progress reports of one chain.
const PROGRESS_CHUNK: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CgSampleParams {
    pub chains: usize,
    pub temperature_k: f64,
    pub timestep_fs: f64,
    pub friction_per_ps: f64,
    pub equilibration_steps: u64,
    pub steps: u64,
    pub save_every: u64,
    pub temperature_index: i32,
    pub max_force_kj_per_mol_nm: f64,
}

impl Default for CgSampleParams {
    fn default() -> Self {
        CgSampleParams {
            chains: 8,
            temperature_k: 300.0,
            timestep_fs: 2.0,
            friction_per_ps: 1.0,
            equilibration_steps: 1000,
            steps: 100_000,
            save_every: 100,
            temperature_index: 0,
            max_force_kj_per_mol_nm: 1e5,
        }
    }
}

pub struct CgSample;

impl Stage for CgSample {
    type Params = CgSampleParams;
    const NAME: &'static str = "cg_sample";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "Langevin (BAOAB) dynamics on the CG potential U_hat: independent \
         chains from frames of the mapped trajectory, bead masses from the bead table";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "potential",
            kind: CG_POTENTIAL,
            about: "the CG potential U_hat (weights and architecture)",
        },
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "mapped CG trajectory; its frames are the chains' starting configurations",
        },
        Port {
            name: "beads",
            kind: ATOMS,
            about: "one row per bead; mass_amu is the bead mass",
        },
    ];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "CG frames by chain (replica = chain) then step: bead positions, model \
                    forces, U_hat, kinetic temperature",
        },
        Port {
            name: "beads",
            kind: ATOMS,
            about: "the input bead table, passed through",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "chains",
            about: "independent chains, run in parallel",
        },
        ParamDoc {
            name: "temperature_k",
            about: "thermostat temperature (K)",
        },
        ParamDoc {
            name: "timestep_fs",
            about: "integration step (fs)",
        },
        ParamDoc {
            name: "friction_per_ps",
            about: "Langevin collision rate (1/ps); 0 gives constant-energy dynamics",
        },
        ParamDoc {
            name: "equilibration_steps",
            about: "steps run and discarded before saving, per chain",
        },
        ParamDoc {
            name: "steps",
            about: "production steps per chain",
        },
        ParamDoc {
            name: "save_every",
            about: "steps between saved frames",
        },
        ParamDoc {
            name: "temperature_index",
            about: "which frames of the input trajectory (by temperature_index) may start a chain",
        },
        ParamDoc {
            name: "max_force_kj_per_mol_nm",
            about: "a bead force above this (kJ/mol/nm) stops the stage as a blow-up",
        },
    ];

    fn check(p: &CgSampleParams) -> Result<(), ParamProblem> {
        let positive = ParamProblem::positive;
        if p.chains == 0 {
            return Err(ParamProblem::new("chains", "must be at least 1"));
        }
        positive("temperature_k", p.temperature_k)?;
        positive("timestep_fs", p.timestep_fs)?;
        if !(p.friction_per_ps.is_finite() && p.friction_per_ps >= 0.0) {
            return Err(ParamProblem::new(
                "friction_per_ps",
                format!("must be zero or positive, got {}", p.friction_per_ps),
            ));
        }
        if p.steps == 0 {
            return Err(ParamProblem::new("steps", "must be at least 1"));
        }
        if p.save_every == 0 || p.save_every > p.steps {
            return Err(ParamProblem::new(
                "save_every",
                format!("must be between 1 and steps ({})", p.steps),
            ));
        }
        if p.temperature_index < 0 {
            return Err(ParamProblem::new(
                "temperature_index",
                format!("must be 0 or more, got {}", p.temperature_index),
            ));
        }
        positive("max_force_kj_per_mol_nm", p.max_force_kj_per_mol_nm)?;
        Ok(())
    }

    fn run(
        p: &CgSampleParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let bad = |input: &str, message: String| StageError::BadInput {
            input: input.to_string(),
            message,
        };
        let tensors = tensors::from_table(inputs.table("potential")?)
            .map_err(|e| bad("potential", e.to_string()))?;
        let potential = HostCgPotential::from_tensors(&tensors).map_err(|e| bad("potential", e))?;
        let n = potential.beads();
        let start = Trajectory::from_table(inputs.table("trajectory")?)
            .map_err(|e| bad("trajectory", e.to_string()))?;
        let beads_table = inputs.table("beads")?;
        let beads = atoms_from_table(beads_table).map_err(|e| bad("beads", e.to_string()))?;
        if !start.is_empty() && start.n_atoms != n {
            return Err(bad(
                "trajectory",
                format!(
                    "frames have {} beads but the potential has {n}",
                    start.n_atoms
                ),
            ));
        }
        if beads.len() != n {
            return Err(bad(
                "beads",
                format!("{} rows but the potential has {n} beads", beads.len()),
            ));
        }
        let masses: Vec<f64> = beads.iter().map(|b| b.mass_amu).collect();
        if let Some(i) = masses.iter().position(|m| !(m.is_finite() && *m > 0.0)) {
            return Err(bad(
                "beads",
                format!(
                    "bead {} has mass {} amu; every bead needs a positive mass",
                    describe(&beads, i),
                    masses[i]
                ),
            ));
        }
        let eligible: Vec<usize> = (0..start.len())
            .filter(|&f| start.temperature_index[f] == p.temperature_index)
            .collect();
        if eligible.is_empty() {
            return Err(bad(
                "trajectory",
                format!(
                    "no frame has temperature_index {} ({} frames in all)",
                    p.temperature_index,
                    start.len()
                ),
            ));
        }
        // Chain c starts from eligible frame floor(c n_eligible / chains).
        let starts: Vec<usize> = (0..p.chains)
            .map(|c| eligible[c * eligible.len() / p.chains])
            .collect();
        for &f in &starts {
            let absurd: Vec<usize> = (0..n)
                .filter(|&i| {
                    start.positions(f)[3 * i..3 * i + 3]
                        .iter()
                        .any(|&c| absurd_coordinate(c))
                })
                .collect();
            if !absurd.is_empty() {
                let names: Vec<String> = absurd.iter().map(|&i| describe(&beads, i)).collect();
                return Err(bad(
                    "trajectory",
                    format!(
                        "frame {f} has non-finite or absurd positions for beads {}",
                        names.join(", ")
                    ),
                ));
            }
        }

        let params = LangevinParams {
            max_force: p.max_force_kj_per_mol_nm,
            ..LangevinParams::new(p.temperature_k, p.friction_per_ps, p.timestep_fs * 1e-3)
        };
        let streams: Vec<_> = (0..p.chains).map(|c| ctx.stream(c as u64)).collect();
        let progress = ctx.progress;
        progress.start("steps", p.chains as u64 * (p.equilibration_steps + p.steps));
        let clock = Instant::now();
        // Set by the first chain that fails, so the others stop at their next chunk.
        let stop = AtomicBool::new(false);
        let chains: Vec<Result<Trajectory, Option<StageError>>> = streams
            .into_par_iter()
            .enumerate()
            .map(|(c, rng)| {
                let frame = starts[c];
                let positions: Vec<[f64; 3]> = start
                    .positions(frame)
                    .chunks_exact(3)
                    .map(|x| [x[0], x[1], x[2]])
                    .collect();
                let guarded = Guarded {
                    inner: potential.clone(),
                    bad_beads: Vec::new(),
                };
                let failed = |e: DynamicsError, md: Option<&LangevinIntegrator<Guarded>>| {
                    stop.store(true, Ordering::Relaxed);
                    Some(blow_up(e, c, frame, md.map(|m| m.potential()), &beads))
                };
                let stopped = || stop.load(Ordering::Relaxed);
                let mut md =
                    LangevinIntegrator::new(guarded, &masses, &positions, &[], params, rng)
                        .map_err(|e| failed(e, None))?;
                md.initialize_velocities().map_err(|e| failed(e, None))?;
                let mut left = p.equilibration_steps;
                while left > 0 {
                    if stopped() {
                        return Err(None);
                    }
                    let chunk = left.min(PROGRESS_CHUNK);
                    if let Err(e) = md.run(chunk, 0, |_| {}) {
                        return Err(failed(e, Some(&md)));
                    }
                    progress.advance(chunk);
                    left -= chunk;
                }
                let mut out = Trajectory::new(n);
                let timestep_ps = p.timestep_fs * 1e-3;
                let mut done = 0u64;
                let mut unreported = 0u64;
                while done < p.steps {
                    if stopped() {
                        return Err(None);
                    }
                    let chunk = p.save_every.min(p.steps - done);
                    if let Err(e) = md.run(chunk, 0, |_| {}) {
                        return Err(failed(e, Some(&md)));
                    }
                    done += chunk;
                    unreported += chunk;
                    if done.is_multiple_of(p.save_every) {
                        let f = md.frame();
                        out.push(FrameRecord {
                            temperature_index: 0,
                            replica: c as i32,
                            temperature_k: p.temperature_k,
                            step: done as i64,
                            time_ps: done as f64 * timestep_ps,
                            positions_nm: f.positions,
                            forces: f.forces,
                            potential: f.potential_energy,
                            kinetic_temperature_k: f.temperature_k,
                        });
                    }
                    if unreported >= PROGRESS_CHUNK || done == p.steps {
                        progress.advance(unreported);
                        unreported = 0;
                    }
                }
                Ok(out)
            })
            .collect();
        let seconds = clock.elapsed().as_secs_f64();

        // The failure of the lowest-numbered chain that failed (chains stopped because
        // another failed carry none).
        let mut finished = Vec::with_capacity(chains.len());
        let mut first_error = None;
        for chain in chains {
            match chain {
                Ok(t) => finished.push(t),
                Err(Some(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(None) => {}
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let mut trajectory = Trajectory::new(n);
        for chain in finished {
            trajectory.temperature_index.extend(chain.temperature_index);
            trajectory.replica.extend(chain.replica);
            trajectory.temperature_k.extend(chain.temperature_k);
            trajectory.step.extend(chain.step);
            trajectory.time_ps.extend(chain.time_ps);
            trajectory.positions_nm.extend(chain.positions_nm);
            trajectory.forces.extend(chain.forces);
            trajectory.potential.extend(chain.potential);
            trajectory
                .kinetic_temperature_k
                .extend(chain.kinetic_temperature_k);
        }
        let total_steps = p.chains as u64 * (p.equilibration_steps + p.steps);
        tracing::info!(
            chains = p.chains,
            beads = n,
            frames = trajectory.len(),
            "cg_sample: {total_steps} steps in {seconds:.2} s, {:.0} steps/s",
            total_steps as f64 / seconds.max(1e-9)
        );
        Ok(Outputs::from([
            (
                "trajectory".to_string(),
                Artifact::Table(trajectory.to_table()),
            ),
            ("beads".to_string(), Artifact::Table(beads_table.clone())),
        ]))
    }
}

/// A coordinate that is not finite or lies beyond [`MAX_POSITION_NM`].
fn absurd_coordinate(c: f64) -> bool {
    !c.is_finite() || c.abs() > MAX_POSITION_NM
}

/// "index name (residue number)" of a bead.
fn describe(beads: &[AtomRow], i: usize) -> String {
    match beads.get(i) {
        Some(b) => format!(
            "{i} {} ({} {})",
            b.name,
            b.residue_name,
            b.residue_index + 1
        ),
        None => i.to_string(),
    }
}

/// U_hat with a position check: a non-finite position, or one beyond
/// [`MAX_POSITION_NM`], records the beads and makes the energy NaN, which the
/// integrator's force check turns into an error at that step.
#[derive(Clone, Debug)]
struct Guarded {
    inner: HostCgPotential,
    bad_beads: Vec<usize>,
}

impl Potential for Guarded {
    fn n_atoms(&self) -> usize {
        self.inner.n_atoms()
    }

    fn energy_forces(&mut self, positions: &[[f64; 3]], forces: &mut [[f64; 3]]) -> f64 {
        let absurd = |x: &[f64; 3]| x.iter().any(|&c| absurd_coordinate(c));
        if positions.iter().any(absurd) {
            self.bad_beads = positions
                .iter()
                .enumerate()
                .filter(|(_, x)| absurd(x))
                .map(|(i, _)| i)
                .collect();
            for f in forces.iter_mut() {
                *f = [0.0; 3];
            }
            return f64::NAN;
        }
        self.inner.energy_forces(positions, forces)
    }
}

/// A dynamics error of chain `chain` (started from input frame `frame`) as a stage
/// failure naming the chain, the step and the beads.
fn blow_up(
    e: DynamicsError,
    chain: usize,
    frame: usize,
    potential: Option<&Guarded>,
    beads: &[AtomRow],
) -> StageError {
    let names = |list: &[usize]| {
        list.iter()
            .map(|&i| describe(beads, i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let position_beads = potential
        .map(|g| g.bad_beads.as_slice())
        .filter(|b| !b.is_empty());
    let message = match (&e, position_beads) {
        (DynamicsError::NonFiniteEnergy { step, .. }, Some(list)) => format!(
            "chain {chain} blew up at step {step} (counted from the start of equilibration): \
             beads {} have non-finite positions or positions beyond {MAX_POSITION_NM} nm",
            names(list)
        ),
        (DynamicsError::ForceBlowUp { step, atoms, .. }, _) => format!(
            "chain {chain} blew up at step {step} (counted from the start of equilibration): \
             {e}; beads: {} (check the timestep and the potential)",
            names(atoms)
        ),
        (DynamicsError::NonFiniteEnergy { step, .. }, None) => format!(
            "chain {chain} blew up at step {step} (counted from the start of equilibration): \
             {e}; beads: all (U_hat is not finite)"
        ),
        _ => format!("chain {chain}: {e}"),
    };
    StageError::Failed(format!(
        "{message}; the chain started from input frame {frame}"
    ))
}
