//! The basins of alanine dipeptide's (phi, psi) map, as the alanine dipeptide studies
//! define them (degrees): C7ax/alpha_L where phi > 0; alpha_R where phi <= 0 and
//! -125 < psi < 50; C7eq/beta elsewhere.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Basin {
    /// Extended and C7eq: phi <= 0 outside the alpha_R band.
    C7eqBeta,
    /// Right-handed helix: phi <= 0, -125 < psi < 50.
    AlphaR,
    /// C7ax and the left-handed helix: phi > 0.
    C7axAlphaL,
}

impl Basin {
    /// All basins, in the order of the populations table.
    pub const ALL: [Basin; 3] = [Basin::C7eqBeta, Basin::AlphaR, Basin::C7axAlphaL];

    /// The basin of dihedrals in degrees.
    pub fn of(phi_deg: f64, psi_deg: f64) -> Basin {
        if phi_deg > 0.0 {
            Basin::C7axAlphaL
        } else if -125.0 < psi_deg && psi_deg < 50.0 {
            Basin::AlphaR
        } else {
            Basin::C7eqBeta
        }
    }

    /// The name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Basin::C7eqBeta => "C7eq/beta",
            Basin::AlphaR => "alpha_R",
            Basin::C7axAlphaL => "C7ax/alpha_L",
        }
    }

    /// The name on plots.
    /// The name with Greek letters, for figures.
    pub fn label(self) -> &'static str {
        match self {
            Basin::C7eqBeta => "C7eq/β",
            Basin::AlphaR => "α_R",
            Basin::C7axAlphaL => "C7ax/α_L",
        }
    }
}
