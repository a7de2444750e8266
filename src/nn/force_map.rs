//! Force maps: from the forces on N atoms to forces on n beads, for force matching.
//!
//! A linear CG map z = M x (M = P^T, n x N, each row summing to 1) fixes the beads. The
//! mean force -grad A(z) (kJ/mol/nm) is the conditional mean E[B f | M x = z] of the
//! atom forces f (kJ/mol/nm) under any constant force map B (n x N) with
//!
//!   B M^T = I   (n x n),
//!
//! because the divergence term of the general formula (Ciccotti, Kapral & Vanden-Eijnden
//! 2005) vanishes for a constant B. The map B changes only the noise of the instantaneous
//! force around that mean, which is what force matching has to average away.
//!
//! - [`ForceMap::basic`]: B = (M M^T)^-1 M, the usual choice (the atom's own force for a
//!   single-atom bead, the sum of the group's forces for a centre of mass).
//! - [`ForceMap::optimal`]: the valid B with the smallest mean squared mapped force
//!   (Krämer, Durumeric, Charron, Chen, Clementi and Noé, "Statistically optimal force
//!   aggregation for coarse-graining molecular dynamics", J. Phys. Chem. Lett. 14, 3970
//!   (2023); their `aggforce` package). With
//!   C = <f_i . f_j> (N x N, frames and the three components averaged), each bead's row
//!   b_I solves
//!
//!     minimise b^T C b  subject to  M b = e_I,
//!
//!   a quadratic programme with equality constraints only, solved here in closed form by
//!   its KKT system [[C, M^T], [M, 0]] [b; mu] = [0; e_I] (LU with full pivoting). Since
//!   the mean is the same for every valid B, the smallest mean square is the smallest
//!   variance. An isolated molecule has sum_i f_i = 0, so C is singular along the
//!   all-ones vector; M 1 = 1 keeps that direction out of the constraint set and the
//!   KKT matrix stays regular.
//!
//! **Constraints.** With bond constraints (SHAKE/RATTLE) the recorded forces are
//! -grad U without the constraint forces, which act along each constrained bond with
//! equal and opposite sign on its two atoms. A force map that gives both atoms the same
//! weight cancels them, so the mapped force is the full one. [`ForceMap::optimal`] ties
//! the weights of each group of atoms linked by constrained bonds (one shared unknown per
//! group, as `aggforce` does); [`constrained_pairs`] finds the constrained pairs from
//! the frames (a pair distance whose standard deviation is below a tolerance: ~1e-8 nm
//! when constrained, ~3e-3 nm for a flexible C-H bond at 300 K). The basic map of a bead
//! on a single atom whose hydrogen is constrained misses that hydrogen's constraint
//! force; [`ForceMap::split_groups`] says which beads are affected.
//!
//! Written on nalgebra (already a dependency for analysis) instead of a QP solver: the
//! problem has equality constraints only, so one dense solve of size (groups + n) gives
//! the exact optimum, and the same bits on every x86-64 machine (no FMA contraction).

use nalgebra::DMatrix;

/// A force map B (n beads x N atoms, row-major): F_I = sum_i B_Ii f_i.
#[derive(Clone, Debug, PartialEq)]
pub struct ForceMap {
    pub n_beads: usize,
    pub n_atoms: usize,
    pub weights: Vec<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ForceMapError {
    #[error("the CG map has {0} beads; at least one is needed")]
    NoBeads(usize),
    #[error("no frames to estimate the force covariance from")]
    NoFrames,
    #[error(
        "the force map's linear system is singular (beads that no atom group can carry \
         alone, e.g. two beads on the same constrained group); raise l2_regularization"
    )]
    Singular,
    #[error("M M^T is singular: two beads have proportional weights")]
    DegenerateMap,
}

/// The groups of atoms linked by constrained pairs: one group index per atom, groups
/// numbered in order of their lowest atom (union-find over `pairs`).
pub fn constraint_groups(n_atoms: usize, pairs: &[(usize, usize)]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..n_atoms).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for &(i, j) in pairs {
        let (a, b) = (root(&mut parent, i), root(&mut parent, j));
        if a != b {
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut index = vec![usize::MAX; n_atoms];
    let mut group = vec![0; n_atoms];
    let mut next = 0;
    for i in 0..n_atoms {
        let r = root(&mut parent, i);
        if index[r] == usize::MAX {
            index[r] = next;
            next += 1;
        }
        group[i] = index[r];
    }
    group
}

/// Pairs (i < j) whose distance varies with a standard deviation below `tolerance_nm`
/// over `frames` of flat positions (frame-major, 3N values a frame, nm). Every pair is
/// tested (a constrained pair need not be a bond: rigid water's H-H); O(N^2) per frame.
pub fn constrained_pairs(
    positions: &[f64],
    n_atoms: usize,
    frames: &[usize],
    tolerance_nm: f64,
) -> Vec<(usize, usize)> {
    let pairs = n_atoms * n_atoms.saturating_sub(1) / 2;
    let mut sum = vec![0.0; pairs];
    let mut sum_sq = vec![0.0; pairs];
    // Shifted by the first frame's distance, so that the variance of a constant
    // distance is computed without cancellation.
    let mut shift = vec![0.0; pairs];
    for (count, &f) in frames.iter().enumerate() {
        let x = &positions[3 * n_atoms * f..3 * n_atoms * (f + 1)];
        let mut k = 0;
        for i in 0..n_atoms {
            for j in i + 1..n_atoms {
                let d = ((x[3 * i] - x[3 * j]).powi(2)
                    + (x[3 * i + 1] - x[3 * j + 1]).powi(2)
                    + (x[3 * i + 2] - x[3 * j + 2]).powi(2))
                .sqrt();
                if count == 0 {
                    shift[k] = d;
                }
                let s = d - shift[k];
                sum[k] += s;
                sum_sq[k] += s * s;
                k += 1;
            }
        }
    }
    let m = frames.len() as f64;
    if frames.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut k = 0;
    for i in 0..n_atoms {
        for j in i + 1..n_atoms {
            let mean = sum[k] / m;
            let variance = (sum_sq[k] / m - mean * mean).max(0.0);
            if variance.sqrt() < tolerance_nm {
                out.push((i, j));
            }
            k += 1;
        }
    }
    out
}

impl ForceMap {
    /// B = (M M^T)^-1 M for P (N x n, row-major), M = P^T.
    pub fn basic(p: &[f64], n_atoms: usize, n_beads: usize) -> Result<ForceMap, ForceMapError> {
        if n_beads == 0 {
            return Err(ForceMapError::NoBeads(0));
        }
        let m = DMatrix::from_fn(n_beads, n_atoms, |b, i| p[i * n_beads + b]);
        let gram = &m * m.transpose();
        let b = gram.lu().solve(&m).ok_or(ForceMapError::DegenerateMap)?;
        Ok(ForceMap::from_matrix(&b))
    }

    /// The valid force map of smallest mean squared mapped force over `frames` of flat
    /// forces (frame-major, 3N values a frame), with equal weights within each group of
    /// `groups` (one group index per atom, from [`constraint_groups`]; all distinct when
    /// nothing is constrained). `l2_regularization` >= 0 adds that multiple of the mean
    /// diagonal of C to C's diagonal (per atom), pulling B towards small weights.
    pub fn optimal(
        p: &[f64],
        n_atoms: usize,
        n_beads: usize,
        forces: &[f64],
        frames: &[usize],
        groups: &[usize],
        l2_regularization: f64,
    ) -> Result<ForceMap, ForceMapError> {
        if n_beads == 0 {
            return Err(ForceMapError::NoBeads(0));
        }
        if frames.is_empty() {
            return Err(ForceMapError::NoFrames);
        }
        let n_groups = groups.iter().max().map_or(0, |&g| g + 1);
        // The group sums of the forces, then their covariance:
        // C_r = E^T C E with E (N x G) the expansion of group weights to atoms.
        let mut c = DMatrix::<f64>::zeros(n_groups, n_groups);
        let mut grouped = vec![0.0; 3 * n_groups];
        for &f in frames {
            let frame = &forces[3 * n_atoms * f..3 * n_atoms * (f + 1)];
            grouped.iter_mut().for_each(|v| *v = 0.0);
            for i in 0..n_atoms {
                for a in 0..3 {
                    grouped[3 * groups[i] + a] += frame[3 * i + a];
                }
            }
            for g in 0..n_groups {
                for h in g..n_groups {
                    let dot = grouped[3 * g] * grouped[3 * h]
                        + grouped[3 * g + 1] * grouped[3 * h + 1]
                        + grouped[3 * g + 2] * grouped[3 * h + 2];
                    c[(g, h)] += dot;
                }
            }
        }
        let scale = 1.0 / (3.0 * frames.len() as f64);
        for g in 0..n_groups {
            for h in g..n_groups {
                c[(g, h)] *= scale;
                c[(h, g)] = c[(g, h)];
            }
        }
        if l2_regularization > 0.0 {
            let mean_diagonal = (0..n_groups).map(|g| c[(g, g)]).sum::<f64>() / n_groups as f64;
            // The penalty is on the atoms' weights: |E w|^2 = sum_g size_g w_g^2.
            let mut size = vec![0.0; n_groups];
            for &g in groups {
                size[g] += 1.0;
            }
            for g in 0..n_groups {
                c[(g, g)] += l2_regularization * mean_diagonal * size[g];
            }
        }
        // The constraint matrix on group weights: (M E)_{I g} = sum_{i in g} P_iI.
        let mut me = DMatrix::<f64>::zeros(n_beads, n_groups);
        for i in 0..n_atoms {
            for b in 0..n_beads {
                me[(b, groups[i])] += p[i * n_beads + b];
            }
        }
        let size = n_groups + n_beads;
        let mut kkt = DMatrix::<f64>::zeros(size, size);
        kkt.view_mut((0, 0), (n_groups, n_groups)).copy_from(&c);
        kkt.view_mut((0, n_groups), (n_groups, n_beads))
            .copy_from(&me.transpose());
        kkt.view_mut((n_groups, 0), (n_beads, n_groups))
            .copy_from(&me);
        let mut rhs = DMatrix::<f64>::zeros(size, n_beads);
        for b in 0..n_beads {
            rhs[(n_groups + b, b)] = 1.0;
        }
        let solution = kkt
            .full_piv_lu()
            .solve(&rhs)
            .ok_or(ForceMapError::Singular)?;
        if solution.iter().any(|v| !v.is_finite()) {
            return Err(ForceMapError::Singular);
        }
        let b = DMatrix::from_fn(n_beads, n_atoms, |b, i| solution[(groups[i], b)]);
        Ok(ForceMap::from_matrix(&b))
    }

    fn from_matrix(b: &DMatrix<f64>) -> ForceMap {
        let (n_beads, n_atoms) = b.shape();
        let mut weights = Vec::with_capacity(n_beads * n_atoms);
        for r in 0..n_beads {
            for i in 0..n_atoms {
                weights.push(b[(r, i)]);
            }
        }
        ForceMap {
            n_beads,
            n_atoms,
            weights,
        }
    }

    /// B_Ii.
    pub fn weight(&self, bead: usize, atom: usize) -> f64 {
        self.weights[bead * self.n_atoms + atom]
    }

    /// The bead forces of one frame (3n values) from its atom forces (3N values).
    pub fn apply(&self, atom_forces: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; 3 * self.n_beads];
        for b in 0..self.n_beads {
            for i in 0..self.n_atoms {
                let w = self.weight(b, i);
                if w != 0.0 {
                    for a in 0..3 {
                        out[3 * b + a] += w * atom_forces[3 * i + a];
                    }
                }
            }
        }
        out
    }

    /// max |B M^T - I| for P (N x n, row-major): zero (to rounding) for a valid map.
    pub fn consistency_error(&self, p: &[f64]) -> f64 {
        let mut worst: f64 = 0.0;
        for b in 0..self.n_beads {
            for c in 0..self.n_beads {
                let product: f64 = (0..self.n_atoms)
                    .map(|i| self.weight(b, i) * p[i * self.n_beads + c])
                    .sum();
                let target = if b == c { 1.0 } else { 0.0 };
                worst = worst.max((product - target).abs());
            }
        }
        worst
    }

    /// Beads whose weights differ within a constraint group (their mapped force keeps
    /// part of the constraint forces the recorded forces lack), with the largest
    /// difference.
    pub fn split_groups(&self, groups: &[usize]) -> Vec<(usize, f64)> {
        let mut out = Vec::new();
        for b in 0..self.n_beads {
            let mut worst: f64 = 0.0;
            for i in 0..self.n_atoms {
                for j in i + 1..self.n_atoms {
                    if groups[i] == groups[j] {
                        worst = worst.max((self.weight(b, i) - self.weight(b, j)).abs());
                    }
                }
            }
            if worst > 1e-12 {
                out.push((b, worst));
            }
        }
        out
    }

    /// Root-mean-square of each bead's mapped force over `frames` (kJ/mol/nm, the three
    /// components averaged).
    pub fn rms_per_bead(&self, forces: &[f64], frames: &[usize]) -> Vec<f64> {
        let mut sum = vec![0.0; self.n_beads];
        for &f in frames {
            let mapped = self.apply(&forces[3 * self.n_atoms * f..3 * self.n_atoms * (f + 1)]);
            for b in 0..self.n_beads {
                sum[b] += mapped[3 * b..3 * b + 3].iter().map(|v| v * v).sum::<f64>();
            }
        }
        let scale = 1.0 / (3.0 * frames.len().max(1) as f64);
        sum.into_iter().map(|s| (s * scale).sqrt()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use crate::random::normal;

    fn gaussian(rng: &mut ChaCha20Rng) -> f64 {
        normal(rng)
    }

    /// Atoms 0 and 1 bonded by a stiff spring whose force s is large and equal and
    /// opposite on the two; a slow force g on atom 0 only. A bead on atom 0 alone: the
    /// basic map gives g + s, the optimal one weighs atom 1 as much as atom 0 (B M^T = I
    /// still holds, since atom 1 is not in the bead) and keeps g.
    #[test]
    fn optimal_map_cancels_a_bond_vibration() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (n_atoms, n_beads, frames) = (3, 2, 2000);
        // Beads: atom 0, and atom 2.
        let p = vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let mut forces = Vec::new();
        for _ in 0..frames {
            let mut frame = vec![0.0; 9];
            for a in 0..3 {
                let s = 100.0 * gaussian(&mut rng);
                let g = gaussian(&mut rng);
                let h = gaussian(&mut rng);
                frame[a] = g + s;
                frame[3 + a] = -s;
                frame[6 + a] = h;
            }
            forces.extend(frame);
        }
        let all: Vec<usize> = (0..frames).collect();
        let groups = constraint_groups(n_atoms, &[]);
        let basic = ForceMap::basic(&p, n_atoms, n_beads).unwrap();
        let optimal = ForceMap::optimal(&p, n_atoms, n_beads, &forces, &all, &groups, 0.0).unwrap();
        assert!(optimal.consistency_error(&p) < 1e-12);
        assert!(basic.consistency_error(&p) < 1e-12);
        let (rb, ro) = (
            basic.rms_per_bead(&forces, &all),
            optimal.rms_per_bead(&forces, &all),
        );
        assert!(rb[0] > 90.0, "{rb:?}");
        assert!(ro[0] < 1.1, "{ro:?}");
        assert!((optimal.weight(0, 1) - 1.0).abs() < 0.01, "{optimal:?}");
    }

    /// Constrained atoms get one weight, so equal and opposite constraint forces cancel.
    #[test]
    fn constrained_atoms_share_a_weight() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (n_atoms, n_beads, frames) = (4, 2, 500);
        // Bead 0 on atom 0, bead 1 the centre of atoms 2 and 3.
        let p = vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.5];
        let forces: Vec<f64> = (0..frames * 3 * n_atoms)
            .map(|_| gaussian(&mut rng))
            .collect();
        let all: Vec<usize> = (0..frames).collect();
        let groups = constraint_groups(n_atoms, &[(0, 1)]);
        assert_eq!(groups, vec![0, 0, 1, 2]);
        let map = ForceMap::optimal(&p, n_atoms, n_beads, &forces, &all, &groups, 0.0).unwrap();
        assert!(map.consistency_error(&p) < 1e-12);
        assert_eq!(map.weight(0, 0), map.weight(0, 1));
        assert_eq!(map.weight(1, 0), map.weight(1, 1));
        assert!(map.split_groups(&groups).is_empty());
        let basic = ForceMap::basic(&p, n_atoms, n_beads).unwrap();
        assert_eq!(basic.split_groups(&groups).len(), 1);
    }

    #[test]
    fn groups_join_transitively() {
        assert_eq!(
            constraint_groups(6, &[(4, 5), (1, 4), (2, 3)]),
            vec![0, 1, 2, 2, 1, 1]
        );
    }

    #[test]
    fn constrained_pairs_are_found_from_the_frames() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut positions = Vec::new();
        for _ in 0..50 {
            let centre: Vec<f64> = (0..3).map(|_| gaussian(&mut rng)).collect();
            // Atom 0 and 1 at exactly 0.1 nm, atom 2 at a fluctuating distance.
            let (u, v) = (gaussian(&mut rng), gaussian(&mut rng));
            let dir = [u.cos() * v.cos(), u.sin() * v.cos(), v.sin()];
            let r = 0.3 + 0.01 * gaussian(&mut rng);
            positions.extend(&centre);
            positions.extend((0..3).map(|a| centre[a] + 0.1 * dir[a]));
            positions.extend((0..3).map(|a| centre[a] - r * dir[a]));
        }
        let frames: Vec<usize> = (0..50).collect();
        assert_eq!(
            constrained_pairs(&positions, 3, &frames, 1e-4),
            vec![(0, 1)]
        );
    }

    /// The mean force is the same for every valid map: atoms drawn from a Gaussian
    /// Boltzmann distribution exp(-x^T K x / 2) (per component, kT = 1), f = -K x, and
    /// the PMF of z = M x is Gaussian with precision (M K^-1 M^T)^-1, so E[B f | z] =
    /// -(M K^-1 M^T)^-1 z. A least-squares regression of B f on z recovers that matrix
    /// for the basic and the optimal map alike.
    #[test]
    fn both_maps_give_the_mean_force_of_a_gaussian() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (n_atoms, n_beads, frames) = (4, 2, 40_000);
        // A chain with springs 1-2-3-4 and a weak tether (so that K is definite).
        let k = DMatrix::from_row_slice(
            4,
            4,
            &[
                50.1, -50.0, 0.0, 0.0, -50.0, 60.1, -10.0, 0.0, 0.0, -10.0, 40.1, -30.0, 0.0, 0.0,
                -30.0, 30.1,
            ],
        );
        let covariance = k.clone().try_inverse().unwrap();
        let cholesky = covariance.clone().cholesky().unwrap().l();
        // Bead 0: centre of atoms 0 and 1; bead 1: atom 3.
        let p = vec![0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 1.0];
        let m = DMatrix::from_fn(n_beads, n_atoms, |b, i| p[i * n_beads + b]);
        let expected = -(&m * &covariance * m.transpose()).try_inverse().unwrap();
        let mut positions = Vec::new();
        let mut forces = Vec::new();
        for _ in 0..frames {
            let mut x = DMatrix::<f64>::zeros(n_atoms, 3);
            for a in 0..3 {
                let u = nalgebra::DVector::from_fn(n_atoms, |_, _| gaussian(&mut rng));
                x.set_column(a, &(&cholesky * u));
            }
            let f = -(&k * &x);
            for i in 0..n_atoms {
                for a in 0..3 {
                    positions.push(x[(i, a)]);
                    forces.push(f[(i, a)]);
                }
            }
        }
        let all: Vec<usize> = (0..frames).collect();
        let groups = constraint_groups(n_atoms, &[]);
        let basic = ForceMap::basic(&p, n_atoms, n_beads).unwrap();
        let optimal = ForceMap::optimal(&p, n_atoms, n_beads, &forces, &all, &groups, 0.0).unwrap();
        let (rb, ro) = (
            basic.rms_per_bead(&forces, &all),
            optimal.rms_per_bead(&forces, &all),
        );
        assert!(
            ro[0] < 0.9 * rb[0] && ro[1] <= rb[1] * (1.0 + 1e-9),
            "{rb:?} {ro:?}"
        );
        for map in [&basic, &optimal] {
            // Regress F (3 frames x n) on z: A = (sum F z^T)(sum z z^T)^-1.
            let mut fz = DMatrix::<f64>::zeros(n_beads, n_beads);
            let mut zz = DMatrix::<f64>::zeros(n_beads, n_beads);
            for f in 0..frames {
                let x = &positions[3 * n_atoms * f..3 * n_atoms * (f + 1)];
                let force = map.apply(&forces[3 * n_atoms * f..3 * n_atoms * (f + 1)]);
                for a in 0..3 {
                    let z: Vec<f64> = (0..n_beads)
                        .map(|b| {
                            (0..n_atoms)
                                .map(|i| p[i * n_beads + b] * x[3 * i + a])
                                .sum()
                        })
                        .collect();
                    for r in 0..n_beads {
                        for c in 0..n_beads {
                            fz[(r, c)] += force[3 * r + a] * z[c];
                            zz[(r, c)] += z[r] * z[c];
                        }
                    }
                }
            }
            let fitted = fz * zz.try_inverse().unwrap();
            let error = (&fitted - &expected).abs().max() / expected.abs().max();
            assert!(error < 0.03, "fitted {fitted} expected {expected}");
        }
    }
}
