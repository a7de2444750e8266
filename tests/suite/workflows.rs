//! Every workflow shipped in `workflows/` loads and validates against the built-in
//! stages: its YAML, stage names, params, input wiring, and the files its params name.

use std::path::Path;

use cgloop::stages::Registry;

#[test]
fn every_bundled_workflow_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    let registry = Registry::builtin();
    let mut files: Vec<_> = std::fs::read_dir("workflows")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        if let Err(e) = cgloop::workflow::load(file, &registry) {
            panic!("{}: {e}", file.display());
        }
    }
}

/// An optional param that is left out of the defaults (train_flow's
/// `autoregressive_levels`): accepted when given, checked, and absent from the resolved
/// params (so from the key) when unset, which keeps the keys of the nodes written before it.
#[test]
fn an_optional_param_is_accepted_and_left_out_of_the_params_when_unset() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let registry = Registry::builtin();
    let dir = std::env::temp_dir().join(format!("cgloop-optional-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let node = |extra: &str| {
        format!(
            "name: o\nseed: 1\nnodes:\n  fg:\n    stage: import_trajectory\n    params: {{topology: {0}/datasets/alanine_dipeptide/ala2_ff14SB.prmtop, frames: {0}/datasets/alanine_dipeptide/ala2_ff14SB.pdb}}\n  map:\n    stage: train_map\n    inputs: {{trajectory: fg.trajectory, atoms: fg.atoms}}\n  flow:\n    stage: train_flow\n    inputs: {{trajectory: fg.trajectory, atoms: fg.atoms, assignment: map.assignment}}\n    params: {{epochs: 1{extra}}}\n",
            root.display()
        )
    };
    let load = |extra: &str| {
        let file = dir.join("wf.yaml");
        std::fs::write(&file, node(extra)).unwrap();
        cgloop::workflow::load(&file, &registry)
    };
    let params = |wf: &cgloop::workflow::Workflow| {
        wf.nodes
            .iter()
            .find(|n| n.id == "flow")
            .unwrap()
            .params
            .clone()
    };
    let unset = params(&load("").unwrap());
    assert!(unset.get("autoregressive_levels").is_none(), "{unset}");
    assert_eq!(unset["epochs"], 1);
    let set = params(&load(", autoregressive_levels: 8").unwrap());
    assert_eq!(set["autoregressive_levels"], 8);
    let Err(error) = load(", autoregressive_levels: 0") else {
        panic!("autoregressive_levels 0 was accepted")
    };
    let error = error.to_string();
    assert!(
        error.contains("nodes.flow.params.autoregressive_levels") && error.contains("at least 1"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
