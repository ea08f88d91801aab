//! The training loop, in its four parts: [`Run::prepare`] (settings, data, the model, a
//! resumed checkpoint), [`Run::epoch`] (train, test, checkpoint, report), [`Run::after_training`]
//! (the fit that follows the last epoch) and [`Run::finish`] (pictures and figures).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use nn::checkpoint::{self, Metadata};

use super::config::EPOCH;
use super::dir::{
    EpochRow, check_image_size, metrics_header, prepare_out, previous_rows, write_atomic,
};
use super::reference as quality;
use super::world::{Halt, Replay, check_agreement, shared_test, stop_together};
use super::{Observer, RunError, Summary, pictures_rng, restore, save};
use crate::chart;
use crate::data::{Splits, eval_targets};
use crate::model::{
    AfterTraining, Build, Epoch, Finish, Restore, RunConfig, RunModel, TestData, TrainData,
    TrainImages, Yardstick, files,
};
use crate::parallel::{self, Collective};
use crate::random::Keys;
use crate::train::Stepped;

/// A run under way: what it trains, on what, and what it has written.
pub(super) struct Run<'a> {
    config: RunConfig,
    out: &'a Path,
    world: &'a dyn Collective,
    model: Box<dyn RunModel>,
    build: Build,
    data_parallel: bool,
    data: TrainData,
    test: TestData,
    /// This process's share of the test set, when there are several.
    my_test: Option<TestData>,
    train_images: TrainImages,
    /// Epochs trained before this call (those of a resumed checkpoint).
    start: usize,
    /// The checkpoint of the last finished epoch: what a diverged or interrupted run keeps.
    kept: Option<PathBuf>,
    metrics_csv: String,
    last: Option<EpochRow>,
    /// Every file written by this call, in the order first written.
    written: Vec<PathBuf>,
}

/// Whether a run of `config` from a checkpoint of `start` epochs has no epoch to train, and
/// why, in one line.
fn nothing_to_train(config: &RunConfig, start: usize) -> Option<String> {
    match (config.epochs, start) {
        (0, 0) => Some("nothing to train: --epochs 0".into()),
        (epochs, start) if start > epochs => Some(format!(
            "nothing to train: the checkpoint has {start} epochs, more than --epochs {epochs}"
        )),
        _ => None,
    }
}

/// The checkpoint `path`'s metadata, the settings it continues with, and its epochs.
fn resumed(config: &RunConfig, path: &Path) -> Result<(Metadata, RunConfig, usize), RunError> {
    let meta = checkpoint::read_metadata(path)?;
    let found = config.from_checkpoint(&meta, path)?;
    let start = (meta.get(EPOCH).and_then(|e| e.parse().ok()))
        .ok_or_else(|| RunError::Config(format!("{}: no epoch in its metadata", path.display())))?;
    Ok((meta, found, start))
}

/// The reference classifier of the yardstick for a model that asked for one: trained once
/// beside the run's directory `out`, or loaded.
fn reference(
    config: &RunConfig,
    out: &Path,
    shape: (usize, usize),
    observer: &mut dyn Observer,
) -> Result<Rc<dyn Yardstick>, RunError> {
    let dataset = config.data.dataset;
    let dir = quality::reference_dir(&out.join(files::CHECKPOINT), dataset);
    let reference_config = quality::reference_config(dataset, config.data.dir.clone());
    let path = quality::ensure_reference(&dir, reference_config, observer)?;
    let data_dir = config.data.dir.clone();
    let reference = quality::Reference::load_for(&path, dataset, shape, data_dir, None)?;
    Ok(Rc::new(reference))
}

impl<'a> Run<'a> {
    /// Reads the settings (a resumed checkpoint's), the data and the model, and writes
    /// `config.toml`; `None` if there is no epoch to train (said in a note).
    pub(super) fn prepare(
        mut config: RunConfig,
        (out, resume): (&'a Path, Option<&Path>),
        observer: &mut dyn Observer,
        world: &'a dyn Collective,
    ) -> Result<Option<Run<'a>>, RunError> {
        let resumed = resume.map(|path| resumed(&config, path)).transpose()?;
        let start = resumed.as_ref().map_or(0, |(_, _, start)| *start);
        if let Some((_, found, _)) = &resumed {
            config = found.clone();
        }
        config.validate()?;
        if let Some(line) = nothing_to_train(&config, start) {
            observer.note(&line);
            return Ok(None);
        }
        if world.rank() == 0 {
            prepare_out(out)?;
        }
        let splits = load_splits(&config, observer)?;
        let shape = splits.train.image_shape();
        let mut build = Build::of(shape);
        let mut model = (config.kind().entry().build)(&config, &build);
        let data_parallel = model.state().data_parallel;
        let shared = (&splits.train, &splits.test, splits.dir.as_path());
        check_agreement(world, (&config, data_parallel), shared)?;
        // The reference classifier, once the processes agree (it may have to be trained).
        if config.model.wants_reference() {
            build.reference = Some(reference(&config, out, shape, observer)?);
            model = (config.kind().entry().build)(&config, &build);
        }
        if let (Some((meta, ..)), Some(path)) = (&resumed, resume) {
            check_image_size(meta, path, shape, &splits.dir)?;
            restore(&mut *model, path, Restore::Everything)?;
            observer.note(&format!(
                "resumed from {} after epoch {start}",
                path.display()
            ));
        }
        let mut run = Run::new(config, (out, world), model, build, splits, observer)?;
        (run.start, run.data_parallel) = (start, data_parallel);
        run.kept = resume.map(Path::to_path_buf);
        run.begin_files()?;
        Ok(Some(run))
    }

    fn new(
        config: RunConfig,
        (out, world): (&'a Path, &'a dyn Collective),
        model: Box<dyn RunModel>,
        build: Build,
        splits: Splits,
        observer: &mut dyn Observer,
    ) -> Result<Run<'a>, RunError> {
        let train_images = TrainImages {
            dir: splits.dir.clone(),
            classes: config.data.classes.clone(),
            limit: config.data.train_limit,
        };
        let data = (config.kind().entry().data)(&config, splits.train)?;
        if let TrainData::SemiSupervised { labeled, unlabeled } = &data {
            observer.note(&format!(
                "{} labeled and {} unlabeled training images",
                labeled.len(),
                unlabeled.len()
            ));
        }
        let test = TestData::new(eval_targets(&splits.test, config.data.binarize));
        // Each process's share of the test set (a copy only when there are several).
        let my_test = (world.ranks() > 1).then(|| test.share(world.rank(), world.ranks()));
        Ok(Run {
            config,
            out,
            world,
            model,
            build,
            data_parallel: false,
            data,
            test,
            my_test,
            train_images,
            start: 0,
            kept: None,
            metrics_csv: String::new(),
            last: None,
            written: Vec::new(),
        })
    }

    /// Writes `config.toml` and takes up `metrics.csv` where the checkpoint left it.
    fn begin_files(&mut self) -> Result<(), RunError> {
        let header = metrics_header(self.model.columns());
        let metrics = self.out.join(files::METRICS);
        self.metrics_csv = previous_rows(&metrics, &header, self.start)?;
        if self.writes() {
            let path = self.out.join(files::CONFIG);
            write_atomic(&path, &self.config.to_toml())?;
            self.wrote(path);
        }
        Ok(())
    }

    /// Whether this process writes the run's files (process 0).
    fn writes(&self) -> bool {
        self.world.rank() == 0
    }

    fn wrote(&mut self, path: PathBuf) {
        if !self.written.contains(&path) {
            self.written.push(path);
        }
    }

    /// The epochs this call trains.
    pub(super) fn epochs(&self) -> std::ops::RangeInclusive<usize> {
        self.start + 1..=self.config.epochs
    }

    /// Trains, tests, checkpoints and reports epoch `epoch` (from 1).
    pub(super) fn epoch(
        &mut self,
        epoch: usize,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        let batches = self.data.batches(self.config.optimizer.batch_size);
        observer.epoch_start(epoch, self.config.epochs, batches);
        let started = Instant::now();
        let optimizer = &self.config.optimizer;
        let lr = (optimizer.lr_schedule).lr(optimizer.lr, epoch, self.config.epochs);
        self.model.state().set_lr(lr);
        let keys = Keys::epoch(self.config.seed, epoch);
        let (train, steps, halt) = self.train_epoch(keys, observer);
        if let Some(halt) = halt {
            return Err(self.halted(halt, (epoch, steps), (keys, lr), observer));
        }
        let seconds = started.elapsed().as_secs_f64();
        let test = shared_test(
            (&*self.model, self.data_parallel),
            (&self.test, self.my_test.as_ref()),
            self.config.seed,
            self.world,
        );
        self.check_parameters(epoch)?;
        let row = train.then(test);
        let line = self.model.describe(&row);
        let row = EpochRow {
            epoch,
            row,
            seconds,
            line,
        };
        self.metrics_csv.push_str(&row.csv());
        self.metrics_csv.push('\n');
        self.kept = Some(self.out.join(files::CHECKPOINT));
        if self.writes() {
            self.write_epoch(epoch)?;
        }
        observer.epoch_end(&row);
        for warning in self.model.warnings(&row.row) {
            observer.note(&format!("warning: {warning}"));
        }
        self.last = Some(row);
        Ok(())
    }

    /// One epoch of the model's training, each step told to `observer`; the train columns, the
    /// steps taken, and why the epoch stopped early if it did.
    fn train_epoch(
        &mut self,
        keys: Keys,
        observer: &mut dyn Observer,
    ) -> (crate::model::Row, usize, Option<Halt>) {
        let world = self.world;
        let (mut steps, mut halt) = (0, None);
        let row = self.model.train_epoch(
            &self.data,
            &mut Epoch {
                keys,
                world,
                batch_size: self.config.optimizer.batch_size,
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
        (row, steps, halt)
    }

    /// The error of an epoch that stopped at step `steps`: an interrupt, or a divergence, whose
    /// op process 0 names by replaying the epoch (every process diverged at the same step, the
    /// gradients being summed).
    fn halted(
        &self,
        halt: Halt,
        (epoch, step): (usize, usize),
        (keys, lr): (Keys, f32),
        observer: &mut dyn Observer,
    ) -> RunError {
        match halt {
            Halt::Interrupted(signal) => RunError::Interrupted {
                signal,
                epoch,
                after_training: false,
                epochs: self.config.epochs,
                checkpoint: self.kept.clone(),
                data_dir: self.config.data.dir.clone(),
            },
            Halt::Diverged => {
                observer.note(&format!(
                    "training diverged in epoch {epoch}, step {step}: replaying the epoch under \
                     anomaly detection to find the op"
                ));
                let replay = Replay {
                    config: &self.config,
                    build: &self.build,
                    from: self.kept.as_deref(),
                    keys,
                    lr,
                };
                let anomaly = (self.world.rank() == 0).then(|| replay.anomaly(&self.data));
                RunError::Diverged {
                    epoch,
                    step,
                    anomaly: anomaly.flatten().map(|a| a.to_string()),
                    checkpoint: self.kept.clone(),
                }
            }
        }
    }

    /// Refuses to save parameters that differ across the processes of a data-parallel run.
    fn check_parameters(&mut self, epoch: usize) -> Result<(), RunError> {
        if self.world.ranks() == 1 || !self.data_parallel {
            return Ok(());
        }
        let hash = self.model.state().params_hash();
        if parallel::agree(self.world, hash) {
            return Ok(());
        }
        Err(RunError::Config(format!(
            "the processes' parameters differ after epoch {epoch}: the run stops before saving \
             them"
        )))
    }

    /// Writes the checkpoint, `metrics.csv`, `curves.png` and the pictures of every epoch.
    fn write_epoch(&mut self, epoch: usize) -> Result<(), RunError> {
        let checkpoint = self.out.join(files::CHECKPOINT);
        save(
            &mut *self.model,
            &checkpoint,
            &self.config,
            epoch,
            self.build.shape,
        )?;
        let (metrics, curves) = (self.out.join(files::METRICS), self.out.join(files::CURVES));
        write_atomic(&metrics, &self.metrics_csv)?;
        chart::save_curves(&curves, &self.metrics_csv)?;
        let pictures = self.model.epoch_pictures(self.out)?;
        for path in [checkpoint, metrics, curves].into_iter().chain(pictures) {
            self.wrote(path);
        }
        Ok(())
    }

    /// The fit that follows the last epoch ([`RunModel::after_training`]), checkpointed if it
    /// changed the model.
    pub(super) fn after_training(&mut self, observer: &mut dyn Observer) -> Result<(), RunError> {
        let trained = self.start.max(self.config.epochs);
        let mut signal = None;
        // Both closures tell the observer; one at a time.
        let shared = std::cell::RefCell::new(&mut *observer);
        let fitted = self.model.after_training(
            &self.data,
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
        match fitted {
            ControlFlow::Continue(true) if self.writes() => {
                let path = self.out.join(files::CHECKPOINT);
                save(
                    &mut *self.model,
                    &path,
                    &self.config,
                    trained,
                    self.build.shape,
                )?;
                self.wrote(path);
                Ok(())
            }
            ControlFlow::Continue(_) => Ok(()),
            ControlFlow::Break(()) => Err(RunError::Interrupted {
                signal: signal.expect("only an interrupt stops the fit"),
                epoch: trained,
                after_training: true,
                epochs: self.config.epochs,
                checkpoint: self.kept.clone(),
                data_dir: self.config.data.dir.clone(),
            }),
        }
    }

    /// Writes the pictures and measures the figures of the end of the run.
    pub(super) fn finish(mut self, observer: &mut dyn Observer) -> Result<Summary, RunError> {
        if self.writes() {
            let rng = &mut pictures_rng(self.config.seed);
            let pictures = self.model.pictures(&self.test, self.out, rng)?;
            pictures.into_iter().for_each(|path| self.wrote(path));
        }
        let figures = self.model.finish(
            &self.test,
            &mut Finish {
                iw_samples: self.config.iw_samples,
                keys: Keys::evaluation(self.config.seed),
                world: self.world,
                note: &mut |m| observer.note(m),
                train: &self.train_images,
            },
        )?;
        let test_columns = self.model.columns().test;
        let model = &self.model;
        Ok(Summary {
            epochs: self.config.epochs.max(self.start),
            test_line: (self.last.as_ref())
                .map(|row| model.describe_test(&row.row.only(test_columns))),
            last: self.last,
            figures,
            files: self.written,
        })
    }
}

/// The run's data, its test set limited to `--test-limit`, told to `observer`.
fn load_splits(config: &RunConfig, observer: &mut dyn Observer) -> Result<Splits, RunError> {
    let data = &config.data;
    let mut splits = (data.dataset).load(data.dir.as_deref(), &data.classes, data.train_limit)?;
    if let Some(n) = data.test_limit {
        splits.test.truncate(n);
    }
    observer.note(&format!(
        "{}: {} training and {} test images from {}",
        data.dataset,
        splits.train.len(),
        splits.test.len(),
        splits.dir.display()
    ));
    Ok(splits)
}
