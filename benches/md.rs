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
//! Set CGLOOP_BENCH_SECONDS to change the measuring time (default 10 s per case, as the
//! peer script); name cases after `--` to run only those whose name contains one of the
//! words (`cargo bench --bench md -- vacuum`).

use std::path::Path;
use std::time::Instant;

use cgloop::md::dynamics::LangevinParams;
use cgloop::md::forcefield::{ForceField, Solvent};
use cgloop::md::langevin::LangevinIntegrator;
use cgloop::md::minimize::{MinimizeOptions, minimize};
use cgloop::md::random::stream;
use cgloop::md::structure::Structure;

fn case(name: &str, prmtop: &str, inpcrd: &str, solvent: Solvent, seconds: f64) {
    // `cargo bench --bench md -- vacuum` runs the cases whose name contains "vacuum".
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let s = Structure::read(&root.join(prmtop), &root.join(inpcrd)).unwrap();
    let masses = s.masses();
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
    let params = LangevinParams::new(300.0, 1.0, 0.002);
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
            println!(
                "{{\"case\": \"{name}\", \"engine\": \"cgloop {}\", \"threads\": 1, \"atoms\": {}, \"steps_per_s\": {:.1}, \"ns_per_day\": {:.1}}}",
                env!("CARGO_PKG_VERSION"),
                masses.len(),
                sps,
                sps * 0.002e-3 * 86400.0
            );
            return;
        }
        n *= 2;
    }
}

fn main() {
    let seconds: f64 = std::env::var("CGLOOP_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    case(
        "alanine_dipeptide_vacuum",
        "datasets/alanine_dipeptide/ala2_ff14SB.prmtop",
        "datasets/alanine_dipeptide/ala2_ff14SB.inpcrd",
        Solvent::Vacuum,
        seconds,
    );
    case(
        "alanine_dipeptide_obc2",
        "datasets/alanine_dipeptide/ala2_ff14SB.prmtop",
        "datasets/alanine_dipeptide/ala2_ff14SB.inpcrd",
        Solvent::Obc2,
        seconds,
    );
    case(
        "cln025_obc2",
        "datasets/chignolin/cln025_ff14SB.prmtop",
        "datasets/chignolin/cln025_ff14SB.inpcrd",
        Solvent::Obc2,
        seconds,
    );
}
