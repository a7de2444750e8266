//! The host-side CG potential: the same energies and forces as candle's `CgPotential`
//! (f64) for random weights, every activation and several architectures, with and
//! without the torsion term; the bead-angle and dihedral priors add exactly their terms
//! in both; forces equal minus a central finite difference of the
//! energy; malformed saved potentials are refused and ones saved before the torsion
//! term load without it; and (printed, not asserted) its speed in Langevin dynamics.

use std::time::Instant;

use candle_core::{DType, Device};
use cgloop::artifact::tensors::NamedTensor;
use cgloop::md::dynamics::LangevinParams;
use cgloop::md::langevin::LangevinIntegrator;
use cgloop::md::potential::Potential;
use cgloop::nn::cg_potential::{save_potential, single_frame};
use cgloop::nn::cg_potential_host::HostCgPotential;
use cgloop::nn::priors::bead_angles::{BeadAngles, harmonic_bead_angles};
use cgloop::nn::priors::dihedral_fourier::{DihedralFourier, fourier_dihedrals};
use cgloop::nn::priors::harmonic_distances::HarmonicDistances;
use cgloop::nn::priors::repulsion::Repulsion;
use cgloop::nn::priors::{Prior, PriorSet};
use cgloop::nn::{Activation, CgPotential, CgPotentialConfig, ParameterStore};
use cgloop::random::{normal, stream};
use std::sync::Arc;

/// The networks of a potential and its priors.
type Model = (CgPotential, PriorSet);

/// A saved potential with random weights: candle's model with its priors and the saved
/// tensors.
fn saved(
    n: usize,
    config: &CgPotentialConfig,
    priors: &PriorSet,
    seed: u8,
) -> (Model, Vec<NamedTensor>) {
    let store = ParameterStore::new([seed; 32]);
    let u = CgPotential::new(
        n,
        config.clone(),
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    let tensors = save_potential(n, config, priors, &store).unwrap();
    ((u, priors.clone()), tensors)
}

/// The repulsion every potential had by default: 1 kJ/mol at 0.2 nm.
fn repulsion() -> Arc<dyn Prior> {
    Arc::new(Repulsion {
        eps: 1.0,
        sigma: 0.2,
    })
}

/// Harmonic priors on the pairs (i, i + separation) of `n` beads.
fn harmonic(n: usize, separation: usize, k: &[f64], r0: &[f64]) -> Arc<dyn Prior> {
    Arc::new(HarmonicDistances::new(n, separation, k.to_vec(), r0.to_vec()).unwrap())
}

fn bead_angles(k: &[f64], theta0: &[f64], centres: Vec<f64>) -> BeadAngles {
    BeadAngles {
        k: k.to_vec(),
        theta0: theta0.to_vec(),
        centre_coefficients: centres,
    }
}

const THETA_K: [f64; 4] = [150.0, 120.0, 90.0, 200.0];
const THETA0: [f64; 4] = [2.0, 1.9, 2.1, 1.95];
const FOURIER: [f64; 12] = [
    2.0, -1.5, 0.7, 0.3, -1.0, 0.5, 0.2, -0.8, 0.4, 0.1, -0.3, 0.6,
];

/// A perturbed zigzag chain of `n` beads, some pairs close to the repulsion range.
fn configuration(n: usize, seed: u64, noise: f64) -> Vec<[f64; 3]> {
    let mut rng = stream(seed, 3);
    (0..n)
        .map(|b| {
            let base = [0.36 * b as f64, 0.12 * (b % 2) as f64, 0.04 * b as f64];
            [
                base[0] + noise * normal(&mut rng),
                base[1] + noise * normal(&mut rng),
                base[2] + noise * normal(&mut rng),
            ]
        })
        .collect()
}

fn candle((u, priors): &Model, z: &[[f64; 3]]) -> (f64, Vec<[f64; 3]>) {
    let (e, f) = u
        .energy_and_forces_with(priors, &single_frame(z, DType::F64, &Device::Cpu).unwrap())
        .unwrap();
    let e = e.to_vec1::<f64>().unwrap()[0];
    let f = f.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    (e, f.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
}

fn host(h: &mut HostCgPotential, z: &[[f64; 3]]) -> (f64, Vec<[f64; 3]>) {
    let mut f = vec![[f64::NAN; 3]; z.len()];
    let e = h.energy_forces(z, &mut f);
    (e, f)
}

fn architectures() -> Vec<(usize, CgPotentialConfig, PriorSet)> {
    let mut out = Vec::new();
    for activation in [Activation::Tanh, Activation::Silu, Activation::Softplus] {
        // Bond and angle priors and repulsion, two hidden layers.
        out.push((
            5,
            CgPotentialConfig {
                basis: 12,
                hidden: vec![16, 8],
                activation,
                ..CgPotentialConfig::default()
            },
            PriorSet::new(vec![
                repulsion(),
                harmonic(
                    5,
                    1,
                    &[800.0, 900.0, 1000.0, 1100.0],
                    &[0.38, 0.38, 0.4, 0.37],
                ),
                harmonic(5, 2, &[300.0, 400.0, 350.0], &[0.6, 0.65, 0.62]),
            ]),
        ));
        // No priors, three hidden layers.
        out.push((
            4,
            CgPotentialConfig {
                basis: 7,
                cutoff_nm: 0.9,
                hidden: vec![6, 9, 5],
                activation,
                ..CgPotentialConfig::default()
            },
            PriorSet::default(),
        ));
    }
    for activation in [Activation::Tanh, Activation::Silu, Activation::Softplus] {
        // Torsions over 3 quadruples (6 beads), two hidden layers, bond, theta and
        // dihedral priors.
        out.push((
            6,
            CgPotentialConfig {
                basis: 9,
                hidden: vec![12, 7],
                activation,
                torsions: true,
                ..CgPotentialConfig::default()
            },
            PriorSet::new(vec![
                repulsion(),
                harmonic(
                    6,
                    1,
                    &[800.0, 900.0, 1000.0, 1100.0, 950.0],
                    &[0.38, 0.38, 0.4, 0.37, 0.39],
                ),
                Arc::new(bead_angles(&THETA_K, &THETA0, Vec::new())),
                Arc::new(DihedralFourier {
                    coefficients: FOURIER.to_vec(),
                }),
            ]),
        ));
        // Torsions, one hidden layer, 4 beads (one quadruple).
        out.push((
            4,
            CgPotentialConfig {
                basis: 6,
                hidden: vec![10],
                activation,
                torsions: true,
                ..CgPotentialConfig::default()
            },
            PriorSet::new(vec![repulsion()]),
        ));
    }
    // No torsions on 5 beads; torsions with a single linear layer (no hidden layer).
    out.push((
        5,
        CgPotentialConfig {
            basis: 8,
            hidden: vec![8, 8],
            torsions: false,
            ..CgPotentialConfig::default()
        },
        PriorSet::new(vec![repulsion()]),
    ));
    out.push((
        5,
        CgPotentialConfig {
            basis: 8,
            hidden: vec![],
            torsions: true,
            ..CgPotentialConfig::default()
        },
        PriorSet::new(vec![repulsion()]),
    ));
    // A single linear layer (no hidden layer) and one hidden layer, two beads.
    out.push((
        2,
        CgPotentialConfig {
            hidden: vec![],
            ..CgPotentialConfig::default()
        },
        PriorSet::new(vec![repulsion(), harmonic(2, 1, &[500.0], &[0.35])]),
    ));
    out.push((
        3,
        CgPotentialConfig {
            basis: 2,
            hidden: vec![10],
            activation: Activation::Tanh,
            ..CgPotentialConfig::default()
        },
        PriorSet::new(vec![repulsion()]),
    ));
    // Torsion windows: T(phi, psi) on 5 beads, windows of 2 and 3 on 7 beads, and a
    // window longer than the chain's dihedrals (clamped to them).
    for (n, window) in [(5, 2), (7, 2), (7, 3), (5, 4)] {
        out.push((
            n,
            CgPotentialConfig {
                basis: 6,
                hidden: vec![12, 6],
                torsion_window: window,
                ..CgPotentialConfig::default()
            },
            PriorSet::new(vec![repulsion()]),
        ));
    }
    out
}

#[test]
fn energies_and_forces_equal_candles() {
    for (a, (n, config, priors)) in architectures().into_iter().enumerate() {
        let (u, tensors) = saved(n, &config, &priors, 10 + a as u8);
        let mut h = HostCgPotential::from_tensors(&tensors).unwrap();
        assert_eq!((h.beads(), h.n_atoms()), (n, n));
        assert_eq!(h.config(), &config);
        for seed in 0..4 {
            let z = configuration(n, seed, 0.06);
            let (e_ref, f_ref) = candle(&u, &z);
            let (e, f) = host(&mut h, &z);
            let scale = f_ref.iter().flatten().fold(1.0f64, |m, &x| m.max(x.abs()));
            assert!(
                (e - e_ref).abs() <= 1e-10 * e_ref.abs().max(1.0),
                "{config:?} seed {seed}: energy {e} vs candle {e_ref}"
            );
            for (fh, fr) in f.iter().flatten().zip(f_ref.iter().flatten()) {
                assert!(
                    (fh - fr).abs() <= 1e-10 * scale,
                    "{config:?} seed {seed}: force {fh} vs candle {fr} (scale {scale})"
                );
            }
            // The same again: scratch buffers carry nothing over.
            let (e2, f2) = host(&mut h, &z);
            assert_eq!(e2.to_bits(), e.to_bits());
            assert_eq!(f2, f);
        }
    }
}

#[test]
fn forces_are_minus_the_energy_gradient() {
    for (a, (n, config, priors)) in architectures().into_iter().enumerate() {
        let (_, tensors) = saved(n, &config, &priors, 40 + a as u8);
        let mut h = HostCgPotential::from_tensors(&tensors).unwrap();
        let z = configuration(n, 100 + a as u64, 0.05);
        let (_, f) = host(&mut h, &z);
        let scale = f.iter().flatten().fold(1.0f64, |m, &x| m.max(x.abs()));
        let step = 1e-6;
        for i in 0..n {
            for c in 0..3 {
                let mut plus = z.clone();
                plus[i][c] += step;
                let mut minus = z.clone();
                minus[i][c] -= step;
                let numeric = -(host(&mut h, &plus).0 - host(&mut h, &minus).0) / (2.0 * step);
                assert!(
                    (numeric - f[i][c]).abs() <= 1e-6 * scale,
                    "{config:?} bead {i} component {c}: analytic {} vs finite difference {numeric}",
                    f[i][c]
                );
            }
        }
    }
}

#[test]
fn malformed_potentials_are_refused() {
    let config = CgPotentialConfig {
        hidden: vec![8],
        ..CgPotentialConfig::default()
    };
    let (_, tensors) = saved(3, &config, &PriorSet::new(vec![repulsion()]), 1);
    let without = |name: &str| -> Vec<NamedTensor> {
        tensors.iter().filter(|t| t.name != name).cloned().collect()
    };
    let err = HostCgPotential::from_tensors(&without("pair_network.layer1.bias")).unwrap_err();
    assert!(err.contains("pair_network.layer1.bias"), "{err}");
    let err = HostCgPotential::from_tensors(&without("config.beads")).unwrap_err();
    assert!(err.contains("config.beads"), "{err}");
    let mut wrong = tensors.clone();
    for t in &mut wrong {
        if t.name == "config.hidden" {
            t.values = vec![9.0];
        }
    }
    let err = HostCgPotential::from_tensors(&wrong).unwrap_err();
    assert!(err.contains("pair_network.layer0.weight"), "{err}");

    // The torsion network: missing, mis-shaped, or present without the torsion flag.
    let config = CgPotentialConfig {
        hidden: vec![8],
        torsions: true,
        ..CgPotentialConfig::default()
    };
    let (_, tensors) = saved(5, &config, &PriorSet::new(vec![repulsion()]), 2);
    let without = |name: &str| -> Vec<NamedTensor> {
        tensors.iter().filter(|t| t.name != name).cloned().collect()
    };
    let err = HostCgPotential::from_tensors(&without("torsion_network.layer1.weight")).unwrap_err();
    assert!(err.contains("torsion_network.layer1.weight"), "{err}");
    let mut wrong = tensors.clone();
    for t in &mut wrong {
        if t.name == "torsion_network.layer0.weight" {
            t.shape = vec![4, 8];
            t.values.truncate(32);
        }
    }
    let err = HostCgPotential::from_tensors(&wrong).unwrap_err();
    assert!(err.contains("torsion_network.layer0.weight"), "{err}");
    let mut off = tensors.clone();
    for t in &mut off {
        if t.name == "config.torsions" {
            t.values = vec![0.0];
        }
    }
    let err = HostCgPotential::from_tensors(&off).unwrap_err();
    assert!(err.contains("torsion_network."), "{err}");
}

/// A potential saved before the torsion term (no `config.torsions` row, no torsion
/// network) loads as a distance-only potential, on the host and in candle.
#[test]
fn potentials_saved_without_the_torsion_row_have_no_torsions() {
    let config = CgPotentialConfig {
        hidden: vec![8],
        torsions: false,
        ..CgPotentialConfig::default()
    };
    let priors = PriorSet::new(vec![repulsion()]);
    let (u, tensors) = saved(5, &config, &priors, 3);
    let old: Vec<NamedTensor> = tensors
        .into_iter()
        .filter(|t| t.name != "config.torsions")
        .collect();
    let mut h = HostCgPotential::from_tensors(&old).unwrap();
    assert!(!h.config().torsions);
    let (_, loaded, loaded_priors) =
        cgloop::nn::cg_potential::load_potential(&old, DType::F64, &Device::Cpu).unwrap();
    let loaded = (loaded, loaded_priors);
    let z = configuration(5, 7, 0.05);
    let (e, f) = host(&mut h, &z);
    for (e_ref, f_ref) in [candle(&u, &z), candle(&loaded, &z)] {
        assert!((e - e_ref).abs() <= 1e-10 * e_ref.abs().max(1.0));
        for (a, b) in f.iter().flatten().zip(f_ref.iter().flatten()) {
            assert!((a - b).abs() <= 1e-10 * b.abs().max(1.0));
        }
    }
    // Mirror images have one energy without torsions, two with.
    let mirror: Vec<[f64; 3]> = z.iter().map(|p| [-p[0], p[1], p[2]]).collect();
    assert!((host(&mut h, &mirror).0 - e).abs() <= 1e-10 * e.abs().max(1.0));
    let (_, chiral) = saved(
        5,
        &CgPotentialConfig {
            torsions: true,
            ..config
        },
        &priors,
        3,
    );
    let mut h = HostCgPotential::from_tensors(&chiral).unwrap();
    assert!((host(&mut h, &mirror).0 - host(&mut h, &z).0).abs() > 1e-4);
}

/// Steps per second of BAOAB on 5 beads with hidden [64, 64] (printed; run with
/// `--nocapture`).
#[test]
fn speed_of_five_beads_with_hidden_64_64() {
    let config = CgPotentialConfig {
        hidden: vec![64, 64],
        ..CgPotentialConfig::default()
    };
    let priors = PriorSet::new(vec![repulsion(), harmonic(5, 1, &[1000.0; 4], &[0.38; 4])]);
    let (_, tensors) = saved(5, &config, &priors, 3);
    let mut h = HostCgPotential::from_tensors(&tensors).unwrap();
    let z = configuration(5, 1, 0.02);
    let evaluations = 20_000;
    let mut forces = vec![[0.0; 3]; 5];
    let clock = Instant::now();
    let mut sink = 0.0;
    for _ in 0..evaluations {
        sink += h.energy_forces(&z, &mut forces);
    }
    let per_eval = clock.elapsed().as_secs_f64() / evaluations as f64;
    assert!(sink.is_finite());
    let mut md = LangevinIntegrator::new(
        h,
        &[40.0; 5],
        &z,
        &[],
        LangevinParams::new(300.0, 1.0, 0.002),
        stream(2, 0),
    )
    .unwrap();
    md.initialize_velocities().unwrap();
    let steps = 20_000;
    let clock = Instant::now();
    md.run(steps, 0, |_| {}).unwrap();
    let seconds = clock.elapsed().as_secs_f64();
    println!(
        "host CG potential, 5 beads, basis 16, hidden [64, 64]: {:.2} us per evaluation, \
         {:.0} BAOAB steps/s",
        per_eval * 1e6,
        steps as f64 / seconds
    );
}

/// With the same weights, the energy and forces of the priors `with` minus those of
/// `plain` are exactly `prior`'s (6 beads), in both evaluations; `prior` must contribute
/// at least `least` kJ/mol on each configuration.
fn assert_adds_exactly(
    plain: &PriorSet,
    with: &PriorSet,
    least: f64,
    prior: impl Fn(&[[f64; 3]], &mut [[f64; 3]]) -> f64,
) {
    let config = CgPotentialConfig {
        basis: 9,
        hidden: vec![12, 7],
        torsions: true,
        ..CgPotentialConfig::default()
    };
    let (u_plain, t_plain) = saved(6, &config, plain, 7);
    let (u_with, t_with) = saved(6, &config, with, 7);
    let mut h_plain = HostCgPotential::from_tensors(&t_plain).unwrap();
    let mut h_with = HostCgPotential::from_tensors(&t_with).unwrap();
    for seed in 0..5 {
        let z = configuration(6, seed, 0.03);
        let mut prior_f = vec![[0.0; 3]; 6];
        let prior_e = prior(&z, &mut prior_f);
        assert!(prior_e.abs() > least, "the prior contributes ({prior_e})");
        for ((e_with, f_with), (e_plain, f_plain)) in [
            (candle(&u_with, &z), candle(&u_plain, &z)),
            (host(&mut h_with, &z), host(&mut h_plain, &z)),
        ] {
            assert!(
                (e_with - e_plain - prior_e).abs() < 1e-9 * prior_e.abs().max(1.0),
                "{e_with} - {e_plain} vs {prior_e}"
            );
            for b in 0..6 {
                for c in 0..3 {
                    let d = f_with[b][c] - f_plain[b][c];
                    assert!((d - prior_f[b][c]).abs() < 1e-8 * prior_f[b][c].abs().max(1.0));
                }
            }
        }
    }
}

/// The theta and dihedral priors are applied, by both evaluations: with the same weights,
/// the energy and forces with the priors minus those without are exactly the priors'.
#[test]
fn the_angle_and_dihedral_priors_add_exactly_their_terms() {
    let plain = PriorSet::new(vec![repulsion()]);
    let with = PriorSet::new(vec![
        repulsion(),
        Arc::new(bead_angles(&THETA_K, &THETA0, Vec::new())),
        Arc::new(DihedralFourier {
            coefficients: FOURIER.to_vec(),
        }),
    ]);
    assert_adds_exactly(&plain, &with, 1.0, |z, f| {
        harmonic_bead_angles(z, &THETA_K, &THETA0, f) + fourier_dihedrals(z, &FOURIER, f)
    });
    let config = CgPotentialConfig::default();
    let (_, t_with) = saved(6, &config, &with, 7);
    // Priors of the wrong size are refused when loading, not a panic later.
    let mut bad = t_with.clone();
    for t in &mut bad {
        if t.name == "config.theta_k" {
            t.values.pop();
            t.shape = vec![t.values.len()];
        }
    }
    assert!(HostCgPotential::from_tensors(&bad).is_err());
}

/// The dihedral-pair prior likewise: both evaluations add exactly its terms.
#[test]
fn the_dihedral_pair_prior_adds_exactly_its_terms() {
    use cgloop::nn::priors::dihedral_pairs::{DihedralPairs, dihedral_pairs, fit_pair};
    // Coefficients of order 3 from a few correlated dihedral samples, two pairs (6 beads).
    let mut rng = stream(17, 0);
    let mut coefficients = Vec::new();
    for shift in [0.5, -1.0] {
        let samples: Vec<(f64, f64)> = (0..300)
            .map(|_| {
                let a = 0.6 * normal(&mut rng) + shift;
                (a, 0.8 * a + 0.3 * normal(&mut rng))
            })
            .collect();
        coefficients.extend(fit_pair(&samples, 3).unwrap());
    }
    let pairs = DihedralPairs {
        coefficients,
        kt: 2.494,
        floor: 0.01 / (4.0 * std::f64::consts::PI.powi(2)),
    };
    let plain = PriorSet::new(vec![repulsion()]);
    let with = PriorSet::new(vec![repulsion(), Arc::new(pairs.clone())]);
    assert_adds_exactly(&plain, &with, 0.1, |z, f| {
        dihedral_pairs(z, &pairs.coefficients, pairs.kt, pairs.floor, f)
    });
}

/// The bead-angle prior with centres that follow the dihedrals likewise.
#[test]
fn the_angle_dihedral_prior_adds_exactly_its_terms() {
    use cgloop::nn::priors::angle_dihedral::angle_dihedral_prior;
    // Order 1: 9 coefficients per angle, entry (0, 0) unused.
    let mut rng = stream(19, 0);
    let mut theta_dihedral: Vec<f64> = (0..36).map(|_| 0.05 * normal(&mut rng)).collect();
    for a in 0..4 {
        theta_dihedral[9 * a] = 0.0;
    }
    let plain = PriorSet::new(vec![
        repulsion(),
        Arc::new(bead_angles(&THETA_K, &THETA0, Vec::new())),
    ]);
    let with = PriorSet::new(vec![
        repulsion(),
        Arc::new(bead_angles(&THETA_K, &THETA0, theta_dihedral.clone())),
    ]);
    // The difference is the Fourier part: the full prior less the plain harmonic one.
    assert_adds_exactly(&plain, &with, 1e-3, |z, f| {
        let mut minus = vec![[0.0; 3]; z.len()];
        let e = angle_dihedral_prior(z, &THETA_K, &THETA0, &theta_dihedral, f)
            - harmonic_bead_angles(z, &THETA_K, &THETA0, &mut minus);
        for (f, m) in f.iter_mut().zip(&minus) {
            for c in 0..3 {
                f[c] -= m[c];
            }
        }
        e
    });
}
