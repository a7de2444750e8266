//! `transitions`: brute-force transition counting between two conformational cores, the
//! reference a committor's rate is checked against.
//!
//! The input is one walker's unbiased dynamics: `fg_sample` with `replicas: 1`, as a
//! list of chained segments (joined in order; their `time_ps` runs on) or of independent
//! runs (a time that does not increase starts a new run). Each frame's (phi, psi) is
//! computed from four named atoms each ([`crate::geometry::dihedral`]; alanine
//! dipeptide's by default) and assigned to core A, core B or neither: a core is a disc
//! of radius r in the periodic (phi, psi) plane,
//!
//! ```text
//! in core c  <=>  wrap(phi - phi_c)^2 + wrap(psi - psi_c)^2 <= r_c^2   (degrees)
//! ```
//!
//! (defaults: A = C7eq at (-83, 74), B = C7ax at (70, -65), r = 30). Transitions are
//! counted core to core ([`crate::analysis::transitions`]): k_AB = N_AB / T_A, T_A the
//! time committed to A (last core visited A), with an exact Poisson interval
//! ([`crate::analysis::poisson`]), and MFPT_AB = T_A / N_AB. Frames are the resolution:
//! a visit to a core shorter than the spacing of saved frames can be missed, so save
//! often enough (0.1-1 ps) that core visits are seen.
//!
//! Outputs:
//! - `events` (transition_events): one row per transition: index, frame (row of the
//!   joined trajectory), time_ps, from, to (`A`/`B`), waiting_ps (time since the walker
//!   committed to `from`).
//! - `summary` (transitions_summary, one row): frames, runs, temperature_k, time_ps,
//!   time_a_ps, time_b_ps, time_undecided_ps, fraction_in_core_a/b (of frames),
//!   transitions_ab / _ba, rate_ab_per_ns with rate_ab_lo/hi_per_ns (the interval at
//!   `confidence`), the same for ba, mfpt_ab_ps, mfpt_ba_ps, confidence.
//!
//! The stage draws no random numbers.

use serde::{Deserialize, Serialize};

use super::atom_ref::{AtomRef, resolve_four};
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::analysis::transitions::{State, Transitions};
use crate::artifact::Artifact;
use crate::artifact::atoms::ATOMS;
use crate::artifact::kind::ArtifactKind;
use crate::artifact::rows::{self, schema_of};
use crate::artifact::trajectory::{TRAJECTORY, Trajectory};
use crate::geometry::dihedral::dihedral_of_atoms;

pub struct TransitionsStage;

pub const TRANSITION_EVENTS: ArtifactKind = ArtifactKind::table(
    "transition_events",
    schema_of::<TransitionRow>,
    "per transition: index, frame, time_ps, from, to, waiting_ps",
);

pub const TRANSITIONS_SUMMARY: ArtifactKind = ArtifactKind::table(
    "transitions_summary",
    schema_of::<TransitionsSummary>,
    "one row: frames, runs, times committed to A and B (ps), transitions each way, rates \
     per ns with their interval, MFPTs (ps)",
);

/// A row of `events`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransitionRow {
    pub index: i64,
    pub frame: i64,
    pub time_ps: f64,
    pub from: String,
    pub to: String,
    pub waiting_ps: f64,
}

/// The summary's one row (see the module doc).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransitionsSummary {
    pub frames: i64,
    pub runs: i64,
    pub temperature_k: f64,
    pub time_ps: f64,
    pub time_a_ps: f64,
    pub time_b_ps: f64,
    pub time_undecided_ps: f64,
    pub fraction_in_core_a: f64,
    pub fraction_in_core_b: f64,
    pub transitions_ab: i64,
    pub transitions_ba: i64,
    pub rate_ab_per_ns: f64,
    pub rate_ab_lo_per_ns: f64,
    pub rate_ab_hi_per_ns: f64,
    pub rate_ba_per_ns: f64,
    pub rate_ba_lo_per_ns: f64,
    pub rate_ba_hi_per_ns: f64,
    pub mfpt_ab_ps: f64,
    pub mfpt_ba_ps: f64,
    pub confidence: f64,
}

/// A disc in the periodic (phi, psi) plane, degrees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Core {
    pub phi_deg: f64,
    pub psi_deg: f64,
    pub radius_deg: f64,
}

impl Core {
    pub(crate) fn distance_deg(&self, phi_deg: f64, psi_deg: f64) -> f64 {
        let wrap = |d: f64| (d + 180.0).rem_euclid(360.0) - 180.0;
        wrap(phi_deg - self.phi_deg).hypot(wrap(psi_deg - self.psi_deg))
    }

    pub(crate) fn contains(&self, phi_deg: f64, psi_deg: f64) -> bool {
        self.distance_deg(phi_deg, psi_deg) <= self.radius_deg
    }
}

/// Params `a` and `b`: finite discs with radii in (0, 180) that do not overlap.
pub(crate) fn check_cores(a: &Core, b: &Core) -> Result<(), ParamProblem> {
    for (name, core) in [("a", a), ("b", b)] {
        let finite = [core.phi_deg, core.psi_deg, core.radius_deg]
            .iter()
            .all(|v| v.is_finite());
        if !(finite && core.radius_deg > 0.0 && core.radius_deg < 180.0) {
            return Err(ParamProblem::new(
                name,
                "needs finite phi_deg, psi_deg and a radius_deg in (0, 180)",
            ));
        }
    }
    let apart = a.distance_deg(b.phi_deg, b.psi_deg);
    if apart <= a.radius_deg + b.radius_deg {
        return Err(ParamProblem::new(
            "b",
            format!(
                "the cores overlap: their centres are {apart:.1} degrees apart, their radii \
                 add to {:.1}",
                a.radius_deg + b.radius_deg
            ),
        ));
    }
    Ok(())
}

/// Refuses the `trajectory` input unless it is one walker's: one rung, one replica (a
/// rung of a replica exchange holds frames of several walkers, and its time series is no
/// dynamics). `need` names what needs it ("transitions need").
pub(crate) fn one_walker(trajectory: &Trajectory, need: &str) -> Result<(), StageError> {
    let (Some(&rung), Some(&walker)) = (
        trajectory.temperature_index.first(),
        trajectory.replica.first(),
    ) else {
        return Ok(());
    };
    if trajectory.temperature_index.iter().any(|&t| t != rung)
        || trajectory.replica.iter().any(|&r| r != walker)
    {
        return Err(StageError::bad_input(
            "trajectory",
            format!(
                "frames of several walkers (a replica exchange): {need} one walker's \
                 unbiased dynamics (fg_sample with replicas: 1)"
            ),
        ));
    }
    Ok(())
}

/// Refuses the `trajectory` input if a frame's time is not finite (runs are told apart
/// by times that do not increase).
pub(crate) fn finite_times(trajectory: &Trajectory) -> Result<(), StageError> {
    match trajectory.time_ps.iter().position(|t| !t.is_finite()) {
        Some(i) => Err(StageError::bad_input(
            "trajectory",
            format!("frame {i}: time_ps is not finite"),
        )),
        None => Ok(()),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransitionsParams {
    pub phi: [AtomRef; 4],
    pub psi: [AtomRef; 4],
    pub a: Core,
    pub b: Core,
    /// Coverage of the rate intervals.
    pub confidence: f64,
}

impl Default for TransitionsParams {
    fn default() -> Self {
        TransitionsParams {
            phi: AtomRef::alanine_phi(),
            psi: AtomRef::alanine_psi(),
            a: Core {
                phi_deg: -83.0,
                psi_deg: 74.0,
                radius_deg: 30.0,
            },
            b: Core {
                phi_deg: 70.0,
                psi_deg: -65.0,
                radius_deg: 30.0,
            },
            confidence: 0.95,
        }
    }
}

impl Stage for TransitionsStage {
    type Params = TransitionsParams;
    const NAME: &'static str = "transitions";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "Brute-force core-to-core transitions between two (phi, psi) \
         cores of one walker's unbiased dynamics: counts, rates with exact Poisson intervals, \
         mean first-passage times";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "one walker's frames (fg_sample with replicas: 1); a list of chained \
                    segments or of runs is joined in its order",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the trajectory's atoms (the dihedrals' atoms are found by name)",
        },
    ];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "events",
            kind: TRANSITION_EVENTS,
            about: "per transition: index, frame, time_ps, from, to, waiting_ps",
        },
        Port {
            name: "summary",
            kind: TRANSITIONS_SUMMARY,
            about: "times committed to A and B, transitions each way, rates per ns with \
                    their interval, MFPTs",
        },
    ];
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "phi",
            about: "four atoms as {residue, name} (residue 0-based); default C(0) N(1) CA(1) C(1)",
        },
        ParamDoc {
            name: "psi",
            about: "four atoms as {residue, name}; default N(1) CA(1) C(1) N(2)",
        },
        ParamDoc {
            name: "a",
            about: "core A as {phi_deg, psi_deg, radius_deg}: a disc in the periodic plane; \
                    default C7eq {phi_deg: -83, psi_deg: 74, radius_deg: 30}",
        },
        ParamDoc {
            name: "b",
            about: "core B, likewise; default C7ax {phi_deg: 70, psi_deg: -65, radius_deg: 30}",
        },
        ParamDoc {
            name: "confidence",
            about: "coverage of the rate intervals (exact Poisson), in (0, 1)",
        },
    ];

    fn check(p: &TransitionsParams) -> Result<(), ParamProblem> {
        check_cores(&p.a, &p.b)?;
        if !(p.confidence > 0.0 && p.confidence < 1.0) {
            return Err(ParamProblem::new("confidence", "must be in (0, 1)"));
        }
        Ok(())
    }

    fn run(
        p: &TransitionsParams,
        inputs: &Inputs,
        _ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let (trajectory, atoms) = inputs.trajectory_with_atoms("trajectory", "atoms")?;
        let bad = |message: String| StageError::BadInput {
            input: "trajectory".into(),
            message,
        };
        if trajectory.len() < 2 {
            return Err(bad(format!(
                "{} frames: nothing to count",
                trajectory.len()
            )));
        }
        one_walker(&trajectory, "transitions need")?;
        let temperature_k = trajectory.temperature_k[0];
        let phi_atoms = resolve_four(&atoms, &p.phi, "phi")?;
        let psi_atoms = resolve_four(&atoms, &p.psi, "psi")?;
        let core: Vec<Option<State>> = (0..trajectory.len())
            .map(|i| {
                let x = trajectory.positions(i);
                let phi = dihedral_of_atoms(x, phi_atoms);
                let psi = dihedral_of_atoms(x, psi_atoms);
                if p.a.contains(phi, psi) {
                    Some(State::A)
                } else if p.b.contains(phi, psi) {
                    Some(State::B)
                } else {
                    None
                }
            })
            .collect();
        let counted = Transitions::count(&trajectory.time_ps, &core);
        let ab = counted.rate(State::A, p.confidence);
        let ba = counted.rate(State::B, p.confidence);
        let (n_ab, n_ba) = (counted.arrivals(State::B), counted.arrivals(State::A));
        let fraction =
            |s: State| core.iter().filter(|&&c| c == Some(s)).count() as f64 / core.len() as f64;
        let per_ns = 1000.0;
        let summary = TransitionsSummary {
            frames: trajectory.len() as i64,
            runs: counted.runs as i64,
            temperature_k,
            time_ps: counted.time_a_ps + counted.time_b_ps + counted.time_undecided_ps,
            time_a_ps: counted.time_a_ps,
            time_b_ps: counted.time_b_ps,
            time_undecided_ps: counted.time_undecided_ps,
            fraction_in_core_a: fraction(State::A),
            fraction_in_core_b: fraction(State::B),
            transitions_ab: n_ab as i64,
            transitions_ba: n_ba as i64,
            rate_ab_per_ns: ab.rate * per_ns,
            rate_ab_lo_per_ns: ab.lo * per_ns,
            rate_ab_hi_per_ns: ab.hi * per_ns,
            rate_ba_per_ns: ba.rate * per_ns,
            rate_ba_lo_per_ns: ba.lo * per_ns,
            rate_ba_hi_per_ns: ba.hi * per_ns,
            mfpt_ab_ps: 1.0 / ab.rate,
            mfpt_ba_ps: 1.0 / ba.rate,
            confidence: p.confidence,
        };
        tracing::info!(
            "{} frames, {:.1} ns at {temperature_k} K: {n_ab} transitions A -> B in {:.1} ns \
             committed to A (k_AB {:.4} per ns, {:.0} % interval {:.4}-{:.4}), {n_ba} B -> A \
             in {:.1} ns (k_BA {:.4} per ns)",
            summary.frames,
            summary.time_ps / per_ns,
            summary.time_a_ps / per_ns,
            summary.rate_ab_per_ns,
            100.0 * p.confidence,
            summary.rate_ab_lo_per_ns,
            summary.rate_ab_hi_per_ns,
            summary.time_b_ps / per_ns,
            summary.rate_ba_per_ns,
        );
        let events: Vec<TransitionRow> = counted
            .events
            .iter()
            .enumerate()
            .map(|(k, e)| {
                let from = match e.to {
                    State::A => State::B,
                    State::B => State::A,
                };
                TransitionRow {
                    index: k as i64,
                    frame: e.frame as i64,
                    time_ps: e.time_ps,
                    from: from.name().to_string(),
                    to: e.to.name().to_string(),
                    waiting_ps: e.waiting_ps,
                }
            })
            .collect();
        Ok(Outputs::from([
            ("events".to_string(), Artifact::Table(rows::table(&events))),
            (
                "summary".to_string(),
                Artifact::Table(rows::table(&[summary])),
            ),
        ]))
    }
}
