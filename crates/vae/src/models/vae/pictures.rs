//! The pictures of a run: samples from the prior, reconstructions, latent interpolations, the
//! 2-D latent manifold; for the label-conditioned models the classes and the analogies; for
//! completion the sampled completions. Each is a matrix of images in [0, 1] (one image per
//! row) for `image`.

use autodiff::Matrix;
use ndarray::{Axis, concatenate, s};
use nn::ParamStore;
use rand_chacha::ChaCha8Rng;

use super::eval::{decode_images, posterior_means};
use super::net::Vae;
use crate::data::{CLASSES, one_hot};
use crate::dist::{normal_quantile, standard_normal};
use crate::image::above;

/// `n` decoder means of `z ~ N(0, I)`.
pub fn samples(vae: &Vae, store: &ParamStore, n: usize, rng: &mut ChaCha8Rng) -> Matrix {
    let z = standard_normal(rng, (n, vae.config().latent_dim));
    decode_images(vae, store, &z, None)
}

/// `blocks` pairs of rows: `cols` test images, then their reconstructions through the
/// posterior means (2·blocks rows of `cols` images).
pub fn reconstructions(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    blocks: usize,
    cols: usize,
) -> Matrix {
    let n = (blocks * cols).min(x.nrows());
    let originals = x.slice(s![..n, ..]).to_owned();
    let recon = decode_images(
        vae,
        store,
        &posterior_means(vae, store, &originals, None),
        None,
    );
    above(&[&originals, &recon], cols)
}

/// For `pairs` pairs of consecutive test images: the first image, `steps` decodings along the
/// straight line between their posterior means, the second image (`steps + 2` per row).
pub fn interpolation(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    pairs: usize,
    steps: usize,
) -> Matrix {
    let pairs = pairs.min(x.nrows() / 2);
    let ends = x.slice(s![..2 * pairs, ..]).to_owned();
    let means = posterior_means(vae, store, &ends, None);
    let latent = means.ncols();
    let mut z = Matrix::zeros((pairs * steps, latent));
    for i in 0..pairs {
        for k in 0..steps {
            let t = if steps > 1 {
                k as f32 / (steps - 1) as f32
            } else {
                0.5
            };
            let line = &means.row(2 * i) * (1.0 - t) + &means.row(2 * i + 1) * t;
            z.row_mut(i * steps + k).assign(&line);
        }
    }
    let decoded = decode_images(vae, store, &z, None);
    let mut rows = Vec::with_capacity(pairs * (steps + 2));
    for i in 0..pairs {
        rows.push(ends.slice(s![2 * i..2 * i + 1, ..]));
        rows.push(decoded.slice(s![i * steps..(i + 1) * steps, ..]));
        rows.push(ends.slice(s![2 * i + 1..2 * i + 2, ..]));
    }
    concatenate(Axis(0), &rows).expect("same widths")
}

/// For a 2-D latent space: decodings of a `grid`×`grid` lattice of z, spaced evenly in
/// probability through the inverse Gaussian CDF (Kingma & Welling 2014, figure 4). Row `r`,
/// column `c` decodes `(Φ⁻¹(u_c), Φ⁻¹(u_{grid-1-r}))`, `u` from 0.05 to 0.95, so z₂ grows upward.
pub fn manifold(vae: &Vae, store: &ParamStore, grid: usize) -> Matrix {
    assert_eq!(
        vae.config().latent_dim,
        2,
        "manifold: needs a 2-D latent space"
    );
    let u = |i: usize| 0.05 + 0.9 * i as f64 / (grid.max(2) - 1) as f64;
    let z = Matrix::from_shape_fn((grid * grid, 2), |(k, d)| {
        let (r, c) = (k / grid, k % grid);
        let q = if d == 0 { u(c) } else { u(grid - 1 - r) };
        normal_quantile(q) as f32
    });
    decode_images(vae, store, &z, None)
}

/// For a label-conditioned model: row `y` decodes the same `per_class` draws of z ~ N(0, I)
/// under label `y`, for y = 0–9 (so a column keeps its style and changes digit).
pub fn classes(vae: &Vae, store: &ParamStore, per_class: usize, rng: &mut ChaCha8Rng) -> Matrix {
    let z = standard_normal(rng, (per_class, vae.config().latent_dim));
    let rows: Vec<usize> = (0..CLASSES).flat_map(|_| 0..per_class).collect();
    let labels: Vec<u8> = (0..CLASSES as u8)
        .flat_map(|y| std::iter::repeat_n(y, per_class))
        .collect();
    decode_images(
        vae,
        store,
        &z.select(Axis(0), &rows),
        Some(&one_hot(&labels)),
    )
}

/// For a label-conditioned model, a row per test image (the first `n`): the image, then z taken
/// from its posterior mean under its own label and decoded with each label 0–9 (11 per row).
pub fn analogies(vae: &Vae, store: &ParamStore, x: &Matrix, labels: &[u8], n: usize) -> Matrix {
    let n = n.min(x.nrows());
    let x = x.slice(s![..n, ..]).to_owned();
    let z = posterior_means(vae, store, &x, Some(&one_hot(&labels[..n])));
    let mut rows = Vec::with_capacity(n * (CLASSES + 1));
    let decoded: Vec<Matrix> = (0..CLASSES as u8)
        .map(|y| decode_images(vae, store, &z, Some(&one_hot(&vec![y; n]))))
        .collect();
    for i in 0..n {
        rows.push(x.slice(s![i..i + 1, ..]));
        rows.extend(decoded.iter().map(|d| d.slice(s![i..i + 1, ..])));
    }
    concatenate(Axis(0), &rows).expect("same widths")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Likelihood, tiny_vae};
    use rand::SeedableRng;

    fn tiny(latent_dim: usize) -> (ParamStore, Vae, Matrix) {
        let (store, vae) = tiny_vae(4, latent_dim, Likelihood::Bernoulli);
        let x = Matrix::from_shape_fn((10, 4), |(i, j)| ((i + j) % 2) as f32);
        (store, vae, x)
    }

    #[test]
    fn blocks_put_each_set_above_the_next() {
        let a = Matrix::from_shape_fn((3, 1), |(i, _)| i as f32);
        let b = a.mapv(|v| v + 10.0);
        let rows = above(&[&a, &b], 2);
        let order: Vec<f32> = rows.column(0).to_vec();
        assert_eq!(order, [0.0, 1.0, 10.0, 11.0, 2.0, 12.0]);
    }

    #[test]
    fn shapes_and_layout() {
        let (store, vae, x) = tiny(2);
        let rng = &mut ChaCha8Rng::seed_from_u64(0);
        assert_eq!(samples(&vae, &store, 6, rng).dim(), (6, 4));
        // 2 blocks of 3: originals 0..3, their reconstructions, originals 3..6, theirs.
        let r = reconstructions(&vae, &store, &x, 2, 3);
        assert_eq!(r.dim(), (12, 4));
        assert_eq!(
            r.slice(s![3..6, ..]),
            reconstructions(&vae, &store, &x, 1, 3).slice(s![3..6, ..])
        );
        assert_eq!(r.slice(s![6..9, ..]), x.slice(s![3..6, ..]));
        // Each interpolation row: image a, 5 steps, image b.
        let i = interpolation(&vae, &store, &x, 2, 5);
        assert_eq!(i.dim(), (14, 4));
        assert_eq!(i.row(0), x.row(0));
        assert_eq!(i.row(6), x.row(1));
        assert_eq!(i.row(7), x.row(2));
        assert_eq!(manifold(&vae, &store, 4).dim(), (16, 4));
    }

    #[test]
    fn interpolation_ends_decode_the_posterior_means() {
        let (store, vae, x) = tiny(3);
        let i = interpolation(&vae, &store, &x, 1, 4);
        let ends = decode_images(
            &vae,
            &store,
            &posterior_means(&vae, &store, &x.slice(s![..2, ..]).to_owned(), None),
            None,
        );
        // Step 0 (row 1) is t = 0, the first mean; step 3 (row 4) is t = 1, the second.
        for (a, b) in i.row(1).iter().zip(ends.row(0)) {
            assert!((a - b).abs() < 1e-6);
        }
        for (a, b) in i.row(4).iter().zip(ends.row(1)) {
            assert!((a - b).abs() < 1e-6);
        }
        for v in i.iter() {
            assert!((0.0..=1.0).contains(v));
        }
    }
}
