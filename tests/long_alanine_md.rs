//! The long check of issue 3: 300 K alanine dipeptide basin populations from replica
//! exchange, in vacuum and OBC2, phi > 0 included. Minutes to run, so ignored by default:
//!
//!     cargo test --release --test long_alanine_md -- --ignored --nocapture
//!
//! It runs `workflows/alanine_dipeptide_md.yaml` into `results/store` (or
//! `CGLOOP_STORE`), so it reuses a run made with `cgloop run`, and prints the
//! populations with their block-bootstrap errors. The second test checks that 4 fs steps
//! with hydrogen mass repartitioning sample the same ensemble as 2 fs steps.

mod common;

use common::{BundledRun, f64_column, string_column};

#[test]
#[ignore = "long: about 10 minutes on 2 cores"]
fn replica_exchange_gives_converged_populations_with_phi_positive_visited() {
    let study = BundledRun::new("workflows/alanine_dipeptide_md.yaml");
    for solvent in ["vacuum", "obc2"] {
        let t = study.table(&format!("rama_{solvent}"), "populations");
        let basins = string_column(&t, "basin");
        let (p, e) = (f64_column(&t, "population"), f64_column(&t, "std_error"));
        let exchanges = study.table(&format!("fg_{solvent}"), "exchanges");
        let rates = f64_column(&exchanges, "acceptance_rate");
        println!(
            "{solvent}: exchange acceptance {:?}",
            rates.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>()
        );
        let mut total = 0.0;
        for i in 0..t.num_rows() {
            println!("{solvent}: {:<14} {:.4} ± {:.4}", basins[i], p[i], e[i]);
            total += p[i];
            assert!(
                e[i] < 0.03,
                "{solvent} {}: error {} too large to call converged",
                basins[i],
                e[i]
            );
        }
        assert!((total - 1.0).abs() < 1e-9);
        let ax = (0..t.num_rows())
            .find(|&i| basins[i] == "C7ax/alpha_L")
            .unwrap();
        assert!(
            p[ax] > 2.0 * e[ax],
            "{solvent}: phi > 0 not resolved: {} ± {}",
            p[ax],
            e[ax]
        );
        assert!(
            rates.iter().all(|&r| (0.05..0.95).contains(&r)),
            "{solvent}: ladder badly spaced: {rates:?}"
        );
    }
}

/// Basin populations of a `compare` node, sample against reference: each within 3
/// combined standard errors.
fn populations_agree(study: &BundledRun, node: &str) {
    let t = study.table(node, "populations");
    let basins = string_column(&t, "basin");
    let (p2, e2) = (f64_column(&t, "reference"), f64_column(&t, "reference_se"));
    let (p4, e4) = (f64_column(&t, "raw"), f64_column(&t, "raw_se"));
    for i in 0..t.num_rows() {
        let z = (p4[i] - p2[i]) / (e2[i] * e2[i] + e4[i] * e4[i]).sqrt();
        println!(
            "{node}: {:<14} reference {:.4} ± {:.4}   sample {:.4} ± {:.4}   z {z:+.2}",
            basins[i], p2[i], e2[i], p4[i], e4[i]
        );
        assert!(z.abs() <= 3.0, "{node} {}: z = {z:.2}", basins[i]);
    }
}

/// The joint tests of a `compare` node for the sample's `moment` (mean or variance):
/// p-values of the sum of z^2 and of the largest |z|, and the observable at the latter.
fn joint_test(study: &BundledRun, node: &str, moment: &str) -> (f64, f64, String) {
    let a = study.table(node, "agreement");
    let (estimates, moments) = (string_column(&a, "estimate"), string_column(&a, "moment"));
    let i = (0..a.num_rows())
        .find(|&i| estimates[i] == "raw" && moments[i] == moment)
        .unwrap();
    let (sum_p, max_p) = (f64_column(&a, "sum_z2_p"), f64_column(&a, "max_abs_z_p"));
    let (max_z, worst) = (f64_column(&a, "max_abs_z"), string_column(&a, "worst"));
    println!(
        "{node}: {moment}s: sum of z^2 p = {:.3}, largest |z| {:.2} ({}) p = {:.3}",
        sum_p[i], max_z[i], worst[i], max_p[i]
    );
    (sum_p[i], max_p[i], worst[i].clone())
}

/// Mean over the bonds `compare` tests (constrained ones are left out) of the sample's
/// variance over the reference's.
fn bond_variance_ratio(study: &BundledRun, node: &str) -> f64 {
    let t = study.table(node, "observables");
    let kinds = string_column(&t, "kind");
    let (reference, sample) = (
        f64_column(&t, "reference_variance"),
        f64_column(&t, "raw_variance"),
    );
    let ratios: Vec<f64> = (0..t.num_rows())
        .filter(|&i| kinds[i] == "bond")
        .map(|i| sample[i] / reference[i])
        .collect();
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    println!(
        "{node}: bond variances / reference, mean over {} bonds: {mean:.3}",
        ratios.len()
    );
    mean
}

/// Masses do not enter exp(-U/kT), the time step does (BAOAB's configurational error is
/// O(dt^2)). Against the 2 fs run (`fg_obc2`), with `compare`'s joint tests (p >= 0.01
/// counts as agreement):
/// - 2 fs with hydrogens at 3.024 amu (`fg_obc2_hmr_2fs`): the same ensemble: basin
///   populations within 3 SE, the means and the variances of every bond, angle and the
///   energy agree;
/// - 4 fs with them (`fg_obc2_hmr`): the same conformations (populations within 3 SE,
///   means agree), and bond variances broader by the step's discretization error,
///   printed and bounded: on average less than 10 % (measured 3.7 %; 0.2 % for HMR at
///   2 fs).
#[test]
#[ignore = "long: about 10 minutes on 2 cores"]
fn hydrogen_mass_repartitioning_keeps_the_ensemble_and_4_fs_steps_keep_its_conformations() {
    let study = BundledRun::new("workflows/alanine_dipeptide_md.yaml");
    for node in ["compare_hmr_2fs", "compare_hmr"] {
        populations_agree(&study, node);
        let (sum_p, max_p, worst) = joint_test(&study, node, "mean");
        assert!(
            sum_p >= 0.01 && max_p >= 0.01,
            "{node}: means differ ({worst})"
        );
        let (sum_p, max_p, worst) = joint_test(&study, node, "variance");
        if node == "compare_hmr_2fs" {
            assert!(
                sum_p >= 0.01 && max_p >= 0.01,
                "{node}: variances differ ({worst})"
            );
        }
        let ratio = bond_variance_ratio(&study, node);
        assert!(
            ratio < 1.10,
            "{node}: bond variances {ratio:.3} x the reference"
        );
    }
}
