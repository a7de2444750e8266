//! The ChaCha20 keystream of `rand_chacha::ChaCha20Rng`, word for word, 16 blocks at a
//! time: the thermostat's noise source in the MD inner loop.
//!
//! ChaCha20 (Bernstein 2008) with a 64-bit block counter: the state is 16 words,
//!
//! ```text
//! "expa" "nd 3" "2-by" "te k" | key[0..8] | counter_lo counter_hi | stream_lo stream_hi
//! ```
//!
//! 10 double rounds of quarter rounds (a += b; d ^= a; d <<<= 16; c += d; b ^= c;
//! b <<<= 12; a += b; d ^= a; d <<<= 8; c += d; b ^= c; b <<<= 7) on the columns, then the
//! diagonals; the block is the result plus the input state. The stream is the blocks'
//! words in order, and a `u64` is two consecutive words, the first the low half, as
//! `rand_core`'s `BlockRng` reads them. So [`ChaChaStream::continuing`] a `ChaCha20Rng`
//! gives exactly the words that generator would have given next, and a trajectory is the
//! same whichever of the two draws its noise.
//!
//! Why: `rand_chacha` makes 4 blocks per refill with 128- or 256-bit registers that hold
//! one block's row, shuffling between half rounds. Here a refill makes 16 blocks, lane l
//! of every word array being block `counter + l`, so each word of the state is one
//! 512-bit register across 16 blocks, no shuffles, and each rotation one AVX-512
//! instruction (`vprold`). The arithmetic is plain Rust on `[u32; 16]` lanes, compiled
//! once for AVX-512, once for AVX2 and once without, chosen at run time. The output is
//! the same integers on every machine.

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

/// Blocks per refill.
const LANES: usize = 16;
/// Words per block.
const WORDS: usize = 16;
/// Words in the buffer.
const BUFFER: usize = LANES * WORDS;

const CONSTANTS: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// A ChaCha20 keystream with a 16-block buffer.
#[derive(Clone)]
pub struct ChaChaStream {
    key: [u32; 8],
    stream: u64,
    /// Counter of the first block the next refill makes.
    next_block: u64,
    /// `words[w][l]`: word w of block `next_block - LANES + l`.
    words: Box<[[u32; LANES]; WORDS]>,
    /// Position in the buffer, in words of the stream (block-major): 0..=BUFFER.
    index: usize,
    kernel: Kernel,
}

impl std::fmt::Debug for ChaChaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaChaStream")
            .field("stream", &self.stream)
            .field("word_pos", &self.word_pos())
            .finish_non_exhaustive()
    }
}

impl ChaChaStream {
    /// The words that `rng` would give next: same key, stream and position.
    pub fn continuing(rng: &ChaCha20Rng) -> Self {
        let seed = rng.get_seed();
        let key = std::array::from_fn(|i| {
            u32::from_le_bytes([
                seed[4 * i],
                seed[4 * i + 1],
                seed[4 * i + 2],
                seed[4 * i + 3],
            ])
        });
        let mut out = ChaChaStream {
            key,
            stream: rng.get_stream(),
            next_block: 0,
            words: Box::new([[0; LANES]; WORDS]),
            index: BUFFER,
            kernel: Kernel::detect(),
        };
        out.seek(rng.get_word_pos());
        out
    }

    /// Moves to `word_pos` words from the start of the stream (as
    /// `ChaCha20Rng::set_word_pos`): the next word is the one at that offset.
    pub fn seek(&mut self, word_pos: u128) {
        self.next_block = (word_pos / WORDS as u128) as u64;
        self.refill();
        self.index = (word_pos % WORDS as u128) as usize;
    }

    /// Offset from the start of the stream, in 32-bit words (as `ChaCha20Rng`'s).
    pub fn word_pos(&self) -> u128 {
        let buffer_start = self.next_block.wrapping_sub(LANES as u64);
        u128::from(buffer_start) * WORDS as u128 + self.index as u128
    }

    fn refill(&mut self) {
        let (key, stream, block) = (&self.key, self.stream, self.next_block);
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `kernel` names an instruction set only after a runtime check for it.
            Kernel::Avx512 => unsafe { blocks_avx512(key, stream, block, &mut self.words) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { blocks_avx2(key, stream, block, &mut self.words) },
            Kernel::Portable => blocks(key, stream, block, &mut self.words),
        }
        self.next_block = block.wrapping_add(LANES as u64);
        self.index = 0;
    }

    /// The next word of the stream.
    #[inline(always)]
    fn word(&mut self) -> u32 {
        if self.index >= BUFFER {
            self.refill();
        }
        let i = self.index;
        self.index += 1;
        self.words[i % WORDS][i / WORDS]
    }
}

impl RngCore for ChaChaStream {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        self.word()
    }

    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        let i = self.index;
        if i.is_multiple_of(2) && i < BUFFER {
            // Both words in one block of the buffer (an even word and the odd one after).
            self.index += 2;
            let (w, l) = (i % WORDS, i / WORDS);
            return u64::from(self.words[w][l]) | (u64::from(self.words[w + 1][l]) << 32);
        }
        let lo = self.word();
        u64::from(lo) | (u64::from(self.word()) << 32)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // Whole words, little-endian; a partial word at the end uses up the word (as
        // `BlockRng` does).
        for chunk in dest.chunks_mut(4) {
            let bytes = self.word().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

impl ChaChaStream {
    /// `impls::next_u64_via_u32` for the tests: the reference way of making a u64.
    #[cfg(test)]
    fn next_u64_by_words(&mut self) -> u64 {
        rand_core::impls::next_u64_via_u32(self)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::has_avx512() {
                return Kernel::Avx512;
            }
            if crate::cpu::has_avx2() {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }
}

/// 16 lanes of one state word.
type Lanes = [u32; LANES];

/// The low and high words of the counters of blocks `block..block + 16`.
#[inline(always)]
fn counter_words(block: u64) -> (Lanes, Lanes) {
    let counters: [u64; LANES] = std::array::from_fn(|l| block.wrapping_add(l as u64));
    (
        std::array::from_fn(|l| counters[l] as u32),
        std::array::from_fn(|l| (counters[l] >> 32) as u32),
    )
}

/// The 16 input words of the state, built with `splat` (one value in every lane) from
/// the key and stream, with the counters' low and high words `lo` and `hi`.
macro_rules! input_words {
    ($splat:ident, $key:expr, $stream:expr, $lo:expr, $hi:expr) => {
        [
            $splat(CONSTANTS[0]),
            $splat(CONSTANTS[1]),
            $splat(CONSTANTS[2]),
            $splat(CONSTANTS[3]),
            $splat($key[0]),
            $splat($key[1]),
            $splat($key[2]),
            $splat($key[3]),
            $splat($key[4]),
            $splat($key[5]),
            $splat($key[6]),
            $splat($key[7]),
            $lo,
            $hi,
            $splat($stream as u32),
            $splat(($stream >> 32) as u32),
        ]
    };
}

/// The 16 state words of blocks `block..block + 16` before the rounds, word-major.
fn input_state(key: &[u32; 8], stream: u64, block: u64) -> [Lanes; WORDS] {
    let splat = |v: u32| -> Lanes { [v; LANES] };
    let (lo, hi) = counter_words(block);
    input_words!(splat, key, stream, lo, hi)
}

/// The 20 rounds on the 16 words of `$input` (an array), with the given
/// `add(a, b)` and `xor_rotate!(a, b, bits) = (a ^ b) <<< bits`; the words are bound to
/// names, so each stays in a register. Evaluates to the array after the rounds.
macro_rules! rounds {
    ($add:ident, $xor_rotate:ident, $input:expr) => {{
        let [
            mut x0,
            mut x1,
            mut x2,
            mut x3,
            mut x4,
            mut x5,
            mut x6,
            mut x7,
            mut x8,
            mut x9,
            mut x10,
            mut x11,
            mut x12,
            mut x13,
            mut x14,
            mut x15,
        ] = $input;
        for _ in 0..10 {
            rounds!(@q $add, $xor_rotate, x0, x4, x8, x12);
            rounds!(@q $add, $xor_rotate, x1, x5, x9, x13);
            rounds!(@q $add, $xor_rotate, x2, x6, x10, x14);
            rounds!(@q $add, $xor_rotate, x3, x7, x11, x15);
            rounds!(@q $add, $xor_rotate, x0, x5, x10, x15);
            rounds!(@q $add, $xor_rotate, x1, x6, x11, x12);
            rounds!(@q $add, $xor_rotate, x2, x7, x8, x13);
            rounds!(@q $add, $xor_rotate, x3, x4, x9, x14);
        }
        [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15]
    }};
    (@q $add:ident, $xor_rotate:ident, $a:ident, $b:ident, $c:ident, $d:ident) => {
        $a = $add($a, $b);
        $d = $xor_rotate!($d, $a, 16);
        $c = $add($c, $d);
        $b = $xor_rotate!($b, $c, 12);
        $a = $add($a, $b);
        $d = $xor_rotate!($d, $a, 8);
        $c = $add($c, $d);
        $b = $xor_rotate!($b, $c, 7);
    };
}

/// Blocks `block..block + 16`, one at a time in plain integer arithmetic.
fn blocks(key: &[u32; 8], stream: u64, block: u64, out: &mut [Lanes; WORDS]) {
    let input = input_state(key, stream, block);
    let add = |a: u32, b: u32| a.wrapping_add(b);
    macro_rules! xor_rotate {
        ($a:expr, $b:expr, $bits:literal) => {
            ($a ^ $b).rotate_left($bits)
        };
    }
    for l in 0..LANES {
        let input_lane: [u32; WORDS] = std::array::from_fn(|w| input[w][l]);
        let x = rounds!(add, xor_rotate, input_lane);
        for w in 0..WORDS {
            out[w][l] = x[w].wrapping_add(input[w][l]);
        }
    }
}

/// [`blocks`] with one 512-bit register per state word (16 blocks side by side).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn blocks_avx512(key: &[u32; 8], stream: u64, block: u64, out: &mut [Lanes; WORDS]) {
    use std::arch::x86_64::*;
    let (lo, hi) = counter_words(block);
    let splat = |v: u32| _mm512_set1_epi32(v as i32);
    // SAFETY: each load reads the 64 bytes of one `[u32; 16]`.
    let load = |v: &Lanes| unsafe { _mm512_loadu_si512(v.as_ptr().cast()) };
    let input: [__m512i; WORDS] = input_words!(splat, key, stream, load(&lo), load(&hi));
    let add = |a, b| _mm512_add_epi32(a, b);
    macro_rules! xor_rotate {
        ($a:expr, $b:expr, $bits:literal) => {
            _mm512_rol_epi32::<$bits>(_mm512_xor_si512($a, $b))
        };
    }
    let x = rounds!(add, xor_rotate, input);
    for w in 0..WORDS {
        // SAFETY: each store writes the 64 bytes of one `[u32; 16]`.
        unsafe {
            _mm512_storeu_si512(out[w].as_mut_ptr().cast(), _mm512_add_epi32(x[w], input[w]))
        };
    }
}

/// [`blocks`] with one 256-bit register per state word: blocks 0-7, then 8-15.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn blocks_avx2(key: &[u32; 8], stream: u64, block: u64, out: &mut [Lanes; WORDS]) {
    use std::arch::x86_64::*;
    let (lo, hi) = counter_words(block);
    let splat = |v: u32| _mm256_set1_epi32(v as i32);
    let add = |a, b| _mm256_add_epi32(a, b);
    macro_rules! xor_rotate {
        ($a:expr, $b:expr, $bits:literal) => {{
            let v = _mm256_xor_si256($a, $b);
            _mm256_or_si256(
                _mm256_slli_epi32::<$bits>(v),
                _mm256_srli_epi32::<{ 32 - $bits }>(v),
            )
        }};
    }
    for half in [0, 8] {
        // SAFETY: each load reads 32 bytes inside one `[u32; 16]` (lanes half..half + 8).
        let load = |v: &Lanes| unsafe { _mm256_loadu_si256(v[half..].as_ptr().cast()) };
        let input: [__m256i; WORDS] = input_words!(splat, key, stream, load(&lo), load(&hi));
        let x = rounds!(add, xor_rotate, input);
        for w in 0..WORDS {
            // SAFETY: each store writes 32 bytes inside one `[u32; 16]`.
            unsafe {
                _mm256_storeu_si256(
                    out[w][half..].as_mut_ptr().cast(),
                    _mm256_add_epi32(x[w], input[w]),
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn every_kernel() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::has_avx2() {
                kernels.push(Kernel::Avx2);
            }
            if crate::cpu::has_avx512() {
                kernels.push(Kernel::Avx512);
            }
        }
        kernels
    }

    fn with_kernel(rng: &ChaCha20Rng, kernel: Kernel) -> ChaChaStream {
        let mut s = ChaChaStream::continuing(rng);
        let index = s.index;
        s.kernel = kernel;
        s.next_block = s.next_block.wrapping_sub(LANES as u64);
        s.refill();
        s.index = index;
        s
    }

    #[test]
    fn the_rfc_8439_test_vector() {
        // RFC 8439 section 2.3.2 (block 1 of key 00..1f, nonce 000000090000004a00000000)
        // is 96-bit-nonce ChaCha; with a 64-bit counter whose high word is 0x09000000 and
        // the stream 0x4a000000 it is the same block: first word 0xe4e7f110.
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let mut rng = ChaCha20Rng::from_seed(key);
        // The RFC's state words: counter (words 12, 13) = (1, 0x09000000), stream (words
        // 14, 15) = (0x4a000000, 0).
        rng.set_stream(0x4a00_0000);
        rng.set_word_pos(((0x0900_0000u128 << 32) | 1) * 16);
        for kernel in every_kernel() {
            let mut s = with_kernel(&rng, kernel);
            let first: Vec<u32> = (0..4).map(|_| s.next_u32()).collect();
            assert_eq!(
                first,
                [0xe4e7_f110, 0x1559_3bd1, 0x1fdd_0f50, 0xc471_20a3],
                "{kernel:?}"
            );
        }
    }

    #[test]
    fn words_are_those_of_rand_chacha() {
        for (seed, stream, skip) in [(0u64, 0u64, 0usize), (7, 3, 5), (20261126, 1 << 40, 251)] {
            let mut reference = ChaCha20Rng::seed_from_u64(seed);
            reference.set_stream(stream);
            for _ in 0..skip {
                reference.next_u32();
            }
            for kernel in every_kernel() {
                let mut ours = with_kernel(&reference, kernel);
                let mut theirs = reference.clone();
                assert_eq!(ours.word_pos(), theirs.get_word_pos());
                // u64s (aligned or not, across refills), then u32s, then bytes.
                for i in 0..2000 {
                    assert_eq!(ours.next_u64(), theirs.next_u64(), "{kernel:?} u64 {i}");
                }
                for i in 0..777 {
                    assert_eq!(ours.next_u32(), theirs.next_u32(), "{kernel:?} u32 {i}");
                }
                for len in [1, 3, 4, 9, 300] {
                    let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
                    ours.fill_bytes(&mut a);
                    theirs.fill_bytes(&mut b);
                    assert_eq!(a, b, "{kernel:?} {len} bytes");
                }
                for i in 0..600 {
                    assert_eq!(
                        ours.next_u64(),
                        theirs.next_u64(),
                        "{kernel:?} then u64 {i}"
                    );
                }
                assert_eq!(ours.next_u64_by_words(), theirs.next_u64());
                assert_eq!(ours.word_pos(), theirs.get_word_pos());
            }
        }
    }

    #[test]
    fn the_counter_carries_into_its_high_word() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        rng.set_word_pos((u128::from(u32::MAX) - 3) * 16);
        for kernel in every_kernel() {
            let mut ours = with_kernel(&rng, kernel);
            let mut theirs = rng.clone();
            for _ in 0..300 {
                assert_eq!(ours.next_u64(), theirs.next_u64(), "{kernel:?}");
            }
        }
    }

    #[test]
    fn seeking_continues_where_a_stream_stood() {
        let mut ours = ChaChaStream::continuing(&ChaCha20Rng::seed_from_u64(11));
        for _ in 0..1234 {
            ours.next_u32();
        }
        let at = ours.word_pos();
        let expected: Vec<u64> = (0..700).map(|_| ours.next_u64()).collect();
        let mut resumed = ChaChaStream::continuing(&ChaCha20Rng::seed_from_u64(11));
        resumed.seek(at);
        assert_eq!(resumed.word_pos(), at);
        let got: Vec<u64> = (0..700).map(|_| resumed.next_u64()).collect();
        assert_eq!(got, expected);
    }
}
