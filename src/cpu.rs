//! The one home of instruction-set dispatch: runtime checks for the instruction sets of
//! the SIMD kernels (MD force field, constraints, random streams, the CG potential's
//! layer products) and [`InstructionSet`], the choice a kernel family runs
//! (`is_x86_feature_detected!` caches its answer, so a check costs one load). A kernel compiled for an instruction
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

/// Instruction set of the SIMD kernels (the force field's pair loops, the CG potential's
/// layer products). Each kernel performs the same IEEE operations in the same order on
/// every one, so energies, forces and trajectories are the same bits on each; the widest the CPU has runs, unless the environment variable
/// `CGLOOP_INSTRUCTION_SET` (`portable`, `avx2` or `avx512`) names another, which is how
/// a whole study is replayed on each to check that claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstructionSet {
    /// Plain code on arrays of eight (any CPU).
    Portable,
    /// Two 256-bit registers (x86-64 with AVX2).
    Avx2,
    /// One 512-bit register (x86-64 with AVX-512F and AVX2).
    Avx512,
}

impl InstructionSet {
    /// Every instruction set, narrowest first.
    pub const ALL: [InstructionSet; 3] = [
        InstructionSet::Portable,
        InstructionSet::Avx2,
        InstructionSet::Avx512,
    ];

    /// The name `CGLOOP_INSTRUCTION_SET` takes.
    pub fn name(self) -> &'static str {
        match self {
            InstructionSet::Portable => "portable",
            InstructionSet::Avx2 => "avx2",
            InstructionSet::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run it.
    pub fn is_available(self) -> bool {
        match self {
            InstructionSet::Portable => true,
            InstructionSet::Avx2 => has_avx2(),
            InstructionSet::Avx512 => has_avx512() && has_avx2(),
        }
    }

    /// The widest this CPU has.
    pub fn widest() -> Self {
        *Self::ALL
            .iter()
            .rev()
            .find(|set| set.is_available())
            .expect("portable")
    }

    /// `CGLOOP_INSTRUCTION_SET` where set (an error if it names none or one this CPU
    /// lacks), else [`Self::widest`].
    pub fn from_environment() -> Result<Self, String> {
        let Ok(name) = std::env::var("CGLOOP_INSTRUCTION_SET") else {
            return Ok(Self::widest());
        };
        let set = Self::ALL
            .into_iter()
            .find(|set| set.name() == name.trim())
            .ok_or_else(|| {
                format!("CGLOOP_INSTRUCTION_SET={name:?}: expected portable, avx2 or avx512")
            })?;
        if !set.is_available() {
            return Err(format!(
                "CGLOOP_INSTRUCTION_SET={name}: this CPU cannot run the {name} kernels"
            ));
        }
        Ok(set)
    }
}
