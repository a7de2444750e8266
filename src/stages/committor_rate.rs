//! `committor_rate`: the rate k_AB from a learned committor by the Hill relation
//! ([`crate::analysis::hill`]) on unbiased frames that start in or visit core A:
//!
//! ```text
//! k_AB = (1 / T_A) sum_{exits e} q(x_e)
//! ```
//!
//! an exit being the first frame outside A after a frame in A (same run), T_A the time
//! committed to A (last core visited A, as `transitions` has it), and q the network's
//! value at the exit frame (1 when the exit frame is in B). With `interface_deg` > 0 the
//! exits are the first frames beyond a wider disc around A (radius a.radius_deg +
//! interface_deg) after each visit to A: the relation holds for any such interface, and
//! further out q is judged where the pairs taught it rather than at A's edge, where the
//! boundary terms hold it near 0. The run needs no transition:
//! exits are frequent where transitions are rare. Its error is a block bootstrap over
//! the joined frames (`blocks` contiguous blocks, `resamples` resamples). The exit
//! frames are those of the saved frames, so q must be the committor of the dynamics
//! seen at that spacing (the lagged loss at one frame's lag is trained for exactly
//! that).
//!
//! Where the runs do cross, each exit's outcome (the next core its run enters) gives the
//! brute-force rate along the same exits, (1 / T_A) #(exits reaching B first) =
//! N_AB / T_A, and the mean q of exits can be set against the fraction that reach B.
//!
//! Outputs:
//! - `exits` (committor_exits): per exit: index, frame (row of the joined trajectory),
//!   time_ps, phi_deg, psi_deg, q, outcome (`A`, `B`, or `none` when the run ends first).
//! - `summary` (committor_rate_summary, one row): frames, runs, temperature_k,
//!   time_a_ps, exits, flux_per_ns (exits per ns committed to A), mean_q_exit,
//!   rate_ab_per_ns with rate_ab_se_per_ns (bootstrap), exits_to_b, exits_to_a,
//!   exits_undecided, outcome_rate_ab_per_ns with its bootstrap error (the brute-force
//!   count along the same exits), difference_per_ns (Hill minus outcome rate over the
//!   exits with an outcome) with its bootstrap error (the test of q: the flux is common
//!   to both, so the difference's error is the outcomes' binomial noise alone), blocks,
//!   resamples.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::atom_ref::AtomRef;
use super::committor::{COMMITTOR, CoreMap};
use super::transitions::{Core, TransitionsParams, check_cores, finite_times, one_walker};
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::bootstrap::BlockBootstrap;
use crate::analysis::hill::crossings;
use crate::analysis::transitions::State;
use crate::artifact::Artifact;
use crate::artifact::atoms::ATOMS;
use crate::artifact::atoms::AtomRow;
use crate::artifact::kind::ArtifactKind;
use crate::artifact::rows::{self, schema_of};
use crate::artifact::tensors::NamedTensor;
use crate::artifact::trajectory::TRAJECTORY;
use crate::artifact::trajectory::Trajectory;
use crate::nn::committor::{CommittorConfig, HostCommittor, committor_config};
use crate::nn::committor_training::Region;

pub struct CommittorRate;

pub const COMMITTOR_EXITS: ArtifactKind = ArtifactKind::table(
    "committor_exits",
    schema_of::<ExitRow>,
    "per exit from core A: frame, time_ps, phi_deg, psi_deg, q, outcome",
);

pub const COMMITTOR_RATE_SUMMARY: ArtifactKind = ArtifactKind::table(
    "committor_rate_summary",
    schema_of::<RateSummary>,
    "one row: time committed to A, exits, flux, mean q at exits, the Hill rate with its \
     bootstrap error, and the brute-force rate along the same exits",
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExitRow {
    pub index: i64,
    pub frame: i64,
    pub time_ps: f64,
    pub phi_deg: f64,
    pub psi_deg: f64,
    pub q: f64,
    pub outcome: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RateSummary {
    pub frames: i64,
    pub runs: i64,
    pub temperature_k: f64,
    pub time_a_ps: f64,
    pub exits: i64,
    pub flux_per_ns: f64,
    pub mean_q_exit: f64,
    pub rate_ab_per_ns: f64,
    pub rate_ab_se_per_ns: f64,
    pub exits_to_b: i64,
    pub exits_to_a: i64,
    pub exits_undecided: i64,
    pub outcome_rate_ab_per_ns: f64,
    pub outcome_rate_ab_se_per_ns: f64,
    pub difference_per_ns: f64,
    pub difference_se_per_ns: f64,
    pub blocks: i64,
    pub resamples: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommittorRateParams {
    pub phi: [AtomRef; 4],
    pub psi: [AtomRef; 4],
    pub a: Core,
    pub b: Core,
    pub interface_deg: f64,
    pub blocks: usize,
    pub resamples: usize,
}

impl Default for CommittorRateParams {
    fn default() -> Self {
        let cores = TransitionsParams::default();
        CommittorRateParams {
            phi: AtomRef::alanine_phi(),
            psi: AtomRef::alanine_psi(),
            a: cores.a,
            b: cores.b,
            interface_deg: 0.0,
            blocks: 20,
            resamples: 1000,
        }
    }
}

impl Stage for CommittorRate {
    type Params = CommittorRateParams;
    const NAME: &'static str = "committor_rate";
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "The rate k_AB from a committor by the Hill relation: exits \
         from core A in unbiased frames, each weighted by its q, per time committed to A, \
         with a block-bootstrap error; where the frames cross, the brute-force rate along \
         the same exits beside it";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "unbiased frames that visit A (a list of chained segments or runs is \
                    joined; a time that does not increase starts a run)",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the frames' atoms (dihedrals by name)",
        },
        Port {
            name: "committor",
            kind: COMMITTOR,
            about: "a committor node's network (q of the dynamics at the frames' spacing)",
        },
    ];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "exits",
            kind: COMMITTOR_EXITS,
            about: "per exit from A: frame, time, dihedrals, q, outcome",
        },
        Port {
            name: "summary",
            kind: COMMITTOR_RATE_SUMMARY,
            about: "T_A, exits, flux, mean q at exits, the Hill rate and the brute-force \
                    rate along the same exits, with bootstrap errors",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "phi",
            about: "four atoms as {residue, name}; default alanine dipeptide's phi",
        },
        ParamDoc {
            name: "psi",
            about: "four atoms as {residue, name}; default alanine dipeptide's psi",
        },
        ParamDoc {
            name: "a",
            about: "core A as {phi_deg, psi_deg, radius_deg} (the committor's); default C7eq",
        },
        ParamDoc {
            name: "b",
            about: "core B (the committor's); default C7ax",
        },
        ParamDoc {
            name: "interface_deg",
            about: "the interface is the disc of radius a.radius_deg + interface_deg around \
                    A; events are its first crossings after each visit to A (0: the exits \
                    from A). Further out, q is where the pairs teach it rather than next to \
                    A's boundary terms; B must lie wholly beyond it",
        },
        ParamDoc {
            name: "blocks",
            about: "contiguous blocks of the joined frames for the bootstrap (each longer \
                    than the time between exits' clusters)",
        },
        ParamDoc {
            name: "resamples",
            about: "bootstrap resamples (at least 2)",
        },
    ];

    fn check(p: &CommittorRateParams) -> Result<(), ParamProblem> {
        check_cores(&p.a, &p.b)?;
        if !(p.interface_deg.is_finite() && p.interface_deg >= 0.0) {
            return Err(ParamProblem::new(
                "interface_deg",
                "must be finite and at least 0",
            ));
        }
        if p.a.distance_deg(p.b.phi_deg, p.b.psi_deg)
            < p.a.radius_deg + p.interface_deg + p.b.radius_deg
        {
            return Err(ParamProblem::new(
                "interface_deg",
                "the interface around A reaches into core B",
            ));
        }
        if p.blocks < 2 {
            return Err(ParamProblem::new("blocks", "must be at least 2"));
        }
        if !(2..=100_000).contains(&p.resamples) {
            return Err(ParamProblem::new("resamples", "must be in 2..=100000"));
        }
        Ok(())
    }

    fn run(
        p: &CommittorRateParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let (trajectory, atoms) = exit_frames(inputs, "exits need")?;
        let (config, weights) = committor_of(inputs, trajectory.n_atoms, atoms.len())?;
        let cores = CoreMap::new(&atoms, &p.phi, &p.psi, &p.a, &p.b)?;
        let classified: Vec<(Region, f64, f64)> = (0..trajectory.len())
            .into_par_iter()
            .map(|i| cores.classify(trajectory.positions(i)))
            .collect();
        let core: Vec<Option<State>> = classified
            .iter()
            .map(|c| match c.0 {
                Region::A => Some(State::A),
                Region::B => Some(State::B),
                Region::Between => None,
            })
            .collect();
        let interface = p.a.radius_deg + p.interface_deg;
        let beyond: Vec<bool> = classified
            .iter()
            .map(|&(region, phi, psi)| match region {
                Region::A => false,
                Region::B => true,
                Region::Between => p.a.distance_deg(phi, psi) > interface,
            })
            .collect();
        let series = crossings(&trajectory.time_ps, &core, &beyond);
        if series.exits.is_empty() {
            return Err(StageError::bad_input(
                "trajectory",
                "no crossing of the interface around core A: the frames must visit A and \
                 leave it",
            ));
        }
        // q at the exit frames (1 in B, where the committor is fixed).
        let q: Vec<f64> = series
            .exits
            .par_chunks(256)
            .map(|part| -> Result<Vec<f64>, StageError> {
                let mut host =
                    HostCommittor::load(&weights, &config).map_err(StageError::Failed)?;
                Ok(part
                    .iter()
                    .map(|e| match classified[e.frame].0 {
                        Region::B => 1.0,
                        _ => host.value_at(trajectory.positions(e.frame)),
                    })
                    .collect())
            })
            .collect::<Result<Vec<_>, _>>()?
            .concat();

        // The rates as weighted means over frames: w_t the time committed to A in
        // (t - 1, t], a_t = q_t / w_t (or 1[outcome B] / w_t, or 1 / w_t) at exits.
        let n = trajectory.len();
        let (mut hill, mut outcome, mut flux) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for (e, &qe) in series.exits.iter().zip(&q) {
            let w = series.time_a_ps[e.frame];
            hill[e.frame] = qe / w;
            outcome[e.frame] = f64::from(e.outcome == Some(State::B)) / w;
            flux[e.frame] = 1.0 / w;
        }
        // The difference over decided exits only: an exit whose run ends first has q
        // but no outcome.
        let mut difference = vec![0.0; n];
        for e in series.exits.iter().filter(|e| e.outcome.is_some()) {
            difference[e.frame] = hill[e.frame] - outcome[e.frame];
        }
        let bootstrap = BlockBootstrap {
            blocks: p.blocks,
            resamples: p.resamples,
        };
        let estimates = bootstrap
            .weighted_means(
                &[&hill, &outcome, &flux, &difference],
                &series.time_a_ps,
                &mut ctx.rng,
            )
            .map_err(|e| StageError::Failed(format!("bootstrap: {e}")))?;
        let per_ns = 1000.0;
        let count = |o: Option<State>| series.exits.iter().filter(|e| e.outcome == o).count();
        let time_a_ps: f64 = series.time_a_ps.iter().sum();
        let summary = RateSummary {
            frames: n as i64,
            runs: (1
                + (1..n)
                    .filter(|&t| trajectory.time_ps[t] <= trajectory.time_ps[t - 1])
                    .count()) as i64,
            temperature_k: trajectory.temperature_k[0],
            time_a_ps,
            exits: series.exits.len() as i64,
            flux_per_ns: estimates[2].mean * per_ns,
            mean_q_exit: q.iter().sum::<f64>() / q.len() as f64,
            rate_ab_per_ns: estimates[0].mean * per_ns,
            rate_ab_se_per_ns: estimates[0].std_error * per_ns,
            exits_to_b: count(Some(State::B)) as i64,
            exits_to_a: count(Some(State::A)) as i64,
            exits_undecided: count(None) as i64,
            outcome_rate_ab_per_ns: estimates[1].mean * per_ns,
            outcome_rate_ab_se_per_ns: estimates[1].std_error * per_ns,
            difference_per_ns: estimates[3].mean * per_ns,
            difference_se_per_ns: estimates[3].std_error * per_ns,
            blocks: p.blocks as i64,
            resamples: p.resamples as i64,
        };
        tracing::info!(
            "{} exits from A in {:.1} ns committed to A ({:.1} per ns), mean q {:.4}: \
             k_AB {:.4} +- {:.4} per ns; along the same exits {} reached B first: {:.4} +- \
             {:.4} per ns (difference {:.4} +- {:.4})",
            summary.exits,
            time_a_ps / per_ns,
            summary.flux_per_ns,
            summary.mean_q_exit,
            summary.rate_ab_per_ns,
            summary.rate_ab_se_per_ns,
            summary.exits_to_b,
            summary.outcome_rate_ab_per_ns,
            summary.outcome_rate_ab_se_per_ns,
            summary.difference_per_ns,
            summary.difference_se_per_ns,
        );
        let exits: Vec<ExitRow> = series
            .exits
            .iter()
            .zip(&q)
            .enumerate()
            .map(|(k, (e, &qe))| ExitRow {
                index: k as i64,
                frame: e.frame as i64,
                time_ps: trajectory.time_ps[e.frame],
                phi_deg: classified[e.frame].1,
                psi_deg: classified[e.frame].2,
                q: qe,
                outcome: e.outcome.map_or("none", State::name).to_string(),
            })
            .collect();
        Ok(Outputs::from([
            ("exits".to_string(), Artifact::Table(rows::table(&exits))),
            (
                "summary".to_string(),
                Artifact::Table(rows::table(&[summary])),
            ),
        ]))
    }
}

/// The `trajectory` and `atoms` inputs of a rate from exits out of A: at least two
/// frames, one walker (`need` says for what), finite times.
pub(super) fn exit_frames(
    inputs: &Inputs,
    need: &str,
) -> Result<(Trajectory, Vec<AtomRow>), StageError> {
    let (trajectory, atoms) = inputs.trajectory_with_atoms("trajectory", "atoms")?;
    if trajectory.len() < 2 {
        return Err(StageError::bad_input(
            "trajectory",
            format!("{} frames: no exit to count", trajectory.len()),
        ));
    }
    one_walker(&trajectory, need)?;
    finite_times(&trajectory)?;
    Ok((trajectory, atoms))
}

/// The `committor` input's configuration and weights, checked against the frames'
/// atom count and their atoms table's.
pub(super) fn committor_of(
    inputs: &Inputs,
    n_atoms: usize,
    atoms_rows: usize,
) -> Result<(CommittorConfig, Vec<NamedTensor>), StageError> {
    let saved = crate::artifact::tensors::from_table(inputs.table("committor")?)
        .map_err(|e| StageError::bad_input("committor", e.to_string()))?;
    let (config, committor_atoms, weights) =
        committor_config(&saved).map_err(|e| StageError::bad_input("committor", e))?;
    if committor_atoms != n_atoms || atoms_rows != n_atoms {
        return Err(StageError::bad_input(
            "committor",
            format!(
                "{committor_atoms} atoms, the trajectory {n_atoms} and its atoms table \
                 {atoms_rows}"
            ),
        ));
    }
    Ok((config, weights))
}
