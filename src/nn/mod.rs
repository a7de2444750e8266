//! Neural-network building blocks on candle, usable without workflows.
//!
//! Every weight is drawn from cgloop's own seeded ChaCha streams ([`store`]), never
//! from candle's unseedable generator, and saved as Parquet sorted by name. Networks
//! whose training loss contains their own gradient (force matching) get that gradient
//! analytically as candle operations ([`mlp::Mlp::forward_with_input_gradient`]), so a
//! single backward pass gives exact parameter gradients without
//! `CANDLE_GRAD_DO_NOT_DETACH`.

pub mod cg_map;
pub mod cg_potential;
pub mod cg_potential_host;
pub mod committor;
pub mod committor_lagged;
pub mod committor_training;
pub mod decoder;
pub mod equivariant;
pub mod flow;
pub mod force_map;
pub mod gradcheck;
mod host_network;
pub mod inverse_map;
pub mod made;

pub mod map_model;
pub mod mlp;
pub mod priors;
pub mod product_depth;
pub mod reverse_kl;
pub mod runtime;
pub mod spline;
pub mod store;
pub mod training;
pub mod unit_box;
pub mod zmatrix_graph;

pub use cg_potential::{CgPotential, CgPotentialConfig};
pub use mlp::{Activation, Mlp};
pub use store::ParameterStore;
