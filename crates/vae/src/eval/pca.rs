//! Principal component analysis, the linear baseline of dimensionality reduction that an
//! autoencoder is measured against (Hinton & Salakhutdinov 2006): the top eigenvectors of the
//! training set's covariance, from faer's symmetric eigendecomposition.

use autodiff::Matrix;
use autodiff::gemm::gemm;
use faer::Side;
use ndarray::Array1;

use super::moments;

/// A PCA fitted to a data set: its mean and its first principal directions.
#[derive(Debug, Clone)]
pub struct Pca {
    /// The data's mean, one value per feature.
    pub mean: Array1<f32>,
    /// D×d: the unit eigenvectors of the covariance as columns, by decreasing eigenvalue.
    pub components: Matrix,
    /// Every eigenvalue of the covariance (`Σ (x − μ)(x − μ)ᵀ / n`), largest first: the variance
    /// along each principal direction.
    pub variances: Vec<f64>,
}

/// The eigendecomposition did not converge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PCA: the eigendecomposition of the {0}×{0} covariance did not converge")]
pub struct PcaError(pub usize);

impl Pca {
    /// The first `d` principal components of the rows of `x`. The covariance is summed in f64.
    ///
    /// # Panics
    /// If `x` has no rows or `d` is 0 or more than its columns.
    #[track_caller]
    pub fn fit(x: &Matrix, d: usize) -> Result<Pca, PcaError> {
        let (n, features) = x.dim();
        assert!(n > 0, "Pca::fit: no data");
        assert!(
            d >= 1 && d <= features,
            "Pca::fit: {d} components of {features} features"
        );
        let (mean, cov) = moments(x);
        let eigen = cov
            .self_adjoint_eigen(Side::Lower)
            .map_err(|_| PcaError(features))?;
        // faer orders the eigenvalues from the smallest up.
        let values = eigen.S().column_vector();
        let vectors = eigen.U();
        let order: Vec<usize> = (0..features).rev().collect();
        let components =
            Matrix::from_shape_fn((features, d), |(i, c)| vectors[(i, order[c])] as f32);
        Ok(Pca {
            mean,
            components,
            variances: order.iter().map(|&i| values[i].max(0.0)).collect(),
        })
    }

    /// The coordinates of the rows of `x` along the components (n×d).
    pub fn project(&self, x: &Matrix) -> Matrix {
        let centred = x - &self.mean;
        let mut codes = Matrix::zeros((x.nrows(), self.components.ncols()));
        gemm(
            1.0,
            centred.view(),
            self.components.view(),
            0.0,
            codes.view_mut(),
        );
        codes
    }

    /// The rows of `x` projected onto the components and mapped back: `μ + (x − μ)·W·Wᵀ`.
    pub fn reconstruct(&self, x: &Matrix) -> Matrix {
        let codes = self.project(x);
        let mut back = Matrix::zeros(x.dim());
        gemm(1.0, codes.view(), self.components.t(), 0.0, back.view_mut());
        back + &self.mean
    }
}

/// The mean over rows of the squared error `Σⱼ (xᵢⱼ − yᵢⱼ)²`, summed in f64: Hinton &
/// Salakhutdinov's "average squared error per image".
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn squared_error(x: &Matrix, y: &Matrix) -> f64 {
    let total: f64 = squared_error_rows(x, y).iter().sum();
    total / x.nrows().max(1) as f64
}

/// `Σⱼ (xᵢⱼ − yᵢⱼ)²` of each row pair: every image's squared error (an anomaly score).
///
/// Panics if the shapes differ.
#[track_caller]
pub fn squared_error_rows(x: &Matrix, y: &Matrix) -> Vec<f64> {
    assert_eq!(x.dim(), y.dim(), "squared_error: shapes differ");
    (x.rows().into_iter().zip(y.rows()))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(&a, &b)| f64::from(a - b).powi(2))
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// 500 points `μ + 3a·u + b·v` (a, b uniform on ±1) in 5 dimensions, u ⟂ v, plus `noise`.
    fn plane(noise: f32) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let s = 0.5f32.sqrt();
        let (u, v) = ([s, s, 0.0, 0.0, 0.0], [0.0, 0.0, 0.6, 0.8, 0.0]);
        let mu = [1.0, -2.0, 0.5, 0.0, 3.0];
        let mut x = Matrix::zeros((500, 5));
        for mut row in x.rows_mut() {
            let (a, b): (f32, f32) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
            for j in 0..5 {
                row[j] = mu[j] + 3.0 * a * u[j] + b * v[j] + noise * rng.random_range(-1.0..1.0);
            }
        }
        x
    }

    #[test]
    fn finds_the_directions_of_most_variance() {
        let x = plane(0.0);
        let pca = Pca::fit(&x, 2).unwrap();
        // First direction ±u (variance 9/3 = 3), second ±v (variance 1/3).
        let w = &pca.components;
        let s = 0.5f32.sqrt();
        let dot_u = w[[0, 0]] * s + w[[1, 0]] * s;
        let dot_v = w[[2, 1]] * 0.6 + w[[3, 1]] * 0.8;
        assert!((dot_u.abs() - 1.0).abs() < 1e-4, "{w:?}");
        assert!((dot_v.abs() - 1.0).abs() < 1e-4, "{w:?}");
        assert!((pca.variances[0] - 3.0).abs() < 0.4, "{:?}", pca.variances);
        assert!(
            (pca.variances[1] - 1.0 / 3.0).abs() < 0.06,
            "{:?}",
            pca.variances
        );
        assert!(pca.variances[2..].iter().all(|&v| v < 1e-9));
        // The data lie in the plane: two components reconstruct them exactly.
        assert!(squared_error(&x, &pca.reconstruct(&x)) < 1e-8);
    }

    #[test]
    fn the_training_error_is_the_sum_of_the_dropped_variances() {
        let x = plane(0.3);
        for d in 1..=5 {
            let pca = Pca::fit(&x, d).unwrap();
            let err = squared_error(&x, &pca.reconstruct(&x));
            let dropped: f64 = pca.variances[d..].iter().sum();
            assert!(
                (err - dropped).abs() < 1e-4 * (1.0 + dropped),
                "d = {d}: {err} vs {dropped}"
            );
            // The components are orthonormal.
            let gram = pca.components.t().dot(&pca.components);
            for ((i, j), &g) in gram.indexed_iter() {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((g - want).abs() < 1e-5, "d = {d}: W'W = {gram:?}");
            }
        }
    }

    #[test]
    fn chunking_the_covariance_changes_nothing() {
        // More rows than a chunk: the covariance is summed over two chunks.
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x = Matrix::from_shape_fn((4096 + 100, 3), |(_, j)| {
            (j + 1) as f32 * rng.random_range(-1.0f32..1.0)
        });
        let pca = Pca::fit(&x, 3).unwrap();
        // Independent uniform features of widths 1, 2, 3: variances 1/3, 4/3, 9/3.
        let want = [3.0, 4.0 / 3.0, 1.0 / 3.0];
        for (got, want) in pca.variances.iter().zip(want) {
            assert!((got - want).abs() < 0.1 * want, "{:?}", pca.variances);
        }
    }
}
