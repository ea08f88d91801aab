//! The seam between a run and its models: the [`RunModel`] trait that every model implements in
//! its own file beside its loss, its [`ModelEntry`] in the registry
//! ([`crate::models::MODELS`]), its typed [`Settings`], the data it is handed, what it reports,
//! and the [`Sample`] and [`Score`] abilities that evaluations written once use on any model
//! that has them.

mod abilities;
mod data;
mod report;
mod settings;
mod state;

pub use abilities::{
    Abilities, Classified, Classify, Complete, FittedSample, Sample, Samples, Score, ScoreSettings,
    Scores,
};
pub use data::{AfterTraining, Epoch, Finish, TestData, TrainData, TrainImages};
pub use report::{Columns, Figure, Picture, Report, Row};
pub use settings::{
    AnySettings, DataSettings, LrSchedule, ModelSettings, OptimizerSettings, RunConfig, Schema,
    Settings, by_str, positive, short_f32,
};
pub use state::{Params, Restore, State};

use std::ops::ControlFlow;
use std::path::Path;
use std::rc::Rc;

use autodiff::Matrix;
use nn::checkpoint::{self, Metadata};

use crate::data::{Binarize, Split, TrainSet};
pub use crate::error::RunError;
use crate::random::Keys;

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
    /// The model of `entry`: one of the registry's ([`crate::models::kind`] finds it by name),
    /// or a model of a program's own that it trains through [`crate::run`] (such a run's
    /// checkpoint resumes only in that program).
    pub fn of(entry: &'static ModelEntry) -> ModelKind {
        ModelKind(entry)
    }

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

/// A model as a run trains, tests and checkpoints it; what it reports is its [`Report`]. It owns
/// its parameters and its optimizers (any number of each), so an epoch may take any steps on any
/// of them; the run owns what every model shares: it sets every optimizer's rate each epoch,
/// saves and restores the [`State`], names the metrics, and writes the files.
///
/// The run calls, in order: [`ModelEntry::data`] once, then each epoch
/// [`train_epoch`](Self::train_epoch) and [`test`](Self::test), and saves the
/// [`state`](Self::state); after the last epoch [`after_training`](Self::after_training), then
/// the [`Report`]'s pictures and figures. A resumed run restores the state first.
pub trait RunModel: Report {
    /// Its `metrics.csv` columns between `epoch` and `seconds`.
    fn columns(&self) -> Columns;

    /// One epoch of training at the rates the run has set; returns the `train` columns.
    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row;

    /// The `test` columns on the test set, with the evaluation's fixed draws (`keys` are the
    /// same every epoch; row `r` of `test` draws as example `test.examples[r]`).
    fn test(&self, test: &TestData, keys: Keys) -> Row;

    /// Its parameters, optimizers and buffers: what the run schedules, saves and restores.
    fn state(&mut self) -> State<'_>;

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
