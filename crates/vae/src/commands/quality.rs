//! `vae-train eval --quality`: the same five numbers for the samples of any model that can
//! sample, read by a reference classifier trained on the dataset itself (the field's stand-in
//! for ImageNet's Inception network): the classifier Inception Score, the Fréchet distance of
//! its last hidden layer's features to the test set's, mode coverage, and the Parzen-window
//! log-likelihood of the test set.
//!
//! The reference classifier is [`crate::run::reference`]'s.

use std::fmt::Write as _;
use std::path::Path;

use autodiff::Matrix;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::eval_targets;
use crate::data::images;
use crate::model::{Complete, FittedSample, RunError, Sample, Samples};
use crate::models::Likelihood;
use crate::run::reference::{Quality, Reference};
use crate::run::{Loaded, write_atomic};

/// Samples drawn by default (`--samples`).
pub const SAMPLES: usize = 10_000;

/// The last training images, held out from the data row to choose the Parzen window's width.
pub const PARZEN_VALIDATION: usize = 1_000;

/// Where the measured images come from.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// A model's samples.
    Samples(&'a dyn Sample),
    /// A model's completions of the training images' seen part.
    Completions(&'a dyn Complete),
    /// A model's decodings of codes drawn from a density fitted to its codes of the training
    /// images.
    Fitted(&'a dyn FittedSample),
}

/// What the model of a run draws, or the error `--quality` gives for one that draws nothing.
pub fn source<'a>(run: &'a Loaded, checkpoint: &Path) -> Result<Source<'a>, RunError> {
    let abilities = run.model.abilities();
    match (
        abilities.sample,
        abilities.complete,
        abilities.fitted_sample,
    ) {
        (Some(sampler), _, _) => Ok(Source::Samples(sampler)),
        (None, Some(completer), _) => Ok(Source::Completions(completer)),
        (None, None, Some(fitted)) => Ok(Source::Fitted(fitted)),
        (None, None, None) => Err(RunError::Config(format!(
            "{}: model {} does not draw images, so --quality has nothing to measure (it \
             measures the samples of vae, cvae, m2, ae, dae, vqvae, pixel-ar, gan and wgan and \
             the completions of completion)",
            checkpoint.display(),
            run.config.kind()
        ))),
    }
}

/// The rows of `eval --quality` for the model of `run`: the test set, training images (the
/// data's own score), the model's `n` samples as its decoder's means and, for a Bernoulli
/// decoder, binary images drawn from those means (a GAN's images as they are: they are not
/// means). A completion model completes the first `n`
/// training images and an autoencoder fits its density to their codes (the images binarized as
/// its test set is).
pub fn measure(
    run: &Loaded,
    source: Source<'_>,
    reference: &Reference,
    n: usize,
    rng: &mut ChaCha8Rng,
    note: &mut dyn FnMut(&str),
) -> Result<Vec<Quality>, RunError> {
    let train = run.train.load()?;
    if train.len() <= PARZEN_VALIDATION {
        return Err(RunError::Config(format!(
            "--quality needs more than {PARZEN_VALIDATION} training images (the last \
             {PARZEN_VALIDATION} choose the Parzen width); the run has {}",
            train.len()
        )));
    }
    let held_out = train.len() - PARZEN_VALIDATION;
    let validation = images(&train.subset(&(held_out..train.len()).collect::<Vec<_>>()));
    let first = train.subset(&(0..n.min(held_out)).collect::<Vec<_>>());
    let data = images(&first);
    // The first images as the model's test set is binarized: what completions and fitted
    // densities are given.
    let given = || images(&eval_targets(&first, run.config.data.binarize));
    let measure = |what: String, images: &Matrix, labels: Option<&[u8]>| {
        reference.measure(what, images, labels, &validation)
    };
    let dataset = run.config.data.dataset;
    let mut rows = vec![reference.test_row(dataset)];
    note("measuring training images");
    rows.push(measure(format!("{dataset} training images"), &data, None)?);
    let (samples, what, means) = match source {
        Source::Samples(sampler) => {
            note(&format!("drawing and measuring {n} samples"));
            (sampler.sample(n, rng), "samples", sampler.draws_means())
        }
        Source::Completions(completer) => {
            note(&format!(
                "completing and measuring {} training images",
                first.len()
            ));
            let images = completer.complete(&given(), rng);
            let completions = Samples {
                images,
                labels: None,
            };
            (completions, "completions", true)
        }
        Source::Fitted(fitted) => {
            note(&format!(
                "drawing and measuring {n} samples from {} of {} training images",
                fitted.density(),
                first.len()
            ));
            (fitted.sample_fitted(&given(), n, rng), "samples", true)
        }
    };
    let (model, labels) = (run.config.kind(), samples.labels.as_deref());
    let form = if means { " (means)" } else { "" };
    rows.push(measure(
        format!("{model}: {what}{form}"),
        &samples.images,
        labels,
    )?);
    // A decoder's means are pixel probabilities unless its likelihood (the `likelihood`
    // setting of the models that have one) is Gaussian.
    let settings = run.config.model.to_table();
    let likelihood = settings
        .get("likelihood")
        .and_then(|l| l.as_str()?.parse().ok());
    if means && likelihood != Some(Likelihood::Gaussian) {
        let binary = samples.images.mapv(|p| f32::from(rng.random::<f32>() < p));
        rows.push(measure(
            format!("{model}: {what} (binary)"),
            &binary,
            labels,
        )?);
    }
    Ok(rows)
}

/// The rows as an aligned table for the terminal.
pub fn table(rows: &[Quality]) -> String {
    let mut s = format!(
        "{:<40} {:>6} {:>8} {:>7} {:>8}  {:>22} {:>9}\n",
        "images", "IS", "FD", "classes", "KL(unif)", "Parzen ± se (σ)", "label acc"
    );
    for q in rows {
        let fd = q.frechet_distance.map_or("—".into(), |d| format!("{d:.2}"));
        let parzen = q.parzen.as_ref().map_or("—".into(), |p| {
            format!("{:.1} ± {:.1} ({:.3})", p.mean, p.standard_error, p.sigma)
        });
        let acc = (q.label_accuracy).map_or("—".into(), |a| format!("{:.2}%", 100.0 * a));
        let _ = writeln!(
            s,
            "{:<40} {:>6.2} {:>8} {:>7} {:>8.4}  {:>22} {:>9}",
            format!("{} ({})", q.what, q.count),
            q.inception_score,
            fd,
            q.coverage.classes,
            q.coverage.kl_to_uniform,
            parzen,
            acc
        );
    }
    s
}

/// Writes the rows to `path` as CSV (an empty field where a figure does not apply),
/// atomically.
pub fn write_csv(path: &Path, rows: &[Quality]) -> Result<(), RunError> {
    let mut s = String::from(
        "images,count,inception_score,frechet_distance,classes,kl_to_uniform,parzen_sigma,\
         parzen_log_likelihood,parzen_standard_error,label_accuracy\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    for q in rows {
        let p = q.parzen.as_ref();
        let _ = writeln!(
            s,
            "{},{},{:.6},{},{},{:.6},{},{},{},{}",
            q.what,
            q.count,
            q.inception_score,
            opt(q.frechet_distance),
            q.coverage.classes,
            q.coverage.kl_to_uniform,
            opt(p.map(|p| p.sigma)),
            opt(p.map(|p| p.mean)),
            opt(p.map(|p| p.standard_error)),
            opt(q.label_accuracy),
        );
    }
    write_atomic(path, &s)
}
