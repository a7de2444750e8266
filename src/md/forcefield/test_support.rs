//! Test helpers: small synthetic molecules and a central-difference force check.

use crate::md::topology::{Atom, GbParameters, LennardJonesTable, Pair14, Topology};

/// Deterministic uniform numbers in [0, 1) (64-bit LCG; tests only).
pub(crate) struct Lcg(u64);

impl Lcg {
    pub(crate) fn new(seed: u64) -> Self {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    pub(crate) fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A synthetic n-atom topology with charges, two LJ types, GB parameters, a few
/// exclusions and 1-4 pairs, and no bonded terms.
pub(crate) fn random_molecule(n: usize, seed: u64) -> Topology {
    let mut rng = Lcg::new(seed);
    let atoms = (0..n)
        .map(|i| Atom {
            name: format!("X{i}"),
            residue_name: "MOL".into(),
            residue_index: 0,
            atomic_number: 6,
            mass: 12.0,
            charge: 1.6 * rng.next() - 0.8,
            lj_type: i % 2,
        })
        .collect();
    let sigma: [f64; 2] = [0.32, 0.25];
    let epsilon: [f64; 2] = [0.4, 0.1];
    let mut acoef = vec![0.0; 4];
    let mut bcoef = vec![0.0; 4];
    for a in 0..2 {
        for b in 0..2 {
            let s6 = (0.5 * (sigma[a] + sigma[b])).powi(6);
            let e = (epsilon[a] * epsilon[b]).sqrt();
            acoef[a * 2 + b] = 4.0 * e * s6 * s6;
            bcoef[a * 2 + b] = 4.0 * e * s6;
        }
    }
    let exclusions: Vec<[usize; 2]> = (0..n.saturating_sub(1))
        .step_by(3)
        .map(|i| [i, i + 1])
        .collect();
    let pairs_14 = (0..n.saturating_sub(3))
        .step_by(2)
        .map(|i| Pair14 {
            atoms: [i, i + 3],
            scee: 1.2,
            scnb: 2.0,
        })
        .collect();
    let gb = (0..n)
        .map(|_| GbParameters {
            radius: 0.12 + 0.07 * rng.next(),
            screen: 0.7 + 0.2 * rng.next(),
        })
        .collect();
    Topology {
        title: "synthetic".into(),
        atoms,
        bonds: vec![],
        angles: vec![],
        torsions: vec![],
        exclusions,
        pairs_14,
        lennard_jones: LennardJonesTable {
            n_types: 2,
            acoef_file: acoef.clone(),
            bcoef_file: bcoef.clone(),
            acoef,
            bcoef,
            sigma: sigma.to_vec(),
            epsilon: epsilon.to_vec(),
            nbfix: false,
        },
        gb: Some(gb),
    }
}

/// Positions on a jittered 0.17 nm grid (no two atoms closer than ~0.1 nm).
pub(crate) fn test_positions(n: usize, seed: u64) -> Vec<[f64; 3]> {
    let mut rng = Lcg::new(seed ^ 0x5eed);
    let side = (n as f64).cbrt().ceil() as usize;
    (0..n)
        .map(|a| {
            let cell = [a % side, (a / side) % side, a / (side * side)];
            cell.map(|c| 0.17 * c as f64 + 0.06 * (rng.next() - 0.5))
        })
        .collect()
}

/// Compare the forces of `energy_forces` at the test positions of `topology` with
/// five-point central differences of its energy (h = 1e-5 nm).
pub(crate) fn check_forces_by_finite_differences(
    topology: &Topology,
    energy_forces: impl FnMut(&[[f64; 3]], &mut [[f64; 3]]) -> f64,
    tolerance: f64,
) {
    let x = test_positions(topology.n_atoms(), 42);
    check_forces_at(&x, energy_forces, tolerance);
}

/// As [`check_forces_by_finite_differences`] at given positions; the error allowed is
/// `tolerance * max(1, |F|)` per component.
pub(crate) fn check_forces_at(
    x: &[[f64; 3]],
    mut energy_forces: impl FnMut(&[[f64; 3]], &mut [[f64; 3]]) -> f64,
    tolerance: f64,
) {
    let n = x.len();
    let mut forces = vec![[0.0; 3]; n];
    let mut scratch = vec![[0.0; 3]; n];
    energy_forces(x, &mut forces);
    let mut moved = x.to_vec();
    let h = 1e-5;
    let mut max_force: f64 = 0.0;
    let mut energy_at = |moved: &mut Vec<[f64; 3]>, a: usize, d: usize, shift: f64| {
        moved[a][d] = x[a][d] + shift;
        scratch.iter_mut().for_each(|v| *v = [0.0; 3]);
        let e = energy_forces(moved, &mut scratch);
        moved[a][d] = x[a][d];
        e
    };
    for (a, force) in forces.iter().enumerate() {
        for (d, &analytic) in force.iter().enumerate() {
            // Five-point stencil, truncation error O(h^4).
            let near = energy_at(&mut moved, a, d, h) - energy_at(&mut moved, a, d, -h);
            let far = energy_at(&mut moved, a, d, 2.0 * h) - energy_at(&mut moved, a, d, -2.0 * h);
            let numeric = -(8.0 * near - far) / (12.0 * h);
            max_force = max_force.max(analytic.abs());
            assert!(
                (numeric - analytic).abs() <= tolerance * analytic.abs().max(1.0) + 1e-4,
                "atom {a} dim {d}: analytic {analytic}, finite difference {numeric}"
            );
        }
    }
    assert!(
        max_force > 1e-3,
        "forces vanish; the test would prove nothing"
    );
}
