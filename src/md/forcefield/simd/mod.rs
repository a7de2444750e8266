//! A minimal lane abstraction for the pair loops: the same kernel source runs on eight
//! f64 lanes, as one AVX-512 register ([`F64x8`]), two AVX2 registers ([`F64x4x2`]) or
//! a plain array on any CPU ([`Portable`]). All three perform the same IEEE operations
//! in the same order: no fused multiply-add ([`Lanes::mul_add`] rounds twice), exact
//! division and square root (no reciprocal estimates), and one tree for the horizontal
//! sum, ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). So a force evaluation, and a
//! trajectory, is the same bits whichever instruction set the machine has; the test
//! `every_lane_type_gives_the_same_bits` and `tests/suite/md_lanes.rs` check it. The one-lane
//! `f64` implementation is the reference for a single lane (the kernels never run on
//! it: they assert [`KERNEL_LANES`]). Also the branch-free `ln` and `exp` used in those
//! loops (fdlibm algorithms, about one ulp).

// fdlibm's coefficients are kept exactly as published (more digits than a double holds).
#![allow(clippy::excessive_precision)]

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};

/// Lane-wise f64 arithmetic. `load`/`store`/`add_to`/`sub_from` touch `LANES`
/// consecutive elements starting at an index.
pub(crate) trait Lanes:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
{
    const LANES: usize;
    fn splat(value: f64) -> Self;
    fn load(values: &[f64], at: usize) -> Self;
    fn store(self, values: &mut [f64], at: usize);
    fn sqrt(self) -> Self;
    fn max(self, other: Self) -> Self;
    fn abs(self) -> Self;
    /// `if a < b { then } else { otherwise }`, lane by lane.
    fn select_lt(a: Self, b: Self, then: Self, otherwise: Self) -> Self;
    /// Lane l of `then` where bit l of `bits` is set, else of `otherwise`.
    fn select_bits(bits: u8, then: Self, otherwise: Self) -> Self;
    fn sum(self) -> f64;
    /// Split a positive normal x into (m, k) with x = 2^k m, m in [sqrt(2)/2, sqrt(2)).
    fn split_exponent(self) -> (Self, Self);
    /// 2^k for t = k + ROUND_MAGIC (k integral, -1022 <= k <= 1023).
    fn pow2_from_rounded(t: Self) -> Self;

    /// self * b + c with two roundings, on every lane type (a fused multiply-add, where
    /// one exists, would give other bits than the lane types without it).
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }
    /// 1/x by exact division.
    #[inline(always)]
    fn recip(self) -> Self {
        Self::splat(1.0) / self
    }
    /// 1/sqrt(x) by an exact square root and division.
    #[inline(always)]
    fn rsqrt(self) -> Self {
        Self::splat(1.0) / self.sqrt()
    }

    /// Lane l = values[index[at + l]]; panics if an index is out of bounds.
    #[inline(always)]
    fn gather(values: &[f64], index: &[u32], at: usize) -> Self {
        let mut lanes = [0.0; 8];
        for (lane, &i) in lanes.iter_mut().zip(&index[at..at + Self::LANES]) {
            *lane = values[i as usize];
        }
        Self::load(&lanes, 0)
    }

    #[inline(always)]
    fn add_to(self, values: &mut [f64], at: usize) {
        (Self::load(values, at) + self).store(values, at);
    }
    #[inline(always)]
    fn sub_from(self, values: &mut [f64], at: usize) {
        (Self::load(values, at) - self).store(values, at);
    }
}

/// The lane-wise comparison `.0 < .1`, kept to choose between lanes. (Kernels use it
/// where a closure would read better: a closure is a function of its own, compiled
/// without the caller's `#[target_feature]`, and where it is not inlined every
/// intrinsic in it becomes an out-of-line call.)
#[derive(Clone, Copy)]
pub(crate) struct Below<S>(pub(crate) S, pub(crate) S);

impl<S: Lanes> Below<S> {
    /// `then` where `.0 < .1`, else `otherwise`.
    #[inline(always)]
    pub(crate) fn pick(self, then: S, otherwise: S) -> S {
        S::select_lt(self.0, self.1, then, otherwise)
    }
    /// `then` where every comparison holds, else `otherwise`.
    #[inline(always)]
    pub(crate) fn pick_all<const N: usize>(all: [Below<S>; N], then: S, otherwise: S) -> S {
        let mut chosen = then;
        for below in all.into_iter().rev() {
            chosen = below.pick(chosen, otherwise);
        }
        chosen
    }
}

impl Lanes for f64 {
    const LANES: usize = 1;
    #[inline(always)]
    fn splat(value: f64) -> Self {
        value
    }
    #[inline(always)]
    fn load(values: &[f64], at: usize) -> Self {
        values[at]
    }
    #[inline(always)]
    fn store(self, values: &mut [f64], at: usize) {
        values[at] = self;
    }
    #[inline(always)]
    fn gather(values: &[f64], index: &[u32], at: usize) -> Self {
        values[index[at] as usize]
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        if self > other { self } else { other }
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn select_lt(a: Self, b: Self, then: Self, otherwise: Self) -> Self {
        if a < b { then } else { otherwise }
    }
    #[inline(always)]
    fn select_bits(bits: u8, then: Self, otherwise: Self) -> Self {
        if bits & 1 != 0 { then } else { otherwise }
    }
    #[inline(always)]
    fn sum(self) -> f64 {
        self
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        let bits = self.to_bits().wrapping_add(LN_SHIFT);
        let m = f64::from_bits((bits & MANTISSA_MASK) + SQRT_HALF_BITS);
        let k = f64::from_bits((bits >> 52) | EXPONENT_MAGIC_BITS) - EXPONENT_MAGIC;
        (m, k)
    }
    #[inline(always)]
    fn pow2_from_rounded(t: Self) -> Self {
        let k = (t.to_bits() as i64).wrapping_sub(ROUND_MAGIC.to_bits() as i64);
        f64::from_bits(((k + 1023) as u64) << 52)
    }
}

const LN_SHIFT: u64 = 0x3ff0_0000_0000_0000 - 0x3fe6_a09e_0000_0000;
const MANTISSA_MASK: u64 = 0x000f_ffff_ffff_ffff;
const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_0000_0000;
/// 2^52 as bits; OR-ing a small integer into the mantissa and subtracting gives it as f64.
const EXPONENT_MAGIC_BITS: u64 = 0x4330_0000_0000_0000;
const EXPONENT_MAGIC: f64 = 4_503_599_627_370_496.0 + 1023.0;
/// 2^52 + 2^51: adding it rounds a double of magnitude < 2^51 to an integer.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
// ln(1+f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f); minimax R from fdlibm e_log.c.
const LG1: f64 = 6.666_666_666_666_735_130e-1;
const LG2: f64 = 3.999_999_999_940_941_908e-1;
const LG3: f64 = 2.857_142_874_366_239_149e-1;
const LG4: f64 = 2.222_219_843_214_978_396e-1;
const LG5: f64 = 1.818_357_216_161_805_012e-1;
const LG6: f64 = 1.531_383_769_920_937_332e-1;
const LG7: f64 = 1.479_819_860_511_658_591e-1;
// exp(r) on |r| <= ln2/2, rational form of fdlibm e_exp.c.
const P1: f64 = 1.666_666_666_666_660_190_37e-1;
const P2: f64 = -2.777_777_777_701_559_338_42e-3;
const P3: f64 = 6.613_756_321_437_934_361_17e-5;
const P4: f64 = -1.653_390_220_546_525_153_90e-6;
const P5: f64 = 4.138_136_797_057_238_460_39e-8;

/// Natural logarithm of positive, normal, finite lanes.
#[inline(always)]
pub(crate) fn ln<S: Lanes>(x: S) -> S {
    let (m, k) = x.split_exponent();
    let c = S::splat;
    let f = m - c(1.0);
    let half_f2 = c(0.5) * f * f;
    let s = f * (c(2.0) + f).recip();
    let z = s * s;
    let w = z * z;
    let t1 = w * w.mul_add(w.mul_add(c(LG6), c(LG4)), c(LG2));
    let t2 = z * w.mul_add(w.mul_add(w.mul_add(c(LG7), c(LG5)), c(LG3)), c(LG1));
    let r = t2 + t1;
    s * (half_f2 + r) + k * c(LN2_LO) - half_f2 + f + k * c(LN2_HI)
}

/// exp(x) for lanes x <= 0, clamped at x = -690 (e^-690 ~ 2e-300). The clamp keeps
/// products such as R_i R_j e^-D well above the subnormal range, whose arithmetic is
/// orders of magnitude slower, while e^-690 is far below anything it is added to.
#[inline(always)]
pub(crate) fn exp_neg<S: Lanes>(x: S) -> S {
    let c = S::splat;
    let x = x.max(c(-690.0));
    let t = x * c(std::f64::consts::LOG2_E) + c(ROUND_MAGIC);
    let k = t - c(ROUND_MAGIC);
    let hi = x - k * c(LN2_HI);
    let lo = k * c(LN2_LO);
    let r = hi - lo;
    let r2 = r * r;
    let poly = r2.mul_add(
        r2.mul_add(r2.mul_add(r2.mul_add(c(P5), c(P4)), c(P3)), c(P2)),
        c(P1),
    );
    let p = r - r2 * poly;
    let y = c(1.0) - ((lo - (r * p) * (c(2.0) - p).recip()) - hi);
    y * S::pow2_from_rounded(t)
}

/// Lanes of every kernel: `padded_len` rows, mask bytes and the sum tree are laid out
/// for eight.
pub(crate) const KERNEL_LANES: usize = 8;

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::F64x4x2;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::F64x8;
pub(crate) use portable::Portable;

#[cfg(target_arch = "x86_64")]
mod avx2;

#[cfg(target_arch = "x86_64")]
mod avx512;

mod portable;

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> f64 {
        (a - b).abs() / (b.abs() * f64::EPSILON)
    }

    #[test]
    fn ln_matches_libm_within_two_ulp() {
        let mut x: f64 = 1e-300;
        while x < 1e300 {
            for m in [
                1.0,
                1.234_567,
                std::f64::consts::SQRT_2,
                1.414_3,
                std::f64::consts::FRAC_1_SQRT_2,
                0.999_999_9,
                1.000_000_1,
                3.0,
            ] {
                let v = x * m;
                let expected = v.ln();
                if expected == 0.0 {
                    assert_eq!(ln(v), 0.0);
                } else {
                    assert!(
                        ulps(ln(v), expected) <= 2.0,
                        "ln({v}) = {} vs {expected}",
                        ln(v)
                    );
                }
            }
            x *= 7.3;
        }
        for i in 1..10_000 {
            let v: f64 = 0.05 + i as f64 * 1e-4; // the range of the OBC ratio l/u
            let expected = v.ln();
            assert!(
                (ln(v) - expected).abs() <= 2.0 * f64::EPSILON * expected.abs(),
                "{v}"
            );
        }
    }

    #[test]
    fn exp_neg_matches_libm_within_two_ulp() {
        for i in 0..197_000 {
            let x = -(i as f64) * 3.5e-3;
            let expected = x.exp();
            assert!(
                ulps(exp_neg(x), expected) <= 2.0,
                "exp({x}) = {} vs {expected}",
                exp_neg(x)
            );
        }
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(-800.0), exp_neg(-690.0));
        assert!(exp_neg(-690.0) > 1e-300 && exp_neg(-690.0) < 1e-299);
    }

    /// Every operation of the trait on lanes `S`, lane by lane against one `f64` lane
    /// (the horizontal sum against its tree), over inputs that span the kernels' range.
    #[inline(always)]
    fn check_lanes_against_one_lane<S: Lanes>() {
        assert_eq!(S::LANES, KERNEL_LANES);
        let inputs: Vec<f64> = (0..8000).map(|i| 1e-3 * 1.0021f64.powi(i)).collect();
        let bits = |v: S| {
            let mut out = [0.0; 8];
            v.store(&mut out, 0);
            out.map(f64::to_bits)
        };
        for (c, chunk) in inputs.chunks_exact(8).enumerate() {
            let v = S::load(chunk, 0);
            let w = S::load(&inputs, (c * 37 + 5) % (inputs.len() - 8));
            let other: Vec<f64> = (0..8)
                .map(|l| inputs[(c * 37 + 5) % (inputs.len() - 8) + l])
                .collect();
            let mask = (c * 29 % 256) as u8;
            let (m, k) = v.split_exponent();
            let t = (-v).max(S::splat(-600.0)) * S::splat(std::f64::consts::LOG2_E)
                + S::splat(ROUND_MAGIC);
            let cases: [(S, fn(f64, f64, u8, usize) -> f64); 14] = [
                (v + w, |a, b, _, _| a + b),
                (v - w, |a, b, _, _| a - b),
                (v * w, |a, b, _, _| a * b),
                (v / w, |a, b, _, _| a / b),
                (-v, |a, _, _, _| -a),
                (v.sqrt(), |a, _, _, _| a.sqrt()),
                (v.max(w), |a, b, _, _| Lanes::max(a, b)),
                ((v - w).abs(), |a, b, _, _| (a - b).abs()),
                (S::select_lt(v, w, v, w), |a, b, _, _| {
                    f64::select_lt(a, b, a, b)
                }),
                (S::select_bits(mask, v, w), |a, b, m, l| {
                    if m >> l & 1 != 0 { a } else { b }
                }),
                (v.mul_add(w, v), |a, b, _, _| a * b + a),
                (v.recip() + v.rsqrt(), |a, _, _, _| 1.0 / a + 1.0 / a.sqrt()),
                (m + k, |a, _, _, _| {
                    let (m, k) = a.split_exponent();
                    m + k
                }),
                (
                    ln(v) + exp_neg(-v) + S::pow2_from_rounded(t),
                    |a, _, _, _| {
                        let t = Lanes::max(-a, -600.0) * std::f64::consts::LOG2_E + ROUND_MAGIC;
                        ln(a) + exp_neg(-a) + f64::pow2_from_rounded(t)
                    },
                ),
            ];
            for (i, (lanes, one)) in cases.iter().enumerate() {
                let expected: [u64; 8] =
                    std::array::from_fn(|l| one(chunk[l], other[l], mask, l).to_bits());
                assert_eq!(bits(*lanes), expected, "operation {i} on chunk {c}");
            }
            let l = chunk;
            let tree = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
            assert_eq!(v.sum().to_bits(), tree.to_bits());
        }
    }

    #[test]
    fn portable_lanes_agree_bit_for_bit_with_one_lane() {
        check_lanes_against_one_lane::<Portable>();
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_lanes_agree_bit_for_bit_with_one_lane() {
        if !crate::cpu::has_avx2() {
            return;
        }
        #[target_feature(enable = "avx2")]
        fn check() {
            check_lanes_against_one_lane::<F64x4x2>();
        }
        // SAFETY: AVX2 checked above.
        unsafe { check() }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_lanes_agree_bit_for_bit_with_one_lane() {
        if !(crate::cpu::has_avx512() && crate::cpu::has_avx2()) {
            return;
        }
        #[target_feature(enable = "avx512f,avx2")]
        fn check() {
            check_lanes_against_one_lane::<F64x8>();
        }
        // SAFETY: AVX-512F and AVX2 checked above.
        unsafe { check() }
    }
}
