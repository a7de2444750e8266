//! `cgloop run --executor slurm` against a real Slurm cluster: the one-node cluster of
//! `scripts/slurm-cluster` (Slurm 22.05 and munge from Debian), which `.ci/run` starts
//! before these tests and stops after:
//!
//!     scripts/slurm-cluster start && . /tmp/cgloop-slurm/env
//!     cargo test --release --test slurm -- --ignored --test-threads=1
//!     scripts/slurm-cluster stop
//!
//! Ignored by default (they need the cluster); one at a time, since they share its two
//! CPUs and read its queue. Each checks the bytes against a local run of the same
//! workflow, and the failure paths: a failing node, a job cancelled behind the driver's
//! back, the driver interrupted and run again, two drivers on one store.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, artifact_bytes};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cgloop(store: &Path, args: &[&str]) -> Command {
    assert!(
        Command::new("sinfo").arg("--version").output().is_ok(),
        "no Slurm here: start the test cluster with `scripts/slurm-cluster start` and \
         `. /tmp/cgloop-slurm/env`"
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_cgloop"));
    c.arg("--store")
        .arg(store)
        .args(args)
        .current_dir(root())
        .env_remove("RUST_LOG");
    c
}

/// `cgloop run WF --executor slurm` with fast polling, as the tests use it.
fn slurm_args<'a>(workflow: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        workflow,
        "--executor",
        "slurm",
        "--poll-interval",
        "1",
        "--grace",
        "3",
    ];
    args.extend_from_slice(extra);
    args
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn squeue_states() -> Vec<(String, String, String)> {
    let out = Command::new("squeue")
        .args(["--me", "--noheader", "--array", "--format=%i|%T|%j"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 3).then(|| (f[0].into(), f[1].into(), f[2].into()))
        })
        .collect()
}

/// Waits (at most `limit`) for `done`, polling every 0.2 s.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn published_keys(store: &Path) -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_dir(store)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.len() == 64 && store.join(n).join("manifest.json").is_file())
        .collect();
    keys.sort();
    keys
}

fn tmp_entries(store: &Path) -> usize {
    std::fs::read_dir(store.join(".tmp")).unwrap().count()
}

/// The bytes of every artifact a local run of `workflow` writes.
fn local_bytes(dir: &TempDir, workflow: &str, extra: &[&str]) -> Vec<(String, Vec<u8>)> {
    let store = dir.path().join("local");
    let mut args = vec!["run", workflow, "-j", "2"];
    args.extend_from_slice(extra);
    let out = cgloop(&store, &args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    artifact_bytes(&store)
}

/// A workflow of small nodes: fast replica exchange, its Ramachandran populations, and
/// a second, independent run (so two nodes are ready together: a job array).
fn small_workflow(dir: &TempDir, extra_nodes: &str) -> PathBuf {
    let ala = root().join("datasets/alanine_dipeptide");
    let fg = |steps: u64| {
        format!(
            "    stage: fg_sample\n    params: {{topology: {}, coordinates: {}, \
             solvent: vacuum, steps: {steps}, save_every: 50, replicas: 2, \
             max_temperature_k: 350, exchange_every: 250, equilibration_steps: 500}}\n",
            ala.join("ala2_ff14SB.prmtop").display(),
            ala.join("ala2_ff14SB.inpcrd").display()
        )
    };
    let yaml = format!(
        "name: slurm_small\nseed: 7\nnodes:\n  fg:\n{}  other:\n{}  rama:\n    stage: \
         ramachandran\n    inputs: {{trajectory: fg.trajectory, atoms: fg.atoms}}\n{extra_nodes}",
        fg(5_000),
        fg(4_000)
    );
    dir.write("small.yaml", &yaml)
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/slurm-cluster start)"]
fn smoke_and_quick_studies_give_the_local_bytes() {
    for workflow in [
        "workflows/smoke.yaml",
        "workflows/alanine_dipeptide_quick.yaml",
    ] {
        let dir = TempDir::new("slurm-same-bytes");
        let local = local_bytes(&dir, workflow, &[]);
        let store = dir.path().join("slurm");
        let start = Instant::now();
        let out = cgloop(&store, &slurm_args(workflow, &[])).output().unwrap();
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        println!(
            "{workflow}: {:.1} s through Slurm\n{log}",
            start.elapsed().as_secs_f64()
        );
        assert!(log.contains("slurm: "), "{log}");
        let slurm = artifact_bytes(&store);
        assert_eq!(
            local.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            slurm.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            "{workflow}: other keys or outputs"
        );
        for ((path, a), (_, b)) in local.iter().zip(&slurm) {
            assert!(a == b, "{workflow}: {path} differs between local and Slurm");
        }
        // Run again: everything cached, nothing submitted.
        let again = cgloop(&store, &slurm_args(workflow, &[])).output().unwrap();
        let log = text(&again);
        assert!(again.status.success(), "{log}");
        assert!(log.contains("0 ran"), "{log}");
        assert!(log.contains("in 0 submissions"), "{log}");
    }
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/slurm-cluster start)"]
fn nodes_ready_together_go_as_one_job_array() {
    let dir = TempDir::new("slurm-array");
    let wf = small_workflow(&dir, "");
    let wf = wf.to_str().unwrap();
    let store = dir.path().join("slurm");
    let out = cgloop(&store, &slurm_args(wf, &[])).output().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    // fg and other are ready at once (one array); rama after fg.
    assert!(
        log.contains("3 nodes in 2 submissions (1 job array)"),
        "{log}"
    );
    assert_eq!(artifact_bytes(&store), local_bytes(&dir, wf, &[]));
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/slurm-cluster start)"]
fn a_failing_node_names_its_error_and_log_and_its_dependents_do_not_run() {
    let dir = TempDir::new("slurm-fail");
    let garbage = dir.write("broken.dcd", "this is not a DCD file");
    let extra = format!(
        "  bad:\n    stage: import_trajectory\n    params: {{topology: {}, frames: {}}}\n  \
         after_bad:\n    stage: ramachandran\n    inputs: {{trajectory: bad.trajectory, \
         atoms: bad.atoms}}\n",
        root()
            .join("datasets/alanine_dipeptide/ala2_ff14SB.prmtop")
            .display(),
        garbage.display()
    );
    let wf = small_workflow(&dir, &extra);
    let store = dir.path().join("slurm");
    let out = cgloop(&store, &slurm_args(wf.to_str().unwrap(), &[]))
        .output()
        .unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    let failed = log
        .lines()
        .find(|l| l.contains("FAILED") && l.contains("bad"))
        .unwrap_or_else(|| panic!("no failure line for `bad`:\n{log}"));
    assert!(failed.contains("broken.dcd"), "{failed}");
    let log_path = failed
        .split("log: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no log path in: {failed}"));
    let job_log = std::fs::read_to_string(log_path).unwrap();
    assert!(job_log.contains("broken.dcd"), "{job_log}");
    assert!(
        log.contains("skipped  after_bad") && log.contains("upstream node `bad` failed"),
        "{log}"
    );
    assert!(
        log.contains("3 ran, 0 cached, 1 failed, 1 skipped"),
        "{log}"
    );
}

/// A long node: fg_sample for about a minute on one core.
fn slow_node(steps: u64) -> String {
    let ala = root().join("datasets/alanine_dipeptide");
    format!(
        "  slow:\n    stage: fg_sample\n    params: {{topology: {}, coordinates: {}, \
         solvent: vacuum, steps: {steps}, save_every: 5000, replicas: 1}}\n",
        ala.join("ala2_ff14SB.prmtop").display(),
        ala.join("ala2_ff14SB.inpcrd").display()
    )
}

fn running_job(name_part: &str) -> Option<String> {
    squeue_states()
        .into_iter()
        .find(|(_, state, name)| state == "RUNNING" && name.contains(name_part))
        .map(|(id, _, _)| id)
}

fn spawn(store: &Path, args: &[&str]) -> Child {
    cgloop(store, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/slurm-cluster start)"]
fn a_job_cancelled_behind_the_drivers_back_fails_its_node() {
    let dir = TempDir::new("slurm-scancel");
    let wf = small_workflow(&dir, &slow_node(50_000_000));
    let store = dir.path().join("slurm");
    let driver = spawn(&store, &slurm_args(wf.to_str().unwrap(), &["--no-arrays"]));
    let mut job = None;
    wait_for(Duration::from_secs(60), "the slow job to run", || {
        job = running_job("slurm_small.slow");
        job.is_some()
    });
    let job = job.unwrap();
    assert!(
        Command::new("scancel")
            .arg(&job)
            .status()
            .unwrap()
            .success()
    );
    let out = driver.wait_with_output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    let failed = log
        .lines()
        .find(|l| l.contains("FAILED") && l.contains("slow"))
        .unwrap_or_else(|| panic!("no failure line for `slow`:\n{log}"));
    assert!(
        failed.contains(&format!("job {job} ended without a result")),
        "{failed}"
    );
    assert!(failed.contains("log: "), "{failed}");
    assert!(log.contains("3 ran, 0 cached, 1 failed"), "{log}");
    assert_eq!(
        tmp_entries(&store),
        0,
        "a cancelled job left a temporary folder"
    );
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/slurm-cluster start)"]
fn an_interrupted_driver_cancels_its_jobs_and_a_rerun_reuses_what_finished() {
    let dir = TempDir::new("slurm-interrupt");
    let wf = small_workflow(&dir, &slow_node(50_000_000));
    let wf = wf.to_str().unwrap();
    let store = dir.path().join("slurm");
    let driver = spawn(&store, &slurm_args(wf, &["--no-arrays"]));
    wait_for(
        Duration::from_secs(90),
        "fg, other and rama to publish",
        || store.is_dir() && published_keys(&store).len() == 3,
    );
    wait_for(Duration::from_secs(30), "the slow job to run", || {
        running_job("slurm_small.slow").is_some()
    });
    let finished = published_keys(&store);
    // SIGTERM, as a cluster's session end or `kill` sends it.
    assert!(
        Command::new("kill")
            .args(["-TERM", &driver.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = driver.wait_with_output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("interrupted: its job"), "{log}");
    wait_for(
        Duration::from_secs(30),
        "the cancelled job to leave",
        || running_job("slurm_small.slow").is_none(),
    );
    assert_eq!(published_keys(&store), finished, "nothing new published");
    assert_eq!(tmp_entries(&store), 0, "half-written node left behind");
    // Rerun with a shorter slow node: the finished ones are reused.
    let again = cgloop(&store, &slurm_args(wf, &["--set", "slow.steps=20000"]))
        .output()
        .unwrap();
    let log = text(&again);
    assert!(again.status.success(), "{log}");
    assert!(log.contains("1 ran, 3 cached"), "{log}");
}

#[test]
#[ignore = "needs the Slurm test cluster (scripts/slurm-cluster start)"]
fn two_drivers_on_one_store_publish_each_node_once() {
    let dir = TempDir::new("slurm-two-drivers");
    let wf = small_workflow(&dir, "");
    let wf = wf.to_str().unwrap();
    let store = dir.path().join("slurm");
    std::fs::create_dir_all(&store).unwrap();
    let a = spawn(&store, &slurm_args(wf, &[]));
    let b = spawn(&store, &slurm_args(wf, &[]));
    for driver in [a, b] {
        let out = driver.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(published_keys(&store).len(), 3);
    assert_eq!(tmp_entries(&store), 0);
    assert_eq!(artifact_bytes(&store), local_bytes(&dir, wf, &[]));
}
