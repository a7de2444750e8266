//! `train_map`'s params: what each means (what `cgloop stages` prints), their defaults
//! and their checks.

use serde::{Deserialize, Serialize};

use crate::stages::atom_ref::AtomRef;
use crate::stages::{ParamDoc, ParamProblem};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapKind {
    Learned,
    Fixed,
    /// A fixed map with one bead per residue on its C-alpha atom (atoms named `CA`;
    /// caps without one, such as ACE and NME, get no bead).
    Calpha,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedAtoms {
    /// Every atom that is not hydrogen.
    Heavy,
    /// Every atom.
    All,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainMapParams {
    pub map: MapKind,
    pub beads: usize,
    pub fixed_beads: Vec<Vec<AtomRef>>,
    pub seed_atoms: SeedAtoms,
    pub temperature_index: i32,
    pub epochs: usize,
    pub decoder_epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub lambda: f64,
    pub lambda_mf: f64,
    pub validation_fraction: f64,
    pub validation_blocks: usize,
    pub graph_cutoff_nm: f64,
    pub prior_width_nm: f64,
    pub initial_temperature: f64,
    pub restarts: usize,
    pub egnn_features: usize,
    pub egnn_layers: usize,
    pub decoder_hidden: Vec<usize>,
}

/// Alanine dipeptide's backbone: C(ACE), N, CA, C (ALA), N(NME).
fn backbone_beads() -> Vec<Vec<AtomRef>> {
    [(0, "C"), (1, "N"), (1, "CA"), (1, "C"), (2, "N")]
        .iter()
        .map(|&(r, n)| vec![AtomRef::new(r, n)])
        .collect()
}

impl Default for TrainMapParams {
    fn default() -> Self {
        TrainMapParams {
            map: MapKind::Learned,
            beads: 5,
            fixed_beads: backbone_beads(),
            seed_atoms: SeedAtoms::Heavy,
            temperature_index: 0,
            epochs: 40,
            decoder_epochs: 20,
            batch_size: 64,
            learning_rate: 2e-3,
            lambda: 0.1,
            lambda_mf: 0.001,
            validation_fraction: 0.2,
            validation_blocks: 10,
            graph_cutoff_nm: 0.5,
            prior_width_nm: crate::nn::map_model::PRIOR_WIDTH_NM,
            initial_temperature: 20.0,
            restarts: 3,
            egnn_features: 32,
            egnn_layers: 2,
            decoder_hidden: vec![64, 64],
        }
    }
}

pub(super) const PARAM_DOCS: &[ParamDoc] = &[
    ParamDoc {
        name: "map",
        about: "learned (EGNN soft assignment) | fixed (hard map on fixed_beads) | calpha (a \
                hard map with one bead per residue on its CA atom)",
    },
    ParamDoc {
        name: "beads",
        about: "number of beads of a learned map",
    },
    ParamDoc {
        name: "fixed_beads",
        about: "fixed map: per bead, its atoms as {residue, name} (default: alanine dipeptide's backbone C, N, CA, C, N)",
    },
    ParamDoc {
        name: "seed_atoms",
        about: "atoms the decoder reconstructs: heavy | all",
    },
    ParamDoc {
        name: "temperature_index",
        about: "train on frames at this rung of the temperature ladder",
    },
    ParamDoc {
        name: "epochs",
        about: "joint epochs (map, decoder, mean-force potential)",
    },
    ParamDoc {
        name: "decoder_epochs",
        about: "epochs with the map frozen, decoder only (best validation kept)",
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
        name: "lambda",
        about: "weight of L_link + L_ent + L_assign (paper: 0.1)",
    },
    ParamDoc {
        name: "lambda_mf",
        about: "extra weight of the mean-force term, total lambda * lambda_mf (paper: 0.001)",
    },
    ParamDoc {
        name: "validation_fraction",
        about: "fraction of frame blocks held out for validation",
    },
    ParamDoc {
        name: "validation_blocks",
        about: "contiguous blocks the frames are cut into for the split",
    },
    ParamDoc {
        name: "graph_cutoff_nm",
        about: "EGNN edges: bonds plus atom pairs closer than this in the reference frame (nm)",
    },
    ParamDoc {
        name: "prior_width_nm",
        about: "learned map: width of the spatial-clustering prior the scores start from (nm); wider starts softer",
    },
    ParamDoc {
        name: "initial_temperature",
        about: "learned map: softmax temperature of P in the first joint epoch, lowered geometrically to 1 by the last (1 = no annealing; default 20)",
    },
    ParamDoc {
        name: "restarts",
        about: "train this many maps (and decoders) from different initial weights and batch orders; keep the one with the lowest validation reconstruction RMSD",
    },
    ParamDoc {
        name: "egnn_features",
        about: "EGNN feature width",
    },
    ParamDoc {
        name: "egnn_layers",
        about: "EGNN message-passing layers",
    },
    ParamDoc {
        name: "decoder_hidden",
        about: "hidden layer sizes of the decoder",
    },
];

pub(super) fn check(p: &TrainMapParams) -> Result<(), ParamProblem> {
    if p.map == MapKind::Learned && p.beads < 2 {
        return Err(ParamProblem::new("beads", "a map needs at least 2 beads"));
    }
    if p.map == MapKind::Fixed && p.fixed_beads.len() < 2 {
        return Err(ParamProblem::new(
            "fixed_beads",
            "a fixed map needs at least 2 beads",
        ));
    }
    if p.epochs + p.decoder_epochs == 0 {
        return Err(ParamProblem::new(
            "epochs",
            "epochs + decoder_epochs must be > 0",
        ));
    }
    if p.restarts == 0 {
        return Err(ParamProblem::new("restarts", "must be >= 1"));
    }
    if p.batch_size == 0 {
        return Err(ParamProblem::new("batch_size", "must be > 0"));
    }
    if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
        return Err(ParamProblem::new("learning_rate", "must be > 0"));
    }
    for (name, v) in [("lambda", p.lambda), ("lambda_mf", p.lambda_mf)] {
        if !(v >= 0.0 && v.is_finite()) {
            return Err(ParamProblem::new(name, "must be >= 0"));
        }
    }
    if !(p.validation_fraction > 0.0 && p.validation_fraction < 1.0) {
        return Err(ParamProblem::new(
            "validation_fraction",
            "must be between 0 and 1 (exclusive)",
        ));
    }
    if p.validation_blocks < 2 {
        return Err(ParamProblem::new("validation_blocks", "must be >= 2"));
    }
    if !(p.prior_width_nm > 0.0 && p.prior_width_nm.is_finite()) {
        return Err(ParamProblem::new("prior_width_nm", "must be > 0"));
    }
    if !(p.initial_temperature >= 1.0 && p.initial_temperature.is_finite()) {
        return Err(ParamProblem::new("initial_temperature", "must be >= 1"));
    }
    if !(p.graph_cutoff_nm > 0.0) {
        return Err(ParamProblem::new("graph_cutoff_nm", "must be > 0"));
    }
    if p.egnn_features == 0 || p.egnn_layers == 0 {
        return Err(ParamProblem::new("egnn_features", "EGNN sizes must be > 0"));
    }
    Ok(())
}
