//! `committor`: the committor q(x) between two (phi, psi) cores, the probability that
//! dynamics from x reach B before A, learned by adaptive importance sampling with the
//! network itself as the bias ([`rounds`]; the model is [`crate::nn::committor`], its
//! training [`crate::nn::committor_training`]).
//!
//! Input: unbiased frames (`trajectory`, a list) at the stage's temperature: their
//! heavy-atom features set the standardization, their core frames give the boundary
//! terms, and they seed the first windows. With `pool_input: true` they are also taken
//! as a Boltzmann sample (one equilibrium run visiting both cores, e.g. the brute-force
//! walkers at 450 K) and join MBAR as the unbiased state; with `false` (runs started in
//! each core, which are no joint equilibrium sample) they weigh only in the boundary
//! terms and as seeds.
//!
//! The window bias is (k/2)(q(x) - u_l)^2 with k in kJ/mol per unit q squared: its
//! width in q is sqrt(k_B T / k) (0.061 at k = 1000 and 450 K), so neighbouring windows
//! overlap when L sqrt(k_B T / k) is about 1 or more. It also adds a stiffness
//! k |grad q|^2 to the dynamics: a fitted q of alanine dipeptide reaches |grad q| of
//! 100-150 per nm in the transition region, where windows at k = 1000 broke their
//! constraints at 2 fs (and ran at 1 fs, the default); `windows.max_gradient_per_nm`
//! reports it.
//!
//! With `loss: lagged` the network is fitted once, before any window, to
//! the time-lagged form E[(q~(x_t) - q~(x_{t+tau}))^2] over every pair of input frames
//! `lag_frames` apart within a run, q~ fixed at 0 in A and 1 in B
//! ([`crate::nn::committor_lagged`]). It needs unbiased runs that cross (e.g. the
//! brute-force walkers at 450 K) and weighs the transition region by how often the
//! dynamics cross it, where the Dirichlet form on a finite sample can move the step of
//! q into a gap between samples. All input frames form pairs; `input_frames` strides
//! only the standardization and the `samples` output. Windows (`rounds` > 0) then only
//! sample on that fixed q and join MBAR: saved frames of unbiased runs seldom sit in
//! the transition region, which is crossed within a frame or two, and the windows put
//! weighted samples there (the configurations `committor_test` shoots from).
//!
//! With `shots` the lagged fit also learns from the windows ([`shots`]):
//!
//! ```text
//! round r = 0..R:
//!   fit q_r: r = 0 on the input's pairs; r > 0 on the pairs plus every shot so far
//!     (warm start from q_{r-1}), the shots' term mu mean (q(x_n) - t_n)^2
//!   windows on q_r, MBAR over every window so far
//!   if r < R: one unbiased shot from every `every`-th new window sample between the
//!     cores, until a core (t_n = 0 in A, 1 in B) or max_steps (t_n = q at its end
//!     under the network the next refit starts from)
//! ```
//!
//! so the last fit has windows of its own, whose samples no fit has seen (committor_test
//! `round: R` draws from them). The shots need no weights: E[t | x] is the committor
//! wherever x comes from, as far as the shots decide (an undecided shot's target is only
//! as good as the previous q at its end). They also let the input be runs started in each core with
//! `pool_input: false` (no run need cross, e.g. at 300 K): those runs' pairs then shape
//! q near each core and the shots between them.
//!
//! Outputs:
//! - `committor` (committor): the last round's network and its `config.*` rows
//!   ([`crate::nn::committor::save_committor`]).
//! - `samples` (committor_samples): every pooled configuration: round (-1: input),
//!   window, centre, step, phi_deg, psi_deg, region (`A`, `B`, `between`), q (last
//!   network), weight (unbiased, last MBAR; 0 for input not pooled), positions_nm.
//! - `windows` (committor_windows): per round and window: centre, samples, seed_q (q of
//!   the seed under the round's network), mean_q and sd_q of its samples under that
//!   network, free_energy_kt (last MBAR).
//! - `learning_curve` (committor_learning_curve): round, epoch, loss.

mod cores;
mod params;
mod rounds;
pub(crate) mod shots;

pub(crate) use cores::CoreMap;
pub use params::{CommittorLoss, CommittorParams, ShotSettings};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::refine_flow::force_field;
use super::transitions::{finite_times, one_walker};
use super::{Context, Inputs, Outputs, ParamDoc, ParamProblem, Port, Stage, StageError};
use crate::artifact::Artifact;
use crate::artifact::atoms::ATOMS;
use crate::artifact::force_field::FORCE_FIELD;
use crate::artifact::kind::ArtifactKind;
use crate::artifact::rows::{self, schema_of};
use crate::artifact::tensors::{self, NamedTensor};
use crate::artifact::trajectory::TRAJECTORY;
use crate::md::dynamics::LangevinParams;
use crate::md::units::BOLTZMANN;
use crate::nn::committor::{
    Committor, CommittorConfig, CommittorLogit, heavy_atoms, save_committor,
};
use crate::nn::committor_lagged::{
    LaggedPairs, LaggedTraining, lagged_pairs, train_committor_lagged,
};
use crate::nn::committor_training::{CommittorSamples, DirichletTraining, Region, train_committor};
use crate::nn::mlp::Activation;
use crate::nn::store::ParameterStore;
use rand_core::RngCore;
use rounds::{Dynamics, PooledSample, State};
use shots::{Shooter, ShotPool};

pub struct CommittorStage;

pub const COMMITTOR: ArtifactKind = ArtifactKind::table(
    "committor",
    tensors::schema,
    "a committor q(x): network weights and `config.*` rows (n_atoms, atoms, hidden, \
     activation, feature_mean, feature_scale)",
);

pub const COMMITTOR_SAMPLES: ArtifactKind = ArtifactKind::table(
    "committor_samples",
    schema_of::<SampleRow>,
    "per pooled configuration: round, window, centre, step, phi/psi, region, q, unbiased \
     weight, positions_nm",
);

pub const COMMITTOR_WINDOWS: ArtifactKind = ArtifactKind::table(
    "committor_windows",
    schema_of::<WindowRow>,
    "per round and window: centre, samples, seed_q, mean_q, sd_q, free_energy_kt",
);

pub const COMMITTOR_LEARNING_CURVE: ArtifactKind = ArtifactKind::table(
    "committor_learning_curve",
    schema_of::<CurveRow>,
    "per round and epoch: the mean batch loss",
);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampleRow {
    pub round: i64,
    pub window: i64,
    /// NaN for input frames.
    pub centre: f64,
    pub step: i64,
    pub phi_deg: f64,
    pub psi_deg: f64,
    pub region: String,
    pub q: f64,
    pub weight: f64,
    pub positions_nm: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowRow {
    pub round: i64,
    pub window: i64,
    pub centre: f64,
    pub samples: i64,
    pub seed_q: f64,
    pub mean_q: f64,
    pub sd_q: f64,
    /// The largest |grad q| (over all atoms, per nm) among its samples.
    pub max_gradient_per_nm: f64,
    pub free_energy_kt: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CurveRow {
    pub round: i64,
    pub epoch: i64,
    pub loss: f64,
}

impl Stage for CommittorStage {
    type Params = CommittorParams;
    const NAME: &'static str = "committor";
    const VERSION: u32 = 1;
    const ABOUT: &'static str = "Learn the committor q(x) between two (phi, psi) cores by \
         adaptive importance sampling (rounds of windows biased on the network's own q, \
         combined by MBAR, and the Dirichlet form with boundary terms) or, with \
         loss: lagged, from unbiased runs by the time-lagged variational form, refitted \
         with shots from windows on it";
    const INPUTS: &'static [Port] = &[
        Port {
            name: "trajectory",
            kind: TRAJECTORY,
            about: "unbiased frames at temperature_k (a list is joined): standardization, \
                    boundary samples, first seeds, and with pool_input the unbiased state",
        },
        Port {
            name: "atoms",
            kind: ATOMS,
            about: "the frames' atoms (heavy atoms give the features; dihedrals by name)",
        },
        Port {
            name: "force_field",
            kind: FORCE_FIELD,
            about: "the force field of the windows' dynamics (fg_sample's `force_field`)",
        },
    ];
    const LIST_INPUTS: &'static [&'static str] = &["trajectory"];
    const OUTPUTS: &'static [Port] = &[
        Port {
            name: "committor",
            kind: COMMITTOR,
            about: "the last round's network with its configuration",
        },
        Port {
            name: "samples",
            kind: COMMITTOR_SAMPLES,
            about: "every pooled configuration with its region, q and unbiased weight",
        },
        Port {
            name: "windows",
            kind: COMMITTOR_WINDOWS,
            about: "per round and window: centre, seed, sampled q, MBAR free energy",
        },
        Port {
            name: "learning_curve",
            kind: COMMITTOR_LEARNING_CURVE,
            about: "per round and epoch: the mean batch loss",
        },
    ];
    const PARAMS: &'static [ParamDoc] = params::PARAMS;

    fn check(p: &CommittorParams) -> Result<(), ParamProblem> {
        params::check(p)
    }

    fn run(
        p: &CommittorParams,
        inputs: &Inputs,
        ctx: &mut Context<'_>,
    ) -> Result<Outputs, StageError> {
        let (trajectory, atoms) = inputs.trajectory_with_atoms("trajectory", "atoms")?;
        let (topology, solvent) = force_field(inputs)?;
        let n_atoms = atoms.len();
        if topology.atoms.len() != n_atoms || trajectory.n_atoms != n_atoms {
            return Err(StageError::bad_input(
                "force_field",
                format!(
                    "{} atoms, the trajectory {} and its atoms table {n_atoms}",
                    topology.atoms.len(),
                    trajectory.n_atoms
                ),
            ));
        }
        if trajectory.is_empty() {
            return Err(StageError::bad_input("trajectory", "no frames"));
        }
        if let Some(t) = trajectory
            .temperature_k
            .iter()
            .find(|&&t| (t - p.temperature_k).abs() > 1e-6)
        {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "a frame at {t} K: the input must be at temperature_k ({} K)",
                    p.temperature_k
                ),
            ));
        }
        let cores = CoreMap::new(&atoms, &p.phi, &p.psi, &p.a, &p.b)?;
        let classify = |x: &[f64]| cores.classify(x);

        // The input, evenly strided.
        let stride = trajectory.len().div_ceil(p.input_frames);
        let mut pool: Vec<PooledSample> = (0..trajectory.len())
            .step_by(stride)
            .map(|i| {
                let x = trajectory.positions(i).to_vec();
                let (region, phi_deg, psi_deg) = classify(&x);
                PooledSample {
                    round: -1,
                    window: -1,
                    positions: x,
                    step: trajectory.step[i],
                    region,
                    phi_deg,
                    psi_deg,
                }
            })
            .collect();
        let n_input = pool.len();
        let in_core = |r: Region| pool.iter().filter(|s| s.region == r).count();
        let (input_a, input_b) = (in_core(Region::A), in_core(Region::B));
        tracing::info!(
            "{n_input} input frames: {input_a} in A, {input_b} in B, {} between",
            n_input - input_a - input_b
        );
        if input_a == 0 || input_b == 0 {
            return Err(StageError::bad_input(
                "trajectory",
                format!(
                    "{input_a} of the {n_input} input frames in core A and {input_b} in core B: \
                     the boundary terms need frames in both (add a run started in the other \
                     core, with pool_input: false)"
                ),
            ));
        }

        let masses = topology.masses();
        let constraints = p.constraints.of(&topology);
        let dynamics = Dynamics {
            topology: &topology,
            solvent,
            masses: &masses,
            constraints: &constraints,
            params: LangevinParams::new(p.temperature_k, p.friction_per_ps, p.timestep_fs * 1e-3),
            force_constant: p.force_constant,
            equilibration_steps: p.equilibration_steps,
            steps: p.steps,
            save_every: p.save_every,
        };
        let k_over_kt = p.force_constant / (BOLTZMANN * p.temperature_k);

        let input_positions: Vec<f64> = pool.iter().flat_map(|s| s.positions.clone()).collect();
        let config = CommittorConfig::new(heavy_atoms(&atoms), p.hidden.clone(), Activation::Tanh)
            .standardized(&input_positions, n_atoms);
        drop(input_positions);
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut ctx.rng, &mut seed);
        let store = ParameterStore::new(seed);
        let model = Committor::new(
            config.clone(),
            n_atoms,
            store.var_builder(candle_core::DType::F64, &candle_core::Device::Cpu),
        )
        .map_err(|e| StageError::Failed(e.to_string()))?;
        let settings = DirichletTraining {
            epochs: p.epochs,
            batch_size: p.batch_size,
            learning_rate: p.learning_rate,
            boundary_weight: p.boundary_weight(),
        };

        let lagged = match p.loss {
            CommittorLoss::Dirichlet => None,
            CommittorLoss::Lagged => {
                Some(lagged_pairs_of(&trajectory, &cores, &model, p.lag_frames)?)
            }
        };
        let lagged_settings = LaggedTraining {
            epochs: p.epochs,
            batch_size: p.batch_size,
            learning_rate: p.learning_rate,
            boundary_weight: p.boundary_weight(),
        };

        // The unbiased state: the input, when pooled.
        let mut states: Vec<State> = Vec::new();
        let mut member = vec![p.pool_input; n_input];
        if p.pool_input {
            states.push(State {
                round: None,
                centre: 0.0,
                count: n_input,
            });
        }
        let mut weights = vec![
            if p.pool_input {
                1.0 / n_input as f64
            } else {
                0.0
            };
            n_input
        ];
        let mut free_energies: Vec<f64> = vec![0.0; states.len()];
        let mut networks: Vec<Vec<NamedTensor>> = Vec::new();
        let mut q_by_round: Vec<Vec<f64>> = Vec::new();
        // The windowed variable under each round's network: q, or its logit.
        let mut cv_by_round: Vec<Vec<f64>> = Vec::new();
        let windowed = |e: rounds::Evaluated| match p.logit_windows {
            Some(_) => e.logit,
            None => e.q,
        };
        let mut windows: Vec<WindowRow> = Vec::new();
        let mut curve: Vec<CurveRow> = Vec::new();
        let [low, high] = p.logit_windows.unwrap_or([0.0, 1.0]);
        let centres: Vec<f64> = (0..p.windows)
            .map(|l| low + (high - low) * (l as f64 + 0.5) / p.windows as f64)
            .collect();
        let per_window = (p.equilibration_steps + p.steps) as usize;
        // With shots, the last fit gets windows of its own (sample only).
        let shooting = p.shots.is_some();
        let window_rounds = p.rounds + usize::from(shooting);
        let fits = match (p.loss, shooting) {
            (CommittorLoss::Lagged, false) => 1,
            _ => p.rounds + 1,
        };
        ctx.progress.start(
            "rounds (windows' steps and fits; shots not counted)",
            (window_rounds * p.windows * per_window + fits * p.epochs) as u64,
        );
        let shooter = p.shots.as_ref().map(|s| Shooter {
            topology: &topology,
            solvent,
            masses: &masses,
            constraints: &constraints,
            params: dynamics.params,
            check_every: s.check_every,
            max_steps: s.max_steps,
        });
        let mut shots = ShotPool::default();
        let mut last = None;
        for round in 0..=p.rounds {
            let rng = &mut ctx.stream(1_000_000 + round as u64);
            let losses = match &lagged {
                None => {
                    let samples = CommittorSamples {
                        positions: pool.iter().flat_map(|s| s.positions.clone()).collect(),
                        n_atoms,
                        weights: weights.clone(),
                        regions: pool.iter().map(|s| s.region).collect(),
                    };
                    train_committor(&model, &store, &samples, &masses, settings, rng)
                }
                // Without shots the lagged fit uses the input's pairs alone: once.
                Some(_) if round > 0 && !shooting => Ok(Vec::new()),
                Some(pairs) if round > 0 => {
                    let weight = p.shots.as_ref().map_or(1.0, |s| s.weight);
                    let targets = shots.targets(&store, &config, &model, n_atoms, weight)?;
                    train_committor_lagged(
                        &model,
                        &store,
                        pairs,
                        Some(&targets),
                        lagged_settings,
                        rng,
                    )
                }
                Some(pairs) => {
                    train_committor_lagged(&model, &store, pairs, None, lagged_settings, rng)
                }
            }
            .map_err(|e| StageError::Failed(format!("round {round}: training: {e}")))?;
            if !losses.is_empty() {
                ctx.progress.advance(p.epochs as u64);
                let fitted = match &lagged {
                    None => format!("{} samples", pool.len()),
                    Some(pairs) if round > 0 => format!(
                        "{} frame pairs and {} shots",
                        pairs.pairs.len(),
                        shots.outcomes.len()
                    ),
                    Some(pairs) => format!("{} frame pairs", pairs.pairs.len()),
                };
                tracing::info!(
                    "round {round}: fit on {fitted}, loss {:.4} -> {:.4}",
                    losses[0],
                    losses[losses.len() - 1]
                );
            }
            curve.extend(losses.iter().enumerate().map(|(e, &loss)| CurveRow {
                round: round as i64,
                epoch: e as i64,
                loss,
            }));
            let tensors = store
                .to_tensors()
                .map_err(|e| StageError::Failed(e.to_string()))?;
            let evaluated = rounds::evaluate(&tensors, &config, &pool)?;
            let q = evaluated.q.clone();
            if round == p.rounds && !shooting {
                last = Some(q);
                break;
            }
            let cv = windowed(evaluated);

            // The windows of this round, each from its own stream.
            let seeds: Vec<usize> = centres.iter().map(|&u| rounds::nearest(&cv, u)).collect();
            let streams: Vec<_> = (0..p.windows)
                .map(|l| ctx.stream((round * p.windows + l) as u64))
                .collect();
            let runs: Vec<Result<rounds::WindowFrames, StageError>> = (0..p.windows)
                .into_par_iter()
                .map(|l| {
                    let host = crate::nn::committor::HostCommittor::load(&tensors, &config)
                        .map_err(StageError::Failed)?;
                    let (seed, stream) = (&pool[seeds[l]].positions, streams[l].clone());
                    match p.logit_windows {
                        Some(_) => rounds::run_window(
                            &dynamics,
                            CommittorLogit(host),
                            centres[l],
                            seed,
                            stream,
                        ),
                        None => rounds::run_window(&dynamics, host, centres[l], seed, stream),
                    }
                })
                .collect();
            ctx.progress.advance((p.windows * per_window) as u64);
            networks.push(tensors);
            q_by_round.push(q);
            cv_by_round.push(cv);
            let start = pool.len();
            for (l, run) in runs.into_iter().enumerate() {
                let frames = run?;
                states.push(State {
                    round: Some(round),
                    centre: centres[l],
                    count: frames.len(),
                });
                for (step, x) in frames {
                    let (region, phi_deg, psi_deg) = classify(&x);
                    pool.push(PooledSample {
                        round: round as i64,
                        window: l as i64,
                        positions: x,
                        step,
                        region,
                        phi_deg,
                        psi_deg,
                    });
                }
            }
            member.resize(pool.len(), true);
            // Every earlier network at the new samples (round r's own q was computed on
            // the pool before the windows ran).
            let mut gradient_norms = Vec::new();
            for (r, net) in networks.iter().enumerate() {
                let more = rounds::evaluate(net, &config, &pool[start..])?;
                q_by_round[r].extend_from_slice(&more.q);
                gradient_norms = more.gradient_norms.clone();
                cv_by_round[r].extend(windowed(more));
            }
            // Each window's q under the network that biased it.
            for l in 0..p.windows {
                let mine: Vec<usize> = (start..pool.len())
                    .filter(|&n| pool[n].window == l as i64)
                    .collect();
                let qs: Vec<f64> = mine.iter().map(|&n| q_by_round[round][n]).collect();
                let steepest = mine
                    .iter()
                    .map(|&n| gradient_norms[n - start])
                    .fold(0.0, f64::max);
                let mean = qs.iter().sum::<f64>() / qs.len().max(1) as f64;
                let var = qs.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                    / qs.len().max(2).saturating_sub(1) as f64;
                windows.push(WindowRow {
                    round: round as i64,
                    window: l as i64,
                    centre: centres[l],
                    samples: qs.len() as i64,
                    seed_q: q_by_round[round][seeds[l]],
                    mean_q: mean,
                    sd_q: var.sqrt(),
                    max_gradient_per_nm: steepest,
                    free_energy_kt: f64::NAN,
                });
            }
            let (w, f, iterations) =
                rounds::unbiased_weights(&states, &cv_by_round, &member, k_over_kt)?;
            weights = w;
            free_energies = f;
            let means: Vec<String> = windows[windows.len() - p.windows..]
                .iter()
                .map(|w| format!("{:.2} ({:.0}/nm)", w.mean_q, w.max_gradient_per_nm))
                .collect();
            tracing::info!(
                "round {round}: windows' mean q [{}]; MBAR over {} states in {iterations} \
                 iterations",
                means.join(", "),
                states.len()
            );
            if round == p.rounds {
                last = Some(q_by_round[round].clone());
                break;
            }
            if let (Some(shooter), Some(settings)) = (&shooter, &p.shots) {
                let starts: Vec<usize> = (start..pool.len())
                    .filter(|&n| pool[n].region == Region::Between)
                    .step_by(settings.every)
                    .collect();
                let mut shot_seeds = ctx.stream(2_000_000 + round as u64);
                let streams: Vec<u64> = starts.iter().map(|_| shot_seeds.next_u64()).collect();
                let outcomes: Vec<Result<shots::Shot, StageError>> = starts
                    .par_iter()
                    .zip(&streams)
                    .map(|(&n, &seed)| {
                        shooter.shoot(
                            &pool[n].positions,
                            &cores,
                            crate::random::stream(seed, 0),
                            &format!("round {round}'s sample {n}"),
                        )
                    })
                    .collect();
                let before = shots.outcomes.len();
                for (&n, outcome) in starts.iter().zip(outcomes) {
                    shots.push(&pool[n].positions, outcome?);
                }
                tracing::info!("round {round}: {}", shots.describe(before));
            }
        }
        let Some(q) = last else {
            return Err(StageError::Failed("no round ran".into()));
        };
        let committor = save_committor(&config, n_atoms, &store)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let rows: Vec<SampleRow> = pool
            .iter()
            .zip(&q)
            .zip(&weights)
            .map(|((s, &q), &weight)| SampleRow {
                round: s.round,
                window: s.window,
                centre: if s.round < 0 {
                    f64::NAN
                } else {
                    centres[s.window as usize]
                },
                step: s.step,
                phi_deg: s.phi_deg,
                psi_deg: s.psi_deg,
                region: match s.region {
                    Region::A => "A",
                    Region::B => "B",
                    Region::Between => "between",
                }
                .to_string(),
                q,
                weight,
                positions_nm: s.positions.clone(),
            })
            .collect();
        let offset = usize::from(p.pool_input);
        for w in &mut windows {
            let state = offset + w.round as usize * p.windows + w.window as usize;
            w.free_energy_kt = free_energies[state];
        }
        Ok(Outputs::from([
            (
                "committor".to_string(),
                Artifact::Table(tensors::to_table(&committor)),
            ),
            ("samples".to_string(), Artifact::Table(rows::table(&rows))),
            (
                "windows".to_string(),
                Artifact::Table(rows::table(&windows)),
            ),
            (
                "learning_curve".to_string(),
                Artifact::Table(rows::table(&curve)),
            ),
        ]))
    }
}

/// Every input frame's features and region, and the frame pairs `lag` apart within one
/// run (see [`lagged_pairs`]); the pairs must all span one lag time.
fn lagged_pairs_of(
    trajectory: &crate::artifact::trajectory::Trajectory,
    cores: &CoreMap,
    model: &Committor,
    lag: usize,
) -> Result<LaggedPairs, StageError> {
    let n_atoms = trajectory.n_atoms;
    one_walker(trajectory, "the lagged loss needs")?;
    finite_times(trajectory)?;
    let regions: Vec<Region> = (0..trajectory.len())
        .into_par_iter()
        .map(|i| cores.classify(trajectory.positions(i)).0)
        .collect();
    let pairs = lagged_pairs(&trajectory.time_ps, &regions, lag);
    let Some(&(s, t)) = pairs.first() else {
        return Err(StageError::bad_input(
            "trajectory",
            format!("no pair of frames {lag} apart in one run with a frame between the cores"),
        ));
    };
    let tau = trajectory.time_ps[t] - trajectory.time_ps[s];
    if let Some(&(s, t)) = pairs
        .iter()
        .find(|&&(s, t)| (trajectory.time_ps[t] - trajectory.time_ps[s] - tau).abs() > 1e-6 * tau)
    {
        return Err(StageError::bad_input(
            "trajectory",
            format!(
                "frames {s} and {t} are {} ps apart, frames of the first pair {tau} ps: the \
                 lagged loss needs one save interval in all runs",
                trajectory.time_ps[t] - trajectory.time_ps[s]
            ),
        ));
    }
    let (features, width) = shots::features_of(model, &trajectory.positions_nm, n_atoms)?;
    tracing::info!(
        "lagged loss: {} frame pairs {tau} ps apart ({} frames)",
        pairs.len(),
        trajectory.len()
    );
    Ok(LaggedPairs {
        features,
        width,
        regions,
        pairs,
    })
}
