//! The default test suite in one binary: each file under `tests/` is its own binary that
//! links candle, arrow and parquet, so the short test files live here as modules of one
//! binary, linked once. Kept apart as binaries of their own: the `long_*` checks (run by
//! `just`), `fuzz_inputs` (its panic hook is process-wide), `matmul_threads` and
//! `runtime` (they set the process's thread count and environment) and `stage_pins`
//! (whose pins are rewritten by name). One test file: `cargo test --release --test suite
//! cg_potential::`.

#[path = "../common/mod.rs"]
mod common;

mod angle_dihedral_prior;
mod backmapping;
mod cg_compare;
mod cg_map;
mod cg_potential;
mod cg_potential_host;
mod cg_sample;
mod chignolin_md;
mod chignolin_study;
mod cli;
mod cli_energy;
mod committor;
mod dihedral_pairs;
mod engine;
mod fg_sample;
mod fit_potential;
mod flow;
mod import_trajectory;
mod keys;
mod map_forces;
mod md_dynamics;
mod md_lanes;
mod md_openmm_reference;
mod md_readers;
mod nn;
mod processes;
mod protein_compare;
mod protein_observables;
mod ramachandran;
mod refine_flow;
mod reverse_kl;
mod smoke;
mod spline;
mod store_disk;
mod train_map;
mod transitions;
mod uncertainty;
mod workflow_errors;
mod workflows;
mod zmatrix;
