//! What the VAE family shares in a run: its `metrics.csv` columns and lines (the negative ELBO
//! and its parts), its end-of-run figures (the importance-weighted log-likelihood and the active
//! units), the label-conditioned pictures, and a grid writer for the pictures of any model.

use std::path::{Path, PathBuf};

use autodiff::Matrix;
use ndarray::s;
use nn::ParamStore;
use rand_chacha::ChaCha8Rng;

use super::{CLASSES, Loss, Metrics, Vae};
use crate::data::Batch;
use crate::dist::standard_normal;
use crate::eval::{self, Elbo, cluster, decode_images};
use crate::image;
use crate::parallel::share;
use crate::pictures;
use crate::random::Draws;
use crate::train;
use nn::Bound;

use crate::model::{
    Columns, Epoch, Figure, Finish, Params, Picture, Row, RunError, Samples, TestData, TrainData,
};
use crate::run::files;

/// The columns of every model with an ELBO: the training −ELBO, the test −ELBO and its parts.
pub const ELBO_COLUMNS: Columns = Columns {
    train: &["train_neg_elbo"],
    test: &["test_neg_elbo", "test_recon", "test_kl"],
};

/// The training −ELBO of an epoch's mean metrics: recon + kl whatever β.
pub fn train_neg_elbo(mean: &Metrics) -> f64 {
    mean.part("recon").unwrap_or(0.0) + mean.part("kl").unwrap_or(0.0)
}

/// An epoch of [`train::epoch`] over all the training images with the loss `loss` builds for a
/// batch, at the rate the run set; returns the train column of [`ELBO_COLUMNS`].
pub fn elbo_epoch(
    params: &mut Params,
    data: &TrainData,
    ctx: &mut Epoch<'_>,
    loss: impl for<'t> Fn(&Bound<'t>, Batch, &Draws<'_>) -> Loss<'t>,
) -> Row {
    let (store, opt) = params.parts();
    let set = data.all();
    let plan = ctx.plan();
    let mean = train::epoch(store, opt, set, plan, loss, &mut *ctx.on_batch);
    Row::new(ELBO_COLUMNS.train, vec![train_neg_elbo(&mean)])
}

/// The test columns of [`ELBO_COLUMNS`].
pub fn elbo_values(elbo: Elbo) -> Row {
    Row::new(ELBO_COLUMNS.test, vec![elbo.neg_elbo, elbo.recon, elbo.kl])
}

/// `{train} 165.092  test -ELBO 128.338 (recon 105.308, KL 23.030)` of an epoch's row, its
/// first value the train figure named `train`.
pub fn describe_elbo(train: &str, row: &Row) -> String {
    let first = row.values().next().unwrap_or(f64::NAN);
    format!(
        "{train} {first:8.3}  test -ELBO {:8.3} (recon {:8.3}, KL {:7.3})",
        row.get("test_neg_elbo"),
        row.get("test_recon"),
        row.get("test_kl")
    )
}

/// `test -ELBO 98.67 nats (recon 68.78, KL 29.89)` of the test columns of [`ELBO_COLUMNS`].
pub fn describe_test_elbo(test: &Row) -> String {
    format!(
        "test -ELBO {:.2} nats (recon {:.2}, KL {:.2})",
        test.get("test_neg_elbo"),
        test.get("test_recon"),
        test.get("test_kl")
    )
}

/// `what` (e.g. `-log p(x)`) of the rows of `x` given `cond`, estimated with `ctx.iw_samples`
/// importance samples (skipped when there are none).
pub fn iw_nll_figure(
    what: &'static str,
    (vae, store): (&Vae, &ParamStore),
    (x, cond): (&Matrix, Option<&Matrix>),
    ctx: &mut Finish<'_>,
) -> Option<Figure> {
    let k = ctx.iw_samples;
    (k > 0).then(|| {
        (ctx.note)(&format!(
            "estimating the log-likelihood of {} test images with {k} importance samples",
            x.nrows()
        ));
        // Each process estimates its share of the images; the shares' means, weighted.
        let rows = share(x.nrows(), ctx.world.rank(), ctx.world.ranks());
        let (x_mine, cond_mine) = (
            x.slice(s![rows.clone(), ..]).to_owned(),
            cond.map(|c| c.slice(s![rows.clone(), ..]).to_owned()),
        );
        let examples: Vec<usize> = rows.collect();
        let mut nll = [eval::iw_nll(
            vae,
            store,
            &x_mine,
            cond_mine.as_ref(),
            k,
            &ctx.keys.draws(&examples),
        ) * examples.len() as f64
            / x.nrows().max(1) as f64];
        ctx.world.sum_f64(&mut nll);
        nll_figure(what, nll[0], Some(k))
    })
}

/// The figure `test {what} {nll} nats`.
pub fn nll_figure(what: &'static str, nll: f64, importance_samples: Option<usize>) -> Figure {
    Figure {
        name: what.into(),
        value: nll,
        line: format!("test {what} {nll:.2} nats"),
        importance_samples,
    }
}

/// The latent dimensions in use over the rows of `x` given `cond`: `active units 29 of 32`.
pub fn active_units_figure(
    vae: &Vae,
    store: &ParamStore,
    x: &Matrix,
    cond: Option<&Matrix>,
) -> Figure {
    let au = eval::active_units(vae, store, x, cond);
    Figure::new(
        "active units",
        au.count as f64,
        format!("active units {} of {}", au.count, au.variances.len()),
    )
}

/// k-means with one cluster per class on the rows of `x` (the test set as `what` represents
/// it: `posterior means`, `codes`, `pixels`), scored against `labels` over
/// [`cluster::TRIALS`] fits: the mean cluster accuracy and NMI, with their spread in the lines,
/// `k-means on the codes: cluster accuracy 81.20 % (sd 2.10 over 5 fits)`.
pub fn cluster_figures(what: &str, x: &Matrix, labels: &[u8], ctx: &mut Finish<'_>) -> [Figure; 2] {
    (ctx.note)(&format!(
        "k-means on the {what} of {} test images ({} fits of {} starts)",
        x.nrows(),
        cluster::TRIALS,
        cluster::RESTARTS
    ));
    let scores = cluster::cluster_scores(x, labels);
    let fits = cluster::TRIALS;
    [
        Figure::new(
            format!("k-means accuracy, {what}"),
            scores.accuracy,
            format!(
                "k-means on the {what}: cluster accuracy {:.2} % (sd {:.2} over {fits} fits)",
                100.0 * scores.accuracy,
                100.0 * scores.accuracy_sd
            ),
        ),
        Figure::new(
            format!("k-means NMI, {what}"),
            scores.nmi,
            format!(
                "k-means on the {what}: NMI {:.3} (sd {:.3} over {fits} fits)",
                scores.nmi, scores.nmi_sd
            ),
        ),
    ]
}

/// Pictures written into one run directory, the paths remembered.
pub struct Grids<'a> {
    out: &'a Path,
    shape: (usize, usize),
    written: Vec<PathBuf>,
}

impl<'a> Grids<'a> {
    /// Grids of images of `shape` into `out`.
    pub fn new(out: &'a Path, shape: (usize, usize)) -> Self {
        Grids {
            out,
            shape,
            written: Vec::new(),
        }
    }

    /// Writes `images` (one a row, in [0, 1]) as `name`, `cols` to a row.
    pub fn grid(&mut self, name: &str, images: &Matrix, cols: usize) -> Result<(), RunError> {
        let path = self.out.join(name);
        image::save_grid(&path, images, self.shape, cols)?;
        self.written.push(path);
        Ok(())
    }

    /// `reconstructions.png` of an autoencoder: four rows of 16 of the first test images `x`,
    /// each row above its reconstructions by `reconstruct` (pictures in [0, 1]). Returns the
    /// images shown, for more pictures of the same ones.
    pub fn reconstructions(
        &mut self,
        x: &Matrix,
        reconstruct: impl FnOnce(&Matrix) -> Matrix,
    ) -> Result<Matrix, RunError> {
        let cols = 16;
        let x = x.slice(s![..x.nrows().min(4 * cols), ..]).to_owned();
        let rows = pictures::above(&[&x, &reconstruct(&x)], cols);
        self.grid(files::RECONSTRUCTIONS, &rows, cols)?;
        Ok(x)
    }

    /// Writes `picture` as `name`, its own number of images to a row.
    pub fn picture(&mut self, name: &str, picture: &Picture) -> Result<(), RunError> {
        self.grid(name, &picture.images, picture.cols)
    }

    /// `latent.png`: the rows of `points` (2-D codes or posterior means of the test set),
    /// coloured by `labels`.
    pub fn latent(&mut self, points: &Matrix, labels: &[u8]) -> Result<(), RunError> {
        let points: Vec<(f32, f32)> = points.rows().into_iter().map(|r| (r[0], r[1])).collect();
        let path = self.other(files::LATENT);
        Ok(image::save_scatter(&path, &points, labels, 600)?)
    }

    /// The path of `name` in the directory, remembered as written (for pictures drawn another
    /// way).
    pub fn other(&mut self, name: &str) -> PathBuf {
        let path = self.out.join(name);
        self.written.push(path.clone());
        path
    }

    /// Every path written.
    pub fn finish(self) -> Vec<PathBuf> {
        self.written
    }
}

/// The pictures of a label-conditioned VAE: `classes.png` and `analogies.png`.
pub fn label_pictures(
    (vae, store): (&Vae, &ParamStore),
    test: &TestData,
    out: &Path,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<PathBuf>, RunError> {
    let mut grids = Grids::new(out, test.split.image_shape());
    grids.grid(files::CLASSES, &pictures::classes(vae, store, 10, rng), 10)?;
    let analogies = pictures::analogies(vae, store, &test.x, test.split.labels(), 10);
    grids.grid(files::ANALOGIES, &analogies, CLASSES + 1)?;
    Ok(grids.finish())
}

/// `vae-train sample` of a label-conditioned VAE: a row of draws under each label.
pub fn label_sample_picture(
    (vae, store): (&Vae, &ParamStore),
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Picture {
    let per_class = n.div_ceil(CLASSES);
    Picture {
        images: pictures::classes(vae, store, per_class, rng),
        cols: per_class,
        what: "samples under each label".into(),
    }
}

/// `n` draws of a label-conditioned VAE: labels 0–9 in turn, z ~ N(0, I).
pub fn label_samples((vae, store): (&Vae, &ParamStore), n: usize, rng: &mut ChaCha8Rng) -> Samples {
    let labels: Vec<u8> = (0..n).map(|i| (i % CLASSES) as u8).collect();
    let z = standard_normal(rng, (n, vae.config().latent_dim));
    let images = decode_images(vae, store, &z, Some(&super::one_hot(&labels)));
    Samples {
        images,
        labels: Some(labels),
    }
}
