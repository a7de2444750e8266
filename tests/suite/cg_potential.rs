//! The CG potential: forces are minus the gradient of the energy, symmetric under rigid
//! motions; the force-matching gradient matches finite differences with one backward;
//! and force matching on noisy forces recovers a known mean force. The torsion term:
//! its forces are minus its energy gradient and carry no net force or torque, its
//! parameter gradients match finite differences, it tells mirror images apart (a
//! distance-only potential cannot), saved potentials keep it (old ones load without
//! it), and force matching recovers a chiral dihedral potential's preferred sign. The
//! bead-angle prior is k/2 (theta - theta0)^2 of the geometric angle and the dihedral
//! prior a Fourier series in the IUPAC dihedral, with forces minus their gradients, saved
//! and reloaded.

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use cgloop::geometry::dihedral::dihedral_deg;
use cgloop::nn::cg_potential::{
    load_potential, potential_config, prior_energy_and_forces, save_potential,
};
use cgloop::nn::gradcheck::check_parameter_gradients;
use cgloop::nn::priors::PriorSet;
use cgloop::nn::priors::bead_angles::{BeadAngles, harmonic_bead_angles};
use cgloop::nn::priors::dihedral_fourier::{DihedralFourier, fourier_dihedrals};
use cgloop::nn::priors::harmonic_distances::HarmonicDistances;
use cgloop::nn::priors::repulsion::Repulsion;
use cgloop::nn::{CgPotential, CgPotentialConfig, ParameterStore};
use cgloop::random::{normal, stream, uniform};
use std::sync::Arc;

fn config() -> CgPotentialConfig {
    CgPotentialConfig {
        basis: 8,
        hidden: vec![16, 16],
        ..CgPotentialConfig::default()
    }
}

/// Repulsion, bonds and 1-3 distances on the 4-bead chain.
fn priors() -> PriorSet {
    PriorSet::new(vec![
        Arc::new(Repulsion {
            eps: 1.0,
            sigma: 0.2,
        }),
        Arc::new(
            HarmonicDistances::new(4, 1, vec![800.0, 900.0, 1000.0], vec![0.38, 0.38, 0.4])
                .unwrap(),
        ),
        Arc::new(HarmonicDistances::new(4, 2, vec![300.0, 250.0], vec![0.6, 0.65]).unwrap()),
    ])
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
    let (_, forces) = u.energy_and_forces_with(&priors(), &tensor(&z, 3)).unwrap();
    let forces = forces.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let energy = |z: &[f64]| {
        u.energy_and_forces_with(&priors(), &tensor(z, 3))
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
    let (e, f) = u.energy_and_forces_with(&priors(), &tensor(&z, 1)).unwrap();
    // Rotation by 90 degrees about x, then a translation.
    let moved: Vec<f64> = z
        .chunks(3)
        .flat_map(|p| [p[0] + 1.0, -p[2] - 2.0, p[1] + 0.5])
        .collect();
    let (e2, f2) = u
        .energy_and_forces_with(&priors(), &tensor(&moved, 1))
        .unwrap();
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
    let zt = tensor(&z, frames);
    // The priors do not train: the network learns what is left of the force.
    let (_, prior_forces) = prior_energy_and_forces(&priors(), &zt).unwrap();
    let ft = (tensor(&noisy, frames) - prior_forces).unwrap();
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
    let (_, predicted) = u
        .energy_and_forces_with(&priors(), &tensor(&test, 100))
        .unwrap();
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

// ---- The torsion term ----

/// A config for `n` beads with or without torsions.
fn config_n(_n: usize, torsions: bool) -> CgPotentialConfig {
    CgPotentialConfig {
        basis: 8,
        hidden: vec![16, 16],
        torsions,
        ..CgPotentialConfig::default()
    }
}

fn potential_n(n: usize, torsions: bool, seed: u8) -> (ParameterStore, CgPotential) {
    let store = ParameterStore::new([seed; 32]);
    let u = CgPotential::new(
        n,
        config_n(n, torsions),
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    (store, u)
}

/// `frames` perturbed right-handed helices of `n` beads (flat): no three consecutive
/// beads near collinear, dihedrals far from 0 and 180 degrees.
fn helix(n: usize, frames: usize, seed: u64) -> Vec<f64> {
    let mut rng = stream(seed, 1);
    let mut out = Vec::with_capacity(frames * n * 3);
    for _ in 0..frames {
        for b in 0..n {
            let t = 1.6 * b as f64;
            for c in [0.25 * t.cos(), 0.25 * t.sin(), 0.15 * b as f64] {
                out.push(c + 0.03 * normal(&mut rng));
            }
        }
    }
    out
}

fn tensor_n(values: &[f64], n: usize) -> Tensor {
    let frames = values.len() / (3 * n);
    Tensor::from_vec(values.to_vec(), (frames, n, 3), &Device::Cpu).unwrap()
}

fn energies_and_forces(u: &CgPotential, z: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (e, f) = u.energy_and_forces(&tensor_n(z, u.beads())).unwrap();
    (
        e.to_vec1::<f64>().unwrap(),
        f.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
    )
}

fn has_torsion_parameters(store: &ParameterStore) -> bool {
    store
        .vars()
        .iter()
        .any(|(name, _)| name.starts_with("torsion_network.layer0."))
}

#[test]
fn torsion_forces_are_minus_the_torsion_energy_gradient() {
    // Same seed, so the same pair network (parameters are keyed by name): the
    // difference of the two potentials is the torsion term alone.
    let (store, with) = potential_n(5, true, 31);
    let (plain_store, without) = potential_n(5, false, 31);
    assert!(has_torsion_parameters(&store));
    assert!(!has_torsion_parameters(&plain_store));
    let z = helix(5, 3, 5);
    let torsion = |z: &[f64]| -> (Vec<f64>, Vec<f64>) {
        let (e1, f1) = energies_and_forces(&with, z);
        let (e0, f0) = energies_and_forces(&without, z);
        (
            e1.iter().zip(&e0).map(|(a, b)| a - b).collect(),
            f1.iter().zip(&f0).map(|(a, b)| a - b).collect(),
        )
    };
    let (_, forces) = torsion(&z);
    let (_, full) = energies_and_forces(&with, &z);
    let scale = forces.iter().fold(0.0f64, |m, f| m.max(f.abs()));
    assert!(scale > 0.1, "torsion forces too small to test: {scale}");
    let h = 1e-6;
    for k in 0..z.len() {
        let frame = k / 15;
        let (mut up, mut down) = (z.clone(), z.clone());
        up[k] += h;
        down[k] -= h;
        let fd = -(torsion(&up).0[frame] - torsion(&down).0[frame]) / (2.0 * h);
        assert!(
            (fd - forces[k]).abs() < 1e-7 * (1.0 + scale),
            "torsion component {k}: finite difference {fd} vs analytic {}",
            forces[k]
        );
        // And the whole potential.
        let e = |z: &[f64]| energies_and_forces(&with, z).0[frame];
        let fd = -(e(&up) - e(&down)) / (2.0 * h);
        assert!(
            (fd - full[k]).abs() < 1e-6 * (1.0 + fd.abs()),
            "component {k}: {fd} vs {}",
            full[k]
        );
    }
}

/// With `torsion_window` 2 the network sees neighbouring dihedrals together: its forces
/// are minus the gradient of its energy (each dT/dpsi summed over the windows holding
/// psi), for 5 beads (one window, T(phi, psi)) and 7 (three windows); a window of 1 is
/// the single-dihedral network, and the saved potential keeps the window.
#[test]
fn torsion_windows_give_forces_that_are_minus_the_energy_gradient() {
    for n in [5, 7] {
        let store = ParameterStore::new([77; 32]);
        let config = CgPotentialConfig {
            torsion_window: 2,
            ..config_n(n, true)
        };
        let u = CgPotential::new(
            n,
            config.clone(),
            store.var_builder(DType::F64, &Device::Cpu),
        )
        .unwrap();
        let rows = n - 3 - 1;
        let layer0 = store
            .vars()
            .into_iter()
            .find(|(name, _)| name == "torsion_network.layer0.weight")
            .unwrap()
            .1;
        assert_eq!(
            layer0.dims()[1],
            4 + rows,
            "inputs: two (cos, sin) and the one-hot"
        );
        let z = helix(n, 2, 9);
        let (_, forces) = energies_and_forces(&u, &z);
        let h = 1e-6;
        for k in 0..z.len() {
            let frame = k / (3 * n);
            let (mut up, mut down) = (z.clone(), z.clone());
            up[k] += h;
            down[k] -= h;
            let e = |z: &[f64]| energies_and_forces(&u, z).0[frame];
            let fd = -(e(&up) - e(&down)) / (2.0 * h);
            assert!(
                (fd - forces[k]).abs() < 1e-6 * (1.0 + fd.abs()),
                "{n} beads, component {k}: {fd} vs {}",
                forces[k]
            );
        }
        let saved =
            cgloop::nn::cg_potential::save_potential(n, &config, &PriorSet::default(), &store)
                .unwrap();
        let (_, loaded, _) =
            cgloop::nn::cg_potential::load_potential(&saved, DType::F64, &Device::Cpu).unwrap();
        assert_eq!(loaded.config().torsion_window, 2);
        assert_eq!(
            energies_and_forces(&loaded, &z),
            energies_and_forces(&u, &z)
        );
    }
}

#[test]
fn torsion_forces_carry_no_net_force_or_torque() {
    for n in [4, 5, 6] {
        let (_, with) = potential_n(n, true, 40 + n as u8);
        let (_, without) = potential_n(n, false, 40 + n as u8);
        let z = helix(n, 2, 70 + n as u64);
        let (_, f1) = energies_and_forces(&with, &z);
        let (_, f0) = energies_and_forces(&without, &z);
        let torsion: Vec<f64> = f1.iter().zip(&f0).map(|(a, b)| a - b).collect();
        let scale = torsion.iter().fold(0.0f64, |m, f| m.max(f.abs()));
        assert!(scale > 0.1, "{n} beads: torsion forces {scale}");
        for forces in [&torsion, &f1] {
            for frame in 0..2 {
                let at = |i: usize, c: usize| 3 * (frame * n + i) + c;
                let mut net = [0.0; 3];
                let mut torque = [0.0; 3];
                for i in 0..n {
                    let (r, f) = (
                        [z[at(i, 0)], z[at(i, 1)], z[at(i, 2)]],
                        [forces[at(i, 0)], forces[at(i, 1)], forces[at(i, 2)]],
                    );
                    for c in 0..3 {
                        net[c] += f[c];
                    }
                    torque[0] += r[1] * f[2] - r[2] * f[1];
                    torque[1] += r[2] * f[0] - r[0] * f[2];
                    torque[2] += r[0] * f[1] - r[1] * f[0];
                }
                for c in 0..3 {
                    assert!(
                        net[c].abs() < 1e-9 * (1.0 + scale),
                        "{n} beads: net {net:?}"
                    );
                    assert!(
                        torque[c].abs() < 1e-9 * (1.0 + scale),
                        "{n} beads: torque {torque:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_force_matching_gradient_with_torsions_matches_finite_differences() {
    let (store, u) = potential_n(5, true, 33);
    let z = tensor_n(&helix(5, 4, 13), 5);
    let target = tensor_n(
        &helix(5, 4, 14).iter().map(|x| 50.0 * x).collect::<Vec<_>>(),
        5,
    );
    // The torsion network is reached by the loss (not a zero gradient everywhere), except
    // its output bias (a constant energy exerts no force).
    let grads = u
        .force_matching_loss(&z, &target)
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in store.vars() {
        if name.starts_with("torsion_network.") && name != "torsion_network.layer2.bias" {
            let g = grads.get(var.as_tensor()).expect("a gradient");
            let g = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(g > 0.0, "{name}: zero gradient");
        }
    }
    let mismatches =
        check_parameter_gradients(&store, || u.force_matching_loss(&z, &target), 1e-6, 1e-6)
            .unwrap();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// z reflected through the yz plane (x -> -x).
fn mirror(z: &[f64]) -> Vec<f64> {
    z.chunks(3).flat_map(|p| [-p[0], p[1], p[2]]).collect()
}

#[test]
fn torsions_tell_mirror_images_apart_and_distances_alone_do_not() {
    let z = helix(5, 4, 17);
    let (_, with) = potential_n(5, true, 35);
    let (_, without) = potential_n(5, false, 35);
    let (e, _) = energies_and_forces(&with, &z);
    let (e_mirror, _) = energies_and_forces(&with, &mirror(&z));
    let (e0, f0) = energies_and_forces(&without, &z);
    let (e0_mirror, f0_mirror) = energies_and_forces(&without, &mirror(&z));
    for t in 0..4 {
        assert!(
            (e0[t] - e0_mirror[t]).abs() < 1e-10 * (1.0 + e0[t].abs()),
            "distance-only: {} vs mirror {}",
            e0[t],
            e0_mirror[t]
        );
        assert!(
            (e[t] - e_mirror[t]).abs() > 1e-4,
            "with torsions: {} vs mirror {}",
            e[t],
            e_mirror[t]
        );
    }
    // Distance-only forces are mirrored too.
    for (a, b) in mirror(&f0).iter().zip(&f0_mirror) {
        assert!((a - b).abs() < 1e-9 * (1.0 + a.abs()));
    }
}

#[test]
fn saved_potentials_keep_the_torsion_flag_and_old_ones_load_without_it() {
    for torsions in [true, false] {
        let (store, u) = potential_n(5, torsions, 36);
        let saved = save_potential(5, u.config(), &PriorSet::default(), &store).unwrap();
        let (n, config, _, _) = potential_config(&saved).unwrap();
        assert_eq!((n, config.torsions), (5, torsions));
        let (_, loaded, _) = load_potential(&saved, DType::F64, &Device::Cpu).unwrap();
        let z = helix(5, 2, 19);
        assert_eq!(
            energies_and_forces(&loaded, &z),
            energies_and_forces(&u, &z)
        );
    }
    // A potential saved before the torsion term: no `config.torsions` row.
    let (store, u) = potential_n(5, false, 37);
    let old: Vec<_> = save_potential(5, u.config(), &PriorSet::default(), &store)
        .unwrap()
        .into_iter()
        .filter(|t| t.name != "config.torsions")
        .collect();
    let (_, config, _, _) = potential_config(&old).unwrap();
    assert!(!config.torsions);
    let (loaded_store, _, _) = load_potential(&old, DType::F64, &Device::Cpu).unwrap();
    assert!(!has_torsion_parameters(&loaded_store));
    // Fewer than 4 beads: no quadruple, no torsion network, whatever the flag.
    let (store, _) = potential_n(3, true, 38);
    assert!(!has_torsion_parameters(&store));
}

// ---- Force matching recovers a chiral dihedral potential ----

const PHI0: f64 = -1.5; // rad
const K_DIHEDRAL: f64 = 5.0; // kJ/mol
const BOND_R0: [f64; 3] = [0.37, 0.39, 0.38];
const BOND_K: f64 = 1000.0; // kJ/mol/nm^2
const ANGLE_D0: [f64; 2] = [0.58, 0.6]; // 1-3 distances, nm
const ANGLE_K: f64 = 300.0; // kJ/mol/nm^2

fn bead(z: &[f64], i: usize) -> [f64; 3] {
    [z[3 * i], z[3 * i + 1], z[3 * i + 2]]
}

fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The true potential of 4 beads: harmonic bonds, harmonic 1-3 distances (angles) and
/// k (1 - cos(phi - phi0)) on the dihedral phi (measured by the analysis module).
fn true_energy(z: &[f64]) -> f64 {
    let mut u = 0.0;
    for (i, r0) in BOND_R0.iter().enumerate() {
        u += 0.5 * BOND_K * (dist(bead(z, i), bead(z, i + 1)) - r0).powi(2);
    }
    for (i, d0) in ANGLE_D0.iter().enumerate() {
        u += 0.5 * ANGLE_K * (dist(bead(z, i), bead(z, i + 2)) - d0).powi(2);
    }
    let phi = dihedral_deg(bead(z, 0), bead(z, 1), bead(z, 2), bead(z, 3)).to_radians();
    u + K_DIHEDRAL * (1.0 - (phi - PHI0).cos())
}

/// Its forces by central differences (independent of the torsion force formula).
fn true_forces_of(z: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    (0..z.len())
        .map(|k| {
            let (mut up, mut down) = (z.to_vec(), z.to_vec());
            up[k] += h;
            down[k] -= h;
            -(true_energy(&up) - true_energy(&down)) / (2.0 * h)
        })
        .collect()
}

/// 4 beads from bond lengths, bond angles (rad) and the dihedral phi (rad), placed by
/// NeRF: bead 0 at the origin, bead 1 on x, bead 2 in the xy plane.
fn build(r: [f64; 3], theta: [f64; 2], phi: f64) -> Vec<f64> {
    let p0 = [0.0, 0.0, 0.0];
    let p1 = [r[0], 0.0, 0.0];
    let p2 = [r[0] - r[1] * theta[0].cos(), r[1] * theta[0].sin(), 0.0];
    // Bead 3 from (p0, p1, p2): bond r[2], angle theta[1] at p2, dihedral phi.
    let sub = |a: [f64; 3], b: [f64; 3]| [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    let norm = |a: [f64; 3]| {
        let l = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
        [a[0] / l, a[1] / l, a[2] / l]
    };
    let cross = |a: [f64; 3], b: [f64; 3]| {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    };
    let bc = norm(sub(p2, p1));
    let nrm = norm(cross(sub(p1, p0), bc));
    let mm = cross(nrm, bc);
    let d = [
        -r[2] * theta[1].cos(),
        r[2] * theta[1].sin() * phi.cos(),
        r[2] * theta[1].sin() * phi.sin(),
    ];
    let p3: [f64; 3] = std::array::from_fn(|c| p2[c] + d[0] * bc[c] + d[1] * mm[c] + d[2] * nrm[c]);
    [p0, p1, p2, p3].iter().flatten().copied().collect()
}

/// Configurations with the dihedral uniform on the circle and bonds and angles spread
/// around the true minima.
fn dihedral_samples(frames: usize, seed: u64) -> Vec<f64> {
    let mut rng = stream(seed, 2);
    let mut out = Vec::with_capacity(frames * 12);
    for _ in 0..frames {
        let r = std::array::from_fn(|i| BOND_R0[i] + 0.02 * normal(&mut rng));
        let theta = std::array::from_fn(|_| 1.8 + 0.15 * normal(&mut rng));
        let phi = std::f64::consts::PI * (2.0 * uniform(&mut rng) - 1.0);
        out.extend(build(r, theta, phi));
    }
    out
}

/// Bond priors at the true bonds.
fn true_bonds() -> PriorSet {
    PriorSet::new(vec![Arc::new(
        HarmonicDistances::new(4, 1, vec![BOND_K; 3], BOND_R0.to_vec()).unwrap(),
    )])
}

/// U_hat of a potential with bond priors at the true bonds: energies and forces.
fn with_bonds(u: &CgPotential, z: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (e, f) = u
        .energy_and_forces_with(&true_bonds(), &tensor_n(z, u.beads()))
        .unwrap();
    (
        e.to_vec1::<f64>().unwrap(),
        f.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
    )
}

/// Fits a 4-bead potential (bond priors at the true bonds) to the exact forces of
/// `z`; returns its networks.
fn fit_dihedral(torsions: bool, z: &[f64], forces: &[f64]) -> CgPotential {
    let config = CgPotentialConfig {
        basis: 12,
        cutoff_nm: 1.0,
        hidden: vec![16, 16],
        torsions,
        ..CgPotentialConfig::default()
    };
    let store = ParameterStore::new([50; 32]);
    let u = CgPotential::new(4, config, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let vars = store.vars().into_iter().map(|(_, v)| v).collect();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let zt = tensor_n(z, 4);
    let (_, prior_forces) = prior_energy_and_forces(&true_bonds(), &zt).unwrap();
    let ft = (tensor_n(forces, 4) - prior_forces).unwrap();
    for _ in 0..400 {
        opt.backward_step(&u.force_matching_loss(&zt, &ft).unwrap())
            .unwrap();
    }
    u
}

#[test]
fn force_matching_with_torsions_recovers_a_chiral_dihedral_potential() {
    let clock = std::time::Instant::now();
    let frames = 300;
    let z = dihedral_samples(frames, 61);
    let forces: Vec<f64> = z.chunks(12).flat_map(true_forces_of).collect();
    // The placement's sign convention is the analysis module's.
    let probe = build([0.38; 3], [1.8; 2], PHI0);
    let measured = dihedral_deg(
        bead(&probe, 0),
        bead(&probe, 1),
        bead(&probe, 2),
        bead(&probe, 3),
    );
    assert!((measured.to_radians() - PHI0).abs() < 1e-9, "{measured}");

    let with = fit_dihedral(true, &z, &forces);
    let without = fit_dihedral(false, &z, &forces);

    // Held-out forces.
    let test = dihedral_samples(100, 62);
    let exact: Vec<f64> = test.chunks(12).flat_map(true_forces_of).collect();
    let rms = |a: &[f64]| (a.iter().map(|x| x * x).sum::<f64>() / a.len() as f64).sqrt();
    let error = |u: &CgPotential| {
        let (_, f) = with_bonds(u, &test);
        rms(&f.iter().zip(&exact).map(|(a, b)| a - b).collect::<Vec<_>>())
    };
    // The part of the exact force a potential has to learn (the bonds are priors).
    let dihedral_only: Vec<f64> = test
        .chunks(12)
        .flat_map(|z| {
            let h = 1e-6;
            let phi = |z: &[f64]| {
                dihedral_deg(bead(z, 0), bead(z, 1), bead(z, 2), bead(z, 3)).to_radians()
            };
            (0..12).map(move |k| {
                let (mut up, mut down) = (z.to_vec(), z.to_vec());
                up[k] += h;
                down[k] -= h;
                let e = |z: &[f64]| K_DIHEDRAL * (1.0 - (phi(z) - PHI0).cos());
                -(e(&up) - e(&down)) / (2.0 * h)
            })
        })
        .collect();
    let (err_with, err_without) = (error(&with), error(&without));
    let dihedral_scale = rms(&dihedral_only);

    // Energy along the dihedral at the ideal bonds and angles.
    let scan: Vec<(f64, f64, f64)> = (0..180)
        .map(|s| {
            let phi = -std::f64::consts::PI + s as f64 * std::f64::consts::PI / 90.0;
            let z = build(BOND_R0, [1.8; 2], phi);
            (
                phi,
                with_bonds(&with, &z).0[0],
                with_bonds(&without, &z).0[0],
            )
        })
        .collect();
    let argmin = scan
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|s| s.0)
        .unwrap();
    let at = |u: &CgPotential, phi: f64| with_bonds(u, &build(BOND_R0, [1.8; 2], phi)).0[0];
    let gap_with = at(&with, -PHI0) - at(&with, PHI0);
    let gap_without = at(&without, -PHI0) - at(&without, PHI0);
    let gap_true = K_DIHEDRAL * (1.0 - (-2.0 * PHI0).cos());
    println!(
        "force RMSE with torsions {err_with:.3}, distance-only {err_without:.3} kJ/mol/nm \
         (exact RMS {:.3}, dihedral part {dihedral_scale:.3}); minimum along phi at \
         {argmin:.3} rad (true {PHI0}); U(-phi0) - U(phi0): {gap_with:.3} with torsions, \
         {gap_without:.2e} distance-only, true {gap_true:.3} kJ/mol; {:.1} s",
        rms(&exact),
        clock.elapsed().as_secs_f64()
    );
    // The fitted potential prefers phi0 over its mirror image by about the true gap, and
    // has its minimum along phi near phi0 (the scan's step is 0.035 rad).
    assert!(
        (argmin - PHI0).abs() < 0.3,
        "minimum at {argmin}, true {PHI0}"
    );
    assert!(
        (gap_with / gap_true - 1.0).abs() < 0.25,
        "mirror gap {gap_with} vs true {gap_true}"
    );
    // A distance-only potential cannot prefer either sign.
    assert!(gap_without.abs() < 1e-9, "distance-only gap {gap_without}");
    for s in &scan {
        let mirrored = at(&without, -s.0);
        assert!((s.2 - mirrored).abs() < 1e-9);
    }
    // Forces: the torsion model recovers the mean force to a fraction of the dihedral
    // force; the distance-only model cannot fit its chiral (sin phi0) part.
    assert!(
        err_with < 0.2 * dihedral_scale,
        "with torsions: error {err_with} vs dihedral force RMS {dihedral_scale}"
    );
    assert!(
        err_without > 2.0 * err_with,
        "distance-only {err_without} vs with torsions {err_with}"
    );
}

#[test]
fn the_theta_prior_is_harmonic_in_the_bead_angle_and_survives_saving() {
    let z = chain(3, 31);
    let prior = BeadAngles {
        k: vec![120.0, 90.0],
        theta0: vec![2.0, 1.9],
        centre_coefficients: Vec::new(),
    };
    for frame in z.chunks(12) {
        let x: Vec<[f64; 3]> = frame.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
        let mut expected = 0.0;
        for i in 0..2 {
            let (a, b, c) = (x[i], x[i + 1], x[i + 2]);
            let u = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
            let v = [c[0] - b[0], c[1] - b[1], c[2] - b[2]];
            let cos = (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / (dist(a, b) * dist(c, b));
            expected += 0.5 * prior.k[i] * (cos.acos() - prior.theta0[i]).powi(2);
        }
        let mut f = vec![[0.0; 3]; 4];
        let e = harmonic_bead_angles(&x, &prior.k, &prior.theta0, &mut f);
        assert!(
            (e - expected).abs() < 1e-12 * expected.max(1.0),
            "{e} vs {expected}"
        );
        // Forces: minus central differences of the energy; no net force.
        let h = 1e-6;
        for b in 0..4 {
            for c in 0..3 {
                let mut xp = x.clone();
                let mut xm = x.clone();
                xp[b][c] += h;
                xm[b][c] -= h;
                let mut scratch = vec![[0.0; 3]; 4];
                let ep = harmonic_bead_angles(&xp, &prior.k, &prior.theta0, &mut scratch);
                let em = harmonic_bead_angles(&xm, &prior.k, &prior.theta0, &mut scratch);
                let numeric = -(ep - em) / (2.0 * h);
                assert!(
                    (f[b][c] - numeric).abs() < 1e-6 * numeric.abs().max(1.0),
                    "bead {b} component {c}: {} vs {numeric}",
                    f[b][c]
                );
            }
        }
        for c in 0..3 {
            assert!(f.iter().map(|v| v[c]).sum::<f64>().abs() < 1e-9);
        }
    }
    // In the full potential (network, repulsion, priors) the forces stay minus the
    // energy gradient.
    let store = ParameterStore::new([4; 32]);
    let u = CgPotential::new(
        4,
        CgPotentialConfig::default(),
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    let full = PriorSet::new(vec![
        Arc::new(Repulsion {
            eps: 1.0,
            sigma: 0.2,
        }),
        Arc::new(prior.clone()),
    ]);
    let (_, forces) = u.energy_and_forces_with(&full, &tensor(&z, 3)).unwrap();
    let forces = forces.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let h = 1e-6;
    for at in 0..z.len() {
        let (mut zp, mut zm) = (z.clone(), z.clone());
        zp[at] += h;
        zm[at] -= h;
        let e = |v: &[f64]| {
            u.energy_and_forces_with(&full, &tensor(v, 3))
                .unwrap()
                .0
                .to_vec1::<f64>()
                .unwrap()
        };
        let frame = at / 12;
        let numeric = -(e(&zp)[frame] - e(&zm)[frame]) / (2.0 * h);
        assert!(
            (forces[at] - numeric).abs() < 1e-5 * numeric.abs().max(1.0),
            "component {at}: {} vs {numeric}",
            forces[at]
        );
    }
    // The prior is part of a saved potential; potentials saved without it load without it.
    let saved = save_potential(4, u.config(), &full, &store).unwrap();
    let (_, _, loaded, _) = potential_config(&saved).unwrap();
    assert_eq!(loaded.get::<BeadAngles>(), Some(&prior));
    let plain = save_potential(4, u.config(), &PriorSet::default(), &store).unwrap();
    assert!(plain.iter().all(|t| !t.name.contains("theta")));
    assert!(
        potential_config(&plain)
            .unwrap()
            .2
            .get::<BeadAngles>()
            .is_none()
    );
}

#[test]
fn the_dihedral_prior_is_a_fourier_series_in_the_bead_dihedral() {
    // Two quadruples (5 beads), order 3: (a_1, b_1, a_2, b_2, a_3, b_3) per quadruple.
    let coefficients = vec![
        2.0, -1.5, 0.7, 0.3, -0.4, 0.9, -1.0, 0.5, 0.2, -0.8, 0.6, 0.1,
    ];
    let mut rng = stream(41, 0);
    for _ in 0..4 {
        let x: Vec<[f64; 3]> = (0..5)
            .map(|b| {
                [
                    0.38 * b as f64 + 0.05 * normal(&mut rng),
                    0.2 * ((b % 2) as f64) + 0.08 * normal(&mut rng),
                    0.1 * normal(&mut rng),
                ]
            })
            .collect();
        let mut expected = 0.0;
        for q in 0..2 {
            let psi = dihedral_deg(x[q], x[q + 1], x[q + 2], x[q + 3]).to_radians();
            for m in 0..3 {
                let c = &coefficients[6 * q + 2 * m..6 * q + 2 * m + 2];
                let mp = (m + 1) as f64 * psi;
                expected += c[0] * mp.cos() + c[1] * mp.sin();
            }
        }
        let mut f = vec![[0.0; 3]; 5];
        let e = fourier_dihedrals(&x, &coefficients, &mut f);
        assert!((e - expected).abs() < 1e-10, "{e} vs {expected}");
        let h = 1e-6;
        for b in 0..5 {
            for c in 0..3 {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[b][c] += h;
                xm[b][c] -= h;
                let mut scratch = vec![[0.0; 3]; 5];
                let numeric = -(fourier_dihedrals(&xp, &coefficients, &mut scratch)
                    - fourier_dihedrals(&xm, &coefficients, &mut scratch))
                    / (2.0 * h);
                assert!(
                    (f[b][c] - numeric).abs() < 1e-5 * numeric.abs().max(1.0),
                    "bead {b} component {c}: {} vs {numeric}",
                    f[b][c]
                );
            }
        }
    }
    // Saved and reloaded.
    let store = ParameterStore::new([5; 32]);
    let u = CgPotential::new(
        5,
        CgPotentialConfig::default(),
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    let prior = DihedralFourier {
        coefficients: coefficients.clone(),
    };
    let priors = PriorSet::new(vec![Arc::new(prior.clone())]);
    let saved = save_potential(5, u.config(), &priors, &store).unwrap();
    assert_eq!(
        potential_config(&saved).unwrap().2.get::<DihedralFourier>(),
        Some(&prior)
    );
}
