//! Chained segments of one `fg_sample` run: the settings a continuation must share with
//! the state it continues, and the conversion between the integrators' state and the
//! `md_state` artifact (positions, velocities, each thermostat stream's word position,
//! the walker, a pending constraint projection; for the run the exchange stream, rounds
//! and pair statistics).

use serde::{Deserialize, Serialize};

use super::{ConstraintSet, SolventModel};
use crate::artifact::md_state::{MdStateRecord, RungState};
use crate::md::forcefield::ForceField;
use crate::md::langevin::IntegratorState;
use crate::md::replica_exchange::{PairStatistics, ReplicaExchange, ReplicaExchangeState};
use crate::stages::StageError;

/// What the dynamics of a run depend on besides its state: a node continuing a state
/// must have the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct ChainSettings {
    pub(super) topology_blake3: String,
    pub(super) solvent: SolventModel,
    pub(super) temperatures_k: Vec<f64>,
    pub(super) timestep_fs: f64,
    pub(super) friction_per_ps: f64,
    pub(super) constraints: ConstraintSet,
    /// 0 without replica exchange.
    pub(super) exchange_every: u64,
    pub(super) save_every: u64,
    pub(super) hydrogen_mass_amu: Option<f64>,
}

impl ChainSettings {
    pub(super) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("settings serialize")
    }

    /// Whether `state` can be continued with these settings and `n_atoms` atoms; the
    /// error names every setting that differs.
    pub(super) fn check_continues(
        &self,
        state: &MdStateRecord,
        n_atoms: usize,
    ) -> Result<(), StageError> {
        let bad = |message: String| StageError::BadInput {
            input: "state".into(),
            message,
        };
        let theirs: serde_json::Value = serde_json::from_str(&state.settings)
            .map_err(|e| bad(format!("settings are not the JSON fg_sample writes: {e}")))?;
        // Both sides through the same text and the same parser: serde_json's default
        // float parser is not exact (379.6063891417688 may come back one ulp off), so a
        // value compared with its own parsed text could differ from itself.
        let ours: serde_json::Value =
            serde_json::from_str(&self.to_json()).expect("settings parse back");
        let (Some(theirs), Some(ours)) = (theirs.as_object(), ours.as_object()) else {
            return Err(bad("settings are not a JSON object".into()));
        };
        let differences: Vec<String> = ours
            .iter()
            .filter(|(k, v)| theirs.get(*k) != Some(v))
            .map(|(k, v)| {
                let name = match k.as_str() {
                    "topology_blake3" => "topology (blake3)",
                    "temperatures_k" => {
                        "temperature ladder (temperature_k, max_temperature_k, replicas)"
                    }
                    other => other,
                };
                let was = theirs
                    .get(k)
                    .map_or("absent".to_string(), |t| t.to_string());
                format!("{name}: the state's run had {was}, this node has {v}")
            })
            .collect();
        if !differences.is_empty() {
            return Err(bad(format!(
                "this node cannot continue the state: {} (a chain of nodes must share the \
                 settings of its dynamics)",
                differences.join("; ")
            )));
        }
        let width = state.rungs[0].positions_nm.len();
        if width != 3 * n_atoms {
            return Err(bad(format!(
                "{} atoms in the state, {n_atoms} in the topology",
                width / 3
            )));
        }
        Ok(())
    }
}

pub(super) fn triples(flat: &[f64]) -> Vec<[f64; 3]> {
    flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

/// The replica-exchange state a state record holds.
pub(super) fn remd_state(state: &MdStateRecord) -> ReplicaExchangeState {
    let rungs = &state.rungs;
    ReplicaExchangeState {
        slots: rungs
            .iter()
            .map(|r| IntegratorState {
                step: r.step,
                positions: triples(&r.positions_nm),
                velocities: triples(&r.velocities_nm_per_ps),
                projection_pending: r.projection_pending,
                rng_word_pos: u128::from(r.rng_word_pos),
            })
            .collect(),
        replica_at: rungs.iter().map(|r| r.replica).collect(),
        exchange_rng_word_pos: u128::from(state.exchange_rng_word_pos),
        exchange_rounds: state.exchange_rounds,
        pairs: rungs
            .windows(2)
            .map(|w| PairStatistics {
                lower_k: w[0].temperature_k,
                upper_k: w[1].temperature_k,
                attempts: w[0].pair_attempts,
                accepted: w[0].pair_accepted,
            })
            .collect(),
    }
}

/// The state record of where `remd` stands.
pub(super) fn state_record(
    remd: &ReplicaExchange<ForceField>,
    seed: u64,
    production_start: u64,
    settings: &ChainSettings,
) -> Result<MdStateRecord, StageError> {
    let word = |pos: u128| {
        u64::try_from(pos).map_err(|_| {
            StageError::Failed(format!(
                "a random stream's position {pos} exceeds 2^64 words"
            ))
        })
    };
    let state = remd.state();
    let pairs = remd.pair_statistics();
    let rungs = state
        .slots
        .iter()
        .enumerate()
        .map(|(k, slot)| {
            Ok(RungState {
                temperature_k: remd.temperatures()[k],
                replica: state.replica_at[k],
                step: slot.step,
                rng_word_pos: word(slot.rng_word_pos)?,
                projection_pending: slot.projection_pending,
                positions_nm: slot.positions.iter().flatten().copied().collect(),
                velocities_nm_per_ps: slot.velocities.iter().flatten().copied().collect(),
                pair_attempts: pairs.get(k).map_or(0, |s| s.attempts),
                pair_accepted: pairs.get(k).map_or(0, |s| s.accepted),
            })
        })
        .collect::<Result<Vec<_>, StageError>>()?;
    Ok(MdStateRecord {
        rungs,
        seed,
        exchange_rng_word_pos: word(state.exchange_rng_word_pos)?,
        exchange_rounds: state.exchange_rounds,
        production_start_step: production_start,
        settings: settings.to_json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::md::replica_exchange::geometric_ladder;

    /// Settings continue the state they wrote, whatever their floats: the chignolin
    /// ladder's 379.6063891417688 K does not survive serde_json's default float parser
    /// bit for bit, and once made a chain refuse its own state.
    #[test]
    fn settings_continue_their_own_state() {
        let settings = ChainSettings {
            topology_blake3: "abc".into(),
            solvent: SolventModel::Obc2,
            temperatures_k: geometric_ladder(340.0, 500.0, 8),
            timestep_fs: 4.0,
            friction_per_ps: 1.0,
            constraints: ConstraintSet::Hbonds,
            exchange_every: 250,
            save_every: 2500,
            hydrogen_mass_amu: Some(3.024),
        };
        let state = MdStateRecord {
            rungs: vec![
                RungState {
                    temperature_k: 340.0,
                    replica: 0,
                    step: 1,
                    rng_word_pos: 0,
                    projection_pending: false,
                    positions_nm: vec![0.0; 3],
                    velocities_nm_per_ps: vec![0.0; 3],
                    pair_attempts: 0,
                    pair_accepted: 0,
                };
                8
            ],
            seed: 1,
            exchange_rng_word_pos: 0,
            exchange_rounds: 0,
            production_start_step: 0,
            settings: settings.to_json(),
        };
        settings.check_continues(&state, 1).unwrap();
        let other = ChainSettings {
            timestep_fs: 2.0,
            ..settings.clone()
        };
        let message = other.check_continues(&state, 1).unwrap_err().to_string();
        assert!(
            message.contains("timestep_fs") && !message.contains("ladder"),
            "{message}"
        );
    }
}
