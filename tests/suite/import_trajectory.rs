//! The `import_trajectory` stage in a workflow: frames from a multi-model PDB (written by
//! cgloop's PDB writer), a DCD and an XTC (written by MDTraj, see
//! `tests/data/import_trajectory/make_fixtures.py`) and a DCD from a small writer here
//! come back at the format's precision, with the engine's energies and forces.

use crate::common;

use std::path::{Path, PathBuf};

use cgloop::artifact::atoms;
use cgloop::artifact::trajectory::Trajectory;
use cgloop::exec::{Outcome, RunOptions, RunReport, Store, run};
use cgloop::md::forcefield::{ForceField, Solvent};
use cgloop::md::io::pdb::{PdbAtom, write_pdb};
use cgloop::md::io::prmtop::read_prmtop;
use cgloop::md::topology::Topology;
use cgloop::stages::Registry;
use cgloop::workflow;
use common::TempDir;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn prmtop() -> PathBuf {
    root().join("datasets/alanine_dipeptide/ala2_ff14SB.prmtop")
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/data/import_trajectory").join(name)
}

fn topology() -> Topology {
    read_prmtop(&prmtop()).unwrap()
}

/// The positions (nm) the fixtures hold, frames x atoms.
fn written_frames() -> Vec<Vec<[f64; 3]>> {
    let text = std::fs::read_to_string(fixture("ala2_frames.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["positions_nm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|frame| {
            frame
                .as_array()
                .unwrap()
                .iter()
                .map(|atom| {
                    let a = atom.as_array().unwrap();
                    [
                        a[0].as_f64().unwrap(),
                        a[1].as_f64().unwrap(),
                        a[2].as_f64().unwrap(),
                    ]
                })
                .collect()
        })
        .collect()
}

/// Runs one `import_trajectory` node with `params` (YAML flow-map entries) into a fresh
/// store in `dir`.
fn import(dir: &TempDir, frames: &Path, params: &str) -> (RunReport, Store) {
    let yaml = format!(
        "name: import\nseed: 1\nnodes:\n  imported:\n    stage: import_trajectory\n    \
         params: {{topology: \"{}\", frames: \"{}\"{}}}\n",
        prmtop().display(),
        frames.display(),
        if params.is_empty() {
            String::new()
        } else {
            format!(", {params}")
        }
    );
    let file = dir.write("wf.yaml", &yaml);
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    (report, store)
}

fn imported(dir: &TempDir, frames: &Path, params: &str) -> Trajectory {
    let (report, store) = import(dir, frames, params);
    assert!(report.succeeded(), "{report:?}");
    let key = report.nodes[0].key;
    let atoms = store.load_output(&key, "atoms").unwrap();
    let atoms = atoms::from_table(atoms.as_table().unwrap()).unwrap();
    assert_eq!(atoms.len(), 22);
    assert_eq!(atoms[1].name, "CH3");
    let table = store.load_output(&key, "trajectory").unwrap();
    Trajectory::from_table(table.as_table().unwrap()).unwrap()
}

fn failure(dir: &TempDir, frames: &Path, params: &str) -> String {
    let (report, _) = import(dir, frames, params);
    match &report.nodes[0].outcome {
        Outcome::Failed(message) => message.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Positions within `tolerance` nm of the written frames `rows`; energies and forces
/// those of the engine on the imported positions; times and steps from the file index.
fn check(t: &Trajectory, rows: &[usize], tolerance: f64, solvent: Solvent, timestep_ps: f64) {
    let written = written_frames();
    assert_eq!(t.len(), rows.len());
    assert_eq!(t.n_atoms, 22);
    let mut forcefield = ForceField::new(&topology(), solvent).unwrap();
    for (k, &row) in rows.iter().enumerate() {
        let positions: Vec<[f64; 3]> = t
            .positions(k)
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        let worst = positions
            .iter()
            .flatten()
            .zip(written[row].iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= tolerance,
            "frame {row}: position off by {worst} nm"
        );
        let mut forces = vec![[0.0; 3]; 22];
        let energy = forcefield.compute(&positions, &mut forces).total();
        assert!(energy.is_finite());
        assert_eq!(t.potential[k], energy, "frame {row}");
        assert_eq!(
            t.frame_forces(k),
            forces.iter().flatten().copied().collect::<Vec<_>>()
        );
        assert_eq!(t.step[k], row as i64);
        assert_eq!(t.time_ps[k], row as f64 * timestep_ps);
        assert!(t.kinetic_temperature_k[k].is_nan(), "unknown is NaN");
        assert_eq!(t.temperature_index[k], 0);
    }
}

#[test]
fn a_multi_model_pdb_round_trips_with_the_engines_energies() {
    let dir = TempDir::new("import-pdb");
    let frames = written_frames();
    let text = write_pdb(&PdbAtom::from_topology(&topology()), &frames).unwrap();
    let pdb = dir.write("frames.pdb", &text);
    let t = imported(
        &dir,
        &pdb,
        "solvent: obc2, temperature_k: 310, timestep_ps: 0.5",
    );
    // 8.3f in Å: half of 1e-3 Å.
    check(&t, &[0, 1, 2, 3], 0.5e-4 + 1e-12, Solvent::Obc2, 0.5);
    assert!(t.temperature_k.iter().all(|&k| k == 310.0));
}

/// CHARMM-flavour DCD with a unit cell record before every frame, as OpenMM writes it.
#[test]
fn an_mdtraj_dcd_round_trips_to_float32_with_a_stride() {
    let dir = TempDir::new("import-dcd");
    let t = imported(&dir, &fixture("ala2_frames.dcd"), "stride: 2");
    check(&t, &[0, 2], 2e-7, Solvent::Vacuum, 1.0);
}

#[test]
fn an_mdtraj_xtc_round_trips_to_its_precision() {
    let dir = TempDir::new("import-xtc");
    let t = imported(
        &dir,
        &fixture("ala2_frames.xtc"),
        "solvent: obc2, timestep_ps: 2",
    );
    // Precision 1000/nm: within half of 1e-3 nm.
    check(&t, &[0, 1, 2, 3], 0.5e-3 + 1e-6, Solvent::Obc2, 2.0);
}

fn record(out: &mut Vec<u8>, payload: &[u8], big_endian: bool) {
    let length = payload.len() as i32;
    let marker = if big_endian {
        length.to_be_bytes()
    } else {
        length.to_le_bytes()
    };
    out.extend(marker);
    out.extend(payload);
    out.extend(marker);
}

/// A DCD as NAMD writes it without a unit cell (CHARMM version 24, float32 Å).
fn write_dcd(frames: &[Vec<[f64; 3]>], big_endian: bool) -> Vec<u8> {
    let int = |v: i32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    let mut header = b"CORD".to_vec();
    let mut icntrl = [0i32; 20];
    icntrl[0] = frames.len() as i32;
    icntrl[2] = 500;
    icntrl[19] = 24;
    header.extend(icntrl.iter().flat_map(|&v| int(v)));
    record(&mut out, &header, big_endian);
    let mut title = int(1).to_vec();
    title.extend(format!("{:<80}", "REMARKS written by tests/import_trajectory.rs").bytes());
    record(&mut out, &title, big_endian);
    record(&mut out, &int(frames[0].len() as i32), big_endian);
    for frame in frames {
        for d in 0..3 {
            let values: Vec<u8> = frame
                .iter()
                .flat_map(|p| {
                    let angstrom = (p[d] * 10.0) as f32;
                    if big_endian {
                        angstrom.to_be_bytes()
                    } else {
                        angstrom.to_le_bytes()
                    }
                })
                .collect();
            record(&mut out, &values, big_endian);
        }
    }
    out
}

#[test]
fn a_dcd_without_unit_cell_reads_and_broken_ones_name_file_and_frame() {
    let dir = TempDir::new("import-dcd-own");
    let frames = written_frames();
    let path = dir.path().join("own.dcd");
    std::fs::write(&path, write_dcd(&frames, false)).unwrap();
    let t = imported(&dir, &path, "stride: 3");
    check(&t, &[0, 3], 2e-7, Solvent::Vacuum, 1.0);

    let mut cut = write_dcd(&frames, false);
    cut.truncate(cut.len() - 20);
    let path = dir.path().join("cut.dcd");
    std::fs::write(&path, cut).unwrap();
    let message = failure(&dir, &path, "");
    assert!(
        message.contains("cut.dcd") && message.contains("frame 4"),
        "{message}"
    );

    let path = dir.path().join("big.dcd");
    std::fs::write(&path, write_dcd(&frames, true)).unwrap();
    let message = failure(&dir, &path, "");
    assert!(
        message.contains("big.dcd") && message.contains("big-endian"),
        "{message}"
    );

    // Frames of the wrong molecule.
    let few: Vec<Vec<[f64; 3]>> = frames.iter().map(|f| f[..10].to_vec()).collect();
    let path = dir.path().join("few.dcd");
    std::fs::write(&path, write_dcd(&few, false)).unwrap();
    let message = failure(&dir, &path, "");
    assert!(
        message.contains("few.dcd") && message.contains("frame 1 has 10 atoms"),
        "{message}"
    );
}

#[test]
fn a_corrupt_xtc_names_file_and_frame_and_an_unknown_extension_needs_format() {
    let dir = TempDir::new("import-xtc-bad");
    let mut bytes = std::fs::read(fixture("ala2_frames.xtc")).unwrap();
    bytes.truncate(bytes.len() - 9);
    let path = dir.path().join("cut.xtc");
    std::fs::write(&path, &bytes).unwrap();
    let message = failure(&dir, &path, "");
    assert!(
        message.contains("cut.xtc") && message.contains("frame 4"),
        "{message}"
    );

    let path = dir.path().join("frames.trr");
    std::fs::write(&path, b"whatever").unwrap();
    let yaml = format!(
        "name: import\nseed: 1\nnodes:\n  imported:\n    stage: import_trajectory\n    \
         params: {{topology: \"{}\", frames: \"{}\"}}\n",
        prmtop().display(),
        path.display()
    );
    let file = dir.write("wf.yaml", &yaml);
    let err = workflow::load(&file, &Registry::builtin())
        .err()
        .expect("an unknown extension is a workflow error")
        .to_string();
    assert!(
        err.contains("format") && err.contains("frames.trr"),
        "{err}"
    );
}
