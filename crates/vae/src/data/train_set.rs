//! The training split as batches: a seeded shuffle every epoch, targets binarized as configured.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::batch::{Batch, push_bernoulli, push_gray};
use super::binarize::{Binarize, STATIC_BINARIZE_SEED, binarize_once};
use super::split::Split;
use crate::parallel::share;
use crate::random::{Keys, Purpose};

/// The training split and how its targets are made.
#[derive(Clone, Debug)]
pub struct TrainSet {
    split: Split,
    binarize: Binarize,
}

impl TrainSet {
    /// Takes the training split. Under [`Binarize::Static`] its pixels are binarized here, once,
    /// with [`STATIC_BINARIZE_SEED`] (replacing the grayscale bytes, so the images stay held once).
    pub fn new(split: Split, binarize: Binarize) -> TrainSet {
        let split = match binarize {
            Binarize::Static => {
                binarize_once(&split, &mut ChaCha8Rng::seed_from_u64(STATIC_BINARIZE_SEED))
            }
            Binarize::Dynamic | Binarize::None => split,
        };
        TrainSet { split, binarize }
    }

    /// The split behind the batches (binarized under `Static`, grayscale otherwise).
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// The binarization in force.
    pub fn binarize(&self) -> Binarize {
        self.binarize
    }

    /// The number of training images.
    pub fn len(&self) -> usize {
        self.split.len()
    }

    /// Whether there is no training image.
    pub fn is_empty(&self) -> bool {
        self.split.is_empty()
    }

    /// An epoch of `batch_size` batches (the last may be smaller) in the order of `keys`'
    /// shuffle.
    ///
    /// Panics if `batch_size` is 0.
    #[track_caller]
    pub fn epoch(&self, batch_size: usize, keys: Keys) -> Epoch<'_> {
        self.epoch_in_order(batch_size, keys, &mut keys.shared(Purpose::Shuffle, 0))
    }

    /// [`TrainSet::epoch`] in the order drawn from `shuffle` (a semi-supervised run's labeled
    /// examples cycle through several orders in one epoch).
    #[track_caller]
    pub fn epoch_in_order(
        &self,
        batch_size: usize,
        keys: Keys,
        shuffle: &mut ChaCha8Rng,
    ) -> Epoch<'_> {
        assert!(batch_size > 0, "batch_size must be at least 1");
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(shuffle);
        Epoch {
            set: self,
            keys,
            order,
            batch_size,
            next: 0,
        }
    }
}

/// One process's part of a batch ([`Epoch::next_share`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// Its examples.
    pub batch: Batch,
    /// Examples in the whole batch.
    pub of: usize,
    /// False for a stand-in row of a process whose share is empty: its step counts for nothing.
    pub counted: bool,
}

impl Share {
    /// Its examples, none for a stand-in.
    pub fn counted_rows(self) -> Batch {
        if self.counted {
            self.batch
        } else {
            let pixels = self.batch.images.ncols();
            Batch {
                images: autodiff::Matrix::zeros((0, pixels)),
                labels: Vec::new(),
                indices: Vec::new(),
            }
        }
    }

    /// Its weight in the batch's mean: its examples over the batch's (0 if not counted).
    pub fn weight(&self) -> f64 {
        if self.counted {
            self.batch.len() as f64 / self.of as f64
        } else {
            0.0
        }
    }
}

/// One pass over the training set in a shuffled order.
///
/// ```
/// # use vae::data::{Binarize, Split, TrainSet};
/// # use vae::random::Keys;
/// let train = TrainSet::new(Split::new(vec![0, 255, 128, 64], vec![1, 2], (1, 2)), Binarize::Dynamic);
/// let mut epoch = train.epoch(128, Keys::epoch(0, 1));
/// while let Some(batch) = epoch.next_batch() {
///     assert_eq!(batch.images().dim(), (2, 2));
/// }
/// ```
#[derive(Debug)]
pub struct Epoch<'a> {
    set: &'a TrainSet,
    keys: Keys,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
}

impl Epoch<'_> {
    /// The next batch, or `None` when the epoch is over. Under [`Binarize::Dynamic`] each pixel
    /// is a fresh Bernoulli(`pixel / 255`) draw from its image's stream of the epoch's keys;
    /// otherwise it is `pixel / 255`.
    pub fn next_batch(&mut self) -> Option<Batch> {
        self.next_share(0, 1).map(|share| share.batch)
    }

    /// Share `part` of `parts` of the next batch (the examples of one process of a
    /// data-parallel run), or `None` when the epoch is over: the batch's rows
    /// [`share`]`(m, part, parts)` of its `m`, exactly as [`Epoch::next_batch`] would give
    /// them. A share with no row holds the batch's first row instead, not `counted`, so that
    /// every process computes a step of the same shape.
    #[track_caller]
    pub fn next_share(&mut self, part: usize, parts: usize) -> Option<Share> {
        assert!(part < parts, "share {part} of {parts}");
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let of = end - self.next;
        let mut rows = share(of, part, parts);
        let counted = !rows.is_empty();
        if !counted {
            rows = 0..1;
        }
        let indices = &self.order[self.next + rows.start..self.next + rows.end];
        self.next = end;
        let split = &self.set.split;
        let mut values = Vec::with_capacity(indices.len() * split.pixels_per_image());
        for &i in indices {
            match self.set.binarize {
                Binarize::Dynamic => push_bernoulli(
                    split.image(i),
                    &mut self.keys.stream(Purpose::Binarize, i, 0),
                    &mut values,
                ),
                Binarize::Static | Binarize::None => push_gray(split.image(i), &mut values),
            }
        }
        Some(Share {
            batch: split.assemble(indices, values),
            of,
            counted,
        })
    }

    /// Batches in the whole epoch.
    pub fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Batches not yet taken.
    pub fn remaining(&self) -> usize {
        (self.order.len() - self.next).div_ceil(self.batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 images of 1×3; image i has pixels [i, 128, 255 - i] and label i.
    fn ten() -> Split {
        let pixels = (0..10u8).flat_map(|i| [i, 128, 255 - i]).collect();
        Split::new(pixels, (0..10).collect(), (1, 3))
    }

    fn all_batches(set: &TrainSet, batch_size: usize, seed: u64) -> Vec<Batch> {
        let mut epoch = set.epoch(batch_size, Keys::epoch(seed, 1));
        std::iter::from_fn(|| epoch.next_batch()).collect()
    }

    #[test]
    fn an_epoch_visits_every_image_once_with_a_partial_last_batch() {
        let set = TrainSet::new(ten(), Binarize::None);
        let batches = all_batches(&set, 4, 0);
        // ceil(10 / 4) = 3 batches of 4, 4 and 2.
        let sizes: Vec<usize> = batches.iter().map(Batch::len).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled");
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        // Labels follow their images: label i belongs to image i.
        for b in &batches {
            assert_eq!(
                b.labels,
                b.indices.iter().map(|&i| i as u8).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn same_seed_same_batches_other_seed_other_order() {
        for binarize in [Binarize::Dynamic, Binarize::Static, Binarize::None] {
            let set = TrainSet::new(ten(), binarize);
            assert_eq!(
                all_batches(&set, 3, 7),
                all_batches(&set, 3, 7),
                "{binarize}"
            );
            assert_ne!(
                all_batches(&set, 3, 7),
                all_batches(&set, 3, 8),
                "{binarize}"
            );
        }
    }

    #[test]
    fn epoch_counts_batches() {
        let set = TrainSet::new(ten(), Binarize::None);
        let mut epoch = set.epoch(4, Keys::epoch(0, 1));
        assert_eq!((epoch.num_batches(), epoch.remaining()), (3, 3));
        epoch.next_batch();
        assert_eq!((epoch.num_batches(), epoch.remaining()), (3, 2));
    }

    #[test]
    fn grayscale_targets_are_pixel_over_255() {
        let set = TrainSet::new(ten(), Binarize::None);
        for b in all_batches(&set, 4, 1) {
            for (row, &i) in b.images.rows().into_iter().zip(&b.indices) {
                // Image i is [i, 128, 255 - i] / 255.
                let expected = [i as f32 / 255.0, 128.0 / 255.0, (255 - i) as f32 / 255.0];
                assert_eq!(row.to_vec(), expected);
            }
        }
    }

    #[test]
    fn dynamic_redraws_each_epoch_static_does_not() {
        // Row of image i, sorted back to index order, over epochs 1 and 2 of one seed.
        let two_epochs = |set: &TrainSet| {
            let mut epochs = Vec::new();
            for e in 1..=2 {
                let mut epoch = set.epoch(10, Keys::epoch(5, e));
                let b = epoch.next_batch().unwrap();
                let mut rows: Vec<(usize, Vec<f32>)> = b
                    .indices
                    .iter()
                    .copied()
                    .zip(b.images.rows().into_iter().map(|r| r.to_vec()))
                    .collect();
                rows.sort_by_key(|r| r.0);
                epochs.push(rows);
            }
            epochs
        };
        let dynamic = two_epochs(&TrainSet::new(ten(), Binarize::Dynamic));
        // 10 middle pixels at p ≈ 0.5 each: the chance two epochs agree on all is 2⁻¹⁰.
        assert_ne!(dynamic[0], dynamic[1]);
        let fixed = two_epochs(&TrainSet::new(ten(), Binarize::Static));
        assert_eq!(fixed[0], fixed[1]);
        for epochs in [&dynamic, &fixed] {
            for (_, row) in epochs.iter().flatten() {
                assert!(row.iter().all(|&x| x == 0.0 || x == 1.0));
            }
        }
    }

    #[test]
    fn shares_of_a_batch_are_its_rows_with_the_same_draws() {
        // 10 images in batches of 4, 4, 2; three shares of each: rows ⌊p·m/3⌋..⌊(p+1)·m/3⌋,
        // i.e. 1 + 1 + 2 rows of a batch of 4 and 0 + 1 + 1 of the batch of 2.
        let set = TrainSet::new(ten(), Binarize::Dynamic);
        let whole = all_batches(&set, 4, 3);
        let mut epochs: Vec<_> = (0..3).map(|_| set.epoch(4, Keys::epoch(3, 1))).collect();
        for batch in &whole {
            let shares: Vec<Share> = epochs
                .iter_mut()
                .enumerate()
                .map(|(p, e)| e.next_share(p, 3).unwrap())
                .collect();
            let weights: f64 = shares.iter().map(Share::weight).sum();
            assert!((weights - 1.0).abs() < 1e-12);
            // The batch of 2 leaves share 0 empty: it stands in the batch's first row, uncounted.
            if batch.len() == 2 {
                assert!(!shares[0].counted && shares[0].batch.indices == batch.indices[..1]);
            }
            let shares: Vec<Batch> = (shares.into_iter())
                .filter(|s| s.counted)
                .map(|s| s.batch)
                .collect();
            let rows: Vec<usize> = shares.iter().flat_map(|b| b.indices.clone()).collect();
            assert_eq!(rows, batch.indices);
            let images: Vec<f32> = shares
                .iter()
                .flat_map(|b| b.images.iter().copied())
                .collect();
            assert_eq!(images, batch.images.iter().copied().collect::<Vec<_>>());
        }
        assert!(epochs.iter_mut().all(|e| e.next_share(0, 3).is_none()));
    }
}
