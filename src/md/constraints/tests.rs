//! Unit tests of `constraints`.

use super::*;

/// A methyl-like star: carbon 0 with hydrogens 1, 2, 3, plus a lone C-H (4, 5).
fn methyl() -> (Vec<[f64; 3]>, Vec<f64>, Vec<DistanceConstraint>) {
    let x = vec![
        [0.0, 0.0, 0.0],
        [0.11, 0.0, 0.0],
        [-0.03, 0.1, 0.0],
        [-0.03, -0.05, 0.09],
        [0.5, 0.5, 0.5],
        [0.6, 0.5, 0.5],
    ];
    let m = vec![12.01, 1.008, 1.008, 1.008, 12.01, 1.008];
    let c = [(0, 1), (2, 0), (0, 3), (4, 5)]
        .iter()
        .map(|&(i, j)| DistanceConstraint {
            i,
            j,
            length_nm: 0.109,
        })
        .collect();
    (x, m, c)
}

#[test]
fn clusters_follow_shared_atoms() {
    let (_, m, c) = methyl();
    let cons = Constraints::new(&c, &m).unwrap();
    assert_eq!(cons.cluster_start, vec![0, 3, 4]);
    assert_eq!(cons.len(), 4);
}

#[test]
fn shake_then_rattle_satisfy_the_constraints_and_conserve_momentum() {
    let (reference, m, c) = methyl();
    let cons = Constraints::new(&c, &m).unwrap();
    let mut x = reference.clone();
    cons.apply_positions(&reference.clone(), &mut x).unwrap();
    assert!(cons.max_relative_error(&x) < 1e-10);
    let reference = x.clone();
    // A random-looking displacement of a 2 fs step at high speed.
    for (i, p) in x.iter_mut().enumerate() {
        for (k, v) in p.iter_mut().enumerate() {
            *v += 0.004 * (((i * 7 + k * 3) % 5) as f64 - 2.0);
        }
    }
    let momentum = |x: &[[f64; 3]]| {
        let mut p = [0.0; 3];
        for (xi, mi) in x.iter().zip(&m) {
            for k in 0..3 {
                p[k] += mi * xi[k];
            }
        }
        p
    };
    let before = momentum(&x);
    let iterations = cons.apply_positions(&reference, &mut x).unwrap();
    assert!(iterations <= 6, "{iterations} iterations");
    assert!(cons.max_relative_error(&x) < 1e-10);
    let after = momentum(&x);
    for k in 0..3 {
        assert!((before[k] - after[k]).abs() < 1e-14);
    }
    let mut v: Vec<[f64; 3]> = (0..6)
        .map(|i| [i as f64 - 2.0, 1.0 - i as f64 * 0.3, 0.5])
        .collect();
    cons.apply_velocities(&x, &mut v).unwrap();
    for DistanceConstraint { i, j, .. } in cons.iter() {
        let rate = dot(sub(v[i], v[j]), sub(x[i], x[j]));
        assert!(rate.abs() < 1e-13, "d/dt |r|^2 / 2 = {rate}");
    }
}

#[test]
fn avx2_and_plain_builds_agree_bit_for_bit() {
    // SHAKE and RATTLE as dispatched (compiled for AVX2 where the CPU has it) and
    // their plain builds: the same operations, so the same bits.
    let (reference, m, c) = methyl();
    let cons = Constraints::new(&c, &m).unwrap();
    let mut base = reference.clone();
    cons.shake(&reference, &mut base).unwrap();
    for trial in 0..50 {
        let mut x = base.clone();
        for (i, p) in x.iter_mut().enumerate() {
            for (k, v) in p.iter_mut().enumerate() {
                *v += 0.003 * ((((i * 7 + k * 3 + trial * 11) % 13) as f64) / 6.0 - 1.0);
            }
        }
        let mut y = x.clone();
        assert_eq!(
            cons.apply_positions(&base, &mut x).unwrap(),
            cons.shake(&base, &mut y).unwrap()
        );
        assert!(
            x.iter()
                .flatten()
                .zip(y.iter().flatten())
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        let mut v: Vec<[f64; 3]> = (0..6)
            .map(|i| [i as f64 - 2.5, 0.1 * trial as f64, 1.0 - 0.2 * i as f64])
            .collect();
        let mut w = v.clone();
        cons.apply_velocities(&x, &mut v).unwrap();
        cons.rattle(&x, &mut w).unwrap();
        assert!(
            v.iter()
                .flatten()
                .zip(w.iter().flatten())
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }
}

#[test]
fn larger_clusters_are_solved_and_oversized_ones_rejected() {
    // A five-bond chain (K = 5) and a CH4 star (K = 4).
    let chain: Vec<[f64; 3]> = (0..6)
        .map(|i| [0.1 * i as f64, 0.02 * (i % 2) as f64, 0.0])
        .collect();
    let star = [
        [1.0, 1.0, 1.0],
        [1.1, 1.0, 1.0],
        [1.0, 1.1, 1.0],
        [1.0, 1.0, 1.1],
        [0.95, 0.95, 0.95],
    ];
    let x0: Vec<[f64; 3]> = chain.iter().chain(&star).copied().collect();
    let mut bonds: Vec<DistanceConstraint> = (0..5)
        .map(|i| DistanceConstraint {
            i,
            j: i + 1,
            length_nm: 0.1,
        })
        .collect();
    bonds.extend((7..11).map(|j| DistanceConstraint {
        i: 6,
        j,
        length_nm: 0.109,
    }));
    let masses: Vec<f64> = (0..11)
        .map(|i| if i == 6 { 12.0 } else { 1.0 + i as f64 })
        .collect();
    let cons = Constraints::new(&bonds, &masses).unwrap();
    assert_eq!(cons.cluster_start, vec![0, 5, 9]);
    let mut x = x0.clone();
    cons.apply_positions(&x0, &mut x).unwrap();
    assert!(cons.max_relative_error(&x) < 1e-10);
    let reference = x.clone();
    for (i, p) in x.iter_mut().enumerate() {
        p[i % 3] += 0.004 * ((i % 4) as f64 - 1.5);
    }
    cons.apply_positions(&reference, &mut x).unwrap();
    assert!(cons.max_relative_error(&x) < 1e-10);
    let mut v: Vec<[f64; 3]> = (0..11)
        .map(|i| [1.0, -(i as f64), 0.3 * i as f64])
        .collect();
    cons.apply_velocities(&x, &mut v).unwrap();
    for c in cons.iter() {
        assert!(dot(sub(v[c.i], v[c.j]), sub(x[c.i], x[c.j])).abs() < 1e-13);
    }

    let long: Vec<DistanceConstraint> = (0..9)
        .map(|i| DistanceConstraint {
            i,
            j: i + 1,
            length_nm: 0.1,
        })
        .collect();
    let err = Constraints::new(&long, &[1.0; 10]).unwrap_err();
    assert!(
        matches!(err, ConstraintError::Invalid { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn invalid_sets_are_rejected() {
    let m = vec![1.0, 1.0];
    let bad = [DistanceConstraint {
        i: 0,
        j: 0,
        length_nm: 0.1,
    }];
    assert!(matches!(
        Constraints::new(&bad, &m),
        Err(ConstraintError::Invalid { index: 0, .. })
    ));
    let twice = [
        DistanceConstraint {
            i: 0,
            j: 1,
            length_nm: 0.1,
        },
        DistanceConstraint {
            i: 1,
            j: 0,
            length_nm: 0.1,
        },
    ];
    assert!(matches!(
        Constraints::new(&twice, &m),
        Err(ConstraintError::Invalid { index: 1, .. })
    ));
}

#[test]
fn h_bonds_are_selected_by_element() {
    let bonds = [(0, 1, 0.109), (0, 4, 0.15), (4, 5, 0.101)];
    let is_h = [false, true, false, false, false, true];
    let c = h_bond_constraints(&bonds, &is_h);
    assert_eq!(c.len(), 2);
    assert_eq!((c[1].i, c[1].j), (4, 5));
}
