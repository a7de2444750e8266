//! cgloop: workflows for learned, invertible coarse-graining of biomolecules.
//!
//! A study is a YAML workflow (see [`workflow`]): a DAG of stages ([`stages`]) run by the
//! executor ([`exec`]), each node keyed by a content hash and cached as Parquet
//! ([`artifact`]). The physics ([`md`]), networks ([`nn`]) and analysis ([`analysis`])
//! know nothing of workflows.

pub mod analysis;
pub mod artifact;
pub mod cli;
mod cpu;
pub mod exec;
pub mod geometry;
pub mod md;
pub mod nn;
pub mod random;
pub mod stages;
pub mod workflow;
