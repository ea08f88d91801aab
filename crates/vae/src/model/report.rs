//! What a model reports of a run: the [`Report`] trait, an epoch's figures by name ([`Row`],
//! [`Columns`]), the end-of-run [`Figure`]s and the [`Picture`]s of `vae-train sample`.

use std::path::{Path, PathBuf};

use autodiff::Matrix;
use rand_chacha::ChaCha8Rng;

use super::{Finish, RunError, TestData};

/// What a model reports: the terminal's lines of an epoch, the pictures and the figures of the
/// end of a run. Every [`RunModel`](super::RunModel) is one (the trait is its supertrait).
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

/// An epoch's figures by name: the `train` columns of [`RunModel::train_epoch`](super::RunModel::train_epoch) or the `test`
/// columns of [`RunModel::test`](super::RunModel::test), in [`Columns`] order.
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

    /// The values, to change in place (a sum over processes).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut f64> + '_ {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

/// A model's `metrics.csv` columns after `epoch`: those of training, then those of the test set
/// (`seconds` follows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// What [`RunModel::train_epoch`](super::RunModel::train_epoch) returns, e.g. `train_neg_elbo`.
    pub train: &'static [&'static str],
    /// What [`RunModel::test`](super::RunModel::test) returns, e.g. `test_neg_elbo`.
    pub test: &'static [&'static str],
}

impl Columns {
    /// Every column's name, training's first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.train.iter().chain(self.test).copied()
    }
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
