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
