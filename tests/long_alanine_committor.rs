//! The long check of the committor workflow: alanine dipeptide at 450 K, C7eq -> C7ax.
//! About 30 minutes on 2 cores from an empty store (the walkers' 26), so ignored by
//! default:
//!
//!     cargo test --release --test long_alanine_committor -- --ignored --nocapture
//!
//! It runs `workflows/alanine_dipeptide_committor.yaml` into `results/store` (or
//! `CGLOOP_STORE`) and checks what the study claims:
//! - brute force counts at least 50 transitions each way;
//! - the Hill rate of each walker, with the other walker's q, agrees with the count
//!   along the same exits within three errors of their difference, at A's edge and at
//!   the wider interface, and its error is below the count's;
//! - on the committor test, the configurations with q in [0.4, 0.6] reach B first with
//!   a mean p_B within 0.5 +- 0.1, and p_B rises from the low range to the high one.
//!
//! The committor test's spread over configurations (four times the binomial one) is
//! printed, not asserted: docs/studies/alanine_dipeptide_committor.md.

mod common;

use common::{BundledRun, f64_column, i64_column};

#[test]
#[ignore = "long: about 30 minutes on 2 cores"]
fn the_hill_rate_and_the_committor_test_at_450_k() {
    let study = BundledRun::new("workflows/alanine_dipeptide_committor.yaml");
    let rates = study.table("rates", "summary");
    let (ab, ba) = (
        i64_column(&rates, "transitions_ab")[0],
        i64_column(&rates, "transitions_ba")[0],
    );
    println!(
        "brute force: {ab} A -> B, {ba} B -> A; k_AB {:.4} per ns (95 % {:.4}-{:.4})",
        f64_column(&rates, "rate_ab_per_ns")[0],
        f64_column(&rates, "rate_ab_lo_per_ns")[0],
        f64_column(&rates, "rate_ab_hi_per_ns")[0]
    );
    assert!(ab >= 50 && ba >= 50, "{ab} and {ba} transitions");
    for node in ["rate_a", "rate_b", "rate_a_wide", "rate_b_wide"] {
        let t = study.table(node, "summary");
        let value = |c: &str| f64_column(&t, c)[0];
        let (hill, hill_se) = (value("rate_ab_per_ns"), value("rate_ab_se_per_ns"));
        let (count, count_se) = (
            value("outcome_rate_ab_per_ns"),
            value("outcome_rate_ab_se_per_ns"),
        );
        let (d, d_se) = (value("difference_per_ns"), value("difference_se_per_ns"));
        println!(
            "{node}: Hill {hill:.4} +- {hill_se:.4} per ns, count {count:.4} +- {count_se:.4}, \
             difference {d:.4} +- {d_se:.4}"
        );
        assert!(d.abs() < 3.0 * d_se, "{node}: difference {d} +- {d_se}");
        assert!(hill_se < count_se, "{node}: {hill_se} vs {count_se}");
    }
    let mut means = Vec::new();
    for node in ["test_low", "test_mid", "test_high"] {
        let t = study.table(node, "summary");
        let value = |c: &str| f64_column(&t, c)[0];
        println!(
            "{node}: mean q {:.3}, mean p_B {:.3} +- {:.3}, sd over configurations {:.3} \
             (binomial {:.3})",
            value("mean_q"),
            value("mean_p_b"),
            value("mean_p_b_se"),
            value("sd_p_b"),
            value("binomial_sd")
        );
        means.push(value("mean_p_b"));
    }
    assert!(
        (means[1] - 0.5).abs() <= 0.1,
        "mean p_B at q near 1/2: {}",
        means[1]
    );
    assert!(means[0] < means[1] && means[1] < means[2], "{means:?}");
}
