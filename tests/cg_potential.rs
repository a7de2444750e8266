//! The CG potential: forces are minus the gradient of the energy, symmetric under rigid
//! motions; the force-matching gradient matches finite differences with one backward;
//! and force matching on noisy forces recovers a known mean force.

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use cgloop::md::random::{normal, stream};
use cgloop::nn::gradcheck::check_parameter_gradients;
use cgloop::nn::{CgPotential, CgPotentialConfig, ParameterStore};

fn config() -> CgPotentialConfig {
    CgPotentialConfig {
        basis: 8,
        hidden: vec![16, 16],
        bond_k: vec![800.0, 900.0, 1000.0],
        bond_r0_nm: vec![0.38, 0.38, 0.4],
        ..CgPotentialConfig::default()
    }
}

fn potential(seed: u8) -> (ParameterStore, CgPotential) {
    let store = ParameterStore::new([seed; 32]);
    let u = CgPotential::new(4, config(), store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    (store, u)
}

/// A bent chain of 4 beads, frame f perturbed deterministically.
fn chain(frames: usize, seed: u64) -> Vec<f64> {
    let mut rng = stream(seed, 0);
    let mut out = Vec::new();
    for _ in 0..frames {
        for b in 0..4 {
            let base = [0.38 * b as f64, 0.1 * ((b % 2) as f64), 0.05 * b as f64];
            for c in base {
                out.push(c + 0.03 * normal(&mut rng));
            }
        }
    }
    out
}

fn tensor(values: &[f64], frames: usize) -> Tensor {
    Tensor::from_vec(values.to_vec(), (frames, 4, 3), &Device::Cpu).unwrap()
}

#[test]
fn forces_are_minus_the_energy_gradient() {
    let (_, u) = potential(1);
    let z = chain(3, 7);
    let (_, forces) = u.energy_and_forces(&tensor(&z, 3)).unwrap();
    let forces = forces.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let energy = |z: &[f64]| {
        u.energy_and_forces(&tensor(z, 3))
            .unwrap()
            .0
            .to_vec1::<f64>()
            .unwrap()
    };
    let h = 1e-6;
    for k in 0..z.len() {
        let frame = k / 12;
        let mut up = z.clone();
        up[k] += h;
        let mut down = z.clone();
        down[k] -= h;
        let fd = -(energy(&up)[frame] - energy(&down)[frame]) / (2.0 * h);
        assert!(
            (fd - forces[k]).abs() < 1e-6 * (1.0 + fd.abs()),
            "component {k}: {fd} vs {}",
            forces[k]
        );
    }
}

#[test]
fn energy_is_invariant_and_forces_equivariant_under_rigid_motion() {
    let (_, u) = potential(2);
    let z = chain(1, 9);
    let (e, f) = u.energy_and_forces(&tensor(&z, 1)).unwrap();
    // Rotation by 90 degrees about x, then a translation.
    let moved: Vec<f64> = z
        .chunks(3)
        .flat_map(|p| [p[0] + 1.0, -p[2] - 2.0, p[1] + 0.5])
        .collect();
    let (e2, f2) = u.energy_and_forces(&tensor(&moved, 1)).unwrap();
    let (e, e2) = (
        e.to_vec1::<f64>().unwrap()[0],
        e2.to_vec1::<f64>().unwrap()[0],
    );
    assert!((e - e2).abs() < 1e-10, "{e} vs {e2}");
    let f = f.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let f2 = f2.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for (a, b) in f.chunks(3).zip(f2.chunks(3)) {
        let rotated = [a[0], -a[2], a[1]];
        for c in 0..3 {
            assert!((rotated[c] - b[c]).abs() < 1e-9);
        }
    }
    // Pair forces: the total force vanishes.
    for c in 0..3 {
        let total: f64 = f.chunks(3).map(|p| p[c]).sum();
        assert!(total.abs() < 1e-9, "net force {total}");
    }
}

#[test]
fn the_force_matching_gradient_matches_finite_differences() {
    let (store, u) = potential(3);
    let z = tensor(&chain(5, 11), 5);
    let target = tensor(
        &chain(5, 12).iter().map(|x| 50.0 * x).collect::<Vec<_>>(),
        5,
    );
    let mismatches =
        check_parameter_gradients(&store, || u.force_matching_loss(&z, &target), 1e-6, 1e-6)
            .unwrap();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// The known mean force: harmonic bonds (the prior's form, other constants) plus a
/// Gaussian attraction between beads 0 and 3.
fn true_forces(z: &[f64]) -> Vec<f64> {
    let mut f = vec![0.0; z.len()];
    let pos = |i: usize| [z[3 * i], z[3 * i + 1], z[3 * i + 2]];
    let pair = |i: usize, j: usize, de_dd: &dyn Fn(f64) -> f64, f: &mut Vec<f64>| {
        let (a, b) = (pos(i), pos(j));
        let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
        let g = de_dd(d);
        for c in 0..3 {
            let u = (a[c] - b[c]) / d;
            f[3 * i + c] -= g * u;
            f[3 * j + c] += g * u;
        }
    };
    for (i, r0) in [(0, 0.37), (1, 0.39), (2, 0.41)] {
        pair(i, i + 1, &|d| 1000.0 * (d - r0), &mut f);
    }
    // U = -20 exp(-(d - 0.6)^2 / 0.02)
    pair(
        0,
        3,
        &|d| 20.0 * (d - 0.6) / 0.01 * (-(d - 0.6f64).powi(2) / 0.02).exp(),
        &mut f,
    );
    f
}

#[test]
fn force_matching_recovers_a_known_mean_force_from_noisy_forces() {
    let (store, u) = potential(4);
    let frames = 800;
    let z = chain(frames, 21);
    let mean = true_forces_all(&z);
    // Instantaneous forces: the mean force plus zero-mean noise as large as the signal.
    let mut rng = stream(22, 0);
    let rms = (mean.iter().map(|f| f * f).sum::<f64>() / mean.len() as f64).sqrt();
    let noisy: Vec<f64> = mean.iter().map(|f| f + rms * normal(&mut rng)).collect();
    let vars = store.vars().into_iter().map(|(_, v)| v).collect();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: 5e-3,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let (zt, ft) = (tensor(&z, frames), tensor(&noisy, frames));
    let before = rms_error(&u, 24);
    for _ in 0..600 {
        opt.backward_step(&u.force_matching_loss(&zt, &ft).unwrap())
            .unwrap();
    }
    let (err, scale) = rms_error(&u, 23);
    println!(
        "mean-force RMS error {err:.2} kJ/mol/nm (before training {:.2}) of RMS {scale:.2}, noise RMS {rms:.2}",
        before.0
    );
    // Fitting the noisy forces themselves would leave an error as large as the noise
    // (= the signal); the priors alone (wrong constants, no Gaussian well) leave
    // `before`. Recovering the mean force means well below both.
    assert!(
        err < 0.2 * scale,
        "force matching error {err} vs scale {scale}"
    );
    assert!(
        err < 0.5 * before.0,
        "training did not help: {err} vs {}",
        before.0
    );
}

/// RMS error of the model's forces against the exact mean force on 100 fresh
/// configurations, and the RMS of the exact force.
fn rms_error(u: &CgPotential, seed: u64) -> (f64, f64) {
    let test = chain(100, seed);
    let exact = true_forces_all(&test);
    let (_, predicted) = u.energy_and_forces(&tensor(&test, 100)).unwrap();
    let predicted = predicted.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let n = exact.len() as f64;
    let err = (predicted
        .iter()
        .zip(&exact)
        .map(|(p, e)| (p - e).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let scale = (exact.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
    (err, scale)
}

fn true_forces_all(z: &[f64]) -> Vec<f64> {
    z.chunks(12).flat_map(true_forces).collect()
}
