//! `nn::runtime::prepare_process`: RAYON_NUM_THREADS (candle's threads per product) set
//! to the CPUs this process may use divided by the jobs (at least one) when the user has
//! not set it, kept when they have, with rayon's global pool at one thread per CPU; glibc takes every malloc
//! threshold (mallopt returns 1 for each).
//!
//! One test function: it writes the process environment, which no other test of this
//! binary may read at the same time.

use cgloop::nn::runtime::{Prepared, prepare_process};

#[test]
fn prepare_sets_the_thread_count_once_and_tunes_glibc() {
    let glibc = cfg!(all(target_os = "linux", target_env = "gnu"));
    let cpus = std::thread::available_parallelism().unwrap().get();
    // SAFETY (every environment write and prepare_process): this binary's only test;
    // nothing else reads the environment meanwhile.
    unsafe { std::env::remove_var("RAYON_NUM_THREADS") };
    let prepared = unsafe { prepare_process(1) };
    let expected = Prepared {
        threads: cpus,
        threads_set: true,
        pool_threads: cpus,
        malloc_tuned: glibc,
    };
    assert_eq!(prepared, expected);
    assert_eq!(
        std::env::var("RAYON_NUM_THREADS").unwrap(),
        cpus.to_string()
    );
    assert_eq!(candle_core::utils::get_num_threads(), cpus);

    // Per node: two jobs share the CPUs, more jobs than CPUs get one thread each.
    unsafe { std::env::remove_var("RAYON_NUM_THREADS") };
    let prepared = unsafe { prepare_process(2) };
    assert_eq!(prepared.threads, (cpus / 2).max(1));
    assert_eq!(prepared.pool_threads, cpus);
    unsafe { std::env::remove_var("RAYON_NUM_THREADS") };
    assert_eq!(unsafe { prepare_process(cpus + 1) }.threads, 1);
    assert_eq!(candle_core::utils::get_num_threads(), 1);
    assert_eq!(rayon::current_num_threads(), cpus);

    unsafe { std::env::set_var("RAYON_NUM_THREADS", "7") };
    let prepared = unsafe { prepare_process(2) };
    let expected = Prepared {
        threads: 7,
        threads_set: false,
        pool_threads: cpus,
        malloc_tuned: glibc,
    };
    assert_eq!(prepared, expected);
    assert_eq!(candle_core::utils::get_num_threads(), 7);

    // Not a count: replaced, as rayon and candle would ignore it.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "many") };
    assert_eq!(unsafe { prepare_process(1) }.threads, cpus);
}
