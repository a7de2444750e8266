//! The energy loss of the inverse map (`nn::reverse_kl`): its surrogate's parameter
//! gradient is the gradient of the mean l = beta U - ln J + ln p over fixed base points,
//! the density held at its current parameters (the "sticking the landing" estimator),
//! checked against central differences; its bookkeeping (dropped draws, log weights).

use candle_core::{Device, Tensor};
use cgloop::nn::flow::uniform_base;
use cgloop::nn::inverse_map::{InverseMap, bead_chain, bead_positions};
use cgloop::nn::reverse_kl::{EnergyLoss, energy_batch, ess_fraction, log_weights};
use cgloop::random::stream;

use super::flow::ala2_inverse_map;

/// A smooth energy of every atom pair, U = sum_{a<b} k / r_ab (kJ/mol), and its forces.
fn pair_energy(x: &[f64]) -> Vec<(f64, Vec<f64>)> {
    const K: f64 = 0.05;
    x.chunks_exact(66)
        .map(|frame| {
            let n = frame.len() / 3;
            let mut u = 0.0;
            let mut f = vec![0.0; 3 * n];
            for a in 0..n {
                for b in a + 1..n {
                    let d: Vec<f64> = (0..3)
                        .map(|k| frame[3 * a + k] - frame[3 * b + k])
                        .collect();
                    let r = d.iter().map(|v| v * v).sum::<f64>().sqrt();
                    u += K / r;
                    for k in 0..3 {
                        let g = K * d[k] / (r * r * r);
                        f[3 * a + k] += g;
                        f[3 * b + k] -= g;
                    }
                }
            }
            (u, f)
        })
        .collect()
}

fn contexts(model: &InverseMap, frames: &[f64], rows: usize) -> Vec<f64> {
    let z = bead_positions(&model.assignment, 5, &frames[..rows * 66]);
    bead_chain(5).unwrap().to_internal_frames(&z)
}

/// The mean l over the draws from `base`, with ln p from `density` (parameters held).
fn mean_loss(model: &InverseMap, density: &InverseMap, s: &[f64], base: &Tensor, beta: f64) -> f64 {
    let context = model.context(s).unwrap();
    let u = model.flow.sample(base, &context).unwrap();
    let log_p = (density.flow.log_prob(&u, &context).unwrap() - density.unit_box.log_volume())
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let u = u.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let d = model.unit_box.dims();
    let c = model.beads.n_dof();
    let drawn = model.unit_box.from_unit(&u);
    let q: Vec<f64> = drawn
        .chunks_exact(d)
        .enumerate()
        .flat_map(|(k, row)| {
            let mut full = s[c * k..c * k + model.pinned].to_vec();
            full.extend_from_slice(row);
            full
        })
        .collect();
    let x = model.zmatrix.to_cartesian_frames(&q);
    let n = model.zmatrix.n_dof();
    let energies = pair_energy(&x);
    let rows = energies.len();
    (0..rows)
        .map(|k| {
            beta * energies[k].0 - model.zmatrix.log_jacobian(&q[k * n..(k + 1) * n]) + log_p[k]
        })
        .sum::<f64>()
        / rows as f64
}

#[test]
fn surrogate_gradient_is_the_gradient_of_the_mean_loss() {
    let (model, frames) = ala2_inverse_map(21);
    let held = InverseMap::load(&model.save().unwrap()).unwrap();
    let rows = 6;
    let s = contexts(&model, &frames, rows);
    let base = uniform_base(rows, model.unit_box.dims(), &mut stream(21, 9)).unwrap();
    let settings = EnergyLoss {
        beta: 0.4,
        energy_cut: 1e12,
        drop_worst: 0,
    };
    let batch = energy_batch(&model, &s, &base, settings, &pair_energy).unwrap();
    assert_eq!(batch.kept, rows);
    // The reported losses are the l of the draws.
    let mean: f64 = batch.losses.iter().sum::<f64>() / rows as f64;
    let expected = mean_loss(&model, &held, &s, &base, 0.4);
    assert!(
        (mean - expected).abs() < 1e-9 * (1.0 + expected.abs()),
        "{mean} vs {expected}"
    );
    let grads = batch.loss.backward().unwrap();
    let h = 1e-6;
    let mut checked = 0;
    for (name, var) in model.store.vars() {
        let backward = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            None => vec![0.0; var.elem_count()],
        };
        let values = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for k in [0, values.len() / 2, values.len() - 1] {
            let set = |v: f64| {
                let mut w = values.clone();
                w[k] = v;
                var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
            };
            set(values[k] + h);
            let up = mean_loss(&model, &held, &s, &base, 0.4);
            set(values[k] - h);
            let down = mean_loss(&model, &held, &s, &base, 0.4);
            set(values[k]);
            let fd = (up - down) / (2.0 * h);
            assert!(
                (fd - backward[k]).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{name}[{k}]: finite difference {fd}, surrogate {}",
                backward[k]
            );
            checked += usize::from(fd.abs() > 1e-8);
        }
    }
    assert!(checked > 10, "only {checked} entries with a gradient");
}

#[test]
fn the_worst_draws_are_dropped_and_log_weights_are_minus_the_losses() {
    let (model, frames) = ala2_inverse_map(22);
    let rows = 8;
    let s = contexts(&model, &frames, rows);
    let base = uniform_base(rows, model.unit_box.dims(), &mut stream(22, 9)).unwrap();
    let settings = EnergyLoss {
        beta: 0.4,
        energy_cut: 1e12,
        drop_worst: 3,
    };
    let batch = energy_batch(&model, &s, &base, settings, &pair_energy).unwrap();
    assert_eq!(batch.kept, rows - 3);
    let lw = log_weights(&model, &s, &base, 0.4, &pair_energy).unwrap();
    for (l, w) in batch.losses.iter().zip(&lw) {
        assert!((l + w).abs() < 1e-9 * (1.0 + l.abs()), "{l} vs {w}");
    }
    // Dropping the three largest losses: the surrogate's gradient is that of the five
    // smallest alone, so an energy that is infinite on a dropped draw changes nothing.
    let mut sorted = batch.losses.clone();
    sorted.sort_by(f64::total_cmp);
    let worst = sorted[rows - 1];
    let blow_up = |x: &[f64]| {
        let mut e = pair_energy(x);
        for (k, (u, _)) in e.iter_mut().enumerate() {
            if batch.losses[k] == worst {
                *u = f64::INFINITY;
            }
        }
        e
    };
    let again = energy_batch(&model, &s, &base, settings, &blow_up).unwrap();
    assert_eq!(again.kept, rows - 3);
    let a = batch.loss.backward().unwrap();
    let b = again.loss.backward().unwrap();
    for (_, var) in model.store.vars() {
        let ga = a
            .get(var.as_tensor())
            .map(|g| g.flatten_all().unwrap().to_vec1::<f64>().unwrap());
        let gb = b
            .get(var.as_tensor())
            .map(|g| g.flatten_all().unwrap().to_vec1::<f64>().unwrap());
        assert_eq!(ga, gb);
    }
    // ESS of equal weights is 1, of one dominant weight 1/n.
    assert!((ess_fraction(&[0.0; 4]) - 1.0).abs() < 1e-12);
    assert!((ess_fraction(&[0.0, -800.0, -800.0, -800.0]) - 0.25).abs() < 1e-12);
}
