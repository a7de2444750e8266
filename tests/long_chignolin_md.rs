//! The chignolin reference's check (issue 20's "done when"): runs
//! `workflows/chignolin_md.yaml` into `results/store` (or `CGLOOP_STORE`; a run made with
//! `cgloop run` is reused) and requires the two independent runs, one from the native
//! structure and one from an unfolded one, to agree on the folded fraction at 340 K
//! within 2 combined standard errors, each error at most 0.03, and each to reach the
//! native hairpin more often than its mirror image. About 3.6 hours on 2 cores from an
//! empty store:
//!
//!     cargo test --release --test long_chignolin_md -- --ignored --nocapture

mod common;

use common::{BundledRun, f64_column};

#[test]
#[ignore = "long: about 3.6 hours on 2 cores"]
fn two_runs_from_opposite_starts_agree_on_the_folded_fraction() {
    let study = BundledRun::new("workflows/chignolin_md.yaml");
    // Wall times as each node's manifest recorded them (also for cached nodes).
    let mut total = 0.0;
    let mut longest = (String::new(), 0.0f64);
    for node in &study.report.nodes {
        let seconds = study.store.read_manifest(&node.key).unwrap().wall_s;
        total += seconds;
        if seconds > longest.1 {
            longest = (node.id.clone(), seconds);
        }
    }
    println!(
        "node time {total:.0} s in all; longest node {} ({:.0} s)",
        longest.0, longest.1
    );
    assert!(longest.1 < 3600.0, "a node ran over an hour");
    let folded = |node: &str| {
        let s = study.table(node, "summary");
        (
            f64_column(&s, "folded_fraction")[0],
            f64_column(&s, "folded_fraction_se")[0],
            f64_column(&s, "mirror_folded_fraction")[0],
        )
    };
    let (a, a_se, a_mirror) = folded("protein_a");
    let (b, b_se, b_mirror) = folded("protein_b");
    let (all, all_se, _) = folded("protein");
    let z = (a - b) / (a_se * a_se + b_se * b_se).sqrt();
    println!(
        "run A {a:.3} ± {a_se:.3} (mirror {a_mirror:.3}); run B {b:.3} ± {b_se:.3} (mirror {b_mirror:.3}); z {z:+.2}; pooled {all:.3} ± {all_se:.3}"
    );
    assert!(
        a_se <= 0.03 && b_se <= 0.03,
        "errors too large: {a_se:.3}, {b_se:.3}"
    );
    assert!(z.abs() <= 2.0, "the runs disagree: z = {z:.2}");
    // The issue asked for 0.3-0.95, or an explanation before trusting a value outside.
    // ff14SB in OBC2 gives about 0.09: both runs spend most of their time in a misfolded
    // hairpin that this solvent model favours (docs/studies/chignolin.md, section 4). What
    // must hold whatever the force field: both runs reach the native state, and the
    // native hairpin, not its mirror image, is the folded one.
    for (run, fraction, se, mirror) in [("A", a, a_se, a_mirror), ("B", b, b_se, b_mirror)] {
        assert!(
            fraction >= 2.0 * se,
            "run {run} hardly folds: {fraction:.3} ± {se:.3}"
        );
        assert!(
            mirror < fraction,
            "run {run} folds into the mirror image ({mirror:.3}) as often as the native ({fraction:.3})"
        );
    }
}
