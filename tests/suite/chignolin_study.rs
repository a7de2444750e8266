//! `workflows/chignolin_quick.yaml`, the chignolin study's graph at toy scale, end to
//! end on a protein: C-alpha map, priors, CG chains, a flow over all 492 internal
//! coordinates of the 166 atoms, backmapping, reweighting with the OBC2 energy, and the
//! protein observables. Its numbers are not converged; what must hold at any scale is
//! that every backmapped frame is a molecule the force field can evaluate and that every
//! chiral centre comes out with the handedness of the FG frames (a C-alpha model cannot
//! tell a hairpin from its mirror image; the atoms decoded from it must).

use crate::common;

use std::path::Path;

use cgloop::artifact::atoms;
use cgloop::artifact::trajectory::Trajectory;
use cgloop::exec::{RunOptions, Store, run};
use cgloop::stages::Registry;
use common::{TempDir, f64_column, i64_column};

/// Sign of (N - CA) . ((C - CA) x (CB - CA)) for each residue with a CB: the handedness
/// of its C-alpha (L-amino acids all give the same sign).
fn chiralities(frame: &[f64], centres: &[[usize; 4]]) -> Vec<f64> {
    let at = |i: usize| [frame[3 * i], frame[3 * i + 1], frame[3 * i + 2]];
    let sub = |a: [f64; 3], b: [f64; 3]| [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    centres
        .iter()
        .map(|&[n, ca, c, cb]| {
            let (u, v, w) = (sub(at(n), at(ca)), sub(at(c), at(ca)), sub(at(cb), at(ca)));
            let x = [
                v[1] * w[2] - v[2] * w[1],
                v[2] * w[0] - v[0] * w[2],
                v[0] * w[1] - v[1] * w[0],
            ];
            (u[0] * x[0] + u[1] * x[1] + u[2] * x[2]).signum()
        })
        .collect()
}

#[test]
fn the_quick_chignolin_study_backmaps_every_residue_with_the_right_handedness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    let wf = cgloop::workflow::load(
        Path::new("workflows/chignolin_quick.yaml"),
        &Registry::builtin(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("chignolin-study-quick");
    let store = Store::open(dir.path().join("store")).unwrap();
    let options = RunOptions {
        jobs: 2,
        ..RunOptions::default()
    };
    let report = run(&wf, &store, &options).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    let table = |id: &str, output: &str| {
        let node = report.nodes.iter().find(|n| n.id == id).unwrap();
        store
            .load_output(&node.key, output)
            .unwrap()
            .as_table()
            .unwrap()
            .clone()
    };

    let atoms = atoms::from_table(&table("a1", "atoms")).unwrap();
    assert_eq!(atoms.len(), 166);
    let find = |r: i32, name: &str| {
        atoms
            .iter()
            .position(|a| a.residue_index == r && a.name == name)
    };
    let centres: Vec<[usize; 4]> = (0..10)
        .filter_map(|r| Some([find(r, "N")?, find(r, "CA")?, find(r, "C")?, find(r, "CB")?]))
        .collect();
    assert_eq!(
        centres.len(),
        9,
        "YYDPETGTWY: every residue but the glycine"
    );

    let fg = Trajectory::from_table(&table("a1", "trajectory")).unwrap();
    let native = chiralities(fg.positions(0), &centres);
    assert!(native.iter().all(|&s| s == native[0]), "all L: {native:?}");

    let backmapped = Trajectory::from_table(&table("backmap", "trajectory")).unwrap();
    let cg = Trajectory::from_table(&table("cg", "trajectory")).unwrap();
    assert_eq!(backmapped.n_atoms, 166);
    assert_eq!(backmapped.len(), cg.len());
    let mut wrong = 0;
    for i in 0..backmapped.len() {
        let s = chiralities(backmapped.positions(i), &centres);
        wrong += s.iter().zip(&native).filter(|(a, b)| a != b).count();
    }
    let total = backmapped.len() * centres.len();
    println!("{wrong} of {total} backmapped chiral centres mirrored");
    assert!(
        wrong * 1000 <= total,
        "{wrong} of {total} chiral centres mirrored"
    );

    // Every backmapped frame has a finite OBC2 energy, so each carries a weight.
    let summary = table("reweight", "summary");
    let samples = i64_column(&summary, "samples")[0];
    assert_eq!(samples as usize, backmapped.len());
    assert_eq!(i64_column(&summary, "finite_samples")[0], samples);
    let ess = f64_column(&summary, "ess")[0];
    println!("quick study ESS {ess:.2} of {samples}");
    assert!(ess >= 1.0 && ess <= samples as f64);
    let weights = f64_column(&table("reweight", "weights"), "weight");
    assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}
