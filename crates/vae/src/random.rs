//! Randomness keyed by what it is for, not by the order in which it is drawn.
//!
//! Every random draw of training and evaluation comes from a ChaCha8 stream whose key is
//! (seed, [`Purpose`], epoch, set of examples, copy) and whose stream number is the example's
//! index in its split: an image's binarization, its noise and its reparameterization ε are the same whichever
//! batch, thread or process handles it. The shuffle of an epoch is one stream of its own. So a
//! data-parallel run, whose processes each take a share of every batch, draws exactly what one
//! process draws, and a run resumes from its epoch number alone.

use autodiff::Matrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// What a draw is for: a part of its key, so that no two purposes share a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Purpose {
    /// The order of an epoch's examples.
    Shuffle = 1,
    /// Dynamic binarization: each pixel on with probability its intensity.
    Binarize = 2,
    /// A background model's perturbation: pixels replaced by noise.
    Perturb = 3,
    /// The reparameterization's ε of a VAE.
    Eps = 4,
    /// A denoising autoencoder's corruption.
    Corrupt = 5,
    /// Dropout masks.
    Dropout = 6,
    /// A GAN's latent draws.
    Latent = 7,
    /// The order of the labeled examples of a semi-supervised epoch.
    LabeledShuffle = 8,
    /// A vector-quantizer's codebook initialisation and restarts.
    Codebook = 9,
}

/// The epoch number of evaluation's keys: the same draws after every epoch, so that epochs
/// compare like for like, and none of training's.
const EVALUATION: u64 = u64::MAX;

/// The epoch number of the keys of what a model fits after training (a VQ-VAE's priors).
const AFTER_TRAINING: u64 = u64::MAX - 1;

/// The last 8 bytes of every key, so that henbun's streams are its own.
const DOMAIN: [u8; 8] = *b"henbun\x00\x01";

/// The keys of one epoch of a run (or of its evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    seed: u64,
    epoch: u64,
    /// Which set of examples the stream numbers index: 0 the run's, 1 + c the c-th pass of an
    /// epoch over M2's labeled examples ([`Keys::labeled_pass`]).
    set: u16,
}

impl Keys {
    /// The draws of training epoch `epoch` (counted from 1) of the run seeded `seed`.
    pub fn epoch(seed: u64, epoch: usize) -> Keys {
        Keys {
            seed,
            epoch: epoch as u64,
            set: 0,
        }
    }

    /// The draws of every evaluation of the run seeded `seed`.
    pub fn evaluation(seed: u64) -> Keys {
        Keys {
            seed,
            epoch: EVALUATION,
            set: 0,
        }
    }

    /// The draws of what a model fits once training is over (the images a VQ-VAE's priors
    /// are fitted to, perturbed as it trained on).
    pub fn after_training(seed: u64) -> Keys {
        Keys {
            seed,
            epoch: AFTER_TRAINING,
            set: 0,
        }
    }

    /// The keys of pass `pass` (from 0) over a second set of examples indexed from 0, M2's
    /// labeled examples, which an epoch goes through many times beside its unlabeled ones:
    /// each pass draws afresh, and apart from the first set's example of the same index.
    ///
    /// Panics past 65 534 passes in an epoch (M2 makes one per `labeled` images of the
    /// unlabeled set: 6 000 at most for MNIST with 10 labels).
    #[track_caller]
    pub fn labeled_pass(self, pass: usize) -> Keys {
        let set = u16::try_from(pass + 1)
            .ok()
            .filter(|&s| s < u16::MAX)
            .expect("Keys::labeled_pass: more than 65 534 passes in an epoch");
        Keys { set, ..self }
    }

    /// The stream of `purpose` for example `example`: its `copy`-th when one example needs
    /// several independent draws of the same purpose (importance samples, one per label).
    pub fn stream(self, purpose: Purpose, example: usize, copy: u32) -> ChaCha8Rng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..10].copy_from_slice(&(purpose as u16).to_le_bytes());
        key[10..12].copy_from_slice(&self.set.to_le_bytes());
        key[12..16].copy_from_slice(&copy.to_le_bytes());
        key[16..24].copy_from_slice(&self.epoch.to_le_bytes());
        key[24..].copy_from_slice(&DOMAIN);
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(example as u64);
        rng
    }

    /// The one stream numbered `step` of a draw that belongs to the epoch rather than to an
    /// example: the shuffle (0), M2's labeled orders (one per pass), the VQ-VAE's codebook
    /// initialisation (0) and restart (1).
    pub fn shared(self, purpose: Purpose, step: usize) -> ChaCha8Rng {
        self.stream(purpose, step, u32::MAX)
    }

    /// The draws of the examples `examples` (one per row of a batch, by index in their split).
    pub fn draws(self, examples: &[usize]) -> Draws<'_> {
        Draws {
            keys: self,
            examples,
            first_copy: 0,
        }
    }
}

/// Fills `row` with N(0, 1) draws from `rng`, in order.
fn fill_normal(mut row: ndarray::ArrayViewMut1<'_, f32>, rng: &mut ChaCha8Rng) {
    row.iter_mut()
        .for_each(|v| *v = StandardNormal.sample(&mut *rng));
}

/// The examples `0..n`: the rows of a matrix scored on its own, each its own example.
pub fn examples(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// The draws of examples `0..rows` of epoch 1 of `seed` (a test's, leaked for its lifetime).
#[cfg(test)]
pub(crate) fn test_draws(seed: u64, rows: usize) -> Draws<'static> {
    let examples: &'static [usize] = Vec::leak(examples(rows));
    Keys::epoch(seed, 1).draws(examples)
}

/// The draws of the rows of a batch: row `r` draws from its example's streams.
#[derive(Debug, Clone, Copy)]
pub struct Draws<'a> {
    keys: Keys,
    examples: &'a [usize],
    /// The copy that is each example's first here ([`Draws::copy`]).
    first_copy: u32,
}

impl<'a> Draws<'a> {
    /// The keys they come from.
    pub fn keys(&self) -> Keys {
        self.keys
    }

    /// The examples, one per row.
    pub fn examples(&self) -> &'a [usize] {
        self.examples
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The stream of `purpose` for row `r`, its `copy`-th.
    pub fn row(&self, purpose: Purpose, r: usize, copy: u32) -> ChaCha8Rng {
        self.keys
            .stream(purpose, self.examples[r], self.first_copy + copy)
    }

    /// Rows `range` of the batch.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Draws<'a> {
        Draws {
            examples: &self.examples[range],
            ..*self
        }
    }

    /// The same rows drawing their `k`-th copies where these draw their first (the `k`-th of
    /// several samples of one example).
    pub fn copy(&self, k: usize) -> Draws<'a> {
        Draws {
            first_copy: self.first_copy + k as u32,
            ..*self
        }
    }

    /// One row of `cols` N(0, 1) draws of `purpose` per `(row, copy)` of `at`.
    pub fn normal_at(
        &self,
        purpose: Purpose,
        at: impl IntoIterator<Item = (usize, usize)>,
        cols: usize,
    ) -> Matrix {
        let at: Vec<(usize, usize)> = at.into_iter().collect();
        let mut out = Matrix::zeros((at.len(), cols));
        for (row, (r, k)) in out.rows_mut().into_iter().zip(at) {
            fill_normal(row, &mut self.row(purpose, r, k as u32));
        }
        out
    }

    /// A `copies·len × cols` matrix of N(0, 1) draws of `purpose`: block `k` of `len` rows is
    /// every row's `k`-th copy.
    pub fn normal(&self, purpose: Purpose, copies: usize, cols: usize) -> Matrix {
        let n = self.len();
        let mut out = Matrix::zeros((copies * n, cols));
        for (i, row) in out.rows_mut().into_iter().enumerate() {
            fill_normal(row, &mut self.row(purpose, i % n, (i / n) as u32));
        }
        out
    }

    /// Calls `f` on each row of `x` (one per example) with that row's stream of `purpose`.
    #[track_caller]
    pub fn each_row(
        &self,
        purpose: Purpose,
        x: &mut Matrix,
        mut f: impl FnMut(&mut ChaCha8Rng, ndarray::ArrayViewMut1<'_, f32>),
    ) {
        assert_eq!(
            x.nrows(),
            self.len(),
            "Draws::each_row: {} rows for {} examples",
            x.nrows(),
            self.len()
        );
        for (r, row) in x.rows_mut().into_iter().enumerate() {
            f(&mut self.row(purpose, r, 0), row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn an_examples_draws_do_not_depend_on_its_batch_or_row() {
        let keys = Keys::epoch(7, 3);
        let whole = keys.draws(&[4, 9, 1, 6]).normal(Purpose::Eps, 2, 5);
        let part = keys.draws(&[1, 6]).normal(Purpose::Eps, 2, 5);
        // Rows 2, 3 of the batch of four are rows 0, 1 of the batch of two; copy 1 is the second
        // block of each.
        assert_eq!(whole.row(2), part.row(0));
        assert_eq!(whole.row(7), part.row(3));
        let alone = keys.draws(&[6]).normal(Purpose::Eps, 1, 5);
        assert_eq!(whole.row(3), alone.row(0));
        // Copy 1 of example 6 is the first copy of `copy(1)`, and row (3, 1) of `normal_at`.
        let second = keys.draws(&[6]).copy(1).normal(Purpose::Eps, 1, 5);
        assert_eq!(whole.row(7), second.row(0));
        let at = keys
            .draws(&[4, 9, 1, 6])
            .normal_at(Purpose::Eps, [(3, 1)], 5);
        assert_eq!(whole.row(7), at.row(0));
    }

    #[test]
    fn every_part_of_the_key_changes_the_draws() {
        let first = |keys: Keys, purpose, example, copy| -> u64 {
            keys.stream(purpose, example, copy).random()
        };
        let base = first(Keys::epoch(1, 1), Purpose::Eps, 0, 0);
        let others = [
            first(Keys::epoch(2, 1), Purpose::Eps, 0, 0),
            first(Keys::epoch(1, 2), Purpose::Eps, 0, 0),
            first(Keys::evaluation(1), Purpose::Eps, 0, 0),
            first(Keys::after_training(1), Purpose::Eps, 0, 0),
            first(Keys::epoch(1, 1), Purpose::Binarize, 0, 0),
            first(Keys::epoch(1, 1), Purpose::Eps, 1, 0),
            first(Keys::epoch(1, 1), Purpose::Eps, 0, 1),
            Keys::epoch(1, 1).shared(Purpose::Eps, 0).random(),
            first(Keys::epoch(1, 1).labeled_pass(0), Purpose::Eps, 0, 0),
            first(Keys::epoch(1, 1).labeled_pass(1), Purpose::Eps, 0, 0),
        ];
        for (i, o) in others.iter().enumerate() {
            assert_ne!(*o, base, "change {i}");
        }
        assert_eq!(first(Keys::epoch(1, 1), Purpose::Eps, 0, 0), base);
    }

    #[test]
    fn normal_draws_have_the_standard_moments() {
        let examples: Vec<usize> = (0..4000).collect();
        let m = Keys::epoch(0, 1)
            .draws(&examples)
            .normal(Purpose::Eps, 1, 50);
        let n = m.len() as f64;
        let mean = m.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = m.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n - mean * mean;
        // 200 000 draws: the mean's standard error is 0.0022, the variance's 0.0032.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");
    }
}
