//! The single Parquet configuration: every table cgloop writes goes through
//! [`encode_table`], so equal data with equal metadata gives equal bytes.
//!
//! Choices, pinned here and nowhere else: zstd level 3, `created_by` fixed to
//! [`CREATED_BY`] (it names the crate, not the machine), column statistics per chunk,
//! one row group up to [`MAX_ROW_GROUP_ROWS`] rows, key-value metadata sorted by key.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

/// The `created_by` field of every file we write.
pub const CREATED_BY: &str = "cgloop (parquet-rs 60.1.0)";
/// Rows per row group.
pub const MAX_ROW_GROUP_ROWS: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("unexpected table layout: {0}")]
    Schema(String),
}

fn writer_properties(metadata: &BTreeMap<String, String>) -> WriterProperties {
    let key_values = metadata
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_created_by(CREATED_BY.to_string())
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("3 is a valid zstd level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(key_values))
        .build()
}

/// Encodes a table with key-value metadata (provenance) into Parquet bytes.
pub fn encode_table(
    batch: &RecordBatch,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, ArtifactError> {
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(
        &mut bytes,
        batch.schema(),
        Some(writer_properties(metadata)),
    )?;
    writer.write(batch)?;
    writer.close()?;
    Ok(bytes)
}

/// Decodes Parquet bytes into one table (row groups concatenated) and its key-value
/// metadata.
pub fn decode_table(
    bytes: Bytes,
) -> Result<(RecordBatch, BTreeMap<String, String>), ArtifactError> {
    // The parquet crate panics on some corrupt files (negative column offsets among
    // them, found by tests/fuzz_inputs.rs): a truncated or foreign file in a store is an
    // error, not a crash.
    GUARDED.with(|g| g.set(true));
    let result = std::panic::catch_unwind(|| decode_unguarded(bytes));
    GUARDED.with(|g| g.set(false));
    result.unwrap_or_else(|_| {
        Err(ArtifactError::Schema(
            "not a readable Parquet file (corrupt or truncated)".into(),
        ))
    })
}

thread_local! {
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is decoding Parquet, where a panic of the parquet crate becomes
/// an error: a panic hook should stay quiet then.
pub fn decoding_guarded() -> bool {
    GUARDED.with(|g| g.get())
}

fn decode_unguarded(
    bytes: Bytes,
) -> Result<(RecordBatch, BTreeMap<String, String>), ArtifactError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    // The key-value metadata is returned on its own, not as schema metadata.
    let schema = Arc::new(
        builder
            .schema()
            .as_ref()
            .clone()
            .with_metadata(std::collections::HashMap::new()),
    );
    let reader = builder.build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let batch = arrow_select::concat::concat_batches(&schema, &batches)?;
    Ok((batch, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array};
    use arrow_schema::{DataType, Field, Schema};

    fn table() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("frame", DataType::Int64, false),
                Field::new("energy", DataType::Float64, false),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![0, 1, 2])),
                Arc::new(Float64Array::from(vec![-1.5, 2.0, f64::EPSILON])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn equal_data_gives_equal_bytes_and_round_trips() {
        let meta = BTreeMap::from([("cgloop.key".to_string(), "abc".to_string())]);
        let a = encode_table(&table(), &meta).unwrap();
        let b = encode_table(&table(), &meta).unwrap();
        assert_eq!(a, b);
        let (back, back_meta) = decode_table(Bytes::from(a)).unwrap();
        assert_eq!(back, table());
        assert_eq!(back_meta.get("cgloop.key").map(String::as_str), Some("abc"));
    }
}
