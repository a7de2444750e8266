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

/// Every table a built-in stage reads or writes has a declared schema, and kinds that
/// share a name (the name is what wiring compares) declare the same columns.
#[test]
fn every_table_kind_declares_one_schema_per_name() {
    use std::collections::BTreeMap;
    let registry = Registry::builtin();
    let mut by_name: BTreeMap<&str, (String, arrow_schema::Schema)> = BTreeMap::new();
    let mut tables = 0;
    for stage in registry.iter() {
        for port in stage.inputs().iter().chain(stage.outputs()) {
            let Some(schema) = port.kind.schema() else {
                continue;
            };
            tables += 1;
            assert!(
                !schema.fields().is_empty(),
                "{}.{}",
                stage.name(),
                port.name
            );
            let at = format!("{}.{}", stage.name(), port.name);
            match by_name.get(port.kind.name) {
                Some((first, known)) => assert_eq!(
                    known, &schema,
                    "kind `{}` of {at} differs from the one of {first}",
                    port.kind.name
                ),
                None => {
                    by_name.insert(port.kind.name, (at, schema));
                }
            }
        }
    }
    assert!(tables >= 40, "{tables} table ports");
}

/// A table of one kind cannot feed an input of another: `fit_potential`'s summary is not
/// a table of frame weights, and validation says so with the line.
#[test]
fn a_table_of_another_kind_is_refused_at_validation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let registry = Registry::builtin();
    let dir = std::env::temp_dir().join(format!("cgloop-kinds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wf.yaml");
    std::fs::write(
        &file,
        format!(
            "name: k\nseed: 1\nnodes:\n  fg:\n    stage: import_trajectory\n    params: {{topology: {0}/datasets/alanine_dipeptide/ala2_ff14SB.prmtop, frames: {0}/datasets/alanine_dipeptide/ala2_ff14SB.pdb}}\n  map:\n    stage: train_map\n    inputs: {{trajectory: fg.trajectory, atoms: fg.atoms}}\n  rama:\n    stage: ramachandran\n    inputs: {{trajectory: fg.trajectory, atoms: fg.atoms, weights: map.losses}}\n",
            root.display()
        ),
    )
    .unwrap();
    let Err(error) = cgloop::workflow::load(&file, &registry) else {
        panic!("a losses table was accepted as frame weights");
    };
    let error = error.to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        error.contains("`map.losses` is a `map_losses` but input `weights` of stage `ramachandran` takes a `frame_weights`"),
        "{error}"
    );
    assert!(error.contains(":12:"), "{error}");
}
