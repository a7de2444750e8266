//! AMBER and PDB readers: defaults of old prmtop files, error messages that name the
//! file and the flag, and a multi-model PDB round trip.

use cgloop::md::error::MdError;
use cgloop::md::forcefield::{ForceField, Solvent};
use cgloop::md::io::pdb::{PdbAtom, parse_pdb, write_pdb};
use cgloop::md::io::prmtop::parse_prmtop;

const ALA2_PRMTOP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/alanine_dipeptide/ala2_ff14SB.prmtop"
);
const ALA2_PDB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/alanine_dipeptide/ala2_ff14SB.pdb"
);
/// ala2_ff14SB.prmtop with the SCEE_SCALE_FACTOR and SCNB_SCALE_FACTOR sections deleted.
const ALA2_NO_SCALE_FACTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/ala2_ff14SB_no_scee_scnb.prmtop"
);
const CLN025_PRMTOP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/datasets/chignolin/cln025_ff14SB.prmtop"
);

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ala2_positions() -> Vec<[f64; 3]> {
    parse_pdb(&read(ALA2_PDB), ALA2_PDB)
        .unwrap()
        .frames
        .remove(0)
}

#[test]
fn topology_counts_and_units() {
    let top = parse_prmtop(&read(ALA2_PRMTOP), ALA2_PRMTOP).unwrap();
    assert_eq!(top.n_atoms(), 22);
    assert_eq!(top.bonds.len(), 21);
    assert_eq!(top.hydrogen_bonds().count(), 12);
    assert_eq!(top.angles.len(), 36);
    assert!(top.net_charge().abs() < 1e-6, "ACE-ALA-NME is neutral");
    assert_eq!(top.atoms[1].name, "CH3");
    assert_eq!(top.atoms[6].residue_name, "ALA");
    assert_eq!(top.atoms[6].residue_index, 1);
    assert!(top.torsions.iter().any(|t| t.improper));
    // Every 1-4 pair is distinct and none is also a 1-2 or 1-3 pair (bonded).
    let bonded: Vec<[usize; 2]> = top
        .bonds
        .iter()
        .map(|b| [b.atoms[0].min(b.atoms[1]), b.atoms[0].max(b.atoms[1])])
        .collect();
    assert!(top.pairs_14.iter().all(|p| !bonded.contains(&p.atoms)));
    assert!(top.pairs_14.iter().all(|p| p.scee == 1.2 && p.scnb == 2.0));
    // C-H bond: r0 = 1.09 Å, k = 2 x 340 kcal/mol/Å^2.
    let ch = top
        .bonds
        .iter()
        .find(|b| b.atoms == [1, 0] || b.atoms == [0, 1])
        .unwrap();
    assert!((ch.r0 - 0.109).abs() < 1e-12);
    assert!((ch.k - 2.0 * 340.0 * 418.4).abs() < 1e-6);
    let gb = top.gb.as_ref().unwrap();
    assert!(
        (gb[0].radius - 0.12).abs() < 1e-12,
        "mbondi2 H on C is 1.2 Å"
    );
}

#[test]
fn chignolin_zero_lj_one_four_pairs_are_finite_and_zero() {
    let top = parse_prmtop(&read(CLN025_PRMTOP), CLN025_PRMTOP).unwrap();
    assert_eq!(top.n_atoms(), 166);
    assert!((top.net_charge() + 2.0).abs() < 1e-4);
    let huge: Vec<_> = top.pairs_14.iter().filter(|p| p.scnb >= 1e9).collect();
    assert!(
        !huge.is_empty(),
        "ParmEd writes SCNB = 1e10 for 1-4 pairs without LJ"
    );
    for p in huge {
        let (ti, tj) = (top.atoms[p.atoms[0]].lj_type, top.atoms[p.atoms[1]].lj_type);
        let (a, b) = top.lennard_jones.pair_14(ti, tj);
        assert!((a / p.scnb).abs() < 1e-12 && (b / p.scnb).abs() < 1e-12);
    }
}

#[test]
fn missing_scee_scnb_flags_default_to_1_2_and_2_0() {
    let with = parse_prmtop(&read(ALA2_PRMTOP), ALA2_PRMTOP).unwrap();
    let without = parse_prmtop(&read(ALA2_NO_SCALE_FACTORS), ALA2_NO_SCALE_FACTORS).unwrap();
    assert!(
        without
            .pairs_14
            .iter()
            .all(|p| p.scee == 1.2 && p.scnb == 2.0)
    );
    let x = ala2_positions();
    for solvent in [Solvent::Vacuum, Solvent::Obc2] {
        let mut f_with = vec![[0.0; 3]; x.len()];
        let mut f_without = vec![[0.0; 3]; x.len()];
        let e_with = ForceField::new(&with, solvent)
            .unwrap()
            .compute(&x, &mut f_with);
        let e_without = ForceField::new(&without, solvent)
            .unwrap()
            .compute(&x, &mut f_without);
        assert!(e_with.coulomb_14.abs() > 1.0 && e_with.lennard_jones_14.abs() > 1.0);
        assert_eq!(e_with, e_without);
        assert_eq!(f_with, f_without);
    }
}

/// Remove one %FLAG section from prmtop text.
fn without_flag(text: &str, flag: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("%FLAG ") {
            skipping = name.trim() == flag;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn missing_flag_names_file_and_flag() {
    let text = without_flag(&read(ALA2_PRMTOP), "CHARGE");
    let err = parse_prmtop(&text, "broken.prmtop").unwrap_err();
    assert!(
        matches!(&err, MdError::MissingFlag { flag, .. } if flag == "CHARGE"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("broken.prmtop") && message.contains("CHARGE"),
        "{message}"
    );
}

#[test]
fn bad_number_names_file_flag_entry_and_line() {
    let text = read(ALA2_PRMTOP).replacen(
        "  2.04636429E+00 -6.67300626E+00",
        "  2.04636429E+00 -6.6730x626E+00",
        1,
    );
    let err = parse_prmtop(&text, "typo.prmtop").unwrap_err();
    let message = err.to_string();
    let charge_line = text
        .lines()
        .position(|l| l.contains("-6.6730x626E+00"))
        .unwrap()
        + 1;
    assert!(message.contains("typo.prmtop"), "{message}");
    assert!(message.contains("%FLAG CHARGE entry 2"), "{message}");
    assert!(
        message.contains(&format!("line {charge_line}")),
        "{message}"
    );
    assert!(message.contains("-6.6730x626E+00"), "{message}");
}

#[test]
fn wrong_count_and_bad_pointer_are_errors() {
    // One charge too few.
    let text = read(ALA2_PRMTOP).replacen(
        "\n  1.77849648E+00  1.77849648E+00\n%FLAG ATOMIC_NUMBER",
        "\n  1.77849648E+00\n%FLAG ATOMIC_NUMBER",
        1,
    );
    let message = parse_prmtop(&text, "short.prmtop").unwrap_err().to_string();
    assert!(
        message.contains("short.prmtop")
            && message.contains("CHARGE")
            && message.contains("expected 22"),
        "{message}"
    );
    // A bond pointer that is not 3 x an atom index.
    let original = read(ALA2_PRMTOP);
    let start = original.find("%FLAG BONDS_INC_HYDROGEN").unwrap();
    let first_data_line = start + original[start..].find("\n%FORMAT").unwrap() + 1;
    let data_start = first_data_line + original[first_data_line..].find('\n').unwrap() + 1;
    let mut text = original.clone();
    text.replace_range(data_start..data_start + 8, "       4");
    let message = parse_prmtop(&text, "pointer.prmtop")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("pointer.prmtop") && message.contains("BONDS_INC_HYDROGEN"),
        "{message}"
    );
}

#[test]
fn unsupported_terms_are_refused() {
    let text = read(ALA2_PRMTOP).replacen(
        "%FLAG RADIUS_SET",
        "%FLAG CMAP_COUNT\n%FORMAT(2I8)\n       1       1\n%FLAG RADIUS_SET",
        1,
    );
    let message = parse_prmtop(&text, "cmap.prmtop").unwrap_err().to_string();
    assert!(
        message.contains("cmap.prmtop") && message.contains("CMAP"),
        "{message}"
    );
}

#[test]
fn obc2_requires_radii() {
    let text = without_flag(&read(ALA2_PRMTOP), "RADII");
    let top = parse_prmtop(&text, "noradii.prmtop").unwrap();
    assert!(top.gb.is_none());
    assert!(ForceField::new(&top, Solvent::Obc2).is_err());
}

#[test]
fn pdb_multi_model_round_trip() {
    let structure = parse_pdb(&read(ALA2_PDB), ALA2_PDB).unwrap();
    assert_eq!(structure.atoms.len(), 22);
    assert_eq!(structure.atom_names()[..3], ["H1", "CH3", "H2"]);
    let base = &structure.frames[0];
    let frames: Vec<Vec<[f64; 3]>> = (0..3)
        .map(|m| {
            base.iter()
                .map(|p| [p[0] + 0.01 * m as f64, p[1] - 0.123_456 * m as f64, p[2]])
                .collect()
        })
        .collect();
    let text = write_pdb(&structure.atoms, &frames).unwrap();
    assert_eq!(text.matches("MODEL").count(), 3);
    let back = parse_pdb(&text, "roundtrip.pdb").unwrap();
    assert_eq!(back.atoms, structure.atoms);
    assert_eq!(back.frames.len(), 3);
    for (written, read_back) in frames.iter().zip(&back.frames) {
        for (p, q) in written.iter().zip(read_back) {
            for d in 0..3 {
                assert!(
                    (p[d] - q[d]).abs() <= 5.0001e-5,
                    "PDB keeps 0.001 Å: {p:?} vs {q:?}"
                );
            }
        }
    }
    // A single frame is written without MODEL records and reads back as one frame.
    let single = write_pdb(&structure.atoms, &frames[..1]).unwrap();
    assert!(!single.contains("MODEL"));
    assert_eq!(parse_pdb(&single, "single.pdb").unwrap().frames.len(), 1);
}

#[test]
fn pdb_from_topology_and_mismatched_models() {
    let top = parse_prmtop(&read(ALA2_PRMTOP), ALA2_PRMTOP).unwrap();
    let atoms = PdbAtom::from_topology(&top);
    assert_eq!(atoms[5].element, "O");
    let x = ala2_positions();
    let text = write_pdb(&atoms, &[x.clone(), x.clone()]).unwrap();
    // Drop the last atom of the second model.
    let cut = text.rfind("ATOM").unwrap();
    let end_of_line = cut + text[cut..].find('\n').unwrap() + 1;
    let broken = format!("{}{}", &text[..cut], &text[end_of_line..]);
    let message = parse_pdb(&broken, "models.pdb").unwrap_err().to_string();
    assert!(
        message.contains("models.pdb") && message.contains("model 2"),
        "{message}"
    );
    assert!(write_pdb(&atoms, &[x[..3].to_vec()]).is_err());
}
