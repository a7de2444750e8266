"""Writes the DCD and XTC fixtures of tests/suite/import_trajectory.rs with MDTraj, an
independent implementation of both formats (its DCD writer is VMD's dcdplugin, its XTC
writer GROMACS' xdrfile).

Frames: the two configurations of ala2_openmm_reference.json and two deterministic
displacements of the first; alanine dipeptide atoms in prmtop order. The exact positions
written (nm, before float32 / 1e-3 nm rounding) go to ala2_frames.json.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install mdtraj
    /tmp/venv/bin/python tests/data/import_trajectory/make_fixtures.py

(MDTraj 1.11.1 made the committed files.) Never a runtime dependency of cgloop.
"""

import json
import math
import pathlib

import mdtraj
import numpy as np

here = pathlib.Path(__file__).resolve().parent
root = here.parents[2]
dataset = root / "datasets" / "alanine_dipeptide"
reference = json.loads((dataset / "ala2_openmm_reference.json").read_text())
configurations = reference["configurations"]

first = np.array(configurations["start_tleap_extended"]["positions_nm"])
second = np.array(configurations["md_1ps_300K"]["positions_nm"])
frames = [first, second]
for k in (1, 2):
    shift = np.array(
        [[0.01 * k * math.sin(1.7 * i + d + k) for d in range(3)] for i in range(len(first))]
    )
    frames.append(first + shift)
frames = [np.round(f, 6) for f in frames]
xyz = np.array(frames, dtype=np.float64)

topology = mdtraj.load_pdb(str(dataset / "ala2_ff14SB.pdb")).topology
assert topology.n_atoms == xyz.shape[1]
# A 4 nm cubic box, as OpenMM's DCDReporter writes one (the unit cell record) for every
# frame; cgloop reads past it (no periodic boundaries without cutoff).
trajectory = mdtraj.Trajectory(
    xyz.astype(np.float32),
    topology,
    unitcell_lengths=np.full((len(frames), 3), 4.0),
    unitcell_angles=np.full((len(frames), 3), 90.0),
)
trajectory.save_dcd(str(here / "ala2_frames.dcd"))
trajectory.save_xtc(str(here / "ala2_frames.xtc"))
(here / "ala2_frames.json").write_text(
    json.dumps(
        {
            "description": "positions (nm) written to ala2_frames.dcd and ala2_frames.xtc "
            "by make_fixtures.py; frames x atoms x 3, prmtop atom order",
            "positions_nm": xyz.tolist(),
        }
    )
    + "\n"
)

# The files read back as written (to float32 in DCD, to 1e-3 nm in XTC).
assert np.abs(mdtraj.load_dcd(str(here / "ala2_frames.dcd"), top=topology).xyz - xyz).max() < 1e-5
assert np.abs(mdtraj.load_xtc(str(here / "ala2_frames.xtc"), top=topology).xyz - xyz).max() < 6e-4
print("wrote", len(frames), "frames of", topology.n_atoms, "atoms")
