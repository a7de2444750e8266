//! The long check of issue 3: 300 K alanine dipeptide basin populations from replica
//! exchange, in vacuum and OBC2, phi > 0 included. Minutes to run, so ignored by default:
//!
//!     cargo test --release --test long_alanine_md -- --ignored --nocapture
//!
//! It runs `workflows/alanine_dipeptide_md.yaml` into `results/store` (or
//! `CGLOOP_STORE`), so it reuses a run made with `cgloop run`, and prints the
//! populations with their block-bootstrap errors.

use std::path::Path;

use arrow_array::{Float64Array, StringArray};
use cgloop::exec::{RunOptions, Store, run};
use cgloop::stages::Registry;
use cgloop::workflow;

#[test]
#[ignore = "long: about 10 minutes on 2 cores"]
fn replica_exchange_gives_converged_populations_with_phi_positive_visited() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).unwrap();
    let wf = workflow::load(
        Path::new("workflows/alanine_dipeptide_md.yaml"),
        &Registry::builtin(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let store_dir = std::env::var("CGLOOP_STORE").unwrap_or_else(|_| "results/store".into());
    let store = Store::open(&store_dir).unwrap();
    let report = run(
        &wf,
        &store,
        &RunOptions {
            jobs: 2,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(report.succeeded(), "{report:?}");
    for solvent in ["vacuum", "obc2"] {
        let node = |id: &str| report.nodes.iter().find(|n| n.id == id).unwrap().key;
        let table = store
            .load_output(&node(&format!("rama_{solvent}")), "populations")
            .unwrap();
        let t = table.as_table().unwrap();
        let col = |name: &str| {
            t.column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone()
        };
        let basins = t
            .column_by_name("basin")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        let (p, e) = (col("population"), col("std_error"));
        let exchanges = store
            .load_output(&node(&format!("fg_{solvent}")), "exchanges")
            .unwrap();
        let rates = exchanges
            .as_table()
            .unwrap()
            .column_by_name("acceptance_rate")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .values()
            .to_vec();
        println!(
            "{solvent}: exchange acceptance {:?}",
            rates.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>()
        );
        let mut total = 0.0;
        for i in 0..t.num_rows() {
            println!(
                "{solvent}: {:<14} {:.4} ± {:.4}",
                basins.value(i),
                p.value(i),
                e.value(i)
            );
            total += p.value(i);
            assert!(
                e.value(i) < 0.03,
                "{solvent} {}: error {} too large to call converged",
                basins.value(i),
                e.value(i)
            );
        }
        assert!((total - 1.0).abs() < 1e-9);
        let ax = (0..t.num_rows())
            .find(|&i| basins.value(i) == "C7ax/alpha_L")
            .unwrap();
        assert!(
            p.value(ax) > 2.0 * e.value(ax),
            "{solvent}: phi > 0 not resolved: {} ± {}",
            p.value(ax),
            e.value(ax)
        );
        assert!(
            rates.iter().all(|&r| (0.05..0.95).contains(&r)),
            "{solvent}: ladder badly spaced: {rates:?}"
        );
    }
}
