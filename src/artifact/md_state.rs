//! Where an MD run stopped, as an artifact: `fg_sample` writes it, and an `fg_sample`
//! node given it as its `state` input goes on from there, so that N chained nodes give
//! the frames of one unbroken run bit for bit. One row per rung of the temperature
//! ladder (one row without replica exchange):
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `temperature_index` | int32 | rung (0 = lowest) |
//! | `temperature_k` | float64 | the rung's thermostat temperature, K |
//! | `replica` | int32 | the walker at this rung |
//! | `step` | int64 | integration steps taken (equilibration included; the same on every row) |
//! | `rng_word_pos` | uint64 | offset of the rung's thermostat random stream, in 32-bit words |
//! | `projection_pending` | bool | the velocities await their constraint projection (the next step does it) |
//! | `positions_nm` | list<float64> | 3N coordinates, atom-major, nm |
//! | `velocities_nm_per_ps` | list<float64> | 3N velocity components, nm/ps |
//! | `pair_attempts` | int64 | exchange attempts between this rung and the next since the run began (0 on the top rung) |
//! | `pair_accepted` | int64 | of which accepted |
//! | `seed` | uint64 | seed of the run's random streams (rung k: stream k; exchanges: the last stream) |
//! | `exchange_rng_word_pos` | uint64 | offset of the exchange stream, in 32-bit words |
//! | `exchange_rounds` | int64 | exchange rounds attempted (their parity picks the pairs) |
//! | `production_start_step` | int64 | the step where the run's production (saved frames) began |
//! | `settings` | utf8 | JSON of the settings a continuation must share (force field, ladder, step, schedule) |
//!
//! The last five columns describe the whole run and repeat on every row.

use std::sync::Arc;

use arrow_array::{
    Array, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    UInt64Array,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Schema};

use super::ArtifactError;
use super::kind::{ArtifactKind, float64_list};
use super::trajectory::column;

pub const MD_STATE: ArtifactKind = ArtifactKind::table(
    "md_state",
    schema,
    "where an MD run stopped: positions, velocities, random-stream positions and replica \
     exchange bookkeeping per rung, to continue it bit for bit",
);

pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("temperature_index", DataType::Int32, false),
        Field::new("temperature_k", DataType::Float64, false),
        Field::new("replica", DataType::Int32, false),
        Field::new("step", DataType::Int64, false),
        Field::new("rng_word_pos", DataType::UInt64, false),
        Field::new("projection_pending", DataType::Boolean, false),
        Field::new("positions_nm", float64_list(), false),
        Field::new("velocities_nm_per_ps", float64_list(), false),
        Field::new("pair_attempts", DataType::Int64, false),
        Field::new("pair_accepted", DataType::Int64, false),
        Field::new("seed", DataType::UInt64, false),
        Field::new("exchange_rng_word_pos", DataType::UInt64, false),
        Field::new("exchange_rounds", DataType::Int64, false),
        Field::new("production_start_step", DataType::Int64, false),
        Field::new("settings", DataType::Utf8, false),
    ])
}

/// One rung of the ladder.
#[derive(Clone, Debug, PartialEq)]
pub struct RungState {
    pub temperature_k: f64,
    pub replica: usize,
    pub step: u64,
    pub rng_word_pos: u64,
    pub projection_pending: bool,
    /// 3N values, nm.
    pub positions_nm: Vec<f64>,
    /// 3N values, nm/ps.
    pub velocities_nm_per_ps: Vec<f64>,
    /// Exchanges with the next rung up (0 on the top rung).
    pub pair_attempts: u64,
    pub pair_accepted: u64,
}

/// The state of a run: its rungs and what concerns all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct MdStateRecord {
    pub rungs: Vec<RungState>,
    pub seed: u64,
    pub exchange_rng_word_pos: u64,
    pub exchange_rounds: u64,
    pub production_start_step: u64,
    /// JSON, compared by the stage that continues the run.
    pub settings: String,
}

impl MdStateRecord {
    pub fn to_table(&self) -> RecordBatch {
        let n = self.rungs.len();
        let list = |values: Vec<f64>, width: usize| -> Arc<dyn Array> {
            Arc::new(ListArray::new(
                Field::new("item", DataType::Float64, false).into(),
                OffsetBuffer::from_lengths(std::iter::repeat_n(width, n)),
                Arc::new(Float64Array::from(values)),
                None,
            ))
        };
        let width = self.rungs.first().map_or(0, |r| r.positions_nm.len());
        let flat = |get: fn(&RungState) -> &Vec<f64>| -> Vec<f64> {
            self.rungs
                .iter()
                .flat_map(|r| get(r).iter().copied())
                .collect()
        };
        let i64s = |get: fn(&RungState) -> u64| -> Arc<dyn Array> {
            Arc::new(Int64Array::from_iter_values(
                self.rungs.iter().map(|r| get(r) as i64),
            ))
        };
        let repeat_u64 = |v: u64| Arc::new(UInt64Array::from(vec![v; n])) as Arc<dyn Array>;
        let repeat_i64 = |v: u64| Arc::new(Int64Array::from(vec![v as i64; n])) as Arc<dyn Array>;
        RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(Int32Array::from_iter_values(0..n as i32)),
                Arc::new(Float64Array::from_iter_values(
                    self.rungs.iter().map(|r| r.temperature_k),
                )),
                Arc::new(Int32Array::from_iter_values(
                    self.rungs.iter().map(|r| r.replica as i32),
                )),
                i64s(|r| r.step),
                Arc::new(UInt64Array::from_iter_values(
                    self.rungs.iter().map(|r| r.rng_word_pos),
                )),
                Arc::new(BooleanArray::from_iter(
                    self.rungs.iter().map(|r| Some(r.projection_pending)),
                )),
                list(flat(|r| &r.positions_nm), width),
                list(flat(|r| &r.velocities_nm_per_ps), width),
                i64s(|r| r.pair_attempts),
                i64s(|r| r.pair_accepted),
                repeat_u64(self.seed),
                repeat_u64(self.exchange_rng_word_pos),
                repeat_i64(self.exchange_rounds),
                repeat_i64(self.production_start_step),
                Arc::new(StringArray::from(vec![self.settings.as_str(); n])),
            ],
        )
        .expect("columns match the md_state schema")
    }

    pub fn from_table(batch: &RecordBatch) -> Result<Self, ArtifactError> {
        let bad = |what: String| ArtifactError::Schema(format!("md_state: {what}"));
        let n = batch.num_rows();
        if n == 0 {
            return Err(bad("no rows".into()));
        }
        let get = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| bad(format!("no column `{name}`")))
        };
        let u64s = |name: &str| -> Result<Vec<u64>, ArtifactError> {
            Ok(column::<UInt64Array>(batch, name)
                .ok_or_else(|| bad(format!("no uint64 column `{name}`")))?
                .values()
                .to_vec())
        };
        let counts = |name: &str| -> Result<Vec<u64>, ArtifactError> {
            let values = column::<Int64Array>(batch, name)
                .ok_or_else(|| bad(format!("no int64 column `{name}`")))?;
            values
                .values()
                .iter()
                .map(|&v| u64::try_from(v).map_err(|_| bad(format!("`{name}` is negative: {v}"))))
                .collect()
        };
        let lists = |name: &str| -> Result<Vec<Vec<f64>>, ArtifactError> {
            let list = column::<ListArray>(batch, name)
                .ok_or_else(|| bad(format!("no list column `{name}`")))?;
            let values = list
                .values()
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| bad(format!("`{name}` is not list<float64>")))?;
            Ok(list
                .value_offsets()
                .windows(2)
                .map(|w| values.values()[w[0] as usize..w[1] as usize].to_vec())
                .collect())
        };
        let temperatures = column::<Float64Array>(batch, "temperature_k")
            .ok_or_else(|| bad("no float64 column `temperature_k`".into()))?;
        let replicas = column::<Int32Array>(batch, "replica")
            .ok_or_else(|| bad("no int32 column `replica`".into()))?;
        let pending = get("projection_pending")?
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| bad("`projection_pending` is not bool".into()))?;
        let settings = column::<StringArray>(batch, "settings")
            .ok_or_else(|| bad("no utf8 column `settings`".into()))?;
        let (steps, words) = (counts("step")?, u64s("rng_word_pos")?);
        let (attempts, accepted) = (counts("pair_attempts")?, counts("pair_accepted")?);
        let (positions, velocities) = (lists("positions_nm")?, lists("velocities_nm_per_ps")?);
        let mut rungs = Vec::with_capacity(n);
        for i in 0..n {
            let replica = usize::try_from(replicas.value(i))
                .map_err(|_| bad(format!("row {i}: negative replica")))?;
            if positions[i].len() != velocities[i].len()
                || positions[i].len() != positions[0].len()
                || positions[i].len() % 3 != 0
            {
                return Err(bad(format!(
                    "row {i}: {} positions and {} velocities (3N each, on every row)",
                    positions[i].len(),
                    velocities[i].len()
                )));
            }
            rungs.push(RungState {
                temperature_k: temperatures.value(i),
                replica,
                step: steps[i],
                rng_word_pos: words[i],
                projection_pending: pending.value(i),
                positions_nm: positions[i].clone(),
                velocities_nm_per_ps: velocities[i].clone(),
                pair_attempts: attempts[i],
                pair_accepted: accepted[i],
            });
        }
        Ok(MdStateRecord {
            rungs,
            seed: u64s("seed")?[0],
            exchange_rng_word_pos: u64s("exchange_rng_word_pos")?[0],
            exchange_rounds: counts("exchange_rounds")?[0],
            production_start_step: counts("production_start_step")?[0],
            settings: settings.value(0).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_arrow() {
        let rung = |k: usize| RungState {
            temperature_k: 300.0 * (1.0 + k as f64),
            replica: 1 - k,
            step: 1234,
            rng_word_pos: 99 + k as u64,
            projection_pending: k == 0,
            positions_nm: vec![0.1, 0.2, -0.3, k as f64, 1.0, 2.0],
            velocities_nm_per_ps: vec![1.5, -2.5, 0.0, 0.25, 1e-9, k as f64],
            pair_attempts: (1 - k as u64) * 7,
            pair_accepted: (1 - k as u64) * 3,
        };
        let state = MdStateRecord {
            rungs: vec![rung(0), rung(1)],
            seed: u64::MAX - 5,
            exchange_rng_word_pos: 1 << 40,
            exchange_rounds: 12,
            production_start_step: 500,
            settings: r#"{"timestep_fs":2.0}"#.into(),
        };
        assert_eq!(MdStateRecord::from_table(&state.to_table()).unwrap(), state);
    }
}
