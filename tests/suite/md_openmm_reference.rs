//! Energies and forces of cgloop's AMBER force field against OpenMM 8.6.1 (Reference
//! platform, double precision), term by term, for alanine dipeptide (ff14SB and
//! ff99SB-ILDN) and chignolin (ff14SB), in vacuum and with GBSA-OBC2. The reference
//! JSON files and the script provenance are described in datasets/README.md.
//!
//! Tolerances: energies within max(1e-4 kJ/mol, 1e-6 relative); every force component
//! within 5e-4 kJ/mol/nm.

use cgloop::md::forcefield::{ForceField, InstructionSet, Solvent, Term};
use cgloop::md::io::coordinates::parse_inpcrd;
use cgloop::md::io::pdb::parse_pdb;
use cgloop::md::io::prmtop::parse_prmtop;
use serde_json::Value;

const ENERGY_ABS_TOL: f64 = 1e-4;
const ENERGY_REL_TOL: f64 = 1e-6;
const FORCE_TOL: f64 = 5e-4;

struct Dataset {
    dir: &'static str,
    prefix: &'static str,
    json: &'static str,
    /// A coordinate file (inpcrd or PDB) and the configuration whose positions it holds.
    coordinate_file: &'static str,
    coordinate_configuration: &'static str,
}

const DATASETS: [Dataset; 2] = [
    Dataset {
        dir: concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/alanine_dipeptide"),
        prefix: "ala2",
        json: "ala2_openmm_reference.json",
        coordinate_file: "ala2_ff14SB.inpcrd",
        coordinate_configuration: "start_tleap_extended",
    },
    Dataset {
        dir: concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/chignolin"),
        prefix: "cln025",
        json: "cln025_openmm_reference.json",
        coordinate_file: "cln025_ff14SB.pdb",
        coordinate_configuration: "structure",
    },
];

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn vec3s(value: &Value) -> Vec<[f64; 3]> {
    value
        .as_array()
        .expect("array of 3-vectors")
        .iter()
        .map(|v| {
            let v = v.as_array().expect("3-vector");
            [0, 1, 2].map(|d| v[d].as_f64().expect("number"))
        })
        .collect()
}

/// Largest deviations seen for one system, for the summary.
#[derive(Default)]
struct Deviation {
    energy: f64,
    force: f64,
}

fn compare(
    label: &str,
    energy: f64,
    forces: &[[f64; 3]],
    reference: &Value,
    worst: &mut Deviation,
) {
    let ref_energy = reference["energy"].as_f64().expect("energy");
    let ref_forces = vec3s(&reference["forces"]);
    assert_eq!(ref_forces.len(), forces.len(), "{label}: atom count");
    let energy_error = (energy - ref_energy).abs();
    let allowed = ENERGY_ABS_TOL.max(ENERGY_REL_TOL * ref_energy.abs());
    assert!(
        energy_error <= allowed,
        "{label}: energy {energy} vs OpenMM {ref_energy} (|diff| {energy_error:e} > {allowed:e})"
    );
    worst.energy = worst.energy.max(energy_error);
    for (atom, (f, r)) in forces.iter().zip(&ref_forces).enumerate() {
        for d in 0..3 {
            let error = (f[d] - r[d]).abs();
            assert!(
                error <= FORCE_TOL,
                "{label}: atom {atom} component {d}: force {} vs OpenMM {} (|diff| {error:e})",
                f[d],
                r[d]
            );
            worst.force = worst.force.max(error);
        }
    }
}

fn sum_terms(ff: &mut ForceField, terms: &[Term], x: &[[f64; 3]]) -> (f64, Vec<[f64; 3]>) {
    let n = x.len();
    let mut total = vec![[0.0; 3]; n];
    let mut one = vec![[0.0; 3]; n];
    let mut energy = 0.0;
    for &term in terms {
        energy += ff.compute_term(term, x, &mut one);
        for (t, o) in total.iter_mut().zip(&one) {
            for d in 0..3 {
                t[d] += o[d];
            }
        }
    }
    (energy, total)
}

#[test]
fn energies_and_forces_match_openmm_term_by_term() {
    let mut systems_checked = 0;
    for dataset in &DATASETS {
        let reference: Value =
            serde_json::from_str(&read(&format!("{}/{}", dataset.dir, dataset.json))).unwrap();
        let configurations = reference["configurations"].as_object().unwrap();
        let results = reference["results"].as_object().unwrap();
        for (configuration, systems) in results {
            let x = vec3s(&configurations[configuration]["positions_nm"]);
            for (system, expected) in systems.as_object().unwrap() {
                let (force_field, solvent) = system.rsplit_once('_').unwrap();
                let solvent = match solvent {
                    "vacuum" => Solvent::Vacuum,
                    "obc2" => Solvent::Obc2,
                    other => panic!("unknown solvent {other}"),
                };
                let path = format!("{}/{}_{}.prmtop", dataset.dir, dataset.prefix, force_field);
                let topology = parse_prmtop(&read(&path), &path).unwrap();
                let mut ff = ForceField::new(&topology, solvent).unwrap();
                let label = format!("{} {configuration} {system}", dataset.prefix);
                let mut worst = Deviation::default();

                let by_force = &expected["by_force"];
                let nonbonded = [
                    Term::Coulomb,
                    Term::LennardJones,
                    Term::Coulomb14,
                    Term::LennardJones14,
                ];
                let mut checks: Vec<(&str, &Value, Vec<Term>)> = vec![
                    (
                        "HarmonicBondForce",
                        &by_force["HarmonicBondForce"],
                        vec![Term::Bonds],
                    ),
                    (
                        "HarmonicAngleForce",
                        &by_force["HarmonicAngleForce"],
                        vec![Term::Angles],
                    ),
                    (
                        "PeriodicTorsionForce",
                        &by_force["PeriodicTorsionForce"],
                        vec![Term::Torsions],
                    ),
                    (
                        "NonbondedForce",
                        &by_force["NonbondedForce"],
                        nonbonded.to_vec(),
                    ),
                ];
                let split = &expected["nonbonded_split"];
                checks.push((
                    "coulomb_pairs",
                    &split["coulomb_pairs"],
                    vec![Term::Coulomb],
                ));
                checks.push(("lj_pairs", &split["lj_pairs"], vec![Term::LennardJones]));
                checks.push(("coulomb_14", &split["coulomb_14"], vec![Term::Coulomb14]));
                checks.push(("lj_14", &split["lj_14"], vec![Term::LennardJones14]));
                match solvent {
                    Solvent::Obc2 => {
                        checks.push(("GBSAOBCForce", &by_force["GBSAOBCForce"], vec![Term::Gb]))
                    }
                    Solvent::Vacuum => assert!(by_force.get("GBSAOBCForce").is_none()),
                }
                for (name, reference_term, terms) in checks {
                    assert!(
                        reference_term.is_object(),
                        "{label}: reference lacks {name}"
                    );
                    let (energy, forces) = sum_terms(&mut ff, &terms, &x);
                    let mut term_worst = Deviation::default();
                    compare(
                        &format!("{label} {name}"),
                        energy,
                        &forces,
                        reference_term,
                        &mut term_worst,
                    );
                    println!(
                        "  {label} {name}: |dE| {:.1e}, |dF| {:.1e}",
                        term_worst.energy, term_worst.force
                    );
                    worst.energy = worst.energy.max(term_worst.energy);
                    worst.force = worst.force.max(term_worst.force);
                }

                // The total through `compute` on every instruction set this CPU has: the
                // reference's numbers, and the same bits on each.
                let mut first: Option<Vec<u64>> = None;
                for set in InstructionSet::ALL.into_iter().filter(|s| s.is_available()) {
                    ff.set_instruction_set(set).unwrap();
                    let mut forces = vec![[0.0; 3]; x.len()];
                    let energies = ff.compute(&x, &mut forces);
                    compare(
                        &format!("{label} total ({})", set.name()),
                        energies.total(),
                        &forces,
                        &expected["total"],
                        &mut worst,
                    );
                    let bits: Vec<u64> = std::iter::once(energies.total())
                        .chain(forces.iter().flatten().copied())
                        .map(f64::to_bits)
                        .collect();
                    match &first {
                        None => first = Some(bits),
                        Some(first) => assert!(
                            *first == bits,
                            "{label}: {} gives other bits than portable",
                            set.name()
                        ),
                    }
                }
                println!(
                    "{label}: max |dE| = {:.2e} kJ/mol, max |dF| = {:.2e} kJ/mol/nm",
                    worst.energy, worst.force
                );
                systems_checked += 1;
            }
        }
    }
    assert_eq!(
        systems_checked,
        2 * 4 + 2 * 2,
        "every configuration x system"
    );
}

#[test]
fn coordinate_files_hold_the_reference_positions() {
    for dataset in &DATASETS {
        let reference: Value =
            serde_json::from_str(&read(&format!("{}/{}", dataset.dir, dataset.json))).unwrap();
        let expected =
            vec3s(&reference["configurations"][dataset.coordinate_configuration]["positions_nm"]);
        let path = format!("{}/{}", dataset.dir, dataset.coordinate_file);
        let positions = if path.ends_with(".pdb") {
            let structure = parse_pdb(&read(&path), &path).unwrap();
            assert_eq!(structure.frames.len(), 1);
            structure.frames[0].clone()
        } else {
            parse_inpcrd(&read(&path), &path).unwrap().positions
        };
        assert_eq!(positions.len(), expected.len());
        for (p, e) in positions.iter().zip(&expected) {
            for d in 0..3 {
                assert!((p[d] - e[d]).abs() < 1e-9, "{path}: {p:?} vs {e:?}");
            }
        }
    }
}

/// Microseconds per `compute` call (energy and forces), one thread, for each molecule
/// and solvent. Run with `cargo test --release --test suite md_openmm_reference:: -- --ignored
/// --nocapture`; prints one JSON line per case.
#[test]
#[ignore = "timing, not a check"]
fn force_field_timing() {
    use std::time::Instant;
    let cases = [
        ("alanine_dipeptide", "ala2_ff14SB", 100_000),
        ("chignolin", "cln025_ff14SB", 2_000),
    ];
    for (dir, stem, calls) in cases {
        let base = format!("{}/datasets/{dir}/{stem}", env!("CARGO_MANIFEST_DIR"));
        let prmtop = format!("{base}.prmtop");
        let inpcrd = format!("{base}.inpcrd");
        let topology = parse_prmtop(&read(&prmtop), &prmtop).unwrap();
        let x = parse_inpcrd(&read(&inpcrd), &inpcrd).unwrap().positions;
        for solvent in [Solvent::Vacuum, Solvent::Obc2] {
            for set in InstructionSet::ALL.into_iter().filter(|s| s.is_available()) {
                let mut ff = ForceField::new(&topology, solvent).unwrap();
                ff.set_instruction_set(set).unwrap();
                let mut forces = vec![[0.0; 3]; x.len()];
                let mut checksum = 0.0;
                for _ in 0..calls / 10 {
                    checksum += ff.compute(&x, &mut forces).total();
                }
                let start = Instant::now();
                for _ in 0..calls {
                    checksum += ff.compute(&x, &mut forces).total();
                }
                let us = start.elapsed().as_secs_f64() * 1e6 / calls as f64;
                println!(
                    "{{\"molecule\": \"{stem}\", \"solvent\": \"{solvent:?}\", \"instruction_set\": \"{}\", \"us_per_call\": {us:.3}, \"checksum\": {checksum:.3e}}}",
                    set.name()
                );
            }
        }
    }
}
