//! Rational-quadratic spline transforms of [0, 1], bounded and circular (Durkan et al.,
//! "Neural Spline Flows", NeurIPS 2019; circular form after Rezende et al., "Normalizing
//! Flows on Tori and Spheres", ICML 2020).
//!
//! Each dimension has K bins with knots (x_k, y_k), k = 0..K, x_0 = y_0 = 0,
//! x_K = y_K = 1, and positive derivatives d_k at the knots. In bin k, with
//! w_k = x_{k+1} - x_k, h_k = y_{k+1} - y_k, s_k = h_k / w_k and
//! xi = (x - x_k) / w_k in [0, 1]:
//!
//! y = y_k + h_k [s_k xi^2 + d_k xi (1 - xi)]
//!         / [s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi)],
//!
//! dy/dx = s_k^2 [d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2]
//!         / [s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi)]^2.
//!
//! The map is monotone and C^1: at each knot it takes the value y_k with slope d_k from
//! both sides. The inverse solves a xi^2 + b xi + c = 0 in the bin found from the
//! cumulative heights, with dy = y - y_k, a = h_k (s_k - d_k) + dy (d_{k+1} + d_k - 2 s_k),
//! b = h_k d_k - dy (d_{k+1} + d_k - 2 s_k), c = -s_k dy, by the numerically stable root
//! xi = 2c / (-b - sqrt(b^2 - 4ac)).
//!
//! Shapes: x, y (B, D); params (B, D, 3K + 1), unnormalized, per dimension: K widths,
//! K heights, K + 1 derivatives; circular (D,), 1.0 for a circular dimension (torsion),
//! 0.0 for a bounded one (bond, angle). Normalization:
//!
//! - widths = min_w + (1 - K min_w) softmax(raw widths), heights likewise; the knots are
//!   their cumulative sums with the ends set to exactly 0 and 1;
//! - d_k = min_d + softplus(raw_k + c0), c0 = ln(e^(1 - min_d) - 1), so zero parameters
//!   give equal bins and unit slopes: the identity. An untrained flow starts there;
//! - circular dimensions use d_K = d_0 (the blend d_K = c d_0 + (1 - c) d_K), so the
//!   density is continuous across 0 = 1 on the circle. Bounded ones keep d_0 and d_K free.
//!
//! Inputs are clamped to [0, 1] (with the gradient of the identity inside); outputs are
//! not, and may leave [0, 1] by a rounding error. Everything is built from candle
//! operations that have a backward pass (the softmax is written out, and a bin is picked
//! by a one-hot mask from comparisons, summed over the bin axis), so gradients reach the
//! parameters and the inputs through an ordinary `backward()`.
//!
//! Internally the bin axis comes first: parameters are laid out as (3K + 1, B D), so
//! every per-bin slice is a contiguous block and every elementwise operation runs on
//! contiguous memory; sums over bins are (1, K) x (K, B D) matrix products. An
//! elementwise operation on strided (B, D, K) slices took two to four times longer on
//! the CPU. Derivatives are normalized after their bin is picked (softplus is
//! elementwise), on (1, B D) rather than (K + 1, B D).

use candle_core::{Result, Tensor};

/// A rational-quadratic spline with `bins` bins and lower bounds on bin sizes and slopes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RqSpline {
    pub bins: usize,
    pub min_bin_width: f64,
    pub min_bin_height: f64,
    /// Must lie in [0, 1) so that zero parameters give unit slopes.
    pub min_derivative: f64,
}

impl Default for RqSpline {
    fn default() -> Self {
        RqSpline {
            bins: 8,
            min_bin_width: 1e-3,
            min_bin_height: 1e-3,
            min_derivative: 1e-3,
        }
    }
}

/// The normalized spline of every (sample, dimension), N = B D of them: knot positions
/// (K + 1, N), bin sizes (K, N), unnormalized knot derivatives (K + 1, N) (normalized
/// only once picked: softplus is elementwise), circular flags (1, N).
struct Knots {
    xs: Tensor,
    widths: Tensor,
    ys: Tensor,
    heights: Tensor,
    raw_derivatives: Tensor,
    circular: Tensor,
    /// (1, K) ones: sums over the bin axis as one matrix product.
    ones: Tensor,
}

/// The quantities of the bin each entry falls in, all (1, N).
struct Bin {
    x_k: Tensor,
    w_k: Tensor,
    y_k: Tensor,
    h_k: Tensor,
    d_k: Tensor,
    d_k1: Tensor,
}

impl Bin {
    /// s_k = h_k / w_k.
    fn slope(&self) -> Result<Tensor> {
        self.h_k.div(&self.w_k)
    }

    /// d_{k+1} + d_k - 2 s_k.
    fn curvature(&self, s: &Tensor) -> Result<Tensor> {
        (&self.d_k1 + &self.d_k)? - (s * 2.0)?
    }

    /// The denominator s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi) and ln |dy/dx| at xi.
    fn denominator_and_log_slope(&self, xi: &Tensor, s: &Tensor) -> Result<(Tensor, Tensor)> {
        let one_minus = (1.0 - xi)?;
        let xi_one_minus = (xi * &one_minus)?;
        let denominator = (s + (self.curvature(s)? * &xi_one_minus)?)?;
        let numerator = (s.sqr()?
            * ((&self.d_k1 * xi.sqr()?)?
                + (s * 2.0)?.mul(&xi_one_minus)?
                + (&self.d_k * one_minus.sqr()?)?)?)?;
        let log_slope = (numerator.log()? - (denominator.log()? * 2.0)?)?;
        Ok((denominator, log_slope))
    }
}

/// Softmax over the bin axis (dim 0) of (K, N): exp(u - max u) / sum exp(u - max u), with
/// the max detached (it cancels); candle's fused softmax has no backward pass.
fn softmax_over_bins(u: &Tensor, ones: &Tensor) -> Result<Tensor> {
    let e = u.broadcast_sub(&u.max_keepdim(0)?.detach())?.exp()?;
    e.broadcast_div(&ones.matmul(&e)?)
}

/// ln(1 + e^u) = max(u, 0) + ln(1 + e^{-|u|}), stable for large |u|.
fn softplus(u: &Tensor) -> Result<Tensor> {
    u.relu()? + (u.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Clamps to [0, 1] with `where_cond`, so that the gradient is 1 on all of [0, 1]
/// (candle's `clamp` halves it at a tie with the bound).
fn clamp_unit(x: &Tensor) -> Result<Tensor> {
    let x = x.lt(0.0)?.where_cond(&x.zeros_like()?, x)?;
    x.gt(1.0)?.where_cond(&x.ones_like()?, &x)
}

/// Knot positions (K + 1, N), ends exactly 0 and 1, and the bin sizes between them,
/// from unnormalized sizes (K, N).
fn knot_positions(raw: &Tensor, min_size: f64, ones: &Tensor) -> Result<(Tensor, Tensor)> {
    let (k, n) = raw.dims2()?;
    let sizes = softmax_over_bins(raw, ones)?.affine(1.0 - k as f64 * min_size, min_size)?;
    // Row j of the lower-triangular ones sums sizes 0..=j.
    let cumulative = Tensor::tril2(k, raw.dtype(), raw.device())?.matmul(&sizes)?;
    let zeros = Tensor::zeros((1, n), raw.dtype(), raw.device())?;
    let end = Tensor::ones((1, n), raw.dtype(), raw.device())?;
    let positions = Tensor::cat(&[&zeros, &cumulative.narrow(0, 0, k - 1)?, &end], 0)?;
    let sizes = (positions.narrow(0, 1, k)? - positions.narrow(0, 0, k)?)?;
    Ok((positions, sizes))
}

/// One-hot (K, N) of the bin [p_k, p_{k+1}) holding each value (1, N) (the last bin
/// also holds p_K = 1). A constant: comparisons carry no gradient, and need none.
fn bin_mask(values: &Tensor, positions: &Tensor) -> Result<Tensor> {
    let k = positions.dim(0)? - 1;
    let at_or_above = |edges: Tensor| -> Result<Tensor> {
        values
            .broadcast_as(edges.shape())?
            .ge(&edges)?
            .to_dtype(positions.dtype())
    };
    let above_left = at_or_above(positions.narrow(0, 0, k)?)?;
    let above_right = at_or_above(positions.narrow(0, 1, k)?)?;
    let mut not_last = vec![1.0; k];
    not_last[k - 1] = 0.0;
    let not_last =
        Tensor::from_vec(not_last, (k, 1), positions.device())?.to_dtype(positions.dtype())?;
    above_left - above_right.broadcast_mul(&not_last)?
}

impl RqSpline {
    /// 3K + 1: K widths, K heights and K + 1 derivatives, all unnormalized.
    pub fn params_per_dim(&self) -> usize {
        3 * self.bins + 1
    }

    fn knots(
        &self,
        params: &Tensor,
        circular: &Tensor,
        batch: usize,
        dims: usize,
    ) -> Result<Knots> {
        let k = self.bins;
        if k == 0 {
            candle_core::bail!("RqSpline: bins must be at least 1");
        }
        let too_wide = |min: f64| !(0.0..1.0).contains(&(k as f64 * min));
        if too_wide(self.min_bin_width) || too_wide(self.min_bin_height) {
            candle_core::bail!(
                "RqSpline: {k} bins of minimum size {} or {} do not fit in [0, 1]",
                self.min_bin_width,
                self.min_bin_height
            );
        }
        if !(0.0..1.0).contains(&self.min_derivative) {
            candle_core::bail!(
                "RqSpline: min_derivative {} not in [0, 1)",
                self.min_derivative
            );
        }
        if params.dims() != [batch, dims, self.params_per_dim()] {
            candle_core::bail!(
                "RqSpline: params {:?}, expected ({batch}, {dims}, {})",
                params.dims(),
                self.params_per_dim()
            );
        }
        if circular.dims() != [dims] {
            candle_core::bail!(
                "RqSpline: circular {:?}, expected ({dims},)",
                circular.dims()
            );
        }
        let n = batch * dims;
        // (3K + 1, N), contiguous: each slice below is a contiguous block.
        let params = params
            .reshape((n, self.params_per_dim()))?
            .t()?
            .contiguous()?;
        let ones = Tensor::ones((1, k), params.dtype(), params.device())?;
        let (xs, widths) = knot_positions(&params.narrow(0, 0, k)?, self.min_bin_width, &ones)?;
        let (ys, heights) = knot_positions(&params.narrow(0, k, k)?, self.min_bin_height, &ones)?;
        let circular = circular
            .to_dtype(params.dtype())?
            .reshape((1, 1, dims))?
            .broadcast_as((1, batch, dims))?
            .reshape((1, n))?;
        Ok(Knots {
            xs,
            widths,
            ys,
            heights,
            raw_derivatives: params.narrow(0, 2 * k, k + 1)?,
            circular,
            ones,
        })
    }

    /// d = min_d + softplus(raw + c0); softplus(c0) = 1 - min_d, so raw = 0 gives d = 1.
    fn derivative(&self, raw: &Tensor) -> Result<Tensor> {
        let offset = ((1.0 - self.min_derivative).exp() - 1.0).ln();
        softplus(&(raw + offset)?)? + self.min_derivative
    }

    fn bin(&self, knots: &Knots, mask: &Tensor) -> Result<Bin> {
        let k = self.bins;
        // Exactly one nonzero term per column, so the sum is that entry exactly.
        let pick = |t: &Tensor| knots.ones.matmul(&(mask * t)?);
        let raw = &knots.raw_derivatives;
        let d_k = self.derivative(&pick(&raw.narrow(0, 0, k)?)?)?;
        let d_k1 = self.derivative(&pick(&raw.narrow(0, 1, k)?)?)?;
        // d_K = c d_0 + (1 - c) d_K, needed only in the last bin.
        let c = (&knots.circular * mask.narrow(0, k - 1, 1)?)?;
        let d_0 = self.derivative(&raw.narrow(0, 0, 1)?)?;
        let d_k1 = ((&c * d_0)? + (1.0 - &c)?.mul(&d_k1)?)?;
        Ok(Bin {
            x_k: pick(&knots.xs.narrow(0, 0, k)?)?,
            w_k: pick(&knots.widths)?,
            y_k: pick(&knots.ys.narrow(0, 0, k)?)?,
            h_k: pick(&knots.heights)?,
            d_k,
            d_k1,
        })
    }

    /// x: (B, D) in [0, 1] (clamped); params: (B, D, 3K + 1); circular: (D,), 1.0 for
    /// circular dimensions, 0.0 for bounded ones. Returns (y, ln |dy/dx|), both (B, D).
    pub fn forward(
        &self,
        x: &Tensor,
        params: &Tensor,
        circular: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (batch, dims) = x.dims2()?;
        let knots = self.knots(params, circular, batch, dims)?;
        let x = clamp_unit(&x.reshape((1, batch * dims))?)?;
        let bin = self.bin(&knots, &bin_mask(&x, &knots.xs)?)?;
        let s = bin.slope()?;
        let xi = (x - &bin.x_k)?.div(&bin.w_k)?;
        let (denominator, log_slope) = bin.denominator_and_log_slope(&xi, &s)?;
        let xi_one_minus = (&xi * (1.0 - &xi)?)?;
        let numerator = (&bin.h_k * ((&s * xi.sqr()?)? + (&bin.d_k * &xi_one_minus)?)?)?;
        let y = (&bin.y_k + numerator.div(&denominator)?)?;
        Ok((y.reshape((batch, dims))?, log_slope.reshape((batch, dims))?))
    }

    /// The exact inverse of [`RqSpline::forward`]: y (B, D) in [0, 1] (clamped) to x,
    /// with ln |dx/dy| (= minus forward's at x), both (B, D).
    pub fn inverse(
        &self,
        y: &Tensor,
        params: &Tensor,
        circular: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (batch, dims) = y.dims2()?;
        let knots = self.knots(params, circular, batch, dims)?;
        let y = clamp_unit(&y.reshape((1, batch * dims))?)?;
        let bin = self.bin(&knots, &bin_mask(&y, &knots.ys)?)?;
        let s = bin.slope()?;
        let dy = (y - &bin.y_k)?;
        let curvature_dy = (bin.curvature(&s)? * &dy)?;
        let a = ((&bin.h_k * (&s - &bin.d_k)?)? + &curvature_dy)?;
        let b = ((&bin.h_k * &bin.d_k)? - &curvature_dy)?;
        let c = (s.neg()? * &dy)?;
        // b^2 - 4ac >= 0 for a monotone spline; the relu only absorbs rounding.
        let discriminant = (b.sqr()? - ((a * &c)? * 4.0)?)?.relu()?;
        let xi = ((c * 2.0)? / (b.neg()? - discriminant.sqrt()?)?)?;
        let x = ((&xi * &bin.w_k)? + &bin.x_k)?;
        let (_, log_slope) = bin.denominator_and_log_slope(&xi, &s)?;
        Ok((
            x.reshape((batch, dims))?,
            log_slope.neg()?.reshape((batch, dims))?,
        ))
    }
}
