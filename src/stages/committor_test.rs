//! `committor_test`: the committor test of a learned q (e.g. Peters, J. Chem. Phys. 125,
//! 054108, 2006): configurations with q near 1/2 are shot with fresh Maxwell-Boltzmann
//! velocities in plain (unbiased) Langevin dynamics until they enter core A or core B;
//! if q is the committor, the fraction p_B of each configuration's shots that reach B
//! first is near 1/2, and its spread over configurations is near the binomial one,
//! sqrt(p (1 - p) / shots).
//!
//! Configurations: the `committor` stage's samples between the cores with q in
//! [q_low, q_high], drawn by their unbiased weights (systematic resampling, so the test
//! sees the isosurface as the Boltzmann distribution does; a heavy sample may be drawn
//! twice). Each configuration
//! runs in parallel from its own ChaCha stream. A shot is checked every `check_every`
//! steps and is undecided after `max_steps`.
//!
//! Outputs:
//! - `shots` (committor_test_shots): per configuration: index, sample (row of
//!   `samples`), q, phi_deg, psi_deg, to_b, to_a, undecided, p_b (over decided shots),
//!   p_b_se (binomial), mean_steps (to commitment).
//! - `summary` (committor_test_summary, one row): configurations, shots per
//!   configuration, mean_q, mean_p_b with its standard error over configurations,
//!   sd_p_b, binomial_sd (of p_b for p = mean_p_b and each configuration's decided
//!   shots), fraction_near_half (configurations with |p_b - 1/2| <= 0.1), undecided.

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::atom_ref::AtomRef;
use super::committor::shots::Shooter;
use super::committor::{COMMITTOR, COMMITTOR_SAMPLES, CoreMap, SampleRow};
use super::fg_sample::ConstraintSet;
use super::refine_flow::force_field;
use super::transitions::{Core, TransitionsParams, check_cores};
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::atoms::{ATOMS, AtomRow};
use crate::artifact::force_field::FORCE_FIELD;
use crate::artifact::kind::ArtifactKind;
use crate::artifact::rows::{self, schema_of};
use crate::md::dynamics::LangevinParams;
use crate::nn::committor_training::Region;

pub struct CommittorTest;

pub const COMMITTOR_TEST_SHOTS: ArtifactKind = ArtifactKind::table(
    "committor_test_shots",
    schema_of::<ShotRow>,
    "per configuration: sample, q, shots reaching B and A first, undecided, p_b and its \
     binomial error",
);

pub const COMMITTOR_TEST_SUMMARY: ArtifactKind = ArtifactKind::table(
    "committor_test_summary",
    schema_of::<TestSummary>,
    "one row: configurations, shots, mean q, mean p_b with its error, spread of p_b \
     against the binomial one, fraction within 0.1 of 1/2",
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShotRow {
    pub index: i64,
    pub sample: i64,
    pub q: f64,
    pub phi_deg: f64,
    pub psi_deg: f64,
    pub to_b: i64,
    pub to_a: i64,
    pub undecided: i64,
    pub p_b: f64,
    pub p_b_se: f64,
    pub mean_steps: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestSummary {
    pub configurations: i64,
    pub shots: i64,
    pub mean_q: f64,
    pub mean_p_b: f64,
    pub mean_p_b_se: f64,
    pub sd_p_b: f64,
    pub binomial_sd: f64,
    pub fraction_near_half: f64,
    pub undecided: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommittorTestParams {
    pub phi: [AtomRef; 4],
    pub psi: [AtomRef; 4],
    pub a: Core,
    pub b: Core,
    pub temperature_k: f64,
    pub timestep_fs: f64,
    pub friction_per_ps: f64,
    pub constraints: ConstraintSet,
    pub q_low: f64,
    pub q_high: f64,
    pub configurations: usize,
    pub shots: usize,
    pub check_every: u64,
    pub max_steps: u64,
    /// Only the samples of this round's windows (-1: the input frames); none: all.
    /// Left out of the key when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<i64>,
}

impl Default for CommittorTestParams {
    fn default() -> Self {
        let cores = TransitionsParams::default();
        CommittorTestParams {
            phi: AtomRef::alanine_phi(),
            psi: AtomRef::alanine_psi(),
            a: cores.a,
            b: cores.b,
            temperature_k: 300.0,
            timestep_fs: 2.0,
            friction_per_ps: 1.0,
            constraints: ConstraintSet::Hbonds,
            q_low: 0.4,
            q_high: 0.6,
            configurations: 40,
            shots: 40,
            check_every: 10,
            max_steps: 500_000,
            round: None,
        }
    }
}

impl Stage for CommittorTest {
    type Params = CommittorTestParams;
    const NAME: &'static str = "committor_test";
    const VERSION: u32 = 2;
    const ABOUT: &'static str = "The committor test: shoot configurations with q near 1/2 \
         with fresh velocities in unbiased dynamics; the fraction reaching B first should be \
         near 1/2";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "samples",
            kind: COMMITTOR_SAMPLES,
            about: "the committor stage's samples (q under its last network, unbiased \
                    weights)",
        },
        Port {
            name: "committor",
            kind: COMMITTOR,
            about: "the committor the samples' q came from (checked against their atoms)",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the samples' atoms (dihedrals by name)",
        },
        Port {
            name: "force_field",
            kind: FORCE_FIELD,
            about: "the force field of the shots (the committor's own)",
        },
    ];
    const LIST_INPUTS: &'static [&'static str] = &[];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "shots",
            kind: COMMITTOR_TEST_SHOTS,
            about: "per configuration: q, shots to B and to A, p_b with its binomial error",
        },
        Port {
            name: "summary",
            kind: COMMITTOR_TEST_SUMMARY,
            about: "mean p_b with its error, spread against the binomial one",
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
            name: "temperature_k",
            about: "K",
        },
        ParamDoc {
            name: "timestep_fs",
            about: "fs",
        },
        ParamDoc {
            name: "friction_per_ps",
            about: "Langevin friction, 1/ps",
        },
        ParamDoc {
            name: "constraints",
            about: "`hbonds` or `none`",
        },
        ParamDoc {
            name: "q_low",
            about: "configurations have q in [q_low, q_high]",
        },
        ParamDoc {
            name: "q_high",
            about: "see q_low",
        },
        ParamDoc {
            name: "configurations",
            about: "configurations drawn by weight",
        },
        ParamDoc {
            name: "shots",
            about: "shots per configuration",
        },
        ParamDoc {
            name: "check_every",
            about: "steps between checks of (phi, psi) against the cores",
        },
        ParamDoc {
            name: "max_steps",
            about: "a shot not in a core after this many steps is undecided",
        },
        ParamDoc {
            name: "round",
            about: "draw only from this round's window samples (-1: the input frames), e.g. \
                    the last round of a committor node with shots, whose fit never saw them; \
                    default: every sample",
        },
    ];

    fn check(p: &CommittorTestParams) -> Result<(), ParamProblem> {
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
        if !((0.0..1.0).contains(&p.q_low) && p.q_low < p.q_high && p.q_high <= 1.0) {
            return Err(ParamProblem::new(
                "q_high",
                "needs 0 <= q_low < q_high <= 1",
            ));
        }
        for (name, v) in [
            ("configurations", p.configurations),
            ("shots", p.shots),
            ("check_every", p.check_every as usize),
        ] {
            if v == 0 {
                return Err(ParamProblem::new(name, "must be at least 1"));
            }
        }
        if p.configurations.saturating_mul(p.shots) > 1 << 20 {
            return Err(ParamProblem::new(
                "shots",
                "configurations x shots must be at most 2^20",
            ));
        }
        if p.max_steps < p.check_every {
            return Err(ParamProblem::new(
                "max_steps",
                "must be at least check_every",
            ));
        }
        Ok(())
    }

    fn run(
        p: &CommittorTestParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let samples: Vec<SampleRow> = rows::rows(inputs.table("samples")?)
            .map_err(|e| StageError::bad_input("samples", e.to_string()))?;
        let atoms: Vec<AtomRow> = crate::artifact::atoms::from_table(inputs.table("atoms")?)
            .map_err(|e| StageError::bad_input("atoms", e.to_string()))?;
        let (topology, solvent) = force_field(inputs)?;
        let n_atoms = atoms.len();
        if topology.atoms.len() != n_atoms {
            return Err(StageError::bad_input(
                "force_field",
                format!("{} atoms, the atoms table {n_atoms}", topology.atoms.len()),
            ));
        }
        let committor = crate::artifact::tensors::from_table(inputs.table("committor")?)
            .map_err(|e| StageError::bad_input("committor", e.to_string()))?;
        let (config, committor_atoms, network) = crate::nn::committor::committor_config(&committor)
            .map_err(|e| StageError::bad_input("committor", e))?;
        if committor_atoms != n_atoms || samples.iter().any(|s| s.positions_nm.len() != 3 * n_atoms)
        {
            return Err(StageError::bad_input(
                "samples",
                format!(
                    "the committor has {committor_atoms} atoms, the atoms table {n_atoms}; \
                     every sample needs 3 x {n_atoms} coordinates"
                ),
            ));
        }
        let cores = CoreMap::new(&atoms, &p.phi, &p.psi, &p.a, &p.b)?;
        // A configuration inside a core has committed already, whatever the network
        // gives there (the lagged loss fixes q only off the cores).
        let candidates: Vec<usize> = (0..samples.len())
            .filter(|&i| {
                (p.q_low..=p.q_high).contains(&samples[i].q)
                    && p.round.is_none_or(|r| samples[i].round == r)
                    && cores.classify(&samples[i].positions_nm).0 == Region::Between
            })
            .collect();
        let weights: Vec<f64> = candidates.iter().map(|&i| samples[i].weight).collect();
        let seed = ctx.rng.next_u64();
        let picks =
            crate::exec::structures::resample(&weights, p.configurations, seed).map_err(|e| {
                StageError::bad_input(
                    "samples",
                    format!(
                        "{} samples between the cores with q in [{}, {}]{}: {e}",
                        candidates.len(),
                        p.q_low,
                        p.q_high,
                        p.round.map_or(String::new(), |r| format!(" of round {r}"))
                    ),
                )
            })?;
        let chosen: Vec<usize> = picks.iter().map(|&k| candidates[k]).collect();
        // The samples' q must be this committor's: recompute it at the chosen ones.
        let mut host = crate::nn::committor::HostCommittor::load(&network, &config)
            .map_err(|e| StageError::bad_input("committor", e))?;
        for &i in &chosen {
            let q = host.value_at(&samples[i].positions_nm);
            if (q - samples[i].q).abs() > 1e-9 {
                return Err(StageError::bad_input(
                    "committor",
                    format!(
                        "sample {i} has q {} but this committor gives {q}: give the samples \
                         and the committor of one committor node",
                        samples[i].q
                    ),
                ));
            }
        }
        let masses = topology.masses();
        let constraints = p.constraints.of(&topology);
        let shooter = Shooter {
            topology: &topology,
            solvent,
            masses: &masses,
            constraints: &constraints,
            params: LangevinParams::new(p.temperature_k, p.friction_per_ps, p.timestep_fs * 1e-3),
            check_every: p.check_every,
            max_steps: p.max_steps,
        };
        let streams: Vec<ChaCha20Rng> = (0..chosen.len()).map(|c| ctx.stream(c as u64)).collect();
        ctx.progress.start("configurations", chosen.len() as u64);
        let results: Vec<Result<(usize, usize, usize, f64), StageError>> = chosen
            .par_iter()
            .zip(&streams)
            .map(|(&i, stream)| {
                // One stream per configuration; each shot's thermostat stream is seeded
                // from it.
                let mut seeds = stream.clone();
                let (mut to_a, mut to_b, mut undecided, mut steps) = (0, 0, 0, 0u64);
                for _ in 0..p.shots {
                    let shot = shooter.shoot(
                        &samples[i].positions_nm,
                        &cores,
                        crate::random::stream(seeds.next_u64(), 0),
                        &format!("sample {i}"),
                    )?;
                    match shot.outcome {
                        Region::A => to_a += 1,
                        Region::B => to_b += 1,
                        Region::Between => undecided += 1,
                    }
                    steps += shot.steps;
                }
                Ok((to_b, to_a, undecided, steps as f64 / p.shots as f64))
            })
            .collect();
        ctx.progress.advance(chosen.len() as u64);
        let mut shots = Vec::with_capacity(chosen.len());
        for (k, (result, &i)) in results.into_iter().zip(&chosen).enumerate() {
            let (to_b, to_a, undecided, mean_steps) = result?;
            let decided = (to_a + to_b) as f64;
            let p_b = if decided > 0.0 {
                to_b as f64 / decided
            } else {
                f64::NAN
            };
            shots.push(ShotRow {
                index: k as i64,
                sample: i as i64,
                q: samples[i].q,
                phi_deg: samples[i].phi_deg,
                psi_deg: samples[i].psi_deg,
                to_b: to_b as i64,
                to_a: to_a as i64,
                undecided: undecided as i64,
                p_b,
                p_b_se: (p_b * (1.0 - p_b) / decided).sqrt(),
                mean_steps,
            });
        }
        if shots.iter().all(|s| !s.p_b.is_finite()) {
            return Err(StageError::Failed(format!(
                "no shot of the {} configurations entered a core within max_steps ({}): \
                 raise max_steps",
                shots.len(),
                p.max_steps
            )));
        }
        let summary = summarize(&shots, p.shots);
        tracing::info!(
            "committor test: {} configurations with mean q {:.3}: p_B {:.3} +- {:.3} (sd over \
             configurations {:.3}, binomial {:.3}); {:.0} % within 0.1 of 1/2; {} undecided",
            summary.configurations,
            summary.mean_q,
            summary.mean_p_b,
            summary.mean_p_b_se,
            summary.sd_p_b,
            summary.binomial_sd,
            100.0 * summary.fraction_near_half,
            summary.undecided
        );
        Ok(Outputs::from([
            ("shots".to_string(), Artifact::Table(rows::table(&shots))),
            (
                "summary".to_string(),
                Artifact::Table(rows::table(&[summary])),
            ),
        ]))
    }
}

/// The summary row over configurations with a decided shot.
fn summarize(shots: &[ShotRow], per_configuration: usize) -> TestSummary {
    let decided: Vec<&ShotRow> = shots.iter().filter(|s| s.p_b.is_finite()).collect();
    let n = decided.len() as f64;
    let mean = |f: &dyn Fn(&ShotRow) -> f64| decided.iter().map(|s| f(s)).sum::<f64>() / n;
    let mean_p_b = mean(&|s| s.p_b);
    let sd = (decided
        .iter()
        .map(|s| (s.p_b - mean_p_b).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0))
    .sqrt();
    TestSummary {
        configurations: shots.len() as i64,
        shots: per_configuration as i64,
        mean_q: mean(&|s| s.q),
        mean_p_b,
        mean_p_b_se: sd / n.sqrt(),
        sd_p_b: sd,
        // sqrt(p (1 - p) mean_i 1/n_i): each p_b counts its n_i decided shots.
        binomial_sd: (mean_p_b * (1.0 - mean_p_b) * mean(&|s| 1.0 / (s.to_a + s.to_b) as f64))
            .sqrt(),
        fraction_near_half: decided
            .iter()
            .filter(|s| (s.p_b - 0.5).abs() <= 0.1)
            .count() as f64
            / n,
        undecided: shots.iter().map(|s| s.undecided).sum(),
    }
}
