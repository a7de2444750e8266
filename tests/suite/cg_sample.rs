//! The `cg_sample` stage: Langevin dynamics on an untrained CG potential built in the
//! test. A pure harmonic-prior chain samples the Boltzmann bond-length distribution and
//! the target temperature; saved energies are U_hat at the saved positions; chains
//! start from evenly spread eligible frames; results are identical bit for bit for one
//! seed whatever the number of threads; a blow-up names chain, step and bead; bad
//! inputs and params are refused with the input or param named.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use candle_core::{DType, Device};
use cgloop::artifact::Artifact;
use cgloop::artifact::atoms::{AtomRow, to_table as atoms_table};
use cgloop::artifact::parquet_io::encode_table;
use cgloop::artifact::tensors::{self, NamedTensor};
use cgloop::artifact::trajectory::{FrameRecord, Trajectory};
use cgloop::md::potential::Potential;
use cgloop::md::units::BOLTZMANN;
use cgloop::nn::cg_potential::{save_potential, single_frame};
use cgloop::nn::cg_potential_host::HostCgPotential;
use cgloop::nn::priors::PriorSet;
use cgloop::nn::priors::harmonic_distances::HarmonicDistances;
use cgloop::nn::priors::repulsion::Repulsion;
use cgloop::nn::{CgPotential, CgPotentialConfig, ParameterStore};
use cgloop::random::{normal, stream};
use cgloop::stages::cg_sample::{CgSample, CgSampleParams};
use cgloop::stages::{Context, Inputs, NoProgress, Outputs, Registry, Stage, StageError};

const BEADS: usize = 5;
const BOND_K: f64 = 1000.0; // kJ/mol/nm^2
const BOND_R0: f64 = 0.38; // nm

/// The networks' architecture and the priors of a test potential.
type Spec = (CgPotentialConfig, PriorSet);

/// Repulsion `repulsion` kJ/mol at `sigma` nm and harmonic bonds.
fn spec(hidden: Vec<usize>, repulsion: f64, sigma: f64) -> Spec {
    let config = CgPotentialConfig {
        basis: 12,
        hidden,
        ..CgPotentialConfig::default()
    };
    let priors = PriorSet::new(vec![
        Arc::new(Repulsion {
            eps: repulsion,
            sigma,
        }),
        Arc::new(
            HarmonicDistances::new(BEADS, 1, vec![BOND_K; BEADS - 1], vec![BOND_R0; BEADS - 1])
                .unwrap(),
        ),
    ]);
    (config, priors)
}

fn config(hidden: Vec<usize>, repulsion: f64) -> Spec {
    spec(hidden, repulsion, 0.2)
}

/// A saved potential with random weights; `harmonic_only` zeroes the network's last
/// layer (so NN = 0 everywhere) and the config has no repulsion, leaving the bonds.
fn saved((config, priors): &Spec, seed: u8, harmonic_only: bool) -> Vec<NamedTensor> {
    let store = ParameterStore::new([seed; 32]);
    CgPotential::new(
        BEADS,
        config.clone(),
        store.var_builder(DType::F64, &Device::Cpu),
    )
    .unwrap();
    let mut tensors = save_potential(BEADS, config, priors, &store).unwrap();
    if harmonic_only {
        let last = config.hidden.len();
        for t in &mut tensors {
            if t.name.starts_with(&format!("pair_network.layer{last}.")) {
                t.values.iter_mut().for_each(|v| *v = 0.0);
            }
        }
    }
    tensors
}

/// A zigzag chain near the bond length, shifted by `shift` nm along x.
fn chain(seed: u64, shift: f64) -> Vec<[f64; 3]> {
    let mut rng = stream(seed, 1);
    (0..BEADS)
        .map(|b| {
            [
                shift + 0.33 * b as f64 + 0.01 * normal(&mut rng),
                0.18 * (b % 2) as f64 + 0.01 * normal(&mut rng),
                0.01 * normal(&mut rng),
            ]
        })
        .collect()
}

/// Mapped frames: input frame f is shifted by 10 f nm; odd frames from 7 on are at
/// temperature_index 1, so the eligible frames (index 0) are 0..=6, 8, 10.
fn mapped() -> Trajectory {
    let mut t = Trajectory::new(BEADS);
    let zero = vec![[0.0; 3]; BEADS];
    for f in 0..12 {
        let x = chain(f as u64, 10.0 * f as f64);
        t.push(FrameRecord {
            temperature_index: if f >= 7 && f % 2 == 1 { 1 } else { 0 },
            replica: 0,
            temperature_k: 300.0,
            step: f,
            time_ps: f as f64,
            positions_nm: &x,
            forces: &zero,
            potential: 0.0,
            kinetic_temperature_k: f64::NAN,
        });
    }
    t
}

fn beads(n: usize) -> RecordBatch {
    let rows: Vec<AtomRow> = (0..n)
        .map(|i| AtomRow {
            name: format!("B{i}"),
            residue_name: "CG".into(),
            residue_index: i as i32,
            atomic_number: 0,
            mass_amu: 30.0 + 5.0 * i as f64,
            charge_e: 0.0,
        })
        .collect();
    atoms_table(&rows)
}

fn run_stage(
    params: &CgSampleParams,
    potential: &[NamedTensor],
    trajectory: &Trajectory,
    bead_table: RecordBatch,
    seed: u8,
) -> Result<Outputs, StageError> {
    let artifacts = BTreeMap::from([
        (
            "potential".to_string(),
            Arc::new(Artifact::Table(tensors::to_table(potential))),
        ),
        (
            "trajectory".to_string(),
            Arc::new(Artifact::Table(trajectory.to_table())),
        ),
        ("beads".to_string(), Arc::new(Artifact::Table(bead_table))),
    ]);
    let inputs = Inputs {
        artifacts,
        files: BTreeMap::new(),
    };
    let mut ctx = Context::new([seed; 32], &NoProgress);
    CgSample::run(params, &inputs, &mut ctx)
}

fn output(out: &Outputs) -> Trajectory {
    Trajectory::from_table(out["trajectory"].as_table().unwrap()).unwrap()
}

fn bytes(out: &Outputs) -> Vec<u8> {
    encode_table(out["trajectory"].as_table().unwrap(), &BTreeMap::new()).unwrap()
}

fn distance(x: &[f64], i: usize, j: usize) -> f64 {
    (0..3)
        .map(|c| (x[3 * i + c] - x[3 * j + c]).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Mean of the values and its standard error from the spread of group means.
fn mean_and_error(groups: &[f64]) -> (f64, f64) {
    let m = mean(groups);
    let var = groups.iter().map(|g| (g - m).powi(2)).sum::<f64>() / (groups.len() - 1) as f64;
    (m, (var / groups.len() as f64).sqrt())
}

/// <d> and Var d under p(d) ∝ d^2 exp(-k (d - r0)^2 / (2 kT)) (a free 3D bond), by
/// quadrature.
fn boltzmann_bond(kt: f64) -> (f64, f64) {
    let (mut z, mut m1, mut m2) = (0.0, 0.0, 0.0);
    let h = 1e-5;
    let mut d = h;
    while d < 1.5 {
        let w = d * d * (-BOND_K * (d - BOND_R0).powi(2) / (2.0 * kt)).exp();
        z += w;
        m1 += w * d;
        m2 += w * d * d;
        d += h;
    }
    let mean = m1 / z;
    (mean, m2 / z - mean * mean)
}

#[test]
fn a_harmonic_chain_samples_boltzmann_bond_lengths_at_the_target_temperature() {
    let config = config(vec![8], 0.0);
    let potential = saved(&config, 3, true);
    let params = CgSampleParams {
        chains: 8,
        temperature_k: 300.0,
        timestep_fs: 2.0,
        friction_per_ps: 5.0,
        equilibration_steps: 1000,
        steps: 200_000,
        save_every: 50,
        ..CgSampleParams::default()
    };
    let out = run_stage(&params, &potential, &mapped(), beads(BEADS), 7).unwrap();
    let t = output(&out);
    let per_chain = (params.steps / params.save_every) as usize;
    assert_eq!(t.len(), params.chains * per_chain);

    // Bonds are independent under a bond-only potential (the bond vectors carry the
    // chain's configuration with a constant Jacobian): each is a 3D harmonic spring.
    let kt = BOLTZMANN * params.temperature_k;
    let (expected_mean, expected_var) = boltzmann_bond(kt);
    // <d> ~ r0 + 2 kT / (k r0), Var d ~ kT / k.
    assert!((expected_mean - (BOND_R0 + 2.0 * kt / (BOND_K * BOND_R0))).abs() < 1e-3);
    assert!((expected_var / (kt / BOND_K) - 1.0).abs() < 0.05);
    // Per chain: the mean and variance of its bond lengths over its 4 bonds.
    let (mut chain_means, mut chain_vars) = (Vec::new(), Vec::new());
    for c in 0..params.chains {
        let d: Vec<f64> = (c * per_chain..(c + 1) * per_chain)
            .flat_map(|f| (0..BEADS - 1).map(move |b| (f, b)))
            .map(|(f, b)| distance(t.positions(f), b, b + 1))
            .collect();
        let m = mean(&d);
        chain_means.push(m);
        chain_vars.push(d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / d.len() as f64);
    }
    let (m, m_err) = mean_and_error(&chain_means);
    let (v, v_err) = mean_and_error(&chain_vars);
    println!(
        "bond mean {m:.5} ± {m_err:.5} nm (Boltzmann {expected_mean:.5}); \
         variance {v:.6} ± {v_err:.6} nm^2 (Boltzmann {expected_var:.6})"
    );
    // Bond-length fluctuations decorrelate in about 1/gamma = 0.2 ps, so 8 chains x 4
    // bonds x 400 ps give standard errors near 2e-4 nm for the mean and 1 % for the
    // variance (measured over seeds: 1e-4 to 4e-4 nm, 0.3 % to 0.8 %). Tolerances:
    // 1e-3 nm and 4 %. They reject the mean r0 of a missing d^2 factor (0.013 nm
    // away) and a variance off by 10 % (a wrong temperature or spring constant).
    assert!(
        (m - expected_mean).abs() < 1e-3,
        "mean {m} vs {expected_mean}"
    );
    assert!(
        (v / expected_var - 1.0).abs() < 0.04,
        "variance {v} vs {expected_var}"
    );

    // Kinetic temperature: 12 degrees of freedom (3 n - 3), so one frame's temperature
    // fluctuates by T sqrt(2/12) = 122 K; 32000 frames 0.1 ps apart (the kinetic energy
    // decorrelates in 1/(2 gamma) = 0.1 ps) give a standard error near 0.7 K. The
    // half-step velocities also carry the centre-of-mass noise of the last O step,
    // (1 - e^(-2 gamma dt)) 3/2 kT, +0.5 % or 1.5 K here. Tolerance 5 K.
    let temps: Vec<f64> = (0..params.chains)
        .map(|c| mean(&t.kinetic_temperature_k[c * per_chain..(c + 1) * per_chain]))
        .collect();
    let (temperature, t_err) = mean_and_error(&temps);
    println!("kinetic temperature {temperature:.2} ± {t_err:.2} K");
    assert!((temperature - 300.0).abs() < 5.0, "{temperature} K");
    assert!(t.temperature_k.iter().all(|&x| x == 300.0));
}

#[test]
fn saved_frames_hold_u_hat_and_chains_start_from_spread_frames() {
    let config = config(vec![16, 16], 1.0);
    let potential = saved(&config, 5, false);
    let chains = 5;
    let params = CgSampleParams {
        chains,
        equilibration_steps: 0,
        steps: 300,
        save_every: 1,
        ..CgSampleParams::default()
    };
    let out = run_stage(&params, &potential, &mapped(), beads(BEADS), 2).unwrap();
    let t = output(&out);
    assert_eq!(t.len(), chains * 300);
    assert_eq!(out["beads"].as_table().unwrap(), &beads(BEADS));
    // Eligible input frames (temperature_index 0): 0..=6, 8, 10; chain c of 5 starts
    // from eligible[9 c / 5], frames 0, 1, 3, 5, 8.
    let eligible: Vec<usize> = (0..12).filter(|&f| !(f >= 7 && f % 2 == 1)).collect();
    assert_eq!(eligible, [0, 1, 2, 3, 4, 5, 6, 8, 10]);
    let mut host = HostCgPotential::from_tensors(&potential).unwrap();
    let store = ParameterStore::new([5; 32]);
    let (config, priors) = config;
    let reference =
        CgPotential::new(BEADS, config, store.var_builder(DType::F64, &Device::Cpu)).unwrap();
    let mut starts = Vec::new();
    for c in 0..chains {
        let rows: Vec<usize> = (c * 300..(c + 1) * 300).collect();
        assert!(rows.iter().all(|&f| t.replica[f] == c as i32));
        let steps: Vec<i64> = rows.iter().map(|&f| t.step[f]).collect();
        assert_eq!(steps, (1..=300).collect::<Vec<i64>>());
        assert!((t.time_ps[rows[299]] - 0.6).abs() < 1e-12);
        // The first frame, one step in, sits by its starting frame (input frames are
        // 10 nm apart along x).
        let start = eligible[c * eligible.len() / chains];
        starts.push(start);
        let x = t.positions(rows[0]);
        let centroid = (0..BEADS).map(|b| x[3 * b]).sum::<f64>() / BEADS as f64;
        let expected = 10.0 * start as f64 + 0.33 * 2.0;
        assert!(
            (centroid - expected).abs() < 0.1,
            "chain {c}: centroid {centroid}, start frame {start}"
        );
        // The saved energy and forces are U_hat's at the saved positions.
        for &f in rows.iter().step_by(37) {
            let z: Vec<[f64; 3]> = t
                .positions(f)
                .chunks_exact(3)
                .map(|x| [x[0], x[1], x[2]])
                .collect();
            let mut forces = vec![[0.0; 3]; BEADS];
            let u = host.energy_forces(&z, &mut forces);
            assert_eq!(u.to_bits(), t.potential[f].to_bits());
            let flat: Vec<f64> = forces.iter().flatten().copied().collect();
            assert_eq!(flat, t.frame_forces(f));
            let (e_ref, _) = reference
                .energy_and_forces_with(
                    &priors,
                    &single_frame(&z, DType::F64, &Device::Cpu).unwrap(),
                )
                .unwrap();
            let e_ref = e_ref.to_vec1::<f64>().unwrap()[0];
            assert!(
                (u - e_ref).abs() < 1e-10 * e_ref.abs().max(1.0),
                "{u} {e_ref}"
            );
        }
    }
    assert_eq!(starts, [0, 1, 3, 5, 8]);
}

#[test]
fn results_do_not_depend_on_threads() {
    let potential = saved(&config(vec![16, 16], 1.0), 5, false);
    let params = CgSampleParams {
        chains: 3,
        equilibration_steps: 100,
        steps: 1000,
        save_every: 10,
        ..CgSampleParams::default()
    };
    let traj = mapped();
    let run = |seed: u8| bytes(&run_stage(&params, &potential, &traj, beads(BEADS), seed).unwrap());
    let pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    let first = run(9);
    assert_eq!(first, run(9));
    assert_eq!(first, pool(1).install(|| run(9)));
    assert_eq!(first, pool(2).install(|| run(9)));
    assert_ne!(first, run(10));
}

#[test]
fn a_blow_up_names_the_chain_the_step_and_the_beads() {
    let potential = saved(&config(vec![8], 0.0), 3, true);
    let params = CgSampleParams {
        chains: 2,
        timestep_fs: 1000.0,
        equilibration_steps: 0,
        steps: 1000,
        save_every: 10,
        ..CgSampleParams::default()
    };
    match run_stage(&params, &potential, &mapped(), beads(BEADS), 1) {
        Err(StageError::Failed(message)) => {
            println!("{message}");
            // Both chains blow up within a few steps; the first to fail stops the other.
            assert!(
                message.contains("chain 0 blew up at step")
                    || message.contains("chain 1 blew up at step"),
                "{message}"
            );
            assert!(message.contains("(CG "), "{message}");
            assert!(message.contains("beads"), "{message}");
        }
        Err(other) => panic!("expected a blow-up, got {other}"),
        Ok(_) => panic!("a 1 ps step ran without blowing up"),
    }
    // A repulsion far too strong for the starting frames blows up at step 0.
    let params = CgSampleParams {
        max_force_kj_per_mol_nm: 1e5,
        ..CgSampleParams::default()
    };
    let potential = saved(&spec(vec![8], 1e9, 0.4), 3, false);
    match run_stage(&params, &potential, &mapped(), beads(BEADS), 1) {
        Err(StageError::Failed(message)) => {
            assert!(message.contains("chain 0 blew up at step 0"), "{message}");
            assert!(message.contains("input frame 0"), "{message}");
        }
        other => panic!("expected a blow-up, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn mismatched_inputs_are_named() {
    let potential = saved(&config(vec![8], 0.0), 3, true);
    let params = CgSampleParams {
        steps: 10,
        save_every: 10,
        ..CgSampleParams::default()
    };
    let bad_input = |result: Result<Outputs, StageError>| match result {
        Err(StageError::BadInput { input, message }) => (input, message),
        Err(other) => panic!("expected a bad input, got {other}"),
        Ok(_) => panic!("expected a bad input"),
    };
    let (input, message) = bad_input(run_stage(&params, &potential, &mapped(), beads(4), 1));
    assert_eq!(input, "beads");
    assert!(
        message.contains("4 rows") && message.contains("5 beads"),
        "{message}"
    );

    let mut four = Trajectory::new(4);
    let x = vec![
        [0.0, 0.0, 0.0],
        [0.4, 0.0, 0.0],
        [0.8, 0.0, 0.0],
        [1.2, 0.0, 0.0],
    ];
    four.push(FrameRecord {
        temperature_index: 0,
        replica: 0,
        temperature_k: 300.0,
        step: 0,
        time_ps: 0.0,
        positions_nm: &x,
        forces: &x,
        potential: 0.0,
        kinetic_temperature_k: f64::NAN,
    });
    let (input, message) = bad_input(run_stage(&params, &potential, &four, beads(BEADS), 1));
    assert_eq!(input, "trajectory");
    assert!(message.contains("4 beads"), "{message}");

    let none = CgSampleParams {
        temperature_index: 3,
        ..params.clone()
    };
    let (input, message) = bad_input(run_stage(&none, &potential, &mapped(), beads(BEADS), 1));
    assert_eq!(input, "trajectory");
    assert!(message.contains("temperature_index 3"), "{message}");

    let mut nan = mapped();
    nan.positions_nm[3 * 2 + 1] = f64::NAN; // frame 0, bead 2
    let (input, message) = bad_input(run_stage(&params, &potential, &nan, beads(BEADS), 1));
    assert_eq!(input, "trajectory");
    assert!(
        message.contains("frame 0") && message.contains("2 B2"),
        "{message}"
    );

    let mut heavy = beads(BEADS);
    let mut rows = cgloop::artifact::atoms::from_table(&heavy).unwrap();
    rows[2].mass_amu = 0.0;
    heavy = atoms_table(&rows);
    let (input, message) = bad_input(run_stage(&params, &potential, &mapped(), heavy, 1));
    assert_eq!(input, "beads");
    assert!(message.contains("B2"), "{message}");

    let mut broken = potential.clone();
    broken.retain(|t| t.name != "pair_network.layer0.weight");
    let (input, _) = bad_input(run_stage(&params, &broken, &mapped(), beads(BEADS), 1));
    assert_eq!(input, "potential");
}

#[test]
fn nonsense_params_are_refused() {
    let registry = Registry::builtin();
    let stage = registry.get("cg_sample").expect("cg_sample is registered");
    let defaults = stage.default_params();
    assert_eq!(defaults["chains"], 8);
    assert_eq!(defaults["steps"], 100_000);
    for (params, path) in [
        (serde_json::json!({"chains": 0}), "chains"),
        (serde_json::json!({"timestep_fs": -1.0}), "timestep_fs"),
        (
            serde_json::json!({"friction_per_ps": -1.0}),
            "friction_per_ps",
        ),
        (serde_json::json!({"steps": 0}), "steps"),
        (
            serde_json::json!({"steps": 10, "save_every": 20}),
            "save_every",
        ),
        (
            serde_json::json!({"temperature_index": -1}),
            "temperature_index",
        ),
        (
            serde_json::json!({"max_force_kj_per_mol_nm": 0.0}),
            "max_force_kj_per_mol_nm",
        ),
        (serde_json::json!({"temperature": 300}), "temperature"),
    ] {
        let problem = stage.resolve_params(&params).unwrap_err();
        assert_eq!(problem.path, vec![path.to_string()], "{params}");
    }
    assert!(stage.resolve_params(&serde_json::json!({})).is_ok());
    let docs: Vec<&str> = stage.param_docs().iter().map(|d| d.name).collect();
    for key in defaults.as_object().unwrap().keys() {
        assert!(docs.contains(&key.as_str()), "no doc for {key}");
    }
}
