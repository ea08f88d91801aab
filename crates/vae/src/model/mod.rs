//! What the run asks of a model, whichever `--model` chose it: the [`RunModel`] trait that every
//! model implements in its own file beside its loss, the data it is handed, what it reports, and
//! the [`Sample`] and [`Score`] abilities that evaluations written once use on any model that has
//! them. The registry of `--model` names is [`crate::models::MODELS`].

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use autodiff::Matrix;
use nn::checkpoint::{self, Metadata};
use nn::{Adam, AdamConfig, Optimizer, ParamStore};
use rand_chacha::ChaCha8Rng;

use super::quality::Reference;
use super::{RunConfig, RunError};
use crate::data::{Classes, Split, TRAIN_IMAGES, TRAIN_LABELS, TrainSet, load_split};
use crate::models::one_hot;
use crate::parallel::{Collective, share};
use crate::random::Keys;
use crate::train::{Plan, Stepped};

/// A model as a run trains, tests, pictures and checkpoints it. It owns its parameters and its
/// optimizers (any number of each), so an epoch may take any steps on any of them.
///
/// The run calls, in order: [`train_data`](Self::train_data) once, then each epoch
/// [`train_epoch`](Self::train_epoch), [`test`](Self::test) and [`save`](Self::save); at the end
/// [`pictures`](Self::pictures) and [`finish`](Self::finish). A resumed run calls
/// [`restore`](Self::restore) first.
pub trait RunModel {
    /// Its `metrics.csv` columns between `epoch` and `seconds`.
    fn columns(&self) -> Columns;

    /// The training data in the form it trains on; by default every image of `train` with the
    /// run's binarization.
    fn train_data(&self, config: &RunConfig, train: Split) -> Result<TrainData, RunError> {
        Ok(TrainData::All(TrainSet::new(train, config.binarize)))
    }

    /// One epoch of training; returns the values of the `train` columns.
    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Vec<f64>;

    /// The values of the `test` columns on the test set, with the evaluation's fixed draws
    /// (`keys` are the same every epoch; row `r` of `test` draws as example
    /// `test.examples[r]`).
    fn test(&self, test: &TestData, keys: Keys) -> Vec<f64>;

    /// The parameters of a model that trains data-parallel, which the processes of a run hold
    /// alike; `None` (the default) for a model that trains as one process. A data-parallel
    /// model takes its share of every batch through [`train::epoch`](crate::train::epoch)
    /// with [`Epoch::plan`], every draw of its epoch is keyed by its example, and every value
    /// of its [`test`](Self::test) is a mean over the test images of per-image values, so
    /// that the processes can each take a share of the test set.
    fn shared_parameters(&self) -> Option<&ParamStore> {
        None
    }

    /// One line for the terminal of a row's `values` (train columns, then test columns).
    fn describe(&self, values: &[f64]) -> String {
        let columns = self.columns();
        let names = columns.train.iter().chain(columns.test);
        let parts: Vec<String> = names
            .zip(values)
            .map(|(name, v)| format!("{name} {v:8.3}"))
            .collect();
        parts.join("  ")
    }

    /// One line of the test columns' `values` for the run's summary.
    fn describe_test(&self, values: &[f64]) -> String {
        let parts: Vec<String> = (self.columns().test.iter())
            .zip(values)
            .map(|(name, v)| format!("{name} {v:.2}"))
            .collect();
        parts.join(", ")
    }

    /// Fits, once training is over, what the model fits to its trained self on the training
    /// data (the VQ-VAE's priors over its codes); the run calls it after the last epoch, and
    /// again when resuming a run that stopped in it, and saves the checkpoint again if it
    /// returns `Continue(true)` (something changed). `Break` means that `ctx.on_step` asked to
    /// stop (an interrupt). By default there is nothing to fit.
    fn after_training(
        &mut self,
        _data: &TrainData,
        _ctx: &mut AfterTraining<'_>,
    ) -> ControlFlow<(), bool> {
        ControlFlow::Continue(false)
    }

    /// The figures of the end of a run (and of `vae-train eval`): a log-likelihood estimated with
    /// importance samples, the active units, an error rate, a baseline fitted to the training
    /// images, ...
    fn finish(&self, test: &TestData, ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError>;

    /// Writes its pictures into `out` and returns their paths.
    fn pictures(
        &self,
        test: &TestData,
        out: &Path,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError>;

    /// The picture of `vae-train sample`: `n` of what the model draws; or why it draws none (the
    /// classifier never does, a VQ-VAE not before its priors are fitted).
    fn sample_picture(
        &self,
        test: &TestData,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Picture, String>;

    /// Writes its parameters, optimizer state and `metadata` to the checkpoint `path`, atomically.
    fn save(&self, path: &Path, metadata: &Metadata) -> Result<(), RunError>;

    /// Reads from the checkpoint `path` its parameters and, with [`Restore::Everything`], its
    /// optimizer state. On error nothing has changed.
    fn restore(&mut self, path: &Path, what: Restore) -> Result<(), RunError>;

    /// Whether the model follows the quality of its samples every epoch with the sample-quality
    /// yardstick's reference classifier: the run then trains it (once per dataset, beside the
    /// run's directory) or loads it, and hands it over with
    /// [`set_reference`](Self::set_reference) before it asks for the columns.
    fn wants_reference(&self) -> bool {
        false
    }

    /// Takes the reference classifier that [`wants_reference`](Self::wants_reference) asked for.
    fn set_reference(&mut self, _reference: Rc<Reference>) {}

    /// Writes the pictures it redraws after every epoch into `out` (a GAN's samples from fixed
    /// noise, so that a user sees training unfold) and returns their paths.
    fn epoch_pictures(&self, _out: &Path) -> Result<Vec<PathBuf>, RunError> {
        Ok(Vec::new())
    }

    /// Warnings for the terminal about a row's `values` (train columns, then test columns): a
    /// failure mode the numbers show, e.g. a GAN's discriminator winning.
    fn warnings(&self, _values: &[f64]) -> Vec<String> {
        Vec::new()
    }

    /// The model as a sampler of images, if it draws images unconditionally.
    fn sampler(&self) -> Option<&dyn Sample> {
        None
    }

    /// The model as a scorer of images, if it scores an image on its own.
    fn scorer(&self) -> Option<&dyn Score> {
        None
    }

    /// The model as a sampler once a density is fitted to its codes of some images, if it has
    /// no prior of its own to sample from (an autoencoder).
    fn fitted_sampler(&self) -> Option<&dyn FittedSample> {
        None
    }

    /// The model as a completer of partly seen images, if it draws what it does not see.
    fn completer(&self) -> Option<&dyn Complete> {
        None
    }

    /// The model as a classifier of images, if it is one.
    fn classifier(&self) -> Option<&dyn Classify> {
        None
    }
}

/// A model that gives each image a distribution over the classes (the reference classifier of
/// the sample-quality yardstick).
pub trait Classify {
    /// The class probabilities and the features of every row of `x` (images as in
    /// [`TestData::x`]), in evaluation mode.
    fn classify(&self, x: &Matrix) -> Classified;

    /// The SHA-256 of its parameters (each one's name, shape and little-endian f32 values, in
    /// the store's order), in hex: which classifier produced a figure.
    fn weights_sha256(&self) -> String;
}

/// What a [`Classify`] makes of a set of images.
#[derive(Debug, Clone)]
pub struct Classified {
    /// One row per image: the probability of each class (rows sum to 1).
    pub probs: Matrix,
    /// One row per image: the activations of the classifier's last hidden layer.
    pub features: Matrix,
}

/// A model that draws images from nothing but noise.
pub trait Sample {
    /// `n` images as rows of pixel intensities in [0, 1] (a Bernoulli decoder's means); for a
    /// model that draws a class with each image, their classes too.
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples;

    /// Whether its images are a decoder's means (pixel probabilities, from which binary images
    /// can be drawn as samples too); a GAN's are images themselves.
    fn draws_means(&self) -> bool {
        true
    }
}

/// Images drawn by a [`Sample`].
#[derive(Debug, Clone)]
pub struct Samples {
    /// One image a row, in [0, 1].
    pub images: Matrix,
    /// The class each image was drawn under, for a label-conditioned model.
    pub labels: Option<Vec<u8>>,
}

/// A model that draws images from a density fitted to its codes of the images `x`.
pub trait FittedSample {
    /// `n` images in [0, 1] (a Bernoulli decoder's means), their codes drawn from the density
    /// fitted to the codes of the rows of `x` (images as in [`TestData::x`]).
    fn sample_fitted(&self, x: &Matrix, n: usize, rng: &mut ChaCha8Rng) -> Samples;

    /// What the density is, e.g. `a diagonal Gaussian fitted to the codes`.
    fn density(&self) -> &'static str;
}

/// A model that draws the part of an image it does not see from the part it sees.
pub trait Complete {
    /// Every row of `x` (whole images, as in [`TestData::x`]) with its seen part kept and the
    /// rest drawn (a Bernoulli decoder's means), in [0, 1].
    fn complete(&self, x: &Matrix, rng: &mut ChaCha8Rng) -> Matrix;
}

/// A model that scores images on their own: the higher, the less the model expects the image.
pub trait Score {
    /// What the score is, e.g. `-ELBO` (in nats).
    fn score_name(&self) -> &'static str;

    /// The score of each row of `x`, targets as in [`TestData::x`], row `r` drawing (if the
    /// score is random) as example `r` of `keys`.
    fn score(&self, x: &Matrix, keys: Keys) -> Vec<f64>;

    /// The `scores.csv` column of [`score`](Self::score), e.g. `neg_elbo`.
    fn score_column(&self) -> &'static str;

    /// Every score the model gives each row of `x`, [`score`](Self::score)'s first; by default
    /// that one alone.
    fn scores(&self, x: &Matrix, _settings: &ScoreSettings, keys: Keys) -> Vec<Scores> {
        vec![Scores {
            column: self.score_column(),
            values: self.score(x, keys),
        }]
    }
}

/// How the costlier scores of [`Score::scores`] are estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreSettings {
    /// Importance samples of `-ln p(x)` (0: not estimated).
    pub iw_samples: usize,
    /// Samples of z in the reconstruction probability (0: not estimated).
    pub recon_samples: usize,
}

/// One score of every image, higher meaning less expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Its `scores.csv` column, e.g. `neg_log_px`.
    pub column: &'static str,
    /// One value per image.
    pub values: Vec<f64>,
}

/// A model's `metrics.csv` columns after `epoch`: those of training, then those of the test set
/// (`seconds` follows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// What [`RunModel::train_epoch`] returns, e.g. `train_neg_elbo`.
    pub train: &'static [&'static str],
    /// What [`RunModel::test`] returns, e.g. `test_neg_elbo`.
    pub test: &'static [&'static str],
}

impl Columns {
    /// Every column's name, training's first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.train.iter().chain(self.test).copied()
    }
}

/// What an epoch of training is given besides the data.
pub struct Epoch<'a> {
    /// The keys of the epoch's draws: shuffling, binarization, noise.
    pub keys: Keys,
    /// The processes of the run (a data-parallel model takes its share of every batch).
    pub world: &'a dyn Collective,
    /// Examples per step.
    pub batch_size: usize,
    /// This epoch's learning rate (`--lr` through `--lr-schedule`).
    pub lr: f32,
    /// Told every step's outcome (the progress bar, the divergence and interruption guard);
    /// `Break` ends the epoch at once. Pass it to [`train::epoch`](crate::train::epoch), which
    /// does both.
    pub on_batch: &'a mut dyn FnMut(Stepped<'_>) -> ControlFlow<()>,
}

impl<'a> Epoch<'a> {
    /// How [`train::epoch`](crate::train::epoch) draws and shares the epoch's batches.
    pub fn plan(&self) -> Plan<'a> {
        Plan {
            batch_size: self.batch_size,
            keys: self.keys,
            world: self.world,
        }
    }
}

/// What [`RunModel::after_training`] is given besides the training data.
pub struct AfterTraining<'a> {
    /// Tells the user what is taking long.
    pub note: &'a mut dyn FnMut(&str),
    /// Called after every step of a fit; `Break` (an interrupt) stops it.
    pub on_step: &'a mut dyn FnMut() -> ControlFlow<()>,
}

/// What the end-of-run evaluation is given besides the test data.
pub struct Finish<'a> {
    /// Importance samples of a log-likelihood estimate (`--iw-samples`; 0 skips it).
    pub iw_samples: usize,
    /// The evaluation's keys, those of every epoch's test.
    pub keys: Keys,
    /// The processes of the run: a data-parallel model's estimates take a share of the test
    /// set on each.
    pub world: &'a dyn Collective,
    /// Tells the user what is taking long.
    pub note: &'a mut dyn FnMut(&str),
    /// The run's training images, for a figure that needs them (e.g. a PCA baseline fitted on
    /// them); read from disk only when asked.
    pub train: &'a TrainImages,
}

/// Where a run's training images are: its data folder, `--classes` and `--train-limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainImages {
    /// The folder of the four IDX gz files.
    pub dir: PathBuf,
    /// The labels the run keeps.
    pub classes: Classes,
    /// Only the first N images, if the run was limited.
    pub limit: Option<usize>,
}

impl TrainImages {
    /// Reads the training split's images of the run's classes (grayscale, as in the files).
    pub fn load(&self) -> Result<Split, RunError> {
        let all = load_split(&self.dir.join(TRAIN_IMAGES), &self.dir.join(TRAIN_LABELS))?;
        let mut split = self.classes.keep(all);
        if let Some(n) = self.limit {
            split.truncate(n);
        }
        Ok(split)
    }
}

/// Which parts of a checkpoint to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The parameters only: to evaluate or sample.
    Params,
    /// Parameters and optimizer state: to resume training exactly.
    Everything,
}

/// A figure of the end of a run, e.g. the test `-log p(x)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// What it is, e.g. `-log p(x)`, `classification error`, `active units`.
    pub name: String,
    /// Its value (nats per image, a fraction, a count).
    pub value: f64,
    /// The line that reports it, e.g. `test -log p(x) 92.85 nats`.
    pub line: String,
    /// The importance samples it was estimated with, if it is such an estimate.
    pub importance_samples: Option<usize>,
}

impl Figure {
    /// A figure that is not an importance-sampled estimate.
    pub fn new(name: impl Into<String>, value: f64, line: String) -> Figure {
        Figure {
            name: name.into(),
            value,
            line,
            importance_samples: None,
        }
    }
}

/// A grid of images to write.
#[derive(Debug, Clone)]
pub struct Picture {
    /// One image a row, in [0, 1].
    pub images: Matrix,
    /// Images per row of the grid.
    pub cols: usize,
    /// What it shows, e.g. `64 samples`.
    pub what: String,
}

impl Picture {
    /// `images` in a grid as near square as their number allows.
    pub fn square(images: Matrix, what: String) -> Picture {
        let cols = (images.nrows() as f64).sqrt().ceil().max(1.0) as usize;
        Picture { images, cols, what }
    }
}

/// The training data in the form the model trains on.
pub enum TrainData {
    /// Every training image, labels and all.
    All(TrainSet),
    /// A semi-supervised split: a labeled subset and the rest, unlabeled.
    SemiSupervised {
        /// The labeled examples.
        labeled: TrainSet,
        /// The others (their labels are never used).
        unlabeled: TrainSet,
    },
}

impl TrainData {
    /// Steps per epoch at `batch_size` (one per batch of the largest set).
    pub fn batches(&self, batch_size: usize) -> usize {
        match self {
            TrainData::All(set) => set.len(),
            TrainData::SemiSupervised { unlabeled, .. } => unlabeled.len(),
        }
        .div_ceil(batch_size)
    }

    /// Every training image; panics if the data is a semi-supervised split, which only a model
    /// that asked for one is given.
    #[track_caller]
    pub fn all(&self) -> &TrainSet {
        match self {
            TrainData::All(set) => set,
            TrainData::SemiSupervised { .. } => panic!("a semi-supervised split, not all images"),
        }
    }
}

/// The test set with its fixed targets, as the evaluations take it.
pub struct TestData {
    /// The split (binarized once with the evaluation seed, when binarizing).
    pub split: Split,
    /// All its images as rows.
    pub x: Matrix,
    /// The index in the whole test set of each row (`0..n`, but for a share of it).
    pub examples: Vec<usize>,
}

impl TestData {
    /// The split's images as one matrix.
    pub fn new(split: Split) -> TestData {
        let x = super::images(&split);
        let examples = (0..split.len()).collect();
        TestData { split, x, examples }
    }

    /// Part `part` of `parts` of its rows ([`share`]), keeping their indices.
    pub fn share(&self, part: usize, parts: usize) -> TestData {
        let rows = share(self.x.nrows(), part, parts);
        let indices: Vec<usize> = rows.clone().collect();
        TestData {
            split: self.split.subset(&indices),
            x: self.x.slice(ndarray::s![rows.clone(), ..]).to_owned(),
            examples: self.examples[rows].to_vec(),
        }
    }

    /// Its labels as one-hot rows.
    pub fn one_hot(&self) -> Matrix {
        one_hot(self.split.labels())
    }
}

/// The parameters of a model trained by one Adam, and that Adam: what the models of one network
/// (or of several networks trained as one) hold, with the checkpoint methods they share.
#[derive(Debug, Clone)]
pub struct Params {
    /// The parameters.
    pub store: ParamStore,
    /// Their optimizer.
    pub opt: Adam,
}

impl Params {
    /// `store`, filled by the model's constructor, with an Adam at the rate of `config`.
    pub fn new(store: ParamStore, config: &RunConfig) -> Params {
        let opt = Adam::new(
            &store,
            AdamConfig {
                lr: config.lr,
                weight_decay: config.weight_decay,
                ..AdamConfig::default()
            },
        );
        Params { store, opt }
    }

    /// [`RunModel::save`] for a model of one store and one optimizer.
    pub fn save(&self, path: &Path, metadata: &Metadata) -> Result<(), RunError> {
        Ok(checkpoint::save(path, &self.store, &self.opt, metadata)?)
    }

    /// [`RunModel::restore`] for a model of one store and one optimizer.
    pub fn restore(&mut self, path: &Path, what: Restore) -> Result<(), RunError> {
        match what {
            Restore::Params => checkpoint::load_params(path, &mut self.store)?,
            Restore::Everything => checkpoint::load(path, &mut self.store, &mut self.opt)?,
        };
        Ok(())
    }

    /// Sets the epoch's learning rate; returns the store and the optimizer for its steps.
    pub fn at_lr(&mut self, lr: f32) -> (&mut ParamStore, &mut Adam) {
        self.opt.set_lr(lr);
        (&mut self.store, &mut self.opt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_optimizer_takes_the_runs_rate_and_weight_decay() {
        let config = RunConfig {
            lr: 3e-3,
            weight_decay: 1e-2,
            ..RunConfig::default()
        };
        let params = Params::new(ParamStore::new(), &config);
        let adam = params.opt.config();
        assert_eq!((adam.lr, adam.weight_decay), (3e-3, 1e-2));
        // Adam's coupled L2 penalty (λ·θ in the gradient), as the flag's help says.
        assert!(!adam.decoupled_weight_decay);
    }
}
