//! Runtime checks for the instruction sets of the MD and random-stream kernels (`is_x86_feature_detected!`
//! caches its answer, so a check costs one load). A kernel compiled for an instruction
//! set with `#[target_feature]` may be called only after its check returned true; every
//! such kernel does the same IEEE operations as its plain build, so the results do not
//! depend on the machine's answer unless a module says otherwise.

/// Whether the CPU has AVX2 (false off x86-64).
#[inline]
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX-512F (false off x86-64).
#[inline]
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
