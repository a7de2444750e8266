//! `ramachandran`: backbone dihedrals, basin populations and the free-energy map.
//!
//! For each frame at one temperature of a trajectory, the two dihedrals phi and psi
//! (each four atoms named by residue and atom name, resolved in the atom table; the
//! defaults are alanine dipeptide's phi = C(ACE)-N-CA-C(ALA) and psi = N-CA-C(ALA)-N(NME))
//! are computed with [`crate::geometry::dihedral`]. Frames are assigned to basins
//! (degrees):
//!
//! | basin | region |
//! |---|---|
//! | `C7ax/alpha_L` | phi > 0 |
//! | `alpha_R` | phi <= 0 and -125 < psi < 50 |
//! | `C7eq/beta` | the rest (phi <= 0, psi >= 50 or psi <= -125) |
//!
//! Populations are weighted means of the basin indicators,
//! `P_b = sum_t w_t 1[t in b] / sum_t w_t`, with block-bootstrap standard errors
//! ([`crate::analysis::bootstrap`], resamples drawn from the node's generator). Weights
//! come from the optional `weights` input (a table with a float64 column `weight`, one
//! row per trajectory frame or one per analysed frame), else all frames weigh 1. The
//! free energy is `F = -kT ln p` on a periodic phi x psi histogram, 0 at its minimum
//! ([`crate::analysis::histogram`]), at the trajectory's temperature unless
//! `temperature_k` is given. The map is drawn as PNG and SVG with the basin boundaries
//! and the populations ([`crate::analysis::plot`]). Output schemas:
//! [`crate::artifact::ramachandran`].

use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

pub use super::atom_ref::{AtomRef, resolve_four};
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
pub use crate::analysis::basin::Basin;
use crate::analysis::bootstrap::{BlockBootstrap, Estimate};
use crate::analysis::histogram::PeriodicHistogram2d;
use crate::analysis::plot::{Drawing, FreeEnergyMap, Label, Segment};
use crate::artifact::Artifact;
use crate::artifact::atoms::ATOMS;
use crate::artifact::frame_weights::FRAME_WEIGHTS;
use crate::artifact::kind::{PNG, SVG};
use crate::artifact::ramachandran::{
    BASIN_POPULATIONS, DIHEDRALS, FREE_ENERGY_2D, basin_populations_schema, dihedrals_schema,
    free_energy_2d_schema,
};
use crate::artifact::trajectory::{TRAJECTORY, Trajectory};
use crate::geometry::dihedral::dihedral_of_atoms;
use crate::md::units::BOLTZMANN;

/// The conformational basins of a phi/psi pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RamachandranParams {
    pub temperature_index: i32,
    pub phi: [AtomRef; 4],
    pub psi: [AtomRef; 4],
    pub phi_bins: usize,
    pub psi_bins: usize,
    pub blocks: usize,
    pub resamples: usize,
    /// Temperature of the free energy (K); `None`: the trajectory's.
    pub temperature_k: Option<f64>,
}

impl Default for RamachandranParams {
    fn default() -> Self {
        RamachandranParams {
            temperature_index: 0,
            phi: AtomRef::alanine_phi(),
            psi: AtomRef::alanine_psi(),
            phi_bins: 60,
            psi_bins: 60,
            blocks: 20,
            resamples: 1000,
            temperature_k: None,
        }
    }
}

pub struct Ramachandran;

impl Stage for Ramachandran {
    type Params = RamachandranParams;
    const NAME: &'static str = "ramachandran";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "phi/psi dihedrals, basin populations (C7eq/beta, alpha_R, \
         C7ax/alpha_L) with block-bootstrap errors, and the free-energy map (tables, PNG, SVG)";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "frames to analyse; a list (segments of one chained run, or runs) is joined \
                    in its order",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the trajectory's atoms (the dihedrals' atoms are found by name)",
        },
        Port {
            name: "weights",
            kind: FRAME_WEIGHTS,
            about: "optional: frame weights, a float64 column `weight` (one row per trajectory \
                    frame or per analysed frame); without it every frame weighs 1",
        },
    ];
    const OPTIONAL_INPUTS: &'static [&'static str] = &["weights"];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "dihedrals",
            kind: DIHEDRALS,
            about: "per frame: frame, phi_deg, psi_deg, weight, basin",
        },
        Port {
            name: "populations",
            kind: BASIN_POPULATIONS,
            about: "per basin: population and its block-bootstrap standard error",
        },
        Port {
            name: "free_energy",
            kind: FREE_ENERGY_2D,
            about: "phi x psi histogram and free energy (kJ/mol; null in empty bins)",
        },
        Port {
            name: "ramachandran_png",
            kind: PNG,
            about: "the free-energy map with basin boundaries and populations",
        },
        Port {
            name: "ramachandran_svg",
            kind: SVG,
            about: "the same map as SVG",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "temperature_index",
            about: "rung of the temperature ladder to analyse (0: the lowest)",
        },
        ParamDoc {
            name: "phi",
            about: "four atoms as {residue, name} (residue 0-based); default C(0) N(1) CA(1) C(1)",
        },
        ParamDoc {
            name: "psi",
            about: "four atoms as {residue, name}; default N(1) CA(1) C(1) N(2)",
        },
        ParamDoc {
            name: "phi_bins",
            about: "histogram bins along phi over [-180, 180)",
        },
        ParamDoc {
            name: "psi_bins",
            about: "histogram bins along psi over [-180, 180)",
        },
        ParamDoc {
            name: "blocks",
            about: "contiguous blocks of the block bootstrap",
        },
        ParamDoc {
            name: "resamples",
            about: "bootstrap resamples",
        },
        ParamDoc {
            name: "temperature_k",
            about: "temperature of the free energy (K); default: the trajectory's",
        },
    ];

    fn check(p: &RamachandranParams) -> Result<(), ParamProblem> {
        if p.temperature_index < 0 {
            return Err(ParamProblem::new("temperature_index", "must be 0 or more"));
        }
        for (name, bins) in [("phi_bins", p.phi_bins), ("psi_bins", p.psi_bins)] {
            if !(1..=3600).contains(&bins) {
                return Err(ParamProblem::new(
                    name,
                    format!("must be between 1 and 3600, got {bins}"),
                ));
            }
        }
        if p.blocks < 2 {
            return Err(ParamProblem::new("blocks", "must be at least 2"));
        }
        if p.resamples < 2 {
            return Err(ParamProblem::new("resamples", "must be at least 2"));
        }
        if let Some(t) = p.temperature_k
            && !(t.is_finite() && t > 0.0)
        {
            return Err(ParamProblem::new(
                "temperature_k",
                format!("must be positive, got {t}"),
            ));
        }
        Ok(())
    }

    fn run(
        p: &RamachandranParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let (trajectory, atoms) = inputs.trajectory_with_atoms("trajectory", "atoms")?;
        let phi_atoms = resolve_four(&atoms, &p.phi, "phi")?;
        let psi_atoms = resolve_four(&atoms, &p.psi, "psi")?;
        let rows: Vec<usize> = (0..trajectory.len())
            .filter(|&i| trajectory.temperature_index[i] == p.temperature_index)
            .collect();
        if rows.is_empty() {
            let mut present = trajectory.temperature_index.clone();
            present.sort_unstable();
            present.dedup();
            return Err(StageError::BadInput {
                input: "trajectory".into(),
                message: format!(
                    "no frames at temperature_index {}; present: {present:?}",
                    p.temperature_index
                ),
            });
        }
        let weights = inputs.frame_weights("weights", trajectory.len(), &rows)?;
        let temperature_k = match p.temperature_k {
            Some(t) => t,
            None => trajectory_temperature(&trajectory, &rows)?,
        };

        let phi: Vec<f64> = rows
            .iter()
            .map(|&i| dihedral_of_atoms(trajectory.positions(i), phi_atoms))
            .collect();
        let psi: Vec<f64> = rows
            .iter()
            .map(|&i| dihedral_of_atoms(trajectory.positions(i), psi_atoms))
            .collect();
        let basins: Vec<Basin> = phi
            .iter()
            .zip(&psi)
            .map(|(&a, &b)| Basin::of(a, b))
            .collect();

        let bootstrap = BlockBootstrap {
            blocks: p.blocks,
            resamples: p.resamples,
        };
        let estimates = basin_populations(&basins, &weights, bootstrap, &mut ctx.rng)?;
        let counts: Vec<i64> = Basin::ALL
            .iter()
            .map(|&b| basins.iter().filter(|&&x| x == b).count() as i64)
            .collect();
        for ((b, e), n) in Basin::ALL.iter().zip(&estimates).zip(&counts) {
            tracing::info!(
                "{}: {:.4} ± {:.4} ({n} frames)",
                b.name(),
                e.mean,
                e.std_error
            );
        }

        let histogram =
            PeriodicHistogram2d::from_angles(p.phi_bins, p.psi_bins, &phi, &psi, &weights);
        let free_energy = histogram.free_energy(BOLTZMANN * temperature_k);

        let map = FreeEnergyMap {
            title: format!(
                "Ramachandran free energy, {temperature_k:.1} K, {} frames{}",
                rows.len(),
                if inputs.has("weights") {
                    ", weighted"
                } else {
                    ""
                }
            ),
            legend: populations_legend(&estimates),
            x_label: "φ (degrees)".into(),
            y_label: "ψ (degrees)".into(),
            nx: p.phi_bins,
            ny: p.psi_bins,
            free_energy: &free_energy,
            boundaries: basin_boundaries(),
            labels: basin_labels(&estimates),
        };
        let svg = map
            .to_svg()
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let png = map
            .to_png()
            .map_err(|e| StageError::Failed(e.to_string()))?;

        let frames: Vec<i64> = rows.iter().map(|&i| i as i64).collect();
        let dihedrals = RecordBatch::try_new(
            Arc::new(dihedrals_schema()),
            vec![
                Arc::new(Int64Array::from(frames)),
                Arc::new(Float64Array::from(phi)),
                Arc::new(Float64Array::from(psi)),
                Arc::new(Float64Array::from(weights)),
                Arc::new(StringArray::from_iter_values(
                    basins.iter().map(|b| b.name()),
                )),
            ],
        )
        .expect("columns match the dihedrals schema");
        Ok(Outputs::from([
            ("dihedrals".to_string(), Artifact::Table(dihedrals)),
            (
                "populations".to_string(),
                Artifact::Table(populations_table(&estimates, &counts)),
            ),
            (
                "free_energy".to_string(),
                Artifact::Table(free_energy_table(&histogram, &free_energy)),
            ),
            ("ramachandran_png".to_string(), Artifact::File(png)),
            (
                "ramachandran_svg".to_string(),
                Artifact::File(svg.into_bytes()),
            ),
        ]))
    }
}

/// The thermostat temperature of the analysed frames (they must agree).
fn trajectory_temperature(trajectory: &Trajectory, rows: &[usize]) -> Result<f64, StageError> {
    let first = trajectory.temperature_k[rows[0]];
    match rows
        .iter()
        .map(|&i| trajectory.temperature_k[i])
        .find(|t| (t - first).abs() > 1e-9 * first.abs())
    {
        None if first.is_finite() && first > 0.0 => Ok(first),
        None => Err(StageError::BadInput {
            input: "trajectory".into(),
            message: format!("temperature {first} K is not positive; set temperature_k"),
        }),
        Some(other) => Err(StageError::BadInput {
            input: "trajectory".into(),
            message: format!(
                "frames at this temperature_index have temperatures {first} K and {other} K; \
                 set temperature_k"
            ),
        }),
    }
}

/// Population of each basin (in [`Basin::ALL`] order) with its block-bootstrap error:
/// the weighted means of the basin indicators, all on the same resamples.
pub(crate) fn basin_populations(
    basins: &[Basin],
    weights: &[f64],
    bootstrap: BlockBootstrap,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<Estimate>, StageError> {
    let indicators: Vec<Vec<f64>> = Basin::ALL
        .iter()
        .map(|&b| {
            basins
                .iter()
                .map(|&x| if x == b { 1.0 } else { 0.0 })
                .collect()
        })
        .collect();
    let observables: Vec<&[f64]> = indicators.iter().map(Vec::as_slice).collect();
    bootstrap
        .weighted_means(&observables, weights, rng)
        .map_err(|e| StageError::BadInput {
            input: "weights".into(),
            message: e.to_string(),
        })
}

/// `C7eq/β 71.0 ± 4.8 %    α_R ...`
fn populations_legend(estimates: &[Estimate]) -> String {
    Basin::ALL
        .iter()
        .zip(estimates)
        .map(|(b, e)| {
            format!(
                "{} {:.1} ± {:.1} %",
                b.label(),
                100.0 * e.mean,
                100.0 * e.std_error
            )
        })
        .collect::<Vec<_>>()
        .join("    ")
}

/// The lines between the basins, degrees.
fn basin_boundaries() -> Vec<Segment> {
    vec![
        Segment {
            from: (0.0, -180.0),
            to: (0.0, 180.0),
        },
        Segment {
            from: (-180.0, 50.0),
            to: (0.0, 50.0),
        },
        Segment {
            from: (-180.0, -125.0),
            to: (0.0, -125.0),
        },
    ]
}

/// Basin names with their populations, inside each basin.
fn basin_labels(estimates: &[Estimate]) -> Vec<Label> {
    let at = [(-172.0, 165.0), (-172.0, 35.0), (8.0, 165.0)];
    Basin::ALL
        .iter()
        .zip(estimates)
        .zip(at)
        .map(|((b, e), at)| Label {
            at,
            text: format!("{} {:.1} %", b.label(), 100.0 * e.mean),
        })
        .collect()
}

fn populations_table(estimates: &[Estimate], counts: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(basin_populations_schema()),
        vec![
            Arc::new(StringArray::from_iter_values(
                Basin::ALL.iter().map(|b| b.name()),
            )),
            Arc::new(Float64Array::from_iter_values(
                estimates.iter().map(|e| e.mean),
            )),
            Arc::new(Float64Array::from_iter_values(
                estimates.iter().map(|e| e.std_error),
            )),
            Arc::new(Int64Array::from(counts.to_vec())),
        ],
    )
    .expect("columns match the populations schema")
}

fn free_energy_table(histogram: &PeriodicHistogram2d, free_energy: &[Option<f64>]) -> RecordBatch {
    let (nx, ny) = (histogram.nx, histogram.ny);
    let bins = || (0..nx).flat_map(move |i| (0..ny).map(move |j| (i, j)));
    RecordBatch::try_new(
        Arc::new(free_energy_2d_schema()),
        vec![
            Arc::new(Float64Array::from_iter_values(
                bins().map(|(i, _)| PeriodicHistogram2d::center(i, nx)),
            )),
            Arc::new(Float64Array::from_iter_values(
                bins().map(|(_, j)| PeriodicHistogram2d::center(j, ny)),
            )),
            Arc::new(Int64Array::from_iter_values(
                histogram.frames.iter().map(|&n| n as i64),
            )),
            Arc::new(Float64Array::from(histogram.weights.clone())),
            Arc::new(Float64Array::from(histogram.probabilities())),
            Arc::new(Float64Array::from(free_energy.to_vec())),
        ],
    )
    .expect("columns match the free-energy schema")
}
