//! `vae-train eval --quality`: the same five numbers for the samples of any model that can
//! sample, read by a reference classifier trained on the dataset itself (the field's stand-in
//! for ImageNet's Inception network): the classifier Inception Score, the Fréchet distance of
//! its last hidden layer's features to the test set's, mode coverage, and the Parzen-window
//! log-likelihood of the test set.
//!
//! The reference classifier is a `--model classifier` run with the fixed settings of
//! [`reference_config`], trained once per dataset into `reference-classifier-<dataset>` beside
//! the evaluated run's directory and reused from there.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use autodiff::Matrix;
use nn::checkpoint;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{
    Classified, Complete, FittedSample, IMAGE_SIZE, Loaded, LrSchedule, Observer, RunConfig,
    RunError, Sample, Samples, images, load, train_once, write_atomic,
};
use crate::data::{Binarize, Dataset, eval_targets};
use crate::eval::quality::{
    Coverage, FeatureGaussian, Parzen, coverage, frechet_distance, inception_score, parzen,
    parzen_sigmas,
};
use crate::models::{CLASSES, Likelihood, predictions};

/// Samples drawn by default (`--samples`).
pub const SAMPLES: usize = 10_000;

/// The last training images, held out from the data row to choose the Parzen window's width.
pub const PARZEN_VALIDATION: usize = 1_000;

/// The reference classifier's run: 784-512-512-10 with ReLU and no dropout, Adam at 1e-3 on a
/// cosine schedule for 15 epochs of batches of 128, grayscale images, seed 0: the defaults of
/// `--model classifier` with `--hidden 512,512 --epochs 15 --lr-schedule cosine`. It trains in
/// about 20 s on two cores and is deterministic for the seed (whatever the thread count).
pub fn reference_config(dataset: Dataset, data_dir: Option<PathBuf>) -> RunConfig {
    RunConfig {
        model: "classifier".parse().expect("the classifier is registered"),
        dataset,
        data_dir,
        hidden: vec![512, 512],
        dropout: 0.0,
        epochs: 15,
        lr_schedule: LrSchedule::Cosine,
        binarize: Binarize::None,
        iw_samples: 0,
        ..RunConfig::default()
    }
}

/// Where the reference classifier of `dataset` lives for the run of `checkpoint`: the folder
/// `reference-classifier-<dataset>` beside the run's directory (`runs/` for a run in
/// `runs/<name>/`).
pub fn reference_dir(checkpoint: &Path, dataset: Dataset) -> PathBuf {
    let non_empty = |p: &&Path| !p.as_os_str().is_empty();
    let run_dir = checkpoint
        .parent()
        .filter(non_empty)
        .unwrap_or(Path::new("."));
    let beside = run_dir.parent().filter(non_empty).unwrap_or(Path::new("."));
    beside.join(format!("reference-classifier-{}", dataset.name()))
}

/// The reference classifier's checkpoint in `dir`, trained there first if it is not (or not
/// fully) trained. A checkpoint there of other settings is an error, not overwritten.
pub fn ensure_reference(
    dir: &Path,
    config: RunConfig,
    observer: &mut dyn Observer,
) -> Result<PathBuf, RunError> {
    let what = format!("the reference classifier of {}", config.dataset);
    train_once(dir, config, observer, &what)
}

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
    let model = &run.model;
    match (model.sampler(), model.completer(), model.fitted_sampler()) {
        (Some(sampler), _, _) => Ok(Source::Samples(sampler)),
        (None, Some(completer), _) => Ok(Source::Completions(completer)),
        (None, None, Some(fitted)) => Ok(Source::Fitted(fitted)),
        (None, None, None) => Err(RunError::Config(format!(
            "{}: model {} does not draw images, so --quality has nothing to measure (it \
             measures the samples of vae, cvae, m2, ae, dae, vqvae, pixel-ar, gan and wgan and \
             the completions of completion)",
            checkpoint.display(),
            run.config.model
        ))),
    }
}

/// The reference classifier, loaded, with what it makes of its test set.
pub struct Reference {
    /// Its checkpoint.
    pub path: PathBuf,
    /// Its test accuracy.
    pub accuracy: f64,
    /// The SHA-256 of its parameters ([`Classify::weights_sha256`](super::Classify::weights_sha256)).
    pub sha256: String,
    classifier: Loaded,
    test: Classified,
    test_features: FeatureGaussian,
}

impl Reference {
    /// Loads the classifier at `path` for the samples of `run`: it must be a classifier of the
    /// run's dataset and image size. `data_dir` and `test_limit` as for the run.
    pub fn load(
        path: &Path,
        run: &Loaded,
        data_dir: Option<PathBuf>,
        test_limit: Option<usize>,
    ) -> Result<Reference, RunError> {
        let shape = run.test.split.image_shape();
        Reference::load_for(path, run.config.dataset, shape, data_dir, test_limit)
    }

    /// Loads the classifier at `path` for images of `dataset` of `shape` (height, width): it
    /// must be a classifier of that dataset and image size.
    pub fn load_for(
        path: &Path,
        dataset: Dataset,
        (height, width): (usize, usize),
        data_dir: Option<PathBuf>,
        test_limit: Option<usize>,
    ) -> Result<Reference, RunError> {
        let meta = checkpoint::read_metadata(path)?;
        let size = format!("{height}x{width}");
        match (meta.get("model").map(String::as_str), meta.get(IMAGE_SIZE)) {
            (Some("classifier"), Some(found)) if *found != size => {
                return Err(RunError::Config(format!(
                    "{}: a classifier of {found} images, but the model's images are {size}",
                    path.display()
                )));
            }
            (Some("classifier"), _) => {}
            (found, _) => {
                return Err(RunError::Config(format!(
                    "{}: a checkpoint of model {}, not a classifier (--classifier takes the \
                     checkpoint of a `--model classifier` run)",
                    path.display(),
                    found.unwrap_or("(none)")
                )));
            }
        }
        let config = RunConfig {
            data_dir,
            test_limit,
            ..RunConfig::default()
        };
        let classifier = load(path, config)?;
        if classifier.config.dataset != dataset {
            return Err(RunError::Config(format!(
                "{}: a classifier of {}, but the model is of {}",
                path.display(),
                classifier.config.dataset,
                dataset
            )));
        }
        let classify = classifier
            .model
            .classifier()
            .expect("a classifier classifies");
        let test = classify.classify(&classifier.test.x);
        let right = (predictions(&test.probs).iter())
            .zip(classifier.test.split.labels())
            .filter(|(p, y)| p == y)
            .count();
        Ok(Reference {
            path: path.to_path_buf(),
            accuracy: right as f64 / classifier.test.split.len().max(1) as f64,
            sha256: classify.weights_sha256(),
            test_features: FeatureGaussian::fit(&test.features),
            classifier,
            test,
        })
    }

    fn classify(&self, x: &Matrix) -> Classified {
        let model = &self.classifier.model;
        model.classifier().expect("a classifier").classify(x)
    }

    /// The cheap part of the yardstick, for a model to follow its samples over training: the
    /// Inception Score and the class coverage of `images` (in [0, 1]).
    pub fn score_and_coverage(&self, images: &Matrix) -> (f64, Coverage) {
        let classified = self.classify(images);
        let predicted = predictions(&classified.probs);
        (
            inception_score(&classified.probs),
            coverage(&predicted, CLASSES),
        )
    }

    /// The test images the samples are compared with (grayscale).
    pub fn test_images(&self) -> &Matrix {
        &self.classifier.test.x
    }

    /// The five numbers of `images` (in [0, 1]): drawn under `labels` for a label-conditioned
    /// model, the Parzen width chosen on `validation`.
    pub fn measure(
        &self,
        what: String,
        images: &Matrix,
        labels: Option<&[u8]>,
        validation: &Matrix,
    ) -> Result<Quality, RunError> {
        let classified = self.classify(images);
        let predicted = predictions(&classified.probs);
        let frechet = frechet_distance(
            &FeatureGaussian::fit(&classified.features),
            &self.test_features,
        )
        .map_err(|e| RunError::Config(e.to_string()))?;
        Ok(Quality {
            what,
            count: images.nrows(),
            inception_score: inception_score(&classified.probs),
            coverage: coverage(&predicted, CLASSES),
            frechet_distance: Some(frechet),
            parzen: Some(parzen(
                images,
                validation,
                self.test_images(),
                &parzen_sigmas(),
            )),
            label_accuracy: labels.map(|labels| agreement(&predicted, labels)),
        })
    }

    /// The test set's own Inception Score and coverage: the ceiling of the samples' (its
    /// Fréchet distance to itself is 0 and it has no Parzen figure of its own).
    pub fn test_row(&self, dataset: Dataset) -> Quality {
        let predicted = predictions(&self.test.probs);
        Quality {
            what: format!("{dataset} test set"),
            count: self.test.probs.nrows(),
            inception_score: inception_score(&self.test.probs),
            coverage: coverage(&predicted, CLASSES),
            frechet_distance: None,
            parzen: None,
            label_accuracy: Some(agreement(&predicted, self.classifier.test.split.labels())),
        }
    }
}

/// The fraction of `a` equal to `b`, element for element.
fn agreement(a: &[u8], b: &[u8]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// The yardstick's numbers of one set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    /// What was measured, e.g. `samples (decoder means)`.
    pub what: String,
    /// How many images.
    pub count: usize,
    /// The classifier Inception Score.
    pub inception_score: f64,
    /// The Fréchet distance of the classifier's features to the test set's.
    pub frechet_distance: Option<f64>,
    /// The classes the classifier sees among the images.
    pub coverage: Coverage,
    /// The Parzen-window log-likelihood of the test set under the images.
    pub parzen: Option<Parzen>,
    /// For images drawn under a label (or the test set with its labels): the fraction the
    /// classifier assigns to that label.
    pub label_accuracy: Option<f64>,
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
    let given = || images(&eval_targets(&first, run.config.binarize));
    let measure = |what: String, images: &Matrix, labels: Option<&[u8]>| {
        reference.measure(what, images, labels, &validation)
    };
    let mut rows = vec![reference.test_row(run.config.dataset)];
    note("measuring training images");
    rows.push(measure(
        format!("{} training images", run.config.dataset),
        &data,
        None,
    )?);
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
    let (model, labels) = (run.config.model, samples.labels.as_deref());
    let form = if means { " (means)" } else { "" };
    rows.push(measure(
        format!("{model}: {what}{form}"),
        &samples.images,
        labels,
    )?);
    if means && run.config.likelihood == Likelihood::Bernoulli {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_lives_beside_the_run_directory() {
        let at = |c: &str| reference_dir(Path::new(c), Dataset::Mnist);
        assert_eq!(
            at("runs/mnist-vae-1/checkpoint.safetensors"),
            Path::new("runs/reference-classifier-mnist")
        );
        assert_eq!(
            at("/a/b/run/checkpoint.safetensors"),
            Path::new("/a/b/reference-classifier-mnist")
        );
        assert_eq!(
            at("checkpoint.safetensors"),
            Path::new("./reference-classifier-mnist")
        );
        assert_eq!(
            reference_dir(Path::new("r/x/c.safetensors"), Dataset::FashionMnist),
            Path::new("r/reference-classifier-fashion-mnist")
        );
    }

    #[test]
    fn agreement_counts_equal_positions() {
        assert_eq!(agreement(&[1, 2, 3, 4], &[1, 0, 3, 0]), 0.5);
        assert_eq!(agreement(&[], &[]), 0.0);
    }
}
