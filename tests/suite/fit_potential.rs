//! The `fit_potential` stage on a synthetic mapped trajectory whose mean force is known:
//! the kept checkpoint beats the zero model and the priors alone, the learning curve
//! marks one best epoch, the saved potential reproduces its recorded validation error,
//! the same seed gives the same bytes, and bad inputs and params are refused; the
//! dihedral prior fitted to Boltzmann-distributed dihedrals recovers their potential.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, RecordBatch};
use candle_core::{DType, Device, Tensor};
use cgloop::artifact::Artifact;
use cgloop::artifact::tensors::from_table as tensors_from_table;
use cgloop::artifact::trajectory::{FrameRecord, Trajectory};
use cgloop::nn::cg_potential::load_potential;
use cgloop::nn::priors::bead_angles::BeadAngles;
use cgloop::nn::priors::dihedral_fourier::DihedralFourier;
use cgloop::nn::priors::harmonic_distances::HarmonicDistances;
use cgloop::random::{normal, stream};
use cgloop::stages::fit_potential::{FitPotential, FitPotentialParams};
use cgloop::stages::{Context, Inputs, NoProgress, Outputs, Registry, Stage, StageError};

const BEADS: usize = 4;
const FRAMES: usize = 200;
/// Noise on the instantaneous force, as a fraction of the mean force's RMS.
const NOISE: f64 = 0.3;

/// The known mean force: harmonic bonds plus a Gaussian well between beads 0 and 3
/// (as in tests/suite/cg_potential.rs), for one frame of 3 * BEADS coordinates.
fn mean_force(z: &[f64]) -> Vec<f64> {
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
    pair(
        0,
        3,
        &|d| 20.0 * (d - 0.6) / 0.01 * (-(d - 0.6f64).powi(2) / 0.02).exp(),
        &mut f,
    );
    f
}

/// A mapped trajectory: a bent 4-bead chain, perturbed per frame, with F_inst the mean
/// force plus Gaussian noise. Frames at temperature index 1 (junk) are interleaved to
/// check that only index 0 is used. Also returns the exact mean force per used frame.
fn trajectory(seed: u64) -> (Trajectory, Vec<Vec<f64>>) {
    let mut rng = stream(seed, 0);
    let mut t = Trajectory::new(BEADS);
    let mut exact = Vec::new();
    let mut frames = Vec::new();
    for _ in 0..FRAMES {
        let z: Vec<f64> = (0..BEADS)
            .flat_map(|b| [0.38 * b as f64, 0.1 * ((b % 2) as f64), 0.05 * b as f64])
            .map(|c| c + 0.03 * normal(&mut rng))
            .collect();
        let f = mean_force(&z);
        frames.push((z, f));
    }
    let rms = (frames
        .iter()
        .flat_map(|(_, f)| f)
        .map(|f| f * f)
        .sum::<f64>()
        / (FRAMES * 3 * BEADS) as f64)
        .sqrt();
    let triples =
        |v: &[f64]| -> Vec<[f64; 3]> { v.chunks(3).map(|c| [c[0], c[1], c[2]]).collect() };
    for (k, (z, f)) in frames.into_iter().enumerate() {
        let noisy: Vec<f64> = f
            .iter()
            .map(|x| x + NOISE * rms * normal(&mut rng))
            .collect();
        for temperature_index in [0, 1] {
            let junk = temperature_index == 1;
            t.push(FrameRecord {
                temperature_index,
                replica: temperature_index,
                temperature_k: 300.0,
                step: 100 * k as i64,
                time_ps: 0.2 * k as f64,
                // Junk frames: beads far apart and huge forces.
                positions_nm: &triples(
                    &z.iter()
                        .map(|x| if junk { 5.0 * x } else { *x })
                        .collect::<Vec<_>>(),
                ),
                forces: &triples(
                    &noisy
                        .iter()
                        .map(|x| if junk { 1e4 } else { *x })
                        .collect::<Vec<_>>(),
                ),
                potential: f64::NAN,
                kinetic_temperature_k: f64::NAN,
            });
        }
        exact.push(f);
    }
    (t, exact)
}

fn params() -> FitPotentialParams {
    FitPotentialParams {
        // The synthetic frames are not Boltzmann-distributed, so priors by Boltzmann
        // inversion are wrong for them: keep the ones the pair network can cancel (bonds
        // and the Urey-Bradley form), not the bead-angle prior, which it cannot.
        angle_prior: true,
        theta_prior: false,
        dihedral_prior_order: 0,
        hidden: vec![32, 32],
        epochs: 40,
        batch_size: 32,
        learning_rate: 3e-3,
        ..FitPotentialParams::default()
    }
}

fn run(t: &Trajectory, p: &FitPotentialParams, seed: u8) -> Result<Outputs, StageError> {
    let inputs = Inputs {
        artifacts: BTreeMap::from([(
            "trajectory".to_string(),
            Arc::new(Artifact::Table(t.to_table())),
        )]),
        files: BTreeMap::new(),
    };
    let mut ctx = Context::new([seed; 32], &NoProgress);
    FitPotential::run(p, &inputs, &mut ctx)
}

fn table<'a>(out: &'a Outputs, name: &str) -> &'a RecordBatch {
    out[name].as_table().unwrap()
}

fn f64s(batch: &RecordBatch, name: &str) -> Vec<f64> {
    batch
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn i64s(batch: &RecordBatch, name: &str) -> Vec<i64> {
    batch
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn bools(batch: &RecordBatch, name: &str) -> Vec<bool> {
    let a = batch
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<BooleanArray>()
        .unwrap();
    (0..a.len()).map(|i| a.value(i)).collect()
}

fn rms(a: &[f64], b: &[f64]) -> f64 {
    (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
}

#[test]
fn force_matching_fits_a_known_mean_force_and_replays_bit_for_bit() {
    let (t, exact) = trajectory(5);
    let p = params();
    let out = run(&t, &p, 7).unwrap();

    // Learning curve: one row per epoch, exactly one best, at the lowest validation RMSE.
    let curve = table(&out, "learning_curve");
    assert_eq!(curve.num_rows(), p.epochs);
    assert_eq!(
        i64s(curve, "epoch"),
        (1..=p.epochs as i64).collect::<Vec<_>>()
    );
    let best = bools(curve, "best");
    assert_eq!(best.iter().filter(|&&b| b).count(), 1);
    let best_row = best.iter().position(|&b| b).unwrap();
    let validation = f64s(curve, "validation_force_rmse");
    let lowest = validation.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(validation[best_row], lowest);
    assert!(
        f64s(curve, "train_loss")
            .iter()
            .all(|l| l.is_finite() && *l > 0.0)
    );

    let summary = table(&out, "summary");
    let s = |name: &str| f64s(summary, name)[0];
    let best_rmse = s("validation_force_rmse");
    let (zero, prior) = (
        s("zero_model_validation_force_rmse"),
        s("prior_validation_force_rmse"),
    );
    println!(
        "best epoch {}: validation RMSE {best_rmse:.2} kJ/mol/nm; zero model {zero:.2}, priors \
         alone {prior:.2}, force RMS {:.2}; train RMSE {:.2}",
        i64s(summary, "best_epoch")[0],
        s("force_rms"),
        s("train_force_rmse")
    );
    assert_eq!(i64s(summary, "best_epoch")[0], best_row as i64 + 1);
    assert_eq!(best_rmse, lowest);
    // The noise alone leaves ~0.3 of the zero-model RMSE; a fit that learned the mean
    // force lands near it. 0.5 fails for a model that learned little beyond the priors.
    assert!(best_rmse < 0.5 * zero, "{best_rmse} vs zero model {zero}");
    assert!(
        best_rmse < 0.8 * prior,
        "{best_rmse} vs priors alone {prior}"
    );

    // Split: every frame at temperature index 0 (even rows) once, some held out.
    let split = table(&out, "split");
    let frames = i64s(split, "frame");
    assert_eq!(
        frames,
        (0..FRAMES as i64).map(|k| 2 * k).collect::<Vec<_>>()
    );
    let held_out: Vec<usize> = bools(split, "validation")
        .iter()
        .enumerate()
        .filter(|(_, v)| **v)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(held_out.len() as i64, i64s(summary, "validation_frames")[0]);
    assert!(!held_out.is_empty() && held_out.len() < FRAMES);

    // The saved potential reproduces the recorded best validation RMSE.
    let tensors = tensors_from_table(table(&out, "potential")).unwrap();
    let (_store, u, priors) = load_potential(&tensors, DType::F64, &Device::Cpu).unwrap();
    assert_eq!(u.beads(), BEADS);
    assert_eq!(
        priors
            .all::<HarmonicDistances>()
            .find(|h| h.separation == 1)
            .map(|h| h.k.len()),
        Some(BEADS - 1)
    );
    let gather = |rows: &[usize], forces: bool| -> Vec<f64> {
        rows.iter()
            .flat_map(|&k| {
                let row = 2 * k;
                if forces {
                    t.frame_forces(row)
                } else {
                    t.positions(row)
                }
                .to_vec()
            })
            .collect()
    };
    let z = Tensor::from_vec(
        gather(&held_out, false),
        (held_out.len(), BEADS, 3),
        &Device::Cpu,
    )
    .unwrap();
    let (_, model) = u.energy_and_forces_with(&priors, &z).unwrap();
    let model = model.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let reproduced = rms(&model, &gather(&held_out, true));
    assert!(
        (reproduced - best_rmse).abs() < 1e-9 * best_rmse,
        "{reproduced} vs recorded {best_rmse}"
    );
    // And it learned the mean force, not the noise: its error to the exact mean force
    // is well below the noise it was trained on (fitting F_inst frame by frame would
    // leave an error as large as the noise).
    let exact_held: Vec<f64> = held_out.iter().flat_map(|&k| exact[k].clone()).collect();
    let to_mean = rms(&model, &exact_held);
    let noise = NOISE * s("force_rms");
    println!("validation error to the exact mean force {to_mean:.2} (noise {noise:.2})");
    assert!(to_mean < 0.5 * noise, "{to_mean} vs noise {noise}");

    // Same seed: identical tables and plots. Another seed: other weights.
    let again = run(&t, &p, 7).unwrap();
    for name in ["potential", "learning_curve", "summary", "split"] {
        assert_eq!(table(&out, name), table(&again, name), "{name} differs");
    }
    for name in ["learning_curve_plot", "learning_curve_svg"] {
        assert_eq!(
            out[name].as_bytes().unwrap(),
            again[name].as_bytes().unwrap()
        );
    }
    assert!(
        out["learning_curve_plot"]
            .as_bytes()
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    let other = run(&t, &p, 8).unwrap();
    assert_ne!(table(&out, "potential"), table(&other, "potential"));
}

#[test]
fn too_few_frames_or_beads_are_refused() {
    let (t, _) = trajectory(6);
    let p = FitPotentialParams {
        epochs: 1,
        hidden: vec![4],
        ..FitPotentialParams::default()
    };
    // 9 frames at temperature index 0.
    let few = t.select(&(0..18).collect::<Vec<_>>());
    match run(&few, &p, 1) {
        Err(StageError::BadInput { input, message }) => {
            assert_eq!(input, "trajectory");
            assert!(message.contains("9 frames"), "{message}");
        }
        other => panic!(
            "expected BadInput, got {:?}",
            other.map(|o| o.keys().cloned().collect::<Vec<_>>())
        ),
    }
    // No frames at the requested temperature.
    let q = FitPotentialParams {
        temperature_index: 3,
        ..p.clone()
    };
    assert!(matches!(run(&t, &q, 1), Err(StageError::BadInput { .. })));
    // One bead.
    let mut one = Trajectory::new(1);
    for k in 0..20 {
        one.push(FrameRecord {
            temperature_index: 0,
            replica: 0,
            temperature_k: 300.0,
            step: k,
            time_ps: k as f64,
            positions_nm: &[[0.1 * k as f64, 0.0, 0.0]],
            forces: &[[1.0, 0.0, 0.0]],
            potential: f64::NAN,
            kinetic_temperature_k: f64::NAN,
        });
    }
    match run(&one, &p, 1) {
        Err(StageError::BadInput { message, .. }) => assert!(message.contains("bead"), "{message}"),
        other => panic!("expected BadInput, got {:?}", other.is_ok()),
    }
}

#[test]
fn the_registry_checks_params() {
    let registry = Registry::builtin();
    let stage = registry
        .get("fit_potential")
        .expect("fit_potential is registered");
    let defaults = stage.default_params();
    assert_eq!(defaults["epochs"], 50);
    assert_eq!(defaults["hidden"], serde_json::json!([64, 64]));
    assert!(defaults["repulsion_sigma_nm"].is_null());
    assert_eq!(defaults["activation"], "silu");
    assert_eq!(defaults["theta_prior"], true);
    assert_eq!(defaults["angle_prior"], false);
    assert_eq!(defaults["dihedral_prior_order"], 6);
    assert!(stage.resolve_params(&serde_json::json!({})).is_ok());
    assert!(
        stage
            .resolve_params(&serde_json::json!({"repulsion_sigma_nm": 0.3}))
            .is_ok()
    );
    for (bad, param) in [
        (serde_json::json!({"angle_prior": true}), "theta_prior"),
        (
            serde_json::json!({"dihedral_pair_order": 8}),
            "dihedral_pair_order",
        ),
        (
            serde_json::json!({"theta_dihedral_order": 5}),
            "theta_dihedral_order",
        ),
        (
            serde_json::json!({"theta_dihedral_order": 1, "theta_prior": false}),
            "theta_dihedral_order",
        ),
        (
            serde_json::json!({"dihedral_pair_order": 25, "dihedral_prior_order": 0}),
            "dihedral_pair_order",
        ),
        (
            serde_json::json!({"dihedral_pair_floor": 0.0}),
            "dihedral_pair_floor",
        ),
        (
            serde_json::json!({"dihedral_prior_order": 9}),
            "dihedral_prior_order",
        ),
        (
            serde_json::json!({"validation_fraction": 1.0}),
            "validation_fraction",
        ),
        (
            serde_json::json!({"validation_fraction": 0.0}),
            "validation_fraction",
        ),
        (serde_json::json!({"batch_size": 0}), "batch_size"),
        (serde_json::json!({"learning_rate": -1e-3}), "learning_rate"),
        (
            serde_json::json!({"validation_blocks": 1}),
            "validation_blocks",
        ),
        (
            serde_json::json!({"repulsion_sigma_nm": 0.0}),
            "repulsion_sigma_nm",
        ),
        (
            serde_json::json!({"excluded_volume_kj_per_mol": -1.0}),
            "excluded_volume_kj_per_mol",
        ),
        (
            serde_json::json!({"excluded_volume_separation": 1}),
            "excluded_volume_separation",
        ),
        (serde_json::json!({"hidden": [64, 0]}), "hidden"),
        (serde_json::json!({"activation": "relu"}), "activation"),
        (serde_json::json!({"epoch": 3}), "epoch"),
    ] {
        let problem = stage.resolve_params(&bad).expect_err(&bad.to_string());
        assert_eq!(problem.path, vec![param.to_string()], "{bad}: {problem:?}");
    }
}

/// Beads 0-1-2-3 as [`chain_with_angle`] with both bead angles ~110 degrees and the
/// dihedral psi given (IUPAC sign, as the potential's), every coordinate of beads 0, 2 and
/// 3 moved by Gaussian noise of 0.002 nm.
fn chain_with_dihedral(psi: f64, rng: &mut rand_chacha::ChaCha20Rng) -> Vec<[f64; 3]> {
    let theta = 110f64.to_radians();
    let mut x = chain_with_angle(theta, theta, psi);
    for bead in [0, 2, 3] {
        for c in &mut x[bead] {
            *c += 0.002 * normal(rng);
        }
    }
    x
}

/// 4-bead chains whose dihedral psi follows exp(-(a cos psi + b sin psi) / kT) at 300 K
/// (by rejection; bead angles 110 degrees, 0.002 nm of noise), as still frames.
fn boltzmann_dihedral_frames(a: f64, b: f64, frames: usize, seed: u64) -> Trajectory {
    use cgloop::geometry::dihedral::dihedral_deg;
    let kt = 0.00831446261815324 * 300.0;
    let mut rng = stream(seed, 0);
    let mut t = Trajectory::new(4);
    let mut k = 0;
    while k < frames {
        let psi = (2.0 * cgloop::random::uniform(&mut rng) - 1.0) * std::f64::consts::PI;
        let u = a * psi.cos() + b * psi.sin();
        if cgloop::random::uniform(&mut rng) > (-(u + 3.5) / kt).exp() {
            continue;
        }
        let x = chain_with_dihedral(psi, &mut rng);
        let measured = dihedral_deg(x[0], x[1], x[2], x[3]).to_radians();
        assert!(cgloop::geometry::zmatrix::wrap_angle(measured - psi).abs() < 0.05);
        push_still_frame(&mut t, k, &x);
        k += 1;
    }
    t
}

/// A saved potential along the dihedral of a noise-free chain: (a, b) of the
/// least-squares fit U(psi) = c + a cos psi + b sin psi on a uniform grid.
fn fitted_dihedral_terms(out: &Outputs) -> (f64, f64) {
    use cgloop::md::potential::Potential;
    use cgloop::nn::cg_potential_host::HostCgPotential;
    let tensors = tensors_from_table(table(out, "potential")).unwrap();
    let mut host = HostCgPotential::from_tensors(&tensors).unwrap();
    let theta = 110f64.to_radians();
    let mut forces = vec![[0.0; 3]; 4];
    let (mut uc, mut us, mut cc, mut ss) = (0.0, 0.0, 0.0, 0.0);
    for k in 0..72 {
        let psi = (k as f64 * 5.0 - 177.5).to_radians();
        let u = host.energy_forces(&chain_with_angle(theta, theta, psi), &mut forces);
        // (1, cos, sin) are orthogonal on the uniform grid.
        uc += u * psi.cos();
        us += u * psi.sin();
        cc += psi.cos() * psi.cos();
        ss += psi.sin() * psi.sin();
    }
    (uc / cc, us / ss)
}

/// Relative entropy learns what force matching on force-free frames cannot: these
/// frames carry no forces (a structures-only data set), so force matching teaches the
/// networks nothing true of the dihedral (what they hold of it comes from their
/// initial weights), and there is no dihedral prior. The refinement compares U_hat on the frames with U_hat on CG chains and
/// recovers the dihedral's free energy a cos psi + b sin psi.
#[test]
fn relative_entropy_recovers_a_dihedral_free_energy_from_structures_alone() {
    let (a, b) = (2.0, -1.5);
    let t = boltzmann_dihedral_frames(a, b, 4000, 78);
    let base = FitPotentialParams {
        epochs: 1,
        hidden: vec![8],
        validation_fraction: 0.1,
        dihedral_prior_order: 0,
        ..FitPotentialParams::default()
    };
    let before = fitted_dihedral_terms(&run(&t, &base, 5).unwrap());
    let off = |(x, y): (f64, f64)| (x - a).hypot(y - b);
    assert!(
        off(before) > 1.5,
        "force matching alone should not know the dihedral: {before:?}"
    );
    let p = FitPotentialParams {
        relative_entropy_iterations: 600,
        relative_entropy_chains: 32,
        relative_entropy_steps: 200,
        relative_entropy_learning_rate: 1e-3,
        ..base
    };
    let out = run(&t, &p, 5).unwrap();
    let (fa, fb) = fitted_dihedral_terms(&out);
    assert!(
        off((fa, fb)) < 0.6,
        "relative entropy gave ({fa:.3}, {fb:.3}) for ({a}, {b}); before ({:.3}, {:.3})",
        before.0,
        before.1
    );
    // Deterministic: the same node gives the same bytes.
    let again = run(&t, &p, 5).unwrap();
    assert_eq!(
        tensors_from_table(table(&out, "potential")).unwrap(),
        tensors_from_table(table(&again, "potential")).unwrap()
    );
}

#[test]
fn the_dihedral_prior_recovers_a_boltzmann_distributed_dihedral_potential() {
    use cgloop::nn::cg_potential::potential_config;
    // psi ~ exp(-(a cos psi + b sin psi) / kT) by rejection; the prior's first Fourier
    // coefficients are -kT ln p's: (a, b) up to sampling noise.
    let (a, b) = (2.0, -1.5);
    let t = boltzmann_dihedral_frames(a, b, 6000, 77);
    let p = FitPotentialParams {
        epochs: 1,
        hidden: vec![4],
        validation_fraction: 0.1,
        ..FitPotentialParams::default()
    };
    let out = run(&t, &p, 3).unwrap();
    let tensors = tensors_from_table(table(&out, "potential")).unwrap();
    let (_, _, priors, _) = potential_config(&tensors).unwrap();
    let fourier = &priors.get::<DihedralFourier>().unwrap().coefficients;
    assert_eq!(fourier.len(), 12, "order 6, one quadruple");
    let (fa, fb) = (fourier[0], fourier[1]);
    assert!(
        (fa - a).abs() < 0.25 && (fb - b).abs() < 0.25,
        "fitted ({fa}, {fb}) vs ({a}, {b})"
    );
    // The higher orders are noise.
    assert!(fourier[2..].iter().all(|c| c.abs() < 0.3));
    // And the theta prior holds the angles where the chain has them (70 and 110 degrees).
    let angles = priors.get::<BeadAngles>().unwrap();
    for (theta0, expected) in angles.theta0.iter().zip([70.0, 110.0]) {
        assert!((theta0.to_degrees() - expected).abs() < 1.0, "{theta0}");
    }
}

/// `epochs: 0` trains nothing: every network weight is zero, the potential is its priors
/// alone, and the learning curve is the one row of epoch 0 (the priors' force errors).
#[test]
fn zero_epochs_give_the_priors_alone() {
    use cgloop::nn::cg_potential::potential_config;
    let (t, _) = trajectory(9);
    let p = FitPotentialParams {
        epochs: 0,
        ..params()
    };
    let out = run(&t, &p, 3).unwrap();
    let tensors = tensors_from_table(table(&out, "potential")).unwrap();
    let (_, _, priors, weights) = potential_config(&tensors).unwrap();
    assert_eq!(
        priors.all::<HarmonicDistances>().count(),
        2,
        "bonds and 1-3 distances"
    );
    assert!(!weights.is_empty());
    assert!(weights.iter().all(|w| w.values.iter().all(|&v| v == 0.0)));
    let curve = table(&out, "learning_curve");
    assert_eq!(i64s(curve, "epoch"), vec![0]);
    let summary = table(&out, "summary");
    assert_eq!(
        f64s(summary, "validation_force_rmse"),
        f64s(summary, "prior_validation_force_rmse")
    );
}

/// Appends frame `k` of four beads at `x`, without forces, at 300 K.
fn push_still_frame(t: &mut Trajectory, k: usize, x: &[[f64; 3]]) {
    t.push(FrameRecord {
        temperature_index: 0,
        replica: 0,
        temperature_k: 300.0,
        step: k as i64,
        time_ps: k as f64,
        positions_nm: x,
        forces: &[[0.0; 3]; 4],
        potential: f64::NAN,
        kinetic_temperature_k: f64::NAN,
    });
}

/// Beads 0-1-2-3 with bonds 0.38 nm, the angle at bead 1 of pi - theta1, and the angle
/// at bead 2 and the dihedral given (rad).
fn chain_with_angle(theta1: f64, theta2: f64, psi: f64) -> Vec<[f64; 3]> {
    let b = 0.38;
    let p1 = [0.0, 0.0, 0.0];
    let p2 = [0.0, -b, 0.0];
    let p0 = [b * theta1.sin(), b * theta1.cos(), 0.0];
    // p3 from p2, making angle theta2 with (p1 - p2) = +y, rotated by psi about y.
    let p3 = [
        b * theta2.sin() * psi.cos(),
        -b + b * theta2.cos(),
        b * theta2.sin() * psi.sin(),
    ];
    vec![p0, p1, p2, p3]
}

#[test]
fn bead_angle_centres_follow_the_dihedral_when_asked() {
    use cgloop::geometry::angle::bond_angle_rad;
    use cgloop::geometry::dihedral::dihedral_deg;
    use cgloop::nn::cg_potential::potential_config;
    // theta_2 = 110 degrees + 5 degrees cos(psi) + noise of 1 degree.
    let mut rng = stream(91, 0);
    let mut t = Trajectory::new(4);
    for k in 0..3000 {
        let psi = (2.0 * cgloop::random::uniform(&mut rng) - 1.0) * std::f64::consts::PI;
        let theta2 = (110.0 + 5.0 * psi.cos() + normal(&mut rng)).to_radians();
        let theta1 = (100.0 + 0.5 * normal(&mut rng)).to_radians();
        let x = chain_with_angle(theta1, theta2, psi);
        let measured = dihedral_deg(x[0], x[1], x[2], x[3]).to_radians();
        assert!(cgloop::geometry::zmatrix::wrap_angle(measured - psi).abs() < 1e-9);
        assert!((bond_angle_rad(x[1], x[2], x[3]) - theta2).abs() < 1e-9);
        push_still_frame(&mut t, k, &x);
    }
    let p = FitPotentialParams {
        epochs: 0,
        hidden: vec![4],
        theta_dihedral_order: 1,
        // The bonds do not vary: no bond prior.
        bond_prior: false,
        ..FitPotentialParams::default()
    };
    let out = run(&t, &p, 3).unwrap();
    let tensors = tensors_from_table(table(&out, "potential")).unwrap();
    let (_, _, priors, _) = potential_config(&tensors).unwrap();
    let config = priors.get::<BeadAngles>().unwrap();
    // Order 1: 9 coefficients per angle, rows (1, cos a, sin a), columns (1, cos b, sin b);
    // angle 1 (beads 1, 2, 3) has the dihedral on its left (a) only.
    assert_eq!(config.centre_coefficients.len(), 18);
    let c = &config.centre_coefficients[9..];
    assert!((config.theta0[1].to_degrees() - 110.0).abs() < 0.1);
    assert!(
        (c[3].to_degrees() - 5.0).abs() < 0.1,
        "cos coefficient {}",
        c[3].to_degrees()
    );
    assert!(
        c[6].to_degrees().abs() < 0.1,
        "sin coefficient {}",
        c[6].to_degrees()
    );
    // k = kT / var(residual): the residual is the 1-degree noise.
    let kt = 0.00831446261815324 * 300.0;
    let expected = kt / 1f64.to_radians().powi(2);
    assert!(
        (config.k[1] / expected - 1.0).abs() < 0.1,
        "{} vs {expected}",
        config.k[1]
    );
    // Angle 0 (80 degrees, independent noise) has a centre that does not move.
    assert!((config.theta0[0].to_degrees() - 80.0).abs() < 0.1);
    assert!(
        config.centre_coefficients[..9]
            .iter()
            .all(|c| c.to_degrees().abs() < 0.1)
    );
}

/// The bead-angle centre theta0 of angle `i` at dihedral `a` (left) of an order-2 fit
/// whose angle has its dihedral on the left only.
fn centre_at(config: &BeadAngles, i: usize, a: f64) -> f64 {
    let side = 5;
    let c = &config.centre_coefficients[i * side * side..(i + 1) * side * side];
    let f = [1.0, a.cos(), a.sin(), (2.0 * a).cos(), (2.0 * a).sin()];
    config.theta0[i] + (1..side).map(|j| c[j * side] * f[j]).sum::<f64>()
}

#[test]
fn bead_angle_centres_stay_in_range_where_the_frames_never_go() {
    use cgloop::nn::cg_potential::potential_config;
    // Frames only at |psi| < 25 degrees, theta_2 = 112 + 4 sin(3 psi) + noise of 2 degrees.
    let mut rng = stream(17, 0);
    let mut t = Trajectory::new(4);
    for k in 0..3000 {
        let psi = (2.0 * cgloop::random::uniform(&mut rng) - 1.0) * 25f64.to_radians();
        let theta2 = (112.0 + 4.0 * (3.0 * psi).sin() + 2.0 * normal(&mut rng)).to_radians();
        let theta1 = (100.0 + 0.5 * normal(&mut rng)).to_radians();
        push_still_frame(&mut t, k, &chain_with_angle(theta1, theta2, psi));
    }
    let fit = |shrinkage: f64| {
        let p = FitPotentialParams {
            epochs: 0,
            hidden: vec![4],
            theta_dihedral_order: 2,
            theta_dihedral_shrinkage: shrinkage,
            bond_prior: false,
            ..FitPotentialParams::default()
        };
        let out = run(&t, &p, 3).unwrap();
        let tensors = tensors_from_table(table(&out, "potential")).unwrap();
        potential_config(&tensors)
            .unwrap()
            .2
            .get::<BeadAngles>()
            .unwrap()
            .clone()
    };
    let range = |config: &BeadAngles| {
        (0..360).fold((f64::MAX, f64::MIN), |(lo, hi), d| {
            let x = centre_at(config, 1, (d as f64 - 180.0).to_radians()).to_degrees();
            (lo.min(x), hi.max(x))
        })
    };
    let shrunk = fit(1e-3);
    let (lo, hi) = range(&shrunk);
    assert!(
        lo > 100.0 && hi < 124.0,
        "centres {lo:.1} to {hi:.1} degrees"
    );
    // Where the frames are, the centre follows them: within 1 degree of 112 + 4 sin(3 psi).
    for d in [-20.0f64, -10.0, 0.0, 10.0, 20.0] {
        let x = centre_at(&shrunk, 1, d.to_radians()).to_degrees();
        let truth = 112.0 + 4.0 * (3.0 * d.to_radians()).sin();
        assert!((x - truth).abs() < 1.0, "psi {d}: {x:.2} vs {truth:.2}");
    }
    // Without the shrinkage the series leaves the range of angles.
    let (lo, hi) = range(&fit(0.0));
    assert!(
        lo < 60.0 || hi > 170.0,
        "unshrunk centres {lo:.1} to {hi:.1} degrees"
    );
}

/// The excluded-volume prior, asked for, is fitted, saved and evaluated by the sampler's
/// host potential as by candle; the default leaves it out.
#[test]
fn the_excluded_volume_prior_is_fitted_when_asked() {
    use candle_core::Tensor;
    use cgloop::nn::cg_potential::potential_config;
    use cgloop::nn::cg_potential_host::HostCgPotential;
    use cgloop::nn::priors::excluded_volume::ExcludedVolume;
    let (t, _) = trajectory(9);
    let p = FitPotentialParams {
        epochs: 0,
        excluded_volume_kj_per_mol: Some(2.0),
        ..params()
    };
    let out = run(&t, &p, 3).unwrap();
    let tensors = tensors_from_table(table(&out, "potential")).unwrap();
    let (_, _, priors, _) = potential_config(&tensors).unwrap();
    let prior = priors.get::<ExcludedVolume>().unwrap();
    // Four beads: only the pair (0, 3) is three beads apart; its reach is 0.9 x its
    // closest approach over the training frames.
    assert_eq!(prior.eps, 2.0);
    assert_eq!(prior.sigma.iter().filter(|&&s| s > 0.0).count(), 1);
    // The closest approach of some training frame, and no frame of all comes nearer
    // than the closest of all.
    let d03: Vec<f64> = (0..t.len())
        .map(|row| {
            let x = t.positions(row);
            ((x[0] - x[9]).powi(2) + (x[1] - x[10]).powi(2) + (x[2] - x[11]).powi(2)).sqrt()
        })
        .collect();
    let closest = d03.iter().copied().fold(f64::INFINITY, f64::min);
    let sigma = prior.sigma[2];
    assert!(d03.iter().any(|&d| 0.9 * d == sigma), "{sigma}");
    assert!(sigma >= 0.9 * closest, "{sigma} vs {closest}");
    // The host evaluation has it too.
    let (_, u, _) = load_potential(&tensors, DType::F64, &Device::Cpu).unwrap();
    let mut host = HostCgPotential::from_tensors(&tensors).unwrap();
    let z: Vec<[f64; 3]> = (0..BEADS)
        .map(|b| [0.3 * b as f64, 0.1 * (b % 2) as f64, 0.0])
        .collect();
    let mut forces = vec![[0.0; 3]; BEADS];
    let e_host = cgloop::md::potential::Potential::energy_forces(&mut host, &z, &mut forces);
    let flat: Vec<f64> = z.iter().flatten().copied().collect();
    let zt = Tensor::from_vec(flat, (1, BEADS, 3), &Device::Cpu).unwrap();
    let (e, _) = u.energy_and_forces_with(&priors, &zt).unwrap();
    let e = e.to_vec1::<f64>().unwrap()[0];
    assert!(
        (e - e_host).abs() < 1e-9 * e.abs().max(1.0),
        "{e} vs {e_host}"
    );
    // The default has none.
    let out = run(
        &t,
        &FitPotentialParams {
            epochs: 0,
            ..params()
        },
        3,
    )
    .unwrap();
    let tensors = tensors_from_table(table(&out, "potential")).unwrap();
    assert!(
        potential_config(&tensors)
            .unwrap()
            .2
            .get::<ExcludedVolume>()
            .is_none()
    );
}

/// The fit-time force scan finds where unshrunk bead-angle centres would blow a chain up
/// (the frames cover |psi| < 25 degrees), names the place and the prior, and fails the
/// node; the default shrinkage passes the same scan.
#[test]
fn the_force_scan_catches_a_potential_that_would_blow_up() {
    let mut rng = stream(17, 0);
    let mut t = Trajectory::new(4);
    for k in 0..3000 {
        let psi = (2.0 * cgloop::random::uniform(&mut rng) - 1.0) * 25f64.to_radians();
        let theta2 = (112.0 + 4.0 * (3.0 * psi).sin() + 2.0 * normal(&mut rng)).to_radians();
        let theta1 = (100.0 + 0.5 * normal(&mut rng)).to_radians();
        push_still_frame(&mut t, k, &chain_with_angle(theta1, theta2, psi));
    }
    let fit = |shrinkage: f64, limit: Option<f64>| {
        let p = FitPotentialParams {
            epochs: 0,
            hidden: vec![4],
            theta_dihedral_order: 2,
            theta_dihedral_shrinkage: shrinkage,
            bond_prior: false,
            max_force_kj_per_mol_nm: limit,
            ..FitPotentialParams::default()
        };
        run(&t, &p, 3)
    };
    let scanned = |out: &Outputs| f64s(table(out, "summary"), "scan_max_force_kj_per_mol_nm")[0];
    let shrunk = scanned(&fit(1e-3, Some(1e5)).unwrap());
    let unshrunk = scanned(&fit(0.0, Some(1e9)).unwrap());
    println!("scan: largest |F| {shrunk:.3e} shrunk, {unshrunk:.3e} unshrunk (kJ/mol/nm)");
    assert!(unshrunk > 10.0 * shrunk, "{unshrunk} vs {shrunk}");
    // A limit between the two fails the unshrunk fit, naming the prior and the place.
    let limit = (shrunk * unshrunk).sqrt();
    assert!(fit(1e-3, Some(limit)).is_ok());
    match fit(0.0, Some(limit)) {
        Err(StageError::Failed(message)) => {
            assert!(message.contains("would blow CG chains up"), "{message}");
            assert!(message.contains("bead dihedral 0"), "{message}");
            assert!(message.contains("bead_angles"), "{message}");
        }
        other => panic!("expected the scan to fail, got {:?}", other.map(|_| ())),
    }
    // No scan: NaN in the summary.
    assert!(scanned(&fit(1e-3, None).unwrap()).is_nan());
}
