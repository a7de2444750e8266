//! An estimate and its standard error as text, to the error's two significant digits.
//!
//! `0.73342 ± 0.00297` reads `0.7334 ± 0.0030`; a value whose magnitude and error are both
//! below 0.001 shares a power of ten with its error, `(9.12 ± 0.26)e-6`, so that a
//! bond-length variance in nm² does not print as `0.000 ± 0.000`. Without a usable error (zero, negative or not
//! finite) the value gets four significant digits and `± ?` marks the missing error.

/// `value ± error` to the error's two significant digits (see the module doc).
pub fn plus_minus(value: f64, error: f64) -> String {
    if !value.is_finite() {
        return format!("{value} ± {}", short(error));
    }
    let magnitude = value.abs().max(if error.is_finite() { error } else { 0.0 });
    let exponent = if magnitude > 0.0 && magnitude < 1e-3 {
        magnitude.log10().floor() as i32
    } else {
        0
    };
    let scale = 10f64.powi(exponent);
    let (v, e) = (value / scale, error / scale);
    let text = if e.is_finite() && e > 0.0 {
        let decimals = (1 - e.log10().floor() as i32).clamp(0, 8) as usize;
        format!("{v:.decimals$} ± {e:.decimals$}")
    } else {
        format!("{} ± ?", short(v))
    };
    if exponent == 0 {
        text
    } else {
        format!("({text})e{exponent}")
    }
}

/// Four significant digits.
fn short(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let decimals = (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
    format!("{x:.decimals$}")
}
