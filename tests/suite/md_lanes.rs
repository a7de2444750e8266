//! Trajectories are the same bits on every instruction set: Langevin dynamics of the
//! datasets' molecules (alanine dipeptide in OBC2 with H-bond constraints, as the study's
//! `fg` node runs it; CLN025 in OBC2) on each force-field instruction set this CPU has
//! (portable, AVX2, AVX-512), and a pinned hash of those bits, so that a machine of
//! another kind (another instruction set, other caches) that gives other bits fails here.

use cgloop::md::forcefield::{ForceField, InstructionSet, Solvent};
use cgloop::md::io::structure::Structure;
use cgloop::md::langevin::{LangevinIntegrator, LangevinParams};
use cgloop::random::stream;

/// Positions, velocities and potential energies of every 50th step of `steps` steps at
/// 300 K, 2 fs, friction 1/ps, as bits.
fn trajectory_bits(dataset: &str, stem: &str, set: InstructionSet, steps: u64) -> Vec<u64> {
    let base = format!("{}/datasets/{dataset}/{stem}", env!("CARGO_MANIFEST_DIR"));
    let structure = Structure::read(
        std::path::Path::new(&format!("{base}.prmtop")),
        std::path::Path::new(&format!("{base}.inpcrd")),
    )
    .unwrap();
    let constraints = structure.hbond_constraints();
    let (mut ff, _) = ForceField::new(&structure.topology, Solvent::Obc2)
        .unwrap()
        .without_constrained_bonds(&constraints);
    ff.set_instruction_set(set).unwrap();
    let mut md = LangevinIntegrator::new(
        ff,
        &structure.masses(),
        &structure.positions,
        &constraints,
        LangevinParams::new(300.0, 1.0, 0.002),
        stream(2026, 7),
    )
    .unwrap();
    md.initialize_velocities().unwrap();
    let mut bits = Vec::new();
    md.run(steps, 50, |f| {
        bits.extend(
            f.positions
                .iter()
                .chain(f.velocities)
                .flatten()
                .map(|v| v.to_bits()),
        );
        bits.push(f.potential_energy.to_bits());
    })
    .unwrap();
    bits
}

fn hash(bits: &[u64]) -> String {
    let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    blake3::hash(&bytes).to_hex()[..16].to_string()
}

/// Every available instruction set against portable; returns the hash of the bits.
fn same_on_every_instruction_set(dataset: &str, stem: &str, steps: u64) -> String {
    let portable = trajectory_bits(dataset, stem, InstructionSet::Portable, steps);
    assert!(!portable.is_empty());
    for set in InstructionSet::ALL.into_iter().filter(|s| s.is_available()) {
        let bits = trajectory_bits(dataset, stem, set, steps);
        let first_difference = bits.iter().zip(&portable).position(|(a, b)| a != b);
        assert!(
            first_difference.is_none() && bits.len() == portable.len(),
            "{stem}: {} differs from portable at word {first_difference:?}",
            set.name()
        );
        eprintln!("{stem}: {} gives the portable bits", set.name());
    }
    hash(&portable)
}

#[test]
fn alanine_dipeptide_trajectory_is_the_same_bits_on_every_instruction_set() {
    let hash = same_on_every_instruction_set("alanine_dipeptide", "ala2_ff14SB", 2_000);
    assert_eq!(hash, "8f4b84d0d6d13497", "the trajectory's bits moved");
}

#[test]
fn chignolin_trajectory_is_the_same_bits_on_every_instruction_set() {
    let hash = same_on_every_instruction_set("chignolin", "cln025_ff14SB", 300);
    assert_eq!(hash, "b4b7726f7aac9f87", "the trajectory's bits moved");
}
