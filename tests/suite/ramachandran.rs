//! The `ramachandran` stage and the analysis it stands on: dihedrals against constructed
//! geometry, basin assignment, populations and block-bootstrap errors against known
//! answers, frame weights, determinism, and the smoke workflow's `rama` node.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use cgloop::analysis::bootstrap::BlockBootstrap;
use cgloop::artifact::Artifact;
use cgloop::artifact::atoms::{AtomRow, to_table as atoms_table};
use cgloop::artifact::trajectory::{FrameRecord, Trajectory};
use cgloop::exec::{RunOptions, Store, run};
use cgloop::geometry::dihedral::dihedral_deg;
use cgloop::md::units::BOLTZMANN;
use cgloop::stages::ramachandran::{Basin, Ramachandran, RamachandranParams};
use cgloop::stages::{Context, Inputs, NoProgress, Outputs, Registry, Stage, StageError};
use cgloop::workflow;
use common::TempDir;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

// ---------------------------------------------------------------- geometry helpers

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
fn place(
    a: [f64; 3],
    b: [f64; 3],
    c: [f64; 3],
    bond: f64,
    angle_deg: f64,
    torsion_deg: f64,
) -> [f64; 3] {
    let bc = unit(sub(c, b));
    let n = unit(cross(sub(b, a), bc));
    let m = cross(n, bc);
    let (theta, tau) = (angle_deg.to_radians(), torsion_deg.to_radians());
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

/// A five-atom backbone C(0) N(1) CA(1) C(1) N(2), nm, with the given phi and psi.
fn backbone(phi: f64, psi: f64) -> [[f64; 3]; 5] {
    let c0 = [0.0, 0.0, 0.0];
    let n1 = [0.133, 0.0, 0.0];
    let ca = place([0.0, 1.0, 0.0], c0, n1, 0.146, 121.0, 180.0);
    let c1 = place(c0, n1, ca, 0.152, 111.0, phi);
    let n2 = place(n1, ca, c1, 0.133, 116.0, psi);
    [c0, n1, ca, c1, n2]
}

fn backbone_atoms() -> RecordBatch {
    let atom = |name: &str, residue: i32, residue_name: &str, z: i32| AtomRow {
        name: name.into(),
        residue_name: residue_name.into(),
        residue_index: residue,
        atomic_number: z,
        mass_amu: 12.0,
        charge_e: 0.0,
    };
    atoms_table(&[
        atom("C", 0, "ACE", 6),
        atom("N", 1, "ALA", 7),
        atom("CA", 1, "ALA", 6),
        atom("C", 1, "ALA", 6),
        atom("N", 2, "NME", 7),
    ])
}

/// A trajectory of backbones with these (phi, psi, temperature_index).
fn trajectory(frames: &[(f64, f64, i32)]) -> RecordBatch {
    let mut t = Trajectory::new(5);
    for (k, &(phi, psi, rung)) in frames.iter().enumerate() {
        t.push(FrameRecord {
            temperature_index: rung,
            replica: 0,
            temperature_k: 300.0 + 50.0 * rung as f64,
            step: k as i64,
            time_ps: k as f64,
            positions_nm: &backbone(phi, psi),
            forces: &[[0.0; 3]; 5],
            potential: 0.0,
            kinetic_temperature_k: 300.0,
        });
    }
    t.to_table()
}

fn weights_table(w: &[f64]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "weight",
            DataType::Float64,
            false,
        )])),
        vec![Arc::new(Float64Array::from(w.to_vec()))],
    )
    .unwrap()
}

fn run_stage(
    params: &RamachandranParams,
    traj: RecordBatch,
    weights: Option<RecordBatch>,
    seed: u8,
) -> Result<Outputs, StageError> {
    let mut artifacts = BTreeMap::from([
        ("trajectory".to_string(), Arc::new(Artifact::Table(traj))),
        (
            "atoms".to_string(),
            Arc::new(Artifact::Table(backbone_atoms())),
        ),
    ]);
    if let Some(w) = weights {
        artifacts.insert("weights".into(), Arc::new(Artifact::Table(w)));
    }
    let inputs = Inputs {
        artifacts,
        files: BTreeMap::new(),
    };
    let mut ctx = Context::new([seed; 32], &NoProgress);
    Ramachandran::run(params, &inputs, &mut ctx)
}

fn table<'a>(out: &'a Outputs, name: &str) -> &'a RecordBatch {
    out[name].as_table().unwrap()
}

fn f64s(batch: &RecordBatch, column: &str) -> Vec<f64> {
    let c = batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    (0..c.len())
        .map(|i| if c.is_null(i) { f64::NAN } else { c.value(i) })
        .collect()
}

/// (population, std_error) by basin name.
fn populations(out: &Outputs) -> BTreeMap<String, (f64, f64)> {
    let t = table(out, "populations");
    let names = t
        .column_by_name("basin")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let p = f64s(t, "population");
    let e = f64s(t, "std_error");
    (0..t.num_rows())
        .map(|i| (names.value(i).to_string(), (p[i], e[i])))
        .collect()
}

/// Frames that are alpha_R with probability p (iid, or in runs of `run` equal frames),
/// beta otherwise; phi and psi jitter inside the basin.
fn two_basin_frames(n: usize, p: f64, run: usize, seed: u64) -> Vec<(f64, f64, i32)> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut frames = Vec::with_capacity(n);
    let mut alpha = false;
    for k in 0..n {
        if k % run == 0 {
            alpha = uniform() < p;
        }
        let jitter = 20.0 * (uniform() - 0.5);
        frames.push(if alpha {
            (-65.0 + jitter, -40.0 + jitter, 0)
        } else {
            (-120.0 + jitter, 140.0 + jitter, 0)
        });
    }
    frames
}

// ---------------------------------------------------------------- tests

#[test]
fn dihedrals_of_constructed_geometry_match_the_construction() {
    // Looking down p1 -> p2 (the z axis), p0 lies along +x and p3 at angle theta in the
    // xy plane: the IUPAC dihedral is theta (cis 0, trans 180).
    let (p0, p1, p2) = ([1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.5]);
    for theta in [
        -179.0, -120.0, -60.0, -1.0, 0.0, 30.0, 90.0, 150.0, 179.5, 180.0,
    ] {
        let t = f64::to_radians(theta);
        let p3 = [2.0 * t.cos(), 2.0 * t.sin(), 1.5];
        let got = dihedral_deg(p0, p1, p2, p3);
        assert!((got - theta).abs() < 1e-9, "theta {theta}: got {got}");
        // Invariant under translation and reversed order of the four points.
        let shift = |p: [f64; 3]| [p[0] + 3.0, p[1] - 1.0, p[2] + 0.5];
        let moved = dihedral_deg(shift(p0), shift(p1), shift(p2), shift(p3));
        assert!((moved - theta).abs() < 1e-9);
        assert!((dihedral_deg(p3, p2, p1, p0) - theta).abs() < 1e-9);
    }
    // Trans exactly: 180, never -180.
    assert_eq!(dihedral_deg(p0, p1, p2, [-1.0, -0.0, 1.5]), 180.0);
    // A mirror image flips the sign.
    let mirror = |p: [f64; 3]| [p[0], -p[1], p[2]];
    let p3 = [0.5, 0.8, 1.5];
    let a = dihedral_deg(p0, p1, p2, p3);
    let b = dihedral_deg(mirror(p0), mirror(p1), mirror(p2), mirror(p3));
    assert!(a > 0.0 && (a + b).abs() < 1e-9);
}

#[test]
fn the_stage_recovers_the_phi_and_psi_a_backbone_was_built_with() {
    let angles = [
        (-63.0, -42.0),
        (-150.0, 155.0),
        (57.0, 47.0),
        (75.0, -65.0),
        (180.0, -180.0),
    ];
    let frames: Vec<_> = angles.iter().map(|&(a, b)| (a, b, 0)).collect();
    let out = run_stage(&RamachandranParams::default(), trajectory(&frames), None, 1).unwrap();
    let d = table(&out, "dihedrals");
    let (phi, psi) = (f64s(d, "phi_deg"), f64s(d, "psi_deg"));
    for (k, &(a, b)) in angles.iter().enumerate() {
        let wrap = |x: f64| if x <= -180.0 { x + 360.0 } else { x };
        assert!((phi[k] - wrap(a)).abs() < 1e-6, "phi {} vs {a}", phi[k]);
        assert!((psi[k] - wrap(b)).abs() < 1e-6, "psi {} vs {b}", psi[k]);
    }
}

#[test]
fn alanine_dipeptide_built_flat_has_trans_phi_and_psi() {
    // The bundled structure's backbone lies in the z = 0 plane, with the two
    // carbonyl carbons trans across N-CA and the two nitrogens trans across CA-C.
    let pdb = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide/ala2_ff14SB.pdb"),
    )
    .unwrap();
    let atoms: Vec<(String, i32, [f64; 3])> = pdb
        .lines()
        .filter(|l| l.starts_with("ATOM") || l.starts_with("HETATM"))
        .map(|l| {
            let x = |r: std::ops::Range<usize>| l[r].trim().parse::<f64>().unwrap() / 10.0;
            (
                l[12..16].trim().to_string(),
                l[22..26].trim().parse::<i32>().unwrap() - 1,
                [x(30..38), x(38..46), x(46..54)],
            )
        })
        .collect();
    let find = |name: &str, residue: i32| {
        atoms
            .iter()
            .find(|a| a.0 == name && a.1 == residue)
            .unwrap()
            .2
    };
    let phi = dihedral_deg(find("C", 0), find("N", 1), find("CA", 1), find("C", 1));
    let psi = dihedral_deg(find("N", 1), find("CA", 1), find("C", 1), find("N", 2));
    assert_eq!((phi, psi), (180.0, 180.0));
}

#[test]
fn basins_follow_their_boundaries() {
    let cases = [
        ((-63.0, -42.0), Basin::AlphaR),
        ((-150.0, 155.0), Basin::C7eqBeta),
        ((-83.0, 73.0), Basin::C7eqBeta),
        ((-80.0, 50.0), Basin::C7eqBeta),
        ((-80.0, 49.9), Basin::AlphaR),
        ((-80.0, -125.0), Basin::C7eqBeta),
        ((-80.0, -124.9), Basin::AlphaR),
        ((-150.0, -170.0), Basin::C7eqBeta),
        ((0.0, 0.0), Basin::AlphaR),
        ((0.1, 0.0), Basin::C7axAlphaL),
        ((57.0, 47.0), Basin::C7axAlphaL),
        ((75.0, -65.0), Basin::C7axAlphaL),
        ((180.0, 180.0), Basin::C7axAlphaL),
    ];
    for ((phi, psi), basin) in cases {
        assert_eq!(Basin::of(phi, psi), basin, "phi {phi}, psi {psi}");
    }
    assert_eq!(
        Basin::ALL.map(Basin::name),
        ["C7eq/beta", "alpha_R", "C7ax/alpha_L"]
    );
}

#[test]
fn bootstrap_error_of_iid_frames_is_the_binomial_error() {
    let n = 20_000;
    let p = 0.3;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let x: Vec<f64> = (0..n)
        .map(|_| {
            f64::from(u8::from(
                ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p,
            ))
        })
        .collect();
    let expected = (p * (1.0 - p) / n as f64).sqrt();
    let e = BlockBootstrap {
        blocks: 100,
        resamples: 1000,
    }
    .weighted_means(&[&x], &vec![1.0; n], &mut rng)
    .unwrap()[0];
    assert!((e.mean - p).abs() < 4.0 * expected, "mean {}", e.mean);
    // 100 blocks: the error estimate itself scatters by about 1/sqrt(2 * 99) = 7 %.
    assert!(
        (e.std_error / expected - 1.0).abs() < 0.25,
        "bootstrap {} vs binomial {expected}",
        e.std_error
    );
}

#[test]
fn the_stage_reports_populations_with_binomial_errors_for_iid_frames() {
    let n = 4000;
    let out = run_stage(
        &RamachandranParams::default(),
        trajectory(&two_basin_frames(n, 0.3, 1, 11)),
        None,
        2,
    )
    .unwrap();
    let pops = populations(&out);
    let total: f64 = pops.values().map(|v| v.0).sum();
    assert!((total - 1.0).abs() < 1e-12);
    let (alpha, alpha_err) = pops["alpha_R"];
    let expected = (0.3 * 0.7 / n as f64).sqrt();
    assert!((alpha - 0.3).abs() < 4.0 * expected, "alpha_R {alpha}");
    // 20 blocks (the default): the error estimate scatters by about 16 %.
    assert!(
        (alpha_err / expected - 1.0).abs() < 0.5,
        "{alpha_err} vs {expected}"
    );
    // Two basins only: their errors are equal, and the third basin is empty.
    assert!((pops["C7eq/beta"].1 - alpha_err).abs() < 1e-12);
    assert_eq!(pops["C7ax/alpha_L"], (0.0, 0.0));
    let frames = table(&out, "populations")
        .column_by_name("frames")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    assert_eq!(frames.iter().sum::<i64>(), n as i64);
}

#[test]
fn correlated_frames_get_the_larger_error_of_fewer_independent_samples() {
    // Runs of 50 identical basins: 100 independent draws, not 5000.
    let n = 5000;
    let out = run_stage(
        &RamachandranParams::default(),
        trajectory(&two_basin_frames(n, 0.3, 50, 12)),
        None,
        3,
    )
    .unwrap();
    let (alpha, err) = populations(&out)["alpha_R"];
    let naive = (alpha * (1.0 - alpha) / n as f64).sqrt();
    let independent = (alpha * (1.0 - alpha) / 100.0).sqrt();
    assert!(err > 3.0 * naive, "{err} vs naive {naive}");
    assert!(
        (err / independent - 1.0).abs() < 0.5,
        "{err} vs {independent}"
    );
}

#[test]
fn weights_shift_populations_and_the_free_energy() {
    // Alternating alpha_R and beta frames, each basin in one bin; alpha_R frames weigh 3.
    let frames: Vec<_> = (0..400)
        .map(|k| {
            if k % 2 == 0 {
                (-62.0, -41.0, 0)
            } else {
                (-121.0, 139.0, 0)
            }
        })
        .collect();
    let w: Vec<f64> = (0..400)
        .map(|k| if k % 2 == 0 { 3.0 } else { 1.0 })
        .collect();
    let p = RamachandranParams::default();
    let plain = run_stage(&p, trajectory(&frames), None, 4).unwrap();
    let weighted = run_stage(&p, trajectory(&frames), Some(weights_table(&w)), 4).unwrap();
    assert!((populations(&plain)["alpha_R"].0 - 0.5).abs() < 1e-12);
    assert!((populations(&weighted)["alpha_R"].0 - 0.75).abs() < 1e-12);
    assert_eq!(f64s(table(&weighted, "dihedrals"), "weight"), w);

    // F = -kT ln p, 0 at the minimum, empty bins null: beta sits kT ln 3 above alpha_R.
    let fe = table(&weighted, "free_energy");
    assert_eq!(fe.num_rows(), 3600);
    let f = f64s(fe, "free_energy_kj_per_mol");
    let finite: Vec<f64> = f.iter().copied().filter(|x| x.is_finite()).collect();
    assert_eq!(finite.len(), 2);
    assert_eq!(
        fe.column_by_name("free_energy_kj_per_mol")
            .unwrap()
            .null_count(),
        3598
    );
    let kt = BOLTZMANN * 300.0;
    let mut sorted = finite.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(sorted[0], 0.0);
    assert!((sorted[1] - kt * 3f64.ln()).abs() < 1e-9, "{sorted:?}");
    let prob: f64 = f64s(fe, "probability").iter().sum();
    assert!((prob - 1.0).abs() < 1e-12);

    // Weights given per analysed frame when the trajectory holds two temperatures.
    let mut two_rungs = frames.clone();
    two_rungs.extend(frames.iter().map(|&(a, b, _)| (a, b, 1)));
    let hot = RamachandranParams {
        temperature_index: 1,
        ..RamachandranParams::default()
    };
    let out = run_stage(&hot, trajectory(&two_rungs), Some(weights_table(&w)), 4).unwrap();
    assert!((populations(&out)["alpha_R"].0 - 0.75).abs() < 1e-12);
    let d = table(&out, "dihedrals");
    let first_frame = d
        .column_by_name("frame")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(first_frame, 400);
    // ... and at 350 K the free-energy gap is kT ln 3 at 350 K.
    let f = f64s(table(&out, "free_energy"), "free_energy_kj_per_mol");
    let gap = f
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max);
    assert!((gap - BOLTZMANN * 350.0 * 3f64.ln()).abs() < 1e-9);

    // Wrong lengths and bad weights are refused with the input named.
    let err = run_stage(&p, trajectory(&frames), Some(weights_table(&[1.0; 7])), 4).unwrap_err();
    assert!(err.to_string().contains("weights"), "{err}");
    let mut negative = w.clone();
    negative[5] = -1.0;
    let err = run_stage(&p, trajectory(&frames), Some(weights_table(&negative)), 4).unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
}

#[test]
fn equal_seeds_give_equal_bytes() {
    let frames = two_basin_frames(600, 0.4, 5, 13);
    let p = RamachandranParams::default();
    let a = run_stage(&p, trajectory(&frames), None, 5).unwrap();
    let b = run_stage(&p, trajectory(&frames), None, 5).unwrap();
    let c = run_stage(&p, trajectory(&frames), None, 6).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, artifact) in &a {
        match artifact {
            Artifact::Table(t) => {
                let bytes =
                    |t: &RecordBatch| cgloop::artifact::encode_table(t, &BTreeMap::new()).unwrap();
                assert_eq!(bytes(t), bytes(b[name].as_table().unwrap()), "{name}");
            }
            Artifact::File(bytes) => assert_eq!(bytes, b[name].as_bytes().unwrap(), "{name}"),
        }
    }
    // Another seed: the same populations, other bootstrap errors.
    let (pa, pc) = (populations(&a), populations(&c));
    assert_eq!(pa["alpha_R"].0, pc["alpha_R"].0);
    assert_ne!(pa["alpha_R"].1, pc["alpha_R"].1);
    // The plots are real images.
    let png = a["ramachandran_png"].as_bytes().unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = String::from_utf8(a["ramachandran_svg"].as_bytes().unwrap().to_vec()).unwrap();
    assert!(svg.contains("<svg") && svg.contains("α_R"), "{svg:.200}");
}

#[test]
fn unknown_atoms_are_named_with_the_residue_contents() {
    let mut p = RamachandranParams::default();
    p.psi[3].name = "NX".into();
    let err = run_stage(&p, trajectory(&[(-60.0, -40.0, 0)]), None, 1).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("psi") && message.contains("`NX`") && message.contains("N"),
        "{message}"
    );
    let missing = run_stage(
        &RamachandranParams {
            temperature_index: 3,
            ..RamachandranParams::default()
        },
        trajectory(&[(-60.0, -40.0, 0)]),
        None,
        1,
    )
    .unwrap_err();
    assert!(
        missing.to_string().contains("temperature_index 3"),
        "{missing}"
    );
}

#[test]
fn the_smoke_workflows_rama_node_runs_and_its_populations_sum_to_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    let wf = workflow::load(&root.join("workflows/smoke.yaml"), &Registry::builtin())
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("rama-smoke");
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(
        &wf,
        &store,
        &RunOptions {
            until: vec!["rama".into()],
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(report.succeeded(), "{report:?}");
    let rama = report.nodes.iter().find(|n| n.id == "rama").unwrap();
    let pops = store.load_output(&rama.key, "populations").unwrap();
    let pops = pops.as_table().unwrap();
    let p = f64s(pops, "population");
    let e = f64s(pops, "std_error");
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{p:?}");
    assert!(p.iter().chain(&e).all(|x| x.is_finite() && *x >= 0.0));
    let dihedrals = store.load_output(&rama.key, "dihedrals").unwrap();
    assert_eq!(dihedrals.as_table().unwrap().num_rows(), 200);
    let png = store.load_output(&rama.key, "ramachandran_png").unwrap();
    assert_eq!(&png.as_bytes().unwrap()[..4], b"\x89PNG");
    if let Some(path) = std::env::var_os("CGLOOP_KEEP_PLOT") {
        std::fs::write(path, png.as_bytes().unwrap()).unwrap();
    }
}

#[test]
fn weights_may_be_left_unconnected_but_trajectory_and_atoms_may_not() {
    let dir = TempDir::new("rama-validate");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    let workflow_with = |rama_inputs: &str| {
        format!(
            "name: w\nseed: 1\nnodes:\n  fg:\n    stage: fg_sample\n    params: {{topology: {}, coordinates: {}}}\n  rama:\n    stage: ramachandran\n    inputs: {rama_inputs}\n",
            data.join("ala2_ff14SB.prmtop").display(),
            data.join("ala2_ff14SB.inpcrd").display(),
        )
    };
    let missing_atoms = dir.write("a.yaml", &workflow_with("{trajectory: fg.trajectory}"));
    match workflow::load(&missing_atoms, &Registry::builtin()) {
        Ok(_) => panic!("a workflow without atoms validated"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("`atoms`") && !e.contains("`weights`"), "{e}");
        }
    }
    // Weights are a `frame_weights` table (reweight's); any other table is refused.
    let wrong = dir.write(
        "b.yaml",
        &workflow_with("{trajectory: fg.trajectory, atoms: fg.atoms, weights: fg.exchanges}"),
    );
    let Err(e) = workflow::load(&wrong, &Registry::builtin()) else {
        panic!("the exchanges table was accepted as weights");
    };
    assert!(e.to_string().contains("takes a `frame_weights`"), "{e}");
    let chain = "{trajectory: fg.trajectory, atoms: fg.atoms, weights: rw.weights}\n  map:\n    stage: train_map\n    inputs: {trajectory: fg.trajectory, atoms: fg.atoms}\n  fit:\n    stage: fit_potential\n    inputs: {trajectory: map.trajectory}\n  cg:\n    stage: cg_sample\n    inputs: {potential: fit.potential, trajectory: map.trajectory, beads: map.beads}\n  flow:\n    stage: train_flow\n    inputs: {trajectory: fg.trajectory, atoms: fg.atoms, assignment: map.assignment}\n  back:\n    stage: backmap\n    inputs: {flow: flow.flow, samples: cg.trajectory}\n  rw:\n    stage: reweight\n    inputs: {trajectory: back.trajectory, densities: back.densities, samples: cg.trajectory, flow: flow.flow, force_field: fg.force_field}";
    let weighted = dir.write("c.yaml", &workflow_with(chain));
    let wf = workflow::load(&weighted, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let rama = &wf.nodes[wf.index_of("rama").unwrap()];
    assert_eq!(rama.inputs.len(), 3);
}
