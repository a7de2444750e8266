//! The `cgloop` binary: exit codes, messages, and the store commands.

use crate::common;

use std::process::{Command, Output};

use common::TempDir;

fn cgloop(args: &[&str], store: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cgloop"))
        .args(args)
        .env("CGLOOP_STORE", store)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn an_invalid_workflow_is_a_user_error_naming_file_line_and_path() {
    let dir = TempDir::new("cli-invalid");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/errors/unknown_key.yaml"
    );
    let out = cgloop(&["run", fixture], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown_key.yaml:6:5: nodes.src.parms: unknown key `parms`"),
        "{err}"
    );
    assert!(
        err.contains("valid keys: stage, inputs, params, resources, description"),
        "{err}"
    );
}

#[test]
fn bad_arguments_and_unknown_keys_are_user_errors() {
    let dir = TempDir::new("cli-args");
    assert_eq!(cgloop(&["frobnicate"], dir.path()).status.code(), Some(2));
    let out = cgloop(&["show", "0123456789ab"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("neither a key"),
        "{}",
        text(&out.stderr)
    );
    let out = cgloop(&["inspect", "/nonexistent.parquet"], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_on_an_empty_store_is_clean() {
    let dir = TempDir::new("cli-verify");
    let out = cgloop(&["verify"], &dir.path().join("store"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("0 nodes verified"));
}

#[test]
fn inspect_prints_schema_metadata_and_rows() {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow_array::{Float64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    let dir = TempDir::new("cli-inspect");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "energy_kj_per_mol",
            DataType::Float64,
            false,
        )])),
        vec![Arc::new(Float64Array::from(vec![-12.5, 3.25]))],
    )
    .unwrap();
    let meta = BTreeMap::from([("cgloop.stage".to_string(), "fg_sample".to_string())]);
    let path = dir.path().join("t.parquet");
    std::fs::write(
        &path,
        cgloop::artifact::encode_table(&batch, &meta).unwrap(),
    )
    .unwrap();
    let out = cgloop(&["inspect", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("2 rows"), "{stdout}");
    assert!(stdout.contains("energy_kj_per_mol: Float64"), "{stdout}");
    assert!(stdout.contains("cgloop.stage: fg_sample"), "{stdout}");
    assert!(stdout.contains("-12.5"), "{stdout}");
}

#[test]
fn help_explains_the_commands_and_exit_codes() {
    let dir = TempDir::new("cli-help");
    let out = cgloop(&["--help"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for word in [
        "run",
        "plan",
        "show",
        "inspect",
        "verify",
        "gc",
        "stages",
        "Exit codes",
    ] {
        assert!(help.contains(word), "{word} missing from --help");
    }
}

#[test]
fn show_finds_the_node_of_a_run_with_another_seed() {
    let dir = TempDir::new("cli-show-seed");
    let store = dir.path().join("store");
    let wf = concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/smoke.yaml");
    let out = cgloop(&["run", wf, "--seed", "3", "--until", "fg"], &store);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The file's own seed names a node that was never run; --seed 3 the one that was.
    let out = cgloop(&["show", "fg", "-w", wf], &store);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not in the store"),
        "{}",
        text(&out.stderr)
    );
    let out = cgloop(&["show", "fg", "-w", wf, "--seed", "3"], &store);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("node      fg (workflow smoke)"));
}
