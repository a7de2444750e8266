//! The chignolin study's check: runs `workflows/chignolin.yaml` into `results/store` (or
//! `CGLOOP_STORE`; its FG nodes are shared with `chignolin_md.yaml`, so a store that holds
//! that reference skips them) and requires what the study claims: no node over an hour,
//! a Kish ESS of at least 1 % of the backmapped draws, and a reweighted folded fraction at
//! 340 K within 0.05 of the FG reference, closer than the raw backmapped estimate
//! wherever that one is off by more than its error, and reweighted JS of the TIC1 x TIC2
//! map and of the C-alpha distances (mean) below the raw ones (`protein_compare`).
//! About 3.6 hours for the reference and one more for the CG part on 2 cores from an
//! empty store:
//!
//!     cargo test --release --test long_chignolin_study -- --ignored --nocapture

mod common;

use common::{BundledRun, f64_column};

#[test]
#[ignore = "long: about 4.6 hours on 2 cores"]
fn the_reweighted_backmapped_chignolin_folds_as_the_reference() {
    let study = BundledRun::new("workflows/chignolin.yaml");
    let mut longest = (String::new(), 0.0f64);
    for node in &study.report.nodes {
        let seconds = study.store.read_manifest(&node.key).unwrap().wall_s;
        if seconds > longest.1 {
            longest = (node.id.clone(), seconds);
        }
    }
    println!("longest node {} ({:.0} s)", longest.0, longest.1);
    assert!(longest.1 < 3600.0, "a node ran over an hour");

    let weights = study.table("reweight", "summary");
    let (ess, fraction, largest) = (
        f64_column(&weights, "ess")[0],
        f64_column(&weights, "ess_fraction")[0],
        f64_column(&weights, "max_weight")[0],
    );
    println!(
        "ESS {ess:.1} ({:.2} %), largest normalized weight {largest:.4}",
        100.0 * fraction
    );
    assert!(fraction >= 0.01, "ESS {ess:.1} is under 1 % of the draws");

    let folded = |node: &str| {
        let s = study.table(node, "summary");
        (
            f64_column(&s, "folded_fraction")[0],
            f64_column(&s, "folded_fraction_se")[0],
        )
    };
    let (reference, reference_se) = folded("protein");
    let (raw, raw_se) = folded("cg_obs");
    let (reweighted, reweighted_se) = folded("reweighted_obs");
    println!(
        "folded fraction: FG {reference:.3} ± {reference_se:.3}, raw {raw:.3} ± {raw_se:.3}, \
         reweighted {reweighted:.3} ± {reweighted_se:.3}"
    );
    assert!(
        (reweighted - reference).abs() <= 0.05,
        "reweighted {reweighted:.3} is more than 0.05 from the reference {reference:.3}"
    );
    let js = |node: &str| {
        let s = study.table(node, "summary");
        (
            f64_column(&s, "tica_js")[0],
            f64_column(&s, "mean_distance_js")[0],
        )
    };
    let (raw_tica, raw_distances) = js("compare_raw");
    let (tica, distances) = js("compare_reweighted");
    println!(
        "JS raw / reweighted: TIC1 x TIC2 {raw_tica:.4} / {tica:.4}, C-alpha distances \
         {raw_distances:.4} / {distances:.4}"
    );
    assert!(
        tica < raw_tica,
        "reweighting does not improve the TIC map's JS"
    );
    assert!(
        distances < raw_distances,
        "reweighting does not improve the C-alpha distances' JS"
    );
    if (raw - reference).abs() > raw_se {
        assert!(
            (reweighted - reference).abs() < (raw - reference).abs(),
            "reweighting does not bring the folded fraction closer: raw {raw:.3}, \
             reweighted {reweighted:.3}, reference {reference:.3}"
        );
    }
}
