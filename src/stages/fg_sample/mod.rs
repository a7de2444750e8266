//! `fg_sample`: fine-grained sampling with cgloop's own MD engine.
//!
//! An AMBER topology and starting structure; energies and forces of the AMBER force
//! field without cutoff, in vacuum or GBSA-OBC2 ([`crate::md::forcefield`]); L-BFGS
//! minimization; Langevin BAOAB dynamics at 2 fs with H-bond constraints (whose bonds'
//! harmonic terms are then left out, as OpenMM does: held at r0 they add nothing), or
//! at 4 fs with hydrogen mass repartitioning as well
//! ([`crate::md::mass_repartition`], param `hydrogen_mass_amu`); and,
//! with more than one replica, temperature replica exchange on a geometric ladder from
//! `temperature_k` to `max_temperature_k` (alanine dipeptide at 300 K needs it to visit
//! phi > 0 at all). Frames are saved every `save_every` steps after
//! `equilibration_steps`, at the lowest temperature only unless `save_all_temperatures`.
//!
//! Long runs as chains of nodes: every run writes its final `state` (positions,
//! velocities, every random stream's position, which walker holds which temperature,
//! the exchange bookkeeping; [`crate::artifact::md_state`]), and a node given a `state`
//! input goes on from it for `steps` more steps. Its `coordinates`, `minimize` and
//! `equilibration_steps` belong to the chain's first node and are not used again; the
//! settings the dynamics depend on (force field, ladder, step, friction, constraints,
//! schedule) must be the state's, or the node fails naming each difference. N chained
//! nodes give the frames (steps and times counted from the chain's production start) and
//! the exchange statistics (counted from the chain's start) of one unbroken run, bit for
//! bit: the run advances in chunks whose boundaries sit at the same absolute steps
//! whether or not it is split, and a node that stops between two chunk boundaries
//! leaves its last step as an unbroken run would.

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

mod chain;

use chain::{ChainSettings, remd_state, state_record};

use super::{Context, DataFile, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::atoms::{ATOMS, to_table as atoms_table};
use crate::artifact::force_field::{FORCE_FIELD, ForceFieldRecord};
use crate::artifact::kind::ArtifactKind;
use crate::artifact::md_state::{MD_STATE, MdStateRecord};
use crate::artifact::rows::{self, schema_of};
use crate::artifact::trajectory::{FrameRecord, TRAJECTORY, Trajectory};
use crate::md::constraints::{ConstraintError, DistanceConstraint};
use crate::md::dynamics::{DynamicsError, LangevinParams};
use crate::md::forcefield::{ForceField, Solvent};
use crate::md::io::structure::{Structure, atom_rows};
use crate::md::mass_repartition::{RepartitionError, repartition_hydrogen_mass};
use crate::md::minimize::{MinimizeOptions, minimize};
use crate::md::replica_exchange::{ReplicaExchange, ReplicaExchangeParams, geometric_ladder};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SolventModel {
    Vacuum,
    Obc2,
}

impl SolventModel {
    /// The name workflows use (`vacuum`, `obc2`).
    pub fn name(self) -> &'static str {
        match self {
            SolventModel::Vacuum => "vacuum",
            SolventModel::Obc2 => "obc2",
        }
    }

    /// The model named `name` (as [`Self::name`] gives).
    pub fn from_name(name: &str) -> Option<Self> {
        [SolventModel::Vacuum, SolventModel::Obc2]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConstraintSet {
    None,
    Hbonds,
}

impl ConstraintSet {
    /// The distance constraints of `topology` this set names.
    pub fn of(&self, topology: &crate::md::topology::Topology) -> Vec<DistanceConstraint> {
        match self {
            ConstraintSet::None => Vec::new(),
            ConstraintSet::Hbonds => topology.hbond_constraints(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FgSampleParams {
    pub topology: DataFile,
    pub coordinates: DataFile,
    pub solvent: SolventModel,
    pub temperature_k: f64,
    pub timestep_fs: f64,
    pub friction_per_ps: f64,
    pub constraints: ConstraintSet,
    pub minimize: bool,
    pub equilibration_steps: u64,
    pub steps: u64,
    pub save_every: u64,
    pub replicas: usize,
    pub max_temperature_k: f64,
    pub exchange_every: u64,
    pub save_all_temperatures: bool,
    pub hydrogen_mass_amu: Option<f64>,
}

impl Default for FgSampleParams {
    fn default() -> Self {
        FgSampleParams {
            topology: DataFile::default(),
            coordinates: DataFile::default(),
            solvent: SolventModel::Vacuum,
            temperature_k: 300.0,
            timestep_fs: 2.0,
            friction_per_ps: 1.0,
            constraints: ConstraintSet::Hbonds,
            minimize: true,
            equilibration_steps: 1000,
            steps: 10_000,
            save_every: 100,
            replicas: 1,
            max_temperature_k: 600.0,
            exchange_every: 500,
            save_all_temperatures: false,
            hydrogen_mass_amu: None,
        }
    }
}

pub struct FgSample;

pub const EXCHANGES: ArtifactKind = ArtifactKind::table(
    "exchanges",
    schema_of::<ExchangeRow>,
    "replica exchange per neighbour pair: lower_k, upper_k, attempts, accepted, \
     acceptance_rate",
);

/// Replica exchange between two neighbouring rungs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExchangeRow {
    pub lower_k: f64,
    pub upper_k: f64,
    pub attempts: i64,
    pub accepted: i64,
    pub acceptance_rate: f64,
}

impl Stage for FgSample {
    type Params = FgSampleParams;
    const NAME: &'static str = "fg_sample";
    // 2: faster MD kernels (vectorized bonded terms and 1-4 pairs, lockstep SHAKE with
    // Cramer solves) change trajectories in the last bits.
    // 3: 1-4 pairs evaluated in the ordinary pairs' rows (Lorentz-Berthelot 1-4
    // coefficients) and constrained bonds left out: last bits again.
    // 4: the same bits on every instruction set (eight lanes everywhere, no fused
    // multiply-adds): last bits on AVX2 and AVX-512 machines.
    // 5: the `force_field` output (the other outputs unchanged).
    // 6: the `state` output and the optional `state` input (the other outputs unchanged).
    // 7: param `hydrogen_mass_amu` and the optional input `start` (without them, outputs
    // unchanged).
    const VERSION: u32 = 7;
    const ABOUT: &'static str = "Fine-grained MD (AMBER force field, vacuum or OBC2, BAOAB Langevin, \
         H-bond constraints), with temperature replica exchange when replicas > 1";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "state",
            kind: MD_STATE,
            about: "the final state of an earlier fg_sample node with the same settings, \
                    to go on from",
        },
        Port {
            name: "start",
            kind: TRAJECTORY,
            about: "a trajectory whose last frame at the lowest rung is the starting structure \
                    (instead of `coordinates`; e.g. an unfolded one from a hot run)",
        },
    ];
    const OPTIONAL_INPUTS: &'static [&'static str] = &["state", "start"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "saved frames: positions, forces, energies",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the topology's atoms",
        },
        Port {
            name: "exchanges",
            kind: EXCHANGES,
            about: "replica exchange per neighbour pair: lower_k, upper_k, attempts, accepted, acceptance_rate",
        },
        Port {
            name: "force_field",
            kind: FORCE_FIELD,
            about: "the force field sampled (prmtop and solvent), for `reweight`",
        },
        Port {
            name: "state",
            kind: MD_STATE,
            about: "where the run stopped, for a next fg_sample node to go on from",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "topology",
            about: "AMBER prmtop (required)",
        },
        ParamDoc {
            name: "coordinates",
            about: "inpcrd or PDB with the starting structure (required; not used when the \
                    `state` or `start` input is connected)",
        },
        ParamDoc {
            name: "solvent",
            about: "vacuum | obc2 (GBSA-OBC2 implicit solvent)",
        },
        ParamDoc {
            name: "temperature_k",
            about: "thermostat temperature, the ladder's lowest rung (K)",
        },
        ParamDoc {
            name: "timestep_fs",
            about: "integration step (fs)",
        },
        ParamDoc {
            name: "friction_per_ps",
            about: "Langevin collision rate (1/ps)",
        },
        ParamDoc {
            name: "constraints",
            about: "hbonds | none (with hbonds the constrained bonds' harmonic terms are left \
                    out, as OpenMM's constraints=HBonds)",
        },
        ParamDoc {
            name: "minimize",
            about: "minimize the energy before dynamics (not with a `state` input)",
        },
        ParamDoc {
            name: "equilibration_steps",
            about: "steps run and discarded before saving (not with a `state` input)",
        },
        ParamDoc {
            name: "steps",
            about: "production steps per replica (of this node, with a `state` input)",
        },
        ParamDoc {
            name: "save_every",
            about: "steps between saved frames",
        },
        ParamDoc {
            name: "replicas",
            about: "temperatures in the replica-exchange ladder (1: plain MD)",
        },
        ParamDoc {
            name: "max_temperature_k",
            about: "highest rung of the geometric ladder (K)",
        },
        ParamDoc {
            name: "exchange_every",
            about: "steps between exchange attempts",
        },
        ParamDoc {
            name: "save_all_temperatures",
            about: "save frames of every rung, not only the lowest",
        },
        ParamDoc {
            name: "hydrogen_mass_amu",
            about: "hydrogen mass repartitioning, as OpenMM's hydrogenMass: hydrogens bonded to \
                    heavy atoms get this mass, taken from their heavy atom (e.g. 3 with 4 fs \
                    steps and H-bond constraints; the sampled distribution is unchanged, the \
                    `atoms` output keeps the topology's masses); null: the topology's masses",
        },
    ];

    fn data_files(p: &FgSampleParams) -> Vec<(&'static str, &DataFile)> {
        vec![("topology", &p.topology), ("coordinates", &p.coordinates)]
    }

    fn check(p: &FgSampleParams) -> Result<(), ParamProblem> {
        if p.topology.0.is_empty() {
            return Err(ParamProblem::new(
                "topology",
                "required: the path of an AMBER prmtop",
            ));
        }
        if p.coordinates.0.is_empty() {
            return Err(ParamProblem::new(
                "coordinates",
                "required: an inpcrd or PDB file",
            ));
        }
        let positive = ParamProblem::positive;
        positive("temperature_k", p.temperature_k)?;
        positive("timestep_fs", p.timestep_fs)?;
        if !(p.friction_per_ps.is_finite() && p.friction_per_ps >= 0.0) {
            return Err(ParamProblem::new(
                "friction_per_ps",
                "must be zero or positive",
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
        if p.replicas == 0 {
            return Err(ParamProblem::new("replicas", "must be at least 1"));
        }
        if p.replicas > 1 {
            if p.max_temperature_k <= p.temperature_k {
                return Err(ParamProblem::new(
                    "max_temperature_k",
                    format!(
                        "must exceed temperature_k ({}) for replica exchange",
                        p.temperature_k
                    ),
                ));
            }
            if p.exchange_every == 0 {
                return Err(ParamProblem::new("exchange_every", "must be at least 1"));
            }
        }
        if let Some(m) = p.hydrogen_mass_amu {
            ParamProblem::positive("hydrogen_mass_amu", m)?;
        }
        Ok(())
    }

    fn run(
        p: &FgSampleParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let text = |f: &DataFile| -> Result<String, StageError> {
            String::from_utf8(inputs.file(f)?.to_vec()).map_err(|_| StageError::BadInput {
                input: f.0.clone(),
                message: "not UTF-8 text".into(),
            })
        };
        let prmtop = text(&p.topology)?;
        let force_field = ForceFieldRecord::new(&p.topology.0, &prmtop, p.solvent.name());
        let structure = Structure::parse(
            &prmtop,
            &p.topology.0,
            &text(&p.coordinates)?,
            &p.coordinates.0,
        )
        .map_err(|e| StageError::Failed(e.to_string()))?;
        let solvent = match p.solvent {
            SolventModel::Vacuum => Solvent::Vacuum,
            SolventModel::Obc2 => Solvent::Obc2,
        };
        let masses = match p.hydrogen_mass_amu {
            None => structure.masses(),
            Some(m) => {
                let (masses, changed) =
                    repartition_hydrogen_mass(&structure.topology, &structure.masses(), m)
                        .map_err(|e| {
                            let atom = match &e {
                                RepartitionError::HeavyAtomTooLight { atom, .. } => {
                                    format!(" ({})", structure.describe_atom(*atom))
                                }
                                _ => String::new(),
                            };
                            StageError::Failed(format!("param hydrogen_mass_amu: {e}{atom}"))
                        })?;
                tracing::info!("hydrogen mass repartitioning: {changed} hydrogens at {m} amu");
                masses
            }
        };
        let constraints = p.constraints.of(&structure.topology);
        // As OpenMM with constraints=HBonds: the bonds held at r0 are left out.
        let (mut forcefield, _) = ForceField::new(&structure.topology, solvent)
            .map_err(|e| StageError::Failed(e.to_string()))?
            .without_constrained_bonds(&constraints);
        let ladder = if p.replicas == 1 {
            vec![p.temperature_k]
        } else {
            geometric_ladder(p.temperature_k, p.max_temperature_k, p.replicas)
        };
        let settings = ChainSettings {
            topology_blake3: force_field.topology_blake3.clone(),
            solvent: p.solvent,
            temperatures_k: ladder.clone(),
            timestep_fs: p.timestep_fs,
            friction_per_ps: p.friction_per_ps,
            constraints: p.constraints,
            exchange_every: if p.replicas > 1 { p.exchange_every } else { 0 },
            save_every: p.save_every,
            hydrogen_mass_amu: p.hydrogen_mass_amu,
        };
        if inputs.has("state") && inputs.has("start") {
            return Err(StageError::BadInput {
                input: "start".into(),
                message: "connected with `state`: a node continues a state or starts from a \
                          structure, not both"
                    .into(),
            });
        }
        let previous = if inputs.has("state") {
            let state = MdStateRecord::from_table(inputs.table("state")?).map_err(|e| {
                StageError::BadInput {
                    input: "state".into(),
                    message: e.to_string(),
                }
            })?;
            settings.check_continues(&state, masses.len())?;
            Some(state)
        } else {
            None
        };

        let mut positions = if inputs.has("start") {
            last_frame(inputs, masses.len())?
        } else {
            structure.positions.clone()
        };
        if p.minimize && previous.is_none() {
            let report = minimize(
                &mut forcefield,
                &mut positions,
                &masses,
                &constraints,
                MinimizeOptions::default(),
            )
            .map_err(|e| StageError::Failed(format!("minimization: {e}")))?;
            tracing::info!(
                initial = report.initial_energy,
                last = report.final_energy,
                iterations = report.iterations,
                "minimized"
            );
        }
        let params = LangevinParams::new(p.temperature_k, p.friction_per_ps, p.timestep_fs * 1e-3);
        // Without replica exchange, no exchange boundary ever splits the run.
        let exchange_every = if p.replicas == 1 {
            u64::MAX
        } else {
            p.exchange_every
        };
        let seed = match &previous {
            Some(state) => state.seed,
            None => ctx.rng.next_u64(),
        };
        let mut remd = ReplicaExchange::new(
            &forcefield,
            &masses,
            &positions,
            &constraints,
            &ReplicaExchangeParams {
                dynamics: params,
                temperatures_k: ladder,
                exchange_every,
                seed,
            },
        )
        .map_err(|e| dynamics_error(e, &structure))?;
        // Steps are counted from the chain's start; frames from its production start.
        let (start, production_start) = match &previous {
            Some(state) => {
                remd.restore(&remd_state(state))
                    .map_err(|e| StageError::BadInput {
                        input: "state".into(),
                        message: e.to_string(),
                    })?;
                (state.rungs[0].step, state.production_start_step)
            }
            None => (0, p.equilibration_steps),
        };
        let total = if previous.is_some() {
            p.steps
        } else {
            p.equilibration_steps + p.steps
        };
        ctx.progress.start("md steps", total);
        // Chunk boundaries at absolute multiples of `chunk`, the same in a chain of
        // nodes as in one unbroken run.
        let chunk =
            1000u64
                .max(p.save_every)
                .max(if p.replicas > 1 { p.exchange_every } else { 0 });
        let mut trajectory = Trajectory::new(masses.len());
        let (mut now, end) = (start, start + total);
        let timestep_ps = p.timestep_fs * 1e-3;
        let all = p.save_all_temperatures;
        while now < end {
            let boundary = (now / chunk + 1) * chunk;
            let stop = boundary.min(end);
            let save = if stop > production_start {
                p.save_every
            } else {
                0
            };
            remd.run_segment(stop - now, save, stop == boundary, |f| {
                if f.step <= production_start || (!all && f.temperature_index != 0) {
                    return;
                }
                let step = f.step - production_start;
                trajectory.push(FrameRecord {
                    temperature_index: f.temperature_index as i32,
                    replica: f.replica as i32,
                    temperature_k: f.temperature_k,
                    step: step as i64,
                    time_ps: step as f64 * timestep_ps,
                    positions_nm: f.positions,
                    forces: f.forces,
                    potential: f.potential_energy,
                    kinetic_temperature_k: f.instantaneous_temperature_k,
                });
            })
            .map_err(|e| dynamics_error(e, &structure))?;
            ctx.progress.advance(stop - now);
            now = stop;
        }
        let final_state = state_record(&remd, seed, production_start, &settings)?;

        let stats = remd.pair_statistics();
        let exchanges = rows::table(
            &stats
                .iter()
                .map(|s| ExchangeRow {
                    lower_k: s.lower_k,
                    upper_k: s.upper_k,
                    attempts: s.attempts as i64,
                    accepted: s.accepted as i64,
                    acceptance_rate: s.acceptance_rate(),
                })
                .collect::<Vec<_>>(),
        );
        for s in stats {
            tracing::info!(
                "exchange {:.1} K <-> {:.1} K: acceptance {:.3}",
                s.lower_k,
                s.upper_k,
                s.acceptance_rate()
            );
        }
        let atoms = atom_rows(&structure.topology);
        Ok(Outputs::from([
            (
                "trajectory".to_string(),
                Artifact::Table(trajectory.to_table()),
            ),
            ("atoms".to_string(), Artifact::Table(atoms_table(&atoms))),
            ("exchanges".to_string(), Artifact::Table(exchanges)),
            (
                "force_field".to_string(),
                Artifact::Table(force_field.to_table()),
            ),
            ("state".to_string(), Artifact::Table(final_state.to_table())),
        ]))
    }
}

/// The last frame at the lowest rung of the `start` input, as the starting positions.
fn last_frame(inputs: &Inputs, n_atoms: usize) -> Result<Vec<[f64; 3]>, StageError> {
    let start = inputs.joined_trajectory("start")?;
    let bad = |message: String| StageError::BadInput {
        input: "start".into(),
        message,
    };
    if start.n_atoms != n_atoms {
        return Err(bad(format!(
            "{} atoms per frame, the topology has {n_atoms}",
            start.n_atoms
        )));
    }
    let Some(last) = (0..start.len())
        .rev()
        .find(|&i| start.temperature_index[i] == 0)
    else {
        return Err(bad("no frame at the lowest rung".into()));
    };
    Ok(start
        .positions(last)
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect())
}

/// A dynamics error, with the atoms it involves named.
fn dynamics_error(e: DynamicsError, structure: &Structure) -> StageError {
    let names = |atoms: &[usize]| {
        atoms
            .iter()
            .map(|&i| structure.describe_atom(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &e {
        DynamicsError::ForceBlowUp { step, atoms, .. } => StageError::Failed(format!(
            "{e}; atoms: {} (blow-up at step {step}: check the structure, the timestep and the constraints)",
            names(atoms)
        )),
        DynamicsError::Constraint {
            step,
            source: ConstraintError::NotConverged { i, j, .. },
        } => StageError::Failed(format!(
            "{e}; atoms: {} (the dynamics blew up at step {step}: check the structure and the timestep)",
            names(&[*i, *j])
        )),
        _ => StageError::Failed(e.to_string()),
    }
}
