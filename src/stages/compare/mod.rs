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
//!   reweighted: E, E_se (float64); then samples (int64, the backmapped samples in the
//!   basin) and ess (float64, the Kish ESS of their weights: how many effective samples
//!   carry the reweighted population, [`crate::analysis::weight_tail::ess_by_group`]).
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

use arrow_array::{Array, Float64Array};
use serde::{Deserialize, Serialize};

use super::atom_ref::AtomRef;
use super::ramachandran::basin_populations;
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::basin::Basin;
use crate::analysis::bootstrap::{BlockBootstrap, Estimate};
use crate::analysis::plot::Drawing;
use crate::analysis::weight_tail::{WeightTail, ess_by_group};
use crate::artifact::Artifact;
use crate::artifact::atoms::{ATOMS, AtomRow};
use crate::artifact::frame_weights::FRAME_WEIGHTS;
use crate::artifact::kind::{ArtifactKind, MARKDOWN, PNG, SVG};
use crate::artifact::trajectory::{TRAJECTORY, Trajectory};
use crate::geometry::angle::bond_angle_rad;
use crate::geometry::dihedral::dihedral_of_atoms;
use crate::md::covalent::infer_bonds;

mod figures;
mod report;
mod tables;

use figures::{PROFILE_STREAM, Profiles, figure, free_energy_maps};
use report::report;
use tables::{Summary, agreement_table, agreements, observables_table, populations_table};

const ESTIMATES: [&str; 3] = ["reference", "raw", "reweighted"];

pub const POPULATIONS: ArtifactKind = ArtifactKind::table(
    "compared_populations",
    tables::populations_schema,
    "per basin: reference, raw, reweighted populations with _se, samples, ess",
);
pub const OBSERVABLE_MOMENTS: ArtifactKind = ArtifactKind::table(
    "observable_moments",
    tables::observables_schema,
    "per observable: means and variances of reference, raw, reweighted with errors; z-scores",
);
pub const COMPARE_SUMMARY: ArtifactKind = ArtifactKind::table(
    "compare_summary",
    tables::summary_schema,
    "one row: frames, ESS, fractions of observables within 2 standard errors",
);
pub const AGREEMENT: ArtifactKind = ArtifactKind::table(
    "agreement",
    tables::agreement_schema,
    "joint tests per estimate and moment: observables, within_2se, sum_z2, max_abs_z, \
     their p-values, worst",
);

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
    const VERSION: u32 = 8;
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
            kind: FRAME_WEIGHTS,
            about: "a float64 column `weight`, one per sample frame (reweight.weights); without \
                    it every frame weighs 1 and the reweighted estimates are the raw ones",
        },
    ];
    const OPTIONAL_INPUTS: &'static [&'static str] = &["more_reference", "weights"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "populations",
            kind: POPULATIONS,
            about: "basin populations with errors: reference, raw, reweighted",
        },
        Port {
            name: "observables",
            kind: OBSERVABLE_MOMENTS,
            about: "means and variances of bonds, angles and U with errors and z-scores",
        },
        Port {
            name: "summary",
            kind: COMPARE_SUMMARY,
            about: "frames, ESS, fractions of observables within 2 standard errors",
        },
        Port {
            name: "agreement",
            kind: AGREEMENT,
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
                return Err(StageError::bad_input(
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
                return Err(StageError::bad_input(
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
        let sample_basins: Vec<usize> = sample_obs
            .phi
            .iter()
            .zip(&sample_obs.psi)
            .map(|(&f, &s)| {
                let basin = Basin::of(f, s);
                Basin::ALL
                    .iter()
                    .position(|&b| b == basin)
                    .expect("a basin")
            })
            .collect();
        let basin_ess = ess_by_group(&sample_basins, &weights, Basin::ALL.len());
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
        let report = report(
            p,
            &populations,
            &basin_ess,
            &defs,
            &moments,
            &summary,
            &agreements,
        );
        Ok(Outputs::from([
            (
                "populations".to_string(),
                Artifact::Table(populations_table(&populations, &basin_ess)),
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
