//! Evaluation of a trained VAE on fixed data: the ELBO with its parts, the importance-weighted
//! log-likelihood, the active units, and the posterior means.

use autodiff::{Matrix, Tape};
use ndarray::{Axis, Zip, s};
use nn::ParamStore;

use super::net::Vae;
use crate::dist::log_prior_minus_log_posterior;
use crate::eval::column_variances;
use crate::random::{Draws, Purpose};

/// Rows decoded at once by the evaluations: bounds their memory (1024×784 f32 ≈ 3.2 MB per
/// matrix) whatever the number of samples. At 4096 rows the test set's evaluation held ≈ 70 MB
/// more at its peak (the PyTorch-example run's peak RSS 244 MB against 173 MB), and the
/// importance-weighted estimate ran slower (its products and likelihood further from the
/// caches: 36 s against 25 s for K = 1000 on the test set), BENCHMARKS.md.
const CHUNK_ROWS: usize = 1024;

/// The negative ELBO over a data set and its two parts, in nats per example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elbo {
    /// `recon + kl`.
    pub neg_elbo: f64,
    /// `E_q[-ln p(x|z)]`, one sample per example.
    pub recon: f64,
    /// `KL(q(z|x) ‖ p(z))`, in closed form.
    pub kl: f64,
}

/// The rows `rows` of an optional condition, as a tape constant.
fn cond_rows<'t>(
    p: &nn::Bound<'t>,
    cond: Option<&Matrix>,
    rows: std::ops::Range<usize>,
) -> Option<autodiff::Var<'t>> {
    cond.map(|c| p.constant(c.slice(s![rows, ..]).to_owned()))
}

/// The parts (recon, kl) of the negative ELBO of the rows of `x` given `cond`, one
/// reparameterized sample each (row `r`'s ε from its example's stream in `draws`), chunk by
/// chunk: `each` sees every chunk's two columns.
#[track_caller]
fn neg_elbo_chunks(
    (vae, store): (&Vae, &ParamStore),
    (x, cond): (&Matrix, Option<&Matrix>),
    draws: &Draws<'_>,
    mut each: impl FnMut(&Matrix, &Matrix),
) {
    assert_eq!(x.nrows(), draws.len(), "one example's draws per row of x");
    for start in (0..x.nrows()).step_by(CHUNK_ROWS) {
        let rows = start..(start + CHUNK_ROWS).min(x.nrows());
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        let xv = p.constant(x.slice(s![rows.clone(), ..]).to_owned());
        let c = cond_rows(&p, cond, rows.clone());
        let (r, k) = vae.neg_elbo_parts(&p, xv, c, &draws.slice(rows));
        each(&r.value(), &k.value());
    }
}

/// The negative ELBO of every row of `x` (given the same row of `cond`, for a conditional
/// model), one reparameterized sample each, averaged.
pub fn elbo(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    cond: Option<&Matrix>,
    draws: &Draws<'_>,
) -> Elbo {
    let (mut recon, mut kl) = (0.0f64, 0.0f64);
    neg_elbo_chunks((vae, store), (x, cond), draws, |r, k| {
        recon += f64::from(r.sum());
        kl += f64::from(k.sum());
    });
    let n = x.nrows().max(1) as f64;
    Elbo {
        neg_elbo: (recon + kl) / n,
        recon: recon / n,
        kl: kl / n,
    }
}

/// The negative ELBO of each row of `x` (given the same row of `cond`), one reparameterized
/// sample each: per image what [`elbo`] averages.
pub fn neg_elbo_rows(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    cond: Option<&Matrix>,
    draws: &Draws<'_>,
) -> Vec<f64> {
    let mut scores = Vec::with_capacity(x.nrows());
    neg_elbo_chunks((vae, store), (x, cond), draws, |r, k| {
        scores.extend(r.iter().zip(k).map(|(&r, &k)| f64::from(r) + f64::from(k)));
    });
    scores
}

/// `-ln p(x)` (or `-ln p(x|c)`) averaged over the rows of `x`, estimated with `k` importance
/// samples from the posterior (Burda et al. 2016):
/// `ln p(x) ≈ logsumexp_k [ln p(x|z_k) + ln p(z_k) - ln q(z_k|x)] - ln K`.
/// Memory stays bounded for any `k`: at most 4096 (image, sample) pairs are decoded at a time.
pub fn iw_nll(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    cond: Option<&Matrix>,
    k: usize,
    draws: &Draws<'_>,
) -> f64 {
    let rows = iw_nll_rows(vae, store, x, cond, k, draws);
    rows.iter().sum::<f64>() / x.nrows().max(1) as f64
}

/// The estimate of [`iw_nll`] of each row of `x`: `-ln p(x)` per image.
pub fn iw_nll_rows(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    cond: Option<&Matrix>,
    k: usize,
    draws: &Draws<'_>,
) -> Vec<f64> {
    iw_nll_chunked(vae, store, x, cond, k, CHUNK_ROWS, draws)
}

/// [`iw_nll_rows`] decoding at most `chunk_rows` (image, sample) pairs at a time.
fn iw_nll_chunked(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    cond: Option<&Matrix>,
    k: usize,
    chunk_rows: usize,
    draws: &Draws<'_>,
) -> Vec<f64> {
    assert!(k > 0, "iw_nll: needs at least one sample");
    let per_chunk = k.min(chunk_rows);
    let images_per_chunk = (chunk_rows / per_chunk).max(1);
    let ln_k = (k as f64).ln();
    let mut nll = Vec::with_capacity(x.nrows());
    for start in (0..x.nrows()).step_by(CHUNK_ROWS) {
        let group_rows = start..(start + CHUNK_ROWS).min(x.nrows());
        let group = x.slice(s![group_rows.clone(), ..]);
        let group_cond = cond.map(|c| c.slice(s![group_rows.clone(), ..]).to_owned());
        // The posterior's (and a learned prior's) statistics, once per image.
        let (mu, log_var, prior) = {
            let tape = Tape::new();
            let p = store.bind_frozen(&tape);
            let c = group_cond.clone().map(|c| p.constant(c));
            let (mu, log_var) = vae.encode(&p, p.constant(group.to_owned()), c);
            let prior = vae
                .prior(&p, c)
                .map(|(m, lv)| (m.value().as_ref().clone(), lv.value().as_ref().clone()));
            (
                mu.value().as_ref().clone(),
                log_var.value().as_ref().clone(),
                prior,
            )
        };
        // σ = e^{½ log σ²}, as `reparameterize` computes it, once per image.
        let sigma = log_var.mapv(|lv| (0.5 * lv).exp());
        for first in (0..group.nrows()).step_by(images_per_chunk) {
            let images = first..(first + images_per_chunk).min(group.nrows());
            // Streaming logsumexp per image: running maximum and the sum of exp(w - max).
            let mut max = vec![f64::NEG_INFINITY; images.len()];
            let mut sum = vec![0.0f64; images.len()];
            let mut done = 0;
            while done < k {
                let samples = per_chunk.min(k - done);
                // Row r·samples + s holds sample s of image `images.start + r`.
                let rows: Vec<usize> = images
                    .clone()
                    .flat_map(|i| std::iter::repeat_n(i, samples))
                    .collect();
                // Sample s of an image is its example's copy s of ε.
                let at = (images.clone())
                    .flat_map(|i| (done..done + samples).map(move |s| (start + i, s)));
                let eps = draws.normal_at(Purpose::Eps, at, mu.ncols());
                // z = μ + σ·ε, the bits of `reparameterize`, without copying μ and σ per row.
                let mut z = eps.clone();
                for (mut z, &i) in z.rows_mut().into_iter().zip(&rows) {
                    Zip::from(&mut z)
                        .and(mu.row(i))
                        .and(sigma.row(i))
                        .for_each(|z, &m, &s| *z = m + s * *z);
                }
                let prior_ratio = log_prior_minus_log_posterior(
                    &z,
                    &eps,
                    &log_var,
                    prior.as_ref().map(|(m, lv)| (m, lv)),
                    &rows,
                );
                let tape = Tape::new();
                let p = store.bind_frozen(&tape);
                let c_r = group_cond
                    .as_ref()
                    .map(|c| p.constant(c.select(Axis(0), &rows)));
                // Scored against the images in place: K copies of each would be K·784 floats
                // an image to write and read back.
                let decoded = vae.decode(&p, p.constant(z), c_r).value();
                let recon = vae.recon_rows(decoded.view(), group, &rows);
                for (row, &i) in rows.iter().enumerate() {
                    let (max, sum) = (&mut max[i - first], &mut sum[i - first]);
                    let w = prior_ratio[row] - f64::from(recon[row]);
                    if w > *max {
                        *sum = *sum * (*max - w).exp() + 1.0;
                        *max = w;
                    } else {
                        *sum += (w - *max).exp();
                    }
                }
                done += samples;
            }
            nll.extend(max.iter().zip(&sum).map(|(m, s)| -(m + s.ln() - ln_k)));
        }
    }
    nll
}

/// An & Cho's (2015) reconstruction probability of each row of `x`, as a loss:
/// `-(1/L) Σ_l ln p(x|z_l)` with `z_l ~ q(z|x)`, `L = samples`.
///
/// # Panics
/// If `samples` is 0.
#[track_caller]
pub fn neg_recon_prob_rows(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    samples: usize,
    draws: &Draws<'_>,
) -> Vec<f64> {
    assert!(
        samples > 0,
        "neg_recon_prob_rows: needs at least one sample"
    );
    let mut total = vec![0.0f64; x.nrows()];
    for l in 0..samples {
        let mut row = 0;
        neg_elbo_chunks((vae, store), (x, None), &draws.copy(l), |r, _| {
            for &v in r.iter() {
                total[row] += f64::from(v);
                row += 1;
            }
        });
    }
    total.iter().map(|t| t / samples as f64).collect()
}

/// The squared error `Σ (x̂ − x)²` of each row of `x` against its reconstruction through the
/// posterior mean (the decoder's mean image of `E_q[z|x]`).
pub fn recon_sq_error_rows(vae: &Vae, store: &ParamStore, x: &Matrix) -> Vec<f64> {
    let mut errors = Vec::with_capacity(x.nrows());
    for start in (0..x.nrows()).step_by(CHUNK_ROWS) {
        let rows = x
            .slice(s![start..(start + CHUNK_ROWS).min(x.nrows()), ..])
            .to_owned();
        let means = posterior_means(vae, store, &rows, None);
        let back = decode_images(vae, store, &means, None);
        errors.extend(crate::eval::pca::squared_error_rows(&back, &rows));
    }
    errors
}

/// The posterior means `E_q[z|x, c]` of every row of `x` (rows × latent).
pub fn posterior_means(vae: &Vae, store: &ParamStore, x: &Matrix, cond: Option<&Matrix>) -> Matrix {
    let mut means = Matrix::zeros((x.nrows(), vae.config().latent_dim));
    for start in (0..x.nrows()).step_by(CHUNK_ROWS) {
        let rows = start..(start + CHUNK_ROWS).min(x.nrows());
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        let xv = p.constant(x.slice(s![rows.clone(), ..]).to_owned());
        let (mu, _) = vae.encode(&p, xv, cond_rows(&p, cond, rows.clone()));
        means.slice_mut(s![rows, ..]).assign(&*mu.value());
    }
    means
}

/// The latent dimensions in use: `Cov_x(E_q[z_u|x]) > 0.01` (Burda et al. 2016, section 5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveUnits {
    /// How many dimensions are active.
    pub count: usize,
    /// The variance over the data of each dimension's posterior mean.
    pub variances: Vec<f64>,
}

/// The active units of the posterior means of the rows of `x` (given `cond`).
pub fn active_units(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    cond: Option<&Matrix>,
) -> ActiveUnits {
    let variances = column_variances(&posterior_means(vae, store, x, cond));
    ActiveUnits {
        count: variances.iter().filter(|&&v| v > 0.01).count(),
        variances,
    }
}

/// Decoder means of `z` (rows × latent, given `cond` row for row) as pictures in [0, 1].
pub fn decode_images(vae: &Vae, store: &ParamStore, z: &Matrix, cond: Option<&Matrix>) -> Matrix {
    let tape = Tape::new();
    let p = store.bind_frozen(&tape);
    let c = cond.map(|c| p.constant(c.clone()));
    let decoded = vae.decode(&p, p.constant(z.clone()), c).value();
    vae.mean_image(&decoded)
}

/// The first `n` rows of `x` reconstructed through the posterior means.
pub fn reconstruct(vae: &Vae, store: &ParamStore, x: &Matrix, n: usize) -> Matrix {
    let rows = x.slice(s![..n.min(x.nrows()), ..]).to_owned();
    decode_images(vae, store, &posterior_means(vae, store, &rows, None), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Likelihood, tiny_vae};
    use crate::random::{Keys, examples};

    fn tiny() -> (ParamStore, Vae, Matrix) {
        let (store, vae) = tiny_vae(6, 2, Likelihood::Bernoulli);
        let x = Matrix::from_shape_fn((7, 6), |(i, j)| ((i * 5 + j * 3) % 2) as f32);
        (store, vae, x)
    }

    #[test]
    fn one_importance_sample_is_an_elbo_estimate_and_more_samples_tighten_it() {
        let (store, vae, x) = tiny();
        // With K = 1, -ln w = recon + ln q - ln p, whose expectation is the negative ELBO; both
        // estimates average 7 examples × 2000 draws, so they agree to Monte-Carlo error.
        let keys = Keys::evaluation(5);
        let x_many = x.select(Axis(0), &(0..2000 * 7).map(|r| r % 7).collect::<Vec<_>>());
        let many = examples(x_many.nrows());
        let elbo = elbo(&vae, &store, &x_many, None, &keys.draws(&many)).neg_elbo;
        let k1 = iw_nll(
            &vae,
            &store,
            &x_many,
            None,
            1,
            &Keys::evaluation(6).draws(&many),
        );
        assert!((elbo - k1).abs() < 0.02 * elbo, "ELBO {elbo} vs K=1 {k1}");
        // The bound tightens with K (Burda et al., theorem 1): -ln p(x) estimates fall.
        let seven = examples(7);
        let k100 = iw_nll(&vae, &store, &x, None, 100, &keys.draws(&seven));
        let k5000 = iw_nll(&vae, &store, &x, None, 5000, &keys.draws(&seven));
        assert!(k100 < elbo && k5000 <= k100 + 1e-3, "{elbo} {k100} {k5000}");
    }

    #[test]
    fn chunking_does_not_change_the_estimate() {
        // With chunks of 2 rows, each image's 6 samples come in three chunks merged by the
        // streaming logsumexp; with chunks of 6 they come at once. Sample s of an image is its
        // copy s of ε either way, so the estimates agree to rounding.
        let (store, vae, x) = tiny();
        let seven = examples(7);
        let with_chunk = |rows| {
            let nll = iw_nll_chunked(
                &vae,
                &store,
                &x,
                None,
                6,
                rows,
                &Keys::evaluation(1).draws(&seven),
            );
            nll.iter().sum::<f64>() / 7.0
        };
        let (split, whole) = (with_chunk(2), with_chunk(6));
        assert!((split - whole).abs() < 1e-5, "{split} vs {whole}");
        // A different seed gives a different estimate: the comparison above is not vacuous.
        let other = iw_nll(
            &vae,
            &store,
            &x,
            None,
            6,
            &Keys::evaluation(2).draws(&seven),
        );
        assert!((other - whole).abs() > 1e-4, "{other} vs {whole}");
    }

    #[test]
    fn per_image_scores_average_to_the_set_figures() {
        let (store, vae, x) = tiny();
        let seven = examples(7);
        let draws = |seed| Keys::evaluation(seed).draws(&seven);
        // The rows of the importance-weighted estimate average to it, from the same draws.
        let rows = iw_nll_rows(&vae, &store, &x, None, 20, &draws(3));
        let mean = iw_nll(&vae, &store, &x, None, 20, &draws(3));
        assert_eq!(rows.len(), 7);
        assert!((rows.iter().sum::<f64>() / 7.0 - mean).abs() < 1e-9);
        // One sample of the reconstruction probability is the ELBO's reconstruction term from
        // the same draw; L samples average L such terms.
        let one = neg_recon_prob_rows(&vae, &store, &x, 1, &draws(4));
        let mut recon = Vec::new();
        neg_elbo_chunks((&vae, &store), (&x, None), &draws(4), |r, _| {
            recon.extend(r.iter().map(|&v| f64::from(v)));
        });
        assert_eq!(one, recon);
        let many = neg_recon_prob_rows(&vae, &store, &x, 3, &draws(4));
        assert!(many.iter().zip(&one).any(|(a, b)| (a - b).abs() > 1e-6));
        // The squared error of the posterior-mean reconstruction, by hand for each row.
        let errors = recon_sq_error_rows(&vae, &store, &x);
        let back = decode_images(&vae, &store, &posterior_means(&vae, &store, &x, None), None);
        for (i, e) in errors.iter().enumerate() {
            let want: f64 = (0..6)
                .map(|j| f64::from(back[[i, j]] - x[[i, j]]).powi(2))
                .sum();
            assert!((e - want).abs() < 1e-9);
        }
    }

    #[test]
    fn a_dimension_whose_mean_ignores_x_is_inactive() {
        let (mut store, vae, x) = tiny();
        let id = store.id("encoder.mu_log_var.w").unwrap();
        {
            // Column 0 of the weight gives μ₀, column 1 gives μ₁ (then the two log σ²).
            let mut w = store.value_mut(id);
            w.column_mut(0).fill(3.0);
            w.column_mut(1).fill(0.0);
        }
        let au = active_units(&vae, &store, &x, None);
        // μ₁ is the bias alone, the same for every x: variance 0. μ₀ = 3·Σh + b varies with x.
        assert_eq!(au.variances[1], 0.0);
        assert!(au.variances[0] > 0.01, "{:?}", au.variances);
        assert_eq!(au.count, 1);
    }
}
