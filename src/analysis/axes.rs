//! Axis ranges and ticks for [`super::line_plot`]: the span of the data with margins,
//! linear or logarithmic, and tick labels that read as numbers (plain decimals for
//! moderate magnitudes, scientific otherwise, rounding noise at zero shown as 0).
//!
//! A log axis over lo..hi (0 < lo < hi) is ticked at {1..9, (1, 2, 5), 1} x 10^k,
//! whichever fits the number of labels asked for, every few decades when even the
//! decades are too many, and linearly when fewer than three round values fall in the
//! range.

use std::ops::Range;

use plotters::coord::ranged1d::{
    KeyPointHint, KeyPointWeight, NoDefaultFormatting, Ranged, ValueFormatter,
};
use plotters::coord::types::RangedCoordf64;

/// A logarithmic axis over lo..hi (0 < lo < hi), ticked at 1, 2, 5 or 1..9 times powers
/// of ten, whichever fits the number of labels asked for, or linearly when the range is
/// too narrow for three such ticks.
#[derive(Clone, Copy, Debug)]
pub(super) struct LogAxis {
    pub lo: f64,
    pub hi: f64,
}

impl Ranged for LogAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if matches!(hint.weight(), KeyPointWeight::Any) {
            // No light grid lines on log axes.
            return Vec::new();
        }
        log_ticks(self.lo, self.hi, hint.max_num_points())
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for LogAxis {
    fn format(value: &f64) -> String {
        tick(*value, 0.0)
    }
}

/// Tick positions on a log axis over lo..hi, at most `max` of them (at least 2 asked):
/// the richest of {1..9, (1, 2, 5), 1} x 10^k that fits, every few decades when even the
/// decades are too many, linear when fewer than three round values fall in the range.
pub(super) fn log_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let max = max.max(2);
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let within = |mantissas: &[f64], every: i32| -> Vec<f64> {
        (first..=last)
            .filter(|k| k.rem_euclid(every) == 0)
            .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let mantissas: [&[f64]; 3] = [
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        &[1.0, 2.0, 5.0],
        &[1.0],
    ];
    for m in mantissas {
        let ticks = within(m, 1);
        if ticks.len() <= max {
            if ticks.len() >= 3.min(max) {
                return ticks;
            }
            break;
        }
    }
    let decades = within(&[1.0], 1).len();
    if decades > max {
        let every = decades.div_ceil(max) as i32;
        return within(&[1.0], every);
    }
    // Too narrow for three round ticks: linear ones.
    RangedCoordf64::from(lo..hi).key_points(max)
}

/// The span of the values with 5 % margins; the unit range when there are none, one
/// unit (or 10 % of the value) around a single value.
pub(super) fn linear_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    if hi - lo <= f64::EPSILON * lo.abs().max(hi.abs()) {
        let pad = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
        return lo - pad..hi + pad;
    }
    let pad = 0.05 * (hi - lo);
    lo - pad..hi + pad
}

/// The span of positive values with 5 % margins in decades; 1..10 when there are none, a
/// factor 2 around a single value.
pub(super) fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return (1.0, 10.0);
    }
    if hi / lo < 1.0 + 1e-12 {
        return (lo / 2.0, hi * 2.0);
    }
    let pad = (hi / lo).powf(0.05);
    (lo / pad, hi * pad)
}

/// Tick positions within this fraction of the axis span of zero are zero (plotters
/// steps to them in floating point: -0.02 + 0.02 gave a tick labelled -1.73e-18).
pub(super) const ROUNDING: f64 = 1e-9;

/// A tick label: plain decimals for moderate magnitudes, scientific otherwise; `zero`:
/// magnitudes up to it are rounding noise around 0.
pub(super) fn tick(v: f64, zero: f64) -> String {
    let a = v.abs();
    if a <= zero {
        "0".into()
    } else if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" { "0".into() } else { s.to_string() }
    } else {
        let s = format!("{v:.2e}");
        // 1.50e3 -> 1.5e3
        match s.split_once('e') {
            Some((m, e)) => {
                let m = if m.contains('.') {
                    m.trim_end_matches('0').trim_end_matches('.')
                } else {
                    m
                };
                format!("{m}e{e}")
            }
            None => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_ticks() {
        assert_eq!(linear_range(std::iter::empty()), 0.0..1.0);
        assert_eq!(linear_range([0.0].into_iter()), -1.0..1.0);
        let r = linear_range([0.0, 10.0].into_iter());
        assert!((r.start + 0.5).abs() < 1e-12 && (r.end - 10.5).abs() < 1e-12);
        assert_eq!(log_range(std::iter::empty()), (1.0, 10.0));
        let (lo, hi) = log_range([1.0, 100.0].into_iter());
        assert!((lo.log10() + 0.1).abs() < 1e-12 && (hi.log10() - 2.1).abs() < 1e-12);
        assert_eq!(log_ticks(0.9, 110.0, 6), vec![1.0, 10.0, 100.0]);
        assert_eq!(log_ticks(0.9, 110.0, 7).len(), 7);
        assert_eq!(log_ticks(0.9, 11.0, 7), vec![1.0, 2.0, 5.0, 10.0]);
        assert_eq!(log_ticks(1.5, 5.5, 7), vec![2.0, 3.0, 4.0, 5.0]);
        // Only 20 and 30 are round: linear ticks instead.
        let narrow = log_ticks(10.5, 37.0, 7);
        assert!(narrow.len() >= 3 && narrow.iter().all(|v| (10.5..=37.0).contains(v)));
        let wide = log_ticks(1e-9, 1.1e9, 7);
        assert!(
            (4..=7).contains(&wide.len()) && wide.contains(&1.0),
            "{wide:?}"
        );
        assert!(log_ticks(2.1, 2.9, 7).len() >= 2);
        assert_eq!(tick(0.5, 0.0), "0.5");
        assert_eq!(tick(20.0, 0.0), "20");
        assert_eq!(tick(1.5e6, 0.0), "1.5e6");
        assert_eq!(tick(2e-5, 0.0), "2e-5");
        // Rounding noise at zero on an axis spanning 0.04 (ROUNDING of it: 4e-11).
        assert_eq!(tick(-1.734723475976807e-18, ROUNDING * 0.04), "0");
        assert_eq!(tick(2e-5, ROUNDING * 0.04), "2e-5");
    }
}
