//! The fraction of native contacts Q (Best, Hummer & Eaton, PNAS 110, 17874, 2013).
//!
//! Native contacts are the pairs (i, j) of heavy atoms in residues more than 3 apart
//! whose distance r0_ij in the native structure is below 0.45 nm. For a configuration x,
//!
//! ```text
//! Q(x) = (1/N) sum_(i,j) 1 / (1 + exp(beta (r_ij(x) - lambda r0_ij))),
//! ```
//!
//! with beta = 50 nm^-1 and lambda = 1.8 (the paper's all-atom values): Q is near 1 in
//! the native state and falls as contacts break. Units: nm.

use crate::geometry::distance;

/// Contact cutoff in the native structure (nm).
pub const CUTOFF_NM: f64 = 0.45;
/// Smoothing (1/nm).
pub const BETA_PER_NM: f64 = 50.0;
/// Tolerance factor on the native distance.
pub const LAMBDA: f64 = 1.8;
/// Residues closer than this along the chain make no native contact.
pub const MIN_SEPARATION: i32 = 4;

/// The native contacts of one structure.
#[derive(Clone, Debug, PartialEq)]
pub struct NativeContacts {
    /// Atom index pairs (i < j).
    pub pairs: Vec<[usize; 2]>,
    /// Their native distances (nm).
    pub native_nm: Vec<f64>,
}

impl NativeContacts {
    /// The contacts among `atoms` (indices into `native`, the native positions in nm),
    /// whose residues are `residue[i]`: only atoms listed take part (heavy atoms, and
    /// those the native structure has).
    pub fn of(native: &[Option<[f64; 3]>], residue: &[i32], atoms: &[usize]) -> Self {
        let mut pairs = Vec::new();
        let mut native_nm = Vec::new();
        for (a, &i) in atoms.iter().enumerate() {
            for &j in &atoms[a + 1..] {
                if (residue[i] - residue[j]).abs() < MIN_SEPARATION {
                    continue;
                }
                let (Some(p), Some(q)) = (native[i], native[j]) else {
                    continue;
                };
                let r = distance(p, q);
                if r < CUTOFF_NM {
                    pairs.push([i.min(j), i.max(j)]);
                    native_nm.push(r);
                }
            }
        }
        NativeContacts { pairs, native_nm }
    }

    /// Q of positions `x` (nm, all atoms); NaN without contacts.
    pub fn q(&self, x: &[[f64; 3]]) -> f64 {
        let sum: f64 = self
            .pairs
            .iter()
            .zip(&self.native_nm)
            .map(|(&[i, j], &r0)| {
                1.0 / (1.0 + (BETA_PER_NM * (distance(x[i], x[j]) - LAMBDA * r0)).exp())
            })
            .sum();
        sum / self.pairs.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of 8 residues, one atom each, 0.38 nm apart, folded back on itself so
    /// residues 0 and 7, 1 and 6 face each other 0.40 nm apart.
    fn hairpin() -> Vec<[f64; 3]> {
        (0..8)
            .map(|i| {
                let (k, side) = if i < 4 { (i, 0.0) } else { (7 - i, 0.40) };
                [0.38 * k as f64, side, 0.0]
            })
            .collect()
    }

    #[test]
    fn the_native_structure_has_q_near_one_and_an_unfolded_chain_zero() {
        let native = hairpin();
        let contacts = NativeContacts::of(
            &native.iter().map(|&p| Some(p)).collect::<Vec<_>>(),
            &(0..8).collect::<Vec<i32>>(),
            &(0..8).collect::<Vec<usize>>(),
        );
        // Facing pairs are 0.40 nm apart; (2, 5) and (3, 4) are too close along the
        // chain, and diagonal pairs are 0.55 nm apart.
        assert_eq!(contacts.pairs, vec![[0, 7], [1, 6]]);
        // At the native distances each term is 1 / (1 + exp(-50 * 0.8 * 0.40)) = 1 - 1e-7.
        assert!((contacts.q(&native) - 1.0).abs() < 1e-6);
        let unfolded: Vec<[f64; 3]> = (0..8).map(|i| [0.38 * i as f64, 0.0, 0.0]).collect();
        assert!(contacts.q(&unfolded) < 1e-6);
        // Stretched to 1.8 r0 exactly, a contact counts one half.
        let mut half = native.clone();
        half[7] = [0.0, 1.8 * 0.40, 0.0];
        half[6] = [0.38, 1.8 * 0.40, 0.0];
        assert!(
            (contacts.q(&half) - 0.5).abs() < 1e-9,
            "{}",
            contacts.q(&half)
        );
    }
}
