//! The depth bound that makes training's matrix products the same bits on every x86-64
//! machine with FMA.
//!
//! candle 0.11 hands CPU products to gemm 0.19. Its microkernel sums each output element
//! as one chain of fused multiply-adds, acc = fma(a_ik, b_kj, acc) for k = 0, 1, ...,
//! within a block of depth kc, and adds the blocks' partial sums in order. The block
//! depth comes from the CPU's reported L1 data cache (`gemm_common::cache::kernel_params`:
//! at least 512, more on cores with a 48 KiB, 12-way L1), and a product whose inner
//! dimension k exceeds it is cut into blocks of ~k / ceil(k / kc): the order of summation,
//! and so the bits, then depend on the machine. For k <= 512 every machine uses one block
//! (the result is then the sequential FMA chain), as do products with m, n <= 64 (their
//! depth is fixed at 512). Threads only split rows and columns, never k.
//!
//! So every product that training runs keeps k <= [`MAX_PRODUCT_DEPTH`]: networks check
//! their widths and batches against it, and a layer with more outputs than that (the
//! MADE output layer's D x P units, whose input gradient sums over all of them) is
//! evaluated in blocks of at most that many outputs, its gradient summed block by block
//! in the graph's fixed order. `tests/suite/nn.rs` pins the rule against a sequential FMA
//! reference at the shapes the flows train with.

/// The largest inner dimension of a matrix product in training.
pub const MAX_PRODUCT_DEPTH: usize = 512;

/// Ranges of whole units, each of `unit` outputs, of at most [`MAX_PRODUCT_DEPTH`]
/// outputs per block (at least one unit per block): (first output, outputs).
pub fn output_blocks(units: usize, unit: usize) -> Vec<(usize, usize)> {
    let per_block = (MAX_PRODUCT_DEPTH / unit.max(1)).max(1);
    (0..units)
        .step_by(per_block)
        .map(|first| (first * unit, (per_block.min(units - first)) * unit))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_outputs_in_whole_units() {
        // The study's flow: 51 dimensions of 25 spline parameters.
        let blocks = output_blocks(51, 25);
        assert_eq!(blocks, [(0, 500), (500, 500), (1000, 275)]);
        assert_eq!(output_blocks(3, 25), [(0, 75)]);
        assert_eq!(output_blocks(2, 600), [(0, 600), (600, 600)]);
        assert!(output_blocks(0, 25).is_empty());
    }
}
