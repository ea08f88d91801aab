//! The evaluations of any model or representation: k-means clustering scored against the
//! labels ([`cluster`]), the PCA baseline of dimensionality reduction ([`pca`]), the
//! sample-quality figures ([`quality`]) and ROC curves ([`roc`]); and the moments they share.
//! A model family's own evaluations live with it (the VAE's: `models/vae/eval.rs`).

pub mod cluster;
pub mod pca;
pub mod quality;
pub mod roc;

use autodiff::Matrix;
use ndarray::{Axis, s};

/// Rows summed at once into the f64 covariance of [`moments`].
const CHUNK_ROWS: usize = 1024;

/// The variance over the rows of each column of `x` (the population variance, summed in f64).
pub fn column_variances(x: &Matrix) -> Vec<f64> {
    let n = x.nrows().max(1) as f64;
    (x.columns().into_iter())
        .map(|c| {
            let mean = c.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            c.iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n
        })
        .collect()
}

/// The mean of the rows of `x` and their covariance `Σ (x − μ)(x − μ)ᵀ / n`, summed in f64 a
/// chunk of rows at a time (bounds the f64 copy to 4096 × columns).
///
/// # Panics
/// If `x` has no rows.
#[track_caller]
pub fn moments(x: &Matrix) -> (ndarray::Array1<f32>, faer::Mat<f64>) {
    let (n, features) = x.dim();
    let mean = x.mean_axis(Axis(0)).expect("moments: no rows");
    let mut cov = faer::Mat::<f64>::zeros(features, features);
    for start in (0..n).step_by(CHUNK_ROWS) {
        let chunk = x.slice(s![start..(start + CHUNK_ROWS).min(n), ..]);
        let centred = faer::Mat::<f64>::from_fn(chunk.nrows(), features, |i, j| {
            f64::from(chunk[[i, j]]) - f64::from(mean[j])
        });
        cov += centred.transpose() * &centred;
    }
    cov /= n as f64;
    (mean, cov)
}
