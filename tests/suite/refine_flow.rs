//! `refine_flow` on a short alanine dipeptide run: energy training lowers the flow's
//! energy loss on held-out CG configurations (the conditional reverse KL up to ln Z),
//! keeps the checkpoint with the lowest validation loss, returns a model of the same
//! Z-matrix, map and box, and refuses settings that cannot work.

use crate::common;

use std::path::Path;

use cgloop::artifact::tensors::from_table as tensors_from_table;
use cgloop::exec::{RunOptions, Store, run};
use cgloop::nn::inverse_map::InverseMap;
use cgloop::stages::Registry;
use cgloop::workflow;
use common::{TempDir, f64_column, i64_column};

const WORKFLOW: &str = r#"name: refine
seed: 9
nodes:
  fg:
    stage: fg_sample
    params:
      topology: PRMTOP
      coordinates: INPCRD
      timestep_fs: 1
      constraints: none
      equilibration_steps: 2000
      steps: 40000
      save_every: 50
  map:
    stage: train_map
    inputs: {trajectory: fg.trajectory, atoms: fg.atoms}
    params: {map: fixed, epochs: 1, decoder_epochs: 1, decoder_hidden: [8], restarts: 1}
  flow:
    stage: train_flow
    inputs: {trajectory: fg.trajectory, atoms: fg.atoms, assignment: map.assignment}
    params: {epochs: 3, hidden: [24], layers: 2, bins: 4, batch_size: 64, learning_rate: 0.003, autoregressive_levels: 4}
  refine:
    stage: refine_flow
    inputs: {flow: flow.flow, trajectory: [fg.trajectory], force_field: fg.force_field}
    params: {iterations: 90, batch_size: 32, learning_rate: 0.001, ml_weight: 0.5, checkpoints: 3, validation_contexts: 16, validation_draws: 8}
"#;

fn workflow_text() -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    WORKFLOW
        .replace(
            "PRMTOP",
            &data.join("ala2_ff14SB.prmtop").display().to_string(),
        )
        .replace(
            "INPCRD",
            &data.join("ala2_ff14SB.inpcrd").display().to_string(),
        )
}

fn table(store: &Store, key: &cgloop::workflow::Key, output: &str) -> arrow_array::RecordBatch {
    match store.load_output(key, output).unwrap() {
        cgloop::artifact::Artifact::Table(t) => t,
        _ => panic!("{output} is not a table"),
    }
}

#[test]
fn energy_training_lowers_the_conditional_reverse_kl() {
    let dir = TempDir::new("refine_flow");
    let path = dir.write("refine.yaml", &workflow_text());
    let wf = workflow::load(&path, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    let key = |id: &str| report.nodes.iter().find(|n| n.id == id).unwrap().key;

    let curve = table(&store, &key("refine"), "learning_curve");
    assert_eq!(i64_column(&curve, "checkpoint"), vec![0, 1, 2, 3]);
    assert_eq!(i64_column(&curve, "iteration"), vec![0, 30, 60, 90]);
    let energy = f64_column(&curve, "validation_energy_loss");
    let loss = f64_column(&curve, "validation_loss");
    let ess = f64_column(&curve, "validation_conditional_ess");
    eprintln!("energy loss {energy:?}\nmixed loss {loss:?}\nconditional ESS {ess:?}");
    assert!(
        energy[3] < energy[0] - 1.0,
        "energy training should lower the held-out energy loss: {energy:?}"
    );
    assert!(ess.iter().all(|e| (0.0..=1.0).contains(e)), "{ess:?}");
    // The kept checkpoint is the one with the lowest validation loss.
    let best: Vec<bool> = curve
        .column_by_name("best")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::BooleanArray>()
        .unwrap()
        .iter()
        .map(|b| b.unwrap())
        .collect();
    let lowest = (0..4).min_by(|&a, &b| loss[a].total_cmp(&loss[b])).unwrap();
    assert_eq!(best.iter().filter(|&&b| b).count(), 1);
    assert!(best[lowest], "{best:?} vs {loss:?}");

    // Same atoms, map and box as the flow it refined; other weights.
    let load = |id: &str| {
        InverseMap::load(&tensors_from_table(&table(&store, &key(id), "flow")).unwrap()).unwrap()
    };
    let (before, after) = (load("flow"), load("refine"));
    assert_eq!(before.zmatrix, after.zmatrix);
    assert_eq!(before.assignment, after.assignment);
    assert_eq!(before.pinned, after.pinned);
    assert_eq!(before.unit_box, after.unit_box);
    assert_ne!(
        before.store.to_tensors().unwrap(),
        after.store.to_tensors().unwrap()
    );
}

#[test]
fn refine_flow_refuses_settings_that_cannot_work() {
    let registry = Registry::builtin();
    let stage = registry
        .get("refine_flow")
        .expect("refine_flow is registered");
    for bad in [
        serde_json::json!({"batch_size": 16, "drop_worst": 16}),
        serde_json::json!({"ml_weight": 1.5}),
        serde_json::json!({"iterations": 5, "checkpoints": 6}),
        serde_json::json!({"validation_draws": 1}),
    ] {
        assert!(stage.resolve_params(&bad).is_err(), "{bad} was accepted");
    }
}
