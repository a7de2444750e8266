//! Excluded volume between beads far apart along the chain, each pair with its own
//! reach:
//!
//! ```text
//! U = sum_{j - i >= s} eps (sigma_ij / d_ij)^6,   sigma_ij = 0.9 min_t d_ij(t)     (kJ/mol, nm)
//! ```
//!
//! with the minimum over the training frames. A protein's C-alpha chain needs it: the
//! all-pair [`super::repulsion`] takes one sigma from the closest pair of all, a bonded
//! one (0.38 nm for C-alpha beads), which lets non-bonded beads that never come nearer
//! than 0.45 nm in the frames pass through each other where a network on distances has
//! no data to forbid it; CGSchNet's and mlcg's C-alpha models likewise repel pairs
//! three or more beads apart with a reach fitted per pair. At sigma_ij the energy is
//! eps (`excluded_volume_kj_per_mol`), and it rises as d^-6 inside. s =
//! `excluded_volume_separation`. Added to each pair's energy before the pair sum.

use std::any::Any;
use std::sync::Arc;

use super::{
    BeadFrames, Prior, PriorError, PriorKind, SavedRows, bead_pairs, scalar_row, vector_row,
};
use crate::artifact::tensors::NamedTensor;

#[derive(Clone, Debug, PartialEq)]
pub struct ExcludedVolume {
    /// kJ/mol.
    pub eps: f64,
    /// nm, one per bead pair in pair order; 0 for pairs closer than s along the chain.
    pub sigma: Vec<f64>,
}

pub const KIND: PriorKind = PriorKind {
    name: "excluded_volume",
    load,
    absent_rows: Vec::new,
};

impl ExcludedVolume {
    /// eps in kJ/mol on the pairs at least `separation` beads apart, their reach from
    /// the `frames`; None when the chain has no such pair.
    pub fn fit(
        data: &BeadFrames<'_>,
        frames: &[usize],
        eps: f64,
        separation: usize,
    ) -> Option<Self> {
        let sigma: Vec<f64> = bead_pairs(data.beads)
            .map(|(i, j)| {
                if j - i < separation {
                    return 0.0;
                }
                let closest = frames
                    .iter()
                    .map(|&t| data.distance(t, i, j))
                    .fold(f64::INFINITY, f64::min);
                0.9 * closest
            })
            .collect();
        sigma
            .iter()
            .any(|&s| s > 0.0)
            .then_some(ExcludedVolume { eps, sigma })
    }
}

fn load(rows: &SavedRows<'_>, beads: usize) -> Result<Option<Arc<dyn Prior>>, PriorError> {
    let Some(sigma) = rows.get("excluded_volume_sigma_nm") else {
        return Ok(None);
    };
    let pairs = beads * beads.saturating_sub(1) / 2;
    if sigma.len() != pairs || sigma.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
        return Err(PriorError(format!(
            "saved potential has {} excluded-volume reaches for {pairs} bead pairs (expected \
             one finite, non-negative value per pair)",
            sigma.len()
        )));
    }
    Ok(Some(Arc::new(ExcludedVolume {
        eps: rows.scalar("excluded_volume_kj_per_mol")?,
        sigma: sigma.to_vec(),
    })))
}

impl Prior for ExcludedVolume {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn per_pair(&self, distances: &[f64], pair_energy: &mut [f64], de_dd: &mut [f64]) {
        for (((&d, &sigma), e), g) in distances
            .iter()
            .zip(&self.sigma)
            .zip(pair_energy)
            .zip(de_dd)
        {
            if sigma > 0.0 {
                let s6 = (sigma / d).powi(6);
                *e += self.eps * s6;
                *g -= 6.0 * self.eps * s6 / d;
            }
        }
    }

    fn save(&self) -> Vec<NamedTensor> {
        vec![
            scalar_row("excluded_volume_kj_per_mol", self.eps),
            vector_row("excluded_volume_sigma_nm", &self.sigma),
        ]
    }

    fn describe(&self) -> String {
        let covered: Vec<f64> = self.sigma.iter().copied().filter(|&s| s > 0.0).collect();
        let lo = covered.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = covered.iter().copied().fold(0.0, f64::max);
        format!(
            "excluded volume eps {} kJ/mol on {} pairs, sigma {lo:.3}-{hi:.3} nm",
            self.eps,
            covered.len()
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

    /// Five beads on a zigzag, frame-major.
    fn frames() -> Vec<f64> {
        let mut out = Vec::new();
        for t in 0..3 {
            for b in 0..5 {
                let wiggle = 0.01 * t as f64;
                out.extend([
                    0.3 * b as f64,
                    0.2 * (b % 2) as f64 + wiggle,
                    0.05 * b as f64,
                ]);
            }
        }
        out
    }

    #[test]
    fn reaches_are_nine_tenths_of_the_closest_approach_of_distant_pairs() {
        let positions = frames();
        let data = BeadFrames::new(5, &positions);
        let prior = ExcludedVolume::fit(&data, &[0, 1, 2], 2.0, 3).unwrap();
        // Pairs (0,3), (0,4), (1,4) only.
        let pairs: Vec<(usize, usize)> = bead_pairs(5).collect();
        for (p, &(i, j)) in pairs.iter().enumerate() {
            if j - i >= 3 {
                let closest = (0..3)
                    .map(|t| data.distance(t, i, j))
                    .fold(f64::INFINITY, f64::min);
                assert_eq!(prior.sigma[p], 0.9 * closest);
            } else {
                assert_eq!(prior.sigma[p], 0.0);
            }
        }
        assert!(ExcludedVolume::fit(&data, &[0, 1, 2], 2.0, 5).is_none());
    }

    #[test]
    fn forces_are_minus_the_gradient_and_it_survives_saving() {
        let positions = frames();
        let data = BeadFrames::new(5, &positions);
        let prior = ExcludedVolume::fit(&data, &[0], 2.0, 3).unwrap();
        let z: Vec<[f64; 3]> = (0..5).map(|b| data.point(1, b)).collect();
        assert!(force_error(&prior, &z, 1e-6) < 1e-5);
        let rows = prior.save();
        let loaded = load(&SavedRows::new(&rows), 5).unwrap().unwrap();
        assert_eq!(
            loaded.as_any().downcast_ref::<ExcludedVolume>(),
            Some(&prior)
        );
        assert!(load(&SavedRows::new(&rows), 6).is_err());
    }
}
