//! Seeded random draws for everything that draws (thermostats, network weights,
//! bootstrap resamples): uniforms and standard normals from `rand_chacha::ChaCha20Rng`,
//! and child streams derived from one seed.
//!
//! Everything here is a fixed function of the generator's output words, so a trajectory
//! depends only on the seed (DESIGN.md § Determinism), never on a library's sampler:
//!
//! - uniform on [0, 1): the top 53 bits of one `u64`, times 2^-53;
//! - uniform on (0, 1]: the same plus 2^-53 (so `ln` is always finite);
//! - standard normals by the ziggurat method (Marsaglia & Tsang, J. Stat. Softw. 5(8),
//!   2000) with 256 layers, in the form of Doornik (2005) and rand_distr: one word gives
//!   the layer i (low 8 bits) and a signed uniform u (top 52 bits); x = u X_i is accepted
//!   at once when |x| < X_(i+1) (98.8 % of draws, no transcendental function). Otherwise
//!   the base layer samples the tail beyond R = 3.6541528853610088 by Marsaglia's
//!   exponential rejection, and the other layers accept x with probability
//!   (f(x) - f(X_i)) / (f(X_(i+1)) - f(X_i)), f(x) = exp(-x^2 / 2). Rejections draw more
//!   words, a random but seed-determined number, so results stay a fixed function of
//!   the seed. The layer table is computed once from R and the layer area
//!   V = 0.00492867323399.
//!
//! Child streams: ChaCha20 has a 64-bit stream number beside its 256-bit key; equal keys
//! with different stream numbers give independent sequences. [`stream`] and
//! [`stream_from_seed`] give the generator for (seed, stream id). The Langevin
//! integrator reads its stream through [`chacha::ChaChaStream`], the same
//! words made 16 blocks at a time.

pub mod chacha;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const TWO_POW_MINUS_53: f64 = 1.0 / (1u64 << 53) as f64;

/// The generator for stream `stream_id` of a 64-bit seed (the key is expanded from the
/// seed by `SeedableRng::seed_from_u64`, which rand_core pins to PCG32).
pub fn stream(seed: u64, stream_id: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(stream_id);
    rng
}

/// The generator for stream `stream_id` of a 256-bit key.
pub fn stream_from_seed(seed: [u8; 32], stream_id: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::from_seed(seed);
    rng.set_stream(stream_id);
    rng
}

/// A uniform draw on [0, 1) with 53 random bits.
#[inline]
pub fn uniform(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * TWO_POW_MINUS_53
}

/// A uniform draw on (0, 1] with 53 random bits.
#[inline]
pub fn uniform_open_closed(rng: &mut impl RngCore) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 * TWO_POW_MINUS_53
}

const LAYERS: usize = 256;
const ZIG_R: f64 = 3.654_152_885_361_009;
const ZIG_V: f64 = 0.00492867323399;

/// Layer edges X_0 = V / f(R) > X_1 = R > ... > X_256 = 0 and f(X_i).
struct Ziggurat {
    x: [f64; LAYERS + 1],
    f: [f64; LAYERS + 1],
}

fn gauss(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

fn ziggurat() -> &'static Ziggurat {
    static TABLE: std::sync::OnceLock<Ziggurat> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut x = [0.0; LAYERS + 1];
        x[0] = ZIG_V / gauss(ZIG_R);
        x[1] = ZIG_R;
        for i in 2..LAYERS {
            x[i] = (-2.0 * (ZIG_V / x[i - 1] + gauss(x[i - 1])).ln()).sqrt();
        }
        let f = x.map(gauss);
        Ziggurat { x, f }
    })
}

/// One standard normal draw (ziggurat; usually one word of `rng`).
#[inline]
pub fn normal(rng: &mut impl RngCore) -> f64 {
    normal_from(ziggurat(), rng)
}

/// [`normal`] with the layer table looked up once by the caller. The common case (one
/// word, accepted at once) is inlined; rejections go to [`normal_slow`].
#[inline(always)]
fn normal_from(table: &Ziggurat, rng: &mut impl RngCore) -> f64 {
    let bits = rng.next_u64();
    let i = (bits & 0xff) as usize;
    // Top 52 bits as a float in [1, 2), mapped to [-1, 1).
    let u = 2.0 * f64::from_bits((bits >> 12) | 0x3ff0_0000_0000_0000) - 3.0;
    let x = u * table.x[i];
    if x.abs() < table.x[i + 1] {
        return x;
    }
    normal_slow(table, rng, i, u, x)
}

/// The rest of the ziggurat after the first word was not accepted at once: the tail
/// (layer 0) or the wedge test, then fresh draws as [`normal_from`] until one is taken.
#[cold]
#[inline(never)]
fn normal_slow(table: &Ziggurat, rng: &mut impl RngCore, i: usize, u: f64, x: f64) -> f64 {
    let (mut i, mut u, mut x) = (i, u, x);
    loop {
        if i == 0 {
            // Tail |x| > R (Marsaglia 1964).
            loop {
                let t = -uniform_open_closed(rng).ln() / ZIG_R;
                let y = -uniform_open_closed(rng).ln();
                if 2.0 * y >= t * t {
                    return if u < 0.0 { -ZIG_R - t } else { ZIG_R + t };
                }
            }
        }
        let (fi, fj) = (table.f[i], table.f[i + 1]);
        if fi + uniform(rng) * (fj - fi) < gauss(x) {
            return x;
        }
        let bits = rng.next_u64();
        i = (bits & 0xff) as usize;
        u = 2.0 * f64::from_bits((bits >> 12) | 0x3ff0_0000_0000_0000) - 3.0;
        x = u * table.x[i];
        if x.abs() < table.x[i + 1] {
            return x;
        }
    }
}

/// Fills `out` with independent standard normals.
pub fn fill_normals(rng: &mut impl RngCore, out: &mut [f64]) {
    let table = ziggurat();
    for v in out {
        *v = normal_from(table, rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(mut rng: ChaCha20Rng) -> Vec<u64> {
        (0..4).map(|_| rng.next_u64()).collect()
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        assert_eq!(words(stream(7, 1)), words(stream(7, 1)));
        assert_ne!(words(stream(7, 1)), words(stream(7, 2)));
        assert_ne!(words(stream(7, 1)), words(stream(8, 1)));
        assert_eq!(
            words(stream_from_seed([3; 32], 5)),
            words(stream_from_seed([3; 32], 5))
        );
    }

    #[test]
    fn normals_have_unit_moments() {
        // 4e5 draws: the standard error of the mean is 1.6e-3, of the variance 2.2e-3,
        // of the fourth moment (3) 1.5e-2; the bounds are about 4 standard errors.
        let mut rng = stream(20260101, 0);
        let mut x = vec![0.0; 400_001];
        fill_normals(&mut rng, &mut x);
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let kurt = x.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n / (var * var);
        assert!(mean.abs() < 7e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 1e-2, "variance {var}");
        assert!((kurt - 3.0).abs() < 6e-2, "kurtosis {kurt}");
        assert!(x.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn ziggurat_layers_have_equal_area() {
        let z = ziggurat();
        for i in 1..LAYERS {
            let area = z.x[i] * (z.f[i + 1] - z.f[i]);
            assert!(
                (area - ZIG_V).abs() < 1e-9 * ZIG_V,
                "layer {i}: area {area}"
            );
        }
    }

    #[test]
    fn normal_cdf_matches_phi() {
        // 1e6 draws; the standard error of each frequency is at most 5e-4 and the
        // bounds are 5 standard errors. Phi from tables (erfc to 12 digits).
        let mut rng = stream(99, 1);
        let mut x = vec![0.0; 1_000_000];
        fill_normals(&mut rng, &mut x);
        let n = x.len() as f64;
        let phi = [
            (-4.0, 3.167124183312e-5),
            (-3.0, 1.349898031630e-3),
            (-2.0, 2.275013194818e-2),
            (-1.0, 0.158655253931),
            (-0.5, 0.308537538726),
            (0.0, 0.5),
            (0.5, 0.691462461274),
            (1.0, 0.841344746069),
            (2.0, 0.977249868052),
            (3.0, 0.998650101968),
            (4.0, 0.999968328758),
        ];
        for (a, p) in phi {
            let freq = x.iter().filter(|&&v| v < a).count() as f64 / n;
            let se = (p * (1.0 - p) / n).sqrt();
            assert!(
                (freq - p).abs() < 5.0 * se + 1e-6,
                "P(x < {a}) = {freq}, expected {p}"
            );
        }
    }

    #[test]
    fn uniforms_stay_in_range() {
        let mut rng = stream(1, 0);
        for _ in 0..10_000 {
            let u = uniform(&mut rng);
            let w = uniform_open_closed(&mut rng);
            assert!((0.0..1.0).contains(&u));
            assert!(w > 0.0 && w <= 1.0);
        }
    }
}
