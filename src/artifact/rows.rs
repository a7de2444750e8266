//! Tables from rows: a stage declares its table as a struct, one field per column, and
//! gets the Arrow schema, the table and the reading back from it, by serde_arrow.
//!
//! The schema is traced from the type: `f64` is float64, `i64` int64, `i32` int32,
//! `bool` boolean, `String` utf8, `Vec<f64>` list<float64> (items named `item`, not
//! nullable, as [`super::kind::float64_list`]); no column is nullable unless the field is
//! an `Option`. A row type's schema is what its artifact kind declares
//! ([`super::kind::ArtifactKind::table`] takes `schema_of::<Row>`), so the executor
//! checks every table a stage returns against it, and equal rows give equal bytes.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, FieldRef, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_arrow::schema::{SchemaLike, TracingOptions};

use super::ArtifactError;

/// The Arrow schema of a row type.
///
/// Panics if the type cannot be traced (a map, an enum with data): a bug in the row
/// type, which every kind's test catches.
pub fn schema_of<R: Serialize + DeserializeOwned>() -> Schema {
    Schema::new(fields_of::<R>())
}

fn fields_of<R: Serialize + DeserializeOwned>() -> Vec<FieldRef> {
    let options = TracingOptions::default()
        .strings_as_large_utf8(false)
        .sequence_as_large_list(false)
        .enums_without_data_as_strings(true);
    let traced = Vec::<FieldRef>::from_type::<R>(options).unwrap_or_else(|e| {
        panic!(
            "row type {} has no Arrow schema: {e}",
            std::any::type_name::<R>()
        )
    });
    traced
        .into_iter()
        .map(|f| Arc::new(normalized(&f)))
        .collect()
}

/// Lists as the project writes them: items named `item`, nullable only when the
/// element type is an `Option`.
fn normalized(field: &Field) -> Field {
    match field.data_type() {
        DataType::List(item) => {
            let item = normalized(item);
            let item = Field::new("item", item.data_type().clone(), item.is_nullable());
            field.clone().with_data_type(DataType::List(Arc::new(item)))
        }
        _ => field.clone(),
    }
}

/// The table of `rows`, in the schema of their type.
pub fn table<R: Serialize + DeserializeOwned>(rows: &[R]) -> RecordBatch {
    let fields = fields_of::<R>();
    serde_arrow::to_record_batch(&fields, &rows).unwrap_or_else(|e| {
        panic!(
            "rows of {} do not fit their own schema: {e}",
            std::any::type_name::<R>()
        )
    })
}

/// The rows of a table written from `R` (columns are found by name; extra columns are
/// ignored).
pub fn rows<R: Serialize + DeserializeOwned>(batch: &RecordBatch) -> Result<Vec<R>, ArtifactError> {
    serde_arrow::from_record_batch(batch).map_err(|e| {
        ArtifactError::Schema(format!("reading {} rows: {e}", std::any::type_name::<R>()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Float64Type;
    use arrow_array::{BooleanArray, Float64Array, Int64Array, ListArray, StringArray};
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Example {
        frame: i64,
        name: String,
        value: f64,
        best: bool,
        values: Vec<f64>,
    }

    fn example() -> Vec<Example> {
        vec![
            Example {
                frame: 0,
                name: "a".into(),
                value: 1.5,
                best: true,
                values: vec![1.0, 2.0],
            },
            Example {
                frame: 1,
                name: "b".into(),
                value: f64::NAN,
                best: false,
                values: vec![],
            },
        ]
    }

    #[test]
    fn traced_schema_is_the_hand_written_one() {
        let expected = Schema::new(vec![
            Field::new("frame", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
            Field::new("best", DataType::Boolean, false),
            Field::new("values", super::super::kind::float64_list(), false),
        ]);
        assert_eq!(schema_of::<Example>(), expected);
    }

    #[test]
    fn table_equals_the_hand_built_one_and_reads_back() {
        let built = table(&example());
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.0)]),
            Some(vec![]),
        ]);
        let list = ListArray::new(
            Arc::new(Field::new("item", DataType::Float64, false)),
            list.offsets().clone(),
            list.values().clone(),
            None,
        );
        let by_hand = RecordBatch::try_new(
            Arc::new(schema_of::<Example>()),
            vec![
                Arc::new(Int64Array::from(vec![0, 1])),
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Float64Array::from(vec![1.5, f64::NAN])),
                Arc::new(BooleanArray::from(vec![true, false])),
                Arc::new(list),
            ],
        )
        .unwrap();
        assert_eq!(built, by_hand);
        let back: Vec<Example> = rows(&built).unwrap();
        assert_eq!(back[0], example()[0]);
        assert!(back[1].value.is_nan());
    }

    #[test]
    fn reading_the_wrong_table_is_an_error() {
        #[derive(Serialize, Deserialize)]
        struct Other {
            missing: f64,
        }
        let err = rows::<Other>(&table(&example())).err().unwrap();
        assert!(err.to_string().contains("Other"), "{err}");
    }
}
