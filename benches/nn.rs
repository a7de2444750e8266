//! Training speed: optimizer steps per second of the two trainings of the CG pipeline
//! (DESIGN.md §4), f64 on the CPU, batch 64, printed as one JSON line per case:
//!
//! - `force_matching_step`: fit_potential's step, the CG potential of 5 beads (basis 16,
//!   hidden [64, 64], SiLU, repulsion and bond priors, torsion network), force-matching
//!   loss and Adam;
//! - `map_step`: train_map's joint step at alanine dipeptide's size (22 atoms, 5 beads):
//!   EGNN assignment (2 layers, 32 features) with the clustering prior, decoder of the
//!   10 heavy atoms, mean-force potential (`mean_force_potential`: hidden [32, 32], pair
//!   distances only), the full loss and Adam over all three parts.
//!
//! Compare with PyTorch (CPU, same networks, same step) on the same machine:
//!
//!     cargo bench --bench nn
//!     python3 bench/torch_peer.py --seconds 10
//!
//! (`just bench-nn` runs both when `torch` is importable, alternately for ten rounds, the
//! peer with one thread and with all, and prints cgloop's speed-up over the faster.) The
//! bench prepares the process as the `cgloop` binary does ([`cgloop::nn::runtime`]: the
//! thread count, the allocator; the JSON says whether glibc took the latter). Set
//! CGLOOP_BENCH_SECONDS to change the measuring time (default 10 s per case, as the peer
//! script), RAYON_NUM_THREADS for the threads (the peer's `--threads`), and
//! `cargo bench --bench nn -- map_step` runs one case. With
//! CGLOOP_BENCH_EXPORT=DIR the networks, batch, losses and gradients are written for
//! `bench/torch_peer.py --check DIR`, which checks that both sides compute the same thing.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use cgloop::md::covalent::infer_bonds;
use cgloop::md::io::structure::Structure;
use cgloop::nn::cg_map::rms_distance_matrix;
use cgloop::nn::decoder::BeadDecoder;
use cgloop::nn::equivariant::EgnnSizes;
use cgloop::nn::map_model::{
    Assignment, MapLossWeights, MapModel, atom_features, mean_force_potential,
};
use cgloop::nn::training::{adam, adam_over, step};
use cgloop::nn::{Activation, CgPotential, CgPotentialConfig, ParameterStore};
use cgloop::random::{normal, stream};

const BATCH: usize = 64;
const WARMUP_STEPS: usize = 20;
const LEARNING_RATE: f64 = 2e-3;
/// Whether glibc took `nn::runtime`'s malloc thresholds (reported with each case).
static TUNED: AtomicBool = AtomicBool::new(false);

/// A tensor (BATCH, rows, 3): `base` plus Gaussian noise of width `scale`.
fn noisy(base: &[[f64; 3]], scale: f64, stream_id: u64) -> Tensor {
    let mut rng = stream(2024, stream_id);
    let mut values = Vec::with_capacity(BATCH * base.len() * 3);
    for _ in 0..BATCH {
        for p in base {
            for c in p {
                values.push(c + scale * normal(&mut rng));
            }
        }
    }
    Tensor::from_vec(values, (BATCH, base.len(), 3), &Device::Cpu).unwrap()
}

/// With CGLOOP_BENCH_EXPORT=DIR, writes DIR/{case}.json: the parameters (by store name),
/// the batch, the loss terms before any step and the gradient of the first, for
/// `bench/torch_peer.py --check DIR` (which loads them into its networks and must find
/// the same losses and gradients).
fn export(case: &str, stores: &[&ParameterStore], data: &[(&str, &Tensor)], losses: &[Tensor]) {
    let Ok(dir) = std::env::var("CGLOOP_BENCH_EXPORT") else {
        return;
    };
    let flat = |t: &Tensor| -> Vec<f64> { t.flatten_all().unwrap().to_vec1().unwrap() };
    let grads = losses[0].backward().unwrap();
    let (mut params, mut gradients) = (serde_json::Map::new(), serde_json::Map::new());
    for store in stores {
        for (name, var) in store.vars() {
            let t = var.as_tensor();
            let g = grads.get(t).map_or_else(|| vec![0.0; t.elem_count()], flat);
            let entry = |values| serde_json::json!({"shape": t.dims(), "values": values});
            params.insert(name.clone(), entry(flat(t)));
            gradients.insert(name, entry(g));
        }
    }
    let losses: Vec<f64> = losses.iter().map(|l| l.to_scalar().unwrap()).collect();
    let mut json = serde_json::json!({"params": params, "gradients": gradients, "losses": losses});
    for (name, t) in data {
        json[*name] = serde_json::json!({"shape": t.dims(), "values": flat(t)});
    }
    std::fs::create_dir_all(&dir).unwrap();
    let path = Path::new(&dir).join(format!("{case}.json"));
    std::fs::write(&path, json.to_string()).unwrap();
    eprintln!("wrote {}", path.display());
}

/// Runs `one_step` WARMUP_STEPS times, then until `seconds` have passed, and prints the
/// JSON line.
fn measure(name: &str, seconds: f64, mut one_step: impl FnMut() -> f64) {
    for _ in 0..WARMUP_STEPS {
        black_box(one_step());
    }
    let start = Instant::now();
    let mut steps = 0u64;
    let mut last = 0.0;
    while start.elapsed().as_secs_f64() < seconds {
        last = one_step();
        steps += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert!(last.is_finite(), "{name}: loss {last}");
    let sps = steps as f64 / elapsed;
    println!(
        "{{\"engine\": \"cgloop-candle\", \"version\": \"{}\", \"case\": \"{name}\", \"batch\": {BATCH}, \"threads\": {}, \"malloc_tuned\": {}, \"steps_per_s\": {:.2}, \"ms_per_step\": {:.3}}}",
        env!("CARGO_PKG_VERSION"),
        rayon::current_num_threads(),
        TUNED.load(Ordering::Relaxed),
        sps,
        1e3 / sps
    );
}

/// fit_potential's step: force matching of the 5-bead CG potential's networks (its priors
/// do not train: fit_potential takes their forces off the targets once).
fn force_matching_step(seconds: f64) {
    let device = Device::Cpu;
    let store = ParameterStore::new([7; 32]);
    let config = CgPotentialConfig {
        basis: 16,
        cutoff_nm: 1.2,
        hidden: vec![64, 64],
        activation: Activation::Silu,
        // The rest as fit_potential's defaults (the torsion network included).
        ..CgPotentialConfig::default()
    };
    let potential = CgPotential::new(5, config, store.var_builder(DType::F64, &device)).unwrap();
    // A zig-zag chain of beads 0.38 nm apart, 0.02 nm noise; forces ~ 300 kJ/mol/nm.
    let chain: Vec<[f64; 3]> = (0..5)
        .map(|i| [0.33 * i as f64, 0.19 * (i % 2) as f64, 0.0])
        .collect();
    let z = noisy(&chain, 0.02, 1);
    let target = (noisy(&[[0.0; 3]; 5], 1.0, 2) * 300.0).unwrap();
    let loss = potential.force_matching_loss(&z, &target).unwrap();
    export(
        "force_matching_step",
        &[&store],
        &[("z", &z), ("target", &target)],
        &[loss],
    );
    let mut optimizer = adam(&store, LEARNING_RATE).unwrap();
    measure("force_matching_step", seconds, || {
        let loss = potential.force_matching_loss(&z, &target).unwrap();
        step(&mut optimizer, &loss).unwrap()
    });
}

/// train_map's joint step at alanine dipeptide's size, built as the stage builds it.
fn map_step(seconds: f64) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let s = Structure::read(
        &root.join("datasets/alanine_dipeptide/ala2_ff14SB.prmtop"),
        &root.join("datasets/alanine_dipeptide/ala2_ff14SB.inpcrd"),
    )
    .unwrap();
    let device = Device::Cpu;
    let dtype = DType::F64;
    let atoms = &s.topology.atoms;
    let atomic_numbers: Vec<i32> = atoms.iter().map(|a| i32::from(a.atomic_number)).collect();
    let residues: Vec<i32> = atoms.iter().map(|a| a.residue_index as i32).collect();
    let charges: Vec<f64> = atoms.iter().map(|a| a.charge).collect();
    let reference = &s.positions;
    let beads = 5;

    let map_store = ParameterStore::new([1; 32]);
    let decoder_store = ParameterStore::new([2; 32]);
    let potential_store = ParameterStore::new([3; 32]);
    let features = atom_features(&atomic_numbers, &residues, &charges, &device).unwrap();
    let sizes = EgnnSizes {
        inputs: features.dim(1).unwrap(),
        features: 32,
        messages: 32 / 2 + 1,
        hidden: 32,
        layers: 2,
        outputs: beads,
    };
    let bonds = infer_bonds(&atomic_numbers, reference);
    let assignment = Assignment::learned(
        sizes,
        &bonds,
        reference,
        0.5,
        features,
        map_store.var_builder(dtype, &device).pp("map"),
    )
    .unwrap();
    let seed_atoms: Vec<usize> = (0..atoms.len())
        .filter(|&i| atomic_numbers[i] != 1)
        .collect();
    assert_eq!(seed_atoms.len(), 10, "alanine dipeptide has 10 heavy atoms");
    let decoder = BeadDecoder::new(
        beads,
        seed_atoms.len(),
        &[64, 64],
        decoder_store.var_builder(dtype, &device).pp("decoder"),
    )
    .unwrap();
    let potential =
        mean_force_potential(beads, potential_store.var_builder(dtype, &device)).unwrap();
    let x = noisy(reference, 0.01, 3);
    let f = (noisy(&vec![[0.0; 3]; atoms.len()], 1.0, 4) * 300.0).unwrap();
    let distances = rms_distance_matrix(&x).unwrap();
    let model = MapModel::new(
        assignment,
        decoder,
        Some(potential),
        &seed_atoms,
        &distances,
        MapLossWeights {
            lambda: 0.1,
            lambda_mf: 0.001,
        },
    )
    .unwrap();
    let stores = [&map_store, &decoder_store, &potential_store];
    let p = model.assignment.matrix().unwrap();
    let l = model.losses(&p, &x, &f).unwrap();
    let losses = [
        l.total,
        l.reconstruction,
        l.link,
        l.entropy,
        l.assignment,
        l.mean_force,
    ];
    export("map_step", &stores, &[("x", &x), ("f", &f)], &losses);
    let mut optimizer = adam_over(&stores, LEARNING_RATE).unwrap();
    measure("map_step", seconds, || {
        let p = model.assignment.matrix().unwrap();
        let l = model.losses(&p, &x, &f).unwrap();
        step(&mut optimizer, &l.total).unwrap()
    });
}

fn main() {
    // As the cgloop binary does (nn::runtime): the thread count set once, freed tensors
    // kept in the heap.
    // SAFETY: first thing in main; no other thread exists yet.
    let prepared = unsafe { cgloop::nn::runtime::prepare_process(1) };
    TUNED.store(prepared.malloc_tuned, Ordering::Relaxed);
    let seconds: f64 = std::env::var("CGLOOP_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    // `cargo bench --bench nn -- map_step` runs one case (cargo adds `--bench`).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if run("force_matching_step") {
        force_matching_step(seconds);
    }
    if run("map_step") {
        map_step(seconds);
    }
}
