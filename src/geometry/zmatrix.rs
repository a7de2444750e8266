//! Internal coordinates: a Z-matrix built from the bond graph, the natural-extension
//! reference frame (NeRF; Parsons et al., J. Comput. Chem. 26, 1063, 2005) that rebuilds
//! Cartesians from it, and the log-Jacobian of that map. Units: nm and radians.
//!
//! Atoms are placed one after another (the Z-matrix's entries, placement order #1..#N).
//! Atom i is placed from up to three earlier atoms: its bond partner j, angle atom k
//! (bonded to j) and torsion atom l (bonded to k, or to j: an improper reference):
//!
//! ```text
//! r     = |x_i - x_j|                                  nm, > 0
//! theta = angle(i, j, k)                               rad, in [0, pi]
//! phi   = dihedral(l, k, j, i) = atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3)),
//!         b1 = x_k - x_l, b2 = x_j - x_k, b3 = x_i - x_j   rad, wrapped to (-pi, pi]
//! ```
//!
//! (the IUPAC sign: phi = 0 when l and i are cis, positive clockwise seen along k -> j).
//!
//! q layout (3N - 6 values): [r of #2], [r, theta of #3], then (r, theta, phi) for every
//! later atom, in placement order.
//!
//! Sibling torsions: when an atom i is placed from the same (j, k) as an earlier atom s
//! whose torsion is stored as is (s is i's "sibling": the 2nd and 3rd H of a CH3 after the
//! 1st, an O after the N of the next residue), i reuses s's torsion atom l and stores the
//! offset wrap(phi_i - phi_s), so the coordinate is nearly constant (about +-2 pi / 3 for
//! methyl hydrogens) and easy to learn. The change of variables (phi_s, phi_i) ->
//! (phi_s, phi_i - phi_s) is triangular with unit diagonal, so it leaves the Jacobian
//! alone.
//!
//! Standard frame ([`ZMatrix::to_cartesian`]): #1 at the origin, #2 on +x, #3 in the xy
//! plane with y > 0. Jacobians:
//!
//! ```text
//! J(q) = r_2^2 * r_3^2 sin(theta_3) * prod_{i >= 4} r_i^2 sin(theta_i)
//! ```
//!
//! is the density factor of the full Cartesian space: d^{3N}x = J(q) d^3t dR d^{3N-6}q,
//! with t the translation and dR the rotation (Haar measure, total 8 pi^2), so the
//! Boltzmann density of q is exp(-beta U(x(q))) J(q) ([`ZMatrix::log_jacobian`]). The
//! map q -> x_free, x_free the 3N - 6 coordinates left free in the standard frame (#2's
//! x, #3's x and y, all three of every later atom), has |det dx_free/dq| =
//! r_3 * prod_{i >= 4} r_i^2 sin(theta_i) ([`ZMatrix::log_jacobian_standard_frame`]); the
//! two differ by the measure of the frame itself, r_2^2 * r_3 sin(theta_3).
//!
//! Degenerate geometry (l, k, j collinear, or i on the j-k line) leaves phi undefined:
//! [`ZMatrix::to_internal`] then returns 0 for it and NeRF cannot place the atom.
//! Choosing heavy atoms as references avoids it in biomolecules.

use super::{add, cross, dot, norm, scale, sub};
use std::collections::HashMap;
use std::f64::consts::PI;

use rayon::prelude::*;
use thiserror::Error;

/// What one entry of q is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoordinateKind {
    /// A bond length r, nm.
    Bond,
    /// A bond angle theta, rad in [0, pi].
    Angle,
    /// A torsion phi (or a sibling offset), rad in (-pi, pi].
    Torsion,
}

/// One atom of the Z-matrix and the earlier-placed atoms it is placed from (atom indices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZEntry {
    pub atom: usize,
    /// Bond partner j (all but the first atom).
    pub bond: Option<usize>,
    /// Angle atom k, bonded to j (from the third atom on).
    pub angle: Option<usize>,
    /// Torsion atom l, bonded to k or to j (from the fourth atom on).
    pub torsion: Option<usize>,
    /// The entry index of the sibling s when this torsion is stored as phi_i - phi_s.
    pub torsion_offset_of: Option<usize>,
}

/// Entries in placement order; see the module documentation for the conventions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZMatrix {
    n_atoms: usize,
    entries: Vec<ZEntry>,
}

/// Why a Z-matrix cannot be built from a bond graph and seeds.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ZMatrixError {
    #[error("a Z-matrix needs at least 3 atoms, got {n_atoms}")]
    TooFewAtoms { n_atoms: usize },
    #[error("bond {index} ({}-{}) names an atom outside 0..{n_atoms}", bond[0], bond[1])]
    BondOutOfRange {
        index: usize,
        bond: [usize; 2],
        n_atoms: usize,
    },
    #[error("bond {index} joins atom {atom} to itself")]
    SelfBond { index: usize, atom: usize },
    #[error(
        "the heavy-atom mask has {found} entries for {n_atoms} atoms (give one per atom, or none)"
    )]
    HeavyMaskLength { n_atoms: usize, found: usize },
    #[error("no seed atoms: give at least one atom to start the Z-matrix from")]
    NoSeeds,
    #[error("seed {position} is atom {atom}, outside 0..{n_atoms}")]
    SeedOutOfRange {
        position: usize,
        atom: usize,
        n_atoms: usize,
    },
    #[error("atom {atom} is given twice as a seed (positions {first} and {second})")]
    DuplicateSeed {
        atom: usize,
        first: usize,
        second: usize,
    },
    #[error(
        "seed {position} (atom {atom}) is bonded to none of the seeds before it; seeds must be connected in the order given"
    )]
    SeedNotBonded { position: usize, atom: usize },
    #[error(
        "the bond graph is disconnected: {} atom(s) cannot be reached from the seeds: {unreachable:?}",
        unreachable.len()
    )]
    Disconnected { unreachable: Vec<usize> },
    #[error("entry {position} (atom {atom}): {message}")]
    BadEntry {
        position: usize,
        atom: usize,
        message: String,
    },
}

/// Wraps an angle to (-pi, pi].
pub fn wrap_angle(angle: f64) -> f64 {
    let wrapped = angle.rem_euclid(2.0 * PI);
    if wrapped > PI {
        wrapped - 2.0 * PI
    } else {
        wrapped
    }
}

impl ZMatrix {
    /// Deterministic Z-matrix from the bond graph.
    ///
    /// `seeds` are placed first, in the given order; each seed after the first must be
    /// bonded to an earlier one. The remaining atoms follow breadth-first from the placed
    /// atoms: each dequeued atom appends its unplaced neighbours, heavy atoms first, then
    /// by atom index. References are chosen among placed atoms, heavy atoms first, then
    /// earliest placed: j a neighbour of i, k a neighbour of j, l a neighbour of k other
    /// than j or of j other than k (heavy first, then bonded to k), or the sibling's l
    /// (module docs).
    /// `heavy` is one flag per atom, or empty for no preference. Bonds may repeat or
    /// come in either orientation.
    pub fn from_bonds(
        n_atoms: usize,
        bonds: &[[usize; 2]],
        seeds: &[usize],
        heavy: &[bool],
    ) -> Result<ZMatrix, ZMatrixError> {
        if n_atoms < 3 {
            return Err(ZMatrixError::TooFewAtoms { n_atoms });
        }
        if !heavy.is_empty() && heavy.len() != n_atoms {
            return Err(ZMatrixError::HeavyMaskLength {
                n_atoms,
                found: heavy.len(),
            });
        }
        let mut neighbours = vec![Vec::new(); n_atoms];
        for (index, &[a, b]) in bonds.iter().enumerate() {
            if a >= n_atoms || b >= n_atoms {
                return Err(ZMatrixError::BondOutOfRange {
                    index,
                    bond: [a, b],
                    n_atoms,
                });
            }
            if a == b {
                return Err(ZMatrixError::SelfBond { index, atom: a });
            }
            neighbours[a].push(b);
            neighbours[b].push(a);
        }
        for list in &mut neighbours {
            list.sort_unstable();
            list.dedup();
        }

        // Placement order: seeds, then breadth-first.
        const UNPLACED: usize = usize::MAX;
        let is_heavy = |a: usize| heavy.get(a).copied().unwrap_or(true);
        let mut rank = vec![UNPLACED; n_atoms];
        let mut order: Vec<usize> = Vec::with_capacity(n_atoms);
        if seeds.is_empty() {
            return Err(ZMatrixError::NoSeeds);
        }
        for (position, &atom) in seeds.iter().enumerate() {
            if atom >= n_atoms {
                return Err(ZMatrixError::SeedOutOfRange {
                    position,
                    atom,
                    n_atoms,
                });
            }
            if rank[atom] != UNPLACED {
                return Err(ZMatrixError::DuplicateSeed {
                    atom,
                    first: rank[atom],
                    second: position,
                });
            }
            if position > 0 && !neighbours[atom].iter().any(|&b| rank[b] != UNPLACED) {
                return Err(ZMatrixError::SeedNotBonded { position, atom });
            }
            rank[atom] = position;
            order.push(atom);
        }
        let mut head = 0;
        while head < order.len() {
            let mut fresh: Vec<usize> = neighbours[order[head]]
                .iter()
                .copied()
                .filter(|&b| rank[b] == UNPLACED)
                .collect();
            fresh.sort_by_key(|&b| (!is_heavy(b), b));
            for b in fresh {
                rank[b] = order.len();
                order.push(b);
            }
            head += 1;
        }
        if order.len() < n_atoms {
            let unreachable = (0..n_atoms).filter(|&a| rank[a] == UNPLACED).collect();
            return Err(ZMatrixError::Disconnected { unreachable });
        }

        // References: the preferred placed neighbour (heavy, then earliest placed).
        let pick = |of: usize, before: usize, exclude: usize| {
            neighbours[of]
                .iter()
                .copied()
                .filter(|&b| rank[b] < before && b != exclude)
                .min_by_key(|&b| (!is_heavy(b), rank[b]))
        };
        let mut entries: Vec<ZEntry> = Vec::with_capacity(n_atoms);
        // (j, k) -> entry index of the first atom placed from them with its own torsion.
        let mut torsion_owner: HashMap<(usize, usize), usize> = HashMap::new();
        for (p, &atom) in order.iter().enumerate() {
            let mut entry = ZEntry {
                atom,
                bond: None,
                angle: None,
                torsion: None,
                torsion_offset_of: None,
            };
            if p >= 1 {
                // Seeds were checked, and breadth-first atoms follow a placed neighbour.
                let j = pick(atom, p, atom).expect("a placed atom has a placed neighbour");
                entry.bond = Some(j);
                if p >= 2 {
                    // j was placed from a neighbour, or j is #1 and #2 is bonded to it.
                    let k = pick(j, p, atom).expect("a placed atom has a placed neighbour");
                    entry.angle = Some(k);
                    if p >= 3 {
                        if let Some(&s) = torsion_owner.get(&(j, k)) {
                            entry.torsion = entries[s].torsion;
                            entry.torsion_offset_of = Some(s);
                        } else {
                            // The placed atoms form a connected graph of at least 3 atoms,
                            // so the edge j-k has a placed neighbour at one end. Heavy
                            // atoms first (an improper reference to a heavy atom beats a
                            // proper one to a rotating hydrogen), then bonded to k.
                            let proper = pick(k, p, j);
                            let improper = pick(j, p, k);
                            let l = [(proper, 0), (improper, 1)]
                                .into_iter()
                                .filter_map(|(l, side)| l.map(|l| (l, side)))
                                .min_by_key(|&(l, side)| (!is_heavy(l), side))
                                .map(|(l, _)| l)
                                .expect("three connected placed atoms");
                            entry.torsion = Some(l);
                            torsion_owner.insert((j, k), p);
                        }
                    }
                }
            }
            entries.push(entry);
        }
        Ok(ZMatrix { n_atoms, entries })
    }

    /// A Z-matrix from saved entries (e.g. those of [`ZMatrix::entries`]), checked: every
    /// atom once, entry p has references exactly when p >= 1, 2, 3 (bond, angle,
    /// torsion), all distinct and placed earlier, and a torsion offset names an earlier
    /// entry with the same bond and angle atoms that stores its own torsion.
    pub fn from_entries(entries: Vec<ZEntry>) -> Result<ZMatrix, ZMatrixError> {
        let n_atoms = entries.len();
        if n_atoms < 3 {
            return Err(ZMatrixError::TooFewAtoms { n_atoms });
        }
        let mut position = vec![usize::MAX; n_atoms];
        for (p, e) in entries.iter().enumerate() {
            let bad = |message: &str| ZMatrixError::BadEntry {
                position: p,
                atom: e.atom,
                message: message.to_string(),
            };
            if e.atom >= n_atoms || position[e.atom] != usize::MAX {
                return Err(bad("atom out of range or placed twice"));
            }
            let refs = [e.bond, e.angle, e.torsion];
            for (k, r) in refs.iter().enumerate() {
                if r.is_some() != (p > k) {
                    return Err(bad("wrong number of reference atoms for its position"));
                }
                if let Some(a) = *r
                    && (a >= n_atoms || position[a] == usize::MAX)
                {
                    return Err(bad("a reference atom is not placed earlier"));
                }
            }
            let named: Vec<usize> = refs.iter().flatten().copied().collect();
            if (1..named.len()).any(|i| named[..i].contains(&named[i])) {
                return Err(bad("reference atoms repeat"));
            }
            if let Some(s) = e.torsion_offset_of {
                let ok = s < p
                    && entries[s].torsion_offset_of.is_none()
                    && entries[s].bond == e.bond
                    && entries[s].angle == e.angle
                    && entries[s].torsion == e.torsion;
                if !ok {
                    return Err(bad("its torsion offset does not name an earlier sibling"));
                }
            }
            position[e.atom] = p;
        }
        Ok(ZMatrix { n_atoms, entries })
    }

    /// The atom each entry of q belongs to (the atom it places), in q order.
    pub fn dof_atoms(&self) -> Vec<usize> {
        let mut atoms = Vec::with_capacity(self.n_dof());
        for entry in &self.entries {
            let count = [entry.bond, entry.angle, entry.torsion]
                .iter()
                .filter(|r| r.is_some())
                .count();
            atoms.extend(std::iter::repeat_n(entry.atom, count));
        }
        atoms
    }

    /// Entries in placement order.
    pub fn entries(&self) -> &[ZEntry] {
        &self.entries
    }

    pub fn n_atoms(&self) -> usize {
        self.n_atoms
    }

    /// Number of internal coordinates, 3N - 6.
    pub fn n_dof(&self) -> usize {
        3 * self.n_atoms - 6
    }

    /// Index in q of the first coordinate (r) of the entry at placement position `p`.
    pub fn dof_start(p: usize) -> usize {
        match p {
            0 | 1 => 0,
            2 => 1,
            _ => 3 * p - 6,
        }
    }

    /// The kind of each entry of q, in q order.
    pub fn kinds(&self) -> Vec<CoordinateKind> {
        let mut kinds = Vec::with_capacity(self.n_dof());
        for entry in &self.entries {
            if entry.bond.is_some() {
                kinds.push(CoordinateKind::Bond);
            }
            if entry.angle.is_some() {
                kinds.push(CoordinateKind::Angle);
            }
            if entry.torsion.is_some() {
                kinds.push(CoordinateKind::Torsion);
            }
        }
        kinds
    }

    /// A label per entry of q with 0-based atom indices: `r(i-j)`, `theta(i-j-k)`,
    /// `phi(i-j-k-l)`, and `phi(i-j-k-l)-phi(s-j-k-l)` for a sibling offset.
    pub fn dof_labels(&self) -> Vec<String> {
        let mut labels = Vec::with_capacity(self.n_dof());
        for entry in &self.entries {
            let i = entry.atom;
            if let Some(j) = entry.bond {
                labels.push(format!("r({i}-{j})"));
                if let Some(k) = entry.angle {
                    labels.push(format!("theta({i}-{j}-{k})"));
                    if let Some(l) = entry.torsion {
                        labels.push(match entry.torsion_offset_of {
                            None => format!("phi({i}-{j}-{k}-{l})"),
                            Some(s) => {
                                let s = self.entries[s].atom;
                                format!("phi({i}-{j}-{k}-{l})-phi({s}-{j}-{k}-{l})")
                            }
                        });
                    }
                }
            }
        }
        labels
    }

    /// Internal coordinates q (3N - 6) of one configuration (N positions, nm).
    pub fn to_internal(&self, x: &[[f64; 3]]) -> Vec<f64> {
        assert_eq!(x.len(), self.n_atoms, "positions for every atom");
        let mut q = vec![0.0; self.n_dof()];
        self.internal_into(x, &mut q);
        q
    }

    fn internal_into(&self, x: &[[f64; 3]], q: &mut [f64]) {
        let mut absolute_torsion = vec![0.0; self.entries.len()];
        for (p, entry) in self.entries.iter().enumerate() {
            let start = Self::dof_start(p);
            let i = entry.atom;
            let Some(j) = entry.bond else { continue };
            q[start] = norm(sub(x[i], x[j]));
            let Some(k) = entry.angle else { continue };
            q[start + 1] = angle(x[i], x[j], x[k]);
            let Some(l) = entry.torsion else { continue };
            let phi = dihedral(x[l], x[k], x[j], x[i]);
            absolute_torsion[p] = phi;
            q[start + 2] = match entry.torsion_offset_of {
                Some(s) => wrap_angle(phi - absolute_torsion[s]),
                None => phi,
            };
        }
    }

    /// Cartesian positions (nm, atom-index order) from q by NeRF, in the standard frame:
    /// #1 at the origin, #2 on +x, #3 in the xy plane with y > 0.
    pub fn to_cartesian(&self, q: &[f64]) -> Vec<[f64; 3]> {
        assert_eq!(q.len(), self.n_dof(), "3N - 6 internal coordinates");
        let mut x = vec![[0.0; 3]; self.n_atoms];
        self.cartesian_into(q, &mut x);
        x
    }

    fn cartesian_into(&self, q: &[f64], x: &mut [[f64; 3]]) {
        let mut absolute_torsion = vec![0.0; self.entries.len()];
        for (p, entry) in self.entries.iter().enumerate() {
            let start = Self::dof_start(p);
            let i = entry.atom;
            x[i] = match (entry.bond, entry.angle, entry.torsion) {
                (None, _, _) => [0.0; 3],
                (Some(_), None, _) => [q[start], 0.0, 0.0],
                (Some(j), Some(k), None) => {
                    // u = (x_k - x_j) / |.| is +-e_x; the in-plane normal with y > 0 is e_y.
                    let (r, theta) = (q[start], q[start + 1]);
                    let u = scale(sub(x[k], x[j]), 1.0 / norm(sub(x[k], x[j])));
                    let y = [0.0, 1.0, 0.0];
                    add(
                        x[j],
                        add(scale(u, r * theta.cos()), scale(y, r * theta.sin())),
                    )
                }
                (Some(j), Some(k), Some(l)) => {
                    let phi = match entry.torsion_offset_of {
                        Some(s) => q[start + 2] + absolute_torsion[s],
                        None => q[start + 2],
                    };
                    absolute_torsion[p] = phi;
                    nerf(x[l], x[k], x[j], q[start], q[start + 1], phi)
                }
            };
        }
    }

    /// ln J(q), J = r_2^2 * r_3^2 sin(theta_3) * prod_{i >= 4} r_i^2 sin(theta_i): the
    /// factor of the Boltzmann density in q (module docs). Sums 2 ln r over every atom
    /// placed with a bond and ln sin(theta) over every atom placed with an angle.
    pub fn log_jacobian(&self, q: &[f64]) -> f64 {
        assert_eq!(q.len(), self.n_dof(), "3N - 6 internal coordinates");
        let mut log_det = 0.0;
        for (p, entry) in self.entries.iter().enumerate() {
            let start = Self::dof_start(p);
            if entry.bond.is_some() {
                log_det += (q[start] * q[start]).ln();
            }
            if entry.angle.is_some() {
                log_det += q[start + 1].sin().abs().ln();
            }
        }
        log_det
    }

    /// ln |det dx_free / dq| = ln r_3 + sum_{i >= 4} (2 ln r_i + ln sin theta_i), x_free
    /// the coordinates left free in the standard frame (module docs).
    pub fn log_jacobian_standard_frame(&self, q: &[f64]) -> f64 {
        let frame = (q[0] * q[0]).ln() + q[1].abs().ln() + q[2].sin().abs().ln();
        self.log_jacobian(q) - frame
    }

    /// [`Self::to_internal`] over frames: `x` is F x N x 3 row-major (nm), the result
    /// F x (3N - 6). Frames run in parallel; each is computed alone, so the result does
    /// not depend on the number of threads.
    pub fn to_internal_frames(&self, x: &[f64]) -> Vec<f64> {
        let per_frame = 3 * self.n_atoms;
        assert_eq!(x.len() % per_frame, 0, "a whole number of frames");
        let mut q = vec![0.0; x.len() / per_frame * self.n_dof()];
        q.par_chunks_mut(self.n_dof())
            .zip(x.par_chunks(per_frame))
            .for_each(|(q, x)| {
                let positions: Vec<[f64; 3]> =
                    x.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
                self.internal_into(&positions, q);
            });
        q
    }

    /// [`Self::to_cartesian`] over frames: `q` is F x (3N - 6), the result F x N x 3
    /// row-major (nm), each frame in the standard frame.
    pub fn to_cartesian_frames(&self, q: &[f64]) -> Vec<f64> {
        let per_frame = 3 * self.n_atoms;
        assert_eq!(q.len() % self.n_dof(), 0, "a whole number of frames");
        let mut x = vec![0.0; q.len() / self.n_dof() * per_frame];
        x.par_chunks_mut(per_frame)
            .zip(q.par_chunks(self.n_dof()))
            .for_each(|(x, q)| {
                let mut positions = vec![[0.0; 3]; self.n_atoms];
                self.cartesian_into(q, &mut positions);
                x.copy_from_slice(positions.as_flattened());
            });
        x
    }
}

/// Places d with |d - c| = r, angle(d, c, b) = theta, dihedral(a, b, c, d) = phi.
fn nerf(a: [f64; 3], b: [f64; 3], c: [f64; 3], r: f64, theta: f64, phi: f64) -> [f64; 3] {
    let bc = sub(c, b);
    let bc = scale(bc, 1.0 / norm(bc));
    let n = cross(sub(b, a), bc);
    let n = scale(n, 1.0 / norm(n));
    let m = cross(n, bc);
    let (sin_theta, cos_theta) = theta.sin_cos();
    let (sin_phi, cos_phi) = phi.sin_cos();
    let d = add(
        scale(bc, -r * cos_theta),
        add(
            scale(m, r * sin_theta * cos_phi),
            scale(n, r * sin_theta * sin_phi),
        ),
    );
    add(c, d)
}

/// Angle at b between a and c, rad in [0, pi].
fn angle(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> f64 {
    let (u, v) = (sub(a, b), sub(c, b));
    norm(cross(u, v)).atan2(dot(u, v))
}

/// IUPAC dihedral a-b-c-d, rad in (-pi, pi].
fn dihedral(a: [f64; 3], b: [f64; 3], c: [f64; 3], d: [f64; 3]) -> f64 {
    let (b1, b2, b3) = (sub(b, a), sub(c, b), sub(d, c));
    let (n1, n2) = (cross(b1, b2), cross(b2, b3));
    wrap_angle((norm(b2) * dot(b1, n2)).atan2(dot(n1, n2)))
}
