//! The conditional spline flow and the inverse map: the log-density is the log of a
//! numerically differentiated Jacobian determinant, sampling inverts the density pass,
//! the training loss's gradient matches finite differences, the conditioner is
//! autoregressive, and a saved inverse map reloads to the same density; on alanine
//! dipeptide's backbone map the seed coordinates are pinned to the beads and rebuilt
//! atoms map back onto the beads.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use cgloop::geometry::zmatrix::ZMatrix;
use cgloop::md::io::pdb::read_pdb;
use cgloop::md::io::prmtop::read_prmtop;
use cgloop::nn::ParameterStore;
use cgloop::nn::flow::{ConditionalFlow, FlowConfig, layer_levels};
use cgloop::nn::gradcheck::check_parameter_gradients;
use cgloop::nn::inverse_map::{InverseMap, bead_chain, bead_positions, pinned_coordinates};
use cgloop::nn::made::Made;
use cgloop::nn::mlp::Activation;
use cgloop::nn::unit_box::UnitBox;
use cgloop::random::{normal, stream, uniform};

const DATASETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets");
const CIRCULAR: [bool; 5] = [false, true, false, true, false];
const CONTEXT: usize = 3;

fn config() -> FlowConfig {
    FlowConfig {
        layers: 3,
        hidden: vec![12, 12],
        bins: 6,
        levels: 0,
    }
}

/// The autoregressive levels the flow tests run with: one per dimension, and blocks.
const LEVELS: [usize; 3] = [0, 2, 3];

/// Every parameter of `store` replaced by seeded normals of standard deviation `scale`
/// (an untrained flow is the identity; this makes it a generic one).
pub(crate) fn randomize(store: &ParameterStore, seed: u64, scale: f64) {
    let mut rng = stream(seed, 0);
    let tensors: Vec<_> = store
        .to_tensors()
        .unwrap()
        .into_iter()
        .map(|mut t| {
            for v in &mut t.values {
                *v = scale * normal(&mut rng);
            }
            t
        })
        .collect();
    store.load(&tensors).unwrap();
}

fn flow(seed: u64) -> (ParameterStore, ConditionalFlow) {
    flow_with_levels(seed, 0)
}

fn flow_with_levels(seed: u64, levels: usize) -> (ParameterStore, ConditionalFlow) {
    let store = ParameterStore::new([seed as u8; 32]);
    let flow = ConditionalFlow::new(
        &FlowConfig { levels, ..config() },
        &CIRCULAR,
        CONTEXT,
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    randomize(&store, seed, 0.15);
    (store, flow)
}

fn points(rows: usize, dims: usize, seed: u64) -> Tensor {
    let mut rng = stream(seed, 1);
    let v: Vec<f64> = (0..rows * dims)
        .map(|_| 0.05 + 0.9 * uniform(&mut rng))
        .collect();
    Tensor::from_vec(v, (rows, dims), &Device::Cpu).unwrap()
}

fn contexts(rows: usize, seed: u64) -> Tensor {
    let mut rng = stream(seed, 2);
    let v: Vec<f64> = (0..rows * CONTEXT).map(|_| normal(&mut rng)).collect();
    Tensor::from_vec(v, (rows, CONTEXT), &Device::Cpu).unwrap()
}

/// ln |det A| by LU with partial pivoting (A row-major n x n).
fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut total = 0.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
        }
        let p = a[col * n + col];
        total += p.abs().ln();
        for row in col + 1..n {
            let f = a[row * n + col] / p;
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
        }
    }
    total
}

#[test]
fn log_density_is_the_log_of_a_numerical_jacobian_determinant() {
    for levels in LEVELS {
        log_density_matches_numerical_jacobian(levels);
    }
}

fn log_density_matches_numerical_jacobian(levels: usize) {
    let (_, flow) = flow_with_levels(3, levels);
    let d = CIRCULAR.len();
    let u = points(4, d, 3);
    let c = contexts(4, 3);
    let log_p = flow.log_prob(&u, &c).unwrap().to_vec1::<f64>().unwrap();
    let rows = u.to_vec2::<f64>().unwrap();
    let h = 1e-6;
    for (b, row) in rows.iter().enumerate() {
        let ctx = c.narrow(0, b, 1).unwrap();
        let image = |x: &[f64]| -> Vec<f64> {
            let t = Tensor::from_vec(x.to_vec(), (1, d), &Device::Cpu).unwrap();
            flow.transform(&t, &ctx)
                .unwrap()
                .0
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let mut jacobian = vec![0.0; d * d];
        for j in 0..d {
            let (mut up, mut down) = (row.clone(), row.clone());
            up[j] += h;
            down[j] -= h;
            let (fu, fd) = (image(&up), image(&down));
            for i in 0..d {
                jacobian[i * d + j] = (fu[i] - fd[i]) / (2.0 * h);
            }
        }
        let numerical = log_abs_det(jacobian, d);
        assert!(
            (numerical - log_p[b]).abs() < 1e-6 * (1.0 + numerical.abs()),
            "{levels} levels, point {b}: log p {} vs numerical log |det J| {numerical}",
            log_p[b]
        );
    }
    // A generic flow, not the identity.
    assert!(log_p.iter().any(|l| l.abs() > 0.1), "{log_p:?}");
}

#[test]
fn sampling_inverts_the_density_pass() {
    for levels in LEVELS {
        sampling_inverts_the_density_pass_with(levels);
    }
}

fn sampling_inverts_the_density_pass_with(levels: usize) {
    let (_, flow) = flow_with_levels(5, levels);
    let d = CIRCULAR.len();
    let base = points(32, d, 5);
    let c = contexts(32, 5);
    let u = flow.sample(&base, &c).unwrap();
    let values = u.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert!(values.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let (back, _) = flow.transform(&u, &c).unwrap();
    let diff = (back - &base)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(
        diff < 1e-9,
        "{levels} levels: T(sample(v)) differs from v by {diff}"
    );
    // Same inputs, same bits.
    let again = flow
        .sample(&base, &c)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(values, again);
}

/// The differentiable draw gives `sample`'s bits, and the parameter gradient of a
/// function of the draw (a reverse-KL-like loss: a weighted sum of u plus the density at
/// u) matches finite differences, for every level setting.
#[test]
fn differentiable_draws_match_sampling_and_finite_differences() {
    for levels in LEVELS {
        let (store, flow) = flow_with_levels(11, levels);
        let d = CIRCULAR.len();
        let base = points(8, d, 11);
        let c = contexts(8, 11);
        let plain = flow.sample(&base, &c).unwrap().to_vec2::<f64>().unwrap();
        let graph = flow.sample_with_graph(&base, &c).unwrap();
        assert_eq!(plain, graph.to_vec2::<f64>().unwrap(), "{levels} levels");
        let weights = Tensor::from_vec(
            (0..8 * d)
                .map(|k| (k as f64 * 0.37).sin())
                .collect::<Vec<f64>>(),
            (8, d),
            &Device::Cpu,
        )
        .unwrap();
        let loss = || {
            let u = flow.sample_with_graph(&base, &c)?;
            (u.mul(&weights)?.sum_all()? + flow.log_prob(&u, &c)?.sum_all()?)? / 8.0
        };
        let mismatches = check_parameter_gradients(&store, loss, 1e-6, 1e-6).unwrap();
        assert!(mismatches.is_empty(), "{levels} levels: {mismatches:#?}");
    }
}

#[test]
fn nll_gradient_matches_finite_differences() {
    let (store, flow) = flow(7);
    let u = points(16, CIRCULAR.len(), 7);
    let c = contexts(16, 7);
    let loss = || flow.log_prob(&u, &c)?.mean_all()?.neg();
    let mismatches = check_parameter_gradients(&store, loss, 1e-6, 1e-6).unwrap();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// A SiLU MADE over `levels` (a permutation: an order) with weights drawn at scale 0.5 from `seed` (the zero-started
/// output layer included, so that every output depends on what its mask allows).
fn random_made(levels: &[usize], context: usize, hidden: &[usize], p: usize, seed: u8) -> Made {
    let store = ParameterStore::new([seed; 32]);
    let made = Made::new(
        levels,
        context,
        hidden,
        p,
        Activation::Silu,
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    randomize(&store, seed as u64, 0.5);
    made
}

/// The flat theta (4 parameters per dimension) of `made` at `u` (one row) and `c`.
fn theta_at(made: &Made, u: &[f64], c: &Tensor) -> Vec<f64> {
    let u = Tensor::from_vec(u.to_vec(), (1, u.len()), &Device::Cpu).unwrap();
    made.forward(&u, c)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Moves each input of a MADE over `levels` (4 parameters per dimension) and asserts
/// that exactly the dimensions of higher levels change; returns the unmoved theta.
fn assert_autoregressive(made: &Made, levels: &[usize], seed: u64, c: &Tensor) -> Vec<f64> {
    let d = levels.len();
    let u: Vec<f64> = points(1, d, seed).flatten_all().unwrap().to_vec1().unwrap();
    let theta = theta_at(made, &u, c);
    for k in 0..d {
        let mut moved = u.clone();
        moved[k] += 0.3;
        let after = theta_at(made, &moved, c);
        for j in 0..d {
            let changed = (0..4).any(|p| theta[j * 4 + p] != after[j * 4 + p]);
            assert_eq!(
                changed,
                levels[j] > levels[k],
                "moving dimension {k} (level {}) changed dimension {j} (level {}): {changed}",
                levels[k],
                levels[j]
            );
        }
    }
    theta
}

#[test]
fn conditioner_is_autoregressive_in_its_order() {
    let order = [3, 0, 5, 1, 4, 2]; // rank of each dimension
    let made = random_made(&order, 2, &[10, 10], 4, 9);
    let c = Tensor::from_vec(vec![0.3, -0.7], (1, 2), &Device::Cpu).unwrap();
    let theta = assert_autoregressive(&made, &order, 9, &c);
    // The first dimension in the order still sees the context.
    let c2 = Tensor::from_vec(vec![1.3, 0.2], (1, 2), &Device::Cpu).unwrap();
    let u: Vec<f64> = points(1, 6, 9).flatten_all().unwrap().to_vec1().unwrap();
    let other = theta_at(&made, &u, &c2);
    assert!((0..4).any(|p| theta[4 + p] != other[4 + p]));
}

/// A block-autoregressive conditioner: a dimension's parameters move with exactly the
/// dimensions of lower levels, never with those of its own level.
#[test]
fn conditioner_is_autoregressive_in_its_levels() {
    let levels = [1, 0, 2, 1, 0, 2];
    let made = random_made(&levels, 2, &[10, 10], 4, 11);
    assert_eq!(made.levels(), 3);
    assert_eq!(made.level_dims(1), &[0, 3]);
    let c = Tensor::from_vec(vec![0.3, -0.7], (1, 2), &Device::Cpu).unwrap();
    assert_autoregressive(&made, &levels, 11, &c);
}

/// The layers' two partitions order every pair of dimensions, one on the other, in some
/// layer whenever levels^2 >= dims (the module docs' claim), and use every level.
#[test]
fn alternating_levels_order_every_pair() {
    for dims in [5, 17, 60, 492] {
        let smallest = (1..=dims).find(|l| l * l >= dims).unwrap();
        for levels in [smallest, smallest + 3, (dims / 2).max(smallest)] {
            let layers: Vec<Vec<usize>> = (0..4).map(|l| layer_levels(l, dims, levels)).collect();
            for (l, layer) in layers.iter().enumerate() {
                let used: std::collections::BTreeSet<_> = layer.iter().copied().collect();
                assert_eq!(used.len(), levels.min(dims), "layer {l}, {dims} dims");
                assert_eq!(*used.iter().last().unwrap(), levels.min(dims) - 1);
            }
            for i in 0..dims {
                for j in i + 1..dims {
                    assert!(
                        layers[..2].iter().any(|layer| layer[i] != layer[j])
                            && layers[2..].iter().any(|layer| layer[i] != layer[j]),
                        "{dims} dims, {levels} levels: {i} and {j} share a level in every layer"
                    );
                }
            }
        }
    }
    // One level per dimension: the natural order and its reverse, as before levels.
    assert_eq!(layer_levels(0, 4, 0), [0, 1, 2, 3]);
    assert_eq!(layer_levels(1, 4, 0), [3, 2, 1, 0]);
    assert_eq!(layer_levels(1, 4, 9), [3, 2, 1, 0]);
}

/// The sampler's one-dimension pass gives the very bits of the full pass: the same
/// products and sums, only the output rows of that dimension (a 300-row batch, so that
/// the products are blocked as in sampling).
#[test]
fn one_dimension_of_the_conditioner_is_bitwise_its_full_output() {
    let (d, p, rows) = (7, 5, 300);
    let order = [2, 6, 0, 4, 1, 5, 3];
    let made = random_made(&order, 3, &[24, 24], p, 4);
    let u = points(rows, d, 4);
    let c = (points(rows, 3, 5) * 2.0).unwrap();
    let full = made.forward(&u, &c).unwrap();
    let prepared = made.prepare(&c).unwrap();
    let bits = |t: &Tensor| -> Vec<u64> {
        let v: Vec<f64> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    };
    let mut ranks = Vec::new();
    for rank in 0..d {
        let k = made.level_dims(rank)[0];
        ranks.push(order[k]);
        let one = made.forward_level(&prepared, &u, rank).unwrap();
        assert_eq!(one.dims(), [rows, 1, p]);
        let expected = full.narrow(1, k, 1).unwrap();
        assert!(bits(&one) == bits(&expected), "dimension {k} differs");
    }
    assert_eq!(ranks, (0..d).collect::<Vec<_>>());
    // Levels of several dimensions: their rows of the full pass, bit for bit.
    let levels = [1, 0, 2, 1, 0, 2, 1];
    let made = random_made(&levels, 3, &[24, 24], p, 6);
    let full = made.forward(&u, &c).unwrap();
    let prepared = made.prepare(&c).unwrap();
    for level in 0..made.levels() {
        let dims = made.level_dims(level);
        let index = Tensor::from_vec(
            dims.iter().map(|&k| k as u32).collect::<Vec<_>>(),
            dims.len(),
            &Device::Cpu,
        )
        .unwrap();
        let block = made.forward_level(&prepared, &u, level).unwrap();
        assert_eq!(block.dims(), [rows, dims.len(), p]);
        let expected = full.index_select(&index, 1).unwrap();
        assert!(bits(&block) == bits(&expected), "level {level} differs");
    }
}

/// Alanine dipeptide: topology bonds, heavy mask, the PDB positions, the backbone seeds
/// and the hard backbone map (bead b = seed b).
pub(crate) fn ala2_inverse_map(seed: u64) -> (InverseMap, Vec<f64>) {
    let stem = format!("{DATASETS}/alanine_dipeptide/ala2_ff14SB");
    let topology = read_prmtop(Path::new(&format!("{stem}.prmtop"))).unwrap();
    let x: Vec<f64> = read_pdb(Path::new(&format!("{stem}.pdb"))).unwrap().frames[0]
        .iter()
        .flatten()
        .copied()
        .collect();
    let n = topology.n_atoms();
    let find = |res: &str, name: &str| {
        topology
            .atoms
            .iter()
            .position(|a| a.residue_name == res && a.name == name)
            .unwrap()
    };
    let seeds = [
        find("ACE", "C"),
        find("ALA", "N"),
        find("ALA", "CA"),
        find("ALA", "C"),
        find("NME", "N"),
    ];
    let bonds: Vec<[usize; 2]> = topology.bonds.iter().map(|b| b.atoms).collect();
    let heavy: Vec<bool> = topology.atoms.iter().map(|a| !a.is_hydrogen()).collect();
    let zmatrix = ZMatrix::from_bonds(n, &bonds, &seeds, &heavy).unwrap();
    let mut assignment = vec![0.0; n * 5];
    for (b, &atom) in seeds.iter().enumerate() {
        assignment[atom * 5 + b] = 1.0;
    }
    let pinned = pinned_coordinates(&zmatrix, &assignment, 5);
    assert_eq!(pinned, 9, "the backbone map pins the 9 bead coordinates");
    // Frames: the PDB structure with noise in q, to fit the box and the scaling.
    let q0 = zmatrix.to_internal(&x.chunks(3).map(|c| [c[0], c[1], c[2]]).collect::<Vec<_>>());
    let mut rng = stream(seed, 3);
    let q: Vec<f64> = (0..64)
        .flat_map(|_| {
            q0.iter()
                .map(|&v| v + 0.02 * normal(&mut rng))
                .collect::<Vec<_>>()
        })
        .collect();
    let d = zmatrix.n_dof();
    let drawn: Vec<f64> = q.chunks(d).flat_map(|r| r[pinned..].to_vec()).collect();
    let unit_box = UnitBox::fit(&drawn, &zmatrix.kinds()[pinned..], 0.25);
    let frames = zmatrix.to_cartesian_frames(&q);
    let s = bead_chain(5)
        .unwrap()
        .to_internal_frames(&bead_positions(&assignment, 5, &frames));
    let scaling = InverseMap::fit_scaling(&bead_chain(5).unwrap(), &s);
    let store = ParameterStore::new([seed as u8; 32]);
    let model = InverseMap::new(
        zmatrix,
        5,
        assignment,
        pinned,
        unit_box,
        scaling,
        FlowConfig {
            layers: 2,
            hidden: vec![16],
            bins: 4,
            levels: 0,
        },
        store,
    )
    .unwrap();
    randomize(&model.store, seed, 0.2);
    (model, frames)
}

#[test]
fn backbone_map_pins_the_beads_and_rebuilt_atoms_map_back_onto_them() {
    let (model, frames) = ala2_inverse_map(11);
    let z = model.bead_positions(&frames);
    let s = model.cg_coordinates(&z);
    let (q, log_p) = model.sample(&s, &mut stream(11, 4)).unwrap();
    let d = model.zmatrix.n_dof();
    let c = model.beads.n_dof();
    assert_eq!(q.len(), d * 64);
    for (row, s_row) in q.chunks(d).zip(s.chunks(c)) {
        assert_eq!(&row[..9], s_row, "pinned coordinates are the beads' own");
    }
    // The rebuilt atoms' beads have the sampled frames' CG coordinates.
    let x = model.zmatrix.to_cartesian_frames(&q);
    let s_back = model.cg_coordinates(&model.bead_positions(&x));
    let worst = s_back
        .iter()
        .zip(&s)
        .map(|(a, b)| cgloop::geometry::zmatrix::wrap_angle(a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-9,
        "CG coordinates of the rebuilt atoms off by {worst}"
    );
    // log p of the draws is the density pass at the draws.
    let again = model.log_prob(&q, &s).unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(log_p, again);
    assert!(log_p.iter().all(|l| l.is_finite()));
}

#[test]
fn saved_inverse_map_reloads_to_the_same_density() {
    let (model, frames) = ala2_inverse_map(13);
    let z = model.bead_positions(&frames);
    let s = model.cg_coordinates(&z);
    let q = model.zmatrix.to_internal_frames(&frames);
    let before = model.log_prob(&q, &s).unwrap().to_vec1::<f64>().unwrap();
    let saved = model.save().unwrap();
    let names: Vec<&str> = saved.iter().map(|t| t.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "saved rows are sorted by name");
    let loaded = InverseMap::load(&saved).unwrap();
    assert_eq!(loaded.pinned, 9);
    assert_eq!(loaded.zmatrix, model.zmatrix);
    let after = loaded.log_prob(&q, &s).unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(before, after);
    // A missing row is named.
    let broken: Vec<_> = saved
        .into_iter()
        .filter(|t| t.name != "config.box.lo")
        .collect();
    let error = InverseMap::load(&broken).err().unwrap();
    assert!(error.contains("config.box.lo"), "{error}");
}

#[test]
fn concentrated_draws_record_their_own_density() {
    let (model, frames) = ala2_inverse_map(17);
    let z = model.bead_positions(&frames);
    let s = model.cg_coordinates(&z);
    let scale = 0.6;
    let (q, log_p) = model.sample_scaled(&s, scale, &mut stream(17, 5)).unwrap();
    let flow_log_p = model.log_prob(&q, &s).unwrap().to_vec1::<f64>().unwrap();
    // The base points the draws came from: T(u(q)).
    let d = model.unit_box.dims();
    let drawn = model.drawn(&q);
    let u = Tensor::from_vec(
        model.unit_box.to_unit(&drawn),
        (drawn.len() / d, d),
        &Device::Cpu,
    )
    .unwrap();
    let (b, _) = model
        .flow
        .transform(&u, &model.context(&s).unwrap())
        .unwrap();
    let b = b.to_vec2::<f64>().unwrap();
    // ln p_B(b) = ln dw/db with w(b) = sigmoid(logit(b) / scale), by central differences.
    let w = |b: f64| 1.0 / (1.0 + (-((b / (1.0 - b)).ln() / scale)).exp());
    let mut moved = 0;
    for (k, row) in b.iter().enumerate() {
        let mut expected = flow_log_p[k];
        for (j, &bj) in row.iter().enumerate() {
            if model.unit_box.circular[j] {
                continue;
            }
            let h = 1e-6 * bj.min(1.0 - bj);
            expected += ((w(bj + h) - w(bj - h)) / (2.0 * h)).ln();
        }
        assert!(
            (log_p[k] - expected).abs() < 1e-5 * (1.0 + expected.abs()),
            "draw {k}: recorded {} vs flow + base {expected}",
            log_p[k]
        );
        moved += usize::from((log_p[k] - flow_log_p[k]).abs() > 1e-3);
    }
    assert!(moved > 0, "the concentrated base changed no density");
    // The draws sit closer to the middle of the base cube than uniform ones would.
    let spread: f64 = b
        .iter()
        .flat_map(|row| {
            row.iter()
                .enumerate()
                .filter(|(j, _)| !model.unit_box.circular[*j])
        })
        .map(|(_, &x)| (x - 0.5).powi(2))
        .sum::<f64>()
        / b.iter().map(|r| r.len()).sum::<usize>() as f64;
    assert!(
        spread < 1.0 / 12.0,
        "mean squared distance from 0.5: {spread}"
    );
}

#[test]
fn narrow_torsions_get_a_box_around_their_circular_mean() {
    use cgloop::geometry::zmatrix::CoordinateKind::{Angle, Bond, Torsion};
    let pi = std::f64::consts::PI;
    let mut rng = stream(19, 6);
    // A bond, an angle, a torsion near pi (straddling the cut), one near 2 pi / 3, and a
    // torsion spread over the circle.
    let kinds = [Bond, Angle, Torsion, Torsion, Torsion];
    let q: Vec<f64> = (0..200)
        .flat_map(|_| {
            let wrap = |x: f64| cgloop::geometry::zmatrix::wrap_angle(x);
            [
                0.15 + 0.003 * normal(&mut rng),
                1.9 + 0.05 * normal(&mut rng),
                wrap(pi + 0.1 * normal(&mut rng)),
                wrap(2.0 * pi / 3.0 + 0.08 * normal(&mut rng)),
                wrap(2.0 * pi * uniform(&mut rng)),
            ]
        })
        .collect();
    let b = UnitBox::fit(&q, &kinds, 0.25);
    assert_eq!(b.circular, [false, false, false, false, true]);
    assert!(b.centre[2].unwrap().abs() > 3.0, "{:?}", b.centre);
    assert!((b.centre[3].unwrap() - 2.0 * pi / 3.0).abs() < 0.05);
    assert!(
        b.hi[2] - b.lo[2] < 1.5,
        "the box of a narrow torsion is narrow"
    );
    let u = b.to_unit(&q);
    assert!(
        u.iter().all(|&x| (0.0..=1.0).contains(&x)),
        "every u in the cube"
    );
    assert!(b.rows_outside(&q).is_empty());
    let back = b.from_unit(&u);
    for (a, c) in q.iter().zip(&back) {
        let d = cgloop::geometry::zmatrix::wrap_angle(a - c);
        assert!(d.abs() < 1e-12, "{a} vs {c}");
    }
}

/// a (m x k) times b (k x n), each element the chain acc = fma(a_ik, b_kj, acc) over
/// k = 0, 1, ...: what gemm computes in one block of depth, on any machine with FMA.
fn sequential_fma(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for l in 0..k {
                acc = a[i * k + l].mul_add(b[l * n + j], acc);
            }
            out[i * n + j] = acc;
        }
    }
    out
}

fn seeded(rows: usize, cols: usize, id: u64) -> (Vec<f64>, Tensor) {
    let mut rng = stream(11, id);
    let v: Vec<f64> = (0..rows * cols).map(|_| normal(&mut rng)).collect();
    let t = Tensor::from_vec(v.clone(), (rows, cols), &Device::Cpu).unwrap();
    (v, t)
}

/// The rule behind `nn::product_depth`: a product of depth k <= 512 is the sequential FMA
/// chain, so its bits cannot depend on gemm's cache-dependent blocking; the depth of the
/// unsplit MADE output layer's input gradient (51 x 25 = 1275) is cut into blocks.
#[test]
fn products_of_bounded_depth_are_the_sequential_fma_chain() {
    // (m, k, n) of the study's flow step: batch 256, hidden 128, output blocks of 500
    // and 275 units, weight gradients over the batch; and the bound itself.
    let shapes = [
        (256, 128, 500),
        (256, 128, 275),
        (256, 500, 128),
        (256, 275, 128),
        (500, 256, 128),
        (128, 256, 128),
        (256, 51, 128),
        (256, 512, 64),
        (100, 512, 100),
    ];
    // Whether candle's product of seeded (m x k) and (k x n) matrices is the chain.
    let is_chain = |m: usize, k: usize, n: usize, id: u64| {
        let (a, ta) = seeded(m, k, 2 * id);
        let (b, tb) = seeded(k, n, 2 * id + 1);
        let product = ta.matmul(&tb).unwrap().flatten_all().unwrap();
        product.to_vec1::<f64>().unwrap() == sequential_fma(&a, &b, m, k, n)
    };
    for (id, &(m, k, n)) in shapes.iter().enumerate() {
        assert!(
            is_chain(m, k, n, id as u64),
            "({m} x {k}) ({k} x {n}) is not the sequential FMA chain"
        );
    }
    assert!(
        !is_chain(256, 1275, 128, 45),
        "depth 1275 is blocked by gemm (by a machine-dependent depth): it must not be \
         left to it"
    );
}

/// One maximum-likelihood gradient of a flow of the alanine dipeptide study's shape
/// (51 coordinates, 4 layers, hidden [128, 128], 8 bins, batch 256): its bits are pinned,
/// so a change in how training sums (a product left to gemm's blocking) shows here.
#[test]
fn a_study_shaped_flow_gradient_has_pinned_bits() {
    let dims = 51;
    let context = 9;
    let circular: Vec<bool> = (0..dims).map(|d| d % 3 == 2).collect();
    let store = ParameterStore::new([42; 32]);
    let config = FlowConfig {
        layers: 4,
        hidden: vec![128, 128],
        bins: 8,
        levels: 0,
    };
    let flow = ConditionalFlow::new(
        &config,
        &circular,
        context,
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    randomize(&store, 42, 0.05);
    let u = points(256, dims, 42);
    let mut rng = stream(42, 3);
    let c: Vec<f64> = (0..256 * context).map(|_| normal(&mut rng)).collect();
    let c = Tensor::from_vec(c, (256, context), &Device::Cpu).unwrap();
    let loss = flow
        .log_prob(&u, &c)
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap();
    let grads = loss.backward().unwrap();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&loss.to_scalar::<f64>().unwrap().to_le_bytes());
    let mut vars = store.vars();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        let g: Vec<f64> = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        hasher.update(name.as_bytes());
        for x in g {
            hasher.update(&x.to_le_bytes());
        }
    }
    assert_eq!(
        hasher.finalize().to_hex().as_str(),
        "cae56ea2690cacf1b619958bc7178531d7106ad60a9f78b4ae4cec798be7129e"
    );
}
