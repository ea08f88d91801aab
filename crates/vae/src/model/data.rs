//! What a model is handed to train and evaluate: the training data ([`TrainData`]), the test
//! set ([`TestData`]), and the context of an epoch, of the fit after training and of the
//! end-of-run figures.

use std::ops::ControlFlow;
use std::path::PathBuf;

use autodiff::Matrix;

use super::RunError;
use crate::data::{Classes, Split, TRAIN_IMAGES, TRAIN_LABELS, TrainSet, load_split, one_hot};
use crate::parallel::{Collective, share};
use crate::random::Keys;
use crate::train::{Plan, Stepped};

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

/// What [`RunModel::after_training`](super::RunModel::after_training) is given besides the training data.
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
