//! The Z-matrix's NeRF and log-Jacobian as candle graphs: x(q) and ln J(q) for a batch of
//! internal coordinates q, with gradients to q. A loss on the rebuilt atoms then
//! backpropagates to whatever produced q: energy training of a flow writes its energy
//! term as sum_i (-F_i) . x_i(q), the forces F held fixed, whose gradient is
//! dU/dq = -sum_i F_i dx_i/dq.
//!
//! Same conventions and numbers (to rounding) as [`ZMatrix::to_cartesian`] and
//! [`ZMatrix::log_jacobian`]: #1 at the origin, #2 on +x, #3 in the xy plane, then for
//! atom i placed from l, k, j with (r, theta, phi)
//!
//! ```text
//! e = (x_j - x_k) / |x_j - x_k|,   n = (x_k - x_l) x e / |.|,   m = n x e
//! x_i = x_j - r cos(theta) e + r sin(theta) cos(phi) m + r sin(theta) sin(phi) n
//! ln J = sum_bonded 2 ln r + sum_angled ln |sin theta|
//! ```
//!
//! A sibling's stored offset is added to its sibling's absolute torsion. Wrapping a
//! torsion is never needed: only its cosine and sine enter. Units: nm and radians.
//! Shapes: q (B, 3N - 6); positions (B, N, 3) in atom-index order; ln J (B,).

use candle_core::{Result, Tensor};

use crate::geometry::zmatrix::ZMatrix;

/// Column k of q as (B, 1).
fn column(q: &Tensor, k: usize) -> Result<Tensor> {
    q.narrow(1, k, 1)
}

/// Cross product of rows, (B, 3) x (B, 3).
fn cross(u: &Tensor, v: &Tensor) -> Result<Tensor> {
    let c = |t: &Tensor, i: usize| t.narrow(1, i, 1);
    let (u0, u1, u2) = (c(u, 0)?, c(u, 1)?, c(u, 2)?);
    let (v0, v1, v2) = (c(v, 0)?, c(v, 1)?, c(v, 2)?);
    Tensor::cat(
        &[
            ((&u1 * &v2)? - (&u2 * &v1)?)?,
            ((&u2 * &v0)? - (&u0 * &v2)?)?,
            ((&u0 * &v1)? - (&u1 * &v0)?)?,
        ],
        1,
    )
}

/// Rows scaled to unit length.
fn unit(t: &Tensor) -> Result<Tensor> {
    t.broadcast_div(&t.sqr()?.sum_keepdim(1)?.sqrt()?)
}

/// Atom positions (B, N, 3) from q (B, 3N - 6), in the standard frame.
pub fn positions(zmatrix: &ZMatrix, q: &Tensor) -> Result<Tensor> {
    let n = zmatrix.n_atoms();
    let (batch, dof) = q.dims2()?;
    if dof != zmatrix.n_dof() {
        candle_core::bail!("q has {dof} columns, the Z-matrix {}", zmatrix.n_dof());
    }
    let zero = q.zeros_like()?.narrow(1, 0, 1)?;
    let mut x: Vec<Option<Tensor>> = vec![None; n];
    let mut absolute: Vec<Option<Tensor>> = vec![None; zmatrix.entries().len()];
    let placed = |x: &[Option<Tensor>], a: usize| -> Result<Tensor> {
        x[a].clone()
            .ok_or_else(|| candle_core::Error::Msg(format!("atom {a} used before placed")))
    };
    for (p, entry) in zmatrix.entries().iter().enumerate() {
        let start = ZMatrix::dof_start(p);
        let position = match (entry.bond, entry.angle, entry.torsion) {
            (None, _, _) => Tensor::cat(&[&zero, &zero, &zero], 1)?,
            (Some(_), None, _) => Tensor::cat(&[&column(q, start)?, &zero, &zero], 1)?,
            (Some(j), Some(k), None) => {
                let (r, theta) = (column(q, start)?, column(q, start + 1)?);
                let (xj, xk) = (placed(&x, j)?, placed(&x, k)?);
                let u = unit(&(&xk - &xj)?)?;
                let along = u.broadcast_mul(&(&r * theta.cos()?)?)?;
                let up = Tensor::cat(&[&zero, &(&r * theta.sin()?)?, &zero], 1)?;
                ((xj + along)? + up)?
            }
            (Some(j), Some(k), Some(l)) => {
                let (r, theta) = (column(q, start)?, column(q, start + 1)?);
                let stored = column(q, start + 2)?;
                let phi = match entry.torsion_offset_of {
                    Some(s) => {
                        let sibling = absolute[s].clone().ok_or_else(|| {
                            candle_core::Error::Msg(format!("sibling entry {s} has no torsion"))
                        })?;
                        (stored + sibling)?
                    }
                    None => stored,
                };
                let (xl, xk, xj) = (placed(&x, l)?, placed(&x, k)?, placed(&x, j)?);
                let e = unit(&(&xj - &xk)?)?;
                let normal = unit(&cross(&(&xk - &xl)?, &e)?)?;
                let m = cross(&normal, &e)?;
                let (sin_t, cos_t) = (theta.sin()?, theta.cos()?);
                let radial = (&r * &sin_t)?;
                let d = ((e.broadcast_mul(&(&r * &cos_t)?.neg()?)?
                    + m.broadcast_mul(&(&radial * phi.cos()?)?)?)?
                    + normal.broadcast_mul(&(&radial * phi.sin()?)?)?)?;
                absolute[p] = Some(phi);
                (xj + d)?
            }
        };
        x[entry.atom] = Some(position);
    }
    let rows = x
        .into_iter()
        .enumerate()
        .map(|(a, t)| {
            t.ok_or_else(|| candle_core::Error::Msg(format!("atom {a} is never placed")))?
                .unsqueeze(1)
        })
        .collect::<Result<Vec<_>>>()?;
    let stacked = Tensor::cat(&rows, 1)?;
    debug_assert_eq!(stacked.dims(), &[batch, n, 3]);
    Ok(stacked)
}

/// ln J(q) (B,): 2 ln r over every atom placed with a bond, ln |sin theta| over every
/// atom placed with an angle.
pub fn log_jacobian(zmatrix: &ZMatrix, q: &Tensor) -> Result<Tensor> {
    let device = q.device();
    let mut bonds = Vec::new();
    let mut angles = Vec::new();
    for (p, entry) in zmatrix.entries().iter().enumerate() {
        let start = ZMatrix::dof_start(p) as u32;
        if entry.bond.is_some() {
            bonds.push(start);
        }
        if entry.angle.is_some() {
            angles.push(start + 1);
        }
    }
    let pick = |index: Vec<u32>| -> Result<Tensor> {
        let len = index.len();
        q.index_select(&Tensor::from_vec(index, len, device)?, 1)
    };
    let from_bonds = (pick(bonds)?.log()?.sum(1)? * 2.0)?;
    let from_angles = pick(angles)?.sin()?.abs()?.log()?.sum(1)?;
    from_bonds + from_angles
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// A branched molecule with a sibling torsion: 0-1-2-3 chain, 4 on 2 (sibling of 3),
    /// 5 on 3.
    fn branched() -> ZMatrix {
        let bonds = [[0, 1], [1, 2], [2, 3], [2, 4], [3, 5]];
        ZMatrix::from_bonds(6, &bonds, &[0, 1, 2], &[true; 6]).unwrap()
    }

    fn some_q(z: &ZMatrix) -> Vec<f64> {
        let x = [
            [0.01, 0.02, -0.03],
            [0.15, 0.01, 0.02],
            [0.2, 0.14, 0.05],
            [0.35, 0.16, 0.1],
            [0.16, 0.2, -0.08],
            [0.4, 0.29, 0.13],
        ];
        z.to_internal(&x)
    }

    #[test]
    fn positions_and_jacobian_match_the_host() {
        let z = branched();
        assert!(z.entries().iter().any(|e| e.torsion_offset_of.is_some()));
        let q = some_q(&z);
        let rows = [q.clone(), q.iter().map(|v| v * 1.01).collect::<Vec<_>>()];
        let flat: Vec<f64> = rows.concat();
        let t = Tensor::from_vec(flat, (2, z.n_dof()), &Device::Cpu).unwrap();
        let x = positions(&z, &t).unwrap().to_vec3::<f64>().unwrap();
        let log_j = log_jacobian(&z, &t).unwrap().to_vec1::<f64>().unwrap();
        for (row, q) in rows.iter().enumerate() {
            let host = z.to_cartesian(q);
            for (a, h) in host.iter().enumerate() {
                for k in 0..3 {
                    assert!((x[row][a][k] - h[k]).abs() < 1e-14, "atom {a}");
                }
            }
            assert!((log_j[row] - z.log_jacobian(q)).abs() < 1e-12);
        }
    }

    /// d/dq of L = sum_i c_i . x_i + ln J against central differences of the host's
    /// NeRF and Jacobian.
    #[test]
    fn gradients_match_finite_differences() {
        let z = branched();
        let q = some_q(&z);
        let d = q.len();
        let c: Vec<[f64; 3]> = (0..6)
            .map(|i| [1.0 + i as f64, -0.5 * i as f64, 0.3])
            .collect();
        let host = |q: &[f64]| -> f64 {
            let x = z.to_cartesian(q);
            let dot: f64 = x
                .iter()
                .zip(&c)
                .map(|(x, c)| x[0] * c[0] + x[1] * c[1] + x[2] * c[2])
                .sum();
            dot + z.log_jacobian(q)
        };
        let var = Var::from_vec(q.clone(), (1, d), &Device::Cpu).unwrap();
        let weights = Tensor::from_vec(c.concat(), (1, 6, 3), &Device::Cpu).unwrap();
        let x = positions(&z, var.as_tensor()).unwrap();
        let loss = ((x * weights).unwrap().sum_all().unwrap()
            + log_jacobian(&z, var.as_tensor())
                .unwrap()
                .sum_all()
                .unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let h = 1e-6;
        for k in 0..d {
            let (mut up, mut down) = (q.clone(), q.clone());
            up[k] += h;
            down[k] -= h;
            let fd = (host(&up) - host(&down)) / (2.0 * h);
            assert!(
                (fd - g[k]).abs() < 1e-6 * (1.0 + fd.abs()),
                "q[{k}]: fd {fd}, graph {}",
                g[k]
            );
        }
    }
}
