//! Runs in separate processes: a run killed with SIGKILL mid-node, and two runs racing
//! on one store. The test binary re-executes itself as the child (`child_run`).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cgloop::exec::verify::verify;
use cgloop::exec::{RunOptions, Store, run};
use cgloop::workflow;
use common::{TempDir, registry};

/// The child process: runs the workflow named by CGLOOP_TEST_CHILD into the store named
/// by CGLOOP_TEST_STORE. Does nothing in a normal test run.
#[test]
fn child_run() {
    let Ok(wf) = std::env::var("CGLOOP_TEST_CHILD") else {
        return;
    };
    let store = Store::open(std::env::var("CGLOOP_TEST_STORE").unwrap()).unwrap();
    let wf = workflow::load(Path::new(&wf), &registry()).unwrap();
    let report = run(
        &wf,
        &store,
        &RunOptions {
            jobs: 2,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(report.succeeded(), "{report:?}");
}

fn spawn(wf: &Path, store: &Path, log: &Path, extra: &[(&str, &Path)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    // The test's path in the suite binary: this module's path less the crate's name.
    let (_, module) = module_path!().split_once("::").unwrap();
    let child = format!("{module}::child_run");
    cmd.args(["--exact", &child, "--nocapture", "--test-threads=1"])
        .env("CGLOOP_TEST_CHILD", wf)
        .env("CGLOOP_TEST_STORE", store)
        .env("CGLOOP_TEST_RUN_LOG", log)
        .stdout(
            std::fs::File::create(log.with_extension(format!("{}.out", std::process::id())))
                .unwrap(),
        );
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn runs(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

const SLOW: &str = r#"
name: slow
seed: 3
nodes:
  src: {stage: source}
  slow:
    stage: scale
    inputs: {numbers: src.numbers}
    params: {sleep_ms: 60000}
  after:
    stage: scale
    inputs: {numbers: slow.numbers}
    params: {factor: 3.0}
"#;

#[test]
fn a_run_killed_mid_node_is_resumed_and_the_store_stays_clean() {
    let dir = TempDir::new("kill");
    let wf = dir.write("wf.yaml", SLOW);
    let store = dir.path().join("store");
    let log = dir.path().join("runs.log");
    let started: PathBuf = dir.path().join("started");
    let mut child = spawn(&wf, &store, &log, &[("CGLOOP_TEST_STARTED", &started)]);
    let t0 = Instant::now();
    while !started.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the slow node never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(runs(&log), vec!["source", "scale"]);
    let opened = Store::open(&store).unwrap();
    assert_eq!(opened.keys().unwrap().len(), 1, "only `src` finished");

    let no_sleep = dir.path().join("unused");
    let mut rerun = spawn(&wf, &store, &log, &[("CGLOOP_TEST_NO_SLEEP", &no_sleep)]);
    assert!(rerun.wait().unwrap().success());
    // `src` was reused; the killed node and its dependent were computed.
    assert_eq!(runs(&log), vec!["source", "scale", "scale", "scale"]);
    assert_eq!(verify(&opened).unwrap(), (3, vec![]));
}

const RACE: &str = r#"
name: race
seed: 4
nodes:
  a: {stage: source, params: {sleep_ms: 300}}
  b: {stage: source, params: {sleep_ms: 300, n: 7}}
  c: {stage: scale, inputs: {numbers: a.numbers}, params: {sleep_ms: 300}}
  d: {stage: sum, inputs: {a: c.numbers, b: b.numbers}}
"#;

#[test]
fn two_processes_on_one_store_compute_each_node_once() {
    let dir = TempDir::new("race");
    let wf = dir.write("wf.yaml", RACE);
    let store = dir.path().join("store");
    let log = dir.path().join("runs.log");
    let mut first = spawn(&wf, &store, &log, &[]);
    let mut second = spawn(&wf, &store, &log, &[]);
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    let mut ran = runs(&log);
    ran.sort();
    assert_eq!(ran, vec!["scale", "source", "source", "sum"]);
    assert_eq!(verify(&Store::open(&store).unwrap()).unwrap(), (4, vec![]));
}
