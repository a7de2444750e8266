//! The params of a `fit_potential` node: their defaults, their documentation (what
//! `cgloop stages` prints) and their checks.

use serde::{Deserialize, Serialize};

use crate::nn::Activation;
use crate::nn::priors::{angle_dihedral, dihedral_pairs};
use crate::stages::{ParamDoc, ParamProblem};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitPotentialParams {
    pub temperature_index: i32,
    /// Temperature of the Boltzmann-inverted bond prior, K.
    pub temperature_k: f64,
    pub basis: usize,
    pub cutoff_nm: f64,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub repulsion_kj_per_mol: f64,
    /// `None`: 0.9 times the smallest bead-pair distance in the training frames.
    pub repulsion_sigma_nm: Option<f64>,
    /// eps of the excluded-volume prior, kJ/mol (`None`: no such prior).
    pub excluded_volume_kj_per_mol: Option<f64>,
    /// Fewest beads along the chain between a pair the excluded volume acts on.
    pub excluded_volume_separation: usize,
    /// The fit-time force scan's limit, kJ/mol/nm (`None`: no scan).
    pub max_force_kj_per_mol_nm: Option<f64>,
    pub bond_prior: bool,
    pub angle_prior: bool,
    /// Harmonic priors on the bead angles theta (Boltzmann inversion).
    pub theta_prior: bool,
    /// Fourier order of the bead-angle centres in the neighbouring dihedrals (0: fixed).
    pub theta_dihedral_order: usize,
    /// Weight, as a fraction of the training frames, of pseudo-observations spread over
    /// the dihedrals' torus at the mean bead angle (the centres' shrinkage).
    pub theta_dihedral_shrinkage: f64,
    /// Fourier order of the Boltzmann-inverted dihedral prior (0: none).
    pub dihedral_prior_order: usize,
    /// Fourier order of the dihedral-pair prior (0: none; exclusive with the above).
    pub dihedral_pair_order: usize,
    /// Density floor of the dihedral-pair prior, a fraction of the uniform density.
    pub dihedral_pair_floor: f64,
    /// The torsion network over consecutive bead quadruples.
    pub torsions: bool,
    /// Consecutive dihedrals the torsion network sees together.
    pub torsion_window: usize,
    pub epochs: usize,
    /// Relative-entropy refinement after force matching (0: none).
    pub relative_entropy_iterations: usize,
    pub relative_entropy_chains: usize,
    pub relative_entropy_steps: u64,
    pub relative_entropy_learning_rate: f64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub validation_fraction: f64,
    pub validation_blocks: usize,
}

impl Default for FitPotentialParams {
    fn default() -> Self {
        FitPotentialParams {
            temperature_index: 0,
            temperature_k: 300.0,
            basis: 16,
            cutoff_nm: 1.2,
            hidden: vec![64, 64],
            activation: Activation::Silu,
            repulsion_kj_per_mol: 1.0,
            repulsion_sigma_nm: None,
            excluded_volume_kj_per_mol: None,
            excluded_volume_separation: 3,
            max_force_kj_per_mol_nm: Some(1e5),
            bond_prior: true,
            angle_prior: false,
            theta_prior: true,
            theta_dihedral_order: 0,
            theta_dihedral_shrinkage: 1e-3,
            dihedral_prior_order: 6,
            dihedral_pair_order: 0,
            dihedral_pair_floor: 0.01,
            torsions: true,
            torsion_window: 1,
            epochs: 50,
            relative_entropy_iterations: 0,
            relative_entropy_chains: 64,
            relative_entropy_steps: 400,
            relative_entropy_learning_rate: 1e-4,
            batch_size: 64,
            learning_rate: 1e-3,
            validation_fraction: 0.2,
            validation_blocks: 10,
        }
    }
}

pub(super) const DOCS: &[ParamDoc] = &[
    ParamDoc {
        name: "temperature_index",
        about: "rung of the temperature ladder to train on (0: the lowest)",
    },
    ParamDoc {
        name: "temperature_k",
        about: "temperature of the bond prior's Boltzmann inversion k = k_B T / var(d), K",
    },
    ParamDoc {
        name: "basis",
        about: "Gaussian radial basis functions per bead-pair distance",
    },
    ParamDoc {
        name: "cutoff_nm",
        about: "largest radial basis centre, nm",
    },
    ParamDoc {
        name: "hidden",
        about: "hidden layer widths of the pair network",
    },
    ParamDoc {
        name: "activation",
        about: "activation of the pair network: silu, tanh or softplus",
    },
    ParamDoc {
        name: "repulsion_kj_per_mol",
        about: "eps of the repulsion prior eps (sigma/d)^6, kJ/mol (0: none)",
    },
    ParamDoc {
        name: "repulsion_sigma_nm",
        about: "sigma of the repulsion prior, nm; null: 0.9 x the smallest bead-pair \
                distance in the training frames",
    },
    ParamDoc {
        name: "excluded_volume_kj_per_mol",
        about: "eps of the excluded-volume prior eps (sigma_ij/d_ij)^6 on pairs at least \
                excluded_volume_separation beads apart, sigma_ij 0.9 x the pair's closest \
                approach in the training frames, kJ/mol (null: none)",
    },
    ParamDoc {
        name: "excluded_volume_separation",
        about: "fewest beads along the chain between a pair the excluded volume acts on \
                (at least 2)",
    },
    ParamDoc {
        name: "max_force_kj_per_mol_nm",
        about: "the fit-time force scan fails above this |F| on a bead, kJ/mol/nm: each \
                bead dihedral of up to 16 training frames swept over the circle, as a CG \
                chain may turn it (cg_sample's default limit; null: no scan)",
    },
    ParamDoc {
        name: "bond_prior",
        about: "harmonic bonds between consecutive beads, by Boltzmann inversion of the \
                training frames",
    },
    ParamDoc {
        name: "angle_prior",
        about: "harmonic priors on the distances between beads i and i+2 (angles in \
                Urey-Bradley form) by Boltzmann inversion (default false; exclusive with \
                theta_prior)",
    },
    ParamDoc {
        name: "theta_prior",
        about: "harmonic priors on the bead angles theta_(i,i+1,i+2) by Boltzmann inversion, \
                k = k_B T / var(theta) (default true; unlike angle_prior it keeps the bonds' \
                and 1-3 distances' fluctuations coupled as in the data)",
    },
    ParamDoc {
        name: "dihedral_prior_order",
        about: "a prior on each consecutive bead dihedral psi: the Fourier series of order M \
                (at most 8) of -k_B T ln p(psi) from a 36-bin histogram of the training \
                frames (one pseudo-count per bin); default 6, 0: none",
    },
    ParamDoc {
        name: "theta_dihedral_order",
        about: "with theta_prior: each bead angle's centre as a Fourier series of order L \
                (at most 4) in the dihedrals next to it, fitted by least squares, k = k_B T \
                over the residual variance; bead angles then follow the basins as the FG \
                ones do. Default 0 (a fixed centre)",
    },
    ParamDoc {
        name: "theta_dihedral_shrinkage",
        about: "with theta_dihedral_order: pseudo-observations at the mean bead angle,                     spread evenly over the torus of the dihedrals, of this total weight as a                     fraction of the training frames (default 0.001): where the frames never                     go the centres stay near the mean angle instead of following the series                     out of range (a ridge penalty in the Fourier basis)",
    },
    ParamDoc {
        name: "dihedral_pair_order",
        about: "a prior on each pair of consecutive bead dihedrals (psi_q, psi_q+1): -k_B T \
                ln of their kernel density estimate on the torus (wrapped Gaussian of width \
                sqrt(8)/M rad), as a Fourier series of order M (at most 24); it gives the \
                joint distribution, where dihedral_prior_order gives each marginal alone. \
                Default 0 (none); set dihedral_prior_order to 0 with it",
    },
    ParamDoc {
        name: "dihedral_pair_floor",
        about: "the dihedral-pair prior's density floor, a fraction of the uniform density \
                1/(4 pi^2) (default 0.01): where the frames never go the prior is flat at \
                about -k_B T ln(floor) above the uniform level, which bounds the barriers \
                between basins",
    },
    ParamDoc {
        name: "torsions",
        about: "add a torsion network on cos and sin of the dihedral of each consecutive \
                bead quadruple (needs 4 beads; distances alone cannot tell a chiral chain \
                from its mirror image)",
    },
    ParamDoc {
        name: "torsion_window",
        about: "consecutive dihedrals the torsion network sees together (default 1: each \
                alone); 2 gives one term per pair of neighbouring dihedrals, e.g. T(phi, psi), \
                which can hold their joint free energy (at most the chain's dihedrals)",
    },
    ParamDoc {
        name: "relative_entropy_iterations",
        about: "after force matching, refine the networks by relative entropy for this many \
                iterations (0: none): each compares U_hat's gradient on a minibatch of \
                mapped frames (batch_size of them, at least 512) with its gradient on \
                persistent CG Langevin chains, so the fit follows the free energy, which \
                force matching on noisy forces cannot see",
    },
    ParamDoc {
        name: "relative_entropy_chains",
        about: "persistent CG chains of the relative-entropy refinement (default 64: the \
                gradient is the difference of two sample means; 32 were too few on \
                alanine dipeptide)",
    },
    ParamDoc {
        name: "relative_entropy_steps",
        about: "Langevin steps (2 fs) each chain runs per refinement iteration",
    },
    ParamDoc {
        name: "relative_entropy_learning_rate",
        about: "Adam step size of the refinement (default 1e-4; 1e-3 overshot on alanine \
                dipeptide, docs/studies/alanine_dipeptide.md section 2.5)",
    },
    ParamDoc {
        name: "epochs",
        about: "passes over the training frames; 0 trains nothing: the networks' weights \
                are zero and the potential is its priors alone",
    },
    ParamDoc {
        name: "batch_size",
        about: "frames per minibatch",
    },
    ParamDoc {
        name: "learning_rate",
        about: "Adam step size",
    },
    ParamDoc {
        name: "validation_fraction",
        about: "fraction of the blocks held out for validation, in (0, 1)",
    },
    ParamDoc {
        name: "validation_blocks",
        about: "contiguous blocks the frames are cut into for the split (at least 2)",
    },
];

pub(super) fn check(p: &FitPotentialParams) -> Result<(), ParamProblem> {
    let positive = ParamProblem::positive;
    if p.temperature_index < 0 {
        return Err(ParamProblem::new("temperature_index", "must be 0 or more"));
    }
    positive("temperature_k", p.temperature_k)?;
    if p.relative_entropy_iterations > 0 {
        if p.relative_entropy_chains == 0 {
            return Err(ParamProblem::new(
                "relative_entropy_chains",
                "must be 1 or more",
            ));
        }
        if p.relative_entropy_steps == 0 {
            return Err(ParamProblem::new(
                "relative_entropy_steps",
                "must be 1 or more",
            ));
        }
        positive(
            "relative_entropy_learning_rate",
            p.relative_entropy_learning_rate,
        )?;
    }
    if p.torsion_window == 0 {
        return Err(ParamProblem::new("torsion_window", "must be 1 or more"));
    }
    if p.dihedral_prior_order > 8 {
        return Err(ParamProblem::new(
            "dihedral_prior_order",
            format!(
                "at most 8 (a 36-bin histogram), got {}",
                p.dihedral_prior_order
            ),
        ));
    }
    ParamProblem::at_most(
        "theta_dihedral_order",
        p.theta_dihedral_order,
        angle_dihedral::MAX_ORDER,
    )?;
    if !(p.theta_dihedral_shrinkage.is_finite() && (0.0..1.0).contains(&p.theta_dihedral_shrinkage))
    {
        return Err(ParamProblem::new(
            "theta_dihedral_shrinkage",
            format!("must be in [0, 1), got {}", p.theta_dihedral_shrinkage),
        ));
    }
    if p.theta_dihedral_order > 0 && !p.theta_prior {
        return Err(ParamProblem::new(
            "theta_dihedral_order",
            "moves the centres of the theta prior: set theta_prior: true with it",
        ));
    }
    ParamProblem::at_most(
        "dihedral_pair_order",
        p.dihedral_pair_order,
        dihedral_pairs::MAX_ORDER,
    )?;
    if p.dihedral_pair_order > 0 && p.dihedral_prior_order > 0 {
        return Err(ParamProblem::new(
            "dihedral_pair_order",
            "the dihedral-pair prior holds each dihedral's marginal too; set \
             dihedral_prior_order: 0 with it",
        ));
    }
    if !(p.dihedral_pair_floor > 0.0 && p.dihedral_pair_floor <= 1.0) {
        return Err(ParamProblem::new(
            "dihedral_pair_floor",
            format!(
                "must be in (0, 1] (a fraction of the uniform density), got {}",
                p.dihedral_pair_floor
            ),
        ));
    }
    if p.angle_prior && p.theta_prior {
        return Err(ParamProblem::new(
            "theta_prior",
            "angle_prior and theta_prior both hold the bead angles (each alone is a full \
             Boltzmann inversion); set one of them to false",
        ));
    }
    if !(2..=1024).contains(&p.basis) {
        return Err(ParamProblem::new(
            "basis",
            format!("must be between 2 and 1024, got {}", p.basis),
        ));
    }
    positive("cutoff_nm", p.cutoff_nm)?;
    if let Some(&h) = p.hidden.iter().find(|&&h| !(1..=8192).contains(&h)) {
        return Err(ParamProblem::new(
            "hidden",
            format!("layer widths must be between 1 and 8192, got {h}"),
        ));
    }
    if !(p.repulsion_kj_per_mol.is_finite() && p.repulsion_kj_per_mol >= 0.0) {
        return Err(ParamProblem::new(
            "repulsion_kj_per_mol",
            format!("must be 0 or more, got {}", p.repulsion_kj_per_mol),
        ));
    }
    if let Some(s) = p.repulsion_sigma_nm {
        positive("repulsion_sigma_nm", s)?;
    }
    if let Some(limit) = p.max_force_kj_per_mol_nm {
        positive("max_force_kj_per_mol_nm", limit)?;
    }
    if let Some(eps) = p.excluded_volume_kj_per_mol {
        positive("excluded_volume_kj_per_mol", eps)?;
    }
    if p.excluded_volume_separation < 2 {
        return Err(ParamProblem::new(
            "excluded_volume_separation",
            format!(
                "must be at least 2 (bonded neighbours have the bond prior), got {}",
                p.excluded_volume_separation
            ),
        ));
    }
    if p.batch_size == 0 {
        return Err(ParamProblem::new("batch_size", "must be at least 1"));
    }
    if !(p.learning_rate.is_finite() && p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
        return Err(ParamProblem::new(
            "learning_rate",
            format!("must be in (0, 1], got {}", p.learning_rate),
        ));
    }
    if !(p.validation_fraction > 0.0 && p.validation_fraction < 1.0) {
        return Err(ParamProblem::new(
            "validation_fraction",
            format!("must be in (0, 1), got {}", p.validation_fraction),
        ));
    }
    if p.validation_blocks < 2 {
        return Err(ParamProblem::new(
            "validation_blocks",
            "must be at least 2 (one for training, one for validation)",
        ));
    }
    Ok(())
}
