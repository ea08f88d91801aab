//! What a model can do besides training, for the commands to consult: sample, score,
//! complete, classify ([`Abilities`]).

use autodiff::Matrix;
use rand_chacha::ChaCha8Rng;

use crate::random::Keys;

/// What a model can do besides training, for the commands to consult: a command takes any
/// model that has the ability it needs, never a list of names.
#[derive(Clone, Copy, Default)]
pub struct Abilities<'a> {
    /// It draws images unconditionally.
    pub sample: Option<&'a dyn Sample>,
    /// It scores an image on its own.
    pub score: Option<&'a dyn Score>,
    /// It draws images once a density is fitted to its codes of some images (an autoencoder,
    /// which has no prior of its own).
    pub fitted_sample: Option<&'a dyn FittedSample>,
    /// It draws what it does not see of partly seen images.
    pub complete: Option<&'a dyn Complete>,
    /// It is a classifier of images.
    pub classify: Option<&'a dyn Classify>,
}

/// A model that gives each image a distribution over the classes (the reference classifier of
/// the sample-quality yardstick).
pub trait Classify {
    /// The class probabilities and the features of every row of `x` (images as in
    /// [`TestData::x`](super::TestData::x)), in evaluation mode.
    fn classify(&self, x: &Matrix) -> Classified;

    /// The SHA-256 of its parameters (each one's name, shape and little-endian f32 values, in
    /// the store's order), in hex: which classifier produced a figure.
    fn weights_sha256(&self) -> String;
}

/// What a [`Classify`] makes of a set of images.
#[derive(Debug, Clone)]
pub struct Classified {
    /// One row per image: the probability of each class (rows sum to 1).
    pub probs: Matrix,
    /// One row per image: the activations of the classifier's last hidden layer.
    pub features: Matrix,
}

/// A model that draws images from nothing but noise.
pub trait Sample {
    /// `n` images as rows of pixel intensities in [0, 1] (a Bernoulli decoder's means); for a
    /// model that draws a class with each image, their classes too.
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples;

    /// Whether its images are a decoder's means (pixel probabilities, from which binary images
    /// can be drawn as samples too); a GAN's are images themselves.
    fn draws_means(&self) -> bool {
        true
    }
}

/// Images drawn by a [`Sample`].
#[derive(Debug, Clone)]
pub struct Samples {
    /// One image a row, in [0, 1].
    pub images: Matrix,
    /// The class each image was drawn under, for a label-conditioned model.
    pub labels: Option<Vec<u8>>,
}

/// A model that draws images from a density fitted to its codes of the images `x`.
pub trait FittedSample {
    /// `n` images in [0, 1] (a Bernoulli decoder's means), their codes drawn from the density
    /// fitted to the codes of the rows of `x` (images as in [`TestData::x`](super::TestData::x)).
    fn sample_fitted(&self, x: &Matrix, n: usize, rng: &mut ChaCha8Rng) -> Samples;

    /// What the density is, e.g. `a diagonal Gaussian fitted to the codes`.
    fn density(&self) -> &'static str;
}

/// A model that draws the part of an image it does not see from the part it sees.
pub trait Complete {
    /// Every row of `x` (whole images, as in [`TestData::x`](super::TestData::x)) with its seen part kept and the
    /// rest drawn (a Bernoulli decoder's means), in [0, 1].
    fn complete(&self, x: &Matrix, rng: &mut ChaCha8Rng) -> Matrix;
}

/// A model that scores images on their own: the higher, the less the model expects the image.
pub trait Score {
    /// What the score is, e.g. `-ELBO` (in nats).
    fn score_name(&self) -> &'static str;

    /// The score of each row of `x`, targets as in [`TestData::x`](super::TestData::x), row `r` drawing (if the
    /// score is random) as example `r` of `keys`.
    fn score(&self, x: &Matrix, keys: Keys) -> Vec<f64>;

    /// The `scores.csv` column of [`score`](Self::score), e.g. `neg_elbo`.
    fn score_column(&self) -> &'static str;

    /// Every score the model gives each row of `x`, [`score`](Self::score)'s first; by default
    /// that one alone.
    fn scores(&self, x: &Matrix, _settings: &ScoreSettings, keys: Keys) -> Vec<Scores> {
        vec![Scores {
            column: self.score_column(),
            values: self.score(x, keys),
        }]
    }
}

/// How the costlier scores of [`Score::scores`] are estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreSettings {
    /// Importance samples of `-ln p(x)` (0: not estimated).
    pub iw_samples: usize,
    /// Samples of z in the reconstruction probability (0: not estimated).
    pub recon_samples: usize,
}

/// One score of every image, higher meaning less expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Its `scores.csv` column, e.g. `neg_log_px`.
    pub column: &'static str,
    /// One value per image.
    pub values: Vec<f64>,
}
