//! Noise and log-densities in plain matrices: what the models sample and what the importance
//! weights are made of (the differentiable losses themselves are fused ops of `autodiff`).

use autodiff::Matrix;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A `shape` matrix of independent N(0, 1) draws.
pub fn standard_normal(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Matrix {
    Matrix::from_shape_fn(shape, |_| StandardNormal.sample(rng))
}

/// `ln p(z) - ln q(z|x)` per row for `z = μ + σ·ε`, `q = N(μ, σ²)`, and `p = N(0, I)` (`prior`
/// `None`): `-½ Σ z² + ½ Σ (ε² + log σ²)`; or a learned `p = N(μ_p, e^{log σ²_p})` (`prior`
/// `Some((μ_p, log σ²_p))`): `-½ Σ ((z - μ_p)² e^{-log σ²_p} + log σ²_p) + ½ Σ (ε² + log σ²)`.
/// The `ln 2π` terms of both densities cancel. Row `r` of `z` and `eps` is a sample of image
/// `image_of[r]`, whose row of `log_var` (and of the prior's statistics) it uses.
pub fn log_prior_minus_log_posterior(
    z: &Matrix,
    eps: &Matrix,
    log_var: &Matrix,
    prior: Option<(&Matrix, &Matrix)>,
    image_of: &[usize],
) -> Vec<f64> {
    assert_eq!(z.nrows(), image_of.len(), "one image per row of z");
    image_of
        .iter()
        .enumerate()
        .map(|(r, &i)| {
            let posterior: f64 = eps
                .row(r)
                .iter()
                .zip(log_var.row(i))
                .map(|(&e, &lv)| f64::from(e) * f64::from(e) + f64::from(lv))
                .sum();
            let prior: f64 = match prior {
                None => z.row(r).iter().map(|&z| f64::from(z).powi(2)).sum(),
                Some((mu_p, lv_p)) => z
                    .row(r)
                    .iter()
                    .zip(mu_p.row(i))
                    .zip(lv_p.row(i))
                    .map(|((&z, &m), &lv)| {
                        let lv = f64::from(lv);
                        (f64::from(z) - f64::from(m)).powi(2) * (-lv).exp() + lv
                    })
                    .sum(),
            };
            0.5 * (posterior - prior)
        })
        .collect()
}

/// The standard normal quantile function Φ⁻¹(p) for `p ∈ (0, 1)` (Acklam's rational
/// approximation, relative error below 1.2e-9), for the latent-space manifold picture.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const LOW: f64 = 0.024_25;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn prior_minus_posterior_at_the_posterior_mean() {
        // μ = 0, log σ² = 0, ε = z = [1, 2]: p and q are the same density, so the difference is 0.
        let z = array![[1.0f32, 2.0]];
        assert_eq!(
            log_prior_minus_log_posterior(&z, &z, &array![[0.0f32, 0.0]], None, &[0]),
            [0.0]
        );
        // log σ² = ln 4 (σ = 2), ε = 1, μ = 0 so z = 2: ln N(2; 0, 1) - ln N(2; 0, 4)
        // = -½·4 - (-½·1 - ½ ln 4) = -2 + 0.5 + ln 2 = -0.806853.
        let lp = log_prior_minus_log_posterior(
            &array![[2.0f32]],
            &array![[1.0f32]],
            &array![[4.0f32.ln()]],
            None,
            &[0],
        );
        assert!((lp[0] - (-1.5 + std::f64::consts::LN_2)).abs() < 1e-6);
        // The same q against a learned prior N(1, e): ln N(2; 1, e) - ln N(2; 0, 4)
        // = (-½·1/e - ½) - (-½ - ½ ln 4) = -0.5/e + ln 2 = 0.509210.
        let mu_p = array![[1.0f32]];
        let lv_p = array![[1.0f32]];
        let lp = log_prior_minus_log_posterior(
            &array![[2.0f32]],
            &array![[1.0f32]],
            &array![[4.0f32.ln()]],
            Some((&mu_p, &lv_p)),
            &[0],
        );
        let expected = -0.5 / std::f64::consts::E + std::f64::consts::LN_2;
        assert!((lp[0] - expected).abs() < 1e-6, "{}", lp[0]);
        // A learned prior at N(0, 1) is the standard one.
        let (m0, l0) = (array![[0.0f32, 0.0]], array![[0.0f32, 0.0]]);
        let (z, e, lv) = (
            array![[0.3f32, -1.1]],
            array![[0.5f32, 0.2]],
            array![[0.1f32, -0.7]],
        );
        let a = log_prior_minus_log_posterior(&z, &e, &lv, None, &[0])[0];
        let b = log_prior_minus_log_posterior(&z, &e, &lv, Some((&m0, &l0)), &[0])[0];
        assert!((a - b).abs() < 1e-9);
    }

    /// Rows that are samples of images 1, 0, 1 use those images' statistics: the same figures
    /// as with the statistics copied to every row.
    #[test]
    fn each_row_uses_its_image_s_statistics() {
        let z = array![[0.3f32, -1.1], [2.0, 0.4], [-0.6, 0.9]];
        let e = array![[0.5f32, 0.2], [-1.0, 0.3], [0.8, -0.1]];
        let lv = array![[0.1f32, -0.7], [1.2, 0.4]];
        let (mu_p, lv_p) = (
            array![[0.2f32, 0.0], [-0.5, 1.0]],
            array![[0.3f32, -0.2], [0.0, 0.6]],
        );
        let image_of = [1, 0, 1];
        let per_row = |m: &Matrix| m.select(ndarray::Axis(0), &image_of);
        let identity = [0, 1, 2];
        for prior in [None, Some((&mu_p, &lv_p))] {
            let copied = prior.map(|(m, l)| (per_row(m), per_row(l)));
            let gathered = log_prior_minus_log_posterior(&z, &e, &lv, prior, &image_of);
            let expected = log_prior_minus_log_posterior(
                &z,
                &e,
                &per_row(&lv),
                copied.as_ref().map(|(m, l)| (m, l)),
                &identity,
            );
            assert_eq!(gathered, expected);
            assert!(gathered[0] != gathered[2]);
        }
    }

    #[test]
    fn normal_quantile_at_known_points() {
        // Φ⁻¹(0.5) = 0; Φ⁻¹(0.975) = 1.959964; Φ⁻¹(0.01) = -2.326348 (tables).
        assert!(normal_quantile(0.5).abs() < 1e-12);
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-8);
        assert!((normal_quantile(0.01) + 2.326_347_874).abs() < 1e-8);
        assert!((normal_quantile(0.001) + normal_quantile(0.999)).abs() < 1e-8);
    }
}
