//! `cgloop energy`: the binary's single-point energy and forces against OpenMM's
//! (datasets/alanine_dipeptide/ala2_openmm_reference.json), and its user errors.

use crate::common;

use std::process::{Command, Output};

use common::TempDir;
use serde_json::Value;

const DATASET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/alanine_dipeptide");

fn cgloop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cgloop"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn dataset(name: &str) -> String {
    format!("{DATASET}/{name}")
}

#[test]
fn json_energy_and_forces_match_openmm_with_obc2() {
    let out = cgloop(&[
        "energy",
        "--topology",
        &dataset("ala2_ff14SB.prmtop"),
        "--coordinates",
        &dataset("ala2_ff14SB.inpcrd"),
        "--solvent",
        "obc2",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let ours: Value = serde_json::from_str(stdout.trim()).expect("stdout is one JSON object");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(dataset("ala2_openmm_reference.json")).unwrap(),
    )
    .unwrap();
    let openmm = &reference["results"]["start_tleap_extended"]["ff14SB_obc2"]["total"];

    let total = ours["total_kj_per_mol"].as_f64().unwrap();
    let expected = openmm["energy"].as_f64().unwrap();
    assert!(
        (total - expected).abs() < 1e-4,
        "total {total} vs OpenMM {expected}"
    );
    let terms = ours["terms_kj_per_mol"].as_object().unwrap();
    let names = [
        "bonds",
        "angles",
        "torsions",
        "coulomb",
        "lennard_jones",
        "coulomb_14",
        "lennard_jones_14",
        "gb",
    ];
    assert_eq!(terms.len(), names.len(), "{terms:?}");
    let sum: f64 = names.iter().map(|n| terms[*n].as_f64().unwrap()).sum();
    assert!((sum - total).abs() < 1e-9 * total.abs().max(1.0));
    assert!(
        terms["gb"].as_f64().unwrap() < 0.0,
        "solvation is favourable"
    );

    let forces = ours["forces_kj_per_mol_nm"].as_array().unwrap();
    let expected = openmm["forces"].as_array().unwrap();
    assert_eq!(forces.len(), 22);
    assert_eq!(forces.len(), expected.len());
    for (atom, (f, e)) in forces.iter().zip(expected).enumerate() {
        for d in 0..3 {
            let (f, e) = (f[d].as_f64().unwrap(), e[d].as_f64().unwrap());
            assert!(
                (f - e).abs() < 5e-4,
                "atom {atom} component {d}: {f} vs OpenMM {e}"
            );
        }
    }
}

#[test]
fn the_table_lists_every_term_the_total_and_the_largest_force() {
    let out = cgloop(&[
        "energy",
        "--topology",
        &dataset("ala2_ff14SB.prmtop"),
        "--coordinates",
        &dataset("ala2_ff14SB.pdb"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for term in ["bonds", "lennard_jones_14", "gb", "total", "max |F|"] {
        assert!(table.contains(term), "{term} missing:\n{table}");
    }
    assert!(table.contains("vacuum"), "{table}");
}

#[test]
fn a_malformed_prmtop_is_a_user_error_naming_the_file() {
    let dir = TempDir::new("cli-energy-bad");
    let good = std::fs::read_to_string(dataset("ala2_ff14SB.prmtop")).unwrap();
    // Garble the first value after %FLAG POINTERS (NATOM).
    let at = good.find("%FLAG POINTERS").unwrap();
    let format_line_end = at + good[at..].find("%FORMAT").unwrap();
    let value_start = format_line_end + good[format_line_end..].find('\n').unwrap() + 1;
    let mut bad = good.clone();
    bad.replace_range(value_start..value_start + 8, "  banana");
    let path = dir.write("broken.prmtop", &bad);
    let out = cgloop(&[
        "energy",
        "--topology",
        path.to_str().unwrap(),
        "--coordinates",
        &dataset("ala2_ff14SB.inpcrd"),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("broken.prmtop"), "{err}");
    assert!(text(&out.stdout).is_empty(), "nothing on stdout on error");

    let out = cgloop(&[
        "energy",
        "--topology",
        &dataset("ala2_ff14SB.prmtop"),
        "--coordinates",
        &dir.path().join("missing.inpcrd").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.inpcrd"));
}
