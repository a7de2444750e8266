//! Eight f64 lanes as a plain array: the lane type of machines without AVX2 (and of
//! every machine off x86-64). Each lane does the operations of the one-lane `f64`
//! implementation, and the horizontal sum adds in the tree of the vector types, so the
//! kernels give the same bits here as on AVX2 and AVX-512 lanes.

use super::*;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable([f64; 8]);

impl Portable {
    #[inline(always)]
    fn map(self, f: impl Fn(f64) -> f64) -> Self {
        Portable(self.0.map(f))
    }
    #[inline(always)]
    fn zip(self, other: Self, f: impl Fn(f64, f64) -> f64) -> Self {
        Portable(std::array::from_fn(|l| f(self.0[l], other.0[l])))
    }
}

macro_rules! binary {
    ($trait:ident, $method:ident, $op:tt) => {
        impl $trait for Portable {
            type Output = Portable;
            #[inline(always)]
            fn $method(self, other: Portable) -> Portable {
                self.zip(other, |a, b| a $op b)
            }
        }
    };
}
binary!(Add, add, +);
binary!(Sub, sub, -);
binary!(Mul, mul, *);
binary!(Div, div, /);

impl AddAssign for Portable {
    #[inline(always)]
    fn add_assign(&mut self, other: Portable) {
        *self = *self + other;
    }
}

impl SubAssign for Portable {
    #[inline(always)]
    fn sub_assign(&mut self, other: Portable) {
        *self = *self - other;
    }
}

impl Neg for Portable {
    type Output = Portable;
    #[inline(always)]
    fn neg(self) -> Portable {
        self.map(|a| -a)
    }
}

impl Lanes for Portable {
    const LANES: usize = 8;
    #[inline(always)]
    fn splat(value: f64) -> Self {
        Portable([value; 8])
    }
    #[inline(always)]
    fn load(values: &[f64], at: usize) -> Self {
        Portable(values[at..at + 8].try_into().expect("eight lanes"))
    }
    #[inline(always)]
    fn store(self, values: &mut [f64], at: usize) {
        values[at..at + 8].copy_from_slice(&self.0);
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        self.map(f64::sqrt)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        self.zip(other, <f64 as Lanes>::max)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        self.map(f64::abs)
    }
    #[inline(always)]
    fn select_lt(a: Self, b: Self, then: Self, otherwise: Self) -> Self {
        Portable(std::array::from_fn(|l| {
            f64::select_lt(a.0[l], b.0[l], then.0[l], otherwise.0[l])
        }))
    }
    #[inline(always)]
    fn select_bits(bits: u8, then: Self, otherwise: Self) -> Self {
        Portable(std::array::from_fn(|l| {
            if bits >> l & 1 != 0 {
                then.0[l]
            } else {
                otherwise.0[l]
            }
        }))
    }
    #[inline(always)]
    fn sum(self) -> f64 {
        let l = self.0;
        ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
    }
    #[inline(always)]
    fn split_exponent(self) -> (Self, Self) {
        let parts = self.0.map(f64::split_exponent);
        (
            Portable(parts.map(|(m, _)| m)),
            Portable(parts.map(|(_, k)| k)),
        )
    }
    #[inline(always)]
    fn pow2_from_rounded(t: Self) -> Self {
        t.map(f64::pow2_from_rounded)
    }
}
