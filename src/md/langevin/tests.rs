//! Unit tests of `langevin`.

use super::*;
use crate::random::stream;

/// Independent 3D harmonic oscillators U = k/2 |x|^2.
#[derive(Debug)]
struct Springs {
    n: usize,
    k: f64,
}

impl Potential for Springs {
    fn n_atoms(&self) -> usize {
        self.n
    }
    fn energy_forces(&mut self, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
        let mut u = 0.0;
        for (xi, fi) in x.iter().zip(f.iter_mut()) {
            for k in 0..3 {
                fi[k] = -self.k * xi[k];
                u += 0.5 * self.k * xi[k] * xi[k];
            }
        }
        u
    }
}

#[test]
fn harmonic_oscillator_conserves_energy_without_friction() {
    let params = LangevinParams {
        remove_com_every: 0,
        ..LangevinParams::new(300.0, 0.0, 0.002)
    };
    let mut md = LangevinIntegrator::new(
        Springs { n: 1, k: 1000.0 },
        &[12.0],
        &[[0.1, 0.0, 0.0]],
        &[],
        params,
        stream(1, 0),
    )
    .unwrap();
    let e0 = md.potential_energy() + md.kinetic_energy();
    let mut worst: f64 = 0.0;
    md.run(10_000, 1, |f| {
        worst = worst.max((f.potential_energy + f.kinetic_energy - e0).abs())
    })
    .unwrap();
    // Verlet's energy error oscillates with amplitude O((omega dt)^2) E, omega dt = 0.018.
    assert!(worst / e0 < 1e-3, "relative energy error {}", worst / e0);
}

#[test]
fn atoms_of_zero_mass_keep_position_and_velocity() {
    // Atom 1 has zero mass and (oddly) a velocity: the thermostat, the kicks and COM
    // removal must all leave it alone, while the others move.
    let x = [[0.0; 3], [0.1, 0.0, 0.0], [0.3, 0.0, 0.0]];
    let mut md = LangevinIntegrator::new(
        Springs { n: 3, k: 100.0 },
        &[1.0, 0.0, 2.0],
        &x,
        &[],
        LangevinParams::new(300.0, 1.0, 0.002),
        stream(1, 0),
    )
    .unwrap();
    md.set_velocities(&[[0.0; 3], [1.0, -2.0, 0.5], [0.0; 3]])
        .unwrap();
    md.run(200, 0, |_| {}).unwrap();
    assert_eq!(md.positions()[1], x[1]);
    assert_eq!(md.velocities()[1], [1.0, -2.0, 0.5]);
    assert_ne!(md.positions()[0], x[0]);
    assert_ne!(md.positions()[2], x[2]);
}

#[test]
fn degrees_of_freedom_count_constraints_and_com() {
    let c = [DistanceConstraint {
        i: 0,
        j: 1,
        length_nm: 0.1,
    }];
    let x = [[0.0; 3], [0.1, 0.0, 0.0], [0.3, 0.0, 0.0]];
    let md = LangevinIntegrator::new(
        Springs { n: 3, k: 1.0 },
        &[1.0, 1.0, 0.0],
        &x,
        &c,
        LangevinParams::new(300.0, 1.0, 0.002),
        stream(1, 0),
    )
    .unwrap();
    assert_eq!(md.degrees_of_freedom(), 6 - 1 - 3);
}
