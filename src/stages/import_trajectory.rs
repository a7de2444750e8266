//! `import_trajectory`: frames sampled elsewhere (OpenMM, GROMACS, NAMD, CHARMM ...)
//! brought in as a `trajectory`, with energies and forces recomputed by cgloop's engine.
//!
//! Frames come from a multi-model PDB ([`crate::md::io::pdb`]), a DCD ([`crate::md::io::dcd`])
//! or an XTC ([`crate::md::io::xtc`]) file, atoms in the order of the AMBER topology. For
//! each kept frame (every `stride`-th, starting with the first) U(x) and F = -dU/dx are
//! evaluated with the AMBER force field of [`crate::md::forcefield`] in vacuum or
//! GBSA-OBC2, exactly as `fg_sample` would have recorded them.
//!
//! What the files cannot tell is filled in as follows (see the trajectory schema in
//! [`crate::artifact::trajectory`]): `step` is the frame's index in the file (0-based,
//! before the stride), `time_ps` that index times `timestep_ps`, `temperature_k` the
//! `temperature_k` param (the ensemble the frames are taken to sample),
//! `temperature_index` and `replica` 0, and `kinetic_temperature_k` NaN, meaning
//! unknown: positions alone carry no velocities.

use super::fg_sample::SolventModel;
use super::{Context, DataFile, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::atoms::{ATOMS, to_table as atoms_table};
use crate::artifact::force_field::{FORCE_FIELD, ForceFieldRecord};
use crate::artifact::trajectory::{FrameRecord, TRAJECTORY, Trajectory};
use crate::md::error::MdError;
use crate::md::forcefield::{ForceField, Solvent};
use crate::md::io::dcd::parse_dcd;
use crate::md::io::pdb::parse_pdb;
use crate::md::io::prmtop::parse_prmtop;
use crate::md::io::structure::atom_rows;
use crate::md::io::xtc::parse_xtc;
use serde::{Deserialize, Serialize};

/// The file format of `frames`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FramesFormat {
    /// From the extension: `.pdb`/`.ent`, `.dcd`, `.xtc`.
    Auto,
    Pdb,
    Dcd,
    Xtc,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportTrajectoryParams {
    pub topology: DataFile,
    pub frames: DataFile,
    pub format: FramesFormat,
    pub solvent: SolventModel,
    pub temperature_k: f64,
    pub timestep_ps: f64,
    pub stride: u64,
}

impl Default for ImportTrajectoryParams {
    fn default() -> Self {
        ImportTrajectoryParams {
            topology: DataFile::default(),
            frames: DataFile::default(),
            format: FramesFormat::Auto,
            solvent: SolventModel::Vacuum,
            temperature_k: 300.0,
            timestep_ps: 1.0,
            stride: 1,
        }
    }
}

/// The format to read `frames` as: the param, or the file's extension for `auto`.
fn frames_format(p: &ImportTrajectoryParams) -> Result<FramesFormat, ParamProblem> {
    if p.format != FramesFormat::Auto {
        return Ok(p.format);
    }
    let extension = std::path::Path::new(&p.frames.0)
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdb" | "ent" => Ok(FramesFormat::Pdb),
        "dcd" => Ok(FramesFormat::Dcd),
        "xtc" => Ok(FramesFormat::Xtc),
        _ => Err(ParamProblem::new(
            "format",
            format!(
                "cannot tell the format of `{}` from its extension (.pdb, .ent, .dcd, .xtc); \
                 set format: pdb | dcd | xtc",
                p.frames.0
            ),
        )),
    }
}

pub struct ImportTrajectory;

impl Stage for ImportTrajectory {
    type Params = ImportTrajectoryParams;
    const NAME: &'static str = "import_trajectory";
    // 2: 1-4 pairs in the ordinary pairs' rows change forces and energies in the last
    // bits.
    // 3: the force field's same bits on every instruction set (last bits).
    // 4: the `force_field` output (the other outputs unchanged).
    const VERSION: u32 = 4;
    const ABOUT: &'static str = "Frames from a multi-model PDB, DCD or XTC file, with energies and \
         forces recomputed by cgloop's AMBER force field (vacuum or OBC2)";
    const INPUTS: &'static [Port] = &[];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "the imported frames: positions, recomputed forces and energies",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the topology's atoms",
        },
        Port {
            name: "force_field",
            kind: FORCE_FIELD,
            about: "the force field of the energies (prmtop and solvent), for `reweight`",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "topology",
            about: "AMBER prmtop (required)",
        },
        ParamDoc {
            name: "frames",
            about: "multi-model PDB, DCD or XTC, atoms in topology order (required)",
        },
        ParamDoc {
            name: "format",
            about: "auto (from the extension) | pdb | dcd | xtc",
        },
        ParamDoc {
            name: "solvent",
            about: "vacuum | obc2 (GBSA-OBC2 implicit solvent) for the recomputed energies",
        },
        ParamDoc {
            name: "temperature_k",
            about: "temperature the frames sample, recorded in the table (K)",
        },
        ParamDoc {
            name: "timestep_ps",
            about: "time between consecutive frames of the file (ps)",
        },
        ParamDoc {
            name: "stride",
            about: "keep every stride-th frame, starting with the first",
        },
    ];

    fn data_files(p: &ImportTrajectoryParams) -> Vec<(&'static str, &DataFile)> {
        vec![("topology", &p.topology), ("frames", &p.frames)]
    }

    fn check(p: &ImportTrajectoryParams) -> Result<(), ParamProblem> {
        if p.topology.0.is_empty() {
            return Err(ParamProblem::new(
                "topology",
                "required: the path of an AMBER prmtop",
            ));
        }
        if p.frames.0.is_empty() {
            return Err(ParamProblem::new(
                "frames",
                "required: a multi-model PDB, DCD or XTC file",
            ));
        }
        frames_format(p)?;
        for (name, value) in [
            ("temperature_k", p.temperature_k),
            ("timestep_ps", p.timestep_ps),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ParamProblem::new(
                    name,
                    format!("must be positive, got {value}"),
                ));
            }
        }
        if p.stride == 0 {
            return Err(ParamProblem::new("stride", "must be at least 1"));
        }
        Ok(())
    }

    fn run(
        p: &ImportTrajectoryParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let format = frames_format(p).map_err(|problem| StageError::Failed(problem.message))?;
        let failed = |e: MdError| StageError::Failed(e.to_string());
        let text = |f: &DataFile| -> Result<String, StageError> {
            String::from_utf8(inputs.file(f)?.to_vec()).map_err(|_| StageError::BadInput {
                input: f.0.clone(),
                message: "not UTF-8 text".into(),
            })
        };
        let topology = parse_prmtop(&text(&p.topology)?, &p.topology.0).map_err(failed)?;
        let source = p.frames.0.as_str();
        let frames: Vec<Vec<[f64; 3]>> = match format {
            FramesFormat::Pdb => parse_pdb(&text(&p.frames)?, source).map_err(failed)?.frames,
            FramesFormat::Dcd => {
                let dcd = parse_dcd(inputs.file(&p.frames)?, source).map_err(failed)?;
                if dcd.header_frames != 0 && dcd.header_frames != dcd.frames.len() {
                    tracing::warn!(
                        "{source}: the header announces {} frames, the file holds {}",
                        dcd.header_frames,
                        dcd.frames.len()
                    );
                }
                dcd.frames
            }
            FramesFormat::Xtc => parse_xtc(inputs.file(&p.frames)?, source)
                .map_err(failed)?
                .into_iter()
                .map(|f| f.positions)
                .collect(),
            FramesFormat::Auto => unreachable!("frames_format resolves auto"),
        };
        if frames.is_empty() {
            return Err(StageError::Failed(format!("{source}: no frames")));
        }
        let n_atoms = topology.n_atoms();
        if let Some((index, frame)) = frames.iter().enumerate().find(|(_, f)| f.len() != n_atoms) {
            return Err(StageError::Failed(format!(
                "{source}: frame {} has {} atoms, the topology {} has {n_atoms}",
                index + 1,
                frame.len(),
                p.topology.0
            )));
        }

        let solvent = match p.solvent {
            SolventModel::Vacuum => Solvent::Vacuum,
            SolventModel::Obc2 => Solvent::Obc2,
        };
        let mut forcefield = ForceField::new(&topology, solvent).map_err(failed)?;
        let kept: Vec<usize> = (0..frames.len()).step_by(p.stride as usize).collect();
        ctx.progress.start("frames", kept.len() as u64);
        let mut trajectory = Trajectory::new(n_atoms);
        let mut forces = vec![[0.0; 3]; n_atoms];
        for &index in &kept {
            let positions = &frames[index];
            let potential = forcefield.compute(positions, &mut forces).total();
            if !potential.is_finite() {
                tracing::warn!(
                    "{source}: frame {}: potential energy {potential} (overlapping atoms?)",
                    index + 1
                );
            }
            trajectory.push(FrameRecord {
                temperature_index: 0,
                replica: 0,
                temperature_k: p.temperature_k,
                step: index as i64,
                time_ps: index as f64 * p.timestep_ps,
                positions_nm: positions,
                forces: &forces,
                potential,
                kinetic_temperature_k: f64::NAN,
            });
            ctx.progress.advance(1);
        }
        tracing::info!(
            "{source}: imported {} of {} frames",
            kept.len(),
            frames.len()
        );
        let atoms = atom_rows(&topology);
        Ok(Outputs::from([
            (
                "trajectory".to_string(),
                Artifact::Table(trajectory.to_table()),
            ),
            ("atoms".to_string(), Artifact::Table(atoms_table(&atoms))),
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
