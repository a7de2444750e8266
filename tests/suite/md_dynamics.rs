//! Integration tests of the dynamics engine (Langevin BAOAB, constraints, minimization,
//! replica exchange) on toy potentials defined here: a butane-like molecule with
//! harmonic bonds and angles and Lennard-Jones pairs, a 13-atom Lennard-Jones cluster and
//! a tilted double well. Statistical tolerances are stated next to each check; the
//! printed numbers show with `cargo test --release -- --nocapture`.

use cgloop::md::constraints::{DistanceConstraint, h_bond_constraints};
use cgloop::md::langevin::{BOLTZ, DynamicsError, LangevinIntegrator, LangevinParams};
use cgloop::md::minimize::{MinimizeOptions, minimize};
use cgloop::md::potential::Potential;
use cgloop::md::replica_exchange::{ReplicaExchange, ReplicaExchangeParams, geometric_ladder};
use cgloop::random::stream;

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

fn scale(a: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

fn add(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// Harmonic bonds (i, j, r0 nm, k kJ/mol/nm^2), harmonic angles (i, j, k, theta0 rad,
/// k kJ/mol/rad^2) and Lennard-Jones pairs (i, j, scale) with one sigma and epsilon.
#[derive(Debug, Clone)]
struct ToyMolecule {
    n: usize,
    bonds: Vec<(usize, usize, f64, f64)>,
    angles: Vec<(usize, usize, usize, f64, f64)>,
    pairs: Vec<(usize, usize, f64)>,
    sigma: f64,
    epsilon: f64,
}

impl Potential for ToyMolecule {
    fn n_atoms(&self) -> usize {
        self.n
    }

    fn energy_forces(&mut self, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
        f.fill([0.0; 3]);
        let mut u = 0.0;
        for &(i, j, r0, k) in &self.bonds {
            let d = sub(x[i], x[j]);
            let r = norm(d);
            u += 0.5 * k * (r - r0).powi(2);
            let g = scale(d, -k * (r - r0) / r);
            f[i] = add(f[i], g);
            f[j] = sub(f[j], g);
        }
        for &(i, j, k, theta0, kt) in &self.angles {
            let (a, b) = (sub(x[i], x[j]), sub(x[k], x[j]));
            let (ra, rb) = (norm(a), norm(b));
            let c = (dot(a, b) / (ra * rb)).clamp(-1.0, 1.0);
            let theta = c.acos();
            u += 0.5 * kt * (theta - theta0).powi(2);
            // F_i = -dU/dtheta dtheta/dx_i, dtheta/dx_i = -(b/(ra rb) - c a/ra^2) / sin(theta).
            let pre = kt * (theta - theta0) / theta.sin();
            let fi = scale(sub(scale(b, 1.0 / (ra * rb)), scale(a, c / (ra * ra))), pre);
            let fk = scale(sub(scale(a, 1.0 / (ra * rb)), scale(b, c / (rb * rb))), pre);
            f[i] = add(f[i], fi);
            f[k] = add(f[k], fk);
            f[j] = sub(f[j], add(fi, fk));
        }
        for &(i, j, s) in &self.pairs {
            let d = sub(x[i], x[j]);
            let r2 = dot(d, d);
            let sr6 = (self.sigma * self.sigma / r2).powi(3);
            u += s * 4.0 * self.epsilon * (sr6 * sr6 - sr6);
            let g = scale(d, s * 24.0 * self.epsilon * (2.0 * sr6 * sr6 - sr6) / r2);
            f[i] = add(f[i], g);
            f[j] = sub(f[j], g);
        }
        u
    }
}

/// Butane-like: carbons 0..4 in a zigzag, 3 + 2 + 2 + 3 hydrogens, 14 atoms.
struct Butane {
    potential: ToyMolecule,
    masses: Vec<f64>,
    positions: Vec<[f64; 3]>,
    h_bonds: Vec<DistanceConstraint>,
}

fn butane() -> Butane {
    let carbons: Vec<[f64; 3]> = (0..4)
        .map(|i| [0.126 * i as f64, 0.088 * (i % 2) as f64, 0.0])
        .collect();
    let mut positions = carbons.clone();
    let mut masses = vec![12.01; 4];
    let mut bonds: Vec<(usize, usize, f64, f64)> =
        (0..3).map(|i| (i, i + 1, 0.153, 2.5e5)).collect();
    let (c109, s109) = ((-1.0f64 / 3.0), (8.0f64 / 9.0).sqrt());
    for (c, &xc) in carbons.iter().enumerate() {
        let dirs: Vec<[f64; 3]> = if c == 0 || c == 3 {
            let nb = carbons[if c == 0 { 1 } else { 2 }];
            let u = scale(sub(nb, xc), 1.0 / norm(sub(nb, xc)));
            let p = scale([-u[1], u[0], 0.0], 1.0 / norm([-u[1], u[0], 0.0]));
            let q = [
                u[1] * p[2] - u[2] * p[1],
                u[2] * p[0] - u[0] * p[2],
                u[0] * p[1] - u[1] * p[0],
            ];
            (0..3)
                .map(|m| {
                    let phi = std::f64::consts::TAU * m as f64 / 3.0;
                    add(
                        scale(u, c109),
                        scale(add(scale(p, phi.cos()), scale(q, phi.sin())), s109),
                    )
                })
                .collect()
        } else {
            let (a, b) = (sub(carbons[c - 1], xc), sub(carbons[c + 1], xc));
            let bis = add(scale(a, 1.0 / norm(a)), scale(b, 1.0 / norm(b)));
            let bis = scale(bis, -1.0 / norm(bis));
            let half = 54.75f64.to_radians();
            vec![
                add(scale(bis, half.cos()), [0.0, 0.0, half.sin()]),
                add(scale(bis, half.cos()), [0.0, 0.0, -half.sin()]),
            ]
        };
        for d in dirs {
            bonds.push((c, positions.len(), 0.109, 2.8e5));
            positions.push(add(xc, scale(d, 0.109)));
            masses.push(1.008);
        }
    }
    let n = positions.len();
    let mut neighbours = vec![Vec::new(); n];
    for &(i, j, _, _) in &bonds {
        neighbours[i].push(j);
        neighbours[j].push(i);
    }
    let mut angles = Vec::new();
    for (j, nb) in neighbours.iter().enumerate() {
        for a in 0..nb.len() {
            for b in a + 1..nb.len() {
                angles.push((nb[a], j, nb[b], 109.5f64.to_radians(), 300.0));
            }
        }
    }
    // Graph distance by breadth-first search: exclude 1-2 and 1-3, scale 1-4 by 1/2.
    let mut pairs = Vec::new();
    for i in 0..n {
        let mut dist = vec![usize::MAX; n];
        dist[i] = 0;
        let mut queue = std::collections::VecDeque::from([i]);
        while let Some(a) = queue.pop_front() {
            for &b in &neighbours[a] {
                if dist[b] == usize::MAX {
                    dist[b] = dist[a] + 1;
                    queue.push_back(b);
                }
            }
        }
        for (j, &d) in dist.iter().enumerate().skip(i + 1) {
            match d {
                0..=2 => {}
                3 => pairs.push((i, j, 0.5)),
                _ => pairs.push((i, j, 1.0)),
            }
        }
    }
    let is_h: Vec<bool> = masses.iter().map(|&m| m < 2.0).collect();
    let bond_list: Vec<(usize, usize, f64)> =
        bonds.iter().map(|&(i, j, r0, _)| (i, j, r0)).collect();
    let h_bonds = h_bond_constraints(&bond_list, &is_h);
    let potential = ToyMolecule {
        n,
        bonds,
        angles,
        pairs,
        sigma: 0.25,
        epsilon: 0.2,
    };
    Butane {
        potential,
        masses,
        positions,
        h_bonds,
    }
}

/// 13 argon atoms on a slightly jittered grid, no bonds: a Lennard-Jones cluster.
fn argon_cluster() -> (ToyMolecule, Vec<f64>, Vec<[f64; 3]>) {
    let n = 13;
    let positions: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            let (a, b, c) = ((i % 3) as f64, ((i / 3) % 3) as f64, (i / 9) as f64);
            [
                0.38 * a + 0.01 * (i as f64 * 0.7).sin(),
                0.38 * b,
                0.38 * c + 0.005 * i as f64,
            ]
        })
        .collect();
    let pairs = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j, 1.0)))
        .collect();
    let potential = ToyMolecule {
        n,
        bonds: vec![],
        angles: vec![],
        pairs,
        sigma: 0.34,
        epsilon: 0.996,
    };
    (potential, vec![39.948; n], positions)
}

/// Mean and standard error of the mean from `blocks` equal blocks (correlated data).
fn block_mean(x: &[f64], blocks: usize) -> (f64, f64) {
    let len = x.len() / blocks;
    let means: Vec<f64> = (0..blocks)
        .map(|b| x[b * len..(b + 1) * len].iter().sum::<f64>() / len as f64)
        .collect();
    let mean = means.iter().sum::<f64>() / blocks as f64;
    let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (blocks - 1) as f64;
    (mean, (var / blocks as f64).sqrt())
}

fn minimized_butane() -> Butane {
    let mut b = butane();
    let report = minimize(
        &mut b.potential,
        &mut b.positions,
        &b.masses,
        &b.h_bonds,
        MinimizeOptions {
            tolerance: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(report.converged, "{report:?}");
    b
}

#[test]
fn toy_forces_match_finite_differences() {
    let mut b = butane();
    // Perturb away from the built geometry so every term has a gradient.
    for (i, x) in b.positions.iter_mut().enumerate() {
        x[0] += 0.003 * ((i * 5 % 7) as f64 - 3.0);
        x[2] += 0.002 * ((i * 3 % 5) as f64 - 2.0);
    }
    let mut f = vec![[0.0; 3]; b.positions.len()];
    let mut scratch = f.clone();
    b.potential.energy_forces(&b.positions, &mut f);
    let h = 1e-6;
    for i in 0..b.positions.len() {
        for k in 0..3 {
            let mut x = b.positions.clone();
            x[i][k] += h;
            let up = b.potential.energy_forces(&x, &mut scratch);
            x[i][k] -= 2.0 * h;
            let down = b.potential.energy_forces(&x, &mut scratch);
            let fd = -(up - down) / (2.0 * h);
            assert!(
                (fd - f[i][k]).abs() < 1e-4 * (1.0 + f[i][k].abs()),
                "atom {i} component {k}: {fd} vs {}",
                f[i][k]
            );
        }
    }
}

#[test]
fn minimization_lowers_energy_keeps_constraints_and_reaches_tolerance() {
    let mut b = butane();
    for (i, x) in b.positions.iter_mut().enumerate() {
        x[1] += 0.01 * ((i * 7 % 5) as f64 - 2.0);
    }
    let options = MinimizeOptions::default();
    let report = minimize(
        &mut b.potential,
        &mut b.positions,
        &b.masses,
        &b.h_bonds,
        options,
    )
    .unwrap();
    eprintln!("butane minimization with H-bond constraints: {report:?}");
    assert!(report.converged && report.rms_force <= options.tolerance);
    assert!(report.final_energy < report.initial_energy);
    for c in &b.h_bonds {
        let r = norm(sub(b.positions[c.i], b.positions[c.j]));
        assert!(
            (r / c.length_nm - 1.0).abs() < 1e-9,
            "bond {}-{}: {r}",
            c.i,
            c.j
        );
    }

    let (mut lj, masses, mut x) = argon_cluster();
    let tight = MinimizeOptions {
        tolerance: 1e-3,
        ..Default::default()
    };
    let report = minimize(&mut lj, &mut x, &masses, &[], tight).unwrap();
    eprintln!("argon cluster minimization: {report:?}");
    assert!(report.converged && report.final_energy < report.initial_energy);
    // A bound 13-atom cluster: at least the 36-bond count of a compact packing times
    // most of epsilon (the icosahedral minimum is -44.3 epsilon).
    assert!(
        report.final_energy < -30.0 * 0.996,
        "{}",
        report.final_energy
    );
}

/// Least-squares slope of y against x.
fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    sxy / sxx
}

fn nve_params(timestep_ps: f64) -> LangevinParams {
    LangevinParams {
        friction_per_ps: 0.0,
        ..LangevinParams::new(300.0, 0.0, timestep_ps)
    }
}

#[test]
fn nve_energy_is_conserved_with_constraints() {
    // Butane with rigid C-H bonds, 2 fs steps, 1 ns from 300 K Maxwell-Boltzmann
    // velocities, friction 0 (velocity Verlet + SHAKE/RATTLE at tolerance 1e-10).
    let b = minimized_butane();
    let mut md = LangevinIntegrator::new(
        b.potential,
        &b.masses,
        &b.positions,
        &b.h_bonds,
        nve_params(0.002),
        stream(11, 0),
    )
    .unwrap();
    md.initialize_velocities().unwrap();
    let (mut t, mut e) = (Vec::new(), Vec::new());
    md.run(500_000, 10, |f| {
        t.push(f.time_ps);
        e.push(f.potential_energy + f.kinetic_energy);
    })
    .unwrap();
    let kt = BOLTZ * 300.0;
    let drift = slope(&t, &e);
    let mean = e.iter().sum::<f64>() / e.len() as f64;
    let rms = (e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / e.len() as f64).sqrt();
    let dof = md.degrees_of_freedom() as f64;
    eprintln!(
        "NVE butane, H-bonds constrained, 2 fs, 1 ns: drift {drift:.3e} kJ/mol/ps = {:.3e} kT/ns/dof, \
         rms fluctuation {rms:.3e} kJ/mol = {:.3e} kT",
        drift * 1000.0 / (kt * dof),
        rms / kt
    );
    // Symplectic and time-reversible with tight constraints: no systematic drift, only
    // the bounded shadow-energy fluctuation. Bound: 1e-3 kT per dof per ns.
    assert!(drift.abs() * 1000.0 / (kt * dof) < 1e-3, "drift {drift}");
    assert!(rms < 0.2 * kt, "rms {rms}");
}

#[test]
fn nve_energy_is_conserved_for_a_lennard_jones_cluster() {
    let (lj, masses, mut x) = argon_cluster();
    let mut lj2 = lj.clone();
    minimize(
        &mut lj2,
        &mut x,
        &masses,
        &[],
        MinimizeOptions {
            tolerance: 1e-2,
            ..Default::default()
        },
    )
    .unwrap();
    let params = LangevinParams {
        temperature_k: 20.0,
        ..nve_params(0.005)
    };
    let mut md = LangevinIntegrator::new(lj, &masses, &x, &[], params, stream(12, 0)).unwrap();
    md.initialize_velocities().unwrap();
    let (mut t, mut e) = (Vec::new(), Vec::new());
    md.run(40_000, 10, |f| {
        t.push(f.time_ps);
        e.push(f.potential_energy + f.kinetic_energy);
    })
    .unwrap();
    let kt = BOLTZ * 20.0;
    let drift = slope(&t, &e);
    let dof = md.degrees_of_freedom() as f64;
    let spread =
        e.iter().fold(f64::MIN, |a, &b| a.max(b)) - e.iter().fold(f64::MAX, |a, &b| a.min(b));
    eprintln!(
        "NVE Ar13 at ~20 K, 5 fs, 200 ps: drift {:.3e} kT/ns/dof, max - min {:.3e} kT",
        drift * 1000.0 / (kt * dof),
        spread / kt
    );
    assert!(drift.abs() * 1000.0 / (kt * dof) < 1e-3);
    assert!(spread < 0.05 * kt);
}

/// Runs Langevin dynamics and returns the block mean and standard error of the
/// instantaneous temperature.
fn mean_temperature<P: Potential>(md: &mut LangevinIntegrator<P>, steps: u64) -> (f64, f64) {
    md.initialize_velocities().unwrap();
    md.run(steps / 10, 0, |_| {}).unwrap();
    let mut temps = Vec::with_capacity(steps as usize);
    md.run(steps, 1, |f| temps.push(f.temperature_k)).unwrap();
    block_mean(&temps, 50)
}

#[test]
fn langevin_holds_the_target_temperature_with_constraints_and_com_removal() {
    // dof = 3 * 14 - 10 constraints - 3 COM = 29. The temperature comes from the
    // half-step velocities (as OpenMM's), exact for harmonic forces; the synchronous
    // velocities would read about 3 % cold here (measured 289 +- 2 K), from the
    // (omega dt)^2 / 4 deficit of the stiff angle bends. Tolerance: 4 block standard
    // errors (50 blocks of 40 ps, much longer than the 0.1 ps velocity correlation time
    // at gamma = 5/ps) plus 0.5 % for the remaining anharmonic O(dt^2) bias.
    let b = minimized_butane();
    let mut md = LangevinIntegrator::new(
        b.potential,
        &b.masses,
        &b.positions,
        &b.h_bonds,
        LangevinParams::new(300.0, 5.0, 0.002),
        stream(21, 0),
    )
    .unwrap();
    assert_eq!(md.degrees_of_freedom(), 29);
    let (mean, se) = mean_temperature(&mut md, 1_000_000);
    eprintln!("butane 300 K, gamma 5/ps, 2 fs, 2 ns: T = {mean:.2} +- {se:.2} K (dof 29)");
    assert!((mean - 300.0).abs() < 4.0 * se + 1.5, "T = {mean} +- {se}");
}

#[test]
fn langevin_holds_the_target_temperature_without_com_removal() {
    // Ar13 at 25 K, gamma 2/ps, 5 fs, no COM removal: dof = 39 (the centre of mass is
    // thermostatted too). Same tolerance reasoning as above.
    let (lj, masses, x) = argon_cluster();
    let params = LangevinParams {
        remove_com_every: 0,
        ..LangevinParams::new(25.0, 2.0, 0.005)
    };
    let mut md = LangevinIntegrator::new(lj, &masses, &x, &[], params, stream(22, 0)).unwrap();
    assert_eq!(md.degrees_of_freedom(), 39);
    let (mean, se) = mean_temperature(&mut md, 200_000);
    eprintln!("Ar13 25 K, gamma 2/ps, 5 fs, 1 ns: T = {mean:.3} +- {se:.3} K (dof 39)");
    assert!((mean - 25.0).abs() < 4.0 * se + 0.125, "T = {mean} +- {se}");
}

#[test]
fn constraints_hold_after_every_step() {
    let b = minimized_butane();
    let bonds = b.h_bonds.clone();
    let mut md = LangevinIntegrator::new(
        b.potential,
        &b.masses,
        &b.positions,
        &b.h_bonds,
        LangevinParams::new(300.0, 1.0, 0.002),
        stream(31, 0),
    )
    .unwrap();
    md.initialize_velocities().unwrap();
    let (mut worst_r, mut worst_v): (f64, f64) = (0.0, 0.0);
    md.run(5_000, 1, |f| {
        for c in &bonds {
            let d = sub(f.positions[c.i], f.positions[c.j]);
            worst_r = worst_r.max((norm(d) / c.length_nm - 1.0).abs());
            // Relative rate of change of the bond length, per ps.
            worst_v =
                worst_v.max((dot(sub(f.velocities[c.i], f.velocities[c.j]), d) / dot(d, d)).abs());
        }
    })
    .unwrap();
    eprintln!(
        "constraints over 5000 steps: max relative length error {worst_r:.2e}, max |d ln r/dt| {worst_v:.2e} /ps"
    );
    assert!(worst_r < 2e-10, "{worst_r}");
    assert!(worst_v < 1e-9, "{worst_v}");
}

fn trajectory_bits(seed: u64) -> Vec<u64> {
    let b = minimized_butane();
    let mut md = LangevinIntegrator::new(
        b.potential,
        &b.masses,
        &b.positions,
        &b.h_bonds,
        LangevinParams::new(300.0, 1.0, 0.002),
        stream(seed, 3),
    )
    .unwrap();
    md.initialize_velocities().unwrap();
    let mut bits = Vec::new();
    md.run(2_000, 100, |f| {
        bits.extend(
            f.positions
                .iter()
                .chain(f.velocities)
                .flatten()
                .map(|v| v.to_bits()),
        );
        bits.push(f.potential_energy.to_bits());
    })
    .unwrap();
    bits
}

#[test]
fn same_seed_gives_a_bit_identical_trajectory() {
    let a = trajectory_bits(5);
    assert_eq!(a, trajectory_bits(5));
    assert_ne!(a, trajectory_bits(6));
}

/// Wraps a potential and corrupts the force on `atom` at evaluation `at` (0 = the
/// evaluation in `new`, k = the one ending step k).
#[derive(Debug, Clone)]
struct Saboteur {
    inner: ToyMolecule,
    calls: u64,
    at: u64,
    atom: usize,
    value: f64,
}

impl Potential for Saboteur {
    fn n_atoms(&self) -> usize {
        self.inner.n_atoms()
    }
    fn energy_forces(&mut self, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
        let u = self.inner.energy_forces(x, f);
        if self.calls == self.at {
            f[self.atom][1] = self.value;
        }
        self.calls += 1;
        u
    }
}

#[test]
fn blow_up_names_the_step_and_the_atoms() {
    for (value, atom, at) in [(f64::NAN, 5, 7), (3e6, 2, 40), (f64::INFINITY, 13, 1)] {
        let b = minimized_butane();
        let potential = Saboteur {
            inner: b.potential,
            calls: 0,
            at,
            atom,
            value,
        };
        let mut md = LangevinIntegrator::new(
            potential,
            &b.masses,
            &b.positions,
            &b.h_bonds,
            LangevinParams::new(300.0, 1.0, 0.002),
            stream(1, 0),
        )
        .unwrap();
        md.initialize_velocities().unwrap();
        let err = md.run(100, 0, |_| {}).unwrap_err();
        eprintln!("{err}");
        match err {
            DynamicsError::ForceBlowUp { step, atoms, .. } => {
                assert_eq!(step, at);
                assert_eq!(atoms, vec![atom]);
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(
            md.step_count(),
            at,
            "the integrator stops at the failing step"
        );
    }
}

/// Independent particles in a tilted double well along x, harmonic across:
/// U = sum_p barrier (x^2 - 1)^2 + tilt x + k_perp / 2 (y^2 + z^2).
#[derive(Debug, Clone)]
struct DoubleWell {
    n: usize,
    barrier: f64,
    tilt: f64,
    k_perp: f64,
}

impl DoubleWell {
    fn along(&self, x: f64) -> f64 {
        self.barrier * (x * x - 1.0).powi(2) + self.tilt * x
    }
}

impl Potential for DoubleWell {
    fn n_atoms(&self) -> usize {
        self.n
    }
    fn energy_forces(&mut self, x: &[[f64; 3]], f: &mut [[f64; 3]]) -> f64 {
        let mut u = 0.0;
        for (p, fp) in x.iter().zip(f.iter_mut()) {
            u += self.along(p[0]) + 0.5 * self.k_perp * (p[1] * p[1] + p[2] * p[2]);
            *fp = [
                -(4.0 * self.barrier * p[0] * (p[0] * p[0] - 1.0) + self.tilt),
                -self.k_perp * p[1],
                -self.k_perp * p[2],
            ];
        }
        u
    }
}

#[test]
fn replica_exchange_reproduces_double_well_populations() {
    // One particle (12 amu) in a double well with a barrier of 20 kJ/mol = 8 kT at 300 K
    // (plain Langevin at 300 K would cross about twice in 20 ns) and a tilt favouring
    // x < 0. Six replicas from 300 K to 3000 K (geometric), exchanges every 100 steps of
    // 10 fs, 2e6 steps (20 ns per replica). The exact population of x > 0 at 300 K is
    // the ratio of one-dimensional Boltzmann integrals (Simpson, 60 000 intervals on
    // [-3, 3]; the y, z factors cancel). Tolerance: 4 block standard errors (20 blocks
    // of 1 ns) plus 0.005 for the O((omega dt)^2) sampling bias (omega dt < 0.04).
    let well = DoubleWell {
        n: 1,
        barrier: 20.0,
        tilt: 1.5,
        k_perp: 100.0,
    };
    let beta = 1.0 / (BOLTZ * 300.0);
    let intervals = 60_000;
    let (mut right, mut total) = (0.0, 0.0);
    for i in 0..=intervals {
        let x = -3.0 + 6.0 * i as f64 / intervals as f64;
        let w = if i == 0 || i == intervals {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        let p = w * (-beta * well.along(x)).exp();
        total += p;
        if x > 0.0 {
            right += p;
        }
    }
    let exact = right / total;

    let temperatures = geometric_ladder(300.0, 3000.0, 6);
    let params = LangevinParams {
        remove_com_every: 0,
        ..LangevinParams::new(300.0, 5.0, 0.01)
    };
    let schedule = ReplicaExchangeParams {
        dynamics: params,
        temperatures_k: temperatures.clone(),
        exchange_every: 100,
        seed: 2026,
    };
    let mut remd =
        ReplicaExchange::new(&well, &[12.0], &[[-1.0, 0.0, 0.0]], &[], &schedule).unwrap();
    let mut coldest = Vec::new();
    let mut temps = vec![Vec::new(); temperatures.len()];
    remd.run(2_000_000, 10, |f| {
        if f.temperature_index == 0 {
            coldest.push(if f.positions[0][0] > 0.0 { 1.0 } else { 0.0 });
        }
        temps[f.temperature_index].push(f.instantaneous_temperature_k);
    })
    .unwrap();
    let (p, se) = block_mean(&coldest, 20);
    let rates: Vec<String> = remd
        .pair_statistics()
        .iter()
        .map(|s| {
            format!(
                "{:.0}-{:.0} K: {:.3}",
                s.lower_k,
                s.upper_k,
                s.acceptance_rate()
            )
        })
        .collect();
    eprintln!(
        "REMD double well: P(x > 0) at 300 K = {p:.4} +- {se:.4}, exact {exact:.4}; acceptance {rates:?}"
    );
    assert!(
        (p - exact).abs() < 4.0 * se + 0.005,
        "P = {p} +- {se}, exact {exact}"
    );
    for s in remd.pair_statistics() {
        assert!(s.attempts >= 9_999 && s.acceptance_rate() > 0.1, "{s:?}");
    }
    for (k, t) in temps.iter().enumerate() {
        let (mean, se) = block_mean(t, 20);
        assert!(
            (mean / temperatures[k] - 1.0).abs() < 4.0 * se / temperatures[k] + 0.01,
            "rung {k}: {mean} +- {se}"
        );
    }
}

fn remd_bits(parallel: bool) -> (Vec<u64>, Vec<u64>) {
    let b = minimized_butane();
    let params = LangevinParams::new(300.0, 1.0, 0.002);
    let schedule = ReplicaExchangeParams {
        dynamics: params,
        temperatures_k: geometric_ladder(300.0, 450.0, 4),
        exchange_every: 20,
        seed: 77,
    };
    let mut remd =
        ReplicaExchange::new(&b.potential, &b.masses, &b.positions, &b.h_bonds, &schedule).unwrap();
    remd.parallel = parallel;
    let mut bits = Vec::new();
    remd.run(4_000, 10, |f| {
        bits.extend([
            f.step,
            f.temperature_index as u64,
            f.replica as u64,
            f.potential_energy.to_bits(),
        ]);
        bits.extend(
            f.positions
                .iter()
                .chain(f.forces)
                .flatten()
                .map(|v| v.to_bits()),
        );
    })
    .unwrap();
    let stats = remd
        .pair_statistics()
        .iter()
        .flat_map(|s| [s.attempts, s.accepted])
        .collect();
    (bits, stats)
}

#[test]
fn parallel_replica_exchange_is_bit_identical_to_sequential() {
    let (parallel, stats) = remd_bits(true);
    let (sequential, stats_seq) = remd_bits(false);
    eprintln!("butane REMD 300-450 K x4, 4000 steps: [attempts, accepted] per pair {stats:?}");
    assert_eq!(stats, stats_seq);
    assert!(
        parallel == sequential,
        "parallel and sequential runs differ"
    );
    assert!(
        stats.chunks(2).all(|s| s[1] > 0),
        "no exchange was accepted: {stats:?}"
    );
}

/// Best of three wall-clock timings of `run` (the machine is shared), in seconds.
fn best_of_three(mut run: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let start = std::time::Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// Throughput on the butane toy (14 atoms, 10 constraints), of its force evaluation
/// alone, and of the integrator alone (zero forces): `cargo test --release --
/// --ignored --nocapture --test-threads 1 throughput`.
#[test]
#[ignore]
fn throughput() {
    let steps = 1_000_000;
    let b = minimized_butane();
    let params = LangevinParams::new(300.0, 1.0, 0.002);
    let mut potential = b.potential.clone();
    let mut md = LangevinIntegrator::new(
        b.potential,
        &b.masses,
        &b.positions,
        &b.h_bonds,
        params,
        stream(9, 0),
    )
    .unwrap();
    md.initialize_velocities().unwrap();
    let seconds = best_of_three(|| md.run(steps, 0, |_| {}).unwrap());
    let ns_per_day = steps as f64 * 0.002 / 1000.0 * 86_400.0 / seconds;
    eprintln!(
        "butane: {:.3} us/step, {ns_per_day:.0} ns/day at 2 fs",
        seconds / steps as f64 * 1e6
    );

    let (mut x, mut f) = (b.positions.clone(), vec![[0.0; 3]; b.positions.len()]);
    let mut acc = 0.0;
    let seconds = best_of_three(|| {
        for i in 0..steps {
            x[0][0] += 1e-12 * (i % 2) as f64;
            acc += potential.energy_forces(&x, &mut f);
        }
    });
    eprintln!(
        "butane forces alone: {:.3} us/evaluation ({acc:.1})",
        seconds / steps as f64 * 1e6
    );

    let free = ToyMolecule {
        n: b.masses.len(),
        bonds: vec![],
        angles: vec![],
        pairs: vec![],
        sigma: 0.0,
        epsilon: 0.0,
    };
    let mut md = LangevinIntegrator::new(
        free,
        &b.masses,
        &b.positions,
        &b.h_bonds,
        params,
        stream(9, 0),
    )
    .unwrap();
    md.initialize_velocities().unwrap();
    let seconds = best_of_three(|| md.run(steps, 0, |_| {}).unwrap());
    eprintln!(
        "integrator alone (14 atoms, 10 constraints, zero forces): {:.3} us/step",
        seconds / steps as f64 * 1e6
    );
}

/// Alanine dipeptide (ACE-ALA-NME, ff14SB) with the project's force field: minimize,
/// then 300 K Langevin at 2 fs with H-bond constraints, in vacuum and in OBC2.
#[test]
fn alanine_dipeptide_at_300_k_with_h_bond_constraints() {
    use cgloop::md::forcefield::{ForceField, Solvent};
    use cgloop::md::io::coordinates::read_inpcrd;
    use cgloop::md::io::prmtop::read_prmtop;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    let topology = read_prmtop(&dir.join("ala2_ff14SB.prmtop")).unwrap();
    let start = read_inpcrd(&dir.join("ala2_ff14SB.inpcrd"))
        .unwrap()
        .positions;
    let masses = topology.masses();
    let h_bonds: Vec<DistanceConstraint> = topology
        .hydrogen_bonds()
        .map(|b| DistanceConstraint {
            i: b.atoms[0],
            j: b.atoms[1],
            length_nm: b.r0,
        })
        .collect();
    assert_eq!(h_bonds.len(), 12);
    for (solvent, seed) in [(Solvent::Vacuum, 1), (Solvent::Obc2, 2)] {
        let mut ff = ForceField::new(&topology, solvent).unwrap();
        let mut x = start.clone();
        let report = minimize(
            &mut ff,
            &mut x,
            &masses,
            &h_bonds,
            MinimizeOptions::default(),
        )
        .unwrap();
        assert!(
            report.converged && report.final_energy < report.initial_energy,
            "{report:?}"
        );

        let mut md = LangevinIntegrator::new(
            ff,
            &masses,
            &x,
            &h_bonds,
            LangevinParams::new(300.0, 1.0, 0.002),
            stream(seed, 0),
        )
        .unwrap();
        assert_eq!(md.degrees_of_freedom(), 3 * 22 - 12 - 3);
        md.initialize_velocities().unwrap();
        md.run(1_000, 0, |_| {}).unwrap();
        let (mut temps, mut worst): (Vec<f64>, f64) = (Vec::new(), 0.0);
        let steps = 20_000;
        let clock = std::time::Instant::now();
        md.run(steps, 1, |f| {
            temps.push(f.temperature_k);
            for c in &h_bonds {
                worst = worst
                    .max((norm(sub(f.positions[c.i], f.positions[c.j])) / c.length_nm - 1.0).abs());
            }
        })
        .unwrap();
        let seconds = clock.elapsed().as_secs_f64();
        let (mean, se) = block_mean(&temps, 20);
        eprintln!(
            "alanine dipeptide {solvent:?}: minimized {:.2} -> {:.2} kJ/mol in {} iterations; 40 ps at 300 K: \
             T = {mean:.1} +- {se:.1} K, max constraint error {worst:.1e}, {:.2} us/step ({:.0} ns/day incl. checks)",
            report.initial_energy,
            report.final_energy,
            report.iterations,
            seconds / steps as f64 * 1e6,
            steps as f64 * 0.002e-3 * 86_400.0 / seconds
        );
        // 20 blocks of 2 ps against a velocity correlation time of about 1/gamma = 1 ps:
        // 4 block standard errors (about 4 %) plus 1 % for the BAOAB bias.
        assert!((mean - 300.0).abs() < 4.0 * se + 3.0, "T = {mean} +- {se}");
        assert!(worst < 2e-10, "constraint error {worst}");
    }
}

/// Alanine dipeptide throughput (no frames saved), vacuum and OBC2, with the force
/// evaluation alone for comparison: `cargo test --release -- --ignored --nocapture
/// --test-threads 1 alanine_throughput`.
#[test]
#[ignore]
fn alanine_throughput() {
    use cgloop::md::forcefield::{ForceField, Solvent};
    use cgloop::md::io::coordinates::read_inpcrd;
    use cgloop::md::io::prmtop::read_prmtop;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    let topology = read_prmtop(&dir.join("ala2_ff14SB.prmtop")).unwrap();
    let x = read_inpcrd(&dir.join("ala2_ff14SB.inpcrd"))
        .unwrap()
        .positions;
    let masses = topology.masses();
    let h_bonds: Vec<DistanceConstraint> = topology
        .hydrogen_bonds()
        .map(|b| DistanceConstraint {
            i: b.atoms[0],
            j: b.atoms[1],
            length_nm: b.r0,
        })
        .collect();
    let steps = 200_000;
    for solvent in [Solvent::Vacuum, Solvent::Obc2] {
        let mut ff = ForceField::new(&topology, solvent).unwrap();
        let mut f = vec![[0.0; 3]; x.len()];
        let mut y = x.clone();
        let mut acc = 0.0;
        let forces = best_of_three(|| {
            for i in 0..steps {
                y[0][0] += 1e-12 * (i % 2) as f64;
                acc += ff.energy_forces(&y, &mut f);
            }
        });
        let mut md = LangevinIntegrator::new(
            ff,
            &masses,
            &x,
            &h_bonds,
            LangevinParams::new(300.0, 1.0, 0.002),
            stream(3, 0),
        )
        .unwrap();
        md.initialize_velocities().unwrap();
        let seconds = best_of_three(|| md.run(steps, 0, |_| {}).unwrap());
        eprintln!(
            "alanine dipeptide {solvent:?}: {:.2} us/step = {:.0} ns/day at 2 fs; forces alone {:.2} us ({acc:.1})",
            seconds / steps as f64 * 1e6,
            steps as f64 * 0.002e-3 * 86_400.0 / seconds,
            forces / steps as f64 * 1e6
        );
    }
}

/// OpenMM's `ReferenceLangevinMiddleDynamics::update` written out (half-step velocities,
/// one full kick, one velocity projection, A O A, SHAKE, velocity correction), with COM
/// removal on its stored velocities before each step, as its CMMotionRemover.
struct OpenMmMiddle {
    x: Vec<[f64; 3]>,
    v: Vec<[f64; 3]>,
    f: Vec<[f64; 3]>,
}

#[test]
#[allow(clippy::needless_range_loop)] // index loops mirror OpenMM's code
fn positions_match_openmm_langevin_middle_for_the_same_noise() {
    use cgloop::md::constraints::Constraints;
    use cgloop::random::fill_normals;

    let b = minimized_butane();
    let (dt, gamma, t) = (0.002, 1.0, 300.0);
    let params = LangevinParams::new(t, gamma, dt);
    let mut potential = b.potential.clone();
    let mut md = LangevinIntegrator::new(
        b.potential,
        &b.masses,
        &b.positions,
        &b.h_bonds,
        params,
        stream(4, 9),
    )
    .unwrap();
    // Start both from the same synchronous velocities; OpenMM's half-step velocity is
    // half a kick behind.
    let v0: Vec<[f64; 3]> = (0..b.masses.len())
        .map(|i| [0.3 * (i as f64).sin(), -0.2, 0.1 * i as f64 - 0.6])
        .collect();
    md.set_velocities(&v0).unwrap();
    let n = b.masses.len();
    let w: Vec<f64> = b.masses.iter().map(|m| 1.0 / m).collect();
    let cons = Constraints::new(&b.h_bonds, &b.masses).unwrap();
    let mut om = OpenMmMiddle {
        x: md.positions().to_vec(),
        v: md.velocities().to_vec(),
        f: md.forces().to_vec(),
    };
    for i in 0..n {
        for k in 0..3 {
            om.v[i][k] -= 0.5 * dt * w[i] * om.f[i][k];
        }
    }
    let mut rng = stream(4, 9);
    let (a, kt) = ((-gamma * dt).exp(), BOLTZ * t);
    let mut noise = vec![0.0; 3 * n];
    let mut worst: f64 = 0.0;
    for _ in 0..500 {
        md.step().unwrap();

        let total: f64 = b.masses.iter().sum();
        let p = (0..3)
            .map(|k| (0..n).map(|i| b.masses[i] * om.v[i][k]).sum::<f64>() / total)
            .collect::<Vec<_>>();
        for v in om.v.iter_mut() {
            for k in 0..3 {
                v[k] -= p[k];
            }
        }
        for i in 0..n {
            for k in 0..3 {
                om.v[i][k] += dt * w[i] * om.f[i][k];
            }
        }
        cons.apply_velocities(&om.x, &mut om.v).unwrap();
        fill_normals(&mut rng, &mut noise);
        let mut xp = om.x.clone();
        for i in 0..n {
            for k in 0..3 {
                xp[i][k] += 0.5 * dt * om.v[i][k];
                om.v[i][k] = a * om.v[i][k] + ((1.0 - a * a) * kt * w[i]).sqrt() * noise[3 * i + k];
                xp[i][k] += 0.5 * dt * om.v[i][k];
            }
        }
        let unconstrained = xp.clone();
        cons.apply_positions(&om.x, &mut xp).unwrap();
        for i in 0..n {
            for k in 0..3 {
                om.v[i][k] += (xp[i][k] - unconstrained[i][k]) / dt;
            }
        }
        om.x = xp;
        potential.energy_forces(&om.x, &mut om.f);

        for (p, q) in md.positions().iter().zip(&om.x) {
            worst = worst.max(norm(sub(*p, *q)));
        }
    }
    // OpenMM's kinetic energy: its stored velocities, projected.
    let mut projected = om.v.clone();
    cons.apply_velocities(&om.x, &mut projected).unwrap();
    let ke_openmm: f64 = 0.5
        * projected
            .iter()
            .zip(&b.masses)
            .map(|(v, m)| m * dot(*v, *v))
            .sum::<f64>();
    let ke_ours = md.half_step_kinetic_energy();
    eprintln!(
        "BAOAB vs OpenMM LangevinMiddle, 500 steps: max position difference {worst:.1e} nm, kinetic energy {ke_ours:.12} vs {ke_openmm:.12}"
    );
    assert!(worst < 1e-9, "{worst}");
    assert!((ke_ours - ke_openmm).abs() < 1e-8 * ke_openmm);
}
