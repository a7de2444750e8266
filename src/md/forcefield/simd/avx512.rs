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
        // SAFETY: AVX-512F is available (see the module docs). The sign bit flipped, as
        // the other lane types do.
        F64x8(unsafe {
            _mm512_castsi512_pd(_mm512_xor_si512(
                _mm512_castpd_si512(self.0),
                splat_bits((-0.0f64).to_bits()),
            ))
        })
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
    fn gather(values: &[f64], index: &[u32], at: usize) -> Self {
        let index = &index[at..at + 8];
        // SAFETY: AVX-512F is available (see the module docs); `index` holds 8 u32
        // (unaligned load), and every lane is checked against `values.len()` before the
        // gather reads values[index[l]].
        unsafe {
            let offsets = _mm256_loadu_si256(index.as_ptr().cast());
            let wide = _mm512_cvtepu32_epi64(offsets);
            let out_of_bounds =
                _mm512_cmpge_epu64_mask(wide, _mm512_set1_epi64(values.len() as i64));
            assert!(out_of_bounds == 0, "gather index out of bounds");
            F64x8(_mm512_i32gather_pd::<8>(offsets, values.as_ptr().cast()))
        }
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
    fn select_bits(bits: u8, then: Self, otherwise: Self) -> Self {
        // SAFETY: as above.
        F64x8(unsafe { _mm512_mask_blend_pd(bits, otherwise.0, then.0) })
    }
    #[inline(always)]
    fn sum(self) -> f64 {
        // ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) in registers.
        // SAFETY: as above (AVX and SSE2 are implied by AVX-512F).
        unsafe {
            let quad = _mm256_add_pd(
                _mm512_castpd512_pd256(self.0),
                _mm512_extractf64x4_pd::<1>(self.0),
            );
            let pair = _mm_add_pd(
                _mm256_castpd256_pd128(quad),
                _mm256_extractf128_pd::<1>(quad),
            );
            _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)))
        }
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
    #[inline(always)]
    fn pow2_from_rounded(t: Self) -> Self {
        // SAFETY: as above.
        unsafe {
            let k = _mm512_sub_epi64(_mm512_castpd_si512(t.0), splat_bits(ROUND_MAGIC.to_bits()));
            let biased = _mm512_add_epi64(k, splat_bits(1023));
            F64x8(_mm512_castsi512_pd(_mm512_slli_epi64::<52>(biased)))
        }
    }
}
