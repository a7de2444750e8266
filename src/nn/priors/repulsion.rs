//! Short-range repulsion between every pair of beads:
//!
//! ```text
//! U = sum_{i<j} eps (sigma / d_ij)^6,   dU/dd = -6 eps (sigma / d)^6 / d     (kJ/mol, nm)
//! ```
//!
//! It keeps CG chains from passing beads through each other where the training frames
//! never bring two beads close, which a network on distances has no data to forbid.
//! eps = `repulsion_kj_per_mol`; sigma = `repulsion_sigma_nm`, or 0.9 times the smallest
//! bead-pair distance of the training frames. With eps = 0 it adds nothing. It is added
//! to each pair's network energy before the pairs are summed.

use std::any::Any;
use std::sync::Arc;

use super::{BeadFrames, Prior, PriorError, PriorKind, SavedRows, scalar_row};
use crate::artifact::tensors::NamedTensor;

#[derive(Clone, Debug, PartialEq)]
pub struct Repulsion {
    /// kJ/mol.
    pub eps: f64,
    /// nm.
    pub sigma: f64,
}

pub const KIND: PriorKind = PriorKind {
    name: "repulsion",
    load,
    absent_rows: Vec::new,
};

impl Repulsion {
    /// eps in kJ/mol; sigma in nm, or 0.9 times the smallest bead-pair distance over
    /// `frames` when None.
    pub fn fit(data: &BeadFrames<'_>, frames: &[usize], eps: f64, sigma: Option<f64>) -> Self {
        Repulsion {
            eps,
            sigma: sigma.unwrap_or_else(|| 0.9 * data.smallest_distance(frames)),
        }
    }
}

fn load(rows: &SavedRows<'_>, _beads: usize) -> Result<Option<Arc<dyn Prior>>, PriorError> {
    if rows.get("repulsion_kj_per_mol").is_none() && rows.get("repulsion_sigma_nm").is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Repulsion {
        eps: rows.scalar("repulsion_kj_per_mol")?,
        sigma: rows.scalar("repulsion_sigma_nm")?,
    })))
}

impl Prior for Repulsion {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn per_pair(&self, distances: &[f64], pair_energy: &mut [f64], de_dd: &mut [f64]) {
        if self.eps > 0.0 {
            for ((&d, e), g) in distances.iter().zip(pair_energy).zip(de_dd) {
                let s6 = (self.sigma / d).powi(6);
                *e += self.eps * s6;
                *g -= 6.0 * self.eps * s6 / d;
            }
        }
    }

    fn save(&self) -> Vec<NamedTensor> {
        vec![
            scalar_row("repulsion_kj_per_mol", self.eps),
            scalar_row("repulsion_sigma_nm", self.sigma),
        ]
    }

    fn describe(&self) -> String {
        format!(
            "repulsion eps {} kJ/mol, sigma {:.4} nm",
            self.eps, self.sigma
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
        let z = [[0.0, 0.0, 0.0], [0.31, 0.05, 0.0], [0.2, 0.33, 0.1]];
        let prior = Repulsion {
            eps: 2.0,
            sigma: 0.3,
        };
        assert!(force_error(&prior, &z, 1e-6) < 1e-5);
    }
}
