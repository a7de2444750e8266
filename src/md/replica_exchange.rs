//! Temperature replica exchange (parallel tempering; Swendsen & Wang, Phys. Rev. Lett.
//! 57, 2607, 1986; Sugita & Okamoto, Chem. Phys. Lett. 314, 141, 1999) over BAOAB
//! Langevin replicas.
//!
//! K replicas run at temperatures T_0 < ... < T_(K-1) (a geometric ladder
//! T_k = T_min (T_max / T_min)^(k / (K - 1)) or a given list). Every `exchange_every`
//! steps neighbours (k, k+1) attempt to swap configurations, the even pairs (0-1, 2-3, ...)
//! on even attempts and the odd pairs (1-2, 3-4, ...) on odd ones, accepted with the
//! Metropolis probability min(1, exp((beta_k - beta_(k+1)) (U_k - U_(k+1)))),
//! beta = 1 / (k_B T). On a swap, velocities are rescaled by sqrt(T_new / T_old) so each
//! configuration arrives with the kinetic temperature of its new thermostat.
//!
//! Each temperature slot owns its integrator, its clone of the potential and its own
//! random stream (`random::stream(seed, k)`); acceptance draws come from a dedicated
//! exchange stream (`random::stream(seed, EXCHANGE_STREAM)`). Slots advance in parallel
//! (rayon) between exchanges and nothing depends on which thread ran what, so parallel
//! and sequential runs give identical bytes. Frames are delivered on the calling thread
//! in order of (step, temperature index), with the index of the replica (walker) that
//! holds that temperature.
//!
//! [`ReplicaExchange::state`] (every slot's integrator state, which walker sits at which
//! temperature, the exchange stream's position, the rounds attempted and the pair
//! statistics) and [`ReplicaExchange::restore`] let a run stop and go on later as if
//! unbroken; [`ReplicaExchange::run_segment`] with `close` false leaves the last step
//! as an unbroken run would (see [`crate::md::langevin`]).

use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

use crate::md::constraints::DistanceConstraint;
use crate::md::langevin::{
    BOLTZ, DynamicsError, IntegratorState, LangevinIntegrator, LangevinParams,
};
use crate::md::potential::Potential;
use crate::random::{stream, uniform};

/// Stream id of the exchange decisions (replica k uses stream k).
pub const EXCHANGE_STREAM: u64 = u64::MAX;

/// K temperatures spaced geometrically from `t_min` to `t_max` (K).
pub fn geometric_ladder(t_min: f64, t_max: f64, count: usize) -> Vec<f64> {
    match count {
        0 => Vec::new(),
        1 => vec![t_min],
        _ => (0..count)
            .map(|k| t_min * (t_max / t_min).powf(k as f64 / (count - 1) as f64))
            .collect(),
    }
}

/// The ladder and exchange schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaExchangeParams {
    /// Thermostat and step; `temperature_k` is replaced by each rung's.
    pub dynamics: LangevinParams,
    /// Ascending temperatures (K), e.g. from [`geometric_ladder`].
    pub temperatures_k: Vec<f64>,
    /// Steps between exchange attempts.
    pub exchange_every: u64,
    /// Seed of the replica streams (stream k for rung k) and of the exchange stream.
    pub seed: u64,
}

/// A saved frame of the replica at one temperature.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaFrame<'a> {
    pub step: u64,
    pub temperature_index: usize,
    pub temperature_k: f64,
    /// The walker holding this temperature (its starting temperature index).
    pub replica: usize,
    pub positions: &'a [[f64; 3]],
    pub forces: &'a [[f64; 3]],
    pub potential_energy: f64,
    /// On-step kinetic energy (kJ/mol).
    pub kinetic_energy: f64,
    /// Instantaneous temperature from the half-step velocities (K).
    pub instantaneous_temperature_k: f64,
}

/// Attempts and acceptances of the exchange between temperatures k and k + 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairStatistics {
    pub lower_k: f64,
    pub upper_k: f64,
    pub attempts: u64,
    pub accepted: u64,
}

impl PairStatistics {
    pub fn acceptance_rate(&self) -> f64 {
        if self.attempts == 0 {
            0.0
        } else {
            self.accepted as f64 / self.attempts as f64
        }
    }
}

/// Where a replica-exchange run stands: enough to continue it bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaExchangeState {
    /// The integrator at each temperature index.
    pub slots: Vec<IntegratorState>,
    /// The walker at each temperature index.
    pub replica_at: Vec<usize>,
    /// Offset of the exchange stream, in 32-bit words.
    pub exchange_rng_word_pos: u128,
    /// Exchange rounds attempted (their parity picks even or odd pairs).
    pub exchange_rounds: u64,
    /// Attempts and acceptances per neighbour pair, counted from the start of the run.
    pub pairs: Vec<PairStatistics>,
}

#[derive(Debug, Clone, Default)]
struct OwnedFrame {
    step: u64,
    positions: Vec<[f64; 3]>,
    forces: Vec<[f64; 3]>,
    potential_energy: f64,
    kinetic_energy: f64,
    temperature_k: f64,
}

/// Reused per-slot storage for the frames of one segment.
#[derive(Debug, Clone, Default)]
struct FrameBuffer {
    frames: Vec<OwnedFrame>,
    used: usize,
}

/// Temperature replica exchange driver.
#[derive(Debug)]
pub struct ReplicaExchange<P: Potential + Clone + Send> {
    slots: Vec<LangevinIntegrator<P>>,
    temperatures: Vec<f64>,
    replica_at: Vec<usize>,
    exchange_rng: ChaCha20Rng,
    exchange_every: u64,
    attempts_made: u64,
    pairs: Vec<PairStatistics>,
    buffers: Vec<FrameBuffer>,
    /// Advance slots on the rayon pool (true) or one after another (false).
    pub parallel: bool,
}

fn advance<P: Potential>(
    md: &mut LangevinIntegrator<P>,
    buffer: &mut FrameBuffer,
    steps: u64,
    save_every: u64,
    close: bool,
) -> Result<(), DynamicsError> {
    buffer.used = 0;
    md.run_segment(steps, save_every, close, |f| {
        if buffer.used == buffer.frames.len() {
            buffer.frames.push(OwnedFrame::default());
        }
        let slot = &mut buffer.frames[buffer.used];
        slot.step = f.step;
        slot.positions.clear();
        slot.positions.extend_from_slice(f.positions);
        slot.forces.clear();
        slot.forces.extend_from_slice(f.forces);
        slot.potential_energy = f.potential_energy;
        slot.kinetic_energy = f.kinetic_energy;
        slot.temperature_k = f.temperature_k;
        buffer.used += 1;
    })
}

impl<P: Potential + Clone + Send> ReplicaExchange<P> {
    /// One replica per temperature, all starting from `positions` (nm) with
    /// Maxwell–Boltzmann velocities at their own temperature.
    pub fn new(
        potential: &P,
        masses: &[f64],
        positions: &[[f64; 3]],
        constraints: &[DistanceConstraint],
        params: &ReplicaExchangeParams,
    ) -> Result<Self, DynamicsError> {
        let ReplicaExchangeParams {
            dynamics,
            ref temperatures_k,
            exchange_every,
            seed,
        } = *params;
        let ascending = temperatures_k.windows(2).all(|w| w[0] < w[1]);
        if temperatures_k.is_empty()
            || !ascending
            || temperatures_k[0].is_nan()
            || temperatures_k[0] <= 0.0
        {
            let value = temperatures_k.first().copied().unwrap_or(f64::NAN);
            return Err(DynamicsError::InvalidParameter {
                name: "temperatures_k",
                value,
                reason: "must be non-empty, positive and strictly ascending",
            });
        }
        if exchange_every == 0 {
            return Err(DynamicsError::InvalidParameter {
                name: "exchange_every",
                value: 0.0,
                reason: "must be > 0",
            });
        }
        let mut slots = Vec::with_capacity(temperatures_k.len());
        for (k, &t) in temperatures_k.iter().enumerate() {
            let params = LangevinParams {
                temperature_k: t,
                ..dynamics
            };
            let mut md = LangevinIntegrator::new(
                potential.clone(),
                masses,
                positions,
                constraints,
                params,
                stream(seed, k as u64),
            )?;
            md.initialize_velocities()?;
            slots.push(md);
        }
        let pairs = temperatures_k
            .windows(2)
            .map(|w| PairStatistics {
                lower_k: w[0],
                upper_k: w[1],
                attempts: 0,
                accepted: 0,
            })
            .collect();
        Ok(Self {
            buffers: vec![FrameBuffer::default(); slots.len()],
            slots,
            temperatures: temperatures_k.to_vec(),
            replica_at: (0..temperatures_k.len()).collect(),
            exchange_rng: stream(seed, EXCHANGE_STREAM),
            exchange_every,
            attempts_made: 0,
            pairs,
            parallel: true,
        })
    }

    /// Advances every replica `steps` steps, attempting exchanges whenever the step
    /// count reaches a multiple of `exchange_every`, and calls `on_frame` for every
    /// temperature at steps that are multiples of `save_every` (0: never).
    pub fn run(
        &mut self,
        steps: u64,
        save_every: u64,
        on_frame: impl FnMut(&ReplicaFrame<'_>),
    ) -> Result<(), DynamicsError> {
        self.run_segment(steps, save_every, true, on_frame)
    }

    /// As [`Self::run`]; with `close` false the last step is left as it is inside an
    /// unbroken run (see [`LangevinIntegrator::run_segment`]) unless an exchange is
    /// attempted there, which always follows a closed step.
    pub fn run_segment(
        &mut self,
        steps: u64,
        save_every: u64,
        close: bool,
        mut on_frame: impl FnMut(&ReplicaFrame<'_>),
    ) -> Result<(), DynamicsError> {
        let end = self.step_count() + steps;
        while self.step_count() < end {
            let now = self.step_count();
            let boundary = (now / self.exchange_every)
                .saturating_add(1)
                .saturating_mul(self.exchange_every);
            let len = boundary.min(end) - now;
            let close = close || boundary <= end;
            let results: Vec<Result<(), DynamicsError>> = if self.parallel {
                self.slots
                    .par_iter_mut()
                    .zip(self.buffers.par_iter_mut())
                    .map(|(md, buf)| advance(md, buf, len, save_every, close))
                    .collect()
            } else {
                self.slots
                    .iter_mut()
                    .zip(self.buffers.iter_mut())
                    .map(|(md, buf)| advance(md, buf, len, save_every, close))
                    .collect()
            };
            results.into_iter().collect::<Result<(), _>>()?;
            for j in 0..self.buffers[0].used {
                for (k, buffer) in self.buffers.iter().enumerate() {
                    let f = &buffer.frames[j];
                    on_frame(&ReplicaFrame {
                        step: f.step,
                        temperature_index: k,
                        temperature_k: self.temperatures[k],
                        replica: self.replica_at[k],
                        positions: &f.positions,
                        forces: &f.forces,
                        potential_energy: f.potential_energy,
                        kinetic_energy: f.kinetic_energy,
                        instantaneous_temperature_k: f.temperature_k,
                    });
                }
            }
            if self.step_count().is_multiple_of(self.exchange_every) {
                self.attempt_exchanges();
            }
        }
        Ok(())
    }

    /// One round of neighbour exchanges (even or odd pairs, alternating).
    fn attempt_exchanges(&mut self) {
        let parity = (self.attempts_made % 2) as usize;
        self.attempts_made += 1;
        for k in (parity..self.slots.len().saturating_sub(1)).step_by(2) {
            let (ti, tj) = (self.temperatures[k], self.temperatures[k + 1]);
            let (bi, bj) = (1.0 / (BOLTZ * ti), 1.0 / (BOLTZ * tj));
            let (ui, uj) = (
                self.slots[k].potential_energy(),
                self.slots[k + 1].potential_energy(),
            );
            let delta = (bi - bj) * (ui - uj);
            let u = uniform(&mut self.exchange_rng);
            self.pairs[k].attempts += 1;
            if delta >= 0.0 || u < delta.exp() {
                self.pairs[k].accepted += 1;
                let (low, high) = self.slots.split_at_mut(k + 1);
                let (a, b) = (&mut low[k], &mut high[0]);
                a.swap_configuration(b);
                a.scale_velocities((ti / tj).sqrt());
                b.scale_velocities((tj / ti).sqrt());
                self.replica_at.swap(k, k + 1);
            }
        }
    }

    /// Where the run stands, to continue it later with [`Self::restore`].
    pub fn state(&self) -> ReplicaExchangeState {
        ReplicaExchangeState {
            slots: self.slots.iter().map(|md| md.state()).collect(),
            replica_at: self.replica_at.clone(),
            exchange_rng_word_pos: self.exchange_rng.get_word_pos(),
            exchange_rounds: self.attempts_made,
            pairs: self.pairs.clone(),
        }
    }

    /// Continues from `state`, taken from a run of the same system, ladder, schedule
    /// and seed: the error names what does not fit.
    pub fn restore(&mut self, state: &ReplicaExchangeState) -> Result<(), DynamicsError> {
        let k = self.slots.len();
        for (what, got) in [
            ("replica slots", state.slots.len()),
            ("walkers", state.replica_at.len()),
            ("exchange pairs", state.pairs.len() + 1),
        ] {
            if got != k {
                return Err(DynamicsError::LengthMismatch {
                    what,
                    expected: k,
                    got,
                });
            }
        }
        let mut seen = vec![false; k];
        for &r in &state.replica_at {
            if r >= k || std::mem::replace(&mut seen[r], true) {
                return Err(DynamicsError::InvalidParameter {
                    name: "replica_at",
                    value: r as f64,
                    reason: "must be a permutation of the temperature indices",
                });
            }
        }
        if state.slots.windows(2).any(|w| w[0].step != w[1].step) {
            return Err(DynamicsError::InvalidParameter {
                name: "step",
                value: state.slots[0].step as f64,
                reason: "must be the same in every slot",
            });
        }
        for (md, s) in self.slots.iter_mut().zip(&state.slots) {
            md.restore(s)?;
        }
        self.replica_at.clone_from(&state.replica_at);
        self.exchange_rng.set_word_pos(state.exchange_rng_word_pos);
        self.attempts_made = state.exchange_rounds;
        for (mine, theirs) in self.pairs.iter_mut().zip(&state.pairs) {
            mine.attempts = theirs.attempts;
            mine.accepted = theirs.accepted;
        }
        Ok(())
    }

    /// Steps taken by every replica.
    pub fn step_count(&self) -> u64 {
        self.slots[0].step_count()
    }

    pub fn temperatures(&self) -> &[f64] {
        &self.temperatures
    }

    /// Exchange statistics per neighbour pair (k, k + 1).
    pub fn pair_statistics(&self) -> &[PairStatistics] {
        &self.pairs
    }

    /// The replica (walker) at each temperature index.
    pub fn replica_at(&self) -> &[usize] {
        &self.replica_at
    }

    /// The integrator at temperature index `k`.
    pub fn slot(&self, k: usize) -> &LangevinIntegrator<P> {
        &self.slots[k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_ladder_spans_the_range() {
        let t = geometric_ladder(300.0, 600.0, 5);
        assert_eq!(t.len(), 5);
        assert_eq!(t[0], 300.0);
        assert!((t[4] - 600.0).abs() < 1e-9);
        assert!((t[2] - 300.0 * 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(geometric_ladder(300.0, 600.0, 1), vec![300.0]);
    }
}
