//! The per-coordinate loops of a Langevin BAOAB step ([`crate::md::langevin`]), over
//! flat arrays (x, y, z of atom 0, then of atom 1, ...) so that the compiler vectorizes
//! them; compiled for AVX2 as well, and that version taken when the CPU has it. Each
//! coordinate gets exactly the IEEE operations, in the same order, of the per-atom
//! formulas quoted below (no fused multiply-adds), so trajectories do not change by a
//! bit. Atoms of zero mass are the caller's business (it restores them afterwards).
//!
//! Units: positions nm, velocities nm/ps, forces kJ/mol/nm, `kick_scale` = (dt/2) / m
//! in ps/amu (so `kick_scale * f` is a velocity), the drift's h = dt/2 in ps and
//! `inv_dt` = 1/dt in 1/ps.

/// Defines `pub(crate) fn $name`, which runs `$body` compiled for AVX2 when the CPU has
/// it (checked at each call: a cached flag) and else `$portable`, the same body as
/// plain code (also called by the tests, so that both are checked on an AVX2 machine).
macro_rules! with_avx2 {
    (
        $(#[$doc:meta])*
        fn $name:ident / $portable:ident($($arg:ident: $ty:ty),* $(,)?) $body:block
    ) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            fn avx2($($arg: $ty),*) {
                $portable($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            if crate::cpu::has_avx2() {
                // SAFETY: AVX2 was just detected.
                return unsafe { avx2($($arg),*) };
            }
            $portable($($arg),*)
        }

        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        fn $portable($($arg: $ty),*) $body
    };
}

with_avx2! {
    /// The kick v <- v + s f, after removing the centre-of-mass velocity when `vcm` is
    /// given: v <- (v - vcm) + s f, per atom `v[k] -= vcm[k]; v[k] += s * f[k]`.
    fn kick / kick_portable(v: &mut [f64], f: &[f64], kick_scale: &[f64], vcm: Option<[f64; 3]>) {
        assert!(v.len() == f.len() && v.len() == kick_scale.len());
        match vcm {
            None => {
                for ((v, f), s) in v.iter_mut().zip(f).zip(kick_scale) {
                    *v += s * f;
                }
            }
            Some(vcm) => {
                // Whole atoms in chunks of 24 coordinates (8 atoms), against a 24-long
                // pattern of vcm.
                let pattern: [f64; 24] = std::array::from_fn(|k| vcm[k % 3]);
                for ((v, f), s) in v.chunks_mut(24).zip(f.chunks(24)).zip(kick_scale.chunks(24)) {
                    for (((v, f), s), c) in v.iter_mut().zip(f).zip(s).zip(&pattern) {
                        *v = (*v - c) + s * f;
                    }
                }
            }
        }
    }
}

with_avx2! {
    /// The A-O-A part of the step, per coordinate: y = x + h v; v <- a v + amp xi
    /// (thermostat only); y <- y + h v; then `drift` = `unconstrained` = y.
    fn drift_thermostat_drift / drift_thermostat_drift_portable(
        x: &[f64],
        v: &mut [f64],
        noise: Option<(f64, &[f64], &[f64])>,
        h: f64,
        drift: &mut [f64],
        unconstrained: &mut [f64],
    ) {
        let n = x.len();
        assert!(v.len() == n && drift.len() == n && unconstrained.len() == n);
        match noise {
            Some((a, amplitude, xi)) => {
                assert!(amplitude.len() == n && xi.len() == n);
                for k in 0..n {
                    let y = x[k] + h * v[k];
                    let vk = a * v[k] + amplitude[k] * xi[k];
                    v[k] = vk;
                    let y = y + h * vk;
                    drift[k] = y;
                    unconstrained[k] = y;
                }
            }
            None => {
                for k in 0..n {
                    let y = x[k] + h * v[k];
                    let y = y + h * v[k];
                    drift[k] = y;
                    unconstrained[k] = y;
                }
            }
        }
    }
}

with_avx2! {
    /// The velocity change of the constraint displacement: v <- v + (y - u) / dt as
    /// `v += (y - u) * inv_dt`.
    fn constraint_velocity / constraint_velocity_portable(v: &mut [f64], constrained: &[f64], unconstrained: &[f64], inv_dt: f64) {
        assert!(v.len() == constrained.len() && v.len() == unconstrained.len());
        for ((v, y), u) in v.iter_mut().zip(constrained).zip(unconstrained) {
            *v += (y - u) * inv_dt;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    type Kick = fn(&mut [f64], &[f64], &[f64], Option<[f64; 3]>);
    type Drift = fn(&[f64], &mut [f64], Option<(f64, &[f64], &[f64])>, f64, &mut [f64], &mut [f64]);
    type Correct = fn(&mut [f64], &[f64], &[f64], f64);

    #[test]
    fn loops_give_the_per_atom_formulas_bit_for_bit() {
        // The dispatching functions (AVX2 where the CPU has it) and the plain bodies.
        check(kick, drift_thermostat_drift, constraint_velocity);
        check(
            kick_portable,
            drift_thermostat_drift_portable,
            constraint_velocity_portable,
        );
    }

    fn check(kick: Kick, drift_thermostat_drift: Drift, constraint_velocity: Correct) {
        // 3 n coordinates for n atoms around the chunk of 8 atoms and the lane widths.
        for atoms in [1, 2, 7, 8, 9, 22, 23] {
            let n = 3 * atoms;
            let (x, f, s, amp, xi) = (
                values(n, 1),
                values(n, 2),
                values(n, 3),
                values(n, 4),
                values(n, 5),
            );
            let v0 = values(n, 6);
            let vcm = [0.3, -0.2, 0.1];
            let (h, a, inv_dt) = (0.001, 0.998, 500.0);

            let mut v = v0.clone();
            kick(&mut v, &f, &s, Some(vcm));
            for i in 0..atoms {
                let mut w = [v0[3 * i], v0[3 * i + 1], v0[3 * i + 2]];
                for k in 0..3 {
                    w[k] -= vcm[k];
                }
                for k in 0..3 {
                    w[k] += s[3 * i + k] * f[3 * i + k];
                    assert_eq!(w[k].to_bits(), v[3 * i + k].to_bits());
                }
            }
            let mut plain = v0.clone();
            kick(&mut plain, &f, &s, None);
            for k in 0..n {
                assert_eq!(plain[k].to_bits(), (v0[k] + s[k] * f[k]).to_bits());
            }

            for thermostat in [true, false] {
                let (mut v, mut drift, mut unconstrained) =
                    (v0.clone(), vec![0.0; n], vec![0.0; n]);
                let noise = thermostat.then_some((a, &amp[..], &xi[..]));
                drift_thermostat_drift(&x, &mut v, noise, h, &mut drift, &mut unconstrained);
                for k in 0..n {
                    let mut y = x[k] + h * v0[k];
                    let vk = if thermostat {
                        a * v0[k] + amp[k] * xi[k]
                    } else {
                        v0[k]
                    };
                    y += h * vk;
                    assert_eq!(v[k].to_bits(), vk.to_bits());
                    assert_eq!(drift[k].to_bits(), y.to_bits());
                    assert_eq!(unconstrained[k].to_bits(), y.to_bits());
                }
            }

            let mut v = v0.clone();
            constraint_velocity(&mut v, &x, &f, inv_dt);
            for k in 0..n {
                assert_eq!(v[k].to_bits(), (v0[k] + (x[k] - f[k]) * inv_dt).to_bits());
            }
        }
    }
}
