//! The CG map's differentiable core (f64): bead positions rotate and translate with the
//! atoms and ignore atom order; a hard assignment reproduces the fixed map and its mean
//! force is the per-bead force sum; every loss's gradient with respect to the scores,
//! from one backward pass, matches central finite differences.

use candle_core::{DType, Device, Tensor, Var};
use cgloop::nn::ParameterStore;
use cgloop::nn::cg_map::{
    FixedMap, FixedMapError, assignment_loss, bead_positions, centred_bead_positions, entropy_loss,
    link_loss, mean_force, mean_force_loss, reconstruction_loss, rms_distance_matrix,
    soft_assignment,
};
use cgloop::nn::equivariant::{AtomGraph, Egnn, EgnnSizes};
use cgloop::random::{normal, stream};

const FRAMES: usize = 3;
const ATOMS: usize = 10;
const BEADS: usize = 3;

fn normals(seed: u64, count: usize) -> Vec<f64> {
    let mut rng = stream(seed, 0);
    (0..count).map(|_| normal(&mut rng)).collect()
}

fn tensor(values: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

fn frames_tensor(seed: u64, scale: f64) -> Tensor {
    let v = normals(seed, FRAMES * ATOMS * 3)
        .into_iter()
        .map(|x| scale * x)
        .collect();
    tensor(v, &[FRAMES, ATOMS, 3])
}

fn scores(seed: u64) -> Tensor {
    tensor(normals(seed, ATOMS * BEADS), &[ATOMS, BEADS])
}

/// A rotation matrix from a normalized quaternion of four normals.
fn rotation(seed: u64) -> [[f64; 3]; 3] {
    let q = normals(seed, 4);
    let norm = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    let [w, x, y, z] = [q[0] / norm, q[1] / norm, q[2] / norm, q[3] / norm];
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - z * w),
            2.0 * (x * z + y * w),
        ],
        [
            2.0 * (x * y + z * w),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - x * w),
        ],
        [
            2.0 * (x * z - y * w),
            2.0 * (y * z + x * w),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

/// r_i -> R r_i + t for every point of a (F, K, 3) tensor.
fn transform(x: &Tensor, r: &[[f64; 3]; 3], t: [f64; 3]) -> Tensor {
    let dims = x.dims().to_vec();
    let v = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let out = v
        .chunks(3)
        .flat_map(|p| (0..3).map(move |a| (0..3).map(|b| r[a][b] * p[b]).sum::<f64>() + t[a]))
        .collect();
    tensor(out, &dims)
}

fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn soft_assignment_columns_are_distributions() {
    let p = soft_assignment(&scores(1)).unwrap();
    let sums = p.sum(0).unwrap().to_vec1::<f64>().unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-14), "{sums:?}");
    assert!(p.min_all().unwrap().to_scalar::<f64>().unwrap() > 0.0);
    // A huge common shift changes nothing (the max is subtracted first).
    let shifted = soft_assignment(&(scores(1) + 1e4).unwrap()).unwrap();
    assert!(max_difference(&p, &shifted) < 1e-12);
}

#[test]
fn bead_positions_rotate_and_translate_with_the_atoms() {
    let p = soft_assignment(&scores(2)).unwrap();
    let x = frames_tensor(3, 0.5);
    let r = rotation(4);
    let t = [1.5, -0.7, 2.2];
    let z = bead_positions(&p, &x).unwrap();
    let moved = bead_positions(&p, &transform(&x, &r, t)).unwrap();
    assert!(max_difference(&moved, &transform(&z, &r, t)) < 1e-12);
    // Centred positions only rotate.
    let zc = centred_bead_positions(&p, &x).unwrap();
    let moved_c = centred_bead_positions(&p, &transform(&x, &r, t)).unwrap();
    assert!(max_difference(&moved_c, &transform(&zc, &r, [0.0; 3])) < 1e-12);
    // The mean force rotates with the atomic forces.
    let f = frames_tensor(5, 100.0);
    let fm = mean_force(&p, &f).unwrap();
    let rotated = mean_force(&p, &transform(&f, &r, [0.0; 3])).unwrap();
    assert!(max_difference(&rotated, &transform(&fm, &r, [0.0; 3])) < 1e-9);
}

#[test]
fn permuting_atoms_with_their_scores_leaves_beads_unchanged() {
    // i -> (3 i + 1) mod 10 is a permutation since gcd(3, 10) = 1.
    let permutation: Vec<u32> = (0..ATOMS).map(|i| ((3 * i + 1) % ATOMS) as u32).collect();
    let index = Tensor::new(permutation.as_slice(), &Device::Cpu).unwrap();
    let s = scores(6);
    let x = frames_tensor(7, 0.5);
    let f = frames_tensor(8, 100.0);
    let p = soft_assignment(&s).unwrap();
    let p_perm = soft_assignment(&s.index_select(&index, 0).unwrap()).unwrap();
    let x_perm = x.index_select(&index, 1).unwrap();
    let f_perm = f.index_select(&index, 1).unwrap();
    let z = centred_bead_positions(&p, &x).unwrap();
    assert!(max_difference(&z, &centred_bead_positions(&p_perm, &x_perm).unwrap()) < 1e-12);
    let fm = mean_force(&p, &f).unwrap();
    assert!(max_difference(&fm, &mean_force(&p_perm, &f_perm).unwrap()) < 1e-9);
}

fn hard_map() -> FixedMap {
    // Atom 9 belongs to no bead.
    FixedMap::new(ATOMS, vec![vec![0, 1, 2], vec![3, 4], vec![5, 6, 7, 8]]).unwrap()
}

#[test]
fn a_hard_assignment_reproduces_the_fixed_map() {
    let map = hard_map();
    let fixed = map.assignment(DType::F64, &Device::Cpu).unwrap();
    // Scores 0 on the bead's atoms and -1000 elsewhere: exp(-1000) underflows to 0, so
    // the softmax is exactly uniform over the bead.
    let mut s = vec![-1000.0; ATOMS * BEADS];
    for (bead, atoms) in map.beads().iter().enumerate() {
        for &atom in atoms {
            s[atom * BEADS + bead] = 0.0;
        }
    }
    let soft = soft_assignment(&tensor(s, &[ATOMS, BEADS])).unwrap();
    assert_eq!(
        soft.to_vec2::<f64>().unwrap(),
        fixed.to_vec2::<f64>().unwrap()
    );
    // z is the centroid of each bead's atoms.
    let x = frames_tensor(9, 0.5);
    let z = bead_positions(&fixed, &x)
        .unwrap()
        .to_vec3::<f64>()
        .unwrap();
    let xv = x.to_vec3::<f64>().unwrap();
    for frame in 0..FRAMES {
        for (bead, atoms) in map.beads().iter().enumerate() {
            for a in 0..3 {
                let centroid =
                    atoms.iter().map(|&i| xv[frame][i][a]).sum::<f64>() / atoms.len() as f64;
                assert!((z[frame][bead][a] - centroid).abs() < 1e-14);
            }
        }
    }
}

#[test]
fn the_mean_force_of_a_hard_map_is_the_force_sum_over_each_bead() {
    let map = hard_map();
    let p = map.assignment(DType::F64, &Device::Cpu).unwrap();
    let f = frames_tensor(10, 100.0);
    let fm = mean_force(&p, &f).unwrap().to_vec3::<f64>().unwrap();
    let fv = f.to_vec3::<f64>().unwrap();
    for frame in 0..FRAMES {
        for (bead, atoms) in map.beads().iter().enumerate() {
            for a in 0..3 {
                let sum = atoms.iter().map(|&i| fv[frame][i][a]).sum::<f64>();
                assert!(
                    (fm[frame][bead][a] - sum).abs() < 1e-10 * (1.0 + sum.abs()),
                    "frame {frame} bead {bead}: {} vs {sum}",
                    fm[frame][bead][a]
                );
            }
        }
    }
}

#[test]
fn fixed_maps_validate_their_beads() {
    let names = ["N", "CA", "C", "O", "N", "CA", "CB", "C", "O"];
    let map = FixedMap::c_alpha(&names).unwrap();
    assert_eq!(map.beads(), &[vec![1], vec![5]]);
    assert_eq!(map.n_atoms(), 9);
    assert_eq!(
        FixedMap::c_alpha(&["N", "C"]),
        Err(FixedMapError::NoAtomNamed { name: "CA".into() })
    );
    assert_eq!(
        FixedMap::new(4, vec![vec![0], vec![]]),
        Err(FixedMapError::EmptyBead { bead: 1 })
    );
    assert_eq!(
        FixedMap::new(4, vec![vec![0, 4]]),
        Err(FixedMapError::AtomOutOfRange {
            bead: 0,
            atom: 4,
            n_atoms: 4
        })
    );
    assert_eq!(
        FixedMap::new(4, vec![vec![0, 1], vec![1]]),
        Err(FixedMapError::AtomInTwoBeads {
            atom: 1,
            first: 0,
            second: 1
        })
    );
}

#[test]
fn losses_take_their_defining_values() {
    let map = hard_map();
    let p = map.assignment(DType::F64, &Device::Cpu).unwrap();
    // Entropy of uniform weights over |I| atoms is ln |I|; mean over beads.
    let h = entropy_loss(&p).unwrap().to_scalar::<f64>().unwrap();
    let expected = (3f64.ln() + 2f64.ln() + 4f64.ln()) / 3.0;
    assert!((h - expected).abs() < 1e-14, "{h} vs {expected}");
    // A hard map never puts more than unit weight on an atom.
    assert_eq!(
        assignment_loss(&p).unwrap().to_scalar::<f64>().unwrap(),
        0.0
    );
    // One atom fully in two single-atom beads: (P P^T)_00 = 2, penalty (2 - 1)^2 = 1.
    let two = tensor(vec![1.0, 1.0, 0.0, 0.0], &[2, 2]);
    assert_eq!(
        assignment_loss(&two).unwrap().to_scalar::<f64>().unwrap(),
        1.0
    );
    // Link loss by hand: sum over pairs in a common bead of (D_ij / (|I|^2))^2.
    let x = frames_tensor(11, 0.5);
    let d = rms_distance_matrix(&x).unwrap();
    let dv = d.to_vec2::<f64>().unwrap();
    let by_hand: f64 = map
        .beads()
        .iter()
        .flat_map(|atoms| {
            let w = 1.0 / (atoms.len() * atoms.len()) as f64;
            let dv = &dv;
            atoms
                .iter()
                .flat_map(move |&i| atoms.iter().map(move |&j| (w * dv[i][j]).powi(2)))
        })
        .sum::<f64>()
        .sqrt();
    let link = link_loss(&p, &d).unwrap().to_scalar::<f64>().unwrap();
    assert!((link - by_hand).abs() < 1e-13, "{link} vs {by_hand}");
    // Reconstruction ignores translations of the prediction.
    let shifted = (&x + 3.0).unwrap();
    assert!(
        reconstruction_loss(&shifted, &x)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            < 1e-28
    );
    let off = transform(&x, &rotation(12), [0.0; 3]);
    assert!(
        reconstruction_loss(&off, &x)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            > 1e-3
    );
}

/// Checks d loss / d scores from one backward pass against central differences on every
/// score, with |fd - backward| < 1e-7 (1 + |fd|) (h = 1e-5, f64).
fn check_gradient(name: &str, scores: &Tensor, loss: impl Fn(&Tensor) -> Tensor) {
    let var = Var::from_tensor(scores).unwrap();
    let value = loss(var.as_tensor());
    assert!(
        value.to_scalar::<f64>().unwrap().abs() > 1e-6,
        "{name} is trivially zero"
    );
    let grads = value.backward().unwrap();
    let analytic = grads
        .get(var.as_tensor())
        .unwrap_or_else(|| panic!("{name}: no gradient"))
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let base = scores.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let h = 1e-5;
    let at = |k: usize, delta: f64| {
        let mut v = base.clone();
        v[k] += delta;
        loss(&tensor(v, scores.dims())).to_scalar::<f64>().unwrap()
    };
    for (k, &backward) in analytic.iter().enumerate() {
        let fd = (at(k, h) - at(k, -h)) / (2.0 * h);
        assert!(
            (fd - backward).abs() < 1e-7 * (1.0 + fd.abs()),
            "{name} score {k}: finite difference {fd} vs backward {backward}"
        );
    }
}

#[test]
fn loss_gradients_with_respect_to_the_scores_match_finite_differences() {
    let x = frames_tensor(13, 0.5);
    let d = rms_distance_matrix(&x).unwrap();
    let f = frames_tensor(14, 100.0);
    let target = tensor(normals(15, FRAMES * BEADS * 3), &[FRAMES, BEADS, 3]);
    let s = scores(16);
    let p = |s: &Tensor| soft_assignment(s).unwrap();
    check_gradient("L_link", &s, |s| link_loss(&p(s), &d).unwrap());
    check_gradient("L_ent", &s, |s| entropy_loss(&p(s)).unwrap());
    check_gradient("L_mf", &s, |s| {
        let target = (&target * 30.0).unwrap();
        mean_force_loss(&mean_force(&p(s), &f).unwrap(), &target).unwrap()
    });
    // L_assign is zero unless an atom dominates several beads: atom 0 gets +4 on beads 0
    // and 1, so (P P^T)_00 ~ 1.9.
    let mut v = normals(17, ATOMS * BEADS)
        .into_iter()
        .map(|x| 0.3 * x)
        .collect::<Vec<_>>();
    v[0] += 4.0;
    v[1] += 4.0;
    let dominated = tensor(v, &[ATOMS, BEADS]);
    check_gradient("L_assign", &dominated, |s| assignment_loss(&p(s)).unwrap());
    // And a reconstruction from the centred beads (a decoder that copies bead I to seed
    // atom I) differentiates through the map too.
    let seed = x.narrow(1, 0, BEADS).unwrap();
    check_gradient("L_r", &s, |s| {
        reconstruction_loss(&centred_bead_positions(&p(s), &x).unwrap(), &seed).unwrap()
    });
}

// ---- EGNN scores (src/nn/equivariant.rs) ----

const SIZES: EgnnSizes = EgnnSizes {
    inputs: 4,
    features: 6,
    messages: 5,
    hidden: 8,
    layers: 2,
    outputs: BEADS,
};

fn chain_bonds() -> Vec<[usize; 2]> {
    (0..ATOMS - 1).map(|i| [i, i + 1]).collect()
}

/// One-hot of i mod 4.
fn atom_features() -> Tensor {
    let v = (0..ATOMS * 4)
        .map(|k| if k % 4 == (k / 4) % 4 { 1.0 } else { 0.0 })
        .collect();
    tensor(v, &[ATOMS, 4])
}

fn egnn_outputs(model: &Egnn, x: &Tensor) -> (Vec<[usize; 2]>, Tensor, Tensor) {
    let rows: Vec<[f64; 3]> = x
        .to_vec2::<f64>()
        .unwrap()
        .into_iter()
        .map(|r| [r[0], r[1], r[2]])
        .collect();
    let graph = AtomGraph::new(&chain_bonds(), &rows, 0.45, DType::F64, &Device::Cpu).unwrap();
    let (scores, x_out) = model.forward(&graph, &atom_features(), x).unwrap();
    (graph.pairs().to_vec(), scores, x_out)
}

#[test]
fn egnn_scores_are_invariant_and_positions_equivariant() {
    let store = ParameterStore::new([7; 32]);
    let model = Egnn::new(SIZES, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let x = frames_tensor(18, 0.3).get(0).unwrap();
    let (pairs, scores, x_out) = egnn_outputs(&model, &x);
    assert!(pairs.len() > ATOMS - 1, "the cutoff adds non-bonded pairs");
    assert!(
        pairs.len() < ATOMS * (ATOMS - 1) / 2,
        "the cutoff drops pairs"
    );
    let r = rotation(19);
    let t = [0.4, -1.1, 0.25];
    let moved = transform(&x.unsqueeze(0).unwrap(), &r, t).get(0).unwrap();
    let (moved_pairs, moved_scores, moved_out) = egnn_outputs(&model, &moved);
    assert_eq!(pairs, moved_pairs);
    assert!(max_difference(&scores, &moved_scores) < 1e-12);
    let expected = transform(&x_out.unsqueeze(0).unwrap(), &r, t)
        .get(0)
        .unwrap();
    assert!(max_difference(&moved_out, &expected) < 1e-12);
    // The layers do move the atoms (the equivariance check is not vacuous).
    assert!(max_difference(&x_out, &x) > 1e-6);
}

/// Map losses through the EGNN: L_link + L_ent + L_assign of P = softmax(scores).
fn egnn_map_loss(model: &Egnn, x: &Tensor) -> Tensor {
    let (_, scores, _) = egnn_outputs(model, x);
    let p = soft_assignment(&scores).unwrap();
    let d = rms_distance_matrix(&x.unsqueeze(0).unwrap()).unwrap();
    let loss = (link_loss(&p, &d).unwrap() + entropy_loss(&p).unwrap()).unwrap();
    (loss + assignment_loss(&p).unwrap()).unwrap()
}

#[test]
fn egnn_parameter_gradients_match_finite_differences() {
    let store = ParameterStore::new([8; 32]);
    let model = Egnn::new(SIZES, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let x = frames_tensor(20, 0.3).get(0).unwrap();
    let grads = egnn_map_loss(&model, &x).backward().unwrap();
    let h = 1e-6;
    for (name, var) in store.vars() {
        let values = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        // The last layer's coordinate update does not reach the scores.
        let analytic = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            None => {
                assert!(name.starts_with("layer1.coordinate"), "{name}: no gradient");
                vec![0.0; values.len()]
            }
        };
        for k in [0, values.len() / 2, values.len() - 1] {
            let set = |v: f64| {
                let mut w = values.clone();
                w[k] = v;
                var.set(&tensor(w, var.dims())).unwrap();
            };
            set(values[k] + h);
            let up = egnn_map_loss(&model, &x).to_scalar::<f64>().unwrap();
            set(values[k] - h);
            let down = egnn_map_loss(&model, &x).to_scalar::<f64>().unwrap();
            set(values[k]);
            let fd = (up - down) / (2.0 * h);
            assert!(
                (fd - analytic[k]).abs() < 1e-7 * (1.0 + fd.abs()),
                "{name}[{k}]: finite difference {fd} vs backward {}",
                analytic[k]
            );
        }
    }
}
