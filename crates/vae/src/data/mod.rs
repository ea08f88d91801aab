//! MNIST-format datasets: IDX gz reading, binarization, shuffled batches, and the corruptions
//! of a denoising autoencoder's input.
//!
//! ```no_run
//! use vae::data::{Binarize, Classes, Dataset, TrainSet, eval_targets};
//! # fn main() -> Result<(), vae::data::DataError> {
//! let splits = Dataset::Mnist.load(None, &Classes::All, None)?;   // or Some(dir), a class set, Some(limit)
//! let test = eval_targets(&splits.test, Binarize::Dynamic);     // fixed seed: same every run
//! let train = TrainSet::new(splits.train, Binarize::Dynamic);
//! # Ok(())
//! # }
//! ```

mod batch;
mod binarize;
mod classes;
mod dataset;
mod error;
mod idx;
mod kind;
mod noise;
mod perturb;
mod split;
#[cfg(test)]
pub(crate) mod testutil;
mod train_set;

pub use batch::Batch;
pub use binarize::{
    Binarize, EVAL_BINARIZE_SEED, STATIC_BINARIZE_SEED, UnknownBinarize, binarize_once,
    eval_targets,
};
pub use classes::{Classes, ClassesError, parse_labels as parse_class_list};
pub use dataset::{
    DEBIAN_FASHION_MNIST, Dataset, FILES, Splits, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES,
    TRAIN_LABELS, UnknownDataset, load_split,
};
pub use error::{DataError, Problem};
pub use idx::{
    IdxImages, MAX_BODY_BYTES, NUM_CLASSES, parse_images, parse_labels, read_images, read_labels,
};
pub use kind::IdxKind;
pub use noise::{Noise, NoiseKind, ParseNoiseError, TEST_NOISE_SEED};
pub use perturb::perturb;
pub use split::{CLASSES, Split, images, one_hot};
pub use train_set::{Epoch, Share, TrainSet};
