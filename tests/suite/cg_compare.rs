//! The `cg_compare` stage on synthetic bead trajectories: a bent chain of beads with
//! Gaussian noise. Two independent samples of one distribution give divergences at the
//! noise floor; a stretched bond shows up on exactly the distances that span it; names,
//! counts, tables, plots, determinism and bad inputs.

use std::collections::BTreeMap;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use cgloop::artifact::trajectory::{FrameRecord, Trajectory};
use cgloop::random::{normal, stream};
use cgloop::stages::cg_compare::{CgCompare, CgCompareParams};
use cgloop::stages::{Context, NoProgress, Outputs, Registry, Stage, StageError};

use crate::common::table_inputs;

// ---------------------------------------------------------------- synthetic chains

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn unit(a: [f64; 3]) -> [f64; 3] {
    let n = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

/// NeRF: the point d with |cd| = bond, angle bcd = angle_deg, dihedral abcd = torsion_deg.
fn place(a: [f64; 3], b: [f64; 3], c: [f64; 3], bond: f64, angle: f64, torsion: f64) -> [f64; 3] {
    let bc = unit(sub(c, b));
    let n = unit(cross(sub(b, a), bc));
    let m = cross(n, bc);
    let (theta, tau) = (angle.to_radians(), torsion.to_radians());
    let d = [
        -bond * theta.cos(),
        bond * theta.sin() * tau.cos(),
        bond * theta.sin() * tau.sin(),
    ];
    [
        c[0] + d[0] * bc[0] + d[1] * m[0] + d[2] * n[0],
        c[1] + d[0] * bc[1] + d[1] * m[1] + d[2] * n[1],
        c[2] + d[0] * bc[2] + d[1] * m[2] + d[2] * n[2],
    ]
}

/// Bond 0.38 nm (C-alpha spacing), angles 100 degrees, dihedrals 60 degrees.
fn bent_chain(n: usize) -> Vec<[f64; 3]> {
    let mut x = vec![[0.0, 0.0, 0.0], [0.38, 0.0, 0.0]];
    if n > 2 {
        let a = 100f64.to_radians();
        x.push([0.38 - 0.38 * a.cos(), 0.38 * a.sin(), 0.0]);
    }
    while x.len() < n {
        let k = x.len();
        x.push(place(x[k - 3], x[k - 2], x[k - 1], 0.38, 100.0, 60.0));
    }
    x.truncate(n);
    x
}

/// How frames are drawn: `n` beads, Gaussian noise of `sigma` nm on every coordinate
/// around [`bent_chain`], and bond (k, k+1) stretched by `stretch` nm by moving beads
/// k+1.. along that bond's own direction (which leaves every angle, dihedral and other
/// bond length of the frame as it was).
struct Draw {
    n: usize,
    sigma: f64,
    stretch: Option<(usize, f64)>,
}

impl Draw {
    fn frame(&self, rng: &mut impl rand_core::RngCore) -> Vec<[f64; 3]> {
        let mut x = bent_chain(self.n);
        for p in &mut x {
            for c in p.iter_mut() {
                *c += self.sigma * normal(rng);
            }
        }
        if let Some((k, delta)) = self.stretch {
            let u = unit(sub(x[k + 1], x[k]));
            for p in &mut x[k + 1..] {
                for (c, u) in p.iter_mut().zip(u) {
                    *c += delta * u;
                }
            }
        }
        x
    }
}

/// `frames` frames per (temperature_index, draw) entry, from stream `seed`; the replica
/// column cycles through 4 chains.
fn trajectory(parts: &[(i32, &Draw, usize)], seed: u64) -> RecordBatch {
    let n = parts[0].1.n;
    let mut rng = stream(seed, 0);
    let mut t = Trajectory::new(n);
    let zeros = vec![[0.0; 3]; n];
    for &(rung, draw, frames) in parts {
        for _ in 0..frames {
            let k = t.len();
            t.push(FrameRecord {
                temperature_index: rung,
                replica: (k % 4) as i32,
                temperature_k: 300.0,
                step: k as i64,
                time_ps: k as f64,
                positions_nm: &draw.frame(&mut rng),
                forces: &zeros,
                potential: 0.0,
                kinetic_temperature_k: f64::NAN,
            });
        }
    }
    t.to_table()
}

fn run_stage(
    params: &CgCompareParams,
    reference: RecordBatch,
    sample: RecordBatch,
) -> Result<Outputs, StageError> {
    let inputs = table_inputs(vec![("reference", reference), ("sample", sample)]);
    let mut ctx = Context::new([7; 32], &NoProgress);
    CgCompare::run(params, &inputs, &mut ctx)
}

fn params(bins: usize) -> CgCompareParams {
    CgCompareParams {
        bins,
        ..Default::default()
    }
}

fn table<'a>(out: &'a Outputs, name: &str) -> &'a RecordBatch {
    out[name].as_table().unwrap()
}

fn f64s(batch: &RecordBatch, column: &str) -> Vec<f64> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let c = batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    (0..c.len()).map(|i| c.value(i).to_string()).collect()
}

fn i64s(batch: &RecordBatch, column: &str) -> Vec<i64> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

/// Per observable: (js, noise floor, reference mean, sample mean).
fn divergences(out: &Outputs) -> BTreeMap<String, (f64, f64, f64, f64)> {
    let t = table(out, "divergences");
    let (js, floor) = (f64s(t, "js_divergence"), f64s(t, "js_noise_floor"));
    let (rm, sm) = (f64s(t, "reference_mean"), f64s(t, "sample_mean"));
    strings(t, "observable")
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, (js[i], floor[i], rm[i], sm[i])))
        .collect()
}

const FOUR: Draw = Draw {
    n: 4,
    sigma: 0.02,
    stretch: None,
};

// ---------------------------------------------------------------- tests

#[test]
fn independent_samples_of_one_distribution_sit_at_the_noise_floor() {
    let reference = trajectory(&[(0, &FOUR, 2000)], 1);
    let sample = trajectory(&[(0, &FOUR, 2000)], 2);
    let out = run_stage(&params(30), reference, sample).unwrap();
    let d = divergences(&out);
    assert_eq!(d.len(), 9);
    for (name, &(js, floor, rm, sm)) in &d {
        assert!(floor > 0.0 && floor < 0.03, "{name}: floor {floor}");
        assert!(js > 0.0 && js < 0.02, "{name}: JS {js}");
        assert!(js < 3.0 * floor, "{name}: JS {js} vs floor {floor}");
        let tolerance = if name.starts_with("d(") { 0.005 } else { 2.0 };
        assert!((rm - sm).abs() < tolerance, "{name}: means {rm} vs {sm}");
    }
    // The means are the chain's geometry (noise shifts them a little).
    assert!((d["d(0,1)"].2 - 0.38).abs() < 0.01);
    assert!((d["angle(0,1,2)"].2 - 100.0).abs() < 3.0);
    assert!((d["dihedral(0,1,2,3)"].2 - 60.0).abs() < 5.0);
}

#[test]
fn a_stretched_bond_shows_on_exactly_the_distances_that_span_it() {
    let stretched = Draw {
        stretch: Some((1, 0.15)),
        ..FOUR
    };
    let reference = trajectory(&[(0, &FOUR, 2000)], 1);
    let sample = trajectory(&[(0, &stretched, 2000)], 2);
    let out = run_stage(&params(30), reference, sample).unwrap();
    let d = divergences(&out);
    let spanning = ["d(0,2)", "d(0,3)", "d(1,2)", "d(1,3)"];
    for (name, &(js, floor, _, _)) in &d {
        if spanning.contains(&name.as_str()) {
            assert!(js > 0.4, "{name} spans the bond: JS {js}");
            assert!(js > 20.0 * floor, "{name}: JS {js} vs floor {floor}");
        } else {
            assert!(
                js < 2.0 * floor,
                "{name} does not: JS {js} vs floor {floor}"
            );
        }
    }
    let (_, _, rm, sm) = d["d(1,2)"];
    assert!((sm - rm - 0.15).abs() < 0.005, "{rm} -> {sm}");
    // JS is bounded by ln 2 (the bond's histograms barely overlap).
    assert!(d["d(1,2)"].0 <= std::f64::consts::LN_2 && d["d(1,2)"].0 > 0.6);
}

#[test]
fn observables_are_named_and_counted_and_histograms_are_densities() {
    let five = Draw { n: 5, ..FOUR };
    let bins = 20;
    // Reference frames at another rung are left out.
    let reference = trajectory(&[(0, &five, 300), (1, &five, 50), (0, &five, 100)], 3);
    let sample = trajectory(&[(0, &five, 250)], 4);
    let out = run_stage(&params(bins), reference, sample).unwrap();

    let t = table(&out, "divergences");
    let names = strings(t, "observable");
    let kinds = strings(t, "kind");
    let count = |k: &str| kinds.iter().filter(|x| x.as_str() == k).count();
    assert_eq!(
        (count("distance"), count("angle"), count("dihedral")),
        (10, 3, 2)
    );
    assert_eq!(names.len(), 15);
    assert_eq!(names[0], "d(0,1)");
    assert_eq!(names[4], "d(1,2)");
    assert_eq!(names[9], "d(3,4)");
    assert_eq!(
        names[10..13],
        ["angle(0,1,2)", "angle(1,2,3)", "angle(2,3,4)"]
    );
    assert_eq!(names[13..], ["dihedral(0,1,2,3)", "dihedral(1,2,3,4)"]);
    assert!(i64s(t, "reference_frames").iter().all(|&n| n == 400));
    assert!(i64s(t, "sample_frames").iter().all(|&n| n == 250));
    for c in ["reference_std", "sample_std"] {
        assert!(f64s(t, c).iter().all(|&s| s > 0.0 && s.is_finite()));
    }
    for (js, floor) in f64s(t, "js_divergence")
        .iter()
        .zip(f64s(t, "js_noise_floor"))
    {
        assert!((0.0..=std::f64::consts::LN_2).contains(js));
        assert!((0.0..=std::f64::consts::LN_2).contains(&floor));
    }

    let h = table(&out, "histograms");
    assert_eq!(h.num_rows(), 15 * bins);
    let h_names = strings(h, "observable");
    let centres = f64s(h, "bin_centre");
    for (k, name) in names.iter().enumerate() {
        let rows = k * bins..(k + 1) * bins;
        assert!(h_names[rows.clone()].iter().all(|x| x == name));
        let c = &centres[rows.clone()];
        assert!(c.windows(2).all(|w| w[1] > w[0]));
        let width = c[1] - c[0];
        for column in ["reference_density", "sample_density"] {
            let density = &f64s(h, column)[rows.clone()];
            let integral: f64 = density.iter().sum::<f64>() * width;
            assert!((integral - 1.0).abs() < 1e-9, "{name} {column}: {integral}");
        }
        match kinds[k].as_str() {
            "angle" => assert!((c[0] - 4.5).abs() < 1e-9 && (c[bins - 1] - 175.5).abs() < 1e-9),
            "dihedral" => {
                assert!((c[0] + 171.0).abs() < 1e-9 && (c[bins - 1] - 171.0).abs() < 1e-9)
            }
            _ => assert!(c[0] > 0.0 && c[bins - 1] < 2.0),
        }
    }
}

#[test]
fn plots_are_images_and_equal_inputs_give_equal_outputs() {
    let reference = || trajectory(&[(0, &FOUR, 400)], 5);
    let sample = || trajectory(&[(0, &FOUR, 300)], 6);
    let a = run_stage(&params(25), reference(), sample()).unwrap();
    let b = run_stage(&params(25), reference(), sample()).unwrap();
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        [
            "basins",
            "dihedral_pairs",
            "divergences",
            "histograms",
            "plot",
            "plot_svg"
        ]
    );
    assert_eq!(a, b);

    let png = a["plot"].as_bytes().unwrap();
    let reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let info = reader.info();
    assert!(
        info.width > 300 && info.height > 200,
        "{}x{}",
        info.width,
        info.height
    );
    let svg = std::str::from_utf8(a["plot_svg"].as_bytes().unwrap()).unwrap();
    assert!(svg.contains("<svg") && svg.contains("dihedral(0,1,2,3)"));
}

#[test]
fn bad_inputs_and_params_are_refused() {
    let five = Draw { n: 5, ..FOUR };
    let err = run_stage(
        &params(10),
        trajectory(&[(0, &FOUR, 10)], 1),
        trajectory(&[(0, &five, 10)], 2),
    )
    .unwrap_err();
    match err {
        StageError::BadInput { input, message } => {
            assert_eq!(input, "sample");
            assert!(message.contains('4') && message.contains('5'), "{message}");
        }
        other => panic!("{other}"),
    }
    // No reference frames at the requested rung.
    let err = run_stage(
        &CgCompareParams {
            temperature_index: 2,
            ..params(10)
        },
        trajectory(&[(0, &FOUR, 10)], 1),
        trajectory(&[(0, &FOUR, 10)], 2),
    )
    .unwrap_err();
    assert!(
        matches!(&err, StageError::BadInput { input, .. } if input == "reference"),
        "{err}"
    );

    let registry = Registry::builtin();
    let stage = registry
        .get("cg_compare")
        .expect("cg_compare is registered");
    let resolved = stage.resolve_params(&serde_json::json!({})).unwrap();
    assert_eq!(
        resolved.value,
        serde_json::json!({"temperature_index": 0, "bins": 50, "pair_bins": 36, "ramachandran_pair": null})
    );
    let problem = stage
        .resolve_params(&serde_json::json!({"bins": 1}))
        .unwrap_err();
    assert_eq!(problem.path, ["bins"]);
    assert!(
        stage
            .resolve_params(&serde_json::json!({"bin": 10}))
            .is_err()
    );
}

#[test]
fn dihedral_pair_free_energies_and_basins() {
    let five = Draw { n: 5, ..FOUR };
    let broad = Draw {
        n: 5,
        sigma: 0.06,
        stretch: None,
    };
    let pair_params = CgCompareParams {
        ramachandran_pair: Some(0),
        ..params(30)
    };
    let same = run_stage(
        &pair_params,
        trajectory(&[(0, &five, 4000)], 1),
        trajectory(&[(0, &five, 4000)], 2),
    )
    .unwrap();
    let wider = run_stage(
        &pair_params,
        trajectory(&[(0, &five, 4000)], 1),
        trajectory(&[(0, &broad, 4000)], 2),
    )
    .unwrap();
    let t = table(&same, "dihedral_pairs");
    assert_eq!(strings(t, "first"), vec!["dihedral(0,1,2,3)"]);
    assert_eq!(strings(t, "second"), vec!["dihedral(1,2,3,4)"]);
    let (df, floor) = (f64s(t, "mean_abs_df_kt")[0], f64s(t, "noise_floor_kt")[0]);
    assert!(i64s(t, "bins")[0] > 4, "{:?}", i64s(t, "bins"));
    assert!(
        df < 2.0 * floor,
        "same distribution: {df} kT vs floor {floor}"
    );
    let w = table(&wider, "dihedral_pairs");
    let df_wide = f64s(w, "mean_abs_df_kt")[0];
    assert!(df_wide > 3.0 * df, "a broader sample: {df_wide} vs {df} kT");
    // Basins of the pair read as (phi, psi): populations of each set sum to 1.
    let b = table(&same, "basins");
    assert_eq!(b.num_rows(), 3);
    for column in ["reference_population", "sample_population"] {
        let total: f64 = f64s(b, column).iter().sum();
        assert!((total - 1.0).abs() < 1e-12, "{column}: {total}");
    }
    // Without ramachandran_pair there are no basin rows; a pair that does not exist is
    // an error naming the param.
    let none = run_stage(
        &params(30),
        trajectory(&[(0, &five, 100)], 1),
        trajectory(&[(0, &five, 100)], 2),
    )
    .unwrap();
    assert_eq!(table(&none, "basins").num_rows(), 0);
    let error = run_stage(
        &CgCompareParams {
            ramachandran_pair: Some(1),
            ..params(30)
        },
        trajectory(&[(0, &five, 100)], 1),
        trajectory(&[(0, &five, 100)], 2),
    )
    .expect_err("5 beads have one dihedral pair")
    .to_string();
    assert!(error.contains("ramachandran_pair"), "{error}");
}
