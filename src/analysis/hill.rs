//! The rate from the committor by the Hill relation: in an unbiased series of frames,
//! an exit from core A is a frame outside A whose predecessor (same run) is in A, and
//!
//! ```text
//! k_AB = (1 / T_A) sum_{exits e} q(x_e)
//! ```
//!
//! with T_A the time committed to A (last core visited A, as in
//! [`crate::analysis::transitions`]) and q the committor of the frame series (the
//! probability that the series from x_e enters B before A). Every transition A -> B
//! leaves A by exactly one last exit, so with the outcome 1[next core is B] in place of q
//! the sum is N_AB and the relation is the brute-force count; with q it averages over
//! the outcomes, and needs no transition at all, only exits (Hill, "Free Energy
//! Transduction in Biology", 1977; for committors learned by importance sampling,
//! Mitchell and Rotskoff, arXiv:2408.05879).
//!
//! The same holds with the exits replaced by the first crossings of any interface
//! around A after each visit to A ([`crossings`]). [`exits_from_a`] finds the exits, their outcomes (the next core the run enters, if it
//! enters one before it ends) and each frame's share of T_A, so that the rate is a
//! weighted mean over frames, w_t = the time committed to A in the interval ending at
//! frame t and a_t = q_t 1[exit at t] / w_t, which [`crate::analysis::bootstrap`] gives a
//! block-bootstrap error. Times in ps.

use super::transitions::State;

/// One exit from core A.
#[derive(Clone, Debug, PartialEq)]
pub struct Exit {
    /// The first frame outside A.
    pub frame: usize,
    /// The next core the run enters from there (B when `frame` is in B), or None when
    /// the run ends first.
    pub outcome: Option<State>,
}

/// The exits from A of a series and each frame's share of the time committed to A.
#[derive(Clone, Debug, PartialEq)]
pub struct ExitSeries {
    pub exits: Vec<Exit>,
    /// Per frame: the time committed to A in the interval (t - 1, t], ps (0 at the first
    /// frame of a run).
    pub time_a_ps: Vec<f64>,
}

/// The exits of a series: `core[t]` is the core frame t is in, if any; a time that does
/// not increase starts a new run. The same as [`crossings`] of A's own boundary.
pub fn exits_from_a(times_ps: &[f64], core: &[Option<State>]) -> ExitSeries {
    let beyond: Vec<bool> = core.iter().map(|&c| c != Some(State::A)).collect();
    crossings(times_ps, core, &beyond)
}

/// The first crossings of an interface around A after each visit to A: `beyond[t]`
/// says whether frame t lies outside the interface (false for frames in A; B must lie
/// beyond it). An event is the first frame beyond the interface after a frame in A,
/// within one run; the next event waits for the next visit to A. Each transition
/// A -> B has exactly one event after its last visit to A, so the Hill relation holds
/// for any such interface, and one further out puts q where it is learned from pairs
/// rather than held to 0 by A's boundary terms (as in transition interface sampling's
/// first interface).
pub fn crossings(times_ps: &[f64], core: &[Option<State>], beyond: &[bool]) -> ExitSeries {
    assert_eq!(times_ps.len(), core.len(), "one core entry per time");
    assert_eq!(times_ps.len(), beyond.len(), "one interface flag per time");
    let n = times_ps.len();
    let new_run = |t: usize| t == 0 || times_ps[t] <= times_ps[t - 1];
    let mut time_a_ps = vec![0.0; n];
    let mut committed: Option<State> = None;
    for t in 0..n {
        if new_run(t) {
            committed = None;
        } else if committed == Some(State::A) {
            time_a_ps[t] = times_ps[t] - times_ps[t - 1];
        }
        if let Some(state) = core[t] {
            committed = Some(state);
        }
    }
    // The next core entered at or after each frame within its run, scanning backwards.
    let mut next_core: Vec<Option<State>> = vec![None; n];
    for t in (0..n).rev() {
        next_core[t] = match core[t] {
            Some(state) => Some(state),
            None if t + 1 < n && !new_run(t + 1) => next_core[t + 1],
            None => None,
        };
    }
    let mut exits = Vec::new();
    let mut armed = false;
    for t in 0..n {
        if new_run(t) {
            armed = false;
        }
        if core[t] == Some(State::A) {
            armed = true;
        } else if armed && beyond[t] {
            exits.push(Exit {
                frame: t,
                outcome: next_core[t],
            });
            armed = false;
        }
    }
    ExitSeries { exits, time_a_ps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::bootstrap::BlockBootstrap;
    use crate::analysis::transitions::Transitions;
    use crate::random::{stream, uniform};

    #[test]
    fn exits_their_outcomes_and_the_time_in_a() {
        use State::{A, B};
        let times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 0.0, 1.0];
        let core = [
            Some(A),
            Some(A),
            None,
            Some(A),
            None,
            None,
            Some(B),
            None,
            Some(A),
            None,
            Some(A),
            None,
        ];
        let series = exits_from_a(&times, &core);
        let exits: Vec<(usize, Option<State>)> =
            series.exits.iter().map(|e| (e.frame, e.outcome)).collect();
        assert_eq!(exits, [(2, Some(A)), (4, Some(B)), (9, None), (11, None)]);
        let a = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        assert_eq!(series.time_a_ps, a);
        // T_A as the transition count has it.
        let counted = Transitions::count(&times, &core);
        assert_eq!(series.time_a_ps.iter().sum::<f64>(), counted.time_a_ps);
    }

    /// A symmetric random walk on 0..=N (A = {0}, B = {N}, reflecting ends), whose
    /// committor is exactly q(i) = i / N: the Hill rate with that q agrees with the
    /// brute-force N_AB / T_A of the same series within three bootstrap errors of their
    /// difference (the outcomes' binomial noise: the flux out of A is nearly exact), on
    /// three seeds, for the exits and for first crossings of interfaces at 2 and 3.
    #[test]
    fn the_hill_rate_with_the_exact_committor_matches_the_brute_force_count() {
        const N: usize = 6;
        for seed in 1..=3 {
            let mut rng = stream(seed, 0);
            let mut i = 0usize;
            let steps = 400_000;
            let times: Vec<f64> = (0..steps).map(|t| t as f64).collect();
            let mut state = Vec::with_capacity(steps);
            for _ in 0..steps {
                state.push(i);
                let up = uniform(&mut rng) < 0.5;
                i = match (i, up) {
                    (0, _) => usize::from(up),
                    (N, _) => N - usize::from(!up),
                    (_, true) => i + 1,
                    (_, false) => i - 1,
                };
            }
            let core: Vec<Option<State>> = state
                .iter()
                .map(|&i| match i {
                    0 => Some(State::A),
                    N => Some(State::B),
                    _ => None,
                })
                .collect();
            // Interfaces at 1 (A's own boundary: the exits), 2 and 3.
            for interface in 1..=3 {
                let beyond: Vec<bool> = state.iter().map(|&i| i >= interface).collect();
                let series = crossings(&times, &core, &beyond);
                if interface == 1 {
                    assert_eq!(series, exits_from_a(&times, &core));
                }
                let (mut hill, mut outcome) = (vec![0.0; steps], vec![0.0; steps]);
                for e in &series.exits {
                    let w = series.time_a_ps[e.frame];
                    hill[e.frame] = state[e.frame] as f64 / N as f64 / w;
                    outcome[e.frame] = f64::from(e.outcome == Some(State::B)) / w;
                }
                let difference: Vec<f64> = hill.iter().zip(&outcome).map(|(h, o)| h - o).collect();
                let estimates = BlockBootstrap {
                    blocks: 50,
                    resamples: 400,
                }
                .weighted_means(
                    &[&hill, &outcome, &difference],
                    &series.time_a_ps,
                    &mut stream(seed, 1),
                )
                .unwrap();
                let counted = Transitions::count(&times, &core);
                let brute = counted.arrivals(State::B) as f64 / counted.time_a_ps;
                assert!(
                    counted.arrivals(State::B) > 500,
                    "{} transitions",
                    counted.arrivals(State::B)
                );
                assert!((estimates[1].mean - brute).abs() < 1e-12 * brute);
                let d = estimates[2];
                assert!(
                    d.mean.abs() < 3.0 * d.std_error,
                    "seed {seed}, interface {interface}: Hill {} +- {}, brute force {brute}, difference {} +- {}",
                    estimates[0].mean,
                    estimates[0].std_error,
                    d.mean,
                    d.std_error
                );
                // With the exits' outcomes in place of q, the sum is the count itself.
                let to_b = series
                    .exits
                    .iter()
                    .filter(|e| e.outcome == Some(State::B))
                    .count();
                assert_eq!(to_b, counted.arrivals(State::B));
            }
        }
    }
}
