//! Bead-angle priors whose centres follow the neighbouring dihedrals
//! (`cgloop::nn::priors::angle_dihedral`): the energy is the formula of the module docs,
//! forces are minus its gradient, order 0 is the plain harmonic prior, and it survives
//! saving (that the candle and host potentials add exactly its terms is in
//! tests/suite/cg_potential_host.rs).

use candle_core::{DType, Device};
use cgloop::geometry::angle::bond_angle_rad;
use cgloop::geometry::dihedral::dihedral_deg;
use cgloop::nn::cg_potential::{potential_config, save_potential};
use cgloop::nn::priors::PriorSet;
use cgloop::nn::priors::angle_dihedral::{angle_dihedral_prior, design_row, order};
use cgloop::nn::priors::bead_angles::{BeadAngles, harmonic_bead_angles};
use cgloop::nn::{CgPotential, CgPotentialConfig, ParameterStore};
use cgloop::random::{normal, stream};
use std::sync::Arc;

fn chain(n: usize, seed: u64) -> Vec<[f64; 3]> {
    let mut rng = stream(seed, 0);
    (0..n)
        .map(|b| {
            [
                0.38 * b as f64 + 0.05 * normal(&mut rng),
                0.25 * ((b % 2) as f64) + 0.08 * normal(&mut rng),
                0.12 * normal(&mut rng) + 0.03 * (b * b) as f64,
            ]
        })
        .collect()
}

fn coefficients(angles: usize, order: usize, seed: u64) -> Vec<f64> {
    let side = 2 * order + 1;
    let mut rng = stream(seed, 1);
    let mut c: Vec<f64> = (0..angles * side * side)
        .map(|_| 0.05 * normal(&mut rng))
        .collect();
    for i in 0..angles {
        c[i * side * side] = 0.0;
    }
    c
}

/// theta0_I from the formula: t_I + sum c_Ijl f_j(a) f_l(b) (absent dihedral: f_0 only).
fn centre(z: &[[f64; 3]], i: usize, t: f64, c: &[f64], order: usize) -> f64 {
    let q = z.len() - 3;
    let psi = |q: usize| dihedral_deg(z[q], z[q + 1], z[q + 2], z[q + 3]).to_radians();
    let a = (i >= 1 && i - 1 < q).then(|| psi(i - 1));
    let b = (i < q).then(|| psi(i));
    let row = design_row(a, b, order);
    let side = 2 * order + 1;
    t + row
        .iter()
        .zip(&c[i * side * side..(i + 1) * side * side])
        .skip(1)
        .map(|(f, w)| f * w)
        .sum::<f64>()
}

#[test]
fn the_energy_is_harmonic_about_centres_that_follow_the_dihedrals() {
    for n in [4, 5, 6] {
        let angles = n - 2;
        let m = 2;
        let c = coefficients(angles, m, n as u64);
        assert_eq!(order(c.len(), angles), Some(m));
        let k: Vec<f64> = (0..angles).map(|i| 150.0 + 40.0 * i as f64).collect();
        let t: Vec<f64> = (0..angles).map(|i| 1.9 + 0.05 * i as f64).collect();
        for seed in 0..4 {
            let z = chain(n, 10 * n as u64 + seed);
            let mut expected = 0.0;
            for i in 0..angles {
                let theta = bond_angle_rad(z[i], z[i + 1], z[i + 2]);
                let d = theta - centre(&z, i, t[i], &c, m);
                expected += 0.5 * k[i] * d * d;
            }
            let mut forces = vec![[0.0; 3]; n];
            let e = angle_dihedral_prior(&z, &k, &t, &c, &mut forces);
            assert!(
                (e - expected).abs() < 1e-9 * expected.max(1.0),
                "{e} vs {expected}"
            );
            let h = 1e-6;
            let mut net = [0.0; 3];
            for b in 0..n {
                for x in 0..3 {
                    let (mut zp, mut zm) = (z.clone(), z.clone());
                    zp[b][x] += h;
                    zm[b][x] -= h;
                    let mut s = vec![[0.0; 3]; n];
                    let numeric = -(angle_dihedral_prior(&zp, &k, &t, &c, &mut s)
                        - angle_dihedral_prior(&zm, &k, &t, &c, &mut s))
                        / (2.0 * h);
                    assert!(
                        (forces[b][x] - numeric).abs() < 1e-5 * numeric.abs().max(1.0),
                        "n {n}, bead {b}, component {x}: {} vs {numeric}",
                        forces[b][x]
                    );
                    net[x] += forces[b][x];
                }
            }
            assert!(net.iter().all(|f| f.abs() < 1e-8), "net force {net:?}");
            // Order 0 (no coefficients but the unused constant) is the harmonic prior.
            let zero = vec![0.0; angles];
            let (mut f0, mut f1) = (vec![[0.0; 3]; n], vec![[0.0; 3]; n]);
            let e0 = angle_dihedral_prior(&z, &k, &t, &zero, &mut f0);
            let e1 = harmonic_bead_angles(&z, &k, &t, &mut f1);
            assert!((e0 - e1).abs() < 1e-12 * e1.max(1.0));
            assert_eq!(f0, f1);
        }
    }
}

#[test]
fn the_prior_survives_saving_and_a_wrong_size_is_refused() {
    let n = 6;
    let with = BeadAngles {
        k: vec![150.0, 120.0, 90.0, 200.0],
        theta0: vec![2.0, 1.9, 2.1, 1.95],
        centre_coefficients: coefficients(4, 2, 3),
    };
    let store = ParameterStore::new([8; 32]);
    let u = CgPotential::new(
        n,
        CgPotentialConfig::default(),
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    let save = |prior: &BeadAngles| {
        let priors = PriorSet::new(vec![Arc::new(prior.clone())]);
        save_potential(n, u.config(), &priors, &store).unwrap()
    };
    let saved = save(&with);
    let loaded = potential_config(&saved).unwrap().2;
    assert_eq!(loaded.get::<BeadAngles>(), Some(&with));
    // A potential without it has no such row and loads without it.
    let plain = BeadAngles {
        centre_coefficients: Vec::new(),
        ..with
    };
    let saved_plain = save(&plain);
    assert!(
        saved_plain
            .iter()
            .all(|t| t.name != "config.theta_dihedral")
    );
    assert_eq!(
        potential_config(&saved_plain)
            .unwrap()
            .2
            .get::<BeadAngles>(),
        Some(&plain)
    );
    // A wrong size is refused on load.
    let mut bad = saved.clone();
    for t in &mut bad {
        if t.name == "config.theta_dihedral" {
            t.values.pop();
            t.shape = vec![t.values.len()];
        }
    }
    assert!(potential_config(&bad).is_err());
}
