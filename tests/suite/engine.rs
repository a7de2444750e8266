//! The executor and store, end to end, on stages defined in `tests/common`.

use crate::common;

use std::path::Path;

use cgloop::exec::verify::{gc, verify};
use cgloop::exec::{NodeState, Outcome, RunOptions, Store, compute_keys, plan_run, run};
use cgloop::workflow::{self, Workflow};
use common::{TempDir, artifact_bytes, registry};

const DIAMOND: &str = r#"
name: diamond
seed: 7
nodes:
  src:
    stage: source
    params: {n: 5, scale: 3.0}
  left:
    stage: scale
    inputs: {numbers: src.numbers}
    params: {factor: 2.0}
  right:
    stage: scale
    inputs: {numbers: src.numbers}
  total:
    stage: sum
    inputs: {a: left.numbers, b: right.numbers}
  other:
    stage: source
"#;

fn load(dir: &TempDir, text: &str) -> Workflow {
    let file = dir.write("wf.yaml", text);
    workflow::load(&file, &registry()).unwrap_or_else(|e| panic!("{e}"))
}

fn run_into(wf: &Workflow, store: &Path, options: &RunOptions) -> cgloop::exec::RunReport {
    let store = Store::open(store).unwrap();
    run(wf, &store, options).unwrap()
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort();
    v
}

#[test]
fn fresh_stores_get_identical_keys_and_bytes_and_a_rerun_runs_nothing() {
    let dir = TempDir::new("replay");
    let wf = load(&dir, DIAMOND);
    let a = run_into(&wf, &dir.path().join("a"), &RunOptions::default());
    let b = run_into(
        &wf,
        &dir.path().join("b"),
        &RunOptions {
            jobs: 4,
            ..RunOptions::default()
        },
    );
    assert!(a.succeeded() && b.succeeded());
    assert_eq!(a.ran().len(), 5);
    let keys = |r: &cgloop::exec::RunReport| {
        let mut k: Vec<_> = r.nodes.iter().map(|n| (n.id.clone(), n.key)).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&a), keys(&b));
    let bytes_a = artifact_bytes(&dir.path().join("a"));
    assert_eq!(bytes_a.len(), 5);
    assert_eq!(bytes_a, artifact_bytes(&dir.path().join("b")));

    let again = run_into(&wf, &dir.path().join("a"), &RunOptions::default());
    assert!(again.ran().is_empty(), "{:?}", again.ran());
    assert_eq!(again.count(|o| *o == Outcome::Cached), 5);
}

#[test]
fn changing_one_param_reruns_that_node_and_its_descendants_and_plan_says_why() {
    let dir = TempDir::new("change");
    let store_dir = dir.path().join("store");
    run_into(&load(&dir, DIAMOND), &store_dir, &RunOptions::default());
    let changed = load(&dir, &DIAMOND.replace("factor: 2.0", "factor: 2.5"));
    let store = Store::open(&store_dir).unwrap();
    let (_, planned) = plan_run(&changed, &store, &RunOptions::default()).unwrap();
    let state = |id: &str| planned.iter().find(|p| p.id == id).unwrap().state.clone();
    assert_eq!(state("src"), NodeState::Cached);
    assert_eq!(state("right"), NodeState::Cached);
    assert_eq!(state("other"), NodeState::Cached);
    assert_eq!(
        state("left"),
        NodeState::ToRun(vec!["param `factor` changed: 2.0 -> 2.5".into()])
    );
    assert_eq!(
        state("total"),
        NodeState::ToRun(vec!["input `a`: upstream node `left` runs".into()])
    );
    let report = run(&changed, &store, &RunOptions::default()).unwrap();
    assert_eq!(sorted(report.ran()), vec!["left", "total"]);
}

#[test]
fn a_default_written_out_gives_the_same_key_as_one_left_out() {
    let dir = TempDir::new("defaults");
    let implicit = load(&dir, DIAMOND);
    let text = DIAMOND.replace(
        "inputs: {numbers: src.numbers}\n  total",
        "inputs: {numbers: src.numbers}\n    params: {factor: 2, sleep_ms: 0}\n  total",
    );
    assert_ne!(text, DIAMOND, "the edit took effect");
    let explicit = load(&dir, &text);
    assert_eq!(
        compute_keys(&implicit).unwrap()[2].key,
        compute_keys(&explicit).unwrap()[2].key
    );
}

#[test]
fn a_failed_node_stops_its_dependents_and_not_the_rest() {
    let dir = TempDir::new("fail");
    let wf = load(
        &dir,
        r#"
name: failing
seed: 1
nodes:
  src: {stage: source}
  bad: {stage: fail, inputs: {numbers: src.numbers}}
  after: {stage: scale, inputs: {numbers: bad.numbers}}
  later: {stage: scale, inputs: {numbers: after.numbers}}
  fine: {stage: scale, inputs: {numbers: src.numbers}}
"#,
    );
    let store_dir = dir.path().join("store");
    let report = run_into(&wf, &store_dir, &RunOptions::default());
    assert!(!report.succeeded());
    let outcome = |id: &str| {
        report
            .nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap()
            .outcome
            .clone()
    };
    assert!(matches!(outcome("bad"), Outcome::Failed(m) if m.contains("step 7")));
    for id in ["after", "later"] {
        assert_eq!(
            outcome(id),
            Outcome::Skipped {
                failed_upstream: "bad".into()
            }
        );
    }
    assert!(matches!(outcome("fine"), Outcome::Ran { .. }));
    // Nothing of the failed node was published.
    assert_eq!(Store::open(&store_dir).unwrap().keys().unwrap().len(), 2);
}

#[test]
fn until_runs_only_what_the_target_needs_and_force_recomputes() {
    let dir = TempDir::new("until");
    let wf = load(&dir, DIAMOND);
    let store_dir = dir.path().join("store");
    let report = run_into(
        &wf,
        &store_dir,
        &RunOptions {
            until: vec!["left".into()],
            ..RunOptions::default()
        },
    );
    assert_eq!(sorted(report.ran()), vec!["left", "src"]);
    let before = artifact_bytes(&store_dir);
    let forced = run_into(
        &wf,
        &store_dir,
        &RunOptions {
            force: vec!["src".into()],
            ..RunOptions::default()
        },
    );
    assert_eq!(sorted(forced.ran()), vec!["other", "right", "src", "total"]);
    // Recomputing src gave the same bytes, so `left` stays valid.
    let after = artifact_bytes(&store_dir);
    for (name, bytes) in &before {
        assert!(after.contains(&(name.clone(), bytes.clone())));
    }
}

#[test]
fn a_flipped_byte_is_caught_by_verify_and_by_the_next_run_that_reads_it() {
    let dir = TempDir::new("flip");
    let wf = load(&dir, DIAMOND);
    let store_dir = dir.path().join("store");
    let first = run_into(&wf, &store_dir, &RunOptions::default());
    let store = Store::open(&store_dir).unwrap();
    assert_eq!(verify(&store).unwrap(), (5, vec![]));

    let src_key = first.nodes.iter().find(|n| n.id == "src").unwrap().key;
    let path = store.node_dir(&src_key).join("numbers.parquet");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let (_, problems) = verify(&store).unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, src_key);
    assert!(
        problems[0].message.contains("corrupt"),
        "{}",
        problems[0].message
    );

    // A run that must read the corrupt artifact fails the reading node.
    let changed = load(&dir, &DIAMOND.replace("factor: 2.0", "factor: 4.0"));
    let report = run(&changed, &store, &RunOptions::default()).unwrap();
    let left = report.nodes.iter().find(|n| n.id == "left").unwrap();
    assert!(
        matches!(&left.outcome, Outcome::Failed(m) if m.contains("corrupt")),
        "{:?}",
        left.outcome
    );
}

#[test]
fn gc_keeps_what_a_workflow_reaches() {
    let dir = TempDir::new("gc");
    let store_dir = dir.path().join("store");
    let wf = load(&dir, DIAMOND);
    run_into(&wf, &store_dir, &RunOptions::default());
    let changed = load(&dir, &DIAMOND.replace("n: 5", "n: 6"));
    run_into(&changed, &store_dir, &RunOptions::default());
    let store = Store::open(&store_dir).unwrap();
    assert_eq!(store.keys().unwrap().len(), 9); // `other` is shared
    let keep = compute_keys(&changed)
        .unwrap()
        .iter()
        .map(|k| k.key)
        .collect();
    let dry = gc(&store, &keep, true).unwrap();
    assert_eq!(dry.removed.len(), 4);
    assert_eq!(store.keys().unwrap().len(), 9);
    gc(&store, &keep, false).unwrap();
    assert_eq!(store.keys().unwrap().len(), 5);
    let again = run(&changed, &store, &RunOptions::default()).unwrap();
    assert!(again.ran().is_empty());
}

#[test]
fn files_named_in_params_enter_the_key_by_content_not_path() {
    let dir = TempDir::new("files");
    let a = dir.write("a.dat", "hello");
    let b = dir.write("b.dat", "hello");
    let wf = |path: &Path| {
        load(
            &dir,
            &format!(
                "name: f\nseed: 1\nnodes:\n  r:\n    stage: read_file\n    params: {{file: {}}}\n",
                path.display()
            ),
        )
    };
    let key_a = compute_keys(&wf(&a)).unwrap()[0].key;
    assert_eq!(key_a, compute_keys(&wf(&b)).unwrap()[0].key);
    std::fs::write(&b, "hullo").unwrap();
    let changed = wf(&b);
    assert_ne!(key_a, compute_keys(&changed).unwrap()[0].key);

    let store_dir = dir.path().join("store");
    run_into(&wf(&a), &store_dir, &RunOptions::default());
    let store = Store::open(&store_dir).unwrap();
    let (_, planned) = plan_run(&changed, &store, &RunOptions::default()).unwrap();
    assert_eq!(
        planned[0].state,
        NodeState::ToRun(vec!["file `file` changed content".into()])
    );
    let report = run(&changed, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded());
    let table = store.load_output(&report.nodes[0].key, "numbers").unwrap();
    assert_eq!(table.as_table().unwrap().num_rows(), 5);
}

#[test]
fn artifacts_carry_provenance_in_parquet_metadata() {
    let dir = TempDir::new("provenance");
    let wf = load(&dir, DIAMOND);
    let store_dir = dir.path().join("store");
    let report = run_into(&wf, &store_dir, &RunOptions::default());
    let left = report.nodes.iter().find(|n| n.id == "left").unwrap();
    let bytes =
        std::fs::read(store_dir.join(left.key.to_string()).join("numbers.parquet")).unwrap();
    let (_, meta) = cgloop::artifact::decode_table(bytes.into()).unwrap();
    assert_eq!(meta["cgloop.key"], left.key.to_string());
    assert_eq!(meta["cgloop.stage"], "scale");
    assert_eq!(meta["cgloop.stage_version"], "1");
    assert_eq!(meta["cgloop.output"], "numbers");
    let params: serde_json::Value = serde_json::from_str(&meta["cgloop.params"]).unwrap();
    assert_eq!(params["factor"], 2.0);
    assert!(meta["cgloop.inputs"].contains("numbers"));
}

fn load_with(dir: &TempDir, text: &str, overrides: &workflow::Overrides) -> Workflow {
    let file = dir.write("wf.yaml", text);
    workflow::load_with(&file, &registry(), overrides).unwrap_or_else(|e| panic!("{e}"))
}

fn set(args: &[&str]) -> workflow::Overrides {
    workflow::Overrides {
        seed: None,
        params: args
            .iter()
            .map(|a| workflow::ParamOverride::parse(a).unwrap())
            .collect(),
    }
}

fn keys_by_id(wf: &Workflow) -> std::collections::BTreeMap<String, cgloop::workflow::Key> {
    let keys = compute_keys(wf).unwrap();
    wf.nodes
        .iter()
        .zip(&keys)
        .map(|(n, k)| (n.id.clone(), k.key))
        .collect()
}

#[test]
fn a_set_param_gives_the_key_of_the_param_written_and_plan_names_the_override() {
    let dir = TempDir::new("set");
    let store_dir = dir.path().join("store");
    run_into(&load(&dir, DIAMOND), &store_dir, &RunOptions::default());
    let written = load(&dir, &DIAMOND.replace("factor: 2.0", "factor: 2.5"));
    let overridden = load_with(&dir, DIAMOND, &set(&["left.factor=2.5"]));
    assert_eq!(keys_by_id(&written), keys_by_id(&overridden));
    assert_eq!(overridden.nodes[1].overridden, ["factor"]);

    let store = Store::open(&store_dir).unwrap();
    let (_, planned) = plan_run(&overridden, &store, &RunOptions::default()).unwrap();
    let state = |id: &str| planned.iter().find(|p| p.id == id).unwrap().state.clone();
    assert_eq!(
        state("left"),
        NodeState::ToRun(vec!["param `factor` changed: 2.0 -> 2.5 (--set)".into()])
    );
    assert_eq!(state("right"), NodeState::Cached);
    // A param the node did not write, set to its default, keeps the key.
    let same = load_with(&dir, DIAMOND, &set(&["right.factor=2.0"]));
    assert_eq!(keys_by_id(&same), keys_by_id(&load(&dir, DIAMOND)));
    // The last --set of a param wins.
    let last = load_with(&dir, DIAMOND, &set(&["left.factor=9", "left.factor=2.5"]));
    assert_eq!(keys_by_id(&last), keys_by_id(&written));
}

#[test]
fn another_seed_is_another_realization_of_every_node() {
    let dir = TempDir::new("seed");
    let store_dir = dir.path().join("store");
    let base = load(&dir, DIAMOND);
    run_into(&base, &store_dir, &RunOptions::default());
    let reseeded = load_with(
        &dir,
        DIAMOND,
        &workflow::Overrides {
            seed: Some(8),
            params: Vec::new(),
        },
    );
    assert_eq!(reseeded.seed, 8);
    let (a, b) = (keys_by_id(&base), keys_by_id(&reseeded));
    assert!(a.iter().all(|(id, k)| b[id] != *k), "every key changes");
    // The same as writing the seed into the file.
    assert_eq!(
        b,
        keys_by_id(&load(&dir, &DIAMOND.replace("seed: 7", "seed: 8")))
    );
    let store = Store::open(&store_dir).unwrap();
    let (_, planned) = plan_run(&reseeded, &store, &RunOptions::default()).unwrap();
    let src = planned.iter().find(|p| p.id == "src").unwrap();
    assert_eq!(
        src.state,
        NodeState::ToRun(vec!["seed changed (--seed)".into()])
    );
}

#[test]
fn set_errors_name_the_argument_and_the_choices() {
    let dir = TempDir::new("set-errors");
    let file = dir.write("wf.yaml", DIAMOND);
    let errors = |args: &[&str]| {
        workflow::load_with(&file, &registry(), &set(args))
            .err()
            .expect("invalid")
            .0
    };
    let e = errors(&["nope.factor=1"]);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, workflow::ErrorKind::BadOverride);
    assert!(e[0].message.contains("--set nope.factor=1"), "{}", e[0]);
    assert!(
        e[0].choices
            .as_ref()
            .unwrap()
            .1
            .contains(&"left".to_string())
    );
    let e = errors(&["left.fcator=1", "src.n=lots"]);
    assert_eq!(e.len(), 2, "{e:?}");
    for d in &e {
        assert!(d.location.is_none(), "not a line of the file: {d}");
        assert!(d.message.contains("(from --set "), "{d}");
    }
    assert!(e.iter().any(|d| d.yaml_path == "nodes.left.params.fcator"));
    assert!(e.iter().any(|d| d.yaml_path == "nodes.src.params.n"));
    // Malformed arguments are refused before the workflow is read.
    assert!(workflow::ParamOverride::parse("left.factor").is_err());
}

#[test]
fn merge_keys_give_the_keys_of_the_params_written_out() {
    let dir = TempDir::new("merge");
    let explicit = load(&dir, DIAMOND);
    let merged_text = DIAMOND
            .replace(
                "    params: {factor: 2.0}\n  right:\n    stage: scale\n    inputs: {numbers: src.numbers}\n",
                "    params: &scale {factor: 2.0}\n  right:\n    stage: scale\n    inputs: {numbers: src.numbers}\n    params: {<<: *scale, sleep_ms: 0}\n",
            );
    assert!(merged_text.contains("<<: *scale"), "the edit took effect");
    let merged = load(&dir, &merged_text);
    assert_eq!(keys_by_id(&explicit), keys_by_id(&merged));
    let text = DIAMOND.replace("params: {factor: 2.0}", "params: {<<: *missing}");
    let file = dir.write("bad.yaml", &text);
    let err = workflow::load(&file, &registry()).err().unwrap();
    assert_eq!(err.0[0].kind, workflow::ErrorKind::Syntax);
}
