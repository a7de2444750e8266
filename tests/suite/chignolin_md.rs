//! `workflows/chignolin_md_quick.yaml`, the chignolin reference's graph at toy scale: the
//! hot run unfolds the native, run B starts from its last frame, run A from the native,
//! both as chains of segments read as lists, and the pooled observables are those of
//! the two runs together.

use crate::common;

use std::path::Path;

use cgloop::exec::{RunOptions, Store, run};
use cgloop::stages::Registry;
use common::{TempDir, f64_column};

#[test]
fn the_quick_chignolin_reference_runs_both_starts_through_the_protein_observables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    let wf = cgloop::workflow::load(
        Path::new("workflows/chignolin_md_quick.yaml"),
        &Registry::builtin(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("chignolin-quick");
    let store = Store::open(dir.path().join("store")).unwrap();
    let options = RunOptions {
        jobs: 2,
        ..RunOptions::default()
    };
    let report = run(&wf, &store, &options).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    let table = |id: &str, output: &str| {
        let node = report.nodes.iter().find(|n| n.id == id).unwrap();
        store
            .load_output(&node.key, output)
            .unwrap()
            .as_table()
            .unwrap()
            .clone()
    };
    let rmsd = |id: &str| f64_column(&table(id, "frames"), "rmsd_nm");
    let hot = rmsd("unfolded");
    let (a, b) = (rmsd("protein_a"), rmsd("protein_b"));
    println!(
        "hot run's last frame {:.3} nm; run A starts at {:.3}, run B at {:.3}",
        hot[hot.len() - 1],
        a[0],
        b[0]
    );
    // Run B starts from the hot run's unfolded last frame, run A from the native.
    assert!(hot[hot.len() - 1] > 0.3);
    assert!(a[0] < 0.15 && b[0] > 0.3);
    // Two 50 ps segments per run, a frame every ps at 340 K.
    assert_eq!((a.len(), b.len()), (100, 100));
    // The pooled summary is the two runs' frames together.
    let folded = |id: &str| f64_column(&table(id, "summary"), "folded_fraction")[0];
    let pooled = (folded("protein_a") + folded("protein_b")) / 2.0;
    assert!((folded("protein") - pooled).abs() < 1e-12);
    assert_eq!(rmsd("protein").len(), 200);
}
