//! PDB reader and writer (coordinates only: ATOM/HETATM, MODEL/ENDMDL).
//!
//! Columns (1-based, PDB v3.3): atom name 13-16, altLoc 17, residue name 18-20, chain 22,
//! residue number 23-26, x/y/z 31-54 in Å (8.3f), element 77-78. Positions are returned
//! and accepted in nm; files hold Å. Alternate locations other than the first (' ' or 'A')
//! are skipped. All models of a multi-model file must list the same atoms.

use std::fmt::Write as _;

use crate::md::error::MdError;
use crate::md::topology::Topology;
use crate::md::units::{ANGSTROM_TO_NM, NM_TO_ANGSTROM};

/// Identity of one atom in a PDB file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdbAtom {
    pub name: String,
    pub residue_name: String,
    pub chain: char,
    pub residue_number: i32,
    /// Element symbol ("C", "FE"); empty when the file gives none.
    pub element: String,
    pub hetero: bool,
}

impl PdbAtom {
    /// PDB atom records for a topology (chain 'A', residues numbered from 1).
    pub fn from_topology(topology: &Topology) -> Vec<PdbAtom> {
        topology
            .atoms
            .iter()
            .map(|a| PdbAtom {
                name: a.name.clone(),
                residue_name: a.residue_name.clone(),
                chain: 'A',
                residue_number: a.residue_index as i32 + 1,
                element: element_symbol(a.atomic_number).to_string(),
                hetero: false,
            })
            .collect()
    }
}

/// Atoms plus one frame of positions (nm) per model.
#[derive(Debug, Clone, PartialEq)]
pub struct PdbStructure {
    pub atoms: Vec<PdbAtom>,
    pub frames: Vec<Vec<[f64; 3]>>,
}

impl PdbStructure {
    pub fn atom_names(&self) -> Vec<&str> {
        self.atoms.iter().map(|a| a.name.as_str()).collect()
    }
}

/// The element symbol of an atomic number (empty beyond calcium).
pub fn element_symbol(atomic_number: u8) -> &'static str {
    const SYMBOLS: [&str; 21] = [
        "", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S",
        "Cl", "Ar", "K", "Ca",
    ];
    SYMBOLS.get(atomic_number as usize).copied().unwrap_or("")
}

/// Read a PDB file from disk (display name = the path).
pub fn read_pdb(path: &std::path::Path) -> Result<PdbStructure, MdError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MdError::Io {
        file: file.clone(),
        source,
    })?;
    parse_pdb(&text, &file)
}

/// Parse PDB text; `source` names the file in errors.
pub fn parse_pdb(text: &str, source: &str) -> Result<PdbStructure, MdError> {
    let column = |line: &str, range: std::ops::Range<usize>| -> String {
        line.get(range.start.min(line.len())..range.end.min(line.len()))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let mut atoms: Vec<PdbAtom> = Vec::new();
    let mut frames: Vec<Vec<[f64; 3]>> = Vec::new();
    let mut current_atoms: Vec<PdbAtom> = Vec::new();
    let mut current: Vec<[f64; 3]> = Vec::new();
    let mut finish_model = |line_no: usize,
                            model_atoms: &mut Vec<PdbAtom>,
                            positions: &mut Vec<[f64; 3]>|
     -> Result<(), MdError> {
        if positions.is_empty() {
            return Ok(());
        }
        if frames.is_empty() {
            atoms = std::mem::take(model_atoms);
        } else if *model_atoms != atoms {
            return Err(MdError::Syntax {
                file: source.to_string(),
                line: line_no,
                message: format!(
                    "model {} lists {} atoms that differ from the {} atoms of model 1",
                    frames.len() + 1,
                    model_atoms.len(),
                    atoms.len()
                ),
            });
        }
        model_atoms.clear();
        frames.push(std::mem::take(positions));
        Ok(())
    };
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let record = line.get(0..6.min(line.len())).unwrap_or("");
        let hetero = record == "HETATM";
        if record == "ATOM  " || hetero || record.trim_end() == "ATOM" {
            let alt = line.chars().nth(16).unwrap_or(' ');
            if alt != ' ' && alt != 'A' {
                continue;
            }
            let mut xyz = [0.0; 3];
            for (d, slot) in xyz.iter_mut().enumerate() {
                let field = column(line, 30 + 8 * d..38 + 8 * d);
                *slot = field.parse::<f64>().map_err(|_| MdError::BadValue {
                    file: source.to_string(),
                    line: line_no,
                    context: format!("{} coordinate", ["x", "y", "z"][d]),
                    expected: "a real number in columns 31-54",
                    found: field.clone(),
                })? * ANGSTROM_TO_NM;
            }
            let residue_field = column(line, 22..26);
            let residue_number = residue_field.parse().map_err(|_| MdError::BadValue {
                file: source.to_string(),
                line: line_no,
                context: "residue number".to_string(),
                expected: "an integer in columns 23-26",
                found: residue_field.clone(),
            })?;
            current_atoms.push(PdbAtom {
                name: column(line, 12..16),
                residue_name: column(line, 17..20),
                chain: line.chars().nth(21).unwrap_or(' '),
                residue_number,
                element: column(line, 76..78),
                hetero,
            });
            current.push(xyz);
        } else if record.starts_with("ENDMDL")
            || record.starts_with("MODEL")
            || line.trim() == "END"
        {
            finish_model(line_no, &mut current_atoms, &mut current)?;
        }
    }
    let last_line = text.lines().count();
    finish_model(last_line, &mut current_atoms, &mut current)?;
    if frames.is_empty() {
        return Err(MdError::Syntax {
            file: source.to_string(),
            line: last_line,
            message: "no ATOM or HETATM records".to_string(),
        });
    }
    Ok(PdbStructure { atoms, frames })
}

/// Write frames (nm) as PDB text: one MODEL per frame when there are several.
pub fn write_pdb(atoms: &[PdbAtom], frames: &[Vec<[f64; 3]>]) -> Result<String, MdError> {
    let mut out = String::new();
    let multi = frames.len() > 1;
    for (model, positions) in frames.iter().enumerate() {
        if positions.len() != atoms.len() {
            return Err(MdError::invalid(
                "PDB writer",
                format!("frame {}", model + 1),
                format!("{} positions for {} atoms", positions.len(), atoms.len()),
            ));
        }
        if multi {
            let _ = writeln!(out, "MODEL     {:>4}", model + 1);
        }
        for (serial, (atom, p)) in atoms.iter().zip(positions).enumerate() {
            // Names shorter than four characters start in column 14.
            let name = if atom.name.len() < 4 {
                format!(" {:<3}", atom.name)
            } else {
                atom.name.clone()
            };
            let _ = writeln!(
                out,
                "{:<6}{:>5} {:<4} {:>3} {}{:>4}    {:>8.3}{:>8.3}{:>8.3}{:>6.2}{:>6.2}          {:>2}",
                if atom.hetero { "HETATM" } else { "ATOM" },
                (serial + 1) % 100_000,
                name,
                atom.residue_name,
                atom.chain,
                atom.residue_number,
                p[0] * NM_TO_ANGSTROM,
                p[1] * NM_TO_ANGSTROM,
                p[2] * NM_TO_ANGSTROM,
                1.0,
                0.0,
                atom.element
            );
        }
        if multi {
            out.push_str("ENDMDL\n");
        }
    }
    out.push_str("END\n");
    Ok(out)
}
