//! The `fg_sample` stage: blow-ups stop the node with the step and the atoms named and
//! publish nothing; bad params are caught before anything runs; a run split into a
//! chain of nodes gives the frames of the unbroken run bit for bit.

use crate::common;

use std::path::Path;

use cgloop::artifact::Artifact;
use cgloop::artifact::md_state::MdStateRecord;
use cgloop::artifact::trajectory::Trajectory;
use cgloop::exec::{Outcome, RunOptions, Store, run};
use cgloop::stages::Registry;
use cgloop::workflow::{self, ErrorKind};
use common::TempDir;

fn workflow_text(params: &str) -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    format!(
        "name: fg\nseed: 5\nnodes:\n  fg:\n    stage: fg_sample\n    params:\n      \
         topology: {}\n      coordinates: {}\n{params}",
        data.join("ala2_ff14SB.prmtop").display(),
        data.join("ala2_ff14SB.inpcrd").display()
    )
}

#[test]
fn a_blow_up_names_the_step_and_atoms_and_publishes_nothing() {
    let dir = TempDir::new("blowup");
    let file = dir.write(
        "wf.yaml",
        &workflow_text(
            "      timestep_fs: 40\n      constraints: none\n      minimize: false\n      \
             equilibration_steps: 0\n      steps: 100\n      save_every: 10\n",
        ),
    );
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    match &report.nodes[0].outcome {
        Outcome::Failed(message) => {
            assert!(message.contains("blow-up at step"), "{message}");
            assert!(
                message.contains("CA (ALA 2)") || message.contains("(ACE 1)"),
                "{message}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(store.keys().unwrap().is_empty());
}

#[test]
fn bad_params_are_reported_before_anything_runs() {
    let dir = TempDir::new("fg-params");
    for (params, path, message) in [
        ("      steps: 0\n", "nodes.fg.params.steps", "at least 1"),
        (
            "      solvent: water\n",
            "nodes.fg.params.solvent",
            "unknown variant `water`",
        ),
        (
            "      replicas: 4\n      max_temperature_k: 250\n",
            "nodes.fg.params.max_temperature_k",
            "must exceed temperature_k",
        ),
    ] {
        let file = dir.write("wf.yaml", &workflow_text(params));
        let Err(errors) = workflow::load(&file, &Registry::builtin()) else {
            panic!("{params} validated");
        };
        let errors = errors.0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].kind, ErrorKind::InvalidParam);
        assert_eq!(errors[0].yaml_path, path);
        assert!(errors[0].message.contains(message), "{}", errors[0].message);
    }
}

/// Replica exchange in OBC2 with H-bond constraints, 2,600 production steps after 50 of
/// equilibration, split after 1,183 steps (between two saved frames, two exchanges and
/// two of the run's 1,000-step chunk boundaries: the velocities' last projection is
/// pending there) and after 1,960 (an exchange step).
#[test]
fn a_chain_of_nodes_gives_the_frames_of_one_unbroken_run() {
    let dir = TempDir::new("fg-chain");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    let node = |id: &str, state: Option<&str>, steps: u64, extra: &str| {
        let inputs = state.map_or(String::new(), |s| {
            format!("    inputs: {{state: {s}.state}}\n")
        });
        format!(
            "  {id}:\n    stage: fg_sample\n{inputs}    params:\n      topology: {}\n      \
             coordinates: {}\n      solvent: obc2\n      replicas: 3\n      \
             max_temperature_k: 450\n      exchange_every: 40\n      save_every: 25\n      \
             save_all_temperatures: true\n      equilibration_steps: 50\n      \
             steps: {steps}\n{extra}",
            data.join("ala2_ff14SB.prmtop").display(),
            data.join("ala2_ff14SB.inpcrd").display(),
        )
    };
    // Two workflows of one seed: the node `fg` runs the same realization in both.
    let store = Store::open(dir.path().join("store")).unwrap();
    let run_text = |name: &str, nodes: String| {
        let file = dir.write(name, &format!("name: chain\nseed: 11\nnodes:\n{nodes}"));
        let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
        run(&wf, &store, &RunOptions::default()).unwrap()
    };
    // `ramachandran` reads the whole run, and the chain as a list of its segments.
    let rama = |trajectory: &str| {
        format!(
            "  rama:\n    stage: ramachandran\n    inputs: {{trajectory: {trajectory}, \
             atoms: fg.atoms}}\n"
        )
    };
    let unbroken = run_text(
        "whole.yaml",
        node("fg", None, 2_600, "") + &rama("fg.trajectory"),
    );
    assert!(unbroken.succeeded(), "{}", unbroken.summary());
    let report = run_text(
        "chain.yaml",
        format!(
            "{}{}{}{}",
            node("fg", None, 1_133, ""),
            node("part2", Some("fg"), 777, ""),
            node("part3", Some("part2"), 690, ""),
            rama("[fg.trajectory, part2.trajectory, part3.trajectory]"),
        ),
    );
    assert!(report.succeeded(), "{}", report.summary());
    let key = |id: &str| match id {
        "whole" => unbroken.nodes.iter().find(|n| n.id == "fg").unwrap().key,
        "whole_rama" => unbroken.nodes.iter().find(|n| n.id == "rama").unwrap().key,
        "part1" => report.nodes.iter().find(|n| n.id == "fg").unwrap().key,
        _ => report.nodes.iter().find(|n| n.id == id).unwrap().key,
    };
    let table = |id: &str, output: &str| match store.load_output(&key(id), output).unwrap() {
        Artifact::Table(t) => t,
        _ => panic!("{output} is not a table"),
    };
    let frames = |id: &str| Trajectory::from_table(&table(id, "trajectory")).unwrap();

    let whole = frames("whole");
    let mut chained = frames("part1");
    assert_eq!(chained.len(), 3 * (1_133 + 50) / 25 - 3 * 50 / 25);
    chained.append(&frames("part2"));
    chained.append(&frames("part3"));
    assert_eq!(whole.len(), 3 * 2_600 / 25);
    assert_eq!(chained.len(), whole.len());
    for i in 0..whole.len() {
        assert_eq!(
            (
                chained.step[i],
                chained.temperature_index[i],
                chained.replica[i]
            ),
            (whole.step[i], whole.temperature_index[i], whole.replica[i]),
            "frame {i}"
        );
        assert!(
            chained.positions(i) == whole.positions(i),
            "frame {i} step {}",
            whole.step[i]
        );
    }
    assert!(
        chained == whole,
        "the chained frames differ from the unbroken run's"
    );
    assert_eq!(table("part3", "exchanges"), table("whole", "exchanges"));
    for output in ["dihedrals", "populations", "free_energy"] {
        assert_eq!(
            table("rama", output),
            table("whole_rama", output),
            "{output}"
        );
    }
    assert_eq!(table("part3", "state"), table("whole", "state"));

    let first = MdStateRecord::from_table(&table("part1", "state")).unwrap();
    assert!(
        first
            .rungs
            .iter()
            .all(|r| r.projection_pending && r.step == 1_183)
    );
    let second = MdStateRecord::from_table(&table("part2", "state")).unwrap();
    assert!(
        second
            .rungs
            .iter()
            .all(|r| !r.projection_pending && r.step == 1_960)
    );
    assert!(second.rungs[0].pair_attempts > 0);

    // A node whose dynamics differ cannot continue the state, and says what differs.
    let report = run_text(
        "other.yaml",
        format!(
            "{}{}",
            node("fg", None, 1_133, ""),
            node(
                "other",
                Some("fg"),
                777,
                "      timestep_fs: 1.5\n      friction_per_ps: 2\n"
            ),
        ),
    );
    match &report
        .nodes
        .iter()
        .find(|n| n.id == "other")
        .unwrap()
        .outcome
    {
        Outcome::Failed(message) => {
            for part in [
                "input `state`",
                "timestep_fs: the state's run had 2.0, this node has 1.5",
                "friction_per_ps",
            ] {
                assert!(message.contains(part), "{message}");
            }
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// 4 fs steps with hydrogens at 3.024 amu run (the mean kinetic temperature of the
/// frames is the thermostat's), and a hydrogen mass that would leave a heavy atom
/// lighter than 1 amu is refused, naming the atom.
#[test]
fn hydrogen_mass_repartitioning_runs_4_fs_steps_and_refuses_a_mass_too_large() {
    let dir = TempDir::new("fg-hmr");
    let store = Store::open(dir.path().join("store")).unwrap();
    let run_params = |params: &str| {
        let file = dir.write("wf.yaml", &workflow_text(params));
        let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
        run(&wf, &store, &RunOptions::default()).unwrap()
    };
    let report = run_params(
        "      solvent: obc2\n      timestep_fs: 4\n      hydrogen_mass_amu: 3.024\n      \
         equilibration_steps: 500\n      steps: 20000\n      save_every: 10\n",
    );
    assert!(report.succeeded(), "{}", report.summary());
    let t = match store
        .load_output(&report.nodes[0].key, "trajectory")
        .unwrap()
    {
        Artifact::Table(t) => Trajectory::from_table(&t).unwrap(),
        _ => panic!("not a table"),
    };
    let mean = t.kinetic_temperature_k.iter().sum::<f64>() / t.len() as f64;
    // 80 ps, about 80 velocity decorrelation times (1 / friction) of a molecule with 51
    // degrees of freedom (60 K spread per frame): a standard error near 7 K.
    println!(
        "mean kinetic temperature {mean:.1} K over {} frames",
        t.len()
    );
    assert!(
        (mean - 300.0).abs() < 25.0,
        "mean kinetic temperature {mean} K"
    );

    let report = run_params("      hydrogen_mass_amu: 5\n      steps: 100\n      save_every: 10\n");
    match &report.nodes[0].outcome {
        Outcome::Failed(message) => {
            assert!(
                message.contains("hydrogen_mass_amu") && message.contains("(ACE 1)"),
                "{message}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A list connected to an input that takes one output, and an empty list, are refused
/// before anything runs, at their YAML paths.
#[test]
fn lists_go_only_to_list_inputs() {
    let dir = TempDir::new("fg-lists");
    for (inputs, path, message) in [
        (
            "{trajectory: [fg.trajectory, fg.trajectory], atoms: [fg.atoms, fg.atoms]}",
            "nodes.rama.inputs.atoms.1",
            "takes one `node.output`, not a list",
        ),
        (
            "{trajectory: [], atoms: fg.atoms}",
            "nodes.rama.inputs.trajectory",
            "found an empty list",
        ),
    ] {
        let text = workflow_text("      steps: 100\n      save_every: 10\n")
            + &format!("  rama:\n    stage: ramachandran\n    inputs: {inputs}\n");
        let file = dir.write("wf.yaml", &text);
        let Err(errors) = workflow::load(&file, &Registry::builtin()) else {
            panic!("{inputs} validated");
        };
        let errors = errors.0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].yaml_path, path);
        assert!(errors[0].message.contains(message), "{}", errors[0].message);
    }
}

/// A run can start from another run's last frame (e.g. an unfolded structure from a hot
/// run), and not from that and a state at once.
#[test]
fn a_run_starts_from_the_last_frame_of_another() {
    let dir = TempDir::new("fg-start");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    let files = format!(
        "topology: {}, coordinates: {}",
        data.join("ala2_ff14SB.prmtop").display(),
        data.join("ala2_ff14SB.inpcrd").display()
    );
    let text = format!(
        "name: start\nseed: 2\nnodes:\n  hot:\n    stage: fg_sample\n    params: {{{files}, \
         temperature_k: 800, steps: 2000, save_every: 500}}\n  next:\n    stage: fg_sample\n    \
         inputs: {{start: hot.trajectory}}\n    params: {{{files}, minimize: false, \
         equilibration_steps: 0, steps: 10, save_every: 1}}\n"
    );
    let file = dir.write("wf.yaml", &text);
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    let frames = |id: &str| {
        let key = report.nodes.iter().find(|n| n.id == id).unwrap().key;
        match store.load_output(&key, "trajectory").unwrap() {
            Artifact::Table(t) => Trajectory::from_table(&t).unwrap(),
            _ => panic!("not a table"),
        }
    };
    let (hot, next) = (frames("hot"), frames("next"));
    let largest_move = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    let last = hot.positions(hot.len() - 1);
    // One 2 fs step from the hot run's last frame, far from where that run began.
    assert!(largest_move(last, next.positions(0)) < 0.02);
    assert!(largest_move(hot.positions(0), next.positions(0)) > 0.05);

    let both = text.replace(
        "inputs: {start: hot.trajectory}",
        "inputs: {start: hot.trajectory, state: hot.state}",
    );
    let file = dir.write("wf.yaml", &both);
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    match &report
        .nodes
        .iter()
        .find(|n| n.id == "next")
        .unwrap()
        .outcome
    {
        Outcome::Failed(message) => assert!(message.contains("not both"), "{message}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}
