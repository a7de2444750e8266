//! A matrix product gives the same bytes single- and multi-threaded: candle 0.11 hands
//! each CPU product to gemm with as many threads as RAYON_NUM_THREADS says (the cores
//! when unset), so a study's trained networks would otherwise depend on the machine.
//!
//! One test function: it writes the process environment, which no other test of this
//! binary may read at the same time.

use candle_core::{Device, Tensor};
use cgloop::random::{normal, stream};

fn random(rows: usize, cols: usize, id: u64) -> Tensor {
    let mut rng = stream(7, id);
    let values: Vec<f64> = (0..rows * cols).map(|_| normal(&mut rng)).collect();
    Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap()
}

fn bits(t: &Tensor) -> Vec<u64> {
    let v: Vec<f64> = t.flatten_all().unwrap().to_vec1().unwrap();
    v.iter().map(|x| x.to_bits()).collect()
}

/// Products of the shapes training uses (batch 64, widths 16-128, the transposed
/// operands of a backward pass), a batched one, and one large enough that gemm splits it.
fn products() -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    for (i, &(m, k, n)) in [
        (64, 26, 64),
        (64, 64, 64),
        (64, 64, 1),
        (1408, 17, 32),
        (300, 257, 190),
        (1024, 512, 384),
    ]
    .iter()
    .enumerate()
    {
        let a = random(m, k, 2 * i as u64);
        let b = random(k, n, 2 * i as u64 + 1);
        out.push(bits(&a.matmul(&b).unwrap()));
        // a^T-shaped operands, as in a weight gradient x^T dy.
        let at = random(k, m, 100 + i as u64).t().unwrap();
        out.push(bits(&at.matmul(&b).unwrap()));
        out.push(bits(
            &a.matmul(&b.t().unwrap().contiguous().unwrap().t().unwrap())
                .unwrap(),
        ));
    }
    let batched_a = Tensor::stack(&[random(64, 32, 200), random(64, 32, 201)], 0).unwrap();
    let batched_b = Tensor::stack(&[random(32, 48, 202), random(32, 48, 203)], 0).unwrap();
    out.push(bits(&batched_a.matmul(&batched_b).unwrap()));
    out
}

#[test]
fn products_are_the_same_bytes_for_any_thread_count() {
    // SAFETY (every set_var): this binary's only test; nothing else reads the
    // environment meanwhile. Four pool threads, so that gemm's split really runs in
    // parallel even on a 2-core machine.
    rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build_global()
        .unwrap();
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    assert_eq!(candle_core::utils::get_num_threads(), 1);
    let single = products();
    for n in ["2", "3", "8"] {
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n) };
        assert_eq!(
            candle_core::utils::get_num_threads(),
            n.parse::<usize>().unwrap()
        );
        let multi = products();
        for (i, (s, m)) in single.iter().zip(&multi).enumerate() {
            assert!(s == m, "product {i} differs with {n} threads");
        }
    }
}
