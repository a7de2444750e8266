//! Rational-quadratic splines: the candle graph against a plain-f64 reference written
//! from Durkan et al. (2019), exact inversion, the log-determinant against finite
//! differences, monotonicity, boundary and knot continuity, the circular slope
//! condition, the identity at zero parameters, and gradients of losses through the
//! forward and inverse maps with respect to every parameter and input.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Init;
use cgloop::nn::gradcheck::check_parameter_gradients;
use cgloop::nn::spline::RqSpline;
use cgloop::random::{normal, stream, uniform};

const B: usize = 50;
const D: usize = 4;
/// Dimensions 1 and 3 are circular (torsions), 0 and 2 bounded (bonds, angles).
const CIRCULAR: [f64; D] = [0.0, 1.0, 0.0, 1.0];

fn spline() -> RqSpline {
    RqSpline::default()
}

fn circular() -> Tensor {
    Tensor::new(&CIRCULAR, &Device::Cpu).unwrap()
}

/// (B, D, 3K + 1) normals, each (sample, dimension) scaled by a factor in [1, 3].
fn random_params(batch: usize, dims: usize, stream_id: u64) -> Vec<f64> {
    let p = spline().params_per_dim();
    let mut rng = stream(2019, stream_id);
    let mut values = Vec::with_capacity(batch * dims * p);
    for _ in 0..batch * dims {
        let scale = 1.0 + 2.0 * uniform(&mut rng);
        values.extend((0..p).map(|_| scale * normal(&mut rng)));
    }
    values
}

fn random_unit(n: usize, stream_id: u64) -> Vec<f64> {
    let mut rng = stream(2019, stream_id);
    (0..n).map(|_| uniform(&mut rng)).collect()
}

fn tensor(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()
}

fn vec2(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn forward(x: &[f64], params: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let p = spline().params_per_dim();
    let b = x.len() / D;
    let (y, ld) = spline()
        .forward(
            &tensor(x, &[b, D]),
            &tensor(params, &[b, D, p]),
            &circular(),
        )
        .unwrap();
    (vec2(&y), vec2(&ld))
}

fn inverse(y: &[f64], params: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let p = spline().params_per_dim();
    let b = y.len() / D;
    let (x, ld) = spline()
        .inverse(
            &tensor(y, &[b, D]),
            &tensor(params, &[b, D, p]),
            &circular(),
        )
        .unwrap();
    (vec2(&x), vec2(&ld))
}

/// The spline of one (sample, dimension) in plain f64, straight from the paper.
struct Reference {
    xs: Vec<f64>,
    ys: Vec<f64>,
    ds: Vec<f64>,
}

impl Reference {
    fn new(raw: &[f64], circular: bool) -> Self {
        let s = spline();
        let k = s.bins;
        let positions = |u: &[f64], min: f64| {
            let m = u.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = u.iter().map(|v| (v - m).exp()).sum();
            let mut out = vec![0.0];
            let mut acc = 0.0;
            for v in &u[..k - 1] {
                acc += min + (1.0 - k as f64 * min) * (v - m).exp() / total;
                out.push(acc);
            }
            out.push(1.0);
            out
        };
        let xs = positions(&raw[..k], s.min_bin_width);
        let ys = positions(&raw[k..2 * k], s.min_bin_height);
        let offset = ((1.0 - s.min_derivative).exp() - 1.0).ln();
        let mut ds: Vec<f64> = raw[2 * k..]
            .iter()
            .map(|v| s.min_derivative + (1.0 + (v + offset).exp()).ln())
            .collect();
        if circular {
            ds[k] = ds[0];
        }
        Reference { xs, ys, ds }
    }

    fn bin(&self, x: f64) -> usize {
        let k = self.xs.len() - 1;
        (0..k).rev().find(|&i| x >= self.xs[i]).unwrap_or(0)
    }

    /// (y, dy/dx).
    fn eval(&self, x: f64) -> (f64, f64) {
        let k = self.bin(x);
        let (w, h) = (self.xs[k + 1] - self.xs[k], self.ys[k + 1] - self.ys[k]);
        let s = h / w;
        let (d0, d1) = (self.ds[k], self.ds[k + 1]);
        let xi = (x - self.xs[k]) / w;
        let t = xi * (1.0 - xi);
        let den = s + (d1 + d0 - 2.0 * s) * t;
        let y = self.ys[k] + h * (s * xi * xi + d0 * t) / den;
        let slope = s * s * (d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi).powi(2)) / (den * den);
        (y, slope)
    }

    fn width_at(&self, x: f64) -> f64 {
        let k = self.bin(x);
        self.xs[k + 1] - self.xs[k]
    }
}

fn references(params: &[f64]) -> Vec<Reference> {
    let p = spline().params_per_dim();
    params
        .chunks(p)
        .enumerate()
        .map(|(i, raw)| Reference::new(raw, CIRCULAR[i % D] == 1.0))
        .collect()
}

#[test]
fn forward_matches_the_reference_and_inverse_inverts_it() {
    let params = random_params(B, D, 1);
    let x = random_unit(B * D, 2);
    let (y, ld) = forward(&x, &params);
    for ((r, &x), (&y, &ld)) in references(&params).iter().zip(&x).zip(y.iter().zip(&ld)) {
        let (y_ref, slope_ref) = r.eval(x);
        assert!((y - y_ref).abs() < 1e-12, "y {y} vs reference {y_ref}");
        assert!(
            (ld - slope_ref.ln()).abs() < 1e-10,
            "ld {ld} vs reference {}",
            slope_ref.ln()
        );
    }

    let (x_back, ld_back) = inverse(&y, &params);
    for i in 0..B * D {
        assert!(
            (x_back[i] - x[i]).abs() < 1e-10,
            "x {} -> {}",
            x[i],
            x_back[i]
        );
        assert!(
            (ld[i] + ld_back[i]).abs() < 1e-10,
            "log-dets {} + {}",
            ld[i],
            ld_back[i]
        );
    }

    let y = random_unit(B * D, 3);
    let (x, ld_inv) = inverse(&y, &params);
    let (y_back, ld_fwd) = forward(&x, &params);
    for i in 0..B * D {
        assert!(
            (y_back[i] - y[i]).abs() < 1e-10,
            "y {} -> {}",
            y[i],
            y_back[i]
        );
        assert!((ld_inv[i] + ld_fwd[i]).abs() < 1e-10);
    }
}

#[test]
fn log_det_matches_finite_differences_of_forward() {
    let params = random_params(B, D, 5);
    let refs = references(&params);
    let x = random_unit(B * D, 4);
    // Fourth-order central differences with steps of 1e-4 to 1e-7 bin widths; the best
    // must agree to 1e-6. No single step suits every point: a bin with a small mean slope
    // and steep end slopes bends on a scale of ~1e-4 bin widths (truncation), and where
    // dy/dx ~ 1e-5 rounding of y dominates small steps. Points that a step would carry
    // across a knot, where the second derivative jumps, are skipped.
    let (_, ld) = forward(&x, &params);
    let mut best = vec![f64::INFINITY; B * D];
    let mut crosses_knot = [false; B * D];
    for relative_step in [1e-4, 1e-5, 1e-6, 1e-7] {
        let steps: Vec<f64> = refs
            .iter()
            .zip(&x)
            .map(|(r, &x)| relative_step * r.width_at(x))
            .collect();
        let shifted =
            |m: f64| -> Vec<f64> { x.iter().zip(&steps).map(|(x, h)| x + m * h).collect() };
        let y: Vec<Vec<f64>> = [-2.0, -1.0, 1.0, 2.0]
            .iter()
            .map(|&m| forward(&shifted(m), &params).0)
            .collect();
        let (far_down, far_up) = (shifted(-2.0), shifted(2.0));
        for i in 0..B * D {
            crosses_knot[i] |= refs[i].bin(far_up[i]) != refs[i].bin(far_down[i])
                || far_down[i] < 0.0
                || far_up[i] > 1.0;
            let fd = (8.0 * (y[2][i] - y[1][i]) - (y[3][i] - y[0][i])) / (12.0 * steps[i]);
            best[i] = best[i].min((ld[i].exp() - fd).abs() / fd);
        }
    }
    let mut checked = 0;
    for i in 0..B * D {
        if crosses_knot[i] {
            continue;
        }
        assert!(
            best[i] <= 1e-6,
            "x {}: dy/dx = {} off by {} relative",
            x[i],
            ld[i].exp(),
            best[i]
        );
        checked += 1;
    }
    assert!(checked > B * D * 9 / 10, "only {checked} points checked");
}

#[test]
fn sorted_inputs_give_strictly_increasing_outputs() {
    let n = 2001;
    let p = spline().params_per_dim();
    // One random spline per dimension, shared by all rows.
    let one = random_params(1, D, 6);
    let params: Vec<f64> = (0..n).flat_map(|_| one.iter().cloned()).collect();
    let x: Vec<f64> = (0..n)
        .flat_map(|i| std::iter::repeat_n(i as f64 / (n - 1) as f64, D))
        .collect();
    let (y, ld) = forward(&x, &params);
    assert_eq!(params.len(), n * D * p);
    for d in 0..D {
        for i in 1..n {
            let (a, b) = (y[(i - 1) * D + d], y[i * D + d]);
            assert!(
                b > a,
                "dim {d}: y({}) = {b} <= y({}) = {a}",
                x[i * D],
                x[(i - 1) * D]
            );
        }
        assert!(ld.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn ends_are_fixed_circular_slopes_match_and_knots_are_continuous() {
    let params = random_params(B, D, 7);
    let refs = references(&params);
    let zeros = vec![0.0; B * D];
    let ones = vec![1.0; B * D];
    let (y0, ld0) = forward(&zeros, &params);
    let (y1, ld1) = forward(&ones, &params);
    let (x0, _) = inverse(&zeros, &params);
    let (x1, _) = inverse(&ones, &params);
    for i in 0..B * D {
        assert_eq!(y0[i], 0.0);
        assert!((y1[i] - 1.0).abs() < 1e-15, "f(1) = {}", y1[i]);
        assert_eq!(x0[i], 0.0);
        assert!((x1[i] - 1.0).abs() < 1e-14, "f^-1(1) = {}", x1[i]);
        if CIRCULAR[i % D] == 1.0 {
            assert!(
                (ld0[i] - ld1[i]).abs() < 1e-12,
                "circular slopes {} vs {}",
                ld0[i],
                ld1[i]
            );
        }
    }
    assert!(
        (0..B * D).any(|i| CIRCULAR[i % D] == 0.0 && (ld0[i] - ld1[i]).abs() > 0.1),
        "bounded dimensions should have free end slopes"
    );

    // Just left of, at, and just right of an internal knot of every spline.
    let k = spline().bins;
    // ~100 ulp: a wrong slope index would jump by O(1), the smooth change is ~1e-8.
    let delta = 1e-14;
    let knot: Vec<(f64, f64)> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let j = 1 + i % (k - 1);
            (r.xs[j], r.ys[j])
        })
        .collect();
    let at: Vec<f64> = knot.iter().map(|&(x, _)| x).collect();
    let left: Vec<f64> = at.iter().map(|x| x - delta).collect();
    let right: Vec<f64> = at.iter().map(|x| x + delta).collect();
    let (y_at, ld_at) = forward(&at, &params);
    let (y_left, ld_left) = forward(&left, &params);
    let (y_right, ld_right) = forward(&right, &params);
    for i in 0..B * D {
        let y_knot = knot[i].1;
        let slope = ld_at[i].exp();
        assert!((y_at[i] - y_knot).abs() < 1e-14 * (1.0 + slope));
        for (side, y, ld) in [
            ("left", y_left[i], ld_left[i]),
            ("right", y_right[i], ld_right[i]),
        ] {
            assert!(
                (y - y_knot).abs() < 2.0 * delta * slope + 1e-14,
                "{side} of knot: {y} vs {y_knot}"
            );
            assert!(
                (ld - ld_at[i]).abs() < 1e-6,
                "{side} slope {ld} vs {}",
                ld_at[i]
            );
        }
    }
}

#[test]
fn zero_parameters_give_the_identity() {
    let p = spline().params_per_dim();
    let params = vec![0.0; B * D * p];
    let x = random_unit(B * D, 8);
    for (out, ld) in [forward(&x, &params), inverse(&x, &params)] {
        for i in 0..B * D {
            assert!((out[i] - x[i]).abs() < 1e-14, "{} -> {}", x[i], out[i]);
            assert!(ld[i].abs() < 1e-13, "log-det {}", ld[i]);
        }
    }
}

/// Per-element central differences of sum(out) + sum(log-det): outputs of (b, d) depend
/// only on x[b, d] and params[b, d, :], so one shift of every x (or of parameter j of every
/// (b, d)) gives all partial derivatives at once. Returns the largest
/// |fd - backward| / (1 + |fd|).
fn worst_gradient_error(through_inverse: bool, stream_id: u64) -> f64 {
    let s = spline();
    let p = s.params_per_dim();
    let params = random_params(B, D, stream_id);
    // Inputs kept away from 0 and 1, where the clamp bends the loss.
    let x: Vec<f64> = random_unit(B * D, stream_id + 100)
        .iter()
        .map(|u| 0.01 + 0.98 * u)
        .collect();
    let loss_terms = |x: &[f64], params: &[f64]| -> Vec<f64> {
        let (out, ld) = if through_inverse {
            inverse(x, params)
        } else {
            forward(x, params)
        };
        out.iter().zip(&ld).map(|(a, b)| a + b).collect()
    };

    let x_var = Var::from_tensor(&tensor(&x, &[B, D])).unwrap();
    let p_var = Var::from_tensor(&tensor(&params, &[B, D, p])).unwrap();
    let (out, ld) = if through_inverse {
        s.inverse(x_var.as_tensor(), p_var.as_tensor(), &circular())
    } else {
        s.forward(x_var.as_tensor(), p_var.as_tensor(), &circular())
    }
    .unwrap();
    let loss = (out.sum_all().unwrap() + ld.sum_all().unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let grad_x = vec2(grads.get(x_var.as_tensor()).unwrap());
    let grad_p = vec2(grads.get(p_var.as_tensor()).unwrap());

    let mut worst: f64 = 0.0;
    let mut compare = |fd: f64, backward: f64| {
        assert!(fd.is_finite() && backward.is_finite());
        worst = worst.max((fd - backward).abs() / (1.0 + fd.abs()));
    };

    // Inputs: a step of 1e-6 bin widths (of the bin x or y lies in).
    let refs = references(&params);
    let steps: Vec<f64> = refs
        .iter()
        .zip(&x)
        .map(|(r, &v)| {
            let width = if through_inverse {
                let k = (0..s.bins).rev().find(|&i| v >= r.ys[i]).unwrap();
                r.ys[k + 1] - r.ys[k]
            } else {
                r.width_at(v)
            };
            1e-6 * width
        })
        .collect();
    let up: Vec<f64> = x.iter().zip(&steps).map(|(v, h)| v + h).collect();
    let down: Vec<f64> = x.iter().zip(&steps).map(|(v, h)| v - h).collect();
    let (l_up, l_down) = (loss_terms(&up, &params), loss_terms(&down, &params));
    for i in 0..B * D {
        compare((l_up[i] - l_down[i]) / (2.0 * steps[i]), grad_x[i]);
    }

    // Parameters: entry j of every (b, d) at once.
    let h = 1e-6;
    for j in 0..p {
        let shifted = |sign: f64| -> Vec<f64> {
            let mut q = params.clone();
            for v in q.iter_mut().skip(j).step_by(p) {
                *v += sign * h;
            }
            q
        };
        let (l_up, l_down) = (
            loss_terms(&x, &shifted(1.0)),
            loss_terms(&x, &shifted(-1.0)),
        );
        for i in 0..B * D {
            compare((l_up[i] - l_down[i]) / (2.0 * h), grad_p[i * p + j]);
        }
    }
    worst
}

#[test]
fn gradients_through_forward_match_finite_differences() {
    let worst = worst_gradient_error(false, 9);
    assert!(worst < 1e-6, "worst relative gradient error {worst}");
}

#[test]
fn gradients_through_inverse_match_finite_differences() {
    let worst = worst_gradient_error(true, 10);
    assert!(worst < 1e-6, "worst relative gradient error {worst}");
}

#[test]
fn gradients_check_out_for_parameters_in_a_store() {
    let s = spline();
    let store = cgloop::nn::ParameterStore::new([3; 32]);
    let vb = store.var_builder(DType::F64, &Device::Cpu);
    let params = vb
        .get_with_hints(
            (B, D, s.params_per_dim()),
            "spline_params",
            Init::Randn {
                mean: 0.0,
                stdev: 2.0,
            },
        )
        .unwrap();
    let x = vb
        .get_with_hints((B, D), "x", Init::Uniform { lo: 0.01, up: 0.99 })
        .unwrap();
    let y = vb
        .get_with_hints((B, D), "y", Init::Uniform { lo: 0.01, up: 0.99 })
        .unwrap();
    let loss = || {
        let (fy, fld) = s.forward(&x, &params, &circular())?;
        let (ix, ild) = s.inverse(&y, &params, &circular())?;
        fy.sum_all()? + fld.sum_all()? + ix.sum_all()? + ild.sum_all()?
    };
    let mismatches = check_parameter_gradients(&store, loss, 1e-6, 1e-6).unwrap();
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

#[test]
fn other_bin_counts_invert() {
    for bins in [1, 2, 3, 16] {
        let s = RqSpline {
            bins,
            ..RqSpline::default()
        };
        let mut rng = stream(2019, 20 + bins as u64);
        let n = B * D * s.params_per_dim();
        let params = tensor(
            &(0..n).map(|_| 2.0 * normal(&mut rng)).collect::<Vec<_>>(),
            &[B, D, s.params_per_dim()],
        );
        let x = tensor(&random_unit(B * D, 30 + bins as u64), &[B, D]);
        let (y, ld) = s.forward(&x, &params, &circular()).unwrap();
        let (x_back, ld_back) = s.inverse(&y, &params, &circular()).unwrap();
        let (x, x_back) = (vec2(&x), vec2(&x_back));
        let (ld, ld_back) = (vec2(&ld), vec2(&ld_back));
        for i in 0..B * D {
            assert!(
                (x[i] - x_back[i]).abs() < 1e-10,
                "{bins} bins: {} -> {}",
                x[i],
                x_back[i]
            );
            assert!((ld[i] + ld_back[i]).abs() < 1e-10);
        }
    }
    let too_many = RqSpline {
        bins: 1000,
        ..RqSpline::default()
    };
    let params =
        Tensor::zeros((1, D, too_many.params_per_dim()), DType::F64, &Device::Cpu).unwrap();
    let x = Tensor::zeros((1, D), DType::F64, &Device::Cpu).unwrap();
    assert!(too_many.forward(&x, &params, &circular()).is_err());
}

#[test]
fn same_inputs_give_identical_bits() {
    let s = spline();
    let params = tensor(&random_params(B, D, 11), &[B, D, s.params_per_dim()]);
    let x = tensor(&random_unit(B * D, 12), &[B, D]);
    let run = || {
        let p = Var::from_tensor(&params).unwrap();
        let (y, ld) = s.forward(&x, p.as_tensor(), &circular()).unwrap();
        let (xi, ldi) = s.inverse(&y, p.as_tensor(), &circular()).unwrap();
        let loss = (ld.sum_all().unwrap() + ldi.sum_all().unwrap()).unwrap();
        let g = loss.backward().unwrap();
        let bits = |t: &Tensor| vec2(t).iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
        [y, ld, xi, ldi, g.get(p.as_tensor()).unwrap().clone()].map(|t| bits(&t))
    };
    assert_eq!(run(), run());
}

/// `cargo test --release --test suite spline:: -- --ignored --nocapture`
#[test]
#[ignore]
fn time_forward_and_backward() {
    let (b, d) = (256, 60);
    let s = spline();
    let mut rng = stream(2019, 13);
    let values: Vec<f64> = (0..b * d * s.params_per_dim())
        .map(|_| 2.0 * normal(&mut rng))
        .collect();
    let params = Var::from_tensor(&tensor(&values, &[b, d, s.params_per_dim()])).unwrap();
    let x = tensor(&random_unit(b * d, 14), &[b, d]);
    let circ = Tensor::from_vec(
        (0..d).map(|i| (i % 3 == 2) as u8 as f64).collect(),
        d,
        &Device::Cpu,
    )
    .unwrap();
    let step = || {
        let (y, ld) = s.forward(&x, params.as_tensor(), &circ).unwrap();
        (y.sum_all().unwrap() + ld.sum_all().unwrap())
            .unwrap()
            .backward()
            .unwrap();
    };
    for _ in 0..5 {
        step();
    }
    // Per-step times: the minimum and median resist other jobs on a shared machine.
    let mut times: Vec<f64> = (0..50)
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    eprintln!(
        "RqSpline forward+backward B={b} D={d} K={}: min {:.2} ms, median {:.2} ms",
        s.bins, times[0], times[25]
    );
}
