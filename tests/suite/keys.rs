//! Golden tests of the key encoding (src/workflow/key.rs). A change here changes every
//! key in every user's store: bump the encoding version instead of editing the goldens.

use crate::common;

use std::collections::BTreeMap;

use cgloop::exec::compute_keys;
use cgloop::workflow::{self, Ingredients, InputRef, node_seed};
use common::{TempDir, registry};
use serde_json::json;

fn ingredients() -> Ingredients {
    Ingredients {
        stage: "fg_sample".into(),
        version: 3,
        params: json!({
            "steps": 5000000u64,
            "temperature_k": 300.0,
            "offset": -2,
            "solvent": "obc2",
            "ladder": [300.0, 330.5, 363.0],
            "constraints": null,
            "minimize": true,
            "topology": "blake3:0000000000000000000000000000000000000000000000000000000000000000",
        }),
        inputs: BTreeMap::from([(
            "trajectory".to_string(),
            InputRef {
                key: "ab".repeat(32),
                output: "trajectory".into(),
            },
        )]),
        seed: cgloop::workflow::key::hex(&node_seed(20260101, "fg")),
    }
}

#[test]
fn golden_key_of_fixed_ingredients() {
    assert_eq!(
        ingredients().key().to_string(),
        "c0e447d759b04fae8fd2ecc783f259b43fe86ae5c71ecf0c597f4f0ba132b397"
    );
}

#[test]
fn golden_node_seed() {
    assert_eq!(
        cgloop::workflow::key::hex(&node_seed(20260101, "fg")),
        "805582f7a498d296980d476feb18134f6d44f1574752279df3225d597ee52c03"
    );
}

#[test]
fn every_ingredient_changes_the_key() {
    let base = ingredients().key();
    let mut i = ingredients();
    i.version = 4;
    assert_ne!(i.key(), base);
    let mut i = ingredients();
    i.params["temperature_k"] = json!(300.0000000001);
    assert_ne!(i.key(), base);
    let mut i = ingredients();
    i.params["temperature_k"] = json!(300u64); // an integer is not a float
    assert_ne!(i.key(), base);
    let mut i = ingredients();
    i.inputs.get_mut("trajectory").unwrap().output = "other".into();
    assert_ne!(i.key(), base);
    let mut i = ingredients();
    i.seed = cgloop::workflow::key::hex(&node_seed(20260102, "fg"));
    assert_ne!(i.key(), base);
    let mut i = ingredients();
    i.stage = "fg_samplf".into();
    assert_ne!(i.key(), base);
    // Negative zero is zero.
    let mut a = ingredients();
    a.params["x"] = json!(0.0);
    let mut b = ingredients();
    b.params["x"] = json!(-0.0);
    assert_eq!(a.key(), b.key());
}

fn node_key(text: &str) -> String {
    let dir = TempDir::new("keys");
    let file = dir.write("wf.yaml", text);
    let wf = workflow::load(&file, &registry()).unwrap_or_else(|e| panic!("{e}"));
    compute_keys(&wf).unwrap()[0].key.to_string()
}

#[test]
fn map_order_does_not_matter() {
    assert_eq!(
        node_key(
            "name: k\nseed: 1\nnodes:\n  s:\n    stage: source\n    params: {n: 3, scale: 2.0}\n"
        ),
        node_key(
            "seed: 1\nnodes:\n  s:\n    params: {scale: 2.0, n: 3}\n    stage: source\nname: k\n"
        ),
    );
}

#[test]
fn list_order_matters() {
    assert_ne!(
        node_key("name: k\nseed: 1\nnodes:\n  s: {stage: source, params: {weights: [1.0, 2.0]}}\n"),
        node_key("name: k\nseed: 1\nnodes:\n  s: {stage: source, params: {weights: [2.0, 1.0]}}\n"),
    );
}

#[test]
fn a_default_written_out_equals_the_default_left_out() {
    let implicit = node_key("name: k\nseed: 1\nnodes:\n  s: {stage: source}\n");
    assert_eq!(
        implicit,
        node_key(
            "name: k\nseed: 1\nnodes:\n  s: {stage: source, params: {n: 4, scale: 1, label: a}}\n"
        )
    );
    // ... and shared defaults count like node params.
    assert_eq!(
        implicit,
        node_key("name: k\nseed: 1\ndefaults: {source: {n: 4}}\nnodes:\n  s: {stage: source}\n")
    );
    assert_ne!(
        implicit,
        node_key("name: k\nseed: 1\nnodes:\n  s: {stage: source, params: {n: 5}}\n")
    );
}

#[test]
fn the_workflow_name_and_file_location_do_not_enter_the_key() {
    assert_eq!(
        node_key("name: one\nseed: 1\nnodes:\n  s: {stage: source}\n"),
        node_key("name: two\nseed: 1\nnodes:\n  s: {stage: source}\n"),
    );
    // The seed and the node id do.
    assert_ne!(
        node_key("name: one\nseed: 1\nnodes:\n  s: {stage: source}\n"),
        node_key("name: one\nseed: 2\nnodes:\n  s: {stage: source}\n"),
    );
    assert_ne!(
        node_key("name: one\nseed: 1\nnodes:\n  s: {stage: source}\n"),
        node_key("name: one\nseed: 1\nnodes:\n  t: {stage: source}\n"),
    );
}
