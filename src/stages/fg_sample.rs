//! `fg_sample`: fine-grained sampling with cgloop's own MD engine.
//!
//! An AMBER topology and starting structure; energies and forces of the AMBER force
//! field without cutoff, in vacuum or GBSA-OBC2 ([`crate::md::forcefield`]); L-BFGS
//! minimization; Langevin BAOAB dynamics at 2 fs with H-bond constraints (whose bonds'
//! harmonic terms are then left out, as OpenMM does: held at r0 they add nothing); and,
//! with more than one replica, temperature replica exchange on a geometric ladder from
//! `temperature_k` to `max_temperature_k` (alanine dipeptide at 300 K needs it to visit
//! phi > 0 at all). Frames are saved every `save_every` steps after
//! `equilibration_steps`, at the lowest temperature only unless `save_all_temperatures`.

use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use super::{Context, DataFile, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::atoms::{ATOMS, to_table as atoms_table};
use crate::artifact::force_field::{FORCE_FIELD, ForceFieldRecord};
use crate::artifact::kind::TABLE;
use crate::artifact::trajectory::{FrameRecord, TRAJECTORY, Trajectory};
use crate::md::constraints::{ConstraintError, DistanceConstraint};
use crate::md::dynamics::{DynamicsError, LangevinParams};
use crate::md::forcefield::{ForceField, Solvent};
use crate::md::minimize::{MinimizeOptions, minimize};
use crate::md::replica_exchange::{ReplicaExchange, ReplicaExchangeParams, geometric_ladder};
use crate::md::structure::{Structure, atom_rows};

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
        }
    }
}

pub struct FgSample;

fn exchange_schema() -> Schema {
    Schema::new(vec![
        Field::new("lower_k", DataType::Float64, false),
        Field::new("upper_k", DataType::Float64, false),
        Field::new("attempts", DataType::Int64, false),
        Field::new("accepted", DataType::Int64, false),
        Field::new("acceptance_rate", DataType::Float64, false),
    ])
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
    const VERSION: u32 = 5;
    const ABOUT: &'static str = "Fine-grained MD (AMBER force field, vacuum or OBC2, BAOAB Langevin, \
         H-bond constraints), with temperature replica exchange when replicas > 1";
    const INPUTS: &'static [Port] = &[];
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
            kind: TABLE,
            about: "replica exchange per neighbour pair: lower_k, upper_k, attempts, accepted, acceptance_rate",
        },
        Port {
            name: "force_field",
            kind: FORCE_FIELD,
            about: "the force field sampled (prmtop and solvent), for `reweight`",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "topology",
            about: "AMBER prmtop (required)",
        },
        ParamDoc {
            name: "coordinates",
            about: "inpcrd or PDB with the starting structure (required)",
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
            about: "minimize the energy before dynamics",
        },
        ParamDoc {
            name: "equilibration_steps",
            about: "steps run and discarded before saving",
        },
        ParamDoc {
            name: "steps",
            about: "production steps per replica",
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
        let structure = Structure::parse(
            &text(&p.topology)?,
            &p.topology.0,
            &text(&p.coordinates)?,
            &p.coordinates.0,
        )
        .map_err(|e| StageError::Failed(e.to_string()))?;
        let solvent = match p.solvent {
            SolventModel::Vacuum => Solvent::Vacuum,
            SolventModel::Obc2 => Solvent::Obc2,
        };
        let masses = structure.masses();
        let constraints: Vec<DistanceConstraint> = match p.constraints {
            ConstraintSet::None => Vec::new(),
            ConstraintSet::Hbonds => structure.hbond_constraints(),
        };
        // As OpenMM with constraints=HBonds: the bonds held at r0 are left out.
        let (mut forcefield, _) = ForceField::new(&structure.topology, solvent)
            .map_err(|e| StageError::Failed(e.to_string()))?
            .without_constrained_bonds(&constraints);
        let mut positions = structure.positions.clone();
        if p.minimize {
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
        let ladder = if p.replicas == 1 {
            vec![p.temperature_k]
        } else {
            geometric_ladder(p.temperature_k, p.max_temperature_k, p.replicas)
        };
        let params = LangevinParams::new(p.temperature_k, p.friction_per_ps, p.timestep_fs * 1e-3);
        let exchange_every = if p.replicas == 1 {
            p.steps + p.equilibration_steps
        } else {
            p.exchange_every
        };
        let mut remd = ReplicaExchange::new(
            &forcefield,
            &masses,
            &positions,
            &constraints,
            &ReplicaExchangeParams {
                dynamics: params,
                temperatures_k: ladder,
                exchange_every: exchange_every.max(1),
                seed: ctx.rng.next_u64(),
            },
        )
        .map_err(|e| dynamics_error(e, &structure))?;

        let total = p.equilibration_steps + p.steps;
        ctx.progress.start("md steps", total);
        let chunk =
            1000u64
                .max(p.save_every)
                .max(if p.replicas > 1 { p.exchange_every } else { 0 });
        let mut trajectory = Trajectory::new(masses.len());
        let mut done = 0u64;
        while done < total {
            let n = chunk.min(total - done);
            let save = if done + n > p.equilibration_steps {
                p.save_every
            } else {
                0
            };
            let equilibration = p.equilibration_steps;
            let timestep_ps = p.timestep_fs * 1e-3;
            let all = p.save_all_temperatures;
            remd.run(n, save, |f| {
                if f.step <= equilibration || (!all && f.temperature_index != 0) {
                    return;
                }
                trajectory.push(FrameRecord {
                    temperature_index: f.temperature_index as i32,
                    replica: f.replica as i32,
                    temperature_k: f.temperature_k,
                    step: (f.step - equilibration) as i64,
                    time_ps: (f.step - equilibration) as f64 * timestep_ps,
                    positions_nm: f.positions,
                    forces: f.forces,
                    potential: f.potential_energy,
                    kinetic_temperature_k: f.instantaneous_temperature_k,
                });
            })
            .map_err(|e| dynamics_error(e, &structure))?;
            done += n;
            ctx.progress.advance(n);
        }

        let stats = remd.pair_statistics();
        let exchanges = RecordBatch::try_new(
            Arc::new(exchange_schema()),
            vec![
                Arc::new(Float64Array::from_iter_values(
                    stats.iter().map(|s| s.lower_k),
                )),
                Arc::new(Float64Array::from_iter_values(
                    stats.iter().map(|s| s.upper_k),
                )),
                Arc::new(Int64Array::from_iter_values(
                    stats.iter().map(|s| s.attempts as i64),
                )),
                Arc::new(Int64Array::from_iter_values(
                    stats.iter().map(|s| s.accepted as i64),
                )),
                Arc::new(Float64Array::from_iter_values(
                    stats.iter().map(|s| s.acceptance_rate()),
                )),
            ],
        )
        .expect("columns match the exchange schema");
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
                Artifact::Table(
                    ForceFieldRecord::new(&p.topology.0, &text(&p.topology)?, p.solvent.name())
                        .to_table(),
                ),
            ),
        ]))
    }
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
