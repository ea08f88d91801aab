//! Ops whose every output row depends on every input row: batch normalization and minibatch
//! discrimination, each fused with a hand-derived backward (a composition would keep a dozen
//! B×F temporaries on the tape and lose the symmetry the backwards exploit).

use ndarray::{Axis, Zip};

use crate::math::{batch_moments, exp_neg};
use crate::{Matrix, Var};

/// Batch normalization in training mode (Ioffe & Szegedy 2015), per column `j` of the `B×F`
/// input `x`, with `γ` and `β` `1×F`:
/// `x̂ᵢⱼ = (xᵢⱼ − μⱼ)·sⱼ`, `sⱼ = 1/√(σ²ⱼ + ε)`, `yᵢⱼ = γⱼ·x̂ᵢⱼ + βⱼ`, where `μ` and `σ²` are the
/// batch's mean and biased variance ([`batch_moments`]).
///
/// Backward, with `ĝ = g·γ` (the gradient at `x̂`) and means over the batch:
/// `∂L/∂x = s·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, `∂L/∂γ = Σᵢ g·x̂`, `∂L/∂β = Σᵢ g`. (μ and σ² are
/// functions of every row, so each row's gradient has the two mean terms; they make the
/// gradient sum to zero over the batch and be orthogonal to `x̂`.)
///
/// Panics if the shapes do not fit or the batch has no rows.
#[track_caller]
pub fn batch_norm<'t>(x: Var<'t>, gamma: Var<'t>, beta: Var<'t>, eps: f32) -> Var<'t> {
    let (xv, gv, bv) = (x.value(), gamma.value(), beta.value());
    let features = xv.ncols();
    assert!(
        gv.dim() == (1, features) && bv.dim() == (1, features),
        "batch_norm: x is {:?}, γ {:?} and β {:?} (expected 1×{features})",
        xv.dim(),
        gv.dim(),
        bv.dim()
    );
    let (mean, var) = batch_moments(&xv);
    let inv_std = var.mapv(|v| 1.0 / (v + eps).sqrt());
    let x_hat = (&*xv - &mean) * &inv_std;
    let y = &x_hat * &*gv + &*bv;
    x.tape()
        .push_masked("batch_norm", y, &[x, gamma, beta], move |g, need| {
            let dx = need[0].then(|| {
                let n = g.nrows() as f32;
                let g_hat = g * &*gv;
                let mean_g = g_hat.sum_axis(Axis(0)).insert_axis(Axis(0)) / n;
                let mean_gx = (&g_hat * &x_hat).sum_axis(Axis(0)).insert_axis(Axis(0)) / n;
                let mut dx = g_hat;
                Zip::from(dx.rows_mut())
                    .and(x_hat.rows())
                    .for_each(|mut d, xh| {
                        Zip::from(&mut d)
                            .and(xh)
                            .and(mean_g.row(0))
                            .and(mean_gx.row(0))
                            .and(inv_std.row(0))
                            .for_each(|d, &xh, &mg, &mgx, &s| *d = s * (*d - mg - xh * mgx));
                    });
                dx
            });
            let dgamma = need[1].then(|| (g * &x_hat).sum_axis(Axis(0)).insert_axis(Axis(0)));
            let dbeta = need[2].then(|| g.sum_axis(Axis(0)).insert_axis(Axis(0)));
            vec![dx, dgamma, dbeta]
        })
}

/// Minibatch discrimination's features (Salimans et al. 2016, §3.2): with the rows of `m`
/// (`B × K·C`) read as `K` kernels of `C` values each, `M_{i,k} ∈ ℝ^C`,
/// `oᵢₖ = Σⱼ exp(−‖M_{i,k} − M_{j,k}‖₁)` over every row `j` of the batch, `i` itself included
/// (a constant 1, as in the paper's code). The output is `B × K`.
///
/// Backward: with `eᵢⱼₖ = exp(−‖M_{i,k} − M_{j,k}‖₁)` (symmetric in i, j), the output of row
/// `i` depends on `M_i` through every `j`, and so does that of every row `j` through the same
/// term: `∂L/∂M_{i,k,c} = −Σⱼ (gᵢₖ + gⱼₖ)·eᵢⱼₖ·sign(M_{i,k,c} − M_{j,k,c})`. Each unordered
/// pair is visited once, forward and backward, and each row is regrouped into `C` planes of
/// the `K` kernels, so that the inner loops run over kernels, contiguously.
///
/// Panics if the width of `m` is not `kernels·C`.
#[track_caller]
pub fn minibatch_discrimination(m: Var<'_>, kernels: usize) -> Var<'_> {
    let mv = m.value();
    let (rows, width) = mv.dim();
    assert!(
        kernels > 0 && width % kernels == 0 && width > 0,
        "minibatch_discrimination: {width} columns are not {kernels} kernels"
    );
    let dim = width / kernels;
    // Each row as `dim` planes of `kernels` values, so that the loops over the kernels are
    // contiguous (and vectorise): planes[i·width + c·K + k] = m[i, k·dim + c].
    let planes = kernel_planes(&mv, kernels);
    let row = |i: usize| &planes[i * width..][..width];
    // e[(i·B + j)·K + k] for i < j.
    let mut e = vec![0.0f32; rows * rows * kernels];
    let mut y = vec![1.0f32; rows * kernels];
    let mut l1 = vec![0.0f32; kernels];
    for i in 0..rows {
        for j in i + 1..rows {
            l1.fill(0.0);
            for (a, b) in row(i)
                .chunks_exact(kernels)
                .zip(row(j).chunks_exact(kernels))
            {
                for ((l, a), b) in l1.iter_mut().zip(a).zip(b) {
                    *l += (a - b).abs();
                }
            }
            let pair = &mut e[(i * rows + j) * kernels..][..kernels];
            for (ek, &l) in pair.iter_mut().zip(&l1) {
                *ek = exp_neg(l);
            }
            let (head, tail) = y.split_at_mut(j * kernels);
            let (yi, yj) = (&mut head[i * kernels..][..kernels], &mut tail[..kernels]);
            for ((yi, yj), &ek) in yi.iter_mut().zip(yj.iter_mut()).zip(pair.iter()) {
                *yi += ek;
                *yj += ek;
            }
        }
    }
    let y = Matrix::from_shape_vec((rows, kernels), y).expect("rows × kernels");
    m.tape()
        .push("minibatch_discrimination", y, &[m], move |g| {
            let g = g.as_standard_layout();
            let g = g.as_slice().expect("standard layout");
            let row = |i: usize| &planes[i * width..][..width];
            let mut d = vec![0.0f32; rows * width];
            let mut w = vec![0.0f32; kernels];
            for i in 0..rows {
                for j in i + 1..rows {
                    let pair = &e[(i * rows + j) * kernels..][..kernels];
                    let (gi, gj) = (&g[i * kernels..][..kernels], &g[j * kernels..][..kernels]);
                    for (((w, &ek), &gi), &gj) in w.iter_mut().zip(pair).zip(gi).zip(gj) {
                        *w = (gi + gj) * ek;
                    }
                    let (head, tail) = d.split_at_mut(j * width);
                    let (di, dj) = (&mut head[i * width..][..width], &mut tail[..width]);
                    let planes_i = row(i)
                        .chunks_exact(kernels)
                        .zip(row(j).chunks_exact(kernels));
                    let grads = di
                        .chunks_exact_mut(kernels)
                        .zip(dj.chunks_exact_mut(kernels));
                    for ((a, b), (di, dj)) in planes_i.zip(grads) {
                        for ((((di, dj), a), b), &w) in
                            di.iter_mut().zip(dj.iter_mut()).zip(a).zip(b).zip(&w)
                        {
                            let s = w * sign(a - b);
                            *di -= s;
                            *dj += s;
                        }
                    }
                }
            }
            // Back from planes to the input's layout.
            let mut dm = Matrix::zeros((rows, width));
            for (i, mut out) in dm.rows_mut().into_iter().enumerate() {
                for (c, plane) in d[i * width..][..width].chunks_exact(kernels).enumerate() {
                    for (k, &v) in plane.iter().enumerate() {
                        out[k * dim + c] = v;
                    }
                }
            }
            vec![dm]
        })
}

/// The rows of `m` (`B × K·C`) with each row's `K` kernels of `C` values regrouped into `C`
/// planes of `K` values, row-major.
fn kernel_planes(m: &Matrix, kernels: usize) -> Vec<f32> {
    let (rows, width) = m.dim();
    let dim = width / kernels;
    let mut planes = vec![0.0f32; rows * width];
    for (i, row) in m.rows().into_iter().enumerate() {
        let out = &mut planes[i * width..][..width];
        for (index, &v) in row.iter().enumerate() {
            let (k, c) = (index / dim, index % dim);
            out[c * kernels + k] = v;
        }
    }
    planes
}

/// The sign of `x`, 0 at 0 (the subgradient of `|x|` that a tie between two rows gets),
/// without branches.
fn sign(x: f32) -> f32 {
    f32::from(u8::from(x > 0.0)) - f32::from(u8::from(x < 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;
    use crate::math::batch_moments;
    use ndarray::array;

    #[test]
    fn moments_are_the_mean_and_the_biased_variance() {
        let (mean, var) = batch_moments(&array![[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]]);
        assert_eq!(mean, array![[3.0, 10.0]]);
        // ((1−3)² + 0 + (5−3)²)/3 = 8/3.
        assert_eq!(var, array![[8.0 / 3.0, 0.0]]);
    }

    #[test]
    fn batch_norm_gives_each_column_the_mean_beta_and_the_deviation_gamma() {
        let tape = Tape::new();
        let x = tape.constant(array![[1.0f32, -2.0], [3.0, 0.0], [5.0, 8.0], [7.0, 2.0]]);
        let gamma = tape.constant(array![[2.0f32, 0.5]]);
        let beta = tape.constant(array![[-1.0f32, 3.0]]);
        let y = batch_norm(x, gamma, beta, 0.0).value();
        let (mean, var) = batch_moments(&y);
        for j in 0..2 {
            let (g, b) = ([2.0, 0.5][j], [-1.0, 3.0][j]);
            assert!((mean[[0, j]] - b).abs() < 1e-6, "{mean}");
            assert!((var[[0, j]].sqrt() - g).abs() < 1e-5, "{var}");
        }
        // Column 0: μ 4, σ² 5, so the first row is γ·(1 − 4)/√5 + β.
        let expected = 2.0 * -3.0 / 5.0f32.sqrt() - 1.0;
        assert!((y[[0, 0]] - expected).abs() < 1e-6);
    }

    #[test]
    fn minibatch_features_count_the_rows_near_each_row() {
        let tape = Tape::new();
        // Two kernels of two dims; rows 0 and 1 agree on kernel 0, row 2 is far on both.
        let m = tape.constant(array![
            [0.0f32, 0.0, 1.0, 1.0],
            [0.0, 0.0, 1.5, 1.0],
            [50.0, 50.0, -40.0, 9.0]
        ]);
        let o = minibatch_discrimination(m, 2).value();
        let near = (-0.5f32).exp();
        let expected = array![[2.0, 1.0 + near], [2.0, 1.0 + near], [1.0, 1.0]];
        for (a, b) in o.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{o} vs {expected}");
        }
    }
}
