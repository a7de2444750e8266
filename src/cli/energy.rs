//! `cgloop energy`: the potential energy of one structure, term by term, and the forces,
//! without a workflow.
//!
//! The terms are bonds, angles, torsions, coulomb, lennard_jones, coulomb_14,
//! lennard_jones_14 and gb (kJ/mol), their sum U, and F = -dU/dx (kJ/mol/nm), atoms in
//! topology order ([`crate::md::forcefield`]). `--json` prints one object with every
//! value at full f64 precision (shortest round-trip form).

use std::path::Path;

use serde::Serialize;

use super::CliError;
use super::args::SolventArg;
use crate::md::forcefield::{EnergyTerms, ForceField, Solvent};
use crate::md::io::structure::Structure;

/// The energy terms as `--json` writes them, kJ/mol.
#[derive(Debug, Serialize)]
struct TermsJson {
    bonds: f64,
    angles: f64,
    torsions: f64,
    coulomb: f64,
    lennard_jones: f64,
    coulomb_14: f64,
    lennard_jones_14: f64,
    gb: f64,
}

impl From<&EnergyTerms> for TermsJson {
    fn from(e: &EnergyTerms) -> Self {
        TermsJson {
            bonds: e.bonds,
            angles: e.angles,
            torsions: e.torsions,
            coulomb: e.coulomb,
            lennard_jones: e.lennard_jones,
            coulomb_14: e.coulomb_14,
            lennard_jones_14: e.lennard_jones_14,
            gb: e.gb,
        }
    }
}

/// The `--json` output.
#[derive(Debug, Serialize)]
struct EnergyJson {
    total_kj_per_mol: f64,
    terms_kj_per_mol: TermsJson,
    forces_kj_per_mol_nm: Vec<[f64; 3]>,
}

pub fn energy(
    topology: &Path,
    coordinates: &Path,
    solvent: SolventArg,
    json: bool,
) -> Result<(), CliError> {
    let structure =
        Structure::read(topology, coordinates).map_err(|e| CliError::User(e.to_string()))?;
    let solvent = match solvent {
        SolventArg::Vacuum => Solvent::Vacuum,
        SolventArg::Obc2 => Solvent::Obc2,
    };
    let mut forcefield = ForceField::new(&structure.topology, solvent)
        .map_err(|e| CliError::User(format!("{}: {e}", topology.display())))?;
    let mut forces = vec![[0.0; 3]; structure.positions.len()];
    let terms = forcefield.compute(&structure.positions, &mut forces);

    if json {
        let report = EnergyJson {
            total_kj_per_mol: terms.total(),
            terms_kj_per_mol: TermsJson::from(&terms),
            forces_kj_per_mol_nm: forces,
        };
        let text = serde_json::to_string(&report).map_err(|e| CliError::Internal(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }

    println!(
        "{} with {} ({} atoms, {})",
        topology.display(),
        coordinates.display(),
        structure.positions.len(),
        match solvent {
            Solvent::Vacuum => "vacuum",
            Solvent::Obc2 => "GBSA-OBC2",
        }
    );
    println!("{:<18} {:>18}", "term", "kJ/mol");
    let rows = [
        ("bonds", terms.bonds),
        ("angles", terms.angles),
        ("torsions", terms.torsions),
        ("coulomb", terms.coulomb),
        ("lennard_jones", terms.lennard_jones),
        ("coulomb_14", terms.coulomb_14),
        ("lennard_jones_14", terms.lennard_jones_14),
        ("gb", terms.gb),
    ];
    for (name, value) in rows {
        println!("{name:<18} {value:>18.6}");
    }
    println!("{:<18} {:>18.6}", "total", terms.total());
    let magnitude = |f: &[f64; 3]| (f[0] * f[0] + f[1] * f[1] + f[2] * f[2]).sqrt();
    if let Some((atom, f)) = forces
        .iter()
        .enumerate()
        .max_by(|a, b| magnitude(a.1).total_cmp(&magnitude(b.1)))
    {
        println!(
            "max |F| {:.6} kJ/mol/nm on atom {}",
            magnitude(f),
            structure.describe_atom(atom)
        );
    }
    Ok(())
}
