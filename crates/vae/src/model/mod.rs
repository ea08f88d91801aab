//! The seam between a run and its models: the [`RunModel`] trait that every model implements in
//! its own file beside its loss, its [`ModelEntry`] in the registry
//! ([`crate::models::MODELS`]), its typed [`Settings`], the data it is handed, what it reports,
//! and the [`Sample`] and [`Score`] abilities that evaluations written once use on any model
//! that has them.

mod settings;

pub use settings::{
    AnySettings, DataSettings, LrSchedule, ModelSettings, OptimizerSettings, RunConfig, Schema,
    Settings, by_str, positive, short_f32,
};

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use autodiff::Matrix;
use nn::checkpoint::{self, Metadata, Trained, TrainedMut};
use nn::{Adam, AdamConfig, Optimizer, ParamStore};
use rand_chacha::ChaCha8Rng;

use crate::data::{
    Binarize, Classes, Split, TRAIN_IMAGES, TRAIN_LABELS, TrainSet, load_split, one_hot,
};
pub use crate::error::RunError;
use crate::parallel::{Collective, share};
use crate::random::Keys;
use crate::train::{Plan, Stepped};

/// The file names of a run directory.
pub mod files {
    /// The run's configuration, as TOML.
    pub const CONFIG: &str = "config.toml";
    /// One row per epoch.
    pub const METRICS: &str = "metrics.csv";
    /// Parameters, optimizer state, the settings and the epoch, rewritten atomically every
    /// epoch.
    pub const CHECKPOINT: &str = "checkpoint.safetensors";
    /// The `metrics.csv` columns against the epoch, rewritten every epoch.
    pub const CURVES: &str = "curves.png";
    /// 8×8 decodings of z ~ N(0, I).
    pub const SAMPLES: &str = "samples.png";
    /// Test images above their reconstructions.
    pub const RECONSTRUCTIONS: &str = "reconstructions.png";
    /// Decoded straight lines in latent space between pairs of test images.
    pub const INTERPOLATION: &str = "interpolation.png";
    /// A 2-D latent space decoded on a grid (latent dimension 2 only).
    pub const MANIFOLD: &str = "manifold.png";
    /// Test posterior means coloured by label (latent dimension 2 only).
    pub const LATENT: &str = "latent.png";
    /// Label-conditioned models: row y decodes the same draws of z under label y.
    pub const CLASSES: &str = "classes.png";
    /// Label-conditioned models: a test image, then its z decoded under each label.
    pub const ANALOGIES: &str = "analogies.png";
    /// Completion: the observed part, sampled completions, the truth.
    pub const COMPLETION: &str = "completion.png";
    /// DAE: test images corrupted, denoised, and clean, in rows.
    pub const DENOISING: &str = "denoising.png";
    /// Classifier: misclassified test images.
    pub const MISTAKES: &str = "mistakes.png";
    /// VQ-VAE: how often each code is used on the test set, as a bar chart.
    pub const CODEBOOK: &str = "codebook.png";
    /// GAN: a row of samples from the same noise per epoch, oldest at the top.
    pub const PROGRESS: &str = "progress.png";
    /// `eval --quality`: the sample-quality figures, one row per kind of sample.
    pub const QUALITY: &str = "quality.csv";
}

/// Reads the checkpoint `path` into `model`: its own metadata first
/// ([`RunModel::read_metadata`]), then its [`State`]. On error the state has not changed.
pub fn restore(model: &mut dyn RunModel, path: &Path, what: Restore) -> Result<(), RunError> {
    let meta = checkpoint::read_metadata(path)?;
    model.read_metadata(&meta, path)?;
    model.state().restore(path, what)
}

/// A model as the registry knows it: its name, its settings, how it is built.
pub struct ModelEntry {
    /// Its `--model` name, also in checkpoints and `config.toml`.
    pub name: &'static str,
    /// What it is, in a few words.
    pub about: &'static str,
    /// Its own settings: flags, defaults, checks, TOML ([`Schema::of`] its [`Settings`]).
    pub schema: Schema,
    /// How its targets are binarized when `--binarize` is not given.
    pub binarize: Binarize,
    /// Sets its own defaults of the shared settings (a GAN's batch size and learning rate,
    /// say) in the run's defaults; [`keep`] for none.
    pub defaults: fn(&mut RunConfig),
    /// Makes `config`, the model's own, that of the background model of its likelihood ratio
    /// (`vae-train anomaly --protocol ood`) beyond the perturbed training images
    /// `--background` already asks for; [`keep`] for the same model.
    pub background: fn(&mut RunConfig),
    /// The values of its settings in checkpoints written before the setting existed (as the
    /// flag spells them; `window = 3,3` for pixel-ar), for checkpoints whose metadata has a
    /// key per setting.
    pub legacy: &'static [(&'static str, &'static str)],
    /// Whether the trained model scores an image on its own ([`Abilities::score`]; a VQ-VAE
    /// once its priors are fitted after training): the anomaly protocols take the models that
    /// do. The registry's tests hold it to the trained model's abilities.
    pub scores: bool,
    /// The training data in the form the model trains on ([`all_images`] for every image of
    /// the split with the run's binarization).
    pub data: fn(&RunConfig, Split) -> Result<TrainData, RunError>,
    /// The model `config` describes, as `build` says (the images' shape, the reference
    /// classifier), initialised from the run's seed.
    pub build: fn(&RunConfig, &Build) -> Box<dyn RunModel>,
}

/// What a model is handed when it is built, besides its settings.
#[derive(Clone)]
pub struct Build {
    /// The images' (height, width).
    pub shape: (usize, usize),
    /// The sample-quality yardstick's reference classifier, if the model's settings asked for
    /// it ([`Settings::wants_reference`]).
    pub reference: Option<Rc<dyn Yardstick>>,
}

impl Build {
    /// For images of `shape`, with no reference classifier.
    pub fn of(shape: (usize, usize)) -> Build {
        Build {
            shape,
            reference: None,
        }
    }
}

/// The sample-quality yardstick's reference classifier as a model sees it: it scores the
/// model's samples during training.
pub trait Yardstick {
    /// The classifier Inception Score of `images` (rows in [0, 1]) and the classes they cover.
    fn score_and_coverage(&self, images: &Matrix) -> (f64, crate::eval::quality::Coverage);
}

/// [`ModelEntry::data`] of most models: every image of `train` with the run's binarization.
pub fn all_images(config: &RunConfig, train: Split) -> Result<TrainData, RunError> {
    Ok(TrainData::All(TrainSet::new(train, config.data.binarize)))
}

/// [`ModelEntry::defaults`] and [`ModelEntry::background`] of a model that takes the run's
/// settings as they are.
pub fn keep(_: &mut RunConfig) {}

/// Which model a run trains (`--model`): an entry of [`crate::models::MODELS`].
#[derive(Clone, Copy)]
pub struct ModelKind(pub(crate) &'static ModelEntry);

impl ModelKind {
    /// The name on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Its registry entry.
    pub fn entry(self) -> &'static ModelEntry {
        self.0
    }
}

impl PartialEq for ModelKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ModelKind {}

impl std::fmt::Debug for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelKind({})", self.name())
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rejects hidden widths that cannot build a network: none, or one of 0.
pub fn check_hidden(hidden: &[usize]) -> Result<(), String> {
    if hidden.is_empty() || hidden.contains(&0) {
        return Err("--hidden needs at least one width, none of them 0".into());
    }
    Ok(())
}

/// A model as a run trains, tests, checkpoints and reports it. It owns its parameters and its
/// optimizers (any number of each), so an epoch may take any steps on any of them; the run
/// owns what every model shares: it sets every optimizer's rate each epoch, saves and restores
/// the [`State`], names the metrics, and writes the files.
///
/// The run calls, in order: [`ModelEntry::data`] once, then each epoch
/// [`train_epoch`](Self::train_epoch) and [`test`](Self::test), and saves the
/// [`state`](Self::state); after the last epoch [`after_training`](Self::after_training), then
/// the [`report`](Self::report)'s pictures and figures. A resumed run restores the state first.
pub trait RunModel {
    /// Its `metrics.csv` columns between `epoch` and `seconds`.
    fn columns(&self) -> Columns;

    /// One epoch of training at the rates the run has set; returns the `train` columns.
    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row;

    /// The `test` columns on the test set, with the evaluation's fixed draws (`keys` are the
    /// same every epoch; row `r` of `test` draws as example `test.examples[r]`).
    fn test(&self, test: &TestData, keys: Keys) -> Row;

    /// Its parameters, optimizers and buffers: what the run schedules, saves and restores.
    fn state(&mut self) -> State<'_>;

    /// What it reports of an epoch and of the end of a run: lines, warnings, pictures, figures.
    fn report(&self) -> &dyn Report;

    /// What the commands may ask of it: sampling, scoring, completing, classifying.
    fn abilities(&self) -> Abilities<'_>;

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

    /// Reads the model's own entries of a checkpoint's metadata (those of
    /// [`State::metadata`]), before its tensors are read. By default it has none.
    fn read_metadata(&mut self, _meta: &Metadata, _path: &Path) -> Result<(), RunError> {
        Ok(())
    }
}

/// What a model reports: the terminal's lines of an epoch, the pictures and the figures of the
/// end of a run. A model implements it on itself; [`RunModel::report`] returns it.
pub trait Report {
    /// One line for the terminal of an epoch's `row` (train columns, then test columns).
    fn describe(&self, row: &Row) -> String {
        let parts: Vec<String> = (row.iter())
            .map(|(name, v)| format!("{name} {v:8.3}"))
            .collect();
        parts.join("  ")
    }

    /// One line of the test columns of `row` for the run's summary.
    fn describe_test(&self, test: &Row) -> String {
        let parts: Vec<String> = (test.iter())
            .map(|(name, v)| format!("{name} {v:.2}"))
            .collect();
        parts.join(", ")
    }

    /// Warnings for the terminal about an epoch's `row`: a failure mode the numbers show, e.g.
    /// a GAN's discriminator winning. By default none.
    fn warnings(&self, _row: &Row) -> Vec<String> {
        Vec::new()
    }

    /// Writes the pictures it redraws after every epoch into `out` (a GAN's samples from fixed
    /// noise, so that a user sees training unfold) and returns their paths. By default none.
    fn epoch_pictures(&self, _out: &Path) -> Result<Vec<PathBuf>, RunError> {
        Ok(Vec::new())
    }

    /// Writes its pictures of the end of a run into `out` and returns their paths.
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

    /// The figures of the end of a run (and of `vae-train eval`): a log-likelihood estimated with
    /// importance samples, the active units, an error rate, a baseline fitted to the training
    /// images, ...
    fn finish(&self, test: &TestData, ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError>;
}

/// What a model can do besides training, for the commands to consult: a command takes any
/// model that has the ability it needs, never a list of names.
#[derive(Clone, Copy, Default)]
pub struct Abilities<'a> {
    /// It draws images unconditionally.
    pub sample: Option<&'a dyn Sample>,
    /// It scores an image on its own.
    pub score: Option<&'a dyn Score>,
    /// It draws images once a density is fitted to its codes of some images (an autoencoder,
    /// which has no prior of its own).
    pub fitted_sample: Option<&'a dyn FittedSample>,
    /// It draws what it does not see of partly seen images.
    pub complete: Option<&'a dyn Complete>,
    /// It is a classifier of images.
    pub classify: Option<&'a dyn Classify>,
}

/// An epoch's figures by name: the `train` columns of [`RunModel::train_epoch`] or the `test`
/// columns of [`RunModel::test`], in [`Columns`] order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(Vec<(&'static str, f64)>);

impl Row {
    /// `values` under the names `columns`, in order; panics if the counts differ.
    #[track_caller]
    pub fn new(columns: &[&'static str], values: Vec<f64>) -> Row {
        assert_eq!(
            columns.len(),
            values.len(),
            "a row of {} values for the columns {columns:?}",
            values.len()
        );
        Row(columns.iter().copied().zip(values).collect())
    }

    /// The value named `name`; panics if there is none (a model reads its own columns).
    #[track_caller]
    pub fn get(&self, name: &str) -> f64 {
        match self.0.iter().find(|(n, _)| *n == name) {
            Some(&(_, v)) => v,
            None => panic!(
                "no column `{name}` in {:?}",
                self.names().collect::<Vec<_>>()
            ),
        }
    }

    /// The value named `name`, if there is one.
    pub fn find(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|&(n, _)| n)
    }

    /// The values, in order.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.0.iter().map(|&(_, v)| v)
    }

    /// Name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.0.iter().copied()
    }

    /// `self`, then `other`.
    pub fn then(mut self, other: Row) -> Row {
        self.0.extend(other.0);
        self
    }

    /// The values named `names`, in order (the test part of an epoch's row, say).
    pub fn only(&self, names: &[&'static str]) -> Row {
        Row(names.iter().map(|&n| (n, self.get(n))).collect())
    }

    /// Each value times `weight`.
    pub fn scaled(mut self, weight: f64) -> Row {
        self.0.iter_mut().for_each(|(_, v)| *v *= weight);
        self
    }

    /// The values as a mutable slice's worth, for a sum over processes.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut f64> + '_ {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

/// A model's state as the run schedules, saves and restores it.
pub struct State<'a> {
    /// Each optimizer with the parameters it trains, under its key in the checkpoint (`None`
    /// for a model of one optimizer, whose state is saved as `optim.*`). The run sets each
    /// one's rate every epoch.
    pub trained: Vec<(
        Option<&'static str>,
        &'a mut ParamStore,
        &'a mut dyn Optimizer,
    )>,
    /// Tensors of its state that no optimizer trains (a codebook's moving averages, a fitted
    /// prior, a generator's batch-norm statistics).
    pub buffers: Vec<&'a mut ParamStore>,
    /// The model's own metadata entries (read back by [`RunModel::read_metadata`]).
    pub metadata: Metadata,
    /// Whether it trains data-parallel: the processes of a run then hold its parameters
    /// alike. Such a model takes its share of every batch through
    /// [`train::epoch`](crate::train::epoch) with [`Epoch::plan`], keys every draw of its epoch
    /// by its example, and makes every value of its [`test`](RunModel::test) a mean over the
    /// test images of per-image values, so that the processes can each take a share.
    pub data_parallel: bool,
}

impl<'a> State<'a> {
    /// The state of a model of one store trained by one optimizer.
    pub fn single(store: &'a mut ParamStore, optimizer: &'a mut dyn Optimizer) -> State<'a> {
        State {
            trained: vec![(None, store, optimizer)],
            buffers: Vec::new(),
            metadata: Metadata::new(),
            data_parallel: false,
        }
    }

    /// `self`, data-parallel.
    pub fn data_parallel(self) -> State<'a> {
        State {
            data_parallel: true,
            ..self
        }
    }

    /// `self` with the buffers `buffers`.
    pub fn with_buffers(self, buffers: Vec<&'a mut ParamStore>) -> State<'a> {
        State { buffers, ..self }
    }

    /// Sets every optimizer's learning rate.
    pub fn set_lr(&mut self, lr: f32) {
        for (_, _, optimizer) in &mut self.trained {
            optimizer.set_lr(lr);
        }
    }

    /// Every optimizer's learning rate, in order.
    pub fn lrs(&self) -> Vec<f32> {
        self.trained.iter().map(|(_, _, o)| o.lr()).collect()
    }

    /// Writes the parameters, optimizer state, buffers, the model's own metadata and
    /// `metadata` to the checkpoint `path`, atomically.
    pub fn save(&self, path: &Path, metadata: &Metadata) -> Result<(), RunError> {
        let mut metadata = metadata.clone();
        metadata.extend(self.metadata.clone());
        let buffers: Vec<&ParamStore> = self.buffers.iter().map(|b| &**b).collect();
        match self.trained.as_slice() {
            [(None, store, optimizer)] => {
                checkpoint::save_with_buffers(path, store, *optimizer, &buffers, &metadata)?
            }
            trained => {
                let trained: Vec<Trained<'_>> = (trained.iter())
                    .map(|(key, store, optimizer)| Trained {
                        key: key.expect("several optimizers are keyed"),
                        store,
                        optimizer: *optimizer,
                    })
                    .collect();
                checkpoint::save_trained(path, &trained, &buffers, &metadata)?
            }
        }
        Ok(())
    }

    /// Reads from the checkpoint `path` the parameters and buffers and, with
    /// [`Restore::Everything`], the optimizers' state. On error nothing has changed.
    pub fn restore(self, path: &Path, what: Restore) -> Result<(), RunError> {
        let State {
            trained,
            mut buffers,
            ..
        } = self;
        let mut trained = trained.into_iter();
        match what {
            Restore::Params => {
                let (_, first, _) = trained.next().expect("a model trains some parameters");
                let mut rest: Vec<&mut ParamStore> = trained.map(|(_, store, _)| store).collect();
                rest.extend(buffers);
                checkpoint::load_params_with_buffers(path, first, &mut rest)?;
            }
            Restore::Everything => match trained.as_slice() {
                [(None, ..)] => {
                    let (_, store, optimizer) = trained.next().expect("one");
                    checkpoint::load_with_buffers(path, store, optimizer, &mut buffers)?;
                }
                _ => {
                    let mut keyed: Vec<TrainedMut<'_>> = trained
                        .map(|(key, store, optimizer)| TrainedMut {
                            key: key.expect("several optimizers are keyed"),
                            store,
                            optimizer,
                        })
                        .collect();
                    checkpoint::load_trained(path, &mut keyed, &mut buffers)?;
                }
            },
        }
        Ok(())
    }

    /// The parameters that the processes of a data-parallel run hold alike, as one checksum.
    pub fn params_hash(&self) -> u64 {
        use std::hash::Hasher;
        let mut h = crate::parallel::Checksum::default();
        for (_, store, _) in &self.trained {
            h.write_u64(crate::parallel::params_hash(store));
        }
        h.finish()
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
        let x = crate::data::images(&split);
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
                lr: config.optimizer.lr,
                weight_decay: config.optimizer.weight_decay,
                ..AdamConfig::default()
            },
        );
        Params { store, opt }
    }

    /// The [`State`] of a model of these parameters alone.
    pub fn state(&mut self) -> State<'_> {
        State::single(&mut self.store, &mut self.opt)
    }

    /// The store and the optimizer, for a step.
    pub fn parts(&mut self) -> (&mut ParamStore, &mut Adam) {
        (&mut self.store, &mut self.opt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_optimizer_takes_the_runs_rate_and_weight_decay() {
        let mut config = RunConfig::default();
        config.optimizer.lr = 3e-3;
        config.optimizer.weight_decay = 1e-2;
        let params = Params::new(ParamStore::new(), &config);
        let adam = params.opt.config();
        assert_eq!((adam.lr, adam.weight_decay), (3e-3, 1e-2));
        // Adam's coupled L2 penalty (λ·θ in the gradient), as the flag's help says.
        assert!(!adam.decoupled_weight_decay);
    }
}
