//! Stages: the kinds of node a workflow is made of.
//!
//! A stage is a pure function of (inputs, params, rng): it gets decoded upstream
//! artifacts, the bytes of the files its params name, and a seeded ChaCha generator, and
//! returns its outputs. It never touches the file system or the store; the executor
//! ([`crate::exec`]) does all I/O. Each stage lives in its own file and is listed in
//! [`Registry::builtin`].

pub mod atom_ref;
pub mod backmap;
pub mod cg_compare;
pub mod cg_sample;
pub mod committor;
pub mod committor_ffs;
pub mod committor_rate;
pub mod committor_test;
pub mod compare;
pub mod fg_sample;
pub mod fit_potential;
pub mod import_trajectory;
pub mod map_forces;
pub mod protein_compare;
pub mod protein_observables;
pub mod ramachandran;
pub mod refine_flow;
pub mod registry;
pub mod reweight;
pub mod stage;
pub mod train_flow;
pub mod train_map;
pub mod transitions;

pub use registry::Registry;
pub use stage::{
    Context, DataFile, DynStage, Inputs, NoProgress, Outputs, ParamDoc, ParamProblem, ParamReport,
    Port, Progress, ResolvedParams, Stage, StageError, list_element_name, split_list_element,
};
