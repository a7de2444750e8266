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
