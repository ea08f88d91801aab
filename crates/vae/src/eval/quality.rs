//! The sample-quality yardstick's numbers, each a function of plain matrices so that it can be
//! checked on constructed cases: the classifier Inception Score, the Fréchet distance between
//! two sets of features, mode coverage, and Goodfellow et al.'s (2014) Parzen-window
//! log-likelihood. [`crate::commands::quality`] applies them to a model's samples with the reference
//! classifier.

use autodiff::Matrix;
use autodiff::gemm::gemm;
use faer::{Mat, Side};
use ndarray::{Axis, s};

use super::moments;

/// Rows of the evaluated set whose Parzen log-likelihoods are computed at once (bounds the
/// distance matrix to 512 × samples).
const PARZEN_CHUNK: usize = 512;

/// The classifier Inception Score `exp E_x KL(p(y|x) ‖ p(y))` of the rows of `probs` (one
/// image's class probabilities a row), with `p(y)` their mean; `0·ln 0 = 0`. Computed on the
/// whole set (Salimans et al. average it over 10 splits). It is 1 when every image gets the same
/// distribution and the number of classes when each image is sure and the classes are equally
/// frequent.
pub fn inception_score(probs: &Matrix) -> f64 {
    let n = probs.nrows().max(1) as f64;
    let marginal: Vec<f64> = (probs.columns().into_iter())
        .map(|c| c.iter().map(|&p| f64::from(p)).sum::<f64>() / n)
        .collect();
    let kl: f64 = (probs.rows().into_iter())
        .map(|row| {
            row.iter()
                .zip(&marginal)
                .filter(|(p, _)| **p > 0.0)
                .map(|(&p, &m)| f64::from(p) * (f64::from(p).ln() - m.ln()))
                .sum::<f64>()
        })
        .sum();
    (kl / n).exp()
}

/// Which classes a set of samples covers, from the classes the classifier predicts for them.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// Samples predicted as each class.
    pub counts: Vec<usize>,
    /// Classes predicted for at least one sample.
    pub classes: usize,
    /// `KL(q ‖ uniform) = Σ_c q_c ln(C·q_c)` of the predicted classes' frequencies `q`: 0 when
    /// the classes are equally frequent, `ln C` when one class takes every sample.
    pub kl_to_uniform: f64,
}

/// The [`Coverage`] of `predicted` (each sample's class) over `classes` classes.
///
/// # Panics
/// If a prediction is not below `classes`.
#[track_caller]
pub fn coverage(predicted: &[u8], classes: usize) -> Coverage {
    let mut counts = vec![0usize; classes];
    for &c in predicted {
        counts[usize::from(c)] += 1;
    }
    let n = predicted.len().max(1) as f64;
    let kl_to_uniform = (counts.iter().filter(|&&k| k > 0))
        .map(|&k| {
            let q = k as f64 / n;
            q * (classes as f64 * q).ln()
        })
        .sum();
    Coverage {
        classes: counts.iter().filter(|&&k| k > 0).count(),
        counts,
        kl_to_uniform,
    }
}

/// A Gaussian fitted to a set of feature vectors: their mean and covariance (`Σ (f − μ)(f − μ)ᵀ
/// / n`), in f64.
#[derive(Debug, Clone)]
pub struct FeatureGaussian {
    mean: Vec<f64>,
    cov: Mat<f64>,
}

impl FeatureGaussian {
    /// The Gaussian of the rows of `features`.
    ///
    /// # Panics
    /// If there are no rows.
    #[track_caller]
    pub fn fit(features: &Matrix) -> FeatureGaussian {
        let (mean, cov) = moments(features);
        FeatureGaussian {
            mean: mean.iter().map(|&m| f64::from(m)).collect(),
            cov,
        }
    }
}

/// The Fréchet distance could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrechetError {
    /// The two Gaussians live in spaces of different dimensions.
    #[error("Fréchet distance: features of {0} and {1} dimensions")]
    Dimensions(usize, usize),
    /// An eigendecomposition did not converge.
    #[error("Fréchet distance: the eigendecomposition of a {0}×{0} matrix did not converge")]
    Eigen(usize),
}

/// The Fréchet (2-Wasserstein) distance between two Gaussians (Dowson & Landau 1982; Heusel et
/// al.'s FID on the reference classifier's features):
/// `‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{½} Σ₂ Σ₁^{½})^{½}`.
/// Both square roots come from faer's symmetric eigendecomposition; the symmetric form has the
/// same trace as the usual `(Σ₁Σ₂)^{½}` and negative rounding in its eigenvalues is set to 0.
pub fn frechet_distance(a: &FeatureGaussian, b: &FeatureGaussian) -> Result<f64, FrechetError> {
    let d = a.mean.len();
    if b.mean.len() != d {
        return Err(FrechetError::Dimensions(d, b.mean.len()));
    }
    let mean_term: f64 = (a.mean.iter().zip(&b.mean))
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    let trace = |m: &Mat<f64>| (0..d).map(|i| m[(i, i)]).sum::<f64>();
    let root_a = symmetric_sqrt(&a.cov)?;
    let inner = &root_a * &b.cov * &root_a;
    // Symmetrize what rounding left of the product before the symmetric solver reads one half.
    let inner = Mat::<f64>::from_fn(d, d, |i, j| 0.5 * (inner[(i, j)] + inner[(j, i)]));
    let eigen = inner
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| FrechetError::Eigen(d))?;
    let values = eigen.S().column_vector();
    let cross: f64 = (0..d).map(|i| values[i].max(0.0).sqrt()).sum();
    Ok(mean_term + trace(&a.cov) + trace(&b.cov) - 2.0 * cross)
}

/// `S^{½} = V diag(√max(λ, 0)) Vᵀ` of a symmetric positive semi-definite `S = V diag(λ) Vᵀ`.
fn symmetric_sqrt(m: &Mat<f64>) -> Result<Mat<f64>, FrechetError> {
    let d = m.nrows();
    let eigen = m
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| FrechetError::Eigen(d))?;
    let (values, vectors) = (eigen.S().column_vector(), eigen.U());
    let scaled = Mat::<f64>::from_fn(d, d, |i, k| vectors[(i, k)] * values[k].max(0.0).sqrt());
    Ok(&scaled * vectors.transpose())
}

/// A Parzen-window estimate of a sample set's log-likelihood of some images.
#[derive(Debug, Clone, PartialEq)]
pub struct Parzen {
    /// The kernel's width, chosen on the validation images.
    pub sigma: f64,
    /// The mean log-likelihood of each candidate σ on the validation images, in order.
    pub validation: Vec<(f64, f64)>,
    /// The mean log-likelihood of the evaluated images, in nats per image.
    pub mean: f64,
    /// Its standard error: the per-image standard deviation over √n.
    pub standard_error: f64,
}

/// Goodfellow et al.'s candidate widths: `logspace(−1, 0, 10)`, from 0.1 to 1.
pub fn parzen_sigmas() -> Vec<f64> {
    (0..10).map(|i| 10f64.powf(-1.0 + i as f64 / 9.0)).collect()
}

/// Goodfellow et al.'s (2014) protocol: a Gaussian kernel of width σ on each of the `samples`,
/// σ chosen among `sigmas` by the mean log-likelihood of `validation`, and the log-likelihood
/// of each row of `x` under it, `ln (1/n) Σᵢ N(x; sᵢ, σ²I)`, reported as mean ± standard error.
///
/// # Panics
/// If there are no samples or no candidate σ, or the sets' widths differ.
#[track_caller]
pub fn parzen(samples: &Matrix, validation: &Matrix, x: &Matrix, sigmas: &[f64]) -> Parzen {
    assert!(!sigmas.is_empty(), "parzen: no candidate σ");
    let scores = parzen_log_likelihoods(samples, validation, sigmas);
    let validation: Vec<(f64, f64)> = (sigmas.iter().zip(&scores))
        .map(|(&sigma, ll)| (sigma, mean(ll)))
        .collect();
    let sigma = validation
        .iter()
        .fold((sigmas[0], f64::NEG_INFINITY), |best, &(s, ll)| {
            if ll > best.1 { (s, ll) } else { best }
        })
        .0;
    let ll = parzen_log_likelihoods(samples, x, &[sigma]).remove(0);
    let m = mean(&ll);
    let n = ll.len().max(1) as f64;
    let var = ll.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Parzen {
        sigma,
        validation,
        mean: m,
        standard_error: (var / n).sqrt(),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// `ln (1/n) Σᵢ N(x; sᵢ, σ²I)` of every row `x` of `x`, for every σ of `sigmas` (one vector a
/// σ): a stable log-mean-exp of `−‖x − sᵢ‖² / 2σ²` less `(D/2) ln 2πσ²`. The squared distances
/// are `‖x‖² − 2 x·s + ‖s‖²` with the products from the GEMM, a chunk of rows at a time.
///
/// # Panics
/// If there are no samples or the widths differ.
#[track_caller]
pub fn parzen_log_likelihoods(samples: &Matrix, x: &Matrix, sigmas: &[f64]) -> Vec<Vec<f64>> {
    let (n, d) = samples.dim();
    assert!(n > 0, "parzen: no samples");
    assert_eq!(
        x.ncols(),
        d,
        "parzen: images of {} and {d} pixels",
        x.ncols()
    );
    let squared_norms = |m: &Matrix| -> Vec<f64> {
        (m.rows().into_iter())
            .map(|r| r.iter().map(|&v| f64::from(v).powi(2)).sum())
            .collect()
    };
    let sample_norms = squared_norms(samples);
    let ln_n = (n as f64).ln();
    let constants: Vec<f64> = (sigmas.iter())
        .map(|&s| 0.5 * d as f64 * (2.0 * std::f64::consts::PI * s * s).ln() + ln_n)
        .collect();
    let mut out = vec![Vec::with_capacity(x.nrows()); sigmas.len()];
    let mut dots = Matrix::zeros((PARZEN_CHUNK.min(x.nrows()), n));
    for start in (0..x.nrows()).step_by(PARZEN_CHUNK) {
        let rows = x.slice(s![start..(start + PARZEN_CHUNK).min(x.nrows()), ..]);
        let mut dots = dots.slice_mut(s![..rows.nrows(), ..]);
        gemm(1.0, rows, samples.t(), 0.0, dots.view_mut());
        let row_norms = squared_norms(&rows.to_owned());
        let mut distances = vec![0.0f64; n];
        for (i, dot_row) in dots.axis_iter(Axis(0)).enumerate() {
            for ((dist, &dot), &sn) in distances.iter_mut().zip(dot_row).zip(&sample_norms) {
                *dist = (row_norms[i] - 2.0 * f64::from(dot) + sn).max(0.0);
            }
            let nearest = distances.iter().copied().fold(f64::INFINITY, f64::min);
            for ((&sigma, constant), scores) in sigmas.iter().zip(&constants).zip(&mut out) {
                let scale = 0.5 / (sigma * sigma);
                // The nearest sample's term is the largest: factored out, the sum is ≥ 1.
                let sum: f64 = distances
                    .iter()
                    .map(|&dist| (-(dist - nearest) * scale).exp())
                    .sum();
                scores.push(-nearest * scale + sum.ln() - constant);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn one_hot_rows(classes: &[usize], k: usize) -> Matrix {
        Matrix::from_shape_fn((classes.len(), k), |(i, j)| f32::from(classes[i] == j))
    }

    #[test]
    fn inception_score_of_one_class_is_one_and_of_uniform_one_hots_is_the_class_count() {
        let same = one_hot_rows(&[3; 50], 10);
        assert!((inception_score(&same) - 1.0).abs() < 1e-12);
        let uniform = one_hot_rows(&(0..100).map(|i| i % 10).collect::<Vec<_>>(), 10);
        assert!((inception_score(&uniform) - 10.0).abs() < 1e-9);
        // Every image unsure in the same way: p(y|x) = p(y), KL 0.
        let flat = Matrix::from_elem((20, 10), 0.1);
        assert!((inception_score(&flat) - 1.0).abs() < 1e-6);
        // Two sure classes of unequal frequency 3:1: exp H(p(y)) = exp(−¾ln¾ − ¼ln¼).
        let skewed = one_hot_rows(&[0, 0, 0, 1], 2);
        let h = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        assert!((inception_score(&skewed) - h.exp()).abs() < 1e-9);
    }

    #[test]
    fn coverage_and_its_kl_match_hand_made_histograms() {
        let c = coverage(&[0, 0, 1, 1, 2, 2, 3, 3, 4, 4], 5);
        assert_eq!((c.counts.clone(), c.classes), (vec![2; 5], 5));
        assert!(c.kl_to_uniform.abs() < 1e-12);
        let c = coverage(&[7; 8], 10);
        assert_eq!(c.classes, 1);
        assert!((c.kl_to_uniform - 10f64.ln()).abs() < 1e-12);
        // Frequencies (½, ¼, ¼, 0) of 4 classes: ½ln2 + 2·¼ln1 = ½ln2.
        let c = coverage(&[0, 0, 1, 2], 4);
        assert_eq!((c.counts, c.classes), (vec![2, 1, 1, 0], 3));
        assert!((c.kl_to_uniform - 0.5 * 2f64.ln()).abs() < 1e-12);
    }

    fn gaussian_set(n: usize, mean: &[f32], scales: &[f32], seed: u64) -> Matrix {
        let rng = &mut ChaCha8Rng::seed_from_u64(seed);
        Matrix::from_shape_fn((n, mean.len()), |(_, j)| {
            let e: f32 = StandardNormal.sample(rng);
            mean[j] + scales[j] * e
        })
    }

    #[test]
    fn frechet_distance_of_a_set_to_itself_is_zero() {
        // Correlated features: a random mixing of independent normals.
        let x = gaussian_set(500, &[1.0, -2.0, 0.5, 0.0], &[1.0, 2.0, 0.5, 3.0], 1);
        let mix = array![
            [1.0f32, 0.3, 0.0, 0.2],
            [0.0, 1.0, 0.5, 0.0],
            [0.4, 0.0, 1.0, 0.1],
            [0.0, 0.2, 0.0, 1.0]
        ];
        let x = x.dot(&mix);
        let g = FeatureGaussian::fit(&x);
        let d = frechet_distance(&g, &g).unwrap();
        assert!(d.abs() < 1e-8, "{d}");
    }

    #[test]
    fn frechet_distance_of_two_gaussians_matches_the_closed_form() {
        // Diagonal covariances commute: d = ‖μ₁ − μ₂‖² + Σ (σ₁ᵢ − σ₂ᵢ)², computed from the
        // fitted moments so that only the formula is under test, not the sampling.
        let a = gaussian_set(4000, &[0.0, 1.0, 2.0], &[1.0, 0.5, 2.0], 2);
        let b = gaussian_set(4000, &[1.0, 1.0, -1.0], &[2.0, 0.5, 1.0], 3);
        let (ga, gb) = (FeatureGaussian::fit(&a), FeatureGaussian::fit(&b));
        // Sample covariances are not exactly diagonal: compare with the general closed form for
        // 1-D marginals only when off-diagonals vanish, so zero them in both.
        let diag = |g: &FeatureGaussian| FeatureGaussian {
            mean: g.mean.clone(),
            cov: Mat::<f64>::from_fn(3, 3, |i, j| if i == j { g.cov[(i, j)] } else { 0.0 }),
        };
        let (da, db) = (diag(&ga), diag(&gb));
        let expected: f64 = (0..3)
            .map(|i| {
                (da.mean[i] - db.mean[i]).powi(2)
                    + (da.cov[(i, i)].sqrt() - db.cov[(i, i)].sqrt()).powi(2)
            })
            .sum();
        let d = frechet_distance(&da, &db).unwrap();
        assert!((d - expected).abs() < 1e-9, "{d} vs {expected}");
        // The population values: means differ by (1, 0, 3), sds by (1, 0, 1): 10 + 2 = 12.
        let full = frechet_distance(&ga, &gb).unwrap();
        assert!((full - 12.0).abs() < 0.5, "{full}");
        // Symmetric, and the dimensions must agree.
        let back = frechet_distance(&gb, &ga).unwrap();
        assert!((full - back).abs() < 1e-8);
        let other = FeatureGaussian::fit(&Matrix::zeros((3, 2)));
        assert_eq!(
            frechet_distance(&ga, &other),
            Err(FrechetError::Dimensions(3, 2))
        );
    }

    #[test]
    fn frechet_distance_with_correlated_covariances_matches_the_2d_closed_form() {
        // Σ₁ = I, Σ₂ = [[2, 1], [1, 2]] (eigenvalues 3 and 1): tr (Σ₁Σ₂)^{½} = √3 + 1, so
        // d = 0 + 2 + 4 − 2(√3 + 1) = 4 − 2√3.
        let a = FeatureGaussian {
            mean: vec![0.0, 0.0],
            cov: Mat::<f64>::identity(2, 2),
        };
        let b = FeatureGaussian {
            mean: vec![0.0, 0.0],
            cov: Mat::<f64>::from_fn(2, 2, |i, j| if i == j { 2.0 } else { 1.0 }),
        };
        let d = frechet_distance(&a, &b).unwrap();
        assert!((d - (4.0 - 2.0 * 3f64.sqrt())).abs() < 1e-12, "{d}");
    }

    #[test]
    fn parzen_on_a_tiny_1d_case_matches_a_hand_computation() {
        // Samples 0 and 2, x = 1, σ = 1: both kernels are N(1; ·, 1) = e^{−½}/√(2π), so
        // ln p = −½ − ½ ln 2π.
        let samples = array![[0.0f32], [2.0]];
        let x = array![[1.0f32], [0.0]];
        let ll = parzen_log_likelihoods(&samples, &x, &[1.0, 0.5]);
        let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        assert!((ll[0][0] - (-0.5 - half_ln_2pi)).abs() < 1e-9);
        // x = 0: ½(N(0; 0, 1) + N(0; 2, 1)) = ½(1 + e^{−2})/√(2π).
        let expected = (0.5 * (1.0 + (-2.0f64).exp())).ln() - half_ln_2pi;
        assert!((ll[0][1] - expected).abs() < 1e-9);
        // σ = ½ at x = 1: ln N(1; 0, ¼) = −½·1/¼ − ½ ln(2π/4) = −2 − ½ ln(π/2).
        let expected = -2.0 - 0.5 * (std::f64::consts::PI / 2.0).ln();
        assert!((ll[1][0] - expected).abs() < 1e-9);
        // Far from every sample the log-mean-exp stays finite (no underflow to −∞).
        let far = parzen_log_likelihoods(&samples, &array![[100.0f32]], &[0.1]);
        assert!(far[0][0].is_finite() && far[0][0] < -1e5);
    }

    #[test]
    fn parzen_chooses_the_sigma_of_the_validation_set_and_reports_the_standard_error() {
        // Samples and both evaluated sets from N(0, 0.3²): σ near the true spread wins over 0.1
        // and over 1 with 400 kernels in 1-D.
        let samples = gaussian_set(400, &[0.0], &[0.3], 4);
        let validation = gaussian_set(200, &[0.0], &[0.3], 5);
        let x = gaussian_set(300, &[0.0], &[0.3], 6);
        let p = parzen(&samples, &validation, &x, &parzen_sigmas());
        assert!(p.sigma > 0.1 && p.sigma < 0.5, "σ {}", p.sigma);
        assert_eq!(p.validation.len(), 10);
        let best = p.validation.iter().map(|v| v.1).fold(f64::MIN, f64::max);
        assert_eq!(
            p.validation.iter().find(|v| v.1 == best).unwrap().0,
            p.sigma
        );
        // The entropy of N(0, 0.3²) is ½ ln(2πe·0.09) ≈ −0.285: the estimate is near −H.
        let h = 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * 0.09).ln();
        assert!((p.mean + h).abs() < 0.15, "{} vs {}", p.mean, -h);
        let ll = parzen_log_likelihoods(&samples, &x, &[p.sigma]).remove(0);
        let m = ll.iter().sum::<f64>() / 300.0;
        let sd = (ll.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 299.0).sqrt();
        assert!((p.standard_error - sd / 300f64.sqrt()).abs() < 1e-12);
        assert_eq!(parzen_sigmas()[0], 0.1);
        assert!((parzen_sigmas()[9] - 1.0).abs() < 1e-12);
    }
}
