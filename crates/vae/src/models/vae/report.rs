//! What the VAE family shares in a run: its `metrics.csv` columns and lines (the negative ELBO
//! and its parts), its end-of-run figures (the importance-weighted log-likelihood and the active
//! units), and the label-conditioned pictures.

use std::path::{Path, PathBuf};

use autodiff::Matrix;
use ndarray::s;
use nn::{Bound, ParamStore};
use rand_chacha::ChaCha8Rng;

use super::eval::{self, Elbo, decode_images};
use super::net::Vae;
use super::pictures;
use crate::data::{Batch, CLASSES, one_hot};
use crate::dist::standard_normal;
use crate::model::{
    Columns, Epoch, Figure, Finish, Params, Picture, Row, RunError, Samples, TestData, TrainData,
    files,
};
use crate::models::report::{Grids, nll_figure};
use crate::parallel::share;
use crate::random::Draws;
use crate::train::{self, Loss, Metrics};

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
    let images = decode_images(vae, store, &z, Some(&one_hot(&labels)));
    Samples {
        images,
        labels: Some(labels),
    }
}
