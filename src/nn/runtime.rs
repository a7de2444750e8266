//! Process-wide settings that candle 0.11's CPU backend needs to run our small networks
//! fast. Two costs found with `perf` on the training steps of `cargo bench --bench nn`
//! (2-core machine), each removed here without changing a single result bit:
//!
//! 1. The thread count, reread from /proc/cpuinfo at every matrix product. candle hands
//!    each product to gemm with as many threads as `RAYON_NUM_THREADS` says; when it is
//!    unset it counts the physical cores with `num_cpus::get_physical`, which parses
//!    /proc/cpuinfo, and does so again for every product: 18 % of a `train_map` step went
//!    to the kernel formatting that file. [`prepare_process`] sets the variable, when the
//!    user has not, to the CPUs this process may use divided by the nodes that compute
//!    at once, and keeps rayon's global pool (cgloop's own parallel work) at one thread
//!    per CPU. Products are the same bytes for any thread count
//!    (tests/matmul_threads.rs), so this changes time only.
//! 2. Fresh pages for every tensor. candle allocates a new buffer for each tensor an
//!    operation produces: hundreds per step, most a few hundred kB (a batch of 64 frames
//!    x 10 bead pairs x 64 features is 328 kB). glibc's malloc serves blocks above its
//!    mmap threshold (128 kB at first) with fresh pages and returns memory above its trim
//!    threshold to the kernel on free, so a step paid for thousands of page faults and
//!    the zeroing of those pages: 19 % of a force-matching step (350,000 faults in 20 s
//!    of the benchmark; 4,700 after). [`prepare_process`] raises both thresholds so freed
//!    blocks stay in the heap for the next step. The price is memory: up to
//!    [`TRIM_THRESHOLD`] of freed memory stays with the process. Only glibc has these
//!    knobs; elsewhere nothing is changed.
//! 3. One heap for all threads. A node computes on its own thread, and glibc gives such
//!    threads their own arenas, made of 64 MB heaps that are unmapped as soon as they
//!    empty, whatever the trim threshold. A flow at protein size (chignolin: 492
//!    coordinates, [256, 256] x 4) frees about a gigabyte per training step, Adam's
//!    temporaries of 25 MB weight matrices among it, so every step faulted it all in
//!    again. [`prepare_process`] sets one arena (the main heap, where the thresholds
//!    hold) and a trim threshold of 1 GB: page faults of that training fall from 2.8 to
//!    0.9-1.4 million and its wall time by 30 % (6 epochs: 17-20 s -> 12.4-12.9 s, two
//!    threads; `perf stat`); neither alone does it. The price: worker threads now share
//!    one arena's lock, which costs `train_map`'s benchmark step 6 % (5.6 -> 5.95 ms;
//!    force matching and MD unchanged).
//!
//! Together: force matching 9.5 -> 6.0 ms per step, `train_map`'s step 11 -> 6.8 ms.

use std::num::NonZeroUsize;

/// Blocks below this come from the heap, not from fresh pages (bytes; the largest value
/// glibc's manual documents for 64-bit systems).
pub const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap kept before any is returned (bytes).
pub const TRIM_THRESHOLD: i32 = 1 << 30;
/// Malloc arenas: one, the main heap, for every thread (see the module docs).
pub const ARENAS: i32 = 1;
/// Extra memory taken whenever the heap grows (bytes).
pub const TOP_PAD: i32 = 16 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    // <malloc.h>
    pub const M_TRIM_THRESHOLD: c_int = -1;
    pub const M_TOP_PAD: c_int = -2;
    pub const M_MMAP_THRESHOLD: c_int = -3;
    pub const M_ARENA_MAX: c_int = -8;

    unsafe extern "C" {
        /// glibc's `int mallopt(int param, int value)`: 1 on success, 0 on error;
        /// thread-safe (it takes the arena locks).
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
    }
}

/// What [`prepare_process`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// The thread count candle's products now read from `RAYON_NUM_THREADS`: per node.
    pub threads: usize,
    /// Whether the count was set here (false: the user's `RAYON_NUM_THREADS` stands).
    pub threads_set: bool,
    /// The threads of rayon's global pool.
    pub pool_threads: usize,
    /// Whether glibc took the malloc thresholds.
    pub malloc_tuned: bool,
}

/// Sets `RAYON_NUM_THREADS` (unless the user has) and glibc's malloc thresholds; see the
/// module doc. Call it once, first thing in a program that trains networks (the `cgloop`
/// binary and the training benchmark do). `jobs` is how many nodes will compute at once:
/// candle's products each take the CPUs divided by it, while rayon's global pool, where
/// nodes run their own parallel work (MD windows, chains), keeps one thread per CPU, so a
/// node alone still has the whole machine. Two training nodes side by side on a 2-core
/// machine otherwise each split every product over both cores and waited on each other:
/// the quick study's two flows took 35.8 and 30.2 s with 2 threads, 17.8 and 14.6 s with
/// 1 (`-j 2`; the whole study 44.7 -> 31.0 s, the same bytes).
///
/// # Safety
///
/// Writes the process environment: no other thread may exist yet.
pub unsafe fn prepare_process(jobs: usize) -> Prepared {
    let user = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<NonZeroUsize>().ok());
    let (threads, threads_set) = match user {
        Some(n) => (n.get(), false),
        None => {
            let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
            let n = (cpus / jobs.max(1)).max(1);
            // SAFETY: the caller guarantees that no other thread exists, so nothing reads
            // the environment while it is written.
            unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
            if n != cpus {
                // The global pool at full width, the variable notwithstanding (only its
                // first build counts; an existing pool stays as it is).
                let _ = rayon::ThreadPoolBuilder::new()
                    .num_threads(cpus)
                    .build_global();
            }
            (n, true)
        }
    };
    Prepared {
        threads,
        threads_set,
        pool_threads: rayon::current_num_threads(),
        malloc_tuned: tune_malloc(),
    }
}

/// Sets glibc's mmap threshold, trim threshold, top pad and arena count to the constants
/// above; true if the allocator took them (false elsewhere than glibc).
fn tune_malloc() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use glibc::*;
        // SAFETY: mallopt only changes allocator parameters; glibc documents it as
        // MT-safe, and the values are within its accepted ranges.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && mallopt(M_TOP_PAD, TOP_PAD) == 1
                && mallopt(M_ARENA_MAX, ARENAS) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
