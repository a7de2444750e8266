//! The `transitions` stage on a short unbiased run of alanine dipeptide at 300 K with
//! cores C7eq and alpha_R (which the run crosses several times in 400 ps): the events
//! alternate, the time is accounted for exactly, the rates are the counts over the
//! committed times inside their intervals; a replica-exchange trajectory and
//! overlapping cores are refused.

use crate::common::{TempDir, f64_column, i64_column, string_column};

use std::path::Path;

use cgloop::exec::{RunOptions, Store, run};
use cgloop::stages::Registry;
use cgloop::workflow;

fn workflow_text(fg_params: &str, tr_params: &str) -> String {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/alanine_dipeptide");
    format!(
        "name: t\nseed: 3\nnodes:\n  md:\n    stage: fg_sample\n    params: {{topology: {}, coordinates: {}, temperature_k: 300, timestep_fs: 2, constraints: hbonds, equilibration_steps: 1000, save_every: 100{fg_params}}}\n  tr:\n    stage: transitions\n    inputs: {{trajectory: md.trajectory, atoms: md.atoms}}\n    params: {{b: {{phi_deg: -75, psi_deg: -35, radius_deg: 30}}{tr_params}}}\n",
        data.join("ala2_ff14SB.prmtop").display(),
        data.join("ala2_ff14SB.inpcrd").display(),
    )
}

#[test]
fn events_alternate_and_rates_are_counts_over_committed_time() {
    let dir = TempDir::new("transitions");
    let file = dir.write(
        "t.yaml",
        &workflow_text(", replicas: 1, steps: 200_000", ""),
    );
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    let node = report.nodes.iter().find(|n| n.id == "tr").unwrap();
    let table = |name: &str| {
        store
            .load_output(&node.key, name)
            .unwrap()
            .as_table()
            .unwrap()
            .clone()
    };
    let (events, summary) = (table("events"), table("summary"));
    let one = |name: &str| f64_column(&summary, name)[0];
    let count = |name: &str| i64_column(&summary, name)[0];
    let (n_ab, n_ba) = (count("transitions_ab"), count("transitions_ba"));
    assert!(
        n_ab + n_ba >= 4,
        "too few transitions to test: {n_ab} + {n_ba}"
    );
    assert_eq!(events.num_rows() as i64, n_ab + n_ba);
    let to = string_column(&events, "to");
    let from = string_column(&events, "from");
    for k in 0..to.len() {
        assert_ne!(from[k], to[k]);
        if k > 0 {
            assert_eq!(
                from[k],
                to[k - 1],
                "event {k} does not start where {} ended",
                k - 1
            );
        }
    }
    // 2,000 frames every 0.2 ps: 399.8 ps, all of it committed to A, to B or undecided.
    assert_eq!(count("frames"), 2000);
    let total = one("time_a_ps") + one("time_b_ps") + one("time_undecided_ps");
    assert!((total - 399.8).abs() < 1e-9 && (one("time_ps") - total).abs() < 1e-12);
    // Rates: counts over the committed times, per ns, inside their intervals.
    let rate_ab = one("rate_ab_per_ns");
    assert!((rate_ab - n_ab as f64 / one("time_a_ps") * 1000.0).abs() < 1e-9 * rate_ab);
    assert!(one("rate_ab_lo_per_ns") < rate_ab && rate_ab < one("rate_ab_hi_per_ns"));
    assert!((one("mfpt_ab_ps") - one("time_a_ps") / n_ab as f64).abs() < 1e-9);
    // Waiting times are positive and fit inside the time committed to their state.
    let waiting = f64_column(&events, "waiting_ps");
    assert!(waiting.iter().all(|&w| w > 0.0));
    let waited_in_a: f64 = waiting
        .iter()
        .zip(&from)
        .filter(|(_, f)| f.as_str() == "A")
        .map(|(w, _)| w)
        .sum();
    assert!(waited_in_a <= one("time_a_ps") + 1e-9);
}

#[test]
fn a_replica_exchange_trajectory_and_overlapping_cores_are_refused() {
    let dir = TempDir::new("transitions-refused");
    let file = dir.write(
        "remd.yaml",
        &workflow_text(", replicas: 2, max_temperature_k: 400, steps: 20_000", ""),
    );
    let wf = workflow::load(&file, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(dir.path().join("store")).unwrap();
    let report = run(&wf, &store, &RunOptions::default()).unwrap();
    let tr = report.nodes.iter().find(|n| n.id == "tr").unwrap();
    let outcome = format!("{:?}", tr.outcome);
    assert!(
        outcome.contains("several walkers") && outcome.contains("replicas: 1"),
        "{outcome}"
    );

    let file = dir.write(
        "overlap.yaml",
        &workflow_text(
            ", replicas: 1, steps: 2_000",
            ", a: {phi_deg: -75, psi_deg: 10, radius_deg: 30}",
        ),
    );
    let Err(error) = workflow::load(&file, &Registry::builtin()) else {
        panic!("overlapping cores validated");
    };
    let error = error.to_string();
    assert!(
        error.contains("nodes.tr.params.b") && error.contains("overlap"),
        "{error}"
    );
}
