//! `protein_observables`: how folded a peptide is, frame by frame, against its native
//! structure; for any protein or peptide with C-alpha atoms.
//!
//! Per analysed frame (the frames at `temperature_index` of the trajectory, or of the
//! list of trajectories joined in order):
//! - `rmsd_nm`: C-alpha RMSD to the native structure after optimal superposition
//!   ([`crate::geometry::superpose`]); `mirror_rmsd_nm` the same against the native's
//!   mirror image (a frame closer to the mirror image has the wrong handedness);
//! - `q`: the fraction of native contacts of Best, Hummer and Eaton
//!   ([`crate::analysis::native_contacts`]) over the heavy atoms the native has;
//! - `rg_nm`: radius of gyration of the C-alpha atoms, sqrt((1/n) sum |r_i - r_mean|^2);
//! - `end_to_end_nm`: distance between the first and the last C-alpha;
//! - `ca_distances_nm`: every C-alpha pair distance (i < j, row-major);
//! - `tic1`, `tic2`: the two slowest TICA components of the C-alpha distances
//!   ([`crate::analysis::tica`]), fitted on these frames at lag `tica_lag` saved frames
//!   (pairs never cross from one run of the list into another whose steps do not
//!   continue), or those of the optional `tica` input (a reference's model, so that
//!   ensembles are projected alike). At one rung of replica exchange consecutive frames
//!   may come from different walkers, so there TICA finds the slow directions of the
//!   rung's sequence of frames, not of one trajectory's dynamics;
//! - folded: `rmsd_nm <= folded_rmsd_nm` (default 0.25 nm, the 2.5 A used for CLN025);
//!   folded into the mirror image: `mirror_rmsd_nm <= folded_rmsd_nm`.
//!
//! Free-energy maps (kT, weighted histograms, [`crate::analysis::range_map`]) over TIC1 x
//! TIC2 and over RMSD x Rg, `bins` bins per axis, and the RMSD and Q frame by frame, as
//! PNG and SVG.
//!
//! Frames weigh 1, or as the optional `weights` input says (one `weight` per trajectory
//! frame or per analysed frame). The summary gives weighted means with block-bootstrap
//! standard errors ([`crate::analysis::bootstrap`], `blocks` contiguous blocks in frame
//! order, `resamples` resamples from the node's generator) of: the folded fraction, the
//! fraction folded into the mirror image, Q, Rg, the end-to-end distance and the RMSD;
//! and the Kish effective sample size of the weights.
//!
//! The native structure is a PDB (e.g. a crystal structure without hydrogens): its
//! residues are matched to the topology's in order (the k-th residue of its ATOM
//! records is residue k), atoms by name. Every C-alpha must be found; other atoms the
//! PDB lacks only leave their contacts out. Units: nm.

use crate::geometry::{distance, radius_of_gyration};
use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

mod params;

pub use params::ProteinObservablesParams;

use super::{Context, DataFile, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::bootstrap::{BlockBootstrap, Estimate};
use crate::analysis::line_plot::{Figure, Panel, Series, SeriesStyle};
use crate::analysis::native_contacts::NativeContacts;
use crate::analysis::plot::Drawing;
use crate::analysis::range_map::{Histogram2d, RangeMap, range_of};
use crate::analysis::tica::{Tica, lagged_pairs};
use crate::analysis::uncertainty::plus_minus;
use crate::artifact::Artifact;
use crate::artifact::atoms::{ATOMS, AtomRow};
use crate::artifact::frame_weights::FRAME_WEIGHTS;
use crate::artifact::kind::{ArtifactKind, MARKDOWN, PNG, SVG};
use crate::artifact::protein_frames::{PROTEIN_FRAMES, ProteinFrame};
use crate::artifact::tica::{
    TICA_MODEL, TicaRecord, from_table as tica_from_table, to_table as tica_to_table,
};
use crate::artifact::trajectory::TRAJECTORY;
use crate::geometry::superpose::{mirrored, rmsd_superposed};
use crate::md::io::pdb::{PdbStructure, parse_pdb};

pub struct ProteinObservables;

/// The summary's estimates, in order.
const ESTIMATES: [&str; 6] = [
    "folded_fraction",
    "mirror_folded_fraction",
    "q",
    "rg_nm",
    "end_to_end_nm",
    "rmsd_nm",
];

pub const PROTEIN_SUMMARY: ArtifactKind = ArtifactKind::table(
    "protein_summary",
    summary_schema,
    "one row: frames, ess, contacts, and mean and _se of folded_fraction, \
     mirror_folded_fraction, q, rg_nm, end_to_end_nm, rmsd_nm",
);

fn summary_schema() -> Schema {
    let mut fields = vec![
        Field::new("frames", DataType::Int64, false),
        Field::new("ess", DataType::Float64, false),
        Field::new("contacts", DataType::Int64, false),
    ];
    for name in ESTIMATES {
        fields.push(Field::new(name, DataType::Float64, false));
        fields.push(Field::new(format!("{name}_se"), DataType::Float64, false));
    }
    Schema::new(fields)
}

impl Stage for ProteinObservables {
    type Params = ProteinObservablesParams;
    const NAME: &'static str = "protein_observables";
    // 2: the free-energy maps (TIC1 x TIC2, RMSD x Rg). 3: the time series figure.
    const VERSION: u32 = 3;
    const ABOUT: &'static str = "Folding observables of a peptide against its native structure: \
         C-alpha RMSD (and to the mirror image), native contacts Q, Rg, end-to-end distance, \
         C-alpha distances and their TICA, the folded fraction with block-bootstrap errors";
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
            about: "the trajectory's atoms",
        },
        Port {
            name: "weights",
            kind: FRAME_WEIGHTS,
            about: "frame weights, a float64 column `weight` (one per trajectory frame or per \
                    analysed frame)",
        },
        Port {
            name: "tica",
            kind: TICA_MODEL,
            about: "a TICA model to project on (another node's `tica`) instead of fitting one",
        },
    ];
    const OPTIONAL_INPUTS: &'static [&'static str] = &["weights", "tica"];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "frames",
            kind: PROTEIN_FRAMES,
            about: "per analysed frame: frame, trajectory_frame, weight, rmsd_nm, mirror_rmsd_nm, \
                    q, rg_nm, end_to_end_nm, tic1, tic2, ca_distances_nm",
        },
        Port {
            name: "summary",
            kind: PROTEIN_SUMMARY,
            about: "one row: frames, ess, contacts, and mean and _se of folded_fraction, \
                    mirror_folded_fraction, q, rg_nm, end_to_end_nm, rmsd_nm",
        },
        Port {
            name: "tica",
            kind: TICA_MODEL,
            about: "the TICA model used (fitted here, or the `tica` input's)",
        },
        Port {
            name: "tica_map",
            kind: PNG,
            about: "free energy over TIC1 x TIC2 (kT)",
        },
        Port {
            name: "tica_map_svg",
            kind: SVG,
            about: "the same as SVG",
        },
        Port {
            name: "rmsd_rg_map",
            kind: PNG,
            about: "free energy over the C-alpha RMSD to the native x the C-alpha Rg (kT)",
        },
        Port {
            name: "rmsd_rg_map_svg",
            kind: SVG,
            about: "the same as SVG",
        },
        Port {
            name: "time_series",
            kind: PNG,
            about: "C-alpha RMSD (with the folded threshold) and Q frame by frame, against \
                    time when the frames' times increase, else against the frame's row",
        },
        Port {
            name: "time_series_svg",
            kind: SVG,
            about: "the same as SVG",
        },
        Port {
            name: "report",
            kind: MARKDOWN,
            about: "the summary in words and a table, linking the figures",
        },
    ];
    const PARAMS: &'static [ParamDoc] = params::DOCS;

    fn data_files(p: &ProteinObservablesParams) -> Vec<(&'static str, &DataFile)> {
        vec![("native", &p.native)]
    }

    fn check(p: &ProteinObservablesParams) -> Result<(), ParamProblem> {
        params::check(p)
    }

    fn run(
        p: &ProteinObservablesParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let (trajectory, atoms) = inputs.trajectory_with_atoms("trajectory", "atoms")?;
        let rows: Vec<usize> = (0..trajectory.len())
            .filter(|&i| trajectory.temperature_index[i] == p.temperature_index)
            .collect();
        if rows.is_empty() {
            return Err(StageError::BadInput {
                input: "trajectory".into(),
                message: format!("no frames at temperature_index {}", p.temperature_index),
            });
        }
        let weights = inputs.frame_weights("weights", trajectory.len(), &rows)?;
        let text = String::from_utf8_lossy(inputs.file(&p.native)?);
        let pdb = parse_pdb(&text, &p.native.0).map_err(|e| StageError::BadInput {
            input: p.native.0.clone(),
            message: e.to_string(),
        })?;
        let native = native_positions(&pdb, &atoms).map_err(|message| StageError::BadInput {
            input: p.native.0.clone(),
            message,
        })?;
        let ca: Vec<usize> = (0..atoms.len())
            .filter(|&i| atoms[i].name == "CA")
            .collect();
        if ca.len() < 3 {
            return Err(StageError::BadInput {
                input: "atoms".into(),
                message: format!("{} C-alpha atoms: at least 3 are needed", ca.len()),
            });
        }
        let mut native_ca = Vec::with_capacity(ca.len());
        for &i in &ca {
            native_ca.push(native[i].ok_or_else(|| StageError::BadInput {
                input: p.native.0.clone(),
                message: format!(
                    "no CA for residue {} ({}) of the topology",
                    atoms[i].residue_index + 1,
                    atoms[i].residue_name
                ),
            })?);
        }
        let mirror_ca = mirrored(&native_ca);
        let heavy: Vec<usize> = (0..atoms.len())
            .filter(|&i| atoms[i].atomic_number > 1)
            .collect();
        let residues: Vec<i32> = atoms.iter().map(|a| a.residue_index).collect();
        let contacts = NativeContacts::of(&native, &residues, &heavy);

        let mut observed = Observed::default();
        for &row in &rows {
            let x: Vec<[f64; 3]> = trajectory
                .positions(row)
                .chunks_exact(3)
                .map(|c| [c[0], c[1], c[2]])
                .collect();
            let xca: Vec<[f64; 3]> = ca.iter().map(|&i| x[i]).collect();
            observed.rmsd.push(rmsd_superposed(&native_ca, &xca));
            observed.mirror.push(rmsd_superposed(&mirror_ca, &xca));
            observed.q.push(if contacts.pairs.is_empty() {
                f64::NAN
            } else {
                contacts.q(&x)
            });
            observed.rg.push(radius_of_gyration(&xca));
            observed
                .end_to_end
                .push(distance(xca[0], xca[xca.len() - 1]));
            observed.distances.push(pair_distances(&xca));
        }

        let tica = if inputs.has("tica") {
            let record =
                tica_from_table(inputs.table("tica")?).map_err(|e| StageError::BadInput {
                    input: "tica".into(),
                    message: e.to_string(),
                })?;
            if record.model.mean.len() != observed.distances[0].len() {
                return Err(StageError::BadInput {
                    input: "tica".into(),
                    message: format!(
                        "a model of {} features; these frames have {} C-alpha distances",
                        record.model.mean.len(),
                        observed.distances[0].len()
                    ),
                });
            }
            record
        } else {
            let steps: Vec<i64> = rows.iter().map(|&i| trajectory.step[i]).collect();
            let fitted = Tica::fit(&observed.distances, &lagged_pairs(&steps, p.tica_lag), 2)
                .map_err(|e| {
                    StageError::Failed(format!("TICA at lag {} frames: {e}", p.tica_lag))
                })?;
            TicaRecord {
                model: fitted,
                lag_frames: p.tica_lag,
            }
        };
        let model = &tica.model;
        let tics: Vec<Vec<f64>> = observed
            .distances
            .iter()
            .map(|d| model.project(d))
            .collect();
        let tic = |k: usize| -> Vec<f64> {
            tics.iter()
                .map(|t| t.get(k).copied().unwrap_or(f64::NAN))
                .collect()
        };

        let folded: Vec<f64> = observed
            .rmsd
            .iter()
            .map(|&r| f64::from(u8::from(r <= p.folded_rmsd_nm)))
            .collect();
        let mirror_folded: Vec<f64> = observed
            .mirror
            .iter()
            .map(|&r| f64::from(u8::from(r <= p.folded_rmsd_nm)))
            .collect();
        let columns: [&[f64]; 6] = [
            &folded,
            &mirror_folded,
            &observed.q,
            &observed.rg,
            &observed.end_to_end,
            &observed.rmsd,
        ];
        let estimates = BlockBootstrap {
            blocks: p.blocks,
            resamples: p.resamples,
        }
        .weighted_means(&columns, &weights, &mut ctx.rng)
        .map_err(|e| StageError::Failed(format!("bootstrap: {e}")))?;
        let ess = weights.iter().sum::<f64>().powi(2) / weights.iter().map(|w| w * w).sum::<f64>();

        let (tic1, tic2) = (tic(0), tic(1));
        let legend = format!("{} frames, {} bins per axis", rows.len(), p.bins);
        let tica_map = RangeMap {
            title: format!("{}: TIC1 x TIC2", p.title),
            legend: legend.clone(),
            x_label: "TIC1".into(),
            y_label: "TIC2".into(),
            histogram: Histogram2d::of(
                p.bins,
                p.bins,
                range_of(&tic1),
                range_of(&tic2),
                &tic1,
                &tic2,
                &weights,
            ),
        };
        let rmsd_range = (0.0, range_of(&observed.rmsd).1);
        let rmsd_rg_map = RangeMap {
            title: format!("{}: RMSD x Rg", p.title),
            legend,
            x_label: "C-alpha RMSD to the native (nm)".into(),
            y_label: "C-alpha Rg (nm)".into(),
            histogram: Histogram2d::of(
                p.bins,
                p.bins,
                rmsd_range,
                range_of(&observed.rg),
                &observed.rmsd,
                &observed.rg,
                &weights,
            ),
        };
        let times: Vec<f64> = rows.iter().map(|&i| trajectory.time_ps[i] * 1e-3).collect();
        let series = time_series(p, &times, &observed);
        let drawn = |e: crate::analysis::plot::PlotError| StageError::Failed(format!("plot: {e}"));
        let frames = frames_table(&rows, &weights, &observed, &tic1, &tic2);
        let summary = summary_table(rows.len(), ess, contacts.pairs.len(), &estimates);
        let report = report(p, rows.len(), ess, contacts.pairs.len(), &tica, &estimates);
        Ok(Outputs::from([
            ("frames".to_string(), Artifact::Table(frames)),
            ("summary".to_string(), Artifact::Table(summary)),
            ("tica".to_string(), Artifact::Table(tica_to_table(&tica))),
            ("report".to_string(), Artifact::File(report.into_bytes())),
            (
                "tica_map".to_string(),
                Artifact::File(tica_map.to_png().map_err(drawn)?),
            ),
            (
                "tica_map_svg".to_string(),
                Artifact::File(tica_map.to_svg().map_err(drawn)?.into_bytes()),
            ),
            (
                "rmsd_rg_map".to_string(),
                Artifact::File(rmsd_rg_map.to_png().map_err(drawn)?),
            ),
            (
                "rmsd_rg_map_svg".to_string(),
                Artifact::File(rmsd_rg_map.to_svg().map_err(drawn)?.into_bytes()),
            ),
            (
                "time_series".to_string(),
                Artifact::File(series.to_png().map_err(drawn)?),
            ),
            (
                "time_series_svg".to_string(),
                Artifact::File(series.to_svg().map_err(drawn)?.into_bytes()),
            ),
        ]))
    }
}

/// RMSD (with the folded threshold as a guide) and Q against time in ns when the times
/// increase frame after frame (one run, or segments of one chain), else against the
/// analysed frame's row (runs pooled, whose times start again).
fn time_series(p: &ProteinObservablesParams, times_ns: &[f64], o: &Observed) -> Figure {
    let increasing = times_ns.windows(2).all(|w| w[1] > w[0]);
    let x: Vec<f64> = if increasing {
        times_ns.to_vec()
    } else {
        (0..times_ns.len()).map(|i| i as f64).collect()
    };
    let x_label = if increasing { "time (ns)" } else { "frame" };
    let line = |label: &str, y: &[f64], color: usize| Series {
        label: label.into(),
        points: x.iter().copied().zip(y.iter().copied()).collect(),
        color,
        ..Default::default()
    };
    let (first, last) = (
        x.first().copied().unwrap_or(0.0),
        x.last().copied().unwrap_or(1.0),
    );
    let guide = Series {
        label: String::new(),
        points: vec![(first, p.folded_rmsd_nm), (last, p.folded_rmsd_nm)],
        style: SeriesStyle::Guide,
        ..Default::default()
    };
    Figure {
        title: format!("{}: frame by frame", p.title),
        columns: 1,
        panel_size: (1100, 330),
        panels: vec![
            Panel {
                title: format!(
                    "C-alpha RMSD to the native (folded at most {} nm)",
                    p.folded_rmsd_nm
                ),
                x_label: x_label.into(),
                y_label: "RMSD (nm)".into(),
                log_y: false,
                series: vec![
                    guide,
                    line("RMSD", &o.rmsd, 0),
                    line("to the mirror image", &o.mirror, 1),
                ],
            },
            Panel {
                title: "Fraction of native contacts".into(),
                x_label: x_label.into(),
                y_label: "Q".into(),
                log_y: false,
                series: vec![line("Q", &o.q, 2)],
            },
        ],
    }
}

/// The per-frame observables, in the order of the analysed frames.
#[derive(Default)]
struct Observed {
    rmsd: Vec<f64>,
    mirror: Vec<f64>,
    q: Vec<f64>,
    rg: Vec<f64>,
    end_to_end: Vec<f64>,
    distances: Vec<Vec<f64>>,
}

/// Distances of every pair i < j, row-major.
fn pair_distances(points: &[[f64; 3]]) -> Vec<f64> {
    let mut out = Vec::with_capacity(points.len() * (points.len() - 1) / 2);
    for i in 0..points.len() {
        for j in i + 1..points.len() {
            out.push(distance(points[i], points[j]));
        }
    }
    out
}

/// The native position of each topology atom the PDB has: residues matched in order
/// (the k-th residue of its ATOM records is residue k), atoms by name.
fn native_positions(
    pdb: &PdbStructure,
    atoms: &[AtomRow],
) -> Result<Vec<Option<[f64; 3]>>, String> {
    let Some(positions) = pdb.frames.first() else {
        return Err("no model".into());
    };
    let mut residue_of = Vec::with_capacity(pdb.atoms.len());
    let mut last: Option<(char, i32)> = None;
    let mut count: i32 = -1;
    for a in &pdb.atoms {
        if a.hetero {
            residue_of.push(-1);
            continue;
        }
        let id = (a.chain, a.residue_number);
        if last != Some(id) {
            count += 1;
            last = Some(id);
        }
        residue_of.push(count);
    }
    let residues = atoms.iter().map(|a| a.residue_index).max().unwrap_or(-1) + 1;
    if count + 1 != residues {
        return Err(format!(
            "{} residues in its ATOM records, {residues} in the topology",
            count + 1
        ));
    }
    Ok(atoms
        .iter()
        .map(|a| {
            pdb.atoms
                .iter()
                .zip(&residue_of)
                .position(|(b, &r)| r == a.residue_index && b.name.trim() == a.name)
                .map(|k| positions[k])
        })
        .collect())
}

fn frames_table(
    rows: &[usize],
    weights: &[f64],
    o: &Observed,
    tic1: &[f64],
    tic2: &[f64],
) -> RecordBatch {
    let frames: Vec<ProteinFrame> = (0..rows.len())
        .map(|k| ProteinFrame {
            frame: k as i64,
            trajectory_frame: rows[k] as i64,
            weight: weights[k],
            rmsd_nm: o.rmsd[k],
            mirror_rmsd_nm: o.mirror[k],
            q: o.q[k],
            rg_nm: o.rg[k],
            end_to_end_nm: o.end_to_end[k],
            tic1: tic1[k],
            tic2: tic2[k],
            ca_distances_nm: o.distances.get(k).cloned().unwrap_or_default(),
        })
        .collect();
    crate::artifact::rows::table(&frames)
}

fn summary_table(frames: usize, ess: f64, contacts: usize, estimates: &[Estimate]) -> RecordBatch {
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(Int64Array::from(vec![frames as i64])),
        Arc::new(Float64Array::from(vec![ess])),
        Arc::new(Int64Array::from(vec![contacts as i64])),
    ];
    for e in estimates {
        columns.push(Arc::new(Float64Array::from(vec![e.mean])));
        columns.push(Arc::new(Float64Array::from(vec![e.std_error])));
    }
    RecordBatch::try_new(Arc::new(summary_schema()), columns)
        .expect("columns match the summary schema")
}

fn report(
    p: &ProteinObservablesParams,
    frames: usize,
    ess: f64,
    contacts: usize,
    tica: &TicaRecord,
    estimates: &[Estimate],
) -> String {
    let pm = |e: &Estimate| plus_minus(e.mean, e.std_error);
    let mut out = format!(
        "# {}\n\n{frames} frames (effective sample size {ess:.1}); errors are block-bootstrap \
         standard errors over {} blocks. Folded: C-alpha RMSD to the native structure at most \
         {} nm. {contacts} native contacts.\n\n| observable | estimate |\n|---|---|\n",
        p.title, p.blocks, p.folded_rmsd_nm
    );
    let names = [
        "folded fraction",
        "fraction folded into the mirror image",
        "Q (native contacts)",
        "Rg of the C-alpha atoms (nm)",
        "end-to-end C-alpha distance (nm)",
        "C-alpha RMSD to the native (nm)",
    ];
    for (name, e) in names.iter().zip(estimates) {
        out.push_str(&format!("| {name} | {} |\n", pm(e)));
    }
    out.push_str(&format!(
        "\nTICA on the C-alpha distances at lag {} frames: eigenvalues {}.\n\n\
         ![free energy over TIC1 and TIC2](./tica_map.png)\n\n\
         ![free energy over RMSD and Rg](./rmsd_rg_map.png)\n\n\
         ![RMSD and Q frame by frame](./time_series.png)\n",
        tica.lag_frames,
        tica.model
            .eigenvalues
            .iter()
            .map(|l| format!("{l:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}
