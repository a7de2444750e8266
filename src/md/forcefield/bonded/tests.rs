//! Unit tests of `bonded`.

use super::*;
use crate::md::forcefield::test_support::{check_forces_by_finite_differences, random_molecule};
use crate::md::topology::{HarmonicAngle, HarmonicBond, PeriodicTorsion};

fn soa_of(x: &[[f64; 3]]) -> SoaBuffers {
    let mut soa = SoaBuffers::new(x.len());
    soa.load(x);
    soa
}

fn small_topology() -> Topology {
    let mut top = random_molecule(6, 11);
    top.bonds = vec![
        HarmonicBond {
            atoms: [0, 1],
            k: 2.0e5,
            r0: 0.15,
            involves_hydrogen: false,
        },
        HarmonicBond {
            atoms: [3, 2],
            k: 3.1e5,
            r0: 0.11,
            involves_hydrogen: true,
        },
    ];
    top.angles = vec![
        HarmonicAngle {
            atoms: [0, 1, 2],
            k: 400.0,
            theta0: 1.9,
        },
        HarmonicAngle {
            atoms: [5, 3, 4],
            k: 300.0,
            theta0: 2.1,
        },
    ];
    top.torsions = vec![
        PeriodicTorsion {
            atoms: [0, 1, 2, 3],
            k: 2.5,
            periodicity: 3,
            phase: 0.3,
            improper: false,
        },
        PeriodicTorsion {
            atoms: [4, 2, 1, 5],
            k: 1.5,
            periodicity: 2,
            phase: std::f64::consts::PI,
            improper: true,
        },
        PeriodicTorsion {
            atoms: [1, 2, 3, 4],
            k: 0.7,
            periodicity: 1,
            phase: -1.1,
            improper: false,
        },
    ];
    top
}

#[test]
fn bond_forces_match_finite_differences() {
    let top = small_topology();
    let terms = BondedTerms::new(&top);
    check_forces_by_finite_differences(&top, |x, f| terms.bonds(x, f), 1e-6);
}

#[test]
fn angle_forces_match_finite_differences() {
    let top = small_topology();
    let mut terms = BondedTerms::new(&top);
    check_forces_by_finite_differences(
        &top,
        |x, f| terms.angles::<crate::md::forcefield::simd::Portable>(&soa_of(x), f),
        1e-6,
    );
}

#[test]
fn torsion_forces_match_finite_differences() {
    let top = small_topology();
    let mut terms = BondedTerms::new(&top);
    check_forces_by_finite_differences(
        &top,
        |x, f| terms.torsions::<crate::md::forcefield::simd::Portable>(&soa_of(x), f),
        1e-6,
    );
}

#[test]
fn angle_from_sin_cos_matches_atan2() {
    for i in 0..=20_000 {
        let theta = std::f64::consts::PI * i as f64 / 20_000.0;
        for scale in [1e-3, 1.0, 37.0] {
            let (y, x) = (scale * theta.sin().abs(), scale * theta.cos());
            let expected = y.atan2(x);
            let got = angle_from_sin_cos(y, x);
            assert!(
                (got - expected).abs() <= 2.0 * f64::EPSILON * expected.max(1e-300),
                "{y} {x}: {got} vs {expected}"
            );
        }
    }
    assert_eq!(angle_from_sin_cos(0.0, -1.0), std::f64::consts::PI);
    assert_eq!(angle_from_sin_cos(0.0, 2.0), 0.0);
}

#[test]
fn dihedral_sign_follows_iupac() {
    // b1 = (-1,0,0), b2 = (0,1,0), b3 = (0,0,1): b1.(b2 x b3) = -1, so phi = -90 deg.
    let top = {
        let mut t = random_molecule(4, 1);
        t.torsions = vec![PeriodicTorsion {
            atoms: [0, 1, 2, 3],
            k: 1.0,
            periodicity: 1,
            phase: 0.0,
            improper: false,
        }];
        t
    };
    let mut terms = BondedTerms::new(&top);
    let x = [
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 1.0, 1.0],
    ];
    let mut f = vec![[0.0; 3]; 4];
    // |phi| = 90 deg: E = 1 + cos(phi) = 1; the sign is checked with phase = -90 deg.
    let e = terms.torsions::<crate::md::forcefield::simd::Portable>(&soa_of(&x), &mut f);
    assert!((e - 1.0).abs() < 1e-12);
    let mut shifted = top.clone();
    shifted.torsions[0].phase = -std::f64::consts::FRAC_PI_2;
    let e = BondedTerms::new(&shifted)
        .torsions::<crate::md::forcefield::simd::Portable>(&soa_of(&x), &mut f);
    assert!(
        (e - 2.0).abs() < 1e-12,
        "IUPAC phi should be -90 deg, E = {e}"
    );
}
