//! A minimal lane abstraction for the pair loops: the same kernel source runs on plain
//! `f64` (one lane, any CPU), on 4 x f64 AVX2 and on 8 x f64 AVX-512 registers. Both implementations perform
//! the same IEEE operations in the same order (no FMA contraction), so results agree
//! bit for bit. Also the branch-free `ln` and `exp` used in those loops (fdlibm
//! algorithms, about one ulp).

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
    fn sum(self) -> f64;
    /// Split a positive normal x into (m, k) with x = 2^k m, m in [sqrt(2)/2, sqrt(2)).
    fn split_exponent(self) -> (Self, Self);
    /// 2^k for t = k + ROUND_MAGIC (k integral, -1022 <= k <= 1023).
    fn pow2_from_rounded(t: Self) -> Self;

    /// 1/x (exact division unless a lane type overrides it with an approximation
    /// refined to about one ulp).
    #[inline(always)]
    fn recip(self) -> Self {
        Self::splat(1.0) / self
    }
    /// 1/sqrt(x) (as `recip`).
    #[inline(always)]
    fn rsqrt(self) -> Self {
        Self::splat(1.0) / self.sqrt()
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
    let t1 = w * (c(LG2) + w * (c(LG4) + w * c(LG6)));
    let t2 = z * (c(LG1) + w * (c(LG3) + w * (c(LG5) + w * c(LG7))));
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
    let p = r - r2 * (c(P1) + r2 * (c(P2) + r2 * (c(P3) + r2 * (c(P4) + r2 * c(P5)))));
    let y = c(1.0) - ((lo - (r * p) * (c(2.0) - p).recip()) - hi);
    y * S::pow2_from_rounded(t)
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::F64x4;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::F64x8;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Four f64 lanes in an AVX2 register. Only reached from functions compiled with
    //! `#[target_feature(enable = "avx2")]` after a runtime check, which is what makes
    //! the intrinsic calls below sound.
    use super::*;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy, Debug)]
    pub(crate) struct F64x4(__m256d);

    macro_rules! binary {
        ($trait:ident, $method:ident, $intrinsic:ident) => {
            impl $trait for F64x4 {
                type Output = F64x4;
                #[inline(always)]
                fn $method(self, other: F64x4) -> F64x4 {
                    // SAFETY: AVX2 is available (see the module docs).
                    F64x4(unsafe { $intrinsic(self.0, other.0) })
                }
            }
        };
    }
    binary!(Add, add, _mm256_add_pd);
    binary!(Sub, sub, _mm256_sub_pd);
    binary!(Mul, mul, _mm256_mul_pd);
    binary!(Div, div, _mm256_div_pd);

    impl AddAssign for F64x4 {
        #[inline(always)]
        fn add_assign(&mut self, other: F64x4) {
            *self = *self + other;
        }
    }

    impl SubAssign for F64x4 {
        #[inline(always)]
        fn sub_assign(&mut self, other: F64x4) {
            *self = *self - other;
        }
    }

    impl Neg for F64x4 {
        type Output = F64x4;
        #[inline(always)]
        fn neg(self) -> F64x4 {
            // SAFETY: AVX2 is available (see the module docs).
            F64x4(unsafe { _mm256_xor_pd(self.0, _mm256_set1_pd(-0.0)) })
        }
    }

    #[inline(always)]
    fn splat_bits(value: u64) -> __m256i {
        // SAFETY: AVX2 is available (see the module docs).
        unsafe { _mm256_set1_epi64x(value as i64) }
    }

    impl Lanes for F64x4 {
        const LANES: usize = 4;
        #[inline(always)]
        fn splat(value: f64) -> Self {
            // SAFETY: AVX2 is available (see the module docs).
            F64x4(unsafe { _mm256_set1_pd(value) })
        }
        #[inline(always)]
        fn load(values: &[f64], at: usize) -> Self {
            let lanes = &values[at..at + 4];
            // SAFETY: `lanes` holds 4 initialized f64; unaligned load.
            F64x4(unsafe { _mm256_loadu_pd(lanes.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, values: &mut [f64], at: usize) {
            let lanes = &mut values[at..at + 4];
            // SAFETY: `lanes` holds 4 f64; unaligned store.
            unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            // SAFETY: AVX2 is available (see the module docs).
            F64x4(unsafe { _mm256_sqrt_pd(self.0) })
        }
        #[inline(always)]
        fn max(self, other: Self) -> Self {
            // SAFETY: as above. Matches the scalar `if a > b { a } else { b }` for non-NaN.
            F64x4(unsafe { _mm256_max_pd(self.0, other.0) })
        }
        #[inline(always)]
        fn abs(self) -> Self {
            // SAFETY: as above.
            F64x4(unsafe { _mm256_andnot_pd(_mm256_set1_pd(-0.0), self.0) })
        }
        #[inline(always)]
        fn select_lt(a: Self, b: Self, then: Self, otherwise: Self) -> Self {
            // SAFETY: as above.
            unsafe {
                let mask = _mm256_cmp_pd::<_CMP_LT_OQ>(a.0, b.0);
                F64x4(_mm256_blendv_pd(otherwise.0, then.0, mask))
            }
        }
        #[inline(always)]
        fn sum(self) -> f64 {
            let mut lanes = [0.0; 4];
            self.store(&mut lanes, 0);
            (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
        }
        #[inline(always)]
        fn split_exponent(self) -> (Self, Self) {
            // SAFETY: as above.
            unsafe {
                let bits = _mm256_add_epi64(_mm256_castpd_si256(self.0), splat_bits(LN_SHIFT));
                let m = _mm256_add_epi64(
                    _mm256_and_si256(bits, splat_bits(MANTISSA_MASK)),
                    splat_bits(SQRT_HALF_BITS),
                );
                let k = _mm256_or_si256(
                    _mm256_srli_epi64::<52>(bits),
                    splat_bits(EXPONENT_MAGIC_BITS),
                );
                let k = _mm256_sub_pd(_mm256_castsi256_pd(k), _mm256_set1_pd(EXPONENT_MAGIC));
                (F64x4(_mm256_castsi256_pd(m)), F64x4(k))
            }
        }
        #[inline(always)]
        fn pow2_from_rounded(t: Self) -> Self {
            // SAFETY: as above.
            unsafe {
                let k =
                    _mm256_sub_epi64(_mm256_castpd_si256(t.0), splat_bits(ROUND_MAGIC.to_bits()));
                let biased = _mm256_add_epi64(k, splat_bits(1023));
                F64x4(_mm256_castsi256_pd(_mm256_slli_epi64::<52>(biased)))
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! Eight f64 lanes in an AVX-512 register. Only reached from functions compiled with
    //! `#[target_feature(enable = "avx512f")]` after a runtime check, which is what makes
    //! the intrinsic calls below sound.
    use super::*;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy, Debug)]
    pub(crate) struct F64x8(__m512d);

    macro_rules! binary {
        ($trait:ident, $method:ident, $intrinsic:ident) => {
            impl $trait for F64x8 {
                type Output = F64x8;
                #[inline(always)]
                fn $method(self, other: F64x8) -> F64x8 {
                    // SAFETY: AVX-512F is available (see the module docs).
                    F64x8(unsafe { $intrinsic(self.0, other.0) })
                }
            }
        };
    }
    binary!(Add, add, _mm512_add_pd);
    binary!(Sub, sub, _mm512_sub_pd);
    binary!(Mul, mul, _mm512_mul_pd);
    binary!(Div, div, _mm512_div_pd);

    impl AddAssign for F64x8 {
        #[inline(always)]
        fn add_assign(&mut self, other: F64x8) {
            *self = *self + other;
        }
    }

    impl SubAssign for F64x8 {
        #[inline(always)]
        fn sub_assign(&mut self, other: F64x8) {
            *self = *self - other;
        }
    }

    impl Neg for F64x8 {
        type Output = F64x8;
        #[inline(always)]
        fn neg(self) -> F64x8 {
            // SAFETY: AVX-512F is available (see the module docs).
            F64x8(unsafe { _mm512_sub_pd(_mm512_set1_pd(-0.0), self.0) })
        }
    }

    #[inline(always)]
    fn splat_bits(value: u64) -> __m512i {
        // SAFETY: AVX-512F is available (see the module docs).
        unsafe { _mm512_set1_epi64(value as i64) }
    }

    impl Lanes for F64x8 {
        const LANES: usize = 8;
        #[inline(always)]
        fn splat(value: f64) -> Self {
            // SAFETY: AVX-512F is available (see the module docs).
            F64x8(unsafe { _mm512_set1_pd(value) })
        }
        #[inline(always)]
        fn load(values: &[f64], at: usize) -> Self {
            let lanes = &values[at..at + 8];
            // SAFETY: `lanes` holds 8 initialized f64; unaligned load.
            F64x8(unsafe { _mm512_loadu_pd(lanes.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, values: &mut [f64], at: usize) {
            let lanes = &mut values[at..at + 8];
            // SAFETY: `lanes` holds 8 f64; unaligned store.
            unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            // SAFETY: AVX-512F is available (see the module docs).
            F64x8(unsafe { _mm512_sqrt_pd(self.0) })
        }
        #[inline(always)]
        fn max(self, other: Self) -> Self {
            // SAFETY: as above; same as the scalar `if a > b { a } else { b }` without NaN.
            F64x8(unsafe { _mm512_max_pd(self.0, other.0) })
        }
        #[inline(always)]
        fn abs(self) -> Self {
            // SAFETY: as above.
            F64x8(unsafe { _mm512_abs_pd(self.0) })
        }
        #[inline(always)]
        fn select_lt(a: Self, b: Self, then: Self, otherwise: Self) -> Self {
            // SAFETY: as above.
            unsafe {
                let mask = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(a.0, b.0);
                F64x8(_mm512_mask_blend_pd(mask, otherwise.0, then.0))
            }
        }
        #[inline(always)]
        fn sum(self) -> f64 {
            let mut lanes = [0.0; 8];
            self.store(&mut lanes, 0);
            ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
        }
        #[inline(always)]
        fn split_exponent(self) -> (Self, Self) {
            // SAFETY: as above.
            unsafe {
                let bits = _mm512_add_epi64(_mm512_castpd_si512(self.0), splat_bits(LN_SHIFT));
                let m = _mm512_add_epi64(
                    _mm512_and_si512(bits, splat_bits(MANTISSA_MASK)),
                    splat_bits(SQRT_HALF_BITS),
                );
                let k = _mm512_or_si512(
                    _mm512_srli_epi64::<52>(bits),
                    splat_bits(EXPONENT_MAGIC_BITS),
                );
                let k = _mm512_sub_pd(_mm512_castsi512_pd(k), _mm512_set1_pd(EXPONENT_MAGIC));
                (F64x8(_mm512_castsi512_pd(m)), F64x8(k))
            }
        }
        /// 14-bit estimate, two Newton steps with FMA: about one ulp, no divider.
        #[inline(always)]
        fn recip(self) -> Self {
            // SAFETY: as above.
            unsafe {
                let one = _mm512_set1_pd(1.0);
                let mut y = _mm512_rcp14_pd(self.0);
                for _ in 0..2 {
                    let e = _mm512_fnmadd_pd(self.0, y, one);
                    y = _mm512_fmadd_pd(y, e, y);
                }
                F64x8(y)
            }
        }
        /// 14-bit estimate, two Newton steps with FMA: about one ulp, no divider.
        #[inline(always)]
        fn rsqrt(self) -> Self {
            // SAFETY: as above.
            unsafe {
                let one = _mm512_set1_pd(1.0);
                let half = _mm512_set1_pd(0.5);
                let mut y = _mm512_rsqrt14_pd(self.0);
                for _ in 0..2 {
                    let e = _mm512_fnmadd_pd(_mm512_mul_pd(self.0, y), y, one);
                    y = _mm512_fmadd_pd(_mm512_mul_pd(y, half), e, y);
                }
                F64x8(y)
            }
        }
        #[inline(always)]
        fn pow2_from_rounded(t: Self) -> Self {
            // SAFETY: as above.
            unsafe {
                let k =
                    _mm512_sub_epi64(_mm512_castpd_si512(t.0), splat_bits(ROUND_MAGIC.to_bits()));
                let biased = _mm512_add_epi64(k, splat_bits(1023));
                F64x8(_mm512_castsi512_pd(_mm512_slli_epi64::<52>(biased)))
            }
        }
    }
}

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

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_recip_and_rsqrt_are_within_two_ulp() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        #[target_feature(enable = "avx512f")]
        fn check() {
            let inputs: Vec<f64> = (0..8000).map(|i| 1e-3 * 1.0021f64.powi(i)).collect();
            for chunk in inputs.chunks_exact(8) {
                let v = F64x8::load(chunk, 0);
                let (mut recip, mut rsqrt, mut log) = ([0.0; 8], [0.0; 8], [0.0; 8]);
                v.recip().store(&mut recip, 0);
                v.rsqrt().store(&mut rsqrt, 0);
                ln(v).store(&mut log, 0);
                for l in 0..8 {
                    let x = chunk[l];
                    assert!(ulps(recip[l], 1.0 / x) <= 2.0, "1/{x}");
                    assert!(ulps(rsqrt[l], 1.0 / x.sqrt()) <= 2.0, "1/sqrt({x})");
                    if x != 1.0 {
                        assert!(
                            (log[l] - x.ln()).abs() <= 3.0 * f64::EPSILON * x.ln().abs(),
                            "ln {x}"
                        );
                    }
                }
            }
        }
        // SAFETY: AVX-512F checked above.
        unsafe { check() }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_lanes_agree_bit_for_bit_with_scalar() {
        if !(std::arch::is_x86_feature_detected!("avx2")) {
            return;
        }
        #[target_feature(enable = "avx2")]
        fn check() {
            let inputs: Vec<f64> = (0..400).map(|i| 0.013 + 0.77 * i as f64).collect();
            for chunk in inputs.chunks_exact(4) {
                let v = F64x4::load(chunk, 0);
                let mut out = [0.0; 4];
                ln(v).store(&mut out, 0);
                let mut out_exp = [0.0; 4];
                exp_neg(-v).store(&mut out_exp, 0);
                let mut out_sel = [0.0; 4];
                F64x4::select_lt(
                    v,
                    F64x4::splat(100.0),
                    v.sqrt(),
                    v.abs().max(F64x4::splat(3.0)),
                )
                .store(&mut out_sel, 0);
                for l in 0..4 {
                    assert_eq!(out[l].to_bits(), ln(chunk[l]).to_bits());
                    assert_eq!(out_exp[l].to_bits(), exp_neg(-chunk[l]).to_bits());
                    let scalar = f64::select_lt(
                        chunk[l],
                        100.0,
                        chunk[l].sqrt(),
                        Lanes::max(chunk[l].abs(), 3.0),
                    );
                    assert_eq!(out_sel[l].to_bits(), scalar.to_bits());
                }
            }
        }
        // SAFETY: AVX2 checked above.
        unsafe { check() }
    }
}
