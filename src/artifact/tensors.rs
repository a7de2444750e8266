//! Model parameters as a table: one row per tensor, sorted by name.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `name` | utf8 | the parameter's path, e.g. `encoder.layer0.weight` |
//! | `shape` | list<int64> | its dimensions |
//! | `values` | list<float64> | its entries in row-major order |
//!
//! Sorting by name makes the bytes independent of the order a model lists its
//! parameters in (candle's `VarMap` is a `HashMap`).

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, ListBuilder, StringBuilder};
use arrow_array::{Array, Float64Array, Int64Array, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::ArtifactError;

/// A named tensor: shape and row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new(
            "shape",
            DataType::List(Field::new("item", DataType::Int64, false).into()),
            false,
        ),
        Field::new("values", super::kind::float64_list(), false),
    ])
}

/// Encodes tensors as a table, sorted by name. Duplicate names are a caller bug.
pub fn to_table(tensors: &[NamedTensor]) -> RecordBatch {
    let mut sorted: Vec<&NamedTensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut names = StringBuilder::new();
    let mut shapes = ListBuilder::new(Int64Builder::new()).with_field(Field::new(
        "item",
        DataType::Int64,
        false,
    ));
    let mut values = ListBuilder::new(Float64Builder::new()).with_field(Field::new(
        "item",
        DataType::Float64,
        false,
    ));
    for t in sorted {
        assert_eq!(
            t.shape.iter().product::<usize>(),
            t.values.len(),
            "tensor {} has a shape that does not match its values",
            t.name
        );
        names.append_value(&t.name);
        shapes
            .values()
            .append_slice(&t.shape.iter().map(|&d| d as i64).collect::<Vec<_>>());
        shapes.append(true);
        values.values().append_slice(&t.values);
        values.append(true);
    }
    RecordBatch::try_new(
        Arc::new(schema()),
        vec![
            Arc::new(names.finish()),
            Arc::new(shapes.finish()),
            Arc::new(values.finish()),
        ],
    )
    .expect("columns match the tensor schema")
}

/// Decodes a table written by [`to_table`].
pub fn from_table(batch: &RecordBatch) -> Result<Vec<NamedTensor>, ArtifactError> {
    let bad = |what: &str| ArtifactError::Schema(format!("model parameters: {what}"));
    let names = batch
        .column_by_name("name")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| bad("no utf8 column `name`"))?;
    let shapes = batch
        .column_by_name("shape")
        .and_then(|c| c.as_any().downcast_ref::<ListArray>())
        .ok_or_else(|| bad("no list column `shape`"))?;
    let values = batch
        .column_by_name("values")
        .and_then(|c| c.as_any().downcast_ref::<ListArray>())
        .ok_or_else(|| bad("no list column `values`"))?;
    (0..batch.num_rows())
        .map(|row| {
            let shape = shapes.value(row);
            let shape = shape
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| bad("`shape` is not list<int64>"))?;
            let vals = values.value(row);
            let vals = vals
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| bad("`values` is not list<float64>"))?;
            Ok(NamedTensor {
                name: names.value(row).to_string(),
                shape: shape.values().iter().map(|&d| d as usize).collect(),
                values: vals.values().to_vec(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip_sorted_by_name() {
        let tensors = vec![
            NamedTensor {
                name: "b.weight".into(),
                shape: vec![2, 2],
                values: vec![1.0, -2.0, 3.5, 0.25],
            },
            NamedTensor {
                name: "a.bias".into(),
                shape: vec![2],
                values: vec![0.5, f64::MIN_POSITIVE],
            },
        ];
        let back = from_table(&to_table(&tensors)).unwrap();
        assert_eq!(back[0], tensors[1]);
        assert_eq!(back[1], tensors[0]);
    }
}
