//! MD speed: steps per second of one Langevin trajectory on one thread, for the cases of
//! issue 3 (300 K, 2 fs, H-bond constraints, friction 1/ps), printed as one JSON line
//! each. Compare with OpenMM on the same machine and settings:
//!
//!     cargo bench --bench md
//!     python3 bench/openmm_peer.py datasets/alanine_dipeptide/ala2_ff14SB.prmtop \
//!         datasets/alanine_dipeptide/ala2_ff14SB.inpcrd --solvent vacuum
//!     python3 bench/openmm_peer.py datasets/chignolin/cln025_ff14SB.prmtop \
//!         datasets/chignolin/cln025_ff14SB.inpcrd --solvent obc2
//!
//! On a shared machine, whose speed drifts by tens of percent within minutes, compare
//! in alternating rounds instead (`just bench` does, when `openmm` is importable):
//!
//!     python3 bench/md_rounds.py --rounds 10 --seconds 3
//!
//! `cln025_obc2_hmr_4fs` runs CLN025 with 4 fs steps and hydrogen mass repartitioning
//! (hydrogens at 3.024 amu), and the last line gives its simulated time per day over
//! that of 2 fs steps without it, measured in the same run.
//!
//! Set CGLOOP_BENCH_SECONDS to change the measuring time (default 10 s per case, as the
//! peer script); name cases after `--` to run only those whose name contains one of the
//! words (`cargo bench --bench md -- vacuum`).

use std::path::Path;
use std::time::Instant;

use cgloop::md::dynamics::LangevinParams;
use cgloop::md::forcefield::{ForceField, Solvent};
use cgloop::md::io::structure::Structure;
use cgloop::md::langevin::LangevinIntegrator;
use cgloop::md::mass_repartition::repartition_hydrogen_mass;
use cgloop::md::minimize::{MinimizeOptions, minimize};
use cgloop::random::stream;

/// A step of `timestep_fs`, with hydrogens at `hydrogen_mass` amu when given.
struct Step {
    timestep_fs: f64,
    hydrogen_mass: Option<f64>,
}

const PLAIN: Step = Step {
    timestep_fs: 2.0,
    hydrogen_mass: None,
};

/// Runs the case unless filtered out; its simulated ns per day.
fn case(
    name: &str,
    prmtop: &str,
    inpcrd: &str,
    solvent: Solvent,
    step: Step,
    seconds: f64,
) -> Option<f64> {
    // `cargo bench --bench md -- vacuum` runs the cases whose name contains "vacuum".
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let s = Structure::read(&root.join(prmtop), &root.join(inpcrd)).unwrap();
    let masses = match step.hydrogen_mass {
        None => s.masses(),
        Some(m) => {
            repartition_hydrogen_mass(&s.topology, &s.masses(), m)
                .unwrap()
                .0
        }
    };
    let constraints = s.hbond_constraints();
    // As OpenMM's createSystem(constraints=HBonds): constrained bonds left out.
    let (mut ff, _) = ForceField::new(&s.topology, solvent)
        .unwrap()
        .without_constrained_bonds(&constraints);
    let mut x = s.positions.clone();
    minimize(
        &mut ff,
        &mut x,
        &masses,
        &constraints,
        MinimizeOptions::default(),
    )
    .unwrap();
    let params = LangevinParams::new(300.0, 1.0, step.timestep_fs * 1e-3);
    let mut md =
        LangevinIntegrator::new(ff, &masses, &x, &constraints, params, stream(1, 0)).unwrap();
    md.initialize_velocities().unwrap();
    md.run(1000, 0, |_| {}).unwrap();
    // Grow the chunk until one chunk takes `seconds`, as the peer script does.
    let mut n = 1000u64;
    loop {
        let t = Instant::now();
        md.run(n, 0, |_| {}).unwrap();
        let dt = t.elapsed().as_secs_f64();
        if dt > seconds {
            let sps = n as f64 / dt;
            let ns_per_day = sps * step.timestep_fs * 1e-6 * 86400.0;
            println!(
                "{{\"case\": \"{name}\", \"engine\": \"cgloop {}\", \"threads\": 1, \"atoms\": {}, \"steps_per_s\": {:.1}, \"ns_per_day\": {:.1}}}",
                env!("CARGO_PKG_VERSION"),
                masses.len(),
                sps,
                ns_per_day
            );
            return Some(ns_per_day);
        }
        n *= 2;
    }
}

fn main() {
    let seconds: f64 = std::env::var("CGLOOP_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let ala2 = (
        "datasets/alanine_dipeptide/ala2_ff14SB.prmtop",
        "datasets/alanine_dipeptide/ala2_ff14SB.inpcrd",
    );
    let cln025 = (
        "datasets/chignolin/cln025_ff14SB.prmtop",
        "datasets/chignolin/cln025_ff14SB.inpcrd",
    );
    case(
        "alanine_dipeptide_vacuum",
        ala2.0,
        ala2.1,
        Solvent::Vacuum,
        PLAIN,
        seconds,
    );
    case(
        "alanine_dipeptide_obc2",
        ala2.0,
        ala2.1,
        Solvent::Obc2,
        PLAIN,
        seconds,
    );
    let plain = case(
        "cln025_obc2",
        cln025.0,
        cln025.1,
        Solvent::Obc2,
        PLAIN,
        seconds,
    );
    let hmr = case(
        "cln025_obc2_hmr_4fs",
        cln025.0,
        cln025.1,
        Solvent::Obc2,
        Step {
            timestep_fs: 4.0,
            hydrogen_mass: Some(3.024),
        },
        seconds,
    );
    if let (Some(plain), Some(hmr)) = (plain, hmr) {
        println!(
            "{{\"case\": \"cln025_obc2_hmr_4fs_over_2fs\", \"ns_per_day_ratio\": {:.3}}}",
            hmr / plain
        );
    }
}
