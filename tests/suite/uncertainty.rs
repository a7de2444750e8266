//! `analysis::uncertainty::plus_minus`: the error's two significant digits, a shared
//! power of ten for small values, and a marked missing error.

use cgloop::analysis::uncertainty::plus_minus;

#[test]
fn two_significant_digits_of_the_error() {
    assert_eq!(plus_minus(0.73342, 0.00297), "0.7334 ± 0.0030");
    assert_eq!(plus_minus(109.521, 0.023), "109.521 ± 0.023");
    assert_eq!(plus_minus(-14.699, 0.102), "-14.70 ± 0.10");
    assert_eq!(plus_minus(13179.44, 11188.1), "13179 ± 11188");
    assert_eq!(plus_minus(0.0108, 0.0043), "0.0108 ± 0.0043");
}

#[test]
fn small_values_share_a_power_of_ten_with_their_error() {
    assert_eq!(plus_minus(9.1234e-6, 2.6e-7), "(9.12 ± 0.26)e-6");
    assert_eq!(plus_minus(0.0, 3.0e-5), "(0.0 ± 3.0)e-5");
    assert_eq!(plus_minus(-4.2e-4, 1.0e-4), "(-4.2 ± 1.0)e-4");
    // An error of 0.001 or more: plain decimals.
    assert_eq!(plus_minus(-4.2e-4, 1.0e-3), "-0.0004 ± 0.0010");
}

#[test]
fn a_missing_error_is_marked() {
    assert_eq!(plus_minus(0.73342, 0.0), "0.7334 ± ?");
    assert_eq!(plus_minus(9.1234e-6, f64::NAN), "(9.123 ± ?)e-6");
    assert_eq!(plus_minus(f64::NAN, 0.1), "NaN ± 0.1000");
}
