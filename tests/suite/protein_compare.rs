//! `protein_compare` on constructed `frames` tables: a sample drawn like the reference
//! sits near the noise floor, a shifted one far above it, and weights count: frames of
//! weight 0 do not move the divergence, the same frames at weight 1 do.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, ListBuilder};
use arrow_array::{Array, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use cgloop::artifact::Artifact;
use cgloop::random::{normal, stream};
use cgloop::stages::protein_compare::{ProteinCompare, ProteinCompareParams};
use cgloop::stages::{Context, NoProgress, Outputs, Stage, StageError};

use crate::common::table_inputs;

/// A `frames` table: `rows` frames whose TICs and 3 distances are normal around `shift`
/// (TICs) and 1 + shift / 10 nm (distances), then `extra` frames far away (TICs at 8),
/// the extra ones at weight `extra_weight`.
fn frames(rows: usize, shift: f64, extra: usize, extra_weight: f64, seed: u64) -> RecordBatch {
    let mut rng = stream(seed, 0);
    let mut weight = Vec::new();
    let (mut tic1, mut tic2) = (Vec::new(), Vec::new());
    let mut distances = ListBuilder::new(Float64Builder::new());
    for k in 0..rows + extra {
        let far = k >= rows;
        let centre = if far { 8.0 } else { shift };
        weight.push(if far { extra_weight } else { 1.0 });
        tic1.push(centre + normal(&mut rng));
        tic2.push(centre + normal(&mut rng));
        for _ in 0..3 {
            distances
                .values()
                .append_value(1.0 + centre / 10.0 + 0.05 * normal(&mut rng));
        }
        distances.append(true);
    }
    let list = distances.finish();
    let f = |name: &str| Field::new(name, DataType::Float64, false);
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            f("weight"),
            f("tic1"),
            f("tic2"),
            Field::new("ca_distances_nm", list.data_type().clone(), false),
        ])),
        vec![
            Arc::new(Float64Array::from(weight)),
            Arc::new(Float64Array::from(tic1)),
            Arc::new(Float64Array::from(tic2)),
            Arc::new(list),
        ],
    )
    .unwrap()
}

fn run(reference: RecordBatch, sample: RecordBatch) -> Result<Outputs, StageError> {
    let inputs = table_inputs(vec![("reference", reference), ("sample", sample)]);
    let mut ctx = Context::new([7; 32], &NoProgress);
    ProteinCompare::run(&ProteinCompareParams::default(), &inputs, &mut ctx)
}

/// (TIC JS, TIC noise floor, mean distance JS, sample ESS).
fn summary(out: &Outputs) -> (f64, f64, f64, f64) {
    let Some(Artifact::Table(t)) = out.get("summary") else {
        panic!("no summary")
    };
    let col = |name: &str| {
        t.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .value(0)
    };
    (
        col("tica_js"),
        col("tica_noise_floor"),
        col("mean_distance_js"),
        col("sample_ess"),
    )
}

#[test]
fn a_faithful_sample_sits_near_the_floor_and_a_shifted_one_far_above() {
    let reference = || frames(4000, 0.0, 0, 0.0, 1);
    let (same, floor, same_d, _) =
        summary(&run(reference(), frames(4000, 0.0, 0, 0.0, 2)).unwrap());
    let (shifted, _, shifted_d, _) =
        summary(&run(reference(), frames(4000, 1.0, 0, 0.0, 3)).unwrap());
    assert!(
        same < 3.0 * floor + 0.01,
        "faithful: {same} against floor {floor}"
    );
    assert!(shifted > 5.0 * same, "shifted {shifted}, faithful {same}");
    assert!(
        shifted_d > 5.0 * same_d,
        "distances: shifted {shifted_d}, faithful {same_d}"
    );
    let Some(Artifact::Table(d)) = run(reference(), frames(10, 0.0, 0, 0.0, 4))
        .unwrap()
        .get("divergences")
        .cloned()
    else {
        panic!("no divergences")
    };
    let names = d.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    let names: Vec<&str> = (0..names.len()).map(|i| names.value(i)).collect();
    assert_eq!(names, ["tic1 x tic2", "d(0,1)", "d(0,2)", "d(1,2)"]);
}

#[test]
fn weights_decide_what_the_sample_is() {
    let reference = || frames(4000, 0.0, 0, 0.0, 1);
    let (plain, ..) = summary(&run(reference(), frames(4000, 0.0, 0, 0.0, 2)).unwrap());
    let (zero, _, _, ess_zero) =
        summary(&run(reference(), frames(4000, 0.0, 1000, 0.0, 2)).unwrap());
    let (one, _, _, ess_one) = summary(&run(reference(), frames(4000, 0.0, 1000, 1.0, 2)).unwrap());
    // The far frames change the span of the bins, not the weighted histogram's shape
    // much: at weight 0 the divergence stays near the plain sample's.
    assert!(
        zero < 2.0 * plain + 0.01,
        "weight 0: {zero}, without them {plain}"
    );
    assert!(one > zero + 0.05, "weight 1: {one}, weight 0: {zero}");
    assert!((ess_zero - 4000.0).abs() < 1e-6 && (ess_one - 5000.0).abs() < 1e-6);
}

#[test]
fn frames_without_distances_or_with_negative_weights_are_refused() {
    let good = frames(20, 0.0, 0, 0.0, 1);
    let mut fields = good.schema().fields().to_vec();
    fields.pop();
    let columns = good.columns()[..3].to_vec();
    let no_distances = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let err = run(good.clone(), no_distances).unwrap_err().to_string();
    assert!(err.contains("ca_distances_nm"), "{err}");
    let negative = frames(20, 0.0, 5, -1.0, 1);
    let err = run(good, negative).unwrap_err().to_string();
    assert!(err.contains("weights"), "{err}");
}
