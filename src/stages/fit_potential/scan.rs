//! The fit-time force scan: where a fitted potential's forces would blow a CG chain up.
//!
//! CG chains leave the training frames' region (that is what they are for), and a prior
//! or network fitted where the frames are thin can give huge forces there: a chain then
//! stops thousands of steps in ("chain 5 blew up at step 29766 ... |F| above 1e5
//! kJ/mol/nm"). The scan looks for such places at fit time. From up to [`FRAMES`]
//! training frames (evenly spaced), each bead dihedral psi_q in turn is swept over the
//! whole circle in [`STEPS`] steps by rotating beads q+3.. rigidly about the axis of
//! beads q+1 -> q+2, which changes psi_q alone and keeps every bond and bead angle of the
//! frame. Each configuration is evaluated as the sampler evaluates it
//! ([`HostCgPotential`]); configurations where two beads come closer than half the
//! closest approach in the training frames are skipped (a steric clash the repulsion
//! keeps chains out of, not a place they reach). The largest |F_i| is the scan's result,
//! and where it exceeds the limit the stage fails naming the frame, the dihedral, the
//! angle, the bead, and the share of each prior and of the networks in that force.

use std::sync::Arc;

use crate::artifact::tensors::NamedTensor;
use crate::geometry::dihedral::dihedral_deg;
use crate::geometry::{cross, dot, norm, scale, sub};
use crate::md::potential::Potential;
use crate::nn::cg_potential_host::HostCgPotential;
use crate::nn::priors::{BeadFrames, PriorSet, bead_pairs};

/// Training frames the scan starts from, at most.
pub const FRAMES: usize = 16;

/// Steps of each dihedral sweep (15 degrees).
pub const STEPS: usize = 24;

/// The largest force found, and where.
#[derive(Clone, Debug)]
pub struct Scan {
    /// kJ/mol/nm; 0 when nothing was scanned (fewer than 4 beads).
    pub max_force: f64,
    pub worst: Option<Worst>,
}

#[derive(Clone, Debug)]
pub struct Worst {
    /// Row of the training frame in the input trajectory.
    pub row: usize,
    pub dihedral: usize,
    /// The dihedral's value there, degrees.
    pub angle_deg: f64,
    /// Its range over the training frames, degrees.
    pub seen_deg: (f64, f64),
    pub bead: usize,
    /// |F| at the bead of each prior alone and of the networks (the rest), kJ/mol/nm.
    pub shares: Vec<(String, f64)>,
}

impl Worst {
    pub fn describe(&self, force: f64) -> String {
        let shares: Vec<String> = self
            .shares
            .iter()
            .map(|(name, f)| format!("{name} {f:.3e}"))
            .collect();
        format!(
            "|F| = {force:.3e} kJ/mol/nm on bead {} when bead dihedral {} of training frame \
             {} is turned to {:.0} degrees (the training frames have it in [{:.0}, {:.0}]); \
             |F| there by term: {}",
            self.bead,
            self.dihedral,
            self.row,
            self.angle_deg,
            self.seen_deg.0,
            self.seen_deg.1,
            shares.join(", ")
        )
    }
}

/// Scans the saved potential `saved` from the training frames `train` of `data`
/// (positions, `beads` per frame; `rows` maps them to input rows).
pub fn scan(
    saved: &[NamedTensor],
    data: &BeadFrames<'_>,
    train: &[usize],
    rows: &[usize],
) -> Result<Scan, String> {
    let n = data.beads;
    let mut scan = Scan {
        max_force: 0.0,
        worst: None,
    };
    if n < 4 || train.is_empty() {
        return Ok(scan);
    }
    let mut potential = HostCgPotential::from_tensors(saved)?;
    let priors = potential.priors().clone();
    let too_close = 0.5 * data.smallest_distance(train);
    let picks: Vec<usize> = (0..FRAMES.min(train.len()))
        .map(|k| train[k * train.len() / FRAMES.min(train.len())])
        .collect();
    let seen: Vec<(f64, f64)> = (0..n - 3)
        .map(|q| {
            train
                .iter()
                .map(|&t| data.dihedral(t, q).to_degrees())
                .filter(|d| d.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), d| {
                    (lo.min(d), hi.max(d))
                })
        })
        .collect();
    let mut forces = vec![[0.0; 3]; n];
    for &t in &picks {
        let frame: Vec<[f64; 3]> = (0..n).map(|i| data.point(t, i)).collect();
        for q in 0..n - 3 {
            for step in 1..STEPS {
                let turn = 2.0 * std::f64::consts::PI * step as f64 / STEPS as f64;
                let z = rotate_tail(&frame, q, turn);
                if bead_pairs(n).any(|(i, j)| norm(sub(z[i], z[j])) < too_close) {
                    continue;
                }
                potential.energy_forces(&z, &mut forces);
                let (bead, force) = largest(&forces);
                if !(force <= scan.max_force) {
                    scan.max_force = force;
                    scan.worst = Some(Worst {
                        row: rows[t],
                        dihedral: q,
                        angle_deg: dihedral_deg(z[q], z[q + 1], z[q + 2], z[q + 3]),
                        seen_deg: seen[q],
                        bead,
                        shares: shares(&priors, &z, bead, &forces),
                    });
                }
            }
        }
    }
    Ok(scan)
}

/// |F_i| of each prior alone at bead `bead`, and of the networks (the total less the
/// priors).
fn shares(
    priors: &PriorSet,
    z: &[[f64; 3]],
    bead: usize,
    total: &[[f64; 3]],
) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut rest = total[bead];
    let mut f = vec![[0.0; 3]; z.len()];
    for prior in priors.iter() {
        PriorSet::new(vec![Arc::clone(prior)]).energy_and_forces(z, &mut f);
        out.push((prior.kind().to_string(), norm(f[bead])));
        rest = sub(rest, f[bead]);
    }
    out.push(("networks".to_string(), norm(rest)));
    out
}

/// The bead with the largest |F_i|, and that |F_i| (NaN wins: a non-finite force is the
/// worst there is).
fn largest(forces: &[[f64; 3]]) -> (usize, f64) {
    let mut best = (0, 0.0);
    for (i, f) in forces.iter().enumerate() {
        let magnitude = norm(*f);
        if !(magnitude <= best.1) {
            best = (i, magnitude);
            if magnitude.is_nan() {
                break;
            }
        }
    }
    best
}

/// Beads q+3.. of `frame` rotated by `angle` (rad) about the axis through beads q+1 and
/// q+2 (Rodrigues' formula): dihedral q turns by `angle`, every other internal
/// coordinate stays.
fn rotate_tail(frame: &[[f64; 3]], q: usize, angle: f64) -> Vec<[f64; 3]> {
    let origin = frame[q + 2];
    let axis = sub(frame[q + 2], frame[q + 1]);
    let k = scale(axis, 1.0 / norm(axis));
    let (cos, sin) = (angle.cos(), angle.sin());
    let mut out = frame.to_vec();
    for p in out.iter_mut().skip(q + 3) {
        let v = sub(*p, origin);
        let kxv = cross(k, v);
        let kv = dot(k, v);
        for c in 0..3 {
            p[c] = origin[c] + v[c] * cos + kxv[c] * sin + k[c] * kv * (1.0 - cos);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::angle::bond_angle_rad;

    #[test]
    fn rotating_the_tail_turns_one_dihedral_and_keeps_the_rest() {
        let frame: Vec<[f64; 3]> = vec![
            [0.0, 0.0, 0.0],
            [0.38, 0.0, 0.0],
            [0.5, 0.36, 0.0],
            [0.9, 0.4, 0.2],
            [1.1, 0.7, 0.1],
            [1.4, 0.8, 0.4],
        ];
        let dihedrals = |z: &[[f64; 3]]| -> Vec<f64> {
            (0..3)
                .map(|q| dihedral_deg(z[q], z[q + 1], z[q + 2], z[q + 3]))
                .collect()
        };
        let before = dihedrals(&frame);
        let turned = rotate_tail(&frame, 1, 40f64.to_radians());
        let after = dihedrals(&turned);
        let change = crate::geometry::dihedral::wrap_deg(after[1] - before[1]);
        assert!((change.abs() - 40.0).abs() < 1e-9, "{change}");
        for q in [0, 2] {
            assert!((after[q] - before[q]).abs() < 1e-9);
        }
        for i in 0..5 {
            assert!(
                (norm(sub(turned[i + 1], turned[i])) - norm(sub(frame[i + 1], frame[i]))).abs()
                    < 1e-12
            );
        }
        for i in 0..4 {
            let a = bond_angle_rad(frame[i], frame[i + 1], frame[i + 2]);
            let b = bond_angle_rad(turned[i], turned[i + 1], turned[i + 2]);
            assert!((a - b).abs() < 1e-12);
        }
    }
}
