//! One fixture per kind of workflow error (tests/fixtures/errors/): each error names the
//! file, the YAML path, the line and column, and lists valid choices where there are some.

use crate::common;

use std::path::PathBuf;

use cgloop::workflow::{self, Diagnostic, ErrorKind};

fn errors_of(fixture: &str) -> Vec<Diagnostic> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/errors")
        .join(fixture);
    match workflow::load(&path, &common::registry()) {
        Ok(_) => panic!("{fixture} validated but should not"),
        Err(e) => {
            // The rendered message names the file.
            assert!(e.to_string().contains(fixture), "{e}");
            e.0
        }
    }
}

struct Case {
    fixture: &'static str,
    kind: ErrorKind,
    yaml_path: &'static str,
    line: usize,
    column: usize,
    message: &'static str,
    choice: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        fixture: "syntax.yaml",
        kind: ErrorKind::Syntax,
        yaml_path: "",
        line: 5,
        column: 4,
        message: "",
        choice: None,
    },
    Case {
        fixture: "unknown_key.yaml",
        kind: ErrorKind::UnknownKey,
        yaml_path: "nodes.src.parms",
        line: 6,
        column: 5,
        message: "unknown key `parms`",
        choice: Some("params"),
    },
    Case {
        fixture: "missing_key.yaml",
        kind: ErrorKind::MissingKey,
        yaml_path: "seed",
        line: 1,
        column: 1,
        message: "missing required key `seed`",
        choice: None,
    },
    Case {
        fixture: "wrong_type.yaml",
        kind: ErrorKind::WrongType,
        yaml_path: "nodes",
        line: 4,
        column: 3,
        message: "found a list",
        choice: None,
    },
    Case {
        fixture: "unknown_stage.yaml",
        kind: ErrorKind::UnknownStage,
        yaml_path: "nodes.src.stage",
        line: 5,
        column: 12,
        message: "unknown stage `sorce`",
        choice: Some("source"),
    },
    Case {
        fixture: "duplicate_id.yaml",
        kind: ErrorKind::DuplicateId,
        yaml_path: "nodes.src",
        line: 6,
        column: 3,
        message: "duplicate node id `src` (first at line 4)",
        choice: None,
    },
    Case {
        fixture: "duplicate_key.yaml",
        kind: ErrorKind::DuplicateKey,
        yaml_path: "nodes.src.stage",
        line: 6,
        column: 5,
        message: "duplicate key `stage`",
        choice: None,
    },
    Case {
        fixture: "dangling_input.yaml",
        kind: ErrorKind::DanglingInput,
        yaml_path: "nodes.double.inputs.numbers",
        line: 8,
        column: 23,
        message: "no node `sorce`",
        choice: Some("src"),
    },
    Case {
        fixture: "unknown_output.yaml",
        kind: ErrorKind::UnknownOutput,
        yaml_path: "nodes.double.inputs.numbers",
        line: 9,
        column: 16,
        message: "has no output `values`",
        choice: Some("numbers"),
    },
    Case {
        fixture: "unknown_input.yaml",
        kind: ErrorKind::UnknownInput,
        yaml_path: "nodes.double.inputs.extra",
        line: 10,
        column: 7,
        message: "stage `scale` has no input `extra`",
        choice: Some("numbers"),
    },
    Case {
        fixture: "missing_input.yaml",
        kind: ErrorKind::MissingInput,
        yaml_path: "nodes.total",
        line: 6,
        column: 3,
        message: "needs input `b` connected",
        choice: None,
    },
    Case {
        fixture: "type_mismatch.yaml",
        kind: ErrorKind::TypeMismatch,
        yaml_path: "nodes.double.inputs.numbers",
        line: 9,
        column: 16,
        message: "`lab.labels` is a `labels` but input `numbers` of stage `scale` takes a `numbers`",
        choice: None,
    },
    Case {
        fixture: "cycle.yaml",
        kind: ErrorKind::Cycle,
        yaml_path: "nodes.a",
        line: 4,
        column: 3,
        message: "cycle: a, b, c",
        choice: None,
    },
    Case {
        fixture: "invalid_param.yaml",
        kind: ErrorKind::InvalidParam,
        yaml_path: "nodes.src.params.scale",
        line: 8,
        column: 7,
        message: "invalid type: string \"big\", expected f64",
        choice: None,
    },
    Case {
        fixture: "unknown_param.yaml",
        kind: ErrorKind::InvalidParam,
        yaml_path: "nodes.src.params.scael",
        line: 8,
        column: 7,
        message: "unknown parameter `scael` for stage `source`; valid parameters: label, n, scale",
        choice: None,
    },
    Case {
        fixture: "rejected_param.yaml",
        kind: ErrorKind::InvalidParam,
        yaml_path: "defaults.source.n",
        line: 4,
        column: 12,
        message: "must be at least 1",
        choice: None,
    },
    Case {
        fixture: "missing_file.yaml",
        kind: ErrorKind::MissingFile,
        yaml_path: "nodes.r.params.file",
        line: 6,
        column: 14,
        message: "file `datasets/nowhere.prmtop` not found",
        choice: None,
    },
];

#[test]
fn every_error_kind_names_file_path_line_and_choices() {
    for case in CASES {
        let errors = errors_of(case.fixture);
        assert_eq!(errors.len(), 1, "{}: {errors:#?}", case.fixture);
        let e = &errors[0];
        assert_eq!(e.kind, case.kind, "{}: {e}", case.fixture);
        assert_eq!(e.yaml_path, case.yaml_path, "{}: {e}", case.fixture);
        let at = e.location.expect("every error here has a location");
        assert_eq!(
            (at.line, at.column),
            (case.line, case.column),
            "{}: {e}",
            case.fixture
        );
        assert!(e.message.contains(case.message), "{}: {e}", case.fixture);
        match case.choice {
            Some(choice) => {
                let (_, choices) = e.choices.as_ref().expect("choices listed");
                assert!(choices.iter().any(|c| c == choice), "{}: {e}", case.fixture);
                assert!(e.to_string().contains("valid"), "{e}");
            }
            None => assert!(e.choices.is_none(), "{}: {e}", case.fixture),
        }
    }
}

#[test]
fn all_errors_of_a_pass_are_reported_together_in_document_order() {
    let errors = errors_of("many_errors.yaml");
    let kinds: Vec<ErrorKind> = errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![ErrorKind::UnknownStage, ErrorKind::DanglingInput]
    );
    assert_eq!(errors[0].location.unwrap().line, 5);
    assert_eq!(errors[1].location.unwrap().line, 8);
}

#[test]
fn a_missing_workflow_file_is_an_error_naming_it() {
    let errors = errors_of("does_not_exist.yaml");
    assert_eq!(errors[0].kind, ErrorKind::Io);
}

#[test]
fn every_wrong_param_of_a_node_is_reported_in_one_run() {
    let errors = errors_of("several_params.yaml");
    let found: Vec<(&str, usize, &str)> = errors
        .iter()
        .map(|e| {
            (
                e.yaml_path.as_str(),
                e.location.unwrap().line,
                e.message.as_str(),
            )
        })
        .collect();
    let has = |path: &str, line: usize, text: &str| {
        found
            .iter()
            .any(|(p, l, m)| *p == path && *l == line && m.contains(text))
    };
    assert!(
        has("nodes.src.params.scael", 7, "unknown parameter `scael`"),
        "{found:#?}"
    );
    assert!(
        has("nodes.src.params.n", 8, "must be at least 1"),
        "{found:#?}"
    );
    assert!(
        has("nodes.src.params.scale", 9, "invalid type: string \"big\""),
        "{found:#?}"
    );
    assert!(
        has("nodes.r.params.bogus", 12, "unknown parameter `bogus`"),
        "{found:#?}"
    );
    assert!(has("nodes.r.params.file", 12, "not found"), "{found:#?}");
    assert_eq!(errors.len(), 5, "{found:#?}");
}

#[test]
fn an_unclosed_flow_sequence_names_where_it_opened() {
    let errors = errors_of("unclosed_sequence.yaml");
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(
        e.message.contains("flow sequence opened at line 4:6"),
        "{e}"
    );
}

/// `resources:` (cluster requests, per stage and per node): every bad entry is
/// reported with its path and line; a node's own requests win over its stage's, and
/// resources never change a key.
#[test]
fn resources_are_checked_merged_and_kept_out_of_keys() {
    let dir = common::TempDir::new("resources");
    let bad = dir.write(
        "bad.yaml",
        "name: r\nseed: 1\nresources:\n  source: {cpus: 0}\nnodes:\n  \
         a:\n    stage: source\n    resources: {memory_gb: lots, walltime: 5}\n",
    );
    let errors = match workflow::load(&bad, &common::registry()) {
        Ok(_) => panic!("bad resources validated"),
        Err(e) => e.0,
    };
    let found: Vec<(String, usize, String)> = errors
        .iter()
        .map(|d| {
            (
                d.yaml_path.clone(),
                d.location.map_or(0, |l| l.line),
                d.message.clone(),
            )
        })
        .collect();
    let has = |path: &str, line: usize, text: &str| {
        assert!(
            found
                .iter()
                .any(|(p, l, m)| p == path && *l == line && m.contains(text)),
            "no `{text}` at {path} line {line}: {found:?}"
        )
    };
    has("resources.source.cpus", 4, "from 1 to 4096");
    has(
        "nodes.a.resources.memory_gb",
        8,
        "positive number of gigabytes",
    );
    has("nodes.a.resources.walltime", 8, "unknown key `walltime`");
    // A stage name is checked in the graph pass, after the schema holds.
    let typo = dir.write(
        "typo.yaml",
        "name: r\nseed: 1\nresources:\n  sorce: {cpus: 2}\nnodes:\n  a: {stage: source}\n",
    );
    let errors = match workflow::load(&typo, &common::registry()) {
        Ok(_) => panic!("resources for an unknown stage validated"),
        Err(e) => e.0,
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].yaml_path, "resources.sorce");
    assert_eq!(errors[0].location.map(|l| l.line), Some(4));
    assert!(errors[0].message.contains("unknown stage `sorce`"));

    let text = |resources: &str| {
        format!(
            "name: r\nseed: 1\n{resources}nodes:\n  a:\n    stage: source\n    resources: \
             {{time_min: 5}}\n  b:\n    stage: source\n"
        )
    };
    let plain =
        workflow::parse(&text(""), &dir.path().join("p.yaml"), &common::registry()).unwrap();
    let with = workflow::parse(
        &text("resources:\n  source: {cpus: 4, time_min: 30}\n"),
        &dir.path().join("p.yaml"),
        &common::registry(),
    )
    .unwrap();
    let a = &with.nodes[with.index_of("a").unwrap()].resources;
    let b = &with.nodes[with.index_of("b").unwrap()].resources;
    assert_eq!((a.cpus, a.time_min), (Some(4), Some(5.0)));
    assert_eq!((b.cpus, b.time_min), (Some(4), Some(30.0)));
    assert_eq!(b.memory_mb_or_default(), 4 * 2048);
    let keys = |wf: &workflow::Workflow| -> Vec<String> {
        cgloop::exec::compute_keys(wf)
            .unwrap()
            .iter()
            .map(|k| k.key.to_string())
            .collect()
    };
    assert_eq!(keys(&plain), keys(&with));
}
