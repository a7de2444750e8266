//! The dihedral-pair prior (`cgloop::nn::priors::dihedral_pairs`): its energy is the formula of
//! the module docs, its forces are minus the energy's gradient, a fitted prior gives a
//! joint distribution that a product of marginals cannot, and it survives saving.

use candle_core::{DType, Device};
use cgloop::geometry::dihedral::dihedral_deg;
use cgloop::nn::cg_potential::{potential_config, save_potential};
use cgloop::nn::priors::PriorSet;
use cgloop::nn::priors::dihedral_pairs::{
    DihedralPairs, dihedral_pairs, fit_pair, kernel_width, order,
};
use cgloop::nn::{CgPotential, CgPotentialConfig, ParameterStore};
use cgloop::random::{normal, stream, uniform};
use std::f64::consts::PI;
use std::sync::Arc;

const KT: f64 = 2.494;

/// A chain of beads with bonds 0.38 nm, angles 110 degrees and the given dihedrals
/// (rad), built atom by atom (NeRF).
fn chain(dihedrals: &[f64]) -> Vec<[f64; 3]> {
    let (r, theta) = (0.38, 110f64.to_radians());
    let mut x = vec![
        [0.0, 0.0, 0.0],
        [r, 0.0, 0.0],
        [r - r * theta.cos(), r * theta.sin(), 0.0],
    ];
    for &psi in dihedrals {
        let n = x.len();
        let (a, b, c) = (x[n - 3], x[n - 2], x[n - 1]);
        let sub = |u: [f64; 3], v: [f64; 3]| [u[0] - v[0], u[1] - v[1], u[2] - v[2]];
        let cross = |u: [f64; 3], v: [f64; 3]| {
            [
                u[1] * v[2] - u[2] * v[1],
                u[2] * v[0] - u[0] * v[2],
                u[0] * v[1] - u[1] * v[0],
            ]
        };
        let unit = |u: [f64; 3]| {
            let l = (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt();
            [u[0] / l, u[1] / l, u[2] / l]
        };
        let bc = unit(sub(c, b));
        let nrm = unit(cross(sub(b, a), bc));
        let m = cross(nrm, bc);
        let d = [
            -r * theta.cos(),
            r * theta.sin() * psi.cos(),
            r * theta.sin() * psi.sin(),
        ];
        x.push([
            c[0] + d[0] * bc[0] + d[1] * m[0] + d[2] * nrm[0],
            c[1] + d[0] * bc[1] + d[1] * m[1] + d[2] * nrm[1],
            c[2] + d[0] * bc[2] + d[1] * m[2] + d[2] * nrm[2],
        ]);
    }
    x
}

/// p(a, b) = sum A cos(m a + n b) + B sin(m a + n b) over the layout of the module docs.
fn density(c: &[f64], order: usize, a: f64, b: f64) -> f64 {
    let m_max = order as i64;
    let mut p = 0.0;
    let mut k = 0;
    for m in -m_max..=m_max {
        for n in -m_max..=m_max {
            let t = m as f64 * a + n as f64 * b;
            p += c[k] * t.cos() + c[k + 1] * t.sin();
            k += 2;
        }
    }
    p
}

/// The b-marginal of one pair: 2 pi sum_m A_m0 cos(m a) + B_m0 sin(m a).
fn marginal(c: &[f64], order: usize, a: f64) -> f64 {
    let side = 2 * order + 1;
    let mut r = 0.0;
    for (row, m) in (-(order as i64)..=order as i64).enumerate() {
        let k = 2 * (side * row + order);
        r += c[k] * (m as f64 * a).cos() + c[k + 1] * (m as f64 * a).sin();
    }
    2.0 * PI * r
}

/// Samples of (a, b): two wrapped Gaussian blobs, `first` of them at (-1.2, 2.5), the
/// rest at (1.0, -0.7), width 0.25 rad.
fn blobs(n: usize, first: f64, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = stream(seed, 0);
    (0..n)
        .map(|_| {
            let (a, b) = if uniform(&mut rng) < first {
                (-1.2, 2.5)
            } else {
                (1.0, -0.7)
            };
            (a + 0.25 * normal(&mut rng), b + 0.25 * normal(&mut rng))
        })
        .collect()
}

fn wrap(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

#[test]
fn the_energy_is_minus_kt_ln_of_the_pair_densities_less_the_interior_marginals() {
    // 6 beads: dihedrals psi_0, psi_1, psi_2; pairs (0, 1) and (1, 2); psi_1 interior.
    let m = 4;
    let mut coefficients = fit_pair(&blobs(400, 0.6, 1), m).unwrap();
    coefficients.extend(fit_pair(&blobs(400, 0.3, 2), m).unwrap());
    assert_eq!(order(coefficients.len(), 3), Some(m));
    assert_eq!(order(coefficients.len(), 2), None);
    let floor = 0.01 / (4.0 * PI * PI);
    let mut rng = stream(3, 0);
    for trial in 0..6 {
        let psi: Vec<f64> = (0..3)
            .map(|_| PI * (2.0 * uniform(&mut rng) - 1.0))
            .collect();
        let z = chain(&psi);
        let measured: Vec<f64> = (0..3)
            .map(|q| dihedral_deg(z[q], z[q + 1], z[q + 2], z[q + 3]).to_radians())
            .collect();
        for q in 0..3 {
            assert!(
                (wrap(measured[q] - psi[q])).abs() < 1e-9,
                "builder: {measured:?} {psi:?}"
            );
        }
        let per_pair = coefficients.len() / 2;
        let (c0, c1) = coefficients.split_at(per_pair);
        let u = |p: f64, f: f64| -KT * (p.max(0.0) + f).ln();
        let expected = u(density(c0, m, psi[0], psi[1]), floor)
            + u(density(c1, m, psi[1], psi[2]), floor)
            - u(marginal(c1, m, psi[1]), 2.0 * PI * floor);
        let mut forces = vec![[0.0; 3]; 6];
        let e = dihedral_pairs(&z, &coefficients, KT, floor, &mut forces);
        assert!(
            (e - expected).abs() < 1e-9,
            "trial {trial}: {e} vs {expected}"
        );
        // The marginal of pair 1 in its first argument is that of pair 0 in its second:
        // the same frames' psi_1 (here two different sample sets, so only the formula).
        let h = 1e-6;
        let mut net = [0.0; 3];
        for b in 0..6 {
            for c in 0..3 {
                let (mut zp, mut zm) = (z.clone(), z.clone());
                zp[b][c] += h;
                zm[b][c] -= h;
                let mut scratch = vec![[0.0; 3]; 6];
                let numeric = -(dihedral_pairs(&zp, &coefficients, KT, floor, &mut scratch)
                    - dihedral_pairs(&zm, &coefficients, KT, floor, &mut scratch))
                    / (2.0 * h);
                assert!(
                    (forces[b][c] - numeric).abs() < 1e-5 * numeric.abs().max(1.0),
                    "trial {trial}, bead {b}, component {c}: {} vs {numeric}",
                    forces[b][c]
                );
                net[c] += forces[b][c];
            }
        }
        assert!(net.iter().all(|f| f.abs() < 1e-9), "net force {net:?}");
    }
    // Fewer than 5 beads (one dihedral): nothing.
    let mut forces = vec![[0.0; 3]; 4];
    assert_eq!(
        dihedral_pairs(&chain(&[1.0]), &[], KT, floor, &mut forces),
        0.0
    );
}

#[test]
fn a_fitted_pair_prior_gives_the_joint_distribution_that_marginals_cannot() {
    // 70 % at (-1.2, 2.5), 30 % at (1.0, -0.7): the product of the marginals would put
    // 0.3 * 0.7 = 21 % at (1.0, 2.5), where the data have nothing.
    let m = 10;
    let coefficients = fit_pair(&blobs(20_000, 0.7, 4), m).unwrap();
    let floor = 0.01 / (4.0 * PI * PI);
    let energy = |a: f64, b: f64| {
        let mut forces = vec![[0.0; 3]; 5];
        dihedral_pairs(&chain(&[a, b]), &coefficients, KT, floor, &mut forces)
    };
    // Boltzmann populations of the prior on a grid.
    let grid = 90;
    let step = 2.0 * PI / grid as f64;
    let (mut total, mut second, mut cross) = (0.0, 0.0, 0.0);
    let near = |x: f64, c: f64| wrap(x - c).abs() < 0.9;
    for i in 0..grid {
        for j in 0..grid {
            let (a, b) = (-PI + (i as f64 + 0.5) * step, -PI + (j as f64 + 0.5) * step);
            let w = (-energy(a, b) / KT).exp();
            total += w;
            if near(a, 1.0) && near(b, -0.7) {
                second += w;
            }
            if near(a, 1.0) && near(b, 2.5) {
                cross += w;
            }
        }
    }
    let (second, cross) = (second / total, cross / total);
    // The kernel (width sqrt(8)/10 = 0.28 rad) and the floor (1 % of the torus's mass
    // spread evenly) move a little mass out of the blob's window.
    assert!((second - 0.30).abs() < 0.03, "second basin {second}");
    assert!(cross < 0.01, "the off-diagonal corner holds {cross}");
    // Where the frames never go the prior is flat at the floor, -kT ln(rho), which
    // bounds the barriers.
    let deepest = energy(-1.2, 2.5);
    let empty = energy(-2.8, -2.8);
    assert!(
        (empty + KT * floor.ln()).abs() < 0.5 * KT,
        "{empty} vs {}",
        -KT * floor.ln()
    );
    assert!(empty - deepest > 6.0 * KT, "{empty} vs {deepest}");
    assert!((kernel_width(m) - 8f64.sqrt() / 10.0).abs() < 1e-15);
}

#[test]
fn the_pair_prior_survives_saving_and_a_wrong_size_is_refused() {
    let m = 3;
    let coefficients = fit_pair(&blobs(200, 0.5, 5), m).unwrap();
    let prior = DihedralPairs {
        coefficients: coefficients.clone(),
        kt: KT,
        floor: 0.002,
    };
    let priors = PriorSet::new(vec![Arc::new(prior.clone())]);
    let store = ParameterStore::new([6; 32]);
    let u = CgPotential::new(
        5,
        CgPotentialConfig::default(),
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    let saved = save_potential(5, u.config(), &priors, &store).unwrap();
    let loaded = potential_config(&saved).unwrap().2;
    assert_eq!(loaded.get::<DihedralPairs>(), Some(&prior));
    // A potential without the prior has no such rows and loads without it.
    let plain = save_potential(5, u.config(), &PriorSet::default(), &store).unwrap();
    assert!(plain.iter().all(|t| !t.name.contains("dihedral_pair")));
    assert!(
        potential_config(&plain)
            .unwrap()
            .2
            .get::<DihedralPairs>()
            .is_none()
    );
    // One coefficient short: refused with a message, not a panic later.
    let mut bad = saved.clone();
    for t in &mut bad {
        if t.name == "config.dihedral_pairs" {
            t.values.pop();
            t.shape = vec![t.values.len()];
        }
    }
    let message = potential_config(&bad).unwrap_err();
    assert!(message.contains("dihedral-pair"), "{message}");
}
