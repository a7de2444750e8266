//! Internal coordinates on alanine dipeptide (22 atoms) and chignolin (166 atoms): round
//! trips x -> q -> x (up to a rigid motion, found by an optimal superposition written
//! here) and q -> x -> q, both log-Jacobians against determinants of numerical Jacobians
//! (LU written here), the placement rules, the batched API and the errors.

use cgloop::geometry::dihedral::dihedral_deg;
use cgloop::geometry::zmatrix::{CoordinateKind, ZMatrix, ZMatrixError, wrap_angle};
use cgloop::md::io::pdb::read_pdb;
use cgloop::md::io::prmtop::read_prmtop;
use cgloop::md::topology::Topology;
use cgloop::random::{normal, stream};
use std::f64::consts::PI;
use std::path::Path;

const DATASETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets");

/// A molecule: topology, bond list, heavy-atom mask and the PDB's positions (nm).
struct Molecule {
    topology: Topology,
    bonds: Vec<[usize; 2]>,
    heavy: Vec<bool>,
    positions: Vec<[f64; 3]>,
}

impl Molecule {
    fn read(stem: &str) -> Molecule {
        let topology = read_prmtop(Path::new(&format!("{DATASETS}/{stem}.prmtop"))).unwrap();
        let positions = read_pdb(Path::new(&format!("{DATASETS}/{stem}.pdb")))
            .unwrap()
            .frames
            .remove(0);
        assert_eq!(positions.len(), topology.n_atoms());
        let bonds = topology.bonds.iter().map(|b| b.atoms).collect();
        let heavy = topology.atoms.iter().map(|a| !a.is_hydrogen()).collect();
        Molecule {
            topology,
            bonds,
            heavy,
            positions,
        }
    }

    fn n_atoms(&self) -> usize {
        self.topology.n_atoms()
    }

    /// The atom named `name` in the residue called `residue`.
    fn atom(&self, residue: &str, name: &str) -> usize {
        self.topology
            .atoms
            .iter()
            .position(|a| a.residue_name == residue && a.name == name)
            .unwrap_or_else(|| panic!("no atom {residue} {name}"))
    }

    /// Backbone N, CA, C of every residue, in residue order.
    fn backbone(&self) -> Vec<usize> {
        let n_residues = self.topology.atoms.last().unwrap().residue_index + 1;
        let mut seeds = Vec::new();
        for residue in 0..n_residues {
            for name in ["N", "CA", "C"] {
                let found = self
                    .topology
                    .atoms
                    .iter()
                    .position(|a| a.residue_index == residue && a.name == name);
                seeds.extend(found);
            }
        }
        seeds
    }

    fn zmatrix(&self, seeds: &[usize]) -> ZMatrix {
        ZMatrix::from_bonds(self.n_atoms(), &self.bonds, seeds, &self.heavy).unwrap()
    }

    fn is_bonded(&self, a: usize, b: usize) -> bool {
        self.bonds.contains(&[a, b]) || self.bonds.contains(&[b, a])
    }
}

fn ala2() -> Molecule {
    Molecule::read("alanine_dipeptide/ala2_ff14SB")
}

fn chignolin() -> Molecule {
    Molecule::read("chignolin/cln025_ff14SB")
}

/// ACE C, ALA N, CA, C, NME N.
fn ala2_seeds(m: &Molecule) -> Vec<usize> {
    vec![
        m.atom("ACE", "C"),
        m.atom("ALA", "N"),
        m.atom("ALA", "CA"),
        m.atom("ALA", "C"),
        m.atom("NME", "N"),
    ]
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    let d = sub(a, b);
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

fn centered(x: &[[f64; 3]]) -> Vec<[f64; 3]> {
    let n = x.len() as f64;
    let c = (0..3).map(|a| x.iter().map(|p| p[a]).sum::<f64>() / n);
    let c: Vec<f64> = c.collect();
    x.iter().map(|p| sub(*p, [c[0], c[1], c[2]])).collect()
}

/// Eigenvalues and eigenvectors (columns) of a symmetric 4 x 4 matrix, cyclic Jacobi.
fn symmetric_eigen(mut a: [[f64; 4]; 4]) -> ([f64; 4], [[f64; 4]; 4]) {
    let mut v = [[0.0; 4]; 4];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..4)
            .flat_map(|i| (0..4).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..4 {
            for q in p + 1..4 {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..4 {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..4 {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vp, vq) = (row[p], row[q]);
                    row[p] = c * vp - s * vq;
                    row[q] = s * vp + c * vq;
                }
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2], a[3][3]], v)
}

/// `moving` after the rotation and translation that best superpose it onto `target`
/// (least squares; the Kabsch problem solved with Horn's quaternion, J. Opt. Soc. Am. A
/// 4, 629, 1987).
fn superpose(moving: &[[f64; 3]], target: &[[f64; 3]]) -> Vec<[f64; 3]> {
    let (p, t) = (centered(moving), centered(target));
    let mut s = [[0.0; 3]; 3];
    for (a, b) in p.iter().zip(&t) {
        for i in 0..3 {
            for j in 0..3 {
                s[i][j] += a[i] * b[j];
            }
        }
    }
    let [[sxx, sxy, sxz], [syx, syy, syz], [szx, szy, szz]] = s;
    let n = [
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
    ];
    let (values, vectors) = symmetric_eigen(n);
    let best = (0..4)
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap();
    let [q0, q1, q2, q3] = [0, 1, 2, 3].map(|i| vectors[i][best]);
    let r = [
        [
            q0 * q0 + q1 * q1 - q2 * q2 - q3 * q3,
            2.0 * (q1 * q2 - q0 * q3),
            2.0 * (q1 * q3 + q0 * q2),
        ],
        [
            2.0 * (q1 * q2 + q0 * q3),
            q0 * q0 - q1 * q1 + q2 * q2 - q3 * q3,
            2.0 * (q2 * q3 - q0 * q1),
        ],
        [
            2.0 * (q1 * q3 - q0 * q2),
            2.0 * (q2 * q3 + q0 * q1),
            q0 * q0 - q1 * q1 - q2 * q2 + q3 * q3,
        ],
    ];
    let n_atoms = target.len() as f64;
    let target_centre: Vec<f64> = (0..3)
        .map(|a| target.iter().map(|x| x[a]).sum::<f64>() / n_atoms)
        .collect();
    p.iter()
        .map(|a| {
            let mut out = [0.0; 3];
            for i in 0..3 {
                out[i] = (0..3).map(|j| r[i][j] * a[j]).sum::<f64>() + target_centre[i];
            }
            out
        })
        .collect()
}

/// ln |det A| by LU with partial pivoting (row-major n x n), summed as logs so that
/// products of hundreds of small pivots do not underflow.
fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut log_det = 0.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&r, &s| a[r * n + col].abs().total_cmp(&a[s * n + col].abs()))
            .unwrap();
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
        }
        let diagonal = a[col * n + col];
        assert!(diagonal != 0.0, "singular Jacobian");
        log_det += diagonal.abs().ln();
        for row in col + 1..n {
            let factor = a[row * n + col] / diagonal;
            if factor != 0.0 {
                for k in col..n {
                    a[row * n + k] -= factor * a[col * n + k];
                }
            }
        }
    }
    log_det
}

/// Central-difference columns d x / d q_m (step 1e-6), each flattened by `flatten`.
fn numerical_columns(
    z: &ZMatrix,
    q: &[f64],
    flatten: impl Fn(&[[f64; 3]]) -> Vec<f64>,
) -> Vec<Vec<f64>> {
    let h = 1e-6;
    (0..q.len())
        .map(|m| {
            let (mut plus, mut minus) = (q.to_vec(), q.to_vec());
            plus[m] += h;
            minus[m] -= h;
            let (xp, xm) = (
                flatten(&z.to_cartesian(&plus)),
                flatten(&z.to_cartesian(&minus)),
            );
            xp.iter()
                .zip(&xm)
                .map(|(a, b)| (a - b) / (2.0 * h))
                .collect()
        })
        .collect()
}

/// Row-major matrix whose columns are `columns`.
fn from_columns(columns: &[Vec<f64>]) -> Vec<f64> {
    let (rows, cols) = (columns[0].len(), columns.len());
    assert_eq!(rows, cols, "square");
    let mut a = vec![0.0; rows * cols];
    for (c, column) in columns.iter().enumerate() {
        for (r, value) in column.iter().enumerate() {
            a[r * cols + c] = *value;
        }
    }
    a
}

/// ln |det d x_free / d q|, x_free = #2's x, #3's x and y, every later atom's x, y, z.
fn numerical_log_jacobian_standard_frame(z: &ZMatrix, q: &[f64]) -> f64 {
    let entries = z.entries().to_vec();
    let free = |x: &[[f64; 3]]| {
        let mut out = vec![
            x[entries[1].atom][0],
            x[entries[2].atom][0],
            x[entries[2].atom][1],
        ];
        for e in &entries[3..] {
            out.extend(x[e.atom]);
        }
        out
    };
    log_abs_det(from_columns(&numerical_columns(z, q, free)), q.len())
}

/// ln |det d x / d (t, omega, q)| over all 3N Cartesians at x(q), with t a translation and
/// omega an infinitesimal rotation about the origin (columns e_a and e_a x x_i): the
/// Jacobian of the full Cartesian measure, d^{3N}x = J(q) d^3t dR d^{3N-6}q.
fn numerical_log_jacobian_full(z: &ZMatrix, q: &[f64]) -> f64 {
    let x = z.to_cartesian(q);
    let mut columns = Vec::new();
    for a in 0..3 {
        columns.push(
            x.iter()
                .flat_map(|_| [0, 1, 2].map(|b| f64::from(a == b)))
                .collect(),
        );
    }
    for a in 0..3 {
        let axis = [0, 1, 2].map(|b| f64::from(a == b));
        columns.push(
            x.iter()
                .flat_map(|p| {
                    [
                        axis[1] * p[2] - axis[2] * p[1],
                        axis[2] * p[0] - axis[0] * p[2],
                        axis[0] * p[1] - axis[1] * p[0],
                    ]
                })
                .collect(),
        );
    }
    columns.extend(numerical_columns(z, q, |x| x.as_flattened().to_vec()));
    log_abs_det(from_columns(&columns), 3 * z.n_atoms())
}

/// q with every coordinate moved: bonds by 3 %, angles by 0.1 rad, torsions by 0.5 rad.
fn perturbed(z: &ZMatrix, q: &[f64], seed: u64) -> Vec<f64> {
    let mut rng = stream(seed, 0);
    z.kinds()
        .iter()
        .zip(q)
        .map(|(kind, value)| match kind {
            CoordinateKind::Bond => value * (1.0 + 0.03 * normal(&mut rng)),
            CoordinateKind::Angle => (value + 0.1 * normal(&mut rng)).clamp(0.2, PI - 0.2),
            CoordinateKind::Torsion => wrap_angle(value + 0.5 * normal(&mut rng)),
        })
        .collect()
}

/// Largest difference between two q, torsions compared modulo 2 pi.
fn q_difference(z: &ZMatrix, a: &[f64], b: &[f64]) -> f64 {
    z.kinds()
        .iter()
        .zip(a.iter().zip(b))
        .map(|(kind, (a, b))| match kind {
            CoordinateKind::Torsion => wrap_angle(a - b).abs(),
            _ => (a - b).abs(),
        })
        .fold(0.0, f64::max)
}

fn assert_round_trips(m: &Molecule, z: &ZMatrix) {
    let q = z.to_internal(&m.positions);
    assert_eq!(q.len(), 3 * m.n_atoms() - 6);
    let rebuilt = z.to_cartesian(&q);
    let fitted = superpose(&rebuilt, &m.positions);
    let worst = fitted
        .iter()
        .zip(&m.positions)
        .map(|(a, b)| distance(*a, *b))
        .fold(0.0, f64::max);
    assert!(worst < 1e-9, "x -> q -> x: an atom off by {worst:e} nm");
    for i in 0..m.n_atoms() {
        for j in i + 1..m.n_atoms() {
            let (d0, d1) = (
                distance(m.positions[i], m.positions[j]),
                distance(rebuilt[i], rebuilt[j]),
            );
            assert!((d0 - d1).abs() < 1e-9, "distance {i}-{j}: {d0} vs {d1}");
        }
    }
    for q in [q.clone(), perturbed(z, &q, 7)] {
        let again = z.to_internal(&z.to_cartesian(&q));
        let diff = q_difference(z, &q, &again);
        assert!(diff < 1e-10, "q -> x -> q differs by {diff:e}");
    }
}

#[test]
fn ala2_round_trips_and_standard_frame() {
    let m = ala2();
    let z = m.zmatrix(&ala2_seeds(&m));
    assert_round_trips(&m, &z);
    let q = z.to_internal(&m.positions);
    let x = z.to_cartesian(&q);
    let first: Vec<usize> = z.entries()[..3].iter().map(|e| e.atom).collect();
    assert_eq!(x[first[0]], [0.0; 3]);
    assert!(x[first[1]][0] > 0.0 && x[first[1]][1] == 0.0 && x[first[1]][2] == 0.0);
    assert!(x[first[2]][1] > 0.0 && x[first[2]][2] == 0.0);
    for (kind, value) in z.kinds().iter().zip(&q) {
        match kind {
            CoordinateKind::Bond => assert!((0.09..0.16).contains(value), "bond {value} nm"),
            CoordinateKind::Angle => assert!(*value > 0.0 && *value < PI),
            CoordinateKind::Torsion => assert!(*value > -PI && *value <= PI),
        }
    }
    // The backbone phi is ALA C's torsion (ACE C - N - CA - C), stored as is; it agrees
    // with the analysis module's IUPAC dihedral.
    let c = m.atom("ALA", "C");
    let p = z.entries().iter().position(|e| e.atom == c).unwrap();
    let e = &z.entries()[p];
    assert_eq!(
        (e.bond, e.angle, e.torsion),
        (
            Some(m.atom("ALA", "CA")),
            Some(m.atom("ALA", "N")),
            Some(m.atom("ACE", "C"))
        )
    );
    assert_eq!(e.torsion_offset_of, None);
    let phi = dihedral_deg(
        m.positions[m.atom("ACE", "C")],
        m.positions[m.atom("ALA", "N")],
        m.positions[m.atom("ALA", "CA")],
        m.positions[c],
    );
    assert!(
        (q[3 * p - 6 + 2].to_degrees() - phi).abs() < 1e-9,
        "phi {phi}"
    );
}

#[test]
fn chignolin_round_trips() {
    let m = chignolin();
    assert_eq!(m.n_atoms(), 166);
    let z = m.zmatrix(&m.backbone());
    assert_round_trips(&m, &z);
}

#[test]
fn log_jacobian_matches_numerical_determinants() {
    let m = ala2();
    let z = m.zmatrix(&ala2_seeds(&m));
    let q0 = z.to_internal(&m.positions);
    let mut cases = vec![q0.clone()];
    cases.extend((1..=3).map(|seed| perturbed(&z, &q0, seed)));
    for q in &cases {
        let (analytic, numerical) = (
            z.log_jacobian_standard_frame(q),
            numerical_log_jacobian_standard_frame(&z, q),
        );
        assert!(
            (analytic - numerical).abs() < 1e-6 * analytic.abs(),
            "standard frame: {analytic} vs {numerical}"
        );
        let (analytic, numerical) = (z.log_jacobian(q), numerical_log_jacobian_full(&z, q));
        assert!(
            (analytic - numerical).abs() < 1e-6 * analytic.abs(),
            "full: {analytic} vs {numerical}"
        );
        // The two differ by the frame's own measure r_2^2 r_3 sin(theta_3).
        let frame = 2.0 * q[0].ln() + q[1].ln() + q[2].sin().ln();
        assert!((z.log_jacobian(q) - z.log_jacobian_standard_frame(q) - frame).abs() < 1e-12);
    }
    // Larger molecule, full Jacobian (498 x 498), with rings and many sibling offsets.
    let m = chignolin();
    let z = m.zmatrix(&m.backbone());
    let q = z.to_internal(&m.positions);
    let (analytic, numerical) = (z.log_jacobian(&q), numerical_log_jacobian_full(&z, &q));
    assert!(
        (analytic - numerical).abs() < 1e-6 * analytic.abs(),
        "chignolin: {analytic} vs {numerical}"
    );
}

fn assert_well_formed(m: &Molecule, z: &ZMatrix, seeds: &[usize]) {
    let n = m.n_atoms();
    assert_eq!(z.n_atoms(), n);
    assert_eq!(z.entries().len(), n);
    let mut position = vec![usize::MAX; n];
    for (p, e) in z.entries().iter().enumerate() {
        assert_eq!(position[e.atom], usize::MAX, "atom {} twice", e.atom);
        position[e.atom] = p;
    }
    assert!(position.iter().all(|&p| p < n), "every atom placed");
    let placed: Vec<usize> = z.entries()[..seeds.len()].iter().map(|e| e.atom).collect();
    assert_eq!(placed, seeds, "seeds first, in order");
    for (p, e) in z.entries().iter().enumerate() {
        assert_eq!(e.bond.is_some(), p >= 1);
        assert_eq!(e.angle.is_some(), p >= 2);
        assert_eq!(e.torsion.is_some(), p >= 3);
        let refs: Vec<usize> = [e.bond, e.angle, e.torsion].into_iter().flatten().collect();
        for (a, &r) in refs.iter().enumerate() {
            assert!(
                position[r] < p,
                "reference {r} of atom {} placed later",
                e.atom
            );
            assert!(
                refs[..a].iter().all(|&s| s != r) && r != e.atom,
                "repeated reference"
            );
            // References follow heavy atoms whenever the molecule has them to offer.
            if a > 0 {
                assert!(m.heavy[r], "atom {} placed from hydrogen {r}", e.atom);
            }
        }
        if let Some(j) = e.bond {
            assert!(m.is_bonded(e.atom, j));
        }
        if let (Some(j), Some(k)) = (e.bond, e.angle) {
            assert!(m.is_bonded(j, k));
            if let Some(l) = e.torsion {
                assert!(m.is_bonded(k, l) || m.is_bonded(j, l));
            }
        }
        if let Some(s) = e.torsion_offset_of {
            let sibling = &z.entries()[s];
            assert!(s < p && s >= 3);
            assert_eq!(
                (sibling.bond, sibling.angle, sibling.torsion),
                (e.bond, e.angle, e.torsion)
            );
            assert_eq!(sibling.torsion_offset_of, None);
        }
    }
    let kinds = z.kinds();
    assert_eq!(kinds.len(), z.n_dof());
    assert_eq!(
        kinds.iter().filter(|k| **k == CoordinateKind::Bond).count(),
        n - 1
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == CoordinateKind::Angle)
            .count(),
        n - 2
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == CoordinateKind::Torsion)
            .count(),
        n - 3
    );
    let mut labels = z.dof_labels();
    assert_eq!(labels.len(), z.n_dof());
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), z.n_dof(), "labels are unique");
}

#[test]
fn placement_rules_and_methyl_siblings() {
    let m = ala2();
    let seeds = ala2_seeds(&m);
    let z = m.zmatrix(&seeds);
    assert_well_formed(&m, &z, &seeds);
    let labels = z.dof_labels();
    assert_eq!(&labels[..3], ["r(6-4)", "r(8-6)", "theta(8-6-4)"]);
    let q = z.to_internal(&m.positions);
    let start = |p: usize| 3 * p - 6;
    for (residue, carbon) in [("ACE", "CH3"), ("ALA", "CB"), ("NME", "C")] {
        let c = m.atom(residue, carbon);
        let hydrogens: Vec<usize> = z
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.bond == Some(c) && !m.heavy[e.atom])
            .map(|(p, _)| p)
            .collect();
        assert_eq!(hydrogens.len(), 3, "{residue} {carbon}");
        let first = hydrogens[0];
        assert_eq!(z.entries()[first].torsion_offset_of, None);
        let mut offsets = Vec::new();
        for &p in &hydrogens[1..] {
            assert_eq!(
                z.entries()[p].torsion_offset_of,
                Some(first),
                "{residue} {carbon}"
            );
            assert!(labels[start(p) + 2].contains(")-phi("));
            offsets.push(q[start(p) + 2]);
        }
        // Staggered hydrogens: offsets near +-120 degrees, one of each sign.
        offsets.sort_by(f64::total_cmp);
        assert!(
            (offsets[0] + 2.0 * PI / 3.0).abs() < 0.1,
            "{residue} {carbon}: {offsets:?}"
        );
        assert!(
            (offsets[1] - 2.0 * PI / 3.0).abs() < 0.1,
            "{residue} {carbon}: {offsets:?}"
        );
    }
    // The carbonyl O of ALA is placed from C, CA with the torsion of NME N (a sibling).
    let o = z
        .entries()
        .iter()
        .find(|e| e.atom == m.atom("ALA", "O"))
        .unwrap();
    let s = o.torsion_offset_of.expect("O is an offset");
    assert_eq!(z.entries()[s].atom, m.atom("NME", "N"));

    let m = chignolin();
    let seeds = m.backbone();
    assert_eq!(seeds.len(), 30);
    let z = m.zmatrix(&seeds);
    assert_well_formed(&m, &z, &seeds);
    let offsets = z
        .entries()
        .iter()
        .filter(|e| e.torsion_offset_of.is_some())
        .count();
    assert!(offsets > 50, "{offsets} sibling offsets in chignolin");
}

#[test]
fn frames_match_single_frames_for_any_thread_count() {
    let m = ala2();
    let z = m.zmatrix(&ala2_seeds(&m));
    let mut rng = stream(11, 0);
    let frames: Vec<Vec<[f64; 3]>> = (0..5)
        .map(|_| {
            m.positions
                .iter()
                .map(|p| p.map(|v| v + 0.01 * normal(&mut rng)))
                .collect()
        })
        .collect();
    let flat: Vec<f64> = frames
        .iter()
        .flat_map(|f| f.as_flattened().to_vec())
        .collect();
    let expected_q: Vec<f64> = frames.iter().flat_map(|f| z.to_internal(f)).collect();
    let q = z.to_internal_frames(&flat);
    assert_eq!(q, expected_q);
    let expected_x: Vec<f64> = (0..frames.len())
        .flat_map(|f| {
            z.to_cartesian(&q[f * z.n_dof()..(f + 1) * z.n_dof()])
                .as_flattened()
                .to_vec()
        })
        .collect();
    let x = z.to_cartesian_frames(&q);
    assert_eq!(x, expected_x);
    let pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    assert_eq!(pool(1).install(|| z.to_internal_frames(&flat)), q);
    assert_eq!(pool(3).install(|| z.to_cartesian_frames(&q)), x);
    assert!(z.to_internal_frames(&[]).is_empty());
}

#[test]
fn errors_name_what_is_wrong() {
    let m = ala2();
    let n = m.n_atoms();
    let seeds = ala2_seeds(&m);
    // Cut the ALA C - NME N bond: NME (atoms 16..=21) is a second component.
    let (c, nme_n) = (m.atom("ALA", "C"), m.atom("NME", "N"));
    let cut: Vec<[usize; 2]> = m
        .bonds
        .iter()
        .copied()
        .filter(|b| *b != [c, nme_n] && *b != [nme_n, c])
        .collect();
    assert_eq!(cut.len(), m.bonds.len() - 1);
    let error = ZMatrix::from_bonds(n, &cut, &seeds[..4], &m.heavy).unwrap_err();
    assert_eq!(
        error,
        ZMatrixError::Disconnected {
            unreachable: (16..22).collect()
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("6 atom(s)") && message.contains("[16, 17, 18, 19, 20, 21]"),
        "{message}"
    );
    // The same cut with NME N among the seeds: it is bonded to no earlier seed.
    let error = ZMatrix::from_bonds(n, &cut, &seeds, &m.heavy).unwrap_err();
    assert_eq!(
        error,
        ZMatrixError::SeedNotBonded {
            position: 4,
            atom: nme_n
        }
    );

    let cases: Vec<(usize, Vec<[usize; 2]>, Vec<usize>, Vec<bool>, ZMatrixError)> = vec![
        (
            2,
            vec![[0, 1]],
            vec![0],
            vec![],
            ZMatrixError::TooFewAtoms { n_atoms: 2 },
        ),
        (
            3,
            vec![[0, 1], [1, 3]],
            vec![0],
            vec![],
            ZMatrixError::BondOutOfRange {
                index: 1,
                bond: [1, 3],
                n_atoms: 3,
            },
        ),
        (
            3,
            vec![[0, 1], [2, 2]],
            vec![0],
            vec![],
            ZMatrixError::SelfBond { index: 1, atom: 2 },
        ),
        (
            3,
            vec![[0, 1], [1, 2]],
            vec![0],
            vec![true],
            ZMatrixError::HeavyMaskLength {
                n_atoms: 3,
                found: 1,
            },
        ),
        (
            3,
            vec![[0, 1], [1, 2]],
            vec![],
            vec![],
            ZMatrixError::NoSeeds,
        ),
        (
            3,
            vec![[0, 1], [1, 2]],
            vec![0, 5],
            vec![],
            ZMatrixError::SeedOutOfRange {
                position: 1,
                atom: 5,
                n_atoms: 3,
            },
        ),
        (
            3,
            vec![[0, 1], [1, 2]],
            vec![1, 0, 1],
            vec![],
            ZMatrixError::DuplicateSeed {
                atom: 1,
                first: 0,
                second: 2,
            },
        ),
        (
            3,
            vec![[0, 1], [1, 2]],
            vec![0, 2],
            vec![],
            ZMatrixError::SeedNotBonded {
                position: 1,
                atom: 2,
            },
        ),
        (
            4,
            vec![[0, 1], [1, 2]],
            vec![0],
            vec![],
            ZMatrixError::Disconnected {
                unreachable: vec![3],
            },
        ),
    ];
    for (n_atoms, bonds, seeds, heavy, expected) in cases {
        let error = ZMatrix::from_bonds(n_atoms, &bonds, &seeds, &heavy).unwrap_err();
        assert_eq!(error, expected);
        assert!(!error.to_string().is_empty());
    }
    // Backbone seeds that skip an atom (ACE C then ALA CA) are not connected in order.
    let error = ZMatrix::from_bonds(
        n,
        &m.bonds,
        &[m.atom("ACE", "C"), m.atom("ALA", "CA")],
        &m.heavy,
    )
    .unwrap_err();
    assert_eq!(
        error,
        ZMatrixError::SeedNotBonded {
            position: 1,
            atom: m.atom("ALA", "CA")
        }
    );
}

#[test]
fn builds_are_deterministic() {
    let m = chignolin();
    let seeds = m.backbone();
    let z = m.zmatrix(&seeds);
    assert_eq!(z.entries(), m.zmatrix(&seeds).entries());
    // Bond order and orientation do not matter, nor do repeated bonds.
    let mut shuffled: Vec<[usize; 2]> = m.bonds.iter().rev().map(|&[a, b]| [b, a]).collect();
    shuffled.extend_from_slice(&m.bonds[..10]);
    let again = ZMatrix::from_bonds(m.n_atoms(), &shuffled, &seeds, &m.heavy).unwrap();
    assert_eq!(z, again);
}
