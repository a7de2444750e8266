//! The params of a `train_flow` node: their defaults, their documentation (what `cgloop
//! stages` prints) and their checks.

use serde::{Deserialize, Serialize};

use crate::stages::atom_ref::AtomRef;
use crate::stages::{ParamDoc, ParamProblem};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainFlowParams {
    /// Rung(s) of the temperature ladder to learn from.
    pub temperature_index: Rungs,
    /// Atoms placed first in the Z-matrix, in order (they must be bonded in a chain).
    pub seeds: Vec<AtomRef>,
    pub layers: usize,
    pub hidden: Vec<usize>,
    pub bins: usize,
    /// Levels of each block-autoregressive conditioner (`nn::flow`); none: one per
    /// coordinate. Left out of the key when unset, so existing nodes keep theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoregressive_levels: Option<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub validation_fraction: f64,
    pub validation_blocks: usize,
    /// Widening of each bond and angle range, as a fraction of the span, on each side.
    pub box_margin: f64,
}

/// The rungs of a temperature ladder a flow learns from: `0`, or a list such as
/// `[0, 1, 2, 3]`. Any rungs make a valid proposal (the reweighting corrects for the
/// flow's density whatever it was trained on); warmer rungs teach it the regions the
/// lowest one rarely visits, at the price of broader conditionals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rungs {
    One(i32),
    Many(Vec<i32>),
}

impl Rungs {
    /// The rungs, as listed.
    pub fn as_slice(&self) -> &[i32] {
        match self {
            Rungs::One(r) => std::slice::from_ref(r),
            Rungs::Many(v) => v,
        }
    }

    pub fn contains(&self, rung: i32) -> bool {
        self.as_slice().contains(&rung)
    }
}

impl std::fmt::Display for Rungs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rungs::One(r) => write!(f, "{r}"),
            Rungs::Many(v) => write!(f, "{v:?}"),
        }
    }
}

fn backbone() -> Vec<AtomRef> {
    [(0, "C"), (1, "N"), (1, "CA"), (1, "C"), (2, "N")]
        .iter()
        .map(|&(r, n)| AtomRef::new(r, n))
        .collect()
}

impl Default for TrainFlowParams {
    fn default() -> Self {
        TrainFlowParams {
            temperature_index: Rungs::One(0),
            seeds: backbone(),
            layers: 4,
            hidden: vec![256, 256],
            bins: 8,
            autoregressive_levels: None,
            epochs: 50,
            batch_size: 256,
            learning_rate: 1e-3,
            validation_fraction: 0.2,
            validation_blocks: 10,
            box_margin: 0.25,
        }
    }
}

pub(super) const DOCS: &[ParamDoc] = &[
    ParamDoc {
        name: "temperature_index",
        about: "rung of the temperature ladder to learn from (0: the lowest), or a list of \
                rungs, e.g. [0, 1, 2, 3]: warmer rungs cover what the lowest rarely visits",
    },
    ParamDoc {
        name: "seeds",
        about: "atoms placed first in the Z-matrix ({residue, name} list; default the \
                alanine dipeptide backbone C, N, CA, C, N)",
    },
    ParamDoc {
        name: "layers",
        about: "spline layers of the flow",
    },
    ParamDoc {
        name: "hidden",
        about: "hidden widths of each layer's MADE conditioner",
    },
    ParamDoc {
        name: "bins",
        about: "rational-quadratic spline bins",
    },
    ParamDoc {
        name: "autoregressive_levels",
        about: "levels of each layer's conditioner (default: one per coordinate). Sampling \
                inverts a layer in one pass per level, so fewer levels draw faster: at \
                chignolin's 492 coordinates a [256, 256] x 4 flow backmaps 800 draws in 5 s \
                with 32 levels, 21 s with 492. Coordinates of one level are independent \
                within a layer; layers alternate contiguous and interleaved levels, which \
                order every pair of coordinates when levels >= sqrt(coordinates)",
    },
    ParamDoc {
        name: "epochs",
        about: "passes over the training frames",
    },
    ParamDoc {
        name: "batch_size",
        about: "frames per minibatch",
    },
    ParamDoc {
        name: "learning_rate",
        about: "Adam step size",
    },
    ParamDoc {
        name: "validation_fraction",
        about: "fraction of the frame blocks held out",
    },
    ParamDoc {
        name: "validation_blocks",
        about: "contiguous blocks the frames are cut into for the split",
    },
    ParamDoc {
        name: "box_margin",
        about: "widening of each bond and angle range beyond the training data, a \
                fraction of the span on each side",
    },
];

pub(super) fn check(p: &TrainFlowParams) -> Result<(), ParamProblem> {
    let rungs = p.temperature_index.as_slice();
    if rungs.is_empty() || rungs.iter().any(|&r| r < 0) {
        return Err(ParamProblem::new(
            "temperature_index",
            "give a rung of 0 or more, or a non-empty list of them",
        ));
    }
    if (1..rungs.len()).any(|i| rungs[..i].contains(&rungs[i])) {
        return Err(ParamProblem::new(
            "temperature_index",
            "a rung is listed twice",
        ));
    }
    if p.seeds.len() < 3 {
        return Err(ParamProblem::new("seeds", "name at least 3 bonded atoms"));
    }
    if p.layers == 0 || p.layers > 32 {
        return Err(ParamProblem::new("layers", "must be between 1 and 32"));
    }
    let depth = crate::nn::product_depth::MAX_PRODUCT_DEPTH;
    if p.hidden.is_empty() || p.hidden.iter().any(|&h| !(1..=depth).contains(&h)) {
        // Wider layers would sum over more than this in their products, whose bits
        // would then depend on the CPU's caches (nn::product_depth).
        return Err(ParamProblem::new(
            "hidden",
            format!("give at least one width, each between 1 and {depth}"),
        ));
    }
    if !(2..=128).contains(&p.bins) {
        return Err(ParamProblem::new("bins", "must be between 2 and 128"));
    }
    if p.autoregressive_levels == Some(0) {
        return Err(ParamProblem::new(
            "autoregressive_levels",
            "must be at least 1 (leave it out for one level per coordinate)",
        ));
    }
    if p.epochs == 0 {
        return Err(ParamProblem::new("epochs", "must be at least 1"));
    }
    if p.batch_size == 0 || p.batch_size > depth {
        // A weight gradient sums over the batch: past this depth its bits would
        // depend on the CPU's caches (nn::product_depth).
        return Err(ParamProblem::new(
            "batch_size",
            format!("must be between 1 and {depth} (training replays bit for bit only then)"),
        ));
    }
    ParamProblem::positive("learning_rate", p.learning_rate)?;
    if !(p.validation_fraction > 0.0 && p.validation_fraction < 1.0) {
        return Err(ParamProblem::new(
            "validation_fraction",
            "must be between 0 and 1 (exclusive)",
        ));
    }
    if p.validation_blocks < 2 {
        return Err(ParamProblem::new("validation_blocks", "must be at least 2"));
    }
    if !(p.box_margin.is_finite() && p.box_margin >= 0.0) {
        return Err(ParamProblem::new("box_margin", "must be 0 or more"));
    }
    Ok(())
}
