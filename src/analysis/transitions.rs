//! Core-to-core transitions between two states A and B of a time series.
//!
//! Each frame k (time t_k, ps) is in core A, in core B, or in neither. The committed
//! state h_k is the last core visited (none before the first visit); a transition
//! A -> B is counted at the first frame in core B whose h was A, and the other way
//! round. Recrossings of the barrier that do not reach the other core count nothing,
//! so the count does not depend on how finely frames are saved once the cores are
//! visited between frames' spacing. The time between frames k and k + 1 is given to
//! h_k, so T_A is the time spent committed to A, and the rate (the maximum-likelihood
//! rate of a two-state jump process) is
//!
//! ```text
//! k_AB = N_AB / T_A,   MFPT_AB = 1 / k_AB = T_A / N_AB,
//! ```
//!
//! with an exact Poisson interval on N_AB ([`super::poisson`]). A frame whose time is
//! not after the previous one starts a new run (a list of independent runs): no time
//! is counted across it and h starts again undecided.

use super::poisson::{RateInterval, poisson_rate};

/// The two states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    A,
    B,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::A => "A",
            State::B => "B",
        }
    }
}

/// One transition: at `frame` (time `time_ps`) the series reached the core of `to`,
/// having been committed to the other state since `committed_ps` (the time it last
/// entered that state's core after a transition, or its first visit).
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub frame: usize,
    pub time_ps: f64,
    pub to: State,
    pub waiting_ps: f64,
}

/// What a series holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Transitions {
    pub events: Vec<Transition>,
    /// Time committed to A, to B, and before the first visit of a run (ps).
    pub time_a_ps: f64,
    pub time_b_ps: f64,
    pub time_undecided_ps: f64,
    /// Runs in the series (1 plus the number of time resets).
    pub runs: usize,
}

impl Transitions {
    /// Counts transitions in a series: `core[k]` is the core frame k is in, if any.
    pub fn count(times_ps: &[f64], core: &[Option<State>]) -> Transitions {
        assert_eq!(times_ps.len(), core.len(), "one core entry per time");
        let mut out = Transitions {
            events: Vec::new(),
            time_a_ps: 0.0,
            time_b_ps: 0.0,
            time_undecided_ps: 0.0,
            runs: usize::from(!times_ps.is_empty()),
        };
        let mut committed: Option<(State, f64)> = None;
        for k in 0..times_ps.len() {
            if k > 0 {
                let dt = times_ps[k] - times_ps[k - 1];
                if dt > 0.0 {
                    match committed {
                        Some((State::A, _)) => out.time_a_ps += dt,
                        Some((State::B, _)) => out.time_b_ps += dt,
                        None => out.time_undecided_ps += dt,
                    }
                } else {
                    out.runs += 1;
                    committed = None;
                }
            }
            if let Some(state) = core[k] {
                match committed {
                    Some((from, since)) if from != state => {
                        out.events.push(Transition {
                            frame: k,
                            time_ps: times_ps[k],
                            to: state,
                            waiting_ps: times_ps[k] - since,
                        });
                        committed = Some((state, times_ps[k]));
                    }
                    Some(_) => {}
                    None => committed = Some((state, times_ps[k])),
                }
            }
        }
        out
    }

    /// Transitions into `to`.
    pub fn arrivals(&self, to: State) -> usize {
        self.events.iter().filter(|e| e.to == to).count()
    }

    /// The rate out of `from` (per ps) with its interval at `confidence`.
    pub fn rate(&self, from: State, confidence: f64) -> RateInterval {
        let (to, exposure) = match from {
            State::A => (State::B, self.time_a_ps),
            State::B => (State::A, self.time_b_ps),
        };
        poisson_rate(self.arrivals(to), exposure, confidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<State> = Some(State::A);
    const B: Option<State> = Some(State::B);

    #[test]
    fn recrossings_without_the_other_core_count_nothing() {
        let times: Vec<f64> = (0..10).map(|k| k as f64).collect();
        //            0  1     2     3  4     5  6     7  8  9
        let core = [None, A, None, A, None, B, None, B, A, None];
        let t = Transitions::count(&times, &core);
        assert_eq!(t.events.len(), 2);
        assert_eq!(
            t.events[0],
            Transition {
                frame: 5,
                time_ps: 5.0,
                to: State::B,
                waiting_ps: 4.0
            }
        );
        assert_eq!((t.events[1].frame, t.events[1].waiting_ps), (8, 3.0));
        // Committed to A from 1 to 5 and from 8 to 9; to B from 5 to 8; undecided 0 to 1.
        assert_eq!(
            (t.time_a_ps, t.time_b_ps, t.time_undecided_ps),
            (5.0, 3.0, 1.0)
        );
        assert_eq!(t.arrivals(State::B), 1);
        let r = t.rate(State::A, 0.95);
        assert_eq!(r.rate, 1.0 / 5.0);
        assert!(r.lo < r.rate && r.rate < r.hi);
    }

    #[test]
    fn a_time_reset_starts_a_new_run() {
        let times = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
        let core = [A, None, None, B, None, A];
        let t = Transitions::count(&times, &core);
        // No A -> B across the reset; the second run's B -> A counts.
        assert_eq!(t.runs, 2);
        assert_eq!(t.events.len(), 1);
        assert_eq!(t.events[0].to, State::A);
        assert_eq!((t.time_a_ps, t.time_b_ps), (2.0, 2.0));
    }
}
