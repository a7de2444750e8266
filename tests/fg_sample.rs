//! The `fg_sample` stage: blow-ups stop the node with the step and the atoms named and
//! publish nothing; bad params are caught before anything runs.

mod common;

use std::path::Path;

use cgloop::exec::{Outcome, RunOptions, Store, run};
use cgloop::stages::Registry;
use cgloop::workflow::{self, ErrorKind};
use common::TempDir;

fn workflow_text(params: &str) -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    format!(
        "name: fg\nseed: 5\nnodes:\n  fg:\n    stage: fg_sample\n    params:\n      \
         topology: {}\n      coordinates: {}\n{params}",
        data.join("ala2_ff14SB.prmtop").display(),
        data.join("ala2_ff14SB.inpcrd").display()
    )
}

#[test]
fn a_blow_up_names_the_step_and_atoms_and_publishes_nothing() {
    let dir = TempDir::new("blowup");
    let file = dir.write(
        "wf.yaml",
        &workflow_text(
            "      timestep_fs: 40\n      constraints: none\n      minimize: false\n      \
             equilibration_steps: 0\n      steps: 100\n      save_every: 10\n",
        ),
    );
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    match &report.nodes[0].outcome {
        Outcome::Failed(message) => {
            assert!(message.contains("blow-up at step"), "{message}");
            assert!(
                message.contains("CA (ALA 2)") || message.contains("(ACE 1)"),
                "{message}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(store.keys().unwrap().is_empty());
}

#[test]
fn bad_params_are_reported_before_anything_runs() {
    let dir = TempDir::new("fg-params");
    for (params, path, message) in [
        ("      steps: 0\n", "nodes.fg.params.steps", "at least 1"),
        (
            "      solvent: water\n",
            "nodes.fg.params.solvent",
            "unknown variant `water`",
        ),
        (
            "      replicas: 4\n      max_temperature_k: 250\n",
            "nodes.fg.params.max_temperature_k",
            "must exceed temperature_k",
        ),
    ] {
        let file = dir.write("wf.yaml", &workflow_text(params));
        let Err(errors) = workflow::load(&file, &Registry::builtin()) else {
            panic!("{params} validated");
        };
        let errors = errors.0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].kind, ErrorKind::InvalidParam);
        assert_eq!(errors[0].yaml_path, path);
        assert!(errors[0].message.contains(message), "{}", errors[0].message);
    }
}
