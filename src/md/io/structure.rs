//! A molecule ready to simulate: an AMBER topology plus one set of coordinates, read
//! from text (the executor supplies the bytes; the CLI reads the files).
//!
//! Coordinates may be an AMBER inpcrd/rst7 or a PDB (its first model); the format is
//! recognised from the content. The atom count must match the topology's.

use super::coordinates::parse_inpcrd;
use super::pdb::parse_pdb;
use super::prmtop::parse_prmtop;
use crate::artifact::atoms::AtomRow;
use crate::md::constraints::DistanceConstraint;
use crate::md::error::MdError;
use crate::md::topology::Topology;

/// The rows of the `atoms` artifact for a topology's atoms, in topology order.
pub fn atom_rows(topology: &Topology) -> Vec<AtomRow> {
    topology
        .atoms
        .iter()
        .map(|a| AtomRow {
            name: a.name.clone(),
            residue_name: a.residue_name.clone(),
            residue_index: a.residue_index as i32,
            atomic_number: i32::from(a.atomic_number),
            mass_amu: a.mass,
            charge_e: a.charge,
        })
        .collect()
}

/// A topology and starting positions (nm).
#[derive(Debug, Clone)]
pub struct Structure {
    pub topology: Topology,
    pub positions: Vec<[f64; 3]>,
}

fn looks_like_pdb(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("ATOM  ") || l.starts_with("HETATM") || l.starts_with("MODEL "))
}

/// Reads coordinates (inpcrd or PDB) for `n_atoms` atoms; `source` names the file.
pub fn parse_coordinates(
    text: &str,
    source: &str,
    n_atoms: usize,
) -> Result<Vec<[f64; 3]>, MdError> {
    let positions = if looks_like_pdb(text) {
        let pdb = parse_pdb(text, source)?;
        pdb.frames
            .into_iter()
            .next()
            .ok_or_else(|| MdError::WrongCount {
                file: source.to_string(),
                context: "models".into(),
                expected: 1,
                found: 0,
            })?
    } else {
        parse_inpcrd(text, source)?.positions
    };
    if positions.len() != n_atoms {
        return Err(MdError::WrongCount {
            file: source.to_string(),
            context: "atoms (the topology's count)".into(),
            expected: n_atoms,
            found: positions.len(),
        });
    }
    Ok(positions)
}

impl Structure {
    /// Parses a prmtop and a coordinate file given as text.
    pub fn parse(
        prmtop: &str,
        prmtop_source: &str,
        coordinates: &str,
        coordinates_source: &str,
    ) -> Result<Structure, MdError> {
        let topology = parse_prmtop(prmtop, prmtop_source)?;
        let positions = parse_coordinates(coordinates, coordinates_source, topology.atoms.len())?;
        Ok(Structure {
            topology,
            positions,
        })
    }

    /// Reads both from files.
    pub fn read(
        prmtop: &std::path::Path,
        coordinates: &std::path::Path,
    ) -> Result<Structure, MdError> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|source| MdError::Io {
                file: p.display().to_string(),
                source,
            })
        };
        Structure::parse(
            &read(prmtop)?,
            &prmtop.display().to_string(),
            &read(coordinates)?,
            &coordinates.display().to_string(),
        )
    }

    /// Atomic masses, amu, in topology order.
    pub fn masses(&self) -> Vec<f64> {
        self.topology.atoms.iter().map(|a| a.mass).collect()
    }

    /// OpenMM's `constraints=HBonds`: every bond with a hydrogen, held at its r0 (nm).
    pub fn hbond_constraints(&self) -> Vec<DistanceConstraint> {
        self.topology.hbond_constraints()
    }

    /// `NAME (RES n)` for messages about atom `i`.
    pub fn describe_atom(&self, i: usize) -> String {
        match self.topology.atoms.get(i) {
            Some(a) => format!(
                "{i} {} ({} {})",
                a.name,
                a.residue_name,
                a.residue_index + 1
            ),
            None => format!("{i}"),
        }
    }
}
