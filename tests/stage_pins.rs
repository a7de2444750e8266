//! Keys that follow the bytes: every built-in stage runs once on a tiny workflow
//! (`tests/fixtures/stage_pins.yaml`, seconds), and the blake3 of each of its outputs
//! (a table's data, without the provenance metadata that names the keys) is pinned in `tests/golden/stage_outputs.tsv` next to the stage's name and `VERSION`. A
//! change anywhere (a stage, a shared kernel, a sampler, a dependency) that moves a
//! stage's bytes fails here until that stage's `VERSION` is bumped, so that no store
//! keeps stale artifacts under unchanged keys; then the pins are rewritten with
//!
//!     CGLOOP_UPDATE_PINS=1 cargo test --release --test stage_pins
//!
//! The pins hold on any x86-64 machine with AVX2 and FMA (the same bits on every
//! instruction set and cache size, `docs/artifacts.md`), so a machine that breaks that
//! promise fails here too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cgloop::artifact::{decode_table, encode_table};
use cgloop::exec::{RunOptions, Store, run};
use cgloop::stages::Registry;
use cgloop::workflow;
use common::TempDir;

const PINS: &str = "tests/golden/stage_outputs.tsv";

/// One line per output: node, stage, VERSION, output file, blake3 (hex).
type Pins = BTreeMap<(String, String), (String, u32, String)>;

fn parse(text: &str) -> Pins {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "{PINS}: {l:?}");
            (
                (f[0].to_string(), f[3].to_string()),
                (f[1].to_string(), f[2].parse().unwrap(), f[4].to_string()),
            )
        })
        .collect()
}

fn render(pins: &Pins) -> String {
    let mut out = String::from(
        "# node\tstage\tVERSION\toutput\tblake3 (tests/stage_pins.rs; rewrite with CGLOOP_UPDATE_PINS=1)\n",
    );
    for ((node, file), (stage, version, hash)) in pins {
        out += &format!("{node}\t{stage}\t{version}\t{file}\t{hash}\n");
    }
    out
}

/// A file's bytes, for a Parquet table without its key-value metadata: that holds the
/// node's key and its inputs' keys, which move with any upstream VERSION, while the pin
/// is about what this stage computed.
fn data_bytes(file: &Path) -> Vec<u8> {
    let bytes = std::fs::read(file).unwrap();
    if file.extension().is_some_and(|e| e == "parquet") {
        let (table, _) = decode_table(bytes.into()).unwrap();
        return encode_table(&table, &BTreeMap::new()).unwrap();
    }
    bytes
}

#[test]
fn every_stage_output_is_pinned_to_its_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    let registry = Registry::builtin();
    let wf = workflow::load(&root.join("tests/fixtures/stage_pins.yaml"), &registry)
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("pins");
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded(), "{report:?}");

    let mut got = Pins::new();
    for node in &report.nodes {
        let stage = &wf.nodes[wf.index_of(&node.id).unwrap()].stage;
        let mut files: Vec<_> = std::fs::read_dir(store.node_dir(&node.key))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap() != "manifest.json")
            .collect();
        files.sort();
        for file in files {
            let hash = blake3::hash(&data_bytes(&file)).to_hex().to_string();
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            got.insert(
                (node.id.clone(), name),
                (stage.name().to_string(), stage.version(), hash),
            );
        }
    }
    let covered: BTreeSet<&str> = got.values().map(|(s, _, _)| s.as_str()).collect();
    let all: BTreeSet<&str> = registry.names().into_iter().collect();
    assert_eq!(
        covered, all,
        "the pin workflow must run every built-in stage"
    );

    if std::env::var_os("CGLOOP_UPDATE_PINS").is_some() {
        std::fs::write(root.join(PINS), render(&got)).unwrap();
        return;
    }
    let pinned = parse(&std::fs::read_to_string(root.join(PINS)).unwrap_or_default());
    let mut problems = Vec::new();
    for (at, (stage, version, hash)) in &got {
        match pinned.get(at) {
            None => problems.push(format!("{} {}: not pinned", at.0, at.1)),
            Some((_, v, h)) if v == version && h != hash => problems.push(format!(
                "{} {}: the bytes of {stage} {version} moved; bump {stage}'s VERSION",
                at.0, at.1
            )),
            Some((_, v, _)) if v != version => problems.push(format!(
                "{} {}: {stage} is now VERSION {version} (pinned {v})",
                at.0, at.1
            )),
            _ => {}
        }
    }
    for at in pinned.keys().filter(|at| !got.contains_key(*at)) {
        problems.push(format!("{} {}: pinned but not produced", at.0, at.1));
    }
    assert!(
        problems.is_empty(),
        "stage outputs against {PINS}:\n  {}\nAfter a VERSION bump, rewrite the pins: \
         CGLOOP_UPDATE_PINS=1 cargo test --release --test stage_pins",
        problems.join("\n  ")
    );
}
