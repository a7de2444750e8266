//! `map_forces` on alanine dipeptide frames with H-bond constraints (fg_sample's
//! default) and the fixed backbone map: the beads are train_map's to the bit, the optimal
//! map is valid (B P = I), weighs each constraint group alike (so the constraint forces
//! the frames lack cancel), and has smaller bead forces than the basic map, which the
//! node flags for the beads on atoms with constrained hydrogens.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{Array, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray};
use cgloop::artifact::Artifact;
use cgloop::artifact::trajectory::Trajectory;
use cgloop::exec::{RunOptions, Store, run};
use cgloop::stages::Registry;
use cgloop::workflow;
use common::TempDir;

fn workflow_text(extra: &str) -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    format!(
        "name: mf\nseed: 5\nnodes:\n  fg:\n    stage: fg_sample\n    params:\n      \
         topology: {}\n      coordinates: {}\n      equilibration_steps: 1000\n      \
         steps: 20000\n      save_every: 40\n  \
         map:\n    stage: train_map\n    inputs: {{trajectory: fg.trajectory, atoms: fg.atoms}}\n    \
         params: {{map: fixed, epochs: 1, decoder_epochs: 1, decoder_hidden: [8], restarts: 1}}\n  \
         optimal:\n    stage: map_forces\n    inputs: {{trajectory: fg.trajectory, assignment: map.assignment}}\n  \
         basic:\n    stage: map_forces\n    inputs: {{trajectory: fg.trajectory, assignment: map.assignment}}\n    \
         params: {{force_map: basic}}\n{extra}",
        data.join("ala2_ff14SB.prmtop").display(),
        data.join("ala2_ff14SB.inpcrd").display()
    )
}

fn table(store: &Store, key: &workflow::Key, output: &str) -> RecordBatch {
    match store.load_output(key, output).unwrap() {
        Artifact::Table(t) => t,
        Artifact::File(_) => panic!("{output} is not a table"),
    }
}

fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<T>()
        .unwrap()
}

#[test]
fn optimal_force_map_on_constrained_frames() {
    let dir = TempDir::new("map-forces");
    let file = dir.write("mf.yaml", &workflow_text(""));
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    let keys: BTreeMap<String, workflow::Key> =
        report.nodes.iter().map(|n| (n.id.clone(), n.key)).collect();

    // The beads are train_map's, bit for bit; the forces differ.
    let mapped = Trajectory::from_table(&table(&store, &keys["map"], "trajectory")).unwrap();
    let optimal = Trajectory::from_table(&table(&store, &keys["optimal"], "trajectory")).unwrap();
    let basic = Trajectory::from_table(&table(&store, &keys["basic"], "trajectory")).unwrap();
    assert_eq!(optimal.positions_nm, mapped.positions_nm);
    assert_eq!(optimal.step, mapped.step);
    assert_eq!(
        basic.forces, mapped.forces,
        "basic is train_map's force map"
    );
    assert_ne!(optimal.forces, mapped.forces);

    // One weight per constraint group; CA and HA share a group (an H-bond constraint).
    let map = table(&store, &keys["optimal"], "force_map");
    let (bead, name, group, weight) = (
        column::<Int32Array>(&map, "bead"),
        column::<StringArray>(&map, "atom_name"),
        column::<Int32Array>(&map, "group"),
        column::<Float64Array>(&map, "weight"),
    );
    let group_of = |atom: &str| {
        (0..map.num_rows())
            .find(|&k| bead.value(k) == 0 && name.value(k) == atom)
            .map(|k| group.value(k))
            .unwrap()
    };
    assert_eq!(group_of("CA"), group_of("HA"));
    assert_ne!(group_of("CA"), group_of("CB"));
    for k in 0..map.num_rows() {
        for l in 0..map.num_rows() {
            if bead.value(k) == bead.value(l) && group.value(k) == group.value(l) {
                assert_eq!(weight.value(k), weight.value(l), "rows {k}, {l}");
            }
        }
    }

    let summary = table(&store, &keys["optimal"], "summary");
    let consistency = column::<Float64Array>(&summary, "consistency_error");
    assert!(
        consistency.value(0) < 1e-9,
        "B P - I: {}",
        consistency.value(0)
    );
    let rms_basic = column::<Float64Array>(&summary, "rms_basic");
    let rms_mapped = column::<Float64Array>(&summary, "rms_mapped");
    for b in 0..summary.num_rows() {
        assert!(
            rms_mapped.value(b) < rms_basic.value(b),
            "bead {b}: {} against {}",
            rms_mapped.value(b),
            rms_basic.value(b)
        );
    }
    let split = column::<BooleanArray>(&summary, "split_constraint_groups");
    assert!((0..summary.num_rows()).all(|b| !split.value(b)));

    // The basic map weighs N(ALA), CA and N(NME) without their constrained hydrogens;
    // the carbonyl carbons carry none.
    let summary = table(&store, &keys["basic"], "summary");
    let split = column::<BooleanArray>(&summary, "split_constraint_groups");
    let flagged: Vec<usize> = (0..summary.num_rows())
        .filter(|&b| split.value(b))
        .collect();
    assert_eq!(flagged, vec![1, 2, 4], "beads C, N, CA, C, N");
}

#[test]
fn a_negative_tolerance_is_a_param_error() {
    let dir = TempDir::new("map-forces-param");
    let text = workflow_text("").replace(
        "params: {force_map: basic}",
        "params: {force_map: basic, constraint_tolerance_nm: -1}",
    );
    let file = dir.write("mf.yaml", &text);
    let Err(error) = workflow::load(&file, &Registry::builtin()) else {
        panic!("a negative tolerance must be rejected");
    };
    let error = error.to_string();
    assert!(error.contains("constraint_tolerance_nm"), "{error}");
    assert!(error.contains("basic"), "names the node: {error}");
}
