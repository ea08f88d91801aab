//! The training split as batches: a seeded shuffle every epoch, targets binarized as configured.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::batch::{Batch, push_bernoulli, push_gray};
use super::binarize::{Binarize, STATIC_BINARIZE_SEED, binarize_once};
use super::split::Split;

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

    /// Starts an epoch: a Fisher–Yates shuffle of all indices with `rng`, cut into batches of
    /// `batch_size` (the last one partial). Take them with [`Epoch::next_batch`].
    ///
    /// # Panics
    /// If `batch_size` is zero.
    #[track_caller]
    pub fn epoch(&self, batch_size: usize, rng: &mut ChaCha8Rng) -> Epoch<'_> {
        assert!(batch_size > 0, "batch_size must be at least 1");
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        Epoch {
            set: self,
            order,
            batch_size,
            next: 0,
        }
    }
}

/// One pass over the training set in a shuffled order.
///
/// Not an [`Iterator`]: each batch borrows the rng only while it is made (dynamic binarization
/// draws from it), so the same rng can drive the training step in between.
///
/// ```
/// # use vae::data::{Binarize, Split, TrainSet};
/// # use rand::SeedableRng;
/// let train = TrainSet::new(Split::new(vec![0, 255, 128, 64], vec![1, 2], (1, 2)), Binarize::Dynamic);
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut epoch = train.epoch(128, &mut rng);
/// while let Some(batch) = epoch.next_batch(&mut rng) {
///     assert_eq!(batch.images().dim(), (2, 2));
/// }
/// ```
#[derive(Debug)]
pub struct Epoch<'a> {
    set: &'a TrainSet,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
}

impl Epoch<'_> {
    /// The next batch, or `None` when the epoch is over. Under [`Binarize::Dynamic`] each pixel
    /// is a fresh Bernoulli(`pixel / 255`) draw from `rng`; otherwise it is `pixel / 255` and
    /// `rng` is not used.
    pub fn next_batch(&mut self, rng: &mut ChaCha8Rng) -> Option<Batch> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let indices = &self.order[self.next..end];
        self.next = end;
        let split = &self.set.split;
        let mut values = Vec::with_capacity(indices.len() * split.pixels_per_image());
        for &i in indices {
            match self.set.binarize {
                Binarize::Dynamic => push_bernoulli(split.image(i), rng, &mut values),
                Binarize::Static | Binarize::None => push_gray(split.image(i), &mut values),
            }
        }
        Some(split.assemble(indices, values))
    }

    /// The number of batches in the whole epoch: `ceil(len / batch_size)`.
    pub fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// The number of batches not yet taken.
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
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut epoch = set.epoch(batch_size, &mut rng);
        std::iter::from_fn(|| epoch.next_batch(&mut rng)).collect()
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
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut epoch = set.epoch(4, &mut rng);
        assert_eq!((epoch.num_batches(), epoch.remaining()), (3, 3));
        epoch.next_batch(&mut rng);
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
        // Row of image i, sorted back to index order, over two epochs of one rng.
        let two_epochs = |set: &TrainSet| {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let mut epochs = Vec::new();
            for _ in 0..2 {
                let mut epoch = set.epoch(10, &mut rng);
                let b = epoch.next_batch(&mut rng).unwrap();
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
}
