//! The sample-quality yardstick's reference classifier: a `--model classifier` run with the
//! fixed settings of [`reference_config`], trained once per dataset into
//! `reference-classifier-<dataset>` beside the run that needs it and reused from there, and
//! loaded with what it makes of its test set. A GAN follows its samples with it while it trains
//! (as the model's [`Yardstick`]); `vae-train eval --quality` measures any model's samples with
//! it.

use std::path::{Path, PathBuf};

use autodiff::Matrix;
use nn::checkpoint;

use super::config::IMAGE_SIZE;
use super::{Loaded, Observer, RunError, load, train_once};
use crate::data::{Binarize, Dataset};
use crate::eval::quality::{
    Coverage, FeatureGaussian, Parzen, coverage, frechet_distance, inception_score, parzen,
    parzen_sigmas,
};
use crate::model::{Classified, LrSchedule, RunConfig, Yardstick};
use crate::models::{CLASSES, ClassifierSettings, predictions};

/// The reference classifier's run: 784-512-512-10 with ReLU and no dropout, Adam at 1e-3 on a
/// cosine schedule for 15 epochs of batches of 128, grayscale images, seed 0: the defaults of
/// `--model classifier` with `--hidden 512,512 --epochs 15 --lr-schedule cosine`. It trains in
/// about 20 s on two cores and is deterministic for the seed (whatever the thread count).
pub fn reference_config(dataset: Dataset, data_dir: Option<PathBuf>) -> RunConfig {
    let mut config = RunConfig::for_model(
        crate::models::kind("classifier").expect("the classifier is registered"),
    );
    let classifier: &mut ClassifierSettings = config.model.get_mut();
    classifier.hidden = vec![512, 512];
    classifier.dropout = 0.0;
    config.data.dataset = dataset;
    config.data.dir = data_dir;
    config.data.binarize = Binarize::None;
    config.epochs = 15;
    config.optimizer.lr_schedule = LrSchedule::Cosine;
    config.iw_samples = 0;
    config
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
    let what = format!("the reference classifier of {}", config.data.dataset);
    train_once(dir, config, observer, &what)
}

/// The reference classifier, loaded, with what it makes of its test set.
pub struct Reference {
    /// Its checkpoint.
    pub path: PathBuf,
    /// Its test accuracy.
    pub accuracy: f64,
    /// The SHA-256 of its parameters
    /// ([`Classify::weights_sha256`](crate::model::Classify::weights_sha256)).
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
        Reference::load_for(path, run.config.data.dataset, shape, data_dir, test_limit)
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
        let model = (RunConfig::default().from_checkpoint(&meta, path)).map(|c| c.kind().name());
        match (model.as_ref().ok().copied(), meta.get(IMAGE_SIZE)) {
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
        let mut config = RunConfig::default();
        (config.data.dir, config.data.test_limit) = (data_dir, test_limit);
        let classifier = load(path, config)?;
        if classifier.config.data.dataset != dataset {
            return Err(RunError::Config(format!(
                "{}: a classifier of {}, but the model is of {}",
                path.display(),
                classifier.config.data.dataset,
                dataset
            )));
        }
        let classify = (classifier.model.abilities().classify).expect("a classifier classifies");
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
        (model.abilities().classify)
            .expect("a classifier")
            .classify(x)
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

impl Yardstick for Reference {
    fn score_and_coverage(&self, images: &Matrix) -> (f64, Coverage) {
        Reference::score_and_coverage(self, images)
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
