//! The long check of the committor at 300 K, where no unbiased run crosses: alanine
//! dipeptide, C7eq -> C7ax, by adaptive importance sampling from runs started in each
//! core (windows, shots and refits). About 10 minutes on 2 cores from an empty store,
//! so ignored by default:
//!
//!     cargo test --release --test long_alanine_committor_300k -- --ignored --nocapture
//!
//! It runs `workflows/alanine_dipeptide_committor_300k.yaml` into `results/store` (or
//! `CGLOOP_STORE`) and checks what the study claims:
//! - the committor test on the last fit's own windows (samples no fit has seen), with
//!   windows on q and on logit q: configurations with q in [0.4, 0.6] reach B first
//!   with a mean p_B within 0.5 +- 0.1, and p_B rises from the low range to the high
//!   one;
//! - each Hill rate is positive, with an error, and below the upper end of the exact
//!   Poisson interval of its own run's count (no transition in 100 ns).
//!
//! The same pipeline at 450 K puts the Hill rate 3-4 times (windows on q) or about 2
//! times (on logit q) below the brute force (`just committor`), so the rates printed
//! here are lower estimates: docs/studies/alanine_dipeptide_committor.md.

mod common;

use common::{BundledRun, committor_tests, hill_rate};

#[test]
#[ignore = "long: about 10 minutes on 2 cores"]
fn the_committor_test_and_the_hill_rate_at_300_k() {
    let study = BundledRun::new("workflows/alanine_dipeptide_committor_300k.yaml");
    committor_tests(&study, ["test_low", "test_mid", "test_high"]);
    committor_tests(
        &study,
        ["test_logit_low", "test_logit_mid", "test_logit_high"],
    );
    let count = study.table("count", "summary");
    let upper = common::f64_column(&count, "rate_ab_hi_per_ns")[0];
    println!("count on the same run: 95 % upper end {upper:.4} per ns");
    for node in ["rate", "rate_wide", "rate_logit", "rate_logit_wide"] {
        let (k, se) = hill_rate(&study, node);
        assert!(
            k > 0.0 && se > 0.0 && k < upper,
            "{node}: Hill k_AB {k} +- {se} against the count's upper end {upper}"
        );
    }
}
