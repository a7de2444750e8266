//! Trajectories: frames of an MD (or CG) simulation, one row per saved frame.
//!
//! | column | type | unit / meaning |
//! |---|---|---|
//! | `frame` | int64 | row number |
//! | `temperature_index` | int32 | rung of the temperature ladder (0 = lowest; 0 without replica exchange) |
//! | `replica` | int32 | which walker was at that temperature when the frame was saved |
//! | `temperature_k` | float64 | thermostat temperature, K |
//! | `step` | int64 | integration step |
//! | `time_ps` | float64 | simulated time, ps |
//! | `positions_nm` | list<float64> | 3N coordinates, atom-major (x0, y0, z0, x1, ...), nm |
//! | `forces_kj_per_mol_nm` | list<float64> | 3N force components, kJ/mol/nm |
//! | `potential_kj_per_mol` | float64 | potential energy, kJ/mol |
//! | `kinetic_temperature_k` | float64 | instantaneous temperature from the kinetic energy, K; NaN means unknown |
//!
//! Frames brought in by `import_trajectory` (positions from a PDB, DCD or XTC file, energies
//! and forces recomputed) have no velocities: their `kinetic_temperature_k` is NaN, which
//! in this column always means "unknown", never a failed computation. Their `step` is the
//! frame's index in the imported file, `time_ps` that index times the stage's
//! `timestep_ps`, and `temperature_k` the temperature the frames are declared to sample.
//! Averages over this column must skip NaN (DuckDB: `WHERE NOT isnan(kinetic_temperature_k)`).
//!
//! Select one temperature with e.g. DuckDB:
//! `SELECT * FROM 'trajectory.parquet' WHERE temperature_index = 0`.

use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Schema};

use super::ArtifactError;
use super::kind::{ArtifactKind, float64_list};

pub const TRAJECTORY: ArtifactKind = ArtifactKind::table(
    "trajectory",
    schema,
    "frames: temperature, time, positions (nm), forces (kJ/mol/nm), energies",
);

pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("frame", DataType::Int64, false),
        Field::new("temperature_index", DataType::Int32, false),
        Field::new("replica", DataType::Int32, false),
        Field::new("temperature_k", DataType::Float64, false),
        Field::new("step", DataType::Int64, false),
        Field::new("time_ps", DataType::Float64, false),
        Field::new("positions_nm", float64_list(), false),
        Field::new("forces_kj_per_mol_nm", float64_list(), false),
        Field::new("potential_kj_per_mol", DataType::Float64, false),
        Field::new("kinetic_temperature_k", DataType::Float64, false),
    ])
}

/// A trajectory in memory, column by column; positions and forces are flat, 3N values
/// per frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trajectory {
    pub n_atoms: usize,
    pub temperature_index: Vec<i32>,
    pub replica: Vec<i32>,
    pub temperature_k: Vec<f64>,
    pub step: Vec<i64>,
    pub time_ps: Vec<f64>,
    pub positions_nm: Vec<f64>,
    pub forces: Vec<f64>,
    pub potential: Vec<f64>,
    pub kinetic_temperature_k: Vec<f64>,
}

/// One frame to append.
pub struct FrameRecord<'a> {
    pub temperature_index: i32,
    pub replica: i32,
    pub temperature_k: f64,
    pub step: i64,
    pub time_ps: f64,
    pub positions_nm: &'a [[f64; 3]],
    pub forces: &'a [[f64; 3]],
    pub potential: f64,
    pub kinetic_temperature_k: f64,
}

impl Trajectory {
    pub fn new(n_atoms: usize) -> Self {
        Trajectory {
            n_atoms,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.step.len()
    }

    pub fn is_empty(&self) -> bool {
        self.step.is_empty()
    }

    pub fn push(&mut self, f: FrameRecord<'_>) {
        assert_eq!(f.positions_nm.len(), self.n_atoms);
        assert_eq!(f.forces.len(), self.n_atoms);
        self.temperature_index.push(f.temperature_index);
        self.replica.push(f.replica);
        self.temperature_k.push(f.temperature_k);
        self.step.push(f.step);
        self.time_ps.push(f.time_ps);
        self.positions_nm.extend(f.positions_nm.iter().flatten());
        self.forces.extend(f.forces.iter().flatten());
        self.potential.push(f.potential);
        self.kinetic_temperature_k.push(f.kinetic_temperature_k);
    }

    /// Positions of frame `i` as 3N values.
    pub fn positions(&self, i: usize) -> &[f64] {
        &self.positions_nm[3 * self.n_atoms * i..3 * self.n_atoms * (i + 1)]
    }

    pub fn frame_forces(&self, i: usize) -> &[f64] {
        &self.forces[3 * self.n_atoms * i..3 * self.n_atoms * (i + 1)]
    }

    /// Appends every frame of `other` (same atoms). Panics if the atom counts differ.
    pub fn append(&mut self, other: &Trajectory) {
        assert_eq!(
            other.n_atoms, self.n_atoms,
            "appending frames of another system"
        );
        self.temperature_index
            .extend_from_slice(&other.temperature_index);
        self.replica.extend_from_slice(&other.replica);
        self.temperature_k.extend_from_slice(&other.temperature_k);
        self.step.extend_from_slice(&other.step);
        self.time_ps.extend_from_slice(&other.time_ps);
        self.positions_nm.extend_from_slice(&other.positions_nm);
        self.forces.extend_from_slice(&other.forces);
        self.potential.extend_from_slice(&other.potential);
        self.kinetic_temperature_k
            .extend_from_slice(&other.kinetic_temperature_k);
    }

    /// Frames in the order given (e.g. one temperature).
    pub fn select(&self, rows: &[usize]) -> Trajectory {
        let width = 3 * self.n_atoms;
        let mut out = Trajectory::new(self.n_atoms);
        for &i in rows {
            out.temperature_index.push(self.temperature_index[i]);
            out.replica.push(self.replica[i]);
            out.temperature_k.push(self.temperature_k[i]);
            out.step.push(self.step[i]);
            out.time_ps.push(self.time_ps[i]);
            out.positions_nm
                .extend_from_slice(&self.positions_nm[width * i..width * (i + 1)]);
            out.forces
                .extend_from_slice(&self.forces[width * i..width * (i + 1)]);
            out.potential.push(self.potential[i]);
            out.kinetic_temperature_k
                .push(self.kinetic_temperature_k[i]);
        }
        out
    }

    pub fn to_table(&self) -> RecordBatch {
        let n = self.len();
        let width = 3 * self.n_atoms;
        let list = |values: &[f64]| -> Arc<dyn Array> {
            Arc::new(ListArray::new(
                Field::new("item", DataType::Float64, false).into(),
                OffsetBuffer::from_lengths(std::iter::repeat_n(width, n)),
                Arc::new(Float64Array::from(values.to_vec())),
                None,
            ))
        };
        RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(Int64Array::from_iter_values(0..n as i64)),
                Arc::new(Int32Array::from(self.temperature_index.clone())),
                Arc::new(Int32Array::from(self.replica.clone())),
                Arc::new(Float64Array::from(self.temperature_k.clone())),
                Arc::new(Int64Array::from(self.step.clone())),
                Arc::new(Float64Array::from(self.time_ps.clone())),
                list(&self.positions_nm),
                list(&self.forces),
                Arc::new(Float64Array::from(self.potential.clone())),
                Arc::new(Float64Array::from(self.kinetic_temperature_k.clone())),
            ],
        )
        .expect("columns match the trajectory schema")
    }

    pub fn from_table(batch: &RecordBatch) -> Result<Trajectory, ArtifactError> {
        let bad = |what: String| ArtifactError::Schema(format!("trajectory: {what}"));
        let f64s = |name: &str| -> Result<Vec<f64>, ArtifactError> {
            Ok(column::<Float64Array>(batch, name)
                .ok_or_else(|| bad(format!("no float64 column `{name}`")))?
                .values()
                .to_vec())
        };
        let i32s = |name: &str| -> Result<Vec<i32>, ArtifactError> {
            Ok(column::<Int32Array>(batch, name)
                .ok_or_else(|| bad(format!("no int32 column `{name}`")))?
                .values()
                .to_vec())
        };
        let flat = |name: &str| -> Result<(Vec<f64>, usize), ArtifactError> {
            let list = column::<ListArray>(batch, name)
                .ok_or_else(|| bad(format!("no list column `{name}`")))?;
            let offsets = list.value_offsets();
            let width = if list.is_empty() {
                0
            } else {
                (offsets[1] - offsets[0]) as usize
            };
            if offsets.windows(2).any(|w| (w[1] - w[0]) as usize != width) {
                return Err(bad(format!("rows of `{name}` differ in length")));
            }
            let values = list
                .values()
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| bad(format!("`{name}` is not list<float64>")))?;
            let start = offsets[0] as usize;
            let end = *offsets.last().unwrap_or(&0) as usize;
            Ok((values.values()[start..end].to_vec(), width))
        };
        let (positions_nm, width) = flat("positions_nm")?;
        let (forces, _) = flat("forces_kj_per_mol_nm")?;
        if width % 3 != 0 {
            return Err(bad(format!("{width} coordinates per frame is not 3N")));
        }
        Ok(Trajectory {
            n_atoms: width / 3,
            temperature_index: i32s("temperature_index")?,
            replica: i32s("replica")?,
            temperature_k: f64s("temperature_k")?,
            step: column::<Int64Array>(batch, "step")
                .ok_or_else(|| bad("no int64 column `step`".into()))?
                .values()
                .to_vec(),
            time_ps: f64s("time_ps")?,
            positions_nm,
            forces,
            potential: f64s("potential_kj_per_mol")?,
            kinetic_temperature_k: f64s("kinetic_temperature_k")?,
        })
    }
}

pub(crate) fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Option<&'a T> {
    batch.column_by_name(name)?.as_any().downcast_ref::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trajectories_round_trip_through_arrow() {
        let mut t = Trajectory::new(2);
        for k in 0..3 {
            let x = k as f64;
            t.push(FrameRecord {
                temperature_index: k % 2,
                replica: 1 - k % 2,
                temperature_k: 300.0 + x,
                step: 10 * k as i64,
                time_ps: 0.02 * x,
                positions_nm: &[[x, 1.0, 2.0], [3.0, 4.0, -x]],
                forces: &[[0.5, x, 0.0], [1.0, 1.0, 1.0]],
                potential: -x,
                kinetic_temperature_k: 290.0,
            });
        }
        let back = Trajectory::from_table(&t.to_table()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.positions(2), &[2.0, 1.0, 2.0, 3.0, 4.0, -2.0]);
        let sub = t.select(&[2, 0]);
        assert_eq!(sub.step, vec![20, 0]);
        assert_eq!(sub.frame_forces(0), t.frame_forces(2));
    }
}
