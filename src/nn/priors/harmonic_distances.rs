//! Harmonic priors on the distances between beads i and i + s along the chain: bonds
//! (s = 1) and 1-3 distances (s = 2, an angle prior in Urey-Bradley form), by Boltzmann
//! inversion of the training frames:
//!
//! ```text
//! U = sum_i k_i / 2 (d_{i,i+s} - r0_i)^2,   r0_i = <d>,   k_i = k_B T / var(d)
//! ```
//!
//! (kJ/mol, nm, kJ/mol/nm^2). The Gaussian whose Boltzmann inversion this is has the
//! frames' mean and variance. Measured on alanine dipeptide's backbone map, independent
//! 1-3 distances leave the bead angles 1.4-1.6 times too broad although each distance
//! matches: the bead-angle prior ([`super::bead_angles`]) is the default for angles.
//! Added to the energy and dU/dd of their pairs after the pair sum.

use std::any::Any;
use std::sync::Arc;

use super::{BeadFrames, Prior, PriorError, PriorKind, SavedRows, pair_index, vector_row};
use crate::artifact::tensors::NamedTensor;

#[derive(Clone, Debug, PartialEq)]
pub struct HarmonicDistances {
    /// s: 1 for bonds, 2 for 1-3 distances.
    pub separation: usize,
    /// kJ/mol/nm^2, one per pair (i, i + s).
    pub k: Vec<f64>,
    /// nm.
    pub r0: Vec<f64>,
    /// The index of pair (i, i + s) among all bead pairs.
    pairs: Vec<usize>,
}

pub const BONDS: PriorKind = PriorKind {
    name: "bonds",
    load: load_bonds,
    absent_rows: || rows(1, &[], &[]),
};

pub const UREY_BRADLEY: PriorKind = PriorKind {
    name: "urey_bradley",
    load: load_urey_bradley,
    absent_rows: || rows(2, &[], &[]),
};

/// The saved rows' names for separation s.
fn names(separation: usize) -> (&'static str, &'static str) {
    if separation == 1 {
        ("bond_k", "bond_r0_nm")
    } else {
        ("angle_k", "angle_r0_nm")
    }
}

fn rows(separation: usize, k: &[f64], r0: &[f64]) -> Vec<NamedTensor> {
    let (k_name, r0_name) = names(separation);
    vec![vector_row(k_name, k), vector_row(r0_name, r0)]
}

impl HarmonicDistances {
    /// The prior for `beads` beads from its constants; an error unless there is one k and
    /// one r0 per pair (i, i + separation).
    pub fn new(
        beads: usize,
        separation: usize,
        k: Vec<f64>,
        r0: Vec<f64>,
    ) -> Result<Self, PriorError> {
        assert!(separation == 1 || separation == 2, "bonds or 1-3 distances");
        let count = beads.saturating_sub(separation);
        if count == 0 || k.len() != count || r0.len() != count {
            let what = if separation == 1 { "bond" } else { "angle" };
            return Err(PriorError(format!(
                "saved potential has {} {what} constants and {} {what} lengths for {beads} \
                 beads (expected {count} of each)",
                k.len(),
                r0.len()
            )));
        }
        let pairs = (0..count)
            .map(|i| pair_index(beads, i, separation))
            .collect();
        Ok(HarmonicDistances {
            separation,
            k,
            r0,
            pairs,
        })
    }

    /// Boltzmann inversion over `frames` at k_B T = `kt` (kJ/mol); `param` names the
    /// switch in the error for a distance that does not vary.
    pub fn fit(
        data: &BeadFrames<'_>,
        frames: &[usize],
        kt: f64,
        separation: usize,
        param: &str,
    ) -> Result<Self, PriorError> {
        let count = data.beads.saturating_sub(separation);
        let mut k = Vec::with_capacity(count);
        let mut r0 = Vec::with_capacity(count);
        for i in 0..count {
            let j = i + separation;
            let d: Vec<f64> = frames.iter().map(|&t| data.distance(t, i, j)).collect();
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d.len() as f64;
            if var <= 1e-12 * mean * mean {
                return Err(PriorError(format!(
                    "the distance between beads {i} and {j} does not vary over the training \
                     frames ({mean} nm): no harmonic prior by Boltzmann inversion (set \
                     {param}: false)"
                )));
            }
            k.push(kt / var);
            r0.push(mean);
        }
        HarmonicDistances::new(data.beads, separation, k, r0)
    }
}

fn load(
    rows: &SavedRows<'_>,
    beads: usize,
    separation: usize,
) -> Result<Option<Arc<dyn Prior>>, PriorError> {
    let (k_name, r0_name) = names(separation);
    let (k, r0) = (rows.vector(k_name), rows.vector(r0_name));
    if k.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(HarmonicDistances::new(
        beads, separation, k, r0,
    )?)))
}

fn load_bonds(rows: &SavedRows<'_>, beads: usize) -> Result<Option<Arc<dyn Prior>>, PriorError> {
    load(rows, beads, 1)
}

fn load_urey_bradley(
    rows: &SavedRows<'_>,
    beads: usize,
) -> Result<Option<Arc<dyn Prior>>, PriorError> {
    load(rows, beads, 2)
}

impl Prior for HarmonicDistances {
    fn kind(&self) -> &'static str {
        if self.separation == 1 {
            BONDS.name
        } else {
            UREY_BRADLEY.name
        }
    }

    fn on_distances(&self, distances: &[f64], energy: &mut f64, de_dd: &mut [f64]) {
        for (b, &p) in self.pairs.iter().enumerate() {
            let stretch = distances[p] - self.r0[b];
            let k = self.k[b];
            *energy += 0.5 * k * stretch * stretch;
            de_dd[p] += k * stretch;
        }
    }

    fn save(&self) -> Vec<NamedTensor> {
        rows(self.separation, &self.k, &self.r0)
    }

    fn describe(&self) -> String {
        let what = if self.separation == 1 {
            "bond"
        } else {
            "1-3 distance"
        };
        format!(
            "{what} prior r0 {:?} nm, k {:?} kJ/mol/nm^2",
            self.r0, self.k
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::priors::force_error;

    #[test]
    fn forces_are_minus_the_gradient() {
        let z = [
            [0.0, 0.0, 0.0],
            [0.15, 0.02, 0.0],
            [0.2, 0.16, 0.03],
            [0.36, 0.2, 0.1],
        ];
        for s in [1, 2] {
            let count = 4 - s;
            let prior =
                HarmonicDistances::new(4, s, vec![900.0; count], vec![0.14; count]).unwrap();
            assert!(force_error(&prior, &z, 1e-6) < 1e-5);
        }
    }

    #[test]
    fn constants_must_fit_the_chain() {
        assert!(HarmonicDistances::new(4, 1, vec![1.0; 2], vec![0.1; 2]).is_err());
        assert!(HarmonicDistances::new(2, 2, vec![1.0], vec![0.1]).is_err());
    }
}
