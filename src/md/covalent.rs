//! Bonds inferred from geometry: atoms i and j are bonded when
//! |x_i - x_j| < 1.15 (r_i + r_j), with r the single-bond covalent radius of the element
//! (Cordero et al., Dalton Trans. 2008; nm). For tables that carry atoms but no bonds
//! (a trajectory's atom table), on a well-formed configuration such as a minimized or
//! equilibrated frame.

/// Covalent radius (nm) of an element; 0.075 nm for elements not listed.
pub fn covalent_radius_nm(atomic_number: i32) -> f64 {
    match atomic_number {
        1 => 0.031,
        6 => 0.076,
        7 => 0.071,
        8 => 0.066,
        9 => 0.057,
        15 => 0.107,
        16 => 0.105,
        17 => 0.102,
        _ => 0.075,
    }
}

/// The bonds (i < j, sorted) of one configuration, positions in nm.
pub fn infer_bonds(atomic_numbers: &[i32], positions: &[[f64; 3]]) -> Vec<[usize; 2]> {
    assert_eq!(atomic_numbers.len(), positions.len());
    let n = positions.len();
    let mut bonds = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let limit = 1.15
                * (covalent_radius_nm(atomic_numbers[i]) + covalent_radius_nm(atomic_numbers[j]));
            let r2: f64 = (0..3)
                .map(|a| (positions[i][a] - positions[j][a]).powi(2))
                .sum();
            if r2 < limit * limit {
                bonds.push([i, j]);
            }
        }
    }
    bonds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methane_has_four_bonds() {
        let d = 0.109 / 3f64.sqrt();
        let positions = [
            [0.0, 0.0, 0.0],
            [d, d, d],
            [-d, -d, d],
            [-d, d, -d],
            [d, -d, -d],
        ];
        let bonds = infer_bonds(&[6, 1, 1, 1, 1], &positions);
        assert_eq!(bonds, vec![[0, 1], [0, 2], [0, 3], [0, 4]]);
    }
}
