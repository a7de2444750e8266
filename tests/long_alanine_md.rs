//! The long check of issue 3: 300 K alanine dipeptide basin populations from replica
//! exchange, in vacuum and OBC2, phi > 0 included. Minutes to run, so ignored by default:
//!
//!     cargo test --release --test long_alanine_md -- --ignored --nocapture
//!
//! It runs `workflows/alanine_dipeptide_md.yaml` into `results/store` (or
//! `CGLOOP_STORE`), so it reuses a run made with `cgloop run`, and prints the
//! populations with their block-bootstrap errors.

mod common;

use common::{BundledRun, f64_column, string_column};

#[test]
#[ignore = "long: about 10 minutes on 2 cores"]
fn replica_exchange_gives_converged_populations_with_phi_positive_visited() {
    let study = BundledRun::new("workflows/alanine_dipeptide_md.yaml");
    for solvent in ["vacuum", "obc2"] {
        let t = study.table(&format!("rama_{solvent}"), "populations");
        let basins = string_column(&t, "basin");
        let (p, e) = (f64_column(&t, "population"), f64_column(&t, "std_error"));
        let exchanges = study.table(&format!("fg_{solvent}"), "exchanges");
        let rates = f64_column(&exchanges, "acceptance_rate");
        println!(
            "{solvent}: exchange acceptance {:?}",
            rates.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>()
        );
        let mut total = 0.0;
        for i in 0..t.num_rows() {
            println!("{solvent}: {:<14} {:.4} ± {:.4}", basins[i], p[i], e[i]);
            total += p[i];
            assert!(
                e[i] < 0.03,
                "{solvent} {}: error {} too large to call converged",
                basins[i],
                e[i]
            );
        }
        assert!((total - 1.0).abs() < 1e-9);
        let ax = (0..t.num_rows())
            .find(|&i| basins[i] == "C7ax/alpha_L")
            .unwrap();
        assert!(
            p[ax] > 2.0 * e[ax],
            "{solvent}: phi > 0 not resolved: {} ± {}",
            p[ax],
            e[ax]
        );
        assert!(
            rates.iter().all(|&r| (0.05..0.95).contains(&r)),
            "{solvent}: ladder badly spaced: {rates:?}"
        );
    }
}
