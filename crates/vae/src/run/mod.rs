//! A training run from start to finish: its settings on disk ([`config`]) and its flags
//! ([`flags`]), its directory ([`files`]: `config.toml`, `metrics.csv`,
//! `checkpoint.safetensors`, the pictures), the training loop, resuming from a checkpoint, the
//! processes of a data-parallel run, and the final evaluation. The model seam it trains through
//! is [`crate::model`].

use std::path::{Path, PathBuf};

use nn::checkpoint;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{TEST_IMAGES, TEST_LABELS, eval_targets, load_split};
use crate::model::{Build, Figure, Restore, RunConfig, RunModel, TestData, TrainImages};
use crate::parallel::{Alone, Collective};
use crate::train::Metrics;

pub mod config;
mod dir;
pub mod flags;
pub mod reference;
mod training;
mod world;

pub use crate::error::{Interrupt, RunError};
pub use crate::model::{files, restore};
pub use dir::EpochRow;
pub(crate) use dir::write_atomic;

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

/// What a finished run measured and wrote (all empty when there was nothing to train).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Epochs trained in total (including those before a resume).
    pub epochs: usize,
    /// The last epoch trained in this call, if any.
    pub last: Option<EpochRow>,
    /// The model's account of the last epoch's test columns
    /// ([`Report::describe_test`](crate::model::Report::describe_test)).
    pub test_line: Option<String>,
    /// The end-of-run figures ([`Report::finish`](crate::model::Report::finish)).
    pub figures: Vec<Figure>,
    /// Every file this call wrote, in the run directory.
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

/// Writes `model`'s checkpoint after `epoch` epochs of `config` on images of `shape` to `path`.
fn save(
    model: &mut dyn RunModel,
    path: &Path,
    config: &RunConfig,
    epoch: usize,
    shape: (usize, usize),
) -> Result<(), RunError> {
    model
        .state()
        .save(path, &config.checkpoint_metadata(epoch, shape))
}

/// The RNG of every evaluation: the same draws each epoch, so epochs compare like for like.
pub fn evaluation_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(2);
    rng
}

/// The RNG of a run's pictures: the run's seed on stream 3.
pub fn pictures_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(3);
    rng
}

/// Reads a run's checkpoint (parameters only) and its test data, for evaluation and sampling.
/// `config` supplies the data folder, the test limit (`None`: every test image, whatever the
/// run tested on) and the importance samples; the rest comes from the checkpoint.
pub fn load(path: &Path, config: RunConfig) -> Result<Loaded, RunError> {
    let meta = checkpoint::read_metadata(path)?;
    let mut found = config.from_checkpoint(&meta, path)?;
    found.data.test_limit = config.data.test_limit;
    let config = found;
    let data = &config.data;
    let dir = data.dataset.find_dir(data.dir.as_deref())?;
    let all = load_split(&dir.join(TEST_IMAGES), &dir.join(TEST_LABELS))?;
    let mut test = data.classes.keep(all);
    if let Some(n) = data.test_limit {
        test.truncate(n);
    }
    dir::check_image_size(&meta, path, test.image_shape(), &dir)?;
    let mut model = (config.kind().entry().build)(&config, &Build::of(test.image_shape()));
    restore(&mut *model, path, Restore::Params)?;
    let test = TestData::new(eval_targets(&test, config.data.binarize));
    let train = TrainImages {
        dir,
        classes: config.data.classes.clone(),
        limit: config.data.train_limit,
    };
    Ok(Loaded {
        config,
        model,
        test,
        train,
    })
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
    if config.from_checkpoint(&meta, &path)? != config {
        return Err(RunError::Config(format!(
            "{}: not the run of {what} (its settings differ); remove {} to train it there",
            path.display(),
            dir.display()
        )));
    }
    let trained: usize = meta
        .get(config::EPOCH)
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
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
/// across processes after every epoch, and the data before the first. A run with no epoch to
/// train (`--epochs 0`, or a checkpoint past `--epochs`) says so in a note and writes nothing.
pub fn train_shared(
    config: RunConfig,
    out: &Path,
    resume: Option<&Path>,
    observer: &mut dyn Observer,
    world: &dyn Collective,
) -> Result<Summary, RunError> {
    let Some(mut run) = training::Run::prepare(config, (out, resume), observer, world)? else {
        return Ok(Summary::default());
    };
    for epoch in run.epochs() {
        run.epoch(epoch, observer)?;
    }
    run.after_training(observer)?;
    run.finish(observer)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::data::testutil::{TempDir, write_split};
    use crate::model::LrSchedule;
    use crate::run::config::IMAGE_SIZE;

    /// A tiny VAE of `epochs` on the images in `data`.
    fn tiny(data: &Path, epochs: usize) -> RunConfig {
        let mut config = RunConfig::default();
        config.model.set("hidden", "3").unwrap();
        config.model.set("latent_dim", "2").unwrap();
        config.data.dir = Some(data.to_path_buf());
        (
            config.optimizer.batch_size,
            config.epochs,
            config.iw_samples,
        ) = (8, epochs, 0);
        config
    }

    /// A folder of 40 training and 20 test images of 4×4.
    fn images_in(tmp: &TempDir) -> PathBuf {
        let data = tmp.path().join("4x4");
        fs::create_dir_all(&data).unwrap();
        write_split(&data, "train", 40, (4, 4));
        write_split(&data, "t10k", 20, (4, 4));
        data
    }

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
        let config = tiny;
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
        let mut nowhere = RunConfig::default();
        nowhere.data.dir = Some(tmp.path().join("no-data"));
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
            data_dir: None,
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
    fn a_run_with_nothing_to_train_says_so_and_writes_nothing() {
        struct Notes(Vec<String>);
        impl Observer for Notes {
            fn note(&mut self, message: &str) {
                self.0.push(message.to_string());
            }
        }
        let tmp = TempDir::new("nothing");
        let data = images_in(&tmp);
        let out = tmp.path().join("run");
        let mut notes = Notes(Vec::new());
        let summary = train(tiny(&data, 0), &out, None, &mut notes).unwrap();
        assert!(summary.files.is_empty() && summary.last.is_none());
        assert_eq!(notes.0, ["nothing to train: --epochs 0"]);
        assert!(!out.exists());

        let summary = train(tiny(&data, 2), &out, None, &mut Silent).unwrap();
        // config.toml, the checkpoint, metrics.csv, curves.png and the pictures.
        assert!(summary.files.len() >= 6, "{:?}", summary.files);
        assert!(
            summary.files.iter().all(|f| f.is_file()),
            "{:?}",
            summary.files
        );
        let checkpoint = out.join(files::CHECKPOINT);
        let before = fs::read_to_string(out.join(files::CONFIG)).unwrap();
        let mut notes = Notes(Vec::new());
        let summary = train(tiny(&data, 1), &out, Some(&checkpoint), &mut notes).unwrap();
        assert!(summary.files.is_empty());
        assert_eq!(
            notes.0,
            ["nothing to train: the checkpoint has 2 epochs, more than --epochs 1"]
        );
        // config.toml is as the run left it.
        assert_eq!(fs::read_to_string(out.join(files::CONFIG)).unwrap(), before);
    }

    #[test]
    fn a_resumed_run_keeps_its_test_limit() {
        let tmp = TempDir::new("test-limit");
        let data = images_in(&tmp);
        let out = tmp.path().join("run");
        let mut config = tiny(&data, 1);
        config.data.test_limit = Some(7);
        train(config, &out, None, &mut Silent).unwrap();
        // The command that resumes gives no --test-limit: the checkpoint's is kept.
        let checkpoint = out.join(files::CHECKPOINT);
        let summary = train(tiny(&data, 2), &out, Some(&checkpoint), &mut Silent).unwrap();
        assert_eq!(summary.last.unwrap().epoch, 2);
        let saved = fs::read_to_string(out.join(files::CONFIG)).unwrap();
        assert_eq!(
            RunConfig::from_toml(&saved).unwrap().data.test_limit,
            Some(7)
        );
        let loaded = load(&checkpoint, tiny(&data, 2)).unwrap();
        // `eval` tests on every image unless told otherwise.
        assert_eq!(loaded.test.split.len(), 20);
        let meta = checkpoint::read_metadata(&checkpoint).unwrap();
        let resumed = tiny(&data, 2).from_checkpoint(&meta, &checkpoint).unwrap();
        assert_eq!(resumed.data.test_limit, Some(7));
    }

    #[test]
    fn the_schedule_sets_every_optimizers_rate_the_gans_two_included() {
        let tmp = TempDir::new("gan-cosine");
        let data = images_in(&tmp);
        for (schedule, decays) in [(LrSchedule::Constant, false), (LrSchedule::Cosine, true)] {
            let mut config = RunConfig::for_model(crate::models::kind("gan").unwrap());
            config.model.set("hidden", "4").unwrap();
            config.model.set("latent_dim", "2").unwrap();
            config.model.set("quality_samples", "0").unwrap();
            config.data.dir = Some(data.clone());
            (config.optimizer.batch_size, config.epochs) = (8, 3);
            config.optimizer.lr_schedule = schedule;
            let out = tmp.path().join(format!("gan-{schedule}"));
            train(config.clone(), &out, None, &mut Silent).unwrap();
            // The optimizers as the checkpoint saved them after the last epoch: epoch 3 of 3
            // of the cosine trains at 1% of the rate.
            let mut model = (config.kind().entry().build)(&config, &Build::of((4, 4)));
            let path = out.join(files::CHECKPOINT);
            restore(&mut *model, &path, Restore::Everything).unwrap();
            let last = if decays { 2e-6 } else { 2e-4 };
            for lr in model.state().lrs() {
                assert!((lr - last).abs() < 1e-9, "{schedule}: {lr}");
            }
            assert_eq!(model.state().lrs().len(), 2);
        }
    }
}
