//! The bundled quick workflow, end to end: it runs, it replays byte for byte into a
//! fresh store, and what it samples is physically sane.

use crate::common;

use std::path::Path;

use cgloop::artifact::trajectory::Trajectory;
use cgloop::exec::{Outcome, RunOptions, Store, run};
use cgloop::stages::Registry;
use cgloop::workflow;
use common::{TempDir, artifact_bytes};

fn smoke() -> cgloop::workflow::Workflow {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    workflow::load(&root.join("workflows/smoke.yaml"), &Registry::builtin())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_smoke_workflow_replays_bit_for_bit_and_samples_300_k() {
    let wf = smoke();
    let dir = TempDir::new("smoke");
    let a = Store::open(dir.path().join("a")).unwrap();
    let b = Store::open(dir.path().join("b")).unwrap();
    let first = run(&wf, &a, &RunOptions::default()).unwrap();
    assert!(first.succeeded(), "{first:?}");
    run(&wf, &b, &RunOptions::default()).unwrap();
    assert_eq!(
        artifact_bytes(&dir.path().join("a")),
        artifact_bytes(&dir.path().join("b"))
    );
    let again = run(&wf, &a, &RunOptions::default()).unwrap();
    assert!(again.nodes.iter().all(|n| n.outcome == Outcome::Cached));

    let key = first.nodes[0].key;
    let table = a.load_output(&key, "trajectory").unwrap();
    let t = Trajectory::from_table(table.as_table().unwrap()).unwrap();
    assert_eq!(t.n_atoms, 22);
    assert_eq!(t.len(), 200);
    assert!(t.temperature_index.iter().all(|&k| k == 0));
    // 200 frames of a 22-atom molecule (57 degrees of freedom): the mean kinetic
    // temperature has a standard error of about 300 * sqrt(2/57/200) = 4 K.
    let mean_t = t.kinetic_temperature_k.iter().sum::<f64>() / t.len() as f64;
    assert!(
        (mean_t - 300.0).abs() < 25.0,
        "mean kinetic temperature {mean_t}"
    );
    assert!(t.potential.iter().all(|u| u.is_finite()));
    assert!(t.forces.iter().all(|f| f.is_finite()));
}
