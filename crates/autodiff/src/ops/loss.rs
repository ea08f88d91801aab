//! The fused, numerically stable pieces of a VAE's objective, each with a hand-derived backward:
//! Bernoulli and Gaussian likelihoods, the Gaussian KL against N(0, I) and against a learned
//! diagonal Gaussian, reparameterization.
//!
//! Per-example losses are m×1 columns (summed over features), to be averaged by the caller.

use std::f32::consts::PI;
use std::rc::Rc;

use ndarray::{Axis, Zip};

use super::sum_to;
use crate::math::{softplus_and_logistic, sum_lanes};
use crate::parallel::for_each_block;
use crate::{Matrix, Var};

/// From this many elements on, `bce_with_logits` shares its rows over the pool: its exp and log
/// cost ≈ 4 ns an element on one core, so 2¹⁵ of them (≈ 130 µs) pay for waking a second
/// thread many times over.
pub(crate) const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

#[track_caller]
fn same_shape(op: &str, a: (usize, usize), b: (usize, usize)) {
    assert!(a == b, "{op}: shapes {a:?} and {b:?} differ");
}

/// Row sums as an m×1 column.
fn row_sums(x: Matrix) -> Matrix {
    x.sum_axis(Axis(1)).insert_axis(Axis(1))
}

/// Binary cross-entropy of targets `x ∈ [0, 1]` under Bernoulli logits `l`, summed per example:
/// `yᵢ = Σⱼ softplus(lᵢⱼ) - lᵢⱼ·xᵢⱼ` (= `-Σ x ln σ(l) + (1-x) ln(1-σ(l))`, without ever taking
/// the log of `σ(l)`, so finite for any finite logit); `∂yᵢ/∂lᵢⱼ = σ(lᵢⱼ) - xᵢⱼ`,
/// `∂yᵢ/∂xᵢⱼ = -lᵢⱼ`. One pass computes the loss and saves `σ(l)` for the backward.
#[track_caller]
pub fn bce_with_logits<'t>(logits: Var<'t>, targets: Var<'t>) -> Var<'t> {
    let (l, x) = (logits.value(), targets.value());
    same_shape("bce_with_logits", l.dim(), x.dim());
    let (lc, xc) = (l.as_standard_layout(), x.as_standard_layout());
    let (l_flat, x_flat) = (
        lc.as_slice().expect("standard"),
        xc.as_slice().expect("standard"),
    );
    let cols = l.ncols().max(1);
    let mut sigma = Matrix::zeros(l.dim());
    let mut y = Matrix::zeros((l.nrows(), 1));
    // Row blocks shared over the pool (a batch of 128 MNIST images is 100 k exp/log pairs).
    let rows_per_block = if l.len() < PARALLEL_MIN_ELEMENTS {
        l.nrows().max(1)
    } else {
        l.nrows().div_ceil(rayon::current_num_threads())
    };
    let blocks: Vec<_> = sigma
        .as_slice_mut()
        .expect("fresh")
        .chunks_mut(rows_per_block * cols)
        .zip(y.as_slice_mut().expect("fresh").chunks_mut(rows_per_block))
        .enumerate()
        .collect();
    for_each_block(blocks, |(block, (sigma, y))| {
        let first = block * rows_per_block * cols;
        bce_block(&l_flat[first..], &x_flat[first..], sigma, y, cols);
    });
    logits
        .tape()
        .push_masked("bce_with_logits", y, &[logits, targets], move |g, need| {
            vec![
                need[0].then(|| {
                    Zip::from(&sigma)
                        .and(&*x)
                        .and_broadcast(g)
                        .map_collect(|&s, &x, &g| g * (s - x))
                }),
                need[1].then(|| Zip::from(&*l).and_broadcast(g).map_collect(|&l, &g| -g * l)),
            ]
        })
}

crate::widest! {
    /// One block of rows of [`bce_with_logits`]: `sigma` and `y` are the block's `σ(l)` and its
    /// rows' losses, `l` and `x` start at the block's first element.
    fn bce_block(l: &[f32], x: &[f32], sigma: &mut [f32], y: &mut [f32], cols: usize) {
        let mut terms = vec![0.0f32; cols];
        for (i, (sigma, y)) in sigma.chunks_exact_mut(cols).zip(y).enumerate() {
            let (l, x) = (&l[i * cols..][..cols], &x[i * cols..][..cols]);
            // Elementwise with no reduction in the loop, so that it vectorises.
            for (((s, t), &l), &x) in sigma.iter_mut().zip(&mut terms).zip(l).zip(x) {
                let (softplus, logistic) = softplus_and_logistic(l);
                *s = logistic;
                *t = softplus - l * x;
            }
            *y = sum_lanes(&terms);
        }
    }
}

/// `KL(N(μ, e^{log σ²}) ‖ N(0, I))` per example: `yᵢ = ½ Σⱼ (μ² + e^{log σ²} - 1 - log σ²)`;
/// `∂yᵢ/∂μᵢⱼ = μᵢⱼ`, `∂yᵢ/∂log σ²ᵢⱼ = ½(e^{log σ²ᵢⱼ} - 1)`.
#[track_caller]
pub fn gaussian_kl<'t>(mu: Var<'t>, log_var: Var<'t>) -> Var<'t> {
    let (m, lv) = (mu.value(), log_var.value());
    same_shape("gaussian_kl", m.dim(), lv.dim());
    let terms = Zip::from(&*m)
        .and(&*lv)
        .map_collect(|&m, &lv| 0.5 * (m * m + lv.exp() - 1.0 - lv));
    mu.tape()
        .push("gaussian_kl", row_sums(terms), &[mu, log_var], move |g| {
            vec![
                Zip::from(&*m).and_broadcast(g).map_collect(|&m, &g| g * m),
                Zip::from(&*lv)
                    .and_broadcast(g)
                    .map_collect(|&lv, &g| g * 0.5 * (lv.exp() - 1.0)),
            ]
        })
}

/// `KL(N(μ_q, e^{log σ²_q}) ‖ N(μ_p, e^{log σ²_p}))` per example, for a learned prior:
/// `yᵢ = ½ Σⱼ (log σ²_p - log σ²_q + (e^{log σ²_q} + (μ_q - μ_p)²)·e^{-log σ²_p} - 1)`.
/// With `r = e^{log σ²_q - log σ²_p}` (one exponential, so no overflow for equal large
/// variances) and `d = μ_q - μ_p`: `∂y/∂μ_q = d·e^{-log σ²_p} = -∂y/∂μ_p`,
/// `∂y/∂log σ²_q = ½(r - 1)`, `∂y/∂log σ²_p = ½(1 - r - d²·e^{-log σ²_p})`.
#[track_caller]
pub fn gaussian_kl_between<'t>(
    mu_q: Var<'t>,
    log_var_q: Var<'t>,
    mu_p: Var<'t>,
    log_var_p: Var<'t>,
) -> Var<'t> {
    let (mq, lq, mp, lp) = (
        mu_q.value(),
        log_var_q.value(),
        mu_p.value(),
        log_var_p.value(),
    );
    for (name, other) in [("log σ²_q", &lq), ("μ_p", &mp), ("log σ²_p", &lp)] {
        same_shape(
            &format!("gaussian_kl_between (μ_q and {name})"),
            mq.dim(),
            other.dim(),
        );
    }
    // Per element, saved for the backward: d, d·e^{-log σ²_p} and r.
    let d = &*mq - &*mp;
    let scaled_d = Zip::from(&d)
        .and(&*lp)
        .map_collect(|&d, &lp| d * (-lp).exp());
    let ratio = Zip::from(&*lq)
        .and(&*lp)
        .map_collect(|&lq, &lp| (lq - lp).exp());
    let terms = Zip::from(&d)
        .and(&scaled_d)
        .and(&ratio)
        .and(&*lq)
        .and(&*lp)
        .map_collect(|&d, &sd, &r, &lq, &lp| 0.5 * (lp - lq + r + d * sd - 1.0));
    let inputs = [mu_q, log_var_q, mu_p, log_var_p];
    mu_q.tape()
        .push("gaussian_kl_between", row_sums(terms), &inputs, move |g| {
            let d_mu_q = Zip::from(&scaled_d)
                .and_broadcast(g)
                .map_collect(|&sd, &g| g * sd);
            let d_lv_q = Zip::from(&ratio)
                .and_broadcast(g)
                .map_collect(|&r, &g| g * 0.5 * (r - 1.0));
            let d_lv_p = Zip::from(&ratio)
                .and(&scaled_d)
                .and(&d)
                .and_broadcast(g)
                .map_collect(|&r, &sd, &d, &g| g * 0.5 * (1.0 - r - d * sd));
            let d_mu_p = -&d_mu_q;
            vec![d_mu_q, d_lv_q, d_mu_p, d_lv_p]
        })
}

/// `z = μ + e^{½ log σ²} ⊙ ε` with the noise `ε` supplied by the caller (usually N(0, I));
/// `∂z/∂μ = 1`, `∂z/∂log σ² = ½ e^{½ log σ²} ⊙ ε = ½ (z - μ)`.
#[track_caller]
pub fn reparameterize<'t>(mu: Var<'t>, log_var: Var<'t>, eps: &Matrix) -> Var<'t> {
    let (m, lv) = (mu.value(), log_var.value());
    same_shape("reparameterize", m.dim(), lv.dim());
    same_shape("reparameterize (noise)", m.dim(), eps.dim());
    let sigma_eps = Zip::from(&*lv)
        .and(eps)
        .map_collect(|&lv, &e| (0.5 * lv).exp() * e);
    let z = &*m + &sigma_eps;
    mu.tape()
        .push("reparameterize", z, &[mu, log_var], move |g| {
            vec![
                g.clone(),
                Zip::from(g)
                    .and(&sigma_eps)
                    .map_collect(|&g, &s| 0.5 * g * s),
            ]
        })
}

/// Negative log-likelihood of pixels `x ∈ [−1, 1]`, quantized to `bins` levels
/// `−1 + 2k/(bins − 1)`, under a discretized logistic with location `mean` and log-scale
/// `log_scale` (PixelCNN++'s, Salimans et al. 2017, one component), summed per example:
/// `yᵢ = −Σⱼ ln P(xᵢⱼ)`, with `h = 1/(bins − 1)`, `a = (x − μ + h)/s`, `b = (x − μ − h)/s`:
///
/// - the lowest level, `P = σ(a)` (the mass below its upper edge);
/// - the highest, `P = 1 − σ(b)`;
/// - the others, `P = σ(a) − σ(b)`, computed on the side where the two logistics are not both
///   near 1, and in f64; where it is below 1e-5 (a bin far in a tail or a scale far below the
///   bin), the density at the bin's centre times its width, `ln P ≈ m − ln s − 2·softplus(m) +
///   ln 2h` with `m = (x − μ)/s`, as PixelCNN++ does.
///
/// Targets are data, not differentiated. With `ℓ = ln P`: `∂ℓ/∂a = σ(−a)` (lowest),
/// `∂ℓ/∂b = −σ(b)` (highest), `∂ℓ/∂a = σ(a)σ(−a)/P` and `∂ℓ/∂b = −σ(b)σ(−b)/P` (others);
/// `∂a/∂μ = ∂b/∂μ = −1/s`, `∂a/∂ln s = −a`, `∂b/∂ln s = −b`; on the centre's branch
/// `∂ℓ/∂μ = −(1 − 2σ(m))/s`, `∂ℓ/∂ln s = −(1 − 2σ(m))·m − 1`.
///
/// Panics if the shapes differ or `bins < 2`.
#[track_caller]
pub fn discretized_logistic_nll<'t>(
    mean: Var<'t>,
    log_scale: Var<'t>,
    x: &Matrix,
    bins: usize,
) -> Var<'t> {
    let (mu, ls) = (mean.value(), log_scale.value());
    same_shape("discretized_logistic_nll", mu.dim(), ls.dim());
    same_shape("discretized_logistic_nll (targets)", mu.dim(), x.dim());
    assert!(
        bins >= 2,
        "discretized_logistic_nll: needs at least 2 bins, got {bins}"
    );
    let h = 1.0 / (bins - 1) as f64;
    let shape = mu.dim();
    // Per element: -ln P and its derivatives with respect to μ and ln s.
    let mut terms = Matrix::zeros(shape);
    let mut d_mu = Matrix::zeros(shape);
    let mut d_ls = Matrix::zeros(shape);
    Zip::from(&mut terms)
        .and(&mut d_mu)
        .and(&mut d_ls)
        .and(&*mu)
        .and(&*ls)
        .and(x)
        .for_each(|t, dm, dl, &mu, &ls, &x| {
            let (nll, g_mu, g_ls) =
                discretized_logistic_term(f64::from(x), f64::from(mu), f64::from(ls), h);
            (*t, *dm, *dl) = (nll as f32, g_mu as f32, g_ls as f32);
        });
    mean.tape().push(
        "discretized_logistic_nll",
        row_sums(terms),
        &[mean, log_scale],
        move |g| {
            vec![
                Zip::from(&d_mu)
                    .and_broadcast(g)
                    .map_collect(|&d, &g| g * d),
                Zip::from(&d_ls)
                    .and_broadcast(g)
                    .map_collect(|&d, &g| g * d),
            ]
        },
    )
}

/// `σ(t)` in f64.
fn logistic64(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + eᵗ)` in f64.
fn softplus64(t: f64) -> f64 {
    t.max(0.0) + (-t.abs()).exp().ln_1p()
}

/// One pixel of [`discretized_logistic_nll`]: `(−ln P, ∂(−ln P)/∂μ, ∂(−ln P)/∂ln s)`.
fn discretized_logistic_term(x: f64, mu: f64, log_scale: f64, h: f64) -> (f64, f64, f64) {
    let inv = (-log_scale).exp();
    let c = x - mu;
    let (a, b) = (inv * (c + h), inv * (c - h));
    // (ln P, ∂ln P/∂a, ∂ln P/∂b), then through a and b to μ and ln s.
    let through = |lp: f64, da: f64, db: f64| (-lp, (da + db) * inv, da * a + db * b);
    if x < -1.0 + h {
        through(-softplus64(-a), logistic64(-a), 0.0)
    } else if x > 1.0 - h {
        through(-softplus64(b), 0.0, -logistic64(b))
    } else {
        let (sa, sb) = (logistic64(a), logistic64(b));
        let (sa_neg, sb_neg) = (logistic64(-a), logistic64(-b));
        // σ(a) − σ(b) = σ(−b) − σ(−a): subtract the pair that is not both near 1.
        let p = if a + b > 0.0 {
            sb_neg - sa_neg
        } else {
            sa - sb
        };
        if p > 1e-5 {
            through(p.ln(), sa * sa_neg / p, -sb * sb_neg / p)
        } else {
            let m = inv * c;
            let lp = m - log_scale - 2.0 * softplus64(m) + (2.0 * h).ln();
            let dm = 1.0 - 2.0 * logistic64(m);
            (-lp, dm * inv, dm * m + 1.0)
        }
    }
}

/// Mean squared error per example: `yᵢ = (1/n) Σⱼ (pᵢⱼ - tᵢⱼ)²`;
/// `∂yᵢ/∂pᵢⱼ = 2(pᵢⱼ - tᵢⱼ)/n = -∂yᵢ/∂tᵢⱼ`.
#[track_caller]
pub fn mse<'t>(pred: Var<'t>, target: Var<'t>) -> Var<'t> {
    let (p, t) = (pred.value(), target.value());
    same_shape("mse", p.dim(), t.dim());
    let n = p.ncols() as f32;
    let diff = Rc::new(&*p - &*t);
    let y = row_sums(diff.mapv(|d| d * d)) / n;
    pred.tape()
        .push_masked("mse", y, &[pred, target], move |g, need| {
            let gp = Zip::from(&*diff)
                .and_broadcast(g)
                .map_collect(|&d, &g| 2.0 * g * d / n);
            let gt = need[1].then(|| -&gp);
            vec![need[0].then_some(gp), gt]
        })
}

/// Negative log-likelihood of `x` under `N(mean, e^{log σ²})`, summed per example:
/// `yᵢ = ½ Σⱼ (ln 2π + log σ²ᵢⱼ + (xᵢⱼ - meanᵢⱼ)² e^{-log σ²ᵢⱼ})`. `log_var` may be m×n or
/// broadcast (1×n per feature, 1×1 shared, e.g. a fixed decoder variance).
/// With `r = (x - mean)·e^{-log σ²}`: `∂y/∂mean = -r`, `∂y/∂x = r`,
/// `∂y/∂log σ² = ½ (1 - (x - mean)² e^{-log σ²})`.
#[track_caller]
pub fn gaussian_nll<'t>(mean: Var<'t>, log_var: Var<'t>, x: Var<'t>) -> Var<'t> {
    let (mu, lv, xv) = (mean.value(), log_var.value(), x.value());
    same_shape("gaussian_nll", mu.dim(), xv.dim());
    let shape = mu.dim();
    let lv_shape = lv.dim();
    let lv_full = lv.broadcast(shape).unwrap_or_else(|| {
        panic!("gaussian_nll: log_var shape {lv_shape:?} does not broadcast to {shape:?}")
    });
    let ln_2pi = (2.0 * PI).ln();
    let diff = Rc::new(&*xv - &*mu);
    let terms = Zip::from(&*diff)
        .and(lv_full)
        .map_collect(|&d, &lv| 0.5 * (ln_2pi + lv + d * d * (-lv).exp()));
    mean.tape().push_masked(
        "gaussian_nll",
        row_sums(terms),
        &[mean, log_var, x],
        move |g, need| {
            let lv_full = lv.broadcast(shape).expect("checked in forward");
            let r = Zip::from(&*diff)
                .and(lv_full)
                .and_broadcast(g)
                .map_collect(|&d, &lv, &g| g * d * (-lv).exp());
            let g_lv = need[1].then(|| {
                let full = Zip::from(&*diff)
                    .and(lv_full)
                    .and_broadcast(g)
                    .map_collect(|&d, &lv, &g| 0.5 * g * (1.0 - d * d * (-lv).exp()));
                sum_to(full, lv_shape)
            });
            vec![need[0].then(|| -&r), g_lv, need[2].then_some(r)]
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GradcheckConfig, Tape, gradcheck};
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// A matrix with the given values repeated to fill `shape`.
    fn filled(shape: (usize, usize), values: &[f32]) -> Matrix {
        Matrix::from_shape_fn(shape, |(i, j)| values[(i * shape.1 + j) % values.len()])
    }

    #[test]
    fn bce_matches_the_naive_formula_where_that_is_finite() {
        let tape = Tape::new();
        let l = array![[-3.0f32, -0.5, 0.0, 0.7, 4.0], [1.0, -1.0, 2.0, -2.0, 0.1]];
        let x = array![[0.0f32, 1.0, 0.3, 1.0, 0.0], [1.0, 1.0, 0.0, 0.5, 0.9]];
        let y = bce_with_logits(tape.constant(l.clone()), tape.constant(x.clone())).value();
        for i in 0..2 {
            let naive: f64 = (0..5)
                .map(|j| {
                    let (l, x) = (f64::from(l[[i, j]]), f64::from(x[[i, j]]));
                    let p = 1.0 / (1.0 + (-l).exp());
                    -(x * p.ln() + (1.0 - x) * (1.0 - p).ln())
                })
                .sum();
            assert!(
                (f64::from(y[[i, 0]]) - naive).abs() < 1e-5,
                "{} vs {naive}",
                y[[i, 0]]
            );
        }
    }

    /// 129 rows of 300 (over `PARALLEL_MIN_ELEMENTS`, an odd row count so that the last
    /// block is short): every row's loss and every σ equal the single-block computation's.
    #[test]
    fn bce_row_blocks_on_a_pool_match_one_block() {
        let l = Matrix::from_shape_fn((129, 300), |(i, j)| {
            ((i * 300 + j) as f32 * 0.013).sin() * 6.0
        });
        let x = Matrix::from_shape_fn((129, 300), |(i, j)| ((i + 7 * j) % 5) as f32 / 4.0);
        assert!(l.len() >= PARALLEL_MIN_ELEMENTS);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let tape = Tape::new();
                let lv = tape.leaf(l.clone());
                let y = bce_with_logits(lv, tape.constant(x.clone()));
                let grads = tape.backward(y.sum());
                ((*y.value()).clone(), grads.get(lv).unwrap().clone())
            })
        };
        let (y1, g1) = run(1);
        for threads in [2, 3] {
            assert_eq!(run(threads), (y1.clone(), g1.clone()), "{threads} threads");
        }
        // And the rows themselves: the first and the last against the naive sum.
        for i in [0, 128] {
            let naive: f64 = (0..300)
                .map(|j| {
                    let (l, x) = (f64::from(l[[i, j]]), f64::from(x[[i, j]]));
                    (1.0 + l.exp()).ln() - l * x
                })
                .sum();
            assert!(
                (f64::from(y1[[i, 0]]) - naive).abs() < 1e-4 * naive.abs(),
                "row {i}"
            );
        }
    }

    #[test]
    fn bce_is_finite_for_huge_logits() {
        // softplus(1e4) - 1e4·0 = 1e4; softplus(-1e4) - (-1e4)·1 = 1e4; the matched ones are 0.
        let tape = Tape::new();
        let l = tape.leaf(array![[1e4f32, -1e4, 1e4, -1e4]]);
        let x = tape.constant(array![[0.0f32, 1.0, 1.0, 0.0]]);
        let y = bce_with_logits(l, x);
        assert_eq!(y.item(), 2e4);
        let g = tape.backward(y.sum()).wrt(l);
        // σ(l) - x: 1 - 0, 0 - 1, 1 - 1, 0 - 0.
        assert_eq!(g, array![[1.0f32, -1.0, 0.0, 0.0]]);
    }

    #[test]
    fn bce_gradients_at_ordinary_and_extreme_logits() {
        for logits in [&[-2.0f32, -0.3, 0.4, 1.5][..], &[-30.0, -12.0, 12.0, 30.0]] {
            let inputs = [
                filled((3, 4), logits),
                filled((3, 4), &[0.0, 1.0, 0.25, 0.8, 1.0]),
            ];
            gradcheck(
                |v| bce_with_logits(v[0], v[1]),
                &inputs,
                &GradcheckConfig::default(),
            )
            .unwrap_or_else(|e| panic!("logits {logits:?}: {e}"));
        }
    }

    #[test]
    fn kl_matches_closed_forms() {
        let tape = Tape::new();
        // KL(N(0, 1) ‖ N(0, 1)) = 0.
        // KL(N(1, 1) ‖ N(0, 1)) = ½·1² = 0.5 per dimension.
        // KL(N(0, e²) ‖ N(0, 1)) = ½(e² - 1 - 2) = ½(7.389056 - 3) = 2.194528.
        let mu = tape.leaf(array![[0.0f32, 0.0], [1.0, 1.0], [0.0, 0.0]]);
        let log_var = tape.leaf(array![[0.0f32, 0.0], [0.0, 0.0], [2.0, 2.0]]);
        let kl = gaussian_kl(mu, log_var).value();
        let expected = [0.0f32, 1.0, 2.0 * 0.5 * (2.0f32.exp() - 3.0)];
        for (i, e) in expected.iter().enumerate() {
            assert!(
                (kl[[i, 0]] - e).abs() < 1e-5,
                "row {i}: {} vs {e}",
                kl[[i, 0]]
            );
        }
    }

    #[test]
    fn kl_between_matches_closed_forms_and_reduces_to_the_standard_prior() {
        let tape = Tape::new();
        // KL(N(1, 1) ‖ N(1, 1)) = 0.
        // KL(N(0, 1) ‖ N(2, 4)) = ½(ln 4 - 0 + (1 + 4)/4 - 1) = ½(1.386294 + 0.25) = 0.818147.
        // KL(N(3, e) ‖ N(1, e)) = ½(1 - 1 + (e + 4)/e - 1) = 2/e = 0.735759.
        let mu_q = tape.leaf(array![[1.0f32], [0.0], [3.0]]);
        let lv_q = tape.leaf(array![[0.0f32], [0.0], [1.0]]);
        let mu_p = tape.leaf(array![[1.0f32], [2.0], [1.0]]);
        let lv_p = tape.leaf(array![[0.0f32], [4.0f32.ln()], [1.0]]);
        let kl = gaussian_kl_between(mu_q, lv_q, mu_p, lv_p).value();
        for (i, e) in [0.0f32, 0.818_147, 0.735_759].iter().enumerate() {
            assert!((kl[[i, 0]] - e).abs() < 1e-5, "row {i}: {}", kl[[i, 0]]);
        }
        // Against N(0, I) it is gaussian_kl.
        let mu = filled((2, 3), &[0.3, -1.2, 2.0, 0.0, -0.4]);
        let lv = filled((2, 3), &[-2.0, 0.5, 1.5]);
        let (mu, lv) = (tape.leaf(mu), tape.leaf(lv));
        let zeros = tape.constant(Matrix::zeros((2, 3)));
        let general = gaussian_kl_between(mu, lv, zeros, zeros).value();
        let standard = gaussian_kl(mu, lv).value();
        for (a, b) in general.iter().zip(standard.iter()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn kl_between_gradients_across_log_var_from_minus_10_to_10() {
        // Both variances swept together (a prior as wide as the posterior) and apart (the
        // posterior's log σ² swept against a prior at log σ² = ±1).
        across_log_var(|mu, log_var| {
            let at = log_var[[0, 0]];
            let mu_p = filled((2, 3), &[-0.5, 0.8, 0.1]);
            for log_var_p in [
                log_var.mapv(|v| v - 0.5),
                Matrix::from_elem((2, 3), 1.0),
                Matrix::from_elem((2, 3), -1.0),
            ] {
                gradcheck(
                    |v| gaussian_kl_between(v[0], v[1], v[2], v[3]),
                    &[mu.clone(), log_var.clone(), mu_p.clone(), log_var_p],
                    &GradcheckConfig::default(),
                )
                .unwrap_or_else(|e| panic!("log σ²_q = {at}: {e}"));
            }
        });
    }

    /// Every integer log σ² from -10 to 10, each in a gradcheck of its own (see
    /// [`GradcheckConfig`] on why an output of order e¹⁰ must not share a call with small ones).
    fn across_log_var(f: impl Fn(Matrix, Matrix)) {
        for log_var in -10..=10 {
            f(
                filled((2, 3), &[0.3, -1.2, 2.0, 0.0, -0.4]),
                filled((2, 3), &[log_var as f32, log_var as f32 + 0.25]),
            );
        }
    }

    #[test]
    fn kl_gradients_across_log_var_from_minus_10_to_10() {
        across_log_var(|mu, log_var| {
            let at = log_var[[0, 0]];
            gradcheck(
                |v| gaussian_kl(v[0], v[1]),
                &[mu, log_var],
                &GradcheckConfig::default(),
            )
            .unwrap_or_else(|e| panic!("log σ² = {at}: {e}"));
        });
    }

    #[test]
    fn reparameterize_matches_its_definition_and_gradients() {
        let tape = Tape::new();
        let (mu, log_var) = (array![[1.0f32, -2.0]], array![[0.0f32, 2.0f32.ln() * 2.0]]);
        let eps = array![[0.5f32, -1.0]];
        // z = μ + σ·ε with σ = e^{½ log σ²}: 1 + 1·0.5 = 1.5; -2 + 2·(-1) = -4.
        let z = reparameterize(tape.leaf(mu), tape.leaf(log_var), &eps).value();
        assert!(
            (z[[0, 0]] - 1.5).abs() < 1e-6 && (z[[0, 1]] + 4.0).abs() < 1e-5,
            "{z}"
        );

        let eps = filled((2, 3), &[0.7, -1.1, 0.2, 1.9, -0.5]);
        across_log_var(|mu, log_var| {
            let at = log_var[[0, 0]];
            let inputs = [mu, log_var];
            gradcheck(
                |v| reparameterize(v[0], v[1], &eps),
                &inputs,
                &GradcheckConfig::default(),
            )
            .unwrap_or_else(|e| panic!("log σ² = {at}: {e}"));
        });
    }

    #[test]
    fn reparameterized_samples_have_the_right_mean_and_variance() {
        // z = 1.5 + e^{½ ln 0.25}·ε = 1.5 + 0.5·ε: mean 1.5, variance 0.25. With n = 200 000
        // draws the standard error of the mean is 0.5/√n ≈ 0.0011 and of the variance
        // 0.25·√(2/n) ≈ 0.0008; the tolerances are about five of those.
        let n = 200_000;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let eps = Matrix::from_shape_fn((n, 1), |_| StandardNormal.sample(&mut rng));
        let tape = Tape::new();
        let mu = tape.constant(Matrix::from_elem((n, 1), 1.5));
        let log_var = tape.constant(Matrix::from_elem((n, 1), 0.25f32.ln()));
        let z = reparameterize(mu, log_var, &eps).value();
        let mean = z.mean().unwrap();
        let var = z.mapv(|z| (z - mean) * (z - mean)).sum() / (n as f32 - 1.0);
        assert!((mean - 1.5).abs() < 0.006, "mean {mean}");
        assert!((var - 0.25).abs() < 0.004, "variance {var}");
    }

    #[test]
    fn mse_value_and_gradients() {
        let tape = Tape::new();
        // ((1-0)² + (2-4)²)/2 = 2.5.
        let y = mse(
            tape.leaf(array![[1.0f32, 2.0]]),
            tape.constant(array![[0.0f32, 4.0]]),
        );
        assert_eq!(y.item(), 2.5);
        let inputs = [
            filled((3, 4), &[0.3, -1.2, 2.0]),
            filled((3, 4), &[1.0, 0.1, -0.7, 0.4]),
        ];
        gradcheck(|v| mse(v[0], v[1]), &inputs, &GradcheckConfig::default()).unwrap();
    }

    #[test]
    fn gaussian_nll_matches_the_density_and_has_the_right_gradients() {
        // x = 1 under N(0, e^0 = 1): ½(ln 2π + 0 + 1) = 1.4189385.
        let tape = Tape::new();
        let y = gaussian_nll(
            tape.leaf(array![[0.0f32]]),
            tape.constant(array![[0.0f32]]),
            tape.constant(array![[1.0f32]]),
        );
        assert!((y.item() - 1.418_938_5).abs() < 1e-6);
        let mean = filled((3, 4), &[0.3, -1.2, 2.0]);
        let x = filled((3, 4), &[1.0, 0.1, -0.7, 0.4, 0.0]);
        for log_var in [
            filled((3, 4), &[-2.0, 0.0, 1.5]),
            filled((1, 4), &[-1.0, 0.5]),
            filled((1, 1), &[0.7]),
        ] {
            let inputs = [mean.clone(), log_var, x.clone()];
            gradcheck(
                |v| gaussian_nll(v[0], v[1], v[2]),
                &inputs,
                &GradcheckConfig::default(),
            )
            .unwrap();
        }
    }

    /// The level `k` of `bins` levels in [−1, 1].
    fn level(k: usize, bins: usize) -> f32 {
        -1.0 + 2.0 * k as f32 / (bins - 1) as f32
    }

    /// Over all the levels, the probabilities sum to 1 (the bins tile the line), for scales
    /// from a tenth of a bin to the whole range and means inside and outside [−1, 1].
    #[test]
    fn discretized_logistic_probabilities_sum_to_one() {
        for bins in [2, 4, 256] {
            for (mean, log_scale) in [(0.0f32, -1.0f32), (0.3, -6.0), (-0.9, 0.5), (1.4, -3.0)] {
                let x = Matrix::from_shape_fn((1, bins), |(_, k)| level(k, bins));
                let tape = Tape::new();
                let y = discretized_logistic_nll(
                    tape.constant(Matrix::from_elem((1, bins), mean)),
                    tape.constant(Matrix::from_elem((1, bins), log_scale)),
                    &x,
                    bins,
                );
                // Each pixel alone: one column at a time.
                let total: f64 = (0..bins)
                    .map(|k| {
                        let tape = Tape::new();
                        let one = |v: f32| tape.constant(Matrix::from_elem((1, 1), v));
                        let nll = discretized_logistic_nll(
                            one(mean),
                            one(log_scale),
                            &Matrix::from_elem((1, 1), x[[0, k]]),
                            bins,
                        );
                        (-f64::from(nll.item())).exp()
                    })
                    .sum();
                assert!(
                    (total - 1.0).abs() < 2e-3,
                    "bins {bins} μ {mean} ln s {log_scale}: Σ P = {total}"
                );
                assert!(y.item().is_finite());
            }
        }
    }

    /// A middle bin against the logistic's CDF, and the two edges against its tails.
    #[test]
    fn discretized_logistic_matches_the_cdf() {
        let cdf = |t: f64| 1.0 / (1.0 + (-t).exp());
        let (mean, log_scale, bins) = (0.1f32, -2.0f32, 5);
        let s = f64::from(log_scale).exp();
        let h = 0.25;
        for (k, want) in [
            (0, cdf((-1.0 + h - 0.1) / s)),
            (2, cdf((0.0 + h - 0.1) / s) - cdf((0.0 - h - 0.1) / s)),
            (4, 1.0 - cdf((1.0 - h - 0.1) / s)),
        ] {
            let tape = Tape::new();
            let nll = discretized_logistic_nll(
                tape.constant(array![[mean]]),
                tape.constant(array![[log_scale]]),
                &array![[level(k, bins)]],
                bins,
            );
            let got = (-f64::from(nll.item())).exp();
            assert!(
                (got - want).abs() < 1e-6 * want.max(1e-3),
                "level {k}: {got} vs {want}"
            );
        }
    }
}
