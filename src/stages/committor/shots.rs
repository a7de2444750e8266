//! Unbiased shots: plain Langevin dynamics from a configuration, with fresh
//! Maxwell-Boltzmann velocities, until it enters core A or core B (checked every
//! `check_every` steps) or `max_steps` pass (rounded up to whole checks). The committor
//! test shoots many times from each configuration; the `committor` stage's refits shoot
//! once from each window sample and regress q on where the shot went.
//! [`Shooter::run_until`] is the general form (given velocities, any stopping rule),
//! which `committor_ffs`'s trials use.

use rand_chacha::ChaCha20Rng;

use super::CoreMap;
use crate::md::constraints::DistanceConstraint;
use crate::md::dynamics::LangevinParams;
use crate::md::forcefield::{ForceField, Solvent};
use crate::md::langevin::LangevinIntegrator;
use crate::md::topology::Topology;
use crate::nn::committor::{Committor, CommittorConfig, HostCommittor};
use crate::nn::committor_lagged::ShotTargets;
use crate::nn::committor_training::Region;
use crate::nn::store::ParameterStore;
use crate::stages::StageError;

/// What a shot needs: the unbiased dynamics and when to look.
pub(crate) struct Shooter<'a> {
    pub topology: &'a Topology,
    pub solvent: Solvent,
    pub masses: &'a [f64],
    pub constraints: &'a [DistanceConstraint],
    pub params: LangevinParams,
    pub check_every: u64,
    pub max_steps: u64,
}

/// Where one shot ended.
pub(crate) struct Shot {
    /// The core it entered first; `Between`: undecided after `max_steps`.
    pub outcome: Region,
    pub steps: u64,
    /// nm, flat: the positions at the check where it stopped.
    pub end: Vec<f64>,
}

/// Where a run of [`Shooter::run_until`] stopped.
pub(crate) struct Stop<T> {
    /// What `decide` said at the check where the run stopped; None: undecided after
    /// `max_steps`.
    pub verdict: Option<T>,
    pub steps: u64,
    /// nm, flat: the positions at that check.
    pub end: Vec<f64>,
    /// nm/ps: the velocities at that check.
    pub velocities: Vec<[f64; 3]>,
}

impl Shooter<'_> {
    /// One shot from flat positions `start`; `rng` seeds the velocities and the
    /// thermostat. A failure of the dynamics is reported as the shot `from` (e.g.
    /// "sample 12").
    pub(crate) fn shoot(
        &self,
        start: &[f64],
        cores: &CoreMap,
        rng: ChaCha20Rng,
        from: &str,
    ) -> Result<Shot, StageError> {
        let stop = self.run_until(start, None, rng, from, |x| {
            let region = cores.classify(x).0;
            (region != Region::Between).then_some(region)
        })?;
        Ok(Shot {
            outcome: stop.verdict.unwrap_or(Region::Between),
            steps: stop.steps,
            end: stop.end,
        })
    }

    /// Plain dynamics from flat positions `start`, with `velocities` or fresh
    /// Maxwell-Boltzmann ones, until `decide` (asked every `check_every` steps with the
    /// flat positions) gives a verdict or `max_steps` pass. `start` itself is not asked.
    pub(crate) fn run_until<T>(
        &self,
        start: &[f64],
        velocities: Option<&[[f64; 3]]>,
        rng: ChaCha20Rng,
        from: &str,
        mut decide: impl FnMut(&[f64]) -> Option<T>,
    ) -> Result<Stop<T>, StageError> {
        let failed = |e: crate::md::dynamics::DynamicsError| {
            StageError::Failed(format!("shot from {from}: {e}"))
        };
        let (forcefield, _) = ForceField::new(self.topology, self.solvent)
            .map_err(|e| StageError::Failed(e.to_string()))?
            .without_constrained_bonds(self.constraints);
        let positions: Vec<[f64; 3]> = start.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
        let mut md = LangevinIntegrator::new(
            forcefield,
            self.masses,
            &positions,
            self.constraints,
            self.params,
            rng,
        )
        .map_err(failed)?;
        match velocities {
            Some(v) => md.set_velocities(v).map_err(failed)?,
            None => md.initialize_velocities().map_err(failed)?,
        }
        let mut steps = 0;
        let mut end: Vec<f64> = start.to_vec();
        while steps < self.max_steps {
            md.run(self.check_every, 0, |_| {}).map_err(failed)?;
            steps += self.check_every;
            end = md.positions().iter().flatten().copied().collect();
            if let Some(verdict) = decide(&end) {
                return Ok(Stop {
                    verdict: Some(verdict),
                    steps,
                    end,
                    velocities: md.velocities().to_vec(),
                });
            }
        }
        Ok(Stop {
            verdict: None,
            steps,
            end,
            velocities: md.velocities().to_vec(),
        })
    }
}

/// The shots of a `committor` node's rounds so far: where each started and ended.
#[derive(Default)]
pub(super) struct ShotPool {
    /// nm, flat, one configuration after another.
    starts: Vec<f64>,
    pub outcomes: Vec<Shot>,
}

impl ShotPool {
    pub(super) fn push(&mut self, start: &[f64], shot: Shot) {
        self.starts.extend_from_slice(start);
        self.outcomes.push(shot);
    }

    /// The shots from index `from` on, in words.
    pub(super) fn describe(&self, from: usize) -> String {
        let new = &self.outcomes[from..];
        let count = |r: Region| new.iter().filter(|s| s.outcome == r).count();
        let steps = new.iter().map(|s| s.steps as f64).sum::<f64>() / new.len().max(1) as f64;
        format!(
            "{} shots: {} to A first, {} to B, {} undecided; {steps:.0} steps on average",
            new.len(),
            count(Region::A),
            count(Region::B),
            count(Region::Between)
        )
    }

    /// The regression data of a refit: the starts' features and the targets, 0 / 1 by
    /// the core reached first, else q of the network in `store` (the one the refit
    /// starts from) at the shot's end.
    pub(super) fn targets(
        &self,
        store: &ParameterStore,
        config: &CommittorConfig,
        model: &Committor,
        n_atoms: usize,
        weight: f64,
    ) -> Result<ShotTargets, StageError> {
        let failed = |e: candle_core::Error| StageError::Failed(e.to_string());
        let tensors = store.to_tensors().map_err(failed)?;
        let mut host = HostCommittor::load(&tensors, config).map_err(StageError::Failed)?;
        let targets = self
            .outcomes
            .iter()
            .map(|s| match s.outcome {
                Region::A => 0.0,
                Region::B => 1.0,
                Region::Between => host.value_at(&s.end),
            })
            .collect();
        let (features, width) = features_of(model, &self.starts, n_atoms)?;
        Ok(ShotTargets {
            features,
            width,
            targets,
            weight,
        })
    }
}

/// The network's input features (inverse distances, nm^-1) of flat configurations, and
/// their width.
pub(super) fn features_of(
    model: &Committor,
    positions: &[f64],
    n_atoms: usize,
) -> Result<(Vec<f64>, usize), StageError> {
    let failed = |e: candle_core::Error| StageError::Failed(e.to_string());
    let chunk = 4096 * 3 * n_atoms;
    let (mut features, mut width) = (Vec::new(), 0);
    for part in positions.chunks(chunk) {
        let x = candle_core::Tensor::from_vec(
            part.to_vec(),
            (part.len() / (3 * n_atoms), n_atoms, 3),
            &candle_core::Device::Cpu,
        )
        .and_then(|x| model.inverse_distances(&x))
        .map_err(failed)?;
        width = x.dim(1).map_err(failed)?;
        features.extend(
            x.flatten_all()
                .and_then(|f| f.to_vec1::<f64>())
                .map_err(failed)?,
        );
    }
    Ok((features, width))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::mlp::Activation;
    use candle_core::{DType, Device, Tensor};

    /// Decided shots give 0 and 1; an undecided one the network's q at its end, and
    /// the features are those of its start.
    #[test]
    fn targets_are_the_core_reached_or_q_at_the_end() {
        let store = ParameterStore::new([9; 32]);
        let config = CommittorConfig::new(vec![0, 1], vec![4], Activation::Tanh);
        let model = Committor::new(
            config.clone(),
            2,
            store.var_builder(DType::F64, &Device::Cpu),
        )
        .unwrap();
        let mut pool = ShotPool::default();
        let start = [0.0, 0.0, 0.0, 0.4, 0.0, 0.0];
        let end = vec![0.0, 0.0, 0.0, 0.0, 0.5, 0.0];
        for outcome in [Region::A, Region::B, Region::Between] {
            let shot = Shot {
                outcome,
                steps: 10,
                end: end.clone(),
            };
            pool.push(&start, shot);
        }
        let targets = pool.targets(&store, &config, &model, 2, 0.5).unwrap();
        let x = Tensor::from_vec(end, (1, 2, 3), &Device::Cpu).unwrap();
        let q_end = candle_nn::ops::sigmoid(&model.logit(&x).unwrap())
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[0];
        assert_eq!(targets.targets[..2], [0.0, 1.0]);
        assert!(
            (targets.targets[2] - q_end).abs() < 1e-12,
            "{targets:?}",
            targets = targets.targets
        );
        assert!(q_end > 0.0 && q_end < 1.0);
        assert_eq!((targets.width, targets.weight), (1, 0.5));
        assert!(targets.features.iter().all(|&f| (f - 2.5).abs() < 1e-12));
        assert_eq!(
            pool.describe(0),
            "3 shots: 1 to A first, 1 to B, 1 undecided; 10 steps on average"
        );
    }
}
