//! Stores that survive their disk: a disk that fills up while a node is published, a
//! store on a read-only file system, and a store moved to another path. The first two
//! mount a small tmpfs, which needs root (as CI runs); elsewhere they say they were
//! skipped.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cgloop::exec::verify::verify;
use cgloop::exec::{Outcome, RunOptions, RunReport, Store, run};
use cgloop::workflow;
use common::{TempDir, registry};

/// A tmpfs mounted at a folder, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts `size` (as mount's `size=`) at `dir`, or `None` when not root.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            dir,
        );
        Some(Tmpfs(dir.to_path_buf()))
    }

    fn remount(&self, options: &str) {
        mount(&["-o", &format!("remount,{options}")], &self.0);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str], dir: &Path) {
    let status = Command::new("mount").args(args).arg(dir).status().unwrap();
    assert!(status.success(), "mount {args:?} {}", dir.display());
}

fn run_text(dir: &TempDir, text: &str, store: &Store) -> RunReport {
    let file = dir.write("wf.yaml", text);
    let wf = workflow::load(&file, &registry()).unwrap_or_else(|e| panic!("{e}"));
    run(&wf, store, &RunOptions::default()).unwrap()
}

fn failure(report: &RunReport, id: &str) -> String {
    let node = report.nodes.iter().find(|n| n.id == id).unwrap();
    match &node.outcome {
        Outcome::Failed(e) => e.clone(),
        other => panic!("{id}: {other:?}"),
    }
}

/// 200,000 uniform numbers: about 1.6 MB that do not compress.
const BIG: &str = "name: disk\nseed: 1\nnodes:\n  small: {stage: source}\n  \
                   big: {stage: source, params: {n: 200000}}\n";

#[test]
fn a_full_disk_publishes_nothing_half_written_and_says_so() {
    let dir = TempDir::new("full_disk");
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "512k") else {
        return;
    };
    let store = Store::open(disk.0.join("store")).unwrap();
    let report = run_text(&dir, BIG, &store);
    let message = failure(&report, "big");
    assert!(
        message.contains("No space left on device") && message.contains(".tmp"),
        "{message}"
    );
    // Nothing half-published, nothing left behind.
    let (published, problems) = verify(&store).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(published, 1, "only `small` fits");
    assert!(store.temporary_entries().unwrap().is_empty());

    // With room, the rerun computes what failed and reuses what did not.
    disk.remount("size=16m");
    let report = run_text(&dir, BIG, &store);
    assert!(report.succeeded(), "{}", report.summary());
    assert_eq!(report.ran(), ["big"]);
    assert_eq!(verify(&store).unwrap(), (2, vec![]));
}

#[test]
fn a_read_only_store_serves_what_it_holds_and_names_what_it_cannot_write() {
    let dir = TempDir::new("read_only");
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "16m") else {
        return;
    };
    let store = Store::open(disk.0.join("store")).unwrap();
    let small = "name: ro\nseed: 1\nnodes:\n  a: {stage: source}\n";
    assert!(run_text(&dir, small, &store).succeeded());
    disk.remount("ro");

    let store = Store::open(disk.0.join("store")).unwrap();
    let again = run_text(&dir, small, &store);
    assert!(again.succeeded(), "{}", again.summary());
    assert!(again.ran().is_empty());

    let more =
        "name: ro\nseed: 1\nnodes:\n  a: {stage: source}\n  b: {stage: source, params: {n: 5}}\n";
    let report = run_text(&dir, more, &store);
    let message = failure(&report, "b");
    assert!(
        message.contains("Read-only file system") && message.contains("store"),
        "{message}"
    );
}

#[test]
fn a_moved_store_keeps_its_keys() {
    let dir = TempDir::new("moved");
    let wf = "name: moved\nseed: 3\nnodes:\n  a: {stage: source}\n  \
              b: {stage: scale, inputs: {numbers: a.numbers}}\n";
    let before = run_text(&dir, wf, &Store::open(dir.path().join("here")).unwrap());
    assert!(before.succeeded());
    std::fs::rename(dir.path().join("here"), dir.path().join("there")).unwrap();
    let store = Store::open(dir.path().join("there")).unwrap();
    let after = run_text(&dir, wf, &store);
    assert!(
        after.succeeded() && after.ran().is_empty(),
        "{}",
        after.summary()
    );
    let keys = |r: &RunReport| r.nodes.iter().map(|n| n.key).collect::<Vec<_>>();
    assert_eq!(keys(&before), keys(&after));
    assert_eq!(verify(&store).unwrap(), (2, vec![]));
}

/// Two writers of one key, as two cluster jobs without working file locks: the first
/// complete copy stays, the second is dropped without error, and nothing is left in
/// `.tmp/`. A folder without a manifest (a removal killed half-way) is not a node and
/// gets replaced.
#[test]
fn a_second_writer_of_a_key_keeps_the_first_copy() {
    use cgloop::exec::store::Published;
    let dir = TempDir::new("store-second-writer");
    let store = Store::open(dir.path().join("store")).unwrap();
    let wf = workflow::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/smoke.yaml"),
        &cgloop::stages::Registry::builtin(),
    )
    .unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded());
    let key = report.nodes[1].key;
    let manifest = store.read_manifest(&key).unwrap();
    let files: Vec<(String, Vec<u8>)> = manifest
        .outputs
        .values()
        .map(|r| {
            let bytes = std::fs::read(store.node_dir(&key).join(&r.file)).unwrap();
            (r.file.clone(), bytes)
        })
        .collect();
    let mut later = manifest.clone();
    later.wall_s += 1.0;
    assert_eq!(
        store.publish(&key, &later, &files, false).unwrap(),
        Published::Theirs
    );
    assert_eq!(
        store.read_manifest(&key).unwrap(),
        manifest,
        "the first copy stays"
    );
    assert!(store.temporary_entries().unwrap().is_empty());

    std::fs::remove_file(store.node_dir(&key).join("manifest.json")).unwrap();
    assert!(!store.contains(&key));
    assert_eq!(
        store.publish(&key, &later, &files, false).unwrap(),
        Published::Ours
    );
    assert_eq!(store.read_manifest(&key).unwrap(), later);
    assert!(store.verifies(&key));
    assert!(store.temporary_entries().unwrap().is_empty());

    // A forced rerun replaces the node.
    assert_eq!(
        store.publish(&key, &manifest, &files, true).unwrap(),
        Published::Ours
    );
    assert_eq!(store.read_manifest(&key).unwrap(), manifest);
    assert!(store.temporary_entries().unwrap().is_empty());
}
