//! `train_flow`, `backmap` and `reweight` end to end on a short alanine dipeptide run:
//! the flow's validation NLL improves on the untrained (uniform) flow, backmapped atoms
//! map back onto their CG frames, the recorded densities are those of the saved model,
//! weights are normalized with a consistent ESS and FG energies equal the engine's; the
//! same workflow in a fresh store gives the same bytes, rerunning computes nothing, and
//! changing only the flow's params reruns the flow and what depends on it, nothing
//! upstream.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use cgloop::artifact::tensors::from_table as tensors_from_table;
use cgloop::artifact::trajectory::Trajectory;
use cgloop::exec::export::export_files;
use cgloop::exec::{RunOptions, Store, run};
use cgloop::md::forcefield::{ForceField, Solvent};
use cgloop::md::io::prmtop::read_prmtop;
use cgloop::nn::inverse_map::InverseMap;
use cgloop::stages::Registry;
use cgloop::workflow::{self, Key};
use common::{TempDir, f64_column as floats, i64_column, string_column};

fn data() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide")
}

const STUDY: &str = r#"name: bm
seed: 5
nodes:
  fg:
    stage: fg_sample
    params:
      topology: PRMTOP
      coordinates: INPCRD
      timestep_fs: 1
      constraints: none
      equilibration_steps: 2000
      steps: 30000
      save_every: 50
  map:
    stage: train_map
    inputs: {trajectory: fg.trajectory, atoms: fg.atoms}
    params: {map: fixed, epochs: 1, decoder_epochs: 1, decoder_hidden: [8], restarts: 1}
  fit:
    stage: fit_potential
    inputs: {trajectory: map.trajectory}
    params: {epochs: 2, hidden: [16], basis: 8, repulsion_kj_per_mol: 10}
  cg:
    stage: cg_sample
    inputs: {potential: fit.potential, trajectory: map.trajectory, beads: map.beads}
    params: {chains: 2, steps: 400, save_every: 10, equilibration_steps: 100, timestep_fs: 1}
  flow:
    stage: train_flow
    inputs: {trajectory: fg.trajectory, atoms: fg.atoms, assignment: map.assignment}
    params: {epochs: EPOCHS, hidden: [24], layers: 2, bins: 4, batch_size: 64, learning_rate: 0.003}
  backmap:
    stage: backmap
    inputs: {flow: flow.flow, samples: cg.trajectory}
    params: {samples_per_frame: 2, batch_size: 50}
  reweight:
    stage: reweight
    inputs: {trajectory: backmap.trajectory, densities: backmap.densities, samples: cg.trajectory, flow: flow.flow, force_field: fg.force_field}
    params: {temperature_k: 300}
  rama:
    stage: ramachandran
    inputs: {trajectory: reweight.trajectory, atoms: fg.atoms, weights: reweight.weights}
  compare:
    stage: compare
    inputs: {reference: fg.trajectory, atoms: fg.atoms, sample: reweight.trajectory, weights: reweight.weights}
    params: {blocks: 5, resamples: 20}
"#;

fn workflow_text(flow_epochs: usize) -> String {
    STUDY
        .replace(
            "PRMTOP",
            &data().join("ala2_ff14SB.prmtop").display().to_string(),
        )
        .replace(
            "INPCRD",
            &data().join("ala2_ff14SB.inpcrd").display().to_string(),
        )
        .replace("EPOCHS", &flow_epochs.to_string())
}

fn run_study(
    dir: &TempDir,
    file: &str,
    store: &str,
    flow_epochs: usize,
) -> (Store, cgloop::exec::RunReport) {
    run_text(dir, file, &workflow_text(flow_epochs), store)
}

/// Writes `text` as `file` in `dir`, runs it into the store `dir/store` and checks that
/// every node succeeded.
fn run_text(
    dir: &TempDir,
    file: &str,
    text: &str,
    store: &str,
) -> (Store, cgloop::exec::RunReport) {
    let path = dir.write(file, text);
    let wf = workflow::load(&path, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join(store)).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    (store, report)
}

fn keys(report: &cgloop::exec::RunReport) -> BTreeMap<String, Key> {
    report.nodes.iter().map(|n| (n.id.clone(), n.key)).collect()
}

fn table(store: &Store, key: &Key, output: &str) -> arrow_array::RecordBatch {
    match store.load_output(key, output).unwrap() {
        cgloop::artifact::Artifact::Table(t) => t,
        _ => panic!("{output} is not a table"),
    }
}

/// The bead positions of the CG frame behind each backmapped row (`cg_frame` of a
/// backmap's densities table), flat.
fn cg_images(densities: &arrow_array::RecordBatch, cg: &Trajectory) -> Vec<f64> {
    i64_column(densities, "cg_frame")
        .iter()
        .flat_map(|&f| cg.positions(f as usize).to_vec())
        .collect()
}

#[test]
fn flow_backmap_and_reweight_on_alanine_dipeptide() {
    let dir = TempDir::new("backmapping");
    let (store, report) = run_study(&dir, "a.yaml", "a", 3);
    let k = keys(&report);

    // The flow learned something: the validation NLL fell below the first epoch's.
    let curve = table(&store, &k["flow"], "learning_curve");
    let validation = floats(&curve, "validation_nll");
    assert_eq!(validation.len(), 3);
    let best = validation.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(best < validation[0], "{validation:?}");

    // Backmapped frames: two per CG frame; their beads are the CG frames' up to a rigid
    // motion (the backbone map pins the beads' internal coordinates).
    let model =
        InverseMap::load(&tensors_from_table(&table(&store, &k["flow"], "flow")).unwrap()).unwrap();
    assert_eq!(model.pinned, 9);
    let cg = Trajectory::from_table(&table(&store, &k["cg"], "trajectory")).unwrap();
    let back = Trajectory::from_table(&table(&store, &k["backmap"], "trajectory")).unwrap();
    assert_eq!(back.len(), 2 * cg.len());
    let densities = table(&store, &k["backmap"], "densities");
    let z = cg_images(&densities, &cg);
    let s_cg = model.cg_coordinates(&z);
    let s_back = model.cg_coordinates(&model.bead_positions(&back.positions_nm));
    let worst = s_cg
        .iter()
        .zip(&s_back)
        .map(|(a, b)| cgloop::geometry::zmatrix::wrap_angle(a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-9,
        "CG coordinates of the backmapped atoms off by {worst}"
    );

    // The recorded log p(q | z) and log J(q) are the saved model's at the rebuilt atoms.
    let q = model.zmatrix.to_internal_frames(&back.positions_nm);
    let log_q = floats(&densities, "log_q_given_z");
    let again = model.log_prob(&q, &s_cg).unwrap().to_vec1::<f64>().unwrap();
    for (a, b) in log_q.iter().zip(&again) {
        assert!((a - b).abs() < 1e-6 * (1.0 + a.abs()), "{a} vs {b}");
    }
    let log_j = floats(&densities, "log_jacobian");
    let d = model.zmatrix.n_dof();
    for (i, row) in q.chunks(d).enumerate() {
        assert!((log_j[i] - model.zmatrix.log_jacobian(row)).abs() < 1e-9);
    }

    // Weights: normalized, ESS consistent, FG energies the engine's.
    let weights = table(&store, &k["reweight"], "weights");
    let w = floats(&weights, "weight");
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(w.iter().all(|&x| (0.0..=1.0).contains(&x)));
    let summary = table(&store, &k["reweight"], "summary");
    let ess = floats(&summary, "ess")[0];
    let expected = 1.0 / w.iter().map(|x| x * x).sum::<f64>();
    assert!((ess - expected).abs() < 1e-9 * expected);
    assert!(ess >= 1.0 && ess <= w.len() as f64);
    assert_eq!(string_column(&summary, "estimator"), ["extended"]);
    let energies = floats(&weights, "fg_potential_kj_per_mol");
    let topology = read_prmtop(&data().join("ala2_ff14SB.prmtop")).unwrap();
    let mut ff = ForceField::new(&topology, Solvent::Vacuum).unwrap();
    let mut forces = vec![[0.0; 3]; topology.n_atoms()];
    for i in [0, back.len() / 2, back.len() - 1] {
        let x: Vec<[f64; 3]> = back
            .positions(i)
            .chunks(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        assert_eq!(energies[i], ff.compute(&x, &mut forces).total());
    }
    let reweighted = Trajectory::from_table(&table(&store, &k["reweight"], "trajectory")).unwrap();
    assert_eq!(reweighted.potential, energies);

    // The comparison: populations are distributions for each estimate; the reference
    // energy mean is the FG trajectory's; the report is exported with its links.
    let populations = table(&store, &k["compare"], "populations");
    for e in ["reference", "raw", "reweighted"] {
        let total: f64 = floats(&populations, e).iter().sum();
        assert!((total - 1.0).abs() < 1e-9, "{e}: {total}");
    }
    // Every backmapped sample is in one basin, and a basin's ESS is at most its count.
    let samples = i64_column(&populations, "samples");
    assert_eq!(samples.iter().sum::<i64>() as usize, back.len());
    for (ess, n) in floats(&populations, "ess").iter().zip(&samples) {
        assert!(*ess <= *n as f64 * (1.0 + 1e-12) && (*n == 0) == (*ess == 0.0));
    }
    let observables = table(&store, &k["compare"], "observables");
    let fg = Trajectory::from_table(&table(&store, &k["fg"], "trajectory")).unwrap();
    let u_ref = *floats(&observables, "reference_mean").last().unwrap();
    let direct = fg.potential.iter().sum::<f64>() / fg.len() as f64;
    assert!((u_ref - direct).abs() < 1e-9 * direct.abs());
    let u_rw = *floats(&observables, "reweighted_mean").last().unwrap();
    let direct: f64 = w.iter().zip(&energies).map(|(w, e)| w * e).sum();
    assert!((u_rw - direct).abs() < 1e-9 * direct.abs().max(1.0));
    // The joint tests: the statistics are those of the observables' z-scores.
    let joint = table(&store, &k["compare"], "agreement");
    assert_eq!(joint.num_rows(), 4);
    for c in ["within_2se_p", "sum_z2_p", "max_abs_z_p"] {
        assert!(
            floats(&joint, c).iter().all(|&p| p > 0.0 && p <= 1.0),
            "{c}"
        );
    }
    let (sum_z2, max_z) = (floats(&joint, "sum_z2"), floats(&joint, "max_abs_z"));
    for (row, column) in [
        "raw_mean_z",
        "raw_variance_z",
        "reweighted_mean_z",
        "reweighted_variance_z",
    ]
    .iter()
    .enumerate()
    {
        let z: Vec<f64> = floats(&observables, column)
            .into_iter()
            .filter(|z| z.is_finite())
            .collect();
        let sum: f64 = z.iter().map(|z| z * z).sum();
        assert!((sum_z2[row] - sum).abs() < 1e-9 * sum.max(1.0), "{column}");
        let max = z.iter().fold(0.0f64, |m, z| m.max(z.abs()));
        assert!((max_z[row] - max).abs() < 1e-12 * max.max(1.0), "{column}");
    }
    let exported = dir.path().join("export");
    let files = export_files(&store, &report, &exported).unwrap();
    assert!(files.contains(&exported.join("compare/plot.png")));
    assert!(files.contains(&exported.join("compare/free_energy_2d.png")));
    let md = std::fs::read_to_string(exported.join("report.md")).unwrap();
    assert!(md.contains("](compare/plot.png)"), "{md}");
    assert!(md.contains("](compare/free_energy_2d.png)"), "{md}");

    structures_round_trip(&dir, &store, &k, &reweighted, &w);
    assert!(md.contains("| C7ax/alpha_L |"), "{md}");

    // Rerunning into the same store computes nothing.
    let (_, rerun) = run_study(&dir, "a.yaml", "a", 3);
    assert!(rerun.ran().is_empty(), "{}", rerun.summary());

    // Changing only the flow's params reruns flow and what depends on it.
    let (_, changed) = run_study(&dir, "c.yaml", "a", 2);
    let mut ran: Vec<&str> = changed.ran();
    ran.sort();
    assert_eq!(
        ran,
        ["backmap", "compare", "flow", "rama", "reweight"],
        "{}",
        changed.summary()
    );

    // Same workflow, fresh store: the same bytes.
    let (fresh, fresh_report) = run_study(&dir, "a.yaml", "b", 3);
    let fk = keys(&fresh_report);
    for (node, outputs) in [
        ("flow", &["flow", "learning_curve", "coordinates"][..]),
        ("backmap", &["trajectory", "densities"][..]),
        ("reweight", &["trajectory", "weights", "summary"][..]),
    ] {
        assert_eq!(k[node], fk[node]);
        for output in outputs {
            let file = format!("{output}.parquet");
            assert_eq!(
                std::fs::read(store.node_dir(&k[node]).join(&file)).unwrap(),
                std::fs::read(fresh.node_dir(&fk[node]).join(&file)).unwrap(),
                "{node}.{output}"
            );
        }
    }
}

/// train_flow learns from one rung (`temperature_index: 0`, the default, saved as 0 so
/// flows trained before keep their keys) or from a list of rungs; nonsense is refused.
/// The FG energy of backmapped frame `i` under `prmtop` in vacuum.
fn energy_of(prmtop: &str, back: &Trajectory, i: usize) -> f64 {
    let topology = read_prmtop(&data().join(prmtop)).unwrap();
    let mut ff = ForceField::new(&topology, Solvent::Vacuum).unwrap();
    let x: Vec<[f64; 3]> = back
        .positions(i)
        .chunks(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    ff.compute(&x, &mut vec![[0.0; 3]; x.len()]).total()
}

#[test]
fn reweight_targets_the_force_field_the_frames_were_sampled_with() {
    let dir = TempDir::new("reweight_force_field");
    // fg samples ff99SB-ILDN; reweight names no topology and takes fg's force field.
    let ildn = workflow_text(1).replacen("ala2_ff14SB.prmtop", "ala2_ff99SBildn.prmtop", 1);
    let (store, report) = run_text(&dir, "ildn.yaml", &ildn, "store");
    let k = keys(&report);
    let back = Trajectory::from_table(&table(&store, &k["backmap"], "trajectory")).unwrap();
    let energies = floats(
        &table(&store, &k["reweight"], "weights"),
        "fg_potential_kj_per_mol",
    );
    for i in [0, back.len() - 1] {
        assert_eq!(energies[i], energy_of("ala2_ff99SBildn.prmtop", &back, i));
        assert_ne!(energies[i], energy_of("ala2_ff14SB.prmtop", &back, i));
    }

    // A topology in reweight's params that is not the sampled one is an error naming
    // both; so is no force field at all.
    let ff14sb = data().join("ala2_ff14SB.prmtop").display().to_string();
    for (name, params, inputs, expected) in [
        (
            "other.yaml",
            format!("{{topology: {ff14sb}, temperature_k: 300}}"),
            ", force_field: fg.force_field",
            "is not the topology the FG frames were sampled with (",
        ),
        (
            "solvent.yaml",
            "{solvent: obc2, temperature_k: 300}".to_string(),
            ", force_field: fg.force_field",
            "is not the solvent the FG frames were sampled in (vacuum",
        ),
        (
            "none.yaml",
            "{temperature_k: 300}".to_string(),
            "",
            "no FG force field to reweight to",
        ),
    ] {
        let text = ildn
            .replace(", force_field: fg.force_field}", &format!("{inputs}}}"))
            .replace("params: {temperature_k: 300}", &format!("params: {params}"));
        let path = dir.write(name, &text);
        let wf = workflow::load(&path, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
        let report = run(&wf, &store, &RunOptions::default()).unwrap();
        assert!(!report.succeeded(), "{name}");
        assert!(report.ran().is_empty(), "{name}: {:?}", report.ran());
        let failed: Vec<String> = report
            .nodes
            .iter()
            .filter_map(|n| match &n.outcome {
                cgloop::exec::Outcome::Failed(e) => Some(format!("{}: {e}", n.id)),
                _ => None,
            })
            .collect();
        assert_eq!(failed.len(), 1, "{name}: {failed:?}");
        assert!(
            failed[0].starts_with("reweight: ") && failed[0].contains(expected),
            "{name}: {failed:?}"
        );
    }
}

#[test]
fn train_flow_takes_one_rung_or_a_list_of_them() {
    let registry = Registry::builtin();
    let stage = registry
        .get("train_flow")
        .expect("train_flow is registered");
    assert_eq!(stage.default_params()["temperature_index"], 0);
    for ok in [
        serde_json::json!({"temperature_index": 2}),
        serde_json::json!({"temperature_index": [0, 1, 2, 3]}),
    ] {
        let resolved = stage.resolve_params(&ok).unwrap();
        assert_eq!(resolved.value["temperature_index"], ok["temperature_index"]);
    }
    for bad in [
        serde_json::json!({"temperature_index": -1}),
        serde_json::json!({"temperature_index": []}),
        serde_json::json!({"temperature_index": [0, -2]}),
        serde_json::json!({"temperature_index": [0, 1, 0]}),
    ] {
        let problem = stage.resolve_params(&bad).expect_err(&bad.to_string());
        assert_eq!(problem.path, vec!["temperature_index".to_string()], "{bad}");
    }
}

/// train_flow's optional `more` input: frames of a second run (here plain MD started in
/// C7ax, `datasets/alanine_dipeptide/ala2_ff14SB_c7ax.pdb`) join the main trajectory's,
/// each run split into validation blocks on its own: a quarter of each held out.
#[test]
fn train_flow_learns_from_more_frames() {
    let dir = TempDir::new("backmapping_more");
    let text = format!(
        r#"name: more
seed: 3
nodes:
  fg:
    stage: fg_sample
    params: {{topology: {prmtop}, coordinates: {inpcrd}, timestep_fs: 1, constraints: none, equilibration_steps: 500, steps: 4000, save_every: 50}}
  c7ax:
    stage: fg_sample
    params: {{topology: {prmtop}, coordinates: {c7ax}, timestep_fs: 1, constraints: none, equilibration_steps: 500, steps: 2000, save_every: 50}}
  map:
    stage: train_map
    inputs: {{trajectory: fg.trajectory, atoms: fg.atoms}}
    params: {{map: fixed, epochs: 1, decoder_epochs: 1, decoder_hidden: [8], restarts: 1}}
  flow:
    stage: train_flow
    inputs: {{trajectory: fg.trajectory, atoms: fg.atoms, assignment: map.assignment, more: c7ax.trajectory}}
    params: {{epochs: 1, hidden: [8], layers: 1, bins: 4, batch_size: 32, validation_blocks: 4}}
"#,
        prmtop = data().join("ala2_ff14SB.prmtop").display(),
        inpcrd = data().join("ala2_ff14SB.inpcrd").display(),
        c7ax = data().join("ala2_ff14SB_c7ax.pdb").display(),
    );
    let (store, report) = run_text(&dir, "more.yaml", &text, "store");
    let k = keys(&report);
    let frames = |node: &str| {
        Trajectory::from_table(&table(&store, &k[node], "trajectory"))
            .unwrap()
            .len()
    };
    let (main, more) = (frames("fg"), frames("c7ax"));
    assert_eq!((main, more), (80, 40));
    let svg = match store.load_output(&k["flow"], "learning_curve_svg").unwrap() {
        cgloop::artifact::Artifact::File(bytes) => String::from_utf8(bytes).unwrap(),
        _ => panic!("the learning curve SVG is not a file"),
    };
    let title = svg
        .split("train_flow: ")
        .nth(1)
        .and_then(|t| t.split(" frames").next())
        .unwrap_or_else(|| panic!("no title in the learning-curve SVG"));
    // "90 training / 27 validation": 60 + 30 frames train; of the 20 + 10 held out, those
    // with a bond or angle outside the training frames' box are left out. (The counts do
    // not show which source each frame came from: `nn::training`'s unit test
    // `sources_are_split_on_their_own` checks that each source is split on its own.)
    let counts: Vec<usize> = title
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(counts[0], (main + more) * 3 / 4, "{title}");
    assert!((20..=30).contains(&counts[1]), "{title}");
}

/// backmap with `flow2`: draws alternate between the two flows, and each records the
/// density of their equal mixture, ln((p_a + p_b) / 2), at the rebuilt atoms.
#[test]
fn backmap_draws_from_a_mixture_of_two_flows() {
    let dir = TempDir::new("backmapping_mixture");
    let text = workflow_text(2)
        + r#"  flow_b:
    stage: train_flow
    inputs: {trajectory: fg.trajectory, atoms: fg.atoms, assignment: map.assignment}
    params: {epochs: 1, hidden: [16], layers: 2, bins: 4, batch_size: 64, learning_rate: 0.003}
  mix:
    stage: backmap
    inputs: {flow: flow.flow, samples: cg.trajectory, flow2: flow_b.flow}
    params: {samples_per_frame: 2, batch_size: 7}
"#;
    let (store, report) = run_text(&dir, "mix.yaml", &text, "store");
    let k = keys(&report);
    let load = |node: &str| {
        InverseMap::load(&tensors_from_table(&table(&store, &k[node], "flow")).unwrap()).unwrap()
    };
    let (a, b) = (load("flow"), load("flow_b"));
    let cg = Trajectory::from_table(&table(&store, &k["cg"], "trajectory")).unwrap();
    let back = Trajectory::from_table(&table(&store, &k["mix"], "trajectory")).unwrap();
    let densities = table(&store, &k["mix"], "densities");
    let z = cg_images(&densities, &cg);
    let s = a.cg_coordinates(&z);
    let q = a.zmatrix.to_internal_frames(&back.positions_nm);
    let density = |m: &InverseMap| {
        let mut lp = m.log_prob(&q, &s).unwrap().to_vec1::<f64>().unwrap();
        for r in m.unit_box.rows_outside(&m.drawn(&q)) {
            lp[r] = f64::NEG_INFINITY;
        }
        lp
    };
    let (pa, pb) = (density(&a), density(&b));
    let log_q = floats(&densities, "log_q_given_z");
    assert_eq!(log_q.len(), 2 * cg.len());
    let mut differ = 0;
    for i in 0..log_q.len() {
        let mix = ((pa[i].exp() + pb[i].exp()) / 2.0).ln();
        assert!(
            (log_q[i] - mix).abs() < 1e-6 * (1.0 + mix.abs()),
            "row {i}: recorded {} vs mixture {mix}",
            log_q[i]
        );
        differ += usize::from((pa[i] - pb[i]).abs() > 1e-3);
    }
    // The two flows are different models (else the test would not test the mixture).
    assert!(differ > log_q.len() / 2, "{differ} of {}", log_q.len());
}

/// compare's optional `more_reference`: a second FG run's frames join the reference (the
/// reference frame count and energy mean are those of both runs together); a run at
/// another temperature is refused, naming the input.
#[test]
fn compare_pools_a_second_reference_run() {
    let dir = TempDir::new("backmapping_more_reference");
    let prmtop = data().join("ala2_ff14SB.prmtop").display().to_string();
    let inpcrd = data().join("ala2_ff14SB.inpcrd").display().to_string();
    let second = |name: &str, kelvin: u32| {
        format!(
            "  {name}:\n    stage: fg_sample\n    params: {{topology: {prmtop}, coordinates: {inpcrd}, \
             temperature_k: {kelvin}, timestep_fs: 1, constraints: none, equilibration_steps: 500, \
             steps: 6000, save_every: 50}}\n"
        )
    };
    let compare = |name: &str, more: &str| {
        format!(
            "  {name}:\n    stage: compare\n    inputs: {{reference: fg.trajectory, more_reference: \
             {more}.trajectory, atoms: fg.atoms, sample: reweight.trajectory, weights: \
             reweight.weights}}\n    params: {{blocks: 5, resamples: 20}}\n"
        )
    };
    // One bootstrap block: every error is zero, so the joint tests have nothing to test
    // and write NaN rather than fail the node.
    let one_block = "  one_block:\n    stage: compare\n    inputs: {reference: fg.trajectory, atoms: \
                     fg.atoms, sample: reweight.trajectory, weights: reweight.weights}\n    \
                     params: {blocks: 1, resamples: 5}\n";
    let text = workflow_text(1) + &second("fg2", 300) + &compare("pooled", "fg2") + one_block;
    let (store, report) = run_text(&dir, "pooled.yaml", &text, "store");
    let k = keys(&report);
    let fg = Trajectory::from_table(&table(&store, &k["fg"], "trajectory")).unwrap();
    let fg2 = Trajectory::from_table(&table(&store, &k["fg2"], "trajectory")).unwrap();
    let summary = table(&store, &k["pooled"], "summary");
    let frames = i64_column(&summary, "reference_frames")[0] as usize;
    assert_eq!(frames, fg.len() + fg2.len());
    let u_ref = *floats(
        &table(&store, &k["pooled"], "observables"),
        "reference_mean",
    )
    .last()
    .unwrap();
    let both: f64 = fg.potential.iter().chain(&fg2.potential).sum::<f64>() / frames as f64;
    assert!(
        (u_ref - both).abs() < 1e-9 * both.abs(),
        "{u_ref} vs {both}"
    );
    let joint = table(&store, &k["one_block"], "agreement");
    assert!(floats(&joint, "sum_z2").iter().all(|v| v.is_nan()));

    let text = workflow_text(1) + &second("fg_hot", 350) + &compare("mixed", "fg_hot");
    let path = dir.write("mixed.yaml", &text);
    let wf = workflow::load(&path, &Registry::builtin()).unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    let failure = report
        .nodes
        .iter()
        .find_map(|n| match &n.outcome {
            cgloop::exec::Outcome::Failed(e) if n.id == "mixed" => Some(e.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("`mixed` did not fail: {}", report.summary()));
    assert!(
        failure.contains("more_reference") && failure.contains("350"),
        "{failure}"
    );
}

/// `cgloop export`'s library half: the reweighted atoms as multi-model PDB and as DCD
/// with its PDB topology, read back by our own readers; a slice, and resampling by the
/// weights.
fn structures_round_trip(
    dir: &TempDir,
    store: &Store,
    k: &BTreeMap<String, Key>,
    reweighted: &Trajectory,
    weights: &[f64],
) {
    use cgloop::exec::structures::{ExportRequest, FrameSlice, export_structures};
    use cgloop::md::io::dcd::read_dcd;
    use cgloop::md::io::pdb::read_pdb;

    let request = |out: &str, frames: &str, resample: Option<usize>| ExportRequest {
        key: k["reweight"],
        output: "trajectory".into(),
        out: dir.path().join(out),
        temperature_index: None,
        frames: FrameSlice::parse(frames).unwrap(),
        resample,
        seed: 3,
    };
    let n = reweighted.n_atoms;
    let frame = |i: usize| -> Vec<[f64; 3]> {
        reweighted
            .positions(i)
            .chunks(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect()
    };
    let close = |a: &[[f64; 3]], b: &[[f64; 3]], tolerance_nm: f64| {
        a.iter()
            .zip(b)
            .all(|(p, q)| (0..3).all(|d| (p[d] - q[d]).abs() <= tolerance_nm))
    };

    // PDB: every 7th frame, names from the FG run's atoms (found upstream), 1e-4 nm.
    let summary = export_structures(store, &request("slice.pdb", "::7", None)).unwrap();
    assert!(
        summary.atoms_from.contains("`fg`"),
        "{}",
        summary.atoms_from
    );
    let pdb = read_pdb(&dir.path().join("slice.pdb")).unwrap();
    let chosen: Vec<usize> = (0..reweighted.len()).step_by(7).collect();
    assert_eq!(pdb.frames.len(), chosen.len());
    assert_eq!(pdb.atoms.len(), n);
    assert_eq!(pdb.atoms[1].name, "CH3");
    for (model, &i) in pdb.frames.iter().zip(&chosen) {
        assert!(close(model, &frame(i), 0.5e-4 + 1e-12), "frame {i}");
    }

    // DCD (float32 Å) with its topology beside it.
    let summary = export_structures(store, &request("all.dcd", "::", None)).unwrap();
    assert_eq!(summary.files.len(), 2);
    let dcd = read_dcd(&dir.path().join("all.dcd")).unwrap();
    let topology = read_pdb(&dir.path().join("all.pdb")).unwrap();
    assert_eq!((dcd.n_atoms, topology.atoms.len()), (n, n));
    assert_eq!(dcd.frames.len(), reweighted.len());
    for (i, f) in dcd.frames.iter().enumerate() {
        assert!(close(f, &frame(i), 1e-6), "frame {i}");
    }

    // Resampled by weight: only frames of positive weight, the heaviest most often.
    let summary = export_structures(store, &request("drawn.pdb", "::", Some(50))).unwrap();
    assert_eq!(summary.frames, 50);
    let drawn = read_pdb(&dir.path().join("drawn.pdb")).unwrap();
    let heaviest = (0..weights.len())
        .max_by(|&a, &b| weights[a].total_cmp(&weights[b]))
        .unwrap();
    let copies = drawn
        .frames
        .iter()
        .filter(|f| close(f, &frame(heaviest), 1e-4))
        .count();
    let expected = 50.0 * weights[heaviest];
    assert!(
        (copies as f64 - expected).abs() <= 1.0,
        "{copies} copies of the heaviest frame, expected {expected:.1}"
    );

    // Errors the user can fix name what is wrong.
    let err = export_structures(store, &request("x.xyz", "::", None)).unwrap_err();
    assert!(err.to_string().contains(".pdb"), "{err}");
    let mut bad = request("w.pdb", "::", Some(5));
    bad.key = k["backmap"];
    let err = export_structures(store, &bad).unwrap_err();
    assert!(err.to_string().contains("no `weights` output"), "{err}");
}
