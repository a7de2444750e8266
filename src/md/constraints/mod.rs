//! Holonomic distance constraints |x_i - x_j| = d_ij (H-bond constraints) on positions
//! (SHAKE) and on velocities (RATTLE), solved exactly per coupled cluster.
//!
//! Constraints that share an atom are coupled; H-bond constraints form small stars
//! around heavy atoms (CH3: 3 coupled constraints), so the constraint set splits into
//! clusters of a few constraints each, and each cluster is solved with a small dense
//! matrix on the stack (clusters of up to [`MAX_CLUSTER`] constraints; larger coupled
//! sets, as all-bond constraints would make, are rejected) instead of SHAKE's
//! one-bond-at-a-time sweeps or OpenMM's CCMA (Eastman & Pande, J. Chem. Theory Comput.
//! 6, 434, 2010), with the same fixed point.
//!
//! Positions (SHAKE, Ryckaert, Ciccotti & Berendsen, J. Comput. Phys. 23, 327, 1977):
//! given constrained reference positions r and unconstrained x, find multipliers lambda
//! with x_a <- x_a + lambda_c w_a d_c, x_b <- x_b - lambda_c w_b d_c for each constraint c
//! = (a, b), d_c = r_a - r_b, w = 1/m, such that |x_a - x_b|^2 = L_c^2 for all c. Solved
//! by Newton's method on lambda with the full cluster Jacobian J_ce = 2 K_ce (s_c . d_e),
//! s_c = x_a - x_b, K_ce = sigma(a_c, e) w_(a_c) - sigma(b_c, e) w_(b_c), sigma(i, e) =
//! +1 if i is e's first atom, -1 if its second, 0 otherwise (quadratic convergence:
//! two or three iterations at 2 fs).
//!
//! Velocities (RATTLE, Andersen, J. Comput. Phys. 52, 24, 1983): remove the components
//! of v along the constraints in the mass metric: v_a <- v_a + mu_c w_a d_c (and minus
//! for b) with d_c = x_a - x_b at the constrained positions and mu solving the linear
//! system sum_e K_ce (d_c . d_e) mu_e = -(v_a - v_b) . d_c, so that (v_a - v_b) . d_c = 0
//! exactly (one solve, no iteration).
//!
//! Tolerance: iterate until every |(|s_c| - L_c) / L_c| < tolerance, default 1e-10
//! (OpenMM's default for its integrators is 1e-5). The tighter value costs about one more
//! Newton iteration and keeps the constraint error out of the energy drift.

use crate::geometry::{dot, sub};
use thiserror::Error;

/// Default relative tolerance on constrained distances.
pub const DEFAULT_TOLERANCE: f64 = 1e-10;
/// Newton iterations allowed per cluster before failing.
pub const MAX_ITERATIONS: usize = 100;
/// Most constraints coupled through shared atoms that one cluster may hold.
pub const MAX_CLUSTER: usize = 8;

/// One distance constraint between atoms `i` and `j` (nm).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistanceConstraint {
    pub i: usize,
    pub j: usize,
    pub length_nm: f64,
}

/// Why a constraint set was rejected or could not be satisfied.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConstraintError {
    #[error("constraint {index} between atoms {i} and {j} is invalid: {reason}")]
    Invalid {
        index: usize,
        i: usize,
        j: usize,
        reason: String,
    },
    #[error(
        "constraints not satisfied after {iterations} iterations: relative error {relative_error:e} \
         on the bond between atoms {i} and {j}"
    )]
    NotConverged {
        iterations: usize,
        relative_error: f64,
        i: usize,
        j: usize,
    },
    #[error("singular constraint matrix in the cluster containing atoms {i} and {j}")]
    Singular { i: usize, j: usize },
}

/// H-bond constraints as OpenMM's `constraints=HBonds`: every bond (i, j, r0) with a
/// hydrogen at one end, constrained at its equilibrium length r0 (nm).
pub fn h_bond_constraints(
    bonds: &[(usize, usize, f64)],
    is_hydrogen: &[bool],
) -> Vec<DistanceConstraint> {
    bonds
        .iter()
        .filter(|&&(i, j, _)| {
            is_hydrogen.get(i).copied().unwrap_or(false)
                || is_hydrogen.get(j).copied().unwrap_or(false)
        })
        .map(|&(i, j, length_nm)| DistanceConstraint { i, j, length_nm })
        .collect()
}

/// A constraint set split into coupled clusters of at most [`MAX_CLUSTER`] constraints.
#[derive(Debug, Clone)]
pub struct Constraints {
    /// (a, b) per constraint, grouped by cluster.
    pairs: Vec<[usize; 2]>,
    length_sq: Vec<f64>,
    /// Constraints of cluster k: `cluster_start[k]..cluster_start[k + 1]`.
    cluster_start: Vec<usize>,
    /// Row-major K matrix of cluster k at `coupling_start[k]`.
    coupling: Vec<f64>,
    coupling_start: Vec<usize>,
    inv_mass: Vec<f64>,
    tolerance: f64,
    /// Cluster indices grouped by cluster size (sizes ascending), for SHAKE in lockstep.
    by_size: Vec<(usize, Vec<usize>)>,
}

/// Clusters of one size that SHAKE iterates side by side.
const BATCH: usize = 4;

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

impl Constraints {
    /// Builds the clusters for `constraints` on atoms of masses `masses` (amu; a zero mass
    /// is an immobile atom).
    pub fn new(
        constraints: &[DistanceConstraint],
        masses: &[f64],
    ) -> Result<Self, ConstraintError> {
        let n = masses.len();
        let invalid =
            |index: usize, c: &DistanceConstraint, reason: &str| ConstraintError::Invalid {
                index,
                i: c.i,
                j: c.j,
                reason: reason.to_string(),
            };
        let mut seen = std::collections::BTreeSet::new();
        for (index, c) in constraints.iter().enumerate() {
            if c.i >= n || c.j >= n {
                return Err(invalid(
                    index,
                    c,
                    &format!("atom index out of range (n = {n})"),
                ));
            }
            if c.i == c.j {
                return Err(invalid(index, c, "an atom constrained to itself"));
            }
            if !(c.length_nm.is_finite() && c.length_nm > 0.0) {
                return Err(invalid(index, c, "length must be positive and finite"));
            }
            if masses[c.i] == 0.0 && masses[c.j] == 0.0 {
                return Err(invalid(index, c, "both atoms are immobile (zero mass)"));
            }
            if !seen.insert((c.i.min(c.j), c.i.max(c.j))) {
                return Err(invalid(index, c, "the pair is constrained twice"));
            }
        }
        let inv_mass: Vec<f64> = masses
            .iter()
            .map(|&m| if m == 0.0 { 0.0 } else { 1.0 / m })
            .collect();

        let mut parent: Vec<usize> = (0..n).collect();
        for c in constraints {
            let (ri, rj) = (find(&mut parent, c.i), find(&mut parent, c.j));
            if ri != rj {
                parent[ri.max(rj)] = ri.min(rj);
            }
        }
        // Clusters in order of their first constraint; constraints in input order.
        let mut cluster_of_root = vec![usize::MAX; n];
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (index, c) in constraints.iter().enumerate() {
            let root = find(&mut parent, c.i);
            if cluster_of_root[root] == usize::MAX {
                cluster_of_root[root] = members.len();
                members.push(Vec::new());
            }
            members[cluster_of_root[root]].push(index);
        }

        let mut out = Self {
            pairs: Vec::with_capacity(constraints.len()),
            length_sq: Vec::with_capacity(constraints.len()),
            cluster_start: vec![0],
            coupling: Vec::new(),
            coupling_start: Vec::new(),
            inv_mass,
            tolerance: DEFAULT_TOLERANCE,
            by_size: Vec::new(),
        };
        for cluster in &members {
            if cluster.len() > MAX_CLUSTER {
                let (index, c) = (cluster[0], &constraints[cluster[0]]);
                let reason = format!(
                    "its cluster couples {} constraints through shared atoms; at most {MAX_CLUSTER} \
                     are supported (H-bond constraints couple at most 4)",
                    cluster.len()
                );
                return Err(invalid(index, c, &reason));
            }
            out.coupling_start.push(out.coupling.len());
            for &c in cluster {
                let (ac, bc) = (constraints[c].i, constraints[c].j);
                for &e in cluster {
                    let (ae, be) = (constraints[e].i, constraints[e].j);
                    let sigma = |i: usize| (i == ae) as i32 as f64 - (i == be) as i32 as f64;
                    out.coupling
                        .push(sigma(ac) * out.inv_mass[ac] - sigma(bc) * out.inv_mass[bc]);
                }
                out.pairs.push([ac, bc]);
                out.length_sq
                    .push(constraints[c].length_nm * constraints[c].length_nm);
            }
            out.cluster_start.push(out.pairs.len());
        }
        let mut by_size: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (k, cluster) in members.iter().enumerate() {
            by_size.entry(cluster.len()).or_default().push(k);
        }
        out.by_size = by_size.into_iter().collect();
        Ok(out)
    }

    /// Sets the relative tolerance on constrained distances.
    pub fn with_tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance;
        self
    }

    pub fn tolerance(&self) -> f64 {
        self.tolerance
    }

    /// Number of constraints (degrees of freedom removed).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The constrained pairs and lengths (nm), grouped by cluster.
    pub fn iter(&self) -> impl Iterator<Item = DistanceConstraint> + '_ {
        self.pairs
            .iter()
            .zip(&self.length_sq)
            .map(|(&[i, j], &l2)| DistanceConstraint {
                i,
                j,
                length_nm: l2.sqrt(),
            })
    }

    /// Largest |(|x_i - x_j| - L) / L| over the constraints.
    pub fn max_relative_error(&self, positions: &[[f64; 3]]) -> f64 {
        self.pairs
            .iter()
            .zip(&self.length_sq)
            .map(|(&[a, b], &l2)| {
                let r = dot(
                    sub(positions[a], positions[b]),
                    sub(positions[a], positions[b]),
                )
                .sqrt();
                (r / l2.sqrt() - 1.0).abs()
            })
            .fold(0.0, f64::max)
    }

    /// SHAKE: moves `positions` onto the constraint surface along the constraint
    /// directions of the constrained `reference` positions. Returns the largest number of
    /// Newton iterations any cluster needed.
    pub fn apply_positions(
        &self,
        reference: &[[f64; 3]],
        positions: &mut [[f64; 3]],
    ) -> Result<usize, ConstraintError> {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has_avx2() {
            // SAFETY: AVX2 was just detected.
            return unsafe { self.apply_positions_avx2(reference, positions) };
        }
        self.shake(reference, positions)
    }

    /// RATTLE: removes from `velocities` (or any per-atom vectors) their components along
    /// the constraints at the constrained `positions`, in the mass metric.
    pub fn apply_velocities(
        &self,
        positions: &[[f64; 3]],
        velocities: &mut [[f64; 3]],
    ) -> Result<(), ConstraintError> {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has_avx2() {
            // SAFETY: AVX2 was just detected.
            return unsafe { self.apply_velocities_avx2(positions, velocities) };
        }
        self.rattle(positions, velocities)
    }

    /// [`Self::shake`] compiled for AVX2 (the same operations: no fused multiply-adds).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn apply_positions_avx2(
        &self,
        reference: &[[f64; 3]],
        positions: &mut [[f64; 3]],
    ) -> Result<usize, ConstraintError> {
        self.shake(reference, positions)
    }

    /// [`Self::rattle`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn apply_velocities_avx2(
        &self,
        positions: &[[f64; 3]],
        velocities: &mut [[f64; 3]],
    ) -> Result<(), ConstraintError> {
        self.rattle(positions, velocities)
    }

    #[inline(always)]
    fn shake(
        &self,
        reference: &[[f64; 3]],
        positions: &mut [[f64; 3]],
    ) -> Result<usize, ConstraintError> {
        let mut most = 0;
        for (size, ks) in &self.by_size {
            for batch in ks.chunks(BATCH) {
                let iterations = match size {
                    1 => {
                        let mut most = 0;
                        for &k in batch {
                            most = most.max(self.shake_single(k, reference, positions)?);
                        }
                        most
                    }
                    2 => self.shake_small::<2>(batch, reference, positions)?,
                    3 => self.shake_small::<3>(batch, reference, positions)?,
                    4 => self.shake_small::<4>(batch, reference, positions)?,
                    5 => self.shake_small::<5>(batch, reference, positions)?,
                    6 => self.shake_small::<6>(batch, reference, positions)?,
                    7 => self.shake_small::<7>(batch, reference, positions)?,
                    _ => self.shake_small::<8>(batch, reference, positions)?,
                };
                most = most.max(iterations);
            }
        }
        Ok(most)
    }

    #[inline(always)]
    fn rattle(
        &self,
        positions: &[[f64; 3]],
        velocities: &mut [[f64; 3]],
    ) -> Result<(), ConstraintError> {
        for k in 0..self.cluster_start.len() - 1 {
            match self.cluster_start[k + 1] - self.cluster_start[k] {
                1 => self.rattle_small::<1>(k, positions, velocities)?,
                2 => self.rattle_small::<2>(k, positions, velocities)?,
                3 => self.rattle_small::<3>(k, positions, velocities)?,
                4 => self.rattle_small::<4>(k, positions, velocities)?,
                5 => self.rattle_small::<5>(k, positions, velocities)?,
                6 => self.rattle_small::<6>(k, positions, velocities)?,
                7 => self.rattle_small::<7>(k, positions, velocities)?,
                _ => self.rattle_small::<8>(k, positions, velocities)?,
            }
        }
        Ok(())
    }

    fn not_converged(&self, iterations: usize, relative_error: f64, c: usize) -> ConstraintError {
        let [i, j] = self.pairs[c];
        ConstraintError::NotConverged {
            iterations,
            relative_error,
            i,
            j,
        }
    }

    fn singular(&self, c: usize) -> ConstraintError {
        let [i, j] = self.pairs[c];
        ConstraintError::Singular { i, j }
    }

    /// SHAKE for an isolated constraint, solved exactly: with s the current and d the
    /// reference bond vector and W = w_a + w_b, |s + lambda W d|^2 = L^2 is a quadratic
    /// in lambda, whose root nearest zero is lambda = -c / (W (b + sqrt(b^2 - |d|^2 c))),
    /// b = s . d, c = |s|^2 - L^2.
    #[inline(always)]
    fn shake_single(
        &self,
        k: usize,
        reference: &[[f64; 3]],
        positions: &mut [[f64; 3]],
    ) -> Result<usize, ConstraintError> {
        let c = self.cluster_start[k];
        let [a, b] = self.pairs[c];
        let d = sub(reference[a], reference[b]);
        let s = sub(positions[a], positions[b]);
        let excess = dot(s, s) - self.length_sq[c];
        if (excess / (2.0 * self.length_sq[c])).abs() < self.tolerance {
            return Ok(0);
        }
        let (along, dd) = (dot(s, d), dot(d, d));
        let root = (along * along - dd * excess).sqrt();
        let denominator = (self.inv_mass[a] + self.inv_mass[b]) * (along + root);
        if !(denominator > 0.0 && denominator.is_finite()) {
            return Err(self.not_converged(0, excess / (2.0 * self.length_sq[c]), c));
        }
        let lambda = -excess / denominator;
        let (wa, wb) = (lambda * self.inv_mass[a], lambda * self.inv_mass[b]);
        for x in 0..3 {
            positions[a][x] += wa * d[x];
            positions[b][x] -= wb * d[x];
        }
        Ok(1)
    }

    /// SHAKE on the clusters `ks` (at most [`BATCH`]) of exactly `K` constraints each
    /// (Newton with the full K x K Jacobian), on the stack. The clusters iterate in
    /// lockstep, independent dependency chains side by side, until all have converged.
    #[inline(always)]
    fn shake_small<const K: usize>(
        &self,
        ks: &[usize],
        reference: &[[f64; 3]],
        positions: &mut [[f64; 3]],
    ) -> Result<usize, ConstraintError> {
        let batch = ks.len().min(BATCH);
        let mut pairs = [[[0usize; 2]; K]; BATCH];
        let mut length_sq = [[0.0; K]; BATCH];
        let mut coupling = [[[0.0; K]; K]; BATCH];
        let mut dir = [[[0.0; 3]; K]; BATCH];
        for (b, &k) in ks[..batch].iter().enumerate() {
            let start = self.cluster_start[k];
            pairs[b].copy_from_slice(&self.pairs[start..start + K]);
            length_sq[b].copy_from_slice(&self.length_sq[start..start + K]);
            let at = self.coupling_start[k];
            for c in 0..K {
                coupling[b][c].copy_from_slice(&self.coupling[at + c * K..at + (c + 1) * K]);
                dir[b][c] = sub(reference[pairs[b][c][0]], reference[pairs[b][c][1]]);
            }
        }
        let mut iteration = 0;
        loop {
            let mut s = [[[0.0; 3]; K]; BATCH];
            let mut y = [[0.0; K]; BATCH];
            let mut errors = [[0.0; K]; BATCH];
            // Independent tests per constraint (no chain through a running maximum):
            // converged when every error is below the tolerance (a NaN is not).
            let (mut converged, mut finite) = (true, true);
            for b in 0..batch {
                for c in 0..K {
                    s[b][c] = sub(positions[pairs[b][c][0]], positions[pairs[b][c][1]]);
                    let f = dot(s[b][c], s[b][c]) - length_sq[b][c];
                    let err = (f / (2.0 * length_sq[b][c])).abs();
                    converged &= err < self.tolerance;
                    finite &= err.is_finite();
                    errors[b][c] = err;
                    y[b][c] = -f;
                }
            }
            if converged {
                return Ok(iteration);
            }
            if iteration == MAX_ITERATIONS || !finite {
                // The worst error, NaN if any is, in the order b then c.
                let (mut worst, mut worst_at) = (0.0, (0, 0));
                for (b, row) in errors.iter().enumerate().take(batch) {
                    for (c, &err) in row.iter().enumerate() {
                        if err.is_nan() || err > worst {
                            (worst, worst_at) = (err, (b, c));
                        }
                    }
                }
                let c = self.cluster_start[ks[worst_at.0]] + worst_at.1;
                return Err(self.not_converged(iteration, worst, c));
            }
            for b in 0..batch {
                let mut m = [[0.0; K]; K];
                for c in 0..K {
                    for e in 0..K {
                        m[c][e] = 2.0 * coupling[b][c][e] * dot(s[b][c], dir[b][e]);
                    }
                }
                if !solve_fixed(&mut m, &mut y[b]) {
                    return Err(self.singular(self.cluster_start[ks[b]]));
                }
                for e in 0..K {
                    let [a, bb] = pairs[b][e];
                    let (wa, wb) = (y[b][e] * self.inv_mass[a], y[b][e] * self.inv_mass[bb]);
                    for x in 0..3 {
                        positions[a][x] += wa * dir[b][e][x];
                        positions[bb][x] -= wb * dir[b][e][x];
                    }
                }
            }
            iteration += 1;
        }
    }

    /// RATTLE on cluster `k` of exactly `K` constraints, on the stack.
    #[inline(always)]
    fn rattle_small<const K: usize>(
        &self,
        k: usize,
        positions: &[[f64; 3]],
        velocities: &mut [[f64; 3]],
    ) -> Result<(), ConstraintError> {
        let start = self.cluster_start[k];
        let pairs: &[[usize; 2]; K] = self.pairs[start..start + K].try_into().unwrap();
        let coupling = &self.coupling[self.coupling_start[k]..self.coupling_start[k] + K * K];
        let dir: [[f64; 3]; K] =
            std::array::from_fn(|c| sub(positions[pairs[c][0]], positions[pairs[c][1]]));
        let mut y: [f64; K] = std::array::from_fn(|c| {
            -dot(
                sub(velocities[pairs[c][0]], velocities[pairs[c][1]]),
                dir[c],
            )
        });
        let mut m = [[0.0; K]; K];
        for c in 0..K {
            for e in 0..K {
                m[c][e] = coupling[c * K + e] * dot(dir[c], dir[e]);
            }
        }
        if !solve_fixed(&mut m, &mut y) {
            return Err(self.singular(start));
        }
        for e in 0..K {
            let [a, b] = pairs[e];
            let (wa, wb) = (y[e] * self.inv_mass[a], y[e] * self.inv_mass[b]);
            for x in 0..3 {
                velocities[a][x] += wa * dir[e][x];
                velocities[b][x] -= wb * dir[e][x];
            }
        }
        Ok(())
    }
}

/// Solves m y_new = y in place for a small fixed-size system: by Cramer's rule for K <= 3
/// (the H-bond clusters X-H, NH2, CH3), by Gaussian elimination with partial pivoting
/// above (unrolled by the compiler). False if the matrix is singular.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn solve_fixed<const K: usize>(m: &mut [[f64; K]; K], y: &mut [f64; K]) -> bool {
    // The small systems of H-bond clusters (an X-H bond, NH2, CH3) by Cramer's rule:
    // no pivoting branches, and the matrices are diagonally dominant.
    if K == 1 {
        let p = m[0][0];
        if !(p.abs() > 1e-300 && p.is_finite()) {
            return false;
        }
        y[0] /= p;
        return true;
    }
    if K == 2 {
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        if !(det.abs() > 1e-300 && det.is_finite()) {
            return false;
        }
        let inv = 1.0 / det;
        let (y0, y1) = (y[0], y[1]);
        y[0] = (m[1][1] * y0 - m[0][1] * y1) * inv;
        y[1] = (m[0][0] * y1 - m[1][0] * y0) * inv;
        return true;
    }
    if K == 3 {
        let c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1];
        let c01 = m[1][2] * m[2][0] - m[1][0] * m[2][2];
        let c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0];
        let det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02;
        if !(det.abs() > 1e-300 && det.is_finite()) {
            return false;
        }
        let inv = 1.0 / det;
        let (y0, y1, y2) = (y[0], y[1], y[2]);
        y[0] = (c00 * y0
            + (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * y1
            + (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * y2)
            * inv;
        y[1] = (c01 * y0
            + (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * y1
            + (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * y2)
            * inv;
        y[2] = (c02 * y0
            + (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * y1
            + (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * y2)
            * inv;
        return true;
    }
    for col in 0..K {
        let mut pivot = col;
        for r in col + 1..K {
            if m[r][col].abs() > m[pivot][col].abs() {
                pivot = r;
            }
        }
        let p = m[pivot][col].abs();
        if !p.is_finite() || p <= 1e-300 {
            return false;
        }
        m.swap(pivot, col);
        y.swap(pivot, col);
        let inv = 1.0 / m[col][col];
        for r in col + 1..K {
            let factor = m[r][col] * inv;
            for x in col..K {
                m[r][x] -= factor * m[col][x];
            }
            y[r] -= factor * y[col];
        }
    }
    for r in (0..K).rev() {
        let mut acc = y[r];
        for x in r + 1..K {
            acc -= m[r][x] * y[x];
        }
        y[r] = acc / m[r][r];
    }
    true
}

#[cfg(test)]
mod tests;
