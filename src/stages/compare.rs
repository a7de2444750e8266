//! `compare`: the fine-grained reference against backmapped samples, raw and reweighted.
//!
//! Three estimates of each observable, side by side:
//!
//! | estimate | frames | weights |
//! |---|---|---|
//! | `reference` | the `reference` trajectory at `temperature_index` (FG MD), and the optional `more_reference`'s | 1 |
//! | `raw` | every frame of `sample` (backmapped CG samples) | 1 |
//! | `reweighted` | every frame of `sample` | the `weight` column of `weights` (1 without that input) |
//!
//! Without `weights` the reweighted estimates are the raw ones, and `compare` tests one
//! ensemble against another frame for frame (e.g. MD with another integrator).
//!
//! Observables, per frame:
//! - basin populations of alanine dipeptide from phi and psi (the `ramachandran` stage's
//!   basins: C7ax/alpha_L phi > 0; alpha_R phi <= 0 and -125 < psi < 50; C7eq/beta the
//!   rest; degrees);
//! - every bond length (nm; bonds from the reference's first frame,
//!   [`crate::md::covalent::infer_bonds`]) and every bond angle i-j-k over bonded pairs
//!   (degrees), and the FG potential energy (kJ/mol, the trajectories' own column:
//!   `sample` must carry FG energies, e.g. `reweight.trajectory`). Observables the
//!   reference holds fixed (spread below 1e-6 of the mean: bonds under H-bond
//!   constraints) are left out, and the report says how many.
//!
//! Each gets a weighted mean and variance (population variance, sum w (a - m)^2 / sum w)
//! with block-bootstrap standard errors ([`crate::analysis::bootstrap`]; `blocks`
//! contiguous blocks in frame order, `resamples` resamples from the node's generator).
//! For raw and reweighted estimates the z-score against the reference is
//! (x - x_ref) / sqrt(se^2 + se_ref^2); `|z| <= 2` counts as agreement. Whether the
//! means (variances) agree as a whole is tested against the bootstrap's own
//! distribution of the z-scores ([`crate::analysis::agreement`]: the fraction within 2
//! standard errors, the sum of z^2 and the largest |z|, each with a p-value; the
//! correlations between observables are kept).
//!
//! Outputs:
//! - `populations` (table): basin (utf8), then for each estimate E in reference, raw,
//!   reweighted: E, E_se (float64).
//! - `observables` (table): observable (utf8, e.g. `r(C1-N1)` with atom names and residue
//!   numbers, `theta(...)`, `U`), kind (bond | angle | energy), unit, then for each
//!   estimate E: E_mean, E_mean_se, E_variance, E_variance_se; and z-scores
//!   raw_mean_z, reweighted_mean_z, raw_variance_z, reweighted_variance_z.
//! - `summary` (table, one row): reference_frames, sample_frames, ess (of the weights),
//!   and per estimate the fraction of means and of variances within 2 standard errors.
//! - `agreement` (table): one row per estimate (raw, reweighted) and moment (mean,
//!   variance): observables, left_out, resamples, within_2se, within_2se_p, sum_z2,
//!   sum_z2_p, max_abs_z, max_abs_z_p, worst (the observable with the largest |z|).
//! - `plot` / `plot_svg`: free energy along phi and along psi (kT, periodic histograms of
//!   `bins` bins, 0 at the minimum, drawn up to 12 kT; curves break at empty bins, bands of
//!   one bootstrap standard error) and the potential-energy density, three curves each;
//!   the mean z-score of every observable, raw and reweighted, as markers with the ±2
//!   guides.
//! - `free_energy_2d` / `free_energy_2d_svg`: free energy over (phi, psi) on `bins` x
//!   `bins` bins for the reference, raw and reweighted estimates side by side, one colour
//!   scale (0 to at most 12 kT), empty bins blank.
//! - `report` (markdown): the numbers above as tables, linking `./plot.png` and
//!   `./free_energy_2d.png`.

use crate::geometry::{norm, sub};
use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use super::atom_ref::AtomRef;
use super::ramachandran::{Basin, basin_populations};
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::agreement::{Agreement, AgreementError, agreement};
use crate::analysis::bootstrap::{BlockBootstrap, Estimate, Moments, Replicates};
use crate::analysis::free_energy_panels::{FreeEnergyPanels, PanelMap};
use crate::analysis::line_plot::{Figure, Panel, Series, SeriesStyle};
use crate::analysis::plot::Drawing;
use crate::analysis::uncertainty::plus_minus;
use crate::analysis::weight_tail::{PARETO_K_UNRELIABLE, WeightTail};
use crate::artifact::Artifact;
use crate::artifact::atoms::{ATOMS, AtomRow};
use crate::artifact::kind::{MARKDOWN, PNG, SVG, TABLE};
use crate::artifact::trajectory::{TRAJECTORY, Trajectory};
use crate::geometry::angle::bond_angle_rad;
use crate::geometry::dihedral::dihedral_of_atoms;
use crate::md::covalent::infer_bonds;

const ESTIMATES: [&str; 3] = ["reference", "raw", "reweighted"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompareParams {
    /// Rung of the reference's temperature ladder.
    pub temperature_index: i32,
    pub phi: [AtomRef; 4],
    pub psi: [AtomRef; 4],
    /// Bins of the 1D free-energy profiles over one turn.
    pub bins: usize,
    pub blocks: usize,
    pub resamples: usize,
    /// Heading of the report.
    pub title: String,
}

impl Default for CompareParams {
    fn default() -> Self {
        let r = |res: i32, name: &str| AtomRef::new(res, name);
        CompareParams {
            temperature_index: 0,
            phi: [r(0, "C"), r(1, "N"), r(1, "CA"), r(1, "C")],
            psi: [r(1, "N"), r(1, "CA"), r(1, "C"), r(2, "N")],
            bins: 36,
            blocks: 20,
            resamples: 200,
            title: "Backmapping and reweighting".into(),
        }
    }
}

pub struct Compare;

/// Per-frame observables of one data set.
struct Observed {
    phi: Vec<f64>,
    psi: Vec<f64>,
    /// One column per observable, in `names` order.
    columns: Vec<Vec<f64>>,
}

/// What each observable is.
struct Definitions {
    names: Vec<String>,
    kinds: Vec<&'static str>,
    units: Vec<&'static str>,
    bonds: Vec<[usize; 2]>,
    angles: Vec<[usize; 3]>,
    /// Observables left out because the reference holds them fixed.
    held_fixed: usize,
}

/// An observable whose spread in the reference is below this fraction of its mean is
/// held fixed there (a bond under an H-bond constraint: the solver's tolerance, about
/// 1e-12 nm, against 0.1 nm), and is left out: its z-scores would measure the
/// constraint solver, not the ensemble.
const HELD_FIXED: f64 = 1e-6;

/// Leaves out the observables that the first set of observations (the reference)
/// holds fixed, in `defs` and in the columns of every set.
fn leave_out_held_fixed(defs: &mut Definitions, sets: &mut [&mut Observed]) {
    let keep: Vec<bool> = sets[0]
        .columns
        .iter()
        .map(|c| {
            let n = c.len() as f64;
            let mean = c.iter().sum::<f64>() / n;
            let variance = c.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            !(variance.sqrt() < HELD_FIXED * mean.abs())
        })
        .collect();
    fn retain<T>(v: &mut Vec<T>, keep: &[bool]) {
        let mut k = keep.iter();
        v.retain(|_| *k.next().expect("one flag per observable"));
    }
    retain(&mut defs.names, &keep);
    retain(&mut defs.kinds, &keep);
    retain(&mut defs.units, &keep);
    for set in sets.iter_mut() {
        retain(&mut set.columns, &keep);
    }
    defs.held_fixed += keep.iter().filter(|&&k| !k).count();
}

impl Stage for Compare {
    type Params = CompareParams;
    const NAME: &'static str = "compare";
    /// 2: free-energy profiles drawn up to 12 kT. 3: the report's numbers to their
    /// errors' two significant digits (bond variances no longer 0.000 ± 0.000). 4: the
    /// `agreement` table (joint tests of the means and variances). 5: profiles break at
    /// empty bins and carry bootstrap bands, z-scores as markers with the ±2 guides, the
    /// 2D free-energy maps (`free_energy_2d`). 6: the report's tail of the weights
    /// (Pareto k-hat, largest weight, ESS without the 5 largest). 7: `weights` optional
    /// (two ensembles compared frame for frame, e.g. two integrators); observables the
    /// reference holds fixed (constrained bonds) left out.
    const VERSION: u32 = 7;
    const ABOUT: &'static str = "FG reference vs backmapped samples, raw and reweighted: basin populations, \
         bond, angle and energy means and variances with block-bootstrap errors, plots, a report";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "reference",
            kind: TRAJECTORY,
            about: "fine-grained reference frames (FG MD)",
        },
        Port {
            name: "more_reference",
            kind: TRAJECTORY,
            about: "optional: more reference frames of the same atoms and ensemble (e.g. an independent \
                    replica-exchange run); those at `temperature_index` join the reference's",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the fine-grained atoms",
        },
        Port {
            name: "sample",
            kind: TRAJECTORY,
            about: "backmapped frames with FG energies (reweight.trajectory)",
        },
        Port {
            name: "weights",
            kind: TABLE,
            about: "a float64 column `weight`, one per sample frame (reweight.weights); without \
                    it every frame weighs 1 and the reweighted estimates are the raw ones",
        },
    ];
    const OPTIONAL_INPUTS: &'static [&'static str] = &["more_reference", "weights"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "populations",
            kind: TABLE,
            about: "basin populations with errors: reference, raw, reweighted",
        },
        Port {
            name: "observables",
            kind: TABLE,
            about: "means and variances of bonds, angles and U with errors and z-scores",
        },
        Port {
            name: "summary",
            kind: TABLE,
            about: "frames, ESS, fractions of observables within 2 standard errors",
        },
        Port {
            name: "agreement",
            kind: TABLE,
            about: "joint tests of the raw and reweighted means and variances against the reference",
        },
        Port {
            name: "plot",
            kind: PNG,
            about: "free energy along phi and psi, energy density, z-scores (PNG)",
        },
        Port {
            name: "plot_svg",
            kind: SVG,
            about: "the same plot as SVG",
        },
        Port {
            name: "free_energy_2d",
            kind: PNG,
            about: "free energy over (phi, psi): reference, raw, reweighted on one colour scale (PNG)",
        },
        Port {
            name: "free_energy_2d_svg",
            kind: SVG,
            about: "the same maps as SVG",
        },
        Port {
            name: "report",
            kind: MARKDOWN,
            about: "the comparison as a Markdown report",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "temperature_index",
            about: "rung of the reference's temperature ladder (0: the lowest)",
        },
        ParamDoc {
            name: "phi",
            about: "four atoms of phi ({residue, name}); default alanine dipeptide's",
        },
        ParamDoc {
            name: "psi",
            about: "four atoms of psi ({residue, name}); default alanine dipeptide's",
        },
        ParamDoc {
            name: "bins",
            about: "bins of the free-energy profiles along phi and psi",
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
            name: "title",
            about: "heading of the Markdown report",
        },
    ];

    fn check(p: &CompareParams) -> Result<(), ParamProblem> {
        if p.temperature_index < 0 {
            return Err(ParamProblem::new("temperature_index", "must be 0 or more"));
        }
        if !(4..=720).contains(&p.bins) {
            return Err(ParamProblem::new("bins", "must be between 4 and 720"));
        }
        if p.blocks == 0 {
            return Err(ParamProblem::new("blocks", "must be at least 1"));
        }
        if p.resamples < 2 {
            return Err(ParamProblem::new("resamples", "must be at least 2"));
        }
        Ok(())
    }

    fn run(
        p: &CompareParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let (mut reference, atoms) = inputs.trajectory_with_atoms("reference", "atoms")?;
        let own = reference.len();
        let added =
            inputs.append_optional_trajectory("more_reference", &mut reference, "reference")?;
        if added > 0 {
            // The added frames at `temperature_index` must be at the reference's temperature.
            let temperature = |frames: std::ops::Range<usize>| {
                frames
                    .into_iter()
                    .find(|&i| reference.temperature_index[i] == p.temperature_index)
                    .map(|i| reference.temperature_k[i])
            };
            let (theirs, ours) = (temperature(own..reference.len()), temperature(0..own));
            if theirs != ours {
                let kelvin =
                    |t: Option<f64>| t.map_or("(no frame)".to_string(), |t| format!("{t} K"));
                return Err(bad(
                    "more_reference",
                    format!(
                        "its frames at temperature_index {} are at {}, the reference's at {}",
                        p.temperature_index,
                        kelvin(theirs),
                        kelvin(ours)
                    ),
                ));
            }
        }
        let (sample, _) = inputs.trajectory_with_atoms("sample", "atoms")?;
        let rows: Vec<usize> = (0..reference.len())
            .filter(|&i| reference.temperature_index[i] == p.temperature_index)
            .collect();
        if rows.is_empty() || sample.is_empty() {
            return Err(StageError::Failed(format!(
                "nothing to compare: {} reference frames at temperature_index {}, {} sample frames",
                rows.len(),
                p.temperature_index,
                sample.len()
            )));
        }
        let weights = if inputs.has("weights") {
            let weights = inputs.column::<Float64Array>("weights", "weight")?;
            if weights.len() != sample.len() || weights.null_count() > 0 {
                return Err(bad(
                    "weights",
                    format!(
                        "{} weights for {} sample frames",
                        weights.len(),
                        sample.len()
                    ),
                ));
            }
            weights.values().to_vec()
        } else {
            vec![1.0; sample.len()]
        };
        let ess = weights.iter().sum::<f64>().powi(2) / weights.iter().map(|w| w * w).sum::<f64>();

        let resolve = |refs: &[AtomRef; 4], what: &str| -> Result<[usize; 4], StageError> {
            let mut out = [0; 4];
            for (slot, r) in out.iter_mut().zip(refs) {
                *slot = r.resolve(&atoms, what)?;
            }
            Ok(out)
        };
        let (phi_atoms, psi_atoms) = (resolve(&p.phi, "phi")?, resolve(&p.psi, "psi")?);
        let first: Vec<[f64; 3]> = frame(&reference, rows[0]);
        let elements: Vec<i32> = atoms.iter().map(|a| a.atomic_number).collect();
        let mut defs = Definitions::new(&atoms, infer_bonds(&elements, &first));
        let mut reference_obs = defs.observe(&reference, &rows, phi_atoms, psi_atoms);
        let all: Vec<usize> = (0..sample.len()).collect();
        let mut sample_obs = defs.observe(&sample, &all, phi_atoms, psi_atoms);
        leave_out_held_fixed(&mut defs, &mut [&mut reference_obs, &mut sample_obs]);

        let bootstrap = BlockBootstrap {
            blocks: p.blocks,
            resamples: p.resamples,
        };
        let ones_ref = vec![1.0; rows.len()];
        let ones = vec![1.0; sample.len()];
        let sets: [(&Observed, &[f64]); 3] = [
            (&reference_obs, &ones_ref),
            (&sample_obs, &ones),
            (&sample_obs, &weights),
        ];
        let mut populations = Vec::new();
        let mut moments = Vec::new();
        let mut replicates = Vec::new();
        for (k, (obs, w)) in sets.iter().enumerate() {
            // Unweighted, the reweighted estimate is the raw one, resampled alike.
            let stream = if k == 2 && !inputs.has("weights") {
                1
            } else {
                k
            };
            let mut rng = ctx.stream(stream as u64);
            let failed = |e: crate::analysis::bootstrap::BootstrapError| {
                StageError::Failed(format!("{} estimate: {e}", ESTIMATES[k]))
            };
            let basins: Vec<Basin> = obs
                .phi
                .iter()
                .zip(&obs.psi)
                .map(|(&f, &s)| Basin::of(f, s))
                .collect();
            populations.push(basin_populations(&basins, w, bootstrap, &mut rng)?);
            let columns: Vec<&[f64]> = obs.columns.iter().map(Vec::as_slice).collect();
            let (m, r) = bootstrap
                .weighted_moments(&columns, w, &mut rng)
                .map_err(failed)?;
            moments.push(m);
            replicates.push(r);
        }
        let agreements = agreements(&moments, &replicates)?;
        let z = |x: &Estimate, r: &Estimate| {
            (x.mean - r.mean) / (x.std_error.powi(2) + r.std_error.powi(2)).sqrt()
        };
        let within = |e: usize, variance: bool| -> f64 {
            let count = (0..defs.names.len())
                .filter(|&o| {
                    let (x, r) = if variance {
                        (&moments[e][o].variance, &moments[0][o].variance)
                    } else {
                        (&moments[e][o].mean, &moments[0][o].mean)
                    };
                    z(x, r).abs() <= 2.0
                })
                .count();
            count as f64 / defs.names.len() as f64
        };
        let summary = Summary {
            weighted: inputs.has("weights"),
            reference_frames: rows.len(),
            sample_frames: sample.len(),
            ess,
            tail: WeightTail::of(&weights, 5),
            raw_means: within(1, false),
            raw_variances: within(1, true),
            reweighted_means: within(2, false),
            reweighted_variances: within(2, true),
        };
        tracing::info!(
            "ESS {ess:.1} of {} frames; means within 2 SE: raw {:.2}, reweighted {:.2}; variances: \
             raw {:.2}, reweighted {:.2}",
            sample.len(),
            summary.raw_means,
            summary.reweighted_means,
            summary.raw_variances,
            summary.reweighted_variances
        );

        let mut profiles = Vec::new();
        for (k, (obs, w)) in sets.iter().enumerate() {
            // Streams of their own, so the tables' numbers do not depend on the plots.
            let mut rng = ctx.stream(PROFILE_STREAM + k as u64);
            profiles.push(
                Profiles::estimate(obs, w, p.bins, bootstrap, &mut rng)
                    .map_err(|e| StageError::Failed(format!("{} profiles: {e}", ESTIMATES[k])))?,
            );
        }
        let plot_failed = |e: crate::analysis::plot::PlotError| StageError::Failed(e.to_string());
        let figure = figure(p, &sets, &profiles, &defs, &moments, &summary);
        let png = figure.to_png().map_err(plot_failed)?;
        let svg = figure.to_svg().map_err(plot_failed)?;
        let maps = free_energy_maps(p, &sets, &summary);
        let map_png = maps.to_png().map_err(plot_failed)?;
        let map_svg = maps.to_svg().map_err(plot_failed)?;
        let report = report(p, &populations, &defs, &moments, &summary, &agreements);
        Ok(Outputs::from([
            (
                "populations".to_string(),
                Artifact::Table(populations_table(&populations)),
            ),
            (
                "observables".to_string(),
                Artifact::Table(observables_table(&defs, &moments)),
            ),
            ("summary".to_string(), Artifact::Table(summary.table())),
            (
                "agreement".to_string(),
                Artifact::Table(agreement_table(&defs, &agreements)),
            ),
            ("plot".to_string(), Artifact::File(png)),
            ("plot_svg".to_string(), Artifact::File(svg.into_bytes())),
            ("free_energy_2d".to_string(), Artifact::File(map_png)),
            (
                "free_energy_2d_svg".to_string(),
                Artifact::File(map_svg.into_bytes()),
            ),
            ("report".to_string(), Artifact::File(report.into_bytes())),
        ]))
    }
}

fn bad(input: &str, message: String) -> StageError {
    StageError::BadInput {
        input: input.to_string(),
        message,
    }
}

fn frame(t: &Trajectory, i: usize) -> Vec<[f64; 3]> {
    t.positions(i)
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect()
}

impl Definitions {
    fn new(atoms: &[AtomRow], mut bonds: Vec<[usize; 2]>) -> Definitions {
        for b in &mut bonds {
            b.sort_unstable();
        }
        bonds.sort_unstable();
        bonds.dedup();
        let label = |i: usize| format!("{}{}", atoms[i].name, atoms[i].residue_index);
        let mut angles = Vec::new();
        for j in 0..atoms.len() {
            let mut neighbours: Vec<usize> = bonds
                .iter()
                .filter_map(|b| match *b {
                    [a, c] if a == j => Some(c),
                    [a, c] if c == j => Some(a),
                    _ => None,
                })
                .collect();
            neighbours.sort_unstable();
            for (x, &i) in neighbours.iter().enumerate() {
                for &k in &neighbours[x + 1..] {
                    angles.push([i, j, k]);
                }
            }
        }
        let mut names = Vec::new();
        let mut kinds = Vec::new();
        let mut units = Vec::new();
        for b in &bonds {
            names.push(format!("r({}-{})", label(b[0]), label(b[1])));
            kinds.push("bond");
            units.push("nm");
        }
        for a in &angles {
            names.push(format!(
                "theta({}-{}-{})",
                label(a[0]),
                label(a[1]),
                label(a[2])
            ));
            kinds.push("angle");
            units.push("deg");
        }
        names.push("U".into());
        kinds.push("energy");
        units.push("kJ/mol");
        Definitions {
            names,
            kinds,
            units,
            bonds,
            angles,
            held_fixed: 0,
        }
    }

    fn observe(
        &self,
        t: &Trajectory,
        rows: &[usize],
        phi: [usize; 4],
        psi: [usize; 4],
    ) -> Observed {
        let mut columns = vec![Vec::with_capacity(rows.len()); self.names.len()];
        let mut phis = Vec::with_capacity(rows.len());
        let mut psis = Vec::with_capacity(rows.len());
        for &r in rows {
            let x = frame(t, r);
            phis.push(dihedral_of_atoms(t.positions(r), phi));
            psis.push(dihedral_of_atoms(t.positions(r), psi));
            let mut c = 0;
            for b in &self.bonds {
                columns[c].push(norm(sub(x[b[0]], x[b[1]])));
                c += 1;
            }
            for a in &self.angles {
                columns[c].push(bond_angle_rad(x[a[0]], x[a[1]], x[a[2]]).to_degrees());
                c += 1;
            }
            columns[c].push(t.potential[r]);
        }
        Observed {
            phi: phis,
            psi: psis,
            columns,
        }
    }
}

struct Summary {
    /// Whether the `weights` input was connected.
    weighted: bool,
    reference_frames: usize,
    sample_frames: usize,
    ess: f64,
    tail: WeightTail,
    raw_means: f64,
    raw_variances: f64,
    reweighted_means: f64,
    reweighted_variances: f64,
}

impl Summary {
    fn table(&self) -> RecordBatch {
        let f = |name: &str| Field::new(name, DataType::Float64, false);
        let i = |name: &str| Field::new(name, DataType::Int64, false);
        let float = |v: f64| Arc::new(Float64Array::from(vec![v])) as Arc<dyn Array>;
        let int = |v: usize| Arc::new(Int64Array::from(vec![v as i64])) as Arc<dyn Array>;
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                i("reference_frames"),
                i("sample_frames"),
                f("ess"),
                f("raw_means_within_2se"),
                f("raw_variances_within_2se"),
                f("reweighted_means_within_2se"),
                f("reweighted_variances_within_2se"),
            ])),
            vec![
                int(self.reference_frames),
                int(self.sample_frames),
                float(self.ess),
                float(self.raw_means),
                float(self.raw_variances),
                float(self.reweighted_means),
                float(self.reweighted_variances),
            ],
        )
        .expect("columns match the summary schema")
    }
}

fn populations_table(populations: &[Vec<Estimate>]) -> RecordBatch {
    let mut fields = vec![Field::new("basin", DataType::Utf8, false)];
    let mut columns: Vec<Arc<dyn Array>> = vec![Arc::new(StringArray::from_iter_values(
        Basin::ALL.iter().map(|b| b.name()),
    ))];
    for (e, estimates) in ESTIMATES.iter().zip(populations) {
        fields.push(Field::new(*e, DataType::Float64, false));
        fields.push(Field::new(format!("{e}_se"), DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(
            estimates.iter().map(|x| x.mean),
        )));
        columns.push(Arc::new(Float64Array::from_iter_values(
            estimates.iter().map(|x| x.std_error),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("columns match the populations schema")
}

fn observables_table(defs: &Definitions, moments: &[Vec<Moments>]) -> RecordBatch {
    let mut fields = vec![
        Field::new("observable", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("unit", DataType::Utf8, false),
    ];
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from(defs.names.clone())),
        Arc::new(StringArray::from(defs.kinds.clone())),
        Arc::new(StringArray::from(defs.units.clone())),
    ];
    let mut push = |name: String, values: Vec<f64>| {
        fields.push(Field::new(name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from(values)));
    };
    for (e, m) in ESTIMATES.iter().zip(moments) {
        push(format!("{e}_mean"), m.iter().map(|x| x.mean.mean).collect());
        push(
            format!("{e}_mean_se"),
            m.iter().map(|x| x.mean.std_error).collect(),
        );
        push(
            format!("{e}_variance"),
            m.iter().map(|x| x.variance.mean).collect(),
        );
        push(
            format!("{e}_variance_se"),
            m.iter().map(|x| x.variance.std_error).collect(),
        );
    }
    for (e, m) in ESTIMATES.iter().zip(moments).skip(1) {
        push(format!("{e}_mean_z"), z_scores(m, &moments[0], false));
    }
    for (e, m) in ESTIMATES.iter().zip(moments).skip(1) {
        push(format!("{e}_variance_z"), z_scores(m, &moments[0], true));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("columns match the observables schema")
}

/// The joint tests of raw (1) and reweighted (2) against the reference (0): means, then
/// variances, for each.
fn agreements(
    moments: &[Vec<Moments>],
    replicates: &[Replicates],
) -> Result<Vec<(&'static str, &'static str, Agreement)>, StageError> {
    let mut out = Vec::new();
    for e in [1, 2] {
        for variance in [false, true] {
            let pick = |k: usize| -> (Vec<Estimate>, &Vec<Vec<f64>>) {
                let m = moments[k]
                    .iter()
                    .map(|m| if variance { m.variance } else { m.mean })
                    .collect();
                let r = if variance {
                    &replicates[k].variances
                } else {
                    &replicates[k].means
                };
                (m, r)
            };
            let ((x, xs), (r, rs)) = (pick(e), pick(0));
            let a = match agreement(&x, xs, &r, rs) {
                Ok(a) => a,
                // Nothing to test (every combined error zero, e.g. a one-block bootstrap):
                // a row of NaN, as the z-scores of such observables are.
                Err(AgreementError::Nothing) => Agreement {
                    observables: 0,
                    left_out: x.len(),
                    resamples: 0,
                    within_2se: f64::NAN,
                    within_2se_p: f64::NAN,
                    sum_z2: f64::NAN,
                    sum_z2_p: f64::NAN,
                    max_abs_z: f64::NAN,
                    max_abs_z_p: f64::NAN,
                    worst: usize::MAX,
                },
                Err(err) => {
                    return Err(StageError::Failed(format!(
                        "joint test of the {} estimate: {err}",
                        ESTIMATES[e]
                    )));
                }
            };
            out.push((ESTIMATES[e], if variance { "variance" } else { "mean" }, a));
        }
    }
    Ok(out)
}

/// The observable with the largest |z|, or "" when none was tested.
fn worst_name<'a>(defs: &'a Definitions, a: &Agreement) -> &'a str {
    defs.names.get(a.worst).map_or("", String::as_str)
}

fn agreement_table(
    defs: &Definitions,
    agreements: &[(&'static str, &'static str, Agreement)],
) -> RecordBatch {
    let f = |name: &str| Field::new(name, DataType::Float64, false);
    let i = |name: &str| Field::new(name, DataType::Int64, false);
    let s = |name: &str| Field::new(name, DataType::Utf8, false);
    let floats = |g: fn(&Agreement) -> f64| {
        Arc::new(Float64Array::from_iter_values(
            agreements.iter().map(|a| g(&a.2)),
        )) as Arc<dyn Array>
    };
    let ints = |g: fn(&Agreement) -> usize| {
        Arc::new(Int64Array::from_iter_values(
            agreements.iter().map(|a| g(&a.2) as i64),
        )) as Arc<dyn Array>
    };
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            s("estimate"),
            s("moment"),
            i("observables"),
            i("left_out"),
            i("resamples"),
            f("within_2se"),
            f("within_2se_p"),
            f("sum_z2"),
            f("sum_z2_p"),
            f("max_abs_z"),
            f("max_abs_z_p"),
            s("worst"),
        ])),
        vec![
            Arc::new(StringArray::from_iter_values(
                agreements.iter().map(|a| a.0),
            )),
            Arc::new(StringArray::from_iter_values(
                agreements.iter().map(|a| a.1),
            )),
            ints(|a| a.observables),
            ints(|a| a.left_out),
            ints(|a| a.resamples),
            floats(|a| a.within_2se),
            floats(|a| a.within_2se_p),
            floats(|a| a.sum_z2),
            floats(|a| a.sum_z2_p),
            floats(|a| a.max_abs_z),
            floats(|a| a.max_abs_z_p),
            Arc::new(StringArray::from_iter_values(
                agreements.iter().map(|a| worst_name(defs, &a.2)),
            )),
        ],
    )
    .expect("columns match the agreement schema")
}

fn z_scores(m: &[Moments], reference: &[Moments], variance: bool) -> Vec<f64> {
    m.iter()
        .zip(reference)
        .map(|(x, r)| {
            let (x, r) = if variance {
                (x.variance, r.variance)
            } else {
                (x.mean, r.mean)
            };
            (x.mean - r.mean) / (x.std_error.powi(2) + r.std_error.powi(2)).sqrt()
        })
        .collect()
}

/// Highest free energy drawn, kT: bins above it (nearly empty ones, which a few tiny
/// weights put at hundreds of kT) are drawn at this height.
const PROFILE_CEILING_KT: f64 = 12.0;

/// The first generator stream of the profiles' bootstrap (one stream per estimate,
/// after the tables' streams 0-2).
const PROFILE_STREAM: u64 = 3;

/// Free energy along phi and along psi of one estimate, with bootstrap bands.
struct Profiles {
    phi: Profile,
    psi: Profile,
}

/// Free energy (kT, 0 at the most populated bin, at most [`PROFILE_CEILING_KT`]) at the
/// centres of `bins` periodic bins of (-180, 180]; NaN at empty bins, so a plotted curve
/// breaks there. The band is F -+ se(p) / p from the block bootstrap of the bin
/// probabilities p (the delta method, the top bin's error left out).
#[derive(Clone, Debug, PartialEq)]
struct Profile {
    points: Vec<(f64, f64)>,
    band: Vec<(f64, f64)>,
}

impl Profiles {
    fn estimate(
        obs: &Observed,
        weights: &[f64],
        bins: usize,
        bootstrap: BlockBootstrap,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> Result<Profiles, crate::analysis::bootstrap::BootstrapError> {
        let bin_of = |a: f64| (((a + 180.0) / 360.0 * bins as f64).floor() as usize).min(bins - 1);
        let mut indicators = vec![vec![0.0; weights.len()]; 2 * bins];
        for (t, (&phi, &psi)) in obs.phi.iter().zip(&obs.psi).enumerate() {
            indicators[bin_of(phi)][t] = 1.0;
            indicators[bins + bin_of(psi)][t] = 1.0;
        }
        let columns: Vec<&[f64]> = indicators.iter().map(Vec::as_slice).collect();
        let p = bootstrap.weighted_means(&columns, weights, rng)?;
        Ok(Profiles {
            phi: Profile::from_probabilities(&p[..bins]),
            psi: Profile::from_probabilities(&p[bins..]),
        })
    }
}

impl Profile {
    fn from_probabilities(p: &[Estimate]) -> Profile {
        let bins = p.len();
        let top = p.iter().map(|e| e.mean).fold(0.0, f64::max);
        let ceiling = |f: f64| f.min(PROFILE_CEILING_KT);
        let mut points = Vec::with_capacity(bins);
        let mut band = Vec::with_capacity(bins);
        for (b, e) in p.iter().enumerate() {
            let x = -180.0 + (b as f64 + 0.5) * 360.0 / bins as f64;
            if e.mean > 0.0 {
                let f = -(e.mean / top).ln();
                let half = e.std_error / e.mean;
                points.push((x, ceiling(f)));
                band.push((ceiling(f - half), ceiling(f + half)));
            } else {
                points.push((x, f64::NAN));
                band.push((f64::NAN, f64::NAN));
            }
        }
        Profile { points, band }
    }
}

/// The three estimates' free energy over (phi, psi), kT, on one colour scale.
fn free_energy_maps(
    p: &CompareParams,
    sets: &[(&Observed, &[f64]); 3],
    summary: &Summary,
) -> FreeEnergyPanels {
    FreeEnergyPanels {
        title: format!(
            "{}: free energy over (phi, psi), ESS {:.1}",
            p.title, summary.ess
        ),
        x_label: "phi (degrees)".into(),
        y_label: "psi (degrees)".into(),
        nx: p.bins,
        ny: p.bins,
        maps: sets
            .iter()
            .zip(ESTIMATES)
            .map(|((obs, w), name)| {
                PanelMap::from_angles(name, p.bins, p.bins, &obs.phi, &obs.psi, w)
            })
            .collect(),
        ceiling_kt: PROFILE_CEILING_KT,
    }
}

/// Probability density of `values` on `bins` bins over [lo, hi].
fn density(values: &[f64], weights: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let width = (hi - lo) / bins as f64;
    let mut h = vec![0.0; bins];
    let mut total = 0.0;
    for (&v, &w) in values.iter().zip(weights) {
        if v >= lo && v <= hi {
            h[(((v - lo) / width) as usize).min(bins - 1)] += w;
        }
        total += w;
    }
    (0..bins)
        .map(|b| (lo + (b as f64 + 0.5) * width, h[b] / (total * width)))
        .collect()
}

fn figure(
    p: &CompareParams,
    sets: &[(&Observed, &[f64]); 3],
    profiles: &[Profiles],
    defs: &Definitions,
    moments: &[Vec<Moments>],
    summary: &Summary,
) -> Figure {
    let series = |f: &dyn Fn(&Observed, &[f64]) -> Vec<(f64, f64)>| -> Vec<Series> {
        sets.iter()
            .enumerate()
            .map(|(k, (obs, w))| Series {
                label: ESTIMATES[k].into(),
                points: f(obs, w),
                color: k,
                ..Default::default()
            })
            .collect()
    };
    let energy = defs.names.len() - 1;
    let (lo, hi) = {
        let r = &moments[0][energy];
        let sd = r.variance.mean.sqrt();
        (r.mean.mean - 5.0 * sd, r.mean.mean + 5.0 * sd)
    };
    let guide = |z: f64| Series {
        points: vec![(0.0, z), ((defs.names.len() - 1) as f64, z)],
        style: SeriesStyle::Guide,
        ..Default::default()
    };
    let z_series = |k: usize| Series {
        style: SeriesStyle::Markers,
        label: ESTIMATES[k].into(),
        points: z_scores(&moments[k], &moments[0], false)
            .into_iter()
            .enumerate()
            .map(|(o, z)| (o as f64, z.clamp(-20.0, 20.0)))
            .collect(),
        color: k,
        ..Default::default()
    };
    let profile_series = |profiles: &[Profiles], pick: fn(&Profiles) -> &Profile| -> Vec<Series> {
        profiles
            .iter()
            .enumerate()
            .map(|(k, p)| Series {
                label: ESTIMATES[k].into(),
                points: pick(p).points.clone(),
                band: pick(p).band.clone(),
                color: k,
                ..Default::default()
            })
            .collect()
    };
    Figure {
        title: format!(
            "{}: {} reference frames, {} samples, ESS {:.1}",
            p.title, summary.reference_frames, summary.sample_frames, summary.ess
        ),
        columns: 2,
        panel_size: (560, 400),
        panels: vec![
            Panel {
                title: "Free energy along phi".into(),
                x_label: "phi (degrees)".into(),
                y_label: "F (kT)".into(),
                log_y: false,
                series: profile_series(profiles, |p| &p.phi),
            },
            Panel {
                title: "Free energy along psi".into(),
                x_label: "psi (degrees)".into(),
                y_label: "F (kT)".into(),
                log_y: false,
                series: profile_series(profiles, |p| &p.psi),
            },
            Panel {
                title: "Potential energy".into(),
                x_label: "U (kJ/mol)".into(),
                y_label: "density (mol/kJ)".into(),
                log_y: false,
                series: series(&|o, w| density(&o.columns[energy], w, lo, hi, 40)),
            },
            Panel {
                title: "Means vs reference (z-score, clamped to ±20)".into(),
                x_label: "observable (bonds, angles, U)".into(),
                y_label: "z".into(),
                log_y: false,
                series: vec![guide(2.0), guide(-2.0), z_series(1), z_series(2)],
            },
        ],
    }
}

/// The tail of the weights in words: whether k-hat lets the reweighted estimates be used.
fn tail_sentence(tail: &WeightTail) -> String {
    let verdict = if tail.pareto_k.is_nan() {
        "too few weights to estimate it".to_string()
    } else if tail.is_reliable() {
        format!("at most {PARETO_K_UNRELIABLE}: the weights' tail allows the estimates")
    } else {
        format!(
            "above {PARETO_K_UNRELIABLE}: the weights' tail is too heavy, and the reweighted \
             estimates are not to be trusted whatever their error bars say"
        )
    };
    format!(
        "Tail of the weights: Pareto k-hat {:.2} ({verdict}); ESS without the {} largest \
         weights {:.1}.",
        tail.pareto_k, tail.dropped, tail.ess_without_largest
    )
}

fn report(
    p: &CompareParams,
    populations: &[Vec<Estimate>],
    defs: &Definitions,
    moments: &[Vec<Moments>],
    summary: &Summary,
    agreements: &[(&'static str, &'static str, Agreement)],
) -> String {
    let mut out = String::new();
    let pm = |e: &Estimate| plus_minus(e.mean, e.std_error);
    let _ = writeln!(out, "# {}\n", p.title);
    if summary.weighted {
        let _ = writeln!(
            out,
            "{} reference frames, {} backmapped samples, effective sample size of the weights \
             {:.1} ({:.4} of the samples). Errors are block-bootstrap standard errors ({} blocks).\n",
            summary.reference_frames,
            summary.sample_frames,
            summary.ess,
            summary.ess / summary.sample_frames as f64,
            p.blocks
        );
        let _ = writeln!(out, "{}\n", tail_sentence(&summary.tail));
    } else {
        let _ = writeln!(
            out,
            "{} reference frames, {} sample frames, unweighted (no `weights` input: the \
             reweighted estimates are the raw ones). Errors are block-bootstrap standard \
             errors ({} blocks).\n",
            summary.reference_frames, summary.sample_frames, p.blocks
        );
    }
    let _ = writeln!(
        out,
        "![comparison](./plot.png)\n\n![free energy over phi and psi](./free_energy_2d.png)\n\n## Basin populations\n"
    );
    let _ = writeln!(
        out,
        "| basin | reference | raw | reweighted |\n|---|---|---|---|"
    );
    for (b, basin) in Basin::ALL.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            basin.name(),
            pm(&populations[0][b]),
            pm(&populations[1][b]),
            pm(&populations[2][b])
        );
    }
    let _ = writeln!(
        out,
        "\n## Bonds, angles, energy\n\n{}Fraction of the {} observables whose mean (variance) \
         lies within 2 standard errors of the reference: raw {:.2} ({:.2}), reweighted {:.2} \
         ({:.2}).\n",
        if defs.held_fixed > 0 {
            format!(
                "{} observables the reference holds fixed (constrained bonds: spread below \
                 {HELD_FIXED:e} of their length) are left out. ",
                defs.held_fixed
            )
        } else {
            String::new()
        },
        defs.names.len(),
        summary.raw_means,
        summary.raw_variances,
        summary.reweighted_means,
        summary.reweighted_variances
    );
    let _ = writeln!(
        out,
        "Joint tests against the bootstrap distribution of the z-scores (which keeps the \
         correlations between observables; a small p says the estimate and the reference \
         differ by more than their errors allow): the fraction within 2 standard errors, \
         the sum of z^2 over the observables, and the largest |z|.\n\n\
         | estimate | moment | within 2 SE (p) | sum of z^2 (p) | largest \\|z\\| (p) | at |\n\
         |---|---|---|---|---|---|"
    );
    for (e, m, a) in agreements {
        let _ = writeln!(
            out,
            "| {e} | {m} | {:.2} ({:.3}) | {:.1} ({:.3}) | {:.2} ({:.3}) | {} |",
            a.within_2se,
            a.within_2se_p,
            a.sum_z2,
            a.sum_z2_p,
            a.max_abs_z,
            a.max_abs_z_p,
            worst_name(defs, a)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| observable | unit | reference mean | raw mean | reweighted mean | reference variance | raw variance | reweighted variance |\n|---|---|---|---|---|---|---|---|"
    );
    for o in 0..defs.names.len() {
        let e = |k: usize, variance: bool| {
            let m = &moments[k][o];
            pm(if variance { &m.variance } else { &m.mean })
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            defs.names[o],
            defs.units[o],
            e(0, false),
            e(1, false),
            e(2, false),
            e(0, true),
            e(1, true),
            e(2, true)
        );
    }
    out
}
