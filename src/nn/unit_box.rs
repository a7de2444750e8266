//! Internal coordinates rescaled to the unit cube, where the flow lives.
//!
//! Bonds (nm) and angles (rad) are bounded: u = (q - lo) / (hi - lo), with [lo, hi] the
//! range of the training data widened by `margin` times its span on each side (angles
//! kept within [0, pi], bonds above 0).
//!
//! Torsions (rad, (-pi, pi]) are of two sorts. A torsion whose values stay in a narrow
//! arc (an amide bond near pi, the offset of a methyl hydrogen from its sibling near
//! 2 pi / 3) is boxed like a bond around its circular mean c: v = wrap(q - c) in
//! (-pi, pi], u = (v - lo) / (hi - lo), [lo, hi] the widened range of v, provided it
//! stays inside (-pi, pi). The spline then spends all its bins on that arc instead of
//! one bin in eight of the circle. Any other torsion is circular: c = 0,
//! u = (q + pi) / (2 pi), and the flow uses a circular spline for it.
//!
//! The map is affine per coordinate (a rotation then a scaling on the circle), so
//! densities relate by a constant:
//!
//! ```text
//! log p(q) = log p(u) - sum_d ln(hi_d - lo_d)        (hi - lo = 2 pi for circular torsions)
//! ```
//!
//! The flow's density is zero outside the box: a bond, angle or narrow torsion beyond
//! the widened data range is never proposed. With a margin of a quarter of the span on
//! each side that excludes only configurations many standard deviations out.

use std::f64::consts::PI;

use crate::geometry::zmatrix::{CoordinateKind, wrap_angle};

/// Per-coordinate bounds of the unit-cube map.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitBox {
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    /// Torsions on the full circle (the flow's circular dimensions).
    pub circular: Vec<bool>,
    /// The circular mean a narrow torsion is boxed around; `None` for everything else.
    pub centre: Vec<Option<f64>>,
}

impl UnitBox {
    /// Bounds from `q`, rows of `kinds.len()` internal coordinates, widened by `margin`
    /// (a fraction of each span) on each side. Panics on empty data.
    pub fn fit(q: &[f64], kinds: &[CoordinateKind], margin: f64) -> UnitBox {
        let d = kinds.len();
        assert!(d > 0 && !q.is_empty() && q.len().is_multiple_of(d));
        let mut mean = vec![0.0; d];
        for (k, kind) in kinds.iter().enumerate() {
            if *kind == CoordinateKind::Torsion {
                let (s, c) = q.chunks_exact(d).fold((0.0, 0.0), |(s, c), row| {
                    (s + row[k].sin(), c + row[k].cos())
                });
                mean[k] = s.atan2(c);
            }
        }
        let mut lo = vec![f64::INFINITY; d];
        let mut hi = vec![f64::NEG_INFINITY; d];
        for row in q.chunks_exact(d) {
            for (k, &v) in row.iter().enumerate() {
                let v = shifted(v, mean[k], kinds[k]);
                lo[k] = lo[k].min(v);
                hi[k] = hi[k].max(v);
            }
        }
        let mut circular = vec![false; d];
        let mut centre = vec![None; d];
        for (k, kind) in kinds.iter().enumerate() {
            let span = (hi[k] - lo[k]).max(1e-6);
            let (a, b) = (lo[k] - margin * span, hi[k] + margin * span);
            match kind {
                CoordinateKind::Bond => {
                    lo[k] = a.max(0.0);
                    hi[k] = b;
                }
                CoordinateKind::Angle => {
                    lo[k] = a.max(0.0);
                    hi[k] = b.min(PI);
                }
                CoordinateKind::Torsion if a > -PI && b < PI => {
                    lo[k] = a;
                    hi[k] = b;
                    centre[k] = Some(mean[k]);
                }
                CoordinateKind::Torsion => {
                    lo[k] = -PI;
                    hi[k] = PI;
                    circular[k] = true;
                }
            }
        }
        UnitBox {
            lo,
            hi,
            circular,
            centre,
        }
    }

    pub fn dims(&self) -> usize {
        self.lo.len()
    }

    /// sum_d ln(hi_d - lo_d): log p(q) = log p(u) - this.
    pub fn log_volume(&self) -> f64 {
        self.lo
            .iter()
            .zip(&self.hi)
            .map(|(lo, hi)| (hi - lo).ln())
            .sum()
    }

    /// The coordinate in the box's frame: wrapped about the centre for narrow torsions.
    fn local(&self, k: usize, v: f64) -> f64 {
        match self.centre[k] {
            Some(c) => wrap_angle(v - c),
            None => v,
        }
    }

    /// u for rows of q (same layout). Circular torsions wrap into [0, 1).
    pub fn to_unit(&self, q: &[f64]) -> Vec<f64> {
        let d = self.dims();
        let mut u = Vec::with_capacity(q.len());
        for row in q.chunks_exact(d) {
            for (k, &v) in row.iter().enumerate() {
                let x = (self.local(k, v) - self.lo[k]) / (self.hi[k] - self.lo[k]);
                u.push(if self.circular[k] {
                    x.rem_euclid(1.0)
                } else {
                    x
                });
            }
        }
        u
    }

    /// q for rows of u (same layout); torsions come back in (-pi, pi] (circular ones in
    /// [-pi, pi)).
    pub fn from_unit(&self, u: &[f64]) -> Vec<f64> {
        let d = self.dims();
        let mut q = Vec::with_capacity(u.len());
        for row in u.chunks_exact(d) {
            for (k, &v) in row.iter().enumerate() {
                let x = self.lo[k] + v * (self.hi[k] - self.lo[k]);
                q.push(match self.centre[k] {
                    Some(c) => wrap_angle(x + c),
                    None => x,
                });
            }
        }
        q
    }

    /// Rows of q that lie outside the box (bounded coordinates only), by row index.
    pub fn rows_outside(&self, q: &[f64]) -> Vec<usize> {
        let d = self.dims();
        q.chunks_exact(d)
            .enumerate()
            .filter(|(_, row)| {
                row.iter().enumerate().any(|(k, &v)| {
                    let v = self.local(k, v);
                    // Out of range, NaN included.
                    !(self.circular[k] || (v >= self.lo[k] && v <= self.hi[k]))
                })
            })
            .map(|(i, _)| i)
            .collect()
    }
}

/// A torsion relative to `centre`, wrapped to (-pi, pi]; other coordinates as they are.
fn shifted(v: f64, centre: f64, kind: CoordinateKind) -> f64 {
    match kind {
        CoordinateKind::Torsion => wrap_angle(v - centre),
        _ => v,
    }
}
