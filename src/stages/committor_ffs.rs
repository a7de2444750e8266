//! `committor_ffs`: the rate k_AB by forward flux sampling along a learned committor
//! (Allen, Valeriani and ten Wolde, J. Phys.: Condens. Matter 21, 463102, 2009):
//!
//! ```text
//! k_AB = Phi_A prod_{i=0}^{n} P(lambda_{i+1} | lambda_i),
//! ```
//!
//! - Phi_A: exits from core A per time committed to A in unbiased frames (the flux of
//!   the Hill relation, [`crate::analysis::hill`]; an exit is the first frame outside A
//!   after a frame in A), with a block-bootstrap error;
//! - lambda_0: the exit frames; lambda_1 < ... < lambda_n: the `interfaces`, values of
//!   the network's q; lambda_{n+1}: core B;
//! - P(lambda_{i+1} | lambda_i): the fraction of `trials` runs, each from a state drawn
//!   at random among those that reached lambda_i, that reach q >= lambda_{i+1} (or B)
//!   before A.
//!
//! The product is the mean committor over the exits, the factor of the Hill relation
//! ([`super::committor_rate`]), estimated by splitting instead of read from the network:
//! q only orders the interfaces, so an error in q costs trials, not bias. Where q near A
//! is off by a factor of two (as a fit of shot outcomes can be at q ~ 1e-3), the Hill
//! rate is off by as much; this one is not.
//!
//! **Time grid.** The exits are counted on frames `dt` apart, so a visit to A between two
//! frames is not seen; the trials look at the cores and interfaces every `dt` as well
//! (check_every = dt / timestep, which must be whole), so that each probability is one
//! of the same chain of frames. A trial that reaches an interface stops on the grid, and
//! the next stage continues from its state (positions and velocities), so the grid runs
//! on unbroken. The exit frames carry no velocities: the first stage draws them fresh
//! from Maxwell-Boltzmann (the configurational committor, as the network and the
//! committor test have it). A start that already lies beyond the next interface (or in
//! B) counts as reached with no step.
//!
//! **Error.** (d k / k)^2 = (d Phi / Phi)^2 + sum_i (1 - P_i) / (P_i M_i): the bootstrap
//! flux error and each stage's binomial error, which leaves out the correlation of
//! trials from a shared start. Each reached state remembers the exit it descends from;
//! `ancestors` counts the distinct ones per stage. Where a few exits carry the last
//! stages, the trials explore a few channels only: the estimate is unbiased over
//! repetitions but typically low, and its error understated. On alanine dipeptide at
//! 450 K, on frames 2 ps apart, five interfaces along q from short runs gave 0.0007 per
//! ns, and along the walkers' q 0.0017, against 0.032-0.045 from shooting the same exits
//! straight to B (docs/studies/alanine_dipeptide_committor.md). With an empty
//! `interfaces` the stage is that direct estimate.
//!
//! Outputs:
//! - `stages` (committor_ffs_stages): per stage: stage, from_q (0: A's exits), to_q (1: core
//!   B), starts (states it could draw from), trials, reached, ancestors (distinct exits
//!   the reached states descend from), returned_to_a, undecided
//!   (neither within max_steps, counted as not reached), probability with its binomial
//!   error, mean_steps.
//! - `summary` (committor_ffs_summary, one row): frames, temperature_k, time_a_ps,
//!   exits, flux_per_ns with its error, probability (the product) with its relative
//!   error, final_ancestors (the last stage's), rate_ab_per_ns with its error, md_steps
//!   (every trial's steps: the cost), check_every.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::atom_ref::AtomRef;
use super::committor::shots::Shooter;
use super::committor::{COMMITTOR, CoreMap};
use super::committor_rate::{committor_of, exit_frames};
use super::fg_sample::ConstraintSet;
use super::refine_flow::force_field;
use super::transitions::{Core, TransitionsParams, check_cores};
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::bootstrap::BlockBootstrap;
use crate::analysis::hill::exits_from_a;
use crate::analysis::transitions::State;
use crate::artifact::Artifact;
use crate::artifact::atoms::ATOMS;
use crate::artifact::force_field::FORCE_FIELD;
use crate::artifact::kind::ArtifactKind;
use crate::artifact::rows::{self, schema_of};
use crate::artifact::trajectory::TRAJECTORY;
use crate::md::dynamics::LangevinParams;
use crate::nn::committor::HostCommittor;
use crate::nn::committor_training::Region;

pub struct CommittorFfs;

pub const COMMITTOR_FFS_STAGES: ArtifactKind = ArtifactKind::table(
    "committor_ffs_stages",
    schema_of::<StageRow>,
    "per stage of forward flux sampling: stage, from_q, to_q, starts, trials, reached, \
     ancestors, returned_to_a, undecided, probability with its binomial error, mean_steps",
);

pub const COMMITTOR_FFS_SUMMARY: ArtifactKind = ArtifactKind::table(
    "committor_ffs_summary",
    schema_of::<FfsSummary>,
    "one row: the flux out of A, the product of the stages' probabilities, the rate \
     k_AB with its error, and the MD steps the trials took",
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageRow {
    pub stage: i64,
    pub from_q: f64,
    pub to_q: f64,
    pub starts: i64,
    pub trials: i64,
    pub reached: i64,
    pub ancestors: i64,
    pub returned_to_a: i64,
    pub undecided: i64,
    pub probability: f64,
    pub probability_se: f64,
    pub mean_steps: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FfsSummary {
    pub frames: i64,
    pub temperature_k: f64,
    pub time_a_ps: f64,
    pub exits: i64,
    pub flux_per_ns: f64,
    pub flux_se_per_ns: f64,
    pub probability: f64,
    pub probability_rel_se: f64,
    pub final_ancestors: i64,
    pub rate_ab_per_ns: f64,
    pub rate_ab_se_per_ns: f64,
    pub md_steps: i64,
    pub check_every: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommittorFfsParams {
    pub phi: [AtomRef; 4],
    pub psi: [AtomRef; 4],
    pub a: Core,
    pub b: Core,
    pub temperature_k: f64,
    pub timestep_fs: f64,
    pub friction_per_ps: f64,
    pub constraints: ConstraintSet,
    pub interfaces: Vec<f64>,
    pub trials: usize,
    pub max_steps: u64,
    pub blocks: usize,
    pub resamples: usize,
}

impl Default for CommittorFfsParams {
    fn default() -> Self {
        let cores = TransitionsParams::default();
        CommittorFfsParams {
            phi: AtomRef::alanine_phi(),
            psi: AtomRef::alanine_psi(),
            a: cores.a,
            b: cores.b,
            temperature_k: 300.0,
            timestep_fs: 2.0,
            friction_per_ps: 1.0,
            constraints: ConstraintSet::Hbonds,
            interfaces: Vec::new(),
            trials: 1000,
            max_steps: 1_000_000,
            blocks: 20,
            resamples: 1000,
        }
    }
}

/// Where one trial ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Reached,
    ReturnedToA,
}

/// A state a stage reached: flat positions (nm) and velocities (nm/ps; none for the
/// exit frames), and the exit it descends from.
struct ReachedState {
    positions: Vec<f64>,
    velocities: Option<Vec<[f64; 3]>>,
    exit: usize,
}

impl Stage for CommittorFfs {
    type Params = CommittorFfsParams;
    const NAME: &'static str = "committor_ffs";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "The rate k_AB by forward flux sampling along a learned \
         committor: the flux out of core A from unbiased frames times the probabilities of \
         reaching each interface on q from the one before, by unbiased trials; q orders the \
         interfaces only, so its errors cost trials, not bias";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "unbiased frames that visit core A and leave it, e.g. a run started in A \
                    (one walker; several are joined; a time that does not increase starts \
                    a run); their spacing is the trials' time grid",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the frames' atoms (dihedrals by name)",
        },
        Port {
            name: "committor",
            kind: COMMITTOR,
            about: "the network whose q the interfaces are values of",
        },
        Port {
            name: "force_field",
            kind: FORCE_FIELD,
            about: "the force field of the trials (the frames' own)",
        },
    ];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "stages",
            kind: COMMITTOR_FFS_STAGES,
            about: "per stage: trials, how many reached the next interface, the probability",
        },
        Port {
            name: "summary",
            kind: COMMITTOR_FFS_SUMMARY,
            about: "flux, product of the probabilities, k_AB with its error, MD steps",
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
            about: "core A as {phi_deg, psi_deg, radius_deg}; default C7eq",
        },
        ParamDoc {
            name: "b",
            about: "core B; default C7ax",
        },
        ParamDoc {
            name: "temperature_k",
            about: "K; must be the frames' temperature",
        },
        ParamDoc {
            name: "timestep_fs",
            about: "fs; the frames' spacing must be a whole number of steps",
        },
        ParamDoc {
            name: "friction_per_ps",
            about: "Langevin friction, 1/ps (the frames' dynamics)",
        },
        ParamDoc {
            name: "constraints",
            about: "`hbonds` or `none`",
        },
        ParamDoc {
            name: "interfaces",
            about: "values of q between A's exits and core B, increasing in (0, 1); each \
                    stage should reach the next with a probability of about 0.05 or more; \
                    default none (trials from the exits straight to B)",
        },
        ParamDoc {
            name: "trials",
            about: "trials per stage",
        },
        ParamDoc {
            name: "max_steps",
            about: "a trial neither back in A nor at the next interface after this many \
                    steps (rounded up to whole frame spacings) is undecided (counted as not \
                    reached)",
        },
        ParamDoc {
            name: "blocks",
            about: "contiguous blocks of the flux's bootstrap (at least 2)",
        },
        ParamDoc {
            name: "resamples",
            about: "bootstrap resamples (at least 2)",
        },
    ];

    fn check(p: &CommittorFfsParams) -> Result<(), ParamProblem> {
        check_cores(&p.a, &p.b)?;
        for (name, v) in [
            ("temperature_k", p.temperature_k),
            ("timestep_fs", p.timestep_fs),
            ("friction_per_ps", p.friction_per_ps),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ParamProblem::new(name, "must be finite and positive"));
            }
        }
        let in_range = p.interfaces.iter().all(|&q| q > 0.0 && q < 1.0);
        let increasing = p.interfaces.windows(2).all(|w| w[0] < w[1]);
        if !(in_range && increasing) {
            return Err(ParamProblem::new(
                "interfaces",
                "must increase strictly within (0, 1)",
            ));
        }
        if p.trials == 0 || p.trials > 1 << 20 {
            return Err(ParamProblem::new("trials", "must be in 1..=2^20"));
        }
        if p.max_steps == 0 {
            return Err(ParamProblem::new("max_steps", "must be at least 1"));
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
        p: &CommittorFfsParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let (trajectory, atoms) = exit_frames(inputs, "forward flux sampling needs")?;
        let frames_temperature = trajectory.temperature_k[0];
        let other_temperature = trajectory
            .temperature_k
            .iter()
            .find(|&&t| (t - p.temperature_k).abs() > 1e-6);
        if let Some(&frames_temperature) = other_temperature {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "frames at {frames_temperature} K, the trials at temperature_k {} K: the \
                     flux and the probabilities must be of one dynamics",
                    p.temperature_k
                ),
            ));
        }
        let check_every = check_every(&trajectory.time_ps, p.timestep_fs)?;
        // The frames' own timestep, from two consecutive frames of one run.
        if let Some(t) =
            (1..trajectory.len()).find(|&t| trajectory.step[t] > trajectory.step[t - 1])
        {
            let steps = (trajectory.step[t] - trajectory.step[t - 1]) as f64;
            let frames_fs = 1000.0 * (trajectory.time_ps[t] - trajectory.time_ps[t - 1]) / steps;
            if (frames_fs - p.timestep_fs).abs() > 1e-6 * p.timestep_fs {
                return Err(StageError::bad_input(
                    "trajectory",
                    format!(
                        "frames made with {frames_fs} fs steps, the trials with timestep_fs {}: \
                         the flux and the probabilities must be of one dynamics",
                        p.timestep_fs
                    ),
                ));
            }
        }
        if p.max_steps < check_every {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "frames {check_every} steps apart, more than max_steps {}: a trial looks at \
                     the cores once per frame spacing",
                    p.max_steps
                ),
            ));
        }
        let (topology, solvent) = force_field(inputs)?;
        let n_atoms = trajectory.n_atoms;
        if topology.atoms.len() != n_atoms || atoms.len() != n_atoms {
            return Err(StageError::bad_input(
                "force_field",
                format!(
                    "{} atoms, the trajectory {n_atoms} and its atoms table {}",
                    topology.atoms.len(),
                    atoms.len()
                ),
            ));
        }
        let (config, weights) = committor_of(inputs, n_atoms, atoms.len())?;
        HostCommittor::load(&weights, &config)
            .map_err(|e| StageError::bad_input("committor", e))?;
        let cores = CoreMap::new(&atoms, &p.phi, &p.psi, &p.a, &p.b)?;

        // The flux: exits from A per time committed to A.
        let core: Vec<Option<State>> = (0..trajectory.len())
            .into_par_iter()
            .map(|i| match cores.classify(trajectory.positions(i)).0 {
                Region::A => Some(State::A),
                Region::B => Some(State::B),
                Region::Between => None,
            })
            .collect();
        let series = exits_from_a(&trajectory.time_ps, &core);
        if series.exits.is_empty() {
            return Err(StageError::bad_input(
                "trajectory",
                "no exit from core A: the frames must visit A and leave it",
            ));
        }
        let mut flux = vec![0.0; trajectory.len()];
        for e in &series.exits {
            flux[e.frame] = 1.0 / series.time_a_ps[e.frame];
        }
        let bootstrap = BlockBootstrap {
            blocks: p.blocks,
            resamples: p.resamples,
        };
        let flux_estimate = bootstrap
            .weighted_means(&[&flux], &series.time_a_ps, &mut ctx.rng)
            .map_err(|e| StageError::Failed(format!("bootstrap: {e}")))?[0];

        // The stages.
        let masses = topology.masses();
        let constraints = p.constraints.of(&topology);
        let shooter = Shooter {
            topology: &topology,
            solvent,
            masses: &masses,
            constraints: &constraints,
            params: LangevinParams::new(p.temperature_k, p.friction_per_ps, p.timestep_fs * 1e-3),
            check_every,
            max_steps: p.max_steps,
        };
        let mut starts: Vec<ReachedState> = series
            .exits
            .iter()
            .enumerate()
            .map(|(exit, e)| ReachedState {
                positions: trajectory.positions(e.frame).to_vec(),
                velocities: None,
                exit,
            })
            .collect();
        let targets: Vec<Option<f64>> = p
            .interfaces
            .iter()
            .map(|&q| Some(q))
            .chain(std::iter::once(None))
            .collect();
        ctx.progress
            .start("trials", (targets.len() * p.trials) as u64);
        let (mut rows, mut md_steps, mut from_q) = (Vec::new(), 0u64, 0.0);
        for (stage, &target) in targets.iter().enumerate() {
            let picks: Vec<usize> = (0..p.trials)
                .map(|_| (crate::random::uniform(&mut ctx.rng) * starts.len() as f64) as usize)
                .map(|k| k.min(starts.len() - 1))
                .collect();
            let streams: Vec<_> = (0..p.trials)
                .map(|k| ctx.stream(((stage as u64) << 32) | k as u64))
                .collect();
            // Reached the target: in B, or (for an interface) q at least its value.
            let verdict_at = |host: &mut HostCommittor, x: &[f64]| -> Option<Verdict> {
                match cores.classify(x).0 {
                    Region::A => Some(Verdict::ReturnedToA),
                    Region::B => Some(Verdict::Reached),
                    Region::Between => match target {
                        Some(q) if host.value_at(x) >= q => Some(Verdict::Reached),
                        _ => None,
                    },
                }
            };
            let trials: Vec<Result<(Option<Verdict>, u64, Option<ReachedState>), StageError>> =
                picks
                    .par_iter()
                    .zip(streams)
                    .enumerate()
                    .map_init(
                        || HostCommittor::load(&weights, &config).ok(),
                        |host, (k, (&pick, rng))| {
                            let host = host.as_mut().ok_or_else(|| {
                                StageError::Failed("committor: could not load".into())
                            })?;
                            let start = &starts[pick];
                            if verdict_at(host, &start.positions) == Some(Verdict::Reached) {
                                let state = ReachedState {
                                    positions: start.positions.clone(),
                                    velocities: start.velocities.clone(),
                                    exit: start.exit,
                                };
                                return Ok((Some(Verdict::Reached), 0, Some(state)));
                            }
                            let stop = shooter.run_until(
                                &start.positions,
                                start.velocities.as_deref(),
                                rng,
                                &format!("stage {stage}, trial {k}"),
                                |x| verdict_at(host, x),
                            )?;
                            let state =
                                (stop.verdict == Some(Verdict::Reached)).then_some(ReachedState {
                                    positions: stop.end,
                                    velocities: Some(stop.velocities),
                                    exit: start.exit,
                                });
                            Ok((stop.verdict, stop.steps, state))
                        },
                    )
                    .collect();
            ctx.progress.advance(p.trials as u64);
            let (mut next, mut returned, mut undecided, mut steps) = (Vec::new(), 0, 0, 0u64);
            for trial in trials {
                let (verdict, s, state) = trial?;
                steps += s;
                match verdict {
                    Some(Verdict::Reached) => next.extend(state),
                    Some(Verdict::ReturnedToA) => returned += 1,
                    None => undecided += 1,
                }
            }
            md_steps += steps;
            let probability = next.len() as f64 / p.trials as f64;
            let to_q = target.unwrap_or(1.0);
            let ancestors = next
                .iter()
                .map(|r| r.exit)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            tracing::info!(
                "stage {stage} (q {from_q} -> {}): {} of {} trials reached it from {} starts \
                 (descending from {ancestors} exits), {returned} returned to A, {undecided} \
                 undecided; {:.1} steps on average",
                target.map_or("B".to_string(), |q| q.to_string()),
                next.len(),
                p.trials,
                starts.len(),
                steps as f64 / p.trials as f64
            );
            rows.push(StageRow {
                stage: stage as i64,
                from_q,
                to_q,
                starts: starts.len() as i64,
                trials: p.trials as i64,
                reached: next.len() as i64,
                ancestors: ancestors as i64,
                returned_to_a: returned,
                undecided,
                probability,
                probability_se: (probability * (1.0 - probability) / p.trials as f64).sqrt(),
                mean_steps: steps as f64 / p.trials as f64,
            });
            if next.is_empty() {
                return Err(StageError::Failed(format!(
                    "stage {stage}: none of {} trials from q {from_q} reached {}: add an \
                     interface between the two or raise trials",
                    p.trials,
                    target.map_or("core B".to_string(), |q| format!("q {q}")),
                )));
            }
            starts = next;
            from_q = to_q;
        }

        let probability: f64 = rows.iter().map(|r| r.probability).product();
        let probability_rel_var: f64 = rows
            .iter()
            .map(|r| (1.0 - r.probability) / (r.probability * r.trials as f64))
            .sum();
        let per_ns = 1000.0;
        let flux_per_ns = flux_estimate.mean * per_ns;
        let flux_se_per_ns = flux_estimate.std_error * per_ns;
        let rate = flux_per_ns * probability;
        let rate_rel_var = (flux_se_per_ns / flux_per_ns).powi(2) + probability_rel_var;
        let summary = FfsSummary {
            frames: trajectory.len() as i64,
            temperature_k: frames_temperature,
            time_a_ps: series.time_a_ps.iter().sum(),
            exits: series.exits.len() as i64,
            flux_per_ns,
            flux_se_per_ns,
            probability,
            probability_rel_se: probability_rel_var.sqrt(),
            final_ancestors: rows.last().map_or(0, |r| r.ancestors),
            rate_ab_per_ns: rate,
            rate_ab_se_per_ns: rate * rate_rel_var.sqrt(),
            md_steps: md_steps as i64,
            check_every: check_every as i64,
        };
        tracing::info!(
            "{} exits from A ({:.1} +- {:.1} per ns committed to A) x P(B | exit) {:.3e} \
             (relative error {:.2}; the trials that reached B descend from {} exits): k_AB \
             {:.4} +- {:.4} per ns; {} MD steps in trials",
            summary.exits,
            summary.flux_per_ns,
            summary.flux_se_per_ns,
            summary.probability,
            summary.probability_rel_se,
            summary.final_ancestors,
            summary.rate_ab_per_ns,
            summary.rate_ab_se_per_ns,
            summary.md_steps
        );
        Ok(Outputs::from([
            ("stages".to_string(), Artifact::Table(rows::table(&rows))),
            (
                "summary".to_string(),
                Artifact::Table(rows::table(&[summary])),
            ),
        ]))
    }
}

/// Steps of `timestep_fs` between frames: the frames' spacing (the same within every
/// run) divided by the timestep, which must come out whole.
fn check_every(times_ps: &[f64], timestep_fs: f64) -> Result<u64, StageError> {
    let gaps: Vec<f64> = times_ps
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > 0.0)
        .collect();
    let Some(&dt) = gaps.first() else {
        return Err(StageError::bad_input(
            "trajectory",
            "no two consecutive frames of one run: no spacing to check on",
        ));
    };
    if gaps.iter().any(|&d| (d - dt).abs() > 1e-6 * dt) {
        return Err(StageError::bad_input(
            "trajectory",
            format!("frames are not evenly spaced (first gap {dt} ps): the trials need one grid"),
        ));
    }
    let steps = dt / (timestep_fs * 1e-3);
    let whole = steps.round();
    if whole < 1.0 || (steps - whole).abs() > 1e-6 * whole {
        return Err(StageError::bad_input(
            "trajectory",
            format!(
                "frames {dt} ps apart are not a whole number of steps of timestep_fs \
                 {timestep_fs}: the trials look at the cores on the frames' grid"
            ),
        ));
    }
    Ok(whole as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_grid_is_the_frame_spacing_in_steps() {
        assert_eq!(check_every(&[0.0, 2.0, 4.0, 0.0, 2.0], 1.0).unwrap(), 2000);
        assert_eq!(check_every(&[0.0, 0.2, 0.4], 2.0).unwrap(), 100);
        assert!(check_every(&[0.0, 2.0, 4.0], 1.5).is_err());
        assert!(check_every(&[0.0, 2.0, 5.0], 1.0).is_err());
        assert!(check_every(&[0.0], 1.0).is_err());
    }
}
