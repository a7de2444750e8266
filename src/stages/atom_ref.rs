//! Naming one atom in a workflow: its residue (0-based index) and its atom name, resolved
//! against a trajectory's atom table.

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::artifact::atoms::AtomRow;

/// One atom: its residue (0-based index) and its name, e.g. `{residue: 1, name: CA}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtomRef {
    pub residue: i32,
    pub name: String,
}

impl AtomRef {
    pub fn new(residue: i32, name: &str) -> Self {
        AtomRef {
            residue,
            name: name.to_string(),
        }
    }

    /// Alanine dipeptide's phi: C(ACE) N CA C(ALA).
    pub fn alanine_phi() -> [AtomRef; 4] {
        [
            AtomRef::new(0, "C"),
            AtomRef::new(1, "N"),
            AtomRef::new(1, "CA"),
            AtomRef::new(1, "C"),
        ]
    }

    /// Alanine dipeptide's psi: N CA C(ALA) N(NME).
    pub fn alanine_psi() -> [AtomRef; 4] {
        [
            AtomRef::new(1, "N"),
            AtomRef::new(1, "CA"),
            AtomRef::new(1, "C"),
            AtomRef::new(2, "N"),
        ]
    }

    /// The index of the one atom this names in `atoms`; `what` (e.g. `phi`, `bead 2`)
    /// says in the error which reference failed. An error lists the residue's atoms when
    /// the name is not found.
    pub fn resolve(&self, atoms: &[AtomRow], what: &str) -> Result<usize, StageError> {
        let matches: Vec<usize> = atoms
            .iter()
            .enumerate()
            .filter(|(_, a)| a.residue_index == self.residue && a.name == self.name)
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [i] => Ok(*i),
            [] => {
                let in_residue: Vec<&str> = atoms
                    .iter()
                    .filter(|a| a.residue_index == self.residue)
                    .map(|a| a.name.as_str())
                    .collect();
                Err(StageError::BadInput {
                    input: "atoms".into(),
                    message: format!(
                        "{what}: no atom `{}` in residue {}; its atoms: {}",
                        self.name,
                        self.residue,
                        if in_residue.is_empty() {
                            "none (no such residue)".to_string()
                        } else {
                            in_residue.join(", ")
                        }
                    ),
                })
            }
            _ => Err(StageError::BadInput {
                input: "atoms".into(),
                message: format!(
                    "{what}: {} atoms named `{}` in residue {} (atoms {matches:?})",
                    matches.len(),
                    self.name,
                    self.residue
                ),
            }),
        }
    }
}

/// The indices of four named atoms (a dihedral's); `what` names them in errors.
pub fn resolve_four(
    atoms: &[AtomRow],
    refs: &[AtomRef; 4],
    what: &str,
) -> Result<[usize; 4], StageError> {
    let mut out = [0usize; 4];
    for (slot, r) in out.iter_mut().zip(refs) {
        *slot = r.resolve(atoms, what)?;
    }
    Ok(out)
}
