//! The params of a `committor` node: their defaults, their documentation (what `cgloop
//! stages` prints) and their checks.

use serde::{Deserialize, Serialize};

use crate::stages::atom_ref::AtomRef;
use crate::stages::fg_sample::ConstraintSet;
use crate::stages::transitions::{Core, TransitionsParams, check_cores};
use crate::stages::{ParamDoc, ParamProblem};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommittorParams {
    pub phi: [AtomRef; 4],
    pub psi: [AtomRef; 4],
    pub a: Core,
    pub b: Core,
    pub temperature_k: f64,
    pub timestep_fs: f64,
    pub friction_per_ps: f64,
    pub constraints: ConstraintSet,
    pub input_frames: usize,
    pub pool_input: bool,
    pub windows: usize,
    pub force_constant: f64,
    pub rounds: usize,
    pub equilibration_steps: u64,
    pub steps: u64,
    pub save_every: u64,
    pub hidden: Vec<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// None: the loss's own default ([`CommittorParams::boundary_weight`]).
    pub boundary_weight: Option<f64>,
    pub loss: CommittorLoss,
    pub lag_frames: usize,
    /// Shots from the windows' samples and refits on them (loss: lagged); none: the
    /// windows only sample. Left out of the key when unset, so existing nodes keep
    /// theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shots: Option<ShotSettings>,
    /// Windows on the logit y = ln(q / (1 - q)), centred evenly in [low, high]; none:
    /// on q in [0, 1]. Left out of the key when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_windows: Option<[f64; 2]>,
}

/// The shots of a lagged fit's rounds: one from every `every`-th window sample between
/// the cores, plain dynamics until a core or `max_steps` (checked every `check_every`
/// steps), and `weight`, mu of their regression term
/// ([`crate::nn::committor_lagged::ShotTargets`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShotSettings {
    pub every: usize,
    pub max_steps: u64,
    pub check_every: u64,
    pub weight: f64,
}

impl Default for ShotSettings {
    fn default() -> Self {
        ShotSettings {
            every: 1,
            max_steps: 20_000,
            check_every: 10,
            weight: 1.0,
        }
    }
}

/// What the network is fitted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommittorLoss {
    /// The Dirichlet form with boundary terms on the pooled, MBAR-weighted samples
    /// ([`crate::nn::committor_training`]).
    Dirichlet,
    /// The time-lagged form on the input's frame pairs `lag_frames` apart
    /// ([`crate::nn::committor_lagged`]); windows, if any, only sample, or with `shots`
    /// are shot from and refitted on.
    Lagged,
}

impl Default for CommittorParams {
    fn default() -> Self {
        let cores = TransitionsParams::default();
        CommittorParams {
            phi: AtomRef::alanine_phi(),
            psi: AtomRef::alanine_psi(),
            a: cores.a,
            b: cores.b,
            temperature_k: 300.0,
            timestep_fs: 1.0,
            friction_per_ps: 1.0,
            constraints: ConstraintSet::Hbonds,
            input_frames: 5_000,
            pool_input: true,
            windows: 10,
            force_constant: 1_000.0,
            rounds: 4,
            equilibration_steps: 1_000,
            steps: 20_000,
            save_every: 100,
            hidden: vec![32, 32],
            epochs: 40,
            batch_size: 256,
            learning_rate: 1e-3,
            boundary_weight: None,
            loss: CommittorLoss::Dirichlet,
            lag_frames: 1,
            shots: None,
            logit_windows: None,
        }
    }
}

impl CommittorParams {
    /// lambda as given, or the loss's default: 1e4 for the Dirichlet form (its
    /// gradient term is ~1e2-1e3 where q steps), 0.01 for the lagged form (its pair
    /// terms are ~1e-3; on a random walk between two spheres lambda = 1 bent q by 0.1
    /// and 1e4 by 0.4, 0.01 left it within 0.002 of 0 and 1 in the cores).
    pub fn boundary_weight(&self) -> f64 {
        self.boundary_weight.unwrap_or(match self.loss {
            CommittorLoss::Dirichlet => 1e4,
            CommittorLoss::Lagged => 0.01,
        })
    }
}

pub(super) const PARAMS: &[ParamDoc] = &[
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
        about: "core A (q = 0) as {phi_deg, psi_deg, radius_deg}; default C7eq \
                {phi_deg: -83, psi_deg: 74, radius_deg: 30}",
    },
    ParamDoc {
        name: "b",
        about: "core B (q = 1); default C7ax {phi_deg: 70, psi_deg: -65, radius_deg: 30}",
    },
    ParamDoc {
        name: "temperature_k",
        about: "K, of the windows' dynamics; the input frames must have it",
    },
    ParamDoc {
        name: "timestep_fs",
        about: "fs; the bias adds a stiffness k |grad q|^2, and with |grad q| of 100-150 \
                per nm (measured on alanine dipeptide) 2 fs is unstable at k = 1000",
    },
    ParamDoc {
        name: "friction_per_ps",
        about: "Langevin friction, 1/ps",
    },
    ParamDoc {
        name: "constraints",
        about: "`hbonds` (bonds to hydrogen held at r0) or `none`",
    },
    ParamDoc {
        name: "input_frames",
        about: "at most this many input frames, evenly strided",
    },
    ParamDoc {
        name: "pool_input",
        about: "true: the input is one Boltzmann sample and joins MBAR as the unbiased \
                state; false: it weighs only in the fits (boundary terms, and with loss: \
                lagged its pairs) and as seeds",
    },
    ParamDoc {
        name: "windows",
        about: "L, windows per round, centred at u_l = (l + 1/2) / L",
    },
    ParamDoc {
        name: "force_constant",
        about: "k of the window bias (k/2)(q - u_l)^2, kJ/mol",
    },
    ParamDoc {
        name: "rounds",
        about: "R, rounds of windows (R + 1 with shots, the last on the last fit); R + 1 \
                fits of q (one with loss: lagged and no shots)",
    },
    ParamDoc {
        name: "equilibration_steps",
        about: "steps per window before frames are saved",
    },
    ParamDoc {
        name: "steps",
        about: "steps per window per round",
    },
    ParamDoc {
        name: "save_every",
        about: "steps between saved frames of a window",
    },
    ParamDoc {
        name: "hidden",
        about: "hidden layer widths of the network (tanh)",
    },
    ParamDoc {
        name: "epochs",
        about: "training epochs per fit (the last third at a tenth of the rate)",
    },
    ParamDoc {
        name: "batch_size",
        about: "samples per minibatch",
    },
    ParamDoc {
        name: "learning_rate",
        about: "Adam's learning rate",
    },
    ParamDoc {
        name: "boundary_weight",
        about: "lambda, the weight of q^2 on A's samples and (1 - q)^2 on B's; default \
                1e4 with loss: dirichlet, 0.01 with loss: lagged (it must sit on the scale \
                of the pair loss, ~1e-3)",
    },
    ParamDoc {
        name: "loss",
        about: "`dirichlet` (adaptive sampling: windows and MBAR over rounds) or \
                `lagged` (the time-lagged form E[(q(x_t) - q(x_t+tau))^2] on the \
                input's unbiased frame pairs, q fixed at 0 and 1 in the cores; without \
                shots it is fitted once, needs runs with transitions and pool_input: \
                true, and rounds > 0 only sample windows on that q, e.g. for \
                committor_test's configurations; with shots each round refits)",
    },
    ParamDoc {
        name: "lag_frames",
        about: "tau of the lagged loss, in saved frames of the input",
    },
    ParamDoc {
        name: "logit_windows",
        about: "[low, high]: windows on y = ln(q / (1 - q)) with centres evenly in \
                [low, high] (force_constant then per unit y squared, e.g. k_B T / 0.25 for a \
                width of 0.5), which hold q over orders of magnitude near the cores where \
                q itself is too steep; default: windows on q in [0, 1]",
    },
    ParamDoc {
        name: "shots",
        about: "loss: lagged only; {every, max_steps, check_every, weight}: after each \
                round's windows, one unbiased shot from every `every`-th window sample \
                between the cores until a core or max_steps (default 1, 20000, 10), and \
                a refit on the input's pairs plus weight (default 1) x mean (q(x) - t)^2, \
                t = 0 / 1 by the core reached first (q before the refit at the end of an \
                undecided shot); the last round's windows sample on the last fit, out of \
                sample. Without it, pool_input must be true",
    },
];

pub(super) fn check(p: &CommittorParams) -> Result<(), ParamProblem> {
    check_cores(&p.a, &p.b)?;
    let positive = [
        ("temperature_k", p.temperature_k),
        ("timestep_fs", p.timestep_fs),
        ("friction_per_ps", p.friction_per_ps),
        ("force_constant", p.force_constant),
        ("learning_rate", p.learning_rate),
        ("boundary_weight", p.boundary_weight()),
    ];
    for (name, v) in positive {
        if !(v.is_finite() && v > 0.0) {
            return Err(ParamProblem::new(name, "must be finite and positive"));
        }
    }
    let counts = [
        ("input_frames", p.input_frames),
        ("windows", p.windows),
        ("epochs", p.epochs),
        ("batch_size", p.batch_size),
    ];
    for (name, v) in counts {
        if v == 0 {
            return Err(ParamProblem::new(name, "must be at least 1"));
        }
    }
    if p.save_every == 0 || p.steps < p.save_every {
        return Err(ParamProblem::new(
            "save_every",
            "must be at least 1 and at most steps",
        ));
    }
    let per_round = p.windows as u64 * (p.steps / p.save_every);
    // With shots the last fit gets windows of its own.
    let window_rounds = p.rounds as u64 + u64::from(p.shots.is_some());
    if p.rounds > 1000
        || per_round.saturating_mul(window_rounds) > 1 << 22
        || (p.windows as u64).saturating_mul(window_rounds) >= 1_000_000
    {
        return Err(ParamProblem::new(
            "rounds",
            "the window rounds (rounds, plus one with shots) x windows x steps / save_every \
             must be at most 2^22 samples, and window rounds x windows below 1e6",
        ));
    }
    if let Some([low, high]) = p.logit_windows
        && !(low.is_finite() && high.is_finite() && low < high)
    {
        return Err(ParamProblem::new(
            "logit_windows",
            "must be [low, high] with low < high, both finite",
        ));
    }
    if let Some(shots) = &p.shots {
        if p.loss != CommittorLoss::Lagged {
            return Err(ParamProblem::new("shots", "needs loss: lagged"));
        }
        if shots.every == 0 || shots.check_every == 0 || shots.max_steps < shots.check_every {
            return Err(ParamProblem::new(
                "shots",
                "every and check_every must be at least 1, max_steps at least check_every",
            ));
        }
        if !(shots.weight.is_finite() && shots.weight > 0.0) {
            return Err(ParamProblem::new(
                "shots",
                "weight must be finite and positive",
            ));
        }
    }
    if p.loss == CommittorLoss::Lagged {
        if !p.pool_input && p.shots.is_none() {
            return Err(ParamProblem::new(
                "pool_input",
                "must be true with loss: lagged and no shots (its pairs must start \
                 from one equilibrium sample)",
            ));
        }
        if !(1..=1_000_000).contains(&p.lag_frames) {
            return Err(ParamProblem::new("lag_frames", "must be in 1..=1000000"));
        }
    }
    if p.hidden.is_empty() || p.hidden.contains(&0) {
        return Err(ParamProblem::new(
            "hidden",
            "needs at least one layer, each at least 1 wide",
        ));
    }
    Ok(())
}
