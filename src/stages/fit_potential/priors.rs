//! The priors of a `fit_potential` node, fitted to its training frames before the
//! networks ([`crate::nn::priors`]). A new prior is one more call here and its params in
//! [`super::FitPotentialParams`].

use std::sync::Arc;

use super::frames::Frames;
use super::{FitPotentialParams, bad_input};
use crate::md::units::BOLTZMANN;
use crate::nn::priors::bead_angles::BeadAngles;
use crate::nn::priors::dihedral_fourier::DihedralFourier;
use crate::nn::priors::dihedral_pairs::DihedralPairs;
use crate::nn::priors::excluded_volume::ExcludedVolume;
use crate::nn::priors::harmonic_distances::HarmonicDistances;
use crate::nn::priors::repulsion::Repulsion;
use crate::nn::priors::{BeadFrames, Prior, PriorError, PriorSet, angle_dihedral};
use crate::stages::StageError;

/// The priors of `p`, fitted to the `train` frames of `data` ([`crate::nn::priors`]).
pub(super) fn fit_priors(
    p: &FitPotentialParams,
    data: &Frames,
    train: &[usize],
) -> Result<PriorSet, StageError> {
    let n = data.n;
    let frames = BeadFrames::new(n, &data.positions);
    let kt = BOLTZMANN * p.temperature_k;
    let bad = |e: PriorError| bad_input(e.0);
    let mut priors: Vec<Arc<dyn Prior>> = vec![Arc::new(Repulsion::fit(
        &frames,
        train,
        p.repulsion_kj_per_mol,
        p.repulsion_sigma_nm,
    ))];
    if let Some(eps) = p.excluded_volume_kj_per_mol {
        priors.extend(
            ExcludedVolume::fit(&frames, train, eps, p.excluded_volume_separation)
                .map(|prior| Arc::new(prior) as Arc<dyn Prior>),
        );
    }
    if p.bond_prior {
        priors.push(Arc::new(
            HarmonicDistances::fit(&frames, train, kt, 1, "bond_prior").map_err(bad)?,
        ));
    }
    if p.angle_prior && n >= 3 {
        priors.push(Arc::new(
            HarmonicDistances::fit(&frames, train, kt, 2, "angle_prior").map_err(bad)?,
        ));
    }
    if p.theta_prior {
        let following = angle_dihedral::fit(
            &frames,
            train,
            kt,
            p.theta_dihedral_order,
            p.theta_dihedral_shrinkage,
        )
        .map_err(bad)?;
        let angles = match following {
            Some(angles) => Some(angles),
            None => BeadAngles::fit(&frames, train, kt).map_err(bad)?,
        };
        if let Some(angles) = angles {
            priors.push(Arc::new(angles));
        }
    }
    if let Some(dihedrals) = DihedralFourier::fit(&frames, train, kt, p.dihedral_prior_order) {
        priors.push(Arc::new(dihedrals));
    }
    if let Some(pairs) = DihedralPairs::fit(
        &frames,
        train,
        kt,
        p.dihedral_pair_order,
        p.dihedral_pair_floor,
    )
    .map_err(bad)?
    {
        priors.push(Arc::new(pairs));
    }
    Ok(PriorSet::new(priors))
}
