"""Which contacts hold chignolin's non-native state? (docs/studies/chignolin.md, section 4)

Reads fg_sample trajectories (rung 0 frames) and the native 5AWL structure, classifies
each frame by C-alpha RMSD after Kabsch superposition (folded: at most 0.25 nm;
non-native: over 0.30 nm and nearer the mirror image than the native) and prints, per
class, how often each salt bridge and backbone hydrogen bond is formed (heavy-atom
distance under 0.4 nm), then the classes' fractions in 0.5 ns windows.

    python3 docs/studies/scripts/chignolin_states.py A=results/store/<a1 key> B=...

Needs numpy and pyarrow; not part of the project's build.
"""
import sys

import numpy as np
import pyarrow.parquet as pq

NATIVE = "datasets/chignolin/5awl_crystal.pdb"
# (residue number 1-10, atom name) of one side, and the partner atoms on the other.
CONTACTS = {
    "N-terminus - Asp3 carboxylate": ((1, "N"), [(3, "OD1"), (3, "OD2")]),
    "N-terminus - Glu5 carboxylate": ((1, "N"), [(5, "OE1"), (5, "OE2")]),
    "N-terminus - C-terminus": ((1, "N"), [(10, "O"), (10, "OXT")]),
    "Asp3 N - Thr8 O": ((3, "N"), [(8, "O")]),
    "Thr8 N - Asp3 O": ((8, "N"), [(3, "O")]),
    "Gly7 N - Asp3 O": ((7, "N"), [(3, "O")]),
    "Thr6 OG1 - Asp3 carboxylate": ((6, "OG1"), [(3, "OD1"), (3, "OD2")]),
    "Tyr10 N - Tyr1 O": ((10, "N"), [(1, "O")]),
}


def rmsd(p, q):
    p = p - p.mean(0)
    q = q - q.mean(0)
    u, _, vt = np.linalg.svd(p.T @ q)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return np.sqrt(((p @ r.T - q) ** 2).sum(1).mean())


def native_ca():
    ca = [
        [float(l[30:38]), float(l[38:46]), float(l[46:54])]
        for l in open(NATIVE)
        if l.startswith(("ATOM", "HETATM")) and l[12:16].strip() == "CA"
    ]
    return np.array(ca[:10]) / 10.0


def main():
    native = native_ca()
    mirror = native * np.array([1.0, 1.0, -1.0])
    for arg in sys.argv[1:]:
        label, folder = arg.split("=", 1)
        atoms = pq.read_table(f"{folder}/atoms.parquet").to_pydict()
        first = min(atoms["residue_index"])
        index = {
            (r - first + 1, n): i
            for i, (r, n) in enumerate(zip(atoms["residue_index"], atoms["name"]))
        }
        ca = [i for i, n in enumerate(atoms["name"]) if n == "CA"]
        t = pq.read_table(f"{folder}/trajectory.parquet").to_pydict()
        rung0 = np.array(t["temperature_index"]) == 0
        x = np.array(t["positions_nm"]).reshape(len(t["frame"]), -1, 3)[rung0]
        time_ns = np.array(t["time_ps"])[rung0] / 1000.0
        to_native = np.array([rmsd(f[ca], native) for f in x])
        to_mirror = np.array([rmsd(f[ca], mirror) for f in x])
        folded = to_native <= 0.25
        nonnative = (to_native > 0.30) & (to_mirror < to_native)
        other = ~folded & ~nonnative
        print(f"run {label}: {len(x)} frames; folded {folded.mean():.2f}, "
              f"non-native {nonnative.mean():.2f}, other {other.mean():.2f}")
        print(f"  non-native: RMSD {to_native[nonnative].mean():.3f} nm, "
              f"to the mirror image {to_mirror[nonnative].mean():.3f} nm")
        print(f"  {'contact (< 0.4 nm)':32s} folded  non-native  other")
        for name, (a, partners) in CONTACTS.items():
            d = np.min([np.linalg.norm(x[:, index[a]] - x[:, index[b]], axis=1)
                        for b in partners], axis=0)
            formed = d < 0.4
            cells = [formed[m].mean() if m.any() else float("nan")
                     for m in (folded, nonnative, other)]
            print(f"  {name:32s} {cells[0]:6.2f}  {cells[1]:10.2f}  {cells[2]:5.2f}")
        print("  window (ns)  folded  non-native")
        edges = np.arange(0.0, time_ns.max() + 0.5, 0.5)
        for lo in edges[:-1]:
            m = (time_ns >= lo) & (time_ns < lo + 0.5)
            if m.any():
                print(f"  {lo:4.1f}-{lo + 0.5:4.1f}    {folded[m].mean():6.2f}  {nonnative[m].mean():10.2f}")


if __name__ == "__main__":
    main()
