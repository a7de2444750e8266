//! Eight f64 lanes in two AVX2 registers ([`F64x4x2`], lanes 0-3 and 4-7), built from
//! four-lane [`F64x4`] halves. Only reached from functions compiled with
//! `#[target_feature(enable = "avx2")]` after a runtime check, which is what makes
//! the intrinsic calls below sound.

use super::*;
use std::arch::x86_64::*;

#[derive(Clone, Copy, Debug)]
pub(crate) struct F64x4(__m256d);

/// Lanes 0-3 and 4-7.
#[derive(Clone, Copy, Debug)]
pub(crate) struct F64x4x2(F64x4, F64x4);

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
    fn select_bits(bits: u8, then: Self, otherwise: Self) -> Self {
        // SAFETY: as above.
        unsafe {
            let lane_bit = _mm256_set_epi64x(8, 4, 2, 1);
            let set = _mm256_and_si256(_mm256_set1_epi64x(i64::from(bits)), lane_bit);
            let mask = _mm256_castsi256_pd(_mm256_cmpeq_epi64(set, lane_bit));
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
            let k = _mm256_sub_epi64(_mm256_castpd_si256(t.0), splat_bits(ROUND_MAGIC.to_bits()));
            let biased = _mm256_add_epi64(k, splat_bits(1023));
            F64x4(_mm256_castsi256_pd(_mm256_slli_epi64::<52>(biased)))
        }
    }
}

macro_rules! binary_pair {
    ($trait:ident, $method:ident) => {
        impl $trait for F64x4x2 {
            type Output = F64x4x2;
            #[inline(always)]
            fn $method(self, other: F64x4x2) -> F64x4x2 {
                F64x4x2(self.0.$method(other.0), self.1.$method(other.1))
            }
        }
    };
}
binary_pair!(Add, add);
binary_pair!(Sub, sub);
binary_pair!(Mul, mul);
binary_pair!(Div, div);

impl AddAssign for F64x4x2 {
    #[inline(always)]
    fn add_assign(&mut self, other: F64x4x2) {
        *self = *self + other;
    }
}

impl SubAssign for F64x4x2 {
    #[inline(always)]
    fn sub_assign(&mut self, other: F64x4x2) {
        *self = *self - other;
    }
}

impl Neg for F64x4x2 {
    type Output = F64x4x2;
    #[inline(always)]
    fn neg(self) -> F64x4x2 {
        F64x4x2(-self.0, -self.1)
    }
}

impl Lanes for F64x4x2 {
    const LANES: usize = 8;
    #[inline(always)]
    fn splat(value: f64) -> Self {
        F64x4x2(F64x4::splat(value), F64x4::splat(value))
    }
    #[inline(always)]
    fn load(values: &[f64], at: usize) -> Self {
        F64x4x2(F64x4::load(values, at), F64x4::load(values, at + 4))
    }
    #[inline(always)]
    fn store(self, values: &mut [f64], at: usize) {
        self.0.store(values, at);
        self.1.store(values, at + 4);
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        F64x4x2(self.0.sqrt(), self.1.sqrt())
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        F64x4x2(self.0.max(other.0), self.1.max(other.1))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        F64x4x2(self.0.abs(), self.1.abs())
    }
    #[inline(always)]
    fn select_lt(a: Self, b: Self, then: Self, otherwise: Self) -> Self {
        F64x4x2(
            F64x4::select_lt(a.0, b.0, then.0, otherwise.0),
            F64x4::select_lt(a.1, b.1, then.1, otherwise.1),
        )
    }
    #[inline(always)]
    fn select_bits(bits: u8, then: Self, otherwise: Self) -> Self {
        F64x4x2(
            F64x4::select_bits(bits & 0xf, then.0, otherwise.0),
            F64x4::select_bits(bits >> 4, then.1, otherwise.1),
        )
    }
    /// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), the tree of the other lane types.
    #[inline(always)]
    fn sum(self) -> f64 {
        // SAFETY: AVX2 is available (see the module docs; SSE2 is implied).
        unsafe {
            let quad = _mm256_add_pd((self.0).0, (self.1).0);
            let pair = _mm_add_pd(
                _mm256_castpd256_pd128(quad),
                _mm256_extractf128_pd::<1>(quad),
            );
            _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)))
        }
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        let (m0, k0) = self.0.split_exponent();
        let (m1, k1) = self.1.split_exponent();
        (F64x4x2(m0, m1), F64x4x2(k0, k1))
    }
    #[inline(always)]
    fn pow2_from_rounded(t: Self) -> Self {
        F64x4x2(F64x4::pow2_from_rounded(t.0), F64x4::pow2_from_rounded(t.1))
    }
}
