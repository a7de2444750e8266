//! `protein_observables` on constructed cases (the native structure, a rotated and moved
//! copy, its mirror image, a stretched chain) and on a short CLN025 run from the crystal
//! structure.

use crate::common;

use std::path::Path;

use cgloop::artifact::Artifact;
use cgloop::exec::{RunOptions, Store, run};
use cgloop::md::io::pdb::{parse_pdb, write_pdb};
use cgloop::stages::Registry;
use cgloop::workflow;
use common::{TempDir, f64_column};

fn chignolin() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/chignolin")
}

fn run_workflow(dir: &TempDir, text: &str) -> (Store, cgloop::exec::RunReport) {
    let file = dir.write("wf.yaml", text);
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    (store, report)
}

fn table(
    store: &Store,
    report: &cgloop::exec::RunReport,
    id: &str,
    output: &str,
) -> arrow_array::RecordBatch {
    let node = report.nodes.iter().find(|n| n.id == id).unwrap();
    match store.load_output(&node.key, output).unwrap() {
        Artifact::Table(t) => t,
        _ => panic!("{output} is not a table"),
    }
}

/// Rotation by `angle` about z, then a shift.
fn moved(x: &[[f64; 3]], angle: f64, shift: [f64; 3]) -> Vec<[f64; 3]> {
    let (c, s) = (angle.cos(), angle.sin());
    x.iter()
        .map(|p| {
            [
                c * p[0] - s * p[1] + shift[0],
                s * p[0] + c * p[1] + shift[1],
                p[2] + shift[2],
            ]
        })
        .collect()
}

#[test]
fn rmsd_q_and_handedness_of_constructed_frames() {
    let dir = TempDir::new("protein-constructed");
    let native_text = std::fs::read_to_string(chignolin().join("cln025_ff14SB.pdb")).unwrap();
    let native = parse_pdb(&native_text, "cln025_ff14SB.pdb").unwrap();
    let x = native.frames[0].clone();
    // Four frames: the native, a rotated and moved copy, its mirror image, and the
    // native with the second half of the chain moved 3 nm away.
    let mirror: Vec<[f64; 3]> = x.iter().map(|p| [-p[0], p[1], p[2]]).collect();
    let mut apart = x.clone();
    let half = native
        .atoms
        .iter()
        .position(|a| a.residue_number == 6)
        .unwrap();
    for p in &mut apart[half..] {
        p[2] += 3.0;
    }
    let frames = vec![
        x.clone(),
        moved(&x, 1.2, [0.5, -0.3, 2.0]),
        moved(&mirror, -0.4, [0.0, 1.0, 0.0]),
        apart,
    ];
    dir.write("frames.pdb", &write_pdb(&native.atoms, &frames).unwrap());
    let text = format!(
        "name: constructed\nseed: 1\nnodes:\n  frames:\n    stage: import_trajectory\n    \
         params: {{topology: {}, frames: {}, solvent: obc2}}\n  protein:\n    stage: \
         protein_observables\n    inputs: {{trajectory: frames.trajectory, atoms: frames.atoms}}\n    \
         params: {{native: {}, tica_lag: 1, blocks: 2, resamples: 10}}\n",
        chignolin().join("cln025_ff14SB.prmtop").display(),
        dir.path().join("frames.pdb").display(),
        chignolin().join("cln025_ff14SB.pdb").display(),
    );
    let (store, report) = run_workflow(&dir, &text);
    let t = table(&store, &report, "protein", "frames");
    let (rmsd, mirror_rmsd, q) = (
        f64_column(&t, "rmsd_nm"),
        f64_column(&t, "mirror_rmsd_nm"),
        f64_column(&t, "q"),
    );
    println!("rmsd {rmsd:?}\nmirror {mirror_rmsd:?}\nq {q:?}");
    // The native and its moved copy: RMSD 0 (PDB precision, 1e-4 nm), Q 1.
    for i in [0, 1] {
        assert!(rmsd[i] < 1e-4, "frame {i}: {}", rmsd[i]);
        assert!(q[i] > 0.999, "frame {i}: {}", q[i]);
        assert!(mirror_rmsd[i] > 0.1, "frame {i}: {}", mirror_rmsd[i]);
    }
    // The mirror image: far from the native, on the mirrored native; every distance
    // kept, so Q stays 1.
    assert!(
        rmsd[2] > 0.1 && mirror_rmsd[2] < 1e-4,
        "{} {}",
        rmsd[2],
        mirror_rmsd[2]
    );
    assert!(q[2] > 0.999);
    // The chain pulled apart: contacts across the hairpin broken.
    assert!(rmsd[3] > 0.2 && q[3] < 0.7, "{} {}", rmsd[3], q[3]);

    let s = table(&store, &report, "protein", "summary");
    assert_eq!(f64_column(&s, "folded_fraction")[0], 0.5);
    // Only the mirror image is folded into the mirror image (the stretched chain, far
    // from both, happens to be nearer the mirrored native: handedness means nothing
    // there).
    assert_eq!(f64_column(&s, "mirror_folded_fraction")[0], 0.25);
    assert!(mirror_rmsd[3] < rmsd[3]);
    let e2e = f64_column(&t, "end_to_end_nm");
    assert!((e2e[0] - e2e[1]).abs() < 1e-4 && (e2e[0] - e2e[2]).abs() < 1e-4);
}

/// A short run from the crystal-based structure stays folded, and the crystal PDB (no
/// hydrogens, anisotropic records) serves as the native structure.
#[test]
fn a_short_cln025_run_from_the_native_is_folded() {
    let dir = TempDir::new("protein-cln025");
    let text = format!(
        "name: cln025\nseed: 3\nnodes:\n  fg:\n    stage: fg_sample\n    params: {{topology: {}, \
         coordinates: {}, solvent: obc2, temperature_k: 340, equilibration_steps: 500, \
         steps: 4000, save_every: 50}}\n  protein:\n    stage: protein_observables\n    \
         inputs: {{trajectory: fg.trajectory, atoms: fg.atoms}}\n    params: {{native: {}, \
         tica_lag: 2, blocks: 4, resamples: 50}}\n",
        chignolin().join("cln025_ff14SB.prmtop").display(),
        chignolin().join("cln025_ff14SB.inpcrd").display(),
        chignolin().join("5awl_crystal.pdb").display(),
    );
    let (store, report) = run_workflow(&dir, &text);
    let s = table(&store, &report, "protein", "summary");
    let get = |name: &str| f64_column(&s, name)[0];
    println!(
        "folded {} q {} rmsd {} rg {} e2e {}",
        get("folded_fraction"),
        get("q"),
        get("rmsd_nm"),
        get("rg_nm"),
        get("end_to_end_nm"),
    );
    assert_eq!(get("folded_fraction"), 1.0);
    assert_eq!(get("mirror_folded_fraction"), 0.0);
    assert!(get("q") > 0.8, "{}", get("q"));
    assert!(get("rmsd_nm") < 0.15, "{}", get("rmsd_nm"));
    // CLN025 folded: a C-alpha radius of gyration near 0.5 nm.
    assert!((0.45..0.75).contains(&get("rg_nm")), "{}", get("rg_nm"));
    let tica = table(&store, &report, "protein", "tica");
    assert_eq!(tica.num_rows(), 2);
}
