//! A training run from start to finish: its configuration, its directory (`config.toml`,
//! `metrics.csv`, `checkpoint.safetensors`, the pictures), resuming from a checkpoint, and the
//! final evaluation.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use autodiff::Matrix;
use nn::checkpoint::{self, CheckpointError, Metadata};
use nn::{Activation, Schedule};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::chart;
use crate::data::{
    Binarize, Classes, DataError, Dataset, Split, TEST_IMAGES, TEST_LABELS, eval_targets,
    load_split,
};
use crate::image::ImageError;
use crate::models::{
    CodebookUpdate, GanLoss, Likelihood, Metrics, ModelKind, NoiseKind, Observe, PAPER_ALPHA,
    Prior, VaeConfig, Window,
};
use crate::parallel::{self, Alone, Collective};
use crate::random::Keys;
use crate::train::Stepped;

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

pub mod anomaly;
mod model;
pub mod quality;
pub mod score;

pub use model::{
    AfterTraining, Classified, Classify, Columns, Complete, Epoch, Figure, Finish, FittedSample,
    Params, Picture, Restore, RunModel, Sample, Samples, Score, ScoreSettings, Scores, TestData,
    TrainData, TrainImages,
};

/// Everything that defines a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Which model.
    pub model: ModelKind,
    /// Completion and regressor: which part of the image is seen.
    pub observe: Observe,
    /// M2: how many training examples keep their label (a multiple of 10, balanced).
    pub labels: usize,
    /// M2: the weight α of the classification term.
    pub alpha: f32,
    /// DAE: how the input is corrupted.
    pub noise: NoiseKind,
    /// DAE: how much (the fraction of pixels, or the Gaussian's σ).
    pub noise_level: f32,
    /// Classifier: the dropout probability after each hidden layer.
    pub dropout: f32,
    /// VAE: the rate at which training pixels are replaced by noise (a background model).
    pub background: f32,
    /// VQ-VAE: code vectors per image (N).
    pub codes: usize,
    /// VQ-VAE: dimensions of each code vector (D).
    pub code_dim: usize,
    /// VQ-VAE: embeddings in the codebook (K).
    pub codebook: usize,
    /// VQ-VAE: the weight β of the commitment term.
    pub commitment: f32,
    /// VQ-VAE: how the codebook learns, by its loss term or by moving averages.
    pub codebook_update: CodebookUpdate,
    /// VQ-VAE: codes unused over an epoch are re-seeded from encoder outputs.
    pub restart_dead: bool,
    /// GAN: the generator's loss (`None`: not given, the non-saturating one).
    pub gan_loss: Option<GanLoss>,
    /// GAN: minibatch discrimination features in the discriminator.
    pub minibatch_discrimination: bool,
    /// GAN, WGAN: samples scored by the yardstick's reference classifier every epoch (0: none).
    pub quality_samples: usize,
    /// Pixel-AR: the network sees the pixel's neighbourhood only, not where the pixel is.
    pub local: bool,
    /// Pixel-AR: the neighbourhood each pixel is predicted from.
    pub window: Window,
    /// Which data set.
    pub dataset: Dataset,
    /// The labels trained and tested on (`--classes`, `--exclude-class`).
    pub classes: Classes,
    /// Where its files are (`None`: the usual places).
    pub data_dir: Option<PathBuf>,
    /// Train on the first N training images only.
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only (quick runs; not part of the trajectory, so a
    /// checkpoint does not keep it).
    pub test_limit: Option<usize>,
    /// How targets are binarized.
    pub binarize: Binarize,
    /// Encoder hidden widths (the decoder mirrors them).
    pub hidden: Vec<usize>,
    /// Dimensions of z.
    pub latent_dim: usize,
    /// Between hidden layers.
    pub activation: Activation,
    /// The decoder's distribution.
    pub likelihood: Likelihood,
    /// Weight of the KL term.
    pub beta: f32,
    /// Total epochs (a resumed run continues up to this number).
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Adam's L2 penalty `λ`, `λ·θ` added to every gradient (0: none).
    pub weight_decay: f32,
    /// How the learning rate changes from epoch to epoch.
    pub lr_schedule: LrSchedule,
    /// Seeds initialisation, shuffling, binarization and noise.
    pub seed: u64,
    /// Importance samples of the final log-likelihood estimate (0: skip it).
    pub iw_samples: usize,
}

impl Default for RunConfig {
    /// The defaults of `vae-train` (see the README for why).
    fn default() -> Self {
        RunConfig {
            model: ModelKind::default(),
            observe: Observe::Quadrant,
            labels: 100,
            alpha: PAPER_ALPHA,
            noise: NoiseKind::Mask,
            noise_level: NoiseKind::Mask.default_level(),
            dropout: 0.0,
            background: 0.0,
            codes: 8,
            code_dim: 8,
            codebook: 64,
            commitment: 0.25,
            codebook_update: CodebookUpdate::Ema,
            restart_dead: false,
            gan_loss: None,
            minibatch_discrimination: false,
            quality_samples: 2000,
            local: false,
            window: Window::LOCAL,
            dataset: Dataset::Mnist,
            classes: Classes::All,
            data_dir: None,
            train_limit: None,
            test_limit: None,
            binarize: Binarize::Dynamic,
            hidden: vec![400],
            latent_dim: 32,
            activation: Activation::Relu,
            likelihood: Likelihood::Bernoulli,
            beta: 1.0,
            epochs: 30,
            batch_size: 128,
            lr: 1e-3,
            weight_decay: 0.0,
            lr_schedule: LrSchedule::Constant,
            seed: 0,
            iw_samples: 1000,
        }
    }
}

/// The learning rate of each epoch (`--lr-schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LrSchedule {
    /// `--lr` throughout.
    #[default]
    Constant,
    /// `--lr` in epoch 1, then down a half cosine over the run's `--epochs` to 1% of it in the
    /// last (epoch `e` of `E` trains at `lr·(0.01 + 0.99·½(1 + cos(π(e − 1)/(E − 1))))`). A run
    /// resumed with a larger `--epochs` stretches the rest of the curve to the new end.
    Cosine,
}

impl LrSchedule {
    /// The rate of `epoch` (from 1) of `epochs`, for the base rate `lr`.
    pub fn lr(self, lr: f32, epoch: usize, epochs: usize) -> f32 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => Schedule::WarmupCosine {
                lr,
                warmup: 0,
                total: epochs.saturating_sub(1).max(1) as u64,
                min_lr: 0.01 * lr,
            }
            .lr(epoch.saturating_sub(1) as u64),
        }
    }
}

impl std::str::FromStr for LrSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine),
            _ => Err(format!(
                "unknown schedule `{s}` (expected constant or cosine)"
            )),
        }
    }
}

impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        })
    }
}

/// A run that could not go on, with what and where.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data set is missing or malformed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A picture could not be written.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Another file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A configuration or checkpoint that does not make sense.
    #[error("{0}")]
    Config(String),
    /// Training stopped at a step boundary on a signal; nothing of the unfinished epoch (or of
    /// the fit after the last one) was written.
    #[error(
        "interrupted by {signal} {}; nothing of it was written. {}",
        match after_training {
            true => format!("after epoch {epoch}, in the fit that follows training"),
            false => format!("in epoch {epoch}"),
        },
        continue_with(checkpoint.as_deref(), *epochs)
    )]
    Interrupted {
        /// Which signal.
        signal: Interrupt,
        /// The epoch it stopped (1-based), or after which it stopped.
        epoch: usize,
        /// Whether it stopped in [`RunModel::after_training`], every epoch done.
        after_training: bool,
        /// The run's `--epochs`.
        epochs: usize,
        /// The checkpoint of the last finished epoch, if any.
        checkpoint: Option<PathBuf>,
    },
    /// A step's loss or gradient was not finite: training stopped, that step's update was not
    /// applied and nothing of the epoch was written.
    #[error(
        "training diverged in epoch {epoch}, step {step}: {}. Nothing of that epoch was \
         written{}",
        anomaly.as_deref().unwrap_or("a non-finite loss or gradient (the replay under anomaly \
         detection did not name an op)"),
        match checkpoint {
            Some(path) => format!("; the checkpoint of the epoch before, {}, is unchanged", path.display()),
            None => String::new(),
        }
    )]
    Diverged {
        /// The epoch (1-based).
        epoch: usize,
        /// The step within it (1-based).
        step: usize,
        /// The op that first produced a non-finite number and where, found by replaying the
        /// epoch under [`autodiff::detect_anomaly`].
        anomaly: Option<String>,
        /// The checkpoint of the last finished epoch, if any.
        checkpoint: Option<PathBuf>,
    },
}

/// `continue with: vae-train --resume … --epochs N`, or that there is nothing to resume.
fn continue_with(checkpoint: Option<&Path>, epochs: usize) -> String {
    match checkpoint {
        Some(path) => format!(
            "Continue with: vae-train --resume {} --epochs {epochs}",
            path.display()
        ),
        None => "No epoch had finished, so there is nothing to resume.".into(),
    }
}

/// A signal that asks a run to stop at the next step boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
}

impl Interrupt {
    /// The shell's exit status for a process ended by it: 128 + the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Interrupt::Int => 130,
            Interrupt::Term => 143,
        }
    }
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
        })
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A setting that only some models read (their [`ModelEntry::settings`]): the checkpoint and
/// `config.toml` of a run keep those of its model.
///
/// [`ModelEntry::settings`]: crate::models::ModelEntry::settings
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `--observe`.
    Observe,
    /// `--labels`.
    Labels,
    /// `--alpha`.
    Alpha,
    /// `--noise`.
    Noise,
    /// `--noise-level`.
    NoiseLevel,
    /// `--dropout`.
    Dropout,
    /// `--background`.
    Background,
    /// `--codes`.
    Codes,
    /// `--code-dim`.
    CodeDim,
    /// `--codebook`.
    Codebook,
    /// `--commitment`.
    Commitment,
    /// `--codebook-update`.
    CodebookUpdate,
    /// `--restart-dead`.
    RestartDead,
    /// `--gan-loss`.
    GanLoss,
    /// `--minibatch-discrimination`.
    MinibatchDiscrimination,
    /// `--quality-samples`.
    QualitySamples,
    /// `--local`.
    Local,
    /// `--window`.
    Window,
}

impl Setting {
    /// Its key in checkpoints and `config.toml`.
    pub fn key(self) -> &'static str {
        match self {
            Setting::Observe => "observe",
            Setting::Labels => "labels",
            Setting::Alpha => "alpha",
            Setting::Noise => "noise",
            Setting::NoiseLevel => "noise_level",
            Setting::Dropout => "dropout",
            Setting::Background => "background",
            Setting::Codes => "codes",
            Setting::CodeDim => "code_dim",
            Setting::Codebook => "codebook",
            Setting::Commitment => "commitment",
            Setting::CodebookUpdate => "codebook_update",
            Setting::RestartDead => "restart_dead",
            Setting::GanLoss => "gan_loss",
            Setting::MinibatchDiscrimination => "minibatch_discrimination",
            Setting::QualitySamples => "quality_samples",
            Setting::Local => "local",
            Setting::Window => "window",
        }
    }

    /// Its value in checkpoints written before the setting existed, if a model gained it later
    /// (`--background`: those runs trained on clean images); `None` if every checkpoint of its
    /// models has it.
    fn before_it_existed(self) -> Option<&'static str> {
        match self {
            Setting::Background => Some("0"),
            // pixel-ar's only window before it was a setting.
            Setting::Window => Some("3,3"),
            _ => None,
        }
    }

    fn value(self, config: &RunConfig) -> String {
        match self {
            Setting::Observe => config.observe.to_string(),
            Setting::Labels => config.labels.to_string(),
            Setting::Alpha => config.alpha.to_string(),
            Setting::Noise => config.noise.to_string(),
            Setting::NoiseLevel => config.noise_level.to_string(),
            Setting::Dropout => config.dropout.to_string(),
            Setting::Background => config.background.to_string(),
            Setting::Codes => config.codes.to_string(),
            Setting::CodeDim => config.code_dim.to_string(),
            Setting::Codebook => config.codebook.to_string(),
            Setting::Commitment => config.commitment.to_string(),
            Setting::CodebookUpdate => config.codebook_update.to_string(),
            Setting::RestartDead => config.restart_dead.to_string(),
            Setting::GanLoss => config.gan_loss.unwrap_or_default().to_string(),
            Setting::MinibatchDiscrimination => config.minibatch_discrimination.to_string(),
            Setting::QualitySamples => config.quality_samples.to_string(),
            Setting::Local => config.local.to_string(),
            Setting::Window => config.window.to_string(),
        }
    }

    /// Sets it in `config` from `value`; `None` if the value does not parse.
    fn set(self, config: &mut RunConfig, value: &str) -> Option<()> {
        match self {
            Setting::Observe => config.observe = value.parse().ok()?,
            Setting::Labels => config.labels = value.parse().ok()?,
            Setting::Alpha => config.alpha = value.parse().ok()?,
            Setting::Noise => config.noise = value.parse().ok()?,
            Setting::NoiseLevel => config.noise_level = value.parse().ok()?,
            Setting::Dropout => config.dropout = value.parse().ok()?,
            Setting::Background => config.background = value.parse().ok()?,
            Setting::Codes => config.codes = value.parse().ok()?,
            Setting::CodeDim => config.code_dim = value.parse().ok()?,
            Setting::Codebook => config.codebook = value.parse().ok()?,
            Setting::Commitment => config.commitment = value.parse().ok()?,
            Setting::CodebookUpdate => config.codebook_update = value.parse().ok()?,
            Setting::RestartDead => config.restart_dead = value.parse().ok()?,
            Setting::GanLoss => config.gan_loss = Some(value.parse().ok()?),
            Setting::MinibatchDiscrimination => {
                config.minibatch_discrimination = value.parse().ok()?
            }
            Setting::QualitySamples => config.quality_samples = value.parse().ok()?,
            Setting::Local => config.local = value.parse().ok()?,
            Setting::Window => config.window = value.parse().ok()?,
        }
        Some(())
    }
}

impl RunConfig {
    /// The defaults with `model`, and that model's own defaults (its binarization, and those
    /// of [`ModelEntry::defaults`](crate::models::ModelEntry::defaults)).
    pub fn for_model(model: ModelKind) -> RunConfig {
        let mut config = RunConfig {
            model,
            binarize: model.entry().binarize,
            ..RunConfig::default()
        };
        (model.entry().defaults)(&mut config);
        config
    }

    /// The checkpoint metadata keys that define a run's trajectory, with their values.
    fn trajectory(&self) -> Vec<(&'static str, String)> {
        let hidden: Vec<String> = self.hidden.iter().map(usize::to_string).collect();
        let mut keys = vec![("model", self.model.to_string())];
        for &setting in self.model.entry().settings {
            keys.push((setting.key(), setting.value(self)));
        }
        keys.extend([
            ("dataset", self.dataset.name().to_string()),
            ("classes", self.classes.to_string()),
            (
                "train_limit",
                self.train_limit.map_or("none".into(), |n| n.to_string()),
            ),
            ("binarize", self.binarize.name().to_string()),
            ("hidden", hidden.join(",")),
            ("latent_dim", self.latent_dim.to_string()),
            ("activation", self.activation.to_string()),
            ("likelihood", self.likelihood.to_string()),
            ("beta", self.beta.to_string()),
            ("batch_size", self.batch_size.to_string()),
            ("lr", self.lr.to_string()),
            ("weight_decay", self.weight_decay.to_string()),
            ("lr_schedule", self.lr_schedule.to_string()),
            ("seed", self.seed.to_string()),
        ]);
        keys
    }

    /// The network of the VAE family for images of `shape`: `--hidden`, `--latent-dim`,
    /// `--activation`, `--likelihood`, `--beta`; unconditional, prior N(0, I) (a model sets its
    /// own condition and prior).
    pub fn vae_config(&self, (height, width): (usize, usize)) -> VaeConfig {
        VaeConfig {
            input_dim: height * width,
            hidden: self.hidden.clone(),
            latent_dim: self.latent_dim,
            activation: self.activation,
            likelihood: self.likelihood,
            beta: self.beta,
            cond_dim: 0,
            prior: Prior::Standard,
        }
    }

    /// The RNG of a model's initialisation: the run's seed on stream 0.
    pub fn init_rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed)
    }

    /// Takes the trajectory-defining settings (model, data, optimisation, seed) from a
    /// checkpoint's metadata, keeping `epochs`, `data_dir`, `test_limit` and `iw_samples`.
    pub fn apply_checkpoint(&mut self, meta: &Metadata, path: &Path) -> Result<(), RunError> {
        let get = |key: &str| {
            meta.get(key).map(String::as_str).ok_or_else(|| {
                RunError::Config(format!(
                    "{}: not a henbun VAE checkpoint (no `{key}` in its metadata)",
                    path.display()
                ))
            })
        };
        let bad = |key: &str, value: &str| {
            RunError::Config(format!(
                "{}: metadata `{key}` = `{value}` is not valid",
                path.display()
            ))
        };
        fn parse<T: std::str::FromStr>(
            v: &str,
            key: &str,
            bad: &dyn Fn(&str, &str) -> RunError,
        ) -> Result<T, RunError> {
            v.parse().map_err(|_| bad(key, v))
        }
        self.model = parse(get("model")?, "model", &bad)?;
        for &setting in self.model.entry().settings {
            let value = match meta.get(setting.key()) {
                Some(v) => v.as_str(),
                None => setting
                    .before_it_existed()
                    .map_or_else(|| get(setting.key()), Ok)?,
            };
            setting
                .set(self, value)
                .ok_or_else(|| bad(setting.key(), value))?;
        }
        self.dataset = parse(get("dataset")?, "dataset", &bad)?;
        // Checkpoints from before class subsets trained on every class.
        self.classes = match meta.get("classes") {
            None => Classes::All,
            Some(v) => parse(v, "classes", &bad)?,
        };
        self.train_limit = match get("train_limit")? {
            "none" => None,
            v => Some(parse(v, "train_limit", &bad)?),
        };
        self.binarize = parse(get("binarize")?, "binarize", &bad)?;
        self.hidden = get("hidden")?
            .split(',')
            .map(|w| parse(w, "hidden", &bad))
            .collect::<Result<_, _>>()?;
        self.latent_dim = parse(get("latent_dim")?, "latent_dim", &bad)?;
        self.activation = parse(get("activation")?, "activation", &bad)?;
        self.likelihood = parse(get("likelihood")?, "likelihood", &bad)?;
        self.beta = parse(get("beta")?, "beta", &bad)?;
        self.batch_size = parse(get("batch_size")?, "batch_size", &bad)?;
        self.lr = parse(get("lr")?, "lr", &bad)?;
        // Checkpoints from before weight decay had none.
        self.weight_decay = match meta.get("weight_decay") {
            None => 0.0,
            Some(v) => parse(v, "weight_decay", &bad)?,
        };
        // Checkpoints from before schedules existed trained at a constant rate.
        self.lr_schedule = match meta.get("lr_schedule") {
            None => LrSchedule::Constant,
            Some(v) => parse(v, "lr_schedule", &bad)?,
        };
        self.seed = parse(get("seed")?, "seed", &bad)?;
        self.validate()
    }

    /// Rejects settings that cannot train.
    pub fn validate(&self) -> Result<(), RunError> {
        let fail = |m: &str| Err(RunError::Config(m.to_string()));
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return fail("--hidden needs at least one width, none of them 0");
        }
        if self.latent_dim == 0 {
            return fail("--latent-dim must be at least 1");
        }
        if self.batch_size == 0 {
            return fail("--batch-size must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return fail("--lr must be a positive number");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return fail("--weight-decay must be a non-negative number");
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return fail("--beta must be a non-negative number");
        }
        if self.test_limit == Some(0) {
            return fail("--test-limit must be at least 1");
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return fail("--alpha must be a non-negative number");
        }
        (self.model.entry().check)(self).map_err(RunError::Config)
    }

    /// The configuration as TOML (`config.toml` of the run directory).
    pub fn to_toml(&self) -> String {
        let mut s = String::from("# henbun vae-train run configuration\n");
        for (key, value) in self.trajectory() {
            let quoted = matches!(
                key,
                "model"
                    | "classes"
                    | "observe"
                    | "noise"
                    | "dataset"
                    | "binarize"
                    | "activation"
                    | "likelihood"
                    | "lr_schedule"
                    | "train_limit"
                    | "codebook_update"
                    | "gan_loss"
            );
            let value = match key {
                "hidden" => format!("[{value}]"),
                _ if quoted => format!("\"{value}\""),
                _ => value,
            };
            let _ = writeln!(s, "{key} = {value}");
        }
        let _ = writeln!(s, "epochs = {}", self.epochs);
        let _ = writeln!(s, "iw_samples = {}", self.iw_samples);
        if let Some(n) = self.test_limit {
            let _ = writeln!(s, "test_limit = {n}");
        }
        if let Some(dir) = &self.data_dir {
            let _ = writeln!(s, "data_dir = {:?}", dir.display().to_string());
        }
        s
    }
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    /// 1-based.
    pub epoch: usize,
    /// The model's columns ([`RunModel::columns`]): training's, then the test set's.
    pub values: Vec<f64>,
    /// Wall-clock seconds of the epoch's training (evaluation excluded).
    pub seconds: f64,
    /// The model's one-line account of `values` ([`RunModel::describe`]).
    pub line: String,
}

/// The header of `metrics.csv` for a model's `columns`.
fn metrics_header(columns: Columns) -> String {
    let mut names = vec!["epoch"];
    names.extend(columns.names());
    names.push("seconds");
    names.join(",")
}

impl EpochRow {
    fn csv(&self) -> String {
        let mut csv = self.epoch.to_string();
        for v in &self.values {
            let _ = write!(csv, ",{v:.4}");
        }
        let _ = write!(csv, ",{:.3}", self.seconds);
        csv
    }
}

/// What a run reports as it goes. Every method has an empty default.
pub trait Observer {
    /// Before the first batch of `epoch` (1-based) of `epochs`, which has `batches` batches.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    /// After each training step.
    fn batch(&mut self, _metrics: &Metrics) {}
    /// After an epoch's evaluation and checkpoint.
    fn epoch_end(&mut self, _row: &EpochRow) {}
    /// A line worth telling the user.
    fn note(&mut self, _message: &str) {}
    /// Asked after every step: a signal received since, if any, stops the run there.
    fn interrupted(&mut self) -> Option<Interrupt> {
        None
    }
}

/// An observer that reports nothing.
pub struct Silent;
impl Observer for Silent {}

/// What a finished run measured and wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Epochs trained in total (including those before a resume).
    pub epochs: usize,
    /// The last epoch trained in this call, if any.
    pub last: Option<EpochRow>,
    /// The model's account of the last epoch's test columns ([`RunModel::describe_test`]).
    pub test_line: Option<String>,
    /// The end-of-run figures ([`RunModel::finish`]).
    pub figures: Vec<Figure>,
    /// Every file written, in the run directory.
    pub files: Vec<PathBuf>,
}

impl Summary {
    /// The end-of-run figure called `name`, if the model reports one.
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }
}

/// A run's model with its parameters and its test data, ready to evaluate or sample from.
pub struct Loaded {
    /// The configuration (from the checkpoint where one was loaded).
    pub config: RunConfig,
    /// The model, its parameters read from the checkpoint.
    pub model: Box<dyn RunModel>,
    /// The test images with their fixed targets.
    pub test: TestData,
    /// Where its training images are.
    pub train: TrainImages,
}

/// The RNG of every evaluation: the same draws each epoch, so epochs compare like for like.
pub fn evaluation_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(2);
    rng
}

/// All images of a split as one matrix of targets.
pub fn images(split: &Split) -> Matrix {
    split.batch(&(0..split.len()).collect::<Vec<_>>()).images
}

/// Reads a run's checkpoint (parameters only) and its test data, for evaluation and sampling.
/// `config` supplies `data_dir` and `iw_samples`; the rest comes from the checkpoint.
pub fn load(path: &Path, mut config: RunConfig) -> Result<Loaded, RunError> {
    let meta = checkpoint::read_metadata(path)?;
    config.apply_checkpoint(&meta, path)?;
    let dir = config.dataset.find_dir(config.data_dir.as_deref())?;
    let all = load_split(&dir.join(TEST_IMAGES), &dir.join(TEST_LABELS))?;
    let mut test = config.classes.keep(all);
    if let Some(n) = config.test_limit {
        test.truncate(n);
    }
    check_image_size(&meta, path, test.image_shape(), &dir)?;
    let mut model = (config.model.entry().build)(&config, test.image_shape());
    model.restore(path, Restore::Params)?;
    let test = TestData::new(eval_targets(&test, config.binarize));
    let train = TrainImages {
        dir,
        classes: config.classes.clone(),
        limit: config.train_limit,
    };
    Ok(Loaded {
        config,
        model,
        test,
        train,
    })
}

/// The checkpoint metadata key of the image size a model was trained on, `28x28`.
const IMAGE_SIZE: &str = "image_size";

/// Refuses a checkpoint of images of another size than the dataset's in `dir` (a checkpoint
/// written before the key existed is left to the tensor shapes' check).
fn check_image_size(
    meta: &Metadata,
    path: &Path,
    (height, width): (usize, usize),
    dir: &Path,
) -> Result<(), RunError> {
    match meta.get(IMAGE_SIZE) {
        Some(size) if *size != format!("{height}x{width}") => Err(RunError::Config(format!(
            "{}: a model of {size} images, but the images in {} are {height}x{width}",
            path.display(),
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Makes the run directory `out` and checks that a file can be written there, before anything
/// is loaded or trained.
fn prepare_out(out: &Path) -> Result<(), RunError> {
    if out.exists() && !out.is_dir() {
        return Err(RunError::Config(format!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    fs::create_dir_all(out).map_err(io_error(out))?;
    let probe = out.join(".henbun-write-check");
    fs::write(&probe, b"").map_err(io_error(out))?;
    fs::remove_file(&probe).map_err(io_error(&probe))
}

/// The RNG of a run's pictures: the run's seed on stream 3.
pub fn pictures_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(3);
    rng
}

fn write_atomic(path: &Path, text: &str) -> Result<(), RunError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).map_err(io_error(&tmp))?;
    fs::rename(&tmp, path).map_err(io_error(path))
}

/// The checkpoint of the run of `config` in `dir`: trained there first if there is none, and
/// trained on if it is short of its epochs; a complete one is used as it is. A checkpoint there
/// of other settings is an error (`…: not the run …`), never overwritten. `what` names the run
/// in the notes, e.g. `the reference classifier of MNIST`.
pub fn train_once(
    dir: &Path,
    config: RunConfig,
    observer: &mut dyn Observer,
    what: &str,
) -> Result<PathBuf, RunError> {
    let path = dir.join(files::CHECKPOINT);
    if !path.is_file() {
        observer.note(&format!("training {what} into {}", dir.display()));
        train(config, dir, None, observer)?;
        return Ok(path);
    }
    let meta = checkpoint::read_metadata(&path)?;
    let mut found = config.clone();
    found.apply_checkpoint(&meta, &path)?;
    if found != config {
        return Err(RunError::Config(format!(
            "{}: not the run of {what} (its settings differ); remove {} to train it there",
            path.display(),
            dir.display()
        )));
    }
    let trained: usize = meta.get("epoch").and_then(|e| e.parse().ok()).unwrap_or(0);
    if trained < config.epochs {
        observer.note(&format!("finishing {what} in {}", dir.display()));
        train(config, dir, Some(&path), observer)?;
    }
    Ok(path)
}

/// Trains (or, with `resume`, continues) a run in `out`, writing its files there.
pub fn train(
    config: RunConfig,
    out: &Path,
    resume: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<Summary, RunError> {
    train_shared(config, out, resume, observer, &Alone)
}

/// [`train`] as one of the processes of `world`, which share every batch and the test set
/// (data-parallel: each holds the whole model, steps on its share of each batch, and sums
/// gradients with the others). Process 0 alone writes files; the parameters are compared
/// across processes after every epoch, and the data before the first.
pub fn train_shared(
    mut config: RunConfig,
    out: &Path,
    resume: Option<&Path>,
    observer: &mut dyn Observer,
    world: &dyn Collective,
) -> Result<Summary, RunError> {
    let writes = world.rank() == 0;
    let resumed = match resume {
        Some(path) => {
            let meta = checkpoint::read_metadata(path)?;
            config.apply_checkpoint(&meta, path)?;
            Some((path, meta))
        }
        None => None,
    };
    config.validate()?;
    if writes {
        prepare_out(out)?;
    }
    let mut splits = config.dataset.load(
        config.data_dir.as_deref(),
        &config.classes,
        config.train_limit,
    )?;
    if let Some(n) = config.test_limit {
        splits.test.truncate(n);
    }
    observer.note(&format!(
        "{}: {} training and {} test images from {}",
        config.dataset,
        splits.train.len(),
        splits.test.len(),
        splits.dir.display()
    ));
    let shape = splits.train.image_shape();
    let mut model = (config.model.entry().build)(&config, shape);
    if world.ranks() > 1 {
        if model.shared_parameters().is_none() {
            return Err(RunError::Config(format!(
                "model {} does not train data-parallel: run it as one process",
                config.model
            )));
        }
        if !parallel::agree(world, settings_hash(&config)) {
            return Err(RunError::Config(
                "the processes were given different settings (their checksums differ): give \
                 every process the same flags"
                    .into(),
            ));
        }
        let data = splits_hash(&splits.train, &splits.test);
        if !parallel::agree(world, data) {
            return Err(RunError::Config(format!(
                "the processes read different data from {} (their checksums differ)",
                splits.dir.display()
            )));
        }
    }
    let train_images = TrainImages {
        dir: splits.dir.clone(),
        classes: config.classes.clone(),
        limit: config.train_limit,
    };
    let mut start = 0;
    if let Some((path, meta)) = &resumed {
        check_image_size(meta, path, shape, &splits.dir)?;
        model.restore(path, Restore::Everything)?;
        start = meta
            .get("epoch")
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| {
                RunError::Config(format!("{}: no epoch in its metadata", path.display()))
            })?;
        observer.note(&format!(
            "resumed from {} after epoch {start}",
            path.display()
        ));
    }

    let checkpoint_path = out.join(files::CHECKPOINT);
    if model.wants_reference() {
        let dir = quality::reference_dir(&checkpoint_path, config.dataset);
        let reference_config = quality::reference_config(config.dataset, config.data_dir.clone());
        let path = quality::ensure_reference(&dir, reference_config, observer)?;
        let reference = quality::Reference::load_for(
            &path,
            config.dataset,
            shape,
            config.data_dir.clone(),
            None,
        )?;
        model.set_reference(std::rc::Rc::new(reference));
    }
    let config_path = out.join(files::CONFIG);
    if writes {
        write_atomic(&config_path, &config.to_toml())?;
    }
    let columns = model.columns();
    let metrics_path = out.join(files::METRICS);
    let mut metrics_csv = previous_rows(&metrics_path, &metrics_header(columns), start)?;
    let curves_path = out.join(files::CURVES);

    let data = model.train_data(&config, splits.train)?;
    if let TrainData::SemiSupervised { labeled, unlabeled } = &data {
        observer.note(&format!(
            "{} labeled and {} unlabeled training images",
            labeled.len(),
            unlabeled.len()
        ));
    }
    let test = TestData::new(eval_targets(&splits.test, config.binarize));
    // Each process's share of the test set (a copy only when there are several).
    let my_test = (world.ranks() > 1).then(|| test.share(world.rank(), world.ranks()));
    let batches = data.batches(config.batch_size);
    let mut last = None;
    // The checkpoint of the last finished epoch: what a diverged or interrupted run keeps.
    let mut kept = resume.map(Path::to_path_buf);
    for epoch in start + 1..=config.epochs {
        observer.epoch_start(epoch, config.epochs, batches);
        let started = Instant::now();
        let keys = Keys::epoch(config.seed, epoch);
        let lr = config.lr_schedule.lr(config.lr, epoch, config.epochs);
        let (mut steps, mut halt) = (0, None);
        let mut values = model.train_epoch(
            &data,
            &mut Epoch {
                keys,
                world,
                batch_size: config.batch_size,
                lr,
                on_batch: &mut |stepped| {
                    steps += 1;
                    halt = match stepped {
                        Stepped::Trained(m) => {
                            observer.batch(m);
                            stop_together(world, observer.interrupted()).map(Halt::Interrupted)
                        }
                        Stepped::Diverged(_) => Some(Halt::Diverged),
                    };
                    match halt {
                        Some(_) => ControlFlow::Break(()),
                        None => ControlFlow::Continue(()),
                    }
                },
            },
        );
        match halt {
            Some(Halt::Interrupted(signal)) => {
                return Err(RunError::Interrupted {
                    signal,
                    epoch,
                    after_training: false,
                    epochs: config.epochs,
                    checkpoint: kept,
                });
            }
            Some(Halt::Diverged) => {
                observer.note(&format!(
                    "training diverged in epoch {epoch}, step {steps}: replaying the epoch \
                     under anomaly detection to find the op"
                ));
                let replay = Replay {
                    config: &config,
                    shape,
                    from: kept.as_deref(),
                    keys,
                    lr,
                };
                return Err(RunError::Diverged {
                    epoch,
                    step: steps,
                    // Every process diverged at the same step (the gradients are summed);
                    // process 0 alone replays the epoch, on the whole batches, to name the op.
                    anomaly: (world.rank() == 0)
                        .then(|| replay.anomaly(&data))
                        .flatten()
                        .map(|a| a.to_string()),
                    checkpoint: kept,
                });
            }
            None => {}
        }
        let seconds = started.elapsed().as_secs_f64();
        values.extend(shared_test(
            &*model,
            (&test, my_test.as_ref()),
            config.seed,
            world,
        ));
        if let Some(store) = model.shared_parameters()
            && !parallel::agree(world, parallel::params_hash(store))
        {
            return Err(RunError::Config(format!(
                "the processes' parameters differ after epoch {epoch}: the run stops before \
                 saving them"
            )));
        }
        let row = EpochRow {
            epoch,
            line: model.describe(&values),
            values,
            seconds,
        };
        kept = Some(checkpoint_path.clone());
        let _ = writeln!(metrics_csv, "{}", row.csv());
        if writes {
            model.save(&checkpoint_path, &epoch_metadata(&config, epoch, shape))?;
            write_atomic(&metrics_path, &metrics_csv)?;
            chart::save_curves(&curves_path, &metrics_csv)?;
            model.epoch_pictures(out)?;
        }
        observer.epoch_end(&row);
        for warning in model.warnings(&row.values) {
            observer.note(&format!("warning: {warning}"));
        }
        last = Some(row);
    }

    let trained = start.max(config.epochs);
    if trained > 0 {
        let mut signal = None;
        // Both closures tell the observer; one at a time.
        let shared = std::cell::RefCell::new(&mut *observer);
        let fitted = model.after_training(
            &data,
            &mut AfterTraining {
                note: &mut |m| shared.borrow_mut().note(m),
                on_step: &mut || match shared.borrow_mut().interrupted() {
                    Some(s) => {
                        signal = Some(s);
                        ControlFlow::Break(())
                    }
                    None => ControlFlow::Continue(()),
                },
            },
        );
        match (fitted, signal) {
            (ControlFlow::Continue(true), _) if writes => {
                let meta = epoch_metadata(&config, trained, shape);
                model.save(&checkpoint_path, &meta)?;
            }
            (ControlFlow::Continue(_), _) => {}
            (ControlFlow::Break(()), signal) => {
                return Err(RunError::Interrupted {
                    signal: signal.expect("only an interrupt stops the fit"),
                    epoch: trained,
                    after_training: true,
                    epochs: config.epochs,
                    checkpoint: kept,
                });
            }
        }
    }

    let mut written = vec![config_path, metrics_path, checkpoint_path];
    if curves_path.is_file() {
        written.push(curves_path);
    }
    if writes {
        written.extend(model.pictures(&test, out, &mut pictures_rng(config.seed))?);
    }
    let figures = model.finish(
        &test,
        &mut Finish {
            iw_samples: config.iw_samples,
            keys: Keys::evaluation(config.seed),
            world,
            note: &mut |m| observer.note(m),
            train: &train_images,
        },
    )?;
    let n_train = columns.train.len();
    Ok(Summary {
        epochs: config.epochs.max(start),
        test_line: (last.as_ref())
            .map(|row: &EpochRow| model.describe_test(&row.values[n_train..])),
        last,
        figures,
        files: written,
    })
}

/// The checkpoint metadata after `epoch` epochs: the trajectory's settings, the epoch and the
/// image size. Every draw of an epoch is keyed by the seed and the epoch's number, so these
/// are all a resumed run needs to continue exactly.
fn epoch_metadata(config: &RunConfig, epoch: usize, (height, width): (usize, usize)) -> Metadata {
    let mut meta: Metadata = config
        .trajectory()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    meta.insert("epoch".into(), epoch.to_string());
    meta.insert(IMAGE_SIZE.into(), format!("{height}x{width}"));
    meta
}

/// The test columns of `model` with the evaluation keys of `seed`: each process of `world`
/// evaluates its share `mine` of `test` and the shares' means are combined, weighted by their
/// images. Alone (no share), or for a model that is not data-parallel, the whole test set.
fn shared_test(
    model: &dyn RunModel,
    (test, mine): (&TestData, Option<&TestData>),
    seed: u64,
    world: &dyn Collective,
) -> Vec<f64> {
    let keys = Keys::evaluation(seed);
    let Some(mine) = mine.filter(|_| model.shared_parameters().is_some()) else {
        return model.test(test, keys);
    };
    let weight = mine.x.nrows() as f64 / test.x.nrows().max(1) as f64;
    let mut values: Vec<f64> = (model.test(mine, keys).iter())
        .map(|v| v * weight)
        .collect();
    world.sum_f64(&mut values);
    values
}

/// The signal that stops every process of `world` at this step boundary: the strongest any of
/// them received (SIGTERM over SIGINT), so that all stop at the same step (`mpirun` passes a
/// signal to each, and they see it at different steps). One all-reduce of two numbers, the
/// processes that received each; alone, `received`.
fn stop_together(world: &dyn Collective, received: Option<Interrupt>) -> Option<Interrupt> {
    if world.ranks() == 1 {
        return received;
    }
    let mut received = [Interrupt::Int, Interrupt::Term].map(|s| f64::from(received == Some(s)));
    world.sum_f64(&mut received);
    match received {
        [_, term] if term > 0.0 => Some(Interrupt::Term),
        [int, _] if int > 0.0 => Some(Interrupt::Int),
        _ => None,
    }
}

/// A checksum of what every process of a run must agree on besides the data: the settings of
/// its trajectory and those that decide which collectives it calls (epochs, test images,
/// importance samples).
fn settings_hash(config: &RunConfig) -> u64 {
    use std::hash::Hasher;
    let mut h = parallel::Checksum::default();
    for (key, value) in config.trajectory() {
        h.write(key.as_bytes());
        h.write(value.as_bytes());
    }
    h.write_usize(config.epochs);
    h.write_usize(config.test_limit.unwrap_or(usize::MAX));
    h.write_usize(config.iw_samples);
    h.finish()
}

/// A checksum of a run's data (both splits' pixels and labels), the same on every process
/// that read the same files.
fn splits_hash(train: &Split, test: &Split) -> u64 {
    use std::hash::Hasher;
    let mut h = parallel::Checksum::default();
    for split in [train, test] {
        h.write_usize(split.len());
        for i in 0..split.len() {
            h.write(split.image(i));
        }
        h.write(split.labels());
    }
    h.finish()
}

/// Why an epoch stopped before its end.
enum Halt {
    Interrupted(Interrupt),
    Diverged,
}

/// An epoch to train again from its start under anomaly detection.
struct Replay<'a> {
    config: &'a RunConfig,
    shape: (usize, usize),
    /// The checkpoint the epoch started from (`None`: the initialisation).
    from: Option<&'a Path>,
    /// The epoch's keys.
    keys: Keys,
    lr: f32,
}

impl Replay<'_> {
    /// The model as the epoch started, trained again on `data` with every tape in anomaly mode
    /// up to the step that diverges: the op that first produced a non-finite number.
    fn anomaly(self, data: &TrainData) -> Option<autodiff::Anomaly> {
        let mut model = (self.config.model.entry().build)(self.config, self.shape);
        if let Some(path) = self.from {
            model.restore(path, Restore::Everything).ok()?;
        }
        let mut found = None;
        autodiff::detect_anomaly(|| {
            model.train_epoch(
                data,
                &mut Epoch {
                    keys: self.keys,
                    world: &Alone,
                    batch_size: self.config.batch_size,
                    lr: self.lr,
                    on_batch: &mut |stepped| match stepped {
                        Stepped::Trained(_) => ControlFlow::Continue(()),
                        Stepped::Diverged(d) => {
                            found = d.anomaly.clone();
                            ControlFlow::Break(())
                        }
                    },
                },
            )
        });
        found
    }
}

/// The header and the rows of epochs `1..=keep` of an existing `metrics.csv` (a resumed run
/// continues it; rows written after the checkpoint it resumes from are dropped).
fn previous_rows(path: &Path, header: &str, keep: usize) -> Result<String, RunError> {
    let mut csv = format!("{header}\n");
    if keep == 0 {
        return Ok(csv);
    }
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(csv),
        Err(e) => return Err(io_error(path)(e)),
    };
    for line in text.lines().skip(1) {
        let epoch: Option<usize> = line.split(',').next().and_then(|e| e.parse().ok());
        if epoch.is_some_and(|e| e <= keep) {
            csv.push_str(line);
            csv.push('\n');
        }
    }
    Ok(csv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::{TempDir, write_split};

    #[test]
    fn a_checkpoint_of_other_sized_images_is_refused_by_eval_and_resume() {
        let tmp = TempDir::new("image-size");
        let (small, large, out) = (
            tmp.path().join("4x4"),
            tmp.path().join("5x5"),
            tmp.path().join("run"),
        );
        for (dir, side) in [(&small, 4), (&large, 5)] {
            fs::create_dir_all(dir).unwrap();
            write_split(dir, "train", 40, (side, side));
            write_split(dir, "t10k", 20, (side, side));
        }
        let config = |data: &Path, epochs| RunConfig {
            data_dir: Some(data.to_path_buf()),
            hidden: vec![3],
            latent_dim: 2,
            batch_size: 8,
            epochs,
            iw_samples: 0,
            ..RunConfig::default()
        };
        train(config(&small, 1), &out, None, &mut Silent).unwrap();
        let checkpoint = out.join(files::CHECKPOINT);
        let meta = checkpoint::read_metadata(&checkpoint).unwrap();
        assert_eq!(meta.get(IMAGE_SIZE).map(String::as_str), Some("4x4"));
        let expected = format!(
            "{}: a model of 4x4 images, but the images in {} are 5x5",
            checkpoint.display(),
            large.display()
        );
        let error = load(&checkpoint, config(&large, 1)).err().unwrap();
        assert_eq!(error.to_string(), expected);
        let error = train(config(&large, 2), &out, Some(&checkpoint), &mut Silent);
        assert_eq!(error.err().unwrap().to_string(), expected);
        // The same data loads.
        assert!(load(&checkpoint, config(&small, 1)).is_ok());
    }

    #[test]
    fn an_output_that_cannot_be_a_directory_fails_before_anything_is_loaded() {
        let tmp = TempDir::new("out");
        let file = tmp.write("a-file", b"");
        // No data directory is needed: the output is checked first.
        let nowhere = RunConfig {
            data_dir: Some(tmp.path().join("no-data")),
            ..RunConfig::default()
        };
        let error = train(nowhere.clone(), &file, None, &mut Silent)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("exists and is not a directory"),
            "{error}"
        );
        let error = train(nowhere, &file.join("run"), None, &mut Silent)
            .err()
            .unwrap();
        assert!(matches!(error, RunError::Io { .. }), "{error}");
    }

    #[test]
    fn an_interrupt_says_whether_it_came_in_an_epoch_or_in_the_fit_after_the_last() {
        let interrupted = |after_training| RunError::Interrupted {
            signal: Interrupt::Int,
            epoch: 30,
            after_training,
            epochs: 30,
            checkpoint: Some(PathBuf::from("runs/x/checkpoint.safetensors")),
        };
        assert_eq!(
            interrupted(false).to_string(),
            "interrupted by SIGINT in epoch 30; nothing of it was written. Continue with: \
             vae-train --resume runs/x/checkpoint.safetensors --epochs 30"
        );
        assert_eq!(
            interrupted(true).to_string(),
            "interrupted by SIGINT after epoch 30, in the fit that follows training; nothing of \
             it was written. Continue with: vae-train --resume runs/x/checkpoint.safetensors \
             --epochs 30"
        );
    }

    #[test]
    fn cosine_schedule_runs_from_lr_to_a_hundredth() {
        let s = LrSchedule::Cosine;
        // Epoch 1 of 5 at the full rate, epoch 3 halfway down the cosine:
        // 0.01 + 0.99·½(1 + cos(π/2)) = 0.505; epoch 5 at 1%.
        assert!((s.lr(1e-3, 1, 5) - 1e-3).abs() < 1e-9);
        assert!((s.lr(1e-3, 3, 5) - 0.505e-3).abs() < 1e-9);
        assert!((s.lr(1e-3, 5, 5) - 1e-5).abs() < 1e-9);
        // A one-epoch run trains at the full rate.
        assert!((s.lr(1e-3, 1, 1) - 1e-3).abs() < 1e-9);
        assert_eq!(LrSchedule::Constant.lr(1e-3, 4, 5), 1e-3);
        for s in [LrSchedule::Constant, LrSchedule::Cosine] {
            assert_eq!(s.to_string().parse::<LrSchedule>(), Ok(s));
        }
    }
}
