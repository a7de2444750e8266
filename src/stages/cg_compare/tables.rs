//! `cg_compare`'s output tables (their columns are in the stage's module doc) and its
//! figure.

use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::analysis::basin::Basin;
use crate::analysis::free_energy_error::FreeEnergyError;
use crate::analysis::line_plot::{Figure, Panel, Series};

use super::observables::*;

/// Columns of the `divergences` output.
pub fn divergences_schema() -> Schema {
    let f64_field = |name: &str| Field::new(name, DataType::Float64, false);
    Schema::new(vec![
        Field::new("observable", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        f64_field("js_divergence"),
        f64_field("js_noise_floor"),
        f64_field("reference_mean"),
        f64_field("reference_std"),
        f64_field("sample_mean"),
        f64_field("sample_std"),
        Field::new("reference_frames", DataType::Int64, false),
        Field::new("sample_frames", DataType::Int64, false),
    ])
}

/// Columns of the `histograms` output.
pub fn histograms_schema() -> Schema {
    Schema::new(vec![
        Field::new("observable", DataType::Utf8, false),
        Field::new("bin_centre", DataType::Float64, false),
        Field::new("reference_density", DataType::Float64, false),
        Field::new("sample_density", DataType::Float64, false),
    ])
}

pub(super) fn divergences_table(
    c: &[Comparison],
    reference_frames: i64,
    sample_frames: i64,
) -> RecordBatch {
    let column =
        |f: fn(&Comparison) -> f64| Arc::new(Float64Array::from_iter_values(c.iter().map(f)));
    RecordBatch::try_new(
        Arc::new(divergences_schema()),
        vec![
            Arc::new(StringArray::from_iter_values(
                c.iter().map(|c| c.observable.name()),
            )),
            Arc::new(StringArray::from_iter_values(
                c.iter().map(|c| c.observable.kind()),
            )),
            column(|c| c.js_divergence),
            column(|c| c.js_noise_floor),
            column(|c| c.reference_mean),
            column(|c| c.reference_std),
            column(|c| c.sample_mean),
            column(|c| c.sample_std),
            Arc::new(Int64Array::from(vec![reference_frames; c.len()])),
            Arc::new(Int64Array::from(vec![sample_frames; c.len()])),
        ],
    )
    .expect("columns match the divergences schema")
}

/// One dihedral pair's comparison: q, its free-energy error, the reference's noise floor,
/// and the basin populations (basin, reference, sample) when it is the Ramachandran pair.
pub(super) type PairComparison = (
    usize,
    FreeEnergyError,
    FreeEnergyError,
    Option<Vec<(Basin, f64, f64)>>,
);

/// Columns of the `dihedral_pairs` output.
pub fn dihedral_pairs_schema() -> Schema {
    Schema::new(vec![
        Field::new("first", DataType::Utf8, false),
        Field::new("second", DataType::Utf8, false),
        Field::new("mean_abs_df_kt", DataType::Float64, false),
        Field::new("noise_floor_kt", DataType::Float64, false),
        Field::new("bins", DataType::Int64, false),
        Field::new("sample_empty_bins", DataType::Int64, false),
    ])
}

pub(super) fn dihedral_pairs_table(pairs: &[PairComparison]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(dihedral_pairs_schema()),
        vec![
            Arc::new(StringArray::from_iter_values(
                pairs.iter().map(|p| Observable::Dihedral(p.0).name()),
            )),
            Arc::new(StringArray::from_iter_values(
                pairs.iter().map(|p| Observable::Dihedral(p.0 + 1).name()),
            )),
            Arc::new(Float64Array::from_iter_values(
                pairs.iter().map(|p| p.1.mean_abs_kt),
            )),
            Arc::new(Float64Array::from_iter_values(
                pairs.iter().map(|p| p.2.mean_abs_kt),
            )),
            Arc::new(Int64Array::from_iter_values(
                pairs.iter().map(|p| p.1.bins as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                pairs.iter().map(|p| p.1.sample_empty_bins as i64),
            )),
        ],
    )
    .expect("columns match the dihedral_pairs schema")
}

/// Columns of the `basins` output.
pub fn basins_schema() -> Schema {
    Schema::new(vec![
        Field::new("basin", DataType::Utf8, false),
        Field::new("reference_population", DataType::Float64, false),
        Field::new("sample_population", DataType::Float64, false),
    ])
}

pub(super) fn basins_table(pairs: &[PairComparison]) -> RecordBatch {
    let rows: Vec<&(Basin, f64, f64)> = pairs
        .iter()
        .filter_map(|p| p.3.as_ref())
        .flatten()
        .collect();
    RecordBatch::try_new(
        Arc::new(basins_schema()),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.name()),
            )),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("columns match the basins schema")
}

pub(super) fn histograms_table(c: &[Comparison]) -> RecordBatch {
    let names = c.iter().flat_map(|c| {
        let name = c.observable.name();
        std::iter::repeat_n(name, c.bin_centres.len())
    });
    let flat = |f: fn(&Comparison) -> &Vec<f64>| {
        Arc::new(Float64Array::from_iter_values(
            c.iter().flat_map(|c| f(c).iter().copied()),
        ))
    };
    RecordBatch::try_new(
        Arc::new(histograms_schema()),
        vec![
            Arc::new(StringArray::from_iter_values(names)),
            flat(|c| &c.bin_centres),
            flat(|c| &c.reference_density),
            flat(|c| &c.sample_density),
        ],
    )
    .expect("columns match the histograms schema")
}

/// One panel per observable: reference and sample densities over the bin centres.
pub(super) fn figure(
    c: &[Comparison],
    reference_frames: usize,
    sample_frames: usize,
    mean_js: f64,
) -> Figure {
    let columns = ((c.len() as f64).sqrt().ceil() as usize).clamp(1, 8);
    let panels = c
        .iter()
        .map(|c| {
            let series = |label: &str, density: &[f64], color: usize| Series {
                label: label.to_string(),
                points: c
                    .bin_centres
                    .iter()
                    .copied()
                    .zip(density.iter().copied())
                    .collect(),
                color,
                ..Default::default()
            };
            Panel {
                title: format!(
                    "{}: JS {:.4} (floor {:.4})",
                    c.observable.name(),
                    c.js_divergence,
                    c.js_noise_floor
                ),
                x_label: c.observable.x_label().to_string(),
                y_label: c.observable.y_label().to_string(),
                log_y: false,
                series: vec![
                    series(
                        &format!("mapped FG ({reference_frames})"),
                        &c.reference_density,
                        0,
                    ),
                    series(&format!("CG ({sample_frames})"), &c.sample_density, 1),
                ],
            }
        })
        .collect();
    Figure {
        title: format!(
            "CG chains vs mapped FG: {} observables, mean JS {mean_js:.4} nats",
            c.len()
        ),
        columns,
        panel_size: (360, 270),
        panels,
    }
}
