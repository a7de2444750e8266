//! `train_map` on alanine dipeptide frames from `fg_sample`, and the map model's training
//! gradient against finite differences.
//!
//! The stage tests run a short fine-grained simulation through the executor, then learned
//! and fixed maps on it: the fixed backbone map's beads are exactly its atoms and its
//! mean forces exactly their forces; every P column is a distribution; masses are right;
//! a bad atom name is reported; the same seed gives the same bytes.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{Array, BooleanArray, Float64Array, Int32Array, StringArray};
use candle_core::{DType, Device, Tensor};
use cgloop::artifact::Artifact;
use cgloop::artifact::atoms::from_table as atoms_from_table;
use cgloop::artifact::trajectory::Trajectory;
use cgloop::exec::{Outcome, RunOptions, Store, run};
use cgloop::nn::ParameterStore;
use cgloop::nn::cg_map::rms_distance_matrix;
use cgloop::nn::decoder::BeadDecoder;
use cgloop::nn::equivariant::EgnnSizes;
use cgloop::nn::gradcheck::check_parameter_gradients;
use cgloop::nn::map_model::{
    Assignment, MapLossWeights, MapModel, atom_features, cluster_prior, mean_force_potential,
};
use cgloop::random::{normal, stream};
use cgloop::stages::Registry;
use cgloop::workflow;
use common::TempDir;

fn workflow_text(nodes: &str) -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    format!(
        "name: tm\nseed: 11\nnodes:\n  fg:\n    stage: fg_sample\n    params:\n      \
         topology: {}\n      coordinates: {}\n      equilibration_steps: 2000\n      \
         steps: 40000\n      save_every: 50\n{nodes}",
        data.join("ala2_ff14SB.prmtop").display(),
        data.join("ala2_ff14SB.inpcrd").display()
    )
}

const MAPS: &str = "  learned:\n    stage: train_map\n    inputs: {trajectory: fg.trajectory, atoms: fg.atoms}\n    \
     params: {map: learned, beads: 4, epochs: 3, decoder_epochs: 2, egnn_features: 8, decoder_hidden: [16], initial_temperature: 4, restarts: 2}\n  \
     fixed:\n    stage: train_map\n    inputs: {trajectory: fg.trajectory, atoms: fg.atoms}\n    \
     params: {map: fixed, epochs: 3, decoder_epochs: 2, decoder_hidden: [16], restarts: 1}\n";

/// Runs the workflow into a fresh store; returns the store and node keys by id.
fn run_maps(dir: &TempDir, name: &str) -> (Store, BTreeMap<String, cgloop::workflow::Key>) {
    let file = dir.write(&format!("{name}.yaml"), &workflow_text(MAPS));
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join(name)).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    let keys = report.nodes.iter().map(|n| (n.id.clone(), n.key)).collect();
    (store, keys)
}

fn table(store: &Store, key: &cgloop::workflow::Key, output: &str) -> arrow_array::RecordBatch {
    match store.load_output(key, output).unwrap() {
        Artifact::Table(t) => t,
        Artifact::File(_) => panic!("{output} is not a table"),
    }
}

fn f64_column(batch: &arrow_array::RecordBatch, name: &str) -> Vec<f64> {
    batch
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

#[test]
fn maps_of_alanine_dipeptide_frames() {
    let dir = TempDir::new("train-map");
    let (store, keys) = run_maps(&dir, "a");
    let fg = Trajectory::from_table(&table(&store, &keys["fg"], "trajectory")).unwrap();
    let atoms = atoms_from_table(&table(&store, &keys["fg"], "atoms")).unwrap();

    // The fixed backbone map: C(ACE), N, CA, C (ALA), N(NME) = atoms 4, 6, 8, 14, 16.
    let backbone = [4usize, 6, 8, 14, 16];
    for (i, &a) in backbone.iter().enumerate() {
        assert_eq!(
            (atoms[a].residue_index, atoms[a].name.as_str()),
            [(0, "C"), (1, "N"), (1, "CA"), (1, "C"), (2, "N")][i]
        );
    }
    let mapped = Trajectory::from_table(&table(&store, &keys["fixed"], "trajectory")).unwrap();
    assert_eq!(mapped.n_atoms, 5);
    assert_eq!(mapped.len(), fg.len());
    for frame in [0, fg.len() / 2, fg.len() - 1] {
        let x = fg.positions(frame);
        let f = fg.frame_forces(frame);
        let centre: Vec<f64> = (0..3)
            .map(|k| (0..22).map(|i| x[3 * i + k]).sum::<f64>() / 22.0)
            .collect();
        for (b, &a) in backbone.iter().enumerate() {
            for k in 0..3 {
                let z = mapped.positions(frame)[3 * b + k];
                assert!((z - (x[3 * a + k] - centre[k])).abs() < 1e-12);
                // One atom per bead: the mean force is that atom's force.
                let force = mapped.frame_forces(frame)[3 * b + k];
                assert!(
                    (force - f[3 * a + k]).abs() < 1e-9 * (1.0 + f[3 * a + k].abs()),
                    "frame {frame} bead {b}: {force} vs {}",
                    f[3 * a + k]
                );
            }
        }
        assert!(mapped.potential[frame].is_nan());
    }
    let beads = atoms_from_table(&table(&store, &keys["fixed"], "beads")).unwrap();
    for (b, &a) in backbone.iter().enumerate() {
        assert!((beads[b].mass_amu - atoms[a].mass_amu).abs() < 1e-12);
        assert_eq!(beads[b].name, format!("B{b}"));
    }

    // The learned map: P has N x n rows, every column sums to 1, weights in [0, 1].
    let assignment = table(&store, &keys["learned"], "assignment");
    assert_eq!(assignment.num_rows(), 22 * 4);
    let bead = assignment
        .column_by_name("bead")
        .unwrap()
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    let weight = f64_column(&assignment, "weight");
    for b in 0..4 {
        let column: f64 = (0..weight.len())
            .filter(|&r| bead.value(r) == b)
            .map(|r| weight[r])
            .sum();
        assert!((column - 1.0).abs() < 1e-12, "bead {b}: {column}");
    }
    assert!(weight.iter().all(|w| (0.0..=1.0).contains(w)));
    let learned = Trajectory::from_table(&table(&store, &keys["learned"], "trajectory")).unwrap();
    assert_eq!(learned.n_atoms, 4);
    assert!(learned.forces.iter().all(|f| f.is_finite()));

    // The loss history: one row per epoch and restart, joint then decoder; every term
    // finite; the kept restart is the one with the lowest validation error.
    let losses = table(&store, &keys["learned"], "losses");
    assert_eq!(losses.num_rows(), 10);
    let phase = losses
        .column_by_name("phase")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let phases: Vec<&str> = (0..5).map(|r| phase.value(r)).collect();
    assert_eq!(phases, ["joint", "joint", "joint", "decoder", "decoder"]);
    let kept = losses
        .column_by_name("kept")
        .unwrap()
        .as_any()
        .downcast_ref::<BooleanArray>()
        .unwrap();
    let rmsd = f64_column(&losses, "validation_rmsd_nm");
    assert!(rmsd.iter().all(|r| r.is_finite() && *r > 0.0));
    let kept_rows: Vec<usize> = (0..10).filter(|&r| kept.value(r)).collect();
    assert!(kept_rows == (0..5).collect::<Vec<_>>() || kept_rows == (5..10).collect::<Vec<_>>());
    let best_decoder = |rows: std::ops::Range<usize>| {
        rows.filter(|&r| phase.value(r) == "decoder")
            .map(|r| rmsd[r])
            .fold(f64::INFINITY, f64::min)
    };
    let (kept_best, other_best) = if kept_rows[0] == 0 {
        (best_decoder(0..5), best_decoder(5..10))
    } else {
        (best_decoder(5..10), best_decoder(0..5))
    };
    assert!(kept_best <= other_best, "{kept_best} vs {other_best}");
    // Training helps: each restart's last validation error is below its first.
    assert!(rmsd[4] < rmsd[0] && rmsd[9] < rmsd[5], "{rmsd:?}");
    let fixed_losses = table(&store, &keys["fixed"], "losses");
    assert_eq!(fixed_losses.num_rows(), 5);

    // Same workflow, fresh store: identical bytes.
    let (again, again_keys) = run_maps(&dir, "b");
    for node in ["learned", "fixed"] {
        assert_eq!(keys[node], again_keys[node]);
        for output in ["trajectory", "beads", "assignment", "parameters", "losses"] {
            let file = format!("{output}.parquet");
            assert_eq!(
                std::fs::read(store.node_dir(&keys[node]).join(&file)).unwrap(),
                std::fs::read(again.node_dir(&again_keys[node]).join(&file)).unwrap(),
                "{node}.{output}"
            );
        }
    }
}

#[test]
fn a_fixed_map_on_a_missing_atom_fails_with_its_name() {
    let dir = TempDir::new("train-map-bad");
    let nodes = "  fixed:\n    stage: train_map\n    inputs: {trajectory: fg.trajectory, atoms: fg.atoms}\n    \
                 params: {map: fixed, epochs: 1, decoder_epochs: 0, fixed_beads: [[{residue: 1, name: CA}], [{residue: 1, name: CG}]]}\n";
    let file = dir.write("wf.yaml", &workflow_text(nodes));
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    let failed = report.nodes.iter().find(|n| n.id == "fixed").unwrap();
    match &failed.outcome {
        Outcome::Failed(message) => {
            assert!(message.contains("fixed_beads[1]"), "{message}");
            assert!(message.contains("no atom `CG` in residue 1"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A bent 8-atom chain, frames with Gaussian noise, and random forces.
fn frames(count: usize, seed: u64) -> (Vec<[f64; 3]>, Tensor, Tensor) {
    let base: Vec<[f64; 3]> = (0..8)
        .map(|i| {
            let t = i as f64;
            [0.14 * t, 0.05 * (t * 1.3).sin(), 0.04 * (t * 0.7).cos()]
        })
        .collect();
    let mut rng = stream(seed, 0);
    let mut x = Vec::new();
    let mut f = Vec::new();
    for _ in 0..count {
        for p in &base {
            for c in p {
                x.push(c + 0.01 * normal(&mut rng));
                f.push(50.0 * normal(&mut rng));
            }
        }
    }
    let t = |v: Vec<f64>| Tensor::from_vec(v, (count, 8, 3), &Device::Cpu).unwrap();
    (base, t(x), t(f))
}

#[test]
fn the_map_models_training_gradient_matches_finite_differences() {
    let (reference, x, f) = frames(6, 3);
    let dev = Device::Cpu;
    let map_store = ParameterStore::new([1; 32]);
    let decoder_store = ParameterStore::new([2; 32]);
    let potential_store = ParameterStore::new([3; 32]);
    let numbers = [6, 1, 7, 6, 8, 6, 1, 7];
    let features = atom_features(&numbers, &[0, 0, 0, 1, 1, 1, 2, 2], &[0.1; 8], &dev).unwrap();
    let sizes = EgnnSizes {
        inputs: features.dim(1).unwrap(),
        features: 6,
        messages: 4,
        hidden: 6,
        layers: 2,
        outputs: 3,
    };
    let bonds: Vec<[usize; 2]> = (0..7).map(|i| [i, i + 1]).collect();
    let assignment = Assignment::learned(
        sizes,
        &bonds,
        &reference,
        0.3,
        features,
        map_store.var_builder(DType::F64, &dev),
    )
    .unwrap();
    let decoder =
        BeadDecoder::new(3, 5, &[8], decoder_store.var_builder(DType::F64, &dev)).unwrap();
    let potential = mean_force_potential(3, potential_store.var_builder(DType::F64, &dev)).unwrap();
    let distances = rms_distance_matrix(&x).unwrap();
    let model = MapModel::new(
        assignment,
        decoder,
        Some(potential),
        &[0, 2, 3, 5, 7],
        &distances,
        MapLossWeights {
            lambda: 0.1,
            lambda_mf: 0.001,
        },
    )
    .unwrap();
    // Move the read-out off zero, so the EGNN's inner layers get gradients too.
    for (name, var) in map_store.vars() {
        if name.contains("readout") {
            let shape = var.dims().to_vec();
            let values: Vec<f64> = (0..var.elem_count())
                .map(|k| 0.3 * ((k as f64) * 0.77).sin())
                .collect();
            var.set(&Tensor::from_vec(values, shape, &dev).unwrap())
                .unwrap();
        }
    }
    let loss = || {
        let p = model.assignment.matrix()?;
        Ok(model.losses(&p, &x, &f)?.total)
    };
    for (name, store) in [
        ("map", &map_store),
        ("decoder", &decoder_store),
        ("potential", &potential_store),
    ] {
        let mismatches = check_parameter_gradients(store, loss, 1e-6, 1e-6).unwrap();
        assert!(mismatches.is_empty(), "{name}: {mismatches:?}");
    }
}

#[test]
fn the_clustering_prior_gives_distinct_local_beads_in_chain_order() {
    let (reference, _, _) = frames(1, 1);
    let scores = cluster_prior(&reference, 3, 0.1);
    // The best-scoring bead of each atom: contiguous runs along the chain, in order.
    let best: Vec<usize> = scores
        .chunks(3)
        .map(|row| (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap())
        .collect();
    assert_eq!(best[0], 0);
    assert_eq!(best[7], 2);
    assert!(best.windows(2).all(|w| w[1] >= w[0]), "{best:?}");
}

/// `map: calpha` on CLN025 (10 residues, no caps): ten beads, each one CA atom, in
/// residue order; its optimal force map ties each CA to its constrained hydrogens
/// (4 fs steps with H-bond constraints).
#[test]
fn calpha_map_of_chignolin() {
    let dir = TempDir::new("train-map-calpha");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/chignolin");
    let text = format!(
        "name: ca\nseed: 3\nnodes:\n  fg:\n    stage: fg_sample\n    params:\n      \
         topology: {}\n      coordinates: {}\n      solvent: obc2\n      temperature_k: 340\n      \
         timestep_fs: 4\n      hydrogen_mass_amu: 3.024\n      equilibration_steps: 100\n      \
         steps: 1000\n      save_every: 20\n  \
         map:\n    stage: train_map\n    inputs: {{trajectory: fg.trajectory, atoms: fg.atoms}}\n    \
         params: {{map: calpha, epochs: 1, decoder_epochs: 1, decoder_hidden: [8], restarts: 1}}\n  \
         forces:\n    stage: map_forces\n    inputs: {{trajectory: fg.trajectory, assignment: map.assignment}}\n",
        data.join("cln025_ff14SB.prmtop").display(),
        data.join("cln025_ff14SB.inpcrd").display()
    );
    let file = dir.write("ca.yaml", &text);
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    let keys: BTreeMap<String, cgloop::workflow::Key> =
        report.nodes.iter().map(|n| (n.id.clone(), n.key)).collect();
    let assignment = table(&store, &keys["map"], "assignment");
    let column = |name: &str| assignment.column_by_name(name).unwrap().clone();
    let names = column("atom_name");
    let names = names.as_any().downcast_ref::<StringArray>().unwrap();
    let beads = column("bead");
    let beads = beads.as_any().downcast_ref::<Int32Array>().unwrap();
    let residues = column("residue_index");
    let residues = residues.as_any().downcast_ref::<Int32Array>().unwrap();
    let weights = f64_column(&assignment, "weight");
    let mut members: Vec<(i32, i32, String)> = (0..assignment.num_rows())
        .filter(|&k| weights[k] != 0.0)
        .map(|k| {
            (
                beads.value(k),
                residues.value(k),
                names.value(k).to_string(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(members.len(), 10, "{members:?}");
    for (b, (bead, residue, name)) in members.iter().enumerate() {
        assert_eq!((*bead, *residue, name.as_str()), (b as i32, b as i32, "CA"));
    }
    // Its beads are named as the atoms, so protein observables read CG chains.
    let beads = atoms_from_table(&table(&store, &keys["map"], "beads")).unwrap();
    assert_eq!(beads.len(), 10);
    for (b, bead) in beads.iter().enumerate() {
        assert_eq!((bead.name.as_str(), bead.residue_index), ("CA", b as i32));
        assert_eq!(bead.atomic_number, 6);
    }
    let summary = table(&store, &keys["forces"], "summary");
    let split = summary
        .column_by_name("split_constraint_groups")
        .unwrap()
        .as_any()
        .downcast_ref::<BooleanArray>()
        .unwrap()
        .clone();
    assert!((0..10).all(|b| !split.value(b)));
    let map = table(&store, &keys["forces"], "force_map");
    let group = map.column_by_name("group").unwrap();
    let group = group.as_any().downcast_ref::<Int32Array>().unwrap();
    let atom_names = map.column_by_name("atom_name").unwrap();
    let atom_names = atom_names.as_any().downcast_ref::<StringArray>().unwrap();
    // Bead 0's rows list every atom once: the first CA shares its group with an HA.
    let ca = (0..166).find(|&k| atom_names.value(k) == "CA").unwrap();
    let ha = (0..166).find(|&k| atom_names.value(k) == "HA").unwrap();
    assert_eq!(group.value(ca), group.value(ha));
}
