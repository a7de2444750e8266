//! AMBER prmtop reader (the "new-style" `%FLAG`/`%FORMAT` file written by tleap and ParmEd).
//!
//! Conversions, done here only: lengths Å -> nm (x 0.1); energies kcal/mol -> kJ/mol
//! (x 4.184); charges / 18.2223 -> e; bond and angle constants doubled to OpenMM's
//! E = k/2 (x - x0)^2 convention; LJ A, B -> kJ/mol nm^12, kJ/mol nm^6.
//!
//! Conventions of the format that matter for the energy:
//! - atom indices in BONDS/ANGLES/DIHEDRALS are 3 x (0-based index);
//! - a dihedral with a negative third index has no 1-4 pair (already counted by another
//!   dihedral); a negative fourth index marks an improper;
//! - SCEE_SCALE_FACTOR / SCNB_SCALE_FACTOR per dihedral type, 1.2 / 2.0 when absent
//!   (old files); ParmEd writes SCNB = 1e10 for 1-4 pairs without LJ, which simply makes
//!   A/scnb and B/scnb vanish;
//! - per-type LJ sigma/epsilon come from the diagonal of the A/B tables exactly as
//!   OpenMM's `AmberPrmtopFile` derives them; off-diagonal entries that break
//!   Lorentz-Berthelot (relative 1e-6) switch the table to verbatim A/B ("NBFIX");
//! - 1-4 pairs take the file's own pair A/B (divided by SCNB), as OpenMM 8 does.

mod format;

use crate::md::error::MdError;
use crate::md::topology::{
    Atom, GbParameters, HarmonicAngle, HarmonicBond, LennardJonesTable, Pair14, PeriodicTorsion,
    Topology,
};
use crate::md::units::{AMBER_CHARGE_FACTOR, ANGSTROM_TO_NM, KCAL_TO_KJ};
use format::{Sections, check_tuples, syntax};

/// Read a prmtop file from disk (display name = the path).
pub fn read_prmtop(path: &std::path::Path) -> Result<Topology, MdError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MdError::Io {
        file: file.clone(),
        source,
    })?;
    parse_prmtop(&text, &file)
}

/// Parse prmtop text; `source` names the file in error messages.
pub fn parse_prmtop(text: &str, source: &str) -> Result<Topology, MdError> {
    let sections = Sections::parse(text, source)?;
    build_topology(&sections)
}

/// Convert a prmtop pointer (3 x index, possibly negated) into a checked atom index.
fn atom_index(
    file: &str,
    flag: &str,
    tuple: usize,
    raw: i64,
    n_atoms: usize,
) -> Result<usize, MdError> {
    let value = raw.unsigned_abs() as usize;
    if !value.is_multiple_of(3) || value / 3 >= n_atoms {
        return Err(MdError::invalid(
            file,
            format!("%FLAG {flag} entry {}", tuple + 1),
            format!("atom pointer {raw} is not 3 x an atom index below NATOM = {n_atoms}"),
        ));
    }
    Ok(value / 3)
}

/// Convert a 1-based parameter-type pointer into a checked 0-based index.
fn type_index(
    file: &str,
    flag: &str,
    tuple: usize,
    raw: i64,
    n_types: usize,
) -> Result<usize, MdError> {
    if raw < 1 || raw as usize > n_types {
        return Err(MdError::invalid(
            file,
            format!("%FLAG {flag} entry {}", tuple + 1),
            format!("parameter type {raw} outside 1..={n_types}"),
        ));
    }
    Ok(raw as usize - 1)
}

/// Element guess from mass for files without ATOMIC_NUMBER.
fn atomic_number_from_mass(mass: f64) -> u8 {
    const TABLE: [(f64, u8); 12] = [
        (1.008, 1),
        (4.003, 2),
        (6.94, 3),
        (12.011, 6),
        (14.007, 7),
        (15.999, 8),
        (18.998, 9),
        (22.990, 11),
        (24.305, 12),
        (30.974, 15),
        (32.06, 16),
        (35.45, 17),
    ];
    if mass < 0.5 {
        return 0;
    }
    TABLE
        .iter()
        .min_by(|a, b| (a.0 - mass).abs().total_cmp(&(b.0 - mass).abs()))
        .map(|&(_, z)| z)
        .unwrap_or(0)
}

/// Sections that change the functional form beyond what the force field implements;
/// reading such a file would silently give wrong energies.
const UNSUPPORTED_FLAGS: [(&str, &str); 4] = [
    ("CTITLE", "CHAMBER (CHARMM) topologies are not supported"),
    (
        "CMAP_COUNT",
        "CMAP correction maps (e.g. ff19SB) are not supported",
    ),
    (
        "CHARMM_CMAP_COUNT",
        "CMAP correction maps are not supported",
    ),
    (
        "LENNARD_JONES_CCOEF",
        "12-6-4 Lennard-Jones terms are not supported",
    ),
];

fn build_topology(s: &Sections) -> Result<Topology, MdError> {
    let file = s.file;
    for (flag, message) in UNSUPPORTED_FLAGS {
        if let Some(section) = s.get(flag) {
            return Err(syntax(
                file,
                section.flag_line,
                format!("%FLAG {flag}: {message}"),
            ));
        }
    }
    let pointers = s.integers("POINTERS", "the system's sizes")?;
    if pointers.len() < 20 {
        return Err(MdError::WrongCount {
            file: file.to_string(),
            context: "%FLAG POINTERS".to_string(),
            expected: 31,
            found: pointers.len(),
        });
    }
    let n_atoms = usize::try_from(pointers[0]).unwrap_or(0);
    let n_types = usize::try_from(pointers[1]).unwrap_or(0);
    let n_residues = usize::try_from(pointers[11]).unwrap_or(0);
    if n_atoms == 0 || n_types == 0 {
        return Err(MdError::invalid(
            file,
            "%FLAG POINTERS",
            "NATOM and NTYPES must be positive",
        ));
    }

    let title = s
        .get("TITLE")
        .and_then(|t| t.fields.first())
        .map(|f| f.0.to_string());
    let names = s.texts("ATOM_NAME", "atom names")?;
    s.expect_len("ATOM_NAME", &names, n_atoms)?;
    let charges = s.reals("CHARGE", "Coulomb energies")?;
    s.expect_len("CHARGE", &charges, n_atoms)?;
    let masses = s.reals("MASS", "dynamics")?;
    s.expect_len("MASS", &masses, n_atoms)?;
    let type_indices = s.integers("ATOM_TYPE_INDEX", "Lennard-Jones energies")?;
    s.expect_len("ATOM_TYPE_INDEX", &type_indices, n_atoms)?;
    let atomic_numbers = match s.get("ATOMIC_NUMBER") {
        Some(_) => {
            let z = s.integers("ATOMIC_NUMBER", "elements")?;
            s.expect_len("ATOMIC_NUMBER", &z, n_atoms)?;
            Some(z)
        }
        None => None,
    };
    let residue_labels = s.texts("RESIDUE_LABEL", "residue names")?;
    s.expect_len("RESIDUE_LABEL", &residue_labels, n_residues)?;
    let residue_pointers = s.integers("RESIDUE_POINTER", "residue membership")?;
    s.expect_len("RESIDUE_POINTER", &residue_pointers, n_residues)?;

    // Residue index of every atom from the 1-based first-atom pointers.
    let mut residue_of = vec![0usize; n_atoms];
    for (r, &first) in residue_pointers.iter().enumerate() {
        let start = usize::try_from(first - 1)
            .ok()
            .filter(|&a| a < n_atoms)
            .ok_or_else(|| {
                MdError::invalid(
                    file,
                    format!("%FLAG RESIDUE_POINTER entry {}", r + 1),
                    format!("first atom {first} outside 1..={n_atoms}"),
                )
            })?;
        let end = residue_pointers
            .get(r + 1)
            .map_or(n_atoms, |&next| (next - 1).max(0) as usize);
        if end < start || end > n_atoms {
            return Err(MdError::invalid(
                file,
                "%FLAG RESIDUE_POINTER",
                "pointers are not increasing",
            ));
        }
        residue_of[start..end].iter_mut().for_each(|x| *x = r);
    }

    let mut atoms = Vec::with_capacity(n_atoms);
    for i in 0..n_atoms {
        let lj_type = type_index(file, "ATOM_TYPE_INDEX", i, type_indices[i], n_types)?;
        let atomic_number = match &atomic_numbers {
            Some(z) => u8::try_from(z[i]).unwrap_or(0),
            None => atomic_number_from_mass(masses[i]),
        };
        atoms.push(Atom {
            name: names[i].clone(),
            residue_name: residue_labels
                .get(residue_of[i])
                .cloned()
                .unwrap_or_default(),
            residue_index: residue_of[i],
            atomic_number,
            mass: masses[i],
            charge: charges[i] / AMBER_CHARGE_FACTOR,
            lj_type,
        });
    }

    let bonds = read_bonds(s, n_atoms)?;
    let angles = read_angles(s, n_atoms)?;
    let (torsions, pairs_14) = read_dihedrals(s, n_atoms)?;
    let exclusions = read_exclusions(s, n_atoms)?;
    let lennard_jones = read_lennard_jones(s, n_types)?;
    let gb = read_gb(s, n_atoms)?;

    Ok(Topology {
        title: title.unwrap_or_default(),
        atoms,
        bonds,
        angles,
        torsions,
        exclusions,
        pairs_14,
        lennard_jones,
        gb,
    })
}

fn read_bonds(s: &Sections, n_atoms: usize) -> Result<Vec<HarmonicBond>, MdError> {
    let k = s.reals("BOND_FORCE_CONSTANT", "bond energies")?;
    let r0 = s.reals("BOND_EQUIL_VALUE", "bond energies")?;
    s.expect_len("BOND_EQUIL_VALUE", &r0, k.len())?;
    let mut bonds = Vec::new();
    for (flag, involves_hydrogen) in [
        ("BONDS_INC_HYDROGEN", true),
        ("BONDS_WITHOUT_HYDROGEN", false),
    ] {
        let raw = s.integers(flag, "bond energies")?;
        check_tuples(s, flag, &raw, 3)?;
        for (t, tuple) in raw.chunks_exact(3).enumerate() {
            let i = atom_index(s.file, flag, t, tuple[0], n_atoms)?;
            let j = atom_index(s.file, flag, t, tuple[1], n_atoms)?;
            let ty = type_index(s.file, flag, t, tuple[2], k.len())?;
            bonds.push(HarmonicBond {
                atoms: [i, j],
                k: 2.0 * k[ty] * KCAL_TO_KJ / (ANGSTROM_TO_NM * ANGSTROM_TO_NM),
                r0: r0[ty] * ANGSTROM_TO_NM,
                involves_hydrogen,
            });
        }
    }
    Ok(bonds)
}

fn read_angles(s: &Sections, n_atoms: usize) -> Result<Vec<HarmonicAngle>, MdError> {
    let k = s.reals("ANGLE_FORCE_CONSTANT", "angle energies")?;
    let theta0 = s.reals("ANGLE_EQUIL_VALUE", "angle energies")?;
    s.expect_len("ANGLE_EQUIL_VALUE", &theta0, k.len())?;
    let mut angles = Vec::new();
    for flag in ["ANGLES_INC_HYDROGEN", "ANGLES_WITHOUT_HYDROGEN"] {
        let raw = s.integers(flag, "angle energies")?;
        check_tuples(s, flag, &raw, 4)?;
        for (t, tuple) in raw.chunks_exact(4).enumerate() {
            let mut atoms = [0; 3];
            for (slot, &p) in atoms.iter_mut().zip(tuple) {
                *slot = atom_index(s.file, flag, t, p, n_atoms)?;
            }
            let ty = type_index(s.file, flag, t, tuple[3], k.len())?;
            angles.push(HarmonicAngle {
                atoms,
                k: 2.0 * k[ty] * KCAL_TO_KJ,
                theta0: theta0[ty],
            });
        }
    }
    Ok(angles)
}

fn read_dihedrals(
    s: &Sections,
    n_atoms: usize,
) -> Result<(Vec<PeriodicTorsion>, Vec<Pair14>), MdError> {
    const MAX_PERIODICITY: f64 = 12.0;
    let k = s.reals("DIHEDRAL_FORCE_CONSTANT", "torsion energies")?;
    let periodicity = s.reals("DIHEDRAL_PERIODICITY", "torsion energies")?;
    let phase = s.reals("DIHEDRAL_PHASE", "torsion energies")?;
    s.expect_len("DIHEDRAL_PERIODICITY", &periodicity, k.len())?;
    s.expect_len("DIHEDRAL_PHASE", &phase, k.len())?;
    // AMBER periodicities are small integers (1-6; a negative sign marks a term of a
    // multi-term series); anything else is a corrupt file, not a torsion to evaluate.
    if let Some((i, n)) = periodicity
        .iter()
        .enumerate()
        .find(|(_, n)| !(n.is_finite() && n.abs().round() >= 1.0 && n.abs() <= MAX_PERIODICITY))
    {
        return Err(MdError::invalid(
            s.file,
            "%FLAG DIHEDRAL_PERIODICITY",
            format!(
                "entry {}: periodicity {n} is not an integer from 1 to {MAX_PERIODICITY}",
                i + 1
            ),
        ));
    }
    let scee = s.reals_if_present("SCEE_SCALE_FACTOR")?;
    let scnb = s.reals_if_present("SCNB_SCALE_FACTOR")?;
    if let Some(v) = &scee {
        s.expect_len("SCEE_SCALE_FACTOR", v, k.len())?;
    }
    if let Some(v) = &scnb {
        s.expect_len("SCNB_SCALE_FACTOR", v, k.len())?;
    }

    let mut torsions = Vec::new();
    let mut pairs_14: Vec<Pair14> = Vec::new();
    let mut seen_14 = std::collections::HashSet::new();
    for flag in ["DIHEDRALS_INC_HYDROGEN", "DIHEDRALS_WITHOUT_HYDROGEN"] {
        let raw = s.integers(flag, "torsion energies")?;
        check_tuples(s, flag, &raw, 5)?;
        for (t, tuple) in raw.chunks_exact(5).enumerate() {
            let mut atoms = [0; 4];
            for (slot, &p) in atoms.iter_mut().zip(tuple) {
                *slot = atom_index(s.file, flag, t, p, n_atoms)?;
            }
            let ty = type_index(s.file, flag, t, tuple[4], k.len())?;
            torsions.push(PeriodicTorsion {
                atoms,
                k: k[ty] * KCAL_TO_KJ,
                periodicity: periodicity[ty].abs().round() as u32,
                phase: phase[ty],
                improper: tuple[3] < 0,
            });
            if tuple[2] < 0 || tuple[3] < 0 {
                continue;
            }
            let pair = [atoms[0].min(atoms[3]), atoms[0].max(atoms[3])];
            // A pair reached by several dihedrals is counted once (tleap marks the
            // others with a negative third index; keep the first if a file does not).
            if !seen_14.insert(pair) {
                continue;
            }
            let pair_scee = scee.as_ref().map_or(1.2, |v| v[ty]);
            let pair_scnb = scnb.as_ref().map_or(2.0, |v| v[ty]);
            if pair_scee <= 0.0 || pair_scnb <= 0.0 {
                return Err(MdError::invalid(
                    s.file,
                    format!("%FLAG {flag} entry {}", t + 1),
                    format!(
                        "1-4 pair {}-{} has non-positive SCEE {pair_scee} or SCNB {pair_scnb}",
                        pair[0] + 1,
                        pair[1] + 1
                    ),
                ));
            }
            pairs_14.push(Pair14 {
                atoms: pair,
                scee: pair_scee,
                scnb: pair_scnb,
            });
        }
    }
    Ok((torsions, pairs_14))
}

fn read_exclusions(s: &Sections, n_atoms: usize) -> Result<Vec<[usize; 2]>, MdError> {
    let counts = s.integers("NUMBER_EXCLUDED_ATOMS", "nonbonded exclusions")?;
    s.expect_len("NUMBER_EXCLUDED_ATOMS", &counts, n_atoms)?;
    let list = s.integers("EXCLUDED_ATOMS_LIST", "nonbonded exclusions")?;
    let total: i64 = counts.iter().sum();
    s.expect_len("EXCLUDED_ATOMS_LIST", &list, total.max(0) as usize)?;
    let mut exclusions = Vec::new();
    let mut offset = 0usize;
    for (i, &count) in counts.iter().enumerate() {
        let count = usize::try_from(count).map_err(|_| {
            MdError::invalid(
                s.file,
                format!("%FLAG NUMBER_EXCLUDED_ATOMS entry {}", i + 1),
                "negative count",
            )
        })?;
        for (e, &j) in list[offset..offset + count].iter().enumerate() {
            if j == 0 {
                continue; // placeholder for "no exclusions"
            }
            let j = usize::try_from(j - 1)
                .ok()
                .filter(|&j| j < n_atoms && j != i)
                .ok_or_else(|| {
                    MdError::invalid(
                        s.file,
                        format!("%FLAG EXCLUDED_ATOMS_LIST entry {}", offset + e + 1),
                        format!("atom {j} is not another atom in 1..={n_atoms}"),
                    )
                })?;
            exclusions.push([i.min(j), i.max(j)]);
        }
        offset += count;
    }
    exclusions.sort_unstable();
    exclusions.dedup();
    Ok(exclusions)
}

fn read_lennard_jones(s: &Sections, n_types: usize) -> Result<LennardJonesTable, MdError> {
    let parm_index = s.integers("NONBONDED_PARM_INDEX", "Lennard-Jones energies")?;
    s.expect_len("NONBONDED_PARM_INDEX", &parm_index, n_types * n_types)?;
    let acoef = s.reals("LENNARD_JONES_ACOEF", "Lennard-Jones energies")?;
    let bcoef = s.reals("LENNARD_JONES_BCOEF", "Lennard-Jones energies")?;
    let n_pairs = n_types * (n_types + 1) / 2;
    s.expect_len("LENNARD_JONES_ACOEF", &acoef, n_pairs)?;
    s.expect_len("LENNARD_JONES_BCOEF", &bcoef, n_pairs)?;
    // A and B (kcal/mol Å^12, Å^6) for a pair of 0-based types.
    let raw_pair = |ti: usize, tj: usize| -> Result<(f64, f64), MdError> {
        let p = parm_index[ti * n_types + tj];
        if p <= 0 {
            return Err(MdError::invalid(
                s.file,
                "%FLAG NONBONDED_PARM_INDEX",
                format!(
                    "types {} and {} use 10-12 hydrogen-bond terms (not supported)",
                    ti + 1,
                    tj + 1
                ),
            ));
        }
        let p = type_index(
            s.file,
            "NONBONDED_PARM_INDEX",
            ti * n_types + tj,
            p,
            n_pairs,
        )?;
        Ok((acoef[p], bcoef[p]))
    };

    // Per-type r_min/2 (Å) and epsilon (kcal/mol) from the diagonal, as OpenMM.
    let mut half_rmin = vec![0.0; n_types];
    let mut well_depth = vec![0.0; n_types];
    for t in 0..n_types {
        let (a, b) = raw_pair(t, t)?;
        if a != 0.0 && b != 0.0 {
            half_rmin[t] = (2.0 * a / b).powf(1.0 / 6.0) / 2.0;
            well_depth[t] = 0.25 * b * b / a;
        } else {
            half_rmin[t] = 0.5;
            well_depth[t] = 0.0;
        }
    }
    let mut nbfix = false;
    for ti in 0..n_types {
        for tj in 0..n_types {
            let (a, b) = raw_pair(ti, tj)?;
            let rij = half_rmin[ti] + half_rmin[tj];
            let wdij = (well_depth[ti] * well_depth[tj]).sqrt();
            if a == 0.0 || b == 0.0 {
                nbfix |= a != 0.0 || b != 0.0 || wdij != 0.0;
            } else if ((a - wdij * rij.powi(12)) / a).abs() > 1e-6
                || ((b - 2.0 * wdij * rij.powi(6)) / b).abs() > 1e-6
            {
                nbfix = true;
            }
        }
    }

    let sigma_scale = 2.0 * 2f64.powf(-1.0 / 6.0);
    let sigma: Vec<f64> = half_rmin
        .iter()
        .map(|r| r * ANGSTROM_TO_NM * sigma_scale)
        .collect();
    let epsilon: Vec<f64> = well_depth.iter().map(|e| e * KCAL_TO_KJ).collect();
    let mut table_a = vec![0.0; n_types * n_types];
    let mut table_b = vec![0.0; n_types * n_types];
    let mut file_a = vec![0.0; n_types * n_types];
    let mut file_b = vec![0.0; n_types * n_types];
    for ti in 0..n_types {
        for tj in 0..n_types {
            let index = ti * n_types + tj;
            let (a, b) = raw_pair(ti, tj)?;
            file_a[index] = a * KCAL_TO_KJ * ANGSTROM_TO_NM.powi(12);
            file_b[index] = b * KCAL_TO_KJ * ANGSTROM_TO_NM.powi(6);
            if nbfix {
                table_a[index] = file_a[index];
                table_b[index] = file_b[index];
            } else {
                let sig = 0.5 * (sigma[ti] + sigma[tj]);
                let eps = (epsilon[ti] * epsilon[tj]).sqrt();
                let sig6 = sig.powi(6);
                table_a[index] = 4.0 * eps * sig6 * sig6;
                table_b[index] = 4.0 * eps * sig6;
            }
        }
    }
    Ok(LennardJonesTable {
        n_types,
        acoef: table_a,
        bcoef: table_b,
        acoef_file: file_a,
        bcoef_file: file_b,
        sigma,
        epsilon,
        nbfix,
    })
}

fn read_gb(s: &Sections, n_atoms: usize) -> Result<Option<Vec<GbParameters>>, MdError> {
    let (Some(radii), Some(screen)) = (s.reals_if_present("RADII")?, s.reals_if_present("SCREEN")?)
    else {
        return Ok(None);
    };
    s.expect_len("RADII", &radii, n_atoms)?;
    s.expect_len("SCREEN", &screen, n_atoms)?;
    Ok(Some(
        radii
            .iter()
            .zip(&screen)
            .map(|(&r, &sc)| GbParameters {
                radius: r * ANGSTROM_TO_NM,
                screen: sc,
            })
            .collect(),
    ))
}
