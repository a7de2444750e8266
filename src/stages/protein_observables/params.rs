//! The params of a `protein_observables` node: their defaults, their documentation (what `cgloop
//! stages` prints) and their checks.

use serde::{Deserialize, Serialize};

use crate::stages::{DataFile, ParamDoc, ParamProblem};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProteinObservablesParams {
    pub native: DataFile,
    pub temperature_index: i32,
    pub folded_rmsd_nm: f64,
    pub tica_lag: usize,
    pub blocks: usize,
    pub resamples: usize,
    pub bins: usize,
    pub title: String,
}

impl Default for ProteinObservablesParams {
    fn default() -> Self {
        ProteinObservablesParams {
            native: DataFile::default(),
            temperature_index: 0,
            folded_rmsd_nm: 0.25,
            tica_lag: 10,
            blocks: 20,
            resamples: 1000,
            bins: 50,
            title: "Protein observables".into(),
        }
    }
}

pub(super) const DOCS: &[ParamDoc] = &[
    ParamDoc {
        name: "native",
        about: "PDB of the native structure (required; e.g. a crystal structure, hydrogens \
                not needed)",
    },
    ParamDoc {
        name: "temperature_index",
        about: "the rung of the trajectory to analyse",
    },
    ParamDoc {
        name: "folded_rmsd_nm",
        about: "a frame is folded when its C-alpha RMSD to the native is at most this (nm)",
    },
    ParamDoc {
        name: "tica_lag",
        about: "TICA lag, in saved frames",
    },
    ParamDoc {
        name: "blocks",
        about: "contiguous blocks of the block bootstrap (choose blocks long against the \
                slowest process, folding)",
    },
    ParamDoc {
        name: "resamples",
        about: "bootstrap resamples",
    },
    ParamDoc {
        name: "bins",
        about: "bins per axis of the free-energy maps",
    },
    ParamDoc {
        name: "title",
        about: "the report's title",
    },
];

pub(super) fn check(p: &ProteinObservablesParams) -> Result<(), ParamProblem> {
    if p.native.0.is_empty() {
        return Err(ParamProblem::new(
            "native",
            "required: a PDB of the native structure",
        ));
    }
    if p.temperature_index < 0 {
        return Err(ParamProblem::new("temperature_index", "must be 0 or more"));
    }
    ParamProblem::positive("folded_rmsd_nm", p.folded_rmsd_nm)?;
    if p.tica_lag == 0 {
        return Err(ParamProblem::new("tica_lag", "must be at least 1"));
    }
    if p.blocks < 2 {
        return Err(ParamProblem::new("blocks", "must be at least 2"));
    }
    if p.resamples < 2 {
        return Err(ParamProblem::new("resamples", "must be at least 2"));
    }
    if !(2..=1000).contains(&p.bins) {
        return Err(ParamProblem::new(
            "bins",
            format!("must be between 2 and 1000, got {}", p.bins),
        ));
    }
    Ok(())
}
